"""
Packing organized clouds into PointCloud2 byte layouts (no ROS imports).

Layouts (little endian, float32 fields, datatype 7 = FLOAT32):

* xyz:    x@0 y@4 z@8, point_step 12
* xyzrgb: x@0 y@4 z@8 rgb@12, point_step 16; ``rgb`` is a float32 whose bytes are the
  uint32 ``0x00RRGGBB``, as depth_image_proc writes it and RViz and PCL read it.

These are compact: depth_image_proc pads points to PCL's 16/32-byte alignment, which doubles
the bytes on the wire for the same fields. Readers that look fields up by name (RViz, PCL's
fromROSMsg, sensor_msgs_py) read both.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import List, Optional, Tuple

import cv2
from mono_depth_ros.core.geometry import backproject, RayCache
from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32

XYZ_FIELDS: List[Tuple[str, int, int, int]] = [
    ('x', 0, FLOAT32, 1), ('y', 4, FLOAT32, 1), ('z', 8, FLOAT32, 1)]
XYZRGB_FIELDS: List[Tuple[str, int, int, int]] = XYZ_FIELDS + [('rgb', 12, FLOAT32, 1)]


@dataclass
class CloudBuffer:
    """Everything a sensor_msgs/PointCloud2 needs besides its header."""

    height: int
    width: int
    fields: List[Tuple[str, int, int, int]]
    point_step: int
    row_step: int
    data: bytes
    is_dense: bool = False
    is_bigendian: bool = False


def pack_cloud(xyz: np.ndarray, rgb: Optional[np.ndarray] = None) -> CloudBuffer:
    """Pack an organized (H, W, 3) float32 xyz array (and optional RGB) into a CloudBuffer."""
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f'xyz must be (H, W, 3), got {xyz.shape}')
    h, w = xyz.shape[:2]
    if rgb is None:
        data = np.ascontiguousarray(xyz, dtype='<f4').tobytes()
        return CloudBuffer(h, w, list(XYZ_FIELDS), 12, 12 * w, data)
    if rgb.shape[:2] != (h, w):
        raise ValueError(f'rgb is {rgb.shape[:2]} but xyz is {(h, w)}')
    buf = np.empty((h, w, 4), dtype='<f4')
    for axis in range(3):
        buf[..., axis] = xyz[..., axis]
    _write_rgb(buf, rgb)
    return CloudBuffer(h, w, list(XYZRGB_FIELDS), 16, 16 * w, buf.tobytes())


def _write_rgb(buf: np.ndarray, rgb: np.ndarray) -> None:
    # BGRA bytes read as a little-endian uint32 are 0xAARRGGBB; clear the alpha byte so the
    # word is 0x00RRGGBB like depth_image_proc's.
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGRA)
    word = buf.view('<u4')[..., 3]
    np.bitwise_and(bgra.view('<u4')[..., 0], np.uint32(0x00FFFFFF), out=word)


class CloudPacker:
    """
    Back-project depth and pack it, with optional RGB, in one pass into a reused buffer.

    Equivalent to ``pack_cloud(backproject(depth, ...), rgb)`` but writes the points
    straight into the message layout and keeps that buffer between frames: a fresh 5 MB
    buffer per frame costs more in page faults than the arithmetic. Not thread-safe: give
    each worker thread its own packer.
    """

    def __init__(self, cache: Optional[RayCache] = None):
        self.cache = cache or RayCache()
        self._buf: Optional[np.ndarray] = None

    def _buffer(self, h: int, w: int, channels: int) -> np.ndarray:
        if self._buf is None or self._buf.shape != (h, w, channels):
            self._buf = np.empty((h, w, channels), dtype='<f4')
        return self._buf

    def pack(self, depth: np.ndarray, intrinsics: Intrinsics, rgb: Optional[np.ndarray] = None,
             min_depth: float = 0.0, max_depth: float = math.inf,
             validated: bool = False) -> CloudBuffer:
        """
        Return the CloudBuffer of depth (metres) seen through intrinsics.

        ``validated``: depth is float32 with NaN wherever invalid already (see backproject).
        """
        if depth.ndim != 2:
            raise ValueError(f'depth must be 2-D, got shape {depth.shape}')
        h, w = depth.shape
        if rgb is not None and rgb.shape[:2] != (h, w):
            raise ValueError(f'rgb is {rgb.shape[:2]} but depth is {(h, w)}')
        buf = self._buffer(h, w, 3 if rgb is None else 4)
        backproject(depth, intrinsics, min_depth, max_depth, out=buf[..., :3], cache=self.cache,
                    validated=validated)
        if rgb is None:
            return CloudBuffer(h, w, list(XYZ_FIELDS), 12, 12 * w, buf.tobytes())
        _write_rgb(buf, rgb)
        return CloudBuffer(h, w, list(XYZRGB_FIELDS), 16, 16 * w, buf.tobytes())


_PACKER = CloudPacker()


def depth_to_cloud(depth: np.ndarray, intrinsics: Intrinsics, rgb: Optional[np.ndarray] = None,
                   min_depth: float = 0.0, max_depth: float = math.inf) -> CloudBuffer:
    """Back-project and pack in one pass (a shared CloudPacker; use your own in threads)."""
    return _PACKER.pack(depth, intrinsics, rgb, min_depth, max_depth)


def unpack_cloud(cloud: CloudBuffer) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Inverse of :func:`pack_cloud`: return (xyz (H, W, 3), rgb (H, W, 3) uint8 or None)."""
    offsets = {f[0]: f[1] for f in cloud.fields}
    raw = np.frombuffer(cloud.data, dtype=np.uint8).reshape(cloud.height, cloud.row_step)
    points = raw[:, :cloud.width * cloud.point_step].reshape(
        cloud.height, cloud.width, cloud.point_step)
    xyz = np.stack([points[..., offsets[n]:offsets[n] + 4].copy().view('<f4')[..., 0]
                    for n in ('x', 'y', 'z')], axis=-1)
    if 'rgb' not in offsets:
        return xyz, None
    o = offsets['rgb']
    packed = points[..., o:o + 4].copy().view('<u4')[..., 0]
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255],
                   axis=-1).astype(np.uint8)
    return xyz, rgb
