"""
The node's per-frame pipeline, timed stage by stage, as depth_bench reports it.

The frames are real NYU images from the shared data when present, else synthetic rooms
(:func:`pipeline_frames`); :func:`run_pipeline_bench` runs them through the node's own
:class:`~mono_depth_ros.core.frame.FrameProcessor` after a raw decode, and makes the
message payloads.
"""

import os
import time
from typing import Dict, List, Optional

from mono_depth_ros.tools.bench_common import BenchError, percentile_ms

STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'cloud', 'serialise')
PIPELINE_COLUMNS = ('stage', 'p50_ms', 'p95_ms', 'share', 'cpu_p50_ms')


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
