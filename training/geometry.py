"""
View synthesis geometry in torch, batched: back-project, transform, project, sample.

The conventions are the package's (``mono_depth_ros.core.intrinsics`` and
``mono_depth_ros.core.geometry``), not new ones:

* pixel ``(u, v)`` has its centre at the integer coordinate ``(u, v)``; an image of width
  W spans ``[-0.5, W - 0.5]``;
* the optical frame has x right, y down, z forward, and a pixel with depth z (REP 118, the
  z coordinate, not the ray length) is the point ``((u - cx) / fx * z, (v - cy) / fy * z, z)``;
* ``K`` is the 3x3 camera matrix at the image's own size.

Transforms are 4x4 matrices that map points of one camera's optical frame into another's:
``T_t2s`` takes a point seen by the target camera into the source camera's frame, so a
target pixel is looked up in the source image at ``K_s T_t2s D_t K_t^-1 [u v 1]``.
Everything takes a batch dimension and nothing holds a batch size, so any N works.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Return homogeneous pixel-centre coordinates (3, H * W), row-major: u fastest."""
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing='ij')
    return torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)])


def backproject(depth: torch.Tensor, inv_k: torch.Tensor) -> torch.Tensor:
    """
    Back-project depth (N, 1, H, W) with K^-1 (N, 3, 3) into points (N, 3, H * W).

    Point = depth * K^-1 [u, v, 1]^T: with K^-1's last row (0, 0, 1) the z of each point is
    its depth, as REP 118 and ``core.geometry.backproject`` have it.
    """
    n, _, h, w = depth.shape
    grid = pixel_grid(h, w, depth.device, depth.dtype)
    rays = inv_k.to(depth.dtype) @ grid  # (N, 3, HW) by broadcasting
    return rays * depth.reshape(n, 1, h * w)


def transform(points: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Apply 4x4 transforms (N, 4, 4) to points (N, 3, M)."""
    return t[:, :3, :3] @ points + t[:, :3, 3:]


def project(points: torch.Tensor, k: torch.Tensor,
            eps: float = 1e-7) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Project points (N, 3, M) with K (N, 3, 3); return (pixels (N, 2, M), z (N, 1, M)).

    Pixels are (u, v) in the pixel-centre convention, as ``core.geometry.project``.
    """
    cam = k.to(points.dtype) @ points
    z = cam[:, 2:3]
    return cam[:, :2] / z.clamp(min=eps), z


def pixels_to_grid(pixels: torch.Tensor, height: int, width: int,
                   out_shape: Tuple[int, int] = None) -> torch.Tensor:
    """
    Turn pixels (N, 2, M) of an image of height x width into a ``grid_sample`` grid.

    The grid is (N, h, w, 2) for ``out_shape`` (h, w) (default: height, width), for
    align_corners=False: -1 and +1 are the outer edges of the border pixels, i.e. -0.5 and
    W - 0.5 in the pixel-centre convention, so x_norm = (2 u + 1) / W - 1.
    """
    h, w = out_shape or (height, width)
    x = (2.0 * pixels[:, 0] + 1.0) / width - 1.0
    y = (2.0 * pixels[:, 1] + 1.0) / height - 1.0
    return torch.stack([x, y], dim=-1).reshape(pixels.shape[0], h, w, 2)


def sample(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear look-up of image (N, C, H', W') at grid (N, H, W, 2), border padding."""
    return F.grid_sample(image, grid.to(image.dtype), mode='bilinear', padding_mode='border',
                         align_corners=False)


def warp(source: torch.Tensor, depth: torch.Tensor, k: torch.Tensor, t_t2s: torch.Tensor,
         k_source: torch.Tensor = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Synthesise the target view from a source image, the target's depth and T_t2s.

    Return (warped source (N, C, H, W), valid (N, 1, H, W) bool: the point lies in front of
    the source camera and projects inside the source image). ``k`` is the target's camera
    matrix at the depth's size; ``k_source`` (default k) the source's at its own size.
    """
    n, _, h, w = depth.shape
    points = transform(backproject(depth, torch.linalg.inv(k.float()).to(depth.dtype)),
                       t_t2s.to(depth.dtype))
    pixels, z = project(points, k if k_source is None else k_source)
    hs, ws = source.shape[-2:]
    inside = (pixels[:, 0] > -0.5) & (pixels[:, 0] < ws - 0.5) & \
        (pixels[:, 1] > -0.5) & (pixels[:, 1] < hs - 0.5) & (z[:, 0] > 0)
    grid = pixels_to_grid(pixels, hs, ws, (h, w))
    return sample(source, grid), inside.reshape(n, 1, h, w)


# -- poses ------------------------------------------------------------------------------------
def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues: rotation vectors (N, 3) to rotation matrices (N, 3, 3), smooth at 0."""
    theta2 = (axis_angle ** 2).sum(dim=-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos t)/t^2 with their Taylor series near 0, so gradients stay finite
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp(1e-12))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(skew)
    return eye + a[..., None] * skew + b[..., None] * (skew @ skew)


def pose_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor,
                   invert: bool = False) -> torch.Tensor:
    """Return 4x4 transforms (N, 4, 4) [R | t]; ``invert`` gives [R^T | -R^T t]."""
    r = axis_angle_to_matrix(axis_angle.reshape(-1, 3))
    t = translation.reshape(-1, 3, 1)
    if invert:
        r = r.transpose(1, 2)
        t = -r @ t
    out = torch.zeros(r.shape[0], 4, 4, dtype=r.dtype, device=r.device)
    out[:, :3, :3] = r
    out[:, :3, 3:] = t
    out[:, 3, 3] = 1.0
    return out


def relative_transform(pose_target: torch.Tensor, pose_source: torch.Tensor) -> torch.Tensor:
    """Return T_t2s = inv(source camera-to-world) @ target camera-to-world, (N, 4, 4)."""
    return torch.linalg.inv(pose_source) @ pose_target


def stereo_transform(tx: torch.Tensor) -> torch.Tensor:
    """Return T_t2s (N, 4, 4) for a rectified pair: a pure translation tx (m) along x."""
    tx = torch.as_tensor(tx).reshape(-1)
    out = torch.eye(4, dtype=tx.dtype if tx.is_floating_point() else torch.float32,
                    device=tx.device).repeat(tx.shape[0], 1, 1)
    out[:, 0, 3] = tx
    return out
