#!/usr/bin/env python3
"""
Cost and accuracy of each scale source, in one table.

    OMP_NUM_THREADS=1 python scripts/bench_scale.py [--data ../shared/data] [--repeats 200]

Cost: CPU time per frame at 640x480 on one core (ground_plane: RANSAC on the decimated lower image;
sparse_depth: 2,000 samples from a registered sparse depth image, including reading them
out of the image; range: the central window), minimum and median of ``repeats`` runs.
Reading the 2,000 samples out of a 640x480 sparse depth image happens once per message, not
per frame; it is its own row.

Accuracy: median relative depth error after the fit, on real samples, with a relative
"model" that is measured depth under an affine map (an oracle: it isolates the error of
the scale recovery from the error of a network):

* KITTI (3 frames): sparse_depth from one half of the Velodyne points, the oracle from the
  other half (each point spread to a 5x5 neighbourhood), error on the held-out half;
  ground_plane at the setup's 1.65 m with the camera taken as level, both with the shift
  known to be 0 and with the inverse-depth shift fitted from the pitch; range from the
  LiDAR in the central window.
* NYU (10 frames): sparse_depth from 0.5% of the pixels with 1% range noise; range from the
  central window's true depth with 1% noise. No ground_plane: the camera heights are not
  published.
"""

import argparse
import math
import os
from pathlib import Path
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
from mono_depth_ros.core import kitti  # noqa: E402
from mono_depth_ros.core import scale as sc  # noqa: E402
from mono_depth_ros.core.intrinsics import preset  # noqa: E402
from mono_depth_ros.sim.synthetic import look_at, Scene  # noqa: E402
import numpy as np  # noqa: E402

KITTI_HEIGHT = 1.65


def timed(fn, repeats):
    """Return (min, median) CPU time of this thread in ms of fn()."""
    fn()
    times = []
    for _ in range(repeats):
        # CPU time, not wall time: on a shared machine the wall clock also counts the time
        # other processes hold the core, which is not what a frame costs.
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return float(np.min(times) * 1e3), float(np.median(times) * 1e3)


def med_err(depth, truth):
    valid = np.isfinite(depth) & np.isfinite(truth) & (truth > 0)
    return float(np.median(np.abs(depth[valid] / truth[valid] - 1.0)))


def cost(repeats):
    """Return {source: (median ms, p90 ms)} at 640x480."""
    intr = preset('kinect_nyu').resize(640, 480)
    scene = Scene.random(seed=1)
    eye = np.array([1.6, 1.6, 0.8])
    d = scene.size[:2] - 0.5 - eye[:2]
    d /= np.linalg.norm(d)
    pitch = math.radians(10)
    truth = scene.render(intr, look_at(eye, eye + np.array([d[0], d[1], -math.tan(pitch)])))
    z = truth.depth.astype(np.float64)
    base = (1.7 / z + 0.2).astype(np.float32)
    rng = np.random.default_rng(0)
    sparse = np.zeros(z.shape, np.float32)
    rows, cols = rng.integers(0, 480, 2000), rng.integers(0, 640, 2000)
    sparse[rows, cols] = z[rows, cols]

    def ground():
        fit = sc.fit_ground_plane(base, 'inverse', intr, 0.8, pitch)
        assert fit.ok, fit.reason

    samples = sc.SparseSamples.from_depth_image(sparse, 0.0)

    def sparse_fit():
        b, zz = samples.pairs(base)
        assert sc.fit_sparse(b, zz, 'inverse').ok

    def range_fit():
        assert sc.fit_range(base, 'inverse', float(z[240, 320])).ok

    est = sc.ScaleEstimator(sc.ScaleConfig(source='fixed', scale=1.7, shift=0.2), 'inverse')
    return {'ground_plane': timed(ground, repeats), 'sparse_depth': timed(sparse_fit, repeats),
            'sparse message': timed(lambda: sc.SparseSamples.from_depth_image(sparse, 0.0),
                                    repeats),
            'range': timed(range_fit, repeats),
            'fixed': timed(lambda: est.update(base, intr, 0.0), repeats)}


def kitti_accuracy(root):
    """Return {source: [errors per frame]} on the KITTI object samples."""
    out = {'sparse_depth': [], 'ground_plane (shift 0)': [],
           'ground_plane (shift fitted, level)': [], 'range': []}
    folder = root / 'kitti' / 'object_training'
    for i, name in enumerate(('000000', '000001', '000002')):
        h, w = cv2.imread(str(folder / 'image_2' / f'{name}.png')).shape[:2]
        calib = kitti.read_kitti_calib(str(folder / 'calib' / f'{name}.txt'))
        intr = kitti.camera_intrinsics(calib, w, h)
        points = kitti.read_velodyne_bin(str(folder / 'velodyne' / f'{name}.bin'))
        order = np.random.default_rng(i).permutation(len(points))
        half_a, half_b = (kitti.project_velodyne_to_depth(points[order[k::2]], calib, w, h)
                          for k in (0, 1))
        inv_a = np.where(half_a > 0, 1.0 / np.where(half_a > 0, half_a, 1.0), 0.0)
        dense = cv2.dilate(inv_a.astype(np.float32), np.ones((5, 5), np.uint8))
        base = np.where(dense > 0, 0.37 * dense + 0.05, np.nan).astype(np.float32)
        b, z = sc.SparseSamples.from_depth_image(half_b, 0.0).pairs(base)
        pick = np.random.default_rng(0).choice(b.size, min(2000, b.size), replace=False)
        fit = sc.fit_sparse(b[pick], z[pick], 'inverse')
        out['sparse_depth'].append(med_err(1.0 / (fit.scale * b + fit.shift), z))
        lidar = np.maximum(half_a, half_b)
        truth = np.where(lidar > 0, lidar, np.nan)
        for label, shift, fit_shift in (('ground_plane (shift 0)', 0.0, False),
                                        ('ground_plane (shift fitted, level)', 0.05, True)):
            rel = (0.37 / truth + shift).astype(np.float32)
            fit = sc.fit_ground_plane(rel, 'inverse', intr, KITTI_HEIGHT, 0.0,
                                      fit_shift=fit_shift)
            out[label].append(med_err(sc.apply_scale(rel, 'inverse', fit.scale, fit.shift),
                                      truth) if fit.ok else math.nan)
        rel = (0.37 / truth).astype(np.float32)
        window = truth[h // 2 - 10:h // 2 + 10, w // 2 - 30:w // 2 + 30]
        reading = float(np.nanmedian(window)) if np.isfinite(window).any() else math.nan
        fit = sc.fit_range(rel, 'inverse', reading, window=0.1, min_inliers=3)
        out['range'].append(med_err(sc.apply_scale(rel, 'inverse', fit.scale, 0.0), truth)
                            if fit.ok else math.nan)
    return out


def nyu_accuracy(root):
    """Return {source: [errors per frame]} on the NYU samples."""
    out = {'sparse_depth': [], 'range': []}
    rng = np.random.default_rng(5)
    for path in sorted((root / 'nyu' / 'depth').glob('*.png')):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        depth = np.where(raw > 0, raw / 1000.0, np.nan)
        base = (1.3 / depth + 0.1).astype(np.float32)
        rows, cols = np.nonzero(np.isfinite(depth))
        pick = rng.choice(rows.size, int(0.005 * depth.size), replace=False)
        sparse = np.zeros(depth.shape, np.float32)
        sparse[rows[pick], cols[pick]] = depth[rows[pick], cols[pick]] * (
            1 + 0.01 * rng.standard_normal(pick.size))
        b, z = sc.SparseSamples.from_depth_image(sparse, 0.0).pairs(base)
        fit = sc.fit_sparse(b, z, 'inverse')
        out['sparse_depth'].append(med_err(sc.apply_scale(base, 'inverse', fit.scale,
                                                          fit.shift), depth))
        rel = (1.3 / depth).astype(np.float32)
        reading = float(np.nanmedian(depth[228:252, 304:336])) * (1 + 0.01 * rng.standard_normal())
        fit = sc.fit_range(rel, 'inverse', reading)
        out['range'].append(med_err(sc.apply_scale(rel, 'inverse', fit.scale, 0.0), depth)
                            if fit.ok else math.nan)
    return out


def fmt(values):
    if not values:
        return 'n/a'
    v = np.asarray(values, float)
    if np.isnan(v).any():
        return f'{np.isnan(v).sum()} of {v.size} no fit'
    return f'{100 * np.median(v):.1f}% (max {100 * v.max():.1f}%)'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(Path(__file__).resolve().parents[2] / 'shared'
                                              / 'data'))
    parser.add_argument('--repeats', type=int, default=200)
    args = parser.parse_args()
    root = Path(args.data)
    costs = cost(args.repeats)
    have = root.is_dir()
    k = kitti_accuracy(root) if have else {}
    n = nyu_accuracy(root) if have else {}
    print(f'scale sources: CPU ms per 640x480 frame on one core ({args.repeats} runs), '
          'median relative depth error after the fit on real samples')
    print(f'{"source":36s} {"min ms":>7s} {"median ms":>9s}  {"KITTI (3 frames)":24s} '
          f'{"NYU (10 frames)":24s}')
    rows = [('ground_plane (shift 0)', 'ground_plane'),
            ('ground_plane (shift fitted, level)', 'ground_plane'),
            ('sparse_depth', 'sparse_depth'),
            ('sparse_depth: per message (image)', 'sparse message'), ('range', 'range'),
            ('fixed', 'fixed')]
    for label, key in rows:
        low, med = costs[key]
        print(f'{label:36s} {low:7.2f} {med:9.2f}  {fmt(k.get(label, [])):24s} '
              f'{fmt(n.get(label, [])):24s}')
    if not have:
        print(f'(no real samples at {root}: accuracy columns empty)')


if __name__ == '__main__':
    main()
