#!/usr/bin/env python3
"""
The two floors a depth model must beat on real pictures, computed reproducibly.

* **constant**: one depth for every pixel, the evaluation set's median ground truth
  (metric); median-scaled, any constant becomes each image's own median.
* **ground plane**: the camera is level at a fixed height above a flat floor (1.0 m indoors,
  KITTI's 1.65 m outdoors); each pixel below the horizon sees the floor at
  ``height * fy / (v - cy)``, and nothing is farther than a wall at the constant floor's
  depth (so above the horizon it equals the constant). It uses each image's intrinsics and
  nothing learnt. A level camera indoors sees the floor only in the bottom rows, so a
  second variant, **ground plane tilted**, pitches the same camera 10 degrees down (hand-held
  and many robot cameras look slightly down); the stronger of the two is the floor to beat.

Both go through the same metrics, caps and crops as ``training/evaluate.py``. The real
sets are the scene-split folders of ``training/real_split.py`` plus the KITTI samples.

    python scripts/eval/floors.py [--real runs/real] [--data ../shared/data] [--json OUT]
"""

import argparse
import json
import os
import sys
from typing import Dict, List, NamedTuple, Optional

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402
import numpy as np  # noqa: E402
from training.datasets import FolderDataset, KittiObject  # noqa: E402
from training.metrics import (average_metrics, compute_depth_metrics,  # noqa: E402
                              NoValidPixelsError)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_REAL = os.path.join(HERE, 'runs', 'real')
DEFAULT_DATA = os.path.join(HERE, '..', 'shared', 'data')
MIN_DEPTH = 0.1


class RealSet(NamedTuple):
    """One real evaluation set and how ``training/evaluate.py`` reads it."""

    name: str
    kind: str            # evaluate.py --dataset
    root: str
    depth_scale: float
    intrinsics: str      # file or preset ('' for nyu/kitti)
    cap: float
    crop: Optional[str]
    camera_height: float  # for the ground-plane prior (m)


def real_sets(real: str = DEFAULT_REAL, data: str = DEFAULT_DATA,
              names: Optional[List[str]] = None) -> List[RealSet]:
    """Return the real sets (see the module docstring), optionally only the named ones."""
    sets = [
        RealSet('nyu_test', 'nyu', os.path.join(real, 'nyu_test'), 0.001, '', 10.0, 'eigen',
                1.0),
        RealSet('nyu_all', 'nyu', os.path.join(real, 'nyu_all'), 0.001, '', 10.0, 'eigen',
                1.0),
        RealSet('nyu_val', 'nyu', os.path.join(real, 'nyu_val'), 0.001, '', 10.0, 'eigen',
                1.0),
        RealSet('redwood', 'folder', os.path.join(real, 'redwood'), 0.001,
                os.path.join(real, 'redwood', 'camera.json'), 10.0, None, 1.0),
        RealSet('tum', 'folder', os.path.join(real, 'tum'), 0.0002,
                os.path.join(real, 'tum', 'camera.json'), 10.0, None, 1.0),
        RealSet('sevenscenes', 'folder', os.path.join(real, 'sevenscenes'), 0.001,
                os.path.join(real, 'sevenscenes', 'camera.json'), 10.0, None, 1.0),
        RealSet('kitti', 'kitti', os.path.join(data, 'kitti', 'object_training'), 1.0, '',
                80.0, 'garg', 1.65),
    ]
    return [s for s in sets if names is None or s.name in names]


def open_set(spec: RealSet, height: int = 120, width: int = 160):
    """Return the dataset of a RealSet (its load() gives native-size samples)."""
    size = dict(height=height, width=width)
    if spec.kind == 'kitti':
        return KittiObject(spec.root, **size)
    intrinsics = spec.intrinsics or 'kinect_nyu'
    return FolderDataset(spec.root, intrinsics=intrinsics, depth_scale=spec.depth_scale,
                         **size)


TILT_DEG = 10.0


def ground_plane_prior(intrinsics, shape, camera_height: float, wall: float,
                       pitch_deg: float = 0.0) -> np.ndarray:
    """
    Depth (optical z) of a camera pitched ``pitch_deg`` down over a flat floor, capped at wall.

    A pixel row's ray (x, y, 1) has a downward world component y cos(p) + sin(p); it meets
    the floor ``camera_height`` below at z = camera_height / (y cos(p) + sin(p)).
    """
    h, w = shape
    if (intrinsics.width, intrinsics.height) != (w, h):
        intrinsics = intrinsics.resize(w, h)
    y = (np.arange(h, dtype=np.float64)[:, None] - intrinsics.cy) / intrinsics.fy
    p = np.radians(pitch_deg)
    down = y * np.cos(p) + np.sin(p)
    with np.errstate(divide='ignore'):
        floor = np.where(down > 0, camera_height / np.maximum(down, 1e-9), np.inf)
    return np.broadcast_to(np.minimum(floor, wall), (h, w)).astype(np.float32)


def evaluate_floors(spec: RealSet) -> Dict[str, Dict[str, float]]:
    """Return {floor name + ('' | ' median-scaled'): averaged metrics} on one real set."""
    data = open_set(spec)
    samples = [data.load(i) for i in range(len(data))]
    valid = [s.depth[(s.depth > MIN_DEPTH) & (s.depth < spec.cap)] for s in samples]
    constant = float(np.median(np.concatenate(valid)))
    out = {}
    for scaled in (False, True):
        for name in ('constant', 'ground_plane', 'ground_plane_tilted'):
            rows = []
            for s in samples:
                if name == 'constant':
                    pred = np.full(s.depth.shape, constant, np.float32)
                else:
                    pred = ground_plane_prior(
                        s.intrinsics, s.depth.shape, spec.camera_height, constant,
                        TILT_DEG if name == 'ground_plane_tilted' else 0.0)
                try:
                    rows.append(compute_depth_metrics(pred, s.depth, min_depth=MIN_DEPTH,
                                                      max_depth=spec.cap, crop=spec.crop,
                                                      median_scaling=scaled))
                except NoValidPixelsError:
                    continue
            out[name + (' median-scaled' if scaled else '')] = average_metrics(rows)
    out['_constant_m'] = {'value': constant, 'images': float(len(samples))}
    return out


def main(argv=None) -> int:
    """Print the floors on every real set."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--real', default=DEFAULT_REAL, help='folder from real_split.py')
    parser.add_argument('--data', default=DEFAULT_DATA, help='the shared sample data')
    parser.add_argument('--sets', nargs='*', default=None, help='names (default: all)')
    parser.add_argument('--json', default=None, help='write the results here')
    args = parser.parse_args(argv)
    results = {}
    for spec in real_sets(args.real, args.data, args.sets):
        results[spec.name] = evaluate_floors(spec)
        const = results[spec.name]['_constant_m']['value']
        sys.stdout.write(f'{spec.name} (crop {spec.crop or "none"}, cap {spec.cap:g} m, '
                         f'constant {const:.2f} m, camera height {spec.camera_height} m)\n')
        for name, m in results[spec.name].items():
            if not name.startswith('_'):
                sys.stdout.write(f'  {name:28s} abs_rel {m["abs_rel"]:.3f}  rmse '
                                 f'{m["rmse"]:.3f}  d1 {m["d1"]:.3f}\n')
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
