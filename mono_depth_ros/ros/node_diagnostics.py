"""
What depth_node reports on /diagnostics: its scale's problems and the status it publishes.

The level and message come from the frame counters (:class:`.stats.PeriodJudge`), the
input's health (:class:`.health.Health`) and :func:`scale_problems`; :func:`depth_status`
puts them in one diagnostic_msgs/DiagnosticStatus with the backend, the model and every
counter as key-value pairs, as diagnostic_updater's tasks do.
"""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

#: diagnostic_msgs WARN: degraded output
WARN = 1


def relative_warning(output_mode: str) -> str:
    """Return the warning for a relative model without a scale source."""
    return (f'relative model ({output_mode}: no metres) and scale_source none: '
            'publishing depth/relative only, no depth or points; set scale_source '
            '(ground_plane, sparse_depth, range or fixed) for metric output')


def scale_problems(meta, scale) -> Sequence[Tuple[int, str]]:
    """Return (level, message) problems beyond the frame counters: the scale's."""
    if meta is None:
        return ()
    if scale is None:
        return () if meta.is_metric else ((WARN, relative_warning(meta.output_mode)),)
    if not scale.metric_now():
        reason = scale.last_fit.reason or 'no fit yet'
        return ((WARN, f'scale_source {scale.config.source} has no scale ({reason}): '
                 'publishing no depth or points until a fit succeeds'),)
    return ()


def depth_status(name: str, level: int, message: str, backend, model_path: str, meta,
                 judge, health, info_age: Optional[float], scale,
                 snap: Dict[str, Any]) -> DiagnosticStatus:
    """Return the node's DiagnosticStatus: the level and message, and the key-value pairs."""
    engine = str(getattr(backend, 'engine_path', '') or '')
    status = DiagnosticStatus(name=f'{name}: depth', hardware_id=backend.describe(),
                              level=bytes([level]), message=message)
    values = [KeyValue(key='backend', value=backend.describe()),
              KeyValue(key='model', value=model_path),
              KeyValue(key='engine', value=engine),
              KeyValue(key='stalled_periods', value=str(judge.stalled)),
              KeyValue(key='output_mode', value=meta.output_mode),
              KeyValue(key='no_image_periods', value=str(health.quiet)),
              KeyValue(key='invalid_depth_periods', value=str(health.invalid)),
              KeyValue(key='camera_info_age_s',
                       value='none' if info_age is None else f'{info_age:.3f}')]
    if scale is not None:
        values += [KeyValue(key=k, value=v) for k, v in scale.diagnostics().items()]
    else:
        values.append(KeyValue(key='scale_source', value='none'))
    for key in sorted(snap):
        value = snap[key]
        values.append(KeyValue(key=key, value='nan' if math.isnan(value) else f'{value:g}'))
    status.values = values
    return status
