"""
The training driver: the tasks registry and ``run_training``, above the loop and the tasks.

``TASKS`` maps the config's ``task`` to a builder of its :class:`~training.trainer.Task`:
``supervised``, ``selfsup`` (:mod:`training.selfsup`) and ``ensemble``
(:mod:`training.ensemble`). The tasks import the loop (:mod:`training.trainer`), so the
registry lives here, above both, and nothing below imports it: adding a task is one entry in
``TASKS``. ``run_training(config, output_dir)`` wires a run from a resolved config.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

import torch
import torch.distributed as dist
from training.config import write_run_files
from training.datasets import build_dataset
from training.distributed import init_distributed, resolve_device, seed_everything
from training.ensemble import build_ensemble_task, train_bases
from training.losses import build_loss
from training.model_config import build_model_from_config, resolve_init
from training.selfsup import SelfSupervisedTask
from training.tasks import SupervisedDepthTask, Task
from training.trainer import Trainer


def _supervised(config: Mapping[str, Any]) -> Task:
    mcfg = config['model']
    return SupervisedDepthTask(build_loss(config['loss']), mcfg['min_depth'], mcfg['max_depth'])


def _selfsup(config: Mapping[str, Any]) -> Task:
    return SelfSupervisedTask.from_config(config)


def _ensemble(config: Mapping[str, Any]) -> Task:
    return build_ensemble_task(config)


# The config's ``task`` -> builder(resolved config) -> Task: add a new task here.
TASKS: Dict[str, Callable[[Mapping[str, Any]], Task]] = {
    'supervised': _supervised,
    'selfsup': _selfsup,
    'ensemble': _ensemble,
}


def build_task(config: Mapping[str, Any]) -> Task:
    """Return the Task that ``config['task']`` names."""
    name = config.get('task', 'supervised')
    if name not in TASKS:
        raise ValueError(f'unknown task {name!r}; known: {", ".join(TASKS)}')
    return TASKS[name](config)


def run_training(config: Mapping[str, Any], output_dir: Optional[str] = None,
                 log: Callable[[str], None] = print, resume: bool = True) -> Dict[str, Any]:
    """Train from a resolved config; write config, git revision, logs and checkpoints."""
    output_dir = output_dir or config['output_dir']
    config = resolve_init(config)
    if config.get('task') == 'ensemble':  # stage 1: the base learners, each a run of its own
        config = train_bases(config, output_dir, log, resume, train=run_training)
    device = resolve_device(config['device'])
    info = init_distributed(device)
    seed_everything(int(config['seed']))
    if bool(config['train']['deterministic']):
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    revision = write_run_files(output_dir, config) if info.main else ''
    aug_device = config['augment']['device']
    on_device = aug_device == 'device' or (aug_device == 'auto' and device.type == 'cuda')
    task = build_task(config)
    train_set = build_dataset(config, 'train', photometric_in_loader=not on_device,
                              frame_offsets=task.frame_offsets, stereo=task.stereo_pairs)
    val_set = build_dataset(config, 'val', frame_offsets=task.frame_offsets
                            if task.validation_loss else ())
    k = train_set[0]['K']
    model = build_model_from_config(config)
    mcfg = config['model']
    extra = {'git_revision': revision, 'train_fx': float(k[0, 0]), 'train_fy': float(k[1, 1])}
    if config['data']['dataset'] == 'rosbag':  # the node cuts images as training did
        extra.update({key: config['data']['rosbag'][key]
                      for key in ('resize_mode', 'fit_aspect', 'crop_fraction')})
    trainer = Trainer(config, task, model, train_set, val_set, output_dir, device, log,
                      meta_extra=extra)
    log(f'training {mcfg["arch"]} ({config.get("task", "supervised")}) on '
        f'{config["data"]["dataset"]} ({len(train_set)} train, '
        f'{len(val_set)} val) on {device}, world {info.world}, into {output_dir}')
    summary = trainer.fit(resume=resume)
    log(f'done: {summary["steps"]} steps, {summary["images_per_s"]:.1f} images/s per process, '
        f'data loading {100 * summary["data_fraction"]:.0f}% of the time, '
        f'stopped by {summary["stopped"]}')
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
    return summary
