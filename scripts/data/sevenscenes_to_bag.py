#!/usr/bin/env python3
"""
Turn a 7-Scenes-style folder of frames with poses into a rosbag2 (MCAP) as a robot records it.

The command line of ``training/rosbag_export.py`` (``--help`` lists the options).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

from training.rosbag_export import main  # noqa: E402


if __name__ == '__main__':
    sys.exit(main())
