"""
Failures a user can see: what the node's diagnostics say beyond its frame counters.

:class:`Health` watches three things a new user meets without any other sign, and turns
them into a diagnostic level and a message that names the topic or the likely cause:

* no image for ``periods`` diagnostics periods and at least ``NO_IMAGE_MIN_S`` (a wrong or
  unremapped topic is silent forever; a camera that starts a little after the node is
  not a problem): WARN naming the input topic and whether it has any publisher;
* published depth with no valid pixel for ``periods`` periods (every pixel beyond
  ``max_depth``, nearer than ``min_depth``, or without an estimate): ERROR naming the likely
  cause (an output scale in the wrong units, inverse depth read as depth, a broken export);
* the newest CameraInfo older than ``camera_info_max_age`` while images arrive: WARN
  "camera_info stale" (the node keeps pairing images with it).

Plain Python and numpy (no ROS), so that it is tested without a graph.
"""

from __future__ import annotations

from collections import Counter
import threading
from typing import Optional, Tuple

import numpy as np

OK, WARN, ERROR = 0, 1, 2
# 1 to 60 Hz cameras: a 1 Hz camera's CameraInfo is at most about 1 s old when the next one
# arrives; 3 s tolerates two lost messages there and still tells a stopped stream quickly.
CAMERA_INFO_MAX_AGE_DEFAULT = 3.0
# No image for this long (and ``periods`` periods) before the WARN: a camera driver started
# beside the node in one launch takes a few seconds.
NO_IMAGE_MIN_S = 5.0
# Every n-th row and column is enough to tell "no valid pixel at all" (and cheap).
SAMPLE_STRIDE = 4

CAUSES = {
    'far': ('every depth pixel is beyond max_depth ({hi:g} m): the model output is likely in '
            'the wrong units (millimetres read as metres: check output_scale in the model '
            'metadata, or import_model --output-scale), or max_depth is too small for the '
            'scene'),
    'near': ('every depth pixel is nearer than min_depth ({lo:g} m): the output scale is '
             'likely too small, or inverse depth is read as depth (check output_mode and '
             'output_scale in the model metadata); or the lens is covered, or min_depth is '
             'too large'),
    'none': ('the model gives no estimate anywhere (NaN, Inf or negative inverse depth): '
             'likely a broken export, a wrong input normalisation, or a wrong output_mode'),
}


def classify_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> str:
    """
    Return 'valid' if a depth image has any valid pixel, else why not: far, near or none.

    Beyond ``max_depth`` (or +Inf) is far, nearer than ``min_depth`` (or -Inf) near, NaN
    none (REP 117's three kinds); the most common kind names an all-invalid image. Every
    ``SAMPLE_STRIDE``-th row and column is looked at.
    """
    d = np.asarray(depth)[::SAMPLE_STRIDE, ::SAMPLE_STRIDE]
    if d.size == 0:
        return 'none'
    with np.errstate(invalid='ignore'):
        far = int(np.count_nonzero(d > max_depth))
        near = int(np.count_nonzero(d < min_depth))
        valid = int(np.count_nonzero((d >= min_depth) & (d <= max_depth)))
    if valid:
        return 'valid'
    none = d.size - far - near
    return max((('far', far), ('near', near), ('none', none)), key=lambda kv: kv[1])[0]


class Health:
    """Per-period checks on input and output; the node feeds it and asks it each period."""

    def __init__(self, periods: int = 3,
                 camera_info_max_age: float = CAMERA_INFO_MAX_AGE_DEFAULT, now: float = 0.0):
        self.periods = int(periods)
        self._image_at = float(now)  # start, then the end of the last period with images
        self.camera_info_max_age = float(camera_info_max_age)
        self.quiet = 0            # periods in a row without an image
        self.invalid = 0          # periods in a row whose depth images had no valid pixel
        self.range = (0.0, 0.0)   # the depth range of the last image judged
        self._lock = threading.Lock()
        self._period: Counter = Counter()
        self._causes: Counter = Counter()
        self._info_at: Optional[float] = None

    # -- fed by the node (any thread) ----------------------------------------------------
    def camera_info(self, now: float) -> None:
        """Note a CameraInfo arriving at monotonic time ``now``."""
        self._info_at = now

    def depth(self, depth: np.ndarray, min_depth: float, max_depth: float) -> str:
        """Judge one output depth image; return its kind (valid, far, near or none)."""
        kind = classify_depth(depth, min_depth, max_depth)
        with self._lock:
            self._period[kind] += 1
            self.range = (float(min_depth), float(max_depth))
        return kind

    def no_estimate(self) -> None:
        """Note a frame whose model output had no finite value at all."""
        with self._lock:
            self._period['none'] += 1

    def camera_info_age(self, now: float) -> Optional[float]:
        """Return the newest CameraInfo's age in seconds, or None before the first."""
        return None if self._info_at is None else max(0.0, now - self._info_at)

    # -- once per diagnostics period -----------------------------------------------------
    def review(self, level: int, message: str, frames_in: float, now: float,
               image_topic: str, image_publishers: int,
               camera_info_topic: Optional[str] = None) -> Tuple[int, str]:
        """
        Return (level, message) for the period, given the frame counters' verdict.

        ``frames_in`` is the number of images that arrived in the period; ``camera_info_topic``
        is None when the intrinsics do not come from CameraInfo.
        """
        with self._lock:
            period, self._period = self._period, Counter()
        self.quiet = 0 if frames_in > 0 else self.quiet + 1
        if frames_in > 0:
            self._image_at = now
        if period['valid']:
            self.invalid = 0
            self._causes.clear()
        elif period:
            self.invalid += 1
            self._causes.update(period)
        if self.invalid >= self.periods:
            kind = self._causes.most_common(1)[0][0]
            lo, hi = self.range
            cause = (f'no valid depth in any image for {self.invalid} periods: '
                     + CAUSES[kind].format(lo=lo, hi=hi))
            return ERROR, cause + (f'; {message}' if level >= ERROR else '')
        if level >= WARN:
            return level, message
        if self.quiet >= self.periods and now - self._image_at >= NO_IMAGE_MIN_S:
            if image_publishers == 0:
                why = ('it has no publisher (check the topic name, the remapping and the '
                       'namespace)')
            else:
                why = (f'it has {image_publishers} publisher(s), but nothing arrives (a '
                       'stopped camera, or an incompatible QoS)')
            return WARN, (f'no image on {image_topic} for {now - self._image_at:.0f} s: '
                          f'{why}')
        age = self.camera_info_age(now)
        if (camera_info_topic is not None and frames_in > 0 and age is not None
                and age > self.camera_info_max_age):
            return WARN, (f'camera_info stale: the newest CameraInfo on {camera_info_topic} '
                          f'is {age:.1f} s old (camera_info_max_age '
                          f'{self.camera_info_max_age:g} s); images are still paired with it')
        return level, message
