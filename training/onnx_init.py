"""
Rebuild a zoo network from an ONNX file that ``training/export_onnx.py`` wrote.

A deployed model (the bundled default, or any export of the zoo) is often all there is of
it: the training checkpoint stayed on another machine. Its ``mono_depth.*`` metadata names
the architecture and its arguments, and its initialisers hold the weights, but the export
folded every batch norm into the convolution before it and renamed those tensors. So the
weights are matched by execution order, not by name: the torch network runs once on a
dummy input with hooks that record each convolution and whether a batch norm consumes its
output; the ONNX graph lists its ``Conv`` nodes in the same order (the exporter traces
that same forward). Shapes are checked one by one, so a mismatch is an error, never a
silent partial load.

A folded convolution gets the folded weight and its batch norm becomes an identity plus
the folded bias (weight 1, bias b, running mean 0, running variance 1 - eps, so
``sqrt(var + eps)`` is exactly 1 in eval mode), the convention of
:mod:`training.tflite_import`. Batch statistics would undo the folding, so those batch
norms become :class:`FoldedBatchNorm2d`: the same parameters and state-dict keys (a
checkpoint rebuilds a plain network), but they always normalise with the stored
statistics, in training too; their scale and bias still train.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from mono_depth_ros.core.model_meta import ModelMeta
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class FoldedBatchNorm2d(nn.BatchNorm2d):
    """A batch norm that holds a folded convolution's bias: running statistics always."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with the stored statistics whatever the mode (no batch statistics)."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False, 0.0, self.eps)


class OnnxInitError(ValueError):
    """The ONNX file is not a zoo export, or its weights do not fit the network."""


def read_meta(path: str) -> ModelMeta:
    """Return the ModelMeta stored in an exported ONNX file's metadata."""
    import onnx
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise OnnxInitError(f'cannot read ONNX file {path}: {exc}') from exc
    props = {p.key: p.value for p in model.metadata_props}
    if 'mono_depth.arch' not in props:
        raise OnnxInitError(f'{path} has no mono_depth.arch metadata: not exported from the '
                            'zoo by training/export_onnx.py, so no network to rebuild')
    return ModelMeta.from_onnx_props(props)


def _onnx_convs(path: str) -> List[Tuple[np.ndarray, np.ndarray]]:
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == 'Constant':
            for attr in node.attribute:
                if attr.name == 'value':
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    out = []
    for node in model.graph.node:
        if node.op_type != 'Conv':
            continue
        if node.input[1] not in consts:
            raise OnnxInitError(f'{path}: Conv {node.name} takes a computed weight')
        bias = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        out.append((consts[node.input[1]], bias))
    return out


def _torch_convs(net: nn.Module, height: int, width: int) -> List[Tuple[nn.Conv2d, object]]:
    """Return [(conv, the batch norm applied to its output or None)] in execution order."""
    calls: List[Tuple[nn.Conv2d, object]] = []
    produced: Dict[int, int] = {}
    hooks = []

    def on_conv(module, _inputs, output):
        produced[id(output)] = len(calls)
        calls.append((module, None))

    def on_bn(module, inputs, _output):
        k = produced.get(id(inputs[0]))
        if k is not None:
            calls[k] = (calls[k][0], module)

    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            hooks.append(module.register_forward_hook(on_bn))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, height, width))
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    return calls


def load_onnx_weights(net: nn.Module, path: str, height: int, width: int) -> int:
    """Copy an export's convolution weights into ``net`` (see the module); return the count."""
    onnx_convs = _onnx_convs(path)
    torch_convs = _torch_convs(net, height, width)
    if len(onnx_convs) != len(torch_convs):
        raise OnnxInitError(f'{path} has {len(onnx_convs)} convolutions, the network '
                            f'{len(torch_convs)}: not the same architecture')
    with torch.no_grad():
        for k, ((conv, bn), (weight, bias)) in enumerate(zip(torch_convs, onnx_convs)):
            if tuple(conv.weight.shape) != tuple(weight.shape):
                raise OnnxInitError(f'{path}: convolution {k} is {tuple(weight.shape)}, the '
                                    f'network has {tuple(conv.weight.shape)}')
            conv.weight.copy_(torch.from_numpy(np.array(weight, np.float32)))
            bias_t = torch.zeros(weight.shape[0]) if bias is None else \
                torch.from_numpy(np.array(bias, np.float32))
            if bn is not None:
                if conv.bias is not None:
                    conv.bias.zero_()
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias_t)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                if type(bn) is nn.BatchNorm2d:
                    bn.__class__ = FoldedBatchNorm2d
            elif conv.bias is not None:
                conv.bias.copy_(bias_t)
            elif bias is not None and np.any(bias != 0):
                raise OnnxInitError(f'{path}: convolution {k} has a bias; the network has none')
    return len(torch_convs)


def network_from_onnx(path: str) -> Tuple[nn.Module, ModelMeta]:
    """Return (the zoo network rebuilt with the export's weights, its ModelMeta)."""
    from training.networks import build_model, rebuild_args
    meta = read_meta(path)
    args = rebuild_args(dict(meta.arch_args))
    args.pop('freeze_encoder', None)
    net = build_model(meta.arch, **args)
    load_onnx_weights(net, path, meta.input_height, meta.input_width)
    return net, meta
