"""Starter-model tools: pre-rendered synthetic folders and int8 static quantization."""

import json
import os

import cv2
from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
from onnx_models import brightness_model
import pytest


def _props(path):
    import onnx
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_rendered_folder_holds_the_stream_frames(tmp_path):
    from training import synthetic_render as render
    out = str(tmp_path / 'syn')
    assert render.render(out, 2, 3, 48, 36, seed=4, style='robot', textures='',
                         frames_per_room=2, speed=0.3) == 3
    names = sorted(os.listdir(os.path.join(out, 'rgb')))
    assert names == ['000002.png', '000003.png', '000004.png']
    camera = json.load(open(os.path.join(out, 'camera.json')))
    stream = SyntheticStream(48, 36, seed=4, frames_per_room=2, speed=0.3, style='robot')
    assert camera['fx'] == pytest.approx(stream.intrinsics.fx)
    frame = stream.frame(3)
    rgb = cv2.cvtColor(cv2.imread(os.path.join(out, 'rgb', '000003.png')), cv2.COLOR_BGR2RGB)
    depth = cv2.imread(os.path.join(out, 'depth', '000003.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(rgb, frame.rgb)
    assert depth.dtype == np.uint16
    assert np.abs(depth / 1000.0 - frame.depth).max() <= 0.0005 + 1e-6  # millimetres


def test_int8_copy_keeps_metadata_and_output(tmp_path):
    from training import quantize_int8 as quant
    src = str(tmp_path / 'fp32.onnx')
    brightness_model(src, height=24, width=32)
    rng = np.random.default_rng(0)
    images = [(rng.random((24, 32, 3)) * 255).astype(np.uint8) for _ in range(4)]
    dst = str(tmp_path / 'int8.onnx')
    quant.quantize(src, dst, images)
    a, b = _props(src), _props(dst)
    assert {k: v for k, v in a.items() if k != 'mono_depth.description'} == \
        {k: v for k, v in b.items() if k != 'mono_depth.description'}
    assert 'int8' in json.loads(b['mono_depth.description'])
    import onnxruntime as ort
    x = images[0][None]
    ya = ort.InferenceSession(src).run(None, {'image': x})[0]
    yb = ort.InferenceSession(dst).run(None, {'image': x})[0]
    assert np.abs(ya - yb).max() < 0.02  # one uint8 step of the [0, 1] range, plus rounding
    import onnx
    ops = {n.op_type for n in onnx.load(dst).graph.node}
    assert 'QuantizeLinear' in ops
