"""ONNX export: parity with PyTorch for the zoo, metadata that configures the node."""

import dataclasses

import cv2
from export_helpers import export_tiny, tiny_model
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor, Preprocessor
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.tools.depth_bench import onnx_flops, torch_flops
import numpy as np
import onnx
import pytest
import torch
from training.checkpoint import save_checkpoint
from training.export_onnx import export_model, ExportError, verify
from training.networks import ARCHITECTURES, build_model


def test_tiny_export_parity_and_metadata(tmp_path):
    path, _ts, meta, _model = export_tiny(tmp_path, torchscript=False)
    model = onnx.load(path)
    props = {p.key: p.value for p in model.metadata_props}
    read = ModelMeta.from_onnx_props(props)
    assert read == meta
    assert (read.input_dtype, read.input_layout, read.normalize_in_graph) == ('uint8', 'NHWC',
                                                                              True)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 32, 48, 3]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].name == 'depth'


def test_metadata_configures_the_frame_pipeline(tmp_path):
    path, _ts, meta, model = export_tiny(tmp_path, torchscript=False, height=64, width=96)
    backend = OnnxRuntimeBackend.from_file(path)
    # The export size doubled; the training focal stays what the network learned its pixel
    # scale at, and the camera's focal at the new input size is compared with it.
    assert backend.meta.train_fx == pytest.approx(40.0)
    assert backend.meta.input_height == 64 and backend.meta.input_width == 96
    rgb = np.random.default_rng(3).integers(0, 256, (128, 192, 3), dtype=np.uint8)
    tensor = Preprocessor(backend.meta)(rgb)
    assert tensor.shape == backend.input_shape and tensor.dtype == backend.input_dtype
    camera = Intrinsics(fx=240.0, fy=246.0, cx=95.5, cy=63.5, width=192, height=128)
    # The same numbers by hand from the torch model: normalise, run, invert, rescale focal.
    x = torch.from_numpy(tensor).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(meta.mean).view(1, 3, 1, 1)
    std = torch.tensor(meta.std).view(1, 3, 1, 1)
    with torch.no_grad():
        y = model((x - mean) / std)[0, 0].numpy()
    expected = 1.0 / (9.9 * y + 0.1)
    at_input = camera.resize(96, 64)
    expected *= np.sqrt(at_input.fx * at_input.fy / (40.0 * 41.0))
    assert np.isfinite(expected).all() and expected.std() > 1e-3
    # At the model's own size (depth_size_ratio 0.5) the pipeline returns exactly that map ...
    small = FrameProcessor(backend.meta, backend, FrameConfig(depth_size_ratio=0.5)).run(
        rgb, camera)
    assert small.depth.shape == (64, 96) and small.camera == camera.resize(96, 64)
    assert np.allclose(small.depth, expected, rtol=1e-5, atol=0)
    # ... and at the camera's size its bilinear upsampling, pixel for pixel.
    full = FrameProcessor(backend.meta, backend, FrameConfig(depth_upsampling='bilinear')).run(
        rgb, camera)
    up = cv2.resize(expected.astype(np.float32), (192, 128), interpolation=cv2.INTER_LINEAR)
    assert full.depth.shape == (128, 192)
    assert np.allclose(full.depth, up, rtol=1e-5, atol=0)


def test_dynamic_export_runs_at_two_sizes(tmp_path):
    path, _ts, meta, model = export_tiny(tmp_path, dynamic=True, torchscript=False)
    assert meta.dynamic_shape
    backend = OnnxRuntimeBackend.from_file(path)
    for h, w in ((32, 48), (64, 128)):
        sized = dataclasses.replace(meta, input_height=h, input_width=w)
        rgb = np.full((h, w, 3), 90, np.uint8)
        assert backend.infer(Preprocessor(sized)(rgb)).shape == (h, w)


def test_float_input_export(tmp_path):
    path, _ts, meta, _model = export_tiny(tmp_path, torchscript=False, input_dtype='float32')
    backend = OnnxRuntimeBackend.from_file(path)
    assert backend.meta.input_dtype == 'float32'
    tensor = Preprocessor(backend.meta)(np.zeros((32, 48, 3), np.uint8))
    assert tensor.dtype == np.float32 and tensor.max() <= 1.0
    assert backend.infer(tensor).shape == (32, 48)


def test_verify_rejects_a_mismatching_model(tmp_path):
    path, _ts, meta, _model = export_tiny(tmp_path, torchscript=False)
    from mono_depth_ros.inference.torch_backend import graph_module
    other, _ = tiny_model(seed=1)
    with pytest.raises(ExportError, match='max abs error'):
        verify(graph_module(other, meta), path, meta, [(32, 48)])
    model, meta = tiny_model()
    with pytest.raises(ExportError, match='disagrees with PyTorch'):
        export_model(model, meta, str(tmp_path / 'strict.onnx'), atol=-1.0, rtol=0.0,
                     log=lambda _m: None)
    assert not (tmp_path / 'strict.onnx').exists()


def test_bad_input_dtype_is_rejected(tmp_path):
    model, meta = tiny_model()
    with pytest.raises(ExportError, match='input_dtype'):
        export_model(model, meta, str(tmp_path / 'x.onnx'), input_dtype='int16',
                     log=lambda _m: None)
    assert not (tmp_path / 'x.onnx').exists()


# Built from trained base checkpoints, not from default arguments (its own tests export it).
COMPOSITES = {'stacked_ensemble'}


def test_every_zoo_architecture_exports_with_parity(tmp_path):
    names = [name for name in ARCHITECTURES if name not in COMPOSITES]
    assert {'mobilenetv2_unet', 'squeezenet_unet', 'resnet18_monodepth',
            'eigen_multiscale'} <= set(names)
    for arch in names:
        torch.manual_seed(0)
        model = build_model(arch).eval()
        spec = model.output_spec(0.1, 10.0)
        meta = ModelMeta(arch=arch, input_height=64, input_width=64, min_depth=0.1,
                         max_depth=10.0, **spec)
        # Dynamic, so each is checked at two sizes (64x64 and 96x128), random and real images.
        out_meta, records = export_model(model, meta, str(tmp_path / f'{arch}.onnx'),
                                         dynamic=True, log=lambda _m: None)
        assert out_meta.arch == arch and out_meta.dynamic_shape
        assert out_meta.output_mode == spec['output_mode']
        assert len(records) == 4
        # FLOPs from the graph (static shape inference, or one run where it cannot follow
        # computed pads) agree with forward hooks; ONNX drops unused heads, hence the slack.
        graph_flops = onnx_flops(str(tmp_path / f'{arch}.onnx'), 64, 64)
        hook_flops = torch_flops(model, torch.zeros(1, 3, 64, 64))
        assert graph_flops == pytest.approx(hook_flops, rel=0.02), arch
        assert all(r['max_abs_error'] <= r['tolerance'] for r in records), (arch, records)


def test_command_line_exports_a_checkpoint_and_fails_above_tolerance(tmp_path):
    import os
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    torch.manual_seed(0)
    model = build_model('mobilenetv2_unet').eval()
    meta = ModelMeta(arch='mobilenetv2_unet', input_height=64, input_width=64,
                     **model.output_spec(0.1, 10.0))
    ckpt = str(tmp_path / 'ckpt.pt')
    save_checkpoint(ckpt, model, meta)
    script = os.path.join(repo, 'training', 'export_onnx.py')
    out = str(tmp_path / 'cli.onnx')
    done = subprocess.run([sys.executable, script, '--checkpoint', ckpt, '--output', out,
                           '--torchscript', str(tmp_path / 'cli.ts')],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert 'max abs error' in done.stdout
    assert OnnxRuntimeBackend.from_file(out).meta.arch == 'mobilenetv2_unet'
    failed = subprocess.run([sys.executable, script, '--checkpoint', ckpt, '--output',
                             str(tmp_path / 'strict.onnx'), '--atol', '-1', '--rtol', '0'],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert failed.returncode == 1
    assert 'disagrees with PyTorch' in failed.stderr
    assert not (tmp_path / 'strict.onnx').exists()
