"""Model zoo: shapes at several sizes, torchvision key layouts, freezing, output mappings."""

from mono_depth_ros.core.model_meta import ModelMeta
import pytest
import torch
from training.networks import (arch_arg_names, ARCHITECTURES, build_model, PoseDecoder,
                               rebuild_args, ResNetEncoder)
from training.networks.mobilenetv2 import MobileNetV2Encoder
from training.networks.squeezenet import SqueezeNetEncoder

torch.set_num_threads(2)

# Small variants keep the suite fast; the layouts are the same as the defaults.
SMALL_ARGS = {
    'mobilenetv2_unet': {'width_mult': 0.35, 'decoder_channels': (16, 16, 8, 8)},
    'squeezenet_unet': {'decoder_channels': (16, 8, 8)},
    'resnet18_monodepth': {'decoder_channels': (4, 8, 8, 16, 16)},
    'eigen_multiscale': {'width': 0.125, 'hidden': 16},
    'yolov8n': {'neck_channels': 16, 'decoder_channels': (16, 8, 8, 8)},
    'yolov8s': {'neck_channels': 16, 'decoder_channels': (16, 8, 8, 8)},
    'stacked_ensemble': {'base_models': [
        {'arch': 'squeezenet_unet', 'args': {'decoder_channels': (16, 8, 8)}},
        {'arch': 'eigen_multiscale', 'args': {'width': 0.125, 'hidden': 16}}],
        'meta_width': 4, 'meta_levels': 2},
    'fastdepth': {'encoder_channels': (4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8),
                  'decoder_channels': (8, 8, 8, 8, 4)},
}
# Multiples of 32, and sizes that are not (odd ones included): every network takes them all.
SIZES = ((64, 64), (96, 128), (70, 90))


def small(arch, **extra):
    torch.manual_seed(0)
    return build_model(arch, **SMALL_ARGS[arch], **extra)


# -- torchvision state-dict layouts, written down from torchvision's model definitions ------
def torchvision_mobilenet_v2_keys():
    bn = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    keys = ['features.0.0.weight'] + [f'features.0.1.{k}' for k in bn]
    keys += ['features.1.conv.0.0.weight'] + [f'features.1.conv.0.1.{k}' for k in bn]
    keys += ['features.1.conv.1.weight'] + [f'features.1.conv.2.{k}' for k in bn]
    for i in range(2, 18):
        keys += [f'features.{i}.conv.0.0.weight'] + [f'features.{i}.conv.0.1.{k}' for k in bn]
        keys += [f'features.{i}.conv.1.0.weight'] + [f'features.{i}.conv.1.1.{k}' for k in bn]
        keys += [f'features.{i}.conv.2.weight'] + [f'features.{i}.conv.3.{k}' for k in bn]
    keys += ['features.18.0.weight'] + [f'features.18.1.{k}' for k in bn]
    return keys, ['classifier.1.weight', 'classifier.1.bias']


def torchvision_squeezenet1_1_keys():
    keys = ['features.0.weight', 'features.0.bias']
    for i in (3, 4, 6, 7, 9, 10, 11, 12):
        for conv in ('squeeze', 'expand1x1', 'expand3x3'):
            keys += [f'features.{i}.{conv}.weight', f'features.{i}.{conv}.bias']
    return keys, ['classifier.1.weight', 'classifier.1.bias']


def torchvision_resnet18_keys():
    bn = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')
    keys = ['conv1.weight'] + [f'bn1.{k}' for k in bn]
    for layer in range(1, 5):
        for block in range(2):
            p = f'layer{layer}.{block}'
            keys += [f'{p}.conv1.weight'] + [f'{p}.bn1.{k}' for k in bn]
            keys += [f'{p}.conv2.weight'] + [f'{p}.bn2.{k}' for k in bn]
            if layer > 1 and block == 0:
                keys += [f'{p}.downsample.0.weight'] + [f'{p}.downsample.1.{k}' for k in bn]
    return keys, ['fc.weight', 'fc.bias']


@pytest.mark.parametrize('encoder, expected, shapes', [
    (lambda: MobileNetV2Encoder(), torchvision_mobilenet_v2_keys,
     {'features.0.0.weight': (32, 3, 3, 3), 'features.1.conv.0.0.weight': (32, 1, 3, 3),
      'features.2.conv.0.0.weight': (96, 16, 1, 1), 'features.17.conv.2.weight': (320, 960, 1, 1),
      'features.18.0.weight': (1280, 320, 1, 1)}),
    (lambda: SqueezeNetEncoder(), torchvision_squeezenet1_1_keys,
     {'features.0.weight': (64, 3, 3, 3), 'features.3.squeeze.weight': (16, 64, 1, 1),
      'features.12.expand3x3.weight': (256, 64, 3, 3)}),
    (lambda: ResNetEncoder(), torchvision_resnet18_keys,
     {'conv1.weight': (64, 3, 7, 7), 'layer2.0.downsample.0.weight': (128, 64, 1, 1),
      'layer4.1.conv2.weight': (512, 512, 3, 3)}),
])
def test_encoder_state_dict_matches_torchvision(encoder, expected, shapes):
    enc = encoder()
    keys, head = expected()
    assert list(enc.state_dict()) == keys
    for key, shape in shapes.items():
        assert tuple(enc.state_dict()[key].shape) == shape, key
    # A torchvision checkpoint (classifier included) loads with strict=False, 1:1.
    tv_state = {k: torch.full_like(v, 0.5) if v.is_floating_point() else v
                for k, v in enc.state_dict().items()}
    tv_state.update({k: torch.zeros(3) for k in head})
    result = enc.load_state_dict(tv_state, strict=False)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == sorted(head)
    assert all(bool((v == 0.5).all()) for v in enc.state_dict().values()
               if v.is_floating_point())


def test_mobilenet_classifier_key_and_width_mult():
    enc = MobileNetV2Encoder(num_classes=1000)
    assert list(enc.state_dict())[-2:] == ['classifier.1.weight', 'classifier.1.bias']
    narrow = MobileNetV2Encoder(width_mult=0.5)
    assert narrow.state_dict()['features.0.0.weight'].shape[0] == 16
    assert narrow.channels == [8, 16, 16, 48, 1280]


@pytest.mark.parametrize('arch', list(ARCHITECTURES))
def test_shapes_at_several_sizes_train_and_eval(arch):
    model = small(arch)
    for h, w in SIZES:
        x = torch.randn(2, 3, h, w)
        model.train()
        y = model(x)
        assert y.shape == (2, 1, h, w), (arch, h, w)
        scales = model.forward_multiscale(x)
        assert scales[0].shape == (2, 1, h, w)
        model.eval()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 1, h, w) and torch.isfinite(y).all()
        assert torch.allclose(model.forward_multiscale(x)[0], y)
    y.sum()  # the last eval output is a plain tensor


def test_multiscale_outputs():
    model = small('resnet18_monodepth').eval()
    with torch.no_grad():
        scales = model.forward_multiscale(torch.randn(1, 3, 64, 96))
    assert [tuple(s.shape[-2:]) for s in scales] == [(64, 96), (32, 48), (16, 24), (8, 12)]
    assert all(float(s.min()) >= 0 and float(s.max()) <= 1 for s in scales)
    eigen = small('eigen_multiscale', coarse_size=(6, 8)).eval()
    with torch.no_grad():
        fine, coarse = eigen.forward_multiscale(torch.randn(1, 3, 64, 96))
    assert fine.shape == (1, 1, 64, 96) and coarse.shape == (1, 1, 6, 8)
    assert float(fine.min()) >= 0  # softplus head on both scales


def test_output_spec_and_to_depth_match_model_meta():
    model = small('resnet18_monodepth')
    spec = model.output_spec(0.1, 100.0)
    assert spec['output_mode'] == 'inverse_depth'
    assert spec['output_scale'] == pytest.approx(10.0 - 0.01)
    assert spec['output_shift'] == pytest.approx(0.01)
    depth = model.to_depth(torch.tensor([0.0, 1.0, 0.5]), 0.1, 100.0)
    assert torch.allclose(depth, torch.tensor([100.0, 0.1, 1.0 / (0.5 * 9.99 + 0.01)]))
    ModelMeta(arch='resnet18_monodepth', input_height=64, input_width=64, **spec)
    unet = small('mobilenetv2_unet')
    assert unet.output_spec(0.1, 10.0) == {'output_mode': 'metric', 'output_scale': 1.0,
                                           'output_shift': 0.0}
    inverse = small('squeezenet_unet', output='inverse').eval()
    with torch.no_grad():
        raw = inverse(torch.randn(1, 3, 64, 64))
    depth = inverse.to_depth(raw, 0.5, 8.0)
    assert float(depth.min()) >= 0.5 - 1e-5 and float(depth.max()) <= 8.0 + 1e-4
    with pytest.raises(ValueError, match='output'):
        build_model('mobilenetv2_unet', output='log')
    with pytest.raises(ValueError, match='min_depth'):
        unet.output_spec(1.0, 0.5)


def test_rebuild_args_drop_the_pretrained_file(tmp_path):
    args = {'pretrained': str(tmp_path / 'gone.tflite'), 'width_mult': 0.35,
            'decoder_channels': [8, 8, 8, 8], 'tf_padding': True, 'input_norm': 'inception'}
    with pytest.raises(ValueError, match='cannot read'):
        build_model('mobilenetv2_unet', **args)
    model = build_model('mobilenetv2_unet', **rebuild_args(args))
    assert model.encoder.channels[0] == 8


def test_build_model_validates_names():
    with pytest.raises(ValueError, match='widht_mult.*width_mult'):
        build_model('mobilenetv2_unet', widht_mult=0.5)
    with pytest.raises(ValueError, match='unknown architecture'):
        build_model('vgg16_unet')
    assert set(ARCHITECTURES) == {'mobilenetv2_unet', 'squeezenet_unet', 'resnet18_monodepth',
                                  'eigen_multiscale', 'yolov8n', 'yolov8s',
                                  'stacked_ensemble', 'fastdepth'}


@pytest.mark.parametrize('arch', [a for a in ARCHITECTURES
                                  if 'freeze_encoder' in arch_arg_names(a)])
def test_frozen_encoder_keeps_weights_and_bn_statistics(arch):
    model = small(arch, freeze_encoder=True)
    model.train()
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(not m.training for m in model.encoder.modules()
               if isinstance(m, torch.nn.BatchNorm2d))
    decoder_params = [p for p in model.parameters() if p.requires_grad]
    assert decoder_params
    opt = torch.optim.SGD(decoder_params, lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(2, 3, 64, 64)).mean().backward()
        opt.step()
    after = model.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.unfreeze_encoder()
    assert all(p.requires_grad for p in model.encoder.parameters())
    assert all(m.training for m in model.encoder.modules()
               if isinstance(m, torch.nn.BatchNorm2d))


def test_pose_network_shapes():
    encoder = ResNetEncoder(num_input_images=2)
    assert encoder.conv1.weight.shape == (64, 6, 7, 7)
    decoder = PoseDecoder(512, num_input_features=1, num_frames_to_predict_for=2)
    features = encoder(torch.randn(3, 6, 64, 96))
    axisangle, translation = decoder([features[-1]])
    assert axisangle.shape == (3, 2, 1, 3) and translation.shape == (3, 2, 1, 3)
    assert float(axisangle.detach().abs().max()) < 1.0
    # torchvision conv1 weights are spread over the stacked frames (sum preserved).
    w = torch.randn(64, 3, 7, 7)
    unused = encoder.load_torchvision({'conv1.weight': w, 'fc.weight': torch.zeros(1)})
    assert unused == ['fc.weight']
    assert torch.allclose(encoder.conv1.weight[:, :3] + encoder.conv1.weight[:, 3:], w)


def test_dynamic_onnx_export_runs_at_other_sizes(tmp_path):
    import onnxruntime
    from training import export_onnx
    import numpy as np
    for arch in ARCHITECTURES:
        model = small(arch).eval()
        meta = ModelMeta(arch=arch, input_height=64, input_width=64,
                         **model.output_spec(0.1, 10.0))
        path = str(tmp_path / f'{arch}.onnx')
        export_onnx.export_model(model, meta, path, dynamic=True, log=lambda _m: None)
        session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        for h, w in ((64, 96), (96, 160)):
            out = session.run(None, {name: np.zeros((1, h, w, 3), np.uint8)})[0]
            assert out.shape[-2:] == (h, w), (arch, out.shape)
