"""
TensorRT backend: build (or load from the cache) an engine for an ONNX model, and run it.

Written for the TensorRT Python API of JetPack 5/6 (8.5 .. 10.x): explicit-batch networks,
the name-based I/O tensor API with ``execute_async_v3`` (``execute_async_v2`` and
bindings on older 8.x), and device memory and a stream through cuda-python (no pycuda).
``tensorrt`` and ``cuda`` are imported only inside functions, so this module imports on any
machine; the parts that need no GPU (profile shapes, output comparison, the self-check
fallback decision) are plain functions tested everywhere.

Startup self-check: one image goes through the engine and through a reference (ONNX
Runtime when installed, else the fp32 engine). Some JetPack/TensorRT combinations produce
silently wrong fp16/int8 engines, so a disagreement beyond tolerance is logged loudly and
the backend falls back: int8/fp16 -> fp32 engine -> ONNX Runtime.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import math
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.inference.base import Backend, BackendError
from mono_depth_ros.inference.tensorrt.engine_cache import (check_engine, EngineCache, EngineKey,
                                                            file_lock, read_sidecar, sha256_file)
import numpy as np

DEFAULT_CACHE_DIR = os.path.join('~', '.cache', 'mono_depth_ros', 'engines')
DEFAULT_WORKSPACE_GIB = 1.0
#: mean relative error vs the reference that a precision may show before it is distrusted
SELFCHECK_TOLERANCE = {'fp32': 1e-3, 'fp16': 1e-2, 'int8': 1e-1}

Candidate = Tuple[str, str]  # (backend name, precision)


# -- pure logic (tested without TensorRT) -------------------------------------------------
def trt_major(version: str) -> int:
    """Return the major number of a TensorRT version string ('8.6.1' -> 8)."""
    try:
        return int(str(version).split('.')[0])
    except ValueError as exc:
        raise BackendError(f'unrecognised TensorRT version {version!r}') from exc


def profile_shapes(onnx_shape: Sequence, meta: ModelMeta,
                   height: Optional[int] = None, width: Optional[int] = None,
                   min_scale: float = 0.5, max_scale: float = 2.0):
    """
    Return (min, opt, max) input shapes for an optimisation profile, or None if static.

    ``onnx_shape`` holds ints for fixed dims and -1 (or a name/None) for dynamic ones. The
    optimum is the requested size (default: the metadata's input size); H and W range from
    ``min_scale`` to ``max_scale`` times it, rounded to multiples of 32 that the U-Nets need.
    The batch dimension is always 1.
    """
    dims = [d if isinstance(d, int) and d > 0 else -1 for d in onnx_shape]
    if len(dims) != 4:
        raise BackendError(f'expected a 4-D image input, got shape {list(onnx_shape)}')
    if -1 not in dims:
        return None
    nhwc = meta.input_layout == 'NHWC'
    h_axis, w_axis = (1, 2) if nhwc else (2, 3)
    opt_h = int(height or meta.input_height)
    opt_w = int(width or meta.input_width)

    def fill(h, w):
        shape = list(dims)
        shape[0] = 1
        shape[h_axis] = dims[h_axis] if dims[h_axis] > 0 else h
        shape[w_axis] = dims[w_axis] if dims[w_axis] > 0 else w
        c_axis = 3 if nhwc else 1
        shape[c_axis] = 3
        return tuple(shape)

    def rounded(v, scale, up):
        x = v * scale / 32.0
        return max(32, 32 * int(math.ceil(x) if up else math.floor(x)))

    return (fill(min(opt_h, rounded(opt_h, min_scale, False)),
                 min(opt_w, rounded(opt_w, min_scale, False))),
            fill(opt_h, opt_w),
            fill(max(opt_h, rounded(opt_h, max_scale, True)),
                 max(opt_w, rounded(opt_w, max_scale, True))))


def sized_meta(meta: ModelMeta, height: Optional[int] = None,
               width: Optional[int] = None) -> ModelMeta:
    """
    Return meta for running the model at height x width (default: its own size).

    Only a dynamic model can change size. train_fx/fy do not change: they are the focal
    length the network learned its pixel scale at (see ModelMeta), as in the export.
    """
    h, w = int(height or meta.input_height), int(width or meta.input_width)
    if (h, w) == (meta.input_height, meta.input_width):
        return meta
    if not meta.dynamic_shape:
        raise BackendError(f'the model has a fixed {meta.input_height}x{meta.input_width} '
                           f'input; {h}x{w} needs an export with --dynamic')
    return dataclasses.replace(meta, input_height=h, input_width=w)


def relative_error(test: np.ndarray, reference: np.ndarray) -> float:
    """Return mean |test - reference| / mean |reference|; inf on shape or finiteness mismatch."""
    test = np.asarray(test, np.float64)
    reference = np.asarray(reference, np.float64)
    if test.shape != reference.shape:
        return math.inf
    good = np.isfinite(reference)
    if not np.isfinite(test[good]).all():
        return math.inf
    if not good.any():
        return 0.0 if not np.isfinite(test).any() else math.inf
    scale = float(np.mean(np.abs(reference[good]))) or 1.0
    return float(np.mean(np.abs(test[good] - reference[good]))) / scale


def fallback_chain(precision: str, onnxruntime_available: bool) -> List[Candidate]:
    """Return the candidates to try, requested first, reference last."""
    chain: List[Candidate] = [('tensorrt', precision)]
    if precision != 'fp32':
        chain.append(('tensorrt', 'fp32'))
    if onnxruntime_available:
        chain.append(('onnxruntime', 'fp32'))
    return chain


@dataclass
class SelfCheckResult:
    """Which candidate passed the self-check, and the log lines explaining it."""

    backend: str
    precision: str
    errors: Dict[Candidate, float]
    messages: List[str]

    @property
    def fell_back(self) -> bool:
        """Return True when the requested candidate was not the one chosen."""
        return bool(self.errors) and next(iter(self.errors)) != (self.backend, self.precision)


def decide_selfcheck(chain: Sequence[Candidate], measure: Callable[[Candidate], float],
                     tolerances: Optional[Dict[str, float]] = None) -> SelfCheckResult:
    """
    Walk the fallback chain; return the first candidate that agrees with the reference.

    The last candidate IS the reference (ONNX Runtime, or the fp32 engine without it), so
    it is accepted unmeasured. ``measure(candidate)`` returns its relative error against the
    reference; an exception from it counts as a failure of that candidate.
    """
    if not chain:
        raise BackendError('self-check needs at least one candidate')
    tolerances = dict(SELFCHECK_TOLERANCE, **(tolerances or {}))
    errors: Dict[Candidate, float] = {}
    messages: List[str] = []
    reference = chain[-1]
    for candidate in chain[:-1]:
        try:
            error = float(measure(candidate))
        except Exception as exc:  # noqa: BLE001 - any failure means: do not trust it
            error = math.inf
            messages.append(f'self-check: {candidate[0]} {candidate[1]} failed to run: {exc}')
        errors[candidate] = error
        limit = tolerances[candidate[1]]
        if error <= limit:
            messages.append(f'self-check: {candidate[0]} {candidate[1]} agrees with '
                            f'{reference[0]} {reference[1]} (relative error {error:.2e} '
                            f'<= {limit:.0e})')
            return SelfCheckResult(candidate[0], candidate[1], errors, messages)
        messages.append(f'SELF-CHECK FAILED: {candidate[0]} {candidate[1]} disagrees with '
                        f'{reference[0]} {reference[1]} (relative error {error:.2e} > '
                        f'{limit:.0e}); falling back')
    errors.setdefault(reference, 0.0)
    if len(chain) == 1:
        messages.append(f'self-check: no reference to compare {reference[0]} {reference[1]} '
                        'with (install onnxruntime to enable it)')
    else:
        messages.append(f'self-check: using the reference {reference[0]} {reference[1]}')
    return SelfCheckResult(reference[0], reference[1], errors, messages)


def selfcheck_image(meta: ModelMeta) -> np.ndarray:
    """Return a deterministic textured RGB image at the model's input size."""
    h, w = meta.input_height, meta.input_width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (h, w, 3)).astype(np.float32)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                     127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 5.0)], axis=-1)
    return np.clip(base * 0.85 + noise, 0, 255).astype(np.uint8)


# -- CUDA through cuda-python ------------------------------------------------------------
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


# -- building ---------------------------------------------------------------------------
class EngineBuilder:
    """
    ONNX -> serialised TensorRT engine; every failure raises BackendError.

    Logs each network input and output (name, shape, dtype) and every parser error with
    its node. A timing cache file, when given, is read before and written after a build,
    so rebuilds for another precision or shape take seconds instead of minutes.
    """

    def __init__(self, workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                 timing_cache: Optional[str] = None,
                 log: Optional[Callable[[str], None]] = None, verbose: bool = False):
        self.trt = import_tensorrt()
        self.log = log or print
        self.workspace_bytes = int(workspace_gib * (1 << 30))
        self.timing_cache = timing_cache
        level = self.trt.Logger.VERBOSE if verbose else self.trt.Logger.WARNING
        self.logger = self.trt.Logger(level)

    def _network(self, builder):
        trt = self.trt
        flags = 0
        if trt_major(trt.__version__) < 10:
            flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        return builder.create_network(flags)

    def parse(self, builder, onnx_path: str):
        """Parse the ONNX file into a new network; return (network, parser)."""
        trt = self.trt
        network = self._network(builder)
        parser = trt.OnnxParser(network, self.logger)
        # parse_from_file resolves external weight files next to the model.
        if not parser.parse_from_file(os.path.abspath(onnx_path)):
            lines = []
            for i in range(parser.num_errors):
                error = parser.get_error(i)
                lines.append(f'  node {error.node()}: {error.desc()} (code {error.code()})')
            if 'UINT8' in '\n'.join(lines).upper():
                # Older TensorRT versions take no uint8 network inputs; a float graph runs on all.
                lines.append('  hint: re-export with training/export_onnx.py --input-dtype '
                             'float32 for this TensorRT version')
            raise BackendError(f'TensorRT cannot parse {onnx_path}:\n' + '\n'.join(lines))
        for i in range(network.num_inputs):
            t = network.get_input(i)
            self.log(f'network input  {t.name}: shape {tuple(t.shape)} dtype {t.dtype}')
        for i in range(network.num_outputs):
            t = network.get_output(i)
            self.log(f'network output {t.name}: shape {tuple(t.shape)} dtype {t.dtype}')
        return network, parser

    def build(self, onnx_path: str, meta: ModelMeta, precision: str = 'fp32',
              height: Optional[int] = None, width: Optional[int] = None,
              calibrator=None) -> bytes:
        """Build and return the serialised engine."""
        trt = self.trt
        builder = trt.Builder(self.logger)
        network, _parser = self.parse(builder, onnx_path)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_bytes)
        if precision == 'fp32' and hasattr(trt.BuilderFlag, 'TF32'):
            # TF32 is on by default (Ampere and newer, Orin included): 10-bit mantissas would
            # make 'fp32' a label that lies, and loosen the reference the self-check uses.
            config.clear_flag(trt.BuilderFlag.TF32)
        if precision in ('fp16', 'int8'):
            if not getattr(builder, 'platform_has_fast_fp16', True):
                self.log('warning: this GPU has no fast fp16; the engine may be slower')
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == 'int8':
            if not getattr(builder, 'platform_has_fast_int8', True):
                self.log('warning: this GPU has no fast int8')
            if calibrator is None:
                raise BackendError('int8 needs calibration images (calibration_folder) or a '
                                   'calibration cache')
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
        if network.num_inputs != 1:
            raise BackendError(f'expected one input, the network has {network.num_inputs}')
        tensor = network.get_input(0)
        shapes = profile_shapes(tuple(tensor.shape), meta, height, width)
        if shapes is not None:
            profile = builder.create_optimization_profile()
            profile.set_shape(tensor.name, *shapes)
            config.add_optimization_profile(profile)
            if precision == 'int8':
                config.set_calibration_profile(profile)
            self.log(f'optimisation profile {tensor.name}: min {shapes[0]} opt {shapes[1]} '
                     f'max {shapes[2]}')
        cache = None
        if self.timing_cache:
            blob = b''
            if os.path.isfile(self.timing_cache):
                with open(self.timing_cache, 'rb') as handle:
                    blob = handle.read()
            cache = config.create_timing_cache(blob)
            if not config.set_timing_cache(cache, False):
                # A cache from another TensorRT or GPU is unusable; start an empty one.
                self.log(f'ignoring incompatible timing cache {self.timing_cache}')
                cache = config.create_timing_cache(b'')
                config.set_timing_cache(cache, False)
        self.log(f'building {precision} engine for {onnx_path} (this takes minutes once)')
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f'TensorRT failed to build a {precision} engine for {onnx_path}; '
                               'see the TensorRT log above')
        if cache is not None:
            from mono_depth_ros.core.atomic import atomic_write_bytes
            atomic_write_bytes(self.timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)


# -- running ----------------------------------------------------------------------------
class EngineRunner:
    """Deserialise an engine and run it on one input (device buffers reused across calls)."""

    def __init__(self, engine_bytes: bytes, log: Optional[Callable[[str], None]] = None):
        self.trt = trt = import_tensorrt()
        self.cudart = cuda_runtime()
        self.log = log or print
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise BackendError('TensorRT could not deserialise the engine (built by another '
                               'TensorRT version or for another GPU?)')
        self.context = self.engine.create_execution_context()
        self.stream = cuda_check(self.cudart.cudaStreamCreate())
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
        if len(inputs) != 1 or not outputs:
            raise BackendError(f'expected one input and an output, got {len(inputs)} inputs '
                               f'and {len(outputs)} outputs')
        return inputs, outputs

    def _device(self, name: str, nbytes: int) -> int:
        address, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if address:
                cuda_check(self.cudart.cudaFree(address))
            address = int(cuda_check(self.cudart.cudaMalloc(nbytes)))
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
        """Run the engine; return the first output as a host array."""
        cudart = self.cudart
        name, _shape, dtype = self.inputs[0]
        tensor = np.ascontiguousarray(tensor, dtype=dtype)
        if tensor.shape != self._shape:
            self._configure(tensor.shape)
        d_in = self._device(name, tensor.nbytes)
        cuda_check(cudart.cudaMemcpyAsync(d_in, tensor.ctypes.data, tensor.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                          self.stream))
        hosts = []
        addresses = {name: d_in}
        for out_name, shape, out_dtype in self._out_shapes:
            host = np.empty(shape, out_dtype)
            addresses[out_name] = self._device(out_name, max(host.nbytes, 1))
            hosts.append((out_name, host))
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
        for out_name, host in hosts:
            cuda_check(cudart.cudaMemcpyAsync(host.ctypes.data, addresses[out_name],
                                              host.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                              self.stream))
        cuda_check(cudart.cudaStreamSynchronize(self.stream))
        return hosts[0][1]

    def close(self) -> None:
        """Free device buffers and the stream."""
        for address, _size in self._buffers.values():
            self.cudart.cudaFree(address)
        self._buffers.clear()
        if self.stream is not None:
            self.cudart.cudaStreamDestroy(self.stream)
            self.stream = None


def onnx_input_shape(onnx_path: str) -> Tuple:
    """Return the ONNX input's dims (ints, -1 for symbolic) without loading the weights."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField('dim_value') else -1 for d in dims)


def onnx_meta(onnx_path: str) -> ModelMeta:
    """Read ModelMeta from an ONNX file's metadata properties."""
    import onnx
    model = onnx.load(onnx_path, load_external_data=False)
    try:
        return ModelMeta.from_onnx_props({p.key: p.value for p in model.metadata_props})
    except ModelMetaError as exc:
        raise BackendError(f'{onnx_path}: {exc}') from exc


def engine_key(onnx_path: str, precision: str, input_shape, workspace_bytes: int,
               calibration_cache: Optional[str] = None) -> EngineKey:
    """Return the cache key of an engine for this machine (needs tensorrt and CUDA)."""
    trt = import_tensorrt()
    gpu, capability = device_info()
    calib = ''
    if precision == 'int8' and calibration_cache and os.path.isfile(calibration_cache):
        calib = sha256_file(calibration_cache)
    return EngineKey.create(sha256_file(onnx_path), trt.__version__, gpu, capability,
                            precision, input_shape, workspace_bytes, calib)


class TensorRTBackend(Backend):
    """Run a TensorRT engine, built from ONNX into the engine cache or loaded from .engine."""

    name = 'tensorrt'

    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        try:
            trt = import_tensorrt()
            cuda_runtime()
        except BackendError as exc:
            return False, str(exc)
        try:
            gpu, capability = device_info()
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
        log = options.get('log') or print
        if os.path.splitext(model_path)[1].lower() in ('.engine', '.plan', '.trt'):
            check = check_engine(model_path)
            if not check.ok:
                raise BackendError(f'refusing to load {model_path}: {check.reason}')
            meta = ModelMeta.from_dict(check.sidecar['meta'])
            fields = check.sidecar['key_fields']
            trt = import_tensorrt()
            gpu, capability = device_info()
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

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        out = self.runner.infer(tensor)
        return np.asarray(out, np.float32).reshape(out.shape[-2:])

    def describe(self) -> str:
        return (f'tensorrt {self.runner.trt.__version__} {self.precision} '
                f'engine {os.path.basename(self.engine_path)}')

    def close(self) -> None:
        self.runner.close()


def load_or_build_engine(onnx_path: str, precision: str, meta: ModelMeta,
                         engine_cache_dir: str = DEFAULT_CACHE_DIR,
                         workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                         calibration_folder: Optional[str] = None,
                         calibration_cache: Optional[str] = None,
                         timing_cache: Optional[str] = None,
                         height: Optional[int] = None, width: Optional[int] = None,
                         log: Optional[Callable[[str], None]] = None) -> Tuple[str, bytes, bool]:
    """Return (engine path, bytes, built) from the cache, building it if needed."""
    log = log or print
    cache = EngineCache(engine_cache_dir, log)
    # The sidecar describes the engine as built, so a node loading the .engine feeds it
    # the size its profile is tuned for.
    meta = sized_meta(meta, height, width)
    h, w = meta.input_height, meta.input_width
    shape = (1, h, w, 3) if meta.input_layout == 'NHWC' else (1, 3, h, w)
    workspace = int(workspace_gib * (1 << 30))
    if precision == 'int8' and not calibration_cache:
        calibration_cache = os.path.join(cache.cache_dir, os.path.splitext(
            os.path.basename(onnx_path))[0] + '.calib')
    key = engine_key(onnx_path, precision, shape, workspace, calibration_cache)
    timing_cache = timing_cache or os.path.join(
        cache.cache_dir, f'timing_trt{key.tensorrt_version}_sm{key.compute_capability}.cache')

    def build() -> bytes:
        calibrator = None
        if precision == 'int8':
            from mono_depth_ros.inference.tensorrt.calibration import (
                CalibrationBatcher, make_entropy_calibrator)
            if calibration_folder:
                # Calibration runs at the profile's optimum shape: the sized meta's.
                batcher = CalibrationBatcher(calibration_folder, meta, batch_size=1)
            elif os.path.isfile(calibration_cache):
                batcher = _EmptyBatcher()
            else:
                raise BackendError('int8 needs calibration_folder (real images like the '
                                   'robot sees) or an existing calibration cache')
            calibrator = make_entropy_calibrator(batcher, calibration_cache)
        builder = EngineBuilder(workspace_gib, timing_cache, log)
        return builder.build(onnx_path, meta, precision, h, w, calibrator)

    if precision == 'int8' and not os.path.isfile(calibration_cache):
        # The key names the calibration cache the engine was built from, and that cache is
        # only written while this build calibrates: so calibrate first, then file the engine
        # under the key of the cache it wrote. Keyed before calibration, it would be
        # orphaned and rebuilt on the next start.
        with file_lock(calibration_cache + '.lock'):
            if not os.path.isfile(calibration_cache):
                cached = _load_cached(cache, onnx_path, key)
                data = cached if cached is not None else build()
                key = engine_key(onnx_path, precision, shape, workspace, calibration_cache)
                path, data, built = cache.get_or_build(onnx_path, key, meta, lambda: data)
                log(f'{"built" if built else "loaded cached"} engine {path}')
                return path, data, built
        # Another process calibrated while this one waited: its cache is now part of the key.
        key = engine_key(onnx_path, precision, shape, workspace, calibration_cache)
    path, data, built = cache.get_or_build(onnx_path, key, meta, build)
    log(f'{"built" if built else "loaded cached"} engine {path}')
    return path, data, built


def _load_cached(cache: EngineCache, onnx_path: str, key: EngineKey) -> Optional[bytes]:
    """Return the valid cached engine bytes for key, or None."""
    path = cache.engine_path(onnx_path, key)
    if not check_engine(path, key).ok:
        return None
    with open(path, 'rb') as handle:
        return handle.read()


class _EmptyBatcher:
    """Stand-in batcher when only a calibration cache exists: TensorRT reads the cache."""

    batch_size = 1

    def padded(self):
        return iter(())


def build_with_selfcheck(onnx_path: str, precision: str = 'fp32', self_check: bool = True,
                         **options) -> Backend:
    """Build/load the engine, compare it with the reference, fall back loudly on mismatch."""
    log = options.get('log') or print
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
        log(line)
        if line.startswith('SELF-CHECK FAILED'):
            # The node's log callback is info level; a wrong engine must not go unnoticed.
            print(f'WARNING: {line}', file=sys.stderr, flush=True)
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
           'fallback_chain', 'profile_shapes', 'relative_error', 'read_sidecar', 'sized_meta']
