"""
The dataset base class: subclasses only say how to load one view.

A subclass implements ``__len__`` and ``load(index) -> RawSample`` (RGB uint8, depth in
metres with 0 = invalid, the intrinsics of that image). The base class resizes, crops and
augments (``augment.py``), and returns a dict of tensors:

* ``image``  float32 (3, H, W) RGB in [0, 1] (normalisation happens on the device);
* ``depth``  float32 (1, H, W) metres, 0 = invalid; ``mask`` bool (1, H, W);
* ``K``      float32 (3, 3) at the returned size; ``id`` str; ``index`` int;
* with ``frame_offsets`` (self-supervised training on sequences), ``image{o:+d}`` and
  ``pose{o:+d}`` for each offset, augmented with the same draws as the centre frame,
  plus ``pose`` for the centre frame; subclasses that know neighbours implement
  ``load_frame(index, offset)``;
* with ``stereo``, ``image_s`` (the rectified stereo partner, augmented alike) and
  ``stereo_tx`` (float32 scalar): the x translation in metres of T_t2s, the transform
  taking points of this camera's optical frame into the partner's (negated under a
  horizontal flip, which mirrors the rig); subclasses implement ``load_stereo(index)``.

Random draws come from a seed made of (seed, epoch, index), so they do not depend on the
number of workers and a resumed run sees the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset
from training.datasets.augment import (GeometricAugment, PhotometricAugment, RawSample,
                                       resize_sample, sample_seed)


STEREO_IMAGE = 'image_s'
STEREO_TX = 'stereo_tx'


class DatasetError(RuntimeError):
    """A dataset's files are missing or malformed; the message names the file."""


class DepthDataset(Dataset):
    """Base class for RGB-D datasets (see the module docstring)."""

    # Evaluation caps and crops that apply to this kind of data (evaluate.py reads them).
    max_eval_depth = 10.0
    eval_crop = 'eigen'

    def __init__(self, height: int, width: int, train: bool = False,
                 augment: Optional[Mapping[str, Any]] = None,
                 resize: Optional[Sequence[int]] = None, seed: int = 0,
                 photometric_in_loader: bool = True, frame_offsets: Sequence[int] = (),
                 stereo: bool = False):
        self.height, self.width = int(height), int(width)
        self.train = bool(train)
        self.augment_cfg = dict(augment or {'enabled': False})
        # resize = (width, height) of the image before the crop; None = the network size.
        self.resize = tuple(int(v) for v in resize) if resize else (self.width, self.height)
        self.seed = int(seed)
        self.epoch = 0
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        if self.frame_offsets and type(self).load_frame is DepthDataset.load_frame:
            raise DatasetError(f'{type(self).__name__} has no neighbouring frames, so it '
                               'cannot serve a self-supervised (sequence) task')
        self.stereo = bool(stereo)
        if self.stereo and type(self).load_stereo is DepthDataset.load_stereo:
            raise DatasetError(f'{type(self).__name__} has no stereo pairs')
        self.geometric = GeometricAugment(self.width, self.height, self.augment_cfg, train)
        self.photometric = PhotometricAugment(self.augment_cfg)
        self.photometric_in_loader = bool(photometric_in_loader) and self.train

    # -- to implement ---------------------------------------------------------------------
    def __len__(self) -> int:
        """Return the number of samples."""
        raise NotImplementedError

    def load(self, index: int) -> RawSample:
        """Return sample index at its native size."""
        raise NotImplementedError

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Return the frame offset frames away from sample index (sequence datasets)."""
        raise NotImplementedError(f'{type(self).__name__} has no neighbouring frames')

    def load_stereo(self, index: int) -> Tuple[RawSample, float]:
        """Return sample index's rectified stereo partner and T_t2s's x translation (m)."""
        raise NotImplementedError(f'{type(self).__name__} has no stereo pairs')

    # -- shared ---------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of this epoch (call before iterating)."""
        self.epoch = int(epoch)

    def prepare(self, sample: RawSample, rng: np.random.Generator, params=None):
        """Resize and crop/augment one view; return (sample, geometric params)."""
        sample = resize_sample(sample, *self.resize)
        if params is None:
            params = self.geometric.draw(rng, self.resize)
        return self.geometric.apply(sample, params), params

    def _image_tensor(self, rgb: np.ndarray, seed: int) -> torch.Tensor:
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255.0
        if self.photometric_in_loader and self.photometric.active:
            gen = torch.Generator().manual_seed(seed)
            image = self.photometric(image[None], gen)[0]
        return image

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Return the tensors of sample index (see the module docstring)."""
        if not 0 <= index < len(self):
            raise IndexError(f'index {index} out of range for {len(self)} samples')
        seed = sample_seed(self.seed, self.epoch if self.train else 0, index)
        rng = np.random.default_rng(seed)
        sample, params = self.prepare(self.load(index), rng)
        depth = np.nan_to_num(sample.depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        depth[depth < 0] = 0.0
        out = {
            'image': self._image_tensor(sample.rgb, seed),
            'depth': torch.from_numpy(depth)[None],
            'mask': torch.from_numpy(depth > 0)[None],
            'K': torch.from_numpy(sample.intrinsics.K.astype(np.float32)),
            'id': sample.id,
            'index': index,
        }
        if self.frame_offsets:
            out['pose'] = _pose_tensor(sample.pose, params.flip)
            for offset in self.frame_offsets:
                other, _ = self.prepare(self.load_frame(index, offset), rng, params)
                out[f'image{offset:+d}'] = self._image_tensor(other.rgb, seed)
                out[f'pose{offset:+d}'] = _pose_tensor(other.pose, params.flip)
        if self.stereo:
            other, tx = self.load_stereo(index)
            other, _ = self.prepare(other, rng, params)
            out[STEREO_IMAGE] = self._image_tensor(other.rgb, seed)
            out[STEREO_TX] = torch.tensor(-tx if params.flip else tx, dtype=torch.float32)
        return out


def _pose_tensor(pose, flip: bool = False) -> torch.Tensor:
    if pose is None:
        return torch.full((4, 4), float('nan'))
    pose = np.asarray(pose, dtype=np.float64)
    if flip:
        # A mirrored image is the view of a camera whose x axis is mirrored: P S with
        # S = diag(-1, 1, 1, 1), so relative transforms become S T S, as the images show.
        pose = pose @ np.diag([-1.0, 1.0, 1.0, 1.0])
    return torch.from_numpy(pose.astype(np.float32))


def check_size(rgb: np.ndarray, depth: np.ndarray, where: str) -> None:
    """Raise DatasetError unless RGB is (H, W, 3) uint8 and depth (H, W)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DatasetError(f'{where}: RGB has shape {rgb.shape}, expected (H, W, 3)')
    if depth.shape != rgb.shape[:2]:
        raise DatasetError(f'{where}: depth {depth.shape} and RGB {rgb.shape[:2]} differ')


# Largest image a dataset file may declare (DCI 4K, as the node): a 48 KB PNG that declares
# 20000x20000 took 7.7 s to decode before its size was refused.
MAX_IMAGE_PIXELS = 4096 * 2160


def _read_checked(path: str, what: str) -> np.ndarray:
    """Read a file's bytes; raise DatasetError when its header declares no or too big a size."""
    from mono_depth_ros.core import image_codec
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
        size = image_codec.declared_size(data)
        if size is None:
            raise image_codec.CorruptImageError('no image size in its header')
        image_codec.check_size(what, size[0], size[1], MAX_IMAGE_PIXELS)
        if data[:8] == image_codec.PNG_SIGNATURE:
            data = image_codec.checked_png(data)  # damage as a value, not libpng output
    except (OSError, image_codec.ImageDecodeError) as exc:
        raise DatasetError(f'cannot read {what} {path}: {exc}') from None
    return np.frombuffer(data, np.uint8)


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as RGB uint8 (its declared size checked before decoding)."""
    import cv2
    image = cv2.imdecode(_read_checked(path, 'image'), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f'cannot read image {path}')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_depth_png(path: str, scale: float) -> np.ndarray:
    """Read a 16-bit (or 8-bit) depth PNG as float32 metres: value * scale, 0 stays 0."""
    import cv2
    raw = cv2.imdecode(_read_checked(path, 'depth image'), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f'cannot read depth image {path}')
    if raw.ndim != 2:
        raise DatasetError(f'{path}: depth image has {raw.shape[2]} channels, expected 1')
    return raw.astype(np.float32) * np.float32(scale)
