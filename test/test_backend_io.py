"""Backends bind the metadata's tensor names and refuse metadata that contradicts the graph."""

import dataclasses

from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import BackendError, bind_io, create_backend, TensorSpec
from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import pytest

META = ModelMeta(arch='io_test', input_height=12, input_width=16, output_mode='metric')


def write_model(path, meta, in_shape=(1, 12, 16, 3), in_type=TensorProto.UINT8,
                two_outputs=False):
    """
    Write a graph whose output 'confidence' (first) is 1 - b and 'depth' is b = mean(RGB)/255.

    With ``two_outputs`` the confidence comes first, so a backend that reads the graph's
    first output instead of the named one returns the wrong map.
    """
    nhwc = in_shape[-1] == 3
    nodes = [helper.make_node('Cast', ['image'], ['f'], to=TensorProto.FLOAT),
             helper.make_node('ReduceMean', ['f', 'axes'], ['m'], keepdims=1)]
    if nhwc:
        nodes.append(helper.make_node('Transpose', ['m'], ['mt'], perm=[0, 3, 1, 2]))
    else:
        nodes.append(helper.make_node('Identity', ['m'], ['mt']))
    nodes.append(helper.make_node('Mul', ['mt', 'inv255'], ['depth']))
    inits = [numpy_helper.from_array(np.array([3 if nhwc else 1], np.int64), 'axes'),
             numpy_helper.from_array(np.array(1 / 255.0, np.float32), 'inv255')]
    h, w = (in_shape[1], in_shape[2]) if nhwc else (in_shape[2], in_shape[3])
    outputs = [helper.make_tensor_value_info('depth', TensorProto.FLOAT, [1, 1, h, w])]
    if two_outputs:
        inits.append(numpy_helper.from_array(np.array(1.0, np.float32), 'one'))
        nodes.append(helper.make_node('Sub', ['one', 'depth'], ['confidence']))
        outputs.insert(0, helper.make_tensor_value_info('confidence', TensorProto.FLOAT,
                                                        [1, 1, h, w]))
    graph = helper.make_graph(
        nodes, 'io', [helper.make_tensor_value_info('image', in_type, list(in_shape))],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    for key, value in meta.to_onnx_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def test_two_output_model_reads_the_named_output(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (1, 12, 16, 3), dtype=np.uint8)
    expected = rgb.astype(np.float32).mean(axis=3)[0] / 255.0
    named = write_model(tmp_path / 'named.onnx', dataclasses.replace(META, output_name='depth'),
                        two_outputs=True)
    out = create_backend('onnxruntime', named).infer(rgb)
    assert np.allclose(out, expected, atol=1e-6)
    # Without a name the graph's first output is read: here the confidence map, 1 - depth.
    first = write_model(tmp_path / 'first.onnx', META, two_outputs=True)
    assert np.allclose(create_backend('onnxruntime', first).infer(rgb), 1 - expected,
                       atol=1e-6)


@pytest.mark.parametrize('change, graph, words', [
    ({'input_height': 240}, {}, 'input_height 240, but input'),
    ({'input_name': 'pixels'}, {}, "names input 'pixels'"),
    ({'output_name': 'disparity'}, {}, "names output 'disparity'"),
    ({'input_dtype': 'float32'}, {}, 'input_dtype float32, but input .* is uint8'),
    ({'input_layout': 'NCHW'}, {}, 'not 3 channels .*it looks NHWC'),
    ({'size_multiple': 14}, {}, 'dynamic'),
    ({}, {'in_shape': (1, 3, 12, 16)}, 'not 3 channels .*it looks NCHW'),
    ({}, {'in_shape': (4, 12, 16, 3)}, 'batch 4'),
])
def test_metadata_that_contradicts_the_graph_is_refused_at_load(tmp_path, change, graph,
                                                                words):
    path = write_model(tmp_path / 'm.onnx', dataclasses.replace(META, **change), **graph)
    with pytest.raises(BackendError, match=words) as info:
        OnnxRuntimeBackend.from_file(path)
    assert '\n' not in str(info.value)


def test_bind_io_rules():
    x = TensorSpec('image', (1, None, None, 3), 'uint8')
    y = TensorSpec('depth', (1, 1, None, None), 'float32')
    assert bind_io(META, [x], [y], 'm') == (x, y)
    dynamic = dataclasses.replace(META, size_multiple=8)
    assert bind_io(dynamic, [x], [y], 'm') == (x, y)
    with pytest.raises(BackendError, match='2 inputs'):
        bind_io(META, [x, TensorSpec('mask', (1,), 'uint8')], [y], 'm')
    with pytest.raises(BackendError, match='one depth map'):
        bind_io(META, [x], [TensorSpec('depth', (1, 2, 12, 16), 'float32')], 'm')
    with pytest.raises(BackendError, match='float tensor'):
        bind_io(META, [x], [TensorSpec('depth', (1, 12, 16), 'int64')], 'm')
    with pytest.raises(BackendError, match='4-D'):
        bind_io(META, [TensorSpec('image', (12, 16, 3), 'uint8')], [y], 'm')


@pytest.mark.parametrize('key, value, words', [
    ('mean', 'abc', 'mean must be 3 numbers'),
    ('extra', 'abc', 'extra must be a mapping'),
    ('format_version', 'x', 'format_version must be a positive integer'),
    ('input_height', 100000000, 'input_height must be in'),
])
def test_bad_metadata_values_are_one_line_at_load(tmp_path, key, value, words):
    import json
    path = write_model(tmp_path / 'm.onnx', META)
    model = onnx.load(path)
    for entry in model.metadata_props:
        if entry.key == f'mono_depth.{key}':
            entry.value = json.dumps(value)
    onnx.save(model, path)
    with pytest.raises(BackendError, match=words) as info:
        create_backend('auto', path)
    assert '\n' not in str(info.value)


def test_onnxruntime_threads_sleep_between_frames(tmp_path):
    # Spinning intra-op threads would take the cores the node's own per-frame work needs.
    path = write_model(tmp_path / 'm.onnx', META)
    options = OnnxRuntimeBackend.from_file(path).session.get_session_options()
    assert options.get_session_config_entry('session.intra_op.allow_spinning') == '0'
