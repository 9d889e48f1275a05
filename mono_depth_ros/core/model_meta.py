"""
What a depth model needs to run, carried inside the model file.

One schema, three carriers (DESIGN.md):

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
    Shape (1, 1, H, W) or (1, H, W), raw network output ``y``, mapped to metres by
    ``output_mode``:

    * ``metric``:        depth = output_scale * y + output_shift
    * ``inverse_depth``: depth = 1 / (output_scale * y + output_shift)
    * ``disparity``:     depth = output_scale / (y + output_shift)   (scale = f * B)

    then clipped to [min_depth, max_depth]; values outside are invalid (NaN).
Focal length
    ``train_fx``/``train_fy`` are the focal lengths, in pixels *at the network input*, of
    the images the model was trained on. When ``focal_rescale`` is true a metric
    prediction for a camera of focal f (in pixels at the input size it runs at) is
    multiplied by ``sqrt(fx * fy / (train_fx * train_fy))``: the same object looks
    bigger through a longer lens, so the network reads it as nearer. Running a model at
    another input size does not change train_fx: the network's pixel scale is fixed by
    training, and the camera's focal at the new size carries the difference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
import json
import math
from typing import Any, Dict, Mapping, Optional, Tuple

FORMAT_VERSION = 1
ONNX_KEY_PREFIX = 'mono_depth.'

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

OUTPUT_MODES = ('metric', 'inverse_depth', 'disparity')
INPUT_DTYPES = ('uint8', 'float32')
INPUT_LAYOUTS = ('NHWC', 'NCHW')


class ModelMetaError(ValueError):
    """The metadata of a model file is missing, malformed or inconsistent."""


@dataclass
class ModelMeta:
    """Self-description of a depth model (see the module docstring for the conventions)."""

    arch: str
    input_height: int
    input_width: int
    arch_args: Dict[str, Any] = field(default_factory=dict)
    input_name: str = 'image'
    output_name: str = 'depth'
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
    dataset: str = ''
    metrics: Dict[str, float] = field(default_factory=dict)
    git_revision: str = ''
    description: str = ''
    format_version: int = FORMAT_VERSION
    extra: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.validate()

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ModelMetaError naming the first inconsistent field."""
        if not self.arch:
            raise ModelMetaError('arch is empty')
        for name in ('input_height', 'input_width'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ModelMetaError(f'{name} must be a positive integer, got {value!r}')
        if self.input_dtype not in INPUT_DTYPES:
            raise ModelMetaError(f'input_dtype {self.input_dtype!r} not in {INPUT_DTYPES}')
        if self.input_layout not in INPUT_LAYOUTS:
            raise ModelMetaError(f'input_layout {self.input_layout!r} not in {INPUT_LAYOUTS}')
        if self.output_mode not in OUTPUT_MODES:
            raise ModelMetaError(f'output_mode {self.output_mode!r} not in {OUTPUT_MODES}')
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ModelMetaError('mean and std must have 3 values (R, G, B)')
        if any(s <= 0 for s in self.std):
            raise ModelMetaError(f'std must be positive, got {self.std}')
        if not (math.isfinite(self.output_scale) and math.isfinite(self.output_shift)):
            raise ModelMetaError('output_scale and output_shift must be finite')
        if self.output_scale == 0:
            raise ModelMetaError('output_scale must not be 0')
        if not (0 < self.min_depth < self.max_depth) or not math.isfinite(self.max_depth):
            raise ModelMetaError(
                f'depth range must satisfy 0 < min_depth < max_depth < inf, '
                f'got [{self.min_depth}, {self.max_depth}]')
        for name in ('train_fx', 'train_fy'):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ModelMetaError(f'{name} must be positive, got {value!r}')
        if self.focal_rescale and (self.train_fx is None or self.train_fy is None):
            raise ModelMetaError('focal_rescale needs train_fx and train_fy')

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
        extra = dict(known.pop('extra', {}) or {})
        extra.update({k: v for k, v in data.items() if k not in names})
        version = int(known.get('format_version', FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ModelMetaError(
                f'metadata format_version {version} is newer than this package '
                f'understands ({FORMAT_VERSION}); upgrade mono_depth_ros')
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
        except json.JSONDecodeError as exc:
            raise ModelMetaError(f'metadata is not valid JSON: {exc}') from exc
        return cls.from_dict(data)

    def to_onnx_props(self) -> Dict[str, str]:
        """Return ONNX ``metadata_props``: one ``mono_depth.<field>`` key per field."""
        return {ONNX_KEY_PREFIX + k: json.dumps(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_onnx_props(cls, props: Mapping[str, str]) -> 'ModelMeta':
        """Parse ONNX ``metadata_props`` (a dict of str to str) written by to_onnx_props."""
        data = {}
        for key, value in props.items():
            if not key.startswith(ONNX_KEY_PREFIX):
                continue
            try:
                data[key[len(ONNX_KEY_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ModelMetaError(f'ONNX metadata {key!r} is not valid JSON: {exc}') from exc
        if not data:
            raise ModelMetaError(
                f'the ONNX file carries no {ONNX_KEY_PREFIX}* metadata: export it with '
                'training/export_onnx.py, which writes what the node needs')
        return cls.from_dict(data)
