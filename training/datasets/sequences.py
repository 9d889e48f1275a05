"""
Video sequences in scene folders, for self-supervised training: NYU raw-style and alike.

Layout: ``root/<scene>/<rgb_dir>/NAME.(png|jpg|ppm)`` in temporal order by file name, with
optional ``root/<scene>/<depth_dir>/NAME.png`` (16-bit, ``value * depth_scale`` m, 0 =
invalid) paired by stem, which only evaluation needs. The NYU Depth V2 raw dump becomes
this after the toolbox's synchronisation (one folder per scene, e.g. ``bedroom_0001``);
Redwood, TUM or a robot's own recordings fit as they are. ``root`` itself may be the one
scene. ``scenes`` (or a split file of scene names, ``#`` comments allowed) picks some.
Intrinsics are a preset (``kinect_nyu``, the default) or a camera_info YAML / JSON file,
rescaled to the images' size.

Sample i is a target frame whose neighbours at ``frame_offsets`` (times ``frame_step``)
all lie in its scene; without offsets every frame with depth is a sample.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics, PRESET_ALIASES, PRESETS
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import check_size, DatasetError, DepthDataset, read_depth_png, read_rgb
from training.datasets.folder import _images, load_intrinsics_file


def read_scene_list(path: str) -> List[str]:
    """Read scene names, one a line (``#`` comments and blank lines ignored)."""
    if not os.path.isfile(path):
        raise DatasetError(f'scene list not found: {path}')
    with open(path, 'r', encoding='utf-8') as handle:
        return [line.split('#')[0].strip() for line in handle
                if line.split('#')[0].strip()]


def resolve_intrinsics(intrinsics, root: str) -> Intrinsics:
    """Return an Intrinsics object from an object, a preset name or a file (under root)."""
    if isinstance(intrinsics, Intrinsics):
        return intrinsics
    if intrinsics in PRESETS or intrinsics in PRESET_ALIASES:
        return PRESETS[PRESET_ALIASES.get(intrinsics, intrinsics)]
    if not intrinsics:
        raise DatasetError('sequences need intrinsics: a preset name or a file')
    path = intrinsics if os.path.isabs(intrinsics) else os.path.join(root, intrinsics)
    return load_intrinsics_file(path)


class SceneSequences(DepthDataset):
    """Consecutive frames of scene folders (see the module docstring)."""

    def __init__(self, root: str, scenes: Optional[Sequence[str]] = None,
                 rgb_dir: str = 'rgb', depth_dir: str = 'depth', intrinsics='kinect_nyu',
                 depth_scale: float = 0.001, frame_step: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.root, self.depth_scale = root, float(depth_scale)
        self.frame_step = int(frame_step)
        if self.frame_step < 1:
            raise DatasetError(f'frame_step must be >= 1, got {frame_step}')
        if scenes is None:
            if os.path.isdir(os.path.join(root, rgb_dir)):
                scenes = ['']
            else:
                scenes = sorted(d for d in os.listdir(root) if os.path.isdir(
                    os.path.join(root, d, rgb_dir))) if os.path.isdir(root) else []
        self.scenes: List[Tuple[str, List[str], List[Optional[str]]]] = []
        for scene in scenes:
            folder = os.path.join(root, scene)
            rgbs = _images(os.path.join(folder, rgb_dir))
            if not rgbs:
                raise DatasetError(f'{folder}: no images in {rgb_dir}/')
            depths = {os.path.splitext(os.path.basename(p))[0]: p
                      for p in _images(os.path.join(folder, depth_dir)) if p.endswith('.png')}
            self.scenes.append((scene, rgbs, [depths.get(
                os.path.splitext(os.path.basename(p))[0]) for p in rgbs]))
        if not self.scenes:
            raise DatasetError(f'{root}: no scene folder with a {rgb_dir}/ folder')
        self.camera = resolve_intrinsics(intrinsics, root)
        offsets = [o * self.frame_step for o in self.frame_offsets] + [0]
        self.samples: List[Tuple[int, int]] = []
        for s, (_, rgbs, depths) in enumerate(self.scenes):
            for i in range(len(rgbs)):
                if not all(0 <= i + o < len(rgbs) for o in offsets):
                    continue
                if not self.frame_offsets and depths[i] is None:
                    continue  # evaluation needs depth; training from video does not
                self.samples.append((s, i))
        if not self.samples:
            raise DatasetError(f'{root}: no frame has all of its neighbours '
                               f'{self.frame_offsets} (or depth, without offsets)')

    def __len__(self) -> int:
        """Return the number of target frames."""
        return len(self.samples)

    def load(self, index: int) -> RawSample:
        """Return the target frame of sample index."""
        return self.load_frame(index, 0)

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Return the frame ``offset * frame_step`` from sample index's, in its scene."""
        s, i = self.samples[index]
        scene, rgbs, depths = self.scenes[s]
        j = i + offset * self.frame_step
        rgb = read_rgb(rgbs[j])
        h, w = rgb.shape[:2]
        if depths[j] is not None:
            depth = read_depth_png(depths[j], self.depth_scale)
            check_size(rgb, depth, rgbs[j])
        else:
            depth = np.zeros((h, w), np.float32)
        camera = self.camera
        if (camera.width, camera.height) != (w, h):
            camera = camera.resize(w, h)
        name = os.path.splitext(os.path.basename(rgbs[j]))[0]
        return RawSample(rgb, depth, camera, id=f'{scene}/{name}' if scene else name)
