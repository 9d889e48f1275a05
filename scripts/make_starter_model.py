#!/usr/bin/env python3
"""
Train the PLACEHOLDER bundled model on synthetic rooms and export it to models/.

This is a tiny encoder-decoder trained for a few minutes on CPU on the package's own
procedural scenes, so that the node, the demo and the benchmarks run end to end from a
fresh clone. It is not a useful depth estimator for real cameras. It is replaced by the
trained starter model (NYU/KITTI) when that lands. Needs torch (requirements/dev.txt).

    python scripts/make_starter_model.py --output models/mono_depth.onnx --minutes 4
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from mono_depth_ros.core.atomic import atomic_path  # noqa: E402
from mono_depth_ros.core.intrinsics import preset  # noqa: E402
from mono_depth_ros.core.model_meta import IMAGENET_MEAN, IMAGENET_STD, ModelMeta  # noqa: E402
from mono_depth_ros.sim.synthetic import SyntheticStream  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402,N812

MIN_DEPTH, MAX_DEPTH = 0.2, 10.0


def block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """Four-level encoder-decoder with skips; sigmoid inverse-depth output."""

    def __init__(self, widths=(16, 24, 40, 64)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 3
        for w in widths:
            self.enc.append(block(cin, w, 2))
            cin = w
        self.dec = nn.ModuleList()
        for w_skip, w in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.dec.append(block(w + w_skip, w_skip, 1))
        self.head = nn.Conv2d(widths[0], 1, 3, 1, 1)

    def forward(self, x):
        feats = []
        for layer in self.enc:
            x = layer(x)
            feats.append(x)
        x = feats[-1]
        for layer, skip in zip(self.dec, reversed(feats[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode='bilinear', align_corners=False)
            x = layer(torch.cat([x, skip], 1))
        x = F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=False)
        return torch.sigmoid(self.head(x))


class ExportWrapper(nn.Module):
    """Take uint8 RGB NHWC, normalise inside the graph, return the raw (N, 1, H, W) output."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, image):
        x = image.permute(0, 3, 1, 2).float()
        return self.model((x - self.mean) / self.std)


def inverse_depth_target(depth):
    a, b = 1.0 / MIN_DEPTH - 1.0 / MAX_DEPTH, 1.0 / MAX_DEPTH
    return ((1.0 / depth.clamp(MIN_DEPTH, MAX_DEPTH)) - b) / a


def make_data(n_frames, width, height, seed):
    stream = SyntheticStream(width, height, seed=seed, frames_per_room=10, speed=0.3)
    rgb = np.empty((n_frames, height, width, 3), np.uint8)
    depth = np.empty((n_frames, height, width), np.float32)
    for i in range(n_frames):
        f = stream.frame(i)
        rgb[i], depth[i] = f.rgb, f.depth
    return rgb, depth


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--output', default='models/mono_depth.onnx')
    parser.add_argument('--width', type=int, default=160)
    parser.add_argument('--height', type=int, default=120)
    parser.add_argument('--frames', type=int, default=600)
    parser.add_argument('--minutes', type=float, default=4.0)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    t0 = time.time()
    rgb, depth = make_data(args.frames, args.width, args.height, args.seed)
    val_rgb, val_depth = make_data(40, args.width, args.height, args.seed + 1000)
    print(f'rendered {args.frames} + 40 frames in {time.time() - t0:.0f} s', flush=True)

    model = ExportWrapper(TinyUNet())
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x_all = torch.from_numpy(rgb)
    y_all = inverse_depth_target(torch.from_numpy(depth)[:, None])
    step, deadline = 0, time.time() + 60 * args.minutes
    model.train()
    while time.time() < deadline:
        idx = torch.randint(0, len(x_all), (16,))
        x, y = x_all[idx], y_all[idx]
        if step % 2:
            x, y = x.flip(2), y.flip(3)
        pred = model(x)
        dy = lambda t: t[..., 1:, :] - t[..., :-1, :]  # noqa: E731
        dx = lambda t: t[..., :, 1:] - t[..., :, :-1]  # noqa: E731
        loss = (pred - y).abs().mean() + (dx(pred) - dx(y)).abs().mean() + (
            dy(pred) - dy(y)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f'step {step} loss {loss.item():.4f}', flush=True)
        step += 1

    model.eval()
    a, b = 1.0 / MIN_DEPTH - 1.0 / MAX_DEPTH, 1.0 / MAX_DEPTH
    with torch.no_grad():
        pred = model(torch.from_numpy(val_rgb))[:, 0].numpy()
    pred_depth = 1.0 / (a * pred + b)
    abs_rel = float(np.mean(np.abs(pred_depth - val_depth) / val_depth))
    base = float(np.mean(np.abs(np.median(depth) - val_depth) / val_depth))
    print(f'{step} steps; held-out synthetic abs_rel {abs_rel:.3f} '
          f'(constant-depth baseline {base:.3f})')

    intr = preset('kinect_nyu').resize(args.width, args.height)
    try:
        rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
                             text=True, check=False).stdout.strip()
    except OSError:
        rev = ''
    meta = ModelMeta(
        arch='tiny_unet_placeholder', input_height=args.height, input_width=args.width,
        arch_args={'widths': [16, 24, 40, 64]}, output_mode='inverse_depth',
        output_scale=a, output_shift=b, min_depth=MIN_DEPTH, max_depth=MAX_DEPTH,
        train_fx=intr.fx, train_fy=intr.fy, focal_rescale=True, dataset='synthetic',
        metrics={'abs_rel_synthetic': round(abs_rel, 4)}, git_revision=rev,
        description='PLACEHOLDER: tiny network trained a few minutes on procedural '
                    'synthetic rooms only; not a real-camera depth model')
    example = torch.from_numpy(val_rgb[:1])
    import onnx
    with atomic_path(args.output) as tmp:
        torch.onnx.export(model, (example,), tmp, input_names=[meta.input_name],
                          output_names=[meta.output_name], opset_version=17, dynamo=False)
        proto = onnx.load(tmp)
        for key, value in meta.to_onnx_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, tmp)
    print(f'wrote {args.output} ({os.path.getsize(args.output) / 1e3:.0f} kB)')


if __name__ == '__main__':
    main()
