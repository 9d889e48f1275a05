#!/usr/bin/env python3
"""
Picture a depth ONNX model on real and synthetic images, run exactly as the node runs it.

One row per image: input | predicted depth | ground truth, each depth pair in one colour
range (the ground truth's 2nd-98th percentile). Real rows come from the shared samples (a
held-out NYU scene and a Redwood frame, when the data folder exists), the last row is a
synthetic robot-view room. Used for the README and the model card.

    python scripts/models/model_pictures.py --model models/starter_indoor.onnx \
        --output docs/images/starter_indoor.png
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

import cv2  # noqa: E402
from mono_depth_ros.core.atomic import atomic_path  # noqa: E402
from mono_depth_ros.core.colormap import colorize_depth  # noqa: E402
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor  # noqa: E402
from mono_depth_ros.core.intrinsics import Intrinsics, preset  # noqa: E402
from mono_depth_ros.inference.base import create_backend  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PANEL = (320, 240)


def _read_pair(rgb_path, depth_path, scale):
    rgb = cv2.cvtColor(cv2.imread(rgb_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    depth = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED).astype(np.float32) * scale
    return rgb, depth


def samples(data: str, nyu_note: str = 'held out'):
    """Yield (label, rgb, depth m, intrinsics): real samples first, then a synthetic room."""
    nyu = os.path.join(data, 'nyu')
    if os.path.isdir(nyu):
        for stem in ('0010', '0013'):
            rgb, depth = _read_pair(os.path.join(nyu, 'rgb', f'{stem}.png'),
                                    os.path.join(nyu, 'depth', f'{stem}.png'), 0.001)
            yield f'NYU {stem} (real, {nyu_note})', rgb, depth, preset('kinect_nyu')
    red = os.path.join(data, 'redwood')
    if os.path.isdir(red):
        rgb, depth = _read_pair(os.path.join(red, 'color', '00002.jpg'),
                                os.path.join(red, 'depth', '00002.png'), 0.001)
        yield 'Redwood (real)', rgb, depth, Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    from mono_depth_ros.sim.synthetic import SyntheticStream
    stream = SyntheticStream(640, 480, seed=5, frames_per_room=2, style='robot')
    frame = stream.frame(2)
    yield 'synthetic room', frame.rgb, frame.depth, stream.intrinsics


def label(image, text):
    """Resize to a panel and write text on a dark band."""
    out = cv2.resize(image, PANEL, interpolation=cv2.INTER_AREA)
    cv2.rectangle(out, (0, 0), (PANEL[0], 20), (0, 0, 0), -1)
    cv2.putText(out, text, (5, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def main(argv=None) -> int:
    """Render the rows and write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--model', default=os.path.join(HERE, 'models', 'starter_indoor.onnx'))
    parser.add_argument('--output', default=os.path.join(HERE, 'docs', 'images',
                                                         'starter_indoor.png'))
    parser.add_argument('--data', default=os.path.join(HERE, '..', 'shared', 'data'))
    parser.add_argument('--nyu-note', default='held out',
                        help='what the NYU rows are to this model (their label)')
    args = parser.parse_args(argv)
    backend = create_backend('onnxruntime', args.model)
    processor = FrameProcessor(backend.meta, backend, FrameConfig(depth_upsampling='bilinear'))
    rows = []
    for name, rgb, gt, camera in samples(args.data, args.nyu_note):
        pred = processor.run(rgb, camera).depth
        valid = np.isfinite(gt) & (gt > 0)
        near, far = np.percentile(gt[valid], [2, 98])
        rows.append(np.hstack([
            label(rgb, name),
            label(colorize_depth(np.clip(pred, near, far), near, far), 'predicted depth'),
            label(colorize_depth(np.where(valid, np.clip(gt, near, far), np.nan), near, far),
                  'ground truth')]))
    image = np.vstack(rows)
    ok, data = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError('PNG encoding failed')
    with atomic_path(args.output) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data.tobytes())
    sys.stdout.write(f'wrote {args.output} ({len(rows)} rows)\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
