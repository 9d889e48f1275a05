#!/usr/bin/env python3
"""
Time back-projection + PointCloud2 packing for 640x480 xyz and xyzrgb on one core.

Compares, in the same run, against a straightforward reference (a meshgrid built per
frame and a per-point struct.pack loop) and prints the ratios.
"""

import argparse
import os
import struct
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import cv2  # noqa: E402
from mono_depth_ros.core.geometry import backproject  # noqa: E402
from mono_depth_ros.core.intrinsics import preset  # noqa: E402
from mono_depth_ros.core.pointcloud import depth_to_cloud, pack_cloud  # noqa: E402
import numpy as np  # noqa: E402


def reference(depth, rgb, k):
    """Build a meshgrid per frame and pack each point with struct (the straightforward way)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    z = depth.astype(np.float64)
    x = (u - k.cx) / k.fx * z
    y = (v - k.cy) / k.fy * z
    out = bytearray()
    pack = struct.Struct('<fffI').pack if rgb is not None else struct.Struct('<fff').pack
    for r in range(h):
        for c in range(w):
            if rgb is None:
                out += pack(x[r, c], y[r, c], z[r, c])
            else:
                p = rgb[r, c]
                out += pack(x[r, c], y[r, c], z[r, c],
                            (int(p[0]) << 16) | (int(p[1]) << 8) | int(p[2]))
    return bytes(out)


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.median(times) * 1e3, np.percentile(times, 95) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--reference-repeats', type=int, default=2)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    k = preset('kinect_nyu')
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.05] = np.nan
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    print('640x480, one thread (OMP_NUM_THREADS=1, cv2.setNumThreads(1))')
    print(f'{"layout":8s} {"fused p50 ms":>13s} {"p95 ms":>7s} {"two-step ms":>12s} '
          f'{"reference ms":>13s} {"speed-up":>9s}')
    for name, colour in (('xyz', None), ('xyzrgb', rgb)):
        fused = timed(lambda: depth_to_cloud(depth, k, colour, 0.1, 10.0).data, args.repeats)
        two = timed(lambda: pack_cloud(backproject(depth, k, 0.1, 10.0), colour).data,
                    args.repeats)
        ref = timed(lambda: reference(depth, colour, k), args.reference_repeats)
        assert depth_to_cloud(depth, k, colour, 0.1, 10.0).data == pack_cloud(
            backproject(depth, k, 0.1, 10.0), colour).data
        print(f'{name:8s} {fused[0]:13.2f} {fused[1]:7.2f} {two[0]:12.2f} {ref[0]:13.1f} '
              f'{ref[0] / fused[0]:8.0f}x')
    try:
        import open3d  # noqa: F401
    except ImportError:
        print('open3d: not installed (no wheel for this platform in the pinned set); skipped')


if __name__ == '__main__':
    main()
