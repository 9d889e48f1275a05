"""
sparse_points in a LiDAR's frame reach depth_node's scale fit through tf2.

KITTI's real Velodyne scan (object_training 000000) is published in the ``velodyne`` frame,
with the calibration (``Tr_velo_to_cam``, ``R0_rect``, camera 2's offset from ``P2``) as
static transforms published by tf2_ros in another process (test/ros_peer.py). The scale the
node fits from those points must be the one it fits from the same points already in the
camera's optical frame. A cloud in a frame tf2 does not know, or any other frame where
tf2_ros is not installed, is refused and counted as bad_transform.
"""

import json
from pathlib import Path
import subprocess
import sys
import time

import cv2
from mono_depth_ros.core import kitti
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.ros import messages as ros_io
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros2_tools import toolchain_env
from ros_harness import env_without, Harness, Process
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, Range
from test_scale_node import relative_model  # noqa: F401 - the module's fixture, reused

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools, pytest.mark.shared_data]

PEER = Path(__file__).resolve().parent / 'ros_peer.py'
CAMERA = 'kitti_cam2_optical'
RECT = 'kitti_cam0_rect'
LIDAR = 'velodyne'
SMALL = Intrinsics(30.0, 28.0, 15.5, 11.5, 32, 24)  # test_scale_node's model size


def quaternion(rotation):
    """Return (x, y, z, w) of a rotation matrix (Shepperd's method)."""
    r = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s,
             0.25 * s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i], q[j], q[k] = 0.25 * s, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
    return [float(v) for v in q]


@pytest.fixture(scope='module')
def kitti_scene(shared_data):
    """Return (rgb, intrinsics, velodyne points, the static transforms, lidar->camera 4x4)."""
    root = shared_data / 'kitti' / 'object_training'
    bgr = cv2.imread(str(root / 'image_2' / '000000.png'), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    h, w = rgb.shape[:2]
    calib = kitti.read_kitti_calib(str(root / 'calib' / '000000.txt'))
    points = kitti.read_velodyne_bin(str(root / 'velodyne' / '000000.bin'))[:, :3]
    # The velodyne's pose in the rectified cam-0 frame (R0_rect @ Tr_velo_to_cam), made an
    # exact rotation (KITTI's matrices are orthonormal to about 1e-6).
    velo = kitti.velo_to_rect(calib)
    u, _, vt = np.linalg.svd(velo[:3, :3])
    velo[:3, :3] = u @ vt
    # Camera 2's optical frame is the rectified frame shifted by t2 (from P2): X2 = X + t2,
    # so its pose in the rectified frame is a translation by -t2.
    t2 = kitti.camera_offset(calib, 2)
    transforms = [[RECT, LIDAR, velo[:3, 3].tolist(), quaternion(velo[:3, :3])],
                  [RECT, CAMERA, (-t2).tolist(), [0.0, 0.0, 0.0, 1.0]]]
    lidar_to_camera = velo.copy()
    lidar_to_camera[:3, 3] += t2
    return rgb, kitti.camera_intrinsics(calib, w, h), points, transforms, lidar_to_camera


def cloud_msg(header, points):
    """Build an unorganized x, y, z FLOAT32 PointCloud2 (as a LiDAR driver publishes)."""
    xyz = np.ascontiguousarray(points[:, :3], dtype='<f4')
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate('xyz')]
    return PointCloud2(header=header, height=1, width=len(xyz), fields=fields,
                       is_bigendian=False, point_step=12, row_step=12 * len(xyz),
                       data=xyz.tobytes(), is_dense=True)


class Scene:
    """The node, the harness that feeds it KITTI frames with a cloud, and its diagnostics."""

    def __init__(self, tmp_path, name, env):
        # The bundled (metric, indoor) model: on a street its metres are off, which is what
        # a sparse_depth scale corrects (a scale only, for a metric model).
        args = ['-r', f'__node:={name}', '-p', 'scale_source:=sparse_depth',
                '-p', 'scale_min_inliers:=20',
                '-p', 'sparse_max_age:=0.05', '-p', 'scale_hold:=0.0',
                '-p', 'scale_max_jump:=0.0', '-p', 'publish_points:=false',
                '-p', 'depth_size_ratio:=0.25', '-p', 'diagnostics_period:=0.2']
        self.proc = Process('depth_node', args, str(tmp_path), tag=name, env=env)
        self.fqn = f'/{name}'
        self.harness = Harness(f'harness_{name}')
        self.harness.subscribe('depth/camera_info', CameraInfo)
        self.pub = self.harness.node.create_publisher(PointCloud2, 'sparse_points',
                                                      qos_profile_sensor_data)
        try:
            self.harness.wait_connected(timeout=60.0)
            self.harness.wait_for(lambda: self.pub.get_subscription_count() > 0, 30.0,
                                  'the sparse_points subscription')
        except AssertionError:
            raise AssertionError('node did not come up:\n' + self.proc.output())

    def diag(self):
        return self.harness.diag(self.fqn)

    def frames(self, rgb, intrinsics, points, frame_id, until, timeout=30.0):
        """Send frames, each with a cloud in ``frame_id`` (if any), until ``until(diag)``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            stamp = self.harness.now_ns()
            if points is not None:
                self.pub.publish(cloud_msg(self.harness.header(stamp, frame_id), points))
                self.harness.spin(0.05)
            self.harness.send(rgb, intrinsics, stamp_ns=stamp, frame_id=CAMERA)
            self.harness.spin(0.4)
            diag = self.diag()
            if until(diag):
                return diag
        raise AssertionError(f'timed out; last diagnostics {self.diag()}\n'
                             f'{self.proc.output()[-3000:]}')

    def close(self):
        self.harness.destroy()
        return self.proc.stop()


def fitted(diag):
    return diag.get('scale', 'none') != 'none'


def fit_of(diag):
    return {k: diag[k] for k in ('scale', 'scale_shift', 'scale_inliers', 'scale_samples')}


def test_lidar_points_through_tf2_give_the_camera_frame_scale(ros, tmp_path, kitti_scene):
    env = toolchain_env()
    rgb, intrinsics, points, transforms, lidar_to_camera = kitti_scene
    spec = tmp_path / 'transforms.json'
    spec.write_text(json.dumps(transforms))
    log = open(tmp_path / 'static_tf.log', 'w')
    peer = subprocess.Popen([sys.executable, str(PEER), 'static_tf', str(spec)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    scene = Scene(tmp_path, 'tf_kitti', env)
    try:
        in_camera = points @ lidar_to_camera[:3, :3].T + lidar_to_camera[:3, 3]
        reference = scene.frames(rgb, intrinsics, in_camera, CAMERA, fitted)
        # A real fit on thousands of the scan's points in view, not a handful.
        assert reference['scale_samples'] > 5000, reference
        # No cloud: no fit (scale_hold 0), so the next scale is the next cloud's own.
        scene.frames(rgb, intrinsics, None, CAMERA, lambda d: not fitted(d))
        through_tf = scene.frames(rgb, intrinsics, points, LIDAR, fitted)
        assert fit_of(through_tf) == pytest.approx(fit_of(reference), rel=1e-4), (
            through_tf, reference)
        assert through_tf.get('bad_transform', 0) == 0
        # A frame tf2 has never heard of: refused and counted, never used as it is.
        scene.frames(rgb, intrinsics, None, CAMERA, lambda d: not fitted(d))
        refused = scene.frames(rgb, intrinsics, points, 'unknown_lidar',
                               lambda d: d.get('bad_transform', 0) >= 3)
        assert not fitted(refused), refused
        assert 'unknown_lidar' in scene.proc.output()
    finally:
        code = scene.close()
        peer.terminate()
        peer.wait(10)
        log.close()
    assert code == 0, scene.proc.output()


def test_without_tf2_only_the_camera_frame_is_used(ros, tmp_path, kitti_scene):
    rgb, intrinsics, points, _, lidar_to_camera = kitti_scene
    env = env_without('tf2_ros', tmp_path)  # a robot without tf2_ros
    scene = Scene(tmp_path, 'tf_none', env)
    try:
        refused = scene.frames(rgb, intrinsics, points, LIDAR,
                               lambda d: d.get('bad_transform', 0) >= 3)
        assert not fitted(refused), refused
        in_camera = points @ lidar_to_camera[:3, :3].T + lidar_to_camera[:3, 3]
        scene.frames(rgb, intrinsics, in_camera, CAMERA, fitted)
        assert scene.proc.output().count('tf2_ros is not installed: sparse_points') == 1
    finally:
        code = scene.close()
    assert code == 0, scene.proc.output()


@pytest.mark.parametrize('kind', ['static_tf', 'tf'])
def test_a_range_reading_in_its_own_frame_is_placed_through_tf2(ros, tmp_path, kind,
                                                                relative_model):  # noqa: F811
    # A rangefinder 10 cm behind the camera, its x axis along the optical axis; its transform
    # static, or a moving frame's on /tf at 20 Hz (each reading is stamped after the newest
    # transform, and waits for the next one).
    env = toolchain_env()
    # Columns: the range frame's x, y, z axes in the camera's optical frame (x -> forward).
    rotation = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    spec = tmp_path / 'transforms.json'
    spec.write_text(json.dumps([[CAMERA, 'range_link', [0.05, 0.0, -0.1],
                                 quaternion(rotation)]]))
    log = open(tmp_path / 'static_tf.log', 'w')
    peer = subprocess.Popen([sys.executable, str(PEER), kind, str(spec)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    args = ['-r', '__node:=tf_range', '-p', f'model_path:={relative_model}',
            '-p', 'scale_source:=range', '-p', 'scale_min_inliers:=10', '-p', 'scale_hold:=0.0',
            '-p', 'scale_max_jump:=0.0', '-p', 'diagnostics_period:=0.2']
    proc = Process('depth_node', args, str(tmp_path), tag='tf_range', env=env)
    harness = Harness('harness_tf_range')
    harness.subscribe('depth/image', Image)
    pub = harness.node.create_publisher(Range, 'range', qos_profile_sensor_data)
    rgb = np.full((SMALL.height, SMALL.width, 3), 140, np.uint8)

    def depth_from(value, frame_id, timeout=30.0):
        harness.received['depth/image'].clear()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            stamp = harness.now_ns()
            pub.publish(Range(header=harness.header(stamp, frame_id), min_range=0.2,
                              max_range=8.0, range=value))
            harness.spin(0.05)
            harness.send(rgb, SMALL, stamp_ns=stamp, frame_id=CAMERA)
            harness.spin(0.3)
            if harness.received['depth/image']:
                return ros_io.depth_from_image(harness.received['depth/image'][-1])
        return None

    try:
        harness.wait_connected(timeout=60.0)
        harness.wait_for(lambda: pub.get_subscription_count() > 0, 30.0, 'the range topic')
        # 2.6 m along the rangefinder's beam is 2.5 m in front of the camera.
        depth = depth_from(2.6, 'range_link')
        assert depth is not None, proc.output()[-3000:]
        np.testing.assert_allclose(depth, 2.5, rtol=1e-4)
        # The same reading in a frame tf2 does not know: no metres, counted.
        harness.spin(1.0)
        assert depth_from(2.6, 'unknown_link', timeout=3.0) is None
        harness.wait_for(lambda: harness.diag('/tf_range').get('bad_transform', 0) > 0, 10.0,
                         'bad_transform')
    finally:
        harness.destroy()
        code = proc.stop()
        peer.terminate()
        peer.wait(10)
        log.close()
    assert code == 0, proc.output()
