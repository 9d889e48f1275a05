"""
What the benchmarks share: their error, sizes, percentiles, memory and report tables.

Used by ``depth_bench`` and the benchmark scripts: timings go in as seconds and come out
as milliseconds (:func:`percentile_ms`); rows of dicts become Markdown or CSV tables with
one number format (:func:`markdown_table`, :func:`csv_text`), headed by the machine they
were measured on (:func:`environment_line`).
"""

import csv
import io
import os
import platform
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np


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
