"""
Depth evaluation metrics: one function per image, then an average over images.

Follows the standard definitions (Eigen et al. 2014; as in Depth-Anything-V2's
``metric_depth/util/metric.py`` and BTS's ``bts_eval.py``), each written once here:
abs_rel, sq_rel, rmse, rmse_log, log10, silog, d1, d2, d3.
"""

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np

METRIC_NAMES = ('abs_rel', 'sq_rel', 'rmse', 'rmse_log', 'log10', 'silog', 'd1', 'd2', 'd3')


class NoValidPixelsError(ValueError):
    """No pixel survives the valid mask, so the image has no metrics."""


@dataclass(frozen=True)
class Crop:
    """
    An evaluation crop: rows [top, bottom), cols [left, right) at a reference size.

    Bounds scale with the image: row = int(top * height / ref_height). With ref sizes of 1
    the bounds are fractions (the KITTI crops); with NYU's 480x640 they are pixels.
    Calling the crop with a shape returns its bool mask.
    """

    name: str
    top: float
    bottom: float
    left: float
    right: float
    ref_height: float = 1.0
    ref_width: float = 1.0

    def bounds(self, shape: Sequence[int]) -> Tuple[int, int, int, int]:
        """Return (top, bottom, left, right) pixel bounds for an (H, W) image."""
        h, w = int(shape[0]), int(shape[1])
        return (int(self.top * h / self.ref_height), int(self.bottom * h / self.ref_height),
                int(self.left * w / self.ref_width), int(self.right * w / self.ref_width))

    def __call__(self, shape: Sequence[int]) -> np.ndarray:
        """Return the (H, W) bool mask of the crop."""
        top, bottom, left, right = self.bounds(shape)
        mask = np.zeros((int(shape[0]), int(shape[1])), dtype=bool)
        mask[top:bottom, left:right] = True
        return mask


# NYU Depth V2 (Eigen et al.): the valid Kinect region, eval_mask[45:471, 41:601] at 480x640.
EIGEN_CROP = Crop('eigen', 45, 471, 41, 601, ref_height=480, ref_width=640)
# KITTI, Garg et al. (called "eigen" in Monodepth2's code, which it is not).
GARG_CROP = Crop('garg', 0.40810811, 0.99189189, 0.03594771, 0.96405229)
# KITTI, Eigen et al.'s own crop (BTS's ``--eigen_crop``).
EIGEN_CROP_KITTI = Crop('eigen_kitti', 0.3324324, 0.91351351, 0.0359477, 0.96405229)
CROPS = {c.name: c for c in (EIGEN_CROP, GARG_CROP, EIGEN_CROP_KITTI)}

CropArg = Union[None, str, Crop, Callable[[Sequence[int]], np.ndarray], np.ndarray]


def crop_mask(crop: CropArg, shape: Sequence[int]) -> np.ndarray:
    """Resolve a crop given by name, Crop, callable or bool array into an (H, W) mask."""
    if crop is None:
        return np.ones(tuple(shape[:2]), dtype=bool)
    if isinstance(crop, str):
        if crop not in CROPS:
            raise ValueError(f'unknown crop {crop!r}; known: {", ".join(CROPS)}')
        crop = CROPS[crop]
    mask = np.asarray(crop(shape) if callable(crop) else crop)
    if mask.shape != tuple(shape[:2]) or mask.dtype != bool:
        raise ValueError(f'crop mask must be bool {tuple(shape[:2])}, got {mask.dtype} '
                         f'{mask.shape}')
    return mask


def compute_depth_metrics(pred: np.ndarray, gt: np.ndarray, mask: Optional[np.ndarray] = None,
                          min_depth: float = 1e-3, max_depth: float = 80.0,
                          crop: CropArg = None,
                          median_scaling: bool = False) -> Dict[str, float]:
    """
    Return the standard depth metrics of one (H, W) prediction against ground truth.

    Valid pixels: gt finite and in (min_depth, max_depth), AND the user mask, AND the crop,
    AND a finite prediction (the fraction of otherwise valid pixels with a finite prediction
    is returned as ``coverage``). With ``median_scaling`` the prediction is multiplied by
    median(gt) / median(pred) first and the ratio returned as ``scale``. Predictions are then
    clamped to [min_depth, max_depth]. Raises NoValidPixelsError when nothing is valid.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim != 2 or pred.shape != gt.shape:
        raise ValueError(f'pred {pred.shape} and gt {gt.shape} must be equal (H, W) arrays')
    if not 0 < min_depth < max_depth:
        raise ValueError(f'need 0 < min_depth < max_depth, got [{min_depth}, {max_depth}]')
    valid = np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != gt.shape or mask.dtype != bool:
            raise ValueError(f'mask must be bool {gt.shape}, got {mask.dtype} {mask.shape}')
        valid &= mask
    valid &= crop_mask(crop, gt.shape)
    wanted = int(valid.sum())
    valid &= np.isfinite(pred)
    if not valid.any():
        raise NoValidPixelsError('no valid pixels: check the depth range, mask and crop')
    p, g = pred[valid], gt[valid]
    out: Dict[str, float] = {}
    if median_scaling:
        ratio = float(np.median(g) / np.median(p))
        p = p * ratio
        out['scale'] = ratio
    p = np.clip(p, min_depth, max_depth)
    thresh = np.maximum(g / p, p / g)
    err_log = np.log(p) - np.log(g)
    out.update({
        'abs_rel': float(np.mean(np.abs(g - p) / g)),
        'sq_rel': float(np.mean((g - p) ** 2 / g)),
        'rmse': float(np.sqrt(np.mean((g - p) ** 2))),
        'rmse_log': float(np.sqrt(np.mean(err_log ** 2))),
        'log10': float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        'silog': float(np.sqrt(max(np.mean(err_log ** 2) - np.mean(err_log) ** 2, 0.0)) * 100),
        'd1': float(np.mean(thresh < 1.25)),
        'd2': float(np.mean(thresh < 1.25 ** 2)),
        'd3': float(np.mean(thresh < 1.25 ** 3)),
        'coverage': float(valid.sum() / wanted),
    })
    return out


def average_metrics(per_image: Iterable[Dict[str, float]]) -> Dict[str, float]:
    """Average per-image metric dicts key by key (every image weighs the same)."""
    rows = list(per_image)
    if not rows:
        raise ValueError('no per-image metrics to average')
    keys = [k for k in rows[0] if all(k in r for r in rows)]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}
