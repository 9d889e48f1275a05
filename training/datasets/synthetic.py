"""
Synthetic rooms from ``mono_depth_ros.sim.synthetic``: exact depth, any size, deterministic.

Sample i is frame i of ``SyntheticStream(seed)`` (rooms change every ``frames_per_room``
frames), rendered directly at the requested size, so the same (seed, index, size) always
gives the same pixels. Poses are known, so neighbouring frames are available for
self-supervised training (``frame_offsets``). Renders are kept in memory up to
``cache_mb`` (they are deterministic), so later epochs only pay for augmentation.
"""

from __future__ import annotations

from typing import Optional

from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import DepthDataset


class SyntheticDataset(DepthDataset):
    """``size`` frames of the stream for ``scene_seed``, rendered at the resize size."""

    def __init__(self, size: int, scene_seed: int = 0, frames_per_room: int = 16,
                 intrinsics=None, cache_mb: float = 256.0, style: str = 'classic',
                 textures: str = '', speed: float = 0.03, **kwargs):
        super().__init__(**kwargs)
        self.style, self.textures, self.speed = style, textures, float(speed)
        self.size = int(size)
        self.stream_seed = int(scene_seed)
        self.frames_per_room = int(frames_per_room)
        self.camera = intrinsics
        self._stream: Optional[SyntheticStream] = None
        w, h = self.resize
        self._cache = {} if size * w * h * 7 <= cache_mb * 2 ** 20 else None

    def _get_stream(self) -> SyntheticStream:
        if self._stream is None:
            w, h = self.resize
            self._stream = SyntheticStream(w, h, intrinsics=self.camera, seed=self.stream_seed,
                                           frames_per_room=self.frames_per_room,
                                           style=self.style, texture_dir=self.textures or None,
                                           speed=self.speed)
        return self._stream

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.size

    def load(self, index: int) -> RawSample:
        """Render frame index."""
        return self.load_frame(index, 0)

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Render the frame offset steps along the camera path, within the same room."""
        room = index // self.frames_per_room
        within = min(max(index % self.frames_per_room + offset, 0), self.frames_per_room - 1)
        key = room * self.frames_per_room + within
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        stream = self._get_stream()
        frame = stream.frame(key)
        depth = frame.depth.astype(np.float32)
        depth[~np.isfinite(depth)] = 0.0
        sample = RawSample(frame.rgb, depth, stream.intrinsics, id=f'synthetic_{key:06d}',
                           pose=frame.pose)
        if self._cache is not None:
            self._cache[key] = sample
        return sample
