"""
The ``range`` scale source: one rangefinder distance along the optical axis (no ROS).

One rangefinder distance along the optical axis against the median base in a window
centred on the principal point (cx, cy), where the beam lands: a scale only (the shift
is taken as 0).
"""

from __future__ import annotations

import math
from typing import Optional

from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.scale_base import ScaleFit
import numpy as np


def fit_range(base: np.ndarray, kind: str, range_m: float, window: float = 0.05,
              min_inliers: int = 10, intrinsics: Optional[Intrinsics] = None) -> ScaleFit:
    """
    Scale the median base of a ``window`` (fraction of each side) to ``range_m``.

    The rangefinder measures along the optical axis, which meets the image at the principal
    point: the window is centred on the base's (cx, cy) (``intrinsics``), or on the image
    centre without them. One distance fixes one number: the shift is 0.
    """
    if not (math.isfinite(range_m) and range_m > 0):
        return ScaleFit(reason=f'range {range_m} is not a positive distance')
    h, w = base.shape
    # At least 4x4 pixels: a small depth map (a 32x24 model output) still has a window.
    hw, hh = max(2, int(round(w * window / 2))), max(2, int(round(h * window / 2)))
    cu, cv = w // 2, h // 2
    if intrinsics is not None:
        # Pixel (u, v) covers [u - 0.5, u + 0.5] around its centre: the window of 2 hw
        # pixels centred on cx starts at round(cx - hw + 0.5).
        cu = int(round(float(intrinsics.cx) + 0.5))
        cv = int(round(float(intrinsics.cy) + 0.5))
    cu, cv = min(max(cu, hw), w - hw), min(max(cv, hh), h - hh)
    patch = np.asarray(base[cv - hh:cv + hh, cu - hw:cu + hw], dtype=np.float64).ravel()
    patch = patch[np.isfinite(patch)]
    if kind == 'depth':
        patch = patch[patch > 0]
    n = patch.size
    min_inliers = min(min_inliers, 4 * hw * hh // 2)
    if n < min_inliers:
        return ScaleFit(samples=n, reason=f'only {n} valid pixels in the central window')
    med = float(np.median(patch))
    if not med > 0:
        return ScaleFit(samples=n, reason='the central window has no positive base')
    scale = 1.0 / (range_m * med) if kind == 'inverse' else range_m / med
    rel = np.abs(patch / med - 1.0)
    # Inliers: the window pixels within 10% of its median (a flat target in front).
    inliers = int(np.count_nonzero(rel <= 0.1))
    residual = float(np.median(rel))
    if inliers < min_inliers:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason=f'central window is not one surface ({inliers} inliers)')
    kept = patch[rel <= 0.1]
    return ScaleFit(scale, 0.0, inliers, n, residual,
                    pairs=(kept, np.full(kept.size, float(range_m))))
