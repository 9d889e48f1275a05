"""
A folder of RGB + 16-bit depth PNG pairs with one intrinsics file.

Layout: ``root/<rgb_dir>/NAME.(png|jpg)`` and ``root/<depth_dir>/NAME.png`` paired by file
stem (or, when no stems match, by sorted order, as in TUM's differently named files).
Depth is ``value * depth_scale`` metres (millimetres by default; TUM uses 1/5000), 0 =
invalid. The intrinsics file is a camera_info_manager YAML, or JSON in either the Open3D
form (``width``, ``height``, column-major ``intrinsic_matrix``) or ``fx, fy, cx, cy,
width, height``; or an ``Intrinsics`` object or preset name ('kinect_nyu', 'kitti').
Images of another size than the file's get rescaled intrinsics.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Optional

from mono_depth_ros.core.intrinsics import (Intrinsics, IntrinsicsError, load_camera_info_yaml,
                                            PRESET_ALIASES, PRESETS)
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import check_size, DatasetError, DepthDataset, read_depth_png, read_rgb

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.ppm')


def load_intrinsics_file(path: str) -> Intrinsics:
    """Read intrinsics from a camera_info YAML or a JSON file (see the module doc)."""
    if path.lower().endswith(('.yaml', '.yml')):
        return load_camera_info_yaml(path)
    if not os.path.isfile(path):
        raise DatasetError(f'intrinsics file not found: {path}')
    with open(path, 'r', encoding='utf-8') as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DatasetError(f'{path}: not valid JSON: {exc}') from exc
    try:
        if 'intrinsic_matrix' in data:
            k = np.asarray(data['intrinsic_matrix'], np.float64).reshape(3, 3).T
            return Intrinsics.from_K(k, int(data['width']), int(data['height']))
        return Intrinsics(float(data['fx']), float(data['fy']), float(data['cx']),
                          float(data['cy']), int(data['width']), int(data['height']))
    except (KeyError, TypeError, ValueError, IntrinsicsError) as exc:
        raise DatasetError(f'{path}: cannot read intrinsics ({exc})') from exc


def _images(folder: str):
    return sorted(p for p in glob.glob(os.path.join(folder, '*'))
                  if p.lower().endswith(IMAGE_EXTENSIONS))


class FolderDataset(DepthDataset):
    """RGB + depth PNG pairs and an intrinsics file (see the module docstring)."""

    def __init__(self, root: str, rgb_dir: str = 'rgb', depth_dir: str = 'depth',
                 intrinsics='', depth_scale: float = 0.001,
                 max_depth: Optional[float] = None, **kwargs):
        super().__init__(**kwargs)
        self.root = root
        self.depth_scale = float(depth_scale)
        if self.depth_scale <= 0:
            raise DatasetError(f'depth_scale must be > 0, got {depth_scale}')
        if max_depth:
            self.max_eval_depth = float(max_depth)
        rgbs = _images(os.path.join(root, rgb_dir))
        depths = [p for p in _images(os.path.join(root, depth_dir)) if p.endswith('.png')]
        if not rgbs or not depths:
            raise DatasetError(f'{root}: need images in {rgb_dir}/ and depth PNGs in '
                               f'{depth_dir}/')
        by_stem = {os.path.splitext(os.path.basename(p))[0]: p for p in depths}
        pairs = [(r, by_stem[os.path.splitext(os.path.basename(r))[0]]) for r in rgbs
                 if os.path.splitext(os.path.basename(r))[0] in by_stem]
        if not pairs:
            if len(rgbs) != len(depths):
                raise DatasetError(f'{root}: no matching file stems, and {len(rgbs)} images '
                                   f'vs {len(depths)} depth maps cannot pair by order')
            pairs = list(zip(rgbs, depths))
        self.pairs = pairs
        if isinstance(intrinsics, Intrinsics):
            self.camera = intrinsics
            return
        if intrinsics in PRESETS or intrinsics in PRESET_ALIASES:
            self.camera = PRESETS[PRESET_ALIASES.get(intrinsics, intrinsics)]
            return
        if not intrinsics:
            candidates = sorted(glob.glob(os.path.join(root, '*.yaml')) +
                                glob.glob(os.path.join(root, '*.json')))
            if len(candidates) != 1:
                raise DatasetError(f'{root}: name the intrinsics file (found {len(candidates)} '
                                   'YAML/JSON candidates)')
            intrinsics = candidates[0]
        elif not os.path.isabs(intrinsics):
            intrinsics = os.path.join(root, intrinsics)
        self.camera = load_intrinsics_file(intrinsics)

    def __len__(self) -> int:
        """Return the number of pairs."""
        return len(self.pairs)

    def load(self, index: int) -> RawSample:
        """Read pair index; intrinsics rescale to the image's size when it differs."""
        rgb_path, depth_path = self.pairs[index]
        rgb = read_rgb(rgb_path)
        depth = read_depth_png(depth_path, self.depth_scale)
        check_size(rgb, depth, rgb_path)
        h, w = depth.shape
        camera = self.camera
        if (camera.width, camera.height) != (w, h):
            camera = camera.resize(w, h)
        return RawSample(rgb, depth, camera,
                         id=os.path.splitext(os.path.basename(rgb_path))[0])
