"""
``depth_bench``: time every available backend, and the node's whole per-frame pipeline.

    ros2 run mono_depth_ros depth_bench --model models/starter_indoor.onnx \
        [--backends onnxruntime torch tensorrt] [--precisions fp32 fp16] \
        [--sizes 240x320 480x640] [--iterations 50] [--cuda-graphs on off] [--output-dir DIR]

For each backend x precision x input size (x CUDA graphs for torch on CUDA): latency
p50/p95 of one ``infer`` call (host tensor in, host array out, so GPU work is complete when
the clock stops), FPS, peak memory (RSS growth on CPU, ``torch.cuda.max_memory_allocated``
for torch on CUDA, device memory taken while a TensorRT engine is loaded and run), and
achieved TFLOP/s from the model's conv/matmul FLOPs, to set against the hardware's peak.
Then the node's per-frame stages (decode, preprocess, inference, postprocess, cloud,
serialise) on real images from ``../shared/data`` (synthetic rooms when absent). Prints
tables and writes them as Markdown and CSV.

The FLOP counts are :mod:`.flops`', the per-frame pipeline :mod:`.pipeline_bench`'s, and
the tables and measurements shared with the benchmark scripts :mod:`.bench_common`'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mono_depth_ros.core.atomic import atomic_write_text
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import available_backends, backend_class, BackendError
from mono_depth_ros.tools.bench_common import (BenchError, csv_text, device_used_bytes,
                                               environment_line, markdown_table, parse_size,
                                               percentile_ms, rss_bytes)
# onnx_flops, torch_flops and STAGES are re-exported for the scripts and tests that know
# them from here.
from mono_depth_ros.tools.flops import model_flops, onnx_flops, torch_flops  # noqa: F401
from mono_depth_ros.tools.pipeline_bench import (PIPELINE_COLUMNS, pipeline_frames,  # noqa: F401
                                                 run_pipeline_bench, STAGES)
import numpy as np

COLUMNS = ('backend', 'precision', 'size', 'cuda_graphs', 'status', 'p50_ms', 'p95_ms', 'fps',
           'compute_p50_ms', 'peak_mem_mb', 'gflops', 'tflops_s', 'describe')


# -- inference timing ---------------------------------------------------------------------
@dataclasses.dataclass
class BenchConfig:
    """What to run; see :func:`parse_args` for the meaning of each field."""

    model: str
    backends: Sequence[str] = ('tensorrt', 'onnxruntime', 'torch')
    precisions: Sequence[str] = ('fp32',)
    sizes: Sequence[Tuple[int, int]] = ()
    iterations: int = 50
    warmup: int = 5
    cuda_graphs: Sequence[bool] = (False,)
    pipeline_frames: int = 10
    output_dir: Optional[str] = None
    threads: int = 0
    engine_cache_dir: Optional[str] = None
    trust_model_code: bool = False


def input_tensor(meta: ModelMeta, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Return a random model input of the given size in the meta's dtype and layout."""
    from mono_depth_ros.core.frame import Preprocessor
    sized = dataclasses.replace(meta, input_height=height, input_width=width)
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Preprocessor(sized)(rgb)


def _backend_options(name: str, config: BenchConfig, graphs: bool) -> Dict:
    if name == 'onnxruntime':
        return {'threads': config.threads}
    if name == 'torch':
        return {'cuda_graphs': graphs, 'trust_model_code': config.trust_model_code}
    if name == 'tensorrt':
        opts = {'self_check': False}
        if config.engine_cache_dir:
            opts['engine_cache_dir'] = config.engine_cache_dir
        return opts
    return {}


def time_backend(backend, tensor: np.ndarray, iterations: int, warmup: int) -> Dict:
    """Return latency figures of backend.infer(tensor), plus device-only time when possible."""
    base_rss = rss_bytes()
    peak_rss = base_rss
    torch_cuda = getattr(backend, 'device', None) is not None and getattr(
        backend.device, 'type', '') == 'cuda'
    if torch_cuda:
        backend.torch.cuda.reset_peak_memory_stats(backend.device)
    for _ in range(warmup):
        backend.infer(tensor)
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        backend.infer(tensor)
        samples.append(time.perf_counter() - start)
        peak_rss = max(peak_rss, rss_bytes())
    out = {'p50_ms': percentile_ms(samples, 50), 'p95_ms': percentile_ms(samples, 95)}
    out['fps'] = 1000.0 / out['p50_ms'] if out['p50_ms'] > 0 else float('inf')
    if hasattr(backend, 'infer_tensor') and torch_cuda:
        x = backend.to_device(tensor)
        backend.synchronize()
        device_samples = []
        for _ in range(iterations):
            start = time.perf_counter()
            backend.infer_tensor(x)
            backend.synchronize()
            device_samples.append(time.perf_counter() - start)
        out['compute_p50_ms'] = percentile_ms(device_samples, 50)
        out['peak_mem_mb'] = backend.torch.cuda.max_memory_allocated(backend.device) / 2**20
    else:
        out['peak_mem_mb'] = max(0, peak_rss - base_rss) / 2**20
    return out


def run_inference_bench(config: BenchConfig, log=print) -> Tuple[List[Dict], ModelMeta]:
    """Return one row per backend x precision x size x cuda_graphs, skips included."""
    meta = read_meta(config.model, config.trust_model_code)
    sizes = list(config.sizes) or [(meta.input_height, meta.input_width)]
    availability = available_backends()
    rows: List[Dict] = []
    flops_cache: Dict[Tuple[int, int], Optional[float]] = {}
    for name in config.backends:
        ok, why = availability.get(name, (False, 'unknown backend'))
        # A TensorRT profile is tuned for its optimum, so a dynamic model gets one engine per
        # size; every other backend runs all sizes from one instance.
        per_size = name == 'tensorrt' and meta.dynamic_shape
        groups = [[size] for size in sizes] if per_size else [sizes]
        for precision in config.precisions:
            graph_options = config.cuda_graphs if name == 'torch' else (False,)
            for graphs in graph_options:
                base = {'backend': name, 'precision': precision, 'cuda_graphs': graphs}
                for group in groups:
                    if not ok:
                        rows.extend(dict(base, size=f'{h}x{w}', status=f'skipped: {why}')
                                    for h, w in group)
                        continue
                    options = _backend_options(name, config, graphs)
                    if per_size:
                        options.update(height=group[0][0], width=group[0][1])
                    rows.extend(_bench_backend(name, options, base, group, meta, config,
                                               flops_cache, log))
    return rows, meta


def _bench_backend(name, options, base, sizes, meta, config, flops_cache, log) -> List[Dict]:
    """Open one backend instance and time it at each size; skips become rows too."""
    precision, graphs = base['precision'], base['cuda_graphs']
    # TensorRT allocates outside torch and mostly outside the process heap: its memory is
    # what the device lost while the engine was loaded and run.
    device_before = device_used_bytes() if name == 'tensorrt' else None
    try:
        backend = backend_class(name).from_file(config.model, precision=precision, **options)
    except BackendError as exc:
        return [dict(base, size=f'{h}x{w}', status=f'skipped: {exc}') for h, w in sizes]
    rows = []
    try:
        if backend.precision != precision:
            # A row must not be labelled with a precision that did not run.
            return [dict(base, size=f'{h}x{w}',
                         status=f'skipped: {name} runs this model in {backend.precision}')
                    for h, w in sizes]
        if graphs and not getattr(backend, 'use_cuda_graphs', False):
            return [dict(base, size=f'{h}x{w}', status='skipped: CUDA graphs need torch on CUDA')
                    for h, w in sizes]
        for h, w in sizes:
            row = _bench_size(backend, meta, h, w, base, config, flops_cache, log)
            device_after = device_used_bytes() if device_before is not None else None
            if device_after is not None and row.get('status') == 'ok':
                row['peak_mem_mb'] = max(0, device_after - device_before) / 2**20
            rows.append(row)
    finally:
        backend.close()
    return rows


def _bench_size(backend, meta, h, w, base, config, flops_cache, log) -> Dict:
    row = dict(base, size=f'{h}x{w}')
    native = (h, w) == (meta.input_height, meta.input_width)
    if not native and not meta.dynamic_shape and backend.name != 'torch':
        row['status'] = (f'skipped: the model has a fixed {meta.input_height}x'
                         f'{meta.input_width} input (export with --dynamic)')
        return row
    tensor = input_tensor(backend.meta, h, w)
    try:
        row.update(time_backend(backend, tensor, config.iterations, config.warmup))
    except Exception as exc:  # noqa: BLE001 - report the failure in the table, keep going
        row['status'] = f'failed: {type(exc).__name__}: {exc}'
        return row
    row['status'] = 'ok'
    row['describe'] = backend.describe()
    if (h, w) not in flops_cache:
        flops_cache[(h, w)] = model_flops(config.model, backend, tensor, h, w)
    flops = flops_cache[(h, w)]
    if flops:
        row['gflops'] = flops / 1e9
        seconds = (row.get('compute_p50_ms') or row['p50_ms']) / 1000.0
        row['tflops_s'] = flops / seconds / 1e12
    log(f'{row["backend"]:12s} {row["precision"]:5s} {row["size"]:>9s} graphs='
        f'{int(bool(row["cuda_graphs"]))}: p50 {row["p50_ms"]:.2f} ms')
    return row


def read_meta(model_path: str, trust_model_code: bool = False) -> ModelMeta:
    """Return the ModelMeta of an ONNX, engine or torch model file (TorchScript if trusted)."""
    if not os.path.isfile(model_path):
        raise BenchError(f'model file not found: {model_path}')
    ext = os.path.splitext(model_path)[1].lower()
    if ext == '.onnx':
        from mono_depth_ros.inference.tensorrt.builder import onnx_meta
        return onnx_meta(model_path)
    if ext in ('.engine', '.plan', '.trt'):
        from mono_depth_ros.inference.tensorrt.engine_cache import read_sidecar
        return ModelMeta.from_dict(read_sidecar(model_path)['meta'])
    from mono_depth_ros.inference.torch_backend import load_torch_model
    return load_torch_model(model_path, trust_model_code=trust_model_code)[1]


def run(config: BenchConfig, log=print) -> Dict:
    """Run both benchmarks, print the tables, write files; return everything as a dict."""
    rows, meta = run_inference_bench(config, log)
    columns = list(COLUMNS)
    pipeline_rows: List[Dict] = []
    source = ''
    pipeline_backend = next((r for r in rows if r.get('status') == 'ok'), None)
    if config.pipeline_frames > 0 and pipeline_backend is not None:
        backend = backend_class(pipeline_backend['backend']).from_file(
            config.model, precision=pipeline_backend['precision'],
            **_backend_options(pipeline_backend['backend'], config, False))
        try:
            frames = pipeline_frames(config.pipeline_frames)
            source = frames[0][2]
            pipeline_rows = run_pipeline_bench(backend, frames)
            describe = backend.describe()
        finally:
            backend.close()
    header = (f'# depth_bench: {os.path.basename(config.model)} ({meta.arch}, '
              f'{meta.input_height}x{meta.input_width})\n\n{environment_line()}; '
              f'{config.iterations} iterations after {config.warmup} warm-up.\n')
    text = header + '\n## Inference\n\n' + markdown_table(rows, columns) + '\n'
    if pipeline_rows:
        h, w = frames[0][0].shape[:2]
        text += (f'\n## Per-frame pipeline ({len(frames)} {source} frames {w}x{h}, '
                 f'{describe})\n\n' + markdown_table(
                     pipeline_rows, PIPELINE_COLUMNS) + '\n')
    log(text)
    if config.output_dir:
        os.makedirs(config.output_dir, exist_ok=True)
        atomic_write_text(os.path.join(config.output_dir, 'bench.md'), text)
        atomic_write_text(os.path.join(config.output_dir, 'bench.csv'), csv_text(rows, columns))
        if pipeline_rows:
            atomic_write_text(os.path.join(config.output_dir, 'pipeline.csv'),
                              csv_text(pipeline_rows, PIPELINE_COLUMNS))
    return {'rows': rows, 'pipeline': pipeline_rows, 'markdown': text, 'meta': meta}


def parse_args(argv=None) -> BenchConfig:
    """Parse the command line into a BenchConfig."""
    parser = argparse.ArgumentParser(prog='depth_bench', description=__doc__.split('\n')[1])
    parser.add_argument('--model', required=True, help='.onnx, .engine, checkpoint or .ts')
    parser.add_argument('--backends', nargs='+', default=['tensorrt', 'onnxruntime', 'torch'],
                        choices=('tensorrt', 'onnxruntime', 'torch'))
    parser.add_argument('--precisions', nargs='+', default=['fp32'],
                        choices=('fp32', 'fp16', 'int8'))
    parser.add_argument('--sizes', nargs='+', default=[], help='HxW (default: the model size)')
    parser.add_argument('--iterations', type=int, default=50)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--cuda-graphs', nargs='+', choices=('on', 'off'), default=['off'])
    parser.add_argument('--pipeline-frames', type=int, default=10,
                        help='real images for the per-frame pipeline (0 = skip it)')
    parser.add_argument('--threads', type=int, default=0, help='ONNX Runtime threads')
    parser.add_argument('--engine-cache-dir')
    parser.add_argument('--output-dir', help='write bench.md, bench.csv, pipeline.csv here')
    parser.add_argument('--trust-model-code', action='store_true',
                        help='load a TorchScript --model: it is code, which runs as it loads')
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error('--iterations must be >= 1')
    try:
        sizes = [parse_size(s) for s in args.sizes]
    except BenchError as exc:
        parser.error(str(exc))
    return BenchConfig(model=args.model, backends=args.backends, precisions=args.precisions,
                       sizes=sizes, iterations=args.iterations, warmup=max(0, args.warmup),
                       cuda_graphs=[v == 'on' for v in args.cuda_graphs],
                       pipeline_frames=args.pipeline_frames, output_dir=args.output_dir,
                       threads=args.threads, engine_cache_dir=args.engine_cache_dir,
                       trust_model_code=args.trust_model_code)


def main(argv=None) -> int:
    """Entry point of the depth_bench console script."""
    config = parse_args(argv)
    try:
        result = run(config)
    except (BenchError, BackendError, OSError, ValueError) as exc:
        print(f'depth_bench: error: {exc}', file=sys.stderr)
        return 1
    return 0 if any(r.get('status') == 'ok' for r in result['rows']) else 1


if __name__ == '__main__':
    sys.exit(main())
