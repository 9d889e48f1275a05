"""
Metric depth of tracked features from the camera's own motion (no ROS).

A robot's odometry (wheels, VIO, SLAM) gives the camera's metric pose through tf. Two views
a known metric baseline apart fix the depth of every point both see, so features tracked
between the current frame and a keyframe, and triangulated with the known relative pose,
are sparse metric depth: :class:`MotionTracker` turns (image, pose) per frame into points in
the current camera's optical frame (REP 103: z forward, x right, y down), which the scale
sources fit like any other sparse depth (:mod:`.scale`).

Per frame, with ``T_w_c`` the 4x4 camera-to-world (odom) pose of each frame:

1. **Keyframe.** The first frame, and any frame once the keyframe is older than
   ``max_keyframe_age``, farther than ``max_baseline_factor * min_baseline`` or has lost
   most of its tracks, becomes the keyframe: up to ``tracks`` corners (Shi-Tomasi on a
   half-resolution image, spread by a minimum distance) are stored with its image and pose.
2. **Baseline.** While the camera centre has moved less than ``min_baseline`` metres from the
   keyframe's (no motion, or rotation only), nothing can be triangulated: the frame gives no
   points (reason ``no_baseline``) and the caller holds its scale.
3. **Tracks.** The corners are followed from the keyframe into this frame with pyramidal
   Lucas-Kanade optical flow, and back again: a track whose round trip misses its start by
   more than ``max_flow_error`` pixels is dropped (occlusion, a smooth patch).
4. **Epipolar check.** The relative pose ``T_c_k = inv(T_w_c) T_w_k`` predicts each track's
   epipolar line; a track farther from it than ``max_epipolar_error`` pixels (Sampson
   distance) moved in the world: an independently moving object. It is dropped and
   counted (``moving``); one moving along its epipolar line survives this test and falls to
   the robust fit downstream as an outlier.
5. **Triangulation.** The midpoint of the two rays (least squares on their depths) gives the
   depth in this frame. Points behind either camera and points whose rays meet at less than
   ``min_parallax`` radians (far points, whose depth the baseline cannot tell) are dropped.

Fewer than ``min_points`` survivors give no points (``few_tracks``), and a missing pose gives
``no_transform``. Each reason is a key of :attr:`MotionTracker.counts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Dict, Optional

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np

#: the reasons a frame gives no points (keys of MotionTracker.counts)
REASONS = ('no_transform', 'no_baseline', 'new_keyframe', 'few_tracks', 'bad_image')


class MotionError(ValueError):
    """A motion configuration or input is invalid."""


@dataclass
class MotionConfig:
    """What the tracker needs; names follow the node's ``motion_*`` parameters."""

    min_baseline: float = 0.05          # m between keyframe and frame camera centres
    max_keyframe_age: float = 1.0       # s
    tracks: int = 150                   # corners per keyframe
    max_baseline_factor: float = 4.0    # a new keyframe beyond this many min_baselines
    min_parallax: float = math.radians(0.5)
    max_epipolar_error: float = 2.0     # px, Sampson distance at the camera's focal
    max_flow_error: float = 1.0         # px, forward-backward round trip
    min_points: int = 10
    window: int = 11                    # Lucas-Kanade window, px (15: 40% more CPU, same accuracy)
    levels: int = 3                     # pyramid levels above the image

    def validate(self) -> None:
        """Raise MotionError naming the first bad value."""
        for name in ('min_baseline', 'max_keyframe_age', 'max_epipolar_error',
                     'max_flow_error', 'min_parallax'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise MotionError(f'motion {name} must be > 0, got {value}')
        if not self.max_baseline_factor >= 1:
            raise MotionError(f'max_baseline_factor must be >= 1, got {self.max_baseline_factor}')
        if not 8 <= int(self.tracks) <= 5000:
            raise MotionError(f'motion tracks must be in [8, 5000], got {self.tracks}')


@dataclass
class MotionPoints:
    """One frame's triangulated points (optical frame of this frame, metres), or a reason."""

    points: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))
    reason: str = ''
    detail: str = ''
    baseline: float = math.nan
    tracked: int = 0
    moving: int = 0

    @property
    def ok(self) -> bool:
        """Return True when there are points to fit."""
        return not self.reason


@dataclass
class _Keyframe:
    gray: np.ndarray
    corners: np.ndarray    # (N, 1, 2) float32 pixels
    pose: np.ndarray       # 4x4 camera-to-world
    stamp: float
    camera: Intrinsics


def _gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if img.ndim == 2:
        return img if img.dtype == np.uint8 else np.clip(img, 0, 255).astype(np.uint8)
    raise MotionError(f'motion needs a grey or RGB image, got shape {img.shape}')


def _valid_pose(pose) -> Optional[np.ndarray]:
    if pose is None:
        return None
    t = np.asarray(pose, dtype=np.float64)
    if t.shape != (4, 4) or not np.isfinite(t).all():
        return None
    return t


def detect(gray: np.ndarray, count: int) -> np.ndarray:
    """Return up to ``count`` Shi-Tomasi corners (N, 1, 2), found at half resolution."""
    small = cv2.pyrDown(gray)
    h, w = small.shape
    min_distance = max(3.0, 0.5 * math.sqrt(h * w / max(count, 1)))
    found = cv2.goodFeaturesToTrack(small, maxCorners=int(count), qualityLevel=0.01,
                                    minDistance=min_distance, blockSize=5)
    if found is None:
        return np.empty((0, 1, 2), np.float32)
    # A pixel centre (x, y) of the half image is (2x + 0.5, 2y + 0.5) in the full one.
    return (found.reshape(-1, 1, 2) * 2.0 + 0.5).astype(np.float32)


def triangulate(rays_c: np.ndarray, rays_k: np.ndarray, t_c_k: np.ndarray
                ) -> tuple:
    """
    Return (depth in c, depth in k, parallax) of rays (N, 3) with z = 1 meeting at a point.

    ``t_c_k`` maps keyframe coordinates into this frame's. The depths minimise the distance
    between ``zc * rc`` and ``R (zk * rk) + t`` (the midpoint method).
    """
    rot, t = t_c_k[:3, :3], t_c_k[:3, 3]
    rk = rays_k @ rot.T
    a11 = np.einsum('ij,ij->i', rays_c, rays_c)
    a12 = -np.einsum('ij,ij->i', rays_c, rk)
    a22 = np.einsum('ij,ij->i', rk, rk)
    b1 = rays_c @ t
    b2 = -(rk @ t)
    det = a11 * a22 - a12 * a12
    with np.errstate(divide='ignore', invalid='ignore'):
        zc = (a22 * b1 - a12 * b2) / det
        zk = (a11 * b2 - a12 * b1) / det
        cos = -a12 / np.sqrt(a11 * a22)
    parallax = np.arccos(np.clip(cos, -1.0, 1.0))
    return zc, zk, parallax


class MotionTracker:
    """Keyframe, tracks and triangulation across frames (see the module docstring)."""

    def __init__(self, config: Optional[MotionConfig] = None):
        self.config = config or MotionConfig()
        self.config.validate()
        self._key: Optional[_Keyframe] = None
        self.counts: Dict[str, int] = {r: 0 for r in REASONS}
        self.counts['moving'] = 0
        self.counts['keyframes'] = 0

    def reset(self) -> None:
        """Forget the keyframe (a jump in time, a new camera)."""
        self._key = None

    def _new_keyframe(self, gray, pose, stamp, camera) -> None:
        self._key = _Keyframe(gray, detect(gray, self.config.tracks), pose, stamp, camera)
        self.counts['keyframes'] += 1

    def _fail(self, reason: str, detail: str, **kw) -> MotionPoints:
        self.counts[reason] += 1
        return MotionPoints(reason=reason, detail=detail, **kw)

    def update(self, image: Optional[np.ndarray], pose, camera: Intrinsics,
               stamp: float) -> MotionPoints:
        """
        Track one frame; return its triangulated points, or why there are none.

        ``pose`` is this frame's 4x4 camera-to-world (odom) pose in metres, or None when the
        transform is missing; ``camera`` the intrinsics of ``image``.
        """
        c = self.config
        pose = _valid_pose(pose)
        if pose is None:
            return self._fail('no_transform', 'no camera pose at this stamp')
        if image is None:
            return self._fail('bad_image', 'no image')
        gray = _gray(image)
        if gray.shape != (camera.height, camera.width):
            return self._fail('bad_image', f'image {gray.shape[1]}x{gray.shape[0]} but the '
                              f'intrinsics are for {camera.width}x{camera.height}')
        key = self._key
        if key is not None and (key.camera != camera or key.gray.shape != gray.shape
                                or stamp < key.stamp):
            key = self._key = None
        if key is None or stamp - key.stamp > c.max_keyframe_age or \
                len(key.corners) < c.min_points:
            self._new_keyframe(gray, pose, stamp, camera)
            if len(self._key.corners) < c.min_points:
                # A blank wall, darkness, a covered lens: nothing to track.
                return self._fail('few_tracks', f'{len(self._key.corners)} corners in the '
                                  f'keyframe (< {c.min_points}): a textureless view')
            return self._fail('new_keyframe', 'a new keyframe: nothing to triangulate yet')
        t_c_k = np.linalg.solve(pose, key.pose)
        baseline = float(np.linalg.norm(t_c_k[:3, 3]))
        if baseline < c.min_baseline:
            return self._fail('no_baseline', f'baseline {baseline:.3f} m < min_baseline '
                              f'{c.min_baseline:g} m (no motion, or rotation only)',
                              baseline=baseline)
        result = self._triangulate(key, gray, camera, t_c_k, baseline)
        if baseline > c.max_baseline_factor * c.min_baseline or \
                result.tracked < 0.5 * len(key.corners):
            # Far or faint: the next frames track from this one.
            self._new_keyframe(gray, pose, stamp, camera)
        return result

    def _triangulate(self, key: _Keyframe, gray: np.ndarray, camera: Intrinsics,
                     t_c_k: np.ndarray, baseline: float) -> MotionPoints:
        c = self.config
        lk = dict(winSize=(c.window, c.window), maxLevel=c.levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
        p0 = key.corners
        # (OpenCV 5's Python binding takes images here, not prebuilt pyramids.)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(key.gray, gray, p0, None, **lk)
        p0r, st2, _ = cv2.calcOpticalFlowPyrLK(gray, key.gray, p1, None, **lk)
        round_trip = np.linalg.norm((p0r - p0).reshape(-1, 2), axis=1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (round_trip <= c.max_flow_error)
        pk, pc = p0.reshape(-1, 2)[ok].astype(np.float64), p1.reshape(-1, 2)[ok].astype(
            np.float64)
        h, w = gray.shape
        inside = (pc[:, 0] >= 0) & (pc[:, 0] <= w - 1) & (pc[:, 1] >= 0) & (pc[:, 1] <= h - 1)
        pk, pc = pk[inside], pc[inside]
        tracked = int(pk.shape[0])
        kc = key.camera
        rk = np.column_stack([(pk[:, 0] - kc.cx) / kc.fx, (pk[:, 1] - kc.cy) / kc.fy,
                              np.ones(tracked)])
        rc = np.column_stack([(pc[:, 0] - camera.cx) / camera.fx,
                              (pc[:, 1] - camera.cy) / camera.fy, np.ones(tracked)])
        # Sampson distance to the epipolar geometry E = [t]x R, in pixels at the focal.
        rot, t = t_c_k[:3, :3], t_c_k[:3, 3]
        tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
        ess = tx @ rot / max(baseline, 1e-12)
        e_rk = rk @ ess.T          # epipolar lines in this frame
        et_rc = rc @ ess           # and in the keyframe
        num = np.einsum('ij,ij->i', rc, e_rk)
        den = e_rk[:, 0] ** 2 + e_rk[:, 1] ** 2 + et_rc[:, 0] ** 2 + et_rc[:, 1] ** 2
        with np.errstate(divide='ignore', invalid='ignore'):
            sampson = np.abs(num) / np.sqrt(den) * math.sqrt(camera.fx * camera.fy)
        still = sampson <= c.max_epipolar_error
        moving = int(np.count_nonzero(~still))
        self.counts['moving'] += moving
        zc, zk, parallax = triangulate(rc[still], rk[still], t_c_k)
        good = np.isfinite(zc) & (zc > 0) & (zk > 0) & (parallax >= c.min_parallax)
        points = rc[still][good] * zc[good, None]
        if points.shape[0] < c.min_points:
            return self._fail('few_tracks', f'{points.shape[0]} triangulated points '
                              f'(< {c.min_points}) of {tracked} tracks, {moving} moving',
                              baseline=baseline, tracked=tracked, moving=moving)
        return MotionPoints(points, baseline=baseline, tracked=tracked, moving=moving)
