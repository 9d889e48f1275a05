"""
sample_camera: publish image + camera_info from a folder, a video, or synthetic rooms.

``source`` is ``synthetic`` (a camera moving through procedural rooms; it also publishes
the exact ground-truth depth on ``ground_truth/depth``), a folder of images, or a video
file. Frames carry the current time as their stamp, so latency downstream is measurable.

Synthetic frames (and a folder's images) are rendered by a background thread ahead of the
publisher (about 0.2 s a synthetic frame at 640x480 here), so publishing starts after the
first frame, not after all of them.
The stream is deterministic: frame ``i`` of a seed is always the same picture and the frames
go out in order, 0, 1, ..., ``synthetic_frames - 1``, then again from 0. While the renderer is
behind the rate, a tick waits for the next frame rather than repeating or skipping one.
The rendered frames are kept up to ``cache_mb`` (so a loop replays them at the full rate);
a longer sequence is rendered a few frames ahead of the publisher and dropped after use.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Callable, Dict, List, Optional, Tuple

import cv2
from mono_depth_ros.core import image_codec
from mono_depth_ros.core.image_codec import SUPPORTED_ENCODINGS
from mono_depth_ros.core.intrinsics import (Intrinsics, IntrinsicsError, load_camera_info_yaml,
                                            preset)
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros.params import descriptor, Param
import numpy as np
import rclpy
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')
# Frames are held to what depth_node accepts by default (DCI 4K, 8.8 Mpx): 16384x16384
# synthetic frames took 10.9 GB, and a 20000x20000 PNG in a folder 4.7 GB.
MAX_PIXELS = image_codec.DEFAULT_MAX_INPUT_PIXELS
MAX_SIDE = 8192
TRANSPORTS = ('raw', 'compressed', 'both')
RELIABILITY = ('best_effort', 'reliable')
PRESETS = ('kinect', 'kitti')
FRAMES_PER_ROOM_MAX = 150

# Every parameter, in one place. All are read once at start (read-only).
PARAMETERS: Tuple[Param, ...] = (
    Param('source', 'synthetic', 'synthetic, a folder of images, or a video file',
          read_only=True),
    Param('rate_hz', 15.0, 'frames per second', read_only=True, float_range=(0.1, 1000.0)),
    Param('loop', True, 'start again at the end of the source', read_only=True),
    Param('transport', 'raw', 'publish image (raw), image/compressed (jpeg), or both',
          read_only=True, choices=TRANSPORTS),
    Param('encoding', 'rgb8', 'raw image encoding', read_only=True,
          choices=SUPPORTED_ENCODINGS),
    Param('frame_id', 'camera_optical_frame', 'header frame_id (an optical frame)',
          read_only=True),
    Param('camera_info_url', '', 'camera_info_manager YAML (file:// or a path); empty = the '
          'intrinsics preset', read_only=True),
    Param('intrinsics', 'kinect', 'preset used when camera_info_url is empty', read_only=True,
          choices=PRESETS),
    Param('width', 640, 'output width; 0 = the source size for files', read_only=True,
          int_range=(0, MAX_SIDE)),
    Param('height', 480, 'output height; 0 = the source size for files', read_only=True,
          int_range=(0, MAX_SIDE)),
    Param('synthetic_frames', 60, 'synthetic frames in the loop', read_only=True,
          int_range=(1, 1000000)),
    Param('seed', 0, 'synthetic scene seed', read_only=True, int_range=(0, 2 ** 31 - 1)),
    Param('cache_mb', 256, 'memory for rendered synthetic frames; the whole loop is kept '
          'when it fits', read_only=True, int_range=(1, 65536)),
    Param('reliability', 'best_effort', 'best_effort (sensor data) or reliable',
          read_only=True, choices=RELIABILITY),
)

FrameData = Tuple[np.ndarray, Optional[np.ndarray]]  # (rgb, ground-truth depth or None)


class StartupError(ValueError):
    """The camera cannot start (bad parameter, unreadable source)."""


def check_choice(param: Param, value) -> Optional[str]:
    """Return why a value is not one of the parameter's choices (rclpy checks type, range)."""
    if param.choices is not None and value not in param.choices:
        return f'{param.name} must be one of {", ".join(param.choices)}; got {value!r}'
    return None


def help_text(program: str = 'sample_camera') -> str:
    """Return the usage line and the parameter table (what ``sample_camera --help`` prints)."""
    def values(p: Param) -> str:
        if p.choices is not None:
            return ' | '.join(p.choices)
        if p.float_range is not None:
            return f'[{p.float_range[0]:g}, {p.float_range[1]:g}]'
        return f'[{p.int_range[0]}, {p.int_range[1]}]' if p.int_range is not None else ''

    rows = [(p.name, p.type_name, repr(p.default) if p.default == '' else str(p.default),
             values(p), p.description) for p in PARAMETERS]
    header = ('name', 'type', 'default', 'values')
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    lines = [f'usage: {program} [--ros-args -p NAME:=VALUE ... -r FROM:=TO ...]', '',
             'Publishes image (and/or image/compressed) and camera_info from a folder of '
             'images, a video file or',
             'synthetic rooms (which also publish ground_truth/depth), at a set rate. All '
             'parameters are read at start.', '', 'parameters:',
             '  ' + '  '.join(h.ljust(w) for h, w in zip(header, widths)) + '  description']
    lines += ['  ' + '  '.join(c.ljust(w) for c, w in zip(row[:4], widths)) + '  ' + row[4]
              for row in rows]
    return '\n'.join(lines) + '\n'


class RenderAhead:
    """
    A looping, deterministic sequence of ``count`` frames, rendered by a background thread.

    ``render(i)`` makes frame ``i``; one thread calls it, in the order the frames are
    needed. When ``keep >= count`` every rendered frame is kept, so the second and later
    loops cost nothing; otherwise only the ``ahead`` frames after the publisher's position
    are kept. :meth:`take` never blocks: it returns None while the frame is not ready yet.
    """

    def __init__(self, render: Callable[[int], FrameData], count: int, keep: int,
                 ahead: int = 4):
        self.count = int(count)
        self.keep_all = keep >= self.count
        self._window = self.count if self.keep_all else max(1, min(ahead, keep, self.count))
        self._render = render
        self._frames: Dict[int, FrameData] = {}
        self._cursor = 0  # the stream position the publisher wants next
        self._cond = threading.Condition()
        self._closed = False
        self.error: Optional[BaseException] = None
        self.rendered = 0  # render calls made, for tests and the log
        self.size: Optional[Tuple[int, int]] = None  # (width, height) where known at start
        self._thread = threading.Thread(target=self._work, name='render_ahead', daemon=True)
        self._thread.start()

    def _next_missing(self) -> Optional[int]:
        for pos in range(self._cursor, self._cursor + self._window):
            if pos % self.count not in self._frames:
                return pos % self.count
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                index = self._next_missing()
                while index is None and not self._closed:
                    self._cond.wait(0.5)
                    index = self._next_missing()
                if self._closed:
                    return
            try:
                frame = self._render(index)
            except Exception as exc:  # noqa: BLE001 - reported to the publisher by take()
                with self._cond:
                    self.error = exc
                return
            with self._cond:
                self.rendered += 1
                self._frames[index] = frame
                if not self.keep_all:
                    wanted = {p % self.count for p in range(self._cursor,
                                                            self._cursor + self._window)}
                    for key in [k for k in self._frames if k not in wanted]:
                        del self._frames[key]
                self._cond.notify_all()

    def take(self, position: int) -> Optional[FrameData]:
        """Return the frame at stream ``position`` (any integer), or None if not rendered yet."""
        with self._cond:
            if self.error is not None:
                raise RuntimeError(f'rendering failed: {self.error}') from self.error
            frame = self._frames.get(position % self.count)
            cursor = position + 1 if frame is not None else position  # what is wanted next
            if cursor != self._cursor:
                self._cursor = cursor
                self._cond.notify_all()
            return frame

    def wait_ready(self, position: int, timeout: float) -> bool:
        """Block until the frame at ``position`` is rendered (for tools and tests)."""
        with self._cond:
            return self._cond.wait_for(
                lambda: position % self.count in self._frames or self.error is not None,
                timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)


class Source:
    """Frames of a video, loaded at start; random access, looping."""

    def __init__(self, frames: List[FrameData]):
        self.frames = frames
        self.count = len(frames)
        self.size: Optional[Tuple[int, int]] = None

    def take(self, position: int) -> Optional[FrameData]:
        return self.frames[position % len(self.frames)]

    def close(self) -> None:
        pass


def synthetic_source(width: int, height: int, intrinsics: Intrinsics, n: int, seed: int,
                     cache_mb: int = 256) -> RenderAhead:
    """Render synthetic rooms lazily: ``n`` frames loop, ``n // 2`` (at most 150) per room."""
    from mono_depth_ros.sim.synthetic import SyntheticStream
    # A room's whole camera path is planned when the room is entered: bounded, so that a long
    # loop does not plan tens of thousands of poses before its first frame.
    stream = SyntheticStream(width, height, intrinsics=intrinsics, seed=seed,
                             frames_per_room=min(max(n // 2, 1), FRAMES_PER_ROOM_MAX))

    def render(index: int) -> FrameData:
        frame = stream.frame(index)
        return frame.rgb, frame.depth

    frame_bytes = width * height * (3 + 4)  # rgb8 + float32 depth
    return RenderAhead(render, n, keep=(cache_mb << 20) // frame_bytes)


def _read_rgb(path: str, size: Optional[Tuple[int, int]]) -> np.ndarray:
    """
    Read one image with the node's checks; raise ImageDecodeError saying why it cannot be.

    PNG and JPEG go through depth_node's own decoder (declared size and JPEG scans checked
    before decoding, strict libjpeg, PNG checked before libpng); the other formats' declared
    size is read from their header first. Nothing above MAX_PIXELS is decoded.
    """
    with open(path, 'rb') as handle:
        data = handle.read(MAX_PIXELS * 4 + (1 << 20))  # more than any accepted file
    ext = os.path.splitext(path)[1].lower()
    if ext in ('.png', '.jpg', '.jpeg'):
        rgb = image_codec.decode_compressed('png' if ext == '.png' else 'jpeg', data,
                                            MAX_PIXELS)
    else:
        declared = image_codec.declared_size(data)
        if declared is None:
            raise image_codec.CorruptImageError(f'{ext} header gives no image size')
        image_codec.check_size(ext[1:], declared[0], declared[1], MAX_PIXELS)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None or (bgr.shape[1], bgr.shape[0]) != declared:
            raise image_codec.CorruptImageError(f'{ext} data does not decode')
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if size and (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


def folder_source(folder: str, size: Optional[Tuple[int, int]],
                  cache_mb: int = 256) -> RenderAhead:
    """
    Read a folder's images lazily, in name order, in the background (looping).

    Files that no image reader recognises are left out at start. Every image is scaled to
    ``size``, or to the first image's size when ``size`` is None, which the CameraInfo then
    describes. An image that cannot be decoded when its turn comes stops the camera with its
    name (see :class:`RenderAhead`).
    """
    paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
             if n.lower().endswith(IMAGE_EXTENSIONS)]
    paths = [p for p in paths if cv2.haveImageReader(p)]
    if not paths:
        raise StartupError(f'no readable images in {folder}')
    try:
        first = _read_rgb(paths[0], size)
    except image_codec.ImageDecodeError as exc:
        raise StartupError(f'cannot read image {paths[0]}: {exc}') from None
    out_size = (first.shape[1], first.shape[0])

    def render(index: int) -> FrameData:
        if index == 0:
            return first, None
        try:
            return _read_rgb(paths[index], out_size), None
        except image_codec.ImageDecodeError as exc:
            raise ValueError(f'cannot read image {paths[index]}: {exc}') from None

    source = RenderAhead(render, len(paths), keep=(cache_mb << 20) // first.nbytes)
    source.size = out_size
    return source


def video_source(path: str, size: Optional[Tuple[int, int]], limit: int = 900) -> Source:
    cap = cv2.VideoCapture(path)
    frames = []
    while len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if size:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        frames.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None))
    cap.release()
    if not frames:
        raise StartupError(f'cannot read frames from video {path}')
    source = Source(frames)
    source.size = (frames[0][0].shape[1], frames[0][0].shape[0])
    return source


class SampleCamera(Node):
    """Publish a camera stream from a file source or procedural rooms."""

    def __init__(self, **kwargs):
        super().__init__('sample_camera', **kwargs)
        p = {}
        for param in PARAMETERS:
            self.declare_parameter(param.name, param.default, descriptor(param))
            p[param.name] = self.get_parameter(param.name).value
            problem = check_choice(param, p[param.name])
            if problem:
                raise StartupError(problem)
        self.p = p
        size = (p['width'], p['height']) if p['width'] and p['height'] else None
        if size and size[0] * size[1] > MAX_PIXELS:
            raise StartupError(f'width x height {size[0]}x{size[1]} = {size[0] * size[1]} '
                               f'pixels is above {MAX_PIXELS} (what depth_node accepts)')
        source = str(p['source'])
        if source == 'synthetic':
            w, h = size or (640, 480)
            self.intrinsics = self._intrinsics(w, h)
            self.source = synthetic_source(w, h, self.intrinsics, p['synthetic_frames'],
                                           p['seed'], p['cache_mb'])
            what = (f'{p["synthetic_frames"]} synthetic frames (seed {p["seed"]}), '
                    f'rendered in the background')
        else:
            if os.path.isdir(source):
                self.source = folder_source(source, size, p['cache_mb'])
            elif os.path.isfile(source):
                self.source = video_source(source, size)
            else:
                raise StartupError(f'source {source!r} is neither synthetic, a folder '
                                   'nor a file')
            w, h = self.source.size
            self.intrinsics = self._intrinsics(w, h)
            what = f'{self.source.count} frames from {source}'
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE
                         if p['reliability'] == 'reliable' else ReliabilityPolicy.BEST_EFFORT)
        transport = p['transport']
        self.pub_raw = self.create_publisher(Image, 'image', qos) \
            if transport in ('raw', 'both') else None
        self.pub_compressed = self.create_publisher(CompressedImage, 'image/compressed',
                                                    qos) \
            if transport in ('compressed', 'both') else None
        self.pub_info = self.create_publisher(CameraInfo, 'camera_info', qos)
        self.pub_gt = self.create_publisher(Image, 'ground_truth/depth', qos)
        self.index = 0
        self.failed = ''  # why the stream stopped, if it did
        self.waited = 0  # ticks that found the next frame not rendered yet
        self._told_waiting = False
        self.timer = self.create_timer(1.0 / p['rate_hz'], self._tick)
        self.get_logger().info(f'publishing {what} at {p["rate_hz"]} Hz ({transport}, '
                               f'{w}x{h})')

    def _intrinsics(self, width: int, height: int) -> Intrinsics:
        url = str(self.p['camera_info_url'])
        if url.startswith('file://'):
            url = url[len('file://'):]
        if url:
            try:
                intr = load_camera_info_yaml(url)
            except (IntrinsicsError, ValueError) as exc:  # not a calibration file
                raise StartupError(f'camera_info_url: {exc}') from None
            return intr if (intr.width, intr.height) == (width, height) else intr.resize(
                width, height)
        name = 'kitti' if self.p['intrinsics'] == 'kitti' else 'kinect_nyu'
        return preset(name).resize(width, height)

    def _tick(self) -> None:
        if not self.p['loop'] and self.index >= self.source.count:
            return
        try:
            frame = self.source.take(self.index)
        except RuntimeError as exc:  # the renderer failed: nothing more can be published
            self.failed = str(exc)
            self.get_logger().error(f'{exc}; stopping')
            self.timer.cancel()
            rclpy.try_shutdown(context=self.context)  # main() then exits 1
            return
        if frame is None:  # the renderer is behind the rate: wait, keep the order
            self.waited += 1
            if not self._told_waiting and self.index > 0:
                self._told_waiting = True
                self.get_logger().info(
                    f'the synthetic renderer is slower than {self.p["rate_hz"]} Hz: '
                    'frames go out as they are rendered until the loop is cached')
            return
        rgb, gt = frame
        self.index += 1
        header = Header(stamp=self.get_clock().now().to_msg(),
                        frame_id=str(self.p['frame_id']))
        self.pub_info.publish(ros_io.camera_info(self.intrinsics, header))
        if self.pub_raw is not None:
            self.pub_raw.publish(ros_io.rgb_to_image(rgb, header, str(self.p['encoding'])))
        if self.pub_compressed is not None:
            self.pub_compressed.publish(ros_io.rgb_to_compressed(rgb, header, 'jpeg'))
        if gt is not None and self.pub_gt.get_subscription_count() > 0:
            self.pub_gt.publish(ros_io.depth_to_image(gt, header))

    def stop(self) -> None:
        self.source.close()


def main(argv=None) -> int:
    """Run sample_camera until SIGINT or SIGTERM; exit 1 with one line if it cannot start."""
    args = sys.argv[1:] if argv is None else list(argv)
    if ros_io.wants_help(args):
        sys.stdout.write(help_text())
        return 0
    rclpy.init(args=argv)
    try:
        node = SampleCamera()
    except (StartupError, ParameterException, OSError) as exc:
        print(f'[sample_camera] cannot start: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    ros_io.spin_until_shutdown(node, node.stop)
    return 1 if node.failed else 0


if __name__ == '__main__':
    sys.exit(main())
