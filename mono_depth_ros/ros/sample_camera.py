"""
sample_camera: publish image + camera_info from a folder, a video, or synthetic rooms.

``source`` is ``synthetic`` (a camera moving through procedural rooms; it also publishes
the exact ground-truth depth on ``ground_truth/depth``), a folder of images, or a video
file. Frames carry the current time as their stamp, so latency downstream is measurable.
Synthetic frames are rendered ahead (``synthetic_frames`` of them, then looped) so that the
publishing rate does not depend on the renderer.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Tuple

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics, load_camera_info_yaml, preset
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm', '.pgm', '.tif', '.tiff')


class Source:
    """Frames as (rgb, ground-truth depth or None); random access, looping."""

    def __init__(self, frames: List[Tuple[np.ndarray, Optional[np.ndarray]]]):
        self.frames = frames

    def __len__(self):
        return len(self.frames)

    def get(self, i: int):
        return self.frames[i % len(self.frames)]


def synthetic_source(width: int, height: int, intrinsics: Intrinsics, n: int,
                     seed: int) -> Source:
    stream = SyntheticStream(width, height, intrinsics=intrinsics, seed=seed,
                             frames_per_room=max(n // 2, 1))
    frames = []
    for i in range(n):
        f = stream.frame(i)
        frames.append((f.rgb, f.depth))
    return Source(frames)


def folder_source(folder: str, size: Optional[Tuple[int, int]]) -> Source:
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    frames = []
    for name in names:
        bgr = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        if size:
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        frames.append((cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None))
    if not frames:
        raise ValueError(f'no readable images in {folder}')
    return Source(frames)


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
        raise ValueError(f'cannot read frames from video {path}')
    return Source(frames)


class SampleCamera(Node):
    """Publish a camera stream from a file source or procedural rooms."""

    def __init__(self):
        super().__init__('sample_camera')
        params = {
            'source': ('synthetic', 'synthetic, a folder of images, or a video file'),
            'rate_hz': (15.0, 'frames per second'),
            'loop': (True, 'start again at the end'),
            'transport': ('raw', 'raw (image), compressed (image/compressed) or both'),
            'encoding': ('rgb8', 'raw image encoding: rgb8, bgr8, mono8, yuv422, ...'),
            'frame_id': ('camera_optical_frame', 'header frame_id (an optical frame)'),
            'camera_info_url': ('', 'camera_info_manager YAML; empty = intrinsics preset'),
            'intrinsics': ('kinect', 'preset when no camera_info_url: kinect or kitti'),
            'width': (640, 'output width (0 = the source size for files)'),
            'height': (480, 'output height (0 = the source size for files)'),
            'synthetic_frames': (60, 'synthetic frames rendered ahead and looped'),
            'seed': (0, 'synthetic scene seed'),
            'reliability': ('best_effort', 'best_effort (sensor data) or reliable'),
        }
        for name, (default, text) in params.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        p = {name: self.get_parameter(name).value for name in params}
        self.p = p
        size = (int(p['width']), int(p['height'])) if p['width'] and p['height'] else None
        source = str(p['source'])
        if source == 'synthetic':
            w, h = size or (640, 480)
            self.intrinsics = self._intrinsics(w, h)
            self.source = synthetic_source(w, h, self.intrinsics, int(p['synthetic_frames']),
                                           int(p['seed']))
        else:
            if os.path.isdir(source):
                self.source = folder_source(source, size)
            elif os.path.isfile(source):
                self.source = video_source(source, size)
            else:
                raise ValueError(f'source {source!r} is neither synthetic, a folder nor a file')
            h, w = self.source.get(0)[0].shape[:2]
            self.intrinsics = self._intrinsics(w, h)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                         reliability=ReliabilityPolicy.RELIABLE if p['reliability'] == 'reliable'
                         else ReliabilityPolicy.BEST_EFFORT)
        transport = str(p['transport'])
        self.pub_raw = self.create_publisher(Image, 'image', qos) if transport in (
            'raw', 'both') else None
        self.pub_compressed = self.create_publisher(
            CompressedImage, 'image/compressed', qos) if transport in ('compressed', 'both') \
            else None
        self.pub_info = self.create_publisher(CameraInfo, 'camera_info', qos)
        self.pub_gt = self.create_publisher(Image, 'ground_truth/depth', qos)
        self.index = 0
        self.timer = self.create_timer(1.0 / float(p['rate_hz']), self._tick)
        self.get_logger().info(f'publishing {len(self.source)} frames from {source} at '
                               f'{p["rate_hz"]} Hz ({transport}, {w}x{h})')

    def _intrinsics(self, width: int, height: int) -> Intrinsics:
        url = str(self.p['camera_info_url'])
        if url.startswith('file://'):
            url = url[len('file://'):]
        if url:
            intr = load_camera_info_yaml(url)
            return intr if (intr.width, intr.height) == (width, height) else intr.resize(
                width, height)
        name = 'kitti' if self.p['intrinsics'] == 'kitti' else 'kinect_nyu'
        return preset(name).resize(width, height)

    def _tick(self) -> None:
        if not self.p['loop'] and self.index >= len(self.source):
            return
        rgb, gt = self.source.get(self.index)
        self.index += 1
        stamp = self.get_clock().now().to_msg()
        header = Image().header
        header.stamp, header.frame_id = stamp, str(self.p['frame_id'])
        self.pub_info.publish(ros_io.camera_info(self.intrinsics, header))
        if self.pub_raw is not None:
            self.pub_raw.publish(ros_io.rgb_to_image(rgb, header, str(self.p['encoding'])))
        if self.pub_compressed is not None:
            self.pub_compressed.publish(ros_io.rgb_to_compressed(rgb, header, 'jpeg'))
        if gt is not None and self.pub_gt.get_subscription_count() > 0:
            self.pub_gt.publish(ros_io.depth_to_image(gt, header))


def main(argv=None) -> int:
    """Run sample_camera until SIGINT or SIGTERM."""
    rclpy.init(args=argv)
    try:
        node = SampleCamera()
    except (ValueError, OSError) as exc:
        print(f'[sample_camera] cannot start: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    ros_io.spin_until_shutdown(node)
    return 0


if __name__ == '__main__':
    sys.exit(main())
