#!/usr/bin/env python3
"""
Training throughput of each zoo architecture: images/s for forward + backward + step.

The command line of ``training/bench_train.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.bench_train import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
