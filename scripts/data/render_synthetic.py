#!/usr/bin/env python3
"""
Render synthetic RGB-D frames once into a folder dataset, so that several runs share them.

The command line of ``training/synthetic_render.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.synthetic_render import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
