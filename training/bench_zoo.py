#!/usr/bin/env python3
"""
Benchmark every zoo architecture with depth_bench: torch (TorchScript) and ONNX backends.

    python scripts/bench/bench_zoo.py [--archs mobilenetv2_unet ...] \
        [--sizes 224x224 240x320 480x640] [--backends torch onnxruntime tensorrt] \
        [--precisions fp32 fp16] [--cuda-graphs off on] [--iterations 50] \
        [--peak-tflops FP32 FP16] [--train-steps 3] [--train-batch 8] \
        [--reference mobilenetv2_unet] [--output-dir out/bench_zoo]

Each architecture is built with its default arguments and random weights (speed does not
depend on the weights), exported to a dynamic ONNX for ONNX Runtime / TensorRT and to
TorchScript for the torch backend (the node runs TorchScript, not training checkpoints),
then timed at each size. With ``--peak-tflops``
(the device's dense peak for fp32 and fp16) each row also shows the share of the peak the
model reaches: small models at batch 1 are bound by kernel launches and memory traffic,
far below it.

A summary table follows, at 240x320 when that size is timed (else the first size): each
architecture's parameters, GFLOPs, ONNX Runtime p50 and CPU training images/s (forward +
backward + AdamW step, batch ``--train-batch``, median of ``--train-steps``; 0 skips it),
with the latency and training-speed ratios against ``--reference``, all from this one
run. Writes zoo.md, zoo.csv and summary.csv (atomically) to the output folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Dict, List

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402
from mono_depth_ros.core.model_meta import ModelMeta  # noqa: E402
from mono_depth_ros.tools.depth_bench import (BenchConfig, COLUMNS, csv_text,  # noqa: E402
                                              environment_line, markdown_table, parse_size, run)

ONNX_BACKENDS = ('onnxruntime', 'tensorrt')
SUMMARY_COLUMNS = ('arch', 'size', 'params_m', 'gflops', 'ort_p50_ms', 'latency_ratio',
                   'train_images_s', 'train_ratio')


def prepare(arch: str, folder: str, height: int, width: int) -> Dict[str, str]:
    """Write a dynamic ONNX and a TorchScript export of arch (random weights); return paths."""
    import torch
    from training.export_onnx import export_model
    from training.networks import build_model
    torch.manual_seed(0)
    model = build_model(arch).eval()
    meta = ModelMeta(arch=arch, input_height=height, input_width=width,
                     description=f'{arch}, random weights, for timing only',
                     **model.output_spec(0.1, 10.0))
    paths = {'torchscript': os.path.join(folder, f'{arch}.ts'),
             'onnx': os.path.join(folder, f'{arch}.onnx')}
    export_model(model, meta, paths['onnx'], dynamic=True, check=False, log=lambda _m: None,
                 torchscript=paths['torchscript'])
    paths['params'] = sum(p.numel() for p in model.parameters())
    return paths


def train_rate(arch: str, height: int, width: int, batch: int, steps: int) -> float:
    """Return CPU training images/s (training/bench_train.py's measurement)."""
    from training.bench_train import bench_arch
    return bench_arch(arch, batch, height, width, steps, 1, 'cpu')['images_per_s']


def summarise(rows: List[Dict], params: Dict[str, int], train: Dict[str, float], size: str,
              reference: str) -> List[Dict]:
    """Return one summary row per architecture at size, with ratios against reference."""
    ort = {r['arch']: r for r in rows if r.get('backend') == 'onnxruntime' and
           r.get('size') == size and r.get('status') == 'ok' and r.get('precision') == 'fp32'
           and not r.get('cuda_graphs')}
    out = []
    for arch, count in params.items():
        row = {'arch': arch, 'size': size, 'params_m': count / 1e6}
        if arch in ort:
            row['gflops'] = ort[arch].get('gflops', '')
            row['ort_p50_ms'] = ort[arch]['p50_ms']
        if arch in train:
            row['train_images_s'] = train[arch]
        out.append(row)
    ref = next((r for r in out if r['arch'] == reference), None)
    for row in out:
        if ref is not None and row.get('ort_p50_ms') and ref.get('ort_p50_ms'):
            row['latency_ratio'] = row['ort_p50_ms'] / ref['ort_p50_ms']
        if ref is not None and row.get('train_images_s') and ref.get('train_images_s'):
            row['train_ratio'] = row['train_images_s'] / ref['train_images_s']
    return out


def bench_arch(arch: str, paths: Dict[str, str], args, sizes) -> List[Dict]:
    """Return depth_bench rows for one architecture, tagged with its name."""
    rows = []
    for backends, model in (([b for b in args.backends if b == 'torch'], paths['torchscript']),
                            ([b for b in args.backends if b in ONNX_BACKENDS], paths['onnx'])):
        if not backends:
            continue
        config = BenchConfig(model=model, backends=backends, precisions=args.precisions,
                             sizes=sizes, iterations=args.iterations, warmup=args.warmup,
                             cuda_graphs=[v == 'on' for v in args.cuda_graphs],
                             pipeline_frames=0, threads=args.threads,
                             # The TorchScript is the one export_arch just wrote.
                             trust_model_code=model == paths['torchscript'])
        result = run(config, log=lambda _m: None)
        for row in result['rows']:
            row = dict(row, arch=arch)
            if row.get('status') == 'ok' and not row.get('gflops'):
                # TorchScript hides its layers from FLOP counting: the same network's ONNX
                # graph gives the count at this size.
                from mono_depth_ros.tools.depth_bench import onnx_flops
                h, w = (int(v) for v in row['size'].split('x'))
                flops = onnx_flops(paths['onnx'], h, w)
                if flops:
                    row['gflops'] = flops / 1e9
                    seconds = (row.get('compute_p50_ms') or row['p50_ms']) / 1000.0
                    row['tflops_s'] = flops / seconds / 1e12
            peak = args.peak.get(row['precision'])
            if peak and row.get('tflops_s'):
                row['peak_share'] = row['tflops_s'] / peak
            rows.append(row)
            if row.get('status') == 'ok':
                print(f'{arch:20s} {row["backend"]:12s} {row["precision"]:5s} '
                      f'{row["size"]:>9s} graphs={int(bool(row["cuda_graphs"]))}: '
                      f'p50 {row["p50_ms"]:.3f} ms', flush=True)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--archs', nargs='+', help='default: every zoo architecture')
    parser.add_argument('--sizes', nargs='+', default=['224x224', '240x320', '480x640'])
    parser.add_argument('--backends', nargs='+', default=['torch', 'onnxruntime'],
                        choices=('torch', 'onnxruntime', 'tensorrt'))
    parser.add_argument('--precisions', nargs='+', default=['fp32'],
                        choices=('fp32', 'fp16', 'int8'))
    parser.add_argument('--cuda-graphs', nargs='+', choices=('on', 'off'), default=['off'])
    parser.add_argument('--iterations', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime threads')
    parser.add_argument('--peak-tflops', nargs=2, type=float, metavar=('FP32', 'FP16'),
                        help="the device's dense peak TFLOP/s, to show the share reached")
    parser.add_argument('--train-steps', type=int, default=3,
                        help='CPU training steps timed per architecture (0 = skip)')
    parser.add_argument('--train-batch', type=int, default=8)
    parser.add_argument('--reference', default='mobilenetv2_unet',
                        help='architecture the summary ratios are taken against')
    parser.add_argument('--output-dir', default=os.path.join('out', 'bench_zoo'))
    args = parser.parse_args(argv)
    args.peak = dict(zip(('fp32', 'fp16'), args.peak_tflops or ()))
    return args


def main(argv=None) -> int:
    """Prepare, time and tabulate every requested architecture."""
    args = parse_args(argv)
    from training.networks import ARCHITECTURES
    archs = args.archs or list(ARCHITECTURES)
    unknown = sorted(set(archs) - set(ARCHITECTURES))
    if unknown:
        print(f'bench_zoo: error: unknown architecture(s) {", ".join(unknown)}',
              file=sys.stderr)
        return 1
    sizes = [parse_size(s) for s in args.sizes]
    rows: List[Dict] = []
    params: Dict[str, int] = {}
    train: Dict[str, float] = {}
    summary_size = '240x320' if '240x320' in args.sizes else args.sizes[0]
    sh, sw = parse_size(summary_size)
    with tempfile.TemporaryDirectory(prefix='bench_zoo_') as folder:
        for arch in archs:
            paths = prepare(arch, folder, *sizes[0])
            params[arch] = paths['params']
            rows.extend(bench_arch(arch, paths, args, sizes))
            if args.train_steps > 0:
                train[arch] = train_rate(arch, sh, sw, args.train_batch, args.train_steps)
                print(f'{arch:20s} training {summary_size} batch {args.train_batch}: '
                      f'{train[arch]:.2f} images/s', flush=True)
    columns = ['arch'] + list(COLUMNS) + (['peak_share'] if args.peak else [])
    summary = summarise(rows, params, train, summary_size, args.reference)
    text = (f'# Zoo benchmark\n\n{environment_line()}; {args.iterations} iterations after '
            f'{args.warmup} warm-up; random weights.\n\n' + markdown_table(rows, columns) + '\n'
            f'\n## Summary at {summary_size} (ratios against {args.reference}; training: CPU, '
            f'batch {args.train_batch}, median of {args.train_steps} steps)\n\n' +
            markdown_table(summary, SUMMARY_COLUMNS) + '\n')
    print(text)
    os.makedirs(args.output_dir, exist_ok=True)
    atomic_write_text(os.path.join(args.output_dir, 'zoo.md'), text)
    atomic_write_text(os.path.join(args.output_dir, 'zoo.csv'), csv_text(rows, columns))
    atomic_write_text(os.path.join(args.output_dir, 'summary.csv'),
                      csv_text(summary, SUMMARY_COLUMNS))
    return 0 if any(r.get('status') == 'ok' for r in rows) else 1


if __name__ == '__main__':
    sys.exit(main())
