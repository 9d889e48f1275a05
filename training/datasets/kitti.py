"""
KITTI: raw drives with Eigen-style split files, and the object-benchmark layout.

Raw layout (``root`` holds the date folders)::

    root/2011_09_26/calib_cam_to_cam.txt, calib_velo_to_cam.txt
    root/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
    root/2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin

Split lines are ``2011_09_26/2011_09_26_drive_0002_sync 0000000069 l`` (side ``l`` = camera
2, ``r`` = camera 3; the frame number may be unpadded, as in monodepth2's lists). Ground
truth is either the Velodyne scan projected with the drive's calibration
(``mono_depth_ros.core.kitti``), or the depth benchmark's 16-bit PNGs (value / 256 m, 0 =
invalid) under ``depth_root/{train,val}/<drive>/proj_depth/groundtruth/image_0X/``.
Intrinsics are each frame's rectified P2 (or P3), at the image's own size.

``gt='none'`` reads no ground truth (training from video needs none, and projecting a scan
per sample costs time). For self-supervised training (``frame_offsets``, ``stereo``) a
sample also carries the
frames ``offset`` away in the same drive and camera, and the other camera's image, whose
baseline comes from P2/P3. Entries whose neighbours are missing (the ends of a drive) are
dropped; Zhou et al.'s ``eigen_zhou`` lists already leave out the frames where the car
stands still, and ``static_threshold`` > 0 drops those of any other list whose mean
absolute grey-level change to every neighbour is below it (0..1 scale, at 1/8 size).
"""

from __future__ import annotations

import glob
import os
from typing import List, Optional, Sequence, Tuple

import cv2
from mono_depth_ros.core import kitti as kitti_io
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import check_size, DatasetError, DepthDataset, read_depth_png, read_rgb

SIDES = {'l': 2, 'r': 3}
DEPTH_PNG_SCALE = 1.0 / 256.0


def read_split_file(path: str) -> List[Tuple[str, int, str]]:
    """Read an Eigen/monodepth2 split: (drive folder, frame number, side) per line."""
    if not os.path.isfile(path):
        raise DatasetError(f'split file not found: {path}')
    out = []
    with open(path, 'r', encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts or parts[0].startswith('#'):
                continue
            if len(parts) not in (2, 3):
                raise DatasetError(f'{path}:{number}: expected "date/drive frame [l|r]"')
            side = parts[2] if len(parts) == 3 else 'l'
            if side not in SIDES:
                raise DatasetError(f'{path}:{number}: side {side!r} is not l or r')
            try:
                frame = int(parts[1])
            except ValueError as exc:
                raise DatasetError(f'{path}:{number}: frame {parts[1]!r} is not a number') \
                    from exc
            out.append((parts[0], frame, side))
    return out


class KittiRaw(DepthDataset):
    """Raw KITTI drives listed by a split file (or explicit entries)."""

    max_eval_depth = 80.0
    eval_crop = 'garg'

    def __init__(self, root: str, split_file: Optional[str] = None,
                 entries: Optional[Sequence[Tuple[str, int, str]]] = None,
                 gt: str = 'velodyne', depth_root: str = '', static_threshold: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        if gt not in ('velodyne', 'png', 'none'):
            raise DatasetError(f'gt must be velodyne, png or none, got {gt!r}')
        if gt == 'png' and not depth_root:
            raise DatasetError('gt=png needs depth_root (the depth benchmark folder)')
        if entries is None:
            if not split_file:
                raise DatasetError('KittiRaw needs a split file or entries')
            entries = read_split_file(split_file)
        self.root, self.gt, self.depth_root = root, gt, depth_root
        self.entries = list(entries)
        self._calib = {}
        self.dropped = {'no_neighbour': 0, 'static': 0}
        if self.frame_offsets:
            self.entries = self._with_neighbours(float(static_threshold))

    def _image_path(self, drive: str, frame: int, camera: int) -> str:
        return os.path.join(self.root, drive, f'image_0{camera}', 'data', f'{frame:010d}.png')

    def _with_neighbours(self, static_threshold: float) -> List[Tuple[str, int, str]]:
        kept = []
        for drive, frame, side in self.entries:
            camera = SIDES[side]
            paths = [self._image_path(drive, frame + o, camera) for o in self.frame_offsets]
            if not all(os.path.isfile(p) for p in paths):
                self.dropped['no_neighbour'] += 1
                continue
            if static_threshold > 0 and is_static(
                    self._image_path(drive, frame, camera), paths, static_threshold):
                self.dropped['static'] += 1
                continue
            kept.append((drive, frame, side))
        if not kept:
            raise DatasetError(f'no split entry has all of its neighbours {self.frame_offsets} '
                               f'under {self.root}')
        return kept

    def __len__(self) -> int:
        """Return the number of split entries."""
        return len(self.entries)

    def calib(self, date: str):
        """Return the (cached) calibration of a date folder."""
        if date not in self._calib:
            self._calib[date] = kitti_io.read_kitti_calib(os.path.join(self.root, date))
        return self._calib[date]

    def paths(self, index: int) -> Tuple[str, str, int]:
        """Return (image path, date, camera) of entry index."""
        drive, frame, side = self.entries[index]
        camera = SIDES[side]
        image = os.path.join(self.root, drive, f'image_0{camera}', 'data', f'{frame:010d}.png')
        return image, drive.split('/')[0], camera

    def load(self, index: int) -> RawSample:
        """Return the image, its ground truth and its P2/P3 intrinsics."""
        drive, frame, side = self.entries[index]
        image_path, date, camera = self.paths(index)
        rgb = read_rgb(image_path)
        h, w = rgb.shape[:2]
        calib = self.calib(date)
        if self.gt == 'none':
            depth = np.zeros((h, w), np.float32)
        elif self.gt == 'velodyne':
            scan = os.path.join(self.root, drive, 'velodyne_points', 'data', f'{frame:010d}.bin')
            depth = kitti_io.project_velodyne_to_depth(kitti_io.read_velodyne_bin(scan), calib,
                                                       w, h, camera)
        else:
            depth = read_depth_png(self._depth_png(drive, frame, camera), DEPTH_PNG_SCALE)
        check_size(rgb, depth, image_path)
        return RawSample(rgb, depth, kitti_io.camera_intrinsics(calib, w, h, camera),
                         id=f'{drive.split("/")[-1]}_{frame:010d}_{side}')

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Return the frame offset frames from entry index (same drive and camera)."""
        drive, frame, side = self.entries[index]
        image_path, date, camera = self.paths(index)
        if offset:
            image_path = self._image_path(drive, frame + offset, camera)
        rgb = read_rgb(image_path)
        h, w = rgb.shape[:2]
        return RawSample(rgb, np.zeros((h, w), np.float32),
                         kitti_io.camera_intrinsics(self.calib(date), w, h, camera),
                         id=f'{drive.split("/")[-1]}_{frame + offset:010d}_{side}')

    def load_stereo(self, index: int) -> Tuple[RawSample, float]:
        """Return the other camera's image and T_t2s's x translation from P2/P3 (m)."""
        drive, frame, side = self.entries[index]
        _, date, camera = self.paths(index)
        other = 5 - camera  # 2 <-> 3
        calib = self.calib(date)
        rgb = read_rgb(self._image_path(drive, frame, other))
        h, w = rgb.shape[:2]
        # camera_offset(i) is the rectified cam-0 origin in camera i's frame: X_i = X_0 + t_i.
        tx = float(kitti_io.camera_offset(calib, other)[0] - kitti_io.camera_offset(
            calib, camera)[0])
        return RawSample(rgb, np.zeros((h, w), np.float32),
                         kitti_io.camera_intrinsics(calib, w, h, other),
                         id=f'{drive.split("/")[-1]}_{frame:010d}_{"r" if side == "l" else "l"}'
                         ), tx

    def _depth_png(self, drive: str, frame: int, camera: int) -> str:
        name = drive.split('/')[-1]
        for part in ('train', 'val'):
            path = os.path.join(self.depth_root, part, name, 'proj_depth', 'groundtruth',
                                f'image_0{camera}', f'{frame:010d}.png')
            if os.path.isfile(path):
                return path
        raise DatasetError(f'no depth benchmark PNG for {name} frame {frame} camera {camera} '
                           f'under {self.depth_root}/{{train,val}}')


class KittiObject(DepthDataset):
    """The object-benchmark layout: image_2/NNNNNN.png, calib/NNNNNN.txt, velodyne/*.bin."""

    max_eval_depth = 80.0
    eval_crop = 'garg'

    def __init__(self, root: str, ids: Optional[Sequence[str]] = None, camera: int = 2,
                 **kwargs):
        super().__init__(**kwargs)
        self.root, self.camera = root, int(camera)
        if ids is None:
            pattern = os.path.join(root, f'image_{self.camera}', '*.png')
            ids = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(pattern)
                         if os.path.basename(p)[:-4].isdigit())
        if not ids:
            raise DatasetError(f'no frames under {root}/image_{self.camera}')
        self.ids = list(ids)

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self.ids)

    def load(self, index: int) -> RawSample:
        """Return the image, its projected Velodyne depth and its P intrinsics."""
        frame = self.ids[index]
        rgb = read_rgb(os.path.join(self.root, f'image_{self.camera}', f'{frame}.png'))
        h, w = rgb.shape[:2]
        calib = kitti_io.read_kitti_calib(os.path.join(self.root, 'calib', f'{frame}.txt'))
        scan = kitti_io.read_velodyne_bin(os.path.join(self.root, 'velodyne', f'{frame}.bin'))
        depth = kitti_io.project_velodyne_to_depth(scan, calib, w, h, self.camera)
        return RawSample(rgb, depth, kitti_io.camera_intrinsics(calib, w, h, self.camera),
                         id=frame)


def is_static(path: str, neighbours: Sequence[str], threshold: float) -> bool:
    """Return whether the image at path barely differs from every neighbour (car stopped)."""
    def grey(p):
        image = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DatasetError(f'cannot read image {p}')
        return cv2.resize(image, (image.shape[1] // 8, image.shape[0] // 8),
                          interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    centre = grey(path)
    return all(float(np.mean(np.abs(grey(n) - centre))) < threshold for n in neighbours)
