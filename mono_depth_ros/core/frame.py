"""
The one per-frame pipeline: RGB image + camera -> depth, intrinsics, colour map, cloud (no ROS).

:class:`FrameProcessor` is what depth_node, depth_bench and training/evaluate.py all run,
so a figure measured in one holds in the others::

    processor = FrameProcessor(backend.meta, backend, FrameConfig(want_points=True))
    result = processor.run(rgb, camera)      # FrameResult
    result.depth, result.camera, result.cloud, result.times

Stages (each timed in ``FrameResult.times``, seconds): ``preprocess`` (fit the image to the
model input, lay out the tensor), ``inference``, ``postprocess`` (output to metres at the
output size), ``colored`` and ``cloud`` (only when asked for).

Geometry
--------
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

The depth image is ``round(W * depth_size_ratio)`` x ``round(H * depth_size_ratio)`` (scaled down
further to ``max_output_pixels`` when that is set, see :func:`.camera.output_size`) and its
intrinsics are exactly ``camera.resize(out_w, out_h)``. Every output pixel centre is mapped
to the model output grid exactly (the pixel-edge convention of :mod:`.intrinsics`), then
sampled by ``depth_upsampling``: ``nearest``, ``bilinear``, or ``edge_aware`` (bilinear, but
NaN where the neighbours it mixes differ by more than ``edge_threshold`` relative depth:
no flying points between a foreground edge and the background; on a relative map, which
has no zero, more than ``edge_threshold`` of a typical depth, :func:`relative_spread`).
NaN never mixes with a valid depth: bilinear spreads it to the pixels it touches.

Focal rescaling (``meta.focal_rescale``) uses the camera's per-axis focal at the model
input after crop or pad. The depth image follows REP 117: beyond ``max_depth`` is +Inf,
nearer than ``min_depth`` -Inf, and no estimate (crop or pad margins, edge_aware breaks, a
NaN or Inf from the model, negative inverse depth) is NaN; their cloud points are all NaN,
as depth_image_proc makes them. A model output without a single finite value is refused
(:class:`NonFiniteOutputError`).

Scale sources (relative models)
-------------------------------
A relative model (``not meta.is_metric``) gives ``FrameResult.relative`` (affine-invariant,
larger = farther) and no metric depth, unless ``run(..., scale=...)`` supplies one:

* a ``(scale, shift)`` tuple, or
* an object with ``fit(sample: ScaleInput) -> Optional[Tuple[float, float]]``.

Either way ``(a, b)`` acts in the model's affine space, ``sample.native``:
``native' = a * native + b``, then depth = ``native'`` or ``1 / native'`` when
``sample.inverse`` (the inverse-depth modes). ``native`` is at the model output resolution
(padding cut off), with its exact intrinsics ``sample.camera``, so a fit can project sparse
points or a ground plane into it. For a metric model ``native`` is its focal-rescaled
metric output in the same space, so a source corrects its scale the same way. ``fit``
returning None means: no metric output this frame (``depth``, ``colored`` and ``cloud`` are
None). Holding, smoothing and rejecting fits is the source's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
import time
from typing import Any, Callable, Dict, Optional, Tuple

import cv2
from mono_depth_ros.core.camera import output_size
from mono_depth_ros.core.colormap import colorize_depth
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta, RESIZE_MODES
from mono_depth_ros.core.pointcloud import CloudBuffer, CloudPacker
import numpy as np

UPSAMPLING_MODES = ('nearest', 'bilinear', 'edge_aware')
#: chosen by the flying-point count on the real NYU and Redwood frames
#: (scripts/bench_upsampling.py): bilinear draws ~5900 flying points per 640x480 frame,
#: edge_aware none, and at 0.1 it also keeps objects 10 % before their background apart
DEFAULT_UPSAMPLING = 'edge_aware'
DEFAULT_EDGE_THRESHOLD = 0.1
STAGES = ('preprocess', 'inference', 'postprocess', 'colored', 'cloud')


class FrameError(ValueError):
    """A frame (or the configuration it runs with) cannot be processed; the text says why."""


class NonFiniteOutputError(FrameError):
    """The model produced NaN or Inf: the frame must not be published."""


@dataclass(frozen=True)
class FrameConfig:
    """What one frame computes; 0 depths and an empty resize_mode mean: the metadata's."""

    min_depth: float = 0.0
    max_depth: float = 0.0
    depth_size_ratio: float = 1.0
    max_output_pixels: int = 0
    resize_mode: str = ''
    depth_upsampling: str = DEFAULT_UPSAMPLING
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD
    cloud_decimation: int = 2
    points_rgb: bool = True
    want_colored: bool = False
    want_points: bool = False

    def __post_init__(self):
        if not (math.isfinite(self.min_depth) and math.isfinite(self.max_depth)) or \
                self.min_depth < 0 or self.max_depth < 0:
            raise FrameError(f'min_depth and max_depth must be >= 0 (0 = from the model), got '
                             f'{self.min_depth}, {self.max_depth}')
        if not (math.isfinite(self.depth_size_ratio) and 0 < self.depth_size_ratio <= 1):
            raise FrameError(f'depth_size_ratio must be in (0, 1], got {self.depth_size_ratio}')
        if isinstance(self.max_output_pixels, bool) or \
                not isinstance(self.max_output_pixels, int) or self.max_output_pixels < 0:
            raise FrameError(f'max_output_pixels must be an integer >= 0 (0 = no cap), got '
                             f'{self.max_output_pixels!r}')
        if self.resize_mode not in ('',) + RESIZE_MODES:
            raise FrameError(f'resize_mode must be one of {RESIZE_MODES} (or empty: from the '
                             f'model), got {self.resize_mode!r}')
        if self.depth_upsampling not in UPSAMPLING_MODES:
            raise FrameError(f'depth_upsampling must be one of {UPSAMPLING_MODES}, got '
                             f'{self.depth_upsampling!r}')
        if not (math.isfinite(self.edge_threshold) and self.edge_threshold > 0):
            raise FrameError(f'edge_threshold must be > 0, got {self.edge_threshold}')
        if isinstance(self.cloud_decimation, bool) or not isinstance(self.cloud_decimation,
                                                                     int) or \
                self.cloud_decimation < 1:
            raise FrameError(f'cloud_decimation must be an integer >= 1, got '
                             f'{self.cloud_decimation!r}')


@dataclass(frozen=True)
class ScaleInput:
    """What a scale source sees of one frame (see the module docstring)."""

    native: np.ndarray
    inverse: bool
    camera: Intrinsics
    meta: ModelMeta

    def depth_like(self) -> np.ndarray:
        """Return native mapped to depth order (1 / native for the inverse modes)."""
        if not self.inverse:
            return self.native
        return _safe_inverse(self.native)


@dataclass
class FrameResult:
    """One processed frame; arrays are new for every frame (callers may keep them)."""

    camera: Intrinsics
    depth: Optional[np.ndarray] = None
    relative: Optional[np.ndarray] = None
    colored: Optional[np.ndarray] = None
    cloud: Optional[CloudBuffer] = None
    cloud_camera: Optional[Intrinsics] = None
    model_camera: Optional[Intrinsics] = None
    scale: Optional[Tuple[float, float]] = None
    min_depth: float = 0.0
    max_depth: float = 0.0
    times: Dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the calling thread per stage (its share of inference included), which
    #: other processes on the machine do not inflate the way they do ``times``
    cpu: Dict[str, float] = field(default_factory=dict)
    #: CPU seconds of the calling thread inside backend.infer (to tell the rest's CPU cost)
    inference_cpu: float = 0.0
    #: model output pixels that were NaN or Inf (published as NaN: no estimate)
    nonfinite: int = 0
    #: depth holds +Inf or -Inf (beyond max_depth, nearer than min_depth; REP 117)
    out_of_range: bool = False


# -- the model input --------------------------------------------------------------------------
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
        _check_rgb(rgb)
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


def _check_rgb(rgb: np.ndarray) -> None:
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


# -- resampling the output ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Axis:
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
               n_src: int) -> '_Axis':
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


def _upsample(src: np.ndarray, ax_y: _Axis, ax_x: _Axis, mode: str, threshold: float,
              cache: Dict[str, Any], spread: Optional[float] = None) -> np.ndarray:
    """
    Resample src onto the output region [y.lo:y.hi, x.lo:x.hi] (see :class:`_Axis`).

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
        mixed = _edge_cells(src, threshold, mix_y, mix_x, spread)
        rows = np.flatnonzero(mixed.any(axis=1))
        nan = np.float32(np.nan)
        # Written, not added: arithmetic on NaN is several times slower on many CPUs.
        for k, row in zip(rows.tolist(), mixed[rows][:, ix]):
            a, b = runs[k], runs[k + 1]
            if b > a:
                np.copyto(out[a:b], nan, where=row)
    return out


def _edge_cells(depth: np.ndarray, threshold: float, mix_y: bool = True,
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


def _depth_of_inverse(x: np.ndarray) -> np.ndarray:
    """Return 1 / x as depth: 0 (no disparity) is +Inf, far away; x < 0 is NaN."""
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.float32(1.0) / x
    out[~(x >= 0)] = np.float32(np.nan)
    return out


def _safe_inverse(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.float32(1.0) / x
    out[~(x > 0)] = np.float32(np.nan)
    return out


class _Clock:
    """Wall-clock and this thread's CPU time per stage, lap by lap."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.thread_time()

    def lap(self, result: 'FrameResult', stage: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        result.times[stage] = wall - self.wall
        result.cpu[stage] = cpu - self.cpu
        self.wall, self.cpu = wall, cpu


# -- the plan for one (camera size, config) ---------------------------------------------------
@dataclass
class _Plan:
    """Everything about a frame that depends only on its size and the configuration."""

    mode: str
    in_size: Tuple[int, int]           # model input (w, h)
    box: Tuple[int, int, int, int]     # crop: the image box (x0, y0, w, h) the model sees
    inner: Tuple[int, int, int, int]   # pad: where the image lies in the input (x0, y0, w, h)
    out_size: Tuple[int, int]          # depth image (w, h)
    cam_size: Tuple[int, int] = (0, 0)  # camera image (w, h)
    native_cut: Optional[Tuple[slice, slice]] = None
    regions: Optional[tuple] = None    # ((start, length) y, x) of the grid, camera edges
    axes: Optional[Tuple[_Axis, _Axis]] = None
    cache: Dict[str, Any] = field(default_factory=dict)
    canvas: Optional[np.ndarray] = None


class FrameProcessor:
    """
    Run one camera frame through a backend and its metadata (see the module docstring).

    ``backend`` needs ``infer(tensor) -> (h, w) float32``; ``log`` (optional) receives one
    line when the geometry for a new image size is planned. Not thread-safe: give each
    worker thread its own processor.
    """

    def __init__(self, meta: ModelMeta, backend, config: Optional[FrameConfig] = None,
                 log: Optional[Callable[[str], None]] = None):
        self.meta = meta
        self.backend = backend
        self.config = config or FrameConfig()
        self.log = log
        self.pre = Preprocessor(meta)
        self.packer = CloudPacker()
        self._plans: Dict[tuple, _Plan] = {}
        self._colour_index: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}
        self.depth_range(self.config)

    def depth_range(self, config: Optional[FrameConfig] = None) -> Tuple[float, float]:
        """Return (min_depth, max_depth) of a configuration; FrameError if empty."""
        config = config or self.config
        lo = config.min_depth or self.meta.min_depth
        hi = config.max_depth or self.meta.max_depth
        if not 0 < lo < hi:
            raise FrameError(f'min_depth ({lo}) must be smaller than max_depth ({hi})')
        return lo, hi

    def resize_mode(self, config: Optional[FrameConfig] = None) -> str:
        """Return the resize mode in force: the config's override, else the metadata's."""
        return (config or self.config).resize_mode or self.meta.resize_mode

    # -- geometry -------------------------------------------------------------------------
    def plan(self, width: int, height: int, config: Optional[FrameConfig] = None) -> _Plan:
        """Return the (cached) geometry for a width x height image under config."""
        config = config or self.config
        mode = self.resize_mode(config)
        key = (width, height, mode, config.depth_size_ratio, config.max_output_pixels)
        plan = self._plans.get(key)
        if plan is None:
            out_w, out_h, _capped = output_size(width, height, config.depth_size_ratio,
                                                config.max_output_pixels)
            plan = self._make_plan(width, height, mode, (out_w, out_h))
            if len(self._plans) >= 8:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
            if self.log is not None:
                self.log(f'frame geometry {width}x{height} -> model {plan.in_size[0]}x'
                         f'{plan.in_size[1]} ({mode}) -> depth {plan.out_size[0]}x'
                         f'{plan.out_size[1]}')
        return plan

    def _make_plan(self, width: int, height: int, mode: str,
                   out_size: Tuple[int, int]) -> _Plan:
        w, h = model_input_size(self.meta, width, height)
        box = (0, 0, width, height)
        inner = (0, 0, w, h)
        # The camera aspect that fills the input (ModelMeta 'Fitting'): w / h unless the
        # model was trained on pictures of another aspect squeezed to its input.
        aspect = self.meta.fit_aspect or w / h
        if mode == 'crop':
            if width > height * aspect:   # wider than the model: cut the sides
                cw = min(width, max(1, int(round(height * aspect))))
                box = ((width - cw) // 2, 0, cw, height)
            else:
                ch = min(height, max(1, int(round(width / aspect))))
                box = (0, (height - ch) // 2, width, ch)
        frac = self.meta.crop_fraction
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
        return _Plan(mode, (w, h), box, inner, out_size, (width, height))

    def _native_geometry(self, plan: _Plan, shape: Tuple[int, int]) -> None:
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
        plan.axes = (_Axis.create(out_h, plan.cam_size[1], *regions[0],
                                  cuts[0].stop - cuts[0].start),
                     _Axis.create(out_w, plan.cam_size[0], *regions[1],
                                  cuts[1].stop - cuts[1].start))

    @staticmethod
    def grid_camera(plan: _Plan, camera: Intrinsics) -> Intrinsics:
        """Return the exact intrinsics of the model's output grid (padding cut off)."""
        (sy, ly), (sx, lx) = plan.regions
        ny = plan.native_cut[0].stop - plan.native_cut[0].start
        nx = plan.native_cut[1].stop - plan.native_cut[1].start
        kx, ky = nx / lx, ny / ly
        return Intrinsics(camera.fx * kx, camera.fy * ky, (camera.cx + 0.5 - sx) * kx - 0.5,
                          (camera.cy + 0.5 - sy) * ky - 0.5, nx, ny)

    @staticmethod
    def input_camera(plan: _Plan, camera: Intrinsics) -> Intrinsics:
        """Return the exact intrinsics of the model input (w x h, padding included)."""
        x0, y0, iw, ih = plan.inner
        bx, by, bw, bh = plan.box
        kx, ky = iw / bw, ih / bh
        w, h = plan.in_size
        return Intrinsics(camera.fx * kx, camera.fy * ky,
                          (camera.cx + 0.5 - bx) * kx - 0.5 + x0,
                          (camera.cy + 0.5 - by) * ky - 0.5 + y0, w, h)

    def focal_factor(self, plan: _Plan, camera: Intrinsics) -> float:
        """Return the metric correction for this camera: its per-axis focal at the input."""
        if not self.meta.focal_rescale:
            return 1.0
        at_input = self.input_camera(plan, camera)
        return self.meta.focal_scale(at_input.fx, at_input.fy)

    # -- one frame ------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray, plan: _Plan) -> np.ndarray:
        """Return the model input tensor for rgb under plan."""
        bx, by, bw, bh = plan.box
        if (bw, bh) != plan.cam_size:   # a crop, or the metadata's crop_fraction
            rgb = rgb[by:by + bh, bx:bx + bw]
        if plan.mode != 'pad':
            return self.pre.tensor(resize_image(rgb, plan.in_size))
        x0, y0, iw, ih = plan.inner
        if plan.canvas is None:
            w, h = plan.in_size
            plan.canvas = np.empty((h, w, 3), np.uint8)
            plan.canvas[...] = self.pre.pad_colour
        resize_image(rgb, (iw, ih), dst=plan.canvas[y0:y0 + ih, x0:x0 + iw])
        return self.pre.tensor(plan.canvas)

    def run(self, rgb: np.ndarray, camera: Intrinsics, config: Optional[FrameConfig] = None,
            scale=None) -> FrameResult:
        """
        Process one frame; camera describes rgb exactly (same size).

        ``config`` overrides the processor's for this frame (the node passes its snapshot);
        ``scale`` is a scale source or a (scale, shift) pair (module docstring). Raises
        FrameError (NonFiniteOutputError for a NaN/Inf model output) for a frame that must
        not be published; backend errors pass through.
        """
        config = config or self.config
        clock = _Clock()
        _check_rgb(rgb)
        height, width = rgb.shape[:2]
        if (camera.width, camera.height) != (width, height):
            raise FrameError(f'the camera is for {camera.width}x{camera.height} but the image '
                             f'is {width}x{height}')
        lo, hi = self.depth_range(config)
        plan = self.plan(width, height, config)
        tensor = self.preprocess(rgb, plan)
        result = FrameResult(camera=camera.resize(*plan.out_size), min_depth=lo, max_depth=hi)
        clock.lap(result, 'preprocess')
        raw = self.backend.infer(tensor)
        clock.lap(result, 'inference')
        result.inference_cpu = result.cpu['inference']
        self._postprocess(result, raw, plan, camera, config, scale)
        clock.lap(result, 'postprocess')
        if result.depth is not None and config.want_colored:
            result.colored = colorize_depth(result.depth, lo, hi)
            clock.lap(result, 'colored')
        if result.depth is not None and config.want_points:
            self._cloud(result, rgb, config)
            clock.lap(result, 'cloud')
        return result

    def _postprocess(self, result: FrameResult, raw: np.ndarray, plan: _Plan,
                     camera: Intrinsics, config: FrameConfig, scale) -> None:
        meta = self.meta
        y = np.asarray(raw, dtype=np.float32)
        if y.ndim > 2:
            y = y.reshape(y.shape[-2:])
        if y.ndim != 2:
            raise FrameError(f'the model output has shape {np.shape(raw)}; expected a map')
        finite = np.isfinite(y)
        if not finite.all():
            bad = int(y.size - np.count_nonzero(finite))
            if bad == y.size:
                raise NonFiniteOutputError(f'model output has {bad} NaN/Inf values of {y.size}')
            # Some pixels without an estimate: NaN there (REP 117), the rest is published.
            y = np.where(finite, y, np.float32(np.nan))
            result.nonfinite = bad
        if plan.native_cut is None or plan.cache.get('shape') != y.shape:
            plan.cache.clear()
            self._native_geometry(plan, y.shape)
            plan.cache['shape'] = y.shape
        y = y[plan.native_cut]
        native_camera = self.grid_camera(plan, camera)
        result.model_camera = native_camera
        native = self.native(y, self.focal_factor(plan, camera) if meta.is_metric else 1.0)
        ax_y, ax_x = plan.axes
        inner_shape = (ax_y.hi - ax_y.lo, ax_x.hi - ax_x.lo)
        full = inner_shape == (plan.out_size[1], plan.out_size[0])
        mode, threshold = config.depth_upsampling, config.edge_threshold

        def place(small: np.ndarray, spread: Optional[float] = None) -> np.ndarray:
            out = _upsample(small, ax_y, ax_x, mode, threshold, plan.cache, spread)
            if full:
                return out
            canvas = np.full((plan.out_size[1], plan.out_size[0]), np.nan, np.float32)
            canvas[ax_y.lo:ax_y.hi, ax_x.lo:ax_x.hi] = out
            return canvas

        if not meta.is_metric:
            relative = native if not meta.inverse else _safe_inverse(native)
            spread = relative_spread(relative) if mode == 'edge_aware' else None
            result.relative = place(relative, spread)
        fit = scale
        if fit is not None and not isinstance(fit, tuple):
            fit = scale.fit(ScaleInput(native, meta.inverse, native_camera, meta))
        if fit is None and not meta.is_metric:
            return
        if fit is not None:
            a, b = (float(v) for v in fit)
            if not (math.isfinite(a) and math.isfinite(b)) or a == 0:
                raise FrameError(f'scale source gave an unusable scale {a}, shift {b}')
            native = native * np.float32(a) + np.float32(b)
            result.scale = (a, b)
        depth = _depth_of_inverse(native) if meta.inverse else native
        lo, hi = np.float32(result.min_depth), np.float32(result.max_depth)
        # REP 117 at the model resolution (cheap), then resampled: beyond max_depth +Inf,
        # nearer than min_depth -Inf, no estimate NaN. The resampling itself only sees NaN
        # for all three, so that an invalid value never mixes with a valid one; an output
        # pixel left NaN then takes the kind of its nearest model pixel, when out of range.
        with np.errstate(invalid='ignore'):
            far, near = depth > hi, depth < lo
        depth[~((depth >= lo) & (depth <= hi))] = np.float32(np.nan)
        out = place(depth)
        if far.any() or near.any():
            kind = far.view(np.uint8) + 2 * near.view(np.uint8)
            kind_out = _upsample(kind, ax_y, ax_x, 'nearest', threshold, plan.cache)
            inner = out if full else out[ax_y.lo:ax_y.hi, ax_x.lo:ax_x.hi]
            unset = np.isnan(inner)
            inner[unset & (kind_out == 1)] = np.float32(np.inf)
            inner[unset & (kind_out == 2)] = np.float32(-np.inf)
            result.out_of_range = True
        result.depth = out

    def native(self, y: np.ndarray, focal_factor: float = 1.0) -> np.ndarray:
        """
        Map the raw output to the model's affine space (a new float32 array).

        Depth for the depth-like modes, inverse depth for the inverse ones, with a metric
        model's focal correction (:meth:`focal_factor`) applied.
        """
        meta = self.meta
        if meta.output_mode == 'disparity':
            native = (y + np.float32(meta.output_shift)) * np.float32(1.0 / meta.output_scale)
        else:
            native = y * np.float32(meta.output_scale) + np.float32(meta.output_shift)
        if focal_factor != 1.0:
            if meta.inverse:
                native /= np.float32(focal_factor)
            else:
                native *= np.float32(focal_factor)
        return native

    def _cloud(self, result: FrameResult, rgb: np.ndarray, config: FrameConfig) -> None:
        step = config.cloud_decimation
        depth = result.depth
        sub = np.ascontiguousarray(depth[::step, ::step])
        if result.out_of_range:
            # +-Inf depth (out of range) has no point: NaN, as depth_image_proc's
            # convertDepth leaves it (depth_image_proc/conversions.hpp).
            sub = np.where(np.isfinite(sub), sub, np.float32(np.nan))
        colour = None
        if config.points_rgb:
            out_w, out_h = result.camera.width, result.camera.height
            if (out_w, out_h) == (rgb.shape[1], rgb.shape[0]) and out_w % step == 0 and \
                    out_h % step == 0:
                # cv2's (non-exact) nearest keeps pixels 0, step, 2 step, ... here: the same
                # pixels as rgb[::step, ::step], several times faster than numpy's copy.
                colour = cv2.resize(rgb, (out_w // step, out_h // step),
                                    interpolation=cv2.INTER_NEAREST)
            elif (out_w, out_h) == (rgb.shape[1], rgb.shape[0]):
                colour = rgb[::step, ::step]
            else:
                # The camera pixel nearest to each kept output pixel's centre.
                key = ('colour', step, out_w, out_h)
                idx = self._colour_index.get(key)
                if idx is None:
                    idx = tuple(np.clip(np.floor((np.arange(0, n_out, step) + 0.5) * n_cam /
                                                 n_out), 0, n_cam - 1).astype(np.intp)
                                for n_out, n_cam in ((out_h, rgb.shape[0]),
                                                     (out_w, rgb.shape[1])))
                    self._colour_index = {key: idx}
                colour = rgb[idx[0]][:, idx[1]]
        cam = result.camera.subsample(step)
        # The depth is range-checked already (NaN outside [min_depth, max_depth]).
        result.cloud = self.packer.pack(sub, cam, colour, result.min_depth, result.max_depth,
                                        validated=True)
        result.cloud_camera = cam
