"""FastDepth: upstream layout, the int8 TFLite import, parity, the bundled ONNX, fine-tuning."""

import os

import cv2
import numpy as np
import pytest
import torch
from training import tflite_import as ti
from training.networks import build_model
from training.networks.fastdepth import FastDepth, FULL_DECODER, FULL_ENCODER
from training.networks.mobilenetv2 import IMAGENET_MEAN, IMAGENET_STD

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TFLITE = 'models/fastdepth_openmv/fast_depth_224.tflite'
BUNDLED = os.path.join(REPO, 'models', 'fastdepth_nyu.onnx')

pytestmark = pytest.mark.usefixtures('one_thread')  # see conftest.py


@pytest.fixture(scope='module')
def tflite_path(shared_data):
    return str(shared_data / TFLITE)


@pytest.fixture(scope='module')
def imported(tflite_path):
    model = FastDepth()
    report = ti.load_fastdepth_tflite(model, tflite_path)
    return model.eval(), report


def _nyu_input(shared_data, stem='0010'):
    """Return a real NYU picture fitted as FastDepth's evaluation does (0.912 zoom, 224^2)."""
    rgb = cv2.cvtColor(cv2.imread(str(shared_data / 'nyu' / 'rgb' / f'{stem}.png')),
                       cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb[21:21 + 438, 28:28 + 584], (224, 224), interpolation=cv2.INTER_AREA)


def _normalised(rgb):
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / \
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_keys_and_shapes_are_upstreams():
    # fast-depth models.py 654-732 (MobileNetSkipAdd) with imagenet/mobilenet.py 22-54.
    full = FastDepth(FULL_ENCODER, FULL_DECODER)
    sd = full.state_dict()
    assert sd['conv0.0.weight'].shape == (32, 3, 3, 3)
    assert sd['conv1.0.weight'].shape == (32, 1, 3, 3)      # depthwise
    assert sd['conv1.3.weight'].shape == (64, 32, 1, 1)     # pointwise
    assert sd['conv13.3.weight'].shape == (1024, 1024, 1, 1)
    assert sd['decode_conv1.0.0.weight'].shape == (1024, 1, 5, 5)
    assert sd['decode_conv1.1.0.weight'].shape == (512, 1024, 1, 1)
    assert sd['decode_conv5.1.0.weight'].shape == (32, 64, 1, 1)
    assert sd['decode_conv6.0.weight'].shape == (1, 32, 1, 1)
    assert [full.encoder[i][0].stride[0] for i in range(14)] == \
        [2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    assert full.output_spec(0.1, 10.0) == {'output_mode': 'metric', 'output_scale': 1.0,
                                           'output_shift': 0.0}
    with pytest.raises(ValueError, match='decoder stage 2'):
        FastDepth(FULL_ENCODER, (512, 128, 128, 64, 32))


def test_nearest_upsampling_and_additive_skips():
    torch.manual_seed(0)
    model = FastDepth().eval()
    seen = {}
    for i in (1, 3, 5):
        getattr(model, f'conv{i}').register_forward_hook(
            lambda _m, _i, out, i=i: seen.__setitem__(i, out))
    for i in range(2, 5):
        getattr(model, f'decode_conv{i}').register_forward_hook(
            lambda _m, _i, out, i=i: seen.__setitem__(f'd{i}', out))
    model.decode_conv3.register_forward_pre_hook(
        lambda _m, inp: seen.__setitem__('into3', inp[0]))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    up = torch.repeat_interleave(torch.repeat_interleave(seen['d2'], 2, dim=2), 2, dim=3)
    assert torch.allclose(seen['into3'], up + seen[5])


def test_import_maps_every_tensor(imported, tflite_path):
    model, report = imported
    assert report['convolutions'] == 38
    assert report['skips'] == ['conv1', 'conv3', 'conv5']
    assert report['output_scale'] == pytest.approx(0.07169981)
    graph = ti.read_tflite(tflite_path)
    convs = ti.conv_weights(graph)
    assert np.array_equal(model.conv0[0].weight.detach().numpy(), convs[0]['weight'])
    assert np.array_equal(model.decode_conv6[0].weight.detach().numpy(), convs[-1]['weight'])
    assert np.array_equal(model.decode_conv6[1].bias.detach().numpy(), convs[-1]['bias'])


def test_import_refuses_a_shape_mismatch_naming_the_tensor(tflite_path):
    with pytest.raises(ti.TFLiteImportError, match='model/conv2d/Conv2D.*conv0'):
        ti.load_fastdepth_tflite(FastDepth(FULL_ENCODER, FULL_DECODER), tflite_path)
    widths = list(FastDepth().encoder_channels)
    widths[8] = 300          # conv8's pointwise: 272 in the file
    with pytest.raises(ti.TFLiteImportError, match='model/conv2d_8/Conv2D'):
        ti.load_fastdepth_tflite(FastDepth(widths), tflite_path)


def test_import_refuses_another_network(shared_data):
    mobilenet = shared_data / 'imagenet_mobilenet_v2' / 'mobilenet_v2_1.0_224_quant.tflite'
    with pytest.raises(ti.TFLiteImportError, match='convolutions'):
        ti.load_fastdepth_tflite(FastDepth(), str(mobilenet))


def test_float_matches_the_int8_tflite_without_its_7cm_steps(imported, tflite_path,
                                                             shared_data):
    from ai_edge_litert.interpreter import Interpreter
    model, _ = imported
    interpreter = Interpreter(model_path=tflite_path)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for stem in ('0003', '0010'):
        rgb = _nyu_input(shared_data, stem)
        interpreter.set_tensor(inp['index'], rgb[None])
        interpreter.invoke()
        codes = interpreter.get_tensor(out['index'])[0, :, :, 0]
        int8 = codes.astype(np.float64) * out['quantization'][0]
        with torch.no_grad():
            depth = model(_normalised(rgb))[0, 0].double().numpy()
        gap = np.abs(depth - int8)
        assert gap.mean() < 0.08 and np.percentile(gap, 95) < 0.2, (stem, gap.mean())
        assert 1.0 < np.median(depth) < 6.0
        # The int8 output has at most 256 levels 7 cm apart; the float one is continuous.
        assert len(np.unique(codes)) <= 256
        assert len(np.unique(np.round(depth, 4))) > 2000


def test_bundled_onnx_is_the_import_with_exact_metadata(imported):
    from mono_depth_ros.core.frame import FrameProcessor
    from mono_depth_ros.core.intrinsics import Intrinsics
    from training.onnx_init import network_from_onnx
    net, meta = network_from_onnx(BUNDLED)
    assert (meta.arch, meta.input_height, meta.input_width) == ('fastdepth', 224, 224)
    assert (meta.input_dtype, meta.input_layout, meta.normalize_in_graph) == \
        ('uint8', 'NHWC', True)
    assert (meta.output_mode, meta.output_scale, meta.output_shift) == ('metric', 1.0, 0.0)
    assert meta.is_metric and meta.focal_rescale and meta.dataset == 'nyu'
    assert meta.resize_mode == 'crop'
    assert meta.fit_aspect == pytest.approx(304 / 228)
    assert meta.crop_fraction == pytest.approx(228 / 250)
    # dataloaders/nyu.py: 640x480 -> 250x333 -> centre 228x304 -> 224x224.
    assert meta.train_fx == pytest.approx(518.8579 * 333 / 640 * 224 / 304)
    assert meta.train_fy == pytest.approx(519.4696 * 250 / 480 * 224 / 228)
    assert 'Diana Wofk' in meta.description and 'Abdelkader' in meta.description
    # The node's own fit of a NYU Kinect frame is the training fit, to the pixel.
    kinect = Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, 640, 480)
    processor = FrameProcessor(meta, backend=None)
    plan = processor.plan(640, 480)
    assert plan.box == (28, 21, 584, 438)
    at_input = processor.input_camera(plan, kinect)
    assert at_input.fx == pytest.approx(meta.train_fx, rel=2e-3)
    assert at_input.fy == pytest.approx(meta.train_fy, rel=2e-3)
    assert processor.focal_factor(plan, kinect) == pytest.approx(1.0, abs=2e-3)
    model, _ = imported
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), model(x), atol=1e-5)


def test_build_script_is_reproducible(tmp_path, tflite_path):
    from training import fastdepth_build as build
    out = str(tmp_path / 'fastdepth.onnx')
    build.build(tflite_path, out, log=lambda _m: None)
    with open(out, 'rb') as a, open(BUNDLED, 'rb') as b:
        assert a.read() == b.read(), 'models/fastdepth_nyu.onnx is not what the script builds'


def test_fine_tunes_with_the_trainer(tmp_path, tflite_path):
    from training.config import load_config
    from training.datasets import build_dataset
    from training.losses import build_loss
    from training.trainer import (build_model_from_config, resolve_init, SupervisedDepthTask,
                                  Trainer)
    config = resolve_init(load_config(None, [
        'device=cpu', 'model.arch=', f'model.init_checkpoint={BUNDLED}',
        'model.args={freeze_encoder: true}', 'data.dataset=synthetic', 'data.height=64',
        'data.width=64', 'data.num_workers=0', 'augment.enabled=false',
        'train.progress=false', 'train.tensorboard=false', 'data.synthetic.train_size=4',
        'data.synthetic.val_size=2', 'data.batch_size=2', 'train.epochs=1',
        'optim.lr=0.001']))
    assert config['model']['arch'] == 'fastdepth'
    model = build_model_from_config(config)
    reference = build_model('fastdepth', pretrained=tflite_path).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), reference(x), atol=1e-5)
    mcfg = config['model']
    task = SupervisedDepthTask(build_loss(config['loss']), mcfg['min_depth'], mcfg['max_depth'])
    summary = Trainer(config, task, model, build_dataset(config, 'train'),
                      build_dataset(config, 'val'), str(tmp_path), log=lambda _m: None).fit()
    assert summary['steps'] == 2
    after = model.state_dict()
    assert torch.equal(before['conv0.0.weight'], after['conv0.0.weight'])   # frozen
    assert not torch.equal(before['decode_conv6.0.weight'], after['decode_conv6.0.weight'])
    assert os.path.isfile(tmp_path / 'last.pt')
