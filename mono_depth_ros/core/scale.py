"""
Metric scale for relative depth models, from the robot's own knowledge or sensors (no ROS).

A relative model (``relative_depth``, ``relative_inverse_depth``) gives a *base* map ``b``
that is depth, or inverse depth, only up to an unknown affine map. A scale source fits that
map, so that metres are published only when something measured them:

* ``kind == 'depth'``:   depth = scale * b + shift
* ``kind == 'inverse'``: 1 / depth = scale * b + shift

For a metric model the base is its metric output in the same space (depth, or inverse depth
for the ``inverse_depth`` and ``disparity`` modes, as the frame pipeline's ``ScaleInput``
gives it) and a source fits a scale only (shift 0): a correction of a model that already
has metres.

Sources (each a function returning a :class:`ScaleFit`, plus the shared
:class:`ScaleEstimator`, which smooths, rejects, holds and reports; the fits share
:mod:`.scale_base`):

``ground_plane``
    The floor below a camera at ``camera_height`` (m), pitched down by ``camera_pitch``
    (rad): a RANSAC plane through the inverse depth of the lower image part, and the scale
    (and the shift) in closed form (:mod:`.scale_ground`).
``sparse_depth``
    Samples of a metric depth sensor registered to the camera (an image of any resolution,
    or optical-frame points): a RANSAC line through (base, depth) pairs with residuals
    measured as relative depth error, refined by least squares on the inliers, so that a
    minority of wrong samples (multipath, a LiDAR seeing past an edge) does not pull it
    (:mod:`.scale_sparse`).
``range``
    One rangefinder distance along the optical axis against the median base in a window
    centred on the principal point (cx, cy), where the beam lands: a scale only (the shift
    is taken as 0; :mod:`.scale_range`).
``motion``
    The camera's own metric motion (odometry through tf): features tracked between the
    frame and a keyframe a known baseline away are triangulated (:mod:`.motion`), and the
    points are sparse metric depth for the same robust fit as ``sparse_depth``.
``fixed``
    The ``scale`` and ``shift`` parameters.

Several sources can be fitted together (``ScaleConfig.combine``): each gives
(base, metric depth) pairs (the floor's inliers with the depth the plane puts there, the
range window's pixels at the range, sparse or triangulated points), every source's pairs
weigh its weight in total, and one weighted robust line is fitted through all of them.

What is fitted follows the model's metadata (``ModelMeta.unknown``): scale and shift for an
affine-invariant model, a scale only for one whose zero is right (self-supervised, or
trained scale-invariant) and for a metric model's correction.

The estimator smooths the metric result: the smoothed map is the one whose depth is the
geometric blend of the held map's and the new fit's depths over the frame's base values,
not a blend of scale and shift taken apart (two pairs that each fit can blend into one
that fits nothing). A run of consistent fits that all differ from the held scale by more
than ``scale_max_jump`` replaces it (a wrong first fit must not lock out the right ones),
and a stamp older than the last one (a bag played in a loop, a clock set back) resets the
history, as tf2's buffer is cleared on a jump back in time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math
import threading
from typing import Callable, Deque, Dict, Optional, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
# apply_scale, base_kind, relative_depth_like and the sparse buffer readers are re-exported
# for the callers that know them as scale.*.
from mono_depth_ros.core.scale_base import (apply_scale, base_kind, BASE_KINDS,  # noqa: F401
                                            relative_depth_like, ScaleError, ScaleFit)
from mono_depth_ros.core.scale_ground import fit_ground_plane
from mono_depth_ros.core.scale_range import fit_range
from mono_depth_ros.core.scale_sparse import (fit_sparse, sparse_from_cloud_buffer,  # noqa: F401
                                              sparse_from_image_buffer, SparseSamples)
import numpy as np

SCALE_SOURCES = ('none', 'ground_plane', 'sparse_depth', 'range', 'fixed', 'motion')
#: the sources that fit pairs and can be combined in one fit
FIT_SOURCES = ('ground_plane', 'sparse_depth', 'range', 'motion')
#: consecutive consistent fits beyond scale_max_jump that replace the held scale
JUMP_CONFIRM = 3


def parse_combine(text: str) -> Dict[str, float]:
    """
    Parse ``combine`` ('range' or 'range:2, sparse_depth') into {source: weight}.

    Raise ScaleError for an unknown source, a repeated one, or a weight that is not > 0.
    """
    out: Dict[str, float] = {}
    for item in str(text).split(','):
        item = item.strip()
        if not item:
            continue
        name, _, weight = item.partition(':')
        name = name.strip()
        if name not in FIT_SOURCES:
            raise ScaleError(f'scale_combine: {name[:40]!r} is not one of {FIT_SOURCES}')
        if name in out:
            raise ScaleError(f'scale_combine names {name} twice')
        try:
            value = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise ScaleError(f'scale_combine: weight {weight[:40]!r} of {name} is not a '
                             'number') from None
        if not (math.isfinite(value) and value > 0):
            raise ScaleError(f'scale_combine: weight of {name} must be > 0, got {value}')
        out[name] = value
    return out


@dataclass
class ScaleConfig:
    """Everything a scale source needs; names follow the node's parameters."""

    source: str = 'none'
    camera_height: float = 0.0
    camera_pitch: float = 0.0
    ground_normal_tolerance: float = math.radians(10.0)
    scale: float = 1.0
    shift: float = 0.0
    sparse_max_age: float = 0.1
    scale_smoothing: float = 0.0
    scale_max_jump: float = 0.3
    scale_hold: float = 1.0
    scale_min_inliers: int = 30
    sparse_inlier_tolerance: float = 0.05
    ground_inlier_tolerance: float = 0.02
    ground_max_distance: float = 40.0
    range_window: float = 0.05
    max_points: int = 1000
    #: more sources fitted together with ``source`` in one weighted fit: 'range:2,motion'
    combine: str = ''
    motion_min_baseline: float = 0.05
    motion_max_keyframe_age: float = 1.0
    motion_tracks: int = 150

    def sources(self) -> Dict[str, float]:
        """Return {source: weight} of the fit: ``source`` (weight 1) and ``combine``."""
        extra = parse_combine(self.combine)
        if not extra:
            return {self.source: 1.0}
        if self.source not in FIT_SOURCES:
            raise ScaleError('scale_combine needs a fitted scale_source '
                             f'({", ".join(FIT_SOURCES)}), not {self.source}')
        if self.source in extra:
            raise ScaleError(f'scale_combine repeats scale_source {self.source}')
        return {self.source: 1.0, **extra}

    def motion_config(self):
        """Return the tracker's configuration."""
        from mono_depth_ros.core.motion import MotionConfig
        return MotionConfig(min_baseline=self.motion_min_baseline,
                            max_keyframe_age=self.motion_max_keyframe_age,
                            tracks=int(self.motion_tracks))

    def validate(self) -> None:
        """Raise ScaleError naming the first bad value."""
        if self.source not in SCALE_SOURCES:
            raise ScaleError(f'scale_source {self.source!r} not in {SCALE_SOURCES}')
        sources = self.sources()
        if 'ground_plane' in sources and not self.camera_height > 0:
            raise ScaleError('scale_source ground_plane needs camera_height > 0 (metres)')
        if self.source == 'fixed' and not (math.isfinite(self.scale) and self.scale > 0):
            raise ScaleError(f'scale_source fixed needs scale > 0, got {self.scale}')
        if not abs(self.camera_pitch) < math.pi / 2:
            raise ScaleError(f'camera_pitch must be in (-pi/2, pi/2) rad, got '
                             f'{self.camera_pitch}')
        for name in ('sparse_max_age', 'scale_smoothing', 'scale_max_jump', 'scale_hold'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ScaleError(f'{name} must be >= 0, got {value}')
        for name in ('sparse_inlier_tolerance', 'ground_inlier_tolerance',
                     'ground_normal_tolerance', 'ground_max_distance'):
            value = getattr(self, name)
            if not value > 0:
                raise ScaleError(f'{name} must be > 0, got {value}')
        if not 0 < self.range_window <= 1:
            raise ScaleError(f'range_window must be in (0, 1], got {self.range_window}')
        if 'motion' in sources:
            from mono_depth_ros.core.motion import MotionError
            try:
                self.motion_config().validate()
            except MotionError as exc:
                raise ScaleError(str(exc)) from None


def blend_metric(base: np.ndarray, kind: str, held: Tuple[float, float],
                 new: Tuple[float, float], alpha: float) -> Tuple[float, float]:
    """
    Return the map whose depth is the geometric blend of two maps' depths on ``base``.

    ``held`` and ``new`` are (scale, shift) in the base's space; the result's depth is
    ``z_held ** (1 - alpha) * z_new ** alpha``, exactly for scale-only maps (the log-scales
    blend), and by a least-squares fit in relative depth over the base's 5-95% quantiles
    otherwise. A blend of scale and shift taken apart can give depths that neither map
    gives, or none at all; this cannot.
    """
    (s0, t0), (s1, t1) = held, new
    if t0 == 0.0 and t1 == 0.0:
        return math.exp((1 - alpha) * math.log(s0) + alpha * math.log(s1)), 0.0
    b = np.asarray(base, dtype=np.float64)
    b = b[::max(1, b.shape[0] // 32), ::max(1, b.shape[1] // 32)] if b.ndim == 2 else b
    b = b[np.isfinite(b)]
    if b.size == 0:
        return s1, t1
    q = np.quantile(b, np.linspace(0.05, 0.95, 10))
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        y0, y1 = s0 * q + t0, s1 * q + t1  # depth, or inverse depth
        z = np.exp((1 - alpha) * np.log(y0) + alpha * np.log(y1))
    ok = np.isfinite(z) & (z > 0)
    if not ok.any():
        return s1, t1
    q, z = q[ok], z[ok]
    if float(np.ptp(q)) <= 1e-12 * max(float(np.max(np.abs(q))), 1e-300):
        # One base value: keep the blended scale, and the shift that puts its depth right.
        s = math.exp((1 - alpha) * math.log(s0) + alpha * math.log(s1))
        return s, float(z[0] - s * q[0])
    # y = z for a depth base, 1 / z for an inverse one (a geometric blend of depths is that
    # of inverse depths); least squares in relative terms (weight 1 / y).
    a = np.stack([q, np.ones_like(q)], axis=1) / z[:, None]
    sol, *_ = np.linalg.lstsq(a, np.ones_like(q), rcond=None)
    s, t = float(sol[0]), float(sol[1])
    if not (math.isfinite(s) and s > 0 and math.isfinite(t)):
        return s1, t1
    return s, t


class ScaleEstimator:
    """
    One scale source (or several in one fit) with smoothing, rejection, hold and diagnostics.

    Call :meth:`add_sparse` / :meth:`add_range` as sensor messages arrive, then
    :meth:`update` once per frame with the base (and, for ``motion``, the image and the
    camera pose); it returns ``(scale, shift)`` to apply, or None when no metric output may
    be published for this frame. ``fit_shift`` says whether the shift is unknown (the
    model's ``ModelMeta.unknown == 'scale_shift'``); by default it is for a relative model
    and is not for a metric one. ``log`` gets one line per reset of the history.
    """

    def __init__(self, config: ScaleConfig, kind: str, metric_model: bool = False,
                 buffer: int = 8, fit_shift: Optional[bool] = None,
                 log: Optional[Callable[[str], None]] = None):
        config.validate()
        if kind not in BASE_KINDS:
            raise ScaleError(f'base kind {kind!r} not in {BASE_KINDS}')
        self.config = config
        self.kind = kind
        self.metric_model = metric_model
        # A metric model keeps its own zero: its correction is a scale only.
        self.fit_shift = (not metric_model) if fit_shift is None else bool(fit_shift)
        self.log = log
        # Sensor messages arrive on the executor thread, frames on the worker's.
        self._inputs = threading.Lock()
        self._sparse: Deque[SparseSamples] = deque(maxlen=buffer)
        self._ranges: Deque[Tuple[float, float]] = deque(maxlen=buffer)
        self._scale: Optional[float] = None
        self._shift = 0.0
        self._last_good: Optional[float] = None
        self._last_stamp: Optional[float] = None
        self._candidate: Optional[Tuple[float, int]] = None
        self._motion = None
        self.last_fit = ScaleFit(reason='no frame yet')
        self.counts: Dict[str, int] = {'fits': 0, 'rejected_fit': 0, 'rejected_jump': 0,
                                       'stale_samples': 0, 'expired': 0, 'rescaled': 0,
                                       'time_jumps_back': 0}
        if 'motion' in config.sources():
            self._make_motion()

    def _make_motion(self) -> None:
        from mono_depth_ros.core.motion import MotionTracker, REASONS
        self._motion = MotionTracker(self.config.motion_config())
        for reason in REASONS + ('moving',):
            self.counts.setdefault(f'motion_{reason}', 0)

    # -- inputs ---------------------------------------------------------------------------
    def add_sparse(self, samples: SparseSamples) -> None:
        """Buffer a sparse depth message (image samples or points)."""
        with self._inputs:
            self._sparse.append(samples)

    def add_range(self, stamp: float, range_m: float) -> None:
        """Buffer a rangefinder reading (metres)."""
        with self._inputs:
            self._ranges.append((float(stamp), float(range_m)))

    def _nearest(self, items, stamp: float, key):
        best, best_dt = None, math.inf
        with self._inputs:
            items = list(items)
        for item in items:
            dt = abs(key(item) - stamp)
            if dt < best_dt:
                best, best_dt = item, dt
        if best is None:
            return None
        if best_dt > self.config.sparse_max_age:
            self.counts['stale_samples'] += 1
            return None
        return best

    def reset(self, reason: str = '') -> None:
        """Forget the scale, its timing and the motion keyframe (not the sensor buffers)."""
        self._scale, self._shift = None, 0.0
        self._last_good = self._last_stamp = None
        self._candidate = None
        if self._motion is not None:
            self._motion.reset()
        if reason and self.log is not None:
            self.log(reason)

    # -- per frame ------------------------------------------------------------------------
    def _fit_one(self, source: str, base: np.ndarray, intrinsics: Optional[Intrinsics],
                 stamp: float, camera: Optional[Intrinsics], image, pose) -> ScaleFit:
        c = self.config
        fit_shift = self.fit_shift
        if source == 'ground_plane':
            if intrinsics is None:
                return ScaleFit(reason='ground_plane needs the camera intrinsics')
            return fit_ground_plane(base, self.kind, intrinsics, c.camera_height,
                                    c.camera_pitch,
                                    fit_shift=fit_shift and self.kind == 'inverse',
                                    normal_tolerance=c.ground_normal_tolerance,
                                    inlier_tolerance=c.ground_inlier_tolerance,
                                    min_inliers=c.scale_min_inliers,
                                    max_distance=c.ground_max_distance,
                                    max_points=c.max_points)
        if source == 'sparse_depth':
            samples = self._nearest(self._sparse, stamp, lambda s: s.stamp)
            if samples is None:
                return ScaleFit(reason=f'no sparse depth within {c.sparse_max_age} s')
            b, z = samples.pairs(base, intrinsics, camera)
            return fit_sparse(b, z, self.kind, fit_shift=fit_shift,
                              inlier_tolerance=c.sparse_inlier_tolerance,
                              min_inliers=c.scale_min_inliers)
        if source == 'range':
            reading = self._nearest(self._ranges, stamp, lambda r: r[0])
            if reading is None:
                return ScaleFit(reason=f'no range reading within {c.sparse_max_age} s')
            return fit_range(base, self.kind, reading[1], c.range_window,
                             min_inliers=min(c.scale_min_inliers, 10), intrinsics=intrinsics)
        if source == 'motion':
            return self._fit_motion(base, intrinsics, stamp, camera, image, pose)
        return ScaleFit(reason=f'scale_source is {source}')

    def _motion_points(self, intrinsics, stamp, camera, image, pose):
        """Return (points in the optical frame, '') of this frame, or (None, reason)."""
        if self._motion is None:
            self._make_motion()
        tracker = self._motion
        track_camera = camera if camera is not None else intrinsics
        if image is not None and np.asarray(image).shape[:2] != (track_camera.height,
                                                                 track_camera.width):
            track_camera = intrinsics
        result = tracker.update(image, pose, track_camera, stamp)
        for key, value in tracker.counts.items():
            if f'motion_{key}' in self.counts:
                self.counts[f'motion_{key}'] = value
        if not result.ok:
            return None, f'motion: {result.detail}'
        return result.points, ''

    def _fit_motion(self, base, intrinsics, stamp, camera, image, pose) -> ScaleFit:
        if intrinsics is None:
            return ScaleFit(reason='motion needs the camera intrinsics')
        points, why = self._motion_points(intrinsics, stamp, camera, image, pose)
        if points is None:
            return ScaleFit(reason=why)
        b, z = SparseSamples.from_points(points, stamp).pairs(base, intrinsics)
        # Triangulated depth is noisier than a depth sensor's (a pixel of flow error over a
        # small parallax): a wider inlier band, and as few points as the tracker keeps.
        return fit_sparse(b, z, self.kind, fit_shift=self.fit_shift,
                          inlier_tolerance=max(self.config.sparse_inlier_tolerance, 0.1),
                          min_inliers=min(self.config.scale_min_inliers,
                                          self._motion.config.min_points))

    def _pairs_one(self, source: str, base: np.ndarray, intrinsics: Optional[Intrinsics],
                   stamp: float, camera: Optional[Intrinsics], image, pose
                   ) -> Tuple[np.ndarray, np.ndarray, str]:
        """
        Return one source's (base values, metric depths, reason) for a combined fit.

        Sparse and triangulated samples come as they are (the combined fit rejects their
        outliers), the range as its window's pixels on one surface, the floor as the
        inliers of its own plane fit (a plane is needed to tell floor from the rest).
        """
        empty = np.empty(0)
        if source == 'sparse_depth':
            samples = self._nearest(self._sparse, stamp, lambda s: s.stamp)
            if samples is None:
                return empty, empty, f'no sparse depth within {self.config.sparse_max_age} s'
            b, z = samples.pairs(base, intrinsics, camera)
            return b, z, ''
        if source == 'motion':
            if intrinsics is None:
                return empty, empty, 'motion needs the camera intrinsics'
            points, why = self._motion_points(intrinsics, stamp, camera, image, pose)
            if points is None:
                return empty, empty, why
            b, z = SparseSamples.from_points(points, stamp).pairs(base, intrinsics)
            return b, z, ''
        one = self._fit_one(source, base, intrinsics, stamp, camera, image, pose)
        if not one.ok or one.pairs is None:
            return empty, empty, one.reason or 'no samples'
        return one.pairs[0], one.pairs[1], ''

    def fit(self, base: np.ndarray, intrinsics: Optional[Intrinsics], stamp: float,
            camera: Optional[Intrinsics] = None, image: Optional[np.ndarray] = None,
            pose: Optional[np.ndarray] = None) -> ScaleFit:
        """
        Run the configured source(s) once on this frame (no smoothing, no state).

        ``intrinsics`` describe ``base``; ``camera`` the whole input image (see
        :meth:`SparseSamples.pairs`), ``image`` that image (for ``motion``) and ``pose`` its
        4x4 camera-to-odom pose in metres (None: the transform is missing).
        """
        c = self.config
        if c.source == 'fixed':
            return ScaleFit(c.scale, c.shift, 0, 0, 0.0)
        sources = c.sources()
        if len(sources) == 1:
            return self._fit_one(c.source, base, intrinsics, stamp, camera, image, pose)
        # One weighted fit through every source's pairs; each source weighs its weight.
        bs, zs, ws, failed, used = [], [], [], [], []
        for name, weight in sources.items():
            b, z, why = self._pairs_one(name, base, intrinsics, stamp, camera, image, pose)
            if b.size == 0:
                failed.append(f'{name}: {why or "no samples"}')
                continue
            used.append(name)
            bs.append(b)
            zs.append(z)
            ws.append(np.full(b.size, weight / b.size))
        if not bs:
            return ScaleFit(reason='; '.join(failed))
        b, z, w = np.concatenate(bs), np.concatenate(zs), np.concatenate(ws)
        # A range alone is one distance: it tells a scale, never a shift.
        fit_shift = self.fit_shift and used != ['range']
        fit = fit_sparse(b, z, self.kind, fit_shift=fit_shift,
                         inlier_tolerance=max(c.sparse_inlier_tolerance,
                                              c.ground_inlier_tolerance),
                         min_inliers=min(c.scale_min_inliers, b.size), weights=w * b.size)
        if fit.ok and failed:
            fit.reason = ''
        return fit

    def update(self, base: np.ndarray, intrinsics: Optional[Intrinsics],
               stamp: float, camera: Optional[Intrinsics] = None,
               image: Optional[np.ndarray] = None, pose: Optional[np.ndarray] = None
               ) -> Optional[Tuple[float, float]]:
        """Fit, filter and return the (scale, shift) to apply now, or None (no metres)."""
        c = self.config
        if c.source == 'none':
            return (1.0, 0.0) if self.metric_model else None
        if self._last_stamp is not None and stamp < self._last_stamp:
            # Time went backwards (a bag played in a loop, a clock set back): the held scale
            # and its timing mean nothing now. tf2's buffer clears itself the same way.
            self.counts['time_jumps_back'] += 1
            self.reset(f'scale: time jumped back {self._last_stamp - stamp:.3f} s; '
                       'scale history cleared')
        fit = self.fit(base, intrinsics, stamp, camera, image, pose)
        self.last_fit = fit
        if self._last_good is not None and stamp - self._last_good > c.scale_hold:
            # The hold ran out: forget the old scale, so a new fit is taken as it is.
            self._scale = None
            self._last_good = None
            self._candidate = None
            self.counts['expired'] += 1
        if not fit.ok:
            self.counts['rejected_fit'] += 1
        elif self._scale is not None and c.scale_max_jump > 0 and c.source != 'fixed' and \
                abs(math.log(fit.scale / self._scale)) > math.log1p(c.scale_max_jump):
            self._reject_jump(fit, stamp)
        else:
            self._candidate = None
            self._accept(fit, stamp, base)
        self._last_stamp = stamp
        if self._scale is None:
            return None
        return self._scale, self._shift

    def _reject_jump(self, fit: ScaleFit, stamp: float) -> None:
        """Reject a jump, unless it is the JUMP_CONFIRM-th fit agreeing with the last ones."""
        c = self.config
        cand = self._candidate
        if cand is not None and abs(math.log(fit.scale / cand[0])) <= math.log1p(
                c.scale_max_jump):
            cand = (fit.scale, cand[1] + 1)
        else:
            cand = (fit.scale, 1)
        self._candidate = cand
        if cand[1] >= JUMP_CONFIRM:
            # Consistent fits that all disagree with the held scale: it was the held one
            # that was wrong (a wrong first fit, a changed scene). Take the new one as is.
            self.counts['rescaled'] += 1
            self.counts['fits'] += 1
            self._scale, self._shift = fit.scale, fit.shift
            self._last_good = stamp
            self._candidate = None
            return
        self.counts['rejected_jump'] += 1
        self.last_fit = ScaleFit(fit.scale, fit.shift, fit.inliers, fit.samples,
                                 fit.residual, reason='jump beyond scale_max_jump')

    def _accept(self, fit: ScaleFit, stamp: float, base: Optional[np.ndarray] = None) -> None:
        self.counts['fits'] += 1
        c = self.config
        if self._scale is None or c.scale_smoothing <= 0 or self._last_good is None:
            self._scale, self._shift = fit.scale, fit.shift
        else:
            dt = max(stamp - self._last_good, 0.0)
            alpha = 1.0 - math.exp(-dt / c.scale_smoothing)
            # Smooth the metric result: depths blend geometrically (a ratio: 2x and 0.5x
            # weigh alike), and the map is the one that gives the blend.
            self._scale, self._shift = blend_metric(
                base if base is not None else np.ones(1), self.kind,
                (self._scale, self._shift), (fit.scale, fit.shift), alpha)
        self._last_good = stamp

    def for_frame(self, stamp: float, camera: Optional[Intrinsics] = None,
                  image: Optional[np.ndarray] = None,
                  pose: Optional[np.ndarray] = None) -> '_FrameFit':
        """Return the frame pipeline's scale source for a frame: stamp (s), camera, image."""
        return _FrameFit(self, stamp, camera, image, pose)

    def age(self, now: float) -> float:
        """Seconds since the last good fit (inf when none)."""
        return math.inf if self._last_good is None else max(now - self._last_good, 0.0)

    def metric_now(self) -> bool:
        """Return True while a scale is held (metric output is published)."""
        return self._scale is not None

    def diagnostics(self, now: Optional[float] = None) -> Dict[str, str]:
        """Return key/value strings for a DiagnosticStatus."""
        now = self._last_stamp if now is None else now
        fit = self.last_fit
        values = {
            'scale_source': self.config.source,
            'scale': 'none' if self._scale is None else f'{self._scale:.6g}',
            'scale_shift': f'{self._shift:.6g}' if self._scale is not None else 'none',
            'scale_inliers': str(fit.inliers),
            'scale_samples': str(fit.samples),
            'scale_residual': 'nan' if not math.isfinite(fit.residual) else
                              f'{fit.residual:.4f}',
            'scale_fit_age_s': 'inf' if now is None or self._last_good is None else
                               f'{self.age(now):.3f}',
            'scale_last_fit': fit.reason or 'ok',
        }
        for key, value in self.counts.items():
            values[f'scale_{key}'] = str(value)
        return values


class _FrameFit:
    """One frame's scale source for FrameProcessor.run(..., scale=...): ``fit(sample)``."""

    def __init__(self, estimator: ScaleEstimator, stamp: float,
                 camera: Optional[Intrinsics] = None, image: Optional[np.ndarray] = None,
                 pose: Optional[np.ndarray] = None):
        self.estimator = estimator
        self.stamp = float(stamp)
        self.camera = camera
        self.image = image
        self.pose = pose

    def fit(self, sample) -> Optional[Tuple[float, float]]:
        """Fit on ``sample.native`` (with ``sample.camera``); None means no metres."""
        kind = 'inverse' if sample.inverse else 'depth'
        if kind != self.estimator.kind:
            raise ScaleError(f'the scale source was set up for a {self.estimator.kind} base, '
                             f'but the frame gives {kind}')
        return self.estimator.update(sample.native, sample.camera, self.stamp, self.camera,
                                     self.image, self.pose)
