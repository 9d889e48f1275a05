"""
Frames through tf2: one tf2_ros buffer and listener per node, and 4x4 lookups.

:class:`FrameLookup` owns a ``tf2_ros.Buffer`` and a ``TransformListener`` on the node
(subscribed to ``/tf`` and ``/tf_static``, spun by the node's own executor) and answers
``lookup(target, source, stamp_ns)`` with the 4x4 matrix that takes points from ``source``
coordinates to ``target`` coordinates, or None with the reason in :attr:`FrameLookup.reason`.

tf2_ros is optional: without it (a machine with only the rclpy wheels) a lookup between two
names of the same frame is the identity and any other is refused with a reason, so a sample
in another frame is never used as if it were in the camera's.

Lookups never wait: they run on the executor thread (subscription callbacks), where a wait
would hold up the images (and, with the listener on the same executor, the transforms
themselves). A stamp newer than the latest transform of a moving frame sets
:attr:`FrameLookup.later` (tf2's "extrapolation into the future": the transform may still
arrive, and the caller may try again); any other failure is final.

tf2's convention is followed: ``lookup_transform(target, source, time)`` returns the pose of
``source`` in ``target``, i.e. the map of points from source to target coordinates
(geometry2 tf2_ros_py/tf2_ros/buffer.py, ``lookup_transform``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

try:  # tf2_ros comes with a ROS install (or ../shared/ros2 in the project's venv)
    import tf2_ros
except ImportError:  # pragma: no cover - depends on the machine
    tf2_ros = None


def tf2_available() -> bool:
    """Return whether tf2_ros can be imported here."""
    return tf2_ros is not None


def normalize_frame(frame_id: str) -> str:
    """Return a frame id as tf2 stores it (ROS 2 tf2 names have no leading slash)."""
    return str(frame_id).strip().lstrip('/')


def same_frame(a: str, b: str) -> bool:
    """Return whether two frame ids name the same frame."""
    return normalize_frame(a) == normalize_frame(b)


def matrix_from_transform(transform: Any) -> np.ndarray:
    """
    Return the 4x4 matrix of a geometry_msgs/Transform (translation, unit quaternion).

    The quaternion is normalised first (a TransformStamped typed by hand is seldom exact);
    a zero or non-finite quaternion raises ValueError.
    """
    t, q = transform.translation, transform.rotation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = float(np.linalg.norm(quat))
    if not (np.isfinite(quat).all() and norm > 1e-12):
        raise ValueError(f'rotation quaternion {quat.tolist()} is not a rotation')
    x, y, z, w = quat / norm
    matrix = np.eye(4)
    matrix[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    matrix[:3, 3] = [t.x, t.y, t.z]
    if not np.isfinite(matrix).all():
        raise ValueError('translation is not finite')
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Return (N, 3) points mapped by a 4x4 matrix (float64)."""
    p = np.asarray(points, dtype=np.float64)[:, :3]
    return p @ matrix[:3, :3].T + matrix[:3, 3]


class FrameLookup:
    """
    A tf2 buffer and listener owned by one node, with non-blocking 4x4 lookups.

    ``close()`` unsubscribes from ``/tf`` and ``/tf_static`` (a lifecycle node's deactivate).
    """

    def __init__(self, node: Any, cache_s: float = 10.0):
        self.node = node
        self.reason = ''
        self.later = False  # the last failure may succeed later (the transform is behind)
        self.buffer = self.listener = None
        self.closed = False
        if tf2_ros is not None:
            from rclpy.duration import Duration
            self.buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_s))
            # spin_thread=False: the node's executor delivers /tf, as for any subscription.
            self.listener = tf2_ros.TransformListener(self.buffer, node, spin_thread=False)

    @property
    def available(self) -> bool:
        """Return whether tf2_ros is here (else only same-frame lookups succeed)."""
        return self.buffer is not None

    def lookup(self, target: str, source: str, stamp_ns: int = 0) -> Optional[np.ndarray]:
        """
        Return the 4x4 map from ``source`` to ``target`` coordinates at ``stamp_ns``, or None.

        A stamp of 0 takes the newest transform (tf2's ``Time()``). Same frames (two empty
        ones included) give the identity, with or without tf2_ros. On None, :attr:`reason`
        says why.
        """
        target, source = normalize_frame(target), normalize_frame(source)
        self.later = False
        if target == source:
            return np.eye(4)
        if not target or not source:
            self.reason = (f'empty frame_id (target {target!r}, source {source!r}): cannot '
                           'place the sample')
            return None
        if self.closed:
            self.reason = 'the tf listener is closed (node inactive)'
            return None
        if self.buffer is None:
            self.reason = (f'tf2_ros is not installed: cannot transform from {source!r} to '
                           f'{target!r} (install tf2_ros, or publish in {target!r})')
            return None
        from rclpy.time import Time
        stamp = Time(nanoseconds=int(stamp_ns)) if stamp_ns > 0 else Time()
        try:
            msg = self.buffer.lookup_transform(target, source, stamp)
            return matrix_from_transform(msg.transform)
        except (tf2_ros.TransformException, ValueError) as exc:
            self.reason = (f'no transform from {source!r} to {target!r} at '
                           f'{int(stamp_ns) * 1e-9:.3f} s: {exc}')
            # tf2's wording for a stamp past the newest data (geometry2 tf2/src/cache.cpp,
            # createExtrapolationException2).
            self.later = 'extrapolation into the future' in str(exc)
            return None

    def close(self) -> None:
        """Stop listening to /tf and /tf_static."""
        if self.listener is not None:
            try:
                self.listener.unregister()
            except Exception:  # noqa: BLE001 - the node may already be gone at shutdown
                pass
        self.listener = self.buffer = None
        self.closed = True
