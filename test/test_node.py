"""depth_node across processes over real DDS: topics, geometry, bad input, parameters."""

import struct

from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.pointcloud import unpack_cloud
from mono_depth_ros.ros import messages as ros_io
import numpy as np
from onnx_models import brightness_model
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.2, 11.7, W, H)


def metric(value):
    """Depth the brightness test model gives for a uniform grey level."""
    return 4.0 * value / 255.0 + 1.0


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, H, W)
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


def wait_diag(harness, fqn, key, at_least, timeout=10.0):
    harness.wait_for(lambda: harness.diag(fqn).get(key, 0) >= at_least, timeout,
                     f'{key} >= {at_least} (have {harness.diag(fqn).get(key)})')


def test_no_camera_info_yet_warns_and_publishes_nothing(node):
    proc, harness = node
    harness.send(grey(100), info=False)
    wait_diag(harness, '/depth_main', 'bad_no_camera_info', 1)
    assert harness.received['depth'] == []
    assert 'no CameraInfo received yet' in proc.output()


def test_topics_headers_and_point_geometry(node):
    proc, harness = node
    for topic in harness.received:
        harness.received[topic].clear()
    stamp = 1_700_000_000_123_456_789
    harness.send(grey(128), INTR, stamp_ns=stamp, frame_id='cam_optical')
    harness.wait_for(lambda: all(harness.received[t] for t in harness.received), 15,
                     'every output topic')
    depth_msg = harness.received['depth'][-1]
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
    cam = Intrinsics.from_camera_info(info).subsample(2)
    xyz, rgb = unpack_cloud(ros_io.cloud_from_msg(cloud_msg))
    expected = backproject(depth[::2, ::2].copy(), cam)
    assert np.allclose(xyz, expected, atol=1e-5)
    assert (rgb == 128).all()
    x0 = struct.unpack_from('<f', bytes(cloud_msg.data), 0)[0]
    assert x0 == pytest.approx((0 - cam.cx) / cam.fx * metric(128), rel=1e-5)


@pytest.mark.parametrize('case, kind', [
    ('truncated', 'bad_truncated'),
    ('bad_step', 'bad_step'),
    ('unsupported', 'bad_unsupported_encoding'),
    ('zero_size', 'bad_zero_size'),
    ('odd_yuv', 'bad_odd_width'),
    ('zero_focal', 'bad_camera_info'),
    ('info_size', 'bad_camera_info_size_mismatch'),
])
def test_bad_input_is_counted_and_the_node_carries_on(node, case, kind):
    proc, harness = node
    before = harness.diag('/depth_main')
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
    elif case == 'zero_size':
        msg.width, msg.height, msg.data = 0, 0, b''
    elif case == 'odd_yuv':
        msg.encoding, msg.width, msg.step = 'yuv422', W - 1, 2 * (W - 1)
    if case in ('zero_focal', 'info_size'):
        info = ros_io.camera_info(INTR, header)
        if case == 'zero_focal':
            info.k = [0.0, 0.0, 15.0, 0.0, 0.0, 11.0, 0.0, 0.0, 1.0]
            info.p = [0.0, 0.0, 15.0, 0.0, 0.0, 0.0, 11.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        else:
            info.width, info.height = 2 * W, 2 * H
        harness.pub_info.publish(info)
        harness.spin(0.2)
        harness.send_raw(good)
    else:
        harness.pub_info.publish(ros_io.camera_info(INTR, header))
        harness.spin(0.1)
        harness.send_raw(msg)
    wait_diag(harness, '/depth_main', kind, before.get(kind, 0) + 1)
    assert proc.alive()
    # The next good frame is processed normally.
    out_before = harness.diag('/depth_main')['frames_out']
    harness.received['depth'].clear()
    harness.send(grey(200), INTR)
    harness.wait_for(lambda: harness.received['depth'], 10, 'a depth image after bad input')
    assert np.allclose(ros_io.depth_from_image(harness.received['depth'][-1]), metric(200),
                       atol=1e-4)
    wait_diag(harness, '/depth_main', 'frames_out', out_before + 1)


def test_resolution_change_mid_stream_adapts(node):
    proc, harness = node
    harness.received['depth'].clear()
    big = Intrinsics(60.0, 56.0, 30.9, 23.9, 2 * W, 2 * H)
    harness.send(grey(90, 2 * H, 2 * W), big)
    harness.wait_for(lambda: any(m.width == 2 * W for m in harness.received['depth']) and any(
        m.width == 2 * W for m in harness.received['depth/camera_info']), 10,
        'depth at the new size')
    info = [m for m in harness.received['depth/camera_info'] if m.width == 2 * W][-1]
    assert (info.width, info.height) == (2 * W, 2 * H)
    assert list(info.k) == pytest.approx(list(big.K.reshape(-1)))
    harness.send(grey(90), INTR)
    harness.wait_for(lambda: harness.received['depth'][-1].width == W, 10, 'back to the size')
    assert 'input resolution changed' in proc.output()


def _set(harness, fqn, **values):
    client = harness.node.create_client(SetParameters, f'{fqn}/set_parameters')
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


def test_bad_parameters_are_rejected_with_a_reason(node):
    _, harness = node
    # set_parameters applies one parameter at a time: 5 < 10 (the model's max) is fine,
    # then max_depth 2 < min_depth 5 is rejected with a reason.
    first, second = _set(harness, '/depth_main', min_depth=5.0, max_depth=2.0)
    assert first.successful
    assert not second.successful and 'min_depth' in second.reason
    [result] = _set(harness, '/depth_main', min_depth=0.0)
    assert result.successful
    [result] = _set(harness, '/depth_main', min_depth=-1.0)
    assert not result.successful
    [result] = _set(harness, '/depth_main', intrinsics='fisheye')
    assert not result.successful and 'intrinsics' in result.reason
    [result] = _set(harness, '/depth_main', intrinsics='manual')
    assert not result.successful and 'fx' in result.reason
    [result] = _set(harness, '/depth_main', model_path='/tmp/other.onnx')
    assert not result.successful  # read-only: needs a restart
    # A good value is accepted and takes effect: the range now cuts the grey-128 depth.
    [result] = _set(harness, '/depth_main', max_depth=2.5)
    assert result.successful
    harness.received['depth'].clear()
    harness.send(grey(128), INTR)
    harness.wait_for(lambda: harness.received['depth'], 10, 'depth after the change')
    assert np.isnan(ros_io.depth_from_image(harness.received['depth'][-1])).all()
    [result] = _set(harness, '/depth_main', max_depth=0.0)
    assert result.successful


def test_missing_and_corrupt_model_exit_cleanly(ros, tmp_path):
    bad = tmp_path / 'corrupt.onnx'
    bad.write_bytes(b'this is not a protobuf')
    for path, words in ((tmp_path / 'missing.onnx', 'not found'), (bad, 'cannot load')):
        proc = Process('depth_node', ['-p', f'model_path:={path}'], str(tmp_path),
                       tag=path.stem)
        code = proc.popen.wait(30)
        out = proc.output()
        assert code == 1, out
        assert words in out and 'Traceback' not in out
