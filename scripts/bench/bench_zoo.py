#!/usr/bin/env python3
"""
Benchmark every zoo architecture with depth_bench: torch (TorchScript) and ONNX backends.

The command line of ``training/bench_zoo.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.bench_zoo import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
