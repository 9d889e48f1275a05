"""TFLite ImageNet MobileNetV2 import: dequantization, layouts, logits against references."""

import cv2
import numpy as np
import pytest
import torch
from training import tflite_import as ti
from training.networks import build_model
from training.networks.mobilenetv2 import MobileNetV2Encoder

MODEL = 'imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite'


@pytest.fixture(scope='module')
def tflite_path(shared_data):
    return str(shared_data / MODEL)


@pytest.fixture(scope='module')
def graph(tflite_path):
    return ti.read_tflite(tflite_path)


@pytest.fixture(scope='module')
def encoder(tflite_path):
    enc = MobileNetV2Encoder(num_classes=1001, tf_padding=True, input_norm='inception')
    report = ti.load_mobilenetv2_tflite(enc, tflite_path)
    assert report == {'convolutions': 52, 'classifier': True}
    return enc.eval()


def _photos(shared_data):
    """Two real photos, centre-cropped and resized to 224x224, plus a noise image."""
    images = []
    for path in (shared_data / 'nyu' / 'rgb' / '0003.png',
                 shared_data / 'redwood' / 'color' / sorted(
                     p.name for p in (shared_data / 'redwood' / 'color').iterdir())[0]):
        bgr = cv2.imread(str(path))
        h, w = bgr.shape[:2]
        side = min(h, w)
        y0, x0 = (h - side) // 2, (w - side) // 2
        crop = cv2.resize(bgr[y0:y0 + side, x0:x0 + side], (224, 224),
                          interpolation=cv2.INTER_AREA)
        images.append(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)[None])
    images.append(np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), np.uint8))
    return images


def _logits_tensor(graph):
    softmax = [op for op in graph.ops if op.name == 'SOFTMAX'][-1]
    return graph.tensors[softmax.inputs[0]]


def test_graph_structure(graph):
    names = [op.name for op in graph.ops]
    assert len(names) == 66
    assert set(names) == {'CONV_2D', 'DEPTHWISE_CONV_2D', 'ADD', 'AVERAGE_POOL_2D', 'RESHAPE',
                          'SOFTMAX'}
    convs = ti.conv_weights(graph)
    assert len(convs) == 53
    assert convs[0]['weight'].shape == (32, 3, 3, 3)          # OHWI -> OIHW
    assert convs[1]['weight'].shape == (32, 1, 3, 3)          # 1HWC -> C1HW
    assert convs[-1]['weight'].shape == (1001, 1280, 1, 1)
    src = graph.tensors[graph.inputs[0]]
    assert src.dtype == np.uint8 and src.scale[0] == pytest.approx(1 / 128)
    assert src.zero_point[0] == 128


def test_dequantize_per_tensor_and_per_channel():
    per_tensor = ti.Tensor(0, 'w', (2, 2), np.uint8, np.array([0.5]), np.array([10]),
                           data=np.array([[10, 12], [0, 255]], np.uint8))
    assert ti.dequantize(per_tensor).tolist() == [[0.0, 1.0], [-5.0, 122.5]]
    per_channel = ti.Tensor(0, 'w', (1, 1, 2), np.int8, np.array([0.1, 2.0]),
                            np.array([0, 1]), quantized_dimension=2,
                            data=np.array([[[10, 3]]], np.int8))
    assert np.allclose(ti.dequantize(per_channel), [[[1.0, 4.0]]])
    bias = ti.Tensor(0, 'b', (2,), np.int32, np.array([0.25]), np.array([0]),
                     data=np.array([-8, 4], np.int32))
    assert ti.dequantize(bias).tolist() == [-2.0, 1.0]


def test_folded_batch_norm_is_an_exact_identity(encoder, graph):
    first = ti.conv_weights(graph)[0]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        got = encoder.features[0](x)
        expected = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, [0, 1, 0, 1]), torch.from_numpy(first['weight']),
            torch.from_numpy(first['bias']), stride=2).clamp(0, 6)
    assert torch.allclose(got, expected, atol=1e-5)
    bn = encoder.features[0][1]
    assert torch.allclose(bn.running_var + bn.eps, torch.ones_like(bn.running_var))


def test_input_preprocessing_reproduces_the_tflite_input(encoder):
    q = np.arange(0, 256, dtype=np.uint8)[:224].reshape(1, 1, 224, 1).repeat(3, axis=3)
    x = encoder.prepare_input(ti.tflite_input_to_imagenet(q))
    expected = (torch.from_numpy(q).permute(0, 3, 1, 2).float() - 128.0) / 128.0
    assert torch.allclose(x, expected, atol=1e-6)


def test_converted_encoder_reproduces_tflite_logits(graph, encoder, shared_data):
    lsb = float(_logits_tensor(graph).scale[0])
    for image in _photos(shared_data):
        reference = ti.reference_logits(graph, image)
        with torch.no_grad():
            logits = encoder.classify(ti.tflite_input_to_imagenet(image)).numpy()
        err = np.abs(logits - reference)
        # Float weights vs a graph re-quantized at every layer: a few logit LSBs at most.
        assert err.max() < 6 * lsb, err.max() / lsb
        assert np.sqrt(np.mean(err ** 2)) < 1.5 * lsb
        assert logits.argmax() == reference.argmax()


@pytest.mark.filterwarnings('ignore:Warning. Enabling `experimental_preserve_all_tensors`')
def test_reference_interpreter_matches_litert(graph, tflite_path, shared_data):
    from ai_edge_litert import interpreter as litert
    tensor = _logits_tensor(graph)
    interpreter = litert.Interpreter(tflite_path, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    for image in _photos(shared_data)[:2]:
        interpreter.set_tensor(graph.inputs[0], image)
        interpreter.invoke()
        lite = ti.dequantize(tensor, interpreter.get_tensor(tensor.index))
        reference = ti.reference_logits(graph, image)
        # Integer kernels round differently from float-then-requantize at each of 60+ layers.
        err = np.abs(lite - reference) / float(tensor.scale[0])
        assert err.max() <= 5 + 1e-4 and np.sqrt(np.mean(err ** 2)) < 1.5
        assert lite.argmax() == reference.argmax()


def test_wrong_width_is_refused(tflite_path):
    with pytest.raises(ti.TFLiteImportError, match='width_mult'):
        ti.load_mobilenetv2_tflite(MobileNetV2Encoder(width_mult=0.5), tflite_path)
    with pytest.raises(ti.TFLiteImportError, match='cannot read'):
        ti.read_tflite(tflite_path + '.missing')


def test_depth_network_with_pretrained_encoder(tflite_path, encoder):
    model = build_model('mobilenetv2_unet', pretrained=tflite_path, tf_padding=True,
                        input_norm='inception', decoder_channels=(8, 8, 8, 8),
                        freeze_encoder=True).eval()
    key = 'features.5.conv.1.0.weight'
    assert torch.equal(model.encoder.state_dict()[key], encoder.state_dict()[key])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    with pytest.warns(UserWarning, match='tf_padding'):
        build_model('mobilenetv2_unet', pretrained=tflite_path, width_mult=1.0,
                    decoder_channels=(8, 8, 8, 8))
