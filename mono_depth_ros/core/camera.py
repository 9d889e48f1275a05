"""
Which camera took a frame: CameraInfo, a preset, or manual intrinsics (no ROS imports).

CameraInfo is read exactly as image_geometry's ``PinholeCameraModel.fromCameraInfo``:
the intrinsics are the rectified projection **P** (fx = P[0], fy = P[5], cx = P[2],
cy = P[6]) when P is set, K otherwise, then the ROI offset is subtracted from the principal
point and ``binning_x/binning_y`` divide fx, cx and fy, cy. The image those intrinsics
describe is the ROI (the whole image when the ROI is all zero) divided by the binning, so
depth_image_proc and this package build the same rays for the same camera.

Every answer is one value, :class:`Camera`: the intrinsics, or the counter kind and the
reason why there are none, so a camera and its problem can never disagree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
import math
from typing import Any, Deque, Optional, Tuple

from mono_depth_ros.core.intrinsics import Intrinsics, IntrinsicsError, preset

# Focal lengths in pixels per pixel of the image's larger side: 0.02 is a ~176 degree field
# of view, 100 about 0.6 degrees. Outside that the numbers are broken, not a lens.
MIN_FOCAL_PER_PIXEL = 0.02
MAX_FOCAL_PER_PIXEL = 100.0
# KITTI's raw sequences range from 1224x370 to 1242x376 (aspect 3.27-3.31).
PRESET_ASPECT_TOLERANCE = 0.02
PRESET_NAMES = {'kinect': 'kinect_nyu', 'kitti': 'kitti'}


@dataclass(frozen=True)
class Camera:
    """The intrinsics for an image, or the counter kind and reason why there are none."""

    intrinsics: Optional[Intrinsics] = None
    problem: str = ''
    reason: str = ''
    warning: str = ''  # something to tell the user once (distortion with P unset)

    @property
    def ok(self) -> bool:
        return self.intrinsics is not None

    @classmethod
    def refused(cls, problem: str, reason: str) -> 'Camera':
        return cls(None, problem, reason)


def plausibility_problem(fx: float, fy: float, cx: float, cy: float, width: int,
                         height: int) -> Optional[str]:
    """Return why these intrinsics cannot describe a width x height image, or None."""
    values = {'fx': fx, 'fy': fy, 'cx': cx, 'cy': cy}
    for name, value in values.items():
        if not math.isfinite(value):
            return f'{name} is not finite ({value})'
    if width <= 0 or height <= 0:
        return f'image size must be positive, got {width}x{height}'
    side = max(width, height)
    lo, hi = MIN_FOCAL_PER_PIXEL * side, MAX_FOCAL_PER_PIXEL * side
    for name in ('fx', 'fy'):
        if not lo <= values[name] <= hi:
            return (f'{name} = {values[name]:g} is implausible for a {width}x{height} image '
                    f'(expected {lo:g} to {hi:g} pixels)')
    if not -width <= cx <= 2 * width or not -height <= cy <= 2 * height:
        return (f'principal point ({cx:g}, {cy:g}) is implausible for a {width}x{height} '
                'image')
    return None


def camera_from_info(msg: Any) -> Camera:
    """Return the camera of a sensor_msgs/CameraInfo (or any object with its fields)."""
    try:
        k = [float(v) for v in msg.k]
        p = [float(v) for v in msg.p]
        d = [float(v) for v in msg.d]
        width, height = int(msg.width), int(msg.height)
        bx, by = max(1, int(msg.binning_x)), max(1, int(msg.binning_y))
        roi = msg.roi
        x0, y0 = int(roi.x_offset), int(roi.y_offset)
        rw, rh = int(roi.width), int(roi.height)
    except (AttributeError, TypeError, ValueError) as exc:
        return Camera.refused('bad_camera_info', f'not a CameraInfo: {exc}')
    if width <= 0 or height <= 0:
        return Camera.refused('bad_camera_info', f'CameraInfo has zero size ({width}x{height})')
    if (x0, y0, rw, rh) == (0, 0, 0, 0):
        rw, rh = width, height
    if rw <= 0 or rh <= 0 or x0 < 0 or y0 < 0 or x0 + rw > width or y0 + rh > height:
        return Camera.refused('bad_camera_info', f'roi {rw}x{rh}+{x0}+{y0} does not fit the '
                              f'{width}x{height} camera')
    use_p = len(p) == 12 and p[0] != 0.0
    if use_p:
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
    else:
        if len(k) != 9 or k[8] != 1.0:
            return Camera.refused('bad_camera_info', 'CameraInfo has neither P nor a valid K '
                                  f'(K[2,2] = {k[8] if len(k) == 9 else "?"})')
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    fx, cx = fx / bx, (cx - x0) / bx
    fy, cy = fy / by, (cy - y0) / by
    out_w, out_h = rw // bx, rh // by
    problem = plausibility_problem(fx, fy, cx, cy, out_w, out_h)
    if problem:
        return Camera.refused('bad_camera_info', f'CameraInfo: {problem}')
    warning = ''
    if not use_p and any(abs(v) > 1e-12 for v in d):
        warning = ('camera_info has non-zero distortion and no P: depth_node treats the image '
                   'as rectified with K. Feed it image_rect (and its CameraInfo) from '
                   'image_proc for exact clouds.')
    try:
        return Camera(Intrinsics(fx, fy, cx, cy, out_w, out_h), warning=warning)
    except IntrinsicsError as exc:
        return Camera.refused('bad_camera_info', f'CameraInfo: {exc}')


def preset_camera(name: str, width: int, height: int) -> Camera:
    """Return a preset camera at width x height, refused when the aspect ratio differs."""
    base = preset(PRESET_NAMES.get(name, name))
    image_aspect, preset_aspect = width / height, base.width / base.height
    if abs(image_aspect / preset_aspect - 1.0) > PRESET_ASPECT_TOLERANCE:
        return Camera.refused(
            'intrinsics_aspect_mismatch',
            f'the {name} preset describes a {base.width}x{base.height} camera (aspect '
            f'{preset_aspect:.3f}) but the image is {width}x{height} ({image_aspect:.3f}); '
            'a preset is not stretched: use intrinsics camera_info or manual')
    return Camera(base.resize(width, height))


def manual_camera(fx: float, fy: float, cx: float, cy: float, width: int,
                  height: int) -> Camera:
    """Return the manual intrinsics (pixels at the input resolution) for this image."""
    problem = plausibility_problem(fx, fy, cx, cy, width, height)
    if problem:
        return Camera.refused('bad_camera_info', f'manual intrinsics: {problem}')
    return Camera(Intrinsics(fx, fy, cx, cy, width, height))


class CameraInfoBuffer:
    """
    The last few CameraInfo cameras by stamp, to pair each image with its own.

    As depth_image_proc's camera subscriber: the CameraInfo with the image's stamp; else the
    nearest within ``tolerance_s``; else (a driver that stamps CameraInfo differently, or
    a static one) the newest, which the caller still checks against the image size.
    """

    def __init__(self, size: int = 16):
        self._entries: Deque[Tuple[int, Camera]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, stamp_ns: int, camera: Camera) -> None:
        self._entries.append((int(stamp_ns), camera))

    def match(self, stamp_ns: int, tolerance_s: float = 0.0) -> Tuple[Optional[Camera], str]:
        """Return (camera, how): how is 'exact', 'nearest', 'newest', or 'none' (empty)."""
        if not self._entries:
            return None, 'none'
        entries = list(self._entries)
        best_stamp, best = min(entries, key=lambda e: abs(e[0] - stamp_ns))
        if best_stamp == stamp_ns:
            return best, 'exact'
        if abs(best_stamp - stamp_ns) <= tolerance_s * 1e9:
            return best, 'nearest'
        return entries[-1][1], 'newest'


def output_size(width: int, height: int, size_ratio: float,
                max_output_pixels: int = 0) -> Tuple[int, int, bool]:
    """
    Return (out_width, out_height, capped): the depth image size for an input image.

    ``size_ratio`` scales the input; when the result has more than ``max_output_pixels``
    pixels (0 = no cap) the input size is divided by an integer instead: the smallest that
    fits the cap and divides both sides (1920x1080 gives 960x540, not 1477x831), so that
    the camera image is an exact multiple of the depth image, which RTAB-Map requires
    (rtabmap corelib/src/util3d.cpp, cloudFromDepthRGB: ``UASSERT(imageRgb.rows %
    imageDepth.rows == 0 && imageRgb.cols % imageDepth.cols == 0)``). Where no such
    divisor is within twice the smallest factor that fits, the smallest factor that fits is
    used and the sides are rounded down (see :func:`integer_factor`).
    """
    scale = float(size_ratio)
    if max_output_pixels and width * height * scale * scale > max_output_pixels:
        n = integer_factor(width, height, max_output_pixels)
        out_w, out_h = max(1, width // n), max(1, height // n)
        # At an extreme aspect (4,000,000x1) the short side rounds up to 1 and the product
        # is over the cap again: the long side gives way, so the cap always holds.
        if out_w * out_h > max_output_pixels:
            if out_w >= out_h:
                out_w = max(1, max_output_pixels // out_h)
            else:
                out_h = max(1, max_output_pixels // out_w)
        return out_w, out_h, True
    return max(1, int(round(width * scale))), max(1, int(round(height * scale))), False


def integer_factor(width: int, height: int, max_pixels: int) -> int:
    """
    Return the integer n that divides a width x height image to at most max_pixels pixels.

    The smallest n with ``(width // n) * (height // n) <= max_pixels`` that divides both
    sides exactly, searched up to twice the smallest n that fits; else that smallest n.
    """
    width, height, max_pixels = int(width), int(height), max(1, int(max_pixels))
    n = max(1, int(math.sqrt(width * height / max_pixels)))
    while (width // n) * (height // n) > max_pixels:
        n += 1
    for exact in range(n, 2 * n + 1):
        if width % exact == 0 and height % exact == 0:
            return exact
    return n
