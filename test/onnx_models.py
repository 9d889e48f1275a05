"""Tiny ONNX depth models built with onnx.helper, honouring the ModelMeta conventions."""

from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def brightness_model(path, height=24, width=32, kind='metric', slow_matmuls=0,
                     focal=None):
    """
    Write a model whose raw output is ``mean(RGB) / 255`` per pixel, at the input size.

    With kind 'metric' the metadata maps it to depth = 4 * y + 1 (1 m black, 5 m white);
    'inverse' maps it to 1 / (0.8 * y + 0.2); 'nan' divides by zero so the output is NaN.
    ``slow_matmuls`` chains 512x512 by 512x512 matrix products into the graph to make it slow.
    """
    nodes = [
        helper.make_node('Cast', ['image'], ['f'], to=TensorProto.FLOAT),
        helper.make_node('ReduceMean', ['f', 'axes3'], ['m'], keepdims=1),
        helper.make_node('Transpose', ['m'], ['mt'], perm=[0, 3, 1, 2]),
        helper.make_node('Mul', ['mt', 'inv255'], ['y0']),
    ]
    inits = [numpy_helper.from_array(np.array([3], np.int64), 'axes3'),
             numpy_helper.from_array(np.array(1 / 255.0, np.float32), 'inv255')]
    last = 'y0'
    if kind == 'nan':
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), 'zero'))
        nodes += [helper.make_node('Mul', [last, 'zero'], ['z0']),
                  helper.make_node('Div', ['z0', 'zero'], ['y_nan'])]
        last = 'y_nan'
    if slow_matmuls:
        rng = np.random.default_rng(0)
        mat = (rng.standard_normal((512, 512)) / 512).astype(np.float32)
        inits.append(numpy_helper.from_array(mat, 'mat'))
        inits.append(numpy_helper.from_array(np.array(0.0, np.float32), 'tiny'))
        inits.append(numpy_helper.from_array(np.ones((512, 512), np.float32), 'row'))
        nodes.append(helper.make_node('ReduceMean', [last], ['s'], keepdims=0))
        nodes.append(helper.make_node('Mul', ['row', 's'], ['v0']))
        for i in range(slow_matmuls):
            nodes.append(helper.make_node('MatMul', ['v0' if i == 0 else f'w{i}', 'mat'],
                                          [f'w{i + 1}']))
        # Broadcast a vanishing multiple of the chain's result, so it cannot be skipped.
        nodes += [helper.make_node('ReduceMean', [f'w{slow_matmuls}'], ['r'], keepdims=0),
                  helper.make_node('Mul', ['r', 'tiny'], ['rz']),
                  helper.make_node('Add', [last, 'rz'], ['y_slow'])]
        last = 'y_slow'
    nodes.append(helper.make_node('Identity', [last], ['depth']))
    graph = helper.make_graph(
        nodes, 'brightness',
        [helper.make_tensor_value_info('image', TensorProto.UINT8, [1, height, width, 3])],
        [helper.make_tensor_value_info('depth', TensorProto.FLOAT, [1, 1, height, width])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)])
    model.ir_version = 9
    if kind == 'inverse':
        mode = dict(output_mode='inverse_depth', output_scale=0.8, output_shift=0.2)
    else:
        mode = dict(output_mode='metric', output_scale=4.0, output_shift=1.0)
    meta = ModelMeta(arch='test_brightness', input_height=height, input_width=width,
                     min_depth=0.5, max_depth=10.0, description='test model',
                     train_fx=focal, train_fy=focal, focal_rescale=focal is not None, **mode)
    for key, value in meta.to_onnx_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return meta


def slow_brightness_model(path, height, width, target_ms=150.0, **kwargs):
    """
    Write ``brightness_model`` with enough matrix products to take about ``target_ms``.

    The cost of one 512x512 product is measured here, with ONNX Runtime as the node runs it,
    so the model is slow on a fast idle machine too: a fixed number of products took 29 ms on
    one idle machine and 80 ms on a loaded one. A loaded machine only makes it slower. Returns
    the number of products used.
    """
    import time

    import onnxruntime as ort
    probe_count = 8
    brightness_model(path, height, width, slow_matmuls=probe_count, **kwargs)
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    feed = {'image': np.zeros((1, height, width, 3), np.uint8)}
    session.run(None, feed)
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        session.run(None, feed)
        runs.append(time.perf_counter() - start)
    per_product_ms = max(min(runs) * 1000.0 / probe_count, 1e-3)
    count = int(min(max(np.ceil(target_ms / per_product_ms), probe_count), 4000))
    brightness_model(path, height, width, slow_matmuls=count, **kwargs)
    return count
