#!/usr/bin/env python3
"""
The stacked ensemble's mode grid in miniature, on synthetic rooms at the smoke sizes.

The command line of ``training/ensemble_grid.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.ensemble_grid import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
