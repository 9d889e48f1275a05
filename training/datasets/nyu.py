"""
NYU Depth V2 in its three common distributions.

* ``NYUMat``: the labeled ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with
  h5py). MATLAB stores arrays column-major, so h5py sees them transposed: ``images`` is
  (N, 3, W, H) uint8 and ``depths`` (N, W, H) float metres (in-painted, dense). The split is
  a list of 1-based indices into the 1449 images (the official 795/654 lists are
  ``trainNdxs``/``testNdxs`` of ``splits.mat``; see ``splits/README.md``).
* ``NYUCSV``: DenseDepth's ``nyu_data.zip`` (the zip itself or its extracted folder), rows
  ``rgb_path,depth_path`` in ``data/nyu2_train.csv`` / ``data/nyu2_test.csv``. Following
  DenseDepth's loader, 8-bit depth PNGs (the training set) hold depth / 10 m * 255, and
  16-bit PNGs (the test set) hold millimetres.
* ``NYUH5``: FastDepth / sparse-to-dense ``.h5`` files (``rgb`` (3, H, W) uint8, ``depth``
  (H, W) float metres) under ``root/train`` and ``root/val``.

All use the Kinect RGB intrinsics (``kinect_nyu`` preset) at 640x480, rescaled when a
distribution stores another size.
"""

from __future__ import annotations

import glob
import io
import os
from typing import List, Optional, Sequence
import zipfile

import cv2
from mono_depth_ros.core.intrinsics import preset
import numpy as np
from training.datasets.augment import RawSample
from training.datasets.base import check_size, DatasetError, DepthDataset

NYU_LABELED_COUNT = 1449
DENSEDEPTH_MAX_DEPTH = 10.0


def nyu_intrinsics(width: int, height: int):
    """Return the Kinect RGB intrinsics at width x height."""
    return preset('kinect_nyu').resize(width, height)


def read_index_list(path: str) -> List[int]:
    """Read a split list: 1-based indices, whitespace or newline separated, # comments."""
    if not os.path.isfile(path):
        raise DatasetError(f'split list not found: {path}')
    out = []
    with open(path, 'r', encoding='utf-8') as handle:
        for number, line in enumerate(handle, 1):
            for token in line.split('#', 1)[0].split():
                try:
                    value = int(token)
                except ValueError as exc:
                    raise DatasetError(f'{path}:{number}: {token!r} is not an index') from exc
                if not 1 <= value <= NYU_LABELED_COUNT:
                    raise DatasetError(f'{path}:{number}: index {value} outside '
                                       f'1..{NYU_LABELED_COUNT} (indices are 1-based)')
                out.append(value)
    return out


class NYUMat(DepthDataset):
    """The labeled .mat file; ``indices`` are 1-based (None = every image)."""

    def __init__(self, path: str, indices: Optional[Sequence[int]] = None, **kwargs):
        super().__init__(**kwargs)
        if not os.path.isfile(path):
            raise DatasetError(f'NYU labeled .mat not found: {path}')
        self.path = path
        self._file = None
        self._pid = None
        with self._open_file() as handle:
            for key in ('images', 'depths'):
                if key not in handle:
                    raise DatasetError(f'{path}: no {key!r} dataset (is it the v7.3 labeled '
                                       'file?)')
            count = handle['images'].shape[0]
        self.indices = list(indices) if indices is not None else list(range(1, count + 1))
        bad = [i for i in self.indices if not 1 <= i <= count]
        if bad:
            raise DatasetError(f'{path}: indices {bad[:5]} outside 1..{count}')

    def _open_file(self):
        import h5py
        return h5py.File(self.path, 'r')

    def _handle(self):
        # h5py handles must not cross a fork: each loader worker opens its own.
        if self._file is None or self._pid != os.getpid():
            self._file = self._open_file()
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        """Return the number of selected images."""
        return len(self.indices)

    def load(self, index: int) -> RawSample:
        """Return labeled image indices[index] (1-based in the file's order)."""
        n = self.indices[index]
        handle = self._handle()
        rgb = np.ascontiguousarray(np.asarray(handle['images'][n - 1]).transpose(2, 1, 0))
        depth = np.ascontiguousarray(np.asarray(handle['depths'][n - 1], np.float32).T)
        check_size(rgb, depth, f'{self.path}[{n}]')
        h, w = depth.shape
        return RawSample(rgb, depth, nyu_intrinsics(w, h), id=f'{n:04d}')

    def __getstate__(self):
        """Drop the open HDF5 handle when pickled into a worker."""
        state = dict(self.__dict__)
        state['_file'] = None
        return state


class NYUCSV(DepthDataset):
    """DenseDepth's nyu_data.zip layout (zip file or extracted folder) and its CSV lists."""

    def __init__(self, root: str, csv: str = 'data/nyu2_train.csv', **kwargs):
        super().__init__(**kwargs)
        self.root = root
        self._zip = None
        self._pid = None
        text = self._read(csv).decode('utf-8')
        self.rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(',')]
            if len(parts) < 2:
                raise DatasetError(f'{csv}:{number}: expected "rgb_path,depth_path"')
            self.rows.append((parts[0], parts[1]))
        if not self.rows:
            raise DatasetError(f'{root}: {csv} lists no images')

    def _read(self, name: str) -> bytes:
        if zipfile.is_zipfile(self.root):
            if self._zip is None or self._pid != os.getpid():
                self._zip = zipfile.ZipFile(self.root, 'r')
                self._pid = os.getpid()
            try:
                return self._zip.read(name)
            except KeyError as exc:
                raise DatasetError(f'{self.root}: no member {name}') from exc
        path = os.path.join(self.root, name)
        if not os.path.isfile(path):
            raise DatasetError(f'file not found: {path}')
        with open(path, 'rb') as handle:
            return handle.read()

    def __getstate__(self):
        """Drop the open zip handle when pickled into a worker."""
        state = dict(self.__dict__)
        state['_zip'] = None
        return state

    def __len__(self) -> int:
        """Return the number of CSV rows."""
        return len(self.rows)

    def load(self, index: int) -> RawSample:
        """Decode row index: RGB, and depth by the PNG's bit depth (see module doc)."""
        rgb_name, depth_name = self.rows[index]
        bgr = cv2.imdecode(np.frombuffer(self._read(rgb_name), np.uint8), cv2.IMREAD_COLOR)
        raw = cv2.imdecode(np.frombuffer(self._read(depth_name), np.uint8),
                           cv2.IMREAD_UNCHANGED)
        if bgr is None or raw is None:
            raise DatasetError(f'{self.root}: cannot decode {rgb_name} or {depth_name}')
        if raw.ndim == 3:
            raw = raw[..., 0]
        if raw.dtype == np.uint8:
            depth = raw.astype(np.float32) * np.float32(DENSEDEPTH_MAX_DEPTH / 255.0)
        elif raw.dtype == np.uint16:
            depth = raw.astype(np.float32) * np.float32(0.001)
        else:
            raise DatasetError(f'{depth_name}: unexpected depth dtype {raw.dtype}')
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        check_size(rgb, depth, depth_name)
        h, w = depth.shape
        stem = os.path.splitext(rgb_name)[0].replace('/', '_')
        return RawSample(rgb, depth, nyu_intrinsics(w, h), id=stem)


class NYUH5(DepthDataset):
    """FastDepth/sparse-to-dense .h5 files: root/<split>/**/*.h5 (or a list of files)."""

    def __init__(self, root: str, split: str = 'train', files: Optional[Sequence[str]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if files is None:
            folder = os.path.join(root, split)
            files = sorted(glob.glob(os.path.join(folder, '**', '*.h5'), recursive=True))
            if not files:
                raise DatasetError(f'no .h5 files under {folder}')
        self.root = root
        self.files = list(files)

    def __len__(self) -> int:
        """Return the number of .h5 files."""
        return len(self.files)

    def load(self, index: int) -> RawSample:
        """Read one .h5 file: rgb (3, H, W) uint8 and depth (H, W) metres."""
        import h5py
        path = self.files[index]
        try:
            with h5py.File(path, 'r') as handle:
                rgb = np.asarray(handle['rgb'])
                depth = np.asarray(handle['depth'], np.float32)
        except (OSError, KeyError) as exc:
            raise DatasetError(f'{path}: not a FastDepth .h5 ({exc})') from exc
        rgb = np.ascontiguousarray(rgb.transpose(1, 2, 0))
        check_size(rgb, depth, path)
        h, w = depth.shape
        rel = os.path.relpath(path, self.root) if self.root else os.path.basename(path)
        return RawSample(rgb, depth, nyu_intrinsics(w, h),
                         id=os.path.splitext(rel)[0].replace(os.sep, '_'))


def encode_png(array: np.ndarray) -> bytes:
    """Encode an array as PNG bytes (used to build DenseDepth-style archives)."""
    ok, data = cv2.imencode('.png', array)
    if not ok:
        raise DatasetError('PNG encoding failed')
    return io.BytesIO(data.tobytes()).getvalue()
