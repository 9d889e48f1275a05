"""
The base map a scale source sees, and the outcome of one fit (no ROS).

A relative model gives a *base* map ``b`` that is depth (``kind == 'depth'``) or inverse
depth (``kind == 'inverse'``) only up to an affine map; a :class:`ScaleFit` is that map's
scale and shift (see :mod:`.scale`), which :func:`apply_scale` turns into metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Optional, Tuple

from mono_depth_ros.core.model_meta import INVERSE_MODES
import numpy as np

BASE_KINDS = ('depth', 'inverse')


class ScaleError(ValueError):
    """A scale-source configuration or sample is invalid."""


@dataclass
class ScaleFit:
    """The outcome of one fit: scale and shift (see :mod:`.scale`), or a reason."""

    scale: float = math.nan
    shift: float = 0.0
    inliers: int = 0
    samples: int = 0
    residual: float = math.nan  # median relative depth error of the inliers
    reason: str = ''            # empty when the fit succeeded
    #: the (base values, metric depths) the fit rests on, for a combined fit
    pairs: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Return True when the fit produced a usable scale."""
        return not self.reason and math.isfinite(self.scale) and self.scale > 0 \
            and math.isfinite(self.shift)


def base_kind(output_mode: str) -> str:
    """Return the base kind ('depth' or 'inverse') a scale source sees for an output mode."""
    return 'inverse' if output_mode in INVERSE_MODES else 'depth'


def apply_scale(base: np.ndarray, kind: str, scale: float, shift: float) -> np.ndarray:
    """Return metric depth (float32, NaN where the map gives no positive finite depth)."""
    b = np.asarray(base, dtype=np.float32)
    s, t = np.float32(scale), np.float32(shift)
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if kind == 'inverse':
            depth = np.float32(1.0) / (b * s + t)
        else:
            depth = b * s + t
    depth[~(depth > 0) | ~np.isfinite(depth)] = np.float32(math.nan)
    return depth


def relative_depth_like(base: np.ndarray, kind: str) -> np.ndarray:
    """Map a base to depth-like order (larger = farther), unitless, NaN where undefined."""
    b = np.asarray(base, dtype=np.float32)
    if kind == 'depth':
        return np.where(np.isfinite(b), b, np.float32(math.nan))
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.float32(1.0) / b
    out[~(b > 0)] = np.float32(math.nan)
    return out
