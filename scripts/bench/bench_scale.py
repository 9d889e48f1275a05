#!/usr/bin/env python3
"""
Cost and accuracy of each scale source with real networks on real pictures, in one table.

    OMP_NUM_THREADS=1 python scripts/bench/bench_scale.py [--data ../shared/data] [--repeats 200]
        [--models fastdepth:scale,fastdepth:scale_shift,starter:scale] [--frames 200]

Cost: CPU time per frame at 640x480 on one core of each source's fit (synthetic input of
that size: ground_plane's RANSAC on the decimated lower image, sparse_depth on 2,000
samples, range on its window), minimum and median of ``repeats`` runs; reading 2,000
samples out of a sparse depth image happens once per message and is its own row.

Accuracy: the networks are real and run on real pictures. Each model's metres are thrown
away (its output taken as relative: ``scale`` unknown, or ``scale_shift``), and the scale
comes from the source alone:

* NYU (10 frames) and Redwood (5): ``sparse_depth`` from 0.5% of the sensor's pixels,
  ``range`` from the sensor's median depth in the 5% window at (cx, cy);
* KITTI (3 frames): ``sparse_depth`` from half of the real Velodyne points, taken into the
  camera's optical frame by the calibration (what tf gives the node), evaluated on the
  other half; ``ground_plane`` at the setup's 1.65 m, camera level; ``range`` from those
  points near (cx, cy);
* 7-Scenes (the 200-frame sequence, 30 Hz): ``motion`` with the sequence's poses as
  odometry, ``sparse_depth`` and ``range`` as for NYU (its depth is not registered to the
  colour image, so its samples land 10-25 px off).

For each: metric delta1 and abs_rel against the sensor; the ceiling (the same network with
the ground truth's median scale per frame); the network's own metres (``none``); on the
sequence the time to the first metric output, the scale jitter (median |log| change of the
published-to-true median ratio between consecutive frames) and the flicker of the published
depth (the previous frame's depth warped into this view with the poses, median relative
change, on every fourth pixel); the fit's CPU per frame.
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
from mono_depth_ros.core import kitti  # noqa: E402
from mono_depth_ros.core import scale as sc  # noqa: E402
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor  # noqa: E402
from mono_depth_ros.core.intrinsics import Intrinsics, preset  # noqa: E402
from mono_depth_ros.inference import create_backend  # noqa: E402
from mono_depth_ros.sim.synthetic import look_at, Scene  # noqa: E402
import numpy as np  # noqa: E402

KITTI_HEIGHT = 1.65
ROOT = Path(__file__).resolve().parents[2]


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


class CachedBackend:
    """A backend that runs the network once per input (several sources share a frame)."""

    def __init__(self, backend):
        self.backend = backend
        self.meta = backend.meta
        self._key = None
        self._out = None

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def infer(self, tensor):
        key = hash(np.ascontiguousarray(tensor).tobytes())
        if key != self._key:
            self._key, self._out = key, self.backend.infer(tensor)
        return self._out


def load_model(path, unknown):
    """Return (FrameProcessor as relative, FrameProcessor as published, kind)."""
    backend = CachedBackend(create_backend('onnxruntime', str(path)))
    meta = backend.meta
    relative = dataclasses.replace(
        meta, output_mode={'metric': 'relative_depth', 'inverse_depth':
                           'relative_inverse_depth'}.get(meta.output_mode, meta.output_mode),
        scale_unknown=unknown, focal_rescale=False, min_depth=1e-3, max_depth=1e3)
    # A relative model has no metres of its own: its 'none' row is the map it publishes
    # with a unit scale.
    return (FrameProcessor(relative, backend),
            FrameProcessor(meta if meta.is_metric else relative, backend),
            sc.base_kind(relative.output_mode))


def depth_metrics(pred, gt):
    """Return (delta1, abs_rel, valid pixels) where both are valid."""
    ok = np.isfinite(pred) & (pred > 0) & (gt > 0) & np.isfinite(gt)
    if not ok.any():
        return math.nan, math.nan, 0
    ratio = pred[ok] / gt[ok]
    return (float(np.mean(np.maximum(ratio, 1 / ratio) < 1.25)),
            float(np.mean(np.abs(pred[ok] - gt[ok]) / gt[ok])), int(ok.sum()))


def sparse_of(gt, rng, fraction=0.005):
    """Return a sparse depth image with ``fraction`` of the sensor's valid pixels."""
    rows, cols = np.nonzero(gt > 0)
    pick = rng.choice(rows.size, min(rows.size, int(fraction * gt.size)), replace=False)
    out = np.zeros(gt.shape, np.float32)
    out[rows[pick], cols[pick]] = gt[rows[pick], cols[pick]]
    return out


def range_of(gt, camera, window=0.05):
    """Return the sensor's median depth in the window at (cx, cy): a rangefinder reading."""
    h, w = gt.shape
    hw, hh = max(2, int(round(w * window / 2))), max(2, int(round(h * window / 2)))
    cu, cv = int(round(camera.cx + 0.5)), int(round(camera.cy + 0.5))
    patch = gt[cv - hh:cv + hh, cu - hw:cu + hw]
    patch = patch[patch > 0]
    return float(np.median(patch)) if patch.size else math.nan


def frames_of(root, name, limit):
    """Yield (rgb, gt depth m, camera, pose or None, extra) per frame of a dataset."""
    if name == 'NYU':
        cam = Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, 640, 480)
        for path in sorted((root / 'nyu' / 'rgb').glob('*.png'))[:limit]:
            rgb = cv2.imread(str(path))[..., ::-1]
            gt = cv2.imread(str(root / 'nyu' / 'depth' / path.name), -1) / 1000.0
            yield np.ascontiguousarray(rgb), gt.astype(np.float32), cam, None, {}
    elif name == 'Redwood':
        cam = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
        for path in sorted((root / 'redwood' / 'color').glob('*.jpg'))[:limit]:
            rgb = cv2.imread(str(path))[..., ::-1]
            gt = cv2.imread(str(root / 'redwood' / 'depth' / (path.stem + '.png')), -1) / 1e3
            yield np.ascontiguousarray(rgb), gt.astype(np.float32), cam, None, {}
    elif name == 'KITTI':
        folder = root / 'kitti' / 'object_training'
        for i, frame in enumerate(('000000', '000001', '000002')[:limit]):
            rgb = np.ascontiguousarray(cv2.imread(str(folder / 'image_2' / f'{frame}.png'))
                                       [..., ::-1])
            h, w = rgb.shape[:2]
            calib = kitti.read_kitti_calib(str(folder / 'calib' / f'{frame}.txt'))
            points = kitti.read_velodyne_bin(str(folder / 'velodyne' / f'{frame}.bin'))
            order = np.random.default_rng(i).permutation(len(points))
            # Half A in the camera's optical frame (what tf gives the node), half B scores.
            to_cam = kitti.velo_to_rect(calib)
            to_cam[:3, 3] += kitti.camera_offset(calib, 2)
            half_a = points[order[0::2], :3] @ to_cam[:3, :3].T + to_cam[:3, 3]
            gt = kitti.project_velodyne_to_depth(points[order[1::2]], calib, w, h)
            cam = kitti.camera_intrinsics(calib, w, h)
            yield rgb, gt.astype(np.float32), cam, None, {'points': half_a}
    elif name == '7-Scenes':
        seq = root / 'sevenscenes_redkitchen'
        cam = Intrinsics(585.0, 585.0, 320.0, 240.0, 640, 480)
        for i in range(limit):
            rgb = np.ascontiguousarray(cv2.imread(str(seq / f'frame-{i:06d}.color.jpg'))
                                       [..., ::-1])
            gt = cv2.imread(str(seq / f'frame-{i:06d}.depth.png'), -1) / 1000.0
            pose = np.loadtxt(seq / f'frame-{i:06d}.pose.txt')
            yield rgb, gt.astype(np.float32), cam, pose, {}


SOURCES = {'NYU': ('sparse_depth', 'range'), 'Redwood': ('sparse_depth', 'range'),
           'KITTI': ('sparse_depth', 'ground_plane', 'range'),
           '7-Scenes': ('motion', 'sparse_depth', 'range')}
SEQUENCES = ('7-Scenes',)


def flicker(prev, cur, pose_prev, pose_cur, cam, step=4):
    """Return the median relative change of prev's depth warped into cur's view."""
    h, w = prev.shape
    v, u = np.mgrid[0:h:step, 0:w:step]
    z = prev[v, u]
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    pts = np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z], axis=1)
    t = np.linalg.solve(pose_cur, pose_prev)
    q = pts @ t[:3, :3].T + t[:3, 3]
    front = q[:, 2] > 0
    q = q[front]
    u2 = np.floor(q[:, 0] / q[:, 2] * cam.fx + cam.cx + 0.5).astype(int)
    v2 = np.floor(q[:, 1] / q[:, 2] * cam.fy + cam.cy + 0.5).astype(int)
    inside = (u2 >= 0) & (u2 < w) & (v2 >= 0) & (v2 < h)
    d = cur[v2[inside], u2[inside]]
    zq = q[inside, 2]
    good = np.isfinite(d) & (d > 0)
    if not good.any():
        return math.nan
    return float(np.median(np.abs(d[good] - zq[good]) / zq[good]))


def run_dataset(root, dataset, model, unknown, limit, smoothing=0.0):
    """Return {row: stats} for one model on one dataset (see the module docstring)."""
    frames, metric_frames, kind = load_model(model, unknown)
    config = FrameConfig()
    fit_shift = unknown == 'scale_shift'
    seq = dataset in SEQUENCES
    estimators = {}
    stats = {}
    rng = np.random.default_rng(0)
    prev = {}

    def make(source):
        cfg = sc.ScaleConfig(source=source, camera_height=KITTI_HEIGHT,
                             scale_min_inliers=10, scale_smoothing=smoothing,
                             scale_max_jump=0.3 if seq else 0.0)
        return sc.ScaleEstimator(cfg, kind, fit_shift=fit_shift)

    for i, (rgb, gt, cam, pose, extra) in enumerate(frames_of(root, dataset, limit)):
        stamp = i / 30.0
        rows = {}
        rel = frames.run(rgb, cam, config, scale=(1.0, 0.0)).depth
        ok = (gt > 0) & np.isfinite(rel) & (rel > 0)
        rows['ceiling'] = (rel * np.float32(np.median(gt[ok]) / np.median(rel[ok])), 0.0)
        rows['none (its own metres)'] = (metric_frames.run(rgb, cam, config).depth, 0.0)
        for source in SOURCES[dataset]:
            est = estimators.get(source) if seq else None
            if est is None:
                est = estimators[source] = make(source)
            if source == 'sparse_depth':
                if 'points' in extra:
                    est.add_sparse(sc.SparseSamples.from_points(extra['points'], stamp))
                else:
                    est.add_sparse(sc.SparseSamples.from_depth_image(sparse_of(gt, rng),
                                                                     stamp))
            elif source == 'range':
                if 'points' in extra:
                    p = extra['points']
                    p = p[p[:, 2] > 0]
                    u = p[:, 0] / p[:, 2] * cam.fx + cam.cx
                    v = p[:, 1] / p[:, 2] * cam.fy + cam.cy
                    near = (np.abs(u - cam.cx) < 0.05 * cam.width) & (np.abs(v - cam.cy) <
                                                                      0.05 * cam.height)
                    reading = float(np.median(p[near, 2])) if near.any() else math.nan
                else:
                    reading = range_of(gt, cam)
                est.add_range(stamp, reading)
            cpu = [0.0]
            real_update = est.update

            def timed(*a, _u=real_update, **k):
                c0 = time.thread_time()
                out = _u(*a, **k)
                cpu[0] = time.thread_time() - c0
                return out
            est.update = timed
            res = frames.run(rgb, cam, config, scale=est.for_frame(stamp, cam, rgb, pose))
            del est.update
            rows[source] = (res.depth if res.scale is not None else None, cpu[0])
        for row, (depth, cpu) in rows.items():
            st = stats.setdefault(row, {'d1': [], 'abs_rel': [], 'frames': 0, 'first': None,
                                        'ratio': [], 'flicker': [], 'cpu': [], 'n': 0})
            st['n'] += 1
            st['cpu'].append(cpu)
            if depth is None:
                st['ratio'].append(math.nan)
                prev.pop(row, None)
                continue
            d1, ar, n = depth_metrics(depth, gt)
            if not n:
                continue
            st['d1'].append(d1)
            st['abs_rel'].append(ar)
            st['frames'] += 1
            if st['first'] is None:
                st['first'] = stamp
            okk = np.isfinite(depth) & (depth > 0) & (gt > 0)
            st['ratio'].append(float(np.median(depth[okk] / gt[okk])))
            if seq and row in prev:
                st['flicker'].append(flicker(prev[row][0], depth, prev[row][1], pose, cam))
            if seq:
                prev[row] = (depth, pose)
    return stats


def summarize(st, seq):
    """Return the row's figures as strings."""
    d1 = f'{np.mean(st["d1"]):.3f}' if st['d1'] else 'n/a'
    ar = f'{np.mean(st["abs_rel"]):.3f}' if st['abs_rel'] else 'n/a'
    out = [d1, ar, f'{st["frames"]}/{st["n"]}']
    if seq:
        r = np.log(np.asarray(st['ratio'], float))
        jumps = np.abs(np.diff(r))
        jumps = jumps[np.isfinite(jumps)]
        out += [f'{st["first"]:.2f} s' if st['first'] is not None else 'never',
                f'{np.median(jumps):.4f}' if jumps.size else 'n/a',
                f'{np.nanmedian(st["flicker"]):.4f}' if st['flicker'] else 'n/a']
    cpu = [c for c in st['cpu'] if c > 0]
    out.append(f'{np.median(cpu) * 1e3:.2f}' if cpu else '-')
    return out


def main():
    """Print the cost table, then the real-network table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=str(ROOT.parent / 'shared'
                                              / 'data'))
    parser.add_argument('--repeats', type=int, default=200)
    parser.add_argument('--models', default='fastdepth:scale,fastdepth:scale_shift,'
                                            'starter:scale')
    parser.add_argument('--model', action='append', default=[], metavar='NAME=ONNX',
                        help='another model to name in --models (e.g. a self-supervised '
                             'export; its own metadata may already be relative)')
    parser.add_argument('--datasets', default='NYU,Redwood,KITTI,7-Scenes')
    parser.add_argument('--frames', type=int, default=200)
    parser.add_argument('--smoothing', type=float, default=0.0,
                        help='scale_smoothing on the sequence, s')
    args = parser.parse_args()
    cv2.setNumThreads(1)
    root = Path(args.data)
    costs = cost(args.repeats)
    print(f'scale sources: CPU ms per 640x480 frame on one core ({args.repeats} runs)')
    print(f'{"source":36s} {"min ms":>7s} {"median ms":>9s}')
    for label, key in (('ground_plane', 'ground_plane'), ('sparse_depth', 'sparse_depth'),
                       ('sparse_depth: per message (image)', 'sparse message'),
                       ('range', 'range'), ('fixed', 'fixed')):
        low, med = costs[key]
        print(f'{label:36s} {low:7.2f} {med:9.2f}')
    if not root.is_dir():
        print(f'(no real samples at {root}: no accuracy table)')
        return
    models = {'fastdepth': ROOT / 'models' / 'fastdepth_nyu.onnx',
              'starter': ROOT / 'models' / 'starter_indoor.onnx'}
    for item in args.model:
        name, _, path = item.partition('=')
        models[name] = Path(path)
    print()
    print('| model (taken as relative) | data | source | delta1 | abs_rel | frames with '
          'metres | first metres | scale jitter | flicker | fit CPU ms |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for spec in args.models.split(','):
        name, _, unknown = spec.partition(':')
        for dataset in args.datasets.split(','):
            limit = args.frames if dataset in SEQUENCES else 100
            stats = run_dataset(root, dataset, models[name], unknown or 'scale', limit,
                                args.smoothing)
            seq = dataset in SEQUENCES
            for row, st in stats.items():
                cells = summarize(st, seq)
                if not seq:
                    cells = cells[:3] + ['-', '-', '-'] + cells[3:]
                print(f'| {name} ({unknown} unknown) | {dataset} | {row} | '
                      + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()
