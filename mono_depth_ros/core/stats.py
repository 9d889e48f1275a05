"""
Counters, rates, latency statistics and diagnostic levels for the node (no ROS imports).

Problems come in two families, each summed beside the other:

* bad input (a broken image, a bad or missing CameraInfo): the camera's fault, WARN;
  each kind is reported as ``bad_<kind>`` (a kind already starting with ``bad_`` is not
  prefixed twice) and all of them sum to ``bad_input_total``;
* failures (an exception inside the node, a model that outputs NaN): the node cannot do
  its job, ERROR; each is reported under its own name and they sum to ``failures_total``.

:class:`PeriodJudge` gives the level as diagnostic_updater means it: how the last period
went, not the history since start, so a problem that went away returns to OK.
"""

from __future__ import annotations

from collections import Counter, deque
import threading
import time
from typing import Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

# Known bad-input kinds, always reported (as 0 until seen) so users see what can go wrong.
BAD_INPUT_KINDS = (
    'unsupported_encoding', 'zero_size', 'bad_step', 'truncated', 'odd_width', 'corrupt_image',
    'too_large',
    'bad_camera_info', 'camera_info_size_mismatch', 'no_camera_info',
    'intrinsics_aspect_mismatch',
)
# Failures of the node itself.
FAILURE_KINDS = ('internal_error', 'model_nonfinite')

# diagnostic_msgs/DiagnosticStatus levels (the same bytes; no ROS import here).
OK, WARN, ERROR = 0, 1, 2


def diag_key(kind: str) -> str:
    """Return the diagnostics key of a problem kind (the name the log message gives)."""
    if kind in FAILURE_KINDS or kind.startswith('bad_'):
        return kind
    return f'bad_{kind}'


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
    """Thread-safe node statistics: counters, problems, per-stage times, latency, rate."""

    STAGES = ('decode', 'preprocess', 'inference', 'postprocess', 'colored', 'cloud', 'publish')
    FRAME_COUNTERS = ('frames_in', 'frames_out', 'frames_processed', 'dropped', 'rate_limited',
                      'skipped_no_subscribers', 'points_computed', 'colored_computed')

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self.counts: Counter = Counter()
        self.bad: Counter = Counter()
        self.failures: Counter = Counter()
        self.stages: Dict[str, Window] = {s: Window(window) for s in self.STAGES}
        self.latency = Window(window)
        self.total = Window(window)
        self._out_times: Deque[float] = deque(maxlen=window)

    def count(self, key: str, n: int = 1) -> None:
        """Count an event that is not a problem (frames_in, dropped, ...)."""
        with self._lock:
            self.counts[key] += n

    def problem(self, kind: str, n: int = 1) -> str:
        """Count a bad input or a failure (by kind); return its diagnostics key."""
        with self._lock:
            (self.failures if kind in FAILURE_KINDS else self.bad)[kind] += n
        return diag_key(kind)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            window = self.stages.get(name)
            if window is None:
                window = self.stages[name] = Window(self.total.values.maxlen or 300)
            window.add(seconds * 1e3)

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
        """Return a flat dict of everything, each counter once, for diagnostics and tests."""
        rate = self.rate_hz()
        with self._lock:
            out: Dict[str, float] = {k: float(self.counts.get(k, 0))
                                     for k in self.FRAME_COUNTERS}
            out.update({k: float(v) for k, v in self.counts.items() if k not in out})
            for kind in tuple(BAD_INPUT_KINDS) + tuple(k for k in self.bad
                                                       if k not in BAD_INPUT_KINDS):
                out[diag_key(kind)] = float(self.bad.get(kind, 0))
            out['bad_input_total'] = float(sum(self.bad.values()))
            for kind in FAILURE_KINDS:
                out[kind] = float(self.failures.get(kind, 0))
            out['failures_total'] = float(sum(self.failures.values()))
            out['rate_hz'] = rate
            out['latency_p50_ms'] = self.latency.percentile(50)
            out['latency_p95_ms'] = self.latency.percentile(95)
            out['frame_time_mean_ms'] = self.total.mean()
            for name, window in self.stages.items():
                out[f'{name}_ms'] = window.mean()
        return out


class PeriodJudge:
    """
    The diagnostic level and message for the period since the last call.

    In order: failures in the period are ERROR; images received and processed but nothing
    published for ``stall_periods`` periods in a row is ERROR; bad input in the period is
    WARN; other problems the caller reports (for example a relative model without a scale
    source) come next with their own level; no subscribers is OK "idle"; images that
    stopped coming for ``stall_periods`` periods is WARN (a slow camera is not); no images
    since start is OK "waiting".
    """

    def __init__(self, stall_periods: int = 3):
        self.stall_periods = int(stall_periods)
        self.stalled = 0
        self.quiet = 0
        self._last: Dict[str, float] = {}
        self._seen_input = False

    def _delta(self, snap: Mapping[str, float], key: str) -> float:
        return snap.get(key, 0.0) - self._last.get(key, 0.0)

    def judge(self, snap: Mapping[str, float], subscribed: bool,
              extra: Sequence[Tuple[int, str]] = ()) -> Tuple[int, str]:
        """Return (level, message) for the period that ends with this snapshot."""
        d = {k: self._delta(snap, k) for k in snap}
        self._last = dict(snap)
        frames_in = d.get('frames_in', 0.0)
        if frames_in > 0:
            self._seen_input = True
            self.quiet = 0
        else:
            self.quiet += 1
        # Processed frames that published nothing; frames skipped for lack of subscribers
        # or by max_rate_hz are not a stall.
        if d.get('frames_processed', 0.0) > 0 and d.get('frames_out', 0.0) == 0:
            self.stalled += 1
        elif d.get('frames_out', 0.0) > 0 or frames_in == 0:
            self.stalled = 0
        failures = self._named(d, FAILURE_KINDS)
        if failures:
            return ERROR, f'failures in the last period: {failures}'
        if self.stalled >= self.stall_periods:
            bad = self._named(d, [k for k in snap if k.startswith('bad_') and
                                  k != 'bad_input_total'])
            return ERROR, (f'receiving images but publishing nothing for {self.stalled} '
                           f'periods' + (f' ({bad})' if bad else ''))
        bad = self._named(d, [k for k in snap if k.startswith('bad_') and
                              k != 'bad_input_total'])
        if bad:
            return WARN, f'bad input in the last period: {bad}'
        for level, message in sorted(extra, key=lambda e: -e[0]):
            if level > OK:
                return level, message
        if not subscribed:
            return OK, 'idle: no subscribers'
        if frames_in == 0:
            if self._seen_input and self.quiet >= self.stall_periods:
                return WARN, f'no images received for {self.quiet} periods'
            return OK, 'waiting for images'
        return OK, 'ok'

    @staticmethod
    def _named(delta: Mapping[str, float], keys) -> str:
        parts: List[str] = [f'{k} +{int(delta[k])}' for k in keys if delta.get(k, 0) > 0]
        return ', '.join(parts)
