"""
TensorRT backend: build (or load from the cache) an engine for an ONNX model, and run it.

The pieces live beside this module: :mod:`.cuda` (CUDA and TensorRT imports), :mod:`.builder`
(ONNX -> engine, the cache), :mod:`.runner` (running an engine), :mod:`.selfcheck` (which
engine to trust), :mod:`.engine_cache` and :mod:`.calibration`. This module puts them
together behind the Backend interface, binding the metadata's tensor names and checking
the engine's inputs and outputs against the metadata at load.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.inference.base import Backend, BackendError, bind_io, TensorSpec
from mono_depth_ros.inference.tensorrt import cuda
from mono_depth_ros.inference.tensorrt.builder import (DEFAULT_CACHE_DIR, EngineBuilder,
                                                       load_or_build_engine, onnx_meta,
                                                       profile_shapes, sized_meta)
from mono_depth_ros.inference.tensorrt.engine_cache import check_engine, read_sidecar
from mono_depth_ros.inference.tensorrt.runner import EngineRunner
from mono_depth_ros.inference.tensorrt.selfcheck import (Candidate, decide_selfcheck,
                                                         fallback_chain, relative_error,
                                                         selfcheck_image)
import numpy as np


def _silent(_line: str) -> None:
    pass


def _specs(items) -> list:
    return [TensorSpec(name, tuple(d if isinstance(d, int) and d > 0 else None for d in shape),
                       np.dtype(dtype).name) for name, shape, dtype in items]


class TensorRTBackend(Backend):
    """Run a TensorRT engine, built from ONNX into the engine cache or loaded from .engine."""

    name = 'tensorrt'

    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        try:
            trt = cuda.import_tensorrt()
            cuda.cuda_runtime()
        except BackendError as exc:
            return False, str(exc)
        try:
            gpu, capability = cuda.device_info()
        except Exception as exc:  # noqa: BLE001 - no driver, no device ...
            return False, f'no usable CUDA device ({exc})'
        return True, f'{trt.__version__} on {gpu} (sm {capability})'

    @classmethod
    def from_file(cls, model_path: str, precision: str = 'fp32', **options) -> Backend:
        """
        Load an engine (``.engine`` + sidecar) or build/load one for an ``.onnx`` file.

        Options: engine_cache_dir, workspace_gib, calibration_folder, calibration_cache,
        timing_cache, height/width (for dynamic models), self_check (True), log.
        """
        log = options.get('log') or _silent
        if os.path.splitext(model_path)[1].lower() in ('.engine', '.plan', '.trt'):
            check = check_engine(model_path)
            if not check.ok:
                raise BackendError(f'refusing to load {model_path}: {check.reason}')
            try:
                meta = ModelMeta.from_dict(check.sidecar['meta'])
            except ModelMetaError as exc:
                raise BackendError(f'{model_path}: sidecar metadata: {exc}') from exc
            fields = check.sidecar['key_fields']
            trt = cuda.import_tensorrt()
            gpu, capability = cuda.device_info()
            if (fields.get('tensorrt_version'), fields.get('compute_capability')) != (
                    trt.__version__, capability):
                raise BackendError(
                    f'{model_path} was built with TensorRT {fields.get("tensorrt_version")} '
                    f'for sm {fields.get("compute_capability")}; this is TensorRT '
                    f'{trt.__version__} on {gpu} (sm {capability}): rebuild it from the ONNX')
            with open(model_path, 'rb') as handle:
                runner = EngineRunner(handle.read(), log)
            return cls(model_path, meta, fields.get('precision', precision), runner,
                       model_path)
        if not model_path.lower().endswith('.onnx'):
            raise BackendError(f'tensorrt runs .onnx or .engine files, not {model_path}')
        return build_with_selfcheck(model_path, precision, **options)

    def __init__(self, model_path: str, meta: ModelMeta, precision: str,
                 runner: EngineRunner, engine_path: str):
        super().__init__(model_path, meta, precision)
        self.runner = runner
        self.engine_path = engine_path
        try:
            _x, y = bind_io(meta, _specs(runner.inputs), _specs(runner.outputs), engine_path)
        except BackendError:
            runner.close()
            raise
        runner.output_name = y.name

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        out = self.runner.infer(tensor)
        return np.asarray(out, np.float32).reshape(out.shape[-2:])

    def describe(self) -> str:
        return (f'tensorrt {self.runner.trt.__version__} {self.precision} '
                f'engine {os.path.basename(self.engine_path)}')

    def close(self) -> None:
        self.runner.close()


def build_with_selfcheck(onnx_path: str, precision: str = 'fp32', self_check: bool = True,
                         **options) -> Backend:
    """
    Build/load the engine, compare it with the reference, fall back loudly on mismatch.

    ``log`` gets the progress lines, ``warn`` (default: ``log`` with a WARNING prefix) the
    self-check failures, which must not go unnoticed in an info-level log.
    """
    log = options.get('log') or _silent
    warn = options.get('warn') or (lambda line: log(f'WARNING: {line}'))
    build_options = {k: v for k, v in options.items()
                     if k in ('engine_cache_dir', 'workspace_gib', 'calibration_folder',
                              'calibration_cache', 'timing_cache', 'height', 'width')}
    meta = sized_meta(onnx_meta(onnx_path), options.get('height'), options.get('width'))
    runners: Dict[Candidate, TensorRTBackend] = {}

    def engine_backend(prec: str) -> TensorRTBackend:
        if ('tensorrt', prec) not in runners:
            path, data, _built = load_or_build_engine(onnx_path, prec, meta, log=log,
                                                      **build_options)
            runners[('tensorrt', prec)] = TensorRTBackend(
                onnx_path, meta, prec, EngineRunner(data, log), path)
        return runners[('tensorrt', prec)]

    if not self_check:
        return engine_backend(precision)
    from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    from mono_depth_ros.core.frame import Preprocessor
    ort_ok, _why = OnnxRuntimeBackend.is_available()
    chain = fallback_chain(precision, ort_ok)
    # The check runs at the engine's optimum size, which is inside its profile by design.
    tensor = Preprocessor(meta)(selfcheck_image(meta))
    reference_backend = (OnnxRuntimeBackend.from_file(onnx_path) if ort_ok
                         else engine_backend('fp32'))
    # Falling back to it must not change the input size the caller asked for.
    reference_backend.meta = meta
    reference = reference_backend.infer(tensor)

    def measure(candidate: Candidate) -> float:
        return relative_error(engine_backend(candidate[1]).infer(tensor), reference)

    result = decide_selfcheck(chain, measure)
    for line in result.messages:
        if line.startswith('SELF-CHECK FAILED'):
            warn(line)
        else:
            log(line)
    chosen = (result.backend, result.precision)
    for candidate, backend in runners.items():
        if candidate != chosen:
            backend.close()
    if chosen[0] == 'onnxruntime':
        return reference_backend
    if ort_ok:
        reference_backend.close()
    return runners.get(chosen) or engine_backend(chosen[1])


__all__ = ['TensorRTBackend', 'EngineBuilder', 'EngineRunner', 'decide_selfcheck',
           'fallback_chain', 'profile_shapes', 'relative_error', 'read_sidecar', 'sized_meta',
           'DEFAULT_CACHE_DIR', 'onnx_meta', 'selfcheck_image', 'cuda']
