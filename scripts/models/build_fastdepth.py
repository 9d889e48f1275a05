#!/usr/bin/env python3
"""
Build the bundled ``models/fastdepth_nyu.onnx`` from FastDepth's int8 TFLite, reproducibly.

The command line of ``training/fastdepth_build.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.fastdepth_build import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
