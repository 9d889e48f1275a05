"""Colour maps of depth for viewing (near = warm, far = cool, invalid = black)."""

from __future__ import annotations

import cv2
import numpy as np


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float,
                   inverse: bool = True) -> np.ndarray:
    """
    Map depth in metres to RGB uint8 (H, W, 3) with the turbo colour map.

    With ``inverse`` the map is linear in 1/depth, which spends the colours where a robot
    needs them (near range). Invalid pixels (NaN, inf, <= 0, out of range) are black.
    """
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got {min_depth}, {max_depth}')
    d = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid='ignore', divide='ignore'):
        valid = np.isfinite(d) & (d >= min_depth) & (d <= max_depth)
        if inverse:
            t = (1.0 / np.clip(d, min_depth, max_depth) - 1.0 / max_depth) / (
                1.0 / min_depth - 1.0 / max_depth)
        else:
            t = 1.0 - (np.clip(d, min_depth, max_depth) - min_depth) / (max_depth - min_depth)
    level = np.zeros(d.shape, dtype=np.uint8)
    level[valid] = np.clip(t[valid] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(level, cv2.COLORMAP_TURBO)
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb[~valid] = 0
    return rgb
