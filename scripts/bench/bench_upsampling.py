#!/usr/bin/env python3
"""
Flying points and accuracy of each depth upsampling mode on the real NYU and Redwood samples.

    python scripts/bench/bench_upsampling.py [--data ../shared/data] [--model-size 160x120]
        [--source gt|model] [--thresholds 0.05 0.1 0.2]

The "model output" is, by default, the ground-truth depth itself, area-averaged down to the
model's output size (``--source gt``): a perfect but low-resolution network, whose only
error is the resolution, so the upsampling's own effect is what is measured. ``--source
model`` runs the bundled model instead (its depth is poor on real pictures, but its edges
are a network's). Either way the map goes through the node's FrameProcessor back to 640x480.

A flying point is a pixel whose depth lies strictly between those of its two neighbours
(left/right or up/down), when those neighbours differ by more than 10 %: a point drawn in
the air between a foreground edge and the background. The full-resolution ground truth
gives the scene's own count for comparison. Accuracy is abs_rel against the full-resolution
ground truth on the pixels both have, and coverage the fraction of valid ground-truth
pixels that keep a depth.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Dict, List, Tuple

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

import cv2  # noqa: E402
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor, UPSAMPLING_MODES  # noqa: E402
from mono_depth_ros.core.intrinsics import Intrinsics, preset  # noqa: E402
from mono_depth_ros.core.model_meta import ModelMeta  # noqa: E402
import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JUMP = 0.10  # neighbours differing by more than this (relative) make a depth edge


class MapBackend:
    """Returns a fixed map as the raw model output (metric metadata, scale 1)."""

    def __init__(self, raw: np.ndarray):
        self.raw = raw

    def infer(self, _tensor):
        return self.raw


def flying_points(depth: np.ndarray, jump: float = JUMP) -> int:
    """Count pixels strictly between two neighbours that differ by more than ``jump``."""
    count = np.zeros(depth.shape, bool)
    d = depth
    with np.errstate(invalid='ignore'):
        for a, b, c in ((d[:, :-2], d[:, 1:-1], d[:, 2:]), (d[:-2, :], d[1:-1, :], d[2:, :])):
            lo, hi = np.minimum(a, c), np.maximum(a, c)
            flying = (hi > lo * (1 + jump)) & (b > lo) & (b < hi)
            if a.shape[1] != d.shape[1]:
                count[:, 1:-1] |= flying
            else:
                count[1:-1, :] |= flying
    return int(count.sum())


def load_frames(data: str) -> List[Tuple[str, np.ndarray, np.ndarray, Intrinsics]]:
    """Return (name, rgb, depth metres (NaN invalid), camera) for the NYU and Redwood samples."""
    frames = []
    for path in sorted(glob.glob(os.path.join(data, 'nyu', 'rgb', '*.png'))):
        depth_path = os.path.join(data, 'nyu', 'depth', os.path.basename(path))
        frames.append(('nyu/' + os.path.basename(path), path, depth_path, preset('kinect_nyu')))
    with open(os.path.join(data, 'redwood', 'camera_primesense.json')) as handle:
        k = np.asarray(json.load(handle)['intrinsic_matrix'], np.float64).reshape(3, 3).T
    redwood = Intrinsics.from_K(k, 640, 480)
    for path in sorted(glob.glob(os.path.join(data, 'redwood', 'color', '*.jpg'))):
        stem = os.path.splitext(os.path.basename(path))[0]
        depth_path = os.path.join(data, 'redwood', 'depth', stem + '.png')
        frames.append(('redwood/' + stem, path, depth_path, redwood))
    out = []
    for name, rgb_path, depth_path, camera in frames:
        rgb = cv2.cvtColor(cv2.imread(rgb_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        raw = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
        depth = np.where(raw > 0, raw, np.nan).astype(np.float32)
        out.append((name, rgb, depth, camera.resize(rgb.shape[1], rgb.shape[0])))
    return out


def area_down(depth: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Average the valid depths into size (w, h); 0 where fewer than half are valid."""
    valid = np.isfinite(depth).astype(np.float32)
    total = cv2.resize(np.nan_to_num(depth, nan=0.0), size, interpolation=cv2.INTER_AREA)
    share = cv2.resize(valid, size, interpolation=cv2.INTER_AREA)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(share >= 0.5, total / np.maximum(share, 1e-6), 0.0).astype(np.float32)


def measure(frames, source: str, size: Tuple[int, int], thresholds) -> List[Dict]:
    """Return one row per (mode, threshold) with flying points, abs_rel and coverage."""
    w, h = size
    meta = ModelMeta(arch='ground_truth', input_height=h, input_width=w, min_depth=0.1,
                     max_depth=10.0)
    backend = None
    if source == 'model':
        from mono_depth_ros.inference import create_backend
        backend = create_backend('onnxruntime',
                                 os.path.join(REPO, 'models', 'starter_indoor.onnx'))
        meta = backend.meta
    configs = [('nearest', None), ('bilinear', None)] + [('edge_aware', t) for t in thresholds]
    rows = [{'mode': 'ground truth 640x480', 'flying': 0, 'abs_rel': 0.0, 'coverage': 1.0}]
    for name, rgb, gt, camera in frames:
        rows[0]['flying'] += flying_points(gt)
    for mode, threshold in configs:
        flying, errors, kept, valid = 0, [], 0, 0
        for _name, rgb, gt, camera in frames:
            runner = backend or MapBackend(area_down(gt, (w, h)))
            config = FrameConfig(depth_upsampling=mode, edge_threshold=threshold or 0.1,
                                 max_output_pixels=0)
            depth = FrameProcessor(meta, runner, config).run(rgb, camera).depth
            flying += flying_points(depth)
            both = np.isfinite(depth) & np.isfinite(gt)
            if source == 'model':  # the bundled model has no real scale: judge shape only
                depth = depth * np.nanmedian(gt[both]) / np.nanmedian(depth[both])
            errors.append(np.abs(depth[both] - gt[both]) / gt[both])
            kept += int(both.sum())
            valid += int(np.isfinite(gt).sum())
        label = mode if threshold is None else f'{mode} {threshold:g}'
        rows.append({'mode': label, 'flying': flying,
                     'abs_rel': float(np.mean(np.concatenate(errors))),
                     'coverage': kept / valid})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--data', default=os.environ.get('MONO_DEPTH_SHARED_DATA', os.path.join(
        os.path.dirname(REPO), 'shared', 'data')))
    parser.add_argument('--model-size', default='160x120', help='WxH of the "model output"')
    parser.add_argument('--source', choices=('gt', 'model'), default='gt')
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.05, 0.1, 0.2])
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.model_size.lower().split('x'))
    frames = load_frames(args.data)
    if not frames:
        print(f'no NYU or Redwood samples under {args.data}', file=sys.stderr)
        return 1
    rows = measure(frames, args.source, (w, h), args.thresholds)
    assert set(UPSAMPLING_MODES) <= {r['mode'].split()[0] for r in rows[1:]}
    pixels = sum(f[2].size for f in frames)
    print(f'{len(frames)} frames ({pixels} pixels), source {args.source}, model output {w}x{h}, '
          f'flying = between two neighbours differing by > {JUMP:.0%}')
    print('| upsampling | flying points | per frame | abs_rel | coverage |')
    print('|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["mode"]} | {r["flying"]} | {r["flying"] / len(frames):.0f} | '
              f'{r["abs_rel"]:.4f} | {r["coverage"]:.4f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
