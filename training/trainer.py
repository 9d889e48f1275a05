"""
The training loop, and the pieces it is built from.

``Trainer`` knows nothing about depth supervision: it runs a :class:`Task`, whose
``compute_loss(model, batch) -> (loss, logs)`` and ``predict(model, batch) -> depth``
define the learning problem. ``training.run.TASKS`` maps the config's ``task`` to a builder:
``supervised`` (:class:`SupervisedDepthTask`), ``selfsup`` (Monodepth2 from video,
:mod:`training.selfsup`) and ``ensemble``; a new task is one entry there, a new loss one in
``training.losses.LOSSES``, a dataset one in ``training.datasets.DATASETS`` and an encoder
one in ``training.networks.ARCHITECTURES``. A task may train modules of its own besides the
depth network (the pose network): they join the optimizer and the checkpoint
(``task_modules``), while ``model`` in the checkpoint stays the depth network alone.

What the loop does: AMP on CUDA (bf16 autocast where supported, else fp16 with a
GradScaler); AdamW + OneCycleLR or Adam + StepLR; gradient clipping; a non-finite loss
stops the run with :class:`TrainingDivergedError` naming the step; early stopping on a
validation metric; tqdm bars only on a terminal outside CI; TensorBoard and CSV logs;
seeded, resumable runs (``last.pt`` holds model, optimizer, scheduler, scaler, epoch,
position within the epoch, RNG and early-stopping state; the sampler and augmentations
are functions of (seed, epoch, index), so a resumed run continues the same sequence);
DistributedDataParallel under ``torchrun`` (gloo on CPU, nccl on CUDA; rank 0 logs and
writes checkpoints). ``training.run.run_training(config, output_dir)`` wires it all from
a config; it and the tasks registry sit above this module and the tasks, which import it.
"""

from __future__ import annotations

import csv
import math
import os
import random
import sys
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler
from training import checkpoint as ckpt_io
from training.datasets.augment import normalize, PhotometricAugment

LAST = 'last.pt'
BEST = 'best.pt'


class TrainingDivergedError(RuntimeError):
    """The loss (or the gradient norm) became NaN or infinite."""


# -- tasks ------------------------------------------------------------------------------------
class Task:
    """What is learnt: the trainer calls these and nothing else of the problem."""

    #: validation and evaluation rescale predictions by the median ratio (relative models)
    median_scaling = False
    #: neighbouring frames each sample must carry (sequence datasets)
    frame_offsets: Tuple[int, ...] = ()
    #: whether each sample must carry its stereo partner
    stereo_pairs = False
    #: batch keys holding images that get the same photometric jitter as ``image``
    image_keys: Tuple[str, ...] = ('image',)
    #: validation also reports the task's ``photometric`` loss term (its val set then
    #: carries ``frame_offsets`` too): a score for data without ground-truth depth
    validation_loss = False

    def modules(self) -> Dict[str, torch.nn.Module]:
        """Return the task's own trainable modules by name (none by default)."""
        return {}

    def attach(self, modules: Mapping[str, torch.nn.Module]) -> None:
        """Receive the modules of :meth:`modules` as the trainer placed them (device, DDP)."""

    def describe(self, meta):
        """Return the ModelMeta of a model trained by this task (unchanged by default)."""
        return meta

    def compute_loss(self, model: torch.nn.Module,
                     batch: Mapping[str, Any]) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Return (scalar loss, dict of floats to log)."""
        raise NotImplementedError

    def predict(self, model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
        """Return metric depth (N, 1, H, W) for the batch."""
        raise NotImplementedError


class SupervisedDepthTask(Task):
    """Dense supervision: a loss between predicted and ground-truth metric depth."""

    def __init__(self, loss: Callable, min_depth: float, max_depth: float,
                 mean=None, std=None):
        from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD
        self.loss = loss
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.mean = tuple(mean or IMAGENET_MEAN)
        self.std = tuple(std or IMAGENET_STD)

    def inputs(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Return the ImageNet-normalised network input."""
        return normalize(batch['image'], self.mean, self.std)

    def compute_loss(self, model, batch):
        """Average the loss over the network's scales, each upsampled to the target size."""
        net = ckpt_io.unwrap(model)
        x = self.inputs(batch)
        if model is not net:
            # DDP synchronises gradients through forward() only, so wrapped models train on
            # their single-scale output.
            outputs = [model(x)]
        else:
            outputs = net.forward_multiscale(x) if hasattr(net, 'forward_multiscale') \
                else [model(x)]
        target, mask = batch['depth'], batch['mask'] & (batch['depth'] >= self.min_depth) & \
            (batch['depth'] <= self.max_depth)
        total = 0.0
        logs = {}
        for i, raw in enumerate(outputs):
            if raw.shape[-2:] != target.shape[-2:]:
                raw = F.interpolate(raw, size=target.shape[-2:], mode='bilinear',
                                    align_corners=False)
            depth = net.to_depth(raw.float(), self.min_depth, self.max_depth)
            value = self.loss(depth, target, mask)
            logs[f'loss_s{i}'] = float(value.detach())
            total = total + value
        total = total / len(outputs)
        return total, logs

    @torch.no_grad()
    def predict(self, model, batch):
        """Return depth clamped to [min_depth, max_depth]."""
        net = ckpt_io.unwrap(model)
        raw = net(self.inputs(batch))
        return net.to_depth(raw.float(), self.min_depth, self.max_depth).clamp(
            self.min_depth, self.max_depth)


# -- distributed and seeding ------------------------------------------------------------------
class DistInfo:
    """Rank and world size from the torchrun environment (1 process when absent)."""

    def __init__(self):
        self.world = int(os.environ.get('WORLD_SIZE', '1'))
        self.rank = int(os.environ.get('RANK', '0'))
        self.local_rank = int(os.environ.get('LOCAL_RANK', '0'))

    @property
    def enabled(self) -> bool:
        """Return True under torchrun with more than one process."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """Return True on the process that logs and writes files."""
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    info = DistInfo()
    if info.enabled and not dist.is_initialized():
        dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    return info


def resolve_device(name: str) -> torch.device:
    """Return the torch device for 'auto', 'cpu', 'cuda' or 'cuda:N' (LOCAL_RANK under DDP)."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError('device cuda requested but CUDA is not available')
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """Seed a loader worker's python and numpy from its torch seed."""
    seed = torch.initial_seed() % (2 ** 32)
    np.random.seed(seed)
    random.seed(seed)


class EpochSampler(Sampler):
    """
    A permutation that is a function of (seed, epoch), sharded over ranks, resumable.

    ``start`` skips the first samples of this rank's share, so a run resumed mid-epoch
    sees exactly the batches the interrupted run had not reached.
    """

    def __init__(self, size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 start: int = 0, shuffle: bool = True):
        self.size, self.seed, self.epoch = size, seed, epoch
        self.rank, self.world, self.start, self.shuffle = rank, world, start, shuffle
        self.per_rank = math.ceil(size / world)

    def _indices(self) -> List[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        order += order[:self.per_rank * self.world - self.size]  # equal shares, as DDP needs
        return order[self.rank::self.world][self.start:]

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices from ``start`` on."""
        return iter(self._indices())

    def __len__(self) -> int:
        """Return the number of indices yielded."""
        return max(0, self.per_rank - self.start)


# -- logs -------------------------------------------------------------------------------------
class CSVLog:
    """Append rows to a CSV file; the header is fixed by the first row written."""

    def __init__(self, path: str):
        self.path = path
        self.fields: Optional[List[str]] = None
        if os.path.isfile(path):
            with open(path, 'r', encoding='utf-8', newline='') as handle:
                header = handle.readline().strip()
            self.fields = header.split(',') if header else None

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (keys not in the header are dropped)."""
        new = self.fields is None
        if new:
            self.fields = list(row)
        with open(self.path, 'a', encoding='utf-8', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction='ignore')
            if new:
                writer.writeheader()
            writer.writerow(row)


def progress_enabled(setting) -> bool:
    """Return whether to draw tqdm bars: 'auto' means on a terminal and not in CI."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ('true', 'false'):
        return str(setting).lower() == 'true'
    return sys.stderr.isatty() and not os.environ.get('CI')


def average_metrics(rows: List[Optional[Mapping[str, float]]]) -> Dict[str, float]:
    """Average per-image metric dicts, leaving out images without valid ground truth."""
    from training import metrics
    rows = [r for r in rows if r is not None]
    return metrics.average_metrics(rows) if rows else {}


def evaluate_batches(task: Task, model, loader, device, min_depth: float, max_depth: float,
                     crop=None, median_scaling: bool = False):
    """Yield (batch, prediction, per-image metric dicts) over a loader, model in eval mode."""
    from training.metrics import compute_depth_metrics, NoValidPixelsError
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = to_device(batch, device)
            pred = task.predict(model, batch).float().cpu().numpy()
            gt = batch['depth'].cpu().numpy()
            rows = []
            for i in range(pred.shape[0]):
                try:
                    rows.append(compute_depth_metrics(
                        pred[i, 0], gt[i, 0], min_depth=min_depth, max_depth=max_depth,
                        crop=crop, median_scaling=median_scaling))
                except NoValidPixelsError:
                    rows.append(None)  # no ground truth in range: the image cannot count
            yield batch, pred, rows
    finally:
        model.train(was_training)


def to_device(batch: Mapping[str, Any], device) -> Dict[str, Any]:
    """Move the tensors of a batch to device (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


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


# -- wiring from a config ---------------------------------------------------------------------
def resolve_init(config: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Return config with model.init_checkpoint and an empty model.arch resolved.

    ``init_checkpoint: bundled`` is the node's bundled default model; with ``arch: ''`` the
    architecture and its arguments come from the init model (a checkpoint's or an ONNX
    export's metadata), ``model.args`` overriding single arguments (``freeze_encoder``).
    """
    import copy
    config = copy.deepcopy(dict(config))
    mcfg = config['model']
    init = mcfg['init_checkpoint']
    if init == 'bundled':
        from mono_depth_ros.core.paths import package_file
        from mono_depth_ros.ros.depth_node import BUNDLED_MODEL
        init = mcfg['init_checkpoint'] = package_file('models', BUNDLED_MODEL)
    bag = config['data']['rosbag']
    fit_from_init = config['data']['dataset'] == 'rosbag' and bag['resize_mode'] == 'init'
    if not mcfg['arch'] or fit_from_init:
        if not init:
            raise ValueError("model.arch '' or data.rosbag.resize_mode init means the init "
                             "model's, but model.init_checkpoint is empty")
        if init.lower().endswith('.onnx'):
            from training.onnx_init import read_meta
            meta = read_meta(init)
        else:
            from mono_depth_ros.core.model_meta import ModelMeta
            meta = ModelMeta.from_dict(ckpt_io.load_checkpoint(init)['meta'])
    if not mcfg['arch']:
        from training.networks import rebuild_args
        mcfg['arch'] = meta.arch
        mcfg['args'] = {**rebuild_args(dict(meta.arch_args)), **dict(mcfg['args'] or {})}
    if fit_from_init:
        if meta.resize_mode not in ('stretch', 'crop'):
            raise ValueError(f'the init model fits images by {meta.resize_mode}, which '
                             'training cannot; set data.rosbag.resize_mode stretch or crop')
        bag.update(resize_mode=meta.resize_mode, fit_aspect=float(meta.fit_aspect),
                   crop_fraction=float(meta.crop_fraction))
    return config


def build_model_from_config(config: Mapping[str, Any]) -> torch.nn.Module:
    """Build the configured network; warm-start it from model.init_checkpoint if set."""
    from training.networks import build_model
    mcfg = config['model']
    model = build_model(mcfg['arch'], **dict(mcfg['args'] or {}))
    init = mcfg['init_checkpoint']
    if init and init.lower().endswith('.onnx'):
        from training.onnx_init import load_onnx_weights, read_meta
        meta = read_meta(init)
        if meta.arch != mcfg['arch']:
            raise ValueError(f'model.init_checkpoint {init} is a {meta.arch}, not the '
                             f'configured {mcfg["arch"]}')
        load_onnx_weights(model, init, meta.input_height, meta.input_width)
    elif init:
        ck = ckpt_io.load_checkpoint(init)
        model.load_state_dict(ck['model'])
    trainable = tuple(mcfg['trainable'] or ())
    if trainable:
        names = [name for name, _p in model.named_parameters()]
        unknown = [t for t in trainable if not any(n.startswith(t) for n in names)]
        if unknown:
            raise ValueError(f'model.trainable names no parameter of {mcfg["arch"]}: '
                             f'{", ".join(unknown)}')
        for name, param in model.named_parameters():
            param.requires_grad_(name.startswith(trainable))
    return model
