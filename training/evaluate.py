#!/usr/bin/env python3
"""
Evaluate a model: the standard depth metrics table, per-image CSV, grid and histogram.

    python training/evaluate.py --checkpoint runs/smoke/best.pt --dataset synthetic
    python training/evaluate.py --checkpoint models/starter_indoor.onnx --dataset nyu \
        --data-root DIR|FILE [--split FILE] [--median-scaling] [--crop eigen|garg|none]
        [--backend auto|onnxruntime|torch|tensorrt] [--output-dir DIR]

``--checkpoint`` takes a training checkpoint (run by the torch backend with the network
rebuilt from the zoo) or anything the node runs: an ONNX file, TorchScript or a TensorRT
engine. Every image goes through the node's own frame pipeline
(``mono_depth_ros.core.frame.FrameProcessor``, the node's default parameters): the
model's resize mode, its output mapping and focal rescaling, NaN outside its depth range,
the default depth upsampling back to the image's own resolution. So the figures are those
of what a robot publishes. Metrics are computed at that resolution, per image, then
averaged (``training.metrics``: masks ANDed, predictions clamped, NaN pixels not
published, reported as ``coverage``). Depth is capped at 10 m for NYU
and 80 m for KITTI; the crop defaults to Eigen's for NYU and Garg's for KITTI. ``--dataset
nyu`` takes the labeled ``.mat``, DenseDepth's zip/folder (test CSV), a FastDepth folder
(``val/``), or a folder with ``rgb/`` + ``depth/`` (mm) PNGs like the shared samples;
``kitti`` takes a raw root with ``--split`` (Eigen lines) or an object-benchmark folder;
``synthetic`` without ``--data-root`` renders a fixed set of rooms; ``rosbag`` takes a
rosbag2 folder and evaluates its held-out end (``--split val``, the training config's
default ``val_fraction``) against its ``/camera/depth/image_raw``. A constant-depth
baseline (the evaluation set's median depth everywhere) is printed for context.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Dict, List, Optional

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
from mono_depth_ros.core.atomic import atomic_path, atomic_write_text  # noqa: E402
from mono_depth_ros.core.colormap import colorize_depth  # noqa: E402
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor  # noqa: E402
from mono_depth_ros.inference.base import create_backend  # noqa: E402
from mono_depth_ros.inference.torch_backend import (graph_input_meta, graph_module,  # noqa: E402
                                                    TorchBackend)
import numpy as np  # noqa: E402
from training.datasets import (FolderDataset, KittiObject, KittiRaw, NYUCSV, NYUH5,  # noqa: E402
                               NYUMat, SyntheticDataset)
from training.datasets.augment import RawSample  # noqa: E402
from training.datasets.base import DatasetError  # noqa: E402
from training.datasets.nyu import read_index_list  # noqa: E402
from training.metrics import (average_metrics, compute_depth_metrics, METRIC_NAMES,  # noqa: E402
                              NoValidPixelsError)
from training.networks import load_model  # noqa: E402

CAPS = {'nyu': 10.0, 'kitti': 80.0}
DEFAULT_CROPS = {'nyu': 'eigen', 'kitti': 'garg'}
TABLE = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'd1', 'd2', 'd3')
SYNTHETIC_EVAL_SEED = 424242
ROSBAG_DEPTH_TOPIC = '/camera/depth/image_raw'
ROSBAG_DEPTH_SIZE = (160, 120)  # width, height the depth topic is compared at
GRID_ROWS = 6
#: files the node runs itself; anything else is taken for a training checkpoint
RUNTIME_EXTENSIONS = ('.onnx', '.engine', '.plan', '.trt', '.ts', '.torchscript', '.jit')
FOLDER_HINT = ('give --intrinsics a preset (kinect_nyu, kitti) or a camera_info YAML / '
               'JSON file, or put exactly one such file in the folder')
KITTI_HINT = ('--dataset kitti expects an object-benchmark folder (image_2/, velodyne/, '
              'calib/ with P2) or a raw root (DATE/DATE_drive_NNNN_sync/image_02/data/) with '
              '--split FILE of Eigen lines "DATE/DATE_drive_NNNN_sync FRAME l|r"')


def checkpoint_backend(path: str, device: str = 'cpu'):
    """Return a torch backend running a training checkpoint's network (rebuilt from the zoo)."""
    net, meta = load_model(path, map_location=device)
    return module_backend(net, meta, device, name=path), net


def module_backend(net, meta, device: str = 'cpu', name: str = 'module'):
    """Return a torch backend feeding a bare network what the exported graph would take."""
    fed = graph_input_meta(meta)
    return TorchBackend.from_module(graph_module(net, fed), fed, device=device, name=name)


def load_predictor(model_path: str, backend: str = 'auto', device: str = 'cpu',
                   trust_model_code: bool = False):
    """
    Return (backend, its ModelMeta, the torch network or None) for any model file.

    A TorchScript file is code and loads only with ``trust_model_code``.
    """
    if not os.path.isfile(model_path):
        raise FileNotFoundError(f'model file not found: {model_path}')
    if model_path.lower().endswith(RUNTIME_EXTENSIONS):
        runner = create_backend(backend, model_path, trust_model_code=trust_model_code)
        return runner, runner.meta, None
    if backend not in ('auto', 'torch'):
        raise ValueError(f'{model_path} is a training checkpoint: it runs on the torch '
                         f'backend, not {backend}; export it for the others')
    runner, net = checkpoint_backend(model_path, device)
    return runner, runner.meta, net


def eval_config() -> FrameConfig:
    """Return the node's default frame configuration, at the image's full size."""
    # No output cap: metrics are computed at the ground truth's own resolution.
    return FrameConfig(max_output_pixels=0)


def open_dataset(kind: str, root: Optional[str], meta, split: Optional[str] = None,
                 num_images: int = 16, depth_scale: float = 0.001, intrinsics: str = ''):
    """Return the evaluation dataset (its load() gives native-size samples)."""
    size = dict(height=meta.input_height, width=meta.input_width)
    if kind == 'synthetic' and not root:
        return SyntheticDataset(num_images, scene_seed=SYNTHETIC_EVAL_SEED, frames_per_room=1,
                                **size)
    if not root:
        raise SystemExit(f'error: --dataset {kind} needs --data-root')
    try:
        return _open_dataset(kind, root, size, split, num_images, depth_scale, intrinsics)
    except DatasetError as exc:
        text = str(exc)
        if kind == 'kitti' and 'split file not found' not in text:
            raise DatasetError(f'{text}; {KITTI_HINT}') from exc
        if kind in ('folder', 'nyu') and 'intrinsics' in text:
            raise DatasetError(f'{text}; {FOLDER_HINT}') from exc
        raise


def _open_dataset(kind, root, size, split, num_images, depth_scale, intrinsics):
    if kind == 'nyu':
        if root.endswith('.mat'):
            return NYUMat(root, indices=read_index_list(split) if split else None, **size)
        if root.endswith('.zip') or os.path.isfile(os.path.join(root, 'data', 'nyu2_test.csv')):
            return NYUCSV(root, csv=split or 'data/nyu2_test.csv', **size)
        if os.path.isdir(os.path.join(root, 'val')):
            return NYUH5(root, split='val', **size)
        return FolderDataset(root, intrinsics=intrinsics or 'kinect_nyu', depth_scale=0.001,
                             **size)
    if kind == 'kitti':
        if split:
            return KittiRaw(root, split_file=split, **size)
        return KittiObject(root, **size)
    if kind == 'folder':
        return FolderDataset(root, intrinsics=intrinsics, depth_scale=depth_scale, **size)
    if kind == 'synthetic':
        return SyntheticDataset(num_images, scene_seed=SYNTHETIC_EVAL_SEED, **size)
    if kind == 'rosbag':
        # The recording's held-out end (or --split train|all): the camera's own images
        # against its depth topic at a quarter of 640x480 (7-Scenes depth is not
        # registered to colour: 10-25 px off at full size).
        from training.datasets.rosbag import RosbagDataset
        return RosbagDataset(root, split=split or 'val', depth_topic=ROSBAG_DEPTH_TOPIC,
                             native_rgb=True, height=ROSBAG_DEPTH_SIZE[1],
                             width=ROSBAG_DEPTH_SIZE[0])
    raise SystemExit(f'error: unknown dataset {kind!r}')


def predict(processor: FrameProcessor, sample: RawSample, scale=None) -> np.ndarray:
    """
    Return the depth the node would publish for one sample, at the ground truth's size.

    ``scale`` (a relative model's affine fit) goes to the pipeline; NaN marks pixels the
    node leaves invalid.
    """
    h, w = sample.rgb.shape[:2]
    camera = sample.intrinsics
    if (camera.width, camera.height) != (w, h):
        camera = camera.resize(w, h)
    depth = processor.run(sample.rgb, camera, scale=scale).depth
    if depth is None:
        raise ValueError('the model is relative (no metres): evaluate it with '
                         '--median-scaling')
    if depth.shape != sample.depth.shape:
        gh, gw = sample.depth.shape
        depth = cv2.resize(depth, (gw, gh), interpolation=cv2.INTER_NEAREST)
    return depth


MIN_PANEL_WIDTH = 160  # pixels


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def grid_row(sample: RawSample, pred: np.ndarray, cap: float, min_depth: float) -> np.ndarray:
    """
    Return input | prediction | ground truth | abs_rel error (inferno, 0..0.5) as a row.

    Prediction and ground truth share one colour range per row: the 1st to 99th percentile
    of the valid ground truth, within [min_depth, cap]; predictions outside it saturate.
    """
    gt = sample.depth
    valid = gt > 0
    err = np.full(gt.shape, np.nan, np.float32)
    err[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    scaled = np.clip(np.nan_to_num(err, nan=0.0) / 0.5 * 255.0, 0, 255).astype(np.uint8)
    error = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    error[~valid] = 0
    # One colour range per row, shared by prediction and ground truth, spanning this view
    # (a fixed 0..cap range leaves a 3 m room almost uniformly dark at cap = 10 m).
    far = min(cap, float(np.percentile(gt[valid], 99))) if valid.any() else cap
    near = max(min_depth, float(np.percentile(gt[valid], 1))) if valid.any() else min_depth
    if far <= near:
        near, far = min_depth, cap
    rgb = sample.rgb
    if rgb.shape[:2] != gt.shape:  # ground truth coarser than the camera (rosbag)
        rgb = cv2.resize(rgb, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_AREA)
    panels = [rgb, colorize_depth(np.clip(pred, near, far), near, far),
              colorize_depth(np.where(valid, gt, np.nan), near, far), error]
    names = ('input', 'prediction', 'ground truth', 'abs_rel error')
    factor = int(np.ceil(MIN_PANEL_WIDTH / gt.shape[1]))
    if factor > 1:  # small evaluation sizes: enlarge (nearest) so the labels stay legible
        panels = [cv2.resize(p, (p.shape[1] * factor, p.shape[0] * factor),
                             interpolation=cv2.INTER_NEAREST) for p in panels]
    return np.hstack([_label(p, n) for p, n in zip(panels, names)])


def histogram_image(errors: np.ndarray, bins: int = 50, top: float = 1.0,
                    size=(640, 360)) -> np.ndarray:
    """Draw a histogram of per-pixel abs_rel errors (clipped to [0, top]) with OpenCV."""
    width, height = size
    counts, edges = np.histogram(np.clip(errors, 0, top), bins=bins, range=(0, top))
    image = np.full((height, width, 3), 255, np.uint8)
    left, bottom, plot_w, plot_h = 50, height - 40, width - 70, height - 80
    peak = max(int(counts.max()), 1)
    bar = plot_w / bins
    for i, count in enumerate(counts):
        h = int(round(plot_h * count / peak))
        x0 = int(left + i * bar)
        cv2.rectangle(image, (x0, bottom - h), (int(x0 + bar) - 1, bottom), (60, 110, 200), -1)
    cv2.line(image, (left, bottom), (left + plot_w, bottom), (0, 0, 0), 1)
    cv2.line(image, (left, bottom), (left, bottom - plot_h), (0, 0, 0), 1)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = int(left + frac * plot_w)
        cv2.putText(image, f'{frac * top:.2f}', (x - 12, bottom + 16), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f'per-pixel abs_rel error (n={errors.size}, peak {peak})', (left, 24),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """Return a Markdown table, one line per named result."""
    head = '| | ' + ' | '.join(TABLE) + ' |'
    lines = [head, '|---' * (len(TABLE) + 1) + '|']
    for name, metrics in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(f'{metrics[k]:.4f}' for k in TABLE) + ' |')
    return '\n'.join(lines)


def evaluate(checkpoint: str, dataset: str, data_root: Optional[str] = None,
             split: Optional[str] = None, median_scaling: bool = False,
             crop: Optional[str] = None, output_dir: Optional[str] = None,
             num_images: int = 16, depth_scale: float = 0.001, intrinsics: str = '',
             max_depth: Optional[float] = None, log=print,
             backend: str = 'auto',
             trust_model_code: bool = False) -> Dict[str, Dict[str, float]]:
    """Evaluate; write per_image.csv, grid.png, error_histogram.png, metrics.json; return rows."""
    runner, meta, model = load_predictor(checkpoint, backend,
                                         trust_model_code=trust_model_code)
    processor = FrameProcessor(meta, runner, eval_config())
    if not meta.is_metric and not median_scaling:
        log(f'{meta.output_mode} model (no metres, e.g. trained from video): evaluating '
            'with median scaling')
        median_scaling = True
    # A relative model has no metres: with median scaling its depth-like map (scale 1,
    # shift 0 in its own space) is scaled per image, as affine-invariant models are judged.
    scale = (1.0, 0.0) if (not meta.is_metric and median_scaling) else None
    data = open_dataset(dataset, data_root, meta, split, num_images, depth_scale, intrinsics)
    cap = float(max_depth or CAPS.get(dataset, meta.max_depth))
    crop = DEFAULT_CROPS.get(dataset) if crop in (None, 'auto') else crop
    crop = None if crop == 'none' else crop
    min_depth = meta.min_depth
    output_dir = output_dir or os.path.join(os.path.dirname(os.path.abspath(checkpoint)),
                                            f'eval_{dataset}')
    os.makedirs(output_dir, exist_ok=True)
    samples, preds, rows, ids = [], [], [], []
    for index in range(len(data)):
        sample = data.load(index)
        pred = predict(processor, sample, scale)
        try:
            row = compute_depth_metrics(pred, sample.depth, min_depth=min_depth, max_depth=cap,
                                        crop=crop, median_scaling=median_scaling)
        except NoValidPixelsError:
            log(f'skipping {sample.id}: no valid ground truth in range')
            continue
        samples.append(sample)
        preds.append(pred)
        rows.append(row)
        ids.append(sample.id)
    if not rows:
        raise SystemExit('error: no image had valid ground truth')
    model_avg = average_metrics(rows)
    if median_scaling:
        # How far the per-image scale wanders says how consistent the unscaled depth is.
        model_avg['scale_std'] = float(np.std([r['scale'] for r in rows]))
    gts = np.concatenate([s.depth[(s.depth > min_depth) & (s.depth < cap)] for s in samples])
    constant = float(np.median(gts))
    # Median scaling turns any constant into each image's own median depth: that, not one
    # constant for the whole set, is the floor a median-scaled model has to beat.
    baseline = average_metrics([
        compute_depth_metrics(np.full_like(s.depth, constant), s.depth, min_depth=min_depth,
                              max_depth=cap, crop=crop, median_scaling=median_scaling)
        for s in samples])
    name = 'constant, median-scaled' if median_scaling else f'constant {constant:.2f} m'
    results = {'model': model_avg, name: baseline}
    ensemble = None
    if model is not None and hasattr(model, 'variants'):
        # A stacked ensemble: each base, their simple average and the ensemble, with costs.
        from training.ensemble import costs, format_comparison
        views = {name: FrameProcessor(meta, module_backend(view, meta), eval_config())
                 for name, view in model.variants().items()}
        side = {name: average_metrics([compute_depth_metrics(
            predict(view, s, scale), s.depth, min_depth=min_depth, max_depth=cap, crop=crop,
            median_scaling=median_scaling) for s in samples])
            for name, view in views.items()}
        cost = costs(model, meta.input_height, meta.input_width)
        ensemble = {'metrics': side, 'costs': cost,
                    'table': format_comparison(side, cost)}

    fields = ['id'] + [k for k in METRIC_NAMES if k in rows[0]] + \
        [k for k in rows[0] if k not in METRIC_NAMES]
    with atomic_path(os.path.join(output_dir, 'per_image.csv')) as tmp:
        with open(tmp, 'w', encoding='utf-8', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for ident, row in zip(ids, rows):
                writer.writerow({'id': ident, **row})
    grid = []
    for sample, pred in list(zip(samples, preds))[:GRID_ROWS]:
        row_image = grid_row(sample, pred, cap, min_depth)
        if grid and row_image.shape[1] != grid[0].shape[1]:
            scale = grid[0].shape[1] / row_image.shape[1]
            row_image = cv2.resize(row_image, (grid[0].shape[1],
                                               int(round(row_image.shape[0] * scale))))
        grid.append(row_image)
    _write_png(os.path.join(output_dir, 'grid.png'), np.vstack(grid))
    errors = np.concatenate([np.abs(p[s.depth > 0] - s.depth[s.depth > 0]) / s.depth[s.depth > 0]
                             for s, p in zip(samples, preds)])
    _write_png(os.path.join(output_dir, 'error_histogram.png'), histogram_image(errors))
    summary = {'checkpoint': os.path.abspath(checkpoint), 'dataset': dataset,
               'data_root': data_root or '', 'images': len(rows), 'crop': crop or 'none',
               'cap': cap, 'median_scaling': median_scaling, 'results': results}
    if ensemble is not None:
        summary['ensemble'] = {k: ensemble[k] for k in ('metrics', 'costs')}
    atomic_write_text(os.path.join(output_dir, 'metrics.json'), json.dumps(summary, indent=2))
    log(f'{len(rows)} images from {dataset} ({data_root or "generated"}), crop '
        f'{crop or "none"}, cap {cap:g} m{", median scaling" if median_scaling else ""}')
    log(format_table(results))
    if median_scaling:
        log(f'median scaling ratio: mean {model_avg["scale"]:.4g}, std '
            f'{model_avg["scale_std"]:.4g} ({model_avg["scale_std"] / model_avg["scale"]:.1%}'
            ' of the mean)')
    if ensemble is not None:
        log('ensemble against its parts (params; torch CPU ms per frame at the input size):')
        log(ensemble['table'])
    log(f'wrote {output_dir}/per_image.csv, grid.png, error_histogram.png, metrics.json')
    return results


def _write_png(path: str, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode('.png', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data.tobytes())


def main(argv: Optional[List[str]] = None) -> int:
    """Parse the command line and evaluate."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--checkpoint', '--model', dest='checkpoint', required=True,
                        help='training checkpoint, ONNX, TorchScript or TensorRT engine')
    parser.add_argument('--backend', default='auto',
                        choices=('auto', 'onnxruntime', 'torch', 'tensorrt'),
                        help='backend for ONNX files (a checkpoint always runs on torch)')
    parser.add_argument('--dataset', required=True,
                        choices=('nyu', 'kitti', 'folder', 'synthetic', 'rosbag'))
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--split', default=None, help='split list (NYU indices, KITTI lines); '
                        'rosbag: val (default), train or all')
    parser.add_argument('--median-scaling', action='store_true')
    parser.add_argument('--crop', default='auto', choices=('auto', 'eigen', 'garg',
                                                           'eigen_kitti', 'none'))
    parser.add_argument('--output-dir', default=None)
    parser.add_argument('--num-images', type=int, default=16, help='synthetic set size')
    parser.add_argument('--depth-scale', type=float, default=0.001, help='folder: m per unit')
    parser.add_argument('--intrinsics', default='', help='folder: intrinsics file or preset')
    parser.add_argument('--max-depth', type=float, default=None, help='override the cap')
    parser.add_argument('--trust-model-code', action='store_true',
                        help='load a TorchScript model: it is code, which runs as it loads')
    args = parser.parse_args(argv)
    from training.cli import fail
    try:
        evaluate(args.checkpoint, args.dataset, args.data_root, args.split,
                 args.median_scaling, args.crop, args.output_dir, args.num_images,
                 args.depth_scale, args.intrinsics, args.max_depth, backend=args.backend,
                 trust_model_code=args.trust_model_code)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:  # refused files, bad data
        return fail('evaluate', exc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
