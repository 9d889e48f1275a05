"""
The upstream ROS packages the tests use as references, or a skip (an error in CI) without them.

``image_geometry`` (PinholeCameraModel), ``sensor_msgs_py`` (point_cloud2.read_points) and
the other packages built by ``../shared/ros2/install.sh`` are the upstream readers of what
the node publishes: a test that compares the node with them asks what a real consumer
(depth_image_proc, RViz, PCL) would make of its messages, not what this package thinks.
"""

import importlib
import os
import warnings

import pytest


def _required() -> bool:
    return os.environ.get('MONO_DEPTH_REQUIRE_DATA', '') not in ('', '0', 'false')


def reference(name: str):
    """Import and return an upstream module, or skip (fail in CI) saying how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        reason = (f'the upstream reference {name} is not installed ({exc}): source a ROS 2 '
                  'install, or run bash ../shared/ros2/install.sh .venv')
        if _required():
            pytest.fail(reason + '; MONO_DEPTH_REQUIRE_DATA is set, so this is an error')
        pytest.skip(reason)


def pinhole_model(info_msg):
    """Return image_geometry's PinholeCameraModel of a CameraInfo."""
    model = reference('image_geometry').PinholeCameraModel()
    with warnings.catch_warnings():  # its numpy.matrix is pending deprecation
        warnings.simplefilter('ignore', PendingDeprecationWarning)
        model.fromCameraInfo(info_msg)
    return model


def backprojected(depth, info_msg, step=1):
    """
    Return image_geometry's back-projection of every step-th depth pixel, (H/s, W/s, 3).

    The depth image is read on its CameraInfo by PinholeCameraModel, as depth_image_proc's
    point_cloud_xyz does (convertDepth: ``((u - cx) / fx * z, (v - cy) / fy * z, z)``, NaN
    for a depth that is not finite); a few rays are checked against
    ``projectPixelTo3dRay`` itself.
    """
    import numpy as np
    model = pinhole_model(info_msg)
    h, w = depth.shape
    assert model.fullResolution() == (w, h), (model.fullResolution(), depth.shape)
    v, u = np.mgrid[0:h:step, 0:w:step].astype(np.float64)
    x, y = (u - model.cx()) / model.fx(), (v - model.cy()) / model.fy()
    for r, c in ((0, 0), (-1, -1), (0, -1), (v.shape[0] // 2, v.shape[1] // 2)):
        ray = model.projectPixelTo3dRay((u[r, c], v[r, c]))
        assert abs(ray[0] / ray[2] - x[r, c]) < 1e-9 and abs(ray[1] / ray[2] - y[r, c]) < 1e-9
    z = depth[::step, ::step].astype(np.float64)
    with np.errstate(invalid='ignore'):
        points = np.stack([x * z, y * z, z], axis=-1)
    points[~np.isfinite(z)] = np.nan
    return points


def read_cloud_xyz(cloud_msg):
    """Return an organized cloud's x, y, z as an (H, W, 3) float32 array, as upstream reads it."""
    import numpy as np
    point_cloud2 = reference('sensor_msgs_py.point_cloud2')
    # Read flat, in the message's row-major order, and laid out (height, width) here:
    # read_points' reshape_organized_cloud reshapes to (width, height), which scrambles
    # an organized cloud's rows (ros2/common_interfaces issue 236).
    points = point_cloud2.read_points(cloud_msg, field_names=('x', 'y', 'z'))
    xyz = np.stack([points['x'], points['y'], points['z']], axis=-1).astype(np.float32)
    return xyz.reshape(cloud_msg.height, cloud_msg.width, 3)


def image_transport_camera_info_topic(image_topic: str) -> str:
    """
    Return the CameraInfo topic image_transport pairs with an image topic.

    image_transport's ``getCameraInfoTopic`` (image_common, image_transport/src/
    camera_common.cpp): the image topic's last name is replaced by ``camera_info``, in the
    same namespace. ``CameraSubscriber`` and depth_image_proc subscribe by this rule.
    """
    tokens = [t for t in image_topic.split('/') if t]
    return '/' + '/'.join(tokens[:-1] + ['camera_info'])
