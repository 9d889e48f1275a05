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
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mono_depth_ros.core.atomic import atomic_path
from mono_depth_ros.core.model_meta import (IMAGENET_MEAN, IMAGENET_STD, INPUT_DTYPES,
                                            INPUT_LAYOUTS, ModelMeta, ModelMetaError,
                                            ONNX_KEY_PREFIX, OUTPUT_MODES, RESIZE_MODES,
                                            SCALE_UNKNOWNS)
import numpy as np

# Published conventions of known model families. Each fact is cited from the upstream
# repository; explicit flags override every one of them.
PRESETS: Dict[str, Dict[str, Any]] = {
    # Depth Anything V2 (Apache-2.0 for Small), DepthAnything/Depth-Anything-V2:
    # depth_anything_v2/dpt.py image2tensor(): input_size 518, Resize(keep_aspect_ratio,
    # ensure_multiple_of=14, resize_method='lower_bound'), NormalizeImage(ImageNet mean/std)
    # on RGB / 255, NCHW (PrepareForNet); forward() returns relu(head).squeeze(1), shape
    # (B, H, W): the affine-invariant inverse depth ("disparity") the relative models are
    # trained on, so it has no metres.
    'depth_anything_v2': dict(
        arch='depth_anything_v2', input_size=(518, 518), size_multiple=14, layout='NCHW',
        dtype='float32', mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode='relative_inverse_depth', min_depth=0.1, max_depth=20.0),
    # Depth Anything V2 metric, same repository, metric_depth/depth_anything_v2/dpt.py:
    # the same input as above; forward() returns depth_head(...) * max_depth (the head
    # ends in a sigmoid), in metres, (B, H, W). metric_depth/README.md: max_depth 20 for
    # the indoor (Hypersim) models, 80 for the outdoor (Virtual KITTI 2) ones; give
    # --max-depth 80 for those.
    'depth_anything_v2_metric': dict(
        arch='depth_anything_v2_metric', input_size=(518, 518), size_multiple=14,
        layout='NCHW', dtype='float32', mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode='metric', min_depth=0.1, max_depth=20.0),
    # MiDaS v2.1 small (MIT), isl-org/MiDaS midas/model_loader.py load_model(),
    # "midas_v21_small_256": net_w = net_h = 256, resize_mode "upper_bound" (multiple of 32),
    # NormalizeImage(ImageNet mean/std) outside the network, NCHW; MiDaS outputs relative
    # inverse depth (tf/README.md: "the resulting inverse depth maps"). tf/run_onnx.py runs
    # its ONNX at a fixed square size with keep_aspect_ratio=False, i.e. stretched.
    'midas_small': dict(
        arch='midas_v21_small_256', input_size=(256, 256), size_multiple=32, layout='NCHW',
        dtype='float32', mean=IMAGENET_MEAN, std=IMAGENET_STD, resize_mode='stretch',
        output_mode='relative_inverse_depth', min_depth=0.1, max_depth=20.0),
    # FastDepth (MIT), dwofk/fast-depth dataloaders/nyu.py: output_size (224, 224);
    # val_transform Resize(250 / 480), CenterCrop((228, 304)), Resize((224, 224)), then
    # RGB / 255 with no mean/std; NCHW; trained on NYU Depth V2 with metric depth targets
    # in metres (max 10 m). The training focal at the 224 x 224 input follows from the
    # Kinect's (fx 518.86, fy 519.47 at 640 x 480) through those steps:
    # fx = 518.86 * 250/480 * 224/304, fy = 519.47 * 250/480 * 224/228.
    'fastdepth': dict(
        arch='fastdepth', input_size=(224, 224), layout='NCHW', dtype='float32',
        mean=None, std=None, resize_mode='stretch', output_mode='metric',
        min_depth=0.1, max_depth=10.0,
        train_focal=(518.8579 * 250 / 480 * 224 / 304, 519.4696 * 250 / 480 * 224 / 228)),
}

_ONNX_DTYPES = {1: 'float32', 2: 'uint8', 10: 'float16', 11: 'float64'}


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


def _output_layout(spec: TensorInfo) -> str:
    """Return 'nchw' for (1,1,H,W) / (1,H,W) / (H,W), 'nhwc' for (1,H,W,1); else raise."""
    s = spec.shape
    if spec.dtype not in ('float32', 'float16', 'float64'):
        raise ImportModelError(f'output {spec.describe()} is not a float tensor')

    def one(d):
        return d == 1 or (isinstance(d, str) and 'batch' in d.lower())

    if len(s) == 2:
        return 'nchw'
    if len(s) == 3 and one(s[0]):
        return 'nchw'
    if len(s) == 4 and one(s[0]) and s[1] == 1:
        return 'nchw'
    if len(s) == 4 and one(s[0]) and s[3] == 1 and s[1] != 1:
        return 'nhwc'
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
    needs_transpose = _output_layout(y) == 'nhwc'
    focal = args.train_focal if args.train_focal is not None else preset.get('train_focal')
    if focal is not None:
        if len(focal) not in (1, 2):
            raise ImportModelError('--train-focal takes FX or FX FY')
        focal = (float(focal[0]), float(focal[-1]))
    kwargs = dict(
        arch=preset.get('arch', 'imported'), input_height=int(size[0]),
        input_width=int(size[1]), input_name=x.name,
        output_name=y.name + '_nchw' if needs_transpose else y.name,
        input_dtype=dtype, input_layout=layout, normalize_in_graph=mean is None,
        mean=tuple(mean) if mean is not None else IMAGENET_MEAN,
        std=tuple(std) if std is not None else IMAGENET_STD,
        output_mode=mode, output_scale=float(choose(args.output_scale, 'output_scale', 1.0)),
        output_shift=float(choose(args.output_shift, 'output_shift', 0.0)),
        min_depth=float(choose(args.min_depth, 'min_depth', 0.1)),
        max_depth=float(choose(args.max_depth, 'max_depth', 10.0)),
        train_fx=focal[0] if focal else None, train_fy=focal[1] if focal else None,
        focal_rescale=focal is not None and mode in ('metric', 'inverse_depth', 'disparity'),
        dynamic_shape=dynamic, size_multiple=int(multiple or 0),
        resize_mode=choose(args.resize_mode, 'resize_mode', 'stretch'),
        scale_unknown=choose(args.scale_unknown, 'scale_unknown', ''),
        description=f'imported from {os.path.basename(args.input)} by import_model'
                    + (f' (preset {args.preset})' if args.preset else ''))
    try:
        meta = ModelMeta(**kwargs)
        # The file says what a scale source must fit, not '' (implied by the mode).
        meta = dataclasses.replace(meta, scale_unknown=meta.unknown)
    except ModelMetaError as exc:
        raise ImportModelError(str(exc)) from exc
    return meta, x, y, needs_transpose


def stamp(model, meta: ModelMeta, output: TensorInfo, needs_transpose: bool):
    """Return a copy of the model with the metadata (and the output transpose) applied."""
    import onnx
    from onnx import helper
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [(p.key, p.value) for p in out.metadata_props
            if not p.key.startswith(ONNX_KEY_PREFIX)]
    del out.metadata_props[:]
    for key, value in keep + sorted(meta.to_onnx_props().items()):
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    if needs_transpose:
        s = output.shape
        name = meta.output_name
        out.graph.node.append(helper.make_node('Transpose', [output.name], [name],
                                               perm=[0, 3, 1, 2],
                                               name='import_model_output_nchw'))
        elem = 1 if output.dtype == 'float32' else {'float16': 10, 'float64': 11}[output.dtype]
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


def import_model(args: argparse.Namespace, out=sys.stdout) -> ModelMeta:
    """Do the whole job; raise ImportModelError with the reason when it cannot."""
    src, dst = os.path.abspath(args.input), os.path.abspath(args.output)
    if src == dst or (os.path.exists(dst) and os.path.samefile(src, dst)):
        raise ImportModelError('--output must differ from IN: import_model never changes IN')
    model = load_graph(args.input)
    meta, x, y, transpose = build_meta(model, args)
    stamped = stamp(model, meta, y, transpose)
    data = stamped.SerializeToString()
    with atomic_path(dst) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data)
        raw = check_run(tmp, meta)
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
    p.add_argument('--input-name', help='the image input (default: the only input)')
    p.add_argument('--output-name', help='the depth output (default: the only output)')
    p.add_argument('--layout', choices=INPUT_LAYOUTS, help='input layout (default: read)')
    p.add_argument('--dtype', choices=INPUT_DTYPES, help='input dtype (default: read)')
    p.add_argument('--mean', type=float, nargs=3, metavar=('R', 'G', 'B'),
                   help='normalisation of RGB in [0, 1] done outside the graph')
    p.add_argument('--std', type=float, nargs=3, metavar=('R', 'G', 'B'))
    p.add_argument('--resize-mode', choices=RESIZE_MODES,
                   help='how an image of another aspect is fitted (default stretch)')
    p.add_argument('--output-mode', choices=OUTPUT_MODES,
                   help='what the output means (required unless a preset says)')
    p.add_argument('--scale-unknown', choices=SCALE_UNKNOWNS,
                   help='what a scale source must fit: none (metric), scale (the zero is '
                        'right: self-supervised or scale-invariant training) or scale_shift '
                        '(affine-invariant; the default of the relative modes)')
    p.add_argument('--output-scale', type=float, metavar='S')
    p.add_argument('--output-shift', type=float, metavar='T')
    p.add_argument('--min-depth', type=float, metavar='M')
    p.add_argument('--max-depth', type=float, metavar='M')
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
    return 0


if __name__ == '__main__':
    sys.exit(main())
