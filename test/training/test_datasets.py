"""Loaders on the real samples, in each dataset's real on-disk layout built in a tmp dir."""

import os
import zipfile

import cv2
import h5py
from mono_depth_ros.core import kitti as kitti_io
from mono_depth_ros.core.intrinsics import preset
import numpy as np
import pytest
from training.config import load_config
from training.datasets import (build_dataset, DatasetError, FolderDataset, KittiObject, KittiRaw,
                               NYUCSV, NYUH5, NYUMat, SyntheticDataset)
from training.datasets.kitti import read_split_file
from training.datasets.nyu import read_index_list

NYU_IDS = ('0003', '0004', '0005')


def _nyu_pairs(shared_data, ids=NYU_IDS):
    out = []
    for ident in ids:
        bgr = cv2.imread(str(shared_data / 'nyu' / 'rgb' / f'{ident}.png'), cv2.IMREAD_COLOR)
        mm = cv2.imread(str(shared_data / 'nyu' / 'depth' / f'{ident}.png'),
                        cv2.IMREAD_UNCHANGED)
        out.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mm.astype(np.float32) / 1000.0))
    return out


def _backproject(k, u, v, z):
    return np.array([(u - k[0, 2]) * z / k[0, 0], (v - k[1, 2]) * z / k[1, 1], z])


def test_nyu_mat_round_trip_with_matlab_transposes(shared_data, tmp_path):
    pairs = _nyu_pairs(shared_data)
    path = tmp_path / 'nyu_depth_v2_labeled.mat'
    with h5py.File(path, 'w') as f:
        # MATLAB v7.3 is column-major: h5py sees (N, 3, W, H) and (N, W, H).
        f['images'] = np.stack([rgb.transpose(2, 1, 0) for rgb, _ in pairs])
        f['depths'] = np.stack([d.T for _, d in pairs])
    split = tmp_path / 'train.txt'
    split.write_text('# 1-based\n2\n3\n')
    data = NYUMat(str(path), indices=read_index_list(str(split)), height=240, width=320)
    raw = data.load(0)
    assert raw.rgb.shape == (480, 640, 3)
    np.testing.assert_array_equal(raw.rgb, pairs[1][0])
    np.testing.assert_allclose(raw.depth, pairs[1][1])
    sample = data[1]
    assert sample['image'].shape == (3, 240, 320) and sample['depth'].shape == (1, 240, 320)
    assert 0.0 <= float(sample['image'].min()) and float(sample['image'].max()) <= 1.0
    assert bool(sample['mask'].all())  # the labeled depths are in-painted: dense
    expected = preset('kinect_nyu').resize(320, 240).K
    np.testing.assert_allclose(sample['K'].numpy(), expected, rtol=1e-6)
    with pytest.raises(DatasetError, match='1-based'):
        bad = tmp_path / 'bad.txt'
        bad.write_text('0\n')
        read_index_list(str(bad))


def test_nyu_densedepth_zip_8bit_train_and_16bit_test(shared_data, tmp_path):
    pairs = _nyu_pairs(shared_data, NYU_IDS[:2])
    archive = tmp_path / 'nyu_data.zip'
    with zipfile.ZipFile(archive, 'w') as z:
        train_rows, test_rows = [], []
        for i, (rgb, depth) in enumerate(pairs):
            rgb_name = f'data/nyu2_train/room_out/{i}.jpg'
            z.writestr(rgb_name, cv2.imencode('.jpg', rgb[..., ::-1])[1].tobytes())
            eight = np.clip(np.round(depth / 10.0 * 255), 0, 255).astype(np.uint8)
            z.writestr(f'data/nyu2_train/room_out/{i}.png', cv2.imencode('.png', eight)[1])
            train_rows.append(f'{rgb_name},data/nyu2_train/room_out/{i}.png')
            mm = np.round(depth * 1000).astype(np.uint16)
            z.writestr(f'data/nyu2_test/{i:05d}_depth.png', cv2.imencode('.png', mm)[1])
            z.writestr(f'data/nyu2_test/{i:05d}_colors.png',
                       cv2.imencode('.png', rgb[..., ::-1])[1])
            test_rows.append(f'data/nyu2_test/{i:05d}_colors.png,'
                             f'data/nyu2_test/{i:05d}_depth.png')
        z.writestr('data/nyu2_train.csv', '\n'.join(train_rows) + '\n')
        z.writestr('data/nyu2_test.csv', '\n'.join(test_rows) + '\n')
    train = NYUCSV(str(archive), 'data/nyu2_train.csv', height=120, width=160)
    test = NYUCSV(str(archive), 'data/nyu2_test.csv', height=120, width=160)
    assert len(train) == 2 and len(test) == 2
    # 8-bit PNGs quantise 10 m into 255 steps; 16-bit ones are exact millimetres.
    assert np.abs(train.load(0).depth - pairs[0][1]).max() <= 10.0 / 255 / 2 + 1e-5
    np.testing.assert_allclose(test.load(1).depth, pairs[1][1], atol=1e-6)
    np.testing.assert_array_equal(test.load(1).rgb, pairs[1][0])


def test_nyu_fastdepth_h5(shared_data, tmp_path):
    (rgb, depth), = _nyu_pairs(shared_data, NYU_IDS[:1])
    folder = tmp_path / 'nyudepthv2' / 'val' / 'official'
    folder.mkdir(parents=True)
    with h5py.File(folder / '00001.h5', 'w') as f:
        f['rgb'] = rgb.transpose(2, 0, 1)
        f['depth'] = depth
    data = NYUH5(str(tmp_path / 'nyudepthv2'), split='val', height=228, width=304)
    raw = data.load(0)
    np.testing.assert_array_equal(raw.rgb, rgb)
    np.testing.assert_allclose(raw.depth, depth)
    assert data[0]['image'].shape == (3, 228, 304)


def test_folder_reads_redwood_and_tum(shared_data, tmp_path):
    redwood = FolderDataset(str(shared_data / 'redwood'), rgb_dir='color', depth_dir='depth',
                            intrinsics='camera_primesense.json', height=240, width=320)
    assert len(redwood) == 5
    raw = redwood.load(0)
    assert raw.intrinsics.fx == 525.0 and raw.intrinsics.cx == 319.5
    assert 0.3 < float(np.median(raw.depth[raw.depth > 0])) < 6.0
    tum = tmp_path / 'tum'
    (tum / 'rgb').mkdir(parents=True)
    (tum / 'depth').mkdir()
    os.symlink(shared_data / 'tum' / 'TUM_color.png', tum / 'rgb' / 'color.png')
    os.symlink(shared_data / 'tum' / 'TUM_depth.png', tum / 'depth' / 'depth.png')
    (tum / 'camera.json').write_text('{"fx": 517.3, "fy": 516.5, "cx": 318.6, "cy": 255.3, '
                                     '"width": 640, "height": 480}')
    data = FolderDataset(str(tum), depth_scale=1 / 5000, height=240, width=320)
    raw_depth = cv2.imread(str(shared_data / 'tum' / 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(data.load(0).depth, raw_depth / 5000.0, rtol=1e-6)
    assert data.load(0).intrinsics.fy == 516.5


def _raw_kitti_layout(shared_data, root):
    """Lay the raw_stereo sample out as a raw drive, calibration in the raw files' form."""
    calib = kitti_io.read_kitti_calib(str(shared_data / 'kitti' / 'raw_stereo' / 'calib' /
                                          '000001.txt'))
    date = root / '2011_09_26'
    drive = date / '2011_09_26_drive_0001_sync'
    for sub in ('image_02/data', 'image_03/data', 'velodyne_points/data'):
        (drive / sub).mkdir(parents=True)
    src = shared_data / 'kitti' / 'raw_stereo'
    os.symlink(src / 'image_2' / '0000000001.png', drive / 'image_02/data/0000000001.png')
    os.symlink(src / 'image_3' / '0000000001.png', drive / 'image_03/data/0000000001.png')
    os.symlink(src / 'velodyne' / '0000000001.bin',
               drive / 'velodyne_points/data/0000000001.bin')

    def row(values):
        return ' '.join(f'{v:.12e}' for v in np.asarray(values).reshape(-1))
    (date / 'calib_cam_to_cam.txt').write_text(
        'calib_time: 09-Jan-2012 13:57:47\n' +
        ''.join(f'P_rect_0{i}: {row(calib[f"P{i}"])}\n' for i in range(4)) +
        f'R_rect_00: {row(calib["R0_rect"])}\n')
    (date / 'calib_velo_to_cam.txt').write_text(
        f'R: {row(calib["Tr_velo_to_cam"][:, :3])}\nT: {row(calib["Tr_velo_to_cam"][:, 3])}\n')
    return calib


def test_kitti_raw_velodyne_and_png_ground_truth(shared_data, tmp_path):
    calib = _raw_kitti_layout(shared_data, tmp_path / 'raw')
    split = tmp_path / 'eigen_test_files.txt'
    split.write_text('2011_09_26/2011_09_26_drive_0001_sync 0000000001 l\n'
                     '2011_09_26/2011_09_26_drive_0001_sync 1 r\n')
    assert read_split_file(str(split))[1] == ('2011_09_26/2011_09_26_drive_0001_sync', 1, 'r')
    data = KittiRaw(str(tmp_path / 'raw'), split_file=str(split), height=192, width=640,
                    resize=(640, 194))
    left, right = data.load(0), data.load(1)
    assert left.rgb.shape[:2] == left.depth.shape
    assert left.intrinsics.fx == pytest.approx(calib['P2'][0, 0])
    assert right.intrinsics.cx == pytest.approx(calib['P3'][0, 2])
    # The shipped LiDAR projection (value / 256 m) matches ours where both have a return.
    ref = cv2.imread(str(shared_data / 'kitti' / 'raw_stereo' / 'image_2' /
                         '0000000001_velodepth_u16x256.png'), cv2.IMREAD_UNCHANGED) / 256.0
    both = (ref > 0) & (left.depth > 0)
    assert both.sum() > 5000
    assert np.median(np.abs(ref[both] - left.depth[both])) < 0.05
    # Depth benchmark layout: 16-bit PNGs, value / 256 m.
    gt_dir = tmp_path / 'depth' / 'val' / '2011_09_26_drive_0001_sync' / 'proj_depth' / \
        'groundtruth' / 'image_02'
    gt_dir.mkdir(parents=True)
    os.symlink(shared_data / 'kitti' / 'raw_stereo' / 'image_2' /
               '0000000001_velodepth_u16x256.png', gt_dir / '0000000001.png')
    png = KittiRaw(str(tmp_path / 'raw'), entries=[read_split_file(str(split))[0]], gt='png',
                   depth_root=str(tmp_path / 'depth'), height=192, width=640,
                   resize=(640, 194))
    np.testing.assert_allclose(png.load(0).depth, ref, atol=1e-6)
    sample = png[0]
    # Sparse LiDAR shrunk to 640 wide keeps returns (nearest-valid scatter, no interpolation).
    kept = sample['depth'][sample['mask']]
    assert int(sample['mask'].sum()) > 0.5 * both.sum() * (640 / 1242) * (194 / 375)
    assert float(kept.min()) >= float(ref[ref > 0].min()) - 1e-4
    with pytest.raises(DatasetError, match='depth_root'):
        KittiRaw(str(tmp_path / 'raw'), split_file=str(split), gt='png', height=8, width=8)


def test_kitti_object_layout(shared_data):
    data = KittiObject(str(shared_data / 'kitti' / 'object_training'), height=192, width=640,
                       resize=(640, 194))
    assert data.ids == ['000000', '000001', '000002']
    raw = data.load(0)
    calib = kitti_io.read_kitti_calib(str(shared_data / 'kitti' / 'object_training' / 'calib' /
                                          '000000.txt'))
    assert raw.intrinsics.fx == pytest.approx(calib['P2'][0, 0])
    assert (raw.depth > 0).sum() > 5000


@pytest.mark.parametrize('flip', [False, True])
def test_intrinsics_follow_flip_and_crop_on_real_nyu(shared_data, tmp_path, flip):
    """A back-projected ground-truth point is the same 3D point after resize, crop and flip."""
    data = FolderDataset(str(shared_data / 'nyu'), intrinsics='kinect_nyu', height=200,
                         width=280, resize=(320, 240), train=True,
                         augment={'hflip': 1.0 if flip else 0.0, 'random_crop': True,
                                  'channel_swap': 0.0, 'brightness': 0.0, 'contrast': 0.0,
                                  'saturation': 0.0})
    raw = data.load(0)
    rng = np.random.default_rng(0)
    prepared, params = data.prepare(raw, rng)
    assert params.flip == flip and (params.x0, params.y0) != (0, 0)
    k = prepared.intrinsics.K
    resized = preset('kinect_nyu').resize(320, 240)
    expected_cx = resized.cx - params.x0
    if flip:
        expected_cx = 280 - 1 - expected_cx
    assert k[0, 2] == pytest.approx(expected_cx)
    assert k[1, 2] == pytest.approx(resized.cy - params.y0)
    # Take a pixel of the augmented sample, undo crop and flip to the resized image, and
    # compare the 3D points given by each image's own K and depth.
    depth320 = cv2.resize(raw.depth, (320, 240), interpolation=cv2.INTER_NEAREST_EXACT)
    for u, v in ((10, 20), (150, 100), (270, 190)):
        z = prepared.depth[v, u]
        u_crop = 280 - 1 - u if flip else u
        u0, v0 = u_crop + params.x0, v + params.y0
        assert z == depth320[v0, u0]
        p = _backproject(k, u, v, z)
        q = _backproject(resized.K, u0, v0, depth320[v0, u0])
        if flip:
            q[0] = -q[0]  # a mirrored image shows the mirrored world
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-6)


def test_synthetic_is_deterministic_and_any_size():
    a = SyntheticDataset(6, scene_seed=3, height=30, width=40)
    b = SyntheticDataset(6, scene_seed=3, height=30, width=40)
    for i in (0, 5):
        np.testing.assert_array_equal(a[i]['image'].numpy(), b[i]['image'].numpy())
        np.testing.assert_array_equal(a[i]['depth'].numpy(), b[i]['depth'].numpy())
    c = SyntheticDataset(6, scene_seed=4, height=30, width=40)
    assert not np.array_equal(a[0]['depth'].numpy(), c[0]['depth'].numpy())
    assert SyntheticDataset(2, height=24, width=32)[0]['image'].shape == (3, 24, 32)
    seq = SyntheticDataset(4, scene_seed=1, frames_per_room=4, height=24, width=32,
                           frame_offsets=(-1, 1))
    s = seq[1]
    assert s['image-1'].shape == (3, 24, 32) and s['pose+1'].shape == (4, 4)
    assert not np.allclose(s['pose-1'].numpy(), s['pose'].numpy())


def test_build_dataset_from_config(shared_data):
    config = load_config(None, ['data.dataset=folder', f'data.root={shared_data / "redwood"}',
                                'data.folder.rgb_dir=color', 'data.height=48',
                                'data.width=64', 'data.resize_height=60',
                                'data.resize_width=80'])
    train, val = build_dataset(config, 'train'), build_dataset(config, 'val')
    assert isinstance(train, FolderDataset) and train.train and not val.train
    assert train[0]['image'].shape == (3, 48, 64)
    with pytest.raises(DatasetError, match='data.root'):
        build_dataset(load_config(None, ['data.dataset=kitti']), 'train')
