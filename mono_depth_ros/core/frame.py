"""
Pre- and post-processing around a backend, configured by the model's metadata (no ROS).

``Preprocessor`` turns any RGB image into the tensor the model takes; ``Postprocessor``
turns the raw output into metric depth (REP 118: metres, NaN where invalid) at the size the
caller asks for. Both are shared by depth_node and depth_bench, so the benchmark times what
the node runs.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np


class NonFiniteOutputError(ValueError):
    """The model produced NaN or Inf: the frame must not be published."""


class Preprocessor:
    """RGB uint8 (H, W, 3) of any size -> the model's input tensor (batch 1)."""

    def __init__(self, meta: ModelMeta):
        self.meta = meta
        self.size = (meta.input_width, meta.input_height)
        self._mean = np.asarray(meta.mean, np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(meta.std, np.float32) * 255.0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Resize (area when shrinking, linear when enlarging) and lay out the tensor."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'expected an (H, W, 3) RGB image, got {rgb.shape}')
        h, w = rgb.shape[:2]
        if (w, h) != self.size:
            shrink = w > self.size[0] or h > self.size[1]
            rgb = cv2.resize(rgb, self.size,
                             interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        meta = self.meta
        if not meta.normalize_in_graph:
            x = (rgb.astype(np.float32) - self._mean) * self._inv_std
        elif meta.input_dtype == 'float32':
            x = rgb.astype(np.float32) * np.float32(1.0 / 255.0)
        else:
            x = rgb
        if meta.input_layout == 'NCHW':
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])


class Postprocessor:
    """Raw model output -> metric depth (float32 metres, NaN invalid) at a requested size."""

    def __init__(self, meta: ModelMeta, min_depth: Optional[float] = None,
                 max_depth: Optional[float] = None):
        self.meta = meta
        self.min_depth = float(min_depth) if min_depth else meta.min_depth
        self.max_depth = float(max_depth) if max_depth else meta.max_depth
        if not 0 < self.min_depth < self.max_depth:
            raise ValueError(f'need 0 < min_depth < max_depth, got '
                             f'[{self.min_depth}, {self.max_depth}]')

    def to_metric(self, raw: np.ndarray) -> np.ndarray:
        """Map the raw output to metres by output_mode (no range clipping)."""
        meta = self.meta
        y = np.asarray(raw, dtype=np.float32)
        if y.ndim > 2:
            y = y.reshape(y.shape[-2:])
        if not np.isfinite(y).all():
            bad = int(np.count_nonzero(~np.isfinite(y)))
            raise NonFiniteOutputError(f'model output has {bad} NaN/Inf values of {y.size}')
        scale, shift = np.float32(meta.output_scale), np.float32(meta.output_shift)
        with np.errstate(divide='ignore', invalid='ignore'):
            if meta.output_mode == 'metric':
                depth = y * scale + shift
            elif meta.output_mode == 'inverse_depth':
                depth = np.float32(1.0) / (y * scale + shift)
            else:  # disparity
                depth = scale / (y + shift)
        return depth

    def focal_scale(self, camera: Optional[Intrinsics]) -> float:
        """Return the metric correction for this camera (1 when the model has no focal)."""
        if camera is None or not self.meta.focal_rescale:
            return 1.0
        at_input = camera.resize(self.meta.input_width, self.meta.input_height)
        return self.meta.focal_scale(at_input.fx, at_input.fy)

    def __call__(self, raw: np.ndarray, out_size: Tuple[int, int],
                 camera: Optional[Intrinsics] = None) -> np.ndarray:
        """Return depth (H, W) float32 for out_size = (width, height), NaN where invalid."""
        depth = self.to_metric(raw)
        factor = self.focal_scale(camera)
        if factor != 1.0:
            depth *= np.float32(factor)
        lo, hi = np.float32(self.min_depth), np.float32(self.max_depth)
        # Mark out-of-range pixels at the model resolution (cheap), then resize: linear
        # interpolation spreads NaN to the neighbours it touches, so no output pixel mixes
        # a valid depth with an invalid one.
        depth[~((depth >= lo) & (depth <= hi))] = np.float32(math.nan)
        h, w = depth.shape
        if (w, h) != tuple(out_size):
            depth = cv2.resize(depth, tuple(out_size), interpolation=cv2.INTER_LINEAR)
        return depth
