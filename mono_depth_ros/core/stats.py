"""Counters, rates and latency statistics for the node's /diagnostics (no ROS imports)."""

from __future__ import annotations

from collections import Counter, deque
import threading
import time
from typing import Deque, Dict, Optional

import numpy as np

# Bad-input kinds, counted separately so users see what is wrong with their camera.
BAD_INPUT_KINDS = (
    'unsupported_encoding', 'zero_size', 'bad_step', 'truncated', 'odd_width', 'corrupt_image',
    'bad_camera_info', 'camera_info_size_mismatch', 'no_camera_info', 'model_nonfinite',
)


class Window:
    """Last-N samples of a quantity with percentiles."""

    def __init__(self, size: int = 300):
        self.values: Deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self.values.append(float(value))

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.values, q)) if self.values else float('nan')

    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else float('nan')


class Stats:
    """Thread-safe node statistics: counters, per-stage times, latency and output rate."""

    STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'colored', 'cloud', 'publish')

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.stages: Dict[str, Window] = {s: Window(window) for s in self.STAGES}
        self.latency = Window(window)
        self.total = Window(window)
        self._out_times: Deque[float] = deque(maxlen=window)

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name].add(seconds * 1e3)

    def frame_out(self, latency_s: Optional[float], total_s: float) -> None:
        with self._lock:
            self.counts['frames_out'] += 1
            self._out_times.append(time.monotonic())
            if latency_s is not None:
                self.latency.add(latency_s * 1e3)
            self.total.add(total_s * 1e3)

    def rate_hz(self, horizon_s: float = 5.0) -> float:
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._out_times if now - t <= horizon_s]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)

    def snapshot(self) -> Dict[str, float]:
        """Return a flat dict of everything, for diagnostics and tests."""
        rate = self.rate_hz()
        with self._lock:
            out: Dict[str, float] = {k: float(self.counts.get(k, 0)) for k in
                                     ('frames_in', 'frames_out', 'dropped', 'rate_limited',
                                      'points_computed', 'colored_computed')}
            out.update({f'bad_{k}': float(self.counts.get(k, 0)) for k in BAD_INPUT_KINDS})
            out['bad_input_total'] = float(sum(self.counts.get(k, 0) for k in BAD_INPUT_KINDS))
            # Any other counter (for example skipped_no_subscribers) under its own name.
            out.update({k: float(v) for k, v in self.counts.items()
                        if k not in out and k not in BAD_INPUT_KINDS})
            out['rate_hz'] = rate
            out['latency_p50_ms'] = self.latency.percentile(50)
            out['latency_p95_ms'] = self.latency.percentile(95)
            out['frame_time_mean_ms'] = self.total.mean()
            for name, window in self.stages.items():
                out[f'{name}_ms'] = window.mean()
        return out
