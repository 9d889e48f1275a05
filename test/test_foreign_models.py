"""
Models exported elsewhere, taken in faithfully (issue 20 §2, §3, §4, §6).

Quantized outputs, the check run's range test, the size policies of the presets, a point
map's z channel, and edge_aware on a relative map. The last test imports a uint8-output
FastDepth the way a TFLite-to-ONNX conversion gives it and checks, on the real NYU
pictures, that the node reaches the accuracy the model has offline.
"""

import glob
import os
import re

import cv2
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor, model_input_size
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import BackendError
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.tools import import_model as im
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: openmv's fast_depth_224.tflite output quantization (read from the file)
FASTDEPTH_SCALE = 0.07169981
NYU_KINECT = (518.8579, 519.4696, 325.5824, 253.7362)


def run_import(tmp_path, src, *flags, name='out.onnx'):
    out = tmp_path / name
    args = im.build_parser().parse_args([str(src), '--output', str(out), *flags])
    with open(tmp_path / 'log.txt', 'w') as log:
        meta = im.import_model(args, out=log)
    return meta, out


def save(model, path):
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def quantized_graph(path, dtype, scale, zero_point=0, shape=(1, 1, 24, 32), nhwc_out=False,
                    offset=0.0):
    """Write a graph: uint8 NHWC image -> channel mean / 255 + offset, as dtype codes."""
    h, w = shape[2], shape[3]
    inits = [numpy_helper.from_array(np.array([3], np.int64), 'axes'),
             numpy_helper.from_array(np.array(1 / 255.0, np.float32), 'k'),
             numpy_helper.from_array(np.array(offset, np.float32), 'offset')]
    nodes = [helper.make_node('Cast', ['image'], ['f'], to=TensorProto.FLOAT),
             helper.make_node('ReduceMean', ['f', 'axes'], ['m'], keepdims=1),
             helper.make_node('Mul', ['m', 'k'], ['m1']),
             helper.make_node('Add', ['m1', 'offset'], ['m2'])]
    last = 'm2'
    if not nhwc_out:
        nodes.append(helper.make_node('Transpose', [last], ['mt'], perm=[0, 3, 1, 2]))
        last = 'mt'
    elem = {'uint8': TensorProto.UINT8, 'int8': TensorProto.INT8,
            'uint16': TensorProto.UINT16, 'int32': TensorProto.INT32}[dtype]
    if dtype in ('uint8', 'int8'):
        inits += [numpy_helper.from_array(np.array(scale, np.float32), 'qs'),
                  numpy_helper.from_array(np.array(zero_point, getattr(np, dtype)), 'qz')]
        nodes.append(helper.make_node('QuantizeLinear', [last, 'qs', 'qz'], ['depth']))
    else:
        inits.append(numpy_helper.from_array(np.array(1 / scale, np.float32), 'inv'))
        nodes += [helper.make_node('Mul', [last, 'inv'], ['scaled']),
                  helper.make_node('Round', ['scaled'], ['rounded']),
                  helper.make_node('Cast', ['rounded'], ['depth'], to=elem)]
    out_shape = [1, h, w, 1] if nhwc_out else [1, 1, h, w]
    graph = helper.make_graph(
        nodes, 'quantized', [helper.make_tensor_value_info('image', TensorProto.UINT8,
                                                           [1, h, w, 3])],
        [helper.make_tensor_value_info('depth', elem, out_shape)], inits)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 19)]), path)


# -- §2 quantized outputs --------------------------------------------------------------------
@pytest.mark.parametrize('dtype, scale, zero_point', [
    ('uint8', 0.05, 0), ('int8', 0.05, -100), ('uint16', 0.001, 0), ('int32', 0.001, 0)])
def test_quantized_output_is_imported_and_dequantized_by_the_pipeline(tmp_path, dtype, scale,
                                                                      zero_point):
    src = quantized_graph(tmp_path / 'q.onnx', dtype, scale, zero_point, nhwc_out=True,
                          offset=1.0)
    # The codes mean nothing without the quantization: refused, naming the flags.
    with pytest.raises(im.ImportModelError, match='--output-scale.*--output-shift'):
        run_import(tmp_path, src, '--output-mode', 'metric')
    assert not (tmp_path / 'out.onnx').exists()
    meta, out = run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale',
                           str(scale), '--output-shift', str(-scale * zero_point))
    backend = OnnxRuntimeBackend(str(out))
    rgb = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    codes = backend.infer(rgb[None])
    assert codes.dtype == np.float32 and codes.shape == (24, 32)
    assert np.array_equal(codes, np.round(codes)) and codes.max() > codes.min()
    truth = rgb.astype(np.float32).mean(axis=2) / 255 + 1.0
    cam = Intrinsics(30.0, 30.0, 15.5, 11.5, 32, 24)
    depth = FrameProcessor(meta, backend, FrameConfig(depth_upsampling='nearest')).run(
        rgb, cam).depth
    # Dequantized: within half a quantization step of the float map.
    assert np.abs(depth - truth).max() <= scale / 2 + 1e-5


def test_backends_accept_quantized_outputs_but_not_others(tmp_path):
    src = quantized_graph(tmp_path / 'q.onnx', 'uint8', 0.05)
    meta = ModelMeta(arch='q', input_height=24, input_width=32, output_scale=0.05)
    model = onnx.load(str(src))
    for key, value in meta.to_onnx_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(tmp_path / 'stamped.onnx'))
    assert OnnxRuntimeBackend(str(tmp_path / 'stamped.onnx')).infer(
        np.zeros((1, 24, 32, 3), np.uint8)).dtype == np.float32
    # A bool output is no depth map, quantized or not.
    model.graph.node.append(helper.make_node('Cast', ['depth'], ['flag'], to=TensorProto.BOOL))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info('flag', TensorProto.BOOL,
                                                                 [1, 1, 24, 32]))
    save(model, tmp_path / 'bool.onnx')
    with pytest.raises(BackendError, match='float tensor or a quantized one'):
        OnnxRuntimeBackend(str(tmp_path / 'bool.onnx'))


# -- §3 the check run catches a wrong scale --------------------------------------------------
def test_check_run_refuses_codes_read_as_metres(tmp_path):
    # The newcomer's case: raw codes 12-19, range 0.1-10 m, output scale 1.0.
    src = quantized_graph(tmp_path / 'q.onnx', 'uint8', 1 / 7.0, offset=12 / 7.0,
                          nhwc_out=True)
    with pytest.raises(im.ImportModelError) as err:
        run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale', '1.0')
    text = str(err.value)
    assert 'no depth for 100 % of the image' in text and '[0.1, 10] m' in text
    assert re.search(r'raw output 1[2-9]\.\.1[2-9] as metric', text), text
    assert 'uint8 quantized codes read with output scale 1.0' in text
    assert '--output-scale' in text and '--output-mode' in text
    assert not (tmp_path / 'out.onnx').exists()
    # The right scale imports; so does the wrong one when the user insists.
    meta, _ = run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale', '0.5')
    assert meta.output_scale == 0.5
    run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale', '1.0',
               '--no-range-check', name='forced.onnx')


def test_check_run_suggests_a_scale_for_a_float_model(tmp_path):
    # Millimetres read as metres: 1000..2000 against [0.1, 10] m.
    src = quantized_graph(tmp_path / 'q.onnx', 'int32', 1.0, offset=1000.0)
    with pytest.raises(im.ImportModelError, match=r'about 0\.00\d+ would centre') as err:
        run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale', '1000',
                   '--output-shift', '0')
    assert 'outside [0.1, 10] m' in str(err.value)
    # A relative model has no metres to check.
    run_import(tmp_path, src, '--output-mode', 'relative_depth', '--output-scale', '1')


def test_fastdepth_preset_knows_only_its_files_quantization(tmp_path):
    src = quantized_graph(tmp_path / 'fd.onnx', 'uint8', FASTDEPTH_SCALE, offset=1.0,
                          shape=(1, 1, 224, 224), nhwc_out=True)
    meta, _ = run_import(tmp_path, src, '--preset', 'fastdepth')
    assert (meta.output_scale, meta.output_shift) == (pytest.approx(FASTDEPTH_SCALE), 0.0)
    assert (meta.resize_mode, meta.fit_aspect, meta.crop_fraction) == (
        'crop', pytest.approx(304 / 228), pytest.approx(228 / 250))
    assert meta.output_name == 'depth_nchw' and meta.input_layout == 'NHWC'
    other = quantized_graph(tmp_path / 'fd8.onnx', 'int8', 0.05, -128, shape=(1, 1, 224, 224))
    with pytest.raises(im.ImportModelError, match='fastdepth preset knows the scale of a '
                                                  'uint8 output') as err:
        run_import(tmp_path, other, '--preset', 'fastdepth')
    assert '--output-scale' in str(err.value)


# -- §4 size policies and point maps ---------------------------------------------------------
def test_lower_bound_policy_runs_depth_anything_at_its_short_side():
    da2 = ModelMeta(arch='da2', input_height=518, input_width=518, size_multiple=14,
                    size_policy='lower_bound', input_dtype='float32', input_layout='NCHW')
    # Upstream Resize(518, 518, keep_aspect_ratio, multiple 14, 'lower_bound'):
    # 640x480 -> 686x518, portrait 480x640 -> 518x686, KITTI 1242x375 -> 1722x518.
    assert model_input_size(da2, 640, 480) == (686, 518)
    assert model_input_size(da2, 480, 640) == (518, 686)
    assert model_input_size(da2, 1242, 375) == (1722, 518)
    # DA3's upper bound, long side 504: 640x480 -> 504x378.
    da3 = ModelMeta(arch='da3', input_height=504, input_width=504, size_multiple=14,
                    size_policy='upper_bound')
    assert model_input_size(da3, 640, 480) == (504, 378)
    # A format-2 file (no size_policy) keeps the area, as before.
    old = da2.to_dict()
    del old['size_policy']
    old['format_version'] = 2
    assert model_input_size(ModelMeta.from_dict(old), 640, 480) == (602, 448)


def test_pipeline_follows_the_policy_with_exact_intrinsics():
    da2 = ModelMeta(arch='da2', input_height=518, input_width=518, size_multiple=14,
                    size_policy='lower_bound', output_mode='relative_inverse_depth')

    class Echo:
        shapes = []

        def infer(self, tensor):
            self.shapes.append(tensor.shape)
            return np.full(tensor.shape[1:3], 2.0, np.float32)

    backend = Echo()
    processor = FrameProcessor(da2, backend)
    cam = Intrinsics(*NYU_KINECT, 640, 480)
    result = processor.run(np.zeros((480, 640, 3), np.uint8), cam)
    assert backend.shapes == [(1, 518, 686, 3)]
    grid = result.model_camera
    assert (grid.width, grid.height) == (686, 518)
    assert grid.fx == pytest.approx(cam.fx * 686 / 640)
    assert grid.fy == pytest.approx(cam.fy * 518 / 480)
    assert grid.cx == pytest.approx((cam.cx + 0.5) * 686 / 640 - 0.5)


def test_meta_refuses_a_policy_that_contradicts_the_multiple():
    from mono_depth_ros.core.model_meta import ModelMetaError
    with pytest.raises(ModelMetaError, match='size_policy lower_bound needs a size_multiple'):
        ModelMeta(arch='x', input_height=8, input_width=8, size_policy='lower_bound')
    with pytest.raises(ModelMetaError, match='size_policy'):
        ModelMeta(arch='x', input_height=8, input_width=8, size_policy='biggest')


def test_depth_anything_preset_says_lower_bound(tmp_path):
    graph = helper.make_graph(
        [helper.make_node('ReduceMean', ['image', 'axes'], ['m'], keepdims=0),
         helper.make_node('Relu', ['m'], ['depth'])], 'da2',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 'h', 'w'])],
        [helper.make_tensor_value_info('depth', TensorProto.FLOAT, [1, 'h', 'w'])],
        [numpy_helper.from_array(np.array([1], np.int64), 'axes')])
    src = save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]),
               tmp_path / 'da2.onnx')
    meta, _ = run_import(tmp_path, src, '--preset', 'depth_anything_v2')
    assert (meta.size_policy, meta.size_multiple) == ('lower_bound', 14)
    meta, _ = run_import(tmp_path, src, '--preset', 'depth_anything_3_metric',
                         name='da3.onnx')
    assert (meta.size_policy, meta.train_fx, meta.focal_rescale) == ('upper_bound', 300.0,
                                                                     True)


@pytest.mark.parametrize('layout', ['nchw', 'nhwc'])
def test_point_map_z_channel(tmp_path, layout):
    # UniDepth outputs pts_3d (1, 3, H, W); MoGe points (1, H, W, 3): z is channel 2.
    h, w = 16, 20
    nodes = [helper.make_node('Mul', ['image', 'k'], ['p'])]    # channel c = (c + 1) * x
    out_shape = [1, 3, h, w]
    if layout == 'nhwc':
        nodes.append(helper.make_node('Transpose', ['p'], ['points'], perm=[0, 2, 3, 1]))
        out_shape = [1, h, w, 3]
    else:
        nodes.append(helper.make_node('Identity', ['p'], ['points']))
    graph = helper.make_graph(
        nodes, 'points', [helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                                        [1, 3, h, w])],
        [helper.make_tensor_value_info('points', TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1), 'k')])
    src = save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]),
               tmp_path / 'pts.onnx')
    with pytest.raises(im.ImportModelError, match='not one depth map'):
        run_import(tmp_path, src, '--output-mode', 'metric')
    preset = 'unidepth_v2' if layout == 'nchw' else 'moge_2'
    meta, out = run_import(tmp_path, src, '--preset', preset)
    x = np.random.default_rng(2).random((1, 3, h, w), dtype=np.float32)
    np.testing.assert_allclose(OnnxRuntimeBackend(str(out)).infer(x), 3 * x[0, 2], rtol=1e-6)
    assert meta.is_metric == (preset == 'unidepth_v2')


# -- §6 edge_aware on relative output --------------------------------------------------------
def test_edge_aware_on_a_relative_map_ignores_its_shift_and_sign():
    # A smooth signed relative map (a tilted plane) with one real step.
    v, u = np.mgrid[0:48, 0:64].astype(np.float32)
    base = (u - 32) / 32 + (v - 24) / 48
    base[:, 40:] += 1.0
    cam = Intrinsics(60.0, 60.0, 63.5, 47.5, 128, 96)
    rgb = np.zeros((96, 128, 3), np.uint8)
    meta = ModelMeta(arch='r', input_height=48, input_width=64, output_mode='relative_depth')

    class Fixed:
        def __init__(self, raw):
            self.raw = raw

        def infer(self, _tensor):
            return self.raw.copy()

    masks = []
    for raw in (base, base + 10.0, -base, 3.0 * base - 7.0):
        rel = FrameProcessor(meta, Fixed(raw), FrameConfig(depth_upsampling='edge_aware')).run(
            rgb, cam).relative
        masks.append(np.isnan(rel))
    share = masks[0].mean()
    # The same pixels break whatever the shift and sign: the step, not the plane.
    for mask in masks[1:]:
        assert np.array_equal(mask, masks[0])
    assert 0 < share < 0.05
    assert masks[0][:, 79:81].all() and not masks[0][:, :70].any()


# -- §2 held out on real pictures: a uint8-output FastDepth through the node -----------------
def _fastdepth_offline(session, rgb):
    """Return metres by FastDepth's NYU val_transform (fast-depth dataloaders/nyu.py:48-56)."""
    small = cv2.resize(rgb, (333, 250), interpolation=cv2.INTER_AREA)
    crop = small[11:239, 14:318]
    tensor = cv2.resize(crop, (224, 224), interpolation=cv2.INTER_AREA)[None]
    codes = session.run(None, {session.get_inputs()[0].name: tensor})[0]
    return codes.reshape(224, 224).astype(np.float32) * FASTDEPTH_SCALE


def _delta1(pred, gt):
    ok = np.isfinite(pred) & (pred > 0) & (gt > 0)
    ratio = np.maximum(pred[ok] / gt[ok], gt[ok] / pred[ok])
    return float(np.mean(ratio < 1.25)), int(ok.sum())


def _uint8_fastdepth(float_path, path):
    """Write the float FastDepth as a TFLite conversion gives it: uint8 in, codes out."""
    model = onnx.load(float_path)
    del model.metadata_props[:]
    out = model.graph.output[0]
    inits = [numpy_helper.from_array(np.array(FASTDEPTH_SCALE, np.float32), 'q_scale'),
             numpy_helper.from_array(np.array(0, np.uint8), 'q_zero')]
    model.graph.initializer.extend(inits)
    model.graph.node.extend([
        helper.make_node('QuantizeLinear', [out.name, 'q_scale', 'q_zero'], ['codes']),
        helper.make_node('Transpose', ['codes'], ['depth_u8'], perm=[0, 2, 3, 1])])
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info('depth_u8', TensorProto.UINT8,
                                                            [1, 224, 224, 1]))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_quantized_fastdepth_reaches_its_offline_accuracy_through_the_node(tmp_path,
                                                                           shared_data):
    import onnxruntime as ort
    float_path = os.path.join(REPO, 'models', 'fastdepth_nyu.onnx')
    if not os.path.isfile(float_path):
        pytest.skip('models/fastdepth_nyu.onnx is not built')
    stored = ModelMeta.from_onnx_props(
        {p.key: p.value for p in onnx.load(float_path).metadata_props})
    if (stored.input_dtype, stored.input_layout) != ('uint8', 'NHWC'):
        pytest.skip('the bundled FastDepth does not take uint8 NHWC pixels')
    src = _uint8_fastdepth(float_path, tmp_path / 'fastdepth_u8.onnx')
    # Explicit flags, no preset: what a user reads off the TFLite file and FastDepth's code.
    meta, out = run_import(
        tmp_path, src, '--output-mode', 'metric', '--output-scale', str(FASTDEPTH_SCALE),
        '--min-depth', '0.1', '--max-depth', '10', '--resize-mode', 'crop',
        '--fit-aspect', str(304 / 228), '--crop-fraction', str(228 / 250),
        '--train-focal', str(stored.train_fx), str(stored.train_fy))
    # The newcomer's first attempt: the codes read as metres. Refused, not imported "fine".
    with pytest.raises(im.ImportModelError, match='quantized codes read with output scale 1'):
        run_import(tmp_path, src, '--output-mode', 'metric', '--output-scale', '1',
                   name='newcomer.onnx')
    session = ort.InferenceSession(str(src), providers=['CPUExecutionProvider'])
    processor = FrameProcessor(meta, OnnxRuntimeBackend(str(out), threads=1),
                               FrameConfig(depth_upsampling='nearest'))
    offline, node = [], []
    for path in sorted(glob.glob(str(shared_data / 'nyu' / 'rgb' / '*.png'))):
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(shared_data / 'nyu' / 'depth' / os.path.basename(path)),
                        cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
        # Offline: FastDepth's own transform, ground truth through the same steps.
        gt_small = cv2.resize(gt, (333, 250), interpolation=cv2.INTER_NEAREST)[11:239, 14:318]
        gt_in = cv2.resize(gt_small, (224, 224), interpolation=cv2.INTER_NEAREST)
        offline.append(_delta1(_fastdepth_offline(session, rgb), gt_in))
        depth = processor.run(rgb, Intrinsics(*NYU_KINECT, 640, 480)).depth
        assert depth.shape == (480, 640)
        node.append(_delta1(depth, gt))
    # The fastdepth preset says the same as those flags.
    preset, _ = run_import(tmp_path, src, '--preset', 'fastdepth', name='preset.onnx')
    for key in ('output_scale', 'output_shift', 'resize_mode', 'fit_aspect', 'crop_fraction',
                'train_fx', 'train_fy', 'min_depth', 'max_depth', 'focal_rescale'):
        assert getattr(preset, key) == pytest.approx(getattr(meta, key), rel=1e-6), key
    assert len(offline) >= 5
    d_off = np.average([d for d, _ in offline], weights=[n for _, n in offline])
    d_node = np.average([d for d, _ in node], weights=[n for _, n in node])
    # The node publishes the model's accuracy (the crop and focal are followed exactly; the
    # resampling differs, so not to the last pixel), and the model sees: far above a
    # constant's ~0.56.
    print(f'delta1 offline {d_off:.3f}, through the node {d_node:.3f}')
    assert abs(d_node - d_off) < 0.03, (d_off, d_node)
    assert d_off > 0.75 and d_node > 0.75
    # Through the node about the crop's share of the image is covered, not NaN throughout.
    assert min(n for _, n in node) > 0.6 * 480 * 640


def test_int8_calibration_of_a_lower_bound_model_uses_its_profile_size():
    from mono_depth_ros.inference.tensorrt.calibration import PipelineInput
    da2 = ModelMeta(arch='da2', input_height=28, input_width=42, size_multiple=14,
                    size_policy='lower_bound', input_dtype='float32', input_layout='NCHW')
    # Calibration batches have the profile's one size, whatever the policy.
    tensor = PipelineInput(da2)(np.zeros((30, 50, 3), np.uint8))
    assert tensor.shape == (1, 3, 28, 42)


def test_tensorrt_backend_binds_a_quantized_output_and_returns_float_codes():
    from mono_depth_ros.inference.tensorrt.backend import TensorRTBackend

    class Runner:
        """An engine runner as EngineRunner is: named I/O, uint8 codes out."""

        inputs = [('image', (1, 24, 32, 3), np.uint8)]
        outputs = [('depth', (1, 1, 24, 32), np.uint8)]
        output_name = ''

        def infer(self, tensor):
            return np.full((1, 1, 24, 32), 40, np.uint8)

        def close(self):
            pass

    meta = ModelMeta(arch='q', input_height=24, input_width=32, output_scale=0.05,
                     min_depth=0.5)
    backend = TensorRTBackend('m.onnx', meta, 'fp32', Runner(), 'm.engine')
    codes = backend.infer(np.zeros((1, 24, 32, 3), np.uint8))
    assert codes.dtype == np.float32 and codes.shape == (24, 32) and (codes == 40).all()
    depth = FrameProcessor(meta, backend).run(np.zeros((24, 32, 3), np.uint8),
                                              Intrinsics(30.0, 30.0, 15.5, 11.5, 32, 24)).depth
    assert np.allclose(depth, 2.0)
    Runner.outputs = [('depth', (1, 1, 24, 32), np.int64)]
    with pytest.raises(BackendError, match='int64; expected a float tensor'):
        TensorRTBackend('m.onnx', meta, 'fp32', Runner(), 'm.engine')
