"""
import_model: stamp this package's metadata onto a depth ONNX exported elsewhere.

    ros2 run mono_depth_ros import_model IN.onnx --output OUT.onnx [--preset NAME] ...

What the graph can tell (tensor names, shapes, dtypes, a dynamic height and width) is read
from it; what it cannot (what the output means) must be given, by a flag or a preset, and
is never guessed. IN is only read. OUT is written atomically and only after it has run once
in ONNX Runtime on a synthetic image; the metadata and the input/output names and shapes
are printed.

An output laid out (1, H, W, 1) gets one Transpose appended, so that OUT outputs
(1, 1, H, W) as every backend reads it; nothing else in the graph changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mono_depth_ros.core.atomic import atomic_path
from mono_depth_ros.core.model_meta import (IMAGENET_MEAN, IMAGENET_STD, INPUT_DTYPES,
                                            INPUT_LAYOUTS, ModelMeta, ModelMetaError,
                                            OUTPUT_MODES, RESIZE_MODES,
                                            SCALE_UNKNOWNS, SIZE_POLICIES)
import numpy as np

# Published conventions of known model families, each fact cited from the upstream code
# that runs the model (repository, file:line at the commit named); explicit flags override
# every one of them. Keys: arch, input_size (HxW: the area or bound of a dynamic graph),
# size_multiple, size_policy, mean/std (None: nothing outside the graph), resize_mode,
# output_mode, output_scale, quantized_output ({dtype: (scale, shift)} of the one file a
# preset knows), output_channel, min_depth, max_depth, train_focal (at the network input).
PRESETS: Dict[str, Dict[str, Any]] = {
    # Depth Anything V2 (Apache-2.0 for Small), DepthAnything/Depth-Anything-V2 at a561b84:
    # depth_anything_v2/dpt.py:196-209 image2tensor(): Resize(width=height=input_size=518,
    # keep_aspect_ratio=True, ensure_multiple_of=14, resize_method='lower_bound') -- the
    # *short* side at least 518 (util/transform.py:62-107; 640x480 runs at 686x518),
    # NormalizeImage(ImageNet mean/std) on RGB / 255 (dpt.py:207, 213), NCHW
    # (PrepareForNet); dpt.py:176-184 forward() returns relu(head).squeeze(1), (B, H, W):
    # the affine-invariant inverse depth ("disparity") it is trained on, no metres.
    'depth_anything_v2': dict(
        arch='depth_anything_v2', input_size=(518, 518), size_multiple=14,
        size_policy='lower_bound', mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode='relative_inverse_depth', min_depth=0.1, max_depth=20.0),
    # Depth Anything V2 metric, same repository: metric_depth/depth_anything_v2/dpt.py:
    # 198-209 the same Resize (lower_bound, 518, multiple 14) and normalisation;
    # dpt.py:183 forward() returns depth_head(...) * max_depth (the head ends in a sigmoid,
    # dpt.py:113), metres, (B, H, W). metric_depth/README.md:47 max_depth 20 for the
    # indoor (Hypersim) models, 80 for the outdoor (Virtual KITTI 2) ones: give
    # --max-depth 80 for those.
    'depth_anything_v2_metric': dict(
        arch='depth_anything_v2_metric', input_size=(518, 518), size_multiple=14,
        size_policy='lower_bound', mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode='metric', min_depth=0.1, max_depth=20.0),
    # Depth Anything 3 metric (DA3METRIC-LARGE), ByteDance-Seed/Depth-Anything-3 at 2c21ea8:
    # README.md:235 metric_depth = focal * net_output / 300, focal the mean of fx and fy
    # in pixels; src/depth_anything_3/utils/alignment.py:118-133 apply_metric_scaling()
    # does exactly that with the intrinsics of the processed (network input) image. So it
    # is a metric model trained at focal 300 at its input: train_focal 300 with focal
    # rescaling gives metres = output * sqrt(fx * fy) / 300 (the geometric mean, equal
    # for square pixels). Input: utils/io/input_processor.py:316-334 upper_bound_resize,
    # the long side 504 (api.py:145 process_res=504), 365-376 each side to the nearest
    # multiple of 14 (PATCH_SIZE, :57), ImageNet normalisation of RGB / 255 (:56, 309-311).
    # Upstream's model takes (B, N, 3, H, W) views: an ONNX of it must take (1, 3, H, W).
    'depth_anything_3_metric': dict(
        arch='depth_anything_3_metric', input_size=(504, 504), size_multiple=14,
        size_policy='upper_bound', mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode='metric', train_focal=(300.0, 300.0), min_depth=0.1, max_depth=80.0),
    # Metric3D (v1 ConvNeXt, v2 ViT), YvanYin/Metric3D at eb5b6fa: its ONNX export
    # onnx/metric3d_onnx_export.py:16-30 normalises inside the graph with mean
    # (123.675, 116.28, 103.53) and std (58.395, 57.12, 57.375) on RGB 0..255 (so it is fed
    # RGB * 255: mean 0 and std 1/255 here), fixed input 616x1064 (ViT, :96) or 544x1216
    # (ConvNeXt, :98), output pred_depth (:111). onnx/test_onnx.py:8-40 and
    # hubconf.py:157-172 resize keeping the aspect to fit, then pad (resize_mode pad);
    # hubconf.py:196-199 the output is depth for a canonical camera of focal 1000 at the
    # network input: metres = output * fx / 1000, clamped to 300 m. (Upstream pads with the
    # mean colour, this pipeline with black for this normalisation: the margins differ.)
    'metric3d': dict(
        arch='metric3d', mean=(0.0, 0.0, 0.0), std=(1 / 255.0,) * 3, resize_mode='pad',
        output_mode='metric', train_focal=(1000.0, 1000.0), min_depth=0.1, max_depth=300.0),
    # MiDaS v2.1 small (MIT), isl-org/MiDaS at 4545977: its ONNX (model-small.onnx) is run by
    # tf/run_onnx.py:47-55, 60, 76-80: Resize(256, 256, keep_aspect_ratio=False, multiple
    # 32) -- stretched -- and PrepareForNet, with *no* NormalizeImage: the pixels go in as
    # RGB / 255 (tf/utils.py:55), because the exporter wraps the net in
    # MidasNet_preprocessing, which normalises with ImageNet mean/std inside the graph
    # (tf/make_onnx_model.py:44-61). So nothing is normalised outside (mean/std None):
    # normalising outside too would do it twice. The output is relative inverse depth
    # (tf/README.md:84 "the resulting inverse depth maps").
    'midas_small': dict(
        arch='midas_v21_small_256', input_size=(256, 256), size_multiple=32, mean=None,
        std=None, resize_mode='stretch', output_mode='relative_inverse_depth',
        min_depth=0.1, max_depth=20.0),
    # FastDepth (MIT), dwofk/fast-depth at e684920: dataloaders/nyu.py:11 output_size
    # (224, 224); :48-56 val_transform Resize(250 / 480), CenterCrop((228, 304)),
    # Resize((224, 224)), RGB / 255 with no mean/std (the normalisation at
    # dataloaders/dataloader.py:98-99 is commented out); NYU Depth V2, metres (max 10 m).
    # The training focal at the 224 x 224 input follows from the Kinect's (fx 518.86,
    # fy 519.47 at 640 x 480) through those steps: fx = 518.86 * 333/640 * 224/304 (the
    # 250-row resize gives 333 columns), fy = 519.47 * 250/480 * 224/228: resize_mode crop
    # of a 304:228 region (fit_aspect), 228 of its 250 rows kept (crop_fraction), squeezed
    # to 224 x 224. A float graph outputs metres (scale 1). openmv's int8
    # TFLite (openmv/openmv lib/models/fast_depth_224.tflite at 49a017e, read with the
    # tflite package) has a uint8 NHWC input of scale 1/255, zero point 0 (the pixels as
    # they are) and a uint8 output of scale 0.07169981, zero point 0: its ONNX conversion
    # outputs those codes, metres = 0.07169981 * code. Another quantization (int8, another
    # file) is not known here: import_model then asks for --output-scale/--output-shift.
    'fastdepth': dict(
        arch='fastdepth', input_size=(224, 224), mean=None, std=None, resize_mode='crop',
        fit_aspect=304 / 228, crop_fraction=228 / 250, output_mode='metric',
        quantized_output={'uint8': (0.07169981, 0.0)}, min_depth=0.1, max_depth=10.0,
        train_focal=(518.8579 * 333 / 640 * 224 / 304, 519.4696 * 250 / 480 * 224 / 228)),
    # UniDepth V2, lpiccinelli-eth/UniDepth at 8d8cfe4: unidepth/models/unidepthv2/
    # export.py:27-45 UniDepthV2ONNX takes one input rgbs (fixed size, 462x630 by default,
    # :80, :124) and outputs pts_3d = rays * radius, (B, 3, H, W) in metres with the
    # camera it estimates itself (no focal rescaling); the z channel (2) is metric depth.
    # unidepthv2.py:289-296 infer() normalises RGB / 255 with ImageNet mean/std outside the
    # network and pads with 0 after normalisation (the mean colour, as resize_mode pad
    # here). The UniDepthV2ONNXcam variant (export.py:48-76) takes a second input (rays):
    # not supported.
    'unidepth_v2': dict(
        arch='unidepth_v2', mean=IMAGENET_MEAN, std=IMAGENET_STD, resize_mode='pad',
        output_mode='metric', output_channel=2, min_depth=0.1, max_depth=80.0),
    # MoGe-2, microsoft/MoGe at 0744441: docs/onnx.md "Static Shape & Fixed Number of
    # Tokens" exports one input image (1, 3, 518, 518), RGB in [0, 1], normalised inside
    # (moge/model/modules.py:96-97, 122); output points (B, H, W, 3) (moge/model/v2.py:
    # 173-175). Its z is depth up to an unknown shift and scale: infer() recovers the shift
    # by an optimisation that is not in the ONNX (v2.py:258-267, docs/onnx.md "Important
    # Note") and multiplies by metric_scale (v2.py:281). So the z channel is read as
    # relative depth (scale and shift unknown): a scale source gives metres.
    'moge_2': dict(
        arch='moge_2', mean=None, std=None, resize_mode='stretch',
        output_mode='relative_depth', output_channel=2, min_depth=0.1, max_depth=80.0),
}

_ONNX_DTYPES = {1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 6: 'int32', 10: 'float16',
                11: 'float64'}
_ONNX_ELEM = {name: code for code, name in _ONNX_DTYPES.items()}
_FLOAT_OUTPUTS = ('float32', 'float16', 'float64')
#: quantized outputs: codes that the metadata's output scale and shift dequantize
INTEGER_OUTPUTS = ('uint8', 'int8', 'uint16', 'int32')
#: the check run refuses a metric model when more than this share of the depth it would
#: publish lies outside [min_depth, max_depth] (the node would publish mostly no depth)
MAX_OUT_OF_RANGE = 0.5


class ImportModelError(RuntimeError):
    """The input model or the flags cannot give a model the node can run; says why."""


@dataclasses.dataclass
class TensorInfo:
    """A graph input or output: name, shape (int, or str for a symbolic dim), dtype."""

    name: str
    shape: Tuple[Any, ...]
    dtype: str

    def describe(self) -> str:
        """Return e.g. ``image [1, 3, 'h', 'w'] float32``."""
        return f'{self.name} {list(self.shape)} {self.dtype}'


def _tensor_info(value) -> TensorInfo:
    kind = value.type.tensor_type
    dims = []
    for dim in kind.shape.dim:
        if dim.HasField('dim_value') and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or '?')
    dtype = _ONNX_DTYPES.get(kind.elem_type, f'onnx type {kind.elem_type}')
    return TensorInfo(value.name, tuple(dims), dtype)


def load_graph(path: str):
    """Load and check an ONNX model; raise ImportModelError with the reason."""
    import onnx
    if not os.path.isfile(path):
        raise ImportModelError(f'{path}: no such file')
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise several types
        raise ImportModelError(f'{path} is not a valid ONNX model: {exc}') from exc
    return model


def graph_io(model) -> Tuple[List[TensorInfo], List[TensorInfo]]:
    """Return the real inputs (initializers excluded) and the outputs of a graph."""
    weights = {init.name for init in model.graph.initializer}
    inputs = [_tensor_info(v) for v in model.graph.input if v.name not in weights]
    outputs = [_tensor_info(v) for v in model.graph.output]
    return inputs, outputs


def _pick(kind: str, specs: List[TensorInfo], name: Optional[str]) -> TensorInfo:
    if name:
        for spec in specs:
            if spec.name == name:
                return spec
        raise ImportModelError(f'the graph has no {kind} {name!r}; its {kind}s are: '
                               + ', '.join(s.describe() for s in specs))
    if len(specs) != 1:
        raise ImportModelError(f'the graph has {len(specs)} {kind}s ('
                               + ', '.join(s.describe() for s in specs)
                               + f'); name the depth one with --{kind}-name')
    return specs[0]


def _layout(spec: TensorInfo, wanted: Optional[str]) -> str:
    shape = spec.shape
    if len(shape) != 4:
        raise ImportModelError(f'input {spec.describe()} is not a 4-D image tensor')
    nchw, nhwc = shape[1] == 3, shape[3] == 3
    if wanted:
        if (wanted == 'NCHW' and not nchw and nhwc) or (wanted == 'NHWC' and not nhwc and nchw):
            raise ImportModelError(f'--layout {wanted} contradicts input {spec.describe()}')
        if (wanted == 'NCHW' and isinstance(shape[1], int) and shape[1] != 3) or \
                (wanted == 'NHWC' and isinstance(shape[3], int) and shape[3] != 3):
            raise ImportModelError(f'input {spec.describe()} has no 3 channels on the '
                                   f'{wanted} channel axis')
        return wanted
    if nchw and not nhwc:
        return 'NCHW'
    if nhwc and not nchw:
        return 'NHWC'
    raise ImportModelError(f'cannot tell the layout of input {spec.describe()}: give --layout')


def _output_layout(spec: TensorInfo, channel: Optional[int] = None) -> str:
    """
    Return 'nchw' for (1,1,H,W) / (1,H,W) / (H,W), 'nhwc' for (1,H,W,1); else raise.

    With ``channel`` (a point map's z: UniDepth (1, 3, H, W), MoGe (1, H, W, 3)) the
    output has up to 4 channels on axis 1 ('nchw') or 3 ('nhwc'), of which one is read.
    """
    s = spec.shape
    if channel is not None:
        if channel < 0:
            raise ImportModelError(f'--output-channel must be >= 0, got {channel}')
        if spec.dtype not in _FLOAT_OUTPUTS + INTEGER_OUTPUTS:
            raise ImportModelError(f'output {spec.describe()} is not a numeric tensor')
        fits = [axis for axis in (1, 3) if len(s) == 4 and isinstance(s[axis], int)
                and channel < s[axis] <= 4]
        if len(fits) != 1:
            raise ImportModelError(f'--output-channel {channel}: output {spec.describe()} is '
                                   'not one (1, C, H, W) or (1, H, W, C) map of 2 to 4 '
                                   'channels')
        return 'nchw' if fits[0] == 1 else 'nhwc'
    if spec.dtype not in _FLOAT_OUTPUTS + INTEGER_OUTPUTS:
        raise ImportModelError(f'output {spec.describe()} is neither a float nor a quantized '
                               f'({", ".join(INTEGER_OUTPUTS)}) tensor')

    def symbolic(d):
        return not isinstance(d, int) or d <= 0

    def one(d):
        # A symbolic dim may be 1, as the node's bind_io takes a dynamic one: the check run
        # below confirms that the output really is one map.
        return d == 1 or symbolic(d)

    if len(s) == 2:
        return 'nchw'
    if len(s) == 3 and one(s[0]):
        return 'nchw'
    if len(s) == 4 and one(s[0]) and s[1] == 1:
        return 'nchw'
    if len(s) == 4 and one(s[0]) and s[3] == 1 and s[1] != 1:
        return 'nhwc'
    if len(s) == 4 and one(s[0]) and symbolic(s[1]):
        # All-symbolic (N, C, H, W), as torch's dynamo export names every dim of the bundled
        # model's output: read as (1, 1, H, W), what the node runs it as.
        return 'nchw'
    raise ImportModelError(f'output {spec.describe()} is not one depth map: expected (1, 1, H, '
                           'W), (1, H, W), (1, H, W, 1) or (H, W); pick another with '
                           '--output-name')


def _parse_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError as exc:
        raise ImportModelError(f'--input-size must be HxW (e.g. 518x518), got {text!r}') from exc
    if h <= 0 or w <= 0:
        raise ImportModelError(f'--input-size must be positive, got {text!r}')
    return h, w


def _output_mapping(y: TensorInfo, args: argparse.Namespace,
                    preset: Dict[str, Any]) -> Tuple[float, float]:
    """
    Return (output_scale, output_shift): the flags', else the preset's for this output dtype.

    A quantized output's codes mean nothing without the original model's quantization
    (real = scale * (code - zero_point)): a preset gives it only for the file it describes
    (``quantized_output`` per dtype); otherwise the flags are required.
    """
    scale, shift = args.output_scale, args.output_shift
    if y.dtype in INTEGER_OUTPUTS:
        known = preset.get('quantized_output', {})
        if y.dtype in known:
            q_scale, q_shift = known[y.dtype]
            return (float(scale if scale is not None else q_scale),
                    float(shift if shift is not None else q_shift))
        if scale is None:
            which = (f'; the {args.preset} preset knows the scale of '
                     + (', '.join(f'a {k} output' for k in sorted(known)) or 'float outputs only')
                     if args.preset else '')
            raise ImportModelError(
                f'output {y.describe()} is quantized: its codes need the quantization of the '
                'original model. Give --output-scale S and --output-shift T with real = S * '
                '(code - zero_point), i.e. T = -S * zero_point (the quantization of the '
                f'output tensor in the TFLite file, or in the converter log){which}')
    return (float(scale if scale is not None else preset.get('output_scale', 1.0)),
            float(shift if shift is not None else preset.get('output_shift', 0.0)))


def _size_policy(x: TensorInfo, dynamic: bool, args: argparse.Namespace,
                 preset: Dict[str, Any]) -> str:
    """Return the size policy: 'fixed' for a fixed graph, else the flag's or the preset's."""
    policy = args.size_policy
    if not dynamic:
        if policy not in (None, 'fixed'):
            raise ImportModelError(f'--size-policy {policy} needs a dynamic input; '
                                   f'{x.describe()} is fixed')
        return 'fixed'
    policy = policy or preset.get('size_policy', 'area')
    if policy == 'fixed':
        raise ImportModelError(f'--size-policy fixed contradicts the dynamic input '
                               f'{x.describe()}: pick area, lower_bound or upper_bound')
    return policy


def build_meta(model, args: argparse.Namespace
               ) -> Tuple[ModelMeta, TensorInfo, TensorInfo, bool]:
    """
    Return (metadata, input, output, needs_transpose) from the graph, preset and flags.

    Raises ImportModelError naming the first fact that is missing or contradicts the graph.
    """
    preset: Dict[str, Any] = {}
    if args.preset:
        if args.preset not in PRESETS:
            raise ImportModelError(f'unknown preset {args.preset!r}; known: '
                                   + ', '.join(sorted(PRESETS)))
        preset = dict(PRESETS[args.preset])

    def choose(flag, key, default=None):
        return flag if flag is not None else preset.get(key, default)

    inputs, outputs = graph_io(model)
    x = _pick('input', inputs, args.input_name)
    if len(inputs) != 1:
        raise ImportModelError('a depth model takes one image input; the graph has '
                               + ', '.join(s.describe() for s in inputs))
    y = _pick('output', outputs, args.output_name)
    layout = _layout(x, args.layout or None)
    if x.dtype not in INPUT_DTYPES:
        raise ImportModelError(f'input {x.describe()}: only uint8 or float32 inputs run')
    dtype = args.dtype or x.dtype
    if dtype != x.dtype:
        raise ImportModelError(f'--dtype {dtype} contradicts input {x.describe()}')
    h_axis, w_axis = (2, 3) if layout == 'NCHW' else (1, 2)
    graph_h, graph_w = x.shape[h_axis], x.shape[w_axis]
    dynamic = not (isinstance(graph_h, int) and isinstance(graph_w, int))
    size = _parse_size(args.input_size)
    multiple = args.size_multiple
    if dynamic:
        size = size or preset.get('input_size')
        multiple = multiple if multiple is not None else preset.get('size_multiple')
        if size is None or not multiple:
            raise ImportModelError(
                f'input {x.describe()} has a dynamic size: give --input-size HxW (the pixel '
                'area to run at) and --size-multiple N (what each side must be a multiple '
                'of, e.g. 14 for ViT-patch models, 32 for most CNNs), or a --preset')
    else:
        if size is not None and size != (graph_h, graph_w):
            raise ImportModelError(f'--input-size {size[0]}x{size[1]} contradicts input '
                                   f'{x.describe()}')
        if args.size_multiple:
            raise ImportModelError(f'--size-multiple needs a dynamic input; {x.describe()} '
                                   'is fixed')
        size, multiple = (graph_h, graph_w), 0
    mean = args.mean if args.mean is not None else preset.get('mean')
    std = args.std if args.std is not None else preset.get('std')
    if (mean is None) != (std is None):
        raise ImportModelError('give --mean and --std together (or neither: the graph '
                               'normalises itself)')
    if mean is not None and dtype == 'uint8':
        raise ImportModelError('--mean/--std need a float32 input; a uint8 input takes the '
                               '0..255 pixels as they are')
    mode = choose(args.output_mode, 'output_mode')
    if mode is None:
        raise ImportModelError(
            'the graph cannot tell what its output means: give --output-mode (' +
            '|'.join(OUTPUT_MODES) + '), or a --preset. Relative (affine-invariant) models '
            'such as Depth Anything and MiDaS are relative_inverse_depth')
    channel = args.output_channel if getattr(args, 'output_channel', None) is not None \
        else preset.get('output_channel')
    needs_transpose = _output_layout(y, channel) == 'nhwc'
    read = y.name + (f'_c{channel}' if channel is not None else '') + \
        ('_nchw' if needs_transpose else '')
    out_scale, out_shift = _output_mapping(y, args, preset)
    policy = _size_policy(x, dynamic, args, preset)
    focal = args.train_focal if args.train_focal is not None else preset.get('train_focal')
    if focal is not None:
        if len(focal) not in (1, 2):
            raise ImportModelError('--train-focal takes FX or FX FY')
        focal = (float(focal[0]), float(focal[-1]))
    kwargs = dict(
        arch=preset.get('arch', 'imported'), input_height=int(size[0]),
        input_width=int(size[1]), input_name=x.name,
        output_name=read,
        input_dtype=dtype, input_layout=layout, normalize_in_graph=mean is None,
        mean=tuple(mean) if mean is not None else IMAGENET_MEAN,
        std=tuple(std) if std is not None else IMAGENET_STD,
        output_mode=mode, output_scale=out_scale, output_shift=out_shift,
        min_depth=float(choose(args.min_depth, 'min_depth', 0.1)),
        max_depth=float(choose(args.max_depth, 'max_depth', 10.0)),
        train_fx=focal[0] if focal else None, train_fy=focal[1] if focal else None,
        focal_rescale=focal is not None and mode in ('metric', 'inverse_depth', 'disparity'),
        dynamic_shape=dynamic, size_multiple=int(multiple or 0), size_policy=policy,
        resize_mode=choose(args.resize_mode, 'resize_mode', 'stretch'),
        fit_aspect=float(choose(getattr(args, 'fit_aspect', None), 'fit_aspect', 0.0)),
        crop_fraction=float(choose(getattr(args, 'crop_fraction', None), 'crop_fraction', 1.0)),
        scale_unknown=choose(args.scale_unknown, 'scale_unknown', ''),
        description=f'imported from {os.path.basename(args.input)} by import_model'
                    + (f' (preset {args.preset})' if args.preset else ''))
    try:
        meta = ModelMeta(**kwargs)
        # The file says what a scale source must fit, not '' (implied by the mode).
        meta = dataclasses.replace(meta, scale_unknown=meta.unknown)
    except ModelMetaError as exc:
        raise ImportModelError(str(exc)) from exc
    return meta, x, y, (channel, needs_transpose)


def stamp(model, meta: ModelMeta, output: TensorInfo, edit: Tuple[Optional[int], bool]):
    """
    Return a copy of the model with the metadata and the output edit applied.

    ``edit`` = (channel, transpose): a Slice keeping one channel (a point map's z), then a
    Transpose of an NHWC map to NCHW; the metadata's output_name is the last one's output.
    """
    channel, needs_transpose = edit if isinstance(edit, tuple) else (None, bool(edit))
    import onnx
    from onnx import helper
    out = onnx.ModelProto()
    out.CopyFrom(model)
    meta.stamp_onnx(out)
    s, elem = list(output.shape), _ONNX_ELEM[output.dtype]
    src = output.name
    if channel is not None:
        axis = 3 if needs_transpose else 1
        sliced = meta.output_name if not needs_transpose else f'{output.name}_c{channel}'
        for suffix, value in (('starts', channel), ('ends', channel + 1), ('axes', axis)):
            out.graph.initializer.append(helper.make_tensor(
                f'import_model_channel_{suffix}', 7, [1], [value]))
        out.graph.node.append(helper.make_node(
            'Slice', [src] + [f'import_model_channel_{k}' for k in ('starts', 'ends', 'axes')],
            [sliced], name='import_model_output_channel'))
        s[axis] = 1
        src = sliced
        if not needs_transpose:
            out.graph.output.append(helper.make_tensor_value_info(sliced, elem, s))
    if needs_transpose:
        name = meta.output_name
        out.graph.node.append(helper.make_node('Transpose', [src], [name],
                                               perm=[0, 3, 1, 2],
                                               name='import_model_output_nchw'))
        out.graph.output.append(helper.make_tensor_value_info(
            name, elem, [s[0], 1, s[1], s[2]]))
    onnx.checker.check_model(out)
    return out


def synthetic_tensor(meta: ModelMeta) -> np.ndarray:
    """Return a smooth synthetic RGB image as the model's input tensor (batch 1)."""
    h, w = meta.input_height, meta.input_width
    if meta.size_multiple:
        h = max(meta.size_multiple, round(h / meta.size_multiple) * meta.size_multiple)
        w = max(meta.size_multiple, round(w / meta.size_multiple) * meta.size_multiple)
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([u / max(w - 1, 1), v / max(h - 1, 1),
                    0.5 + 0.5 * np.sin(u / 7.0) * np.cos(v / 5.0)], axis=-1)
    if meta.input_dtype == 'uint8':
        x = np.round(rgb * 255).astype(np.uint8)
    elif meta.normalize_in_graph:
        x = rgb.astype(np.float32)
    else:
        x = ((rgb - np.asarray(meta.mean, np.float32)) / np.asarray(meta.std, np.float32))
        x = x.astype(np.float32)
    if meta.input_layout == 'NCHW':
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def check_run(path: str, meta: ModelMeta) -> np.ndarray:
    """Run the stamped model once through this package's ONNX Runtime backend."""
    from mono_depth_ros.inference.base import BackendError
    from mono_depth_ros.inference.onnxruntime_backend import OnnxRuntimeBackend
    try:
        backend = OnnxRuntimeBackend(path, threads=1)
        raw = backend.infer(synthetic_tensor(meta))
    except BackendError as exc:
        raise ImportModelError(f'the stamped model does not run: {exc}') from exc
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises several types
        raise ImportModelError(f'the stamped model fails in ONNX Runtime: {exc}') from exc
    if raw.ndim != 2 or not np.isfinite(raw).all():
        raise ImportModelError(f'the model gave a {raw.shape} output with '
                               f'{int(np.count_nonzero(~np.isfinite(raw)))} NaN/Inf values on '
                               'a synthetic image')
    return raw


def check_range(raw: np.ndarray, meta: ModelMeta, output: TensorInfo) -> Optional[str]:
    """
    Return why a metric model's check run would publish mostly no depth, else None.

    The raw output is mapped as the pipeline maps it (output mode, scale, shift); when more
    than MAX_OUT_OF_RANGE of it falls outside [min_depth, max_depth] the reason gives the
    numbers and the likely fix: a quantized output read without its scale, a scale that
    is off by a factor, or an output mode that does not fit (inverse depth read as depth).
    """
    if not meta.is_metric:
        return None
    from mono_depth_ros.core.frame import FrameProcessor
    native = FrameProcessor(meta, None).native(np.asarray(raw, np.float32))
    with np.errstate(divide='ignore', invalid='ignore'):
        depth = np.float32(1.0) / native if meta.inverse else native
    valid = np.isfinite(depth) & (depth > 0)
    inside = valid & (depth >= meta.min_depth) & (depth <= meta.max_depth)
    outside = 1.0 - float(np.count_nonzero(inside)) / depth.size
    if outside <= MAX_OUT_OF_RANGE:
        return None
    lo, hi = float(raw.min()), float(raw.max())
    shown = (f'{float(np.nanmin(depth[valid])):.4g}..{float(np.nanmax(depth[valid])):.4g} m'
             if valid.any() else 'no positive depth')
    fixes = []
    if output.dtype in INTEGER_OUTPUTS and meta.output_scale == 1.0:
        fixes.append(f'the output is {output.dtype} quantized codes read with output scale '
                     '1.0: give --output-scale (and --output-shift) from the output '
                     'quantization, real = scale * (code - zero_point)')
    if valid.any():
        median = float(np.median(depth[valid]))
        target = math.sqrt(meta.min_depth * meta.max_depth)
        if meta.output_mode == 'metric' and median > 0:
            fixes.append(f'a missing or wrong --output-scale (now {meta.output_scale:g}; about '
                         f'{meta.output_scale * target / median:.3g} would centre the check '
                         f'image at {target:.3g} m)')
    fixes.append('the wrong --output-mode (inverse_depth or disparity when larger means '
                 'nearer; relative_depth or relative_inverse_depth for an affine-invariant '
                 'model)')
    fixes.append('a --min-depth/--max-depth that does not fit the model')
    return (f'the check run would publish no depth for {100 * outside:.0f} % of the image '
            f'(Inf or NaN, REP 117): raw output '
            f'{lo:.4g}..{hi:.4g} as {meta.output_mode} with output scale '
            f'{meta.output_scale:g} and shift {meta.output_shift:g} gives {shown}, outside '
            f'[{meta.min_depth:g}, {meta.max_depth:g}] m for more than '
            f'{100 * MAX_OUT_OF_RANGE:.0f} % of the image. Likely: ' + '; or '.join(fixes)
            + '. (--no-range-check writes it anyway.)')


def import_model(args: argparse.Namespace, out=sys.stdout) -> ModelMeta:
    """Do the whole job; raise ImportModelError with the reason when it cannot."""
    src, dst = os.path.abspath(args.input), os.path.abspath(args.output)
    if src == dst or (os.path.exists(dst) and os.path.samefile(src, dst)):
        raise ImportModelError('--output must differ from IN: import_model never changes IN')
    model = load_graph(args.input)
    meta, x, y, edit = build_meta(model, args)
    stamped = stamp(model, meta, y, edit)
    data = stamped.SerializeToString()
    with atomic_path(dst) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data)
        raw = check_run(tmp, meta)
        problem = None if getattr(args, 'no_range_check', False) else \
            check_range(raw, meta, y)
        if problem:
            raise ImportModelError(problem)
    inputs, outputs = graph_io(stamped)
    print(f'wrote {args.output}', file=out)
    print('inputs:  ' + '; '.join(s.describe() for s in inputs), file=out)
    print('outputs: ' + '; '.join(s.describe() for s in outputs)
          + f'  (reading {meta.output_name!r})', file=out)
    print(f'check run: output {raw.shape[0]}x{raw.shape[1]}, raw range '
          f'[{float(raw.min()):.4g}, {float(raw.max()):.4g}]', file=out)
    if meta.is_metric:
        print(f'the node publishes metric depth ({meta.output_mode}) in '
              f'[{meta.min_depth}, {meta.max_depth}] m', file=out)
    else:
        print('a relative model: the node publishes depth/relative only, and metric depth and '
              'points once a scale_source (ground_plane, sparse_depth, range, fixed) is set',
              file=out)
    print('metadata: ' + json.dumps(meta.to_dict(), sort_keys=True, indent=1), file=out)
    return meta


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser (the flags of the package's documentation)."""
    p = argparse.ArgumentParser(
        prog='import_model', description='Stamp mono_depth_ros metadata onto a depth ONNX '
        'exported elsewhere, check it by running it once, and print what the node will do.')
    p.add_argument('input', metavar='IN.onnx', help='the foreign ONNX model (only read)')
    p.add_argument('--output', required=True, metavar='OUT.onnx', help='where to write')
    p.add_argument('--preset', choices=sorted(PRESETS),
                   help='published conventions of a model family; flags override them')
    p.add_argument('--input-size', metavar='HxW', help='input size (dynamic graphs: the area)')
    p.add_argument('--size-multiple', type=int, metavar='N',
                   help='dynamic graphs: each input side is a multiple of N')
    p.add_argument('--size-policy', choices=SIZE_POLICIES,
                   help='dynamic graphs: how --input-size applies per camera: area (about '
                        'that area, the default), lower_bound (both sides at least that, '
                        'keeping the aspect: Depth Anything) or upper_bound (at most)')
    p.add_argument('--input-name', help='the image input (default: the only input)')
    p.add_argument('--output-name', help='the depth output (default: the only output)')
    p.add_argument('--layout', choices=INPUT_LAYOUTS, help='input layout (default: read)')
    p.add_argument('--dtype', choices=INPUT_DTYPES, help='input dtype (default: read)')
    p.add_argument('--mean', type=float, nargs=3, metavar=('R', 'G', 'B'),
                   help='normalisation of RGB in [0, 1] done outside the graph')
    p.add_argument('--std', type=float, nargs=3, metavar=('R', 'G', 'B'))
    p.add_argument('--resize-mode', choices=RESIZE_MODES,
                   help='how an image of another aspect is fitted (default stretch)')
    p.add_argument('--fit-aspect', type=float, metavar='W/H',
                   help='crop/pad: the aspect of the camera region the input holds (e.g. '
                        '1.3333 for 4:3 pictures squeezed to a square; default: the input one)')
    p.add_argument('--crop-fraction', type=float, metavar='F',
                   help='the centred fraction of each side kept: a zoom the model was '
                        'trained with (FastDepth 0.912; default 1)')
    p.add_argument('--output-channel', type=int, metavar='C',
                   help='read channel C of a (1, C, H, W) or (1, H, W, C) output: the z (2) '
                        'of a point map (UniDepth, MoGe); a Slice is appended to the graph')
    p.add_argument('--output-mode', choices=OUTPUT_MODES,
                   help='what the output means (required unless a preset says)')
    p.add_argument('--scale-unknown', choices=SCALE_UNKNOWNS,
                   help='what a scale source must fit: none (metric), scale (the zero is '
                        'right: self-supervised or scale-invariant training) or scale_shift '
                        '(affine-invariant; the default of the relative modes)')
    p.add_argument('--output-scale', type=float, metavar='S',
                   help='raw output y -> the output mode quantity S * y + T (required for a '
                        'quantized uint8/int8/uint16/int32 output: its quantization scale)')
    p.add_argument('--output-shift', type=float, metavar='T',
                   help='see --output-scale (quantized: -S * zero_point)')
    p.add_argument('--min-depth', type=float, metavar='M')
    p.add_argument('--max-depth', type=float, metavar='M')
    p.add_argument('--no-range-check', action='store_true',
                   help='write the model even when its check run would publish mostly no '
                        'depth (more than half of it outside [min_depth, max_depth])')
    p.add_argument('--train-focal', type=float, nargs='+', metavar='FX',
                   help='training focal length(s) in pixels at the input size: FX [FY]')
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point."""
    args = build_parser().parse_args(argv)
    try:
        import_model(args)
    except ImportModelError as exc:
        print(f'import_model: error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable or missing OUT folder, a full disk
        where = f' ({exc.filename})' if exc.filename else ''
        print(f'import_model: error: cannot write {args.output}: '
              f'{exc.strerror or exc}{where}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
