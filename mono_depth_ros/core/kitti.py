"""
KITTI calibration, Velodyne scans, and LiDAR-to-image depth projection (numpy only).

Frames: a Velodyne point X_velo maps to the rectified reference camera (cam 0) by
``X_rect = R0_rect @ (Tr_velo_to_cam @ [X_velo; 1])``, and to pixels of camera ``i`` by
``P_i @ [X_rect; 1]``. ``P_i`` has a translation column, so camera i's own optical frame is
``X_i = X_rect + t_i`` with ``t_i = (P[0,3] / fx, P[1,3] / fy, P[2,3])``.
"""

from __future__ import annotations

import os
from typing import Dict, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np


class KittiFormatError(ValueError):
    """A KITTI calibration or scan file is missing fields or malformed."""


_SHAPES = {'P0': (3, 4), 'P1': (3, 4), 'P2': (3, 4), 'P3': (3, 4), 'R0_rect': (3, 3),
           'Tr_velo_to_cam': (3, 4), 'Tr_imu_to_velo': (3, 4),
           'P_rect_02': (3, 4), 'P_rect_03': (3, 4), 'R_rect_00': (3, 3)}


def _parse(path: str) -> Dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise KittiFormatError(f'calibration file not found: {path}')
    values = {}
    with open(path, 'r', encoding='utf-8') as handle:
        for line in handle:
            if ':' not in line:
                continue
            key, text = line.split(':', 1)
            try:
                values[key.strip()] = np.array([float(v) for v in text.split()])
            except ValueError:
                continue  # e.g. 'calib_time: 09-Jan-2012 13:57:47'
    return values


def read_kitti_calib(path: str) -> Dict[str, np.ndarray]:
    """
    Read KITTI calibration into P0..P3 (3x4), R0_rect (3x3) and Tr_velo_to_cam (3x4).

    ``path`` is either an object-benchmark ``calib/NNNNNN.txt`` or a raw-drive date folder
    (or its ``calib_cam_to_cam.txt``), whose ``calib_velo_to_cam.txt`` gives R and T.
    """
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    cam_to_cam = os.path.join(folder, 'calib_cam_to_cam.txt')
    if os.path.isdir(path) or os.path.basename(path) == 'calib_cam_to_cam.txt':
        raw = _parse(cam_to_cam)
        velo = _parse(os.path.join(folder, 'calib_velo_to_cam.txt'))
        try:
            calib = {f'P{i}': raw[f'P_rect_0{i}'].reshape(3, 4) for i in range(4)}
            calib['R0_rect'] = raw['R_rect_00'].reshape(3, 3)
            calib['Tr_velo_to_cam'] = np.hstack([velo['R'].reshape(3, 3),
                                                 velo['T'].reshape(3, 1)])
        except KeyError as exc:
            raise KittiFormatError(f'{folder}: raw calibration lacks {exc}') from exc
        return calib
    values = _parse(path)
    calib = {}
    for key, shape in _SHAPES.items():
        if key in values:
            if values[key].size != shape[0] * shape[1]:
                raise KittiFormatError(f'{path}: {key} has {values[key].size} values, '
                                       f'expected {shape[0] * shape[1]}')
            calib[key] = values[key].reshape(shape)
    for key in ('P2', 'R0_rect', 'Tr_velo_to_cam'):
        if key not in calib:
            raise KittiFormatError(f'{path}: missing {key}')
    return calib


def camera_intrinsics(calib: Dict[str, np.ndarray], width: int, height: int,
                      camera: int = 2) -> Intrinsics:
    """Return the intrinsics of camera ``camera`` from its projection matrix."""
    p = calib[f'P{camera}']
    return Intrinsics(p[0, 0], p[1, 1], p[0, 2], p[1, 2], width, height)


def camera_offset(calib: Dict[str, np.ndarray], camera: int = 2) -> np.ndarray:
    """Return t_i, the position of the rectified cam-0 origin in camera i's frame."""
    p = calib[f'P{camera}']
    return np.array([p[0, 3] / p[0, 0], p[1, 3] / p[1, 1], p[2, 3]])


def velo_to_rect(calib: Dict[str, np.ndarray]) -> np.ndarray:
    """Return the 4x4 transform from Velodyne to the rectified cam-0 frame."""
    r0 = np.eye(4)
    r0[:3, :3] = calib['R0_rect']
    tr = np.eye(4)
    tr[:3, :4] = calib['Tr_velo_to_cam']
    return r0 @ tr


def read_velodyne_bin(path: str) -> np.ndarray:
    """Read a Velodyne scan: (N, 4) float32 x, y, z, reflectance."""
    if not os.path.isfile(path):
        raise KittiFormatError(f'velodyne scan not found: {path}')
    data = np.fromfile(path, dtype='<f4')
    if data.size % 4:
        raise KittiFormatError(f'{path}: {data.size} floats is not a multiple of 4')
    return data.reshape(-1, 4)


def project_velodyne(points: np.ndarray, calib: Dict[str, np.ndarray], width: int,
                     height: int, camera: int = 2) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (u, v, depth) of the points in front of camera i that land inside the image."""
    xyz1 = np.hstack([points[:, :3].astype(np.float64), np.ones((len(points), 1))])
    rect = (velo_to_rect(calib) @ xyz1.T)[:3]
    proj = calib[f'P{camera}'] @ np.vstack([rect, np.ones((1, rect.shape[1]))])
    depth = proj[2]
    front = depth > 0.1
    u = np.full(depth.shape, -1.0)
    v = np.full(depth.shape, -1.0)
    u[front] = proj[0, front] / depth[front]
    v[front] = proj[1, front] / depth[front]
    ui, vi = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    keep = front & (ui >= 0) & (ui < width) & (vi >= 0) & (vi < height)
    return ui[keep], vi[keep], depth[keep]


def project_velodyne_to_depth(points: np.ndarray, calib: Dict[str, np.ndarray], width: int,
                              height: int, camera: int = 2) -> np.ndarray:
    """Project a scan into camera i as a float32 depth map (metres, 0 = no return)."""
    u, v, depth = project_velodyne(points, calib, width, height, camera)
    out = np.full((height, width), np.inf)
    # The nearest return wins where several points land on one pixel.
    np.minimum.at(out, (v, u), depth)
    out[~np.isfinite(out)] = 0.0
    return out.astype(np.float32)
