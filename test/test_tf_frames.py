"""
mono_depth_ros.ros.tf_frames: 4x4 matrices from transforms, and lookups with or without tf2.

The lookup through a real tf2 buffer, fed by a static transform from another process, is in
test_tf_node.py; here the pieces that need no ROS graph.
"""

import math
from pathlib import Path
import subprocess
import sys
from types import SimpleNamespace
import xml.etree.ElementTree as ET

from mono_depth_ros.ros import tf_frames
import numpy as np
import pytest
from ros2_tools import toolchain_env


def rodrigues(axis, angle):
    """Return the rotation matrix of ``angle`` about ``axis`` (Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


def transform(axis, angle, translation, scale=1.0):
    """Return a geometry_msgs/Transform-like object of a rotation about an axis."""
    k = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    s = math.sin(angle / 2) * scale
    return SimpleNamespace(
        translation=SimpleNamespace(x=translation[0], y=translation[1], z=translation[2]),
        rotation=SimpleNamespace(x=k[0] * s, y=k[1] * s, z=k[2] * s,
                                 w=math.cos(angle / 2) * scale))


@pytest.mark.parametrize('axis, angle', [((0, 0, 1), math.pi / 2), ((1, 2, 3), 0.7),
                                         ((-1, 0.5, 0.2), -2.9)])
def test_matrix_from_transform_is_the_rotation_then_the_translation(axis, angle):
    t = (0.3, -1.2, 2.5)
    matrix = tf_frames.matrix_from_transform(transform(axis, angle, t))
    np.testing.assert_allclose(matrix[:3, :3], rodrigues(axis, angle), atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], t)
    np.testing.assert_allclose(matrix[3], [0, 0, 0, 1])
    points = np.array([[1.0, 0.0, 0.0], [0.2, -3.0, 7.0]])
    np.testing.assert_allclose(tf_frames.transform_points(matrix, points),
                               points @ rodrigues(axis, angle).T + t, atol=1e-12)


def test_an_unnormalised_quaternion_is_normalised_and_a_zero_one_refused():
    matrix = tf_frames.matrix_from_transform(transform((0, 1, 0), 0.4, (0, 0, 0), scale=3.0))
    np.testing.assert_allclose(matrix[:3, :3], rodrigues((0, 1, 0), 0.4), atol=1e-12)
    with pytest.raises(ValueError, match='not a rotation'):
        tf_frames.matrix_from_transform(transform((0, 1, 0), 0.4, (0, 0, 0), scale=0.0))


def test_frame_names_compare_without_a_leading_slash():
    assert tf_frames.same_frame('/camera_optical', 'camera_optical')
    assert not tf_frames.same_frame('velodyne', 'camera_optical')


def test_without_tf2_only_the_same_frame_is_looked_up(monkeypatch):
    monkeypatch.setattr(tf_frames, 'tf2_ros', None)
    lookup = tf_frames.FrameLookup(node=None)
    assert not lookup.available
    np.testing.assert_array_equal(lookup.lookup('cam', '/cam', 5), np.eye(4))
    assert lookup.lookup('cam', 'velodyne', 5) is None
    assert 'tf2_ros is not installed' in lookup.reason and "'velodyne'" in lookup.reason
    assert lookup.lookup('cam', '', 5) is None and 'empty frame_id' in lookup.reason


@pytest.mark.ros2_tools
def test_a_tf2_buffer_gives_the_matrix_of_its_transform_chain():
    if not tf_frames.tf2_available():
        # This process has no ROS 2 overlay on its paths: run this test where it has.
        name = f'{__file__}::test_a_tf2_buffer_gives_the_matrix_of_its_transform_chain'
        out = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                              name], env=toolchain_env(), capture_output=True, text=True,
                             timeout=300, cwd=Path(__file__).resolve().parents[1])
        assert out.returncode == 0 and '1 passed' in out.stdout, out.stdout + out.stderr
        return
    from geometry_msgs.msg import TransformStamped

    lookup = tf_frames.FrameLookup.__new__(tf_frames.FrameLookup)
    lookup.node, lookup.reason, lookup.closed, lookup.listener = None, '', False, None
    lookup.buffer = tf_frames.tf2_ros.Buffer()
    chain = [('base', 'lidar', (0, 0, 1), 0.3, (1.0, 0.0, 0.5)),
             ('base', 'camera', (1, -1, 1), 2.1, (0.2, 0.1, 0.0))]
    for parent, child, axis, angle, t in chain:
        msg = TransformStamped()
        msg.header.frame_id, msg.child_frame_id = parent, child
        tr = transform(axis, angle, t)
        msg.transform.translation.x, msg.transform.translation.y, \
            msg.transform.translation.z = t
        r = msg.transform.rotation
        r.x, r.y, r.z, r.w = tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w
        lookup.buffer.set_transform_static(msg, 'test')
    lidar_in_base = np.eye(4)
    lidar_in_base[:3, :3], lidar_in_base[:3, 3] = rodrigues(*chain[0][2:4]), chain[0][4]
    camera_in_base = np.eye(4)
    camera_in_base[:3, :3], camera_in_base[:3, 3] = rodrigues(*chain[1][2:4]), chain[1][4]
    # Points from lidar to camera coordinates: base <- lidar, then camera <- base.
    expected = np.linalg.inv(camera_in_base) @ lidar_in_base
    np.testing.assert_allclose(lookup.lookup('camera', 'lidar', 10 ** 9), expected, atol=1e-9)
    assert lookup.lookup('camera', 'elsewhere', 10 ** 9) is None
    assert "'elsewhere'" in lookup.reason


def test_package_xml_declares_the_python_tf2_ros():
    root = ET.parse(Path(__file__).resolve().parents[1] / 'package.xml').getroot()
    # tf2_ros_py is the package of the Python module tf2_ros (tf2_ros is the C++ library).
    assert 'tf2_ros_py' in {e.text for e in root if e.tag in ('exec_depend', 'depend')}
