"""
Self-describing training checkpoints that load without unpickling code.

A checkpoint is a plain dict written with ``torch.save`` (atomically: a crash mid-write
leaves the previous file) and read with ``torch.load(weights_only=True)``, so it may only
hold tensors, numbers, strings, lists, tuples and dicts - RNG states are stored as tensors
and lists, never numpy objects::

    {'format': 'mono_depth_ros.checkpoint', 'version': 1,
     'meta': ModelMeta.to_dict(),   # arch, arch_args, input size, normalisation, output
                                    # mode/scale/shift, depth range, train_fx/fy, dataset,
                                    # metrics, git revision
     'config': resolved config, 'model': state_dict, 'optimizer', 'scheduler', 'scaler',
     'epoch', 'step', 'best', 'early_stopping', 'rng', ...}

``training.networks.load_model`` rebuilds the network with
``build_model(meta.arch, **meta.arch_args)`` (this module knows no network: the zoo imports it).
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, Mapping, Optional

from mono_depth_ros.core.atomic import atomic_path
from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta
import numpy as np
import torch

FORMAT = 'mono_depth_ros.checkpoint'
VERSION = 1
# Arguments that fetch weights from elsewhere at construction; the checkpoint has them.
_LOAD_TIME_ARGS = ('pretrained',)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, not ours, or from a newer format."""


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Return the network inside DistributedDataParallel / DataParallel wrappers."""
    return model.module if hasattr(model, 'module') else model


def make_meta(model: torch.nn.Module, config: Mapping[str, Any], metrics=None,
              git_revision: str = '', train_fx: Optional[float] = None,
              train_fy: Optional[float] = None, resize_mode: str = 'stretch',
              fit_aspect: float = 0.0, crop_fraction: float = 1.0) -> ModelMeta:
    """
    Describe a zoo network trained with a resolved config.

    Checkpoints take float RGB in [0, 1], normalised by mean/std outside the network (the
    export puts that into the graph). train_fx/fy are at the network input size.
    """
    net = unwrap(model)
    mcfg, data = config['model'], config['data']
    spec = net.output_spec(mcfg['min_depth'], mcfg['max_depth'])
    arch_args = {k: v for k, v in dict(mcfg.get('args') or {}).items()
                 if k not in _LOAD_TIME_ARGS}
    focal = bool(data.get('focal_rescale')) and train_fx is not None and train_fy is not None
    return ModelMeta(
        arch=mcfg['arch'], arch_args=arch_args, input_height=int(data['height']),
        input_width=int(data['width']), input_dtype='float32', input_layout='NCHW',
        normalize_in_graph=False, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_mode=spec['output_mode'], output_scale=float(spec['output_scale']),
        output_shift=float(spec['output_shift']), min_depth=float(mcfg['min_depth']),
        max_depth=float(mcfg['max_depth']),
        train_fx=None if train_fx is None else float(train_fx),
        train_fy=None if train_fy is None else float(train_fy),
        focal_rescale=focal, dataset=str(data['dataset']), resize_mode=str(resize_mode),
        fit_aspect=float(fit_aspect), crop_fraction=float(crop_fraction),
        metrics={k: float(v) for k, v in dict(metrics or {}).items()},
        git_revision=git_revision, description=f'{mcfg["arch"]} trained on {data["dataset"]}')


# -- RNG state as weights_only-safe values ----------------------------------------------------
def rng_state() -> Dict[str, Any]:
    """Capture python, numpy, torch (and CUDA) RNG states as tensors and lists."""
    np_state = np.random.get_state()
    state = {
        'python': _to_lists(random.getstate()),
        'numpy': {'name': np_state[0], 'keys': torch.from_numpy(np_state[1].astype(np.int64)),
                  'pos': int(np_state[2]), 'has_gauss': int(np_state[3]),
                  'gauss': float(np_state[4])},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state['numpy']
    np.random.set_state((n['name'], n['keys'].numpy().astype(np.uint32), n['pos'],
                         n['has_gauss'], n['gauss']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _to_lists(value):
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


# -- save / load ------------------------------------------------------------------------------
def save_checkpoint(path: str, model: torch.nn.Module, meta: ModelMeta,
                    config: Optional[Mapping[str, Any]] = None, optimizer=None, scheduler=None,
                    scaler=None, epoch: int = 0, step: int = 0, best: Optional[float] = None,
                    rng: Optional[Mapping[str, Any]] = None, **extra: Any) -> None:
    """Write a checkpoint atomically (see the module docstring for its contents)."""
    payload = {
        'format': FORMAT,
        'version': VERSION,
        'meta': meta.to_dict(),
        'config': dict(config or {}),
        'model': unwrap(model).state_dict(),
        'optimizer': optimizer.state_dict() if optimizer is not None else None,
        'scheduler': scheduler.state_dict() if scheduler is not None else None,
        'scaler': scaler.state_dict() if scaler is not None else None,
        'epoch': int(epoch),
        'step': int(step),
        'best': None if best is None else float(best),
        'rng': dict(rng) if rng is not None else rng_state(),
    }
    payload.update(extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str, map_location='cpu') -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; raise CheckpointError when not ours."""
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise CheckpointError(f'cannot read checkpoint {path}: {exc}') from exc
    if not isinstance(ckpt, dict) or ckpt.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a {FORMAT} file')
    if int(ckpt.get('version', 0)) > VERSION:
        raise CheckpointError(f'{path} has checkpoint version {ckpt["version"]}, newer than '
                              f'this code understands ({VERSION})')
    for key in ('meta', 'model'):
        if key not in ckpt:
            raise CheckpointError(f'{path} lacks {key!r}')
    return ckpt
