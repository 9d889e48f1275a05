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
:class:`ScaleEstimator`, which smooths, rejects, holds and reports):

``ground_plane``
    The floor below a camera at ``camera_height`` (m), pitched down by ``camera_pitch``
    (rad), is the plane ``n . X = h`` with ``n = (sin(roll) cos(pitch), cos(roll) cos(pitch),
    sin(pitch))`` in the optical frame. Its inverse depth is *linear in the normalised image
    coordinates*: ``1 / z = (n . (x, y, 1)) / h``. So the fit is a RANSAC plane
    ``q = a x + b y + c`` through ``(x, y, q)`` of the decimated lower image part (``q`` the
    inverse-depth base, or ``1 / b`` for a depth base), and the scale follows in closed form.

    The inverse-depth shift: adding a constant to inverse depth is a projective map that
    keeps planes planar, so *no* amount of flatness can tell the shift. With the shift
    unknown (``relative_inverse_depth``) the floor fixes the scale from the slope
    ``|(a, b)| = cos(pitch) / (h * scale)`` and the shift from the expected pitch:
    ``shift = sin(pitch) / h - scale * c``; the roll is read from the data (``atan2(a, b)``)
    and must lie within ``normal_tolerance``. A pitch error ``e`` then shows up as an
    inverse-depth offset of about ``e * cos(pitch) / h``, so give camera_pitch precisely.
    With the shift known to be zero (depth bases, or ``fit_shift=False``), the plane's full
    normal ``(a, b, c) / |(a, b, c)|`` is observed and must lie within ``normal_tolerance``
    of the expected one, and ``scale = 1 / (h * |(a, b, c)|)`` (in inverse depth).
``sparse_depth``
    Samples of a metric depth sensor registered to the camera (an image of any resolution,
    or optical-frame points): a RANSAC line through (base, depth) pairs with residuals
    measured as relative depth error, refined by least squares on the inliers, so that a
    minority of wrong samples (multipath, a LiDAR seeing past an edge) does not pull it.
``range``
    One rangefinder distance along the optical axis against the median base in a window
    centred on the principal point (cx, cy), where the beam lands: a scale only (the shift
    is taken as 0).
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
from dataclasses import dataclass, field
import math
import threading
from typing import Any, Callable, Deque, Dict, Optional, Sequence, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import INVERSE_MODES
import numpy as np

SCALE_SOURCES = ('none', 'ground_plane', 'sparse_depth', 'range', 'fixed', 'motion')
#: the sources that fit pairs and can be combined in one fit
FIT_SOURCES = ('ground_plane', 'sparse_depth', 'range', 'motion')
#: consecutive consistent fits beyond scale_max_jump that replace the held scale
JUMP_CONFIRM = 3
BASE_KINDS = ('depth', 'inverse')


class ScaleError(ValueError):
    """A scale-source configuration or sample is invalid."""


@dataclass
class ScaleFit:
    """The outcome of one fit: scale and shift (see the module docstring), or a reason."""

    scale: float = math.nan
    shift: float = 0.0
    inliers: int = 0
    samples: int = 0
    residual: float = math.nan  # median relative depth error of the inliers
    reason: str = ''            # empty when the fit succeeded
    #: the (base values, metric depths) the fit rests on, for a combined fit
    pairs: Optional[Tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Return True when the fit produced a usable scale."""
        return not self.reason and math.isfinite(self.scale) and self.scale > 0 \
            and math.isfinite(self.shift)


def base_kind(output_mode: str) -> str:
    """Return the base kind ('depth' or 'inverse') a scale source sees for an output mode."""
    return 'inverse' if output_mode in INVERSE_MODES else 'depth'


def apply_scale(base: np.ndarray, kind: str, scale: float, shift: float) -> np.ndarray:
    """Return metric depth (float32, NaN where the map gives no positive finite depth)."""
    b = np.asarray(base, dtype=np.float32)
    s, t = np.float32(scale), np.float32(shift)
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if kind == 'inverse':
            depth = np.float32(1.0) / (b * s + t)
        else:
            depth = b * s + t
    depth[~(depth > 0) | ~np.isfinite(depth)] = np.float32(math.nan)
    return depth


def relative_depth_like(base: np.ndarray, kind: str) -> np.ndarray:
    """Map a base to depth-like order (larger = farther), unitless, NaN where undefined."""
    b = np.asarray(base, dtype=np.float32)
    if kind == 'depth':
        return np.where(np.isfinite(b), b, np.float32(math.nan))
    with np.errstate(divide='ignore', invalid='ignore'):
        out = np.float32(1.0) / b
    out[~(b > 0)] = np.float32(math.nan)
    return out


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# -- ground plane -----------------------------------------------------------------------------
def ground_samples(base: np.ndarray, intrinsics: Intrinsics, pitch: float, region: float = 0.5,
                   max_points: int = 1000, seed: int = 0, camera_height: float = 0.0,
                   max_distance: float = math.inf
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return normalised coordinates (x, y) and base values of the floor candidates.

    The candidates are the finite pixels of the lower ``region`` fraction of the image that
    also lie below the expected horizon (and, given ``camera_height``, where a level floor
    would be nearer than ``max_distance``), on a regular grid (or a random subset, for
    sparse bases such as projected LiDAR) of at most ``max_points``.
    """
    h, w = base.shape
    if (w, h) != (intrinsics.width, intrinsics.height):
        raise ScaleError(f'base is {w}x{h} but the intrinsics are for '
                         f'{intrinsics.width}x{intrinsics.height}')
    horizon = intrinsics.cy - intrinsics.fy * math.tan(pitch)
    # A margin below the horizon: near it the floor is far and its inverse depth tiny.
    top = max(h * (1.0 - region), horizon + 0.05 * h, 0)
    if camera_height > 0 and math.isfinite(max_distance):
        # The floor's inverse depth at normalised row y is (cos(p) y + sin(p)) / height.
        y_far = (camera_height / max_distance - math.sin(pitch)) / math.cos(pitch)
        top = max(top, intrinsics.cy + intrinsics.fy * y_far)
    top = int(math.ceil(top))
    if top >= h:
        return np.empty(0), np.empty(0), np.empty(0)
    lower = base[top:]
    step = max(1, int(math.ceil(math.sqrt(lower.size / max_points))))
    grid = lower[::step, ::step]
    rows, cols = np.nonzero(np.isfinite(grid))
    if rows.size > max_points:
        pick = _rng(seed).choice(rows.size, max_points, replace=False)
        rows, cols = rows[pick], cols[pick]
    elif rows.size < 0.25 * grid.size and rows.size < max_points:
        # Sparse base: the grid missed most samples, so take every finite pixel instead.
        rows, cols = np.nonzero(np.isfinite(lower))
        if rows.size > max_points:
            pick = _rng(seed).choice(rows.size, max_points, replace=False)
            rows, cols = rows[pick], cols[pick]
        step = 1
    values = (lower[::step, ::step] if step > 1 else lower)[rows, cols]
    u = cols * step
    v = rows * step + top
    x = (u - intrinsics.cx) / intrinsics.fx
    y = (v - intrinsics.cy) / intrinsics.fy
    return x.astype(np.float64), y.astype(np.float64), values.astype(np.float64)


def _floor_triples(x: np.ndarray, y: np.ndarray, iterations: int,
                   rng: np.random.Generator) -> np.ndarray:
    """
    Draw RANSAC triples, most of them local and near the bottom of the image.

    A floor seen over a few rows is a small share of the candidates, so uniform triples
    rarely land on it alone. The floor is contiguous and lies at the bottom of a ground
    robot's view: a first point drawn with a weight growing towards the bottom, and two
    more among its neighbours (NAPSAC), hit it far more often. A quarter stay uniform.
    """
    n = x.size
    uniform = rng.integers(0, n, size=(iterations // 4, 3))
    k = iterations - uniform.shape[0]
    cdf = np.cumsum((y - y.min() + 1e-3) ** 2)
    first = np.minimum(np.searchsorted(cdf, rng.random(k) * cdf[-1]), n - 1)
    # Two more points from the first point's cell of a coarse 6 x 6 grid over the candidates.
    span_x = max(float(x.max() - x.min()), 1e-9)
    span_y = max(float(y.max() - y.min()), 1e-9)
    cell = (np.minimum(((x - x.min()) / span_x * 6).astype(np.int64), 5) * 6 +
            np.minimum(((y - y.min()) / span_y * 6).astype(np.int64), 5))
    order = np.argsort(cell, kind='stable')
    counts = np.bincount(cell, minlength=36)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    c = cell[first]
    pick = (rng.random((k, 2)) * counts[c, None]).astype(np.int64)
    others = order[starts[c, None] + pick]
    return np.concatenate([uniform, np.column_stack([first, others])], axis=0)


def _plane_to_scale(abc: np.ndarray, height: float, pitch: float, fit_shift: bool,
                    tolerance: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """
    Map inverse-depth planes (K, 3) to (scale, shift, normal (K, 3), valid) in inverse depth.

    ``scale * q + shift`` is metric inverse depth; see the module docstring.
    """
    a, b, c = abc[:, 0], abc[:, 1], abc[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        if fit_shift:
            slope = np.hypot(a, b)
            roll = np.arctan2(a, b)
            scale = math.cos(pitch) / (height * slope)
            shift = math.sin(pitch) / height - scale * c
            normal = np.stack([np.sin(roll) * math.cos(pitch), np.cos(roll) * math.cos(pitch),
                               np.full_like(roll, math.sin(pitch))], axis=1)
            valid = (b > 0) & (np.abs(roll) <= tolerance) & (slope > 0)
        else:
            norm = np.sqrt(a * a + b * b + c * c)
            normal = abc / norm[:, None]
            expected = np.array([0.0, math.cos(pitch), math.sin(pitch)])
            angle = np.arccos(np.clip(normal @ expected, -1.0, 1.0))
            scale = 1.0 / (height * norm)
            shift = np.zeros_like(scale)
            valid = angle <= tolerance
    valid &= np.isfinite(scale) & (scale > 0) & np.isfinite(shift)
    return scale, shift, normal, valid


def fit_ground_plane(base: np.ndarray, kind: str, intrinsics: Intrinsics, camera_height: float,
                     camera_pitch: float = 0.0, fit_shift: Optional[bool] = None,
                     normal_tolerance: float = math.radians(10.0),
                     inlier_tolerance: float = 0.02, min_inliers: int = 50,
                     min_inlier_fraction: float = 0.1, region: float = 0.5,
                     max_distance: float = 40.0, max_points: int = 1000, iterations: int = 48,
                     score_points: int = 400, seed: int = 0) -> ScaleFit:
    """
    Fit the scale (and shift) that puts the floor at ``camera_height`` below the camera.

    ``fit_shift`` defaults to True for an inverse base (affine-invariant inverse depth) and
    must be False for a depth base (an affine *depth* shift bends the floor; it is taken as
    0). The returned scale and shift are in the base's own space (see :func:`apply_scale`).
    """
    if not (math.isfinite(camera_height) and camera_height > 0):
        raise ScaleError(f'camera_height must be positive, got {camera_height}')
    if fit_shift is None:
        fit_shift = kind == 'inverse'
    if fit_shift and kind != 'inverse':
        raise ScaleError('ground_plane fits a shift only for inverse-depth bases')
    x, y, values = ground_samples(base, intrinsics, camera_pitch, region, max_points, seed,
                                  camera_height, max_distance)
    if kind == 'depth':
        with np.errstate(divide='ignore'):
            keep = values > 0
            x, y, q = x[keep], y[keep], 1.0 / values[keep]
    else:
        q = values
    n = q.size
    if n < max(3, min_inliers):
        return ScaleFit(samples=n, reason=f'only {n} floor candidates below the horizon')
    design = np.stack([x, y, np.ones_like(x)], axis=1)
    triples = _floor_triples(x, y, iterations, _rng(seed))
    mats = design[triples]
    dets = np.linalg.det(mats)
    good = np.abs(dets) > 1e-12
    if not good.any():
        return ScaleFit(samples=n, reason='floor candidates are degenerate')
    abc = np.linalg.solve(mats[good], q[triples[good]][..., None])[..., 0]
    scale, shift, normal, valid = _plane_to_scale(abc, camera_height, camera_pitch, fit_shift,
                                                  normal_tolerance)
    if not valid.any():
        return ScaleFit(samples=n, reason='no plane near the expected floor normal')
    abc, scale, shift, normal = abc[valid], scale[valid], shift[valid], normal[valid]
    # Rank the hypotheses on an evenly strided subset (the candidates are a grid or a random
    # draw already): the inlier count ranks them as well, at a fraction of the cost.
    sub = slice(None, None, max(1, n // score_points))
    # Residual as relative (inverse) depth error against the hypothesis's own floor.
    floor_inv = (design[sub] @ normal.T) / camera_height         # (N', K) metric 1/z on floor
    metric_inv = q[sub, None] * scale[None] + shift[None]        # (N', K) metric 1/z of data
    with np.errstate(divide='ignore', invalid='ignore'):
        inl = (floor_inv > 0) & (np.abs(metric_inv - floor_inv) <= inlier_tolerance * floor_inv)
    best = int(np.argmax(inl.sum(axis=0)))
    s_best, t_best, abc_best = float(scale[best]), float(shift[best]), abc[best]
    fl = (design @ normal[best]) / camera_height
    with np.errstate(divide='ignore', invalid='ignore'):
        rel_best = np.abs(q * s_best + t_best - fl) / fl
    mask = (fl > 0) & (rel_best <= inlier_tolerance)
    # Refine on the inliers, weighted so that the residual is relative (w = 1 / q).
    for _ in range(2):
        if mask.sum() < 3:
            break
        weight = 1.0 / np.maximum(np.abs(q[mask]), 1e-12)
        # Weighted least squares by its 3x3 normal equations (well conditioned here: x, y
        # and 1 over the image part), far cheaper than an SVD per refinement.
        dw = design[mask] * weight[:, None]
        try:
            sol = np.linalg.solve(dw.T @ dw, dw.T @ (q[mask] * weight))
        except np.linalg.LinAlgError:
            break
        s1, t1, n1, v1 = _plane_to_scale(sol[None], camera_height, camera_pitch, fit_shift,
                                         normal_tolerance)
        if not v1[0]:
            break
        fl = (design @ n1[0]) / camera_height
        with np.errstate(divide='ignore', invalid='ignore'):
            r = np.abs(q * s1[0] + t1[0] - fl) / fl
        new_mask = (fl > 0) & (r <= inlier_tolerance)
        if new_mask.sum() < 0.9 * mask.sum():
            break
        mask, s_best, t_best, rel_best, abc_best = new_mask, float(s1[0]), float(t1[0]), r, sol
    inliers = int(mask.sum())
    residual = float(np.median(rel_best[mask])) if inliers else math.nan
    need = max(min_inliers, int(math.ceil(min_inlier_fraction * n)))
    if inliers < need:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason=f'floor plane has {inliers} of {n} inliers (< {need})')
    # With the shift unknown, a surface facing the camera (its inverse depth nearly flat
    # across the rows) passes for a very distant floor through a huge scale, which puts
    # everything nearer than it at a few millimetres: refuse such a scale.
    grid = base[::max(1, base.shape[0] // 32), ::max(1, base.shape[1] // 32)]
    g = grid[np.isfinite(grid)].astype(np.float64)
    if kind == 'depth':
        g = 1.0 / g[g > 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        implied = 1.0 / (g * s_best + t_best)
    # The floor recedes: its inverse depth must change across its rows by a fair part of
    # the image's whole inverse-depth range (a wall facing the camera barely changes).
    floor_q = design[mask] @ abc_best
    spread = 0.0
    if g.size:
        lo_hi = np.partition(g, (int(0.02 * (g.size - 1)), int(0.98 * (g.size - 1))))
        spread = float(lo_hi[int(0.98 * (g.size - 1))] - lo_hi[int(0.02 * (g.size - 1))])
    if not float(np.ptp(floor_q)) > max(0.1 * spread, 1e-6 * float(np.max(np.abs(q)))):
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason='the plane found does not recede like a floor '
                               '(a surface facing the camera?)')
    if g.size and np.count_nonzero(~(implied > 0.05 * camera_height)) > 0.05 * g.size:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason='the floor fit puts much of the image implausibly near '
                               '(a wall in front, not a floor?)')
    fit = _in_base_space(s_best, t_best, kind, inliers, n, residual)
    # The inliers, at the depth the floor puts there (within inlier_tolerance of the data).
    with np.errstate(divide='ignore', invalid='ignore'):
        floor_z = 1.0 / (q[mask] * s_best + t_best)
        fit.pairs = (q[mask] if kind == 'inverse' else 1.0 / q[mask], floor_z)
    return fit


def _in_base_space(inv_scale: float, inv_shift: float, kind: str, inliers: int, samples: int,
                   residual: float) -> ScaleFit:
    """Turn an inverse-depth fit of q (1 / base for depth bases) into the base's space."""
    if kind == 'inverse':
        return ScaleFit(inv_scale, inv_shift, inliers, samples, residual)
    # 1 / z = inv_scale / b  <=>  z = b / inv_scale (the shift of a depth base is 0 here).
    return ScaleFit(1.0 / inv_scale, 0.0, inliers, samples, residual)


# -- sparse depth -----------------------------------------------------------------------------
@dataclass
class SparseSamples:
    """
    Metric depth samples registered to the camera.

    Either an image's samples, as normalised pixel coordinates (``u_norm`` in [0, 1) across
    the width, pixel centres at ``(u + 0.5) / W``), or optical-frame points (``points``,
    (N, 3) metres), projected with the base's intrinsics at fit time.
    """

    stamp: float
    depth: np.ndarray = field(default_factory=lambda: np.empty(0))
    u_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    v_norm: np.ndarray = field(default_factory=lambda: np.empty(0))
    points: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.points.shape[0]) if self.points is not None else int(self.depth.size)

    @classmethod
    def from_depth_image(cls, image: np.ndarray, stamp: float,
                         millimetres: Optional[bool] = None) -> 'SparseSamples':
        """Take the valid pixels of a sparse depth image (float m or uint16 mm; 0/NaN none)."""
        img = np.asarray(image)
        if img.ndim != 2 or img.size == 0:
            raise ScaleError(f'sparse depth must be a non-empty 2-D image, got {img.shape}')
        if millimetres is None:
            millimetres = img.dtype == np.uint16
        # One pass over the image (NaN > 0 is False), conversions on the samples only.
        rows, cols = np.nonzero(img > 0)
        z = img[rows, cols].astype(np.float64)
        if millimetres:
            z *= 0.001
        finite = np.isfinite(z)
        if not finite.all():
            rows, cols, z = rows[finite], cols[finite], z[finite]
        h, w = img.shape
        return cls(stamp=float(stamp), depth=z, u_norm=(cols + 0.5) / w,
                   v_norm=(rows + 0.5) / h)

    @classmethod
    def from_points(cls, points: np.ndarray, stamp: float) -> 'SparseSamples':
        """Take optical-frame points (N, 3+) in metres; those not in front are dropped."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 3:
            raise ScaleError(f'sparse points must be (N, 3), got {p.shape}')
        p = p[:, :3]
        p = p[np.isfinite(p).all(axis=1) & (p[:, 2] > 0)]
        return cls(stamp=float(stamp), points=p)

    def pairs(self, base: np.ndarray, intrinsics: Optional[Intrinsics] = None,
              camera: Optional[Intrinsics] = None) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (base value, metric depth) at the samples that land on finite base pixels.

        ``intrinsics`` describe the base; ``camera`` the whole camera image the sparse image
        is registered to. With both, image samples go through their rays, so a base that is
        a crop or a padded part of the camera image (the model's view) is matched exactly;
        without ``camera`` an image sample maps by its relative position (the base is then
        taken to show the whole camera image).
        """
        h, w = base.shape
        if self.points is None and camera is not None and intrinsics is not None:
            # The pixel centre (u_norm * W - 0.5) of the camera image, on its ray, at z.
            x = (self.u_norm * camera.width - 0.5 - camera.cx) / camera.fx
            y = (self.v_norm * camera.height - 0.5 - camera.cy) / camera.fy
            rays = SparseSamples(self.stamp, points=np.stack(
                [x * self.depth, y * self.depth, self.depth], axis=1))
            return rays.pairs(base, intrinsics)
        if self.points is not None:
            if intrinsics is None:
                raise ScaleError('sparse points need the intrinsics of the base image')
            if (w, h) != (intrinsics.width, intrinsics.height):
                raise ScaleError(f'base is {w}x{h} but the intrinsics are for '
                                 f'{intrinsics.width}x{intrinsics.height}')
            p = self.points
            # Half up, not to even: a sample centred between two pixels (a sensor of half the
            # resolution) then lands where its relative position puts it.
            u = np.floor(p[:, 0] / p[:, 2] * intrinsics.fx + intrinsics.cx + 0.5)
            v = np.floor(p[:, 1] / p[:, 2] * intrinsics.fy + intrinsics.cy + 0.5)
            z = p[:, 2]
        else:
            u = np.floor(self.u_norm * w)
            v = np.floor(self.v_norm * h)
            z = self.depth
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        b = base[v[inside].astype(np.int64), u[inside].astype(np.int64)].astype(np.float64)
        z = z[inside]
        keep = np.isfinite(b)
        return b[keep], z[keep]


_DEPTH_ENCODINGS = {'32FC1': (np.float32, False), '16UC1': (np.uint16, True),
                    'mono16': (np.uint16, True)}


def sparse_from_image_buffer(encoding: str, width: int, height: int, step: int, data: bytes,
                             bigendian: bool, stamp: float) -> SparseSamples:
    """
    Read a sensor_msgs/Image of sparse depth (32FC1 metres, 16UC1 millimetres) into samples.

    Raise ScaleError with the reason for an unsupported encoding, a zero size, a step
    shorter than a row, or a buffer shorter than ``step * height``.
    """
    if encoding not in _DEPTH_ENCODINGS:
        raise ScaleError(f'sparse depth encoding {encoding[:40]!r} is not 32FC1 (m) or 16UC1 '
                         '(mm)')
    dtype, millimetres = _DEPTH_ENCODINGS[encoding]
    item = np.dtype(dtype).itemsize
    if width <= 0 or height <= 0:
        raise ScaleError(f'sparse depth has zero size ({width}x{height})')
    if step < width * item:
        raise ScaleError(f'sparse depth step {step} is shorter than a row ({width * item})')
    if len(data) < step * height:
        raise ScaleError(f'sparse depth buffer has {len(data)} bytes, expected '
                         f'{step * height}')
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)
    order = '>' if bigendian else '<'
    image = rows[:, :width * item].copy().view(np.dtype(dtype).newbyteorder(order))
    return SparseSamples.from_depth_image(image.astype(dtype), stamp, millimetres)


def sparse_from_cloud_buffer(fields: Sequence[Tuple[str, int, int]], point_step: int,
                             n_points: int, data: bytes, bigendian: bool,
                             stamp: float,
                             transform: Optional[np.ndarray] = None) -> SparseSamples:
    """
    Read x, y, z (FLOAT32, datatype 7) of a sensor_msgs/PointCloud2 buffer into samples.

    ``fields`` are (name, offset, datatype). ``transform`` is the 4x4 map from the cloud's
    frame to this camera's optical frame (the node looks it up with tf2); without it the
    points must already be in that frame. Points behind the camera are dropped after the
    transform. Raise ScaleError when x, y or z is missing or not FLOAT32, or the buffer is
    shorter than ``point_step * n_points``.
    """
    offsets: Dict[str, Any] = {name: (offset, kind) for name, offset, kind in fields}
    for axis in 'xyz':
        if axis not in offsets:
            raise ScaleError(f'sparse_points has no {axis} field')
        if offsets[axis][1] != 7:
            raise ScaleError(f'sparse_points field {axis} is not FLOAT32')
        if offsets[axis][0] + 4 > point_step:
            raise ScaleError(f'sparse_points field {axis} lies outside point_step {point_step}')
    if n_points <= 0:
        return SparseSamples.from_points(np.empty((0, 3)), stamp)
    if len(data) < point_step * n_points:
        raise ScaleError(f'sparse_points buffer has {len(data)} bytes, expected '
                         f'{point_step * n_points}')
    raw = np.frombuffer(data, np.uint8, count=point_step * n_points)
    raw = raw.reshape(n_points, point_step)
    dtype = np.dtype('>f4' if bigendian else '<f4')
    xyz = np.stack([raw[:, offsets[a][0]:offsets[a][0] + 4].copy().view(dtype)[:, 0]
                    for a in 'xyz'], axis=1).astype(np.float64)
    if transform is not None:
        xyz = xyz @ transform[:3, :3].T + transform[:3, 3]
    return SparseSamples.from_points(xyz, stamp)


def _weighted_line(b: np.ndarray, target: np.ndarray, weight: np.ndarray,
                   fit_shift: bool) -> Tuple[float, float]:
    if fit_shift:
        a = np.stack([b, np.ones_like(b)], axis=1) * weight[:, None]
        sol, *_ = np.linalg.lstsq(a, target * weight, rcond=None)
        return float(sol[0]), float(sol[1])
    bw = b * weight
    return float(np.dot(bw, target * weight) / max(np.dot(bw, bw), 1e-300)), 0.0


def fit_sparse(base_values: np.ndarray, depth: np.ndarray, kind: str, fit_shift: bool = True,
               inlier_tolerance: float = 0.05, min_inliers: int = 20, iterations: int = 32,
               score_points: int = 500, seed: int = 0,
               weights: Optional[np.ndarray] = None) -> ScaleFit:
    """
    Fit ``depth = s b + t`` (depth base) or ``1 / depth = s b + t`` (inverse base) robustly.

    Residuals are relative depth errors; a sample is an inlier within ``inlier_tolerance``.
    ``weights`` (one per sample, > 0) weigh the hypotheses' inlier counts and the least
    squares: a combined fit gives every source its share whatever its number of samples.
    """
    b = np.asarray(base_values, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    w = np.ones_like(b) if weights is None else np.asarray(weights, dtype=np.float64)
    good = np.isfinite(b) & np.isfinite(z) & (z > 0) & np.isfinite(w) & (w > 0)
    b, z, w = b[good], z[good], w[good]
    n = b.size
    need = max(2 if fit_shift else 1, min_inliers)
    if n < need:
        return ScaleFit(samples=n, reason=f'only {n} sparse samples on the image (< {need})')
    target = 1.0 / z if kind == 'inverse' else z
    rng = _rng(seed)
    # Hypotheses drawn in proportion to the weights (each source its share).
    cdf = np.cumsum(w)
    cdf /= cdf[-1]

    def draw(size):
        return np.minimum(np.searchsorted(cdf, rng.random(size)), n - 1)

    if fit_shift:
        pairs = draw((iterations, 2))
        b0, b1 = b[pairs[:, 0]], b[pairs[:, 1]]
        y0, y1 = target[pairs[:, 0]], target[pairs[:, 1]]
        with np.errstate(divide='ignore', invalid='ignore'):
            s = (y1 - y0) / (b1 - b0)
        t = y0 - s * b0
    else:
        pick = draw(iterations)
        with np.errstate(divide='ignore', invalid='ignore'):
            s = target[pick] / b[pick]
        t = np.zeros_like(s)
    ok = np.isfinite(s) & np.isfinite(t)
    if kind == 'depth':
        ok &= s > 0
    if not ok.any():
        return ScaleFit(samples=n, reason='sparse samples are degenerate')
    s, t = s[ok], t[ok]
    # Score the hypotheses on at most score_points samples: the count ranks them as well,
    # and the refinement below uses every sample.
    score = rng.choice(n, score_points, replace=False) if n > score_points else slice(None)
    bs, ts, ws = b[score], target[score], w[score]
    # relative depth error, the same for depth and inverse depth to first order
    rel = np.abs(bs[:, None] * s[None] + t[None] - ts[:, None]) / ts[:, None]
    best = int(np.argmax(((rel <= inlier_tolerance) * ws[:, None]).sum(axis=0)))
    scale, shift = float(s[best]), float(t[best])
    rel_best = np.abs(b * scale + shift - target) / target
    mask = rel_best <= inlier_tolerance
    for _ in range(3):
        if mask.sum() < need:
            break
        # Weight 1 / target makes the least squares minimise the relative error.
        scale, shift = _weighted_line(b[mask], target[mask],
                                      np.sqrt(w[mask]) / target[mask], fit_shift)
        rel_best = np.abs(b * scale + shift - target) / target
        mask = rel_best <= inlier_tolerance
    inliers = int(mask.sum())
    residual = float(np.median(rel_best[mask])) if inliers else math.nan
    if inliers < need:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason=f'sparse fit has {inliers} inliers (< {need})')
    if kind == 'inverse' and not scale > 0:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason='sparse fit inverts the depth order')
    return ScaleFit(scale, shift, inliers, n, residual, pairs=(b[mask], z[mask]))


# -- range ------------------------------------------------------------------------------------
def fit_range(base: np.ndarray, kind: str, range_m: float, window: float = 0.05,
              min_inliers: int = 10, intrinsics: Optional[Intrinsics] = None) -> ScaleFit:
    """
    Scale the median base of a ``window`` (fraction of each side) to ``range_m``.

    The rangefinder measures along the optical axis, which meets the image at the principal
    point: the window is centred on the base's (cx, cy) (``intrinsics``), or on the image
    centre without them. One distance fixes one number: the shift is 0.
    """
    if not (math.isfinite(range_m) and range_m > 0):
        return ScaleFit(reason=f'range {range_m} is not a positive distance')
    h, w = base.shape
    # At least 4x4 pixels: a small depth map (a 32x24 model output) still has a window.
    hw, hh = max(2, int(round(w * window / 2))), max(2, int(round(h * window / 2)))
    cu, cv = w // 2, h // 2
    if intrinsics is not None:
        # Pixel (u, v) covers [u - 0.5, u + 0.5] around its centre: the window of 2 hw
        # pixels centred on cx starts at round(cx - hw + 0.5).
        cu = int(round(float(intrinsics.cx) + 0.5))
        cv = int(round(float(intrinsics.cy) + 0.5))
    cu, cv = min(max(cu, hw), w - hw), min(max(cv, hh), h - hh)
    patch = np.asarray(base[cv - hh:cv + hh, cu - hw:cu + hw], dtype=np.float64).ravel()
    patch = patch[np.isfinite(patch)]
    if kind == 'depth':
        patch = patch[patch > 0]
    n = patch.size
    min_inliers = min(min_inliers, 4 * hw * hh // 2)
    if n < min_inliers:
        return ScaleFit(samples=n, reason=f'only {n} valid pixels in the central window')
    med = float(np.median(patch))
    if not med > 0:
        return ScaleFit(samples=n, reason='the central window has no positive base')
    scale = 1.0 / (range_m * med) if kind == 'inverse' else range_m / med
    rel = np.abs(patch / med - 1.0)
    # Inliers: the window pixels within 10% of its median (a flat target in front).
    inliers = int(np.count_nonzero(rel <= 0.1))
    residual = float(np.median(rel))
    if inliers < min_inliers:
        return ScaleFit(inliers=inliers, samples=n, residual=residual,
                        reason=f'central window is not one surface ({inliers} inliers)')
    kept = patch[rel <= 0.1]
    return ScaleFit(scale, 0.0, inliers, n, residual,
                    pairs=(kept, np.full(kept.size, float(range_m))))


# -- the estimator ------------------------------------------------------------------------------
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
