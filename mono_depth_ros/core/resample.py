"""
Resampling the model output onto the depth image (no ROS).

The depth image is ``round(W * depth_size_ratio)`` x ``round(H * depth_size_ratio)`` (scaled down
further to ``max_output_pixels`` when that is set, see :func:`.camera.output_size`) and its
intrinsics are exactly ``camera.resize(out_w, out_h)``. Every output pixel centre is mapped
to the model output grid exactly (the pixel-edge convention of :mod:`.intrinsics`), then
sampled by ``depth_upsampling``: ``nearest``, ``bilinear``, or ``edge_aware`` (bilinear, but
NaN where the neighbours it mixes differ by more than ``edge_threshold`` relative depth:
no flying points between a foreground edge and the background; on a relative map, which
has no zero, more than ``edge_threshold`` of a typical depth, :func:`relative_spread`).
NaN never mixes with a valid depth: bilinear spreads it to the pixels it touches.

:class:`Axis` maps the output pixels along one axis onto the model output grid;
:func:`upsample` samples the grid with one of ``UPSAMPLING_MODES``.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

UPSAMPLING_MODES = ('nearest', 'bilinear', 'edge_aware')
#: chosen by the flying-point count on the real NYU and Redwood frames
#: (scripts/bench/bench_upsampling.py): bilinear draws ~5900 flying points per 640x480 frame,
#: edge_aware none, and at 0.1 it also keeps objects 10 % before their background apart
DEFAULT_UPSAMPLING = 'edge_aware'
DEFAULT_EDGE_THRESHOLD = 0.1


@dataclass(frozen=True)
class Axis:
    """
    How output pixels 0..n_out-1 along one axis sample a source axis of n_src pixels.

    Output pixels [lo, hi) lie inside the source region; for them the source coordinate of
    pixel u is ``alpha * u + beta`` (pixel centres at integers). ``aligned``: that map is
    the one cv2.resize uses for [lo, hi) -> n_src, so cv2 can do the bilinear part.
    """

    n_out: int
    n_src: int
    lo: int
    hi: int
    alpha: float
    beta: float
    aligned: bool

    @classmethod
    def create(cls, n_out: int, n_cam: int, start: float, length: float,
               n_src: int) -> 'Axis':
        """Map n_out output pixels of an n_cam-pixel axis onto a source spanning start+length."""
        # Output pixel u's centre is camera edge coordinate (u + 0.5) * n_cam / n_out; the
        # source's pixel k covers start + [k, k + 1] * length / n_src of the same edges.
        step = n_cam / n_out
        alpha = step * n_src / length
        beta = (0.5 * step - start) * n_src / length - 0.5
        lo = max(0, int(math.ceil(start / step - 0.5 - 1e-9)))
        hi = min(n_out, int(math.floor((start + length) / step - 0.5 + 1e-9)) + 1)
        first, count = start / step, length / step
        aligned = (abs(first - round(first)) < 1e-9 and abs(count - round(count)) < 1e-9 and
                   int(round(first)) == lo and int(round(count)) == hi - lo)
        return cls(n_out, n_src, lo, hi, alpha, beta, aligned)

    def coords(self) -> np.ndarray:
        """Return the source coordinates of output pixels lo..hi-1 (float64)."""
        return self.alpha * np.arange(self.lo, self.hi, dtype=np.float64) + self.beta

    def linear(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (i0, i1, weight of i1) of bilinear sampling, borders replicated as cv2."""
        x = np.clip(self.coords(), 0.0, self.n_src - 1)
        i0 = np.floor(x).astype(np.intp)
        i1 = np.minimum(i0 + 1, self.n_src - 1)
        return i0, i1, (x - i0).astype(np.float32)

    def nearest_index(self) -> np.ndarray:
        """Return the source pixel nearest to each output pixel lo..hi-1."""
        return np.clip(np.floor(self.coords() + 0.5), 0, self.n_src - 1).astype(np.intp)

    def mixes(self) -> bool:
        """Return False when every output pixel sits on a source pixel centre (no blending)."""
        x = self.coords()
        return not np.array_equal(x, np.round(x))

    def cell_index(self) -> np.ndarray:
        """Return the cell of each output pixel: k when it lies in [k - 1, k) (k = 0..n_src)."""
        if not self.mixes():
            return self.nearest_index()
        x = np.clip(self.coords(), -1.0, self.n_src - 1)
        return (np.floor(x).astype(np.intp) + 1)


def upsample(src: np.ndarray, ax_y: Axis, ax_x: Axis, mode: str, threshold: float,
             cache: Dict[str, Any], spread: Optional[float] = None) -> np.ndarray:
    """
    Resample src onto the output region [y.lo:y.hi, x.lo:x.hi] (see :class:`Axis`).

    ``spread`` (relative maps, see :func:`relative_spread`) makes edge_aware's test absolute.
    """
    aligned = ax_x.aligned and ax_y.aligned
    size = (ax_x.hi - ax_x.lo, ax_y.hi - ax_y.lo)
    if mode == 'nearest':
        if aligned:
            # cv2's exact nearest takes floor((u + 0.5) * n_src / n_out): the same pixel.
            return cv2.resize(src, size, interpolation=cv2.INTER_NEAREST_EXACT)
        idx = cache.get('nearest')
        if idx is None:
            idx = cache['nearest'] = (ax_y.nearest_index(), ax_x.nearest_index())
        return src[:, idx[1]][idx[0]]
    if aligned:
        out = cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)
    else:
        lin = cache.get('lin')
        if lin is None:
            lin = cache['lin'] = (ax_y.linear(), ax_x.linear())
        (y0, y1, wy), (x0, x1, wx) = lin
        # Separable: columns first at the source height, then rows at the output size.
        left, right = src[:, x0], src[:, x1]
        cols = left + (right - left) * wx
        top, bottom = cols[y0], cols[y1]
        out = top + (bottom - top) * wy[:, None]
    if mode == 'edge_aware':
        cells = cache.get('cells')
        if cells is None:
            iy = ax_y.cell_index()
            # Output rows of cell row k: runs[k]:runs[k + 1] (the index never decreases).
            runs = np.searchsorted(iy, np.arange(ax_y.n_src + 2))
            cells = cache['cells'] = (runs, ax_x.cell_index(), ax_y.mixes(), ax_x.mixes())
        runs, ix, mix_y, mix_x = cells
        mixed = edge_cells(src, threshold, mix_y, mix_x, spread)
        rows = np.flatnonzero(mixed.any(axis=1))
        nan = np.float32(np.nan)
        # Written, not added: arithmetic on NaN is several times slower on many CPUs.
        for k, row in zip(rows.tolist(), mixed[rows][:, ix]):
            a, b = runs[k], runs[k + 1]
            if b > a:
                np.copyto(out[a:b], nan, where=row)
    return out


def edge_cells(depth: np.ndarray, threshold: float, mix_y: bool = True,
               mix_x: bool = True, spread: Optional[float] = None) -> np.ndarray:
    """
    Return bools per cell: the source pixels it blends span more than threshold (relative).

    Metric depth: more than ``threshold`` times the nearer one (``hi > lo * (1 + t)``).
    A relative map has no zero (any shift, either sign), so the ratio means nothing
    there; with ``spread`` given the test is ``hi - lo > t * spread`` instead, which no
    shift or sign of the map changes (:func:`relative_spread`).

    Along a mixing axis cell k blends source pixels k - 1 and k (borders replicated), so
    there are n + 1 cells, exactly those bilinear interpolation blends for a coordinate in
    [k - 1, k). Along an axis that does not mix (output pixels on source centres) cell k is
    source pixel k alone. Cells touching NaN do not matter: bilinear output there is NaN.
    """
    my, mx = int(mix_y), int(mix_x)
    p = cv2.copyMakeBorder(depth, my, my, mx, mx, cv2.BORDER_REPLICATE)
    # The max and min over each (1 + my) x (1 + mx) window whose top-left is the cell.
    kernel = np.ones((1 + my, 1 + mx), np.uint8)
    hi = cv2.dilate(p, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(p, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    h, w = p.shape
    hi, lo = hi[:h - my, :w - mx], lo[:h - my, :w - mx]
    with np.errstate(invalid='ignore'):
        if spread is not None:
            return (hi - lo) > np.float32(threshold * spread)
        return hi > lo * np.float32(1.0 + threshold)


#: a typical depth is about 1.5 x the spread between a frame's 10th and 90th percentile
#: depth: the median ratio median / (p90 - p10) over 36 real RGB-D frames (NYU, Redwood,
#: TUM, 7-Scenes) is 1.48 (0.79-2.79); with 1.5 the relative test marks 3.9 % of the cells
#: against the metric test's 4.2 %, the same cells at IoU 0.83 (edge threshold 0.1)
RELATIVE_SPREAD_FACTOR = 1.5


def relative_spread(relative: np.ndarray) -> float:
    """
    Return the step edge_aware counts as a whole typical depth on a relative map.

    ``RELATIVE_SPREAD_FACTOR`` x (p90 - p10) of the map's finite values: for an affine
    map ``a * depth + b`` that is ``|a|`` times a typical depth whatever ``b`` and the sign
    of ``a``, so ``edge_threshold`` keeps meaning "a jump of that fraction of the depth".
    A constant (or empty) map has no edges: inf.
    """
    values = relative[np.isfinite(relative)]
    if values.size < 2:
        return math.inf
    p10, p90 = np.percentile(values, (10.0, 90.0))
    spread = float(p90 - p10) * RELATIVE_SPREAD_FACTOR
    return spread if spread > 0 and math.isfinite(spread) else math.inf
