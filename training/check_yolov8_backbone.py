#!/usr/bin/env python3
"""
Check YOLOv8 backbone weights saved from ultralytics against the zoo's encoder.

    python training/check_yolov8_backbone.py yolov8n_backbone.pt [--scale n]

prints what maps onto :class:`training.networks.yolov8.YOLOv8Encoder` and what does not
(see ``training/yolov8_import.py`` for how to save the file). Exit status 1 when the file
cannot be used.
"""

import argparse
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from training.networks.yolov8 import YOLOv8Encoder  # noqa: E402
from training.yolov8_import import load_yolov8_backbone, YOLOv8ImportError  # noqa: E402


def main(argv=None) -> int:
    """Check a file against the encoder and print the report."""
    parser = argparse.ArgumentParser(description='Check YOLOv8 backbone weights saved from '
                                     'ultralytics against the zoo encoder.')
    parser.add_argument('weights', help="torch.save(YOLO('yolov8n.pt').model.state_dict())")
    parser.add_argument('--scale', default='n', choices=('n', 's'))
    args = parser.parse_args(argv)
    try:
        report = load_yolov8_backbone(YOLOv8Encoder(args.scale), args.weights, log=print)
    except YOLOv8ImportError as exc:
        print(f'check_yolov8_backbone: error: {exc}', file=sys.stderr)
        return 1
    print(f'{len(report["loaded"])} tensors loaded, {len(report["unmapped"])} not mapped')
    return 0


if __name__ == '__main__':
    sys.exit(main())
