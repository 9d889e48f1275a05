#!/usr/bin/env python3
"""
Training throughput of each zoo architecture: images/s for forward + backward + step.

Default: batch 8 at 240x320, AdamW, the seeds' loss on random targets, default arch
arguments. Also times how fast the synthetic scene generator renders a batch, to show
whether data loading would be the bottleneck (the seeds' loader was CPU-bound). Prints a
Markdown table; timings on a shared machine are noisy, so it reports the median step.
"""

import argparse
import os
import statistics
import sys
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from training.losses import seeds_loss  # noqa: E402
from training.networks import ARCHITECTURES, build_model  # noqa: E402


def bench_arch(arch: str, batch: int, height: int, width: int, steps: int, warmup: int,
               device: str) -> dict:
    """Return params, median seconds per step and images/s for one architecture."""
    torch.manual_seed(0)
    model = build_model(arch).to(device).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(batch, 3, height, width, device=device)
    gt = torch.rand(batch, 1, height, width, device=device) * 9.0 + 0.5
    mask = gt > 0
    times = []
    for i in range(warmup + steps):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        depth = model.to_depth(model(x), 0.1, 10.0)
        loss = seeds_loss(depth, gt, mask)
        loss.backward()
        opt.step()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = statistics.median(times)
    return {'arch': arch, 'params_m': sum(p.numel() for p in model.parameters()) / 1e6,
            'step_s': step, 'spread': (max(times) - min(times)) / step,
            'images_per_s': batch / step}


def bench_synthetic(batch: int, height: int, width: int) -> float:
    """Return images/s of the synthetic RGB-D generator (one process)."""
    from mono_depth_ros.sim.synthetic import SyntheticStream
    stream = iter(SyntheticStream(width, height, seed=0))
    next(stream)
    start = time.perf_counter()
    for _ in range(batch):
        next(stream)
    return batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', nargs='*', default=list(ARCHITECTURES))
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--height', type=int, default=240)
    parser.add_argument('--width', type=int, default=320)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'batch {args.batch} at {args.height}x{args.width}, median of {args.steps} steps')
    print('| arch | params (M) | s/step | images/s | spread |')
    print('|---|---:|---:|---:|---:|')
    rates = []
    for arch in args.arch:
        r = bench_arch(arch, args.batch, args.height, args.width, args.steps, args.warmup,
                       args.device)
        rates.append(r['images_per_s'])
        print(f"| {r['arch']} | {r['params_m']:.1f} | {r['step_s']:.3f} | "
              f"{r['images_per_s']:.1f} | {100 * r['spread']:.0f}% |", flush=True)
    loader = bench_synthetic(args.batch, args.height, args.width)
    print(f'synthetic RGB-D generator: {loader:.1f} images/s per process; the fastest '
          f'network trains at {max(rates):.1f} images/s, so one loader process covers '
          f'{100 * min(1.0, loader / max(rates)):.0f}% of it')
    return 0


if __name__ == '__main__':
    sys.exit(main())
