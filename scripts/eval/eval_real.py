#!/usr/bin/env python3
"""
Evaluate models on every real sample set, metric and median-scaled, beside the floors.

Each model (a checkpoint, or an ONNX file run by ONNX Runtime) goes through
``training/evaluate.py``, that is through the node's own frame pipeline with its default
parameters (one call per set and scaling), on the
scene-split folders of ``training/real_split.py`` (built when missing) and the KITTI
samples; the floors come from ``training/floors.py``. Prints one Markdown table (abs_rel and
delta1 per set) and writes everything as JSON.

``NAME=PATH@ground_plane`` also evaluates a model scaled per image the way the node's
``scale_source: ground_plane`` does it (``mono_depth_ros.core.scale.fit_ground_plane`` on
the prediction). The camera height and pitch it needs are the mount a robot would know;
for these hand-held pictures they are measured from the ground-truth floor (a RANSAC plane
of the lower image), and images without a visible floor count as failures (no metres).

    python scripts/eval/eval_real.py NAME=runs/x/best.pt [NAME=runs/c/last.pt@ground_plane ...]
        [--sets nyu_test redwood tum kitti sevenscenes] [--json runs/real_eval.json]
"""

import argparse
import json
import os
import sys
from typing import Dict, List

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402
from mono_depth_ros.core.geometry import backproject  # noqa: E402
from mono_depth_ros.core.scale import fit_ground_plane  # noqa: E402
import numpy as np  # noqa: E402
from training import evaluate as evaluate_mod  # noqa: E402
from training import floors, real_split  # noqa: E402
from training.metrics import average_metrics, compute_depth_metrics  # noqa: E402

DEFAULT_SETS = ('nyu_test', 'redwood', 'tum', 'kitti', 'sevenscenes')


def evaluate_model(path: str, spec: floors.RealSet, out_dir: str) -> Dict[str, Dict]:
    """Return {'metric': metrics, 'median': metrics} of one model on one real set."""
    out = {}
    for key, scaled in (('metric', False), ('median', True)):
        rows = evaluate_mod.evaluate(
            path, spec.kind, data_root=spec.root, median_scaling=scaled,
            crop=spec.crop or 'none', output_dir=os.path.join(out_dir, f'{spec.name}_{key}'),
            depth_scale=spec.depth_scale, intrinsics=spec.intrinsics, max_depth=spec.cap,
            log=lambda _m: None)
        out[key] = rows['model']
    return out


def floor_mount(depth: np.ndarray, intrinsics, iterations: int = 300, seed: int = 0):
    """
    Return (camera height m, pitch rad) from the ground-truth floor, or None if none is seen.

    RANSAC planes through the lower half's valid points whose normal is within 35 degrees of
    the camera's up direction (-y), with a 3 cm inlier band: the one holding the most points,
    when that is at least 10% of them. Pitch is positive looking down, as
    ``scale_source: ground_plane`` takes it.
    """
    h = depth.shape[0]
    xyz = backproject(np.where(depth > 0, depth, np.nan), intrinsics)[h // 2:].reshape(-1, 3)
    xyz = xyz[np.isfinite(xyz).all(axis=1)].astype(np.float64)
    if len(xyz) < 200:
        return None
    rng = np.random.default_rng(seed)
    pts = xyz[rng.choice(len(xyz), min(len(xyz), 4000), replace=False)]
    best, best_height, best_count = None, 0.0, int(0.1 * len(pts))
    for _ in range(iterations):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-9:
            continue
        n /= np.linalg.norm(n)
        if n[1] > 0:
            n = -n  # point the normal up (-y in the optical frame)
        if -n[1] < np.cos(np.radians(35)):
            continue
        d = -n @ a  # plane n . X + d = 0; the camera is at distance |d|
        count = int((np.abs(pts @ n + d) < 0.03).sum())
        if count > best_count:
            best, best_height, best_count = n, abs(d), count
    if best is None:
        return None
    return float(best_height), float(-np.arcsin(np.clip(best[2], -1, 1)))


def evaluate_ground_plane(path: str, spec: floors.RealSet) -> Dict[str, Dict]:
    """Return {'ground_plane': metrics} of a model scaled per image by the floor fit."""
    from mono_depth_ros.core.frame import FrameProcessor
    runner, meta, _net = evaluate_mod.load_predictor(path)
    processor = FrameProcessor(meta, runner, evaluate_mod.eval_config())
    data = floors.open_set(spec, meta.input_height, meta.input_width)
    rows, failed = [], 0
    for index in range(len(data)):
        sample = data.load(index)
        base = evaluate_mod.predict(processor, sample)
        mount = floor_mount(sample.depth, sample.intrinsics)
        fit = None
        if mount is not None:
            fit = fit_ground_plane(base, 'depth', sample.intrinsics, mount[0],
                                   camera_pitch=mount[1])
        if fit is None or not fit.ok:
            failed += 1
            continue
        rows.append(compute_depth_metrics(base * fit.scale, sample.depth,
                                          min_depth=meta.min_depth, max_depth=spec.cap,
                                          crop=spec.crop))
    out = average_metrics(rows) if rows else {}
    out['scaled_images'] = float(len(rows))
    out['failed_images'] = float(failed)
    return {'ground_plane': out} if rows else {}


def table(results: Dict[str, Dict[str, Dict]], sets: List[str]) -> str:
    """Return a Markdown table: one row per model or floor, abs_rel / d1 per set."""
    head = '| | ' + ' | '.join(f'{s} abs_rel | {s} d1' for s in sets) + ' |'
    lines = [head, '|---' * (2 * len(sets) + 1) + '|']
    for name, per_set in results.items():
        for key in ('metric', 'median', 'ground_plane'):
            if not any(key in per_set.get(s, {}) for s in sets):
                continue
            cells = []
            for s in sets:
                m = per_set.get(s, {}).get(key)
                cells += [f'{m["abs_rel"]:.3f}', f'{m["d1"]:.3f}'] if m else ['', '']
            lines.append(f'| {name} ({key}) | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None) -> int:
    """Evaluate the named models and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('models', nargs='*', help='NAME=PATH (checkpoint or ONNX)')
    parser.add_argument('--sets', nargs='*', default=list(DEFAULT_SETS))
    parser.add_argument('--real', default=floors.DEFAULT_REAL)
    parser.add_argument('--data', default=floors.DEFAULT_DATA)
    parser.add_argument('--json', default=None)
    parser.add_argument('--no-floors', action='store_true')
    parser.add_argument('--output-dir', default=os.path.join(floors.HERE, 'runs', 'eval_real'))
    args = parser.parse_args(argv)
    if not all(os.path.isdir(os.path.join(args.real, name)) for name in args.sets
               if name != 'kitti'):
        real_split.build(args.data, args.real)
    specs = floors.real_sets(args.real, args.data, args.sets)
    results: Dict[str, Dict[str, Dict]] = {}
    if not args.no_floors:
        for spec in specs:
            got = floors.evaluate_floors(spec)
            for name in ('constant', 'ground_plane', 'ground_plane_tilted'):
                results.setdefault(f'floor: {name}', {})[spec.name] = {
                    'metric': got[name], 'median': got[name + ' median-scaled']}
    for item in args.models:
        if '=' not in item:
            parser.error(f'model {item!r} is not NAME=PATH')
        name, path = item.split('=', 1)
        path, _, scaling = path.partition('@')
        if scaling not in ('', 'ground_plane'):
            parser.error(f'unknown scaling {scaling!r} (only @ground_plane)')
        for spec in specs:
            got = evaluate_model(path, spec, os.path.join(args.output_dir, name))
            if scaling:
                got.update(evaluate_ground_plane(path, spec))
            results.setdefault(name, {})[spec.name] = got
        sys.stdout.write(f'{name}: done\n')
    sys.stdout.write(table(results, [s.name for s in specs]) + '\n')
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
