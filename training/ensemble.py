"""
Training and comparing a stacked ensemble (``task: ensemble``, ``model.arch: stacked_ensemble``).

The network is :class:`training.networks.ensemble.StackedEnsemble`; its ``model.args``
name the base learners, ``inputs`` (d | rgb | rgb+d), ``bases`` (frozen | finetune) and
``schedule``:

- ``separate``: first every base without a ``checkpoint`` is trained alone, as an ordinary
  supervised run of its own architecture into ``OUTPUT/base_<i>_<arch>/`` (``epochs`` per
  base, else ``train.epochs``), then the meta-learner (and with ``finetune`` the bases) is
  trained on the ensemble's loss, the bases starting from those checkpoints.
- ``simultaneous``: one run from fresh bases; the loss is the ensemble's plus each base's
  own, so the bases learn while the meta-learner learns to weight them. With ``frozen`` the
  ensemble's loss does not reach the bases (their outputs enter it detached).

The loss is ``loss`` of the config: the seed's scale-invariant log loss is
``{name: silog, args: {lam: 0.85, variant: bts}}`` (10 * sqrt(mean d^2 - 0.85 mean(d)^2),
alpha = 10), or any supervised loss. The saved ensemble checkpoint holds every weight; its
``arch_args`` keep the bases' architectures but not the paths of their checkpoints, so it
rebuilds anywhere.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

import torch
from training import checkpoint as ckpt_io
from training.losses import build_loss
from training.tasks import SupervisedDepthTask
from training.validation import average_metrics, evaluate_batches

ARCH = 'stacked_ensemble'


class EnsembleTask(SupervisedDepthTask):
    """The ensemble's loss on its depth, plus each base's own loss when simultaneous."""

    def compute_loss(self, model, batch):
        """Return (loss, logs) for one batch."""
        net = ckpt_io.unwrap(model)
        x = self.inputs(batch)
        target = batch['depth']
        mask = batch['mask'] & (target >= self.min_depth) & (target <= self.max_depth)
        if model is not net:
            # DDP synchronises gradients through forward() only.
            loss = self.loss(model(x), target, mask)
            return loss, {'loss_ensemble': float(loss.detach())}
        parts = net.forward_parts(x)
        loss = self.loss(parts['depth'], target, mask)
        logs = {'loss_ensemble': float(loss.detach())}
        if net.schedule == 'simultaneous':
            for i in range(parts['unclamped'].shape[1]):
                term = self.loss(parts['unclamped'][:, i:i + 1], target, mask)
                logs[f'loss_base{i}'] = float(term.detach())
                loss = loss + term
        return loss, logs

    def describe(self, meta):
        """Drop the bases' checkpoint paths: the ensemble checkpoint has their weights."""
        args = copy.deepcopy(dict(meta.arch_args))
        for spec in args.get('base_models') or ():
            if isinstance(spec, dict):
                spec['checkpoint'] = ''
                spec['args'] = {k: v for k, v in dict(spec.get('args') or {}).items()
                                if k != 'pretrained'}
        return dataclasses.replace(meta, arch_args=args)


def build_ensemble_task(config: Mapping[str, Any]) -> EnsembleTask:
    """Return the task for a resolved config (``model.arch`` must be the ensemble)."""
    mcfg = config['model']
    if mcfg['arch'] != ARCH:
        raise ValueError(f"task ensemble needs model.arch {ARCH}, got {mcfg['arch']!r}")
    return EnsembleTask(build_loss(config['loss']), mcfg['min_depth'], mcfg['max_depth'])


def base_config(config: Mapping[str, Any], spec: Mapping[str, Any], index: int) -> Dict:
    """Return the config that trains one base learner alone (a supervised zoo run)."""
    out = copy.deepcopy(dict(config))
    out['task'] = 'supervised'
    out['seed'] = int(config['seed']) + index
    out['model'] = dict(out['model'], arch=spec['arch'], args=dict(spec.get('args') or {}),
                        init_checkpoint='')
    if spec.get('min_depth'):
        out['model']['min_depth'] = float(spec['min_depth'])
    if spec.get('max_depth'):
        out['model']['max_depth'] = float(spec['max_depth'])
    if int(spec.get('epochs') or 0) > 0:
        out['train'] = dict(out['train'], epochs=int(spec['epochs']))
    if spec.get('loss'):
        out['loss'] = {'name': spec['loss']['name'], 'args': dict(spec['loss'].get('args') or {})}
    return out


def train_bases(config: Mapping[str, Any], output_dir: str,
                log: Callable[[str], None] = print, resume: bool = True, *,
                train: Callable[..., Any]) -> Dict[str, Any]:
    """
    Stage 1 of the separate schedule: train each base that has no checkpoint yet.

    ``train(config, output_dir, log=, resume=)`` runs one training
    (``training.run.run_training``, which calls this: passed in, not imported). Returns the
    config with every base's ``checkpoint``, ``min_depth`` and ``max_depth`` filled in (the
    simultaneous schedule only gets the depth ranges).
    """
    config = copy.deepcopy(dict(config))
    mcfg = config['model']
    args = dict(mcfg.get('args') or {})
    specs = [dict(s) for s in args.get('base_models') or ()]
    for i, spec in enumerate(specs):
        spec.setdefault('min_depth', mcfg['min_depth'])
        spec.setdefault('max_depth', mcfg['max_depth'])
        if spec.get('checkpoint') or args.get('schedule', 'separate') != 'separate':
            continue
        folder = os.path.join(output_dir, f'base_{i}_{spec["arch"]}')
        log(f'ensemble stage 1: base {i} ({spec["arch"]}) into {folder}')
        train(base_config(config, spec, i), folder, log=log, resume=resume)
        best = os.path.join(folder, 'best.pt')
        spec['checkpoint'] = best if os.path.isfile(best) else os.path.join(folder, 'last.pt')
    args['base_models'] = specs
    mcfg['args'] = args
    return config


# -- comparison -------------------------------------------------------------------------------
def compare(model, dataset, device, min_depth: float, max_depth: float,
            batch_size: int = 8) -> Dict[str, Dict[str, float]]:
    """Return {variant: averaged metrics} for each base, the simple average and the ensemble."""
    from torch.utils.data import DataLoader
    task = SupervisedDepthTask(lambda *a: None, min_depth, max_depth)
    out = {}
    for name, variant in model.variants().items():
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
        rows: List[Optional[Mapping[str, float]]] = []
        for _batch, _pred, metrics in evaluate_batches(task, variant, loader, device,
                                                       min_depth, max_depth):
            rows.extend(metrics)
        out[name] = average_metrics(rows)
    return out


def costs(model, height: int, width: int, repeats: int = 5) -> Dict[str, Dict[str, float]]:
    """Return {variant: {'params': count, 'torch_ms': median CPU ms per frame}}."""
    from training.networks.ensemble import count_parameters
    x = torch.randn(1, 3, height, width)
    out = {}
    for name, variant in model.variants().items():
        variant.eval()
        times = []
        with torch.inference_mode():
            variant(x)
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                variant(x)
                times.append(1000.0 * (time.perf_counter() - start))
        params = count_parameters(variant)
        if name == 'ensemble':
            meta_params = count_parameters(model.decoder)
        else:
            meta_params = 0
        out[name] = {'params': params, 'meta_params': meta_params,
                     'torch_ms': statistics.median(times)}
    return out


def format_comparison(metrics: Mapping[str, Mapping[str, float]],
                      cost: Optional[Mapping[str, Mapping[str, float]]] = None) -> str:
    """Return a Markdown table: one row per variant, metrics then parameters and latency."""
    names = ('abs_rel', 'rmse', 'log10', 'd1')
    head = '| | ' + ' | '.join(names) + (' | params | torch CPU ms |' if cost else ' |')
    lines = [head, '|---' * (len(names) + 1 + (2 if cost else 0)) + '|']
    for variant, row in metrics.items():
        cells = [f'{row[k]:.4f}' if k in row else '' for k in names]
        if cost:
            c = cost.get(variant, {})
            cells += [f'{c.get("params", 0) / 1e6:.3f} M', f'{c.get("torch_ms", 0):.2f}']
        lines.append(f'| {variant} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
