"""
depth_node as its real consumers meet it, over DDS, judged by the upstream references.

* image_transport's pairing: every image topic's sibling ``camera_info`` (its
  ``getCameraInfoTopic`` rule) is a CameraInfo the node publishes, for that image.
* REP 2003 QoS: reliable and best-effort subscribers in another process, with no Fast DDS
  profile exported, both receive every output; ``qos_overrides`` changes the offered QoS.
* REP 117 values in the depth image, and the cloud read by sensor_msgs_py's
  ``read_points`` equal to image_geometry's back-projection of the published depth on the
  published CameraInfo.

Without the upstream packages (``../shared/ros2/install.sh``) these tests skip with the
reason; in CI (MONO_DEPTH_REQUIRE_DATA) that is an error.
"""

import json
import os
from pathlib import Path
import subprocess
import sys
import time

from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np
from onnx_models import brightness_model
import pytest
from rclpy.qos import ReliabilityPolicy
from references import image_transport_camera_info_topic, pinhole_model, read_cloud_xyz
from ros2_tools import PROFILE_VARIABLES
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from test_import_model import relative_mean_model

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.2, 11.7, W, H)
LISTENER = Path(__file__).resolve().parent / 'qos_listener.py'
IMAGE_TYPE, INFO_TYPE = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'


@pytest.fixture(scope='module')
def metric_model(tmp_path_factory):
    """Write the brightness model: depth = 4 * mean(RGB) / 255 + 1 m, valid 0.5 to 10 m."""
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, H, W)
    return str(path)


@pytest.fixture(scope='module')
def relative_model(tmp_path_factory):
    """Write a relative inverse-depth model (the channel mean), made so by import_model."""
    return relative_mean_model(tmp_path_factory.mktemp('relative'), H, W)


def no_profile_env():
    """Return this environment without any Fast DDS profile variable exported."""
    return {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}


def start(tmp_path, model, name, *params, env=None):
    args = ['-r', f'__node:={name}', '-p', f'model_path:={model}', '-p',
            'diagnostics_period:=0.2']
    for p in params:
        args += ['-p', p]
    return Process('depth_node', args, str(tmp_path), tag=name, env=env)


def node_topics(harness, name, proc, wanted, timeout=20.0):
    """Return {topic: types} the node publishes, once ``wanted`` topics are all there."""
    found = {}

    def ready():
        found.clear()
        try:
            found.update(dict(harness.node.get_publisher_names_and_types_by_node(name, '/')))
        except Exception:  # noqa: BLE001 - the node is not discovered yet
            return False
        return set(wanted) <= set(found)

    try:
        harness.wait_for(ready, timeout, f'{wanted} from {name}')
    except AssertionError:
        raise AssertionError(f'{found}\n{proc.output()}')
    return found


def depth_values(msg):
    """Return a 32FC1 image's floats exactly as sent (+-Inf and NaN kept apart)."""
    assert msg.encoding == '32FC1' and not msg.is_bigendian
    rows = np.frombuffer(bytes(msg.data), '<f4').reshape(msg.height, msg.step // 4)
    return rows[:, :msg.width]


def stamp_of(msg):
    return msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec


@pytest.mark.parametrize('scale', ['fixed', 'none'])
def test_every_image_has_its_camera_info_where_image_transport_looks(ros, relative_model,
                                                                     tmp_path, scale):
    name = f'pairing_{scale}'
    params = ['scale_source:=fixed', 'scale:=1.0', 'shift:=0.0'] if scale == 'fixed' else []
    proc = start(tmp_path, relative_model, name, *params)
    harness = Harness(f'h_{name}')
    try:
        wanted = ['/depth/relative'] + (['/depth/image'] if scale == 'fixed' else [])
        topics = node_topics(harness, name, proc, wanted)
        images = sorted(t for t, types in topics.items() if IMAGE_TYPE in types)
        assert set(wanted) <= set(images)
        pairs = {}
        for image in images:
            info = image_transport_camera_info_topic(image)
            # The sibling is a CameraInfo topic of this node, not the input camera's.
            assert INFO_TYPE in topics.get(info, []), (image, info, topics)
            pairs[image] = info
            harness.subscribe(image, Image)
            harness.subscribe(info, CameraInfo)
        # What a metric output needs: without a scale only depth/relative can go out.
        expected = {'/depth/relative', '/depth/image', '/depth/colored'} if scale == 'fixed' \
            else {'/depth/relative'}
        harness.wait_connected()
        end = time.monotonic() + 20.0
        while time.monotonic() < end and not all(harness.received[t] for t in expected):
            harness.send(grey(128), INTR)
            harness.spin(0.3)
        for image in expected:
            assert harness.received[image], (image, proc.output())
            msg = harness.received[image][-1]
            infos = {stamp_of(m): m for m in harness.received[pairs[image]]}
            info = infos.get(stamp_of(msg))
            assert info is not None, f'no {pairs[image]} with the stamp of {image}'
            assert (info.width, info.height) == (msg.width, msg.height) == (W, H)
            assert info.header.frame_id == msg.header.frame_id
        if scale == 'none':
            assert not harness.received.get('/depth/image')
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def listen(topics, seconds, env):
    """Start qos_listener.py for ``{topic: type name}``; return the process."""
    specs = [f'{t}:{k}' for t, k in topics.items()]
    return subprocess.Popen([sys.executable, str(LISTENER), str(seconds), *specs], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_reliable_and_best_effort_subscribers_in_another_process_get_every_output(
        ros, metric_model, tmp_path):
    env = no_profile_env()  # neither the node nor the listener has a profile exported
    proc = start(tmp_path, metric_model, 'qos_default', env=env)
    harness = Harness('h_qos_default')
    outputs = {'/depth/image': 'Image', '/depth/camera_info': 'CameraInfo',
               '/depth/colored': 'Image', '/points': 'PointCloud2'}
    listener = listen(outputs, 40.0, env)
    try:
        node_topics(harness, 'qos_default', proc, list(outputs))
        harness.wait_for(lambda: harness.pub_image.get_subscription_count() > 0, 20.0, 'node')
        # A 640x480 camera: a 1.2 MB depth image and cloud, more than Fast DDS's default
        # 512 KiB shared-memory segment.
        rgb = grey(128, 480, 640)
        camera = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
        while listener.poll() is None:
            harness.send(rgb, camera)
            harness.spin(0.25)
        out = listener.stdout.read()
        assert listener.returncode == 0, out
        report = json.loads(out.strip().splitlines()[-1])
        missing = [k for k, n in report['counts'].items() if n == 0]
        assert not missing, f'nothing for {missing}:\n{out}\n{proc.output()}'
        # REP 2003: what the node offers is reliable.
        for topic in outputs:
            assert report['offered'][topic] == ['reliable'], report
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_qos_overrides_change_the_offered_qos(ros, metric_model, tmp_path):
    proc = start(tmp_path, metric_model, 'qos_over',
                 'qos_overrides./depth/image.publisher.reliability:=best_effort',
                 'qos_overrides./depth/image.publisher.depth:=1')
    harness = Harness('h_qos_over')
    try:
        node_topics(harness, 'qos_over', proc, ['/depth/image', '/points'])
        [depth] = harness.node.get_publishers_info_by_topic('/depth/image')
        [points] = harness.node.get_publishers_info_by_topic('/points')
        assert depth.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert points.qos_profile.reliability == ReliabilityPolicy.RELIABLE  # the default
        # The standard parameter is there with the value in force.
        assert integer_parameter(harness, 'qos_over',
                                 'qos_overrides./depth/image.publisher.depth') == 1
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def integer_parameter(harness, node, name):
    """Return an integer parameter's value through the node's get_parameters service."""
    from rcl_interfaces.srv import GetParameters
    client = harness.node.create_client(GetParameters, f'/{node}/get_parameters')
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(GetParameters.Request(names=[name]))
    harness.wait_for(future.done, 10.0, 'get_parameters')
    harness.node.destroy_client(client)
    [value] = future.result().values
    return value.integer_value


@pytest.mark.parametrize('args, words', [
    (['qos_overrides./depth/image.publisher.reliability:=sometimes'], 'qos_overrides'),
    (['qos_overrides./points.publisher.depth:=0'], 'depth must be 1 to 1000'),
    (['output_reliability:=reliable'], 'output_reliability was removed'),
    (['qos_depth:=5'], 'qos_overrides'),
    (['output_scale:=0.5'], 'renamed depth_size_ratio'),
])
def test_bad_or_removed_qos_settings_stop_the_node_with_the_reason(ros, metric_model, tmp_path,
                                                                   args, words):
    proc = start(tmp_path, metric_model, 'qos_bad', *args)
    code = proc.popen.wait(30)
    out = proc.output()
    assert code == 1, out
    assert words in out and 'Traceback' not in out, out


def test_rep117_depth_and_its_cloud_as_upstream_reads_them(ros, metric_model, tmp_path):
    # 40x24 camera into the 32x24 model with crop: 4 columns each side have no estimate.
    proc = start(tmp_path, metric_model, 'rep117', 'min_depth:=2.0', 'max_depth:=3.0',
                 'resize_mode:=crop', 'cloud_decimation:=2')
    harness = Harness('h_rep117')
    for topic, kind in (('depth/image', Image), ('depth/camera_info', CameraInfo),
                        ('points', PointCloud2)):
        harness.subscribe(topic, kind)
    try:
        harness.wait_connected()
        rgb = np.zeros((H, 40, 3), np.uint8)      # black: 1 m, nearer than min_depth
        rgb[:, 14:26] = 64                          # 2.004 m: valid
        rgb[:, 26:] = 255                           # 5 m: beyond max_depth
        camera = Intrinsics(30.0, 28.0, 19.5, 11.7, 40, H)
        end = time.monotonic() + 20.0
        stamp = None
        while time.monotonic() < end:
            harness.send(rgb, camera)
            harness.spin(0.3)
            got = {t: {stamp_of(m): m for m in harness.received[t]} for t in harness.received}
            common = set.intersection(*(set(v) for v in got.values()))
            if common:
                stamp = max(common)
                break
        assert stamp is not None, proc.output()
        depth_msg = got['depth/image'][stamp]
        info = got['depth/camera_info'][stamp]
        cloud = got['points'][stamp]
        depth = depth_values(depth_msg)
        assert depth.shape == (H, 40)
        # REP 117: no estimate NaN (crop margins), nearer -Inf, beyond +Inf.
        assert np.isnan(depth[:, :4]).all() and np.isnan(depth[:, 36:]).all()
        assert (depth[:, 4:14] == -np.inf).all()
        assert np.allclose(depth[:, 14:26], 4 * 64 / 255 + 1, atol=1e-4)
        assert (depth[:, 26:36] == np.inf).all()
        # The cloud as sensor_msgs_py reads it: every kept pixel (every 2nd) back-projected
        # by image_geometry on the published CameraInfo; NaN for all three invalid kinds.
        model = pinhole_model(info)
        assert model.fullResolution() == (depth_msg.width, depth_msg.height)
        xyz = read_cloud_xyz(cloud)
        assert xyz.shape == (H // 2, 20, 3)
        for r in range(xyz.shape[0]):
            for c in range(xyz.shape[1]):
                z = depth[2 * r, 2 * c]
                if not np.isfinite(z):
                    assert np.isnan(xyz[r, c]).all(), (r, c, z, xyz[r, c])
                    continue
                ray = np.array(model.projectPixelTo3dRay((2 * c, 2 * r)))
                np.testing.assert_allclose(xyz[r, c], ray / ray[2] * z, rtol=1e-5, atol=1e-6)
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def partly_nan_model(path):
    """Write the brightness model with NaN output where the image is black (0 / 0)."""
    import onnx
    from onnx import helper
    brightness_model(path, H, W)
    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    last = next(n for n in nodes if n.op_type == 'Identity' and n.output[0] == 'depth')
    y = last.input[0]
    extra = [helper.make_node('Div', [y, y], ['one_or_nan']),
             helper.make_node('Mul', [y, 'one_or_nan'], ['y_partly_nan'])]
    last.input[0] = 'y_partly_nan'
    del model.graph.node[:]
    model.graph.node.extend(nodes[:-1] + extra + nodes[-1:])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_model_pixels_without_an_estimate_are_nan_and_the_rest_is_published(ros, tmp_path):
    model = tmp_path / 'partly_nan.onnx'
    partly_nan_model(model)
    proc = start(tmp_path, str(model), 'partly_nan')
    harness = Harness('h_partly_nan')
    harness.subscribe('depth/image', Image)
    try:
        harness.wait_connected()
        rgb = grey(128)
        rgb[:, :8] = 0  # the model gives NaN here
        end = time.monotonic() + 20.0
        while time.monotonic() < end and not harness.received['depth/image']:
            harness.send(rgb, INTR)
            harness.spin(0.3)
        assert harness.received['depth/image'], proc.output()
        depth = depth_values(harness.received['depth/image'][-1])
        assert np.isnan(depth[:, :8]).all()
        assert np.allclose(depth[:, 8:], 4 * 128 / 255 + 1, atol=1e-4)
        harness.wait_for(lambda: harness.diag('/partly_nan').get('model_nonfinite_pixels', 0)
                         >= 8 * H, 10.0, 'model_nonfinite_pixels')
        # Not refused as a whole (that is for an output with no finite value at all).
        assert harness.diag('/partly_nan')['model_nonfinite'] == 0
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()
