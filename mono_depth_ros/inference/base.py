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
import importlib
import os
from typing import Callable, Dict, List, Optional, Tuple

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
        """Run the model; return the raw output as a (H, W) float32 array."""

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
