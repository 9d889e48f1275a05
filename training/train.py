#!/usr/bin/env python3
"""
Train a depth network from a config.

    python training/train.py --config training/configs/smoke.yaml [--set key=value ...]
        [--output-dir DIR] [--no-resume]

Writes the resolved config, the git revision, CSV + TensorBoard logs, ``last.pt`` and
``best.pt`` into DIR (default: the config's output_dir). Rerunning with the same DIR
resumes from ``last.pt``. Multi-GPU: ``torchrun --nproc_per_node N training/train.py ...``.
"""

import argparse
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.checkpoint import CheckpointError  # noqa: E402
from training.cli import fail  # noqa: E402
from training.config import ConfigError, load_config  # noqa: E402
from training.datasets.base import DatasetError  # noqa: E402
from training.run import run_training  # noqa: E402
from training.trainer import TrainingDivergedError  # noqa: E402


def main(argv=None) -> int:
    """Parse the command line and train; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--config', default=None, help='experiment YAML (over defaults.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key (YAML-typed value)')
    parser.add_argument('--output-dir', default=None, help='run folder (default: output_dir)')
    parser.add_argument('--no-resume', action='store_true', help='ignore an existing last.pt')
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    try:
        run_training(config, args.output_dir, resume=not args.no_resume)
    except TrainingDivergedError as exc:
        print(f'error: training diverged: {exc}', file=sys.stderr)
        return 3
    except (CheckpointError, DatasetError, OSError) as exc:
        # A refused last.pt (pickled code), a corrupt or oversized dataset file, an
        # unwritable run folder: one line, not the traceback of the loader or the worker.
        return fail('train', exc)
    return 0


if __name__ == '__main__':
    sys.exit(main())
