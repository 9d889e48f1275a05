#!/usr/bin/env python3
"""
scale_source motion on the real 7-Scenes sequence with a real network: accuracy and cost.

    OMP_NUM_THREADS=1 python scripts/bench/bench_motion.py [--model models/fastdepth_nyu.onnx]
        [--data ../shared/data] [--frames 200] [--fx 585] [--unknown scale]

The model's output is taken as relative (its metres thrown away: ``--unknown`` scale or
scale_shift), and the camera poses of the sequence stand in for odometry. Per run it prints:

* metric delta1 and abs_rel of the published depth against the sequence's depth (compared
  at 160x120: the depth is not registered to the colour image, see the data's README);
* the ceiling: the same model scaled by the ground truth's median ratio per frame;
* the model's own metric output without a source, for reference;
* time to the first metric output (stream seconds), frames with metres, scale jitter (the
  median |log| ratio of consecutive published scales);
* CPU per frame on this thread, tracking (the tracker) and fit (the rest of the estimator)
  apart, median and 90th percentile over the frames that tracked.

The sequence's colour focal is given as 585 px; triangulation scales with the focal, so
``--fx`` shows how much a wrong focal moves the result.
"""

import argparse
import dataclasses
import math
import os
from pathlib import Path
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cv2  # noqa: E402
from mono_depth_ros.core import scale as sc  # noqa: E402
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor  # noqa: E402
from mono_depth_ros.core.intrinsics import Intrinsics  # noqa: E402
from mono_depth_ros.inference import create_backend  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def metrics(pred, gt):
    """Return (delta1, abs_rel) at 160x120 where both are valid."""
    p = cv2.resize(pred, (160, 120), interpolation=cv2.INTER_NEAREST)
    g = cv2.resize(gt, (160, 120), interpolation=cv2.INTER_NEAREST)
    ok = np.isfinite(p) & (p > 0) & (g > 0)
    ratio = p[ok] / g[ok]
    return float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25)), float(
        np.mean(np.abs(p[ok] - g[ok]) / g[ok]))


def main(argv=None) -> int:
    """Run the sequence once per configuration and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--model', default=str(ROOT / 'models' / 'fastdepth_nyu.onnx'))
    ap.add_argument('--data', default=str(ROOT.parent / 'shared' / 'data'))
    ap.add_argument('--frames', type=int, default=200)
    ap.add_argument('--fx', type=float, default=585.0)
    ap.add_argument('--unknown', choices=('scale', 'scale_shift'), default='scale')
    ap.add_argument('--smoothing', type=float, default=0.0)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    seq = Path(args.data) / 'sevenscenes_redkitchen'
    backend = create_backend('onnxruntime', args.model)
    meta = backend.meta
    relative = dataclasses.replace(
        meta, output_mode={'metric': 'relative_depth',
                           'inverse_depth': 'relative_inverse_depth'}[meta.output_mode],
        scale_unknown=args.unknown, focal_rescale=False)
    frames = FrameProcessor(relative, backend)
    metric_frames = FrameProcessor(meta, backend)
    camera = Intrinsics(args.fx, args.fx, 320.0, 240.0, 640, 480)
    est = sc.ScaleEstimator(sc.ScaleConfig(source='motion', scale_smoothing=args.smoothing,
                                           scale_min_inliers=10),
                            sc.base_kind(relative.output_mode),
                            fit_shift=args.unknown == 'scale_shift')
    est._make_motion()
    tracker = est._motion
    track_cpu = []
    real_update = tracker.update

    def timed_update(*a, **k):
        t0 = time.thread_time()
        out = real_update(*a, **k)
        track_cpu.append((time.thread_time() - t0, out.reason == '' or out.reason ==
                          'few_tracks'))
        return out
    tracker.update = timed_update
    real_est_update = est.update
    est_cpu = []

    def timed_est(*a, **k):
        t0 = time.thread_time()
        out = real_est_update(*a, **k)
        est_cpu.append(time.thread_time() - t0)
        return out
    est.update = timed_est
    rows = {'motion': [], 'ceiling': [], 'metric model': []}
    first, scales = None, []
    config = FrameConfig()
    for i in range(args.frames):
        bgr = cv2.imread(str(seq / f'frame-{i:06d}.color.jpg'))
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(seq / f'frame-{i:06d}.depth.png'), cv2.IMREAD_UNCHANGED) / 1000.0
        gt = gt.astype(np.float32)
        pose = np.loadtxt(seq / f'frame-{i:06d}.pose.txt')
        stamp = i / 30.0
        res = frames.run(rgb, camera, config, scale=est.for_frame(stamp, camera, rgb, pose))
        rel = frames.run(rgb, camera, config, scale=(1.0, 0.0)).depth
        ok = (gt > 0) & np.isfinite(rel) & (rel > 0)
        ceil = rel * np.float32(np.median(gt[ok]) / np.median(rel[ok]))
        rows['ceiling'].append(metrics(ceil, gt))
        rows['metric model'].append(metrics(metric_frames.run(rgb, camera, config).depth, gt))
        if res.scale is not None and res.depth is not None:
            if first is None:
                first = stamp
            rows['motion'].append(metrics(res.depth, gt))
            scales.append(res.scale[0])
    print(f'7-Scenes redkitchen, {args.frames} frames, {Path(args.model).name} as relative '
          f'({args.unknown} unknown), fx {args.fx:g}, scale_smoothing {args.smoothing:g}')
    for name, vals in rows.items():
        if vals:
            d1, ar = np.mean(np.array(vals), axis=0)
            print(f'  {name:14s} delta1 {d1:.3f}  abs_rel {ar:.3f}  frames {len(vals)}')
        else:
            print(f'  {name:14s} no metric frame')
    jitter = np.median(np.abs(np.diff(np.log(scales)))) if len(scales) > 1 else math.nan
    print(f'  first metric output at {first if first is not None else math.nan:.2f} s; '
          f'scale jitter (median |dlog| per frame) {jitter:.4f}')
    tracked = [t for t, did in track_cpu if did]
    fit = [e - t for e, (t, did) in zip(est_cpu, track_cpu) if did]
    print(f'  CPU per tracked frame (ms): tracking median {np.median(tracked) * 1e3:.2f} '
          f'p90 {np.percentile(tracked, 90) * 1e3:.2f}; fit median {np.median(fit) * 1e3:.2f}'
          f' p90 {np.percentile(fit, 90) * 1e3:.2f}; all frames tracking median '
          f'{np.median([t for t, _ in track_cpu]) * 1e3:.2f} '
          f'max {np.max([t for t, _ in track_cpu]) * 1e3:.2f}')
    print(f'  counts: {dict((k, v) for k, v in est.counts.items() if v)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
