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
from typing import List, Optional, Tuple

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


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Return (H, W) uint32 0x00RRGGBB from (H, W, 3) uint8 RGB."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    packed = rgb[..., 0].astype(np.uint32) << 16
    packed |= rgb[..., 1].astype(np.uint32) << 8
    packed |= rgb[..., 2]
    return packed


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
    buf[..., :3] = xyz
    buf.view('<u4')[..., 3] = pack_rgb(rgb)
    return CloudBuffer(h, w, list(XYZRGB_FIELDS), 16, 16 * w, buf.tobytes())


def unpack_cloud(cloud: CloudBuffer) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Inverse of :func:`pack_cloud`: return (xyz (H, W, 3), rgb (H, W, 3) uint8 or None)."""
    names = [f[0] for f in cloud.fields]
    offsets = {f[0]: f[1] for f in cloud.fields}
    raw = np.frombuffer(cloud.data, dtype=np.uint8).reshape(cloud.height, cloud.row_step)
    points = raw[:, :cloud.width * cloud.point_step].reshape(
        cloud.height, cloud.width, cloud.point_step)
    xyz = np.stack([points[..., offsets[n]:offsets[n] + 4].copy().view('<f4')[..., 0]
                    for n in ('x', 'y', 'z')], axis=-1)
    if 'rgb' not in names:
        return xyz, None
    o = offsets['rgb']
    packed = points[..., o:o + 4].copy().view('<u4')[..., 0]
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255],
                   axis=-1).astype(np.uint8)
    return xyz, rgb
