"""
CUDA and TensorRT imports through cuda-python, for the TensorRT backend (no pycuda).

``tensorrt`` and ``cuda`` are imported only inside functions, so this module imports on any
machine. The other TensorRT modules call these through the module (``cuda.cuda_runtime()``),
so one replacement here (a fake runtime in tests) reaches all of them.
"""

from __future__ import annotations

from typing import Tuple

from mono_depth_ros.inference.base import BackendError


def trt_major(version: str) -> int:
    """Return the major number of a TensorRT version string ('8.6.1' -> 8)."""
    try:
        return int(str(version).split('.')[0])
    except ValueError as exc:
        raise BackendError(f'unrecognised TensorRT version {version!r}') from exc


def cuda_runtime():
    """Import the cuda-python runtime module (new and old package layouts)."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        try:
            from cuda import cudart
            return cudart
        except ImportError as exc:
            raise BackendError('cuda-python is not installed (pip install cuda-python '
                               'matching your CUDA version)') from exc


def cuda_check(result):
    """Unpack a cuda-python call result (err, *values); raise BackendError on an error."""
    if not isinstance(result, tuple):
        result = (result,)
    err, values = result[0], result[1:]
    # cuda-python returns enum members; compare their value, whatever the enum base class.
    if int(getattr(err, 'value', err)) != 0:
        raise BackendError(f'CUDA error {err}')
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def device_info() -> Tuple[str, str]:
    """Return (GPU name, compute capability 'major.minor') of device 0."""
    cudart = cuda_runtime()
    props = cuda_check(cudart.cudaGetDeviceProperties(0))
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b'\0', 1)[0].decode('utf-8', 'replace')
    return str(name).strip(), f'{props.major}.{props.minor}'


def import_tensorrt():
    """Import tensorrt or raise BackendError saying how to get it."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError('tensorrt is not importable (on Jetson it comes with JetPack: '
                           'python3-libnvinfer)') from exc
    return trt
