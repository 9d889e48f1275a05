"""
Scale sources on the real samples: KITTI LiDAR and road, NYU, Redwood and TUM depth.

The relative "model" is an oracle stand-in: real measured depth under an affine map. On
KITTI it is built from half of the Velodyne points (spread to their neighbours, as a dense
prediction would be) and the scale is fitted against the other half, so that the sparse
samples never coincide with the points the oracle was made from.
"""

import math

import cv2
from mono_depth_ros.core import kitti
from mono_depth_ros.core import scale as sc
import numpy as np
import pytest

KITTI_HEIGHT = 1.65  # camera height above the road, KITTI setup
FRAMES = ('000000', '000001', '000002')


@pytest.fixture(scope='module')
def kitti_frames(shared_data):
    """Return per frame: intrinsics and the LiDAR depth of two disjoint halves of the scan."""
    root = shared_data / 'kitti' / 'object_training'
    out = []
    for i, name in enumerate(FRAMES):
        height, width = cv2.imread(str(root / 'image_2' / f'{name}.png')).shape[:2]
        calib = kitti.read_kitti_calib(str(root / 'calib' / f'{name}.txt'))
        points = kitti.read_velodyne_bin(str(root / 'velodyne' / f'{name}.bin'))
        order = np.random.default_rng(i).permutation(len(points))
        halves = [kitti.project_velodyne_to_depth(points[order[k::2]], calib, width, height)
                  for k in (0, 1)]
        out.append((kitti.camera_intrinsics(calib, width, height), *halves))
    return out


def test_kitti_sparse_lidar_against_held_out_half(kitti_frames):
    for intr, half_a, half_b in kitti_frames:
        inv_a = np.where(half_a > 0, 1.0 / np.where(half_a > 0, half_a, 1.0), 0.0)
        # Spread each point to a 5x5 neighbourhood (the nearest wins): a dense-ish oracle.
        dense = cv2.dilate(inv_a.astype(np.float32), np.ones((5, 5), np.uint8))
        a, b = 0.37, 0.05
        base = np.where(dense > 0, a * dense + b, np.nan).astype(np.float32)
        pairs_b, pairs_z = sc.SparseSamples.from_depth_image(half_b, 0.0).pairs(base)
        assert pairs_b.size > 2000
        pick = np.random.default_rng(0).choice(pairs_b.size, 2000, replace=False)
        fit = sc.fit_sparse(pairs_b[pick], pairs_z[pick], 'inverse')
        assert fit.ok, fit.reason
        # The map found is the oracle's own (1 / a, -b / a) ...
        assert fit.scale == pytest.approx(1 / a, rel=0.02)
        # ... and the held-out half, never seen by the fit, agrees with it.
        pred = 1.0 / (fit.scale * pairs_b + fit.shift)
        assert np.median(np.abs(pred / pairs_z - 1.0)) < 0.02


def test_kitti_ground_plane_at_1_65_m(kitti_frames):
    errors = []
    for intr, half_a, half_b in kitti_frames:
        lidar = np.maximum(half_a, half_b)
        base = np.where(lidar > 0, 0.37 / np.where(lidar > 0, lidar, 1.0), np.nan)
        base = base.astype(np.float32)
        fit = sc.fit_ground_plane(base, 'inverse', intr, KITTI_HEIGHT, 0.0, fit_shift=False)
        assert fit.ok, fit.reason
        depth = sc.apply_scale(base, 'inverse', fit.scale, fit.shift)
        valid = np.isfinite(depth) & (lidar > 0)
        errors.append(float(np.median(np.abs(depth[valid] / lidar[valid] - 1.0))))
    assert max(errors) < 0.05, errors


def _load_depth_m(path, factor):
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw is not None and raw.dtype == np.uint16, path
    depth = raw.astype(np.float64) / factor
    depth[raw == 0] = np.nan
    return depth


def _indoor_frames(root):
    yield 'nyu', [_load_depth_m(p, 1000.0) for p in sorted((root / 'nyu' / 'depth').glob('*.png'))]
    yield 'redwood', [_load_depth_m(p, 1000.0)
                      for p in sorted((root / 'redwood' / 'depth').glob('*.png'))]
    yield 'tum', [_load_depth_m(root / 'tum' / 'TUM_depth.png', 5000.0)]


def test_indoor_sparse_at_half_a_percent_of_pixels(shared_data):
    rng = np.random.default_rng(5)
    for name, frames in _indoor_frames(shared_data):
        assert frames, name
        for depth in frames:
            a, b = rng.uniform(0.5, 3.0), rng.uniform(0.0, 0.3)
            base = (a / depth + b).astype(np.float32)
            rows, cols = np.nonzero(np.isfinite(depth))
            pick = rng.choice(rows.size, int(0.005 * depth.size), replace=False)
            # A ToF or LiDAR: 1% range noise, 0.5% of the pixels, registered to the camera.
            sparse = np.zeros(depth.shape, np.float32)
            sparse[rows[pick], cols[pick]] = depth[rows[pick], cols[pick]] * (
                1 + 0.01 * rng.standard_normal(pick.size))
            b_s, z_s = sc.SparseSamples.from_depth_image(sparse, 0.0).pairs(base)
            fit = sc.fit_sparse(b_s, z_s, 'inverse')
            assert fit.ok, (name, fit.reason)
            out = sc.apply_scale(base, 'inverse', fit.scale, fit.shift)
            valid = np.isfinite(out) & np.isfinite(depth)
            err = float(np.median(np.abs(out[valid] / depth[valid] - 1.0)))
            assert err < 0.02, (name, err)
            assert math.isfinite(fit.residual) and fit.residual < 0.02
