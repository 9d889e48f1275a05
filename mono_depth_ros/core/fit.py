"""
Fitting a camera image to the model input, and the intrinsics that follow (no ROS).

``resize_mode`` (the metadata's, or the config's override) fits a camera image of another
aspect to the model input (``w`` x ``h``):

* ``stretch``: the whole image is resized to w x h; x and y scale independently.
* ``crop``: the centred integer box of the model's aspect is cut out and resized; output
  pixels outside that box are NaN.
* ``pad``: the image is resized to fit inside w x h (whole model pixels), centred, and the
  rest filled with the normalisation mean colour; the padding is cut off the output again.

The metadata's ``fit_aspect`` replaces the input's w / h as the aspect that crop and pad
fit (a model trained on 4:3 pictures squeezed to a square), and its ``crop_fraction`` keeps
only the centred fraction of each side of the region (FastDepth's 0.912 zoom): the input
camera and the output grid's intrinsics follow the integer box actually cut out.

A model with ``size_multiple`` N takes, per camera, a size with about the camera's aspect,
each side a multiple of N, as its ``size_policy`` says (:func:`model_input_size`): about the
metadata's area, or the metadata's size as a lower or upper bound (Depth Anything's
short side >= 518). The two sides' factors then differ slightly; the intrinsics follow
each exactly.

:func:`make_plan` fits one image size (a :class:`Plan`); once the model output's shape is
known, :func:`native_geometry` cuts the padding off it and maps the depth image onto it
(:mod:`.resample`), and :func:`grid_camera` and :func:`input_camera` give the exact
intrinsics of the output grid and of the model input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Dict, Optional, Tuple

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.core.resample import Axis
import numpy as np


class FrameError(ValueError):
    """A frame (or the configuration it runs with) cannot be processed; the text says why."""


def resize_image(rgb: np.ndarray, size: Tuple[int, int], dst: Optional[np.ndarray] = None):
    """Resize to size = (w, h): area averaging when shrinking, bilinear when enlarging."""
    h, w = rgb.shape[:2]
    if (w, h) == tuple(size):
        if dst is None:
            return rgb
        dst[...] = rgb
        return dst
    shrink = w > size[0] or h > size[1]
    return cv2.resize(rgb, tuple(size), dst=dst,
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class Preprocessor:
    """RGB uint8 (H, W, 3) -> the model's input tensor (batch 1), stretched to the meta size."""

    def __init__(self, meta: ModelMeta):
        self.meta = meta
        self.size = (meta.input_width, meta.input_height)
        self._mean = np.asarray(meta.mean, np.float32) * 255.0
        self._inv_std = 1.0 / (np.asarray(meta.std, np.float32) * 255.0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Resize (area when shrinking, linear when enlarging) and lay out the tensor."""
        check_rgb(rgb)
        return self.tensor(resize_image(rgb, self.size))

    def tensor(self, rgb: np.ndarray) -> np.ndarray:
        """Lay out an image already at the model's input size as its (batch 1) tensor."""
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

    @property
    def pad_colour(self) -> Tuple[int, int, int]:
        """Return the colour that pads an image: the normalisation mean (0 once normalised)."""
        return tuple(int(round(v)) for v in self._mean)


def check_rgb(rgb: np.ndarray) -> None:
    """Raise FrameError unless rgb is an (H, W, 3) uint8 image of at least one pixel."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or \
            rgb.dtype != np.uint8 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        shape = getattr(rgb, 'shape', None)
        raise FrameError(f'expected an (H, W, 3) uint8 RGB image, got {shape} '
                         f'{getattr(rgb, "dtype", type(rgb).__name__)}')


def model_input_size(meta: ModelMeta, width: int, height: int) -> Tuple[int, int]:
    """Return the (w, h) the model runs at for a width x height camera image (size_policy)."""
    rule = meta.size_rule
    if rule == 'fixed' or meta.size_multiple <= 0:
        return meta.input_width, meta.input_height
    n = meta.size_multiple
    if rule == 'area':
        area = meta.input_width * meta.input_height
        aspect = width / height
        w = max(n, int(round(math.sqrt(area * aspect) / n)) * n)
        h = max(n, int(round(math.sqrt(area / aspect) / n)) * n)
        return w, h
    # Depth-Anything-V2 depth_anything_v2/util/transform.py Resize.get_size (lines 62-107)
    # with keep_aspect_ratio: one scale for both sides, the larger of the two per-side
    # scales for lower_bound (both sides reach the bound), the smaller for upper_bound;
    # then constrain_to_multiple_of (lines 51-60): the nearest multiple (numpy's round,
    # halves to even), floored when above an upper bound, ceiled when below a lower one.
    sx, sy = meta.input_width / width, meta.input_height / height
    lower = rule == 'lower_bound'
    scale = max(sx, sy) if lower else min(sx, sy)

    def side(x: float, bound: int) -> int:
        y = int(np.round(x / n)) * n
        if not lower and y > bound:
            y = int(math.floor(x / n)) * n
        if lower and y < bound:
            y = int(math.ceil(x / n)) * n
        return max(n, y)

    return side(scale * width, meta.input_width), side(scale * height, meta.input_height)


# -- the plan for one (camera size, config) ---------------------------------------------------
@dataclass
class Plan:
    """Everything about a frame that depends only on its size and the configuration."""

    mode: str
    in_size: Tuple[int, int]           # model input (w, h)
    box: Tuple[int, int, int, int]     # crop: the image box (x0, y0, w, h) the model sees
    inner: Tuple[int, int, int, int]   # pad: where the image lies in the input (x0, y0, w, h)
    out_size: Tuple[int, int]          # depth image (w, h)
    cam_size: Tuple[int, int] = (0, 0)  # camera image (w, h)
    native_cut: Optional[Tuple[slice, slice]] = None
    regions: Optional[tuple] = None    # ((start, length) y, x) of the grid, camera edges
    axes: Optional[Tuple[Axis, Axis]] = None
    cache: Dict[str, Any] = field(default_factory=dict)
    canvas: Optional[np.ndarray] = None


def make_plan(meta: ModelMeta, width: int, height: int, mode: str,
              out_size: Tuple[int, int]) -> Plan:
    """Return the fit of a width x height image to the model input (the output still open)."""
    w, h = model_input_size(meta, width, height)
    box = (0, 0, width, height)
    inner = (0, 0, w, h)
    # The camera aspect that fills the input (ModelMeta 'Fitting'): w / h unless the
    # model was trained on pictures of another aspect squeezed to its input.
    aspect = meta.fit_aspect or w / h
    if mode == 'crop':
        if width > height * aspect:   # wider than the model: cut the sides
            cw = min(width, max(1, int(round(height * aspect))))
            box = ((width - cw) // 2, 0, cw, height)
        else:
            ch = min(height, max(1, int(round(width / aspect))))
            box = (0, (height - ch) // 2, width, ch)
    frac = meta.crop_fraction
    if frac < 1.0:
        bx, by, bw, bh = box
        cw, ch = max(1, int(round(bw * frac))), max(1, int(round(bh * frac)))
        box = (bx + (bw - cw) // 2, by + (bh - ch) // 2, cw, ch)
    if mode == 'pad':
        bw, bh = box[2], box[3]
        if bw > bh * aspect:   # wider: full model width, pad top and bottom
            ih = min(h, max(1, int(round(h * aspect * bh / bw))))
            inner = (0, (h - ih) // 2, w, ih)
        else:
            iw = min(w, max(1, int(round(w * bw / (bh * aspect)))))
            inner = ((w - iw) // 2, 0, iw, h)
    return Plan(mode, (w, h), box, inner, out_size, (width, height))


def native_geometry(plan: Plan, shape: Tuple[int, int]) -> None:
    """Fix the cut of the padding and the output axes once the output shape is known."""
    oh, ow = shape
    w, h = plan.in_size
    x0, y0, iw, ih = plan.inner
    bx, by, bw, bh = plan.box
    cuts, regions = [], []
    for n_out, n_in, p0, pn, b0, bn in ((oh, h, y0, ih, by, bh), (ow, w, x0, iw, bx, bw)):
        # Output pixels of the model inside the image (the padding cut off); when the
        # padding is not whole output pixels, the part-covered ones go too.
        c0 = int(math.ceil(p0 * n_out / n_in - 1e-9))
        c1 = int(math.floor((p0 + pn) * n_out / n_in + 1e-9))
        if c1 <= c0:
            raise FrameError(f'the model output ({ow}x{oh}) is too small for the image '
                             f'region {iw}x{ih} of its {w}x{h} input')
        cuts.append(slice(c0, c1))
        # Camera edge coordinates of that grid: input pixel p0 is camera edge b0.
        px = n_in / n_out
        regions.append((b0 + (c0 * px - p0) * bn / pn, (c1 - c0) * px * bn / pn))
    plan.native_cut = (cuts[0], cuts[1])
    plan.regions = (regions[0], regions[1])
    out_w, out_h = plan.out_size
    plan.axes = (Axis.create(out_h, plan.cam_size[1], *regions[0],
                             cuts[0].stop - cuts[0].start),
                 Axis.create(out_w, plan.cam_size[0], *regions[1],
                             cuts[1].stop - cuts[1].start))


def grid_camera(plan: Plan, camera: Intrinsics) -> Intrinsics:
    """Return the exact intrinsics of the model's output grid (padding cut off)."""
    (sy, ly), (sx, lx) = plan.regions
    ny = plan.native_cut[0].stop - plan.native_cut[0].start
    nx = plan.native_cut[1].stop - plan.native_cut[1].start
    kx, ky = nx / lx, ny / ly
    return Intrinsics(camera.fx * kx, camera.fy * ky, (camera.cx + 0.5 - sx) * kx - 0.5,
                      (camera.cy + 0.5 - sy) * ky - 0.5, nx, ny)


def input_camera(plan: Plan, camera: Intrinsics) -> Intrinsics:
    """Return the exact intrinsics of the model input (w x h, padding included)."""
    x0, y0, iw, ih = plan.inner
    bx, by, bw, bh = plan.box
    kx, ky = iw / bw, ih / bh
    w, h = plan.in_size
    return Intrinsics(camera.fx * kx, camera.fy * ky,
                      (camera.cx + 0.5 - bx) * kx - 0.5 + x0,
                      (camera.cy + 0.5 - by) * ky - 0.5 + y0, w, h)
