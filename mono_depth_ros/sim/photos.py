"""
Real photographs as textures for the synthetic rooms.

Procedural checkers and stripes teach a network little about the statistics of real
surfaces (wood grain, fabric, paper, foliage, printed posters). This module turns a folder
of photographs into tileable textures: a random square crop, resized, then mirrored into a
2x2 tile so that the texture wraps without a seam. Nothing is shipped with the package:
Debian's wallpaper packages (``mate-backgrounds``: GPL-2+, ``ukui-wallpapers``:
CC-BY-SA-3.0) install photographs under ``/usr/share/backgrounds``, or any folder of
images works. Decoded photos are cached per process (downscaled), so a training loader
pays for the JPEG decoding once.
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

PHOTO_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.webp')
MAX_SIDE = 512  # decoded photos are kept at most this large (pixels)

_CACHE: Dict[Tuple[str, ...], List[np.ndarray]] = {}


def split_dirs(dirs: Union[str, Sequence[str], None]) -> Tuple[str, ...]:
    """Return folders from a list or an ``os.pathsep``/comma separated string."""
    if not dirs:
        return ()
    if isinstance(dirs, str):
        dirs = [d for part in dirs.split(os.pathsep) for d in part.split(',')]
    return tuple(os.path.abspath(os.path.expanduser(d.strip())) for d in dirs if d.strip())


def find_photos(dirs: Sequence[str]) -> List[str]:
    """Return every image file under the folders (recursively), sorted."""
    out = []
    for folder in dirs:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'photo texture folder not found: {folder}')
        for base, _subdirs, names in os.walk(folder, followlinks=True):
            out.extend(os.path.join(base, n) for n in names
                       if n.lower().endswith(PHOTO_EXTENSIONS))
    return sorted(out)


def _read(path: str) -> Union[np.ndarray, None]:
    flags = cv2.IMREAD_COLOR
    if os.path.getsize(path) > 1_000_000:
        flags = cv2.IMREAD_REDUCED_COLOR_4  # large wallpapers: decode at 1/4, much faster
    image = cv2.imread(path, flags)
    if image is None or min(image.shape[:2]) < 32:
        return None
    scale = MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_photos(dirs: Union[str, Sequence[str]]) -> List[np.ndarray]:
    """Return the photographs under dirs as uint8 RGB arrays (cached per process)."""
    key = split_dirs(dirs)
    if key not in _CACHE:
        photos = [p for p in (_read(path) for path in find_photos(key)) if p is not None]
        if not photos:
            raise ValueError(f'no readable images under {", ".join(key)}')
        _CACHE[key] = photos
    return _CACHE[key]


def photo_texture(rng: np.random.Generator, photos: Sequence[np.ndarray],
                  size: int = 256) -> np.ndarray:
    """
    Return a seamless (size, size, 3) float32 texture in [0, 1] cut from a random photo.

    A random square crop (a tenth to all of the photo's short side) is resized to
    size / 2 and mirrored into a 2x2 tile; the colours are partly desaturated and tinted,
    since real indoor surfaces are mostly muted.
    """
    if size % 2:
        raise ValueError(f'texture size must be even, got {size}')
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    side = int(rng.uniform(0.1, 1.0) * min(h, w))
    side = max(side, 16)
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(photo[y0:y0 + side, x0:x0 + side], (size // 2, size // 2),
                      interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    if rng.random() < 0.5:
        crop = np.rot90(crop)
    # colour first (per pixel, so it commutes with the mirroring), on a quarter of the pixels
    grey = crop.mean(axis=2, keepdims=True)
    keep = np.float32(rng.uniform(0.3, 1.0))  # saturation kept
    tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
    crop = np.clip((grey + keep * (crop - grey)) * tint, 0.0, 1.0)
    top = np.concatenate([crop, crop[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0), dtype=np.float32)
