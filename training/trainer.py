"""
The training loop, and the pieces it is built from.

``Trainer`` knows nothing about depth supervision: it runs a :class:`Task`, whose
``compute_loss(model, batch) -> (loss, logs)`` and ``predict(model, batch) -> depth``
define the learning problem (:mod:`training.tasks`). ``training.run.TASKS`` maps the
config's ``task`` to a builder: ``supervised`` (:class:`.tasks.SupervisedDepthTask`),
``selfsup`` (Monodepth2 from video, :mod:`training.selfsup`) and ``ensemble``; a new task
is one entry there, a new loss one in ``training.losses.LOSSES``, a dataset one in
``training.datasets.DATASETS`` and an encoder one in ``training.networks.ARCHITECTURES``.
A task may train modules of its own besides the depth network (the pose network): they
join the optimizer and the checkpoint (``task_modules``), while ``model`` in the
checkpoint stays the depth network alone.

What the loop does: AMP on CUDA (bf16 autocast where supported, else fp16 with a
GradScaler); AdamW + OneCycleLR or Adam + StepLR; gradient clipping; a non-finite loss
stops the run with :class:`TrainingDivergedError` naming the step; early stopping on a
validation metric; tqdm bars only on a terminal outside CI; TensorBoard and CSV logs;
seeded, resumable runs (``last.pt`` holds model, optimizer, scheduler, scaler, epoch,
position within the epoch, RNG and early-stopping state; the sampler and augmentations
are functions of (seed, epoch, index), so a resumed run continues the same sequence);
DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on CUDA; rank 0 logs and
writes checkpoints). ``training.run.run_training(config, output_dir)`` wires it all from
a config; it and the tasks registry sit above this module and the tasks. The pieces live
beside it: :mod:`training.distributed` (devices, processes, seeds, the sampler),
:mod:`training.train_logs`, :mod:`training.validation` and :mod:`training.model_config`
(the network of a config, warm-started).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from training import checkpoint as ckpt_io
from training.datasets.augment import PhotometricAugment
from training.distributed import (EpochSampler, init_distributed, resolve_device,
                                  seed_everything, seed_worker)
# build_model_from_config, resolve_init and SupervisedDepthTask are re-exported for the
# callers that know them from here.
from training.model_config import build_model_from_config, resolve_init  # noqa: F401
from training.tasks import SupervisedDepthTask, Task  # noqa: F401
from training.train_logs import CSVLog, progress_enabled
from training.validation import average_metrics, evaluate_batches, to_device

LAST = 'last.pt'
BEST = 'best.pt'


class TrainingDivergedError(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite."""


# -- the trainer ------------------------------------------------------------------------------
class Trainer:
    """Run a Task on a model and datasets as a resolved config says (module docstring)."""

    def __init__(self, config: Mapping[str, Any], task: Task, model: torch.nn.Module,
                 train_set, val_set=None, output_dir: str = 'runs/default',
                 device: Optional[torch.device] = None, log: Callable[[str], None] = print,
                 meta_extra: Optional[Mapping[str, Any]] = None):
        self.config = config
        self.task = task
        self.output_dir = output_dir
        self.device = device or resolve_device(config['device'])
        self.dist = init_distributed(self.device)
        self.log = log if self.dist.main else (lambda _m: None)
        self.train_set, self.val_set = train_set, val_set
        self.meta_extra = dict(meta_extra or {})
        self.opt_cfg, self.train_cfg = config['optim'], config['train']
        data = config['data']
        self.batch_size = int(data['batch_size'])
        self.val_batch_size = int(data['val_batch_size'] or data['batch_size'])
        self.num_workers = int(data['num_workers'])
        self.seed = int(config['seed'])
        self.steps_per_epoch = math.ceil(math.ceil(len(train_set) / self.dist.world) /
                                         self.batch_size)
        self.epochs = int(self.train_cfg['epochs'])
        self.max_steps = int(self.train_cfg['max_steps']) or self.epochs * self.steps_per_epoch
        self.max_steps = min(self.max_steps, self.epochs * self.steps_per_epoch)

        model = model.to(self.device)
        if self.dist.enabled:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.model = model
        self.task_modules = {}
        for name, module in task.modules().items():
            module = module.to(self.device)
            if self.dist.enabled:
                module = torch.nn.parallel.DistributedDataParallel(
                    module,
                    device_ids=[self.device.index] if self.device.type == 'cuda' else None)
            self.task_modules[name] = module
        task.attach(self.task_modules)
        params = [p for m in [model, *self.task_modules.values()] for p in m.parameters()
                  if p.requires_grad]
        if not params:
            raise ValueError('the model has no trainable parameters (everything frozen?)')
        lr, wd = float(self.opt_cfg['lr']), float(self.opt_cfg['weight_decay'])
        if self.opt_cfg['optimizer'] == 'adamw':
            self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
        else:
            self.optimizer = torch.optim.Adam(params, lr=lr, weight_decay=wd)
        self.scheduler, self.per_step_schedule = self._make_scheduler(lr)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(
            'cuda', enabled=self.amp_dtype == torch.float16 and self.device.type == 'cuda')
        aug_device = config['augment']['device']
        self.device_photometric = None
        if aug_device == 'device' or (aug_device == 'auto' and self.device.type == 'cuda'):
            self.device_photometric = PhotometricAugment(config['augment'])
        stop = self.train_cfg['early_stopping']
        self.es_metric, self.es_mode = stop['metric'], stop['mode']
        self.es_patience, self.es_delta = int(stop['patience']), float(stop['min_delta'])
        self.state = {'epoch': 0, 'batch': 0, 'step': 0, 'best': None, 'bad_epochs': 0,
                      'metrics': {}}
        self.writer = None
        self.train_csv = self.val_csv = None
        self.history: List[Dict[str, float]] = []
        self.timing = {'data': 0.0, 'compute': 0.0, 'images': 0}

    # -- setup ----------------------------------------------------------------------------
    def _make_scheduler(self, lr: float):
        kind = self.opt_cfg['scheduler']
        if kind == 'onecycle':
            return torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=lr, total_steps=max(self.max_steps, 2),
                pct_start=float(self.opt_cfg['pct_start'])), True
        if kind == 'step':
            return torch.optim.lr_scheduler.StepLR(
                self.optimizer, step_size=int(self.opt_cfg['step_size']),
                gamma=float(self.opt_cfg['gamma'])), False
        return None, False

    def _amp_dtype(self) -> Optional[torch.dtype]:
        amp = self.opt_cfg['amp']
        if self.device.type != 'cuda' or amp == 'none':
            return None
        if amp == 'bf16' or (amp == 'auto' and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float16

    def _open_logs(self) -> None:
        if not self.dist.main:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        self.train_csv = CSVLog(os.path.join(self.output_dir, 'train_log.csv'))
        self.val_csv = CSVLog(os.path.join(self.output_dir, 'val_log.csv'))
        if self.train_cfg['tensorboard']:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(self.output_dir, 'tensorboard'))
            except ImportError as exc:
                self.log(f'TensorBoard disabled: {exc}')

    # -- checkpoints ----------------------------------------------------------------------
    def meta(self):
        """Return the ModelMeta of the model as trained so far."""
        return self.task.describe(ckpt_io.make_meta(
            self.model, self.config, metrics=self.state['metrics'], **self.meta_extra))

    def _all_modules(self):
        return [self.model, *self.task_modules.values()]

    def save(self, name: str) -> str:
        """Write a checkpoint (rank 0 only); return its path."""
        path = os.path.join(self.output_dir, name)
        if self.dist.main:
            ckpt_io.save_checkpoint(
                path, self.model, self.meta(), self.config, self.optimizer, self.scheduler,
                self.scaler, epoch=self.state['epoch'], step=self.state['step'],
                best=self.state['best'], batch=self.state['batch'],
                early_stopping={'bad_epochs': self.state['bad_epochs'],
                                'metric': self.es_metric},
                metrics=dict(self.state['metrics']),
                task_modules={name: ckpt_io.unwrap(m).state_dict()
                              for name, m in self.task_modules.items()})
        return path

    def resume(self, path: str) -> None:
        """Restore everything from a checkpoint written by :meth:`save`."""
        ck = ckpt_io.load_checkpoint(path, map_location=self.device)
        ckpt_io.unwrap(self.model).load_state_dict(ck['model'])
        saved = ck.get('task_modules') or {}
        for name, module in self.task_modules.items():
            if name not in saved:
                raise ckpt_io.CheckpointError(f'{path} has no state for the task module '
                                              f'{name!r}; it was written by another task')
            ckpt_io.unwrap(module).load_state_dict(saved[name])
        self.optimizer.load_state_dict(ck['optimizer'])
        if self.scheduler is not None and ck.get('scheduler'):
            self.scheduler.load_state_dict(ck['scheduler'])
        if ck.get('scaler'):
            self.scaler.load_state_dict(ck['scaler'])
        self.state.update(epoch=int(ck['epoch']), step=int(ck['step']),
                          batch=int(ck.get('batch', 0)), best=ck.get('best'),
                          bad_epochs=int((ck.get('early_stopping') or {}).get('bad_epochs', 0)),
                          metrics=dict(ck.get('metrics') or {}))
        if ck.get('rng'):
            ckpt_io.set_rng_state(_cpu_rng(ck['rng']))
        self.log(f'resumed from {path}: epoch {self.state["epoch"]}, step {self.state["step"]}')

    # -- loop -----------------------------------------------------------------------------
    def _loader(self, dataset, epoch: int, start: int, train: bool) -> DataLoader:
        if train:
            dataset.set_epoch(epoch)
            sampler = EpochSampler(len(dataset), self.seed, epoch, self.dist.rank,
                                   self.dist.world, start * self.batch_size)
            batch = self.batch_size
        else:
            sampler = EpochSampler(len(dataset), self.seed, 0, shuffle=False)
            batch = self.val_batch_size
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return DataLoader(dataset, batch_size=batch, sampler=sampler,
                          num_workers=self.num_workers, worker_init_fn=seed_worker,
                          generator=gen, pin_memory=self.device.type == 'cuda',
                          drop_last=False)

    def fit(self, resume: bool = True) -> Dict[str, Any]:
        """Train to the end (epochs, max_steps or early stop); return a summary dict."""
        self._open_logs()
        last = os.path.join(self.output_dir, LAST)
        if resume and os.path.isfile(last):
            self.resume(last)
        else:
            seed_everything(self.seed + self.dist.rank)
        bar_on = progress_enabled(self.train_cfg['progress']) and self.dist.main
        reason = 'epochs'
        for module in self._all_modules():
            module.train()
        start_time = time.perf_counter()
        while self.state['epoch'] < self.epochs:
            if self.state['step'] >= self.max_steps:
                reason = 'max_steps'
                break
            stop = self._run_epoch(bar_on)
            if stop:
                reason = stop
                break
        elapsed = time.perf_counter() - start_time
        if self.writer is not None:
            self.writer.close()
        if self.dist.enabled:
            dist.barrier()
        images = self.timing['images'] * self.dist.world
        return {'steps': self.state['step'], 'epochs': self.state['epoch'],
                'best': self.state['best'], 'metrics': dict(self.state['metrics']),
                'stopped': reason, 'seconds': elapsed,
                'images_per_s': images / max(self.timing['data'] + self.timing['compute'], 1e-9),
                'data_fraction': self.timing['data'] / max(
                    self.timing['data'] + self.timing['compute'], 1e-9),
                'last': last, 'best_path': os.path.join(self.output_dir, BEST)}

    def _run_epoch(self, bar_on: bool) -> Optional[str]:
        epoch = self.state['epoch']
        loader = self._loader(self.train_set, epoch, self.state['batch'], True)
        bar = None
        if bar_on:
            from tqdm import tqdm
            bar = tqdm(total=self.steps_per_epoch, initial=self.state['batch'],
                       desc=f'epoch {epoch + 1}/{self.epochs}', leave=False)
        every = int(self.train_cfg['checkpoint_every'])
        log_every = max(1, int(self.train_cfg['log_every']))
        tick = time.perf_counter()
        for batch in loader:
            loaded = time.perf_counter()
            self.timing['data'] += loaded - tick
            loss, logs = self._step(batch)
            self.timing['compute'] += time.perf_counter() - loaded
            self.timing['images'] += int(batch['image'].shape[0])
            self.state['step'] += 1
            self.state['batch'] += 1
            step = self.state['step']
            lr = self.optimizer.param_groups[0]['lr']
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f'{loss:.4f}', lr=f'{lr:.2e}')
            if step % log_every == 0 or step == 1:
                self._log_train(epoch, step, loss, lr, logs)
            if every and step % every == 0:
                self.save(LAST)
            if step >= self.max_steps:
                break
            tick = time.perf_counter()
        if bar is not None:
            bar.close()
        epoch_done = self.state['batch'] >= self.steps_per_epoch
        if not epoch_done:
            self.save(LAST)  # stopped by max_steps in the middle of an epoch
            return 'max_steps'
        if self.scheduler is not None and not self.per_step_schedule:
            self.scheduler.step()
        self.state['epoch'] += 1
        self.state['batch'] = 0
        stop = None
        if self.val_set is not None and self.state['epoch'] % int(self.train_cfg['val_every']) \
                == 0:
            stop = self._validate()
        self.save(LAST)
        if self.state['step'] >= self.max_steps and stop is None and \
                self.max_steps < self.epochs * self.steps_per_epoch:
            stop = 'max_steps'
        return stop

    def _step(self, batch) -> Tuple[float, Dict[str, float]]:
        batch = to_device(batch, self.device)
        if self.device_photometric is not None:
            gen = torch.Generator().manual_seed(self.seed * 7919 + self.state['step'])
            state = gen.get_state()
            for key in self.task.image_keys:  # the same draws for every frame of a sample
                if key in batch:
                    gen.set_state(state)
                    batch[key] = self.device_photometric(batch[key], gen)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype,
                                  enabled=self.amp_dtype is not None)
        with autocast:
            loss, logs = self.task.compute_loss(self.model, batch)
        finite = torch.isfinite(loss.detach()).float()
        if self.dist.enabled:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            raise TrainingDivergedError(
                f'loss is {float(loss.detach()):.6g} at step {self.state["step"] + 1} (epoch '
                f'{self.state["epoch"] + 1}); lower optim.lr, check the data for invalid '
                'depth, or set optim.amp=none')
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = float(self.opt_cfg['grad_clip'])
        if clip > 0:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(
                [p for m in self._all_modules() for p in m.parameters() if p.requires_grad],
                clip)
            if not self.scaler.is_enabled() and not torch.isfinite(norm):
                raise TrainingDivergedError(
                    f'gradient norm is {float(norm)} at step {self.state["step"] + 1}')
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and self.per_step_schedule:
            self.scheduler.step()
        return float(loss.detach()), logs

    def _log_train(self, epoch, step, loss, lr, logs) -> None:
        if not self.dist.main:
            return
        row = {'epoch': epoch + 1, 'step': step, 'loss': loss, 'lr': lr}
        row.update(logs)
        self.train_csv.write(row)
        if self.writer is not None:
            self.writer.add_scalar('train/loss', loss, step)
            self.writer.add_scalar('train/lr', lr, step)
            for key, value in logs.items():
                self.writer.add_scalar(f'train/{key}', value, step)

    def _validate(self) -> Optional[str]:
        mcfg = self.config['model']
        loader = self._loader(self.val_set, 0, 0, False)
        rows = []
        photometric, counted = 0.0, 0
        for batch, _pred, metrics in evaluate_batches(
                self.task, self.model, loader, self.device, mcfg['min_depth'],
                mcfg['max_depth'], median_scaling=self.task.median_scaling):
            rows.extend(metrics)
            if self.task.validation_loss:
                # A self-supervised score that needs no ground truth: the photometric
                # error of the held-out frames (the model is in eval mode here).
                with torch.no_grad():
                    _loss, logs = self.task.compute_loss(self.model, batch)
                n = int(batch['image'].shape[0])
                photometric += logs['photometric'] * n
                counted += n
        rows = rows[:len(self.val_set)]
        metrics = average_metrics(rows)
        if counted:
            metrics['photometric'] = photometric / counted
        if self.task.median_scaling and metrics:
            metrics['scale_std'] = float(np.std([r['scale'] for r in rows if r is not None]))
        self.state['metrics'] = metrics
        self.history.append(metrics)
        epoch, step = self.state['epoch'], self.state['step']
        if self.dist.main:
            self.val_csv.write({'epoch': epoch, 'step': step, **metrics})
            if self.writer is not None:
                for key, value in metrics.items():
                    self.writer.add_scalar(f'val/{key}', value, step)
            shown = ', '.join(f'{k} {v:.4f}' for k, v in metrics.items()
                              if k in ('abs_rel', 'rmse', 'd1', 'delta1', 'photometric'))
            self.log(f'epoch {epoch}/{self.epochs} step {step}: {shown}')
        if self.es_metric not in metrics:
            raise ValueError(f'train.early_stopping.metric {self.es_metric!r} is not a '
                             f'validation metric ({", ".join(metrics)})')
        value = metrics[self.es_metric]
        best = self.state['best']
        better = best is None or (value < best - self.es_delta if self.es_mode == 'min'
                                  else value > best + self.es_delta)
        if better:
            self.state['best'] = value
            self.state['bad_epochs'] = 0
            self.save(BEST)
        else:
            self.state['bad_epochs'] += 1
            if self.es_patience and self.state['bad_epochs'] >= self.es_patience:
                self.log(f'early stop: {self.es_metric} did not improve for '
                         f'{self.es_patience} epochs (best {best:.4f})')
                return 'early_stopping'
        return None


def _cpu_rng(state: Mapping[str, Any]) -> Dict[str, Any]:
    out = dict(state)
    out['torch'] = state['torch'].cpu()
    if 'cuda' in state:
        out['cuda'] = [s.cpu() for s in state['cuda']]
    return out
