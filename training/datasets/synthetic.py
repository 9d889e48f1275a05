"""
Synthetic rooms from ``mono_depth_ros.sim.synthetic``: exact depth, any size, deterministic.

Sample i is frame i of ``SyntheticStream(seed)`` (rooms change every ``frames_per_room``
frames), rendered directly at the requested size, so the same (seed, index, size) always
gives the same pixels. Poses are known, so neighbouring frames are available for
self-supervised training (``frame_offsets``). ``supersample`` s (odd) renders at s times
the size and area-averages the colour down, so fine textures stay consistent between
views, as photometric losses need. Renders are kept in memory up to ``cache_mb`` (they are
deterministic), so later epochs only pay for augmentation.
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import DepthDataset


class SyntheticDataset(DepthDataset):
    """
    ``size`` frames of the stream for ``scene_seed``, rendered at the resize size.

    With ``frame_offsets`` the samples are the frames whose neighbours at every offset lie
    in the same room (a room of F frames gives F - (max offset - min offset) of them), so
    every source frame is a real, different view along the camera path with its exact
    pose.
    """

    def __init__(self, size: int, scene_seed: int = 0, frames_per_room: int = 16,
                 intrinsics=None, cache_mb: float = 256.0, style: str = 'classic',
                 textures: str = '', speed: float = 0.03, supersample: int = 1,
                 stereo_baseline: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.supersample = int(supersample)
        self.stereo_baseline = float(stereo_baseline)
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f'supersample must be an odd number >= 1, got {supersample}')
        self.style, self.textures, self.speed = style, textures, float(speed)
        self.size = int(size)
        self.stream_seed = int(scene_seed)
        self.frames_per_room = int(frames_per_room)
        span = (max(self.frame_offsets + (0,)) - min(self.frame_offsets + (0,)))
        self.first = -min(self.frame_offsets + (0,))
        self.targets_per_room = self.frames_per_room - span
        if self.targets_per_room < 1:
            raise ValueError(f'frames_per_room {self.frames_per_room} is too few for frame '
                             f'offsets {self.frame_offsets}: need at least {span + 1}')
        self.camera = intrinsics
        self._stream: Optional[SyntheticStream] = None
        w, h = self.resize
        self._cache = {} if size * w * h * 7 <= cache_mb * 2 ** 20 else None

    def _get_stream(self) -> SyntheticStream:
        if self._stream is None:
            w, h = self.resize
            s = self.supersample
            camera = self.camera.resize(w * s, h * s) if self.camera is not None and s > 1 \
                else self.camera
            self._stream = SyntheticStream(w * s, h * s, intrinsics=camera,
                                           seed=self.stream_seed,
                                           frames_per_room=self.frames_per_room,
                                           style=self.style, texture_dir=self.textures or None,
                                           speed=self.speed)
        return self._stream

    @property
    def intrinsics(self):
        """Return the intrinsics of the samples (at the resize size)."""
        w, h = self.resize
        return self._get_stream().intrinsics.resize(w, h)

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.size

    def load(self, index: int) -> RawSample:
        """Render the frame of sample index."""
        return self.load_frame(index, 0)

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Render the frame offset steps along the camera path from sample index's frame."""
        room, j = divmod(index, self.targets_per_room)
        within = min(max(j + self.first + offset, 0), self.frames_per_room - 1)
        key = room * self.frames_per_room + within
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        sample = self._render(key)
        if self._cache is not None:
            self._cache[key] = sample
        return sample

    def load_stereo(self, index: int) -> Tuple[RawSample, float]:
        """Render sample index from a right camera ``stereo_baseline`` metres to its right."""
        room, j = divmod(index, self.targets_per_room)
        offset = np.eye(4)
        offset[0, 3] = self.stereo_baseline
        # The partner sits at +b along x, so T_t2s moves points by -b.
        return self._render(room * self.frames_per_room + j + self.first, offset), \
            -self.stereo_baseline

    def _render(self, key: int, camera_offset=None) -> RawSample:
        stream = self._get_stream()
        frame = stream.frame(key, camera_offset)
        rgb, depth = frame.rgb, frame.depth.astype(np.float32)
        s = self.supersample
        if s > 1:
            # Area-averaged colour, as a lens and sensor integrate it (point-sampled fine
            # textures alias into noise that no two views agree on); depth from the
            # sub-pixel at each output pixel's centre, which is exact for odd s.
            rgb = cv2.resize(rgb, self.resize, interpolation=cv2.INTER_AREA)
            depth = np.ascontiguousarray(depth[s // 2::s, s // 2::s])
        depth[~np.isfinite(depth)] = 0.0
        side = '' if camera_offset is None else '_right'
        return RawSample(rgb, depth, self.intrinsics if s > 1 else stream.intrinsics,
                         id=f'synthetic_{key:06d}{side}', pose=frame.pose)
