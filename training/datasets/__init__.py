"""
Datasets: one base class (``base.DepthDataset``) and one subclass per source.

``build_dataset(config, split)`` makes the train or val dataset that a resolved training
config describes (``data.dataset`` names one of ``DATASETS``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Sequence

from training.datasets.augment import RawSample
from training.datasets.base import DatasetError, DepthDataset
from training.datasets.folder import FolderDataset
from training.datasets.kitti import KittiObject, KittiRaw
from training.datasets.nyu import NYUCSV, NYUH5, NYUMat, read_index_list
from training.datasets.sequences import read_scene_list, SceneSequences
from training.datasets.synthetic import SyntheticDataset

__all__ = ['build_dataset', 'DATASETS', 'DatasetError', 'DepthDataset', 'FolderDataset',
           'KittiObject', 'KittiRaw', 'NYUCSV', 'NYUH5', 'NYUMat', 'RawSample',
           'SceneSequences', 'SyntheticDataset']


def _resolve(root: str, path: str) -> str:
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(root, path)


def _synthetic(data, train, root, split_path, common):
    syn = data['synthetic']
    return SyntheticDataset(syn['train_size'] if train else syn['val_size'],
                            scene_seed=syn['seed'] if train else syn['val_seed'],
                            frames_per_room=syn['frames_per_room'], style=syn['style'],
                            textures=syn['textures'], speed=syn['speed'],
                            supersample=syn['supersample'],
                            stereo_baseline=syn['stereo_baseline'], **common)


def _nyu_mat(data, train, root, split_path, common):
    indices = read_index_list(split_path) if split_path else None
    return NYUMat(root, indices=indices, **common)


def _nyu_csv(data, train, root, split_path, common):
    csv = split_path or ('data/nyu2_train.csv' if train else 'data/nyu2_test.csv')
    return NYUCSV(root, csv=os.path.relpath(csv, root) if os.path.isabs(csv) and
                  not root.endswith('.zip') else csv, **common)


def _nyu_h5(data, train, root, split_path, common):
    return NYUH5(root, split='train' if train else 'val', **common)


def _kitti(data, train, root, split_path, common):
    if not split_path:
        raise DatasetError(f'data.{"train" if train else "val"}_split is empty; KITTI needs a '
                           'split file')
    kitti = data['kitti']
    # Training from video or stereo needs no ground truth: skip reading the scans.
    self_supervised = train and (common.get('frame_offsets') or common.get('stereo'))
    return KittiRaw(root, split_file=split_path, gt='none' if self_supervised else kitti['gt'],
                    depth_root=kitti['depth_root'],
                    static_threshold=kitti['static_threshold'], **common)


def _kitti_object(data, train, root, split_path, common):
    return KittiObject(root, **common)


def _sequences(data, train, root, split_path, common):
    seq = data['sequences']
    return SceneSequences(root, scenes=read_scene_list(split_path) if split_path else None,
                          rgb_dir=seq['rgb_dir'], depth_dir=seq['depth_dir'],
                          intrinsics=seq['intrinsics'], depth_scale=seq['depth_scale'],
                          frame_step=seq['frame_step'], **common)


def _rosbag(data, train, root, split_path, common):
    from training.datasets.rosbag import RosbagDataset  # rosbags is a training dependency
    return RosbagDataset(root, split='train' if train else 'val', **dict(data['rosbag']),
                         **common)


def _folder(data, train, root, split_path, common):
    folder = data['folder']
    return FolderDataset(root, rgb_dir=folder['rgb_dir'], depth_dir=folder['depth_dir'],
                         intrinsics=folder['intrinsics'], depth_scale=folder['depth_scale'],
                         **common)


# ``data.dataset`` name -> builder(data config, train?, root, split path, common kwargs).
# A new dataset is one entry here; ``needs_root`` lists the ones that read files.
DATASETS: Dict[str, Callable[..., DepthDataset]] = {
    'nyu_mat': _nyu_mat,
    'nyu_csv': _nyu_csv,
    'nyu_h5': _nyu_h5,
    'kitti': _kitti,
    'kitti_object': _kitti_object,
    'folder': _folder,
    'sequences': _sequences,
    'synthetic': _synthetic,
    'rosbag': _rosbag,
}
GENERATED = ('synthetic',)


def build_dataset(config: Mapping[str, Any], split: str = 'train',
                  photometric_in_loader: bool = True,
                  frame_offsets: Sequence[int] = (), stereo: bool = False) -> DepthDataset:
    """
    Return the 'train' or 'val' dataset of a resolved config.

    ``frame_offsets`` asks for neighbouring frames and ``stereo`` for stereo partners
    (self-supervised tasks); a dataset without them refuses with a DatasetError.
    """
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    data = config['data']
    train = split == 'train'
    resize = None
    if data['resize_width'] and data['resize_height']:
        resize = (data['resize_width'], data['resize_height'])
    common = dict(height=data['height'], width=data['width'], train=train,
                  augment=config['augment'] if train else None, resize=resize,
                  seed=config['seed'], photometric_in_loader=photometric_in_loader)
    if frame_offsets:
        common['frame_offsets'] = tuple(frame_offsets)
    if stereo:
        common['stereo'] = True
    name, root = data['dataset'], data['root']
    if name not in DATASETS:
        raise DatasetError(f'unknown dataset {name!r}; choose from {", ".join(DATASETS)}')
    if not root and name not in GENERATED:
        raise DatasetError(f'data.root is empty; dataset {name!r} needs it')
    split_path = _resolve(root, data['train_split'] if train else data['val_split'])
    return DATASETS[name](data, train, root, split_path, common)
