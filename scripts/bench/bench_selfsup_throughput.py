#!/usr/bin/env python3
"""
Self-supervised (Monodepth2) training throughput: target images/s for a full step.

One step is what the trainer does per batch: the depth network on the targets (4 scales),
the pose network on both pairs (-1, 0) and (0, +1), the warps and losses at every scale,
backward and an Adam step. Inputs are random frames with the KITTI-like intrinsics of the
size, so the figures do not depend on data loading. Prints a Markdown table; on a shared
machine the median step is reported with the spread, and images per CPU second (the
process's own CPU time), which other jobs on the machine do not dilute.

    python scripts/bench/bench_selfsup_throughput.py --sizes 192x640 96x320 --batch 4
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))

import torch  # noqa: E402
from training.networks import build_model  # noqa: E402
from training.networks.pose import build_pose_net  # noqa: E402
from training.selfsup import SelfSupervisedTask  # noqa: E402


def bench(height: int, width: int, batch: int, steps: int, warmup: int, device: str,
          pose_arch: str, amp: bool) -> dict:
    """Return seconds per step and target images/s at one size."""
    torch.manual_seed(0)
    model = build_model('resnet18_monodepth').to(device).train()
    pose = build_pose_net(pose_arch).to(device).train()
    task = SelfSupervisedTask(0.1, 100.0, pose_net=pose)
    opt = torch.optim.Adam(list(model.parameters()) + list(pose.parameters()), lr=1e-4)
    k = torch.tensor([[0.58 * width, 0, 0.5 * width], [0, 1.92 * height, 0.5 * height],
                      [0, 0, 1.0]]).expand(batch, 3, 3).to(device)
    batch_data = {key: torch.rand(batch, 3, height, width, device=device)
                  for key in ('image', 'image-1', 'image+1')}
    batch_data['K'] = k
    scaler = torch.amp.GradScaler('cuda', enabled=amp and device.startswith('cuda'))
    times, cpu = [], []
    for i in range(warmup + steps):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        with torch.autocast(device.split(':')[0], dtype=torch.float16,
                            enabled=amp and device.startswith('cuda')):
            loss, _ = task.compute_loss(model, batch_data)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    step = statistics.median(times)
    return {'size': f'{height}x{width}', 'step_s': step, 'images_per_s': batch / step,
            'spread': (max(times) - min(times)) / step,
            'images_per_cpu_s': batch / statistics.median(cpu)}


def main(argv=None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', nargs='*', default=['192x640', '96x320'])
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--pose-arch', default='resnet18_pose')
    parser.add_argument('--amp', action='store_true', help='fp16 autocast (CUDA only)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'batch {args.batch}, ResNet18 depth + {args.pose_arch} pose, frames -1/0/+1, '
          f'4 scales, median of {args.steps} steps{", AMP fp16" if args.amp else ""}')
    print('| size | s/step | images/s | spread | images per CPU s |')
    print('|---|---|---|---|---|')
    for size in args.sizes:
        height, width = (int(v) for v in size.lower().split('x'))
        r = bench(height, width, args.batch, args.steps, args.warmup, args.device,
                  args.pose_arch, args.amp)
        print(f'| {r["size"]} | {r["step_s"]:.3f} | {r["images_per_s"]:.2f} | '
              f'{100 * r["spread"]:.0f}% | {r["images_per_cpu_s"]:.2f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
