"""
A stand-in for the tensorrt and cuda-python modules, enough to drive the build/run code.

Its "engine" computes mean(RGB) / 255 per pixel, as the brightness test model does, from
host memory that plays device memory, so the TensorRT code path (parser errors, profiles,
builder flags, calibration, timing cache, name-based I/O, copies, the self-check) runs
without a GPU. ``wrong_precisions`` makes engines of those precisions scale their output,
like the wrong engines reported on some JetPack versions.
"""

import ctypes
import json
import types

import numpy as np
import onnx


class FakeCudart(types.SimpleNamespace):
    """cuda.bindings.runtime: calls return (error, *values) tuples."""

    def __init__(self):
        super().__init__(cudaMemcpyKind=types.SimpleNamespace(
            cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2))
        self.blocks = {}

    def cudaGetDeviceProperties(self, device):  # noqa: N802
        return 0, types.SimpleNamespace(name=b'Fake Orin\0\0', major=8, minor=7)

    def cudaMalloc(self, nbytes):  # noqa: N802
        block = np.zeros(nbytes, np.uint8)
        self.blocks[block.ctypes.data] = block
        return 0, block.ctypes.data

    def cudaMemGetInfo(self):  # noqa: N802
        total = 1 << 30
        return 0, total - sum(b.nbytes for b in self.blocks.values()), total

    def cudaFree(self, address):  # noqa: N802
        self.blocks.pop(address, None)
        return (0,)

    def cudaMemcpy(self, dst, src, nbytes, kind):  # noqa: N802
        ctypes.memmove(dst, src, nbytes)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        return self.cudaMemcpy(dst, src, nbytes, kind)

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 7

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaStreamDestroy(self, stream):  # noqa: N802
        return (0,)


def make_fake_tensorrt(version='10.3.0', wrong_precisions=(), parse_error=False,
                       confidence_first=False):
    """
    Return (tensorrt module, record dict of what the builder was asked).

    ``confidence_first`` gives engines a second output, ``confidence`` (1 - depth), listed
    before ``depth``: a runner that reads the first output instead of the bound one is seen.
    """
    outputs = ('confidence', 'depth') if confidence_first else ('depth',)
    record = {'builds': [], 'calibration_batches': 0, 'timing_cache_in': None}
    trt = types.ModuleType('tensorrt')
    trt.__version__ = version

    class Logger:
        WARNING, VERBOSE = 2, 4

        def __init__(self, level=2):
            self.level = level

    class Tensor:
        def __init__(self, name, shape, dtype):
            self.name, self.shape, self.dtype = name, shape, dtype

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.inputs, self.outputs = [], []
            self.num_inputs = self.num_outputs = 0

        def get_input(self, i):
            return self.inputs[i]

        def get_output(self, i):
            return self.outputs[i]

    class ParserError:
        def node(self):
            return 3

        def desc(self):
            # parse_error=True gives a generic error; a string is used as the description.
            return parse_error if isinstance(parse_error, str) else 'Unsupported operator FancyOp'

        def code(self):
            return 8

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network
            self.num_errors = 0

        def parse_from_file(self, path):
            if parse_error:
                self.num_errors = 1
                return False
            model = onnx.load(path)
            dims = [d.dim_value if d.HasField('dim_value') else -1
                    for d in model.graph.input[0].type.tensor_type.shape.dim]
            self.network.inputs = [Tensor('image', tuple(dims), 'UINT8')]
            self.network.outputs = [Tensor('depth', (1, 1, dims[1], dims[2]), 'FLOAT')]
            self.network.num_inputs, self.network.num_outputs = 1, 1
            return True

        def get_error(self, i):
            return ParserError()

    class TimingCache:
        def __init__(self, blob):
            self.blob = blob

        def serialize(self):
            return b'TIMING' + self.blob[:0]

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.pool = set(), [], {}
            self.cleared = set()
            self.int8_calibrator = None
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            self.pool[pool] = size

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.cleared.add(flag)

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)

        def set_calibration_profile(self, profile):
            self.calibration_profile = profile

        def create_timing_cache(self, blob):
            record['timing_cache_in'] = bytes(blob)
            return TimingCache(bytes(blob))

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            self.shapes = (name, mn, opt, mx)

    class Builder:
        platform_has_fast_fp16 = True
        platform_has_fast_int8 = True

        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            precision = ('int8' if 'INT8' in config.flags else
                         'fp16' if 'FP16' in config.flags else 'fp32')
            calibrator = config.int8_calibrator
            if calibrator is not None and calibrator.read_calibration_cache() is None:
                while calibrator.get_batch(['image']) is not None:
                    record['calibration_batches'] += 1
                calibrator.write_calibration_cache(b'CALIBRATION')
            record['builds'].append({'precision': precision, 'flags': sorted(config.flags),
                                     'workspace': config.pool.get('WORKSPACE'),
                                     'profiles': [p.shapes for p in config.profiles],
                                     'network_flags': network.flags,
                                     'cleared': sorted(config.cleared)})
            scale = 1.5 if precision in wrong_precisions else 1.0
            return json.dumps({'precision': precision, 'scale': scale}).encode()

    class Engine:
        def __init__(self, spec):
            self.spec = spec
            self.num_io_tensors = 1 + len(outputs)

        def get_tensor_name(self, i):
            return (('image',) + outputs)[i]

        def get_tensor_mode(self, name):
            return 'INPUT' if name == 'image' else 'OUTPUT'

        def get_tensor_shape(self, name):
            return (1, -1, -1, 3) if name == 'image' else (1, 1, -1, -1)

        def get_tensor_dtype(self, name):
            return np.uint8 if name == 'image' else np.float32

        def create_execution_context(self):
            return Context(self.spec)

    class Context:
        def __init__(self, spec):
            self.spec = spec
            self.addresses = {}

        def set_input_shape(self, name, shape):
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            return (1, 1, self.shape[1], self.shape[2])

        def set_tensor_address(self, name, address):
            self.addresses[name] = address

        def execute_async_v3(self, stream):
            n = int(np.prod(self.shape))
            raw = (ctypes.c_uint8 * n).from_address(self.addresses['image'])
            image = np.frombuffer(raw, np.uint8).reshape(self.shape)
            out = (image.astype(np.float32).mean(axis=3) / 255.0 * self.spec['scale'])
            out = np.ascontiguousarray(out.astype(np.float32))
            ctypes.memmove(self.addresses['depth'], out.ctypes.data, out.nbytes)
            if 'confidence' in self.addresses:
                other = np.ascontiguousarray(1.0 - out)
                ctypes.memmove(self.addresses['confidence'], other.ctypes.data, other.nbytes)
            return True

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            try:
                return Engine(json.loads(bytes(data)))
            except ValueError:
                return None

    class Calibrator:
        def __init__(self):
            self.base_initialised = True

    trt.Logger, trt.Builder, trt.OnnxParser, trt.Runtime = Logger, Builder, OnnxParser, Runtime
    trt.IInt8EntropyCalibrator2 = Calibrator
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE='WORKSPACE')
    trt.BuilderFlag = types.SimpleNamespace(FP16='FP16', INT8='INT8', TF32='TF32')
    trt.TensorIOMode = types.SimpleNamespace(INPUT='INPUT', OUTPUT='OUTPUT')
    trt.nptype = np.dtype
    return trt, record
