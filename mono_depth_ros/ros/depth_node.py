"""
depth_node: metric depth images and organized point clouds from one RGB camera.

All the node's work lives in :class:`DepthRuntime`, which is given a node handle and has
the four lifecycle steps, so the plain node and the managed (lifecycle) node share it:

* ``configure()``: read and validate the parameters, then load the model (a bad parameter
  is refused before any engine build);
* ``activate()``: create the subscriptions, publishers and diagnostics timer, start the
  worker;
* ``deactivate()``: stop the worker, destroy them (no output afterwards);
* ``cleanup()``: release the model.

:class:`DepthNode` runs configure and activate in its constructor, so a missing or corrupt
model fails at start with one clear line and exit code 1, and SIGINT or SIGTERM stop the
worker and exit 0.

Threading: subscription callbacks only store the newest image in a one-slot mailbox
(:mod:`.mailbox`; overwriting an unprocessed one counts as a dropped frame) and CameraInfo
in a short buffer by stamp (:mod:`.camera_info_pairing`); a worker thread decodes, runs the
model and publishes, so the executor never waits on inference and latency stays bounded
when the model is slower than the camera. What the node reports on /diagnostics is built
in :mod:`.node_diagnostics`; its topics and their QoS are in :mod:`.node_topics`. See
README.md for the topic and parameter tables.
"""

from __future__ import annotations

from collections import deque
import math
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from mono_depth_ros.core import image_codec
from mono_depth_ros.core import scale as scale_sources
from mono_depth_ros.core.camera import (Camera, camera_from_info, manual_camera, output_size,
                                        preset_camera)
from mono_depth_ros.core.frame import FrameConfig, FrameProcessor, NonFiniteOutputError
from mono_depth_ros.core.health import Health
from mono_depth_ros.core.paths import package_file
from mono_depth_ros.core.scale_base import base_kind
from mono_depth_ros.core.scale_sparse import sparse_from_cloud_buffer, sparse_from_image_buffer
from mono_depth_ros.core.stats import PeriodJudge, Stats
from mono_depth_ros.inference import BackendError, create_backend
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros import params as node_params
from mono_depth_ros.ros import transport
from mono_depth_ros.ros.camera_info_pairing import CameraInfoPairing, UNPAIRED_STREAK
from mono_depth_ros.ros.mailbox import Mailbox
from mono_depth_ros.ros.node_diagnostics import depth_status, relative_warning, scale_problems
from mono_depth_ros.ros.node_topics import (COLORED_TOPIC, DEPTH_INFO_TOPIC, DEPTH_TOPIC,
                                            input_qos, output_qos, POINTS_TOPIC, QOS_OVERRIDES,
                                            RELATIVE_TOPIC)
from mono_depth_ros.ros.tf_frames import FrameLookup, same_frame, transform_points
import numpy as np
from rcl_interfaces.msg import SetParametersResult
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, Range

#: FastDepth (NYU), see models/README.md; the former default, starter_indoor.onnx, is
#: still shipped beside it
BUNDLED_MODEL = 'fastdepth_nyu.onnx'
WARN_PERIOD_S = 2.0
LOG_TEXT_LIMIT = 300  # characters of any input-derived text (an encoding name) in a log line
# The shared-memory segment of config/fastdds_large_shm.xml.
SHM_SEGMENT_BYTES = 16 * 2 ** 20
# On SIGINT/SIGTERM, how long to wait for the frame in progress: a stop must not wait on a
# long decode or inference (the worker drops its frame at the next check, or dies with the
# process).
EXIT_WAIT_S = 0.5
# A sample already in the image's frame (used as it is, without tf2).
SAME_FRAME = np.eye(4)
SAME_FRAME.setflags(write=False)
# A sample stamped after the newest transform of a moving frame (tf2 cannot extrapolate) is
# tried again before each frame for this long, then refused as bad_transform.
TF_WAIT_S = 0.5


def bundled_model_path() -> str:
    """Return the installed (share/) or source-tree path of the bundled model."""
    return package_file('models', BUNDLED_MODEL)


def shorten(text: str, limit: int = LOG_TEXT_LIMIT) -> str:
    """Cut a log text to ``limit`` characters, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f'{text[:limit]}... ({len(text) - limit} more characters)'


def stamp_ns(header) -> int:
    """Return a header stamp in nanoseconds."""
    return int(header.stamp.sec) * 10 ** 9 + int(header.stamp.nanosec)


class StartupError(RuntimeError):
    """The node cannot start (model missing or corrupt, bad configuration)."""


class DepthRuntime:
    """
    Everything depth_node does, given a node handle (a Node or a LifecycleNode).

    The constructor declares the parameters (with descriptors) and the on-set check; the
    lifecycle steps are :meth:`configure`, :meth:`activate`, :meth:`deactivate`,
    :meth:`cleanup` and :meth:`shutdown` (all that apply, in order). ``configure`` raises
    :class:`StartupError` with a one-line reason.
    """

    def __init__(self, node: Node):
        self.node = node
        self.log = node.get_logger()
        values = {}
        for param in node_params.PARAMETERS:
            try:
                node.declare_parameter(param.name, param.default,
                                       node_params.descriptor(param))
            except Exception as exc:  # noqa: BLE001 - rclpy's type and range refusals
                hint = (' (write a double with a decimal point, e.g. 500.0)'
                        if "expecting type 'DOUBLE'" in str(exc) else '')
                raise StartupError(f'parameter {param.name}: {shorten(exc)}{hint}') from exc
            values[param.name] = node.get_parameter(param.name).value
        self.cfg: Dict[str, Any] = values  # replaced whole, never mutated: a snapshot
        node.add_on_set_parameters_callback(self._on_set_parameters)
        self.stats = Stats()
        self.judge = PeriodJudge()
        self.health = Health()
        self._frames_in_seen = 0.0
        self._input_topics: Tuple[str, str] = ('', '')
        self.backend = None
        self.meta = None
        self.frames: Optional[FrameProcessor] = None
        self._frame_config: Tuple[Any, Any, Optional[FrameConfig]] = (None, None, None)
        self.model_path = ''
        self.configured = False
        self.active = False
        self._last_log: Dict[str, float] = {}
        self._told_once = set()
        self._mailbox = Mailbox()
        self._cameras = CameraInfoPairing(self._mailbox)
        self._stop = threading.Event()
        self._worker: Optional[threading.Thread] = None
        self._entities: List[Any] = []
        self._last_processed = 0.0
        self._input_size: Optional[Tuple[int, int]] = None
        self.pub_depth = self.pub_info = self.pub_colored = self.pub_points = None
        self.pub_diag = self.pub_relative = None
        self.scale: Optional[scale_sources.ScaleEstimator] = None
        # tf2 lookups for sparse_points and range (created on activate for those sources).
        self.tf: Optional[FrameLookup] = None
        self._image_frame: Optional[str] = None  # the newest image's frame_id
        # (first try, callback, message) of samples waiting for their transform
        self._tf_waiting: deque = deque(maxlen=16)

    # -- lifecycle ----------------------------------------------------------------------------
    def configure(self) -> None:
        """Validate the parameters, then load the model; raise StartupError on failure."""
        # A removed parameter given by the user (node overrides: command line, params file)
        # is refused with what replaces it, rather than silently ignored.
        overrides = getattr(self.node, '_parameter_overrides', None) or {}
        problem = next((reason for name, reason in node_params.REMOVED.items()
                        if name in overrides), None) or node_params.validate(self.cfg)
        if problem:
            raise StartupError(problem)
        self._load_model()
        problem = node_params.validate(self.cfg, (self.meta.min_depth, self.meta.max_depth))
        if problem:
            self.cleanup()
            raise StartupError(problem)
        try:
            self.scale = self._make_scale(self.cfg)
        except scale_sources.ScaleError as exc:
            self.cleanup()
            raise StartupError(str(exc)) from exc
        self.configured = True

    def _output(self, kind, topic: str):
        """Create an output publisher (REP 2003 QoS, qos_overrides) owned until deactivate."""
        publisher = self.node.create_publisher(kind, topic, output_qos(),
                                               qos_overriding_options=QOS_OVERRIDES)
        self._entities.append((self.node.destroy_publisher, publisher))
        return publisher

    def _input(self, kind, topic: str, callback) -> None:
        """Create a camera subscription (sensor-data QoS, qos_overrides) owned until deactivate."""
        subscription = self.node.create_subscription(kind, topic, callback, input_qos(),
                                                     qos_overriding_options=QOS_OVERRIDES)
        self._entities.append((self.node.destroy_subscription, subscription))

    def activate(self) -> None:
        """Create the subscriptions, publishers and diagnostics timer; start the worker."""
        if not self.configured:
            raise StartupError('activate() before configure()')
        if self.active:
            return
        node, cfg = self.node, self.cfg
        try:
            qos_in = input_qos()
            self.pub_depth = self._output(Image, DEPTH_TOPIC)
            self.pub_info = self._output(CameraInfo, DEPTH_INFO_TOPIC)
            self.pub_colored = self._output(Image, COLORED_TOPIC)
            self.pub_points = self._output(PointCloud2, POINTS_TOPIC)
            if not self.meta.is_metric:
                self.pub_relative = self._output(Image, RELATIVE_TOPIC)
            if cfg['input_transport'] == 'compressed':
                self._input(CompressedImage, 'image/compressed', self._on_image)
            else:
                self._input(Image, 'image', self._on_image)
            self._input(CameraInfo, 'camera_info', self._on_camera_info)
        except Exception as exc:  # noqa: BLE001 - rclpy's refusals of a qos_overrides value
            self.deactivate()
            raise StartupError(f'qos_overrides: {shorten(exc)} (values: history keep_last or '
                               'keep_all, depth 1 to 1000, reliability reliable or '
                               'best_effort)') from exc
        self.pub_diag = node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        timer = node.create_timer(float(cfg['diagnostics_period']), self._publish_diagnostics)
        self._entities.append((node.destroy_publisher, self.pub_diag))
        source = cfg['scale_source']
        # Every source of a combined fit gets its topic (and tf, to place its samples).
        sources = self.scale.config.sources() if self.scale is not None else {source: 1.0}
        if 'sparse_depth' in sources:
            self._entities += [
                (node.destroy_subscription, node.create_subscription(
                    Image, 'sparse_depth', self._on_sparse_depth, qos_in)),
                (node.destroy_subscription, node.create_subscription(
                    PointCloud2, 'sparse_points', self._on_sparse_points, qos_in))]
        if 'range' in sources:
            self._entities.append((node.destroy_subscription, node.create_subscription(
                Range, 'range', self._on_range, qos_in)))
        if {'sparse_depth', 'range', 'motion'} & set(sources):
            self.tf = FrameLookup(node)
            self._entities.append((lambda tf: tf.close(), self.tf))
            if not self.tf.available:
                self._once('no_tf2', 'tf2_ros is not installed: sparse_points and range '
                           "samples are used only in the image's own frame; others are "
                           'refused (counted as bad_transform)')
        self._entities.append((node.destroy_timer, timer))
        self.judge = PeriodJudge()
        self.health = Health(self.judge.stall_periods, float(cfg['camera_info_max_age']),
                             now=time.monotonic())
        self._frames_in_seen = 0.0
        image_topic = 'image/compressed' if cfg['input_transport'] == 'compressed' else 'image'
        self._input_topics = (node.resolve_topic_name(image_topic),
                              node.resolve_topic_name('camera_info'))
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name='depth_worker', daemon=True)
        self._worker.start()
        self.active = True
        self.log.info(
            f'ready: {self.backend.describe()}, model {self.model_path} '
            f'({self.meta.arch} {self.meta.input_width}x{self.meta.input_height}, '
            f'{self.meta.output_mode}), intrinsics {cfg["intrinsics"]}, '
            f'input {cfg["input_transport"]}, scale_source {cfg["scale_source"]}')
        # Resolved (namespace and remapping applied): a wrong topic shows here at once.
        inputs = [f'image {self._input_topics[0]}']
        if cfg['intrinsics'] == 'camera_info':
            inputs.append(f'camera_info {self._input_topics[1]}')
        scale_topics = {'sparse_depth': ('sparse_depth', 'sparse_points'), 'range': ('range',)}
        inputs += [f'{t} {node.resolve_topic_name(t)}'
                   for t in scale_topics.get(str(cfg['scale_source']), ())]
        self.log.info('input topics: ' + ', '.join(inputs))
        if not self.meta.is_metric and self.scale is None:
            self.log.warn(self._relative_warning())

    def deactivate(self, wait_s: float = 5.0) -> bool:
        """Stop the worker and destroy the topics; return False if it is still busy."""
        stopped = self._stop_worker(wait_s)
        for destroy, entity in self._entities:
            try:
                destroy(entity)
            except Exception:  # noqa: BLE001 - the context may already be gone at shutdown
                pass
        self._entities = []
        self.tf = None
        self.pub_depth = self.pub_info = self.pub_colored = self.pub_points = None
        self.pub_diag = self.pub_relative = None
        self._mailbox.clear()
        self.active = False
        return stopped

    def cleanup(self) -> None:
        """Release the model (only once no worker can use it)."""
        if self._worker is not None and self._worker.is_alive():
            self.log.error('the worker did not stop; not closing the backend under it')
            return
        if self.backend is not None:
            self.backend.close()
        self.backend = self.meta = self.frames = self.scale = None
        self.configured = False

    def shutdown(self, wait_s: float = 5.0) -> None:
        """
        Deactivate and clean up, whichever applies.

        ``wait_s`` bounds the wait for a frame in progress. At process exit it is short
        (:data:`EXIT_WAIT_S`): the worker is a daemon thread, and a long decode or inference
        is abandoned rather than waited for; the backend is then left to the exit.
        """
        stopped = True
        if self.active:
            stopped = self.deactivate(wait_s)
            if not stopped:
                self.log.info(f'not waiting for the frame in progress ({wait_s:g} s passed)')
        if stopped and self.configured:
            self.cleanup()

    def _stop_worker(self, timeout: float = 5.0) -> bool:
        self._stop.set()
        self._mailbox.wake()
        worker = self._worker
        if worker is not None and worker.is_alive():
            worker.join(timeout=timeout)
            if worker.is_alive():
                return False
        self._worker = None
        return True

    # -- set-up -----------------------------------------------------------------------------
    def _load_model(self) -> None:
        path = str(self.cfg['model_path']) or bundled_model_path()
        self.model_path = path
        if not os.path.isfile(path):
            raise StartupError(f'model file not found: {path}')
        options = {'trust_model_code': bool(self.cfg['trust_model_code'])}
        if self.cfg['engine_cache_dir']:
            options['engine_cache_dir'] = str(self.cfg['engine_cache_dir'])
        try:
            self.backend = create_backend(str(self.cfg['backend']), path,
                                          precision=str(self.cfg['precision']),
                                          log=self.log.info, **options)
        except BackendError as exc:
            raise StartupError(str(exc)) from exc
        self.meta = self.backend.meta
        self.frames = FrameProcessor(self.meta, self.backend, log=self.log.info)

    @staticmethod
    def _scale_config(cfg) -> scale_sources.ScaleConfig:
        config = scale_sources.ScaleConfig(
            source=str(cfg['scale_source']), camera_height=float(cfg['camera_height']),
            camera_pitch=float(cfg['camera_pitch']),
            ground_normal_tolerance=float(cfg['ground_normal_tolerance']),
            scale=float(cfg['scale']), shift=float(cfg['shift']),
            sparse_max_age=float(cfg['sparse_max_age']),
            scale_smoothing=float(cfg['scale_smoothing']),
            scale_max_jump=float(cfg['scale_max_jump']), scale_hold=float(cfg['scale_hold']),
            scale_min_inliers=int(cfg['scale_min_inliers']),
            combine=str(cfg['scale_combine']),
            motion_min_baseline=float(cfg['motion_min_baseline']),
            motion_max_keyframe_age=float(cfg['motion_max_keyframe_age']),
            motion_tracks=int(cfg['motion_tracks']))
        config.validate()
        return config

    def _make_scale(self, cfg) -> Optional[scale_sources.ScaleEstimator]:
        """Return the scale source of the configuration (None for scale_source none)."""
        if cfg['scale_source'] == 'none':
            return None
        # Only what the model's metadata leaves unknown is fitted (a shift, or not).
        return scale_sources.ScaleEstimator(
            self._scale_config(cfg), base_kind(self.meta.output_mode),
            metric_model=self.meta.is_metric, fit_shift=self.meta.unknown == 'scale_shift',
            log=self.log.warn)

    def _relative_warning(self) -> str:
        return relative_warning(self.meta.output_mode)

    def _on_set_parameters(self, params) -> SetParametersResult:
        cfg = dict(self.cfg)
        for p in params:
            if p.name in cfg:
                cfg[p.name] = p.value
        model_range = None if self.meta is None else (self.meta.min_depth, self.meta.max_depth)
        problem = node_params.validate(cfg, model_range)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        if self.scale is not None:
            try:
                # The same estimator keeps its fitted scale; only its settings change.
                self.scale.config = self._scale_config(cfg)
            except scale_sources.ScaleError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
        self.cfg = cfg  # one new snapshot; the worker reads self.cfg once per frame
        return SetParametersResult(successful=True)

    # -- callbacks (executor thread: store and return) --------------------------------------
    def _on_image(self, msg) -> None:
        def store(dropped: bool) -> None:
            self._image_frame = msg.header.frame_id
            self.stats.count('frames_in')
            if dropped:
                self.stats.count('dropped')

        self._mailbox.put(msg, store)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        camera = camera_from_info(msg)
        if camera.warning:
            self._once('distortion', camera.warning)
        self.health.camera_info(time.monotonic())
        self._cameras.add(stamp_ns(msg.header), camera)

    def _on_sparse_depth(self, msg: Image) -> None:
        try:
            samples = sparse_from_image_buffer(
                msg.encoding, int(msg.width), int(msg.height), int(msg.step), bytes(msg.data),
                bool(msg.is_bigendian), self._stamp_s(msg.header))
        except scale_sources.ScaleError as exc:
            self._bad('sparse_depth', str(exc))
            return
        if self.scale is not None:
            self.scale.add_sparse(samples)

    def _on_sparse_points(self, msg: PointCloud2, since: Optional[float] = None) -> None:
        to_camera = self._to_camera(msg, 'sparse_points', self._on_sparse_points, since)
        if to_camera is None:
            return
        try:
            samples = sparse_from_cloud_buffer(
                [(f.name, int(f.offset), int(f.datatype)) for f in msg.fields],
                int(msg.point_step), int(msg.width) * int(msg.height), bytes(msg.data),
                bool(msg.is_bigendian), self._stamp_s(msg.header),
                transform=None if to_camera is SAME_FRAME else to_camera)
        except scale_sources.ScaleError as exc:
            self._bad('sparse_points', str(exc))
            return
        if self.scale is not None:
            self.scale.add_sparse(samples)

    def _on_range(self, msg: Range, since: Optional[float] = None) -> None:
        value = float(msg.range)
        if not (math.isfinite(value) and float(msg.min_range) <= value <= float(msg.max_range)):
            # REP 117: +-Inf mean out of range, NaN an invalid reading; neither gives a scale.
            self._bad('range', f'range {value} outside [{msg.min_range}, {msg.max_range}]')
            return
        to_camera = self._to_camera(msg, 'range', self._on_range, since)
        if to_camera is None:
            return
        if to_camera is not SAME_FRAME:
            # Another sensor's frame: the reading lies on its x axis (sensor_msgs/msg/
            # Range.msg, field_of_view: "0 angle corresponds to the x-axis of the sensor").
            # Its depth in the camera's frame is what the central window is compared with.
            value = float(transform_points(to_camera, np.array([[value, 0.0, 0.0]]))[0, 2])
            if not value > 0:
                self._bad('bad_transform', f'range: the reading of {msg.header.frame_id!r} '
                          'lies behind the camera')
                return
        if self.scale is not None:
            self.scale.add_range(self._stamp_s(msg.header), value)

    def _to_camera(self, msg, topic: str, callback=None,
                   since: Optional[float] = None) -> Optional[np.ndarray]:
        """
        Return the map of a sample from its frame to the image's, at its stamp, or None.

        A sample in the image's frame gives ``SAME_FRAME`` (the identity, for the range
        reading along the optical axis as before); one whose transform tf2 does not have
        (or any other frame without tf2_ros) is refused and counted as bad_transform. One
        stamped after its moving frame's newest transform waits (``callback(msg, since)``
        is called again before the next frames) up to ``TF_WAIT_S``.
        """
        header = msg.header
        target = str(self.cfg['frame_id']) or self._image_frame
        if target is None:
            # No image yet: the camera's frame is not known. Not a bad sample.
            self.stats.count('samples_before_image')
            return None
        if self.tf is None:
            return None  # inactive
        matrix = self.tf.lookup(target, header.frame_id, stamp_ns(header))
        if matrix is None:
            now = time.monotonic()
            since = now if since is None else since
            if self.tf.later and callback is not None and now - since < TF_WAIT_S:
                self._tf_waiting.append((since, callback, msg))
                return None
            self._bad('bad_transform', f'{topic}: {self.tf.reason}')
            return None
        if same_frame(target, header.frame_id):
            return SAME_FRAME
        return matrix

    def _retry_transforms(self) -> None:
        """Try the samples that waited for their transform again (worker, before a frame)."""
        for _ in range(len(self._tf_waiting)):
            try:
                since, callback, msg = self._tf_waiting.popleft()
            except IndexError:
                return
            callback(msg, since)

    def _stamp_s(self, header) -> float:
        """Return a header stamp in seconds; an unset (zero) stamp is the node clock's now."""
        ns = stamp_ns(header)
        return (ns or self.node.get_clock().now().nanoseconds) * 1e-9

    def _relative_wanted(self) -> bool:
        pub = self.pub_relative
        return pub is not None and pub.get_subscription_count() > 0

    # -- worker -------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._mailbox.take(self._stop)
            if msg is None:
                continue
            cfg = self.cfg  # one configuration snapshot for the whole frame
            rate = float(cfg['max_rate_hz'])
            now = time.monotonic()
            if rate > 0 and now - self._last_processed < 1.0 / rate:
                self.stats.count('rate_limited')
                continue
            wanted = self._wanted(cfg)
            if not any(wanted) and not self._relative_wanted():
                self.stats.count('skipped_no_subscribers')
                continue
            self._last_processed = now
            self.stats.count('frames_processed')
            try:
                self._process(msg, cfg, wanted)
            except Exception as exc:  # noqa: BLE001 - never let one frame kill the worker
                if self._stop.is_set() or not rclpy.ok(context=self.node.context):
                    return  # shutting down: the publishers' context is gone
                self._bad('internal_error', f'frame failed: {type(exc).__name__}: {exc}')

    def _throttled(self, key: str, text: str, level: str = 'warn') -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -1e9) >= WARN_PERIOD_S:
            self._last_log[key] = now
            getattr(self.log, level)(shorten(text))

    def _once(self, key: str, text: str) -> None:
        if key not in self._told_once:
            self._told_once.add(key)
            self.log.warn(shorten(text))

    def _bad(self, kind: str, text: str) -> None:
        """Count a bad input or failure and log a throttled warning naming its counter."""
        key = self.stats.problem(kind)
        self._throttled(kind, f'{shorten(text)} (dropping the frame; counted as {key})')

    def _camera_for(self, cfg, width: int, height: int,
                    image_stamp_ns: int = 0) -> Optional[Camera]:
        """Return the camera of this frame, or None after counting why there is none."""
        mode = cfg['intrinsics']
        if mode in ('kinect', 'kitti'):
            camera = preset_camera(mode, width, height)
        elif mode == 'manual':
            camera = manual_camera(float(cfg['fx']), float(cfg['fy']), float(cfg['cx']),
                                   float(cfg['cy']), width, height)
        else:
            camera = self._paired_camera(cfg, image_stamp_ns)
            if camera is None:
                self._bad('no_camera_info', 'no CameraInfo received yet on '
                          f'{self.node.resolve_topic_name("camera_info")}')
                return None
        if not camera.ok:
            self._bad(camera.problem, camera.reason)
            return None
        intr = camera.intrinsics
        if (intr.width, intr.height) != (width, height):
            self._bad('camera_info_size_mismatch',
                      f'CameraInfo is for {intr.width}x{intr.height} but the image is '
                      f'{width}x{height}')
            return None
        return camera

    def _paired_camera(self, cfg, image_stamp_ns: int) -> Optional[Camera]:
        tolerance = float(cfg['camera_info_tolerance'])
        # The image may have overtaken its CameraInfo: pair() waits a moment for it.
        camera, how = self._cameras.pair(image_stamp_ns, tolerance, self._stop)
        if how == 'newest':
            self.stats.count('camera_info_unpaired')
            if self._cameras.unpaired_streak == UNPAIRED_STREAK:
                self._once('unpaired', 'CameraInfo stamps do not match the image stamps '
                           f'(within camera_info_tolerance {tolerance:g} s); using the newest '
                           'CameraInfo for each image (counted as camera_info_unpaired)')
        return camera

    def _wanted(self, cfg) -> Tuple[bool, bool, bool]:
        depth = (self.pub_depth.get_subscription_count() +
                 self.pub_info.get_subscription_count()) > 0
        colored = self.pub_colored.get_subscription_count() > 0
        points = bool(cfg['publish_points']) and self.pub_points.get_subscription_count() > 0
        return depth, colored, points

    def _output_size(self, cfg, width: int, height: int) -> Tuple[int, int]:
        out_w, out_h, capped = output_size(width, height, float(cfg['depth_size_ratio']),
                                           int(cfg['max_output_pixels']))
        if capped:
            self._throttled(
                'output_capped', f'input {width}x{height} with depth_size_ratio '
                f'{float(cfg["depth_size_ratio"]):g} would give a depth image over '
                f'max_output_pixels ({int(cfg["max_output_pixels"])}); publishing '
                f'{out_w}x{out_h} ({out_w * out_h * 4 / 2 ** 20:.1f} MiB of depth). Set '
                'max_output_pixels to 0 to publish the full size (messages over the 16 MiB '
                'shared-memory segment are mostly lost between processes).')
        elif out_w * out_h * 4 > SHM_SEGMENT_BYTES:
            self._throttled(
                'output_large', f'depth image {out_w}x{out_h} is '
                f'{out_w * out_h * 4 / 2 ** 20:.1f} MiB, more than the 16 MiB shared-memory '
                'segment of the shipped Fast DDS profile: best-effort subscribers in other '
                'processes will miss most of them (lower depth_size_ratio or max_output_pixels)')
        return out_w, out_h

    def _process(self, msg, cfg, wanted) -> None:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        want_depth, want_colored, want_points = wanted
        try:
            # The declared size is checked before decoding (decompression bombs).
            limit = int(cfg['max_input_pixels'])
            if isinstance(msg, CompressedImage):
                rgb = ros_io.compressed_to_rgb(msg, limit, int(cfg['max_jpeg_scans']))
            else:
                rgb = ros_io.image_to_rgb(msg, limit)
        except image_codec.ImageDecodeError as exc:
            self._bad(exc.counter, str(exc))  # each decode error class names its counter
            return
        if self._stop.is_set():
            return  # stopping: the decoded frame is not worth an inference
        h, w = rgb.shape[:2]
        t1, cpu1 = time.perf_counter(), time.thread_time()
        self.stats.stage('decode', t1 - t0)
        self.stats.stage('decode_cpu', cpu1 - cpu0)
        if self._input_size not in (None, (w, h)):
            self._throttled('resolution', f'input resolution changed {self._input_size} -> '
                            f'{(w, h)}', level='info')
        self._input_size = (w, h)
        camera = self._camera_for(cfg, w, h, stamp_ns(msg.header))
        if camera is None:
            return
        camera = camera.intrinsics
        self._output_size(cfg, w, h)  # warns when the size is capped
        source = None
        if self.scale is not None:
            self._retry_transforms()
            image = pose = None
            if 'motion' in self.scale.config.sources():
                # The camera's pose in odom_frame at the image's stamp (None: missing, which
                # the motion source counts and holds through).
                image = rgb
                tf = getattr(self, 'tf', None)
                pose = tf.lookup(str(cfg['odom_frame']), msg.header.frame_id,
                                 stamp_ns(msg.header)) if tf is not None else None
            source = self.scale.for_frame(self._stamp_s(msg.header), camera, image, pose)
        try:
            result = self.frames.run(rgb, camera, self._config_for(cfg, wanted), scale=source)
        except NonFiniteOutputError as exc:
            self._bad('model_nonfinite', str(exc))
            self.health.no_estimate()
            return
        cpu2 = time.thread_time()
        if result.nonfinite:
            # Published as NaN (no estimate, REP 117); counted, and said now and then.
            self.stats.count('model_nonfinite_pixels', result.nonfinite)
            self._throttled('nonfinite_pixels', f'the model gave NaN/Inf for '
                            f'{result.nonfinite} pixels: published as NaN (no estimate)')
        for stage in ('preprocess', 'inference', 'postprocess', 'colored', 'cloud'):
            if stage in result.times:
                self.stats.stage(stage, result.times[stage])
        # CPU of the pipeline's own work (and the camera pairing before it), inference out.
        self.stats.stage('pipeline_cpu', cpu2 - cpu1 - result.inference_cpu)

        header = msg.header
        if cfg['frame_id']:
            header.frame_id = str(cfg['frame_id'])
        t_pub = 0.0
        if result.relative is not None:
            # Published whenever a frame is processed (a frame is processed only while some
            # output has subscribers), so that a relative model without a scale still counts
            # as publishing: diagnostics say WARN and why, not a stall.
            tp = time.perf_counter()
            self.pub_relative.publish(ros_io.depth_to_image(result.relative, header))
            if result.depth is None or not want_depth:
                # Its CameraInfo (the same grid), unless the depth image's goes out below.
                self.pub_info.publish(ros_io.camera_info(result.camera, header))
            t_pub += time.perf_counter() - tp
        if self.scale is not None and result.scale is None:
            # The source has no scale (none yet, or its hold ran out): no metres, even from
            # a metric model whose own scale it was set to correct.
            result.depth = None
        if result.depth is None:
            # A relative model without a scale: depth/relative only, never metres.
            if result.relative is not None:
                self.stats.stage('publish', t_pub)
                self.stats.frame_out(self._latency(header), time.perf_counter() - t0)
            return
        # Any valid pixel at all? (every 4th row and column; far less than a millisecond)
        self.health.depth(result.depth, result.min_depth, result.max_depth)
        if want_depth:
            tp = time.perf_counter()
            self.pub_depth.publish(ros_io.depth_to_image(result.depth, header))
            self.pub_info.publish(ros_io.camera_info(result.camera, header))
            t_pub += time.perf_counter() - tp
        if want_colored:
            tp = time.perf_counter()
            self.pub_colored.publish(ros_io.rgb_to_image(result.colored, header))
            if not want_depth and result.relative is None:
                # depth/colored's CameraInfo is depth/camera_info (the same grid).
                self.pub_info.publish(ros_io.camera_info(result.camera, header))
            t_pub += time.perf_counter() - tp
            self.stats.count('colored_computed')
        if want_points:
            tp = time.perf_counter()
            self.pub_points.publish(ros_io.cloud_to_msg(result.cloud, header))
            t_pub += time.perf_counter() - tp
            self.stats.count('points_computed')
        self.stats.stage('publish', t_pub)
        # This thread's CPU time for everything but inference: the cost the node adds to the
        # model, free of what other processes on the machine do to wall-clock stage times.
        cpu3 = time.thread_time()
        self.stats.stage('publish_cpu', cpu3 - cpu2)
        self.stats.stage('non_inference_cpu', cpu3 - cpu0 - result.inference_cpu)
        self.stats.frame_out(self._latency(header), time.perf_counter() - t0)

    def _config_for(self, cfg, wanted) -> FrameConfig:
        """Return the FrameConfig of a parameter snapshot (cached while it is current)."""
        last_cfg, last_wanted, config = self._frame_config
        if last_cfg is cfg and last_wanted == wanted:
            return config
        _depth, colored, points = wanted
        config = FrameConfig(
            min_depth=float(cfg['min_depth']), max_depth=float(cfg['max_depth']),
            depth_size_ratio=float(cfg['depth_size_ratio']),
            max_output_pixels=int(cfg['max_output_pixels']),
            resize_mode=str(cfg['resize_mode']),
            depth_upsampling=str(cfg['depth_upsampling']),
            edge_threshold=float(cfg['edge_threshold']),
            cloud_decimation=int(cfg['cloud_decimation']), points_rgb=bool(cfg['points_rgb']),
            want_colored=bool(colored), want_points=bool(points))
        self._frame_config = (cfg, wanted, config)
        return config

    def _latency(self, header) -> Optional[float]:
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        if stamp <= 0:
            return None
        return self.node.get_clock().now().nanoseconds * 1e-9 - stamp

    # -- diagnostics ----------------------------------------------------------------------------
    def diagnostic_problems(self) -> Sequence[Tuple[int, str]]:
        """Return (level, message) problems beyond the frame counters: the scale's."""
        return scale_problems(self.meta, self.scale)

    def diagnostic_status(self) -> DiagnosticStatus:
        """Return the status for the period since the last call."""
        snap = self.stats.snapshot()
        subscribed = self.pub_depth is not None and any(self._wanted(self.cfg))
        level, message = self.judge.judge(snap, subscribed, self.diagnostic_problems())
        frames_in = snap.get('frames_in', 0.0) - self._frames_in_seen
        self._frames_in_seen = snap.get('frames_in', 0.0)
        image_topic, info_topic = self._input_topics
        level, message = self.health.review(
            level, message, frames_in, time.monotonic(), image_topic,
            self.node.count_publishers(image_topic) if image_topic else 0,
            info_topic if self.cfg['intrinsics'] == 'camera_info' else None)
        return depth_status(self.node.get_fully_qualified_name(), level, message,
                            self.backend, self.model_path, self.meta, self.judge, self.health,
                            self.health.camera_info_age(time.monotonic()), self.scale, snap)

    def _publish_diagnostics(self) -> None:
        if self.pub_diag is None or self.backend is None:
            return
        array = DiagnosticArray(status=[self.diagnostic_status()])
        array.header.stamp = self.node.get_clock().now().to_msg()
        self.pub_diag.publish(array)


class DepthNode(Node):
    """The plain node: configure and activate a DepthRuntime at construction."""

    def __init__(self, **kwargs):
        super().__init__('depth_node', **kwargs)
        self.runtime = DepthRuntime(self)
        self.runtime.configure()
        self.runtime.activate()

    def stop(self) -> None:
        """Stop the worker, destroy the topics and release the backend (process exit)."""
        self.runtime.shutdown(EXIT_WAIT_S)


def main(argv=None) -> int:
    """Run depth_node until SIGINT or SIGTERM; exit 1 with one line if it cannot start."""
    args = sys.argv[1:] if argv is None else list(argv)
    if ros_io.wants_help(args):
        sys.stdout.write(node_params.help_text('depth_node'))
        return 0
    profile_note = transport.apply_default_profile(os.environ)
    rclpy.init(args=argv)
    try:
        node = DepthNode()
    except StartupError as exc:
        print(f'[depth_node] cannot start: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    if profile_note:
        node.get_logger().info(profile_note)
    ros_io.spin_until_shutdown(node, node.stop)
    return 0


if __name__ == '__main__':
    sys.exit(main())
