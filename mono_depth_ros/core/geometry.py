"""
Back-projection of depth images into organized point arrays (REP 103 optical frame).

The optical frame has z forward, x right and y down; a pixel (u, v) with depth z maps to
``((u - cx) / fx * z, (v - cy) / fy * z, z)``. The per-pixel ray factors depend only on
(K, size), so they are computed once and cached: a frame costs two multiplies.
"""

from __future__ import annotations

from collections import OrderedDict
import math
from typing import Optional, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np


class RayCache:
    """LRU cache of ray factors ``(u - cx) / fx`` (1, W) and ``(v - cy) / fy`` (H, 1)."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self._entries: 'OrderedDict[tuple, Tuple[np.ndarray, np.ndarray]]' = OrderedDict()
        self.misses = 0

    def get(self, intrinsics: Intrinsics) -> Tuple[np.ndarray, np.ndarray]:
        """Return (rx, ry) float32 arrays of shapes (1, W) and (H, 1)."""
        i = intrinsics
        key = (i.fx, i.fy, i.cx, i.cy, i.width, i.height)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        self.misses += 1
        rx = ((np.arange(i.width, dtype=np.float64) - i.cx) / i.fx).astype(np.float32)
        ry = ((np.arange(i.height, dtype=np.float64) - i.cy) / i.fy).astype(np.float32)
        entry = (rx.reshape(1, -1), ry.reshape(-1, 1))
        for array in entry:
            array.setflags(write=False)
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry


_DEFAULT_CACHE = RayCache()


def valid_depth(depth: np.ndarray, min_depth: float = 0.0,
                max_depth: float = math.inf) -> np.ndarray:
    """Return a float32 copy of depth with NaN where invalid (non-finite, <= 0, out of range)."""
    d = np.asarray(depth, dtype=np.float32)
    lo = np.float32(max(min_depth, 0.0))
    hi = np.float32(min(max_depth, float(np.finfo(np.float32).max)))
    # NaN fails both comparisons, so one expression covers NaN, inf, <= 0 and the range.
    good = (d >= lo) & (d <= hi)
    if lo == 0:
        good &= d > 0
    return np.where(good, d, np.float32(np.nan))


def backproject(depth: np.ndarray, intrinsics: Intrinsics, min_depth: float = 0.0,
                max_depth: float = math.inf, out: Optional[np.ndarray] = None,
                cache: Optional[RayCache] = None, validated: bool = False) -> np.ndarray:
    """
    Back-project a depth image (metres) into an organized (H, W, 3) float32 xyz array.

    Pixels whose depth is NaN, infinite, <= 0 or outside [min_depth, max_depth] give NaN
    points. ``out`` may be a preallocated (H, W, 3) float32 array (or a view with a larger
    last axis stride, e.g. the xyz part of a packed cloud buffer). ``validated``: depth is
    already float32 with NaN wherever it is invalid (the frame pipeline's output), so the
    range check is skipped.
    """
    if depth.ndim != 2:
        raise ValueError(f'depth must be 2-D, got shape {depth.shape}')
    h, w = depth.shape
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ValueError(f'depth is {w}x{h} but the intrinsics are for '
                         f'{intrinsics.width}x{intrinsics.height}')
    rx, ry = (cache or _DEFAULT_CACHE).get(intrinsics)
    if validated and depth.dtype == np.float32:
        z = depth
    else:
        z = valid_depth(depth, min_depth, max_depth)
    if out is None:
        out = np.empty((h, w, 3), dtype=np.float32)
    np.multiply(z, rx, out=out[..., 0])
    np.multiply(z, ry, out=out[..., 1])
    out[..., 2] = z
    return out


def project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Project (N, 3) optical-frame points to (N, 2) pixel coordinates (u, v)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([p[:, 0] / p[:, 2] * intrinsics.fx + intrinsics.cx,
                     p[:, 1] / p[:, 2] * intrinsics.fy + intrinsics.cy], axis=1)
