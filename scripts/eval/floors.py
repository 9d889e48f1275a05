#!/usr/bin/env python3
"""
The two floors a depth model must beat on real pictures, computed reproducibly.

The command line of ``training/floors.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.floors import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
