"""
Differentiable building blocks for the losses: SSIM and image gradients.

Tensors are (N, C, H, W). Everything here is per pixel; the losses in
:mod:`training.losses` apply the valid masks and reduce.
"""

from typing import Tuple

import torch
import torch.nn.functional as F


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    """Return a normalised 2-D Gaussian window (1, 1, size, size)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-coords ** 2 / (2.0 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype).view(1, 1, size, size)


def ssim(x: torch.Tensor, y: torch.Tensor, val_range: float = 1.0, window: str = 'gaussian',
         size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """
    Return the per-pixel SSIM map (N, C, H, W) between x and y.

    ``window='gaussian'`` is the Wang et al. window (11x11, sigma 1.5, zero padding) used by
    DenseDepth; ``window='box'`` is Monodepth2's 3x3 mean with reflection padding.
    ``val_range`` is the dynamic range L in C1 = (0.01 L)^2 and C2 = (0.03 L)^2.
    """
    if x.shape != y.shape:
        raise ValueError(f'ssim needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}')
    c1 = (0.01 * val_range) ** 2
    c2 = (0.03 * val_range) ** 2
    channels = x.shape[1]
    if window == 'box':
        def blur(t):
            return F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode='reflect'), 3, 1)
    elif window == 'gaussian':
        kernel = gaussian_window(size, sigma, x.dtype).to(x.device).expand(channels, 1, -1, -1)

        def blur(t):
            return F.conv2d(t, kernel, padding=size // 2, groups=channels)
    else:
        raise ValueError(f"window must be 'gaussian' or 'box', got {window!r}")
    mu_x, mu_y = blur(x), blur(y)
    sigma_x = blur(x * x) - mu_x ** 2
    sigma_y = blur(y * y) - mu_y ** 2
    sigma_xy = blur(x * y) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2)
    return num / den


def image_gradients(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return forward differences (dx (N, C, H, W-1), dy (N, C, H-1, W))."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def gradient_masks(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return masks for image_gradients: a difference is valid where both pixels are."""
    return mask[..., :, 1:] & mask[..., :, :-1], mask[..., 1:, :] & mask[..., :-1, :]
