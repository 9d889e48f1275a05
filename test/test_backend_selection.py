"""Backend selection, and the TensorRT logic that needs no GPU: profiles and the self-check."""

import math

from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import available_backends, BackendError, create_backend
from mono_depth_ros.inference.tensorrt.backend import TensorRTBackend
from mono_depth_ros.inference.tensorrt.builder import profile_shapes
from mono_depth_ros.inference.tensorrt.cuda import trt_major
from mono_depth_ros.inference.tensorrt.selfcheck import (decide_selfcheck, fallback_chain,
                                                         relative_error, selfcheck_image)
import numpy as np
from onnx_models import brightness_model
import pytest

META = ModelMeta(arch='tiny', input_height=240, input_width=320)


def trt_missing():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return True
    return False


def torch_missing():
    try:
        import torch  # noqa: F401
    except ImportError:
        return True
    return False


def test_available_backends_report_reasons():
    found = available_backends()
    assert set(found) == {'tensorrt', 'onnxruntime', 'torch'}
    assert found['onnxruntime'][0] is True
    assert found['torch'][0] is not torch_missing()
    if trt_missing():
        ok, reason = found['tensorrt']
        assert not ok and 'tensorrt is not importable' in reason


@pytest.mark.skipif(not trt_missing(), reason='TensorRT is installed here')
def test_auto_picks_onnxruntime_and_says_why(tmp_path):
    path = str(tmp_path / 'm.onnx')
    brightness_model(path)
    lines = []
    backend = create_backend('auto', path, log=lines.append)
    assert backend.name == 'onnxruntime'
    assert len(lines) == 1
    assert lines[0].startswith('backend auto -> onnxruntime')
    assert 'skipped tensorrt: tensorrt is not importable' in lines[0]
    engine = tmp_path / 'm.engine'
    engine.write_bytes(b'x')
    with pytest.raises(BackendError, match='no backend can run'):
        create_backend('auto', str(engine), log=lines.append)
    assert not TensorRTBackend.is_available()[0]


def test_explicit_backends_fail_with_reasons(tmp_path):
    path = str(tmp_path / 'm.onnx')
    brightness_model(path)
    wrong_file = 'torch not importable' if torch_missing() else 'torch backend runs TorchScript'
    with pytest.raises(BackendError, match=wrong_file):
        create_backend('torch', path)
    with pytest.raises(BackendError, match='unknown backend'):
        create_backend('openvino', path)
    with pytest.raises(BackendError, match='not found'):
        create_backend('auto', str(tmp_path / 'missing.onnx'))


@pytest.mark.parametrize('backend', ['auto', 'torch'])
def test_a_checkpoint_is_refused_with_the_export_even_without_torch(tmp_path, monkeypatch,
                                                                    backend):
    from mono_depth_ros.inference.torch_backend import TorchBackend
    # A robot without torch: the refusal must name the export, not the missing torch.
    monkeypatch.setattr(TorchBackend, 'is_available',
                        classmethod(lambda cls: (False, 'torch not importable (test)')))
    ckpt = tmp_path / 'best.pt'
    ckpt.write_bytes(b'PK\x05\x06' + bytes(18))  # an empty zip, as torch.save's is a zip
    with pytest.raises(BackendError) as info:
        create_backend(backend, str(ckpt))
    assert 'training checkpoint' in str(info.value)
    assert 'training/export_onnx.py --checkpoint' in str(info.value)
    assert 'torch not importable' not in str(info.value)


def test_trt_major():
    assert trt_major('8.6.1.6') == 8 and trt_major('10.3.0') == 10
    with pytest.raises(BackendError):
        trt_major('dev')


def test_profile_shapes():
    assert profile_shapes((1, 240, 320, 3), META) is None
    mn, opt, mx = profile_shapes((1, -1, -1, 3), META)
    assert opt == (1, 240, 320, 3)
    assert mn == (1, 96, 160, 3) and mx == (1, 480, 640, 3)
    assert all(v % 32 == 0 for v in mn[1:3] + mx[1:3])
    nchw = ModelMeta(arch='t', input_height=240, input_width=320, input_layout='NCHW')
    mn, opt, mx = profile_shapes((-1, 3, -1, -1), nchw, height=480, width=640)
    assert opt == (1, 3, 480, 640) and mn[0] == 1 and mn[1] == 3 and mx == (1, 3, 960, 1280)
    mn, opt, mx = profile_shapes((1, 240, -1, 3), META)
    assert mn[1] == opt[1] == mx[1] == 240 and mn[2] < 320 < mx[2]
    with pytest.raises(BackendError, match='4-D'):
        profile_shapes((1, -1, 3), META)


def test_relative_error():
    ref = np.array([[1.0, 2.0], [3.0, np.nan]], np.float32)
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ref * 1.01, ref) == pytest.approx(0.01, rel=1e-3)
    bad = ref.copy()
    bad[0, 0] = np.inf
    assert relative_error(bad, ref) == math.inf
    assert relative_error(ref[:1], ref) == math.inf


def test_fallback_chain():
    assert fallback_chain('int8', True) == [('tensorrt', 'int8'), ('tensorrt', 'fp32'),
                                            ('onnxruntime', 'fp32')]
    assert fallback_chain('fp16', False) == [('tensorrt', 'fp16'), ('tensorrt', 'fp32')]
    assert fallback_chain('fp32', True) == [('tensorrt', 'fp32'), ('onnxruntime', 'fp32')]


def test_selfcheck_keeps_an_engine_that_agrees():
    measured = []
    result = decide_selfcheck(fallback_chain('fp16', True),
                              lambda c: measured.append(c) or 2e-3)
    assert (result.backend, result.precision) == ('tensorrt', 'fp16')
    assert measured == [('tensorrt', 'fp16')]
    assert not result.fell_back
    assert 'agrees' in result.messages[-1]


def test_selfcheck_falls_back_step_by_step():
    errors = {('tensorrt', 'int8'): 0.5, ('tensorrt', 'fp32'): 1e-5}
    result = decide_selfcheck(fallback_chain('int8', True), errors.__getitem__)
    assert (result.backend, result.precision) == ('tensorrt', 'fp32')
    assert result.fell_back
    assert result.messages[0].startswith('SELF-CHECK FAILED: tensorrt int8')
    # Every engine wrong (the reported JetPack symptom): ONNX Runtime takes over.
    result = decide_selfcheck(fallback_chain('fp16', True), lambda c: 0.3)
    assert (result.backend, result.precision) == ('onnxruntime', 'fp32')
    assert sum('SELF-CHECK FAILED' in m for m in result.messages) == 2


def test_selfcheck_treats_crashes_and_nan_as_failures():
    def measure(candidate):
        if candidate[1] == 'fp16':
            raise RuntimeError('illegal memory access')
        return float('nan')

    result = decide_selfcheck(fallback_chain('fp16', True), measure)
    assert (result.backend, result.precision) == ('onnxruntime', 'fp32')
    assert 'failed to run: illegal memory access' in result.messages[0]


def test_selfcheck_without_onnxruntime_uses_the_fp32_engine_as_reference():
    result = decide_selfcheck(fallback_chain('fp16', False), lambda c: 1.0)
    assert (result.backend, result.precision) == ('tensorrt', 'fp32')
    result = decide_selfcheck(fallback_chain('fp32', False), lambda c: 1 / 0)
    assert (result.backend, result.precision) == ('tensorrt', 'fp32')
    assert 'no reference' in result.messages[-1]
    result = decide_selfcheck(fallback_chain('int8', True), lambda c: 0.09)
    assert result.precision == 'int8'
    result = decide_selfcheck(fallback_chain('int8', True), lambda c: 0.09,
                              tolerances={'int8': 0.05})
    assert result.precision == 'fp32'


def test_selfcheck_image_is_textured_and_deterministic():
    img = selfcheck_image(META)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    assert img.std() > 20
    assert np.array_equal(img, selfcheck_image(META))
