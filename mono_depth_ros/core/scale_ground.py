"""
The ``ground_plane`` scale source: the floor at a known height below the camera (no ROS).

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
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.scale_base import ScaleError, ScaleFit
import numpy as np


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
        pick = np.random.default_rng(seed).choice(rows.size, max_points, replace=False)
        rows, cols = rows[pick], cols[pick]
    elif rows.size < 0.25 * grid.size and rows.size < max_points:
        # Sparse base: the grid missed most samples, so take every finite pixel instead.
        rows, cols = np.nonzero(np.isfinite(lower))
        if rows.size > max_points:
            pick = np.random.default_rng(seed).choice(rows.size, max_points, replace=False)
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
    0). The returned scale and shift are in the base's own space (see
    :func:`.scale_base.apply_scale`).
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
    triples = _floor_triples(x, y, iterations, np.random.default_rng(seed))
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
