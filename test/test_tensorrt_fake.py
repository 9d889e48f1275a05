"""The TensorRT build/cache/run/self-check code, driven through a fake tensorrt and CUDA."""

import json
import os
import sys

import cv2
from export_helpers import export_tiny
from fake_tensorrt import FakeCudart, make_fake_tensorrt
from mono_depth_ros.core.frame import Preprocessor
from mono_depth_ros.inference.base import BackendError, create_backend
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.inference.tensorrt import cuda as tensorrt_cuda
from mono_depth_ros.inference.tensorrt.backend import TensorRTBackend
from mono_depth_ros.inference.tensorrt.calibration import CalibrationError
from mono_depth_ros.inference.tensorrt.engine_cache import check_engine, sidecar_path
from mono_depth_ros.tools.build_engine import EngineBuildJob, main as build_main
import numpy as np
from onnx_models import brightness_model
import pytest


@pytest.fixture
def fake(monkeypatch):
    """Install a fake tensorrt module and CUDA runtime; return an installer."""
    def install(**kwargs):
        trt, record = make_fake_tensorrt(**kwargs)
        cudart = FakeCudart()
        monkeypatch.setitem(sys.modules, 'tensorrt', trt)
        monkeypatch.setattr(tensorrt_cuda, 'cuda_runtime', lambda: cudart)
        return trt, record
    return install


@pytest.fixture
def model(tmp_path):
    path = str(tmp_path / 'bright.onnx')
    meta = brightness_model(path, height=24, width=32)
    return path, meta


def image_tensor(meta, seed=0):
    rgb = np.random.default_rng(seed).integers(0, 256, (meta.input_height, meta.input_width,
                                                        3), dtype=np.uint8)
    return Preprocessor(meta)(rgb)


def calibration_folder(tmp_path, values):
    """Write one 40x30 grey PNG per value into tmp_path/calib and return the folder."""
    folder = tmp_path / 'calib'
    folder.mkdir()
    for i, value in enumerate(values):
        cv2.imwrite(str(folder / f'{i}.png'), np.full((30, 40, 3), value, np.uint8))
    return folder


def test_available_with_device_name(fake):
    fake()
    ok, text = TensorRTBackend.is_available()
    assert ok and text == '10.3.0 on Fake Orin (sm 8.7)'


def test_fp16_engine_built_checked_cached_and_run(fake, model, tmp_path):
    _trt, record = fake()
    path, meta = model
    lines = []
    cache = str(tmp_path / 'engines')
    backend = create_backend('auto', path, precision='fp16', log=lines.append,
                             engine_cache_dir=cache)
    assert backend.name == 'tensorrt' and backend.precision == 'fp16'
    assert [b['precision'] for b in record['builds']] == ['fp16']
    build = record['builds'][0]
    assert build['flags'] == ['FP16'] and build['workspace'] == 1 << 30
    assert build['profiles'] == [] and build['network_flags'] == 0
    assert build['cleared'] == []
    assert any('network input  image' in line for line in lines)
    assert any('engine output depth' in line for line in lines)
    assert any('self-check: tensorrt fp16 agrees' in line for line in lines)
    assert lines[-1].startswith('backend auto -> tensorrt 10.3.0 fp16')
    tensor = image_tensor(meta)
    expected = OnnxRuntimeBackend.from_file(path).infer(tensor)
    assert np.allclose(backend.infer(tensor), expected, atol=1e-6)
    assert backend.infer(tensor).shape == (24, 32)
    backend.close()
    engines = [f for f in os.listdir(cache) if f.endswith('.engine')]
    assert len(engines) == 1 and engines[0].startswith('bright_fp16_')
    assert os.path.isfile(os.path.join(cache, 'timing_trt10.3.0_sm8.7.cache'))
    again = TensorRTBackend.from_file(path, 'fp16', engine_cache_dir=cache, log=lines.append)
    assert len(record['builds']) == 1  # loaded from the cache
    assert record['timing_cache_in'] == b''
    again.close()


def test_wrong_fp16_engine_falls_back_to_fp32(fake, model, tmp_path):
    _trt, record = fake(wrong_precisions=('fp16',))
    path, _meta = model
    lines, warnings = [], []
    backend = TensorRTBackend.from_file(path, 'fp16', engine_cache_dir=str(tmp_path / 'c'),
                                        log=lines.append, warn=warnings.append)
    assert (backend.name, backend.precision) == ('tensorrt', 'fp32')
    assert [b['precision'] for b in record['builds']] == ['fp16', 'fp32']
    # The failure goes to the warning channel, loudly, not to the info log.
    assert len(warnings) == 1 and warnings[0].startswith('SELF-CHECK FAILED: tensorrt fp16')
    assert not any('SELF-CHECK FAILED' in line for line in lines)
    # Without a warn channel it still reaches the log, marked.
    lines = []
    TensorRTBackend.from_file(path, 'fp16', engine_cache_dir=str(tmp_path / 'c'),
                              log=lines.append)
    assert any(line.startswith('WARNING: SELF-CHECK FAILED') for line in lines)


def test_every_engine_wrong_falls_back_to_onnxruntime(fake, model, tmp_path):
    fake(wrong_precisions=('int8', 'fp32'))
    path, _meta = model
    folder = calibration_folder(tmp_path, [100])
    backend = TensorRTBackend.from_file(path, 'int8', engine_cache_dir=str(tmp_path / 'c'),
                                        calibration_folder=str(folder), log=lambda _m: None)
    assert isinstance(backend, OnnxRuntimeBackend)


def test_dynamic_model_gets_a_profile_and_a_copy(fake, tmp_path):
    _trt, record = fake()
    onnx_path, _ts, _meta, _model = export_tiny(tmp_path, dynamic=True, torchscript=False)
    out = str(tmp_path / 'out' / 'tiny.engine')
    job = EngineBuildJob(onnx_path, 'fp32', str(tmp_path / 'cache'), height=64, width=96,
                         output=out, log=lambda _m: None)
    assert job.run() == out
    name, mn, opt, mx = record['builds'][0]['profiles'][0]
    assert name == 'image' and opt == (1, 64, 96, 3)
    assert mn == (1, 32, 32, 3) and mx == (1, 128, 192, 3)
    assert check_engine(out).ok
    assert json.load(open(sidecar_path(out)))['key_fields']['input_shape'] == [1, 64, 96, 3]


def test_int8_calibrates_once_then_reuses_the_cache(fake, model, tmp_path):
    _trt, record = fake()
    path, _meta = model
    folder = calibration_folder(tmp_path, [0, 50, 100])
    calib = str(tmp_path / 'model.calib')
    EngineBuildJob(path, 'int8', str(tmp_path / 'c1'), calibration_folder=str(folder),
                   calibration_cache=calib, log=lambda _m: None).run()
    assert record['calibration_batches'] == 3
    assert open(calib, 'rb').read() == b'CALIBRATION'
    assert record['builds'][0]['flags'] == ['FP16', 'INT8']
    EngineBuildJob(path, 'int8', str(tmp_path / 'c2'), calibration_cache=calib,
                   log=lambda _m: None).run()
    assert record['calibration_batches'] == 3 and len(record['builds']) == 2


def test_request_errors(fake, model, tmp_path, capsys):
    path, _meta = model
    with pytest.raises(CalibrationError, match='int8 needs'):
        EngineBuildJob(path, 'int8', str(tmp_path)).run()
    with pytest.raises(BackendError, match='both --height and --width'):
        EngineBuildJob(path, 'fp16', str(tmp_path), height=64).run()
    other = tmp_path / 'model.pt'
    other.write_bytes(b'x')
    with pytest.raises(BackendError, match='takes an .onnx'):
        EngineBuildJob(str(other), 'fp16').run()
    assert build_main(['--model', path, '--precision', 'int8']) == 1
    assert 'int8 needs' in capsys.readouterr().err
    fake(parse_error=True)
    with pytest.raises(BackendError, match='node 3: Unsupported operator FancyOp'):
        EngineBuildJob(path, 'fp32', str(tmp_path / 'c'), log=lambda _m: None).run()


def test_tensorrt_8_uses_the_explicit_batch_flag(fake, model, tmp_path):
    _trt, record = fake(version='8.6.1')
    path, _meta = model
    EngineBuildJob(path, 'fp32', str(tmp_path), log=lambda _m: None).run()
    assert record['builds'][0]['network_flags'] == 1
    # fp32 means fp32: TensorRT's default TF32 is switched off.
    assert record['builds'][0]['cleared'] == ['TF32']


def test_engine_files_are_checked_before_loading(fake, model, tmp_path):
    fake()
    path, meta = model
    out = str(tmp_path / 'bright.engine')
    EngineBuildJob(path, 'fp16', str(tmp_path / 'c'), output=out, log=lambda _m: None).run()
    backend = create_backend('auto', out, log=lambda _m: None)
    assert backend.precision == 'fp16' and backend.meta == meta
    assert backend.infer(image_tensor(meta)).shape == (24, 32)
    sidecar = json.load(open(sidecar_path(out)))
    sidecar['key_fields']['tensorrt_version'] = '8.5.2'
    open(sidecar_path(out), 'w').write(json.dumps(sidecar))
    with pytest.raises(BackendError, match='built with TensorRT 8.5.2'):
        TensorRTBackend.from_file(out)
    open(out, 'ab').write(b'junk')
    with pytest.raises(BackendError, match='corrupt or truncated'):
        TensorRTBackend.from_file(out)
    os.remove(sidecar_path(out))
    with pytest.raises(BackendError, match='sidecar .* is missing'):
        TensorRTBackend.from_file(out)


def test_int8_engine_calibrated_from_a_folder_is_found_on_the_next_start(fake, model, tmp_path):
    _trt, record = fake()
    path, _meta = model
    folder = calibration_folder(tmp_path, [0, 60])
    cache = tmp_path / 'engines'
    for _start in range(3):
        job = EngineBuildJob(path, 'int8', str(cache), calibration_folder=str(folder),
                             log=lambda _m: None)
        engine = job.run()
    # Calibrated and built once; the engine is filed under the key of the cache it wrote.
    assert len(record['builds']) == 1 and record['calibration_batches'] == 2
    assert sorted(f for f in os.listdir(cache) if f.endswith('.engine')) == [
        os.path.basename(engine)]
    fields = json.load(open(sidecar_path(engine)))['key_fields']
    assert fields['calibration_sha256'] != ''


def test_uint8_parse_error_suggests_a_float_export(fake, model, tmp_path):
    fake(version='8.5.2', parse_error='Unsupported ONNX data type: UINT8 (2)')
    path, _meta = model
    with pytest.raises(BackendError, match='UINT8 .*\n.*--input-dtype float32'):
        EngineBuildJob(path, 'fp16', str(tmp_path), log=lambda _m: None).run()


def test_int8_calibration_batches_match_the_profile_optimum(fake, tmp_path, monkeypatch):
    fake()
    from mono_depth_ros.inference.tensorrt import calibration
    onnx_path, _ts, _meta, _model = export_tiny(tmp_path, dynamic=True, torchscript=False)
    folder = calibration_folder(tmp_path, [100])
    shapes = []
    original = calibration.CalibrationBatcher.padded

    def padded(self):
        for batch in original(self):
            shapes.append(batch.shape)
            yield batch

    monkeypatch.setattr(calibration.CalibrationBatcher, 'padded', padded)
    EngineBuildJob(onnx_path, 'int8', str(tmp_path / 'c'), calibration_folder=str(folder),
                   height=64, width=96, log=lambda _m: None).run()
    # The tiny model's own size is 32x48; the engine is built for 64x96.
    assert shapes == [(1, 64, 96, 3)]


def test_engine_for_another_size_carries_that_size(fake, tmp_path):
    fake()
    onnx_path, _ts, meta, _model = export_tiny(tmp_path, dynamic=True, torchscript=False)
    out = str(tmp_path / 'big.engine')
    EngineBuildJob(onnx_path, 'fp16', str(tmp_path / 'c'), height=64, width=96, output=out,
                   log=lambda _m: None).run()
    # A node given the engine feeds it the size its profile is tuned for; the training
    # focal is unchanged (the network's pixel scale). Both ways in are TensorRT engines: the
    # fake engine computes brightness, not the tiny net, so the ONNX path runs without the
    # self-check (which would fall back to ONNX Runtime; tested below).
    for backend in (create_backend('tensorrt', out, log=lambda _m: None),
                    TensorRTBackend.from_file(onnx_path, 'fp16', height=64, width=96,
                                              engine_cache_dir=str(tmp_path / 'c'),
                                              self_check=False, log=lambda _m: None)):
        assert backend.name == 'tensorrt' and backend.precision == 'fp16'
        assert (backend.meta.input_height, backend.meta.input_width) == (64, 96)
        assert backend.meta.train_fx == pytest.approx(meta.train_fx)
        tensor = image_tensor(backend.meta)
        assert tensor.shape == (1, 64, 96, 3)
        # The fake engine's brightness, at the asked size: it ran, not a fallback.
        expected = tensor[0].astype(np.float32).mean(axis=2) / 255.0
        assert np.allclose(backend.infer(tensor), expected, atol=1e-6)
        backend.close()
    # With the self-check, the disagreement falls back to ONNX Runtime at the asked size.
    fallback = TensorRTBackend.from_file(onnx_path, 'fp16', height=64, width=96,
                                         engine_cache_dir=str(tmp_path / 'c'),
                                         log=lambda _m: None, warn=lambda _m: None)
    assert fallback.name == 'onnxruntime'
    assert (fallback.meta.input_height, fallback.meta.input_width) == (64, 96)
    assert fallback.infer(image_tensor(fallback.meta)).shape == (64, 96)


def test_a_fixed_size_model_refuses_another_size(fake, model, tmp_path):
    fake()
    path, _meta = model
    with pytest.raises(BackendError, match='fixed 24x32 input'):
        EngineBuildJob(path, 'fp16', str(tmp_path), height=48, width=64,
                       log=lambda _m: None).run()


def test_depth_bench_times_an_engine_and_its_device_memory(fake, model, tmp_path):
    fake()
    from mono_depth_ros.tools.depth_bench import BenchConfig, run
    path, _meta = model
    result = run(BenchConfig(model=path, backends=['tensorrt'], iterations=3, warmup=1,
                             pipeline_frames=0, engine_cache_dir=str(tmp_path / 'c')),
                 log=lambda _m: None)
    (row,) = result['rows']
    assert row['status'] == 'ok' and row['describe'].startswith('tensorrt 10.3.0 fp32')
    # The fake device holds the engine's input (uint8) and output (float32) buffers.
    assert row['peak_mem_mb'] == pytest.approx((24 * 32 * 3 + 24 * 32 * 4) / 2**20)


def test_depth_bench_builds_one_engine_per_size_for_a_dynamic_model(fake, tmp_path):
    _trt, record = fake()
    from mono_depth_ros.tools.depth_bench import BenchConfig, run
    onnx_path, _ts, _meta, _model = export_tiny(tmp_path, dynamic=True, torchscript=False)
    result = run(BenchConfig(model=onnx_path, backends=['tensorrt'], sizes=[(32, 48), (64, 96)],
                             iterations=2, warmup=0, pipeline_frames=0,
                             engine_cache_dir=str(tmp_path / 'c')), log=lambda _m: None)
    assert [(r['size'], r['status']) for r in result['rows']] == [('32x48', 'ok'),
                                                                  ('64x96', 'ok')]
    assert [b['profiles'][0][2] for b in record['builds']] == [(1, 32, 48, 3), (1, 64, 96, 3)]


def test_engine_with_two_outputs_returns_the_named_one(fake, tmp_path):
    import onnx
    fake(confidence_first=True)
    path = str(tmp_path / 'bright.onnx')
    meta = brightness_model(path, height=24, width=32)
    tensor = image_tensor(meta)
    expected = tensor[0].astype(np.float32).mean(axis=2) / 255.0
    # Unnamed: the engine's first output, the confidence map (1 - depth).
    first = TensorRTBackend.from_file(path, 'fp32', engine_cache_dir=str(tmp_path / 'a'),
                                      self_check=False)
    assert np.allclose(first.infer(tensor), 1.0 - expected, atol=1e-6)
    first.close()
    model = onnx.load(path)
    for entry in model.metadata_props:
        if entry.key == 'mono_depth.output_name':
            entry.value = '"depth"'
    onnx.save(model, path)
    named = TensorRTBackend.from_file(path, 'fp32', engine_cache_dir=str(tmp_path / 'b'),
                                      self_check=False)
    assert named.runner.output_name == 'depth'
    assert np.allclose(named.infer(tensor), expected, atol=1e-6)
    named.close()
    for entry in model.metadata_props:
        if entry.key == 'mono_depth.output_name':
            entry.value = '"disparity"'
    onnx.save(model, path)
    with pytest.raises(BackendError, match="names output 'disparity'"):
        TensorRTBackend.from_file(path, 'fp32', engine_cache_dir=str(tmp_path / 'c'),
                                  self_check=False)
