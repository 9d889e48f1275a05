"""
A relative model through the running depth_node: no metres without a scale source.

The model is a real ONNX graph (the channel mean of the image, laid out (1, 1, H, W)) made
relative by import_model: its output is affine-invariant inverse depth. Without a scale
source the node publishes depth/relative only; with one (fixed, or sparse_depth samples
sent on the topic) it publishes the depth and points those give.
"""

import math

from diagnostic_msgs.msg import DiagnosticArray
from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros import params as node_params
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from references import read_cloud_xyz
from ros_harness import Harness, Process
from sensor_msgs.msg import Image, Range
from test_import_model import relative_mean_model

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.2, 11.7, W, H)
A, B = 0.5, 0.1  # the metric map of the model: 1 / depth = A * y + B, y = mean(RGB) / 255


def ramp():
    """Return an image whose brightness rises from left to right (y from 0.2 to 0.9)."""
    row = np.linspace(0.2 * 255, 0.9 * 255, W)
    return np.repeat(np.repeat(row[None, :, None], H, axis=0), 3, axis=2).round().astype(
        np.uint8)


def true_depth(rgb):
    return 1.0 / (A * rgb.astype(np.float64).mean(axis=2) / 255.0 + B)


@pytest.fixture(scope='module')
def relative_model(tmp_path_factory):
    return relative_mean_model(tmp_path_factory.mktemp('relative'), H, W)


class Recorder(Harness):
    """The test harness, plus depth/relative and the diagnostics levels and messages."""

    def __init__(self, name):
        super().__init__(name)
        self.subscribe_all()
        self.subscribe('depth/relative', Image)
        self.levels = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_levels, 50)
        self.pub_sparse = self.node.create_publisher(Image, 'sparse_depth',
                                                     qos_profile_sensor_data)

    def _on_levels(self, msg):
        for status in msg.status:
            self.levels[status.name] = (status.level[0] if isinstance(status.level, bytes)
                                        else int(status.level), status.message)


def start(tmp_path, model, name, *params):
    args = ['-r', f'__node:={name}', '-p', f'model_path:={model}', '-p',
            'cloud_decimation:=1', '-p', 'diagnostics_period:=0.2']
    for p in params:
        args += ['-p', p]
    proc = Process('depth_node', args, str(tmp_path), tag=name)
    harness = Recorder(f'harness_{name}')
    try:
        harness.wait_connected()
    except AssertionError:
        raise AssertionError('node did not come up:\n' + proc.output())
    return proc, harness


def send_frames(harness, rgb, topic, n_wanted=2, timeout=15.0, before_send=None):
    harness.received[topic].clear()
    for _ in range(int(timeout / 0.25)):
        stamp = harness.now_ns()
        if before_send:
            before_send(stamp)
        harness.send(rgb, INTR, stamp_ns=stamp)
        harness.spin(0.25)
        if len(harness.received[topic]) >= n_wanted:
            return harness.received[topic][-1]
    raise AssertionError(f'fewer than {n_wanted} messages on {topic} within {timeout} s')


def test_relative_model_without_scale_source_publishes_no_metres(ros, relative_model, tmp_path):
    proc, harness = start(tmp_path, relative_model, 'rel_none')
    try:
        rgb = ramp()
        msg = send_frames(harness, rgb, 'depth/relative', n_wanted=3)
        assert msg.encoding == '32FC1'
        relative = ros_io.depth_from_image(msg)
        # depth-like order: 1 / y, larger = farther (the darker left side)
        y = rgb.astype(np.float64).mean(axis=2) / 255.0
        np.testing.assert_allclose(relative, 1.0 / y, rtol=1e-5)
        harness.spin(1.0)
        assert harness.received['depth/image'] == [] and harness.received['points'] == []
        # depth/relative's CameraInfo (image_transport's sibling) goes out with it.
        infos = harness.received['depth/camera_info']
        assert infos and all((i.width, i.height) == (W, H) for i in infos)
        fqn = '/rel_none: depth'
        harness.wait_for(lambda: fqn in harness.levels, 5.0, 'diagnostics')
        level, message = harness.levels[fqn]
        assert level == 1 and 'depth/relative only' in message, (level, message)
        assert harness.diag('/rel_none').get('scale_source') == 'none'
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_relative_model_with_fixed_scale_gives_the_right_cloud(ros, relative_model, tmp_path):
    proc, harness = start(tmp_path, relative_model, 'rel_fixed', 'scale_source:=fixed',
                          f'scale:={A}', f'shift:={B}')
    try:
        rgb = ramp()
        cloud = send_frames(harness, rgb, 'points')
        xyz = read_cloud_xyz(cloud)
        expected = backproject(true_depth(rgb).astype(np.float32), INTR)
        np.testing.assert_allclose(xyz, expected, rtol=1e-4, atol=1e-5)
        assert harness.received['depth/image'], 'no depth image'
        diag = harness.diag('/rel_fixed')
        assert diag.get('scale_source') == 'fixed' and diag.get('scale') == pytest.approx(A)
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_sparse_depth_topic_scales_a_relative_model(ros, relative_model, tmp_path):
    proc, harness = start(tmp_path, relative_model, 'rel_sparse', 'scale_source:=sparse_depth',
                          'scale_min_inliers:=20', 'sparse_max_age:=0.05')
    try:
        rgb = ramp()
        truth = true_depth(rgb)
        # A 16x12 sensor registered to the camera, millimetres, one sample in three.
        low = truth[1::2, 1::2]
        mm = np.where(np.arange(low.size).reshape(low.shape) % 3 == 0,
                      np.round(low * 1000), 0).astype(np.uint16)

        def sparse(stamp):
            msg = Image(header=harness.header(stamp), height=mm.shape[0], width=mm.shape[1],
                        encoding='16UC1', is_bigendian=0, step=2 * mm.shape[1],
                        data=mm.tobytes())
            harness.pub_sparse.publish(msg)
            harness.spin(0.05)

        # Without samples there is no scale: nothing metric comes out.
        harness.send(rgb, INTR)
        harness.spin(1.0)
        assert harness.received['points'] == []
        cloud = send_frames(harness, rgb, 'points', before_send=sparse)
        xyz = read_cloud_xyz(cloud)
        expected = backproject(truth.astype(np.float32), INTR)
        # 16-bit millimetres: the fit is exact to about a millimetre in a few metres.
        np.testing.assert_allclose(xyz[..., 2], expected[..., 2], rtol=2e-3)
        diag = harness.diag('/rel_sparse')
        assert diag.get('scale_source') == 'sparse_depth'
        assert diag.get('scale') == pytest.approx(A, rel=5e-3)
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_range_topic_scales_a_relative_model(ros, relative_model, tmp_path):
    proc, harness = start(tmp_path, relative_model, 'rel_range', 'scale_source:=range',
                          'scale_min_inliers:=10')
    pub = harness.node.create_publisher(Range, 'range', qos_profile_sensor_data)
    try:
        rgb = np.full((H, W, 3), 140, np.uint8)

        def reading(value):
            def send(stamp):
                pub.publish(Range(header=harness.header(stamp), min_range=0.2, max_range=8.0,
                                  range=value))
                harness.spin(0.05)
            return send

        msg = send_frames(harness, rgb, 'depth/image', before_send=reading(2.5))
        np.testing.assert_allclose(ros_io.depth_from_image(msg), 2.5, rtol=1e-5)
        # A reading out of its sensor's range gives no scale and is counted.
        send_frames(harness, rgb, 'depth/relative', before_send=reading(float('inf')))
        harness.wait_for(lambda: harness.diag('/rel_range').get('bad_range', 0) > 0, 5.0,
                         'bad_range')
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_scale_parameters_are_validated():
    cfg = node_params.defaults()
    assert node_params.validate(cfg) is None
    cfg['scale_source'] = 'ground_plane'
    assert 'camera_height' in node_params.validate(cfg)
    cfg['camera_height'] = 0.4
    assert node_params.validate(cfg) is None
    cfg['scale_source'] = 'lidar'
    assert 'scale_source must be one of' in node_params.validate(cfg)
    assert node_params.BY_NAME['scale_source'].read_only
    assert math.isclose(node_params.BY_NAME['scale_hold'].default, 1.0)
    for name in ('camera_pitch', 'scale', 'shift', 'sparse_max_age', 'scale_smoothing',
                 'scale_max_jump', 'scale_min_inliers'):
        assert name in node_params.BY_NAME
