"""
What a depth model needs to run, carried inside the model file.

One schema, three carriers:

* an ONNX file: one metadata property per field, the value JSON-encoded
  (:meth:`ModelMeta.to_onnx_props` / :meth:`ModelMeta.from_onnx_props`);
* a training checkpoint: ``checkpoint['meta']`` is :meth:`ModelMeta.to_dict`;
* a TensorRT engine: a sidecar JSON next to the engine (``<engine>.json``), whose
  ``meta`` key is :meth:`ModelMeta.to_dict` (the sidecar also holds the cache key).

The node configures itself from this; its parameters only override it.

Conventions
-----------
Input tensor
    ``input_layout`` NHWC or NCHW, ``input_dtype`` uint8 (RGB 0..255) or float32
    (RGB in [0, 1]). When ``normalize_in_graph`` is true the graph itself applies
    ``(x - mean) / std``; otherwise the caller must. Images are RGB, never BGR.
Output tensor
    Shape (1, 1, H, W), (1, H, W) or (H, W), raw network output ``y``; with several
    outputs, ``output_name`` names the one to read (empty: the graph's first). Mapped by
    ``output_mode`` (s = output_scale, t = output_shift):

    * ``metric``:        depth = s * y + t
    * ``inverse_depth``: depth = 1 / (s * y + t)
    * ``disparity``:     depth = s / (y + t)   (s = f * B)
    * ``relative_depth``:         relative = s * y + t, affine-invariant depth (no metres)
    * ``relative_inverse_depth``: s * y + t is affine-invariant inverse depth (Depth
      Anything, MiDaS); its depth-like map is 1 / (s * y + t) (larger = farther)

    Metric depth is then limited to [min_depth, max_depth]; values outside are invalid
    (NaN). A relative model (``not is_metric``) has no metres until a scale source fits
    a scale and shift (in inverse depth for the inverse modes).
Unknowns
    ``scale_unknown`` says what of that map is unknown: ``none`` (metric), ``scale`` (the
    mapped output is off by one unknown factor only, its zero is right: a self-supervised
    or scale-invariant-trained model), or ``scale_shift`` (affine-invariant, as Depth
    Anything and MiDaS). Empty means what the output mode implied before the field
    existed: ``none`` for the metric modes, ``scale_shift`` for the relative ones. A scale
    source fits only what is unknown (:attr:`ModelMeta.unknown`).
Input size
    ``input_height`` x ``input_width`` is the size the graph takes. A graph with dynamic
    height and width declares ``size_multiple`` N > 0 (which implies ``dynamic_shape``): the
    pipeline then picks, per camera, a size with about the camera's aspect, each side a
    multiple of N, by ``size_policy``:

    * ``area``: about the area of ``input_height`` x ``input_width``;
    * ``lower_bound``: the smallest scale at which both sides reach the metadata's
      (the *short* side at least 518 for 518 x 518), each side rounded to the nearest
      multiple of N but not below the bound (MiDaS and Depth Anything's ``Resize``
      with ``keep_aspect_ratio``, ``resize_method='lower_bound'``);
    * ``upper_bound``: the largest scale at which neither side exceeds the metadata's,
      rounded but not above it (``resize_method='upper_bound'``);
    * ``fixed``: the graph's one size (``size_multiple`` 0).

    Empty means what format 2 implied: ``fixed`` without a multiple, ``area`` with one.
    ``resize_mode`` (stretch, crop, pad) says how an
    image of another aspect is fitted to a fixed size; the model declares the one it was
    trained with.
Fitting
    ``fit_aspect`` (format 3; 0 = the input's own ``w / h``) is the aspect of the camera
    region that fills the input in ``crop`` and ``pad`` modes: a model trained on 4:3
    pictures squeezed to a square input says 4/3, and its input pixels are not square.
    ``crop_fraction`` (format 3; 1 = none) then keeps the centred fraction of each side of
    that region (of the whole image in ``stretch`` mode): a zoom the model was trained with,
    e.g. FastDepth's NYU pictures, 250 of 480 rows kept as a 228 x 304 centre crop, 0.912.
    Output pixels outside what the model saw are invalid (NaN), and the intrinsics stay exact.
Focal length
    ``train_fx``/``train_fy`` are the focal lengths, in pixels *at the network input*, of
    the images the model was trained on. When ``focal_rescale`` is true a metric
    prediction for a camera of focal f (in pixels at the input size it runs at) is
    multiplied by ``sqrt(fx * fy / (train_fx * train_fy))``: the same object looks
    bigger through a longer lens, so the network reads it as nearer. Running a model at
    another input size does not change train_fx: the network's pixel scale is fixed by
    training, and the camera's focal at the new size carries the difference.
Versions
    ``format_version`` 2 added ``size_multiple``, ``resize_mode`` and the relative modes,
    and made empty tensor names mean "the graph's first". Version 3 added
    ``size_policy``, ``fit_aspect`` and ``crop_fraction``, and ``scale_unknown``. Version 1
    and 2 files load unchanged; a newer version is refused with a reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from mono_depth_ros.core.camera import MAX_FOCAL_PER_PIXEL, MIN_FOCAL_PER_PIXEL

FORMAT_VERSION = 3
# Magnitude of output_scale (and at most of output_shift) a model may declare.
OUTPUT_SCALE_RANGE = (1e-9, 1e9)
ONNX_KEY_PREFIX = 'mono_depth.'

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

METRIC_MODES = ('metric', 'inverse_depth', 'disparity')
RELATIVE_MODES = ('relative_depth', 'relative_inverse_depth')
OUTPUT_MODES = METRIC_MODES + RELATIVE_MODES
#: modes whose affine space is inverse depth (a scale source fits in 1 / depth)
INVERSE_MODES = ('inverse_depth', 'disparity', 'relative_inverse_depth')
RESIZE_MODES = ('stretch', 'crop', 'pad')
#: how a dynamic graph's input size follows the camera ('' = by size_multiple)
SIZE_POLICIES = ('fixed', 'area', 'lower_bound', 'upper_bound')
#: what a scale source must fit: nothing, a scale, or a scale and a shift ('' = by mode)
SCALE_UNKNOWNS = ('none', 'scale', 'scale_shift')
INPUT_DTYPES = ('uint8', 'float32')
INPUT_LAYOUTS = ('NHWC', 'NCHW')
#: the largest input accepted: beyond it one frame's tensor would take gigabytes
MAX_INPUT_SIDE = 8192
MAX_INPUT_PIXELS = 4096 * 4096


class ModelMetaError(ValueError):
    """The metadata of a model file is missing, malformed or inconsistent (one line)."""


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """Return an exception's first line, cut to ``limit`` characters (input may be huge)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


_INT_FIELDS = ('input_height', 'input_width', 'size_multiple', 'format_version')
_FLOAT_FIELDS = ('output_scale', 'output_shift', 'min_depth', 'max_depth', 'train_fx',
                 'train_fy', 'fit_aspect', 'crop_fraction')
_OPTIONAL_FIELDS = ('train_fx', 'train_fy')
_BOOL_FIELDS = ('normalize_in_graph', 'focal_rescale', 'dynamic_shape')
_STR_FIELDS = ('arch', 'input_name', 'output_name', 'input_dtype', 'input_layout',
               'output_mode', 'resize_mode', 'size_policy', 'dataset', 'git_revision',
               'description', 'scale_unknown')


@dataclass
class ModelMeta:
    """Self-description of a depth model (see the module docstring for the conventions)."""

    arch: str
    input_height: int
    input_width: int
    arch_args: Dict[str, Any] = field(default_factory=dict)
    input_name: str = ''
    output_name: str = ''
    input_dtype: str = 'uint8'
    input_layout: str = 'NHWC'
    normalize_in_graph: bool = True
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    output_mode: str = 'metric'
    output_scale: float = 1.0
    output_shift: float = 0.0
    min_depth: float = 0.1
    max_depth: float = 10.0
    train_fx: Optional[float] = None
    train_fy: Optional[float] = None
    focal_rescale: bool = False
    dynamic_shape: bool = False
    size_multiple: int = 0
    resize_mode: str = 'stretch'
    fit_aspect: float = 0.0
    crop_fraction: float = 1.0
    size_policy: str = ''
    scale_unknown: str = ''
    dataset: str = ''
    metrics: Dict[str, float] = field(default_factory=dict)
    git_revision: str = ''
    description: str = ''
    format_version: int = FORMAT_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self._coerce()
        if self.size_multiple > 0:
            self.dynamic_shape = True
        self.validate()

    def _coerce(self) -> None:
        """Check each field's type and normalise numbers; raise ModelMetaError on the first."""
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ModelMetaError(f'{name} must be an integer, got {value!r}')
            setattr(self, name, value)
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_FIELDS:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ModelMetaError(f'{name} must be a number, got {value!r}')
            setattr(self, name, float(value))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ModelMetaError(f'{name} must be true or false, got {getattr(self, name)!r}')
        for name in _STR_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise ModelMetaError(f'{name} must be a string, got {getattr(self, name)!r}')
        for name in ('mean', 'std'):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or \
                    len(value) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                           for v in value):
                raise ModelMetaError(f'{name} must be 3 numbers (R, G, B), got {value!r}')
            setattr(self, name, tuple(float(v) for v in value))
        for name in ('arch_args', 'metrics', 'extra'):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise ModelMetaError(f'{name} must be a mapping, got {value!r}')
            setattr(self, name, dict(value))
        for key, value in self.metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ModelMetaError(f'metrics[{key!r}] must be a number, got {value!r}')

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ModelMetaError naming the first inconsistent field."""
        if not self.arch:
            raise ModelMetaError('arch is empty')
        for name in ('input_height', 'input_width'):
            value = getattr(self, name)
            if value <= 0 or value > MAX_INPUT_SIDE:
                raise ModelMetaError(
                    f'{name} must be in 1..{MAX_INPUT_SIDE}, got {value!r}')
        if self.input_height * self.input_width > MAX_INPUT_PIXELS:
            raise ModelMetaError(
                f'input {self.input_height}x{self.input_width} is larger than '
                f'{MAX_INPUT_PIXELS} pixels')
        if self.input_dtype not in INPUT_DTYPES:
            raise ModelMetaError(f'input_dtype {self.input_dtype!r} not in {INPUT_DTYPES}')
        if self.input_layout not in INPUT_LAYOUTS:
            raise ModelMetaError(f'input_layout {self.input_layout!r} not in {INPUT_LAYOUTS}')
        if self.output_mode not in OUTPUT_MODES:
            raise ModelMetaError(f'output_mode {self.output_mode!r} not in {OUTPUT_MODES}')
        if self.resize_mode not in RESIZE_MODES:
            raise ModelMetaError(f'resize_mode {self.resize_mode!r} not in {RESIZE_MODES}')
        if not (math.isfinite(self.fit_aspect) and 0 <= self.fit_aspect <= MAX_INPUT_SIDE):
            raise ModelMetaError(f'fit_aspect must be >= 0 (0 = the input aspect), got '
                                 f'{self.fit_aspect}')
        if self.fit_aspect and not 1 / MAX_INPUT_SIDE <= self.fit_aspect:
            raise ModelMetaError(f'fit_aspect {self.fit_aspect} is too small')
        if not (math.isfinite(self.crop_fraction) and 0.05 <= self.crop_fraction <= 1):
            raise ModelMetaError(f'crop_fraction must be in [0.05, 1], got '
                                 f'{self.crop_fraction}')
        if self.scale_unknown and self.scale_unknown not in SCALE_UNKNOWNS:
            raise ModelMetaError(f'scale_unknown {self.scale_unknown!r} not in '
                                 f'{SCALE_UNKNOWNS}')
        if self.output_mode in METRIC_MODES and self.scale_unknown not in ('', 'none'):
            raise ModelMetaError(f'a {self.output_mode} model has metres: scale_unknown must '
                                 f'be none, got {self.scale_unknown!r}')
        if self.output_mode in RELATIVE_MODES and self.scale_unknown == 'none':
            raise ModelMetaError(f'a {self.output_mode} model has no metres: scale_unknown '
                                 'must be scale or scale_shift, got none')
        if not 0 <= self.size_multiple <= 256:
            raise ModelMetaError(f'size_multiple must be in 0..256, got {self.size_multiple}')
        if self.size_policy and self.size_policy not in SIZE_POLICIES:
            raise ModelMetaError(f'size_policy {self.size_policy!r} not in {SIZE_POLICIES}')
        if (self.size_policy == 'fixed') != (self.size_multiple == 0) and self.size_policy:
            raise ModelMetaError(
                f'size_policy {self.size_policy} needs '
                + ('size_multiple 0 (a fixed input)' if self.size_policy == 'fixed' else
                   'a size_multiple > 0 (a dynamic input)'))
        if not all(math.isfinite(v) for v in self.mean + self.std):
            raise ModelMetaError('mean and std must be finite')
        if any(s <= 0 for s in self.std):
            raise ModelMetaError(f'std must be positive, got {self.std}')
        if not (math.isfinite(self.output_scale) and math.isfinite(self.output_shift)):
            raise ModelMetaError('output_scale and output_shift must be finite')
        if self.output_scale == 0:
            raise ModelMetaError('output_scale must not be 0')
        # Depth is computed in float32 (normal from 1.2e-38): a scale like 1e-45 loads but
        # turns every pixel into 0 or NaN. Real ones are mm->m (1e-3) up to f*B (1e3).
        if not OUTPUT_SCALE_RANGE[0] <= abs(self.output_scale) <= OUTPUT_SCALE_RANGE[1]:
            raise ModelMetaError(
                f'output_scale {self.output_scale:g} is implausible (expected a magnitude of '
                f'{OUTPUT_SCALE_RANGE[0]:g} to {OUTPUT_SCALE_RANGE[1]:g})')
        if abs(self.output_shift) > OUTPUT_SCALE_RANGE[1]:
            raise ModelMetaError(f'output_shift {self.output_shift:g} is implausible '
                                 f'(expected a magnitude up to {OUTPUT_SCALE_RANGE[1]:g})')
        if not (0 < self.min_depth < self.max_depth) or not math.isfinite(self.max_depth):
            raise ModelMetaError(
                f'depth range must satisfy 0 < min_depth < max_depth < inf, '
                f'got [{self.min_depth}, {self.max_depth}]')
        for name in ('train_fx', 'train_fy'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ModelMetaError(f'{name} must be positive, got {value!r}')
            # The bounds a CameraInfo's focal is held to (core/camera.py), at the input size:
            # 1e-200 loads, then fx * fy / (train_fx * train_fy) divides by zero every frame.
            side = max(self.input_width, self.input_height)
            lo, hi = MIN_FOCAL_PER_PIXEL * side, MAX_FOCAL_PER_PIXEL * side
            if value is not None and not lo <= value <= hi:
                raise ModelMetaError(
                    f'{name} = {value:g} is implausible for the {self.input_width}x'
                    f'{self.input_height} network input (expected {lo:g} to {hi:g} pixels)')
        if self.focal_rescale and (self.train_fx is None or self.train_fy is None):
            raise ModelMetaError('focal_rescale needs train_fx and train_fy')

    @property
    def is_metric(self) -> bool:
        """Return True when the output maps to metres by itself (not a relative model)."""
        return self.output_mode in METRIC_MODES

    @property
    def unknown(self) -> str:
        """Return what a scale source must fit: 'none', 'scale' or 'scale_shift'."""
        if self.scale_unknown:
            return self.scale_unknown
        return 'none' if self.is_metric else 'scale_shift'

    @property
    def size_rule(self) -> str:
        """Return the size policy in force: the field, else what size_multiple implies."""
        if self.size_policy:
            return self.size_policy
        return 'area' if self.size_multiple > 0 else 'fixed'

    @property
    def inverse(self) -> bool:
        """Return True when the output's affine space is inverse depth."""
        return self.output_mode in INVERSE_MODES

    # -- mapping --------------------------------------------------------------------------
    def focal_scale(self, fx: float, fy: float) -> float:
        """Return the factor for metric depth seen through focal (fx, fy) at the input size."""
        if not self.focal_rescale:
            return 1.0
        return math.sqrt((fx * fy) / (self.train_fx * self.train_fy))

    # -- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out['mean'] = list(self.mean)
        out['std'] = list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> 'ModelMeta':
        """Build from a dict; unknown keys go to ``extra`` so newer files still load."""
        if not isinstance(data, Mapping):
            raise ModelMetaError(f'metadata must be a mapping, got {type(data).__name__}')
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [k for k in ('arch', 'input_height', 'input_width') if k not in data]
        if missing:
            raise ModelMetaError(f'metadata lacks required keys: {", ".join(missing)}')
        known = {k: v for k, v in data.items() if k in names}
        extra = known.pop('extra', None)
        if extra is None:
            extra = {}
        if not isinstance(extra, Mapping):
            raise ModelMetaError(f'extra must be a mapping, got {extra!r}')
        extra = dict(extra)
        extra.update({k: v for k, v in data.items() if k not in names})
        version = known.get('format_version', 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ModelMetaError(f'format_version must be a positive integer, got {version!r}')
        if version > FORMAT_VERSION:
            raise ModelMetaError(
                f'metadata format_version {version} is newer than this package '
                f'understands ({FORMAT_VERSION}); upgrade mono_depth_ros')
        # An older file is read into the current schema (its missing fields take their
        # defaults, which mean what version 1 meant), so it is saved as the current one.
        known['format_version'] = FORMAT_VERSION
        try:
            return cls(extra=extra, **known)
        except TypeError as exc:
            raise ModelMetaError(f'malformed metadata: {exc}') from exc

    def to_json(self) -> str:
        """Return the metadata as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ModelMeta':
        """Parse metadata from a JSON string."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also 5000-digit ints, deep nesting
            raise ModelMetaError(f'metadata is not valid JSON: {_first_line(exc)}') from None
        return cls.from_dict(data)

    def to_onnx_props(self) -> Dict[str, str]:
        """Return ONNX ``metadata_props``: one ``mono_depth.<field>`` key per field."""
        return {ONNX_KEY_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    def stamp_onnx(self, model) -> None:
        """Replace an ONNX ModelProto's ``mono_depth.*`` metadata_props with this metadata."""
        keep = [(p.key, p.value) for p in model.metadata_props
                if not p.key.startswith(ONNX_KEY_PREFIX)]
        del model.metadata_props[:]
        for key, value in keep + sorted(self.to_onnx_props().items()):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value

    @classmethod
    def from_onnx_props(cls, props: Mapping[str, str]) -> 'ModelMeta':
        """Parse ONNX ``metadata_props`` (a dict of str to str) written by to_onnx_props."""
        data = {}
        for key, value in props.items():
            if not key.startswith(ONNX_KEY_PREFIX):
                continue
            try:
                data[key[len(ONNX_KEY_PREFIX):]] = json.loads(value)
            except (ValueError, RecursionError) as exc:  # also 5000-digit ints, deep nesting
                raise ModelMetaError(f'ONNX metadata {key[:80]!r} is not valid JSON: '
                                     f'{_first_line(exc)}') from None
        if not data:
            raise ModelMetaError(
                f'the ONNX file carries no {ONNX_KEY_PREFIX}* metadata: export it with '
                'training/export_onnx.py, which writes what the node needs')
        return cls.from_dict(data)
