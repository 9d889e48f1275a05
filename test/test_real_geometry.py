"""Real sensors: depth from NYU, Redwood and TUM gives room geometry; KITTI LiDAR round-trips."""

import json

import cv2
from mono_depth_ros.core import kitti
from mono_depth_ros.core.geometry import backproject
from mono_depth_ros.core.intrinsics import Intrinsics, preset
import numpy as np
import pytest

pytestmark = pytest.mark.shared_data


def dominant_plane(points, threshold, iterations=300, seed=0):
    """Return (inlier share, normal, d) of the best RANSAC plane n . p + d = 0."""
    rng = np.random.default_rng(seed)
    best = (0.0, None, None)
    for _ in range(iterations):
        a, b, c = points[rng.choice(len(points), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n /= norm
        d = -n @ a
        share = np.mean(np.abs(points @ n + d) < threshold)
        if share > best[0]:
            best = (share, n, d)
    return best


def cloud(depth_m, intrinsics, stride=4):
    xyz = backproject(np.ascontiguousarray(depth_m[::stride, ::stride]),
                      intrinsics.subsample(stride), 0.3, 10.0).reshape(-1, 3)
    return xyz[np.isfinite(xyz[:, 2])].astype(np.float64)


def room_check(points, min_share):
    share, normal, _ = dominant_plane(points, threshold=0.03)
    assert len(points) > 1000
    # A room's floor, a wall or a table top holds a good share of what a depth camera sees;
    # a wrong scale or a corrupt decode scatters the points off every plane.
    assert share > min_share, f'dominant plane holds only {share:.0%} of points'
    extent = np.percentile(points, 95, axis=0) - np.percentile(points, 5, axis=0)
    assert np.all(extent > 0.3) and np.all(extent < 15.0), f'not room-sized: {extent}'
    return share, normal


def test_nyu_depth_gives_room_planes(shared_data):
    shares = []
    for path in sorted((shared_data / 'nyu' / 'depth').glob('*.png')):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16 and raw.shape == (480, 640)
        depth = raw.astype(np.float32) / 1000.0
        assert 0.5 < np.median(depth[depth > 0]) < 10.0
        share, _ = room_check(cloud(depth, preset('kinect_nyu')), 0.06)
        shares.append(share)
    assert len(shares) == 10
    # Cluttered NYU views still show a floor or wall in most frames.
    assert np.median(shares) > 0.15, shares


def test_redwood_depth_gives_room_planes(shared_data):
    cam = json.loads((shared_data / 'redwood' / 'camera_primesense.json').read_text())
    k = np.array(cam['intrinsic_matrix']).reshape(3, 3).T  # stored column-major
    intr = Intrinsics.from_K(k, cam['width'], cam['height'])
    assert (intr.fx, intr.cx, intr.cy) == (525.0, 319.5, 239.5)
    for path in sorted((shared_data / 'redwood' / 'depth').glob('*.png')):
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        share, _ = room_check(cloud(raw.astype(np.float32) / 1000.0, intr), 0.25)


def test_tum_depth_gives_room_planes(shared_data):
    raw = cv2.imread(str(shared_data / 'tum' / 'TUM_depth.png'), cv2.IMREAD_UNCHANGED)
    intr = Intrinsics(517.3, 516.5, 318.6, 255.3, raw.shape[1], raw.shape[0])
    room_check(cloud(raw.astype(np.float32) / 5000.0, intr), 0.2)


@pytest.mark.parametrize('frame', ['000000', '000001', '000002'])
def test_kitti_lidar_depth_back_projects_to_velodyne_points(shared_data, frame):
    root = shared_data / 'kitti' / 'object_training'
    calib = kitti.read_kitti_calib(str(root / 'calib' / f'{frame}.txt'))
    image = cv2.imread(str(root / 'image_2' / f'{frame}.png'))
    h, w = image.shape[:2]
    scan = kitti.read_velodyne_bin(str(root / 'velodyne' / f'{frame}.bin'))
    depth = kitti.project_velodyne_to_depth(scan, calib, w, h)
    assert np.count_nonzero(depth) > 5000

    # The provided LiDAR-projected PNG agrees with our projection where both have returns.
    given = cv2.imread(str(root / 'image_2' / f'{frame}_velodepth_u16x256.png'),
                       cv2.IMREAD_UNCHANGED).astype(np.float32) / 256.0
    both = (given > 0) & (depth > 0)
    assert both.sum() > 0.9 * np.count_nonzero(given)
    assert np.median(np.abs(given[both] - depth[both])) < 0.02

    # Back-project the depth image with P2, undo the camera offset and calib transform,
    # and find the original Velodyne point of every pixel within a few centimetres.
    u, v, d = kitti.project_velodyne(scan, calib, w, h)
    xyz = backproject(depth, kitti.camera_intrinsics(calib, w, h))
    rect = xyz[v, u].astype(np.float64) - kitti.camera_offset(calib)
    velo = (np.linalg.inv(kitti.velo_to_rect(calib)) @ np.vstack(
        [rect.T, np.ones(len(rect))]))[:3].T
    nearest = np.isclose(depth[v, u], d, atol=1e-4)  # the return that won its pixel
    original = scan[_keep(scan, calib, w, h), :3]
    err = np.linalg.norm(velo[nearest] - original[nearest], axis=1)
    # Rounding the projection to the pixel centre moves a point by up to half a pixel.
    assert np.percentile(err, 95) < 0.05 * 1.0 + 0.0007 * np.percentile(d, 95)
    assert np.median(err) < 0.03


def _keep(scan, calib, w, h):
    xyz1 = np.hstack([scan[:, :3].astype(np.float64), np.ones((len(scan), 1))])
    proj = calib['P2'] @ np.vstack([(kitti.velo_to_rect(calib) @ xyz1.T)[:3],
                                    np.ones((1, len(scan)))])
    z = proj[2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u = np.rint(proj[0] / z)
        v = np.rint(proj[1] / z)
    return (z > 0.1) & (u >= 0) & (u < w) & (v >= 0) & (v < h)


def test_kitti_calib_errors(tmp_path):
    bad = tmp_path / 'calib.txt'
    bad.write_text('P2: 1 2 3\n')
    with pytest.raises(kitti.KittiFormatError, match='P2'):
        kitti.read_kitti_calib(str(bad))
    with pytest.raises(kitti.KittiFormatError, match='not found'):
        kitti.read_kitti_calib(str(tmp_path / 'missing.txt'))
