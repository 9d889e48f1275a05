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
``resize_mode`` (crop, pad, stretch; the metadata's ``fit_aspect``, ``crop_fraction`` and
``size_multiple``) fits a camera image of another aspect to the model input
(:mod:`.fit`), and every depth image pixel is mapped to the model output grid exactly and
sampled by ``depth_upsampling`` (:mod:`.resample`): the intrinsics of every image follow
the fit exactly.

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
from typing import Callable, Dict, Optional, Tuple

import cv2
from mono_depth_ros.core.camera import output_size
from mono_depth_ros.core.colormap import colorize_depth
# model_input_size and resize_image are re-exported for the callers that know them here.
from mono_depth_ros.core.fit import (check_rgb, FrameError, grid_camera,  # noqa: F401
                                     input_camera, make_plan, model_input_size,
                                     native_geometry, Plan, Preprocessor, resize_image)
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta, RESIZE_MODES
from mono_depth_ros.core.pointcloud import CloudBuffer, CloudPacker
from mono_depth_ros.core.resample import (Axis, DEFAULT_EDGE_THRESHOLD, DEFAULT_UPSAMPLING,
                                          relative_spread, upsample, UPSAMPLING_MODES)
import numpy as np

#: the names test_pipeline knows from before the split into fit and resample
_Axis, _upsample = Axis, upsample

STAGES = ('preprocess', 'inference', 'postprocess', 'colored', 'cloud')


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
        self._plans: Dict[tuple, Plan] = {}
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
    def plan(self, width: int, height: int, config: Optional[FrameConfig] = None) -> Plan:
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
                   out_size: Tuple[int, int]) -> Plan:
        return make_plan(self.meta, width, height, mode, out_size)

    #: the exact intrinsics of the model's output grid and of its input (:mod:`.fit`)
    grid_camera = staticmethod(grid_camera)
    input_camera = staticmethod(input_camera)

    def focal_factor(self, plan: Plan, camera: Intrinsics) -> float:
        """Return the metric correction for this camera: its per-axis focal at the input."""
        if not self.meta.focal_rescale:
            return 1.0
        at_input = self.input_camera(plan, camera)
        return self.meta.focal_scale(at_input.fx, at_input.fy)

    # -- one frame ------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray, plan: Plan) -> np.ndarray:
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
        check_rgb(rgb)
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

    def _postprocess(self, result: FrameResult, raw: np.ndarray, plan: Plan,
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
            native_geometry(plan, y.shape)
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
            out = upsample(small, ax_y, ax_x, mode, threshold, plan.cache, spread)
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
            kind_out = upsample(kind, ax_y, ax_x, 'nearest', threshold, plan.cache)
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
