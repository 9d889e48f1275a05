"""
depth_node across processes over real DDS: topics, geometry, bad input, parameters.

One node serves every check here; each check that changes a parameter puts it back, and
none relies on what ran before it (the CameraInfo buffer holds whatever earlier checks
sent, so every check sends its own).
"""

from contextlib import contextmanager
import math
import re
import struct
import time

from mono_depth_ros.core.camera import camera_from_info, output_size
from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics, preset
from mono_depth_ros.core.pointcloud import unpack_cloud
from mono_depth_ros.ros import messages as ros_io
import numpy as np
from onnx_models import brightness_model
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from references import backprojected, pinhole_model, read_cloud_xyz
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.2, 11.7, W, H)
# The model was trained at INTR's focal, so INTR's depth is not rescaled and a camera with
# twice the focal length sees everything twice as far.
FOCAL = math.sqrt(INTR.fx * INTR.fy)
FQN = '/depth_main'


def metric(value, factor=1.0):
    """Depth the brightness test model gives for a uniform grey level."""
    return (4.0 * value / 255.0 + 1.0) * factor


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, H, W, focal=FOCAL)
    return str(path)


@pytest.fixture(scope='module')
def node(ros, model, tmp_path_factory):
    """One depth_node for the checks that can share it."""
    proc = Process('depth_node', ['-r', '__node:=depth_main', '-p', f'model_path:={model}',
                                  '-p', 'cloud_decimation:=2', '-p', 'diagnostics_period:=0.2'],
                   str(tmp_path_factory.mktemp('logs')))
    harness = Harness('harness_main')
    harness.subscribe_all()
    try:
        harness.wait_connected()
    except AssertionError:
        raise AssertionError('node did not come up:\n' + proc.output())
    yield proc, harness
    harness.destroy()
    assert proc.stop() == 0, proc.output()


def wait_diag(harness, key, at_least, timeout=10.0):
    harness.wait_for(lambda: harness.diag(FQN).get(key, 0) >= at_least, timeout,
                     f'{key} >= {at_least} (have {harness.diag(FQN).get(key)})')


def clear(harness):
    for topic in harness.received:
        harness.received[topic].clear()


def send_until(harness, topics, rgb, intr, timeout=10.0, **kwargs):
    """Send a frame (again every 0.5 s) until every topic has a message; return the first's."""
    topics = (topics,) if isinstance(topics, str) else tuple(topics)
    for topic in topics:
        harness.received[topic].clear()
    for _ in range(int(timeout / 0.5)):
        harness.send(rgb, intr, **kwargs)
        try:
            harness.wait_for(lambda: all(harness.received[t] for t in topics), 0.5, topics)
        except AssertionError:
            continue
        return harness.received[topics[0]][-1]
    raise AssertionError(f'nothing on {topics} within {timeout} s')


def _set(harness, **values):
    client = harness.node.create_client(SetParameters, f'{FQN}/set_parameters')
    assert client.wait_for_service(timeout_sec=10.0)
    params = []
    for name, value in values.items():
        if isinstance(value, str):
            pv = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        elif isinstance(value, bool):
            pv = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
        elif isinstance(value, int):
            pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
        else:
            pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)
        params.append(Parameter(name=name, value=pv))
    future = client.call_async(SetParameters.Request(parameters=params))
    harness.wait_for(future.done, 10, 'set_parameters')
    harness.node.destroy_client(client)
    return future.result().results


@contextmanager
def configured(harness, restore, **values):
    """Set parameters (in order) for a block, then set ``restore`` (in order) again."""
    try:
        for result in _set(harness, **values):
            assert result.successful, result.reason
        yield
    finally:
        for result in _set(harness, **restore):
            assert result.successful, result.reason


def test_topics_headers_and_point_geometry(node):
    proc, harness = node
    clear(harness)
    stamp = 1_700_000_000_123_456_789
    # Best effort may lose the very first frame while the graph settles: send it again until
    # every output topic has its answer.
    send_until(harness, tuple(harness.received), grey(128), INTR, timeout=20.0,
               stamp_ns=stamp, frame_id='cam_optical')
    depth_msg = harness.received['depth/image'][-1]
    info = harness.received['depth/camera_info'][-1]
    colored = harness.received['depth/colored'][-1]
    cloud_msg = harness.received['points'][-1]
    for msg in (depth_msg, info, colored, cloud_msg):
        assert msg.header.frame_id == 'cam_optical'
        assert msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec == stamp
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ('32FC1', W, H)
    depth = ros_io.depth_from_image(depth_msg)
    assert np.allclose(depth, metric(128), atol=1e-4)
    assert colored.encoding == 'rgb8' and (colored.width, colored.height) == (W, H)
    assert list(info.k) == pytest.approx(list(INTR.K.reshape(-1)))
    assert (info.width, info.height) == (W, H)
    # Organized cloud of the decimated depth, on the rays of depth/camera_info.
    assert (cloud_msg.height, cloud_msg.width) == (H // 2, W // 2)
    assert not cloud_msg.is_dense
    assert [f.name for f in cloud_msg.fields] == ['x', 'y', 'z', 'rgb']
    cam = camera_from_info(info).intrinsics.subsample(2)
    # Read as sensor_msgs_py reads it; every point is image_geometry's back-projection of the
    # published depth pixel on the published CameraInfo.
    xyz = read_cloud_xyz(cloud_msg)
    assert np.allclose(xyz, backprojected(depth, info, 2), rtol=1e-5, atol=1e-6)
    _, rgb = unpack_cloud(ros_io.cloud_from_msg(cloud_msg))
    assert (rgb == 128).all()
    x0 = struct.unpack_from('<f', bytes(cloud_msg.data), 0)[0]
    assert x0 == pytest.approx((0 - cam.cx) / cam.fx * metric(128), rel=1e-5)


def test_rectified_camera_info_p_drives_depth_camera_info_and_the_cloud(node):
    _, harness = node
    header = harness.header(harness.now_ns())
    info = ros_io.camera_info(INTR, header)
    info.k = [45.0, 0.0, 17.0, 0.0, 44.0, 12.5, 0.0, 0.0, 1.0]  # the raw camera: not used
    info.d = [0.2, -0.1, 0.0, 0.0, 0.0]
    harness.received['points'].clear()
    harness.received['depth/camera_info'].clear()
    harness.pub_info.publish(info)
    harness.send_raw(ros_io.rgb_to_image(grey(128), header))
    harness.wait_for(lambda: harness.received['points'] and
                     harness.received['depth/camera_info'], 10, 'cloud')
    out = harness.received['depth/camera_info'][-1]
    assert list(out.k) == pytest.approx(list(INTR.K.reshape(-1)))  # P, not K
    ref, got = pinhole_model(info), pinhole_model(out)  # as image_geometry reads both
    assert (got.fx(), got.fy(), got.cx(), got.cy()) == pytest.approx(
        (ref.fx(), ref.fy(), ref.cx(), ref.cy()))
    # It describes the published image exactly: K = P, no distortion, no binning or ROI.
    assert list(out.p) == pytest.approx([INTR.fx, 0, INTR.cx, 0, 0, INTR.fy, INTR.cy, 0,
                                         0, 0, 1, 0])
    assert not any(out.d) and list(out.r) == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    assert (out.binning_x, out.binning_y) == (0, 0)
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height) == (0, 0, 0, 0)
    xyz = read_cloud_xyz(harness.received['points'][-1])
    # Decimated pixel (1, 1) is pixel (2, 2): its ray follows P.
    assert xyz[1, 1, 0] == pytest.approx((2 - INTR.cx) / INTR.fx * metric(128), rel=1e-5)
    assert xyz[1, 1, 1] == pytest.approx((2 - INTR.cy) / INTR.fy * metric(128), rel=1e-5)


@pytest.mark.parametrize('kind', ['binning', 'roi'])
def test_binning_and_roi_camera_info_through_the_node(node, kind):
    _, harness = node
    # The full camera is 64x48; the 32x24 image is it binned by 2, or a 32x24 ROI of it.
    full = Intrinsics(60.0, 56.0, 31.0, 23.5, 2 * W, 2 * H)
    header = harness.header(harness.now_ns())
    info = ros_io.camera_info(full, header)
    if kind == 'binning':
        info.binning_x = info.binning_y = 2
        factor = 1.0
    else:
        info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 16, 12, W, H
        factor = 2.0
    # image_geometry's reading of the input CameraInfo (binning and ROI applied) is the
    # camera the depth image must have: same size, so the same intrinsics.
    ref = pinhole_model(info)
    expected = Intrinsics(ref.fx(), ref.fy(), ref.cx(), ref.cy(), W, H)
    harness.received['depth/camera_info'].clear()
    harness.received['depth/image'].clear()
    for _ in range(10):
        harness.pub_info.publish(info)
        harness.send_raw(ros_io.rgb_to_image(grey(128), header))
        try:
            harness.wait_for(lambda: harness.received['depth/camera_info'] and
                             harness.received['depth/image'], 1.0, 'outputs')
            break
        except AssertionError:
            header = harness.header(harness.now_ns())
            info.header = header
    out = harness.received['depth/camera_info'][-1]
    assert (out.width, out.height) == (W, H)
    assert list(out.k) == pytest.approx(list(expected.K.reshape(-1)))
    assert (out.binning_x, out.roi.width) == (0, 0)
    got = pinhole_model(out)
    assert (got.fx(), got.fy(), got.cx(), got.cy()) == pytest.approx(
        (ref.fx(), ref.fy(), ref.cx(), ref.cy()))
    depth = ros_io.depth_from_image(harness.received['depth/image'][-1])
    assert np.allclose(depth, metric(128, factor), atol=1e-4)


def test_focal_rescaling_through_the_node(node):
    _, harness = node
    long_lens = Intrinsics(2 * INTR.fx, 2 * INTR.fy, INTR.cx, INTR.cy, W, H)
    msg = send_until(harness, 'depth/image', grey(128), long_lens)
    # sqrt(fx fy / (train_fx train_fy)) = 2 at the model's input size.
    assert np.allclose(ros_io.depth_from_image(msg), metric(128, 2.0), atol=1e-4)


def test_depth_size_ratio_below_one_scales_depth_camera_info_and_cloud(node):
    _, harness = node
    with configured(harness, dict(depth_size_ratio=1.0), depth_size_ratio=0.5):
        clear(harness)
        harness.send(grey(128), INTR)
        harness.wait_for(lambda: harness.received['points'] and
                         harness.received['depth/camera_info'] and harness.received['depth/image'],
                         10, 'outputs at half size')
        depth = ros_io.depth_from_image(harness.received['depth/image'][-1])
        info = harness.received['depth/camera_info'][-1]
        half = INTR.resize(W // 2, H // 2)
        assert depth.shape == (H // 2, W // 2)
        assert np.allclose(depth, metric(128), atol=1e-4)  # the focal factor is unchanged
        assert (info.width, info.height) == (W // 2, H // 2)
        assert list(info.k) == pytest.approx(list(half.K.reshape(-1)))
        cloud = harness.received['points'][-1]
        assert (cloud.width, cloud.height) == (W // 4, H // 4)
        xyz = read_cloud_xyz(cloud)
        assert np.allclose(xyz, backprojected(depth, info, 2), rtol=1e-5, atol=1e-6)
        assert np.allclose(xyz, backproject(depth[::2, ::2].copy(), half.subsample(2)),
                           atol=1e-5)


@pytest.mark.parametrize('mode', ['kinect', 'kitti', 'manual'])
def test_intrinsics_modes(node, mode):
    _, harness = node
    size = (W, H)
    if mode == 'kinect':
        expected, values = preset('kinect_nyu').resize(W, H), dict(intrinsics='kinect')
    elif mode == 'kitti':
        size = (66, 20)  # KITTI's aspect ratio (1242x375)
        expected, values = preset('kitti').resize(*size), dict(intrinsics='kitti')
    else:
        expected = Intrinsics(40.0, 36.0, 16.0, 12.5, W, H)
        values = dict(fx=40.0, fy=36.0, cx=16.0, cy=12.5, intrinsics='manual')
    restore = dict(intrinsics='camera_info', fx=0.0, fy=0.0, cx=0.0, cy=0.0)
    with configured(harness, restore, **values):
        # The CameraInfo sent along (another camera) must be ignored.
        info = send_until(harness, ('depth/camera_info', 'depth/image'),
                          grey(128, size[1], size[0]),
                          Intrinsics(99.0, 99.0, 1.0, 1.0, *size))
        assert (info.width, info.height) == size
        assert list(info.k) == pytest.approx(list(expected.K.reshape(-1)), rel=1e-9)
        depth = ros_io.depth_from_image(harness.received['depth/image'][-1])
        at_input = expected.resize(W, H)  # the model's input size
        factor = math.sqrt(at_input.fx * at_input.fy) / FOCAL
        assert np.allclose(depth, metric(128, factor), atol=1e-4)
        if mode == 'kitti':
            # A preset at another aspect is refused, not stretched.
            before = harness.diag(FQN).get('bad_intrinsics_aspect_mismatch', 0)
            harness.send(grey(128), INTR)
            wait_diag(harness, 'bad_intrinsics_aspect_mismatch', before + 1)


def test_max_rate_hz_limits_processing(node):
    _, harness = node
    with configured(harness, dict(max_rate_hz=0.0), max_rate_hz=2.0):
        harness.send(grey(100), INTR)
        harness.spin(0.6)
        before = harness.diag(FQN)
        start = time.monotonic()
        for _ in range(20):  # 10 Hz for 2 s
            harness.send(grey(100), INTR)
            harness.spin(0.1)
        elapsed = time.monotonic() - start
        harness.spin(0.5)
        after = harness.diag(FQN)
    out = after['frames_out'] - before['frames_out']
    # 2 Hz over the sending time, give or take the diagnostics' own 0.2 s period.
    assert 2 <= out <= 2 * (elapsed + 0.5) + 1, (before, after, elapsed)
    assert after['rate_limited'] - before['rate_limited'] >= 10


def test_points_rgb_and_publish_points_off(node):
    _, harness = node
    with configured(harness, dict(points_rgb=True), points_rgb=False):
        cloud = send_until(harness, 'points', grey(128), INTR)
        assert [f.name for f in cloud.fields] == ['x', 'y', 'z'] and cloud.point_step == 12
    with configured(harness, dict(publish_points=True), publish_points=False):
        harness.send(grey(128), INTR)
        harness.spin(0.5)
        clear(harness)
        before = harness.diag(FQN)['points_computed']
        send_until(harness, 'depth/image', grey(128), INTR)
        harness.spin(0.5)
        assert harness.received['points'] == []
        assert harness.diag(FQN)['points_computed'] == before


def test_frame_id_override(node):
    _, harness = node
    with configured(harness, dict(frame_id=''), frame_id='override_optical'):
        clear(harness)
        harness.send(grey(128), INTR, frame_id='camera_optical')
        harness.wait_for(lambda: all(harness.received[t] for t in harness.received), 10,
                         'every output topic')
        for topic, messages in harness.received.items():
            assert messages[-1].header.frame_id == 'override_optical', topic


@pytest.mark.parametrize('case, kind', [
    ('truncated', 'bad_truncated'),
    ('bad_step', 'bad_step'),
    ('unsupported', 'bad_unsupported_encoding'),
    ('long_encoding', 'bad_unsupported_encoding'),
    ('zero_size', 'bad_zero_size'),
    ('odd_yuv', 'bad_odd_width'),
    ('zero_focal', 'bad_camera_info'),
    ('tiny_focal', 'bad_camera_info'),
    ('huge_focal', 'bad_camera_info'),
    ('info_size', 'bad_camera_info_size_mismatch'),
])
def test_bad_input_is_counted_and_the_node_carries_on(node, case, kind):
    proc, harness = node
    before = harness.diag(FQN)
    header = harness.header(harness.now_ns())
    good = ros_io.rgb_to_image(grey(60), header)
    msg = Image(header=header, height=H, width=W, encoding='rgb8', step=3 * W)
    msg.data = bytes(good.data)
    if case == 'truncated':
        msg.data = bytes(good.data)[:-10]
    elif case == 'bad_step':
        msg.step = W
    elif case == 'unsupported':
        msg.encoding = 'bayer_rggb8'
    elif case == 'long_encoding':
        msg.encoding = 'q' * 10_000
    elif case == 'zero_size':
        msg.width, msg.height, msg.data = 0, 0, b''
    elif case == 'odd_yuv':
        msg.encoding, msg.width, msg.step = 'yuv422', W - 1, 2 * (W - 1)
    info = ros_io.camera_info(INTR, header)
    if case.endswith('focal') or case == 'info_size':
        if case == 'info_size':
            info.width, info.height = 2 * W, 2 * H
        else:
            f = {'zero_focal': 0.0, 'tiny_focal': 1e-30, 'huge_focal': 1e30}[case]
            info.k = [f, 0.0, 15.0, 0.0, f, 11.0, 0.0, 0.0, 1.0]
            info.p = [f, 0.0, 15.0, 0.0, 0.0, f, 11.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        msg = good
    harness.received['depth/image'].clear()
    harness.pub_info.publish(info)
    harness.spin(0.1)
    harness.send_raw(msg)
    wait_diag(harness, kind, before.get(kind, 0) + 1)
    harness.spin(0.2)
    assert harness.received['depth/image'] == [] and proc.alive()
    out = proc.output()
    # The warning names the counter that exists, and input text is cut short.
    assert f'counted as {kind})' in out
    assert 'q' * 400 not in out
    # The next good frame is processed normally.
    out_before = harness.diag(FQN)['frames_out']
    msg = send_until(harness, 'depth/image', grey(200), INTR)
    assert np.allclose(ros_io.depth_from_image(msg), metric(200), atol=1e-4)
    wait_diag(harness, 'frames_out', out_before + 1)


def test_resolution_changing_stream_pairs_camera_info_by_stamp(node):
    proc, harness = node
    big = Intrinsics(60.0, 56.0, 30.9, 23.9, 2 * W, 2 * H)
    send_until(harness, 'depth/image', grey(90, 2 * H, 2 * W), big)
    before = harness.diag(FQN)
    logged = len(re.findall('input resolution changed', proc.output()))
    clear(harness)
    for n in range(24):  # the size changes with every frame for 2.4 s
        if n % 2:
            harness.send(grey(90, 2 * H, 2 * W), big)
        else:
            harness.send(grey(90), INTR)
        harness.spin(0.1)
    harness.spin(0.5)
    after = harness.diag(FQN)
    key = 'bad_camera_info_size_mismatch'
    assert after[key] == before[key], "an image was paired with another size's CameraInfo"
    assert after['frames_out'] - before['frames_out'] >= 8
    infos = harness.received['depth/camera_info']
    for size, intr in (((2 * W, 2 * H), big), ((W, H), INTR)):
        mine = [m for m in infos if (m.width, m.height) == size]
        assert mine and list(mine[-1].k) == pytest.approx(list(intr.K.reshape(-1)))
    # Throttled: at most one line per 2 s, not one per frame.
    assert len(re.findall('input resolution changed', proc.output())) - logged <= 3


def test_camera_info_with_other_stamps_falls_back_to_the_newest_once_told(node):
    proc, harness = node
    before = harness.diag(FQN).get('camera_info_unpaired', 0)
    static = ros_io.camera_info(INTR, harness.header(0))  # a static CameraInfo, stamp 0
    harness.received['depth/image'].clear()
    for _ in range(6):
        harness.pub_info.publish(static)
        harness.send(grey(128), info=False)
        harness.spin(0.2)
    harness.wait_for(lambda: harness.received['depth/image'], 10, 'depth')
    assert np.allclose(ros_io.depth_from_image(harness.received['depth/image'][-1]), metric(128),
                       atol=1e-4)
    wait_diag(harness, 'camera_info_unpaired', before + 3)
    assert proc.output().count('CameraInfo stamps do not match the image stamps') == 1


def test_large_images_are_capped_with_a_warning_giving_the_sizes(node):
    proc, harness = node
    w, h = 3840, 2160
    big = Intrinsics(3000.0, 3000.0, 1919.5, 1079.5, w, h)
    mono = np.full((h, w, 3), 128, np.uint8)
    info = send_until(harness, 'depth/camera_info', mono, big, encoding='mono8', timeout=20)
    out_w, out_h, capped = output_size(w, h, 1.0, 1280 * 960)
    assert capped and (info.width, info.height) == (out_w, out_h)
    assert out_w * out_h <= 1280 * 960
    assert list(info.k) == pytest.approx(list(big.resize(out_w, out_h).K.reshape(-1)))
    text = proc.output()
    assert f'input {w}x{h}' in text and f'publishing {out_w}x{out_h}' in text
    assert 'max_output_pixels' in text
    # Uncapped, the 33 MB depth image is published with a loud warning giving its size.
    with configured(harness, dict(max_output_pixels=1280 * 960), max_output_pixels=0):
        harness.send(mono, big, encoding='mono8')
        harness.wait_for(lambda: 'depth image 3840x2160 is 31.6 MiB' in proc.output(), 20,
                         'the warning')


def test_bad_parameters_are_rejected_with_a_reason(node):
    _, harness = node
    # set_parameters applies one parameter at a time: 5 < 10 (the model's max) is fine,
    # then max_depth 2 < min_depth 5 is rejected with a reason.
    first, second = _set(harness, min_depth=5.0, max_depth=2.0)
    assert first.successful
    assert not second.successful and 'min_depth' in second.reason
    [result] = _set(harness, min_depth=0.0)
    assert result.successful
    [result] = _set(harness, min_depth=-1.0)
    assert not result.successful
    [result] = _set(harness, intrinsics='fisheye')
    assert not result.successful and 'intrinsics' in result.reason
    [result] = _set(harness, intrinsics='manual')
    assert not result.successful and 'fx' in result.reason
    [result] = _set(harness, fx=500.0, fy=500.0, intrinsics='manual')[-1:]
    assert not result.successful and 'cx, cy' in result.reason
    [result] = _set(harness, resize_mode='squash')
    assert not result.successful and 'resize_mode' in result.reason
    [result] = _set(harness, model_path='/tmp/other.onnx')
    assert not result.successful  # read-only: needs a restart
    # A good value is accepted and takes effect: the range now cuts the grey-128 depth.
    with configured(harness, dict(max_depth=0.0, fx=0.0, fy=0.0), max_depth=2.5):
        msg = send_until(harness, 'depth/image', grey(128), INTR)
        assert np.isnan(ros_io.depth_from_image(msg)).all()


def test_missing_and_corrupt_model_and_bad_overrides_exit_cleanly(ros, tmp_path, model):
    bad = tmp_path / 'corrupt.onnx'
    bad.write_bytes(b'this is not a protobuf')
    cases = [(['-p', f'model_path:={tmp_path / "missing.onnx"}'], 'not found'),
             (['-p', f'model_path:={bad}'], 'cannot load'),
             (['-p', f'model_path:={model}', '-p', 'cloud_decimation:=99'], 'cloud_decimation'),
             (['-p', f'model_path:={model}', '-p', 'intrinsics:=manual', '-p', 'fx:=500.0',
               '-p', 'fy:=500.0'], 'cx, cy'),
             (['-p', f'model_path:={model}', '-p', 'min_depth:=20.0'], 'min_depth')]
    for n, (args, words) in enumerate(cases):
        proc = Process('depth_node', args, str(tmp_path), tag=str(n))
        code = proc.popen.wait(30)
        out = proc.output()
        assert code == 1, out
        assert words in out and 'Traceback' not in out and len(out.splitlines()) <= 3, out
