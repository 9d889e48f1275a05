#!/usr/bin/env python3
"""
Export a trained checkpoint to ONNX (and optionally TorchScript) with its metadata.

    python training/export_onnx.py --checkpoint runs/x/best.pt --output model.onnx
        [--height H --width W] [--dynamic] [--input-dtype uint8|float32] [--opset N]
        [--torchscript model.ts]

The graph takes uint8 RGB NHWC (default) or float RGB in [0, 1] and does the cast,
permute and ImageNet normalisation itself, so the robot feeds camera pixels straight in.
Its output ``depth`` is the raw network output; the ModelMeta written into the file's
metadata_props says how it maps to metres. The export is then checked against PyTorch with
ONNX Runtime on a random and a real (or synthetic) image; the script fails, with a
non-zero exit, when the maximum absolute error exceeds the tolerance.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple
import warnings

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_path  # noqa: E402
from mono_depth_ros.core.model_meta import ModelMeta  # noqa: E402
from mono_depth_ros.inference.torch_backend import graph_module, TORCHSCRIPT_META  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

DEFAULT_OPSET = 17
ATOL = 1e-4
RTOL = 1e-3
INPUT_NAME = 'image'
OUTPUT_NAME = 'depth'


class ExportError(RuntimeError):
    """The export failed or does not reproduce PyTorch; the message says how."""


def export_meta(meta: ModelMeta, height: int, width: int, input_dtype: str,
                dynamic: bool) -> ModelMeta:
    """Return the metadata describing the exported graph (its real input and size)."""
    # train_fx/fy stay as trained: a convolutional network reads depth from apparent size
    # in pixels, so at another input size the camera's focal *at that size* is what gets
    # compared with the training focal (ModelMeta.focal_scale).
    # The file says what a scale source must fit (none, scale, scale_shift), not '' (by mode).
    return dataclasses.replace(
        meta, input_height=int(height), input_width=int(width), input_dtype=input_dtype,
        input_layout='NHWC', normalize_in_graph=True, input_name=INPUT_NAME,
        output_name=OUTPUT_NAME, dynamic_shape=bool(dynamic), scale_unknown=meta.unknown)


#: the relative counterpart of each metric output mode (``--relative``)
RELATIVE_OF = {'metric': 'relative_depth', 'inverse_depth': 'relative_inverse_depth'}


def as_relative(meta: ModelMeta, unknown: str) -> ModelMeta:
    """
    Return the metadata of a model whose output is right only up to ``unknown``.

    A model trained with a scale-invariant loss (silog with lambda 1) or self-supervised from
    video has the right zero but no metres: ``scale``; an affine-invariant one
    ``scale_shift``. A relative model keeps its mode and gets the unknowns stated.
    """
    if unknown not in ('scale', 'scale_shift'):
        raise ExportError(f'--relative takes scale or scale_shift, got {unknown!r}')
    mode = meta.output_mode
    if meta.is_metric:
        if mode not in RELATIVE_OF:
            raise ExportError(f'a {mode} output has no relative counterpart')
        mode = RELATIVE_OF[mode]
    return dataclasses.replace(meta, output_mode=mode, scale_unknown=unknown)


def example_input(meta: ModelMeta, rgb: np.ndarray):
    """Return the graph's input tensor for an (H, W, 3) uint8 image at the meta size."""
    from mono_depth_ros.core.frame import Preprocessor
    return torch.from_numpy(Preprocessor(meta)(rgb))


def real_image(height: int, width: int) -> np.ndarray:
    """Return a real photo (shared NYU sample) or, without it, a synthetic room, RGB uint8."""
    import cv2
    root = os.environ.get('MONO_DEPTH_SHARED_DATA', os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        'shared', 'data'))
    path = os.path.join(root, 'nyu', 'rgb', '0003.png')
    bgr = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None
    if bgr is not None:
        return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height),
                          interpolation=cv2.INTER_AREA)
    from mono_depth_ros.sim.synthetic import SyntheticStream
    return SyntheticStream(width, height, seed=1).frame(0).rgb


def write_metadata(path: str, meta: ModelMeta) -> None:
    """Replace the file's mono_depth.* metadata_props with meta (atomic rewrite)."""
    model = onnx.load(path)
    meta.stamp_onnx(model)
    model.producer_name = 'mono_depth_ros'
    if meta.description:
        model.doc_string = meta.description
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)


def _torch_export(module, example, path: str, dynamic: bool, opset: int, exporter: str,
                  log: Callable[[str], None]) -> str:
    errors = []
    order = ['legacy', 'dynamo'] if exporter == 'auto' else [exporter]
    for kind in order:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                if kind == 'legacy':
                    axes = ({INPUT_NAME: {1: 'height', 2: 'width'},
                             OUTPUT_NAME: {2: 'height', 3: 'width'}} if dynamic else None)
                    torch.onnx.export(module, (example,), path, dynamo=False,
                                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                      opset_version=opset, dynamic_axes=axes,
                                      do_constant_folding=True)
                else:
                    shapes = None
                    if dynamic:
                        h = torch.export.Dim('height', min=32, max=4096)
                        w = torch.export.Dim('width', min=32, max=4096)
                        shapes = ({1: h, 2: w},)
                    program = torch.onnx.export(module, (example,), dynamo=True,
                                                input_names=[INPUT_NAME],
                                                output_names=[OUTPUT_NAME],
                                                opset_version=opset, dynamic_shapes=shapes)
                    program.save(path)
            return kind
        except Exception as exc:  # noqa: BLE001 - the exporters raise many types
            errors.append(f'{kind}: {type(exc).__name__}: {exc}')
            then = 'trying the next' if kind != order[-1] else 'giving up'
            log(f'{kind} exporter failed, {then}')
    raise ExportError('ONNX export failed:\n  ' + '\n  '.join(errors))


def verify(module, onnx_path: str, meta: ModelMeta, sizes: Sequence[Tuple[int, int]],
           atol: float = ATOL, rtol: float = RTOL) -> List[Dict[str, float]]:
    """
    Compare ONNX Runtime with PyTorch on a random and a real image at each (h, w).

    Return one record per run; raise ExportError when |onnx - torch| exceeds
    ``atol + rtol * max|torch|`` anywhere or the output shape differs.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    rng = np.random.default_rng(0)
    records = []
    for h, w in sizes:
        sized = dataclasses.replace(meta, input_height=h, input_width=w)
        images = {'random': rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                  'real': real_image(h, w)}
        for name, rgb in images.items():
            x = example_input(sized, rgb)
            with torch.inference_mode():
                expected = module(x).float().numpy()
            got = session.run(None, {INPUT_NAME: x.numpy()})[0]
            if got.shape != expected.shape:
                raise ExportError(f'{name} image {h}x{w}: ONNX output shape {got.shape} != '
                                  f'PyTorch {expected.shape}')
            err = float(np.max(np.abs(got.astype(np.float64) - expected)))
            limit = atol + rtol * float(np.max(np.abs(expected)))
            records.append({'image': name, 'height': h, 'width': w, 'max_abs_error': err,
                            'tolerance': limit})
            if not np.isfinite(got).all() or not err <= limit:
                raise ExportError(f'ONNX Runtime disagrees with PyTorch on the {name} image '
                                  f'at {h}x{w}: max abs error {err:.3g} > tolerance '
                                  f'{limit:.3g}')
    return records


def export_model(model, meta: ModelMeta, output: str, height: Optional[int] = None,
                 width: Optional[int] = None, dynamic: bool = False,
                 input_dtype: str = 'uint8', opset: int = DEFAULT_OPSET,
                 exporter: str = 'auto', check: bool = True, atol: float = ATOL,
                 rtol: float = RTOL, torchscript: Optional[str] = None,
                 log: Callable[[str], None] = print) -> Tuple[ModelMeta, List[Dict]]:
    """
    Export model (eval mode, raw-output forward) to ONNX with metadata; return (meta, checks).

    Raises ExportError when the export fails or does not match PyTorch.
    """
    if input_dtype not in ('uint8', 'float32'):
        raise ExportError(f'input_dtype must be uint8 or float32, got {input_dtype!r}')
    height = int(height or meta.input_height)
    width = int(width or meta.input_width)
    out_meta = export_meta(meta, height, width, input_dtype, dynamic)
    module = graph_module(model.eval(), out_meta).eval()
    rgb = real_image(height, width)
    example = example_input(out_meta, rgb)
    records: List[Dict] = []
    # Verified before the rename: a model that fails the check never appears at output.
    with atomic_path(output) as tmp:
        kind = _torch_export(module, example, tmp, dynamic, opset, exporter, log)
        write_metadata(tmp, out_meta)
        log(f'exported {out_meta.arch} ({kind} exporter, opset {opset}): input '
            f'{INPUT_NAME} {input_dtype} NHWC 1x{height if not dynamic else "H"}x'
            f'{width if not dynamic else "W"}x3, output {OUTPUT_NAME} ({out_meta.output_mode}: '
            + ('metric' if out_meta.is_metric else 'relative, the node needs a scale_source')
            + ')')
        if check:
            sizes = [(height, width)]
            if dynamic:
                sizes.append((height + 32, width + 64))
            records = verify(module, tmp, out_meta, sizes, atol, rtol)
            for r in records:
                log(f'parity {r["image"]:6s} {r["height"]}x{r["width"]}: max abs error '
                    f'{r["max_abs_error"]:.3g} (tolerance {r["tolerance"]:.3g})')
    log(f'wrote {output}')
    if torchscript:
        export_torchscript(module, out_meta, torchscript, example)
        log(f'wrote TorchScript {torchscript}')
    return out_meta, records


def export_torchscript(module, meta: ModelMeta, output: str, example) -> None:
    """Trace the graph module and save it with the metadata as an extra file."""
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.trace(module, (example,), check_trace=False)
    with atomic_path(output) as tmp:
        torch.jit.save(traced, tmp, _extra_files={TORCHSCRIPT_META: meta.to_json()})


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True, help='training checkpoint (.pt)')
    parser.add_argument('--output', required=True, help='ONNX file to write')
    parser.add_argument('--height', type=int, help='input height (default: from the meta)')
    parser.add_argument('--width', type=int, help='input width (default: from the meta)')
    parser.add_argument('--dynamic', action='store_true',
                        help='symbolic height and width (checked at two sizes)')
    parser.add_argument('--input-dtype', choices=('uint8', 'float32'), default='uint8')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--exporter', choices=('auto', 'legacy', 'dynamo'), default='auto')
    parser.add_argument('--atol', type=float, default=ATOL)
    parser.add_argument('--rtol', type=float, default=RTOL)
    parser.add_argument('--no-check', action='store_true', help='skip the parity check')
    parser.add_argument('--torchscript', help='also write TorchScript here (torch backend)')
    parser.add_argument('--relative', choices=('scale', 'scale_shift'),
                        help='mark the output relative, with what is unknown: scale (a '
                             'scale-invariant loss such as silog with lambda 1) or '
                             'scale_shift (affine-invariant)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run the export; return 0, or 1 with a message on failure."""
    args = parse_args(argv)
    from training.networks import load_model
    from training.cli import fail
    try:
        model, meta = load_model(args.checkpoint, map_location='cpu')
        if not isinstance(meta, ModelMeta):
            meta = ModelMeta.from_dict(meta)
        if args.relative:
            meta = as_relative(meta, args.relative)
        export_model(model, meta, args.output, args.height, args.width, args.dynamic,
                     args.input_dtype, args.opset, args.exporter, not args.no_check,
                     args.atol, args.rtol, args.torchscript)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        return fail('export_onnx', exc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
