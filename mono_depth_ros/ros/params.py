"""
Every depth_node parameter in one table, its ROS descriptor, and its validation.

The table is plain data and :func:`validate` is plain Python, so both are tested without a
ROS graph and ``depth_node --help`` prints the table without starting ROS. The ROS
descriptors (description, ranges, allowed values, read-only) are built from the same rows,
so what ``ros2 param describe`` says and what the node checks cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from mono_depth_ros.core.health import CAMERA_INFO_MAX_AGE_DEFAULT
from mono_depth_ros.core.image_codec import DEFAULT_MAX_JPEG_SCANS
from mono_depth_ros.core.resample import DEFAULT_EDGE_THRESHOLD, DEFAULT_UPSAMPLING
from mono_depth_ros.core.scale import SCALE_SOURCES

BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'torch')
PRECISIONS = ('fp32', 'fp16', 'int8')
INTRINSICS_MODES = ('camera_info', 'kinect', 'kitti', 'manual')
TRANSPORTS = ('raw', 'compressed')
# Replaced by the standard qos_overrides parameters: a params file or command line that
# still sets one is refused with this reason, not silently ignored.
REMOVED = {
    name: (f'parameter {name} was removed: set QoS with the standard qos_overrides '
           'parameters, e.g. qos_overrides./depth/image.publisher.reliability:=best_effort '
           '(outputs are reliable and subscriptions sensor-data by default)')
    for name in ('qos_reliability', 'output_reliability', 'qos_depth')}
# The depth image's size ratio was output_scale, a name the model metadata also uses (for
# the raw output's affine scale): renamed, and the old name refused with the new one.
REMOVED['output_scale'] = ('parameter output_scale was renamed depth_size_ratio (the depth '
                           "image's size relative to the input image)")
# '' = the mode the model declares in its metadata.
RESIZE_MODES = ('', 'stretch', 'crop', 'pad')
DEPTH_UPSAMPLING = ('nearest', 'bilinear', 'edge_aware')

# A 4096x2160 (DCI 4K) image passes; a decompression bomb's declared size does not.
MAX_INPUT_PIXELS_DEFAULT = 4096 * 2160
# A camera's progressive JPEG has about 10 scans; a scan bomb has thousands (see image_codec).
MAX_JPEG_SCANS_DEFAULT = DEFAULT_MAX_JPEG_SCANS
# Outputs above about 1.2 Mpx do not fit the shipped 16 MiB shared-memory segment together
# (a 4K depth image alone is 33 MB), and the model's own output is far smaller anyway.
MAX_OUTPUT_PIXELS_DEFAULT = 1280 * 960


@dataclass(frozen=True)
class Param:
    """One parameter: default (its type is the parameter's type), description, limits."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    float_range: Optional[Tuple[float, float]] = None
    int_range: Optional[Tuple[int, int]] = None
    choices: Optional[Tuple[str, ...]] = None

    @property
    def type_name(self) -> str:
        """Return the ROS parameter type name: bool, integer, double or string."""
        return {bool: 'bool', int: 'integer', float: 'double', str: 'string'}[type(self.default)]


PARAMETERS: Tuple[Param, ...] = (
    # -- model and backend (read-only: a change needs a restart) -----------------------------
    Param('model_path', '', 'ONNX model, TensorRT engine, or TorchScript (with '
          'trust_model_code); empty = the bundled model. A training checkpoint is refused: '
          'export it with training/export_onnx.py', read_only=True),
    Param('backend', 'auto', 'inference backend', read_only=True, choices=BACKENDS),
    Param('precision', 'fp32', 'inference precision (TensorRT; torch on CUDA)', read_only=True,
          choices=PRECISIONS),
    Param('engine_cache_dir', '', 'folder for cached TensorRT engines; empty = '
          '~/.cache/mono_depth_ros/engines', read_only=True),
    Param('trust_model_code', False, 'load a TorchScript model_path: TorchScript is a '
          "program, which runs with the node's rights as it loads; set true only for a file "
          'you trust as you trust code (ONNX and engines built here are data)',
          read_only=True),
    # -- camera ------------------------------------------------------------------------------
    Param('intrinsics', 'camera_info', 'where the camera intrinsics come from: camera_info '
          '(P, else K, with binning and roi), the kinect or kitti preset (refused at another '
          'aspect ratio), or manual fx fy cx cy', choices=INTRINSICS_MODES),
    Param('fx', 0.0, 'manual focal length x, pixels at the input resolution',
          float_range=(0.0, 1e6)),
    Param('fy', 0.0, 'manual focal length y, pixels at the input resolution',
          float_range=(0.0, 1e6)),
    Param('cx', 0.0, 'manual principal point x, pixels at the input resolution (required)',
          float_range=(0.0, 1e6)),
    Param('cy', 0.0, 'manual principal point y, pixels at the input resolution (required)',
          float_range=(0.0, 1e6)),
    # -- model input and output ----------------------------------------------------------------
    Param('resize_mode', '', 'how an image of another aspect is fitted to the model: stretch, '
          'crop or pad; empty = what the model declares', choices=RESIZE_MODES),
    Param('min_depth', 0.0, 'nearest valid depth, m; 0 = from the model metadata',
          float_range=(0.0, 1000.0)),
    Param('max_depth', 0.0, 'farthest valid depth, m; 0 = from the model metadata',
          float_range=(0.0, 1000.0)),
    Param('depth_size_ratio', 1.0, 'depth image size relative to the input image',
          float_range=(0.05, 1.0)),
    Param('max_output_pixels', MAX_OUTPUT_PIXELS_DEFAULT, 'largest depth image, pixels: a '
          'larger input is scaled down further (with a warning that gives the sizes), so that '
          'outputs fit the shared-memory transport; 0 = no cap', int_range=(0, 2 ** 31 - 1)),
    Param('depth_upsampling', DEFAULT_UPSAMPLING, 'how the model output is resized to the '
          'output size: nearest, bilinear, or edge_aware (bilinear, NaN across depth edges)',
          choices=DEPTH_UPSAMPLING),
    Param('edge_threshold', DEFAULT_EDGE_THRESHOLD, 'edge_aware: neighbours whose depths '
          'differ by more than this fraction are not mixed', float_range=(0.001, 1.0)),
    # -- scale source (relative models; a metric model's scale correction) -------------------
    Param('scale_source', 'none', 'where metric scale comes from: none (metric models only; a '
          'relative model then publishes depth/relative alone), ground_plane (camera_height, '
          'camera_pitch), sparse_depth (the sparse_depth or sparse_points topic), range (the '
          "range topic), fixed (scale, shift), motion (the camera's own motion: odom_frame "
          'to the image frame through tf)', read_only=True, choices=SCALE_SOURCES),
    Param('scale_combine', '', 'more sources fitted together with scale_source in one '
          'weighted fit, comma-separated with optional weights (scale_source weighs 1): '
          "'range', 'sparse_depth:2,range'; empty = scale_source alone", read_only=True),
    Param('odom_frame', 'odom', 'motion: the fixed frame whose transform to the image frame '
          'gives the camera pose (REP 105 odom)', read_only=True),
    Param('motion_min_baseline', 0.05, 'motion: least camera travel from the keyframe to '
          'triangulate, m; less (standing, rotating in place) holds the last scale',
          read_only=True, float_range=(0.001, 10.0)),
    Param('motion_max_keyframe_age', 1.0, 'motion: a keyframe older than this is replaced, s',
          read_only=True, float_range=(0.05, 60.0)),
    Param('motion_tracks', 150, 'motion: features tracked from each keyframe',
          read_only=True, int_range=(8, 5000)),
    Param('camera_height', 0.0, 'ground_plane: height of the camera above a flat floor, m',
          float_range=(0.0, 100.0)),
    Param('camera_pitch', 0.0, 'ground_plane: downward pitch of the optical axis, rad '
          '(positive looks down); with an inverse-depth model it also fixes the shift, so '
          'give it precisely', float_range=(-1.5, 1.5)),
    Param('ground_normal_tolerance', 0.17, 'ground_plane: largest tilt of the fitted floor '
          'from the expected one, rad', float_range=(0.01, 1.0)),
    Param('scale', 1.0, "fixed: scale of the affine map in the model's space (depth, or "
          'inverse depth for inverse-depth models)', float_range=(1e-9, 1e9)),
    Param('shift', 0.0, "fixed: shift of that map, in the model's space",
          float_range=(-1e9, 1e9)),
    Param('sparse_max_age', 0.1, 'sparse_depth and range: use the sample whose stamp is '
          'nearest the frame within this many seconds; older ones are ignored and counted',
          float_range=(0.0, 10.0)),
    Param('scale_smoothing', 0.0, 'time constant of the exponential smoothing of the fitted '
          'scale and shift, s; 0 = none', float_range=(0.0, 60.0)),
    Param('scale_max_jump', 0.3, 'reject (and count) a fit whose scale differs from the '
          'current one by more than this fraction; 0 = never', float_range=(0.0, 100.0)),
    Param('scale_hold', 1.0, 'keep the last good scale for this many seconds without a good '
          'fit; after that, no metric output until a fit succeeds', float_range=(0.0, 3600.0)),
    Param('scale_min_inliers', 30, 'a fit with fewer inliers is rejected and counted',
          int_range=(3, 1000000)),
    # -- outputs -------------------------------------------------------------------------------
    Param('publish_points', True, 'publish the organized point cloud on points'),
    Param('points_rgb', True, 'add rgb to the point cloud'),
    Param('cloud_decimation', 2, 'keep every n-th depth pixel in the cloud',
          int_range=(1, 16)),
    Param('frame_id', '', "output frame_id; empty = the input image's"),
    # -- input -----------------------------------------------------------------------------------
    Param('input_transport', 'raw', 'subscribe to image (raw) or image/compressed',
          read_only=True, choices=TRANSPORTS),
    Param('max_input_pixels', MAX_INPUT_PIXELS_DEFAULT, 'largest input image accepted, pixels '
          '(checked on the declared size, before decoding)', int_range=(1, 2 ** 31 - 1)),
    Param('max_jpeg_scans', MAX_JPEG_SCANS_DEFAULT, 'most scans a (progressive) JPEG may '
          'have, counted before decoding: each scan costs a pass over the whole image',
          int_range=(1, 1000000)),
    Param('max_rate_hz', 0.0, 'process at most this many frames per second; 0 = all',
          float_range=(0.0, 1000.0)),
    Param('camera_info_tolerance', 0.005, 'an image is paired with the CameraInfo of the same '
          'stamp, else the nearest within this many seconds, else the newest',
          float_range=(0.0, 1.0)),
    Param('camera_info_max_age', CAMERA_INFO_MAX_AGE_DEFAULT, 'diagnostics WARN "camera_info '
          'stale" when the newest CameraInfo is older than this many seconds while images '
          'arrive (the node keeps using it); the default fits 1 to 60 Hz cameras',
          float_range=(0.01, 3600.0)),
    # -- QoS and diagnostics --------------------------------------------------------------------
    Param('diagnostics_period', 1.0, 'seconds between /diagnostics messages; levels judge the '
          'last period', read_only=True, float_range=(0.1, 60.0)),
)
BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMETERS}


def defaults() -> Dict[str, Any]:
    """Return {name: default} for every parameter."""
    return {p.name: p.default for p in PARAMETERS}


def _check_one(param: Param, value: Any) -> Optional[str]:
    kind = type(param.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return (f'{param.name} must be a {param.type_name}, got {type(value).__name__} '
                f'{value!r}')
    if param.choices is not None and value not in param.choices:
        shown = ', '.join(repr(c) if c == '' else c for c in param.choices)
        return f'{param.name} must be one of {shown}; got {value!r}'
    if kind is float and not math.isfinite(value):
        return f'{param.name} must be finite, got {value}'
    limits = param.float_range or param.int_range
    if limits is not None and not limits[0] <= value <= limits[1]:
        return f'{param.name} must be in [{limits[0]}, {limits[1]}], got {value}'
    return None


def validate(cfg: Mapping[str, Any], model_depth_range: Optional[Tuple[float, float]] = None
             ) -> Optional[str]:
    """
    Return why a whole configuration is invalid, or None when it is valid.

    ``model_depth_range`` is the model's (min_depth, max_depth), which a 0 parameter means;
    before the model is loaded only the parameters' own values are compared.
    """
    for param in PARAMETERS:
        if param.name in cfg:
            problem = _check_one(param, cfg[param.name])
            if problem:
                return problem
    lo, hi = float(cfg.get('min_depth', 0.0)), float(cfg.get('max_depth', 0.0))
    if model_depth_range is not None:
        lo, hi = lo or model_depth_range[0], hi or model_depth_range[1]
    if (model_depth_range is not None or (lo and hi)) and not lo < hi:
        return f'min_depth ({lo}) must be smaller than max_depth ({hi})'
    if cfg.get('scale_source') == 'ground_plane' and not float(cfg.get('camera_height',
                                                                       0.0)) > 0:
        return ('scale_source ground_plane needs camera_height, the height of the camera '
                'above the floor in metres (0 = not set)')
    if cfg.get('intrinsics') == 'manual':
        missing = [n for n in ('fx', 'fy', 'cx', 'cy') if not float(cfg.get(n, 0.0)) > 0]
        if missing:
            return (f'intrinsics manual needs fx, fy, cx and cy (pixels at the input '
                    f'resolution); {", ".join(missing)} not set (0)')
    frame_problem = frame_id_problem(str(cfg.get('frame_id', '')))
    if frame_problem:
        return f'frame_id {frame_problem}'
    return None


# A frame name as tf2 takes one (no leading '/': tf2/src/buffer_core.cpp, validateFrameId)
# and as a log line or a message header can carry it.
MAX_FRAME_ID_LENGTH = 256


def frame_id_problem(frame_id: str) -> Optional[str]:
    """Return why a (non-empty) frame_id is no frame name, or None; '' means the input's."""
    if not frame_id:
        return None
    if len(frame_id) > MAX_FRAME_ID_LENGTH:
        return (f'has {len(frame_id)} characters (at most {MAX_FRAME_ID_LENGTH}): '
                f'{frame_id[:40]!r}...')
    shown = repr(frame_id)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in frame_id):
        return f'{shown} holds control characters (such as NUL)'
    if any(c.isspace() for c in frame_id):
        return f'{shown} holds a space'
    if frame_id.startswith('/'):
        return f"{shown} must not start with '/' (tf2 refuses such frame names)"
    return None


def effective_depth_range(cfg: Mapping[str, Any], model_min: float,
                          model_max: float) -> Tuple[float, float]:
    """Return (min_depth, max_depth): the parameters, or the model's where they are 0."""
    return float(cfg['min_depth']) or model_min, float(cfg['max_depth']) or model_max


def descriptor(param: Param):
    """Return the rcl_interfaces ParameterDescriptor of one parameter."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    ptype = {'bool': ParameterType.PARAMETER_BOOL, 'integer': ParameterType.PARAMETER_INTEGER,
             'double': ParameterType.PARAMETER_DOUBLE,
             'string': ParameterType.PARAMETER_STRING}[param.type_name]
    d = ParameterDescriptor(description=param.description, type=ptype,
                            read_only=param.read_only)
    if param.float_range is not None:
        d.floating_point_range = [FloatingPointRange(
            from_value=float(param.float_range[0]), to_value=float(param.float_range[1]),
            step=0.0)]
    if param.int_range is not None:
        d.integer_range = [IntegerRange(from_value=int(param.int_range[0]),
                                        to_value=int(param.int_range[1]), step=1)]
    if param.choices is not None:
        d.additional_constraints = 'one of: ' + ', '.join(
            "'' (from the model)" if c == '' else c for c in param.choices)
    return d


def _limits(param: Param) -> str:
    if param.choices is not None:
        return ' | '.join("''" if c == '' else c for c in param.choices)
    limits = param.float_range or param.int_range
    if limits is not None:
        return f'[{limits[0]:g}, {limits[1]:g}]'
    return ''


def help_text(program: str = 'depth_node') -> str:
    """Return the usage line and the parameter table (what ``depth_node --help`` prints)."""
    rows = [(p.name, p.type_name, repr(p.default) if p.default == '' else str(p.default),
             _limits(p), p.description + (' (read-only)' if p.read_only else ''))
            for p in PARAMETERS]
    widths = [max(len(r[i]) for r in rows + [('name', 'type', 'default', 'values', '')])
              for i in range(4)]
    lines = [f'usage: {program} [--ros-args -p NAME:=VALUE ... -r FROM:=TO ...]',
             '',
             'Metric depth images and point clouds from one RGB camera. Subscribes to image '
             '(or image/compressed) and camera_info;',
             'publishes depth/image, depth/camera_info, depth/colored, points and '
             '/diagnostics.',
             'QoS: outputs reliable (keep last 2), subscriptions sensor data; change them with '
             '-p qos_overrides./<topic>.publisher|subscription.reliability|depth|history:=...',
             '',
             'parameters:',
             '  ' + '  '.join(h.ljust(w) for h, w in zip(('name', 'type', 'default', 'values'),
                                                         widths)) + '  description']
    for row in rows:
        lines.append('  ' + '  '.join(c.ljust(w) for c, w in zip(row[:4], widths)) + '  ' +
                     row[4])
    return '\n'.join(lines) + '\n'
