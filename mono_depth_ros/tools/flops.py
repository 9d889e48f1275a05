"""
FLOPs of a depth model (2 x the multiply-accumulates of its conv and matmul layers).

From an ONNX graph (:func:`onnx_flops`: shape inference, one real run where it cannot
follow the shapes) or from torch modules' forward hooks (:func:`torch_flops`); depth_bench
sets them against the measured latency as achieved TFLOP/s.
"""

from typing import Dict, List, Optional

import numpy as np


def onnx_flops(model_path: str, height: int, width: int) -> Optional[float]:
    """
    Count FLOPs (2 x MACs) of Conv, ConvTranspose, MatMul and Gemm in an ONNX graph.

    The input's height and width are fixed to the given size before shape inference;
    returns None when a counted node's shape cannot be inferred.
    """
    import onnx
    from onnx import shape_inference
    model = onnx.load(model_path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    layout_nhwc = len(dims) == 4 and dims[3].HasField('dim_value') and dims[3].dim_value == 3
    values = [1, height, width, 3] if layout_nhwc else [1, 3, height, width]
    for dim, value in zip(dims, values):
        dim.Clear()
        dim.dim_value = value
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes: Dict[str, List[int]] = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(
            model.graph.output):
        shape = [d.dim_value if d.HasField('dim_value') else -1
                 for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = shape
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in model.graph.node:
        if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    counted = [n for n in model.graph.node
               if n.op_type in ('Conv', 'ConvTranspose', 'MatMul', 'Gemm')]
    unknown = sorted({name for n in counted for name in (n.input[0], n.output[0])
                      if shapes.get(name) is None or -1 in shapes[name]})
    if unknown:
        # Static inference cannot follow computed pads or reshapes; one real run can.
        shapes.update(_runtime_shapes(model, unknown, values))
    total = 0
    for node in counted:
        x, w = (shapes.get(n) for n in node.input[:2])
        out = shapes.get(node.output[0])
        # Conv weights are (Cout, Cin / group, k...) and ConvTranspose ones (Cin, Cout /
        # group, k...), so the group count is already in the weight shape.
        if node.op_type == 'Conv':
            needed, macs = (w, out), lambda: int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == 'ConvTranspose':
            needed, macs = (x, w), lambda: int(np.prod(x)) * int(np.prod(w[1:]))
        else:
            needed, macs = (x, out), lambda: int(np.prod(out)) * x[-1]
        if any(s is None or -1 in s for s in needed):
            return None
        total += macs()
    return 2.0 * total


def _runtime_shapes(model, names: List[str], input_shape: List[int]):
    """Run the model once on zeros with ``names`` exposed as outputs; return their shapes."""
    import onnx
    import onnxruntime as ort
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(probe.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    info = session.get_inputs()[0]
    dtype = np.uint8 if 'uint8' in info.type else np.float32
    outputs = session.run(names, {info.name: np.zeros(input_shape, dtype)})
    return {name: list(out.shape) for name, out in zip(names, outputs)}


def torch_flops(module, example) -> float:
    """Count FLOPs (2 x MACs) of conv and linear layers with forward hooks."""
    import torch
    total = [0]

    def hook(layer, inputs, output):
        if isinstance(layer, torch.nn.ConvTranspose2d):
            macs = inputs[0].numel() * layer.out_channels // layer.groups * int(
                np.prod(layer.kernel_size))
        elif isinstance(layer, torch.nn.Conv2d):
            macs = output.numel() * layer.in_channels // layer.groups * int(
                np.prod(layer.kernel_size))
        else:
            macs = output.numel() * layer.in_features
        total[0] += int(macs)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return 2.0 * total[0]


def model_flops(model_path: str, backend, tensor, h: int, w: int) -> Optional[float]:
    """Return the model's FLOPs at h x w from its ONNX graph or torch modules, or None."""
    try:
        if model_path.lower().endswith('.onnx'):
            return onnx_flops(model_path, h, w)
        module = getattr(backend, 'module', None)
        if module is not None and getattr(backend, 'kind', '') == 'checkpoint':
            x = backend.to_device(tensor)
            return torch_flops(module, x)
    except Exception:  # noqa: BLE001 - FLOPs are informative only
        return None
    return None
