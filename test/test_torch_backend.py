"""Torch backend: same input tensor and output as ONNX Runtime; the runtime imports without it."""

import os
import subprocess
import sys

from export_helpers import export_tiny
from mono_depth_ros.core.frame import Preprocessor
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import BackendError, create_backend
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.inference.torch_backend import graph_input_meta, graph_module, TorchBackend
import numpy as np
import pytest
import torch
from training.checkpoint import save_checkpoint
from training.networks import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_torchscript_matches_onnxruntime(tmp_path):
    onnx_path, ts_path, meta, _model = export_tiny(tmp_path)
    lines = []
    tb = create_backend('torch', ts_path, log=lines.append, trust_model_code=True)
    ort = OnnxRuntimeBackend.from_file(onnx_path)
    assert tb.meta == ort.meta == meta
    assert 'torchscript' in lines[0] and 'cpu' in lines[0]
    rgb = np.random.default_rng(5).integers(0, 256, (100, 140, 3), dtype=np.uint8)
    tensor = Preprocessor(tb.meta)(rgb)
    assert tensor.shape == tb.input_shape == ort.input_shape
    a, b = tb.infer(tensor), ort.infer(tensor)
    assert a.shape == (32, 48) and a.dtype == np.float32
    assert np.max(np.abs(a - b)) < 1e-5
    tb.close()


def test_fp16_and_int8_need_what_cpu_lacks(tmp_path):
    _onnx, ts_path, _meta, _model = export_tiny(tmp_path)
    with pytest.raises(BackendError, match='fp16 needs CUDA'):
        TorchBackend.from_file(ts_path, precision='fp16', device='cpu')
    with pytest.raises(BackendError, match='int8'):
        TorchBackend.from_file(ts_path, precision='int8', device='cpu')
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match='no CUDA'):
            TorchBackend.from_file(ts_path, device='cuda')


def test_torchscript_without_metadata_is_refused(tmp_path):
    path = str(tmp_path / 'bare.ts')
    torch.jit.save(torch.jit.script(torch.nn.Identity()), path)
    with pytest.raises(BackendError, match='meta.json'):
        TorchBackend.from_file(path, trust_model_code=True)


def test_a_checkpoint_is_refused_with_the_export_command(tmp_path):
    torch.manual_seed(0)
    model = build_model('mobilenetv2_unet').eval()
    meta = ModelMeta(arch='mobilenetv2_unet', input_height=64, input_width=64,
                     **model.output_spec(0.1, 10.0))
    path = str(tmp_path / 'ckpt.pt')
    save_checkpoint(path, model, meta)
    with pytest.raises(BackendError, match='training/export_onnx.py --checkpoint') as info:
        create_backend('torch', path)
    assert '\n' not in str(info.value) and 'training checkpoint' in str(info.value)


def test_module_from_code_matches_the_network(tmp_path):
    torch.manual_seed(0)
    model = build_model('mobilenetv2_unet').eval()
    meta = ModelMeta(arch='mobilenetv2_unet', input_height=64, input_width=64,
                     **model.output_spec(0.1, 10.0))
    fed = graph_input_meta(meta)
    backend = TorchBackend.from_module(graph_module(model, fed), fed)
    assert backend.kind == 'module' and backend.meta.arch == 'mobilenetv2_unet'
    rgb = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    tensor = Preprocessor(meta)(rgb)
    x = torch.from_numpy(tensor).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(meta.mean).view(1, 3, 1, 1)) / torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model(x)[0, 0].numpy()
    assert np.allclose(backend.infer(tensor), expected, atol=1e-4)


def test_runtime_imports_without_torch():
    code = (
        'import sys\n'
        'class Block:\n'
        '    def find_spec(self, name, path=None, target=None):\n'
        '        if name == "torch" or name.startswith("torch."):\n'
        '            raise ImportError("torch blocked")\n'
        'sys.meta_path.insert(0, Block())\n'
        'import mono_depth_ros.inference.torch_backend as tb\n'
        'import mono_depth_ros.inference.tensorrt.backend\n'
        'import mono_depth_ros.inference.tensorrt.engine_cache\n'
        'import mono_depth_ros.inference.tensorrt.calibration\n'
        'import mono_depth_ros.tools.depth_bench, mono_depth_ros.tools.build_engine\n'
        'from mono_depth_ros.inference.base import available_backends\n'
        'ok, why = available_backends()["torch"]\n'
        'assert not ok and "torch blocked" in why, why\n'
        'assert "torch" not in sys.modules\n'
        'print("OK")\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'OK'


def test_traced_module_follows_a_dtype_change(tmp_path):
    # fp16 on CUDA converts the module with .half(); the traced input cast must follow it.
    # float64 on CPU exercises the same path here.
    _onnx, ts_path, meta, _model = export_tiny(tmp_path)
    backend = TorchBackend.from_file(ts_path, trust_model_code=True)
    tensor = Preprocessor(meta)(np.full((32, 48, 3), 120, np.uint8))
    expected = backend.infer(tensor)
    module = backend.module.double()
    with torch.no_grad():
        out = module(torch.from_numpy(tensor))
    assert out.dtype == torch.float64
    assert np.allclose(out[0, 0].numpy(), expected, atol=1e-5)


def test_training_checkpoint_takes_the_onnx_graph_input(tmp_path):
    import dataclasses
    from training.export_onnx import export_model
    torch.manual_seed(0)
    model = build_model('squeezenet_unet').eval()
    # What training writes: the bare network's input, float NCHW normalised by the loader.
    meta = ModelMeta(arch='squeezenet_unet', input_height=64, input_width=96,
                     input_dtype='float32', input_layout='NCHW', normalize_in_graph=False,
                     **model.output_spec(0.1, 10.0))
    path = str(tmp_path / 'ckpt.pt')
    save_checkpoint(path, model, meta)
    onnx_meta, _ = export_model(model, meta, str(tmp_path / 'm.onnx'), check=False,
                                log=lambda _m: None)
    from training.evaluate import checkpoint_backend
    backend, _net = checkpoint_backend(path)
    ort = OnnxRuntimeBackend.from_file(str(tmp_path / 'm.onnx'))
    assert (backend.meta.input_dtype, backend.meta.input_layout,
            backend.meta.normalize_in_graph) == ('uint8', 'NHWC', True)
    assert backend.input_shape == ort.input_shape == (1, 64, 96, 3)
    assert dataclasses.replace(backend.meta, input_name='image', output_name='depth') == \
        dataclasses.replace(onnx_meta, dynamic_shape=False)
    rgb = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    tensor = Preprocessor(backend.meta)(rgb)
    assert tensor.dtype == np.uint8
    assert np.allclose(backend.infer(tensor), ort.infer(tensor), atol=1e-4)


def test_a_module_that_does_not_fit_its_metadata_is_refused_at_load():
    meta = ModelMeta(arch='t', input_height=16, input_width=24)

    class TwoMaps(torch.nn.Module):
        def forward(self, image):
            x = image.permute(0, 3, 1, 2).float()
            return x[:, :2]

    class WantsFloat(torch.nn.Module):
        def forward(self, image):
            return torch.nn.functional.conv2d(image, torch.zeros(1, 3, 1, 1))

    with pytest.raises(BackendError, match=r'output shape \[1, 2, 16, 24\]'):
        TorchBackend.from_module(TwoMaps(), meta)
    with pytest.raises(BackendError, match='does not run on the input the metadata describes'):
        TorchBackend.from_module(WantsFloat(), meta)
