"""Pre/post-processing from model metadata, and the ONNX Runtime backend, without ROS."""

from mono_depth_ros.core.frame import NonFiniteOutputError, Postprocessor, Preprocessor
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference import available_backends, BackendError, create_backend
import numpy as np
from onnx_models import brightness_model
import pytest


def meta(**kw):
    base = dict(arch='t', input_height=6, input_width=8, min_depth=0.5, max_depth=20.0)
    base.update(kw)
    return ModelMeta(**base)


@pytest.mark.parametrize('mode, scale, shift, raw, depth', [
    ('metric', 2.0, 1.0, 1.5, 4.0),
    ('inverse_depth', 0.5, 0.1, 0.3, 4.0),
    ('disparity', 8.0, 1.0, 1.0, 4.0),
])
def test_output_modes(mode, scale, shift, raw, depth):
    post = Postprocessor(meta(output_mode=mode, output_scale=scale, output_shift=shift))
    out = post(np.full((6, 8), raw, np.float32), (8, 6))
    assert np.allclose(out, depth)


def test_range_gives_nan_and_resize_keeps_invalid_apart():
    post = Postprocessor(meta(), min_depth=1.0, max_depth=5.0)
    raw = np.full((6, 8), 3.0, np.float32)
    raw[0, 0], raw[5, 7] = 0.2, 50.0
    out = post(raw, (16, 12))
    assert out.shape == (12, 16)
    assert np.isnan(out[0, 0]) and np.isnan(out[11, 15])
    finite = out[np.isfinite(out)]
    assert np.allclose(finite, 3.0) and finite.size > 0.8 * out.size


def test_nonfinite_output_is_an_error():
    with pytest.raises(NonFiniteOutputError, match='NaN/Inf'):
        Postprocessor(meta())(np.array([[1.0, np.nan]], np.float32), (2, 1))


def test_focal_rescale_follows_the_camera():
    m = meta(train_fx=5.0, train_fy=5.0, focal_rescale=True)
    post = Postprocessor(m)
    raw = np.full((6, 8), 2.0, np.float32)
    # Camera at 16x12 with fx 20 is fx 10 at the 8x6 input: twice the training focal.
    cam = Intrinsics(20.0, 20.0, 7.5, 5.5, 16, 12)
    assert post.focal_scale(cam) == pytest.approx(2.0)
    assert np.allclose(post(raw, (16, 12), cam), 4.0)
    assert Postprocessor(meta()).focal_scale(cam) == 1.0


def test_preprocessor_layouts_and_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    x = Preprocessor(meta())(rgb)
    assert x.shape == (1, 6, 8, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    x = Preprocessor(meta(input_layout='NCHW', input_dtype='float32'))(rgb)
    assert x.shape == (1, 3, 6, 8) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    m = meta(input_layout='NCHW', input_dtype='float32', normalize_in_graph=False)
    x = Preprocessor(m)(np.full((6, 8, 3), 255, np.uint8))
    assert np.allclose(x[0, :, 0, 0], (1.0 - np.array(m.mean)) / np.array(m.std), atol=1e-5)
    with pytest.raises(ValueError, match='RGB'):
        Preprocessor(meta())(np.zeros((6, 8), np.uint8))


def test_onnxruntime_backend_runs_and_auto_says_what_it_picked(tmp_path):
    path = tmp_path / 'b.onnx'
    written = brightness_model(path, 6, 8)
    lines = []
    backend = create_backend('auto', str(path), log=lines.append)
    assert backend.name == 'onnxruntime' and backend.meta == written
    assert 'onnxruntime' in lines[0] and 'skipped tensorrt' in lines[0]
    out = backend.infer(np.full((1, 6, 8, 3), 51, np.uint8))
    assert out.shape == (6, 8) and np.allclose(out, 0.2)
    assert available_backends()['onnxruntime'][0]


def test_backend_errors_are_clear(tmp_path):
    with pytest.raises(BackendError, match='not found'):
        create_backend('auto', str(tmp_path / 'none.onnx'))
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'garbage')
    with pytest.raises(BackendError, match='cannot load'):
        create_backend('onnxruntime', str(bad))
    with pytest.raises(BackendError, match='unknown backend'):
        create_backend('openvino', str(bad))
