#!/usr/bin/env python3
"""
Render synthetic RGB-D frames once into a folder dataset, so that several runs share them.

Writes ``rgb/NNNNNN.png``, ``depth/NNNNNN.png`` (uint16 millimetres, 0 = no depth) and
``camera.json`` (fx, fy, cx, cy, width, height), the layout ``data.dataset: folder`` reads
(``data.folder.intrinsics: camera.json``). Frame i is exactly frame i of
``SyntheticStream(seed=..., style=..., frames_per_room=..., speed=...)``, so a folder holds
the same pixels the on-the-fly ``synthetic`` dataset would render. ``--first``/``--count``
split the work between processes.

    python scripts/data/render_synthetic.py --out runs/synthetic_robot_s1 --count 768 --seed 1 \
        --style robot --textures /usr/share/backgrounds
"""

import argparse
import json
import os
import sys

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
from mono_depth_ros.core.atomic import atomic_path, atomic_write_text  # noqa: E402
from mono_depth_ros.sim.synthetic import STYLES, SyntheticStream  # noqa: E402
import numpy as np  # noqa: E402


def _write_png(path: str, image: np.ndarray) -> None:
    ok, data = cv2.imencode('.png', image)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for {path}')
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data.tobytes())


def render(out: str, first: int, count: int, width: int, height: int, seed: int,
           style: str, textures: str, frames_per_room: int, speed: float) -> int:
    """Render frames [first, first + count) into out; return how many were written."""
    stream = SyntheticStream(width, height, seed=seed, frames_per_room=frames_per_room,
                             speed=speed, style=style, texture_dir=textures or None)
    for sub in ('rgb', 'depth'):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    k = stream.intrinsics
    atomic_write_text(os.path.join(out, 'camera.json'), json.dumps(
        {'fx': k.fx, 'fy': k.fy, 'cx': k.cx, 'cy': k.cy, 'width': k.width,
         'height': k.height}))
    for index in range(first, first + count):
        frame = stream.frame(index)
        depth = np.where(np.isfinite(frame.depth), frame.depth * 1000.0 + 0.5, 0.0)
        _write_png(os.path.join(out, 'rgb', f'{index:06d}.png'),
                   cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
        _write_png(os.path.join(out, 'depth', f'{index:06d}.png'),
                   np.clip(depth, 0, 65535).astype(np.uint16))
    return count


def main(argv=None) -> int:
    """Parse arguments and render."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--first', type=int, default=0)
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--height', type=int, default=120)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--style', choices=STYLES, default='robot')
    parser.add_argument('--textures', default='')
    parser.add_argument('--frames-per-room', type=int, default=4)
    parser.add_argument('--speed', type=float, default=0.3)
    args = parser.parse_args(argv)
    n = render(args.out, args.first, args.count, args.width, args.height, args.seed,
               args.style, args.textures, args.frames_per_room, args.speed)
    sys.stdout.write(f'wrote {n} frames into {args.out}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
