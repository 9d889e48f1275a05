#!/usr/bin/env python3
"""
The stacked ensemble's mode grid in miniature, on synthetic rooms at the smoke sizes.

    python scripts/models/ensemble_grid.py [--seeds 1] [--train-size 256] [--base-epochs 4] \
        [--meta-epochs 2] [--inputs d rgb rgb+d] [--bases frozen finetune] \
        [--schedules separate simultaneous] [--output-dir out/ensemble_grid]

For each seed, the two base learners of training/configs/smoke_ensemble.yaml are trained
once, alone; every ``separate`` cell then trains its
meta-learner (with ``finetune``, the bases too) for ``--meta-epochs`` from those
checkpoints, and every ``simultaneous`` cell trains fresh bases and the meta-learner
together for base + meta epochs, so both schedules get the same number of epochs. Every
stage uses the seed's scale-invariant log loss (lambda 0.85, alpha 10), the bases' own
training too, so the schedules differ in nothing else (``--base-loss berhu`` trains the
separate bases with the smoke config's BerHu instead). Every
cell is evaluated on the same held-out synthetic rooms: the ensemble, its bases and their
simple per-pixel average. ``val rise`` is the largest epoch-to-epoch increase of the
validation abs_rel during the cell's training (a measure of instability), ``spread`` the
range of the ensemble's abs_rel over seeds. Writes grid.md and grid.csv (atomically).
"""

from __future__ import annotations

import argparse
import copy
import csv
import itertools
import os
import statistics
import sys
import time
from typing import Dict, List

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'training', 'configs', 'smoke_ensemble.yaml')
SEED_LOSS = {'name': 'silog', 'args': {'lam': 0.85, 'variant': 'bts'}}
COLUMNS = ('inputs', 'bases', 'schedule', 'abs_rel', 'spread', 'rmse', 'd1', 'average_abs_rel',
           'best_base_abs_rel', 'gain_vs_average', 'val_rise', 'diverged', 'seconds')


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, default=1)
    parser.add_argument('--train-size', type=int, default=256)
    parser.add_argument('--val-size', type=int, default=16)
    parser.add_argument('--eval-size', type=int, default=32)
    parser.add_argument('--base-epochs', type=int, default=4)
    parser.add_argument('--meta-epochs', type=int, default=2)
    parser.add_argument('--inputs', nargs='+', default=['d', 'rgb', 'rgb+d'])
    parser.add_argument('--bases', nargs='+', default=['frozen', 'finetune'])
    parser.add_argument('--schedules', nargs='+', default=['separate', 'simultaneous'])
    parser.add_argument('--base-loss', choices=('seed', 'berhu'), default='seed',
                        help='loss of the separately trained bases')
    parser.add_argument('--output-dir', default=os.path.join('out', 'ensemble_grid'))
    return parser.parse_args(argv)


def grid_config(args, seed: int) -> Dict:
    """Return smoke_ensemble.yaml resolved with the grid's sizes."""
    from training.config import load_config
    return load_config(CONFIG, [
        f'seed={seed}', f'data.synthetic.train_size={args.train_size}',
        f'data.synthetic.val_size={args.val_size}', 'train.progress=false',
        'train.tensorboard=false', 'data.num_workers=0'])


def _with_epochs(config: Dict, epochs: int) -> Dict:
    config = copy.deepcopy(config)
    for spec in config['model']['args']['base_models']:
        spec['epochs'] = epochs
    return config


def _val_rise(folder: str) -> float:
    path = os.path.join(folder, 'val_log.csv')
    if not os.path.isfile(path):
        return float('nan')
    with open(path, newline='') as handle:
        values = [float(r['abs_rel']) for r in csv.DictReader(handle)]
    return max([b - a for a, b in zip(values, values[1:])] + [0.0])


def run_cell(config: Dict, bases_ready: Dict, inputs: str, bases: str, schedule: str,
             folder: str, meta_epochs: int, base_epochs: int, eval_set) -> Dict:
    """Train one cell and evaluate it; return its metrics."""
    import torch
    from training.networks import load_model
    from training.ensemble import compare
    from training.run import run_training
    from training.trainer import TrainingDivergedError
    cell = copy.deepcopy(config)
    cell['loss'] = dict(SEED_LOSS)
    margs = cell['model']['args']
    margs.update(inputs=inputs, bases=bases, schedule=schedule)
    if schedule == 'separate':
        margs['base_models'] = copy.deepcopy(bases_ready['model']['args']['base_models'])
        cell['train'] = dict(cell['train'], epochs=meta_epochs)
    else:
        cell['train'] = dict(cell['train'], epochs=base_epochs + meta_epochs)
    start = time.perf_counter()
    try:
        run_training(cell, folder, log=lambda _m: None, resume=False)
    except TrainingDivergedError as exc:
        return {'diverged': 1, 'error': str(exc), 'seconds': time.perf_counter() - start}
    model, meta = load_model(os.path.join(folder, 'last.pt'))
    metrics = compare(model, eval_set, torch.device('cpu'), meta.min_depth, meta.max_depth)
    base_names = [n for n in metrics if n.startswith('base ')]
    return {'abs_rel': metrics['ensemble']['abs_rel'], 'rmse': metrics['ensemble']['rmse'],
            'd1': metrics['ensemble']['d1'],
            'average_abs_rel': metrics['simple average']['abs_rel'],
            'best_base_abs_rel': min(metrics[n]['abs_rel'] for n in base_names),
            'val_rise': _val_rise(folder), 'diverged': 0,
            'seconds': time.perf_counter() - start}


def constant_baseline(eval_set) -> Dict[str, float]:
    """Return the metrics of the eval set's median depth everywhere (the floor to beat)."""
    import numpy as np
    from training.metrics import average_metrics, compute_depth_metrics
    samples = [eval_set[i] for i in range(len(eval_set))]
    depths = [s['depth'][0].numpy() for s in samples]
    value = float(np.median(np.concatenate([d[d > 0] for d in depths])))
    rows = [compute_depth_metrics(np.full_like(d, value), d, min_depth=0.1, max_depth=10.0)
            for d in depths]
    return dict(average_metrics(rows), depth=value)


def summarise(cells: Dict[tuple, List[Dict]]) -> List[Dict]:
    """Average each cell over seeds; spread is the range of abs_rel over seeds."""
    rows = []
    for (inputs, bases, schedule), runs in cells.items():
        ok = [r for r in runs if not r.get('diverged')]
        row = {'inputs': inputs, 'bases': bases, 'schedule': schedule,
               'diverged': sum(int(r.get('diverged', 0)) for r in runs),
               'seconds': sum(r['seconds'] for r in runs)}
        if ok:
            for key in ('abs_rel', 'rmse', 'd1', 'average_abs_rel', 'best_base_abs_rel',
                        'val_rise'):
                row[key] = statistics.mean(r[key] for r in ok)
            values = [r['abs_rel'] for r in ok]
            row['spread'] = max(values) - min(values)
            row['gain_vs_average'] = row['average_abs_rel'] - row['abs_rel']
        rows.append(row)
    return rows


def main(argv=None) -> int:
    """Run the grid and print the table."""
    args = parse_args(argv)
    import torch
    from mono_depth_ros.tools.depth_bench import markdown_table
    from training.datasets import SyntheticDataset
    from training.ensemble import train_bases
    from training.run import run_training
    from training.evaluate import SYNTHETIC_EVAL_SEED
    torch.set_num_threads(max(1, int(os.environ.get('OMP_NUM_THREADS', '1'))))
    os.makedirs(args.output_dir, exist_ok=True)
    cells: Dict[tuple, List[Dict]] = {}
    eval_set = None
    for seed in range(args.seeds):
        config = _with_epochs(grid_config(args, seed), args.base_epochs)
        if args.base_loss == 'seed':
            config['loss'] = copy.deepcopy(SEED_LOSS)
        if eval_set is None:
            eval_set = SyntheticDataset(args.eval_size, scene_seed=SYNTHETIC_EVAL_SEED,
                                        frames_per_room=1, height=config['data']['height'],
                                        width=config['data']['width'])
        seed_dir = os.path.join(args.output_dir, f'seed{seed}')
        print(f'seed {seed}: training the base learners', flush=True)
        ready = train_bases(config, seed_dir, log=lambda _m: None, resume=True,
                            train=run_training)
        for inputs, bases, schedule in itertools.product(args.inputs, args.bases,
                                                         args.schedules):
            name = f'{inputs.replace("+", "_")}_{bases}_{schedule}'
            result = run_cell(config, ready, inputs, bases, schedule,
                              os.path.join(seed_dir, name), args.meta_epochs,
                              args.base_epochs, eval_set)
            cells.setdefault((inputs, bases, schedule), []).append(result)
            shown = 'diverged' if result.get('diverged') else \
                f'abs_rel {result["abs_rel"]:.4f} (average {result["average_abs_rel"]:.4f})'
            print(f'seed {seed} {inputs:6s} {bases:8s} {schedule:12s}: {shown}, '
                  f'{result["seconds"]:.0f} s', flush=True)
    rows = summarise(cells)
    constant = constant_baseline(eval_set)
    text = (f'# Stacked ensemble mode grid (synthetic, {config["data"]["height"]}x'
            f'{config["data"]["width"]}, {args.train_size} training frames, {args.seeds} '
            f'seed(s); bases {args.base_epochs} epochs, meta {args.meta_epochs}; evaluated on '
            f'{args.eval_size} held-out rooms)\n\n' + markdown_table(rows, COLUMNS) + '\n'
            f'\nconstant {constant["depth"]:.2f} m everywhere on the same rooms: abs_rel '
            f'{constant["abs_rel"]:.4f}, rmse {constant["rmse"]:.4f}, d1 {constant["d1"]:.4f}\n')
    print(text)
    from mono_depth_ros.tools.depth_bench import csv_text
    atomic_write_text(os.path.join(args.output_dir, 'grid.md'), text)
    atomic_write_text(os.path.join(args.output_dir, 'grid.csv'), csv_text(rows, COLUMNS))
    return 0


if __name__ == '__main__':
    sys.exit(main())
