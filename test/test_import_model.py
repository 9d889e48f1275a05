"""
import_model on small ONNX graphs built with the conventions of each model family.

Each graph computes a depth-like map from the image (the channel mean, so the output depends
on the input), with the published input and output layout of the family its preset is for.
"""

import hashlib

from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
from mono_depth_ros.tools import import_model as im
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import pytest


def conventions_graph(path, input_shape, output_shape, *, nhwc=False, dtype=TensorProto.FLOAT,
                      input_name='image', output_name='depth', head=None, extra_output=False):
    """
    Write a graph: channel mean of the input, laid out as output_shape, then ``head``.

    ``head`` is 'relu' (relative models), 'sigmoid20' (metric, sigmoid * 20) or None.
    """
    nodes = [helper.make_node('Cast', [input_name], ['f'], to=TensorProto.FLOAT),
             helper.make_node('ReduceMean', ['f', 'axes'], ['m'], keepdims=1)]
    inits = [numpy_helper.from_array(np.array([3 if nhwc else 1], np.int64), 'axes')]
    last = 'm'  # (1, H, W, 1) for NHWC, (1, 1, H, W) for NCHW
    rank = len(output_shape)
    if nhwc and not (rank == 4 and output_shape[3] == 1):
        nodes.append(helper.make_node('Transpose', [last], ['mt'], perm=[0, 3, 1, 2]))
        last = 'mt'
    if rank == 3:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), 'sq'))
        nodes.append(helper.make_node('Squeeze', [last, 'sq'], ['m3']))
        last = 'm3'
    elif rank == 2:
        inits.append(numpy_helper.from_array(np.array([0, 1], np.int64), 'sq'))
        nodes.append(helper.make_node('Squeeze', [last, 'sq'], ['m2']))
        last = 'm2'
    if head == 'relu':
        nodes.append(helper.make_node('Relu', [last], ['h']))
        last = 'h'
    elif head == 'sigmoid20':
        inits.append(numpy_helper.from_array(np.array(20.0, np.float32), 'twenty'))
        nodes += [helper.make_node('Sigmoid', [last], ['s']),
                  helper.make_node('Mul', ['s', 'twenty'], ['h'])]
        last = 'h'
    nodes.append(helper.make_node('Identity', [last], [output_name]))
    outputs = [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)]
    if extra_output:
        nodes.append(helper.make_node('ReduceMean', ['f'], ['features'], keepdims=0))
        outputs.insert(0, helper.make_tensor_value_info('features', TensorProto.FLOAT, []))
    graph = helper.make_graph(nodes, 'conventions',
                              [helper.make_tensor_value_info(input_name, dtype, input_shape)],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def relative_mean_model(folder, height, width):
    """
    Import the channel-mean graph as a relative inverse-depth model; return its path.

    The node tests' relative model: inverse depth proportional to brightness, range to 20 m.
    """
    src = conventions_graph(folder / 'mean.onnx', [1, height, width, 3], [1, 1, height, width],
                            nhwc=True, dtype=TensorProto.UINT8)
    out = folder / 'relative.onnx'
    args = im.build_parser().parse_args([str(src), '--output', str(out), '--output-mode',
                                         'relative_inverse_depth', '--output-scale',
                                         str(1 / 255.0), '--max-depth', '20'])
    with open(folder / 'import.log', 'w') as log:
        im.import_model(args, out=log)
    return str(out)


def run(tmp_path, src, *flags):
    out = tmp_path / 'out.onnx'
    args = im.build_parser().parse_args([str(src), '--output', str(out), *flags])
    meta = im.import_model(args, out=open(tmp_path / 'log.txt', 'w'))
    return meta, out


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_meta(path):
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return ModelMeta.from_onnx_props(props)


def test_depth_anything_v2_relative_preset(tmp_path):
    # pixel_values (1, 3, h, w) float, predicted_depth (1, h, w): the Hugging Face export.
    src = conventions_graph(tmp_path / 'da.onnx', [1, 3, 'height', 'width'],
                            [1, 'height', 'width'], input_name='pixel_values',
                            output_name='predicted_depth', head='relu')
    before = sha(src)
    meta, out = run(tmp_path, src, '--preset', 'depth_anything_v2')
    assert sha(src) == before  # IN is never touched
    assert meta == stored_meta(out)
    assert (meta.output_mode, meta.is_metric) == ('relative_inverse_depth', False)
    assert (meta.size_multiple, meta.dynamic_shape) == (14, True)
    assert (meta.input_height, meta.input_width) == (518, 518)
    assert (meta.input_name, meta.output_name) == ('pixel_values', 'predicted_depth')
    assert meta.input_layout == 'NCHW' and not meta.normalize_in_graph
    assert meta.mean == pytest.approx((0.485, 0.456, 0.406))
    log = (tmp_path / 'log.txt').read_text()
    assert 'depth/relative only' in log and 'pixel_values' in log
    # The project's backend runs it at a multiple of 14 other than 518.
    backend = OnnxRuntimeBackend(str(out))
    x = np.random.default_rng(0).random((1, 3, 14 * 20, 14 * 27)).astype(np.float32)
    np.testing.assert_allclose(backend.infer(x), np.maximum(x[0].mean(axis=0), 0), rtol=1e-6)


def test_depth_anything_v2_metric_preset_and_overrides(tmp_path):
    src = conventions_graph(tmp_path / 'dam.onnx', [1, 3, 518, 518], [1, 518, 518],
                            input_name='input', output_name='output', head='sigmoid20')
    meta, out = run(tmp_path, src, '--preset', 'depth_anything_v2_metric', '--max-depth', '80')
    assert meta.is_metric and meta.output_mode == 'metric'
    assert meta.max_depth == 80.0  # the flag overrides the preset's indoor 20 m
    # A fixed 518x518 export: no size multiple, the graph's own size.
    assert (meta.dynamic_shape, meta.size_multiple) == (False, 0)
    assert (meta.input_height, meta.input_width) == (518, 518)


def test_midas_small_preset(tmp_path):
    src = conventions_graph(tmp_path / 'midas.onnx', [1, 3, 256, 256], [1, 256, 256],
                            input_name='0', output_name='797', head='relu')
    meta, out = run(tmp_path, src, '--preset', 'midas_small')
    assert (meta.input_height, meta.input_width, meta.output_mode) == (
        256, 256, 'relative_inverse_depth')
    # MiDaS's ONNX normalises inside the graph (tf/make_onnx_model.py), and tf/run_onnx.py
    # feeds RGB / 255: normalising outside as well would do it twice.
    assert meta.normalize_in_graph and meta.input_dtype == 'float32'
    assert (meta.input_name, meta.output_name) == ('0', '797')


def test_fastdepth_preset(tmp_path):
    src = conventions_graph(tmp_path / 'fd.onnx', [1, 3, 224, 224], [1, 1, 224, 224])
    meta, out = run(tmp_path, src, '--preset', 'fastdepth')
    assert meta.is_metric and meta.normalize_in_graph and meta.input_dtype == 'float32'
    assert meta.max_depth == 10.0 and meta.focal_rescale
    assert meta.train_fx == pytest.approx(198.9, abs=0.1)
    assert meta.train_fy == pytest.approx(265.8, abs=0.1)
    # An explicit focal overrides the preset's.
    meta, _ = run(tmp_path, src, '--preset', 'fastdepth', '--train-focal', '150')
    assert (meta.train_fx, meta.train_fy) == (150.0, 150.0)


def test_nhwc_uint8_input_and_nhwc_output(tmp_path):
    src = conventions_graph(tmp_path / 'nhwc.onnx', [1, 48, 64, 3], [1, 48, 64, 1], nhwc=True,
                            dtype=TensorProto.UINT8)
    meta, out = run(tmp_path, src, '--output-mode', 'metric', '--output-scale', '0.04')
    assert (meta.input_layout, meta.input_dtype, meta.normalize_in_graph) == (
        'NHWC', 'uint8', True)
    assert meta.output_name == 'depth_nchw'  # the appended transpose
    x = np.random.default_rng(1).integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    got = OnnxRuntimeBackend(str(out)).infer(x)
    np.testing.assert_allclose(got, x[0].astype(np.float32).mean(axis=-1), rtol=1e-5)
    # The original output is still there, unchanged.
    assert [o.name for o in onnx.load(str(out)).graph.output] == ['depth', 'depth_nchw']


def test_hw_output_and_contradicting_flags(tmp_path):
    src = conventions_graph(tmp_path / 'hw.onnx', [1, 3, 32, 40], [32, 40])
    # The normalised channel mean (-1.3..1.2) is no inverse depth: the range check would
    # refuse it (56 % NaN), which this test of the layout flags does not care about.
    meta, _ = run(tmp_path, src, '--output-mode', 'inverse_depth', '--mean', '0.5', '0.5',
                  '0.5', '--std', '0.25', '0.25', '0.25', '--no-range-check')
    assert meta.output_mode == 'inverse_depth' and not meta.normalize_in_graph
    for flags, reason in ((['--input-size', '64x64'], 'contradicts'),
                          (['--layout', 'NHWC'], 'contradicts'),
                          (['--dtype', 'uint8'], 'contradicts'),
                          (['--mean', '0.5', '0.5', '0.5'], 'together'),
                          (['--size-multiple', '8'], 'dynamic')):
        with pytest.raises(im.ImportModelError, match=reason):
            run(tmp_path, src, '--output-mode', 'metric', *flags)


def test_multi_output_selected_by_name(tmp_path):
    src = conventions_graph(tmp_path / 'multi.onnx', [1, 3, 32, 40], [1, 1, 32, 40],
                            extra_output=True)
    with pytest.raises(im.ImportModelError, match='--output-name') as err:
        run(tmp_path, src, '--output-mode', 'metric')
    assert 'features' in str(err.value) and 'depth' in str(err.value)
    meta, out = run(tmp_path, src, '--output-mode', 'metric', '--output-name', 'depth')
    assert meta.output_name == 'depth'
    assert OnnxRuntimeBackend(str(out)).infer(
        np.zeros((1, 3, 32, 40), np.float32)).shape == (32, 40)
    with pytest.raises(im.ImportModelError, match='no output'):
        run(tmp_path, src, '--output-mode', 'metric', '--output-name', 'nope')


def test_refuses_without_output_mode_and_leaves_no_file(tmp_path):
    src = conventions_graph(tmp_path / 'm.onnx', [1, 3, 32, 40], [1, 1, 32, 40])
    with pytest.raises(im.ImportModelError, match='--output-mode'):
        run(tmp_path, src)
    assert not (tmp_path / 'out.onnx').exists()
    # The command line says the same and exits 2.
    assert im.main([str(src), '--output', str(tmp_path / 'out.onnx')]) == 2
    assert not (tmp_path / 'out.onnx').exists()


def test_dynamic_graph_needs_size_and_multiple(tmp_path):
    src = conventions_graph(tmp_path / 'dyn.onnx', [1, 3, 'h', 'w'], [1, 1, 'h', 'w'])
    with pytest.raises(im.ImportModelError, match='dynamic size'):
        run(tmp_path, src, '--output-mode', 'metric')
    meta, _ = run(tmp_path, src, '--output-mode', 'metric', '--input-size', '96x128',
                  '--size-multiple', '32')
    assert (meta.input_height, meta.input_width, meta.size_multiple) == (96, 128, 32)


def test_corrupt_or_same_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x08\x07this is not a protobuf' * 10)
    before = sha(bad)
    with pytest.raises(im.ImportModelError, match='not a valid ONNX model'):
        run(tmp_path, bad, '--output-mode', 'metric')
    assert sha(bad) == before and not (tmp_path / 'out.onnx').exists()
    with pytest.raises(im.ImportModelError, match='no such file'):
        run(tmp_path, tmp_path / 'missing.onnx', '--output-mode', 'metric')
    src = conventions_graph(tmp_path / 'm.onnx', [1, 3, 32, 40], [1, 1, 32, 40])
    assert im.main([str(src), '--output', str(src), '--output-mode', 'metric']) == 2
    assert 'never changes IN' in capsys.readouterr().err


def test_restamping_replaces_old_metadata(tmp_path):
    src = conventions_graph(tmp_path / 'm.onnx', [1, 3, 32, 40], [1, 1, 32, 40])
    _, first = run(tmp_path, src, '--output-mode', 'metric', '--max-depth', '5')
    again = tmp_path / 'again.onnx'
    args = im.build_parser().parse_args([str(first), '--output', str(again),
                                         '--output-mode', 'relative_depth'])
    im.import_model(args, out=open(tmp_path / 'log2.txt', 'w'))
    meta = stored_meta(again)
    assert meta.output_mode == 'relative_depth' and meta.max_depth == 10.0


def test_bundled_model_says_it_is_metric():
    # The starter model is trained with metric supervision: the node may publish its metres
    # without a scale source, and its metadata says so.
    from pathlib import Path
    meta = stored_meta(Path(__file__).resolve().parents[1] / 'models' / 'starter_indoor.onnx')
    assert meta.is_metric and meta.output_mode in ('metric', 'inverse_depth', 'disparity')


def test_console_script(tmp_path):
    # As users run it: the installed executable, exit 0 with the report, 2 with one line.
    import os
    import shutil
    import subprocess
    import sys
    exe = shutil.which('import_model', path=os.path.dirname(sys.executable))
    assert exe, 'import_model is not installed beside the interpreter (pip install -e .)'
    src = conventions_graph(tmp_path / 'fd.onnx', [1, 3, 224, 224], [1, 1, 224, 224])
    out = tmp_path / 'stamped.onnx'
    ok = subprocess.run([exe, str(src), '--output', str(out), '--preset', 'fastdepth'],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert 'inputs:  image [1, 3, 224, 224] float32' in ok.stdout
    assert stored_meta(out).arch == 'fastdepth'
    bad = subprocess.run([exe, str(src), '--output', str(tmp_path / 'x.onnx')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count('\n') == 1
    assert bad.stderr.startswith('import_model: error:') and '--output-mode' in bad.stderr


def test_depth_bench_times_an_imported_relative_model(tmp_path):
    from mono_depth_ros.core.intrinsics import Intrinsics
    from mono_depth_ros.tools.depth_bench import run_pipeline_bench
    src = conventions_graph(tmp_path / 'rel.onnx', [1, 3, 'h', 'w'], [1, 'h', 'w'],
                            head='relu')
    _, out = run(tmp_path, src, '--output-mode', 'relative_inverse_depth', '--input-size',
                 '48x64', '--size-multiple', '16')
    rgb = np.full((48, 64, 3), 100, np.uint8)
    results = []
    rows = run_pipeline_bench(OnnxRuntimeBackend(str(out)),
                              [(rgb, Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48), 'grey')],
                              results=results)
    assert {r['stage'] for r in rows} >= {'inference', 'postprocess', 'total'}
    # timed as under scale_source fixed (1, 0): inverse depth 100 / 255 -> 2.55 m
    np.testing.assert_allclose(results[0].depth, 2.55, rtol=1e-5)
