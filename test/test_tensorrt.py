"""TensorRT build, cache and run: only where tensorrt and a CUDA device exist."""

from export_helpers import export_tiny
from mono_depth_ros.core.frame import Preprocessor
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.inference.tensorrt.backend import TensorRTBackend
from mono_depth_ros.inference.tensorrt.engine_cache import check_engine
from mono_depth_ros.tools.build_engine import EngineBuildJob
import numpy as np
import pytest

# The modules above import tensorrt lazily; this is what needs it.
trt = pytest.importorskip('tensorrt', reason='TensorRT is not installed on this machine; the '
                          'TensorRT path runs only where it exists (Jetson / CUDA hosts)')


@pytest.fixture(scope='module')
def available():
    ok, why = TensorRTBackend.is_available()
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize('precision,tolerance', [('fp32', 1e-3), ('fp16', 2e-2)])
def test_engine_matches_onnxruntime(available, tmp_path, precision, tolerance):
    onnx_path, _ts, meta, _m = export_tiny(tmp_path, torchscript=False)
    logs = []
    backend = TensorRTBackend.from_file(onnx_path, precision,
                                        engine_cache_dir=str(tmp_path / 'cache'),
                                        log=logs.append)
    assert any('engine input' in line for line in logs)
    assert any('self-check' in line for line in logs)
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    tensor = Preprocessor(meta)(rgb)
    ref = OnnxRuntimeBackend.from_file(onnx_path).infer(tensor)
    out = backend.infer(tensor)
    assert out.shape == ref.shape
    assert np.mean(np.abs(out - ref)) / np.mean(np.abs(ref)) < tolerance
    backend.close()


def test_build_engine_job_writes_a_valid_engine(available, tmp_path):
    onnx_path, _ts, _meta, _m = export_tiny(tmp_path, dynamic=True, torchscript=False)
    out = str(tmp_path / 'copy.engine')
    path = EngineBuildJob(onnx_path, 'fp32', str(tmp_path / 'cache'), output=out,
                          log=lambda _m: None).run()
    assert path == out and check_engine(out).ok
    backend = TensorRTBackend.from_file(out)
    assert backend.infer(np.zeros((1, 32, 48, 3), np.uint8)).shape == (32, 48)
    backend.close()
