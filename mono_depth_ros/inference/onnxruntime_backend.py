"""ONNX Runtime backend: CPU everywhere, the CUDA execution provider where it is installed."""

from __future__ import annotations

from typing import Tuple

from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.inference.base import Backend, BackendError, bind_io, TensorSpec
import numpy as np

_ORT_DTYPES = {'tensor(uint8)': 'uint8', 'tensor(float)': 'float32',
               'tensor(float16)': 'float16', 'tensor(double)': 'float64',
               'tensor(int8)': 'int8', 'tensor(uint16)': 'uint16', 'tensor(int32)': 'int32'}


def tensor_spec(arg) -> TensorSpec:
    """Return the TensorSpec of an ONNX Runtime NodeArg (symbolic dims become None)."""
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, shape, _ORT_DTYPES.get(arg.type, arg.type))


def _meta_of(session, model_path: str) -> ModelMeta:
    props = session.get_modelmeta().custom_metadata_map
    try:
        return ModelMeta.from_onnx_props(props)
    except ModelMetaError as exc:
        raise BackendError(f'{model_path}: {exc}') from exc


class OnnxRuntimeBackend(Backend):
    """Run an exported ONNX depth model with ONNX Runtime."""

    name = 'onnxruntime'

    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return False, f'onnxruntime not importable ({exc})'
        return True, ort.__version__

    @classmethod
    def from_file(cls, model_path: str, precision: str = 'fp32', device: str = 'auto',
                  threads: int = 0, spin: bool = False, **_options) -> 'OnnxRuntimeBackend':
        if not model_path.lower().endswith('.onnx'):
            raise BackendError(f'onnxruntime runs .onnx files, not {model_path}')
        return cls(model_path, precision=precision, device=device, threads=threads, spin=spin)

    def __init__(self, model_path: str, precision: str = 'fp32', device: str = 'auto',
                 threads: int = 0, spin: bool = False):
        import onnxruntime as ort
        available = ort.get_available_providers()
        providers = ['CPUExecutionProvider']
        if device in ('auto', 'cuda') and 'CUDAExecutionProvider' in available:
            providers.insert(0, 'CUDAExecutionProvider')
        elif device == 'cuda':
            raise BackendError('device cuda requested but this onnxruntime has no CUDA '
                               f'execution provider (has {available})')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spin:
            # Idle intra-op threads sleep instead of spinning for the next run: between two
            # frames the node's own work (and DDS) needs those cores, not a busy-wait.
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(model_path, sess_options=options,
                                                providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
            raise BackendError(f'cannot load ONNX model {model_path}: {exc}') from exc
        meta = _meta_of(self.session, model_path)
        # ONNX Runtime runs what the file holds; fp16/int8 need a converted model.
        super().__init__(model_path, meta, 'fp32')
        self.requested_precision = precision
        x, y = bind_io(meta, [tensor_spec(a) for a in self.session.get_inputs()],
                       [tensor_spec(a) for a in self.session.get_outputs()], model_path)
        self._input, self._output = x.name, y.name
        self.providers = self.session.get_providers()

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        out = self.session.run([self._output], {self._input: tensor})[0]
        return np.asarray(out, dtype=np.float32).reshape(out.shape[-2:])

    def describe(self) -> str:
        import onnxruntime as ort
        provider = self.providers[0].replace('ExecutionProvider', '')
        note = '' if self.requested_precision == 'fp32' else (
            f' (requested {self.requested_precision}; ONNX Runtime runs the file as stored)')
        return f'onnxruntime {ort.__version__} {provider} fp32{note}'
