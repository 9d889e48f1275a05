#!/usr/bin/env python3
"""
Latency of an exported stacked ensemble against its own bases, in one run.

    python scripts/bench/bench_ensemble.py --checkpoint runs/smoke_ensemble/best.pt \
        [--iterations 30] [--pipeline-frames 10] [--rounds 3] [--threads 0] \
        [--output-dir out/bench_ensemble]

The ensemble checkpoint, each of its base learners and their simple average are exported
to ONNX (same input size, metadata, parity-checked), then each file is timed with
depth_bench: ONNX Runtime inference alone (p50 ms) and the node's whole per-frame pipeline
(FrameProcessor on real NYU frames, or synthetic rooms without them; total p50 ms per
frame). The variants are timed in turn, ``--rounds`` times over, and each figure is the
median of its rounds, so a load change on a shared machine hits them all alike. Ratios
are against the fastest base. Writes ensemble.md and ensemble.csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from typing import Dict, List

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mono_depth_ros.core.atomic import atomic_write_text  # noqa: E402

COLUMNS = ('model', 'params_m', 'ort_p50_ms', 'ort_ratio', 'pipeline_p50_ms',
           'pipeline_ratio')


def export_variants(checkpoint: str, folder: str) -> Dict[str, Dict]:
    """Export the ensemble, each base and the simple average; return {name: info}."""
    import dataclasses
    from training.networks import load_model
    from training.export_onnx import export_model
    from training.networks.ensemble import count_parameters
    model, meta = load_model(checkpoint)
    if not hasattr(model, 'variants'):
        raise SystemExit(f'bench_ensemble: error: {checkpoint} is a {meta.arch}, not an '
                         'ensemble')
    out = {}
    for i, (name, variant) in enumerate(model.variants().items()):
        path = os.path.join(folder, f'variant{i}.onnx')
        vmeta = dataclasses.replace(meta, description=f'{name} of {meta.arch}')
        export_model(variant.eval(), vmeta, path, log=lambda _m: None)
        out[name] = {'onnx': path, 'params': count_parameters(variant)}
    return out


def bench(variants: Dict[str, Dict], iterations: int, frames: int,
          threads: int, rounds: int = 1) -> List[Dict]:
    """Time every exported variant with depth_bench; return one row each, with ratios."""
    from mono_depth_ros.tools.depth_bench import BenchConfig, run
    times: Dict[str, Dict[str, List[float]]] = {n: {'ort': [], 'pipeline': []}
                                                for n in variants}
    for round_index in range(max(1, rounds)):
        for name, info in variants.items():
            config = BenchConfig(model=info['onnx'], backends=['onnxruntime'],
                                 precisions=['fp32'], iterations=iterations, warmup=3,
                                 pipeline_frames=frames, threads=threads)
            result = run(config, log=lambda _m: None)
            ok = [r for r in result['rows'] if r.get('status') == 'ok']
            total = [r for r in result['pipeline'] if r.get('stage') == 'total']
            if not ok or not total:
                raise SystemExit(f'bench_ensemble: error: {name} did not run: '
                                 f'{result["rows"]}')
            times[name]['ort'].append(ok[0]['p50_ms'])
            times[name]['pipeline'].append(total[0]['p50_ms'])
            print(f'round {round_index + 1} {name:28s} ORT p50 {ok[0]["p50_ms"]:.2f} ms, '
                  f'pipeline p50 {total[0]["p50_ms"]:.2f} ms', flush=True)
    rows = [{'model': name, 'params_m': variants[name]['params'] / 1e6,
             'ort_p50_ms': statistics.median(t['ort']),
             'pipeline_p50_ms': statistics.median(t['pipeline'])}
            for name, t in times.items()]
    bases = [r for r in rows if r['model'].startswith('base ')]
    for key in ('ort', 'pipeline'):
        fastest = min(r[f'{key}_p50_ms'] for r in bases)
        for row in rows:
            row[f'{key}_ratio'] = row[f'{key}_p50_ms'] / fastest
    return rows


def main(argv=None) -> int:
    """Export, time and tabulate."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--iterations', type=int, default=30)
    parser.add_argument('--pipeline-frames', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime threads')
    parser.add_argument('--output-dir', default=os.path.join('out', 'bench_ensemble'))
    args = parser.parse_args(argv)
    from mono_depth_ros.tools.depth_bench import csv_text, environment_line, markdown_table
    with tempfile.TemporaryDirectory(prefix='bench_ensemble_') as folder:
        rows = bench(export_variants(args.checkpoint, folder), args.iterations,
                     args.pipeline_frames, args.threads, args.rounds)
    text = (f'# Ensemble latency\n\n{environment_line()}; {args.iterations} iterations; '
            f'pipeline over {args.pipeline_frames} frames; median of {args.rounds} rounds; '
            'ratios against the fastest base.'
            f'\n\n' + markdown_table(rows, COLUMNS) + '\n')
    print(text)
    os.makedirs(args.output_dir, exist_ok=True)
    atomic_write_text(os.path.join(args.output_dir, 'ensemble.md'), text)
    atomic_write_text(os.path.join(args.output_dir, 'ensemble.csv'), csv_text(rows, COLUMNS))
    return 0


if __name__ == '__main__':
    sys.exit(main())
