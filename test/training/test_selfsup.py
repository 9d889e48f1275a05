"""Self-supervised (Monodepth2) training: geometry, losses, pose network, task, CLI."""

import os

import cv2
from mono_depth_ros.core import geometry as np_geometry
from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np
import pytest
import torch
from training import geometry
from training.datasets import SyntheticDataset
from training.losses import edge_aware_smoothness, photometric_error, reprojection_loss
from training.networks.pose import build_pose_net, pair_transform, ResNet18Pose


def _image(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0


def _rel(pose_target: np.ndarray, pose_source: np.ndarray) -> torch.Tensor:
    """T_t2s from camera-to-world poses."""
    return torch.from_numpy(np.linalg.inv(pose_source) @ pose_target).float()[None]


def _perturbed(t: torch.Tensor, dx: float = 0.0, angle: float = 0.0) -> torch.Tensor:
    out = t.clone()
    out[0, 0, 3] += dx
    if angle:
        c, s = np.cos(angle), np.sin(angle)
        yaw = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=out.dtype)
        out[0, :3, :3] = yaw @ out[0, :3, :3]
    return out


@pytest.fixture(scope='module')
def synthetic_pair():
    """K, target and source (3 frames on) of one synthetic room, exact depth and poses."""
    data = SyntheticDataset(8, scene_seed=5, frames_per_room=12, height=96, width=128,
                            supersample=3, frame_offsets=(-3, 3))
    k = torch.from_numpy(data.intrinsics.K).float()[None]
    return k, data.load(2), data.load_frame(2, 3)


# -- geometry ---------------------------------------------------------------------------------
def test_torch_geometry_follows_the_package_conventions():
    intr = Intrinsics(50.0, 55.0, 30.2, 21.7, 64, 48)
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 6.0, (48, 64)).astype(np.float32)
    expected = np_geometry.backproject(depth, intr)  # (H, W, 3)
    k = torch.from_numpy(intr.K).float()[None].repeat(3, 1, 1)
    d = torch.from_numpy(depth)[None, None].repeat(3, 1, 1, 1)
    points = geometry.backproject(d, torch.linalg.inv(k))
    assert points.shape == (3, 3, 48 * 64)
    got = points[1].T.reshape(48, 64, 3).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    pixels, z = geometry.project(points, k)
    uv = np_geometry.project(expected.reshape(-1, 3), intr)
    np.testing.assert_allclose(pixels[2].T.numpy(), uv, atol=1e-3)
    np.testing.assert_allclose(z[0, 0].numpy(), depth.reshape(-1), rtol=1e-6)
    # The identity transform samples every pixel at its own centre: an exact copy.
    image = torch.rand(3, 3, 48, 64)
    warped, inside = geometry.warp(image, d, k, torch.eye(4).repeat(3, 1, 1))
    torch.testing.assert_close(warped, image, atol=1e-5, rtol=0)
    assert bool(inside.all())


def test_pose_matrices_round_trip_and_are_rotations():
    aa = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.3], [1e-6, 0.0, 0.0]],
                      requires_grad=True)
    t = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.1, 0.2], [0.0, 0.0, 1.0]])
    m = geometry.pose_to_matrix(aa, t)
    r = m[:, :3, :3]
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3).expand(3, 3, 3), atol=1e-6,
                               rtol=0)
    inv = geometry.pose_to_matrix(aa, t, invert=True)
    torch.testing.assert_close(inv @ m, torch.eye(4).expand(3, 4, 4), atol=1e-6, rtol=0)
    # A rotation of angle theta about z moves x onto y by theta.
    rz = geometry.axis_angle_to_matrix(torch.tensor([[0.0, 0.0, np.pi / 2]]))[0]
    torch.testing.assert_close(rz @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]),
                               atol=1e-6, rtol=0)
    m.sum().backward()
    assert torch.isfinite(aa.grad).all()  # smooth at zero rotation too


def _visible(target, source, t_t2s, k):
    """Pixels of the target that the source camera also sees (not occluded), and in view."""
    depth_t = torch.from_numpy(target.depth.astype(np.float32))[None, None]
    depth_s = torch.from_numpy(source.depth.astype(np.float32))[None, None]
    points = geometry.transform(geometry.backproject(depth_t, torch.linalg.inv(k)), t_t2s)
    pixels, z = geometry.project(points, k)
    h, w = depth_t.shape[-2:]
    seen = geometry.sample(depth_s, geometry.pixels_to_grid(pixels, h, w))
    _, inside = geometry.warp(depth_s, depth_t, k, t_t2s)
    return inside & ((seen - z.reshape(1, 1, h, w)).abs() < 0.03 * seen)


def test_warp_with_true_depth_and_pose_reproduces_the_target(synthetic_pair):
    k, target, source = synthetic_pair
    depth = torch.from_numpy(target.depth.astype(np.float32))[None, None]
    t_img, s_img = _image(target.rgb), _image(source.rgb)
    t_true = _rel(target.pose, source.pose)
    visible = _visible(target, source, t_true, k)
    assert visible.float().mean() > 0.6  # the frames overlap mostly

    def error(t):
        warped, _ = geometry.warp(s_img, depth, k, t)
        return float(photometric_error(warped, t_img)[visible].mean())

    good = error(t_true)
    identity = float(photometric_error(s_img, t_img)[visible].mean())
    assert good < 0.03, f'warp error {good:.4f} with the true pose'
    assert good < 0.4 * identity
    for wrong in (_perturbed(t_true, dx=0.15), _perturbed(t_true, angle=0.05),
                  torch.linalg.inv(t_true)):
        assert error(wrong) > 2.0 * good


def _redwood(shared_data):
    root = shared_data / 'redwood'
    lines = [line.split() for line in open(root / 'trajectory.log', encoding='utf-8')]
    poses = [np.array(lines[i + 1:i + 5], dtype=np.float64) for i in range(0, len(lines), 5)
             if len(lines[i]) == 3]
    frames = []
    for i in range(5):
        bgr = cv2.imread(str(root / 'color' / f'{i:05d}.jpg'), cv2.IMREAD_COLOR)
        mm = cv2.imread(str(root / 'depth' / f'{i:05d}.png'), cv2.IMREAD_UNCHANGED)
        frames.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), mm.astype(np.float32) / 1000.0))
    return frames, poses, Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)


@pytest.mark.shared_data
def test_warp_on_real_redwood_frames(shared_data):
    frames, poses, intr = _redwood(shared_data)
    assert len(poses) == 5
    k = torch.from_numpy(intr.K).float()[None]
    target = _image(frames[2][0])
    depth = torch.from_numpy(frames[2][1])[None, None]
    for s in (0, 1, 3, 4):
        source = _image(frames[s][0])
        t_true = _rel(poses[2], poses[s])
        warped, inside = geometry.warp(source, depth, k, t_true)
        valid = inside & (depth > 0)
        good = float(photometric_error(warped, target)[valid].mean())
        identity = float(photometric_error(source, target)[valid].mean())
        wrong = float(photometric_error(geometry.warp(source, depth, k, _perturbed(
            t_true, dx=0.05))[0], target)[valid].mean())
        assert good < 0.6 * identity, (s, good, identity)
        assert good < 0.6 * wrong, (s, good, wrong)


# -- losses -----------------------------------------------------------------------------------
def test_photometric_error_is_zero_for_equal_images_and_weighs_ssim_and_l1():
    a = torch.rand(2, 3, 16, 20)
    assert float(photometric_error(a, a).abs().max()) < 1e-5
    b = (a + 0.1).clamp(0, 1)
    l1_only = photometric_error(a, b, alpha=0.0)
    torch.testing.assert_close(l1_only, (a - b).abs().mean(1, keepdim=True))
    assert photometric_error(a, b).shape == (2, 1, 16, 20)


def test_automask_masks_a_static_scene_and_a_pixel_moving_with_the_camera(synthetic_pair):
    k, target, source = synthetic_pair
    depth = torch.from_numpy(target.depth.astype(np.float32))[None, None]
    t_img = _image(target.rgb)
    t_true = _rel(target.pose, source.pose)
    # A static camera: the source is the target itself, so whatever pose and depth are
    # predicted, the warp cannot beat the unwarped frame and every pixel is masked.
    warped, _ = geometry.warp(t_img, depth * 1.3, k, _perturbed(t_true, dx=0.02))
    out = reprojection_loss(photometric_error(warped, t_img), photometric_error(t_img, t_img))
    assert not bool(out['mask'].any())
    assert float(out['loss']) == 0.0
    # Masked pixels add a constant: no gradient reaches the warp (so the depth) there.
    warped = warped.clone().requires_grad_(True)
    loss = reprojection_loss(photometric_error(warped, t_img),
                             photometric_error(t_img, t_img))['loss']
    assert float(torch.autograd.grad(loss, warped)[0].abs().max()) == 0.0
    # A patch that moves with the camera sits at the same pixels in both frames.
    s_rgb, t_rgb = source.rgb.copy(), target.rgb.copy()
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    s_rgb[40:60, 50:74] = patch
    t_rgb[40:60, 50:74] = patch
    t_img, s_img = _image(t_rgb), _image(s_rgb)
    warped, _ = geometry.warp(s_img, depth, k, t_true)
    out = reprojection_loss(photometric_error(warped, t_img), photometric_error(s_img, t_img))
    mask = out['mask'][0, 0]
    assert float(mask[42:58, 52:72].float().mean()) < 0.05
    outside = torch.ones_like(mask)
    outside[30:70, 40:84] = False
    assert float(mask[outside].float().mean()) > 0.6
    # Without identity errors nothing is auto-masked; the minimum over sources is taken.
    errors = torch.stack([torch.full((1, 4, 4), 0.3), torch.full((1, 4, 4), 0.1)], dim=1)
    plain = reprojection_loss(errors)
    assert bool(plain['mask'].all()) and abs(float(plain['loss']) - 0.1) < 1e-6
    assert abs(float(reprojection_loss(errors, min_reprojection=False)['loss']) - 0.2) < 1e-6


def test_smoothness_ignores_scale_and_forgives_image_edges():
    disp = torch.rand(1, 1, 16, 16) + 0.5
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert abs(float(edge_aware_smoothness(disp, flat)) -
               float(edge_aware_smoothness(10 * disp, flat))) < 1e-5
    edges = torch.zeros(1, 3, 16, 16)
    edges[..., ::2, :] = 1.0
    edges[..., :, ::2] = 1.0 - edges[..., :, ::2]
    assert float(edge_aware_smoothness(disp, edges)) < 0.5 * float(
        edge_aware_smoothness(disp, flat))
    assert float(edge_aware_smoothness(torch.ones(1, 1, 16, 16), flat)) == 0.0
    with pytest.raises(ValueError, match='differ in size'):
        edge_aware_smoothness(torch.ones(1, 1, 8, 8), flat)


# -- pose network -----------------------------------------------------------------------------
def test_pose_network_takes_six_channels_with_halved_pretrained_conv1():
    net = ResNet18Pose()
    assert net.encoder.conv1.weight.shape == (64, 6, 7, 7)
    w = torch.randn(64, 3, 7, 7)
    net.encoder.load_torchvision({'conv1.weight': w})
    torch.testing.assert_close(net.encoder.conv1.weight[:, :3], w / 2)
    torch.testing.assert_close(net.encoder.conv1.weight[:, 3:], w / 2)
    aa, t = net(torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64))
    assert aa.shape == (3, 3) and t.shape == (3, 3)
    assert float(torch.cat([aa, t]).detach().abs().max()) < 0.1  # the 0.01 factor
    with pytest.raises(ValueError, match='unknown pose network'):
        build_pose_net('nope')


def test_identity_pair_gives_identity_after_a_short_fit(one_thread):
    """Started 7 cm and 2 degrees from identity, a short photometric fit brings it back."""
    torch.manual_seed(0)
    data = SyntheticDataset(8, scene_seed=9, frames_per_room=4, height=48, width=64,
                            supersample=3)
    frames = [data.load(i) for i in range(8)]
    images = torch.cat([_image(f.rgb) for f in frames])
    depths = torch.stack([torch.from_numpy(f.depth)[None] for f in frames])
    k = torch.from_numpy(data.intrinsics.K).float()[None].repeat(2, 1, 1)
    net = build_pose_net('resnet18_pose')
    with torch.no_grad():
        net.decoder.pose2.bias.copy_(torch.tensor([1.0, -1.0, 0.5, 5.0, -2.5, 4.0]))
    before = pair_transform(net.eval(), images[6:], images[6:], False).detach()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for step in range(60):
        idx = torch.tensor([(2 * step) % 6, (2 * step + 1) % 6])
        t = pair_transform(net, images[idx], images[idx], False)
        warped, _ = geometry.warp(images[idx], depths[idx], k, t)
        loss = photometric_error(warped, images[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # Held-out frames, in eval mode, and through the inverted (earlier source) path too.
    eye = torch.eye(4)
    assert float(before[:, :3, 3].norm(dim=1).min()) > 0.06
    for source_before in (False, True):
        after = pair_transform(net.eval(), images[6:], images[6:], source_before).detach()
        assert float(after[:, :3, 3].norm(dim=1).max()) < 0.015
        assert float((after[:, :3, :3] - eye[:3, :3]).abs().max()) < 0.005


# -- data -------------------------------------------------------------------------------------
def test_synthetic_sequences_carry_real_neighbours_with_exact_poses():
    data = SyntheticDataset(6, scene_seed=2, frames_per_room=5, height=24, width=32,
                            frame_offsets=(-1, 1), train=True, seed=3,
                            augment={'hflip': 1.0, 'random_crop': False, 'brightness': 0.3,
                                     'contrast': 0.3, 'saturation': 0.3, 'channel_swap': 0.0})
    assert data.targets_per_room == 3
    ids = [data.load_frame(i, o).id for i in range(6) for o in (-1, 0, 1)]
    # Targets are frames 1..3 of each 5-frame room; every neighbour is in the same room.
    assert ids[:9] == [f'synthetic_{k:06d}' for k in (0, 1, 2, 1, 2, 3, 2, 3, 4)]
    assert ids[9:12] == [f'synthetic_{k:06d}' for k in (5, 6, 7)]
    sample = data[4]
    for key in ('image', 'image-1', 'image+1', 'pose', 'pose-1', 'pose+1'):
        assert key in sample
    assert not torch.equal(sample['image-1'], sample['image'])
    # The same colour jitter for all three frames: the jitter is drawn once per sample, so
    # the per-channel gain against the un-jittered frames agrees across frames.
    plain = SyntheticDataset(6, scene_seed=2, frames_per_room=5, height=24, width=32,
                             frame_offsets=(-1, 1), train=True, seed=3,
                             augment={'hflip': 1.0, 'random_crop': False,
                                      'channel_swap': 0.0, 'brightness': 0.0,
                                      'contrast': 0.0, 'saturation': 0.0})[4]
    assert not torch.allclose(sample['image'], plain['image'])
    for key in ('image', 'image-1', 'image+1'):
        assert torch.allclose(data._image_tensor(
            (plain[key].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
            sample_seed_of(data, 4)), sample[key], atol=1e-5)
    # Flipped poses still relate the flipped frames: warping with them reproduces the target.
    flip_data = SyntheticDataset(4, scene_seed=5, frames_per_room=12, height=96, width=128,
                                 supersample=3, frame_offsets=(3,), train=True,
                                 augment={'hflip': 1.0, 'random_crop': False,
                                          'channel_swap': 0.0, 'brightness': 0.0,
                                          'contrast': 0.0, 'saturation': 0.0})
    s = flip_data[2]
    t = geometry.relative_transform(s['pose'][None], s['pose+3'][None])
    warped, inside = geometry.warp(s['image+3'][None], s['depth'][None], s['K'][None], t)
    err = photometric_error(warped, s['image'][None])[inside & s['mask'][None]].mean()
    ident = photometric_error(s['image+3'][None], s['image'][None]).mean()
    assert float(err) < 0.5 * float(ident)


def sample_seed_of(data, index):
    from training.datasets.augment import sample_seed
    return sample_seed(data.seed, data.epoch, index)


def test_datasets_without_sequences_or_stereo_refuse_them(shared_data):
    from training.datasets import DatasetError, FolderDataset
    with pytest.raises(DatasetError, match='no neighbouring frames'):
        FolderDataset(str(shared_data / 'redwood'), rgb_dir='color', intrinsics='kinect_nyu',
                      height=24, width=32, frame_offsets=(-1, 1))
    with pytest.raises(DatasetError, match='no stereo pairs'):
        FolderDataset(str(shared_data / 'redwood'), rgb_dir='color', intrinsics='kinect_nyu',
                      height=24, width=32, stereo=True)


@pytest.mark.shared_data
def test_scene_sequences_on_redwood_and_nyu_style_folders(shared_data, tmp_path):
    from training.datasets import build_dataset, SceneSequences
    from training.config import load_config
    intr = str(shared_data / 'redwood' / 'camera_primesense.json')
    seq = SceneSequences(str(shared_data / 'redwood'), rgb_dir='color', intrinsics=intr,
                         height=48, width=64, frame_offsets=(-1, 1))
    assert len(seq) == 3 and seq.load(0).id == '00001'
    assert seq.load_frame(2, 1).id == '00004'
    assert seq.load(0).intrinsics.fx == 525.0
    two = SceneSequences(str(shared_data / 'redwood'), rgb_dir='color', intrinsics=intr,
                         height=48, width=64, frame_offsets=(-1, 1), frame_step=2)
    assert len(two) == 1 and two.load_frame(0, -1).id == '00000'
    # NYU raw-style: scene folders of RGB frames (no depth needed), Kinect intrinsics.
    for scene in ('bedroom_0001', 'kitchen_0002'):
        (tmp_path / scene / 'rgb').mkdir(parents=True)
        for i in range(4):
            os.symlink(shared_data / 'redwood' / 'color' / f'{i:05d}.jpg',
                       tmp_path / scene / 'rgb' / f'r-{i:04d}.jpg')
    (tmp_path / 'scenes.txt').write_text('kitchen_0002  # one scene\n')
    config = load_config(None, ['task=selfsup', 'data.dataset=sequences',
                                f'data.root={tmp_path}', 'data.height=48', 'data.width=64',
                                'data.train_split=scenes.txt'])
    train = build_dataset(config, 'train', frame_offsets=(-1, 1))
    assert isinstance(train, SceneSequences) and len(train) == 2
    assert train.load(0).id == 'kitchen_0002/r-0001'
    assert train.load(0).intrinsics.fx == pytest.approx(518.8579, rel=1e-4)
    assert train[1]['image+1'].shape == (3, 48, 64)
    config = load_config(None, ['data.dataset=sequences', f'data.root={tmp_path}'])
    assert len(build_dataset(config, 'train', frame_offsets=(-1, 1))) == 4


@pytest.mark.shared_data
def test_kitti_triplets_drop_drive_ends_and_static_frames_and_carry_stereo(shared_data,
                                                                           tmp_path):
    from mono_depth_ros.core import kitti as kitti_io
    from training.datasets import KittiRaw
    src = shared_data / 'kitti' / 'raw_stereo'
    calib = kitti_io.read_kitti_calib(str(src / 'calib' / '000001.txt'))
    date = tmp_path / '2011_09_26'
    drive = date / '2011_09_26_drive_0001_sync'
    left = cv2.imread(str(src / 'image_2' / '0000000001.png'))
    right = cv2.imread(str(src / 'image_3' / '0000000001.png'))
    for sub in ('image_02/data', 'image_03/data'):
        (drive / sub).mkdir(parents=True)
    for frame in range(5):
        # Frames 0-2 are the same picture (the car stands still); 3 and 4 move on.
        shift = max(0, frame - 2) * 25
        for image, sub in ((left, 'image_02'), (right, 'image_03')):
            cv2.imwrite(str(drive / sub / 'data' / f'{frame:010d}.png'),
                        np.roll(image, -shift, axis=1))

    def row(values):
        return ' '.join(f'{v:.12e}' for v in np.asarray(values).reshape(-1))
    (date / 'calib_cam_to_cam.txt').write_text(
        ''.join(f'P_rect_0{i}: {row(calib[f"P{i}"])}\n' for i in range(4)) +
        f'R_rect_00: {row(calib["R0_rect"])}\n')
    (date / 'calib_velo_to_cam.txt').write_text(
        f'R: {row(calib["Tr_velo_to_cam"][:, :3])}\nT: {row(calib["Tr_velo_to_cam"][:, 3])}\n')
    entries = [('2011_09_26/2011_09_26_drive_0001_sync', f, 'l') for f in range(5)]
    size = dict(height=64, width=192, resize=(212, 64))
    data = KittiRaw(str(tmp_path), entries=entries, frame_offsets=(-1, 1), stereo=True,
                    static_threshold=0.01, gt='none', **size)
    assert [e[1] for e in data.entries] == [2, 3]  # 0 and 4 lack a neighbour, 1 is static
    assert data.dropped == {'no_neighbour': 2, 'static': 1}
    assert data.load_frame(0, 1).id.endswith('0000000003_l')
    sample = data[1]
    assert sample['image-1'].shape == sample['image_s'].shape == (3, 64, 192)
    baseline = calib['P2'][0, 3] / calib['P2'][0, 0] - calib['P3'][0, 3] / calib['P3'][0, 0]
    assert float(sample['stereo_tx']) == pytest.approx(-baseline, rel=1e-5)
    assert 0.5 < baseline < 0.6  # KITTI's 54 cm
    right_target = KittiRaw(str(tmp_path), entries=[(entries[2][0], 2, 'r')], stereo=True,
                            gt='none', **size)
    assert float(right_target[0]['stereo_tx']) == pytest.approx(baseline, rel=1e-5)
    flipped = KittiRaw(str(tmp_path), entries=[entries[2]], stereo=True, train=True,
                       gt='none', augment={'hflip': 1.0, 'random_crop': False}, **size)
    assert float(flipped[0]['stereo_tx']) == pytest.approx(baseline, rel=1e-5)


# -- the task in the trainer ------------------------------------------------------------------
def test_short_run_improves_median_scaled_d1_over_the_untrained_network(one_thread, tmp_path):
    """
    A short CPU run through the trainer learns depth from the photometric losses alone.

    The synthetic sequences' exact poses stand in for the pose network here
    (``pose_source: dataset``): from scratch, the pose network needs far more steps than a
    test has before the depth can learn from it (its own fit is tested above). The depth
    network never sees a depth label; held-out rooms are scored median scaled.
    """
    from training.config import load_config
    from training.datasets import build_dataset
    from training.run import build_task, run_training
    from training.trainer import (average_metrics, build_model_from_config, evaluate_batches,
                                  seed_everything)
    config = load_config('training/configs/smoke_selfsup.yaml', [
        'selfsup.pose_source=dataset', 'model.arch=squeezenet_unet',
        'model.args={output: inverse, decoder_channels: [32, 24, 16]}', 'model.min_depth=1.0',
        'data.synthetic.train_size=160', 'data.synthetic.val_size=16', 'train.epochs=1',
        'optim.lr=0.002', 'optim.scheduler=none', 'optim.grad_clip=0', 'train.tensorboard=false',
        'train.progress=false'])
    seed_everything(int(config['seed']))
    untrained = build_model_from_config(config)
    task = build_task(config)
    assert task.pose_net is None and not task.median_scaling  # known poses: metric
    val = torch.utils.data.DataLoader(build_dataset(config, 'val'), batch_size=8)
    rows = []
    for _, _, metrics in evaluate_batches(task, untrained, val, 'cpu', 1.0, 10.0,
                                          median_scaling=True):
        rows += metrics
    before = average_metrics(rows)['d1']
    summary = run_training(config, str(tmp_path), log=lambda _m: None, resume=False)
    rows = []
    from training.networks import load_model
    trained, meta = load_model(summary['last'])
    assert meta.output_mode == 'inverse_depth'  # known poses fix the scale
    for _, _, metrics in evaluate_batches(task, trained, val, 'cpu', 1.0, 10.0,
                                          median_scaling=True):
        rows += metrics
    after = average_metrics(rows)['d1']
    assert after > before + 0.05, f'median-scaled d1 {before:.3f} -> {after:.3f}'


def test_stereo_partner_warps_into_the_target_and_keeps_the_scale(one_thread):
    from mono_depth_ros.core.model_meta import ModelMeta
    from training.networks import build_model
    from training.selfsup import SelfSupervisedTask
    data = SyntheticDataset(4, scene_seed=5, frames_per_room=12, height=64, width=96,
                            supersample=3, stereo=True, stereo_baseline=0.2,
                            frame_offsets=(-1, 1))
    samples = [data[0], data[1]]
    s = samples[1]
    assert float(s['stereo_tx']) == pytest.approx(-0.2)
    depth, k = s['depth'][None], s['K'][None]
    valid = s['mask'][None]

    def error(tx):
        warped, inside = geometry.warp(s['image_s'][None], depth, k,
                                       geometry.stereo_transform(torch.tensor([tx])))
        return float(photometric_error(warped, s['image'][None])[valid & inside].mean())

    identity = float(photometric_error(s['image_s'][None], s['image'][None]).mean())
    assert error(-0.2) < 0.5 * error(0.2)
    assert error(-0.2) < 0.5 * identity
    batch = {key: torch.stack([sample[key] for sample in samples])
             for key in ('image', 'image-1', 'image+1', 'image_s', 'stereo_tx', 'K')}
    net = build_model('resnet18_monodepth', decoder_channels=[8, 16, 32, 64, 128])
    meta = ModelMeta(arch='resnet18_monodepth', input_height=96, input_width=128,
                     output_mode='inverse_depth', output_scale=9.9, output_shift=0.1)
    for mono in (False, True):
        task = SelfSupervisedTask(0.1, 10.0, mono=mono, stereo=True,
                                  pose_net=build_pose_net('posecnn') if mono else None)
        assert task.stereo_pairs and not task.median_scaling and 'image_s' in task.image_keys
        assert set(task.modules()) == ({'pose'} if mono else set())
        loss, logs = task.compute_loss(net, batch)
        assert torch.isfinite(loss) and 0 < logs['automask'] <= 1
        net.zero_grad()
        loss.backward()
        assert float(net.decoder.dispconvs[0].conv.weight.grad.abs().sum()) > 0
        assert task.describe(meta).output_mode == 'inverse_depth'  # the baseline gives metres
    mono_only = SelfSupervisedTask(0.1, 10.0, pose_net=build_pose_net('posecnn'))
    assert mono_only.describe(meta).output_mode == 'relative_inverse_depth'
    # Video alone fixes the depth up to one factor: a scale source fits that factor only.
    assert mono_only.describe(meta).unknown == 'scale'
    linear = ModelMeta(arch='squeezenet_unet', input_height=96, input_width=128)
    assert mono_only.describe(linear).output_mode == 'relative_depth'
    with pytest.raises(ValueError, match='mono, stereo or both'):
        SelfSupervisedTask(0.1, 10.0, mono=False, stereo=False)


@pytest.mark.parametrize('name, size, dataset', [
    ('kitti_monodepth2', (192, 640), 'kitti'), ('nyu_monodepth2', (288, 384), 'sequences'),
    ('smoke_selfsup', (48, 64), 'synthetic')])
def test_selfsup_configs_resolve_to_the_task(name, size, dataset):
    from training.config import load_config
    from training.networks import arch_arg_names
    from training.selfsup import SelfSupervisedTask
    from training.run import build_task
    config = load_config(f'training/configs/{name}.yaml')
    assert config['task'] == 'selfsup' and config['data']['dataset'] == dataset
    assert (config['data']['height'], config['data']['width']) == size
    assert set(config['model']['args']) <= set(arch_arg_names(config['model']['arch']))
    task = build_task(config)
    assert isinstance(task, SelfSupervisedTask) and task.frame_offsets == (-1, 1)
    assert task.median_scaling and task.pose_net is not None
    if name == 'kitti_monodepth2':
        optim = config['optim']
        assert config['data']['batch_size'] == 12 and config['train']['epochs'] == 20
        assert (optim['lr'], optim['step_size'], optim['gamma']) == (1e-4, 15, 0.1)
