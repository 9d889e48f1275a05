"""
The ``sparse_depth`` scale source: metric depth samples registered to the camera (no ROS).

Samples of a metric depth sensor registered to the camera (an image of any resolution,
or optical-frame points): a RANSAC line through (base, depth) pairs with residuals
measured as relative depth error, refined by least squares on the inliers, so that a
minority of wrong samples (multipath, a LiDAR seeing past an edge) does not pull it.
The samples come from a sparse depth image or a point cloud (:class:`SparseSamples`, read
from the ROS messages' buffers by :func:`sparse_from_image_buffer` and
:func:`sparse_from_cloud_buffer`); :func:`fit_sparse` is also the robust line of the
``motion`` source and of a combined fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Dict, Optional, Sequence, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.scale_base import ScaleError, ScaleFit
import numpy as np


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
    rng = np.random.default_rng(seed)
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
