#!/usr/bin/env python3
"""
What hostile and damaged JPEGs cost depth_node's decoder, and how many damaged ones get through.

    python scripts/bench/bench_hostile_jpeg.py [--data ../shared/data] [--scans 1000 30000]
        [--files 40] [--seeds 10]

Scan bombs: a valid progressive 4096x2160 JPEG that repeats a full-band AC scan (each repeat
46 bytes of EOB runs) is decoded by libjpeg-turbo in strict mode with no scan limit, then
given to the decoder as the node calls it (``max_jpeg_scans`` 100); both are timed in CPU
seconds of this thread. The largest bomb the limit lets through (100 scans) is timed too.

Damaged JPEGs: every real sample JPEG (the first ``--files``) gets 64 random bytes near its
middle (``--seeds`` seeds each, as test/hostile_images.randomised_jpeg); the figure is how
many still decode without a libjpeg warning, so that the node would publish them. The
issue's protocol (5 Redwood frames, 20 seeds) is printed on its own.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'test'))

import hostile_images as hostile  # noqa: E402
from mono_depth_ros.core import image_codec as ic  # noqa: E402


def cpu(fn) -> float:
    """Return the thread CPU seconds of fn()."""
    start = time.thread_time()
    fn()
    return time.thread_time() - start


def scan_bombs(counts) -> None:
    """Print the decode cost of scan bombs without a limit and with the node's."""
    for scans in list(counts) + [ic.DEFAULT_MAX_JPEG_SCANS - 6]:
        bomb = hostile.jpeg_scan_bomb(4096, 2160, scans)
        total = ic.jpeg_scan_count(bomb)
        unlimited = cpu(lambda: ic.decode_compressed('jpeg', bomb, max_scans=None))

        def limited():
            try:
                ic.decode_compressed('jpeg', bomb)
            except ic.TooManyScansError:
                pass
        print(f'scan bomb 4096x2160, {total} scans, {len(bomb) / 1e3:.0f} KB: no limit '
              f'{unlimited:.3f} s CPU; max_jpeg_scans {ic.DEFAULT_MAX_JPEG_SCANS}: '
              f'{cpu(limited) * 1e3:.2f} ms CPU '
              f'({"refused" if total > ic.DEFAULT_MAX_JPEG_SCANS else "decoded"})')


def published(data: bytes, seed: int) -> bool:
    """Return True when a damaged copy decodes without a libjpeg warning."""
    try:
        ic.decode_compressed('jpeg', hostile.randomised_jpeg(data, seed=seed))
        return True
    except ic.ImageDecodeError:
        return False


def damaged(root: str, files: int, seeds: int) -> None:
    """Print how many JPEGs with 64 random middle bytes would be published."""
    paths = sorted(glob.glob(os.path.join(root, '**', '*.jpg'), recursive=True))
    if not paths:
        print(f'no JPEGs under {root}')
        return
    chosen = paths[:files]
    count = sum(published(open(p, 'rb').read(), s) for p in chosen for s in range(seeds))
    print(f'damaged JPEGs published: {count} of {len(chosen) * seeds} ({len(chosen)} real '
          f'JPEGs x {seeds} seeds)')
    redwood = sorted(glob.glob(os.path.join(root, 'redwood', 'color', '*.jpg')))[:5]
    if redwood:
        frames = [open(p, 'rb').read() for p in redwood]
        count = sum(published(frames[s % len(frames)], s) for s in range(20))
        print(f'issue protocol (Redwood frames, seeds 0-19): {count} of 20 published')


def main(argv=None) -> int:
    """Parse the command line and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--data', default=os.path.join(ROOT, '..', 'shared',
                                                       'data'))
    parser.add_argument('--scans', type=int, nargs='*', default=[1000, 30000])
    parser.add_argument('--files', type=int, default=40)
    parser.add_argument('--seeds', type=int, default=10)
    args = parser.parse_args(argv)
    scan_bombs(args.scans)
    damaged(args.data, args.files, args.seeds)
    return 0


if __name__ == '__main__':
    sys.exit(main())
