"""
Running a deserialised TensorRT engine on one input, device buffers reused across calls.

The name-based I/O tensor API with ``execute_async_v3`` (``execute_async_v2`` and bindings
on TensorRT before 8.5), device memory and a stream through cuda-python.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

from mono_depth_ros.inference.base import BackendError
from mono_depth_ros.inference.tensorrt import cuda
import numpy as np


class EngineRunner:
    """Deserialise an engine and run it on one input (device buffers reused across calls)."""

    def __init__(self, engine_bytes: bytes, log: Optional[Callable[[str], None]] = None):
        self.trt = trt = cuda.import_tensorrt()
        self.cudart = cuda.cuda_runtime()
        self.log = log or (lambda _line: None)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise BackendError('TensorRT could not deserialise the engine (built by another '
                               'TensorRT version or for another GPU?)')
        self.context = self.engine.create_execution_context()
        self.stream = cuda.cuda_check(self.cudart.cudaStreamCreate())
        self.named_io = hasattr(self.engine, 'num_io_tensors')
        self.inputs, self.outputs = self._io()
        self._buffers: Dict[str, Tuple[int, int]] = {}
        self._shape = None

    def _io(self):
        trt = self.trt
        inputs, outputs = [], []
        if self.named_io:
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                is_input = self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                shape = tuple(self.engine.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
                (inputs if is_input else outputs).append((name, shape, dtype))
        else:  # TensorRT < 8.5: bindings
            for i in range(self.engine.num_bindings):
                name = self.engine.get_binding_name(i)
                shape = tuple(self.engine.get_binding_shape(i))
                dtype = np.dtype(trt.nptype(self.engine.get_binding_dtype(i)))
                target = inputs if self.engine.binding_is_input(i) else outputs
                target.append((name, shape, dtype))
        for kind, items in (('input', inputs), ('output', outputs)):
            for name, shape, dtype in items:
                self.log(f'engine {kind} {name}: shape {shape} dtype {dtype}')
        if not inputs or not outputs:
            raise BackendError(f'expected an input and an output, got {len(inputs)} inputs '
                               f'and {len(outputs)} outputs')
        #: the output :meth:`infer` returns (the backend binds the metadata's name)
        self.output_name = outputs[0][0]
        return inputs, outputs

    def _device(self, name: str, nbytes: int) -> int:
        address, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if address:
                cuda.cuda_check(self.cudart.cudaFree(address))
            address = int(cuda.cuda_check(self.cudart.cudaMalloc(nbytes)))
            self._buffers[name] = (address, nbytes)
        return address

    def _configure(self, shape: Tuple[int, ...]):
        name = self.inputs[0][0]
        if self.named_io:
            if not self.context.set_input_shape(name, shape):
                raise BackendError(f'input shape {shape} is outside the engine profile')
            out = [(n, tuple(self.context.get_tensor_shape(n)), d) for n, _s, d in self.outputs]
        else:
            self.context.set_binding_shape(0, shape)
            out = [(n, tuple(self.context.get_binding_shape(self.engine.get_binding_index(n))),
                    d) for n, _s, d in self.outputs]
        self._out_shapes = out
        self._shape = shape

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the engine; return the output named ``output_name`` as a host array."""
        cudart = self.cudart
        name, _shape, dtype = self.inputs[0]
        tensor = np.ascontiguousarray(tensor, dtype=dtype)
        if tensor.shape != self._shape:
            self._configure(tensor.shape)
        d_in = self._device(name, tensor.nbytes)
        cuda.cuda_check(cudart.cudaMemcpyAsync(d_in, tensor.ctypes.data, tensor.nbytes,
                                               cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                               self.stream))
        host = None
        addresses = {name: d_in}
        for out_name, shape, out_dtype in self._out_shapes:
            nbytes = int(np.prod(shape)) * np.dtype(out_dtype).itemsize
            addresses[out_name] = self._device(out_name, max(nbytes, 1))
            if out_name == self.output_name:
                host = np.empty(shape, out_dtype)
        if self.named_io:
            for tensor_name, address in addresses.items():
                self.context.set_tensor_address(tensor_name, address)
            ok = self.context.execute_async_v3(int(self.stream))
        else:
            bindings = [0] * self.engine.num_bindings
            for tensor_name, address in addresses.items():
                bindings[self.engine.get_binding_index(tensor_name)] = address
            ok = self.context.execute_async_v2(bindings, int(self.stream))
        if not ok:
            raise BackendError('TensorRT execution failed')
        # Only the bound output comes back; the others stay on the device.
        cuda.cuda_check(cudart.cudaMemcpyAsync(host.ctypes.data, addresses[self.output_name],
                                               host.nbytes,
                                               cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                               self.stream))
        cuda.cuda_check(cudart.cudaStreamSynchronize(self.stream))
        return host

    def close(self) -> None:
        """Free device buffers and the stream."""
        for address, _size in self._buffers.values():
            self.cudart.cudaFree(address)
        self._buffers.clear()
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None
