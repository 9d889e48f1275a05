"""The rosbag2 training source: pairing, pose interpolation, triplets and bad bags."""

import math

import numpy as np
import pytest
from training import rosbag_export as bagtool


T0 = 1_700_000_000 * 10 ** 9
W, H = 64, 48
K = np.array([[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]])
CAMERA = 'cam_optical'


def _rot_z(deg):
    a = math.radians(deg)
    out = np.eye(4)
    out[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return out


def _translation(x, y=0.0, z=0.0):
    out = np.eye(4)
    out[:3, 3] = (x, y, z)
    return out


def _texture(seed):
    """Return a smooth random texture (JPEG keeps it to a few grey levels)."""
    import cv2
    coarse = np.random.default_rng(seed).integers(0, 255, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (W, H), interpolation=cv2.INTER_CUBIC)


def write_bag(path, image_ns, pose_at=None, pose_ns=None, info_ns=None, k_at=None,
              compressed=False, jpeg_at=None, odometry=False, tf=True, storage='mcap',
              extra=None):
    """
    Write a small bag and return its path.

    Images at image_ns, camera_info at info_ns (default: the same), odom -> base poses
    pose_at(ns) at pose_ns (default image_ns), base -> camera static.
    """
    from rosbags.rosbag2 import StoragePlugin
    pose_at = pose_at or (lambda ns: _translation(0.1 * (ns - T0) / 1e8))
    pose_ns = image_ns if pose_ns is None else pose_ns
    info_ns = image_ns if info_ns is None else info_ns
    bag = bagtool.BagWriter(str(path))
    if storage == 'sqlite3':
        from rosbags.rosbag2 import Writer
        bag.writer = Writer(str(path), version=8, storage_plugin=StoragePlugin.SQLITE3)
    with bag:
        ts = bag.ts
        if tf:
            bag.write('/tf_static', T0, ts.types['tf2_msgs/msg/TFMessage'](transforms=[
                bagtool.transform_stamped(ts, T0, 'base_link', CAMERA, np.eye(4))]))
        for ns in pose_ns:
            if tf:
                bag.write('/tf', ns, ts.types['tf2_msgs/msg/TFMessage'](transforms=[
                    bagtool.transform_stamped(ts, ns, 'odom', 'base_link', pose_at(ns))]))
            if odometry:
                bag.write('/odom', ns, bagtool.odometry(ts, ns, pose_at(ns)))
        for ns in info_ns:
            k = K if k_at is None else k_at(ns)
            bag.write('/camera/camera_info', ns, bagtool.camera_info(ts, ns, CAMERA, k, W, H))
        for i, ns in enumerate(image_ns):
            rgb = _texture(i)
            if compressed:
                import cv2
                data = cv2.imencode('.jpg', rgb[..., ::-1])[1].tobytes()
                if jpeg_at is not None:
                    data = jpeg_at(i, data)
                bag.write('/camera/image_raw/compressed', ns,
                          bagtool.compressed_image(ts, ns, CAMERA, data))
            else:
                bag.write('/camera/image_raw', ns, bagtool.raw_image(ts, ns, CAMERA, rgb, 'rgb8'))
        for topic, ns, msg in extra or ():
            bag.write(topic, ns, msg)
    return str(path)


def stamps(n, period_s=0.1, start=T0):
    return [start + int(i * period_s * 1e9) for i in range(n)]


def read(path, **kwargs):
    from training.datasets.rosbag import read_bag
    kwargs.setdefault('size', (W, H))
    return read_bag(path, **kwargs)


def test_images_pair_with_the_camera_info_of_their_stamp(tmp_path):
    images = stamps(8)
    # camera_info 3 ms after each image, two different cameras alternating, none for #5
    info = [ns + 3_000_000 for i, ns in enumerate(images) if i != 5]

    def k_at(ns):
        k = K.copy()
        k[0, 0] = 60.0 if ((ns - T0) // 10 ** 8) % 2 == 0 else 70.0
        return k
    bag = write_bag(tmp_path / 'b', images, info_ns=info, k_at=k_at)
    frames = read(bag, size=(32, 24))
    assert frames.skips['no_camera_info'] == 1
    assert len(frames.stamps) == 7 and images[5] not in frames.stamps
    for stamp, camera in zip(frames.stamps, frames.intrinsics):
        i = images.index(stamp)
        assert camera.width == 32 and camera.height == 24
        assert camera.fx == pytest.approx((60.0 if i % 2 == 0 else 70.0) / 2)
    assert frames.images[0].shape == (24, 32, 3)


def test_pose_is_interpolated_to_the_image_stamp_with_slerp(tmp_path):
    # Two odom -> base samples 1 s apart: 0 -> 90 degrees about z, x 0 -> 1 m. An image a
    # quarter of the way gets 22.5 degrees (a normalised linear blend would give 21.6).
    pose_ns = [T0, T0 + 10 ** 9]
    bag = write_bag(tmp_path / 'b', [T0 + 250_000_000],
                    pose_at=lambda ns: _translation(1.0) @ _rot_z(90) if ns > T0 else np.eye(4),
                    pose_ns=pose_ns)
    frames = read(bag, max_pose_gap=2.0)
    pose = frames.poses[0]
    angle = math.degrees(math.atan2(pose[1, 0], pose[0, 0]))
    assert angle == pytest.approx(22.5, abs=1e-6)
    assert pose[:3, 3] == pytest.approx([0.25, 0.0, 0.0], abs=1e-9)


def test_slerp_takes_the_short_way_and_is_exact_at_the_ends():
    from training.datasets.rosbag import quat_to_matrix, slerp
    q0 = np.array([0.0, 0.0, 0.0, 1.0])
    q1 = -np.array([0.0, 0.0, math.sin(math.radians(30)), math.cos(math.radians(30))])
    mid = quat_to_matrix(slerp(q0, q1, 0.5))
    assert math.degrees(math.atan2(mid[1, 0], mid[0, 0])) == pytest.approx(30.0)
    assert slerp(q0, q1, 1.0) == pytest.approx(-q1)


def test_images_outside_or_between_distant_pose_samples_are_skipped_and_counted(tmp_path):
    images = stamps(10)
    # poses only from 0.2 s to 0.5 s and from 0.8 s on (a 0.3 s hole at 0.5-0.8 s)
    pose_ns = [ns for ns in stamps(20, 0.05) if T0 + 2e8 <= ns <= T0 + 5e8 or ns >= T0 + 8e8]
    bag = write_bag(tmp_path / 'b', images, pose_ns=pose_ns)
    frames = read(bag, max_pose_gap=0.2)
    kept = [images.index(s) for s in frames.stamps]
    assert kept == [2, 3, 4, 5, 8, 9]
    assert frames.skips['no_transform'] == 4


def test_a_bag_without_the_topics_names_what_it_has(tmp_path):
    from training.datasets.rosbag import BagError
    bag = write_bag(tmp_path / 'b', stamps(3))
    with pytest.raises(BagError, match=r'lacks /cam/info.*it has: .*/camera/camera_info'):
        read(bag, camera_info_topic='/cam/info')
    no_tf = write_bag(tmp_path / 'c', stamps(3), tf=False)
    with pytest.raises(BagError, match='lacks /tf'):
        read(no_tf)
    with pytest.raises(BagError, match='not found'):
        read(str(tmp_path / 'missing'))
    with pytest.raises(BagError, match='/tf carries tf2_msgs/msg/TFMessage, not nav_msgs'):
        read(bag, pose_source='odometry', odometry_topic='/tf')


def test_a_frame_tf_cannot_reach_is_an_error_naming_the_frames(tmp_path):
    from training.datasets.rosbag import BagError
    bag = write_bag(tmp_path / 'b', stamps(3))
    with pytest.raises(BagError, match=r"'map'.*'cam_optical'.*base_link, cam_optical, odom"):
        read(bag, target_frame='map')


def test_unsorted_image_stamps_are_skipped_and_counted(tmp_path):
    images = stamps(6)
    order = images[:3] + [images[1]] + images[3:]  # a stamp jumps back in recording order
    pose_ns = stamps(6)
    bag = write_bag(tmp_path / 'b', order, pose_ns=pose_ns, info_ns=images)
    frames = read(bag)
    assert frames.skips['stamp_not_increasing'] == 1
    assert frames.stamps == images


def test_compressed_images_are_found_and_broken_ones_counted(tmp_path):
    from training.datasets.rosbag import BagError
    broken = {2, 4}

    def cut(i, data):
        return data[:len(data) // 2] if i in broken else data
    bag = write_bag(tmp_path / 'b', stamps(6), compressed=True, jpeg_at=cut)
    frames = read(bag)  # asked for /camera/image_raw, found its /compressed
    assert frames.image_topic == '/camera/image_raw/compressed'
    assert frames.skips['undecodable'] == 2 and len(frames.stamps) == 4
    assert np.abs(frames.images[0].astype(int) - _texture(0)).mean() < 8  # JPEG of it
    garbage = write_bag(tmp_path / 'c', stamps(3), compressed=True,
                        jpeg_at=lambda i, d: b'\xff\xd8 not a jpeg \xff\xd9')
    with pytest.raises(BagError, match='no usable image.*undecodable: 3'):
        read(garbage)


def test_odometry_with_an_extrinsic_gives_the_tf_poses(tmp_path):
    def pose_at(ns):
        s = (ns - T0) / 1e9
        return _translation(s, 0.5 * s) @ _rot_z(20 * s)
    bag = write_bag(tmp_path / 'b', stamps(5), pose_at=pose_at, pose_ns=stamps(12, 0.05),
                    odometry=True)
    by_tf = read(bag)
    by_odom = read(bag, pose_source='odometry', camera_extrinsic=[0, 0, 0, 0, 0, 0, 1])
    assert by_odom.stamps == by_tf.stamps
    for a, b in zip(by_odom.poses, by_tf.poses):
        np.testing.assert_allclose(a, b, atol=1e-9)
    mounted = read(bag, pose_source='odometry',
                   camera_extrinsic=[0.1, 0, 0.3, 0.5, -0.5, 0.5, -0.5])
    expected = by_tf.poses[2] @ np.array([[0, 0, 1, 0.1], [-1, 0, 0, 0], [0, -1, 0, 0.3],
                                          [0, 0, 0, 1.0]])
    np.testing.assert_allclose(mounted.poses[2], expected, atol=1e-9)


def test_sqlite3_bags_are_read_too(tmp_path):
    bag = write_bag(tmp_path / 'b', stamps(4), storage='sqlite3')
    frames = read(bag)
    assert len(frames.stamps) == 4


def test_triplets_need_baseline_and_skip_static_stretches_by_pose(tmp_path):
    from training.datasets.rosbag import RosbagDataset

    # 3 cm per frame, but frames 8-15 stand still (their images still change: new noise)
    def x_of(i):
        return 0.03 * min(i, 8) + 0.03 * max(0, i - 15)
    images = stamps(30)
    bag = write_bag(tmp_path / 'b', images,
                    pose_at=lambda ns: _translation(x_of(round((ns - T0) / 1e8))))
    ds = RosbagDataset(bag, split='all', height=H, width=W, frame_offsets=(-1, 1),
                       min_baseline=0.05, max_span=0.5, val_fraction=0.0)
    for prev, target, nxt in ds.triplets:
        for source in (prev, nxt):
            baseline = abs(x_of(source) - x_of(target))
            assert 0.05 <= baseline <= 0.5
        assert prev < target < nxt
    targets = [t for _p, t, _n in ds.triplets]
    # Within the still stretch a target has no neighbour 5 cm away within 0.5 s.
    assert not set(range(10, 14)) & set(targets)
    assert ds.skips['static'] >= 4
    sample = ds[0]
    assert set(sample) >= {'image', 'image-1', 'image+1', 'pose', 'pose-1', 'pose+1', 'K'}


def test_the_validation_end_of_the_recording_is_never_a_training_source(tmp_path):
    from training.datasets.rosbag import RosbagDataset
    bag = write_bag(tmp_path / 'b', stamps(40))
    kw = dict(height=H, width=W, frame_offsets=(-1, 1), min_baseline=0.05, val_fraction=0.25)
    train = RosbagDataset(bag, split='train', **kw)
    val = RosbagDataset(bag, split='val', **kw)
    assert max(max(t) for t in train.triplets) < 30
    assert min(min(t) for t in val.triplets) >= 30
    assert len(train) and len(val)


def test_images_are_cut_as_the_node_will_cut_them_for_the_model(tmp_path):
    from types import SimpleNamespace

    from mono_depth_ros.core.frame import FrameProcessor
    from mono_depth_ros.core.model_meta import ModelMeta
    from training.datasets.rosbag import fit_box
    # The box the node's frame pipeline cuts, for cameras of several aspects and a model fed
    # 4:3 pictures squeezed to 224x224, 91.2 % of them (FastDepth), or whole ones.
    for mode, aspect, fraction in (('crop', 4 / 3, 0.912), ('crop', 0.0, 1.0),
                                   ('stretch', 0.0, 1.0), ('stretch', 0.0, 0.8)):
        meta = ModelMeta(arch='fastdepth', input_height=224, input_width=224, resize_mode=mode,
                         fit_aspect=aspect, crop_fraction=fraction)
        for size in ((1280, 720), (640, 480), (480, 640), (101, 77)):
            plan = FrameProcessor._make_plan(SimpleNamespace(meta=meta), *size, mode, size)
            assert fit_box(*size, mode, aspect, fraction, 1.0) == plan.box, (mode, size)
    bag = write_bag(tmp_path / 'b', stamps(3))
    whole = read(bag, size=(32, 32))
    cut = read(bag, size=(32, 32), resize_mode='crop', fit_aspect=4 / 3, crop_fraction=0.5)
    # The centred 32x24 box of the 64x48 image, squeezed to 32x32: K follows the cut.
    box = cut.intrinsics[0]
    assert (box.width, box.height) == (32, 32)
    assert box.fx == pytest.approx(K[0, 0] * 32 / 32) and box.fy == pytest.approx(60 * 32 / 24)
    assert box.cx == pytest.approx((32 - 16 + 0.5) * 1.0 - 0.5)
    assert whole.intrinsics[0].fx == pytest.approx(60 * 32 / 64)
    import cv2
    expected = cv2.resize(_texture(0)[12:36, 16:48], (32, 32), interpolation=cv2.INTER_LINEAR)
    assert np.abs(cut.images[0].astype(int) - expected).max() <= 1


def test_distorted_images_are_rectified_as_image_proc_does(tmp_path):
    import cv2
    from training.datasets.rosbag import BagError
    d = np.array([-0.3, 0.1, 0.001, -0.002, 0.0])
    p_new = K.copy()
    p_new[0, 0] = p_new[1, 1] = 50.0  # image_proc's rectified camera: P, not K

    def write(path, model):
        bag = bagtool.BagWriter(str(path))
        with bag:
            ts = bag.ts
            bag.write('/tf_static', T0, ts.types['tf2_msgs/msg/TFMessage'](transforms=[
                bagtool.transform_stamped(ts, T0, 'odom', CAMERA, np.eye(4))]))
            info = bagtool.camera_info(ts, T0, CAMERA, K, W, H)
            info.distortion_model = model
            info.d = d
            info.p = np.hstack([p_new, np.zeros((3, 1))]).reshape(-1)
            bag.write('/camera/camera_info', T0, info)
            bag.write('/camera/image_raw', T0, bagtool.raw_image(ts, T0, CAMERA, _texture(0),
                                                                 'rgb8'))
        return str(path)
    frames = read(write(tmp_path / 'b', 'plumb_bob'))
    map_x, map_y = cv2.initUndistortRectifyMap(K, d, np.eye(3), p_new, (W, H), cv2.CV_32FC1)
    expected = cv2.remap(_texture(0), map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(frames.images[0].astype(int) - expected).max() <= 1
    assert np.abs(frames.images[0].astype(int) - _texture(0)).mean() > 2  # it did change
    assert frames.intrinsics[0].fx == pytest.approx(50.0)
    with pytest.raises(BagError, match="distortion model 'kannala' with D != 0"):
        read(write(tmp_path / 'c', 'kannala'))
