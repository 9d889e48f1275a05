"""
Building TensorRT engines from ONNX, and filing them in the engine cache.

Written for the TensorRT Python API of JetPack 5/6 (8.5 .. 10.x): explicit-batch networks,
optimisation profiles for dynamic models, fp16/int8 (with the calibration module), a timing
cache, and engines keyed by everything that makes one invalid (see engine_cache). The parts
that need no GPU (profile shapes, the sized metadata) are plain functions tested anywhere.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Optional, Sequence, Tuple

from mono_depth_ros.core.atomic import atomic_write_bytes
from mono_depth_ros.core.model_meta import ModelMeta, ModelMetaError
from mono_depth_ros.inference.base import BackendError
from mono_depth_ros.inference.tensorrt import cuda
from mono_depth_ros.inference.tensorrt.calibration import (CalibrationBatcher,
                                                           make_entropy_calibrator)
from mono_depth_ros.inference.tensorrt.engine_cache import (check_engine, EngineCache, EngineKey,
                                                            file_lock, sha256_file)

DEFAULT_CACHE_DIR = os.path.join('~', '.cache', 'mono_depth_ros', 'engines')
DEFAULT_WORKSPACE_GIB = 1.0


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
        self.trt = cuda.import_tensorrt()
        self.log = log or (lambda _line: None)
        self.workspace_bytes = int(workspace_gib * (1 << 30))
        self.timing_cache = timing_cache
        level = self.trt.Logger.VERBOSE if verbose else self.trt.Logger.WARNING
        self.logger = self.trt.Logger(level)

    def _network(self, builder):
        trt = self.trt
        flags = 0
        if cuda.trt_major(trt.__version__) < 10:
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
            atomic_write_bytes(self.timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)


def onnx_meta(onnx_path: str) -> ModelMeta:
    """Read ModelMeta from an ONNX file's metadata properties."""
    import onnx
    try:
        model = onnx.load(onnx_path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, OSError, onnx's own
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise BackendError(f'{onnx_path} is not a readable ONNX model: {first}') from None
    try:
        return ModelMeta.from_onnx_props({p.key: p.value for p in model.metadata_props})
    except ModelMetaError as exc:
        raise BackendError(f'{onnx_path}: {exc}') from exc


def engine_key(onnx_path: str, precision: str, input_shape, workspace_bytes: int,
               calibration_cache: Optional[str] = None) -> EngineKey:
    """Return the cache key of an engine for this machine (needs tensorrt and CUDA)."""
    trt = cuda.import_tensorrt()
    gpu, capability = cuda.device_info()
    calib = ''
    if precision == 'int8' and calibration_cache and os.path.isfile(calibration_cache):
        calib = sha256_file(calibration_cache)
    return EngineKey.create(sha256_file(onnx_path), trt.__version__, gpu, capability,
                            precision, input_shape, workspace_bytes, calib)


def load_or_build_engine(onnx_path: str, precision: str, meta: ModelMeta,
                         engine_cache_dir: str = DEFAULT_CACHE_DIR,
                         workspace_gib: float = DEFAULT_WORKSPACE_GIB,
                         calibration_folder: Optional[str] = None,
                         calibration_cache: Optional[str] = None,
                         timing_cache: Optional[str] = None,
                         height: Optional[int] = None, width: Optional[int] = None,
                         log: Optional[Callable[[str], None]] = None) -> Tuple[str, bytes, bool]:
    """Return (engine path, bytes, built) from the cache, building it if needed."""
    log = log or (lambda _line: None)
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
