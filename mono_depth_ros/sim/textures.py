"""
Textures of the synthetic rooms: procedural ones, or a folder's images (no ROS).

Every texture is a (TEX, TEX, 3) float32 RGB square in [0, 1], a power of two on a side
so that rendering wraps texel coordinates with a bit mask; photo textures
(:mod:`.photos`) are PHOTO_TEX on a side.
"""

import os
from typing import List, Optional

import cv2
import numpy as np

TEX = 128  # texture size in texels (a power of two: wrap with a bit mask)
PHOTO_TEX = 256  # photo textures keep more detail


def value_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Return smooth tileable noise in [0, 1] on a (TEX, TEX) grid of ``cells`` cells."""
    grid = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(np.tile(grid, (2, 2)), (2 * TEX, 2 * TEX),
                      interpolation=cv2.INTER_CUBIC)[TEX // 2:TEX // 2 + TEX,
                                                     TEX // 2:TEX // 2 + TEX]


def procedural_texture(rng: np.random.Generator, kind: Optional[str] = None) -> np.ndarray:
    """Return a (TEX, TEX, 3) float32 tileable texture in [0, 1]."""
    kind = kind or rng.choice(['checker', 'stripes', 'noise', 'tiles', 'wood'])
    c1, c2 = rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3)
    y, x = np.mgrid[0:TEX, 0:TEX].astype(np.float32) / TEX
    if kind == 'checker':
        n = int(rng.choice([2, 4, 8]))
        t = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(np.float32)
    elif kind == 'stripes':
        n = int(rng.choice([2, 4, 8, 16]))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * n * (x if rng.random() < 0.5 else y))
    elif kind == 'tiles':
        n = int(rng.choice([2, 4]))
        fx, fy = (x * n) % 1.0, (y * n) % 1.0
        grout = (fx < 0.06) | (fy < 0.06)
        t = np.where(grout, 0.0, 0.7 + 0.3 * value_noise(rng, 8))
    elif kind == 'wood':
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (6 * y + 2.0 * value_noise(rng, 4)))
    else:
        t = 0.6 * value_noise(rng, 8) + 0.4 * value_noise(rng, 32)
    # Fine grain everywhere: flat colours give a network (and photometric losses) nothing.
    t = np.clip(0.85 * t + 0.15 * value_noise(rng, 64), 0.0, 1.0)
    return (c1[None, None] * t[..., None] + c2[None, None] * (1 - t[..., None])).astype(
        np.float32)


def load_texture_folder(folder: str) -> List[np.ndarray]:
    """Load every image in a folder as a (TEX, TEX, 3) float32 RGB texture."""
    out = []
    for name in sorted(os.listdir(folder)):
        image = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if image is None:
            continue
        rgb = cv2.cvtColor(cv2.resize(image, (TEX, TEX), interpolation=cv2.INTER_AREA),
                           cv2.COLOR_BGR2RGB)
        out.append(rgb.astype(np.float32) / 255.0)
    if not out:
        raise ValueError(f'no readable images in texture folder {folder}')
    return out
