#!/usr/bin/env python3
"""
Is data loading the bottleneck? Loader images/s per worker against the training step.

    python training/bench_data.py [--arch mobilenetv2_unet] [--batches 6] [--threads 2]

For each source (the real NYU and KITTI samples in ../shared/data, and synthetic rooms)
it times the full loader path - read, decode, resize, crop/flip/rotate, and the
photometric ops either per sample in the worker or batched in the training process - with
one worker, and times a training step (forward, backward, AdamW) at the same size. A loader
with N workers keeps up while N x (loader images/s) exceeds the step's images/s. Prints a
Markdown table; on a shared machine the numbers are noisy (medians are used).
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from training.datasets import FolderDataset, KittiObject, SyntheticDataset  # noqa: E402
from training.datasets.augment import normalize, PhotometricAugment  # noqa: E402
from training.losses import seeds_loss  # noqa: E402
from training.networks import build_model  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..',
                      'shared', 'data')
AUGMENT = {'hflip': 0.5, 'channel_swap': 0.25, 'grayscale': 0.1, 'brightness': 0.2,
           'contrast': 0.2, 'saturation': 0.2, 'rotation_deg': 5.0, 'random_crop': True}


class Cycle(torch.utils.data.Dataset):
    """Repeat a small dataset to n samples (the shared samples are few)."""

    def __init__(self, data, n):
        self.data, self.n = data, n

    def __len__(self):
        """Return n."""
        return self.n

    def __getitem__(self, i):
        """Return sample i modulo the real size."""
        return self.data[i % len(self.data)]


def loader_rate(data, batch: int, batches: int, photometric_in_loader: bool) -> float:
    """Return images/s of one worker (the main process) for the loader path."""
    data.photometric_in_loader = photometric_in_loader
    loader = torch.utils.data.DataLoader(Cycle(data, batch * batches), batch_size=batch,
                                         num_workers=0)
    photometric = PhotometricAugment(AUGMENT)
    times = []
    tick = time.perf_counter()
    for out in loader:
        if not photometric_in_loader:
            out['image'] = photometric(out['image'])
        now = time.perf_counter()
        times.append(now - tick)
        tick = now
    return batch / statistics.median(times)


def step_rate(arch: str, batch: int, height: int, width: int, steps: int) -> float:
    """Return images/s of forward + backward + AdamW at this size (median step)."""
    torch.manual_seed(0)
    model = build_model(arch).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, height, width)
    gt = torch.rand(batch, 1, height, width) * 5 + 0.5
    times = []
    for i in range(steps + 1):
        tick = time.perf_counter()
        depth = model.to_depth(model(normalize(x)), 0.1, 10.0)
        loss = seeds_loss(depth, gt, gt > 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - tick)
    return batch / statistics.median(times)


def main(argv=None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--arch', default='mobilenetv2_unet')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--batches', type=int, default=6)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0 = default)')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sources = [('synthetic', 240, 320, lambda **kw: SyntheticDataset(64, **kw), None)]
    if os.path.isdir(os.path.join(SHARED, 'nyu')):
        sources.insert(0, ('nyu (png 640x480)', 240, 320, lambda **kw: FolderDataset(
            os.path.join(SHARED, 'nyu'), intrinsics='kinect_nyu', **kw), (336, 252)))
        sources.insert(1, ('kitti (png + velodyne)', 192, 640, lambda **kw: KittiObject(
            os.path.join(SHARED, 'kitti', 'object_training'), **kw), (672, 203)))
    print(f'| source | size | loader img/s, photometric in worker | loader img/s, '
          f'photometric batched | {args.arch} step img/s | workers needed |')
    print('|---|---|---|---|---|---|')
    for name, h, w, make, resize in sources:
        data = make(height=h, width=w, train=True, augment=AUGMENT, resize=resize)
        in_worker = loader_rate(data, args.batch, args.batches, True)
        batched = loader_rate(data, args.batch, args.batches, False)
        step = step_rate(args.arch, args.batch, h, w, args.steps)
        print(f'| {name} | {h}x{w} | {in_worker:.1f} | {batched:.1f} | {step:.1f} | '
              f'{step / max(in_worker, batched):.2f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
