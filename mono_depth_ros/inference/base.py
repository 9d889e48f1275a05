"""
One small interface for every inference backend, and the selection of one.

A backend turns one preprocessed input tensor (layout and dtype as the model's
:class:`~mono_depth_ros.core.model_meta.ModelMeta` says) into the raw network output as a
2-D float32 array. Mapping that output to metres is not the backend's job: the
pipeline does it from the same metadata, so every backend behaves alike.

Backends are imported lazily by name, so that a machine with only ONNX Runtime never
imports TensorRT or torch.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
import importlib
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple
import zipfile

from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np

BACKEND_NAMES = ('tensorrt', 'onnxruntime', 'torch')
PRECISIONS = ('fp32', 'fp16', 'int8')

# name -> 'module:Class'; each class implements Backend and its is_available().
_REGISTRY: Dict[str, str] = {
    'onnxruntime': 'mono_depth_ros.inference.onnxruntime_backend:OnnxRuntimeBackend',
    'tensorrt': 'mono_depth_ros.inference.tensorrt.backend:TensorRTBackend',
    'torch': 'mono_depth_ros.inference.torch_backend:TorchBackend',
}


class BackendError(RuntimeError):
    """A backend cannot load or run a model; the message says why and what to do."""


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output as the runtime reports it; None marks a dynamic dim."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str  # numpy name: 'uint8', 'float32', 'float16', ...


_OUTPUT_DTYPES = ('float32', 'float16', 'float64')
#: quantized outputs (a TFLite graph converted to ONNX): the backends return their codes as
#: float32 and the pipeline dequantizes them with the metadata's output scale and shift,
#: real = output_scale * code + output_shift (= scale * (code - zero_point))
INTEGER_OUTPUT_DTYPES = ('uint8', 'int8', 'uint16', 'int32')


def bind_io(meta: ModelMeta, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
            where: str) -> Tuple[TensorSpec, TensorSpec]:
    """
    Pick the input and output the metadata names, and check them against it.

    An empty ``input_name``/``output_name`` means the graph's first. Raise BackendError
    with one line naming the contradiction (a name the graph lacks, the input size, the
    layout, the dtype, an output that is not one depth map) so that a model which cannot
    run is refused at start instead of failing every frame.
    """
    inputs, outputs = list(inputs), list(outputs)

    def pick(kind: str, specs: List[TensorSpec], name: str) -> TensorSpec:
        if not specs:
            raise BackendError(f'{where}: the graph has no {kind}s')
        if not name:
            return specs[0]
        for spec in specs:
            if spec.name == name:
                return spec
        raise BackendError(f'{where}: the metadata names {kind} {name!r}, but the graph has '
                           f'{", ".join(repr(s.name) for s in specs)}')

    x = pick('input', inputs, meta.input_name)
    if len(inputs) != 1:
        raise BackendError(f'{where}: the graph has {len(inputs)} inputs '
                           f'({", ".join(s.name for s in inputs)}); a depth model takes one')
    y = pick('output', outputs, meta.output_name)
    dims = tuple(x.shape)
    if len(dims) != 4:
        raise BackendError(f'{where}: input {x.name!r} has shape {list(dims)}; expected a '
                           f'4-D {meta.input_layout} image')
    nhwc = meta.input_layout == 'NHWC'
    c_axis, h_axis, w_axis = (3, 1, 2) if nhwc else (1, 2, 3)
    if dims[c_axis] not in (None, 3):
        other = 'NCHW' if nhwc else 'NHWC'
        hint = f' (it looks {other})' if dims[1 if nhwc else 3] == 3 else ''
        raise BackendError(f'{where}: input {x.name!r} has shape {list(dims)}, not 3 channels '
                           f'on the {meta.input_layout} axis the metadata says{hint}')
    if dims[0] not in (None, 1):
        raise BackendError(f'{where}: input {x.name!r} has batch {dims[0]}; expected 1')
    fixed = [d for d in (dims[h_axis], dims[w_axis]) if d is not None]
    if meta.dynamic_shape and fixed:
        raise BackendError(f'{where}: the metadata says the input size is dynamic '
                           f'(size_multiple {meta.size_multiple}), but input {x.name!r} '
                           f'has shape {list(dims)}')
    for axis, name, value in ((h_axis, 'input_height', meta.input_height),
                              (w_axis, 'input_width', meta.input_width)):
        if dims[axis] is not None and dims[axis] != value:
            raise BackendError(f'{where}: the metadata says {name} {value}, but input '
                               f'{x.name!r} has shape {list(dims)} ({meta.input_layout})')
    if x.dtype != meta.input_dtype:
        raise BackendError(f'{where}: the metadata says input_dtype {meta.input_dtype}, but '
                           f'input {x.name!r} is {x.dtype}')
    out = tuple(y.shape)
    if not 2 <= len(out) <= 4 or any(d not in (None, 1) for d in out[:-2]):
        raise BackendError(f'{where}: output {y.name!r} has shape {list(out)}; expected one '
                           'depth map (1, 1, H, W), (1, H, W) or (H, W) - name the right '
                           'output with output_name')
    if y.dtype not in _OUTPUT_DTYPES + INTEGER_OUTPUT_DTYPES:
        raise BackendError(f'{where}: output {y.name!r} is {y.dtype}; expected a float tensor '
                           f'or a quantized one ({", ".join(INTEGER_OUTPUT_DTYPES)})')
    return x, y


class Backend(abc.ABC):
    """Run a depth model on one input tensor."""

    #: registry name: 'onnxruntime', 'tensorrt' or 'torch'
    name: str = ''

    def __init__(self, model_path: str, meta: ModelMeta, precision: str = 'fp32'):
        if precision not in PRECISIONS:
            raise BackendError(f'precision {precision!r} not in {PRECISIONS}')
        self.model_path = model_path
        self.meta = meta
        self.precision = precision

    @classmethod
    @abc.abstractmethod
    def is_available(cls) -> Tuple[bool, str]:
        """Return (True, version) if this backend can run here, else (False, reason)."""

    @classmethod
    @abc.abstractmethod
    def from_file(cls, model_path: str, precision: str = 'fp32', **options) -> 'Backend':
        """Load a model file and its metadata; raise BackendError with a reason if unusable."""

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of the tensor :meth:`infer` expects, batch 1."""
        h, w = self.meta.input_height, self.meta.input_width
        return (1, h, w, 3) if self.meta.input_layout == 'NHWC' else (1, 3, h, w)

    @property
    def input_dtype(self) -> np.dtype:
        """Numpy dtype of the tensor :meth:`infer` expects."""
        return np.dtype(np.uint8 if self.meta.input_dtype == 'uint8' else np.float32)

    @abc.abstractmethod
    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model; return the raw output (integer codes too) as a (H, W) float32."""

    def describe(self) -> str:
        """One line for logs and diagnostics: backend, version, device, precision."""
        return f'{self.name} {self.precision}'

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device memory and handles."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def backend_class(name: str):
    """Import and return the Backend subclass registered under name."""
    if name not in _REGISTRY:
        raise BackendError(f'unknown backend {name!r}; choose one of {", ".join(_REGISTRY)}')
    module_name, class_name = _REGISTRY[name].split(':')
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(f'backend {name!r} cannot be imported: {exc}') from exc
    return getattr(module, class_name)


def available_backends() -> Dict[str, Tuple[bool, str]]:
    """Return {name: (available, version or reason)} for every registered backend."""
    out = {}
    for name in _REGISTRY:
        try:
            out[name] = backend_class(name).is_available()
        except BackendError as exc:
            out[name] = (False, str(exc))
    return out


def is_torchscript_archive(path: str) -> bool:
    """
    Return True if a file is a TorchScript archive, read as a zip without loading it.

    torch.jit.save writes a zip whose ``<name>/code/`` folder holds the model's TorchScript
    source (``m/code/__torch__.py`` beside ``m/data.pkl``, torch 2.13); a checkpoint from
    torch.save has ``data.pkl`` and ``data/`` but no code.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return any('/code/' in f'/{name}' for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def auto_order(model_path: str) -> List[str]:
    """Return the backends worth trying for a model file, best first."""
    ext = os.path.splitext(model_path)[1].lower()
    if ext in ('.engine', '.plan', '.trt'):
        return ['tensorrt']
    if ext == '.onnx':
        return ['tensorrt', 'onnxruntime']
    if ext in ('.pt', '.pth', '.ts', '.torchscript'):
        return ['torch']
    return list(BACKEND_NAMES)


def create_backend(name: str, model_path: str, precision: str = 'fp32',
                   log: Optional[Callable[[str], None]] = None, **options) -> Backend:
    """
    Create the named backend, or with 'auto' the first one that works for this file.

    ``log`` receives one line saying which backend was picked and why the better ones
    were skipped. ``options`` go to the backend's constructor (engine_cache_dir, device,
    ...). The backend loads the model's metadata itself.
    """
    if not os.path.isfile(model_path):
        raise BackendError(f'model file not found: {model_path}')
    names = auto_order(model_path) if name == 'auto' else [name]
    if 'torch' in names and os.path.splitext(model_path)[1].lower() in ('.pt', '.pth'):
        # A training checkpoint is refused for what it is, with the export to run, before
        # any backend is asked: without torch installed the refusal would blame torch.
        if not is_torchscript_archive(model_path):
            raise BackendError(
                f'{model_path} is a training checkpoint, not a model file the node runs: '
                f'export it first with python training/export_onnx.py --checkpoint '
                f'{model_path} --output model.onnx, then set model_path to model.onnx')
    reasons = []
    for candidate in names:
        try:
            cls = backend_class(candidate)
            ok, why = cls.is_available()
            if not ok:
                reasons.append(f'{candidate}: {why}')
                continue
            # The backend logs its own progress (engine builds, self-check) through log too.
            backend = cls.from_file(model_path, precision=precision,
                                    **dict({'log': log} if log else {}, **options))
        except BackendError as exc:
            if name != 'auto':
                raise
            reasons.append(f'{candidate}: {exc}')
            continue
        if log is not None:
            skipped = f' (skipped {"; ".join(reasons)})' if reasons else ''
            log(f'backend {name} -> {backend.describe()}{skipped}')
        return backend
    raise BackendError(f'no backend can run {model_path}: ' + '; '.join(reasons))
