"""
Pinhole intrinsics, presets, and their exact rescaling.

Pixel convention (the one ROS CameraInfo and OpenCV use): the centre of pixel ``(u, v)``
is at the integer coordinate ``(u, v)``, so pixel ``u`` covers ``[u - 0.5, u + 0.5]`` and
an image of width ``W`` spans ``[-0.5, W - 0.5]``. Under a resize by ``s = W' / W`` the
image edges map onto each other, so a coordinate ``x`` maps to ``(x + 0.5) * s - 0.5``:
``cx' = (cx + 0.5) * sx - 0.5`` and ``fx' = fx * sx``. This is what ``cv2.resize`` (area
and bilinear) does. Sub-sampling (keeping pixels ``0, s, 2s, ...``, the cloud decimation)
is a different operation: kept pixel ``i`` is old pixel ``s * i``, so ``cx' = cx / s``.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Dict, Optional

from mono_depth_ros.core.atomic import atomic_write_text
from mono_depth_ros.core.yaml_file import read_yaml_mapping
import numpy as np
import yaml


class IntrinsicsError(ValueError):
    """Intrinsics are missing, non-finite, non-positive, or inconsistent with an image."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera intrinsics for an image of ``width`` x ``height`` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self):
        for name in ('fx', 'fy', 'cx', 'cy'):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise IntrinsicsError(f'{name} is not finite ({value})')
        if self.fx <= 0 or self.fy <= 0:
            raise IntrinsicsError(
                f'focal length must be positive, got fx={self.fx}, fy={self.fy}')
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise IntrinsicsError(f'image size must be positive, got {self.width}x{self.height}')
        object.__setattr__(self, 'width', int(self.width))
        object.__setattr__(self, 'height', int(self.height))
        for name in ('fx', 'fy', 'cx', 'cy'):
            object.__setattr__(self, name, float(getattr(self, name)))

    # -- construction ---------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:  # noqa: N802 - the field's name
        """Return the 3x3 camera matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_K(cls, K, width: int, height: int) -> 'Intrinsics':  # noqa: N802,N803
        """Build from a 3x3 matrix or 9 row-major values (CameraInfo.k)."""
        k = np.asarray(K, dtype=np.float64).reshape(-1)
        if k.size != 9:
            raise IntrinsicsError(f'K must have 9 values, got {k.size}')
        if k[8] != 1.0:
            raise IntrinsicsError(f'K[2,2] must be 1, got {k[8]} (an all-zero or malformed K)')
        return cls(fx=k[0], fy=k[4], cx=k[2], cy=k[5], width=width, height=height)

    # -- exact transforms -----------------------------------------------------------------
    def resize(self, width: int, height: int) -> 'Intrinsics':
        """Return intrinsics of this image resized (whole image) to width x height."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)

    def crop(self, x0: int, y0: int, width: int, height: int) -> 'Intrinsics':
        """Return intrinsics of the crop whose top-left pixel is (x0, y0)."""
        return Intrinsics(self.fx, self.fy, self.cx - x0, self.cy - y0, width, height)

    def subsample(self, stride: int) -> 'Intrinsics':
        """Return intrinsics of ``image[::stride, ::stride]`` (keeps pixels 0, s, 2s, ...)."""
        stride = int(stride)
        if stride < 1:
            raise IntrinsicsError(f'stride must be >= 1, got {stride}')
        return Intrinsics(self.fx / stride, self.fy / stride, self.cx / stride, self.cy / stride,
                          (self.width + stride - 1) // stride,
                          (self.height + stride - 1) // stride)

    def flip_horizontal(self) -> 'Intrinsics':
        """Return intrinsics of the mirrored image (u' = width - 1 - u)."""
        return Intrinsics(self.fx, self.fy, self.width - 1 - self.cx, self.cy,
                          self.width, self.height)

    def to_normalized(self) -> Dict[str, float]:
        """Return fx, fy, cx, cy divided by the size (edge convention: (c + 0.5) / size)."""
        return {'fx': self.fx / self.width, 'fy': self.fy / self.height,
                'cx': (self.cx + 0.5) / self.width, 'cy': (self.cy + 0.5) / self.height}

    @classmethod
    def from_normalized(cls, norm: Dict[str, float], width: int, height: int) -> 'Intrinsics':
        """Inverse of :meth:`to_normalized` at any size."""
        return cls(norm['fx'] * width, norm['fy'] * height, norm['cx'] * width - 0.5,
                   norm['cy'] * height - 0.5, width, height)

    def is_close(self, other: 'Intrinsics', tol: float = 1e-9) -> bool:
        """Return True when both describe the same camera to within tol."""
        return (self.width == other.width and self.height == other.height and
                all(abs(a - b) <= tol for a, b in zip(
                    (self.fx, self.fy, self.cx, self.cy),
                    (other.fx, other.fy, other.cx, other.cy))))


PRESETS: Dict[str, Intrinsics] = {
    # NYU Depth V2 Kinect RGB camera (the NYU toolbox camera_params.m).
    'kinect_nyu': Intrinsics(518.8579, 519.4696, 325.5824, 253.7362, 640, 480),
    # KITTI raw 2011_09_26, P2 (left colour camera, rectified).
    'kitti': Intrinsics(721.5377, 721.5377, 609.5593, 172.854, 1242, 375),
}
PRESET_ALIASES = {'kinect': 'kinect_nyu', 'nyu': 'kinect_nyu'}


def preset(name: str) -> Intrinsics:
    """Return a preset by name ('kinect_nyu' (alias 'kinect', 'nyu') or 'kitti')."""
    key = PRESET_ALIASES.get(name, name)
    if key not in PRESETS:
        raise IntrinsicsError(f'unknown intrinsics preset {name!r}; choose from '
                              f'{", ".join(sorted(PRESETS) + sorted(PRESET_ALIASES))}')
    return PRESETS[key]


def load_camera_info_yaml(path: str) -> Intrinsics:
    """Read a camera_info_manager calibration YAML (camera_matrix, image_width/height)."""
    data = read_yaml_mapping(path, IntrinsicsError)
    try:
        matrix = data['camera_matrix']['data']
        width, height = int(data['image_width']), int(data['image_height'])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntrinsicsError(f'{path}: missing camera_matrix/image_width/image_height '
                              f'({exc})') from exc
    return Intrinsics.from_K(matrix, width, height)


def camera_info_yaml(intrinsics: Intrinsics, camera_name: str = 'camera',
                     distortion: Optional[list] = None) -> str:
    """Return the camera_info_manager YAML text for these intrinsics."""
    i = intrinsics
    dist = list(distortion) if distortion is not None else [0.0] * 5
    data = {
        'image_width': i.width,
        'image_height': i.height,
        'camera_name': camera_name,
        'camera_matrix': {'rows': 3, 'cols': 3, 'data': [float(v) for v in i.K.reshape(-1)]},
        'distortion_model': 'plumb_bob',
        'distortion_coefficients': {'rows': 1, 'cols': len(dist), 'data': dist},
        'rectification_matrix': {'rows': 3, 'cols': 3,
                                 'data': [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]},
        'projection_matrix': {'rows': 3, 'cols': 4,
                              'data': [i.fx, 0.0, i.cx, 0.0, 0.0, i.fy, i.cy, 0.0,
                                       0.0, 0.0, 1.0, 0.0]},
    }
    return yaml.safe_dump(data, sort_keys=False)


def save_camera_info_yaml(path: str, intrinsics: Intrinsics, camera_name: str = 'camera',
                          distortion: Optional[list] = None) -> None:
    """Write a camera_info_manager calibration YAML atomically."""
    atomic_write_text(path, camera_info_yaml(intrinsics, camera_name, distortion))
