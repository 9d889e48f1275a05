#!/usr/bin/env python3
"""
Lay the shared real RGB-D samples out as folder datasets, split by scene, without copying.

The command line of ``training/real_split.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.real_split import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
