"""
The TensorRT startup self-check: which engine to trust, decided without a GPU.

One image goes through the engine and through a reference (ONNX Runtime when installed,
else the fp32 engine). Some JetPack/TensorRT combinations produce silently wrong fp16/int8
engines, so a disagreement beyond tolerance is logged loudly and the backend falls back:
int8/fp16 -> fp32 engine -> ONNX Runtime. These functions are pure logic, tested anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mono_depth_ros.core.model_meta import ModelMeta
from mono_depth_ros.inference.base import BackendError
import numpy as np

#: mean relative error vs the reference that a precision may show before it is distrusted
SELFCHECK_TOLERANCE = {'fp32': 1e-3, 'fp16': 1e-2, 'int8': 1e-1}

Candidate = Tuple[str, str]  # (backend name, precision)


def relative_error(test: np.ndarray, reference: np.ndarray) -> float:
    """Return mean |test - reference| / mean |reference|; inf on shape or finiteness mismatch."""
    test = np.asarray(test, np.float64)
    reference = np.asarray(reference, np.float64)
    if test.shape != reference.shape:
        return math.inf
    good = np.isfinite(reference)
    if not np.isfinite(test[good]).all():
        return math.inf
    if not good.any():
        return 0.0 if not np.isfinite(test).any() else math.inf
    scale = float(np.mean(np.abs(reference[good]))) or 1.0
    return float(np.mean(np.abs(test[good] - reference[good]))) / scale


def fallback_chain(precision: str, onnxruntime_available: bool) -> List[Candidate]:
    """Return the candidates to try, requested first, reference last."""
    chain: List[Candidate] = [('tensorrt', precision)]
    if precision != 'fp32':
        chain.append(('tensorrt', 'fp32'))
    if onnxruntime_available:
        chain.append(('onnxruntime', 'fp32'))
    return chain


@dataclass
class SelfCheckResult:
    """Which candidate passed the self-check, and the log lines explaining it."""

    backend: str
    precision: str
    errors: Dict[Candidate, float]
    messages: List[str]

    @property
    def fell_back(self) -> bool:
        """Return True when the requested candidate was not the one chosen."""
        return bool(self.errors) and next(iter(self.errors)) != (self.backend, self.precision)


def decide_selfcheck(chain: Sequence[Candidate], measure: Callable[[Candidate], float],
                     tolerances: Optional[Dict[str, float]] = None) -> SelfCheckResult:
    """
    Walk the fallback chain; return the first candidate that agrees with the reference.

    The last candidate IS the reference (ONNX Runtime, or the fp32 engine without it), so
    it is accepted unmeasured. ``measure(candidate)`` returns its relative error against the
    reference; an exception from it counts as a failure of that candidate.
    """
    if not chain:
        raise BackendError('self-check needs at least one candidate')
    tolerances = dict(SELFCHECK_TOLERANCE, **(tolerances or {}))
    errors: Dict[Candidate, float] = {}
    messages: List[str] = []
    reference = chain[-1]
    for candidate in chain[:-1]:
        try:
            error = float(measure(candidate))
        except Exception as exc:  # noqa: BLE001 - any failure means: do not trust it
            error = math.inf
            messages.append(f'self-check: {candidate[0]} {candidate[1]} failed to run: {exc}')
        errors[candidate] = error
        limit = tolerances[candidate[1]]
        if error <= limit:
            messages.append(f'self-check: {candidate[0]} {candidate[1]} agrees with '
                            f'{reference[0]} {reference[1]} (relative error {error:.2e} '
                            f'<= {limit:.0e})')
            return SelfCheckResult(candidate[0], candidate[1], errors, messages)
        messages.append(f'SELF-CHECK FAILED: {candidate[0]} {candidate[1]} disagrees with '
                        f'{reference[0]} {reference[1]} (relative error {error:.2e} > '
                        f'{limit:.0e}); falling back')
    errors.setdefault(reference, 0.0)
    if len(chain) == 1:
        messages.append(f'self-check: no reference to compare {reference[0]} {reference[1]} '
                        'with (install onnxruntime to enable it)')
    else:
        messages.append(f'self-check: using the reference {reference[0]} {reference[1]}')
    return SelfCheckResult(reference[0], reference[1], errors, messages)


def selfcheck_image(meta: ModelMeta) -> np.ndarray:
    """Return a deterministic textured RGB image at the model's input size."""
    h, w = meta.input_height, meta.input_width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (h, w, 3)).astype(np.float32)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                     127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 5.0)], axis=-1)
    return np.clip(base * 0.85 + noise, 0, 255).astype(np.uint8)
