#!/usr/bin/env python3
"""
Time back-projection + PointCloud2 packing for 640x480 xyz and xyzrgb on one core.

On a real Redwood RGB-D frame (``--data``, default ``../shared/data/redwood``; a random depth
map when it is absent), in the same run:

* this package: depth (float32 metres) to ready-to-publish PointCloud2 bytes, organized;
* Open3D, when installed (``pip install -r requirements/bench.txt``): the same depth and
  colour to an ``open3d.geometry.PointCloud`` with ``create_from_depth_image`` (xyz) and
  ``RGBDImage.create_from_color_and_depth`` + ``create_from_rgbd_image`` (xyzrgb). Open3D's
  result is an unorganized list of valid points, not message bytes, so its figure leaves out
  the packing that ours includes. Both clouds are compared point by point;
* a straightforward reference (a meshgrid per frame and a per-point ``struct.pack`` loop).

Prints each time and the ratios.
"""

import argparse
import os
import struct
import sys
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

import cv2  # noqa: E402
from mono_depth_ros.core.geometry import backproject  # noqa: E402
from mono_depth_ros.core.intrinsics import Intrinsics  # noqa: E402
from mono_depth_ros.core.pointcloud import depth_to_cloud, pack_cloud, unpack_cloud  # noqa: E402
import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_DATA = os.path.join(os.environ.get('MONO_DEPTH_SHARED_DATA',
                                           os.path.join(ROOT, '..', 'shared', 'data')),
                            'redwood')
# Redwood's PrimeSense intrinsics (camera_primesense.json).
REDWOOD = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
MIN_DEPTH, MAX_DEPTH = 0.1, 10.0


def load_frame(folder):
    """Return (depth float32 m with NaN invalid, rgb uint8, intrinsics, description)."""
    color = os.path.join(folder, 'color', '00000.jpg')
    depth = os.path.join(folder, 'depth', '00000.png')
    if os.path.isfile(color) and os.path.isfile(depth):
        mm = cv2.imread(depth, cv2.IMREAD_UNCHANGED)
        rgb = cv2.cvtColor(cv2.imread(color, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        metres = mm.astype(np.float32) * 0.001
        metres[mm == 0] = np.nan
        return metres, rgb, REDWOOD, f'Redwood frame 00000 ({folder})'
    rng = np.random.default_rng(0)
    metres = rng.uniform(0.5, 9.0, (480, 640)).astype(np.float32)
    metres[rng.random(metres.shape) < 0.05] = np.nan
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return metres, rgb, REDWOOD, f'random depth (no Redwood frame at {folder})'


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


def timed(fns, repeats):
    """Time callables round-robin (load changes hit all alike); (median, p95, min) in ms."""
    for fn in fns:
        fn()  # warm-up (buffers, ray caches)
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [(float(np.median(t) * 1e3), float(np.percentile(t, 95) * 1e3),
             float(np.min(t) * 1e3)) for t in times]


def open3d_runners(depth, rgb, k):
    """Return {layout: callable} building the Open3D cloud from the same arrays, or None."""
    try:
        import open3d as o3d
    except ImportError:
        return None, None
    intr = o3d.camera.PinholeCameraIntrinsic(k.width, k.height, k.fx, k.fy, k.cx, k.cy)
    # Open3D skips depth <= 0 and > depth_trunc; give it 0 where ours has NaN or is out of range.
    with np.errstate(invalid='ignore'):
        d = np.where((depth >= MIN_DEPTH) & (depth <= MAX_DEPTH), depth, 0).astype(np.float32)
    colour = np.ascontiguousarray(rgb)
    geometry = o3d.geometry

    def xyz():
        return geometry.PointCloud.create_from_depth_image(
            geometry.Image(d), intr, depth_scale=1.0, depth_trunc=MAX_DEPTH)

    def xyzrgb():
        rgbd = geometry.RGBDImage.create_from_color_and_depth(
            geometry.Image(colour), geometry.Image(d), depth_scale=1.0, depth_trunc=MAX_DEPTH,
            convert_rgb_to_intensity=False)
        return geometry.PointCloud.create_from_rgbd_image(rgbd, intr)

    return {'xyz': xyz, 'xyzrgb': xyzrgb}, o3d.__version__


def agreement(ours, theirs, with_colour):
    """Return (max |xyz difference| in m, max |rgb difference|) between the two clouds."""
    xyz, rgb = unpack_cloud(ours)
    valid = np.isfinite(xyz).all(-1)
    mine = xyz[valid]  # row-major order of the valid pixels, as Open3D lists them
    points = np.asarray(theirs.points)
    if len(points) != len(mine):
        return float('inf'), float('inf')
    dxyz = float(np.abs(points - mine).max())
    if not with_colour:
        return dxyz, 0.0
    colours = np.rint(np.asarray(theirs.colors) * 255.0)
    return dxyz, float(np.abs(colours - rgb[valid]).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--data', default=DEFAULT_DATA, help='a Redwood folder')
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--reference-repeats', type=int, default=2,
                        help='runs of the per-point reference (slow); 0 = skip it')
    args = parser.parse_args()
    cv2.setNumThreads(1)
    depth, rgb, k, what = load_frame(args.data)
    o3d_runs, o3d_version = open3d_runners(depth, rgb, k)
    print(f'640x480 {what}, one thread (OMP_NUM_THREADS={os.environ["OMP_NUM_THREADS"]}, '
          'cv2.setNumThreads(1)); median of '
          f'{args.repeats} runs, ms')
    if o3d_runs is None:
        print('open3d: not installed (pip install -r requirements/bench.txt, which needs the '
              'system libusb-1.0-0); its columns are skipped')
    else:
        print(f'open3d {o3d_version}: create_from_depth_image (xyz), RGBDImage + '
              'create_from_rgbd_image (xyzrgb), from the same float32 depth; its result is '
              'a list of valid points, ours organized PointCloud2 bytes')
    print('(p50 and min of each; on a loaded machine the min is the uncontended figure)')
    print(f'{"layout":8s} {"ours p50":>9s} {"min":>6s} {"two-step":>9s} {"open3d":>7s} '
          f'{"min":>6s} {"o3d/ours":>9s} {"(min)":>6s} {"max |dxyz| m":>13s} '
          f'{"reference":>10s} {"ref/ours":>9s}')
    for name, colour in (('xyz', None), ('xyzrgb', rgb)):
        runs = [lambda: depth_to_cloud(depth, k, colour, MIN_DEPTH, MAX_DEPTH).data,
                lambda: pack_cloud(backproject(depth, k, MIN_DEPTH, MAX_DEPTH), colour).data]
        if o3d_runs is not None:
            runs.append(o3d_runs[name])
        results = timed(runs, args.repeats)
        ours, two = results[0], results[1]
        cloud = depth_to_cloud(depth, k, colour, MIN_DEPTH, MAX_DEPTH)
        assert cloud.data == pack_cloud(backproject(depth, k, MIN_DEPTH, MAX_DEPTH),
                                        colour).data
        o3d_text = f'{"-":>7s} {"-":>6s} {"-":>9s} {"-":>6s} {"-":>13s}'
        if o3d_runs is not None:
            theirs = results[2]
            dxyz, drgb = agreement(cloud, o3d_runs[name](), colour is not None)
            o3d_text = (f'{theirs[0]:7.2f} {theirs[2]:6.2f} {theirs[0] / ours[0]:8.1f}x '
                        f'{theirs[2] / ours[2]:5.1f}x {dxyz:13.1e}')
            if colour is not None and drgb > 1:
                o3d_text += f' (colours differ by {drgb:g})'
        ref_text = f'{"-":>10s} {"-":>9s}'
        if args.reference_repeats > 0:
            ref = timed([lambda: reference(depth, colour, k)], args.reference_repeats)[0]
            ref_text = f'{ref[0]:10.1f} {ref[0] / ours[0]:8.0f}x'
        print(f'{name:8s} {ours[0]:9.2f} {ours[2]:6.2f} {two[0]:9.2f} {o3d_text} {ref_text}')


if __name__ == '__main__':
    main()
