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
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import os
import platform
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mono_depth_ros.core.atomic import atomic_write_text
from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import available_backends, backend_class, BackendError
import numpy as np

COLUMNS = ('backend', 'precision', 'size', 'cuda_graphs', 'status', 'p50_ms', 'p95_ms', 'fps',
           'compute_p50_ms', 'peak_mem_mb', 'gflops', 'tflops_s', 'describe')
STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'cloud', 'serialise')
PIPELINE_COLUMNS = ('stage', 'p50_ms', 'p95_ms', 'share', 'cpu_p50_ms')


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why."""


def parse_size(text: str) -> Tuple[int, int]:
    """Parse 'HxW' into (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError as exc:
        raise BenchError(f'size {text!r} is not HxW, e.g. 240x320') from exc
    if h <= 0 or w <= 0:
        raise BenchError(f'size {text!r} must be positive')
    return h, w


def percentile_ms(samples: Sequence[float], q: float) -> float:
    """Return the q-th percentile of samples (seconds) in milliseconds."""
    return float(np.percentile(np.asarray(samples, np.float64), q) * 1000.0)


def rss_bytes(pid: Union[int, str] = 'self') -> int:
    """Return a process's resident set size (this one by default; 0 where /proc is missing)."""
    try:
        with open(f'/proc/{pid}/statm') as handle:
            return int(handle.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


def device_used_bytes() -> Optional[int]:
    """Return the bytes in use on CUDA device 0 (cudaMemGetInfo), or None where unreadable."""
    try:
        from mono_depth_ros.inference.tensorrt import cuda
        free, total = cuda.cuda_check(cuda.cuda_runtime().cudaMemGetInfo())
    except Exception:  # noqa: BLE001 - no cuda-python, no driver, no device
        return None
    return int(total) - int(free)


# -- FLOPs --------------------------------------------------------------------------------
def onnx_flops(model_path: str, height: int, width: int) -> Optional[float]:
    """
    Count FLOPs (2 x MACs) of Conv, ConvTranspose, MatMul and Gemm in an ONNX graph.

    The input's height and width are fixed to the given size before shape inference;
    returns None when a counted node's shape cannot be inferred.
    """
    import onnx
    from onnx import shape_inference
    model = onnx.load(model_path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    layout_nhwc = len(dims) == 4 and dims[3].HasField('dim_value') and dims[3].dim_value == 3
    values = [1, height, width, 3] if layout_nhwc else [1, 3, height, width]
    for dim, value in zip(dims, values):
        dim.Clear()
        dim.dim_value = value
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes: Dict[str, List[int]] = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(
            model.graph.output):
        shape = [d.dim_value if d.HasField('dim_value') else -1
                 for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = shape
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in model.graph.node:
        if node.op_type == 'Constant' and node.attribute and node.attribute[0].name == 'value':
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    counted = [n for n in model.graph.node
               if n.op_type in ('Conv', 'ConvTranspose', 'MatMul', 'Gemm')]
    unknown = sorted({name for n in counted for name in (n.input[0], n.output[0])
                      if shapes.get(name) is None or -1 in shapes[name]})
    if unknown:
        # Static inference cannot follow computed pads or reshapes; one real run can.
        shapes.update(_runtime_shapes(model, unknown, values))
    total = 0
    for node in counted:
        x, w = (shapes.get(n) for n in node.input[:2])
        out = shapes.get(node.output[0])
        # Conv weights are (Cout, Cin / group, k...) and ConvTranspose ones (Cin, Cout /
        # group, k...), so the group count is already in the weight shape.
        if node.op_type == 'Conv':
            needed, macs = (w, out), lambda: int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type == 'ConvTranspose':
            needed, macs = (x, w), lambda: int(np.prod(x)) * int(np.prod(w[1:]))
        else:
            needed, macs = (x, out), lambda: int(np.prod(out)) * x[-1]
        if any(s is None or -1 in s for s in needed):
            return None
        total += macs()
    return 2.0 * total


def _runtime_shapes(model, names: List[str], input_shape: List[int]):
    """Run the model once on zeros with ``names`` exposed as outputs; return their shapes."""
    import onnx
    import onnxruntime as ort
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.value_info[:]
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(probe.SerializeToString(),
                                   providers=['CPUExecutionProvider'])
    info = session.get_inputs()[0]
    dtype = np.uint8 if 'uint8' in info.type else np.float32
    outputs = session.run(names, {info.name: np.zeros(input_shape, dtype)})
    return {name: list(out.shape) for name, out in zip(names, outputs)}


def torch_flops(module, example) -> float:
    """Count FLOPs (2 x MACs) of conv and linear layers with forward hooks."""
    import torch
    total = [0]

    def hook(layer, inputs, output):
        if isinstance(layer, torch.nn.ConvTranspose2d):
            macs = inputs[0].numel() * layer.out_channels // layer.groups * int(
                np.prod(layer.kernel_size))
        elif isinstance(layer, torch.nn.Conv2d):
            macs = output.numel() * layer.in_channels // layer.groups * int(
                np.prod(layer.kernel_size))
        else:
            macs = output.numel() * layer.in_features
        total[0] += int(macs)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))]
    try:
        with torch.inference_mode():
            module(example)
    finally:
        for h in handles:
            h.remove()
    return 2.0 * total[0]


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


def _fmt(value) -> str:
    if value is None or value == '':
        return ''
    if isinstance(value, float):
        if value != value:  # NaN
            return ''
        if abs(value) < 1:
            return f'{value:.4f}'
        return f'{value:.3f}' if abs(value) < 100 else f'{value:.1f}'
    return str(value)


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


def model_flops(model_path: str, backend, tensor, h: int, w: int) -> Optional[float]:
    """Return the model's FLOPs at h x w from its ONNX graph or torch modules, or None."""
    try:
        if model_path.lower().endswith('.onnx'):
            return onnx_flops(model_path, h, w)
        module = getattr(backend, 'module', None)
        if module is not None and getattr(backend, 'kind', '') == 'checkpoint':
            x = backend.to_device(tensor)
            return torch_flops(module, x)
    except Exception:  # noqa: BLE001 - FLOPs are informative only
        return None
    return None


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


# -- the node's per-frame pipeline --------------------------------------------------------
def pipeline_frames(count: int, shared_data: Optional[str] = None):
    """Return [(rgb, Intrinsics)], real NYU images when available, else synthetic rooms."""
    import cv2
    from mono_depth_ros.core.intrinsics import preset
    here = os.path.abspath(__file__)
    workspace = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(here))))
    root = shared_data or os.environ.get('MONO_DEPTH_SHARED_DATA') or os.path.join(
        workspace, 'shared', 'data')
    folder = os.path.join(root, 'nyu', 'rgb')
    frames = []
    if os.path.isdir(folder):
        camera = preset('kinect_nyu')
        for name in sorted(os.listdir(folder))[:count]:
            bgr = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
            if bgr is not None:
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frames.append((rgb, camera.resize(rgb.shape[1], rgb.shape[0]), 'nyu'))
    if not frames:
        from mono_depth_ros.sim.synthetic import SyntheticStream
        stream = SyntheticStream(640, 480, seed=0, frames_per_room=max(1, count // 2))
        frames = [(stream.frame(i).rgb, stream.intrinsics, 'synthetic') for i in range(count)]
    return frames


def run_pipeline_bench(backend, frames, repeats: int = 1, config=None,
                       results: Optional[list] = None) -> List[Dict]:
    """
    Time each per-frame stage of the node's path; return one row per stage (+ total).

    The frames go through :class:`~mono_depth_ros.core.frame.FrameProcessor`, what the
    node runs, with its defaults (``config``: depth and the decimated xyzrgb cloud), after
    a raw rgb8 decode; ``serialise`` is making the message payloads (depth and cloud
    bytes). ``results`` collects each FrameResult when given. A relative model (no metres of
    its own) runs with the fixed scale (1, 0), as under ``scale_source: fixed``; what the
    other scale sources add is measured by ``scripts/bench/bench_scale.py``. Besides wall-clock
    percentiles each row has ``cpu_p50_ms``, this thread's CPU time, which other processes
    on a shared machine inflate far less (run with one OpenCV and one ONNX Runtime thread
    for the one-core cost).
    """
    from mono_depth_ros.core.frame import FrameConfig, FrameProcessor
    from mono_depth_ros.core.image_codec import decode_image, encode_depth, encode_image
    config = config or FrameConfig(want_points=True)
    processor = FrameProcessor(backend.meta, backend, config)
    scale = None if backend.meta.is_metric else (1.0, 0.0)
    times = {stage: [] for stage in STAGES}
    cpus = {stage: [] for stage in STAGES}
    totals, cpu_totals = [], []
    encoded = [(encode_image(rgb, 'rgb8'), rgb.shape, camera) for rgb, camera, _ in frames]
    processor.run(frames[0][0], frames[0][1], scale=scale)  # warm-up outside the clock
    for _ in range(max(1, repeats)):
        for (step, data), shape, camera in encoded:
            h, w = shape[:2]
            t0, c0 = time.perf_counter(), time.thread_time()
            rgb = decode_image('rgb8', w, h, step, data)
            t1, c1 = time.perf_counter(), time.thread_time()
            result = processor.run(rgb, camera, scale=scale)
            t2, c2 = time.perf_counter(), time.thread_time()
            payloads = []
            if result.depth is not None:
                payloads.append(encode_depth(result.depth, '32FC1')[1])
            if result.cloud is not None:
                payloads.append(bytes(result.cloud.data))
            t3, c3 = time.perf_counter(), time.thread_time()
            if not payloads or not all(payloads):
                raise BenchError('the pipeline produced an empty message')
            stage_times = dict(result.times, decode=t1 - t0, serialise=t3 - t2)
            stage_cpu = dict(result.cpu, decode=c1 - c0, serialise=c3 - c2)
            for stage in STAGES:
                times[stage].append(stage_times.get(stage, 0.0))
                cpus[stage].append(stage_cpu.get(stage, 0.0))
            totals.append(t3 - t0)
            cpu_totals.append(c3 - c0)
            if results is not None:
                results.append(result)
    total_p50 = percentile_ms(totals, 50)
    rows = [{'stage': stage, 'p50_ms': percentile_ms(times[stage], 50),
             'p95_ms': percentile_ms(times[stage], 95),
             'share': percentile_ms(times[stage], 50) / total_p50 if total_p50 else 0.0,
             'cpu_p50_ms': percentile_ms(cpus[stage], 50)}
            for stage in STAGES]
    rows.append({'stage': 'total', 'p50_ms': total_p50, 'p95_ms': percentile_ms(totals, 95),
                 'share': 1.0, 'cpu_p50_ms': percentile_ms(cpu_totals, 50)})
    return rows


# -- reporting ----------------------------------------------------------------------------
def markdown_table(rows: List[Dict], columns: Sequence[str]) -> str:
    """Return rows as a Markdown table."""
    lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(_fmt(row.get(c, '')) for c in columns) + ' |')
    return '\n'.join(lines)


def csv_text(rows: List[Dict], columns: Sequence[str]) -> str:
    """Return rows as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction='ignore')
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c, '')) for c in columns})
    return buf.getvalue()


def environment_line() -> str:
    """Describe the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    gpu = ''
    try:
        import torch
        if torch.cuda.is_available():
            gpu = f', GPU {torch.cuda.get_device_name(0)}'
    except ImportError:
        pass
    return (f'{platform.node()} {cpu}, {os.cpu_count()} CPUs{gpu}, '
            f'Python {platform.python_version()}')


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
