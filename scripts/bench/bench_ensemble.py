#!/usr/bin/env python3
"""
Latency of an exported stacked ensemble against its own bases, in one run.

The command line of ``training/bench_ensemble.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.bench_ensemble import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
