#!/usr/bin/env python3
"""
Make an int8 copy of an exported depth ONNX with ONNX Runtime static quantization.

The command line of ``training/quantize_int8.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.quantize_int8 import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
