"""
Camera paths through a synthetic room (no ROS).

:func:`camera_path` glides through the free middle of a ``classic`` room;
:func:`robot_path` drives a camera at a robot's height and tilt around the furniture of a
``robot`` room. Both follow closed Catmull-Rom curves through random waypoints,
deterministic in the scene's seed and the path's. Poses are camera-to-world, in the
optical convention (:func:`look_at`).
"""

from typing import List, Sequence

from mono_depth_ros.sim import furniture
import numpy as np


def look_at(eye: Sequence[float], target: Sequence[float],
            up: Sequence[float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Return the camera-to-world pose of an optical-frame camera at eye looking at target."""
    eye = np.asarray(eye, np.float64)
    forward = np.asarray(target, np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, np.float64))
    if np.linalg.norm(right) < 1e-9:
        raise ValueError('look_at: view direction is parallel to up')
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
    return pose


def catmull_rom(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate a closed Catmull-Rom curve through points, at parameters t in [0, len(points))."""
    n = len(points)
    i = np.floor(t).astype(int)
    s = (t - i)[:, None]
    p0, p1, p2, p3 = (points[(i + k) % n] for k in (-1, 0, 1, 2))
    return 0.5 * ((2 * p1) + (-p0 + p2) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s ** 2 +
                  (-p0 + 3 * p1 - 3 * p2 + p3) * s ** 3)


def camera_path(scene, n_frames: int, seed: int = 0,
                speed: float = 0.03) -> List[np.ndarray]:
    """
    Return n_frames smooth camera poses inside the free middle of the room.

    The eye and the look-at target each follow a closed Catmull-Rom curve through random
    waypoints; ``speed`` is the parameter step per frame (waypoints per frame).
    """
    rng = np.random.default_rng((scene.seed, seed))
    margin = 1.4
    lo = np.array([margin, margin])
    hi = np.maximum(scene.size[:2] - margin, lo + 0.2)
    n_way = 6
    eyes = np.column_stack([rng.uniform(lo[0], hi[0], n_way), rng.uniform(lo[1], hi[1], n_way),
                            rng.uniform(0.9, min(1.8, scene.size[2] - 0.5), n_way)])
    targets = np.column_stack([rng.uniform(0.2, scene.size[0] - 0.2, n_way),
                               rng.uniform(0.2, scene.size[1] - 0.2, n_way),
                               rng.uniform(0.3, 1.5, n_way)])
    t = (rng.uniform(0, n_way) + speed * np.arange(n_frames)) % n_way
    eye = catmull_rom(eyes, t)
    target = catmull_rom(targets, t)
    poses = []
    for e, g in zip(eye, target):
        if np.linalg.norm(g[:2] - e[:2]) < 0.5:  # keep the view direction well defined
            g = e + np.array([1.0, 0.0, -0.2])
        poses.append(look_at(e, g))
    return poses


def robot_path(scene, n_frames: int, seed: int = 0,
               speed: float = 0.03) -> List[np.ndarray]:
    """
    Return n_frames camera poses as a robot or a hand-held camera would move.

    One camera per path, at a fixed height (a third each: 0.25-0.6 m like a small
    ground robot, 0.6-1.1 m, 1.1-1.7 m like a person) and a fixed tilt (pitch 20 deg
    down to 5 deg up, steeper down for high cameras) with a small roll, driving along a
    smooth curve through the room's free floor and turning towards moving targets.
    Eyes that would fall inside furniture keep the previous pose.
    """
    rng = np.random.default_rng((scene.seed, seed, 11))
    band = rng.random()
    height = rng.uniform(0.25, 0.6) if band < 1 / 3 else (
        rng.uniform(0.6, 1.1) if band < 2 / 3 else rng.uniform(1.1, 1.7))
    height = min(height, scene.size[2] - 0.4)
    pitch = rng.uniform(-0.35, 0.09) - (0.15 * rng.random() if height > 1.1 else 0.0)
    roll = float(rng.normal(0.0, 0.03))
    lo, hi = np.array([0.4, 0.4]), scene.size[:2] - 0.4
    n_way = 6
    eyes = []
    for _ in range(n_way):
        for _try in range(20):
            xy = rng.uniform(lo, hi)
            if not furniture.inside_any((xy[0], xy[1], height), scene.parts, 0.3):
                break
        eyes.append([xy[0], xy[1], height])
    eyes = np.array(eyes)
    targets = np.column_stack([rng.uniform(0.0, scene.size[0], n_way),
                               rng.uniform(0.0, scene.size[1], n_way),
                               np.full(n_way, height)])
    t = (rng.uniform(0, n_way) + speed * np.arange(n_frames)) % n_way
    eye_path = catmull_rom(eyes, t)
    target_path = catmull_rom(targets, t)
    poses: List[np.ndarray] = []
    for e, g in zip(eye_path, target_path):
        e = np.clip(e, [0.25, 0.25, 0.2],
                    [scene.size[0] - 0.25, scene.size[1] - 0.25, scene.size[2] - 0.2])
        if poses and furniture.inside_any(e, scene.parts, 0.15):
            poses.append(poses[-1].copy())
            continue
        heading = g[:2] - e[:2]
        if np.linalg.norm(heading) < 0.3:
            heading = np.array([1.0, 0.0])
        heading = heading / np.linalg.norm(heading)
        forward = np.array([heading[0] * np.cos(pitch), heading[1] * np.cos(pitch),
                            np.sin(pitch)])
        pose = look_at(e, e + forward)
        c, s = np.cos(roll), np.sin(roll)
        x_axis, y_axis = pose[:3, 0].copy(), pose[:3, 1].copy()
        pose[:3, 0], pose[:3, 1] = c * x_axis + s * y_axis, -s * x_axis + c * y_axis
        poses.append(pose)
    return poses
