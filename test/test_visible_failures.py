"""
Failures a new user met, now visible in depth_node's log and diagnostics.

A wrong input topic (logged at start, then WARN naming it and its publishers), a model whose
output is in the wrong units (every pixel beyond max_depth: ERROR naming the likely cause),
and a CameraInfo stream that stops while images go on (WARN "camera_info stale", the node
keeps using the last one).
"""

from diagnostic_msgs.msg import DiagnosticArray
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.tools import import_model as im
from onnx import TensorProto
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import CameraInfo, Image
from test_import_model import conventions_graph

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.5, 11.5, W, H)
PERIOD = ['-p', 'diagnostics_period:=0.2']


class Watcher(Harness):
    """The harness, plus each node's latest diagnostic level and message."""

    def __init__(self, name):
        super().__init__(name)
        self.subscribe('depth/camera_info', CameraInfo)
        self.levels = {}
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_levels, 50)

    def _on_levels(self, msg):
        for status in msg.status:
            level = status.level[0] if isinstance(status.level, bytes) else int(status.level)
            self.levels[status.name] = (level, status.message)

    def level(self, name):
        return self.levels.get(f'/{name}: depth', (None, ''))


def started(tmp_path, name, *args):
    proc = Process('depth_node', ['-r', f'__node:={name}', *PERIOD, *args], str(tmp_path),
                   tag=name)
    watcher = Watcher(f'watch_{name}')
    return proc, watcher


def test_a_wrong_input_topic_is_logged_and_warned_with_its_publishers(ros, tmp_path):
    proc, watcher = started(tmp_path, 'wrong_topic', '-r', 'image:=/nowhere/image_raw')
    try:
        watcher.wait_for(lambda: watcher.level('wrong_topic')[0] == 1, 30.0, 'a WARN')
        level, message = watcher.level('wrong_topic')
        assert '/nowhere/image_raw' in message and 'no publisher' in message, message
        assert 'input topics: image /nowhere/image_raw, camera_info /camera_info' in \
            proc.output()
        # A publisher that sends nothing: named as such.
        watcher.node.create_publisher(Image, '/nowhere/image_raw', qos_profile_sensor_data)
        watcher.wait_for(lambda: '1 publisher(s)' in watcher.level('wrong_topic')[1], 30.0,
                         'the publisher in the message')
        # Images on it: the warning goes.
        pub = watcher.node.create_publisher(Image, '/nowhere/image_raw',
                                            qos_profile_sensor_data)

        def flowing():
            stamp = watcher.now_ns()
            watcher.send(grey(90), INTR, stamp_ns=stamp)  # its CameraInfo (and /image)
            pub.publish(ros_io.rgb_to_image(grey(90), watcher.header(stamp)))
            watcher.spin(0.1)
            return watcher.level('wrong_topic')[0] == 0
        watcher.wait_for(flowing, 30.0, 'OK once images arrive')
    finally:
        watcher.destroy()
        assert proc.stop() == 0, proc.output()


@pytest.fixture(scope='module')
def millimetre_model(tmp_path_factory):
    """Import a metric model with the wrong output scale (millimetres read as metres)."""
    folder = tmp_path_factory.mktemp('mm')
    src = conventions_graph(folder / 'metric.onnx', [1, H, W, 3], [1, 1, H, W], nhwc=True,
                            dtype=TensorProto.UINT8, head='sigmoid20')
    out = folder / 'wrong_units.onnx'
    args = im.build_parser().parse_args([str(src), '--output', str(out), '--output-mode',
                                         'metric', '--output-scale', '1000', '--max-depth',
                                         '20', '--no-range-check'])
    im.import_model(args, out=open(folder / 'import.log', 'w'))
    return str(out)


def test_output_all_beyond_the_range_is_error_naming_the_cause(ros, tmp_path,
                                                               millimetre_model):
    proc, watcher = started(tmp_path, 'wrong_units', '-p', f'model_path:={millimetre_model}')
    try:
        watcher.wait_connected()

        def error():
            watcher.send(grey(120), INTR)
            watcher.spin(0.1)
            return watcher.level('wrong_units')[0] == 2
        watcher.wait_for(error, 30.0, 'an ERROR')
        level, message = watcher.level('wrong_units')
        assert 'beyond max_depth (20 m)' in message and 'output_scale' in message, message
        assert watcher.received['depth/camera_info'], 'the depth was published meanwhile'
        assert watcher.diag('/wrong_units')['invalid_depth_periods'] >= 3
    finally:
        watcher.destroy()
        assert proc.stop() == 0, proc.output()


def test_a_stopped_camera_info_stream_is_warned_while_it_is_still_used(ros, tmp_path):
    proc, watcher = started(tmp_path, 'stale_info', '-p', 'camera_info_max_age:=0.5')
    try:
        watcher.wait_connected()

        def frame(info):
            watcher.send(grey(100), INTR, info=info)
            watcher.spin(0.1)

        def ok_with_info():
            frame(True)
            return watcher.level('stale_info')[0] == 0 and watcher.received[
                'depth/camera_info']
        watcher.wait_for(ok_with_info, 30.0, 'OK with CameraInfo')

        def stale():
            frame(False)
            return watcher.level('stale_info')[1].startswith('camera_info stale')
        watcher.wait_for(stale, 30.0, 'camera_info stale')
        level, message = watcher.level('stale_info')
        assert level == 1 and '/camera_info' in message and 'camera_info_max_age 0.5' in message
        # Still used: depth keeps coming, on the last CameraInfo's intrinsics.
        before = len(watcher.received['depth/camera_info'])
        watcher.wait_for(lambda: frame(False) or len(watcher.received['depth/camera_info']) >
                         before + 2, 30.0, 'depth without new CameraInfo')
        assert watcher.received['depth/camera_info'][-1].k[0] == pytest.approx(INTR.fx)
        assert float(watcher.diag('/stale_info')['camera_info_age_s']) > 0.5
    finally:
        watcher.destroy()
        assert proc.stop() == 0, proc.output()
