"""
depth_node: metric depth images and organized point clouds from one RGB camera.

Threading: subscription callbacks only store the newest message in a one-slot mailbox
(overwriting an unprocessed one counts as a dropped frame); a worker thread decodes, runs
the model and publishes, so the executor never waits on inference and latency stays
bounded when the model is slower than the camera.

A plain rclpy node (not a lifecycle node): the model is loaded in the constructor so that a
missing or corrupt model fails at start with one clear line and exit code 1, and SIGINT or
SIGTERM stop the worker and exit 0. See README.md for the topic and parameter tables.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Dict, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from mono_depth_ros.core import image_codec
from mono_depth_ros.core.colormap import colorize_depth
from mono_depth_ros.core.frame import NonFiniteOutputError, Postprocessor, Preprocessor
from mono_depth_ros.core.intrinsics import Intrinsics, IntrinsicsError, preset
from mono_depth_ros.core.pointcloud import CloudPacker
from mono_depth_ros.core.stats import Stats
from mono_depth_ros.inference import BackendError, create_backend
from mono_depth_ros.ros import messages as ros_io
import numpy as np
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                ParameterType, SetParametersResult)
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

BUNDLED_MODEL = 'mono_depth.onnx'
INTRINSICS_MODES = ('camera_info', 'kinect', 'kitti', 'manual')
BACKENDS = ('auto', 'tensorrt', 'onnxruntime', 'torch')
PRECISIONS = ('fp32', 'fp16', 'int8')
TRANSPORTS = ('raw', 'compressed')
RELIABILITY = ('best_effort', 'reliable')
DECODE_ERRORS = {
    image_codec.UnsupportedEncodingError: 'unsupported_encoding',
    image_codec.ZeroSizeError: 'zero_size',
    image_codec.BadStepError: 'bad_step',
    image_codec.TruncatedBufferError: 'truncated',
    image_codec.OddWidthError: 'odd_width',
    image_codec.CorruptImageError: 'corrupt_image',
}
WARN_PERIOD_S = 2.0


def bundled_model_path() -> str:
    """Return the installed (share/) or source-tree path of the bundled model."""
    try:
        from ament_index_python.packages import get_package_share_directory
        path = os.path.join(get_package_share_directory('mono_depth_ros'), 'models',
                            BUNDLED_MODEL)
        if os.path.isfile(path):
            return path
    except Exception:  # noqa: BLE001 - not installed through colcon (pip -e, source tree)
        pass
    source_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(source_root, 'models', BUNDLED_MODEL)


def _descriptor(description: str, ptype: int, read_only: bool = False,
                float_range: Optional[Tuple[float, float]] = None,
                int_range: Optional[Tuple[int, int]] = None,
                choices: Optional[Tuple[str, ...]] = None) -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, type=ptype, read_only=read_only)
    if float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                     to_value=float(float_range[1]), step=0.0)]
    if int_range is not None:
        d.integer_range = [IntegerRange(from_value=int(int_range[0]), to_value=int(int_range[1]),
                                        step=1)]
    if choices is not None:
        d.additional_constraints = 'one of: ' + ', '.join(choices)
    return d


S, D, I, B = (ParameterType.PARAMETER_STRING, ParameterType.PARAMETER_DOUBLE,
              ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_BOOL)

# name: (default, descriptor) - every parameter of the node, in one place.
PARAMETERS = {
    'model_path': ('', _descriptor(
        'ONNX model, TensorRT engine or checkpoint; empty = the bundled model', S, True)),
    'backend': ('auto', _descriptor('inference backend', S, True, choices=BACKENDS)),
    'precision': ('fp32', _descriptor('inference precision (TensorRT, torch on CUDA)', S, True,
                                      choices=PRECISIONS)),
    'engine_cache_dir': ('', _descriptor(
        'folder for cached TensorRT engines; empty = ~/.cache/mono_depth_ros', S, True)),
    'intrinsics': ('camera_info', _descriptor(
        'where the camera intrinsics come from', S, choices=INTRINSICS_MODES)),
    'fx': (0.0, _descriptor('manual focal length x, pixels at the input resolution', D,
                            float_range=(0.0, 1e5))),
    'fy': (0.0, _descriptor('manual focal length y, pixels at the input resolution', D,
                            float_range=(0.0, 1e5))),
    'cx': (0.0, _descriptor('manual principal point x, pixels', D, float_range=(-1e5, 1e5))),
    'cy': (0.0, _descriptor('manual principal point y, pixels', D, float_range=(-1e5, 1e5))),
    'min_depth': (0.0, _descriptor('nearest valid depth, m; 0 = from the model metadata', D,
                                   float_range=(0.0, 1000.0))),
    'max_depth': (0.0, _descriptor('farthest valid depth, m; 0 = from the model metadata', D,
                                   float_range=(0.0, 1000.0))),
    'output_scale': (1.0, _descriptor('depth image size relative to the input image', D,
                                      float_range=(0.05, 1.0))),
    'publish_points': (True, _descriptor('publish the organized point cloud on points', B)),
    'points_rgb': (True, _descriptor('add rgb to the point cloud', B)),
    'cloud_decimation': (2, _descriptor('keep every n-th depth pixel in the cloud', I,
                                        int_range=(1, 16))),
    'input_transport': ('raw', _descriptor('subscribe to image (raw) or image/compressed', S,
                                           True, choices=TRANSPORTS)),
    'max_rate_hz': (0.0, _descriptor('process at most this many frames per second; 0 = all',
                                     D, float_range=(0.0, 1000.0))),
    'frame_id': ('', _descriptor("output frame_id; empty = the input image's", S)),
    'qos_reliability': ('best_effort', _descriptor(
        'input QoS reliability (best_effort = sensor data)', S, True, choices=RELIABILITY)),
    'output_reliability': ('best_effort', _descriptor(
        'output QoS reliability; reliable suits RViz defaults', S, True, choices=RELIABILITY)),
    'qos_depth': (5, _descriptor('QoS history depth', I, True, int_range=(1, 100))),
    'diagnostics_period': (1.0, _descriptor('seconds between /diagnostics messages', D, True,
                                            float_range=(0.1, 60.0))),
}


class StartupError(RuntimeError):
    """The node cannot start (model missing or corrupt, bad configuration)."""


class DepthNode(Node):
    """Subscribe to a camera, run the depth model, publish depth, clouds and diagnostics."""

    def __init__(self, **kwargs):
        super().__init__('depth_node', **kwargs)
        for name, (default, descriptor) in PARAMETERS.items():
            self.declare_parameter(name, default, descriptor)
        self.cfg: Dict[str, object] = {n: self.get_parameter(n).value for n in PARAMETERS}
        self.stats = Stats()
        self._last_warn: Dict[str, float] = {}
        self._load_model()
        problem = self._check(self.cfg)
        if problem:
            raise StartupError(problem)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._camera: Optional[Intrinsics] = None
        self._warned_distortion = False
        self._camera_problem: Optional[Tuple[str, str]] = None
        self._lock = threading.Condition()
        self._pending = None
        self._stop = threading.Event()
        self._packer = CloudPacker()
        self._last_processed = 0.0
        self._input_size: Optional[Tuple[int, int]] = None

        reliability = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
                       'reliable': ReliabilityPolicy.RELIABLE}
        depth = int(self.cfg['qos_depth'])
        qos_in = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                            reliability=reliability[self.cfg['qos_reliability']])
        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                             reliability=reliability[self.cfg['output_reliability']])
        if self.cfg['input_transport'] == 'compressed':
            self.create_subscription(CompressedImage, 'image/compressed', self._on_image, qos_in)
        else:
            self.create_subscription(Image, 'image', self._on_image, qos_in)
        self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info, qos_in)
        self.pub_depth = self.create_publisher(Image, 'depth', qos_out)
        self.pub_info = self.create_publisher(CameraInfo, 'depth/camera_info', qos_out)
        self.pub_colored = self.create_publisher(Image, 'depth/colored', qos_out)
        self.pub_points = self.create_publisher(PointCloud2, 'points', qos_out)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_timer(float(self.cfg['diagnostics_period']), self._publish_diagnostics)

        self._worker = threading.Thread(target=self._run, name='depth_worker', daemon=True)
        self._worker.start()
        self.get_logger().info(
            f'ready: {self.backend.describe()}, model {self.model_path} '
            f'({self.meta.arch} {self.meta.input_width}x{self.meta.input_height}, '
            f'{self.meta.output_mode}), intrinsics {self.cfg["intrinsics"]}, '
            f'input {self.cfg["input_transport"]}')

    # -- set-up ---------------------------------------------------------------------------
    def _load_model(self) -> None:
        path = str(self.cfg['model_path']) or bundled_model_path()
        self.model_path = path
        if not os.path.isfile(path):
            raise StartupError(f'model file not found: {path}')
        options = {}
        if self.cfg['engine_cache_dir']:
            options['engine_cache_dir'] = str(self.cfg['engine_cache_dir'])
        try:
            self.backend = create_backend(str(self.cfg['backend']), path,
                                          precision=str(self.cfg['precision']),
                                          log=self.get_logger().info, **options)
        except BackendError as exc:
            raise StartupError(str(exc)) from exc
        self.meta = self.backend.meta
        self.pre = Preprocessor(self.meta)

    def _depth_range(self, cfg) -> Tuple[float, float]:
        return (float(cfg['min_depth']) or self.meta.min_depth,
                float(cfg['max_depth']) or self.meta.max_depth)

    def _check(self, cfg) -> Optional[str]:
        """Return why a configuration is invalid, or None."""
        lo, hi = self._depth_range(cfg)
        if not lo < hi:
            return f'min_depth ({lo}) must be smaller than max_depth ({hi})'
        if cfg['intrinsics'] not in INTRINSICS_MODES:
            return f'intrinsics must be one of {INTRINSICS_MODES}, got {cfg["intrinsics"]!r}'
        if cfg['intrinsics'] == 'manual' and (cfg['fx'] <= 0 or cfg['fy'] <= 0):
            return 'intrinsics manual needs fx > 0 and fy > 0'
        for name, choices in (('backend', BACKENDS), ('precision', PRECISIONS),
                              ('input_transport', TRANSPORTS),
                              ('qos_reliability', RELIABILITY),
                              ('output_reliability', RELIABILITY)):
            if cfg[name] not in choices:
                return f'{name} must be one of {choices}, got {cfg[name]!r}'
        return None

    def _on_set_parameters(self, params) -> SetParametersResult:
        cfg = dict(self.cfg)
        for p in params:
            if p.name in cfg:
                cfg[p.name] = p.value
        problem = self._check(cfg)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        self.cfg = cfg  # the worker reads self.cfg once per frame
        return SetParametersResult(successful=True)

    # -- callbacks (executor thread: store and return) -------------------------------------
    def _on_image(self, msg) -> None:
        with self._lock:
            self.stats.count('frames_in')
            if self._pending is not None:
                self.stats.count('dropped')
            self._pending = msg
            self._lock.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = Intrinsics.from_camera_info(msg)
        except IntrinsicsError as exc:
            self._camera, self._camera_problem = None, ('bad_camera_info', str(exc))
            return
        self._camera, self._camera_problem = camera, None
        if not self._warned_distortion and any(abs(d) > 1e-9 for d in msg.d):
            self._warned_distortion = True
            self.get_logger().warn(
                'camera_info has non-zero distortion; depth_node treats the image as '
                'rectified (pinhole K). Feed it image_rect from image_proc for exact clouds.')

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while self._pending is None and not self._stop.is_set():
                    self._lock.wait(0.2)
                msg, self._pending = self._pending, None
            if msg is None:
                continue
            cfg = self.cfg
            rate = float(cfg['max_rate_hz'])
            now = time.monotonic()
            if rate > 0 and now - self._last_processed < 1.0 / rate:
                self.stats.count('rate_limited')
                continue
            self._last_processed = now
            try:
                self._process(msg, cfg)
            except Exception as exc:  # noqa: BLE001 - never let one frame kill the worker
                self.stats.count('internal_error')
                self._warn('internal_error', f'frame failed: {type(exc).__name__}: {exc}')

    def _warn(self, kind: str, text: str) -> None:
        now = time.monotonic()
        if now - self._last_warn.get(kind, -1e9) >= WARN_PERIOD_S:
            self._last_warn[kind] = now
            self.get_logger().warn(f'{text} (dropping the frame; counted as bad_{kind})')

    def _bad(self, kind: str, text: str) -> None:
        self.stats.count(kind)
        self._warn(kind, text)

    def _camera_for(self, cfg, width: int, height: int) -> Optional[Intrinsics]:
        mode = cfg['intrinsics']
        if mode == 'kinect':
            return preset('kinect_nyu').resize(width, height)
        if mode == 'kitti':
            return preset('kitti').resize(width, height)
        if mode == 'manual':
            return Intrinsics(cfg['fx'], cfg['fy'], cfg['cx'], cfg['cy'], width, height)
        problem, camera = self._camera_problem, self._camera
        if problem is not None:
            self._bad(*problem)
            return None
        if camera is None:
            self._bad('no_camera_info', 'no CameraInfo received yet on camera_info')
            return None
        if (camera.width, camera.height) != (width, height):
            self._bad('camera_info_size_mismatch',
                      f'CameraInfo is for {camera.width}x{camera.height} but the image is '
                      f'{width}x{height}')
            return None
        return camera

    def _wanted(self) -> Tuple[bool, bool, bool]:
        depth = (self.pub_depth.get_subscription_count() +
                 self.pub_info.get_subscription_count()) > 0
        colored = self.pub_colored.get_subscription_count() > 0
        points = bool(self.cfg['publish_points']) and self.pub_points.get_subscription_count() > 0
        return depth, colored, points

    def _process(self, msg, cfg) -> None:
        t0 = time.perf_counter()
        want_depth, want_colored, want_points = self._wanted()
        if not (want_depth or want_colored or want_points):
            self.stats.count('skipped_no_subscribers')
            return
        try:
            limit = int(cfg.get('max_input_pixels', image_codec.DEFAULT_MAX_INPUT_PIXELS))
            if isinstance(msg, CompressedImage):
                rgb = ros_io.compressed_to_rgb(msg, limit)
            else:
                rgb = ros_io.image_to_rgb(msg, limit)
        except image_codec.ImageDecodeError as exc:
            self._bad(exc.counter, str(exc))  # each error class names its counter
            return
        h, w = rgb.shape[:2]
        t1 = time.perf_counter()
        self.stats.stage('decode', t1 - t0)
        if self._input_size not in (None, (w, h)):
            self.get_logger().info(f'input resolution changed {self._input_size} -> {(w, h)}')
        self._input_size = (w, h)
        camera = self._camera_for(cfg, w, h)
        if camera is None:
            return
        tensor = self.pre(rgb)
        t2 = time.perf_counter()
        raw = self.backend.infer(tensor)
        t3 = time.perf_counter()
        lo, hi = self._depth_range(cfg)
        scale = float(cfg['output_scale'])
        out_w, out_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        try:
            depth = Postprocessor(self.meta, lo, hi)(raw, (out_w, out_h), camera)
        except NonFiniteOutputError as exc:
            self._bad('model_nonfinite', str(exc))
            return
        out_camera = camera.resize(out_w, out_h)
        t4 = time.perf_counter()
        self.stats.stage('preprocess', t2 - t1)
        self.stats.stage('inference', t3 - t2)
        self.stats.stage('postprocess', t4 - t3)

        header = msg.header
        if cfg['frame_id']:
            header.frame_id = str(cfg['frame_id'])
        t_pub = 0.0
        if want_depth:
            tp = time.perf_counter()
            self.pub_depth.publish(ros_io.depth_to_image(depth, header))
            self.pub_info.publish(ros_io.camera_info(out_camera, header))
            t_pub += time.perf_counter() - tp
        if want_colored:
            tc = time.perf_counter()
            colored = ros_io.rgb_to_image(colorize_depth(depth, lo, hi), header)
            self.stats.stage('colored', time.perf_counter() - tc)
            tp = time.perf_counter()
            self.pub_colored.publish(colored)
            t_pub += time.perf_counter() - tp
            self.stats.count('colored_computed')
        if want_points:
            tc = time.perf_counter()
            step = int(cfg['cloud_decimation'])
            sub = np.ascontiguousarray(depth[::step, ::step])
            colour = None
            if cfg['points_rgb']:
                small = rgb if (out_w, out_h) == (w, h) else cv2_resize(rgb, (out_w, out_h))
                colour = small[::step, ::step]
            cloud = self._packer.pack(sub, out_camera.subsample(step), colour, lo, hi)
            msg_cloud = ros_io.cloud_to_msg(cloud, header)
            self.stats.stage('cloud', time.perf_counter() - tc)
            tp = time.perf_counter()
            self.pub_points.publish(msg_cloud)
            t_pub += time.perf_counter() - tp
            self.stats.count('points_computed')
        self.stats.stage('publish', t_pub)
        self.stats.frame_out(self._latency(header), time.perf_counter() - t0)

    def _latency(self, header) -> Optional[float]:
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        if stamp <= 0:
            return None
        return self.get_clock().now().nanoseconds * 1e-9 - stamp

    # -- diagnostics -------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        status = DiagnosticStatus(name=f'{self.get_fully_qualified_name()}: depth',
                                  hardware_id=self.backend.describe())
        if snap['frames_out'] == 0 and snap['frames_in'] > 0:
            status.level, status.message = DiagnosticStatus.WARN, 'receiving but not publishing'
        elif snap['bad_input_total'] > 0:
            status.level, status.message = DiagnosticStatus.WARN, 'bad input seen (see bad_*)'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'ok'
        values = [KeyValue(key='backend', value=self.backend.describe()),
                  KeyValue(key='model', value=self.model_path),
                  KeyValue(key='engine', value=getattr(self.backend, 'engine_path', '') or '')]
        for key in sorted(snap):
            value = snap[key]
            values.append(KeyValue(key=key, value='nan' if math.isnan(value) else f'{value:g}'))
        status.values = values
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(array)

    def stop(self) -> None:
        """Stop the worker thread and release the backend."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self.backend.close()


def cv2_resize(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize RGB for the cloud colours (area averaging when shrinking)."""
    import cv2
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
    """Run depth_node until SIGINT or SIGTERM; exit 1 with one line if it cannot start."""
    rclpy.init(args=argv)
    try:
        node = DepthNode()
    except StartupError as exc:
        print(f'[depth_node] cannot start: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    ros_io.spin_until_shutdown(node, node.stop)
    return 0


if __name__ == '__main__':
    sys.exit(main())
