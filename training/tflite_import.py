"""
ImageNet initialisation from a quantized TFLite MobileNetV2 (batch norm folded).

The ImageNet weights available offline are Google's uint8 ``mobilenet_v2_1.0_224_quant``
TFLite. This module

* parses the flatbuffer with the pure-Python ``tflite`` package (:func:`read_tflite`);
* dequantizes tensors, real = scale * (q - zero_point), per tensor or per channel
  (:func:`dequantize`; int32 biases carry their own scale, input_scale * weight_scale);
* loads them into :class:`training.networks.mobilenetv2.MobileNetV2Encoder`
  (:func:`load_mobilenetv2_tflite`): conv OHWI -> OIHW, depthwise 1HWC -> C11HW... i.e.
  (C, 1, H, W). Batch norm is already folded into the convolutions, so each BatchNorm is
  made an identity plus the folded bias: weight 1, bias b, running_mean 0 and
  running_var 1 - eps, so that sqrt(var + eps) is exactly 1 in eval mode;
* runs the quantized graph itself as a reference (:func:`run_reference`): each op is
  computed in float on dequantized inputs and its output re-quantized with the output
  tensor's scale and zero point, as TFLite's integer kernels do up to rounding.

Preprocessing: the TFLite input is uint8 with scale 1/128 and zero point 128, i.e. RGB
mapped to [-1, 1], not ImageNet mean/std. The zoo's networks always receive ImageNet-
normalised input (what the datasets and the exported graph produce); an encoder built
with ``input_norm='inception'`` maps that back to [-1, 1] inside the network. Stride-2
convolutions were trained with TensorFlow's SAME padding: build with ``tf_padding=True``.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD
import numpy as np
import tflite
import torch
from torch import nn
import torch.nn.functional as F

OPCODE_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items()
                if not k.startswith('_') and isinstance(v, int)}
NUMPY_TYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT32: np.int32,
               tflite.TensorType.UINT8: np.uint8, tflite.TensorType.INT8: np.int8,
               tflite.TensorType.INT64: np.int64, tflite.TensorType.INT16: np.int16}
QUANT_RANGES = {np.uint8: (0, 255), np.int8: (-128, 127), np.int16: (-32768, 32767)}
CONV_OPS = ('CONV_2D', 'DEPTHWISE_CONV_2D')


class TFLiteImportError(ValueError):
    """The TFLite file cannot be read or does not fit the target network."""


@dataclass
class Tensor:
    """One TFLite tensor: name, shape, numpy dtype, quantization and constant data."""

    index: int
    name: str
    shape: tuple
    dtype: Any
    scale: np.ndarray
    zero_point: np.ndarray
    quantized_dimension: int = 0
    data: Optional[np.ndarray] = None


@dataclass
class Op:
    """One operator: its builtin name, tensor indices and decoded options."""

    name: str
    inputs: List[int]
    outputs: List[int]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """The first subgraph of a TFLite model, in execution order."""

    tensors: List[Tensor]
    ops: List[Op]
    inputs: List[int]
    outputs: List[int]


def _options(op, name: str) -> Dict[str, Any]:
    table = op.BuiltinOptions()
    classes = {'CONV_2D': tflite.Conv2DOptions, 'DEPTHWISE_CONV_2D': tflite.DepthwiseConv2DOptions,
               'AVERAGE_POOL_2D': tflite.Pool2DOptions, 'ADD': tflite.AddOptions,
               'SOFTMAX': tflite.SoftmaxOptions}
    if table is None or name not in classes:
        return {}
    opt = classes[name]()
    opt.Init(table.Bytes, table.Pos)
    out = {}
    for key in ('Padding', 'StrideH', 'StrideW', 'FusedActivationFunction', 'DepthMultiplier',
                'FilterHeight', 'FilterWidth', 'DilationHFactor', 'DilationWFactor', 'Beta'):
        if hasattr(opt, key):
            out[key] = getattr(opt, key)()
    return out


def read_tflite(path: str) -> Graph:
    """Parse a TFLite flatbuffer into tensors (with constant data) and ops."""
    try:
        with open(path, 'rb') as f:
            buf = f.read()
        model = tflite.Model.GetRootAsModel(buf, 0)
        sub = model.Subgraphs(0)
    except (OSError, IndexError, TypeError, AttributeError) as exc:
        raise TFLiteImportError(f'cannot read TFLite model {path}: {exc}') from exc
    if sub is None:
        raise TFLiteImportError(f'{path} has no subgraph')
    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        if t.Type() not in NUMPY_TYPES:
            raise TFLiteImportError(f'tensor {t.Name()!r} has unsupported type {t.Type()}')
        dtype = NUMPY_TYPES[t.Type()]
        q = t.Quantization()
        scale = np.atleast_1d(q.ScaleAsNumpy()).astype(np.float64) if q else np.zeros(0)
        zp = np.atleast_1d(q.ZeroPointAsNumpy()).astype(np.int64) if q else np.zeros(0)
        shape = tuple(int(v) for v in np.atleast_1d(t.ShapeAsNumpy()))
        raw = model.Buffers(t.Buffer()).DataAsNumpy()
        data = None
        if isinstance(raw, np.ndarray) and raw.size:
            data = raw.view(dtype).reshape(shape)
        tensors.append(Tensor(i, t.Name().decode(), shape, dtype,
                              scale if scale.size and scale.any() else np.zeros(0),
                              zp if scale.size and scale.any() else np.zeros(0),
                              q.QuantizedDimension() if q else 0, data))
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = OPCODE_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), 'UNKNOWN')
        ops.append(Op(name, [int(v) for v in op.InputsAsNumpy()],
                      [int(v) for v in op.OutputsAsNumpy()], _options(op, name)))
    return Graph(tensors, ops, [int(v) for v in sub.InputsAsNumpy()],
                 [int(v) for v in sub.OutputsAsNumpy()])


def dequantize(tensor: Tensor, values: Optional[np.ndarray] = None) -> np.ndarray:
    """Return scale * (q - zero_point) as float32 (per channel along quantized_dimension)."""
    q = tensor.data if values is None else values
    if q is None:
        raise TFLiteImportError(f'tensor {tensor.name!r} has no constant data')
    if not tensor.scale.size:
        return q.astype(np.float32)
    shape = [1] * q.ndim
    if tensor.scale.size > 1:
        shape[tensor.quantized_dimension] = tensor.scale.size
    scale = tensor.scale.reshape(shape)
    zp = tensor.zero_point.reshape(shape) if tensor.zero_point.size > 1 else tensor.zero_point
    return (scale * (q.astype(np.float64) - zp)).astype(np.float32)


def conv_weights(graph: Graph) -> List[Dict[str, Any]]:
    """Return every convolution's float weight (torch layout) and bias, in execution order."""
    out = []
    for op in graph.ops:
        if op.name not in CONV_OPS:
            continue
        w_t, b_t = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
        w = dequantize(w_t)
        if op.name == 'DEPTHWISE_CONV_2D':
            w = w.transpose(3, 0, 1, 2)     # (1, kh, kw, C) -> (C, 1, kh, kw)
        else:
            w = w.transpose(0, 3, 1, 2)     # (O, kh, kw, I) -> (O, I, kh, kw)
        out.append({'name': w_t.name, 'op': op.name, 'weight': np.ascontiguousarray(w),
                    'bias': dequantize(b_t)})
    return out


def _conv_bn_pairs(encoder: nn.Module) -> List[tuple]:
    """Pair each Conv2d of ``encoder.features`` with the BatchNorm2d registered after it."""
    pairs, pending = [], None
    for module in encoder.features.modules():
        if isinstance(module, nn.Conv2d):
            pending = module
        elif isinstance(module, nn.BatchNorm2d) and pending is not None:
            pairs.append((pending, module))
            pending = None
    return pairs


def load_mobilenetv2_tflite(encoder: nn.Module, path: str) -> Dict[str, Any]:
    """
    Load the TFLite ImageNet weights into a MobileNetV2Encoder (and its 1001-class head).

    Returns a small report (number of convolutions loaded, whether the classifier was).
    Raises TFLiteImportError when the layer count or any shape does not match, e.g. a
    ``width_mult`` other than the file's.
    """
    convs = conv_weights(read_tflite(path))
    pairs = _conv_bn_pairs(encoder)
    if len(convs) < len(pairs):
        raise TFLiteImportError(f'{path} has {len(convs)} convolutions, the encoder needs '
                                f'{len(pairs)}')
    with torch.no_grad():
        for (conv, bn), src in zip(pairs, convs):
            if tuple(conv.weight.shape) != src['weight'].shape:
                raise TFLiteImportError(
                    f'{src["name"]}: shape {src["weight"].shape} does not fit '
                    f'{tuple(conv.weight.shape)} (is width_mult the one the file has?)')
            conv.weight.copy_(torch.from_numpy(src['weight']))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(src['bias']))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        classifier = getattr(encoder, 'classifier', None)
        loaded_head = False
        if classifier is not None and len(convs) > len(pairs):
            head = convs[len(pairs)]
            linear = classifier[-1]
            weight = head['weight'].reshape(head['weight'].shape[0], -1)
            if tuple(linear.weight.shape) != weight.shape:
                raise TFLiteImportError(f'classifier {tuple(linear.weight.shape)} does not fit '
                                        f'{weight.shape} from {head["name"]}')
            linear.weight.copy_(torch.from_numpy(weight))
            linear.bias.copy_(torch.from_numpy(head['bias']))
            loaded_head = True
    return {'convolutions': len(pairs), 'classifier': loaded_head}


def tflite_input_to_imagenet(image: np.ndarray, scale: float = 1.0 / 128,
                             zero_point: int = 128) -> torch.Tensor:
    """
    Map a uint8 NHWC TFLite input to the ImageNet-normalised NCHW tensor the zoo expects.

    With ``input_norm='inception'`` the encoder turns this back into exactly the TFLite's
    dequantized input, scale * (q - zero_point), so logits can be compared like for like.
    """
    x = scale * (torch.from_numpy(image).permute(0, 3, 1, 2).double() - zero_point)
    x01 = (x + 1.0) / 2.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return ((x01 - mean) / std).float()


# -- reference interpreter ------------------------------------------------------------------
def _same_pads(size_h: int, size_w: int, kh: int, kw: int, sh: int, sw: int) -> List[int]:
    pads = []
    for size, k, s in ((size_w, kw, sw), (size_h, kh, sh)):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


def _activation(x: torch.Tensor, code: int) -> torch.Tensor:
    if code == tflite.ActivationFunctionType.RELU:
        return x.clamp(min=0)
    if code == tflite.ActivationFunctionType.RELU6:
        return x.clamp(0, 6)
    if code == tflite.ActivationFunctionType.RELU_N1_TO_1:
        return x.clamp(-1, 1)
    return x


def _requantize(x: torch.Tensor, tensor: Tensor) -> torch.Tensor:
    if not tensor.scale.size:
        return x
    lo, hi = QUANT_RANGES[tensor.dtype]
    scale, zp = float(tensor.scale[0]), float(tensor.zero_point[0])
    return (torch.round(x / scale + zp).clamp(lo, hi) - zp) * scale


def run_reference(graph: Graph, image: np.ndarray) -> Dict[int, np.ndarray]:
    """
    Run the graph on a uint8 NHWC input; return every tensor's dequantized value (NHWC).

    Ops supported: CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D, RESHAPE, SOFTMAX.
    Computation is float64 on dequantized values, each output re-quantized to its uint8
    grid, so results match TFLite's integer kernels to within rounding at each layer.
    """
    values: Dict[int, torch.Tensor] = {}
    src = graph.tensors[graph.inputs[0]]
    values[src.index] = torch.from_numpy(dequantize(src, image)).double()

    def get(index: int) -> torch.Tensor:
        if index not in values:
            values[index] = torch.from_numpy(dequantize(graph.tensors[index])).double()
        return values[index]

    for op in graph.ops:
        out_t = graph.tensors[op.outputs[0]]
        opt = op.options
        if op.name in CONV_OPS:
            x = get(op.inputs[0]).permute(0, 3, 1, 2)
            w = get(op.inputs[1])
            b = get(op.inputs[2])
            groups = 1
            if op.name == 'DEPTHWISE_CONV_2D':
                w = w.permute(3, 0, 1, 2)
                groups = x.shape[1]
            else:
                w = w.permute(0, 3, 1, 2)
            if opt['Padding'] == tflite.Padding.SAME:
                x = F.pad(x, _same_pads(x.shape[2], x.shape[3], w.shape[2], w.shape[3],
                                        opt['StrideH'], opt['StrideW']))
            y = F.conv2d(x, w, b, (opt['StrideH'], opt['StrideW']), groups=groups)
            y = _activation(y, opt['FusedActivationFunction']).permute(0, 2, 3, 1)
        elif op.name == 'ADD':
            y = _activation(get(op.inputs[0]) + get(op.inputs[1]),
                            opt['FusedActivationFunction'])
        elif op.name == 'AVERAGE_POOL_2D':
            if opt['Padding'] != tflite.Padding.VALID:
                raise TFLiteImportError('AVERAGE_POOL_2D with SAME padding is not supported')
            x = get(op.inputs[0]).permute(0, 3, 1, 2)
            y = F.avg_pool2d(x, (opt['FilterHeight'], opt['FilterWidth']),
                             (opt['StrideH'], opt['StrideW']))
            y = _activation(y, opt['FusedActivationFunction']).permute(0, 2, 3, 1)
        elif op.name == 'RESHAPE':
            y = get(op.inputs[0]).reshape(out_t.shape)
        elif op.name == 'SOFTMAX':
            y = torch.softmax(opt.get('Beta', 1.0) * get(op.inputs[0]), dim=-1)
        else:
            raise TFLiteImportError(f'op {op.name} is not supported by the reference')
        values[out_t.index] = _requantize(y, out_t)
    return {k: v.numpy() for k, v in values.items()}


def reference_logits(graph: Graph, image: np.ndarray) -> np.ndarray:
    """Return the dequantized logits (the input of the final SOFTMAX), shape (N, classes)."""
    values = run_reference(graph, image)
    softmax = [op for op in graph.ops if op.name == 'SOFTMAX']
    if not softmax:
        raise TFLiteImportError('graph has no SOFTMAX to read the logits from')
    return values[softmax[-1].inputs[0]]


# -- FastDepth (openmv's fast_depth_224.tflite) -------------------------------------------------
#: TFLite fused activations the FastDepth layers must carry: ReLU6 in the MobileNet encoder,
#: ReLU in the decoder (fast-depth models.py lines 61-75, imagenet/mobilenet.py 16-20)
_ACTIVATIONS = {nn.ReLU6: tflite.ActivationFunctionType.RELU6,
                nn.ReLU: tflite.ActivationFunctionType.RELU}


def _conv_bn_act(model: nn.Module) -> List[tuple]:
    """Return (name, Conv2d, BatchNorm2d, activation) of every conv, in registration order."""
    out, pending = [], None
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            pending = [name, module, None, None]
        elif isinstance(module, nn.BatchNorm2d) and pending is not None:
            pending[2] = module
        elif isinstance(module, tuple(_ACTIVATIONS)) and pending is not None:
            pending[3] = module
            out.append(tuple(pending))
            pending = None
    return out


def _producers(graph: Graph) -> Dict[int, Op]:
    return {t: op for op in graph.ops for t in op.outputs}


def _effective_padding(graph: Graph, op: Op, producers: Dict[int, Op]) -> tuple:
    """Return the (top, bottom, left, right) zero padding the conv op applies to its input."""
    kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
    pads = [0, 0, 0, 0]
    if op.options.get('Padding') == tflite.Padding.SAME:
        h, w = graph.tensors[op.inputs[0]].shape[1:3]
        left, right, top, bottom = _same_pads(h, w, kh, kw, op.options['StrideH'],
                                              op.options['StrideW'])
        pads = [top, bottom, left, right]
    src = producers.get(op.inputs[0])
    if src is not None and src.name == 'PAD':
        p = graph.tensors[src.inputs[1]].data
        pads = [pads[0] + int(p[1][0]), pads[1] + int(p[1][1]),
                pads[2] + int(p[2][0]), pads[3] + int(p[2][1])]
    return tuple(pads)


def load_fastdepth_tflite(model: nn.Module, path: str) -> Dict[str, Any]:
    """
    Load openmv's int8 FastDepth TFLite into :class:`training.networks.fastdepth.FastDepth`.

    Each CONV_2D / DEPTHWISE_CONV_2D, in execution order, fills the next Conv2d of the model
    in registration order (conv0 .. conv13, decode_conv1 .. decode_conv6); its weights are
    dequantized (per channel), batch norm is folded as for MobileNetV2 (identity plus the
    folded bias). Checked, with the TFLite tensor named in the error: the number of
    convolutions, each weight's shape, stride, zero padding (the PAD op before it) and fused
    activation; the skip additions (which encoder output each ADD takes) and the up-samplings;
    and that every constant tensor of the file was used. Returns a small report.
    """
    layout = model.SKIPS  # {decoder stage: encoder block}; read from the model, not imported
    graph = read_tflite(path)
    producers = _producers(graph)
    conv_ops = [op for op in graph.ops if op.name in CONV_OPS]
    layers = _conv_bn_act(model)
    if len(conv_ops) != len(layers):
        raise TFLiteImportError(f'{path} has {len(conv_ops)} convolutions, the model '
                                f'{len(layers)}: not this FastDepth')
    used = set()
    plan = []
    for op, (name, conv, bn, act) in zip(conv_ops, layers):
        w_t, b_t = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
        w = dequantize(w_t)
        w = w.transpose(3, 0, 1, 2) if op.name == 'DEPTHWISE_CONV_2D' else \
            w.transpose(0, 3, 1, 2)
        if tuple(conv.weight.shape) != w.shape:
            raise TFLiteImportError(f'{w_t.name}: shape {w.shape} does not fit {name} '
                                    f'{tuple(conv.weight.shape)} (other channel widths?)')
        depthwise = op.name == 'DEPTHWISE_CONV_2D'
        if depthwise != (conv.groups > 1):
            raise TFLiteImportError(f'{w_t.name}: a {op.name} for {name} (groups '
                                    f'{conv.groups})')
        stride = (op.options['StrideH'], op.options['StrideW'])
        if stride != tuple(conv.stride):
            raise TFLiteImportError(f'{w_t.name}: stride {stride} but {name} has '
                                    f'{tuple(conv.stride)}')
        ph, pw = conv.padding
        pads = _effective_padding(graph, op, producers)
        if pads != (ph, ph, pw, pw):
            raise TFLiteImportError(f'{w_t.name}: padding {pads} (top, bottom, left, right) '
                                    f'but {name} pads {ph}, {pw}')
        code = op.options['FusedActivationFunction']
        if code != _ACTIVATIONS[type(act)]:
            raise TFLiteImportError(f'{w_t.name}: fused activation {code} but {name} is '
                                    f'followed by {type(act).__name__}')
        bias = dequantize(b_t)
        if bias.shape != (conv.out_channels,):
            raise TFLiteImportError(f'{b_t.name}: bias shape {bias.shape} does not fit {name}')
        plan.append((conv, bn, w, bias))
        used.update((op.inputs[1], op.inputs[2]))
    # The skips: each ADD sums an up-sampled decoder output and an encoder block's output.
    conv_of_output = {op.outputs[0]: i for i, op in enumerate(conv_ops)}
    names = [layer[0] for layer in layers]
    skips = set()
    for op in graph.ops:
        if op.name == 'ADD':
            for t in op.inputs:
                if t in conv_of_output:
                    skips.add(names[conv_of_output[t]].split('.')[0])
        elif op.name == 'PAD':
            used.add(op.inputs[1])
        elif op.name == 'RESIZE_NEAREST_NEIGHBOR':
            src, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
            if tuple(out.shape[1:3]) != (2 * src.shape[1], 2 * src.shape[2]):
                raise TFLiteImportError(f'{out.name}: up-sampling {src.shape} -> {out.shape} '
                                        'is not 2x')
            used.add(op.inputs[1])
        elif op.name not in CONV_OPS + ('QUANTIZE', 'DEQUANTIZE'):
            raise TFLiteImportError(f'{path}: op {op.name} has no place in FastDepth')
    expected = {f'conv{block}' for block in layout.values()}
    if skips != expected:
        raise TFLiteImportError(f'{path}: skips from {sorted(skips)}, FastDepth adds '
                                f'{sorted(expected)}')
    unused = [t.name for t in graph.tensors if t.data is not None and t.index not in used]
    if unused:
        raise TFLiteImportError(f'{path}: constant tensors not mapped: {", ".join(unused)}')
    with torch.no_grad():
        for conv, bn, w, bias in plan:
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
    src = graph.tensors[graph.inputs[0]]
    out = graph.tensors[graph.outputs[0]]
    return {'convolutions': len(plan), 'skips': sorted(skips),
            'input_scale': float(src.scale[0]) if src.scale.size else 1.0,
            'output_scale': float(out.scale[0]) if out.scale.size else 1.0,
            'output_zero_point': int(out.zero_point[0]) if out.zero_point.size else 0}
