"""
Augmentations for RGB-D training samples, each switchable in the config.

Geometric ops (numpy/OpenCV, per sample, in the loader workers) move the image, the depth
and the intrinsics together:

* resize: RGB with area/bilinear interpolation, ``Intrinsics.resize`` (pixel-centre
  convention); depth with nearest-exact sampling, or, for sparse (LiDAR) depth being
  shrunk, by scattering each valid pixel to the target pixel holding its centre and keeping
  the nearest return - depth is never interpolated across invalid zeros;
* crop: ``Intrinsics.crop`` (cx - x0, cy - y0), exact;
* horizontal flip: ``Intrinsics.flip_horizontal`` (cx' = W - 1 - cx), exact;
* rotation by a small angle about the principal point (cx, cy): this is a camera roll
  about the optical axis, under which z (the depth) of every point is unchanged, so depth
  values are kept and only resampled (nearest); K is kept. It is exact when fx == fy and
  approximate otherwise. Pixels that come from outside the image get depth 0 (invalid).

Photometric ops (torch, batched (N, 3, H, W) float in [0, 1]) run either per sample in the
workers or on the training device over the whole batch (``augment.device``), since on a
GPU the workers would otherwise be the bottleneck: brightness, contrast and saturation
jitter, colour-channel swap, random grayscale. ImageNet normalisation is done by the task
on the device, so every dataset returns images in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD
import numpy as np
import torch

# Below this fraction of valid pixels a depth map is treated as sparse when shrunk.
SPARSE_FRACTION = 0.3
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass
class RawSample:
    """One loaded view: RGB uint8 (H, W, 3), depth float32 metres (0 = invalid), intrinsics."""

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    id: str = ''
    pose: Optional[np.ndarray] = None  # camera-to-world 4x4 where the dataset knows it


# -- geometric ------------------------------------------------------------------------------
def resize_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a depth map without mixing valid and invalid (0) values."""
    h, w = depth.shape
    if (w, h) == (width, height):
        return depth.copy()
    valid = depth > 0
    shrinking = width <= w and height <= h
    if shrinking and valid.mean() < SPARSE_FRACTION:
        v, u = np.nonzero(valid)
        tu = np.minimum(((u + 0.5) * (width / w)).astype(np.int64), width - 1)
        tv = np.minimum(((v + 0.5) * (height / h)).astype(np.int64), height - 1)
        out = np.full((height, width), np.inf, np.float32)
        np.minimum.at(out, (tv, tu), depth[v, u].astype(np.float32))
        out[~np.isfinite(out)] = 0.0
        return out
    return cv2.resize(depth.astype(np.float32), (width, height),
                      interpolation=cv2.INTER_NEAREST_EXACT)


def resize_sample(sample: RawSample, width: int, height: int) -> RawSample:
    """Resize RGB, depth and intrinsics to width x height."""
    h, w = sample.rgb.shape[:2]
    if (w, h) == (width, height):
        return sample
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    rgb = cv2.resize(sample.rgb, (width, height), interpolation=interp)
    return replace(sample, rgb=rgb, depth=resize_depth(sample.depth, width, height),
                   intrinsics=sample.intrinsics.resize(width, height))


def crop_sample(sample: RawSample, x0: int, y0: int, width: int, height: int) -> RawSample:
    """Crop the window whose top-left pixel is (x0, y0)."""
    h, w = sample.rgb.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + width > w or y0 + height > h:
        raise ValueError(f'crop {width}x{height} at ({x0}, {y0}) does not fit in {w}x{h}')
    return replace(sample, rgb=sample.rgb[y0:y0 + height, x0:x0 + width].copy(),
                   depth=sample.depth[y0:y0 + height, x0:x0 + width].copy(),
                   intrinsics=sample.intrinsics.crop(x0, y0, width, height))


def flip_sample(sample: RawSample) -> RawSample:
    """Mirror left-right; cx follows (cx' = W - 1 - cx)."""
    return replace(sample, rgb=sample.rgb[:, ::-1].copy(), depth=sample.depth[:, ::-1].copy(),
                   intrinsics=sample.intrinsics.flip_horizontal())


def rotate_sample(sample: RawSample, angle_deg: float) -> RawSample:
    """Roll the view by angle_deg about the principal point; K is kept (see module doc)."""
    if angle_deg == 0:
        return sample
    k = sample.intrinsics
    h, w = sample.rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((k.cx, k.cy), angle_deg, 1.0)
    rgb = cv2.warpAffine(sample.rgb, matrix, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    depth = cv2.warpAffine(sample.depth.astype(np.float32), matrix, (w, h),
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0.0)
    return replace(sample, rgb=rgb, depth=depth)


@dataclass
class GeometricParams:
    """The random draws of one sample, so neighbouring frames get the same ones."""

    x0: int
    y0: int
    flip: bool
    angle: float


class GeometricAugment:
    """Crop (random in training, centre otherwise), flip and roll to the network size."""

    def __init__(self, width: int, height: int, cfg: Optional[Mapping[str, Any]] = None,
                 train: bool = False):
        self.width, self.height = int(width), int(height)
        cfg = dict(cfg or {})
        self.train = bool(train) and bool(cfg.get('enabled', True))
        self.hflip = float(cfg.get('hflip', 0.0)) if self.train else 0.0
        self.rotation = float(cfg.get('rotation_deg', 0.0)) if self.train else 0.0
        self.random_crop = bool(cfg.get('random_crop', True)) and self.train

    def draw(self, rng: np.random.Generator, size: Sequence[int]) -> GeometricParams:
        """Draw the parameters for an image of size (width, height)."""
        w, h = size
        if w < self.width or h < self.height:
            raise ValueError(f'image {w}x{h} is smaller than the crop {self.width}x'
                             f'{self.height}; set data.resize_width/height')
        if self.random_crop:
            x0 = int(rng.integers(0, w - self.width + 1))
            y0 = int(rng.integers(0, h - self.height + 1))
        else:
            x0, y0 = (w - self.width) // 2, (h - self.height) // 2
        flip = bool(rng.random() < self.hflip)
        angle = float(rng.uniform(-self.rotation, self.rotation)) if self.rotation else 0.0
        return GeometricParams(x0, y0, flip, angle)

    def apply(self, sample: RawSample, params: GeometricParams) -> RawSample:
        """Apply drawn parameters: roll, crop, then flip."""
        # Roll first, about the full image's principal point, so the crop cuts away most of
        # the invalid corners the rotation brings in.
        out = rotate_sample(sample, params.angle)
        out = crop_sample(out, params.x0, params.y0, self.width, self.height)
        if params.flip:
            out = flip_sample(out)
        return out


# -- photometric (torch, batched) -------------------------------------------------------------
def _gray(images: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


class PhotometricAugment:
    """Brightness/contrast/saturation jitter, channel swap and grayscale on (N, 3, H, W)."""

    def __init__(self, cfg: Optional[Mapping[str, Any]] = None):
        cfg = dict(cfg or {})
        self.enabled = bool(cfg.get('enabled', True))
        self.brightness = float(cfg.get('brightness', 0.0))
        self.contrast = float(cfg.get('contrast', 0.0))
        self.saturation = float(cfg.get('saturation', 0.0))
        self.channel_swap = float(cfg.get('channel_swap', 0.0))
        self.grayscale = float(cfg.get('grayscale', 0.0))

    @property
    def active(self) -> bool:
        """Return True when any photometric op can change an image."""
        return self.enabled and any((self.brightness, self.contrast, self.saturation,
                                     self.channel_swap, self.grayscale))

    def __call__(self, images: torch.Tensor,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Return augmented images (float in [0, 1]); the input is not modified."""
        if not self.active:
            return images
        n = images.shape[0]
        dev, dt = images.device, images.dtype

        def uniform(spread):
            r = torch.rand(n, generator=generator).to(device=dev, dtype=dt)
            return (1.0 + spread * (2.0 * r - 1.0)).view(n, 1, 1, 1)

        def coin(p):
            return (torch.rand(n, generator=generator) < p).to(dev).view(n, 1, 1, 1)

        # Every random number is drawn whatever the settings, so switching one op off does
        # not change the draws of the others.
        b, c, s = uniform(self.brightness), uniform(self.contrast), uniform(self.saturation)
        swap, gray = coin(self.channel_swap), coin(self.grayscale)
        perms = torch.stack([torch.randperm(3, generator=generator) for _ in range(n)])
        x = images * b
        mean = _gray(x).mean(dim=(2, 3), keepdim=True)
        x = (x - mean) * c + mean
        g = _gray(x)
        x = (x - g) * s + g
        x = x.clamp(0.0, 1.0)
        swapped = torch.gather(x, 1, perms.to(dev).view(n, 3, 1, 1).expand_as(x))
        x = torch.where(swap, swapped, x)
        x = torch.where(gray, _gray(x).expand_as(x), x)
        return x


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Return (images - mean) / std per channel, for (N, 3, H, W) in [0, 1]."""
    m = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """Return the per-sample seed: the same sample gets the same draws after a resume."""
    return int(np.random.default_rng([int(seed), int(epoch), int(index)]).integers(2 ** 62))
