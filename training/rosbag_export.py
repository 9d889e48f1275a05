#!/usr/bin/env python3
"""
Turn a 7-Scenes-style folder of frames with poses into a rosbag2 (MCAP) as a robot records it.

    python scripts/data/sevenscenes_to_bag.py --data DIR --out BAG [--compressed] [--depth]
        [--odometry] [--first 0] [--last 199] [--rate 30]

The folder holds ``frame-NNNNNN.color.jpg`` (RGB), ``frame-NNNNNN.pose.txt`` (4x4
camera-to-world, metres, optical frame), optionally ``frame-NNNNNN.depth.png`` (uint16 mm)
and ``camera-intrinsics.txt`` (3x3). The bag has what a robot's drivers publish:

* ``/camera/image_raw`` (sensor_msgs/Image, rgb8), or with ``--compressed``
  ``/camera/image_raw/compressed`` (sensor_msgs/CompressedImage: the JPEG file as it is,
  the image_transport ``compressed`` layout), frame ``camera_color_optical_frame``;
* ``/camera/camera_info`` (plumb_bob, no distortion), the same stamp as each image;
* ``/tf``: ``odom -> base_link`` at every frame (the world of the poses is ``odom``) and
  ``/tf_static``: ``base_link -> camera_color_optical_frame``, a camera 0.3 m up looking
  along the base's x axis (REP 103 body axes, REP 103's optical axes: z forward, x right,
  y down); with ``--odometry`` also ``/odom`` (nav_msgs/Odometry, ``odom`` -> ``base_link``);
* with ``--depth``, ``/camera/depth/image_raw`` (16UC1, mm). 7-Scenes depth is not
  registered to the colour image: it is written for evaluation at reduced resolution only.

Stamps are 30 Hz from 1700000000 s. The writer is ``rosbags`` (storage ``mcap``, metadata
version 8: Jazzy and later read it; ``rosbags`` reads it anywhere).
"""

import argparse
import glob
import os
import re
import sys
from typing import Optional

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

START_NS = 1_700_000_000 * 10 ** 9
ODOM, BASE, CAMERA = 'odom', 'base_link', 'camera_color_optical_frame'
# base_link -> optical frame: optical x = -base y, y = -base z, z = base x (REP 103).
BASE_TO_OPTICAL = np.array([[0.0, 0.0, 1.0, 0.10],
                            [-1.0, 0.0, 0.0, 0.0],
                            [0.0, -1.0, 0.0, 0.30],
                            [0.0, 0.0, 0.0, 1.0]])


def typestore():
    """Return the ROS 2 Humble message definitions of ``rosbags``."""
    from rosbags.typesys import get_typestore, Stores
    return get_typestore(Stores.ROS2_HUMBLE)


def stamp_of(ts, ns: int):
    """Return a builtin_interfaces/Time for a time in nanoseconds."""
    return ts.types['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)


def header(ts, ns: int, frame: str):
    """Return a std_msgs/Header."""
    return ts.types['std_msgs/msg/Header'](stamp=stamp_of(ts, ns), frame_id=frame)


def transform_stamped(ts, ns: int, parent: str, child: str, matrix: np.ndarray):
    """Return a geometry_msgs/TransformStamped of a 4x4 parent-from-child matrix."""
    t = ts.types
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    return t['geometry_msgs/msg/TransformStamped'](
        header=header(ts, ns, parent), child_frame_id=child,
        transform=t['geometry_msgs/msg/Transform'](
            translation=t['geometry_msgs/msg/Vector3'](
                x=float(matrix[0, 3]), y=float(matrix[1, 3]), z=float(matrix[2, 3])),
            rotation=t['geometry_msgs/msg/Quaternion'](x=float(x), y=float(y), z=float(z),
                                                       w=float(w))))


def camera_info(ts, ns: int, frame: str, k: np.ndarray, width: int, height: int):
    """Return a sensor_msgs/CameraInfo without distortion (plumb_bob, D = 0)."""
    p = np.zeros((3, 4))
    p[:3, :3] = k
    return ts.types['sensor_msgs/msg/CameraInfo'](
        header=header(ts, ns, frame), height=height, width=width,
        distortion_model='plumb_bob', d=np.zeros(5), k=k.reshape(-1).astype(np.float64),
        r=np.eye(3).reshape(-1), p=p.reshape(-1),
        binning_x=0, binning_y=0,
        roi=ts.types['sensor_msgs/msg/RegionOfInterest'](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def raw_image(ts, ns: int, frame: str, array: np.ndarray, encoding: str):
    """Return a sensor_msgs/Image of an (H, W[, C]) array."""
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return ts.types['sensor_msgs/msg/Image'](
        header=header(ts, ns, frame), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=array.strides[0],
        data=np.frombuffer(array.tobytes(), np.uint8))


def compressed_image(ts, ns: int, frame: str, data: bytes,
                     fmt: str = 'rgb8; jpeg compressed bgr8'):
    """Return a sensor_msgs/CompressedImage (image_transport's ``compressed`` format string)."""
    return ts.types['sensor_msgs/msg/CompressedImage'](
        header=header(ts, ns, frame), format=fmt, data=np.frombuffer(data, np.uint8))


def odometry(ts, ns: int, matrix: np.ndarray):
    """Return a nav_msgs/Odometry of the base pose in odom (zero twist and covariances)."""
    t = ts.types
    x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    pose = t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=float(matrix[0, 3]), y=float(matrix[1, 3]),
                                              z=float(matrix[2, 3])),
        orientation=t['geometry_msgs/msg/Quaternion'](x=float(x), y=float(y), z=float(z),
                                                      w=float(w)))
    vec = t['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0)
    return t['nav_msgs/msg/Odometry'](
        header=header(ts, ns, ODOM), child_frame_id=BASE,
        pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)),
        twist=t['geometry_msgs/msg/TwistWithCovariance'](
            twist=t['geometry_msgs/msg/Twist'](linear=vec, angular=vec),
            covariance=np.zeros(36)))


class BagWriter:
    """A rosbag2 MCAP folder with typed topics: ``write(topic, ns, message)``."""

    def __init__(self, path: str, store=None):
        from rosbags.rosbag2 import StoragePlugin, Writer
        self.ts = store or typestore()
        if os.path.exists(path):
            raise FileExistsError(f'{path} exists; rosbag2 writes a new folder')
        self.writer = Writer(path, version=8, storage_plugin=StoragePlugin.MCAP)
        self.connections = {}

    def __enter__(self):
        """Open the bag."""
        self.writer.open()
        return self

    def __exit__(self, *exc):
        """Close the bag (metadata.yaml is written now)."""
        self.writer.close()

    def write(self, topic: str, ns: int, message) -> None:
        """Serialise message (CDR) and write it on topic at time ns."""
        msgtype = message.__msgtype__
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(topic, msgtype,
                                                                 typestore=self.ts)
        self.writer.write(self.connections[topic], ns,
                          bytes(self.ts.serialize_cdr(message, msgtype)))


def frame_indices(folder: str):
    """Return the sorted frame numbers that have a colour image and a pose."""
    found = []
    for path in glob.glob(os.path.join(folder, 'frame-*.color.*')):
        match = re.match(r'frame-(\d+)\.color\.', os.path.basename(path))
        if match and os.path.isfile(os.path.join(folder, f'frame-{match.group(1)}.pose.txt')):
            found.append(int(match.group(1)))
    return sorted(found)


def convert(data: str, out: str, compressed: bool = False, depth: bool = False,
            odom_topic: bool = False, first: int = 0, last: Optional[int] = None,
            rate: float = 30.0, log=print) -> int:
    """Write the bag; return the number of frames written."""
    k_path = os.path.join(data, 'camera-intrinsics.txt')
    k = np.loadtxt(k_path) if os.path.isfile(k_path) else np.array(
        [[585.0, 0.0, 320.0], [0.0, 585.0, 240.0], [0.0, 0.0, 1.0]])
    indices = [i for i in frame_indices(data) if i >= first and (last is None or i <= last)]
    if not indices:
        raise FileNotFoundError(f'no frame-NNNNNN.color.* with a pose.txt in {data} '
                                f'between {first} and {last}')
    period = int(round(1e9 / rate))
    with BagWriter(out) as bag:
        ts = bag.ts
        bag.write('/tf_static', START_NS, ts.types['tf2_msgs/msg/TFMessage'](transforms=[
            transform_stamped(ts, START_NS, BASE, CAMERA, BASE_TO_OPTICAL)]))
        for n, index in enumerate(indices):
            ns = START_NS + n * period
            stem = os.path.join(data, f'frame-{index:06d}')
            color = glob.glob(stem + '.color.*')[0]
            pose = np.loadtxt(stem + '.pose.txt').reshape(4, 4)
            base = pose @ np.linalg.inv(BASE_TO_OPTICAL)  # odom <- base = odom <- cam <- base
            bag.write('/tf', ns, ts.types['tf2_msgs/msg/TFMessage'](
                transforms=[transform_stamped(ts, ns, ODOM, BASE, base)]))
            if odom_topic:
                bag.write('/odom', ns, odometry(ts, ns, base))
            if compressed:
                with open(color, 'rb') as handle:
                    blob = handle.read()
                bgr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
                if not color.lower().endswith(('.jpg', '.jpeg')):
                    blob = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                bag.write('/camera/image_raw/compressed', ns,
                          compressed_image(ts, ns, CAMERA, blob))
            else:
                bgr = cv2.imread(color, cv2.IMREAD_COLOR)
                bag.write('/camera/image_raw', ns,
                          raw_image(ts, ns, CAMERA, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 'rgb8'))
            if bgr is None:
                raise ValueError(f'cannot read {color}')
            height, width = bgr.shape[:2]
            bag.write('/camera/camera_info', ns, camera_info(ts, ns, CAMERA, k, width, height))
            depth_path = stem + '.depth.png'
            if depth and os.path.isfile(depth_path):
                mm = cv2.imread(depth_path, cv2.IMREAD_UNCHANGED)
                bag.write('/camera/depth/image_raw', ns,
                          raw_image(ts, ns, CAMERA, mm.astype(np.uint16), '16UC1'))
    log(f'wrote {len(indices)} frames ({indices[0]}-{indices[-1]}) to {out}')
    return len(indices)


def main(argv=None) -> int:
    """Parse the command line and convert."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--data', required=True, help='folder of frame-NNNNNN.* files')
    parser.add_argument('--out', required=True, help='rosbag2 folder to create')
    parser.add_argument('--compressed', action='store_true',
                        help='write /camera/image_raw/compressed (JPEG) instead of raw rgb8')
    parser.add_argument('--depth', action='store_true',
                        help='also write /camera/depth/image_raw (16UC1 mm, for evaluation)')
    parser.add_argument('--odometry', action='store_true', help='also write /odom')
    parser.add_argument('--first', type=int, default=0, help='first frame number')
    parser.add_argument('--last', type=int, default=None, help='last frame number')
    parser.add_argument('--rate', type=float, default=30.0, help='frames per second')
    args = parser.parse_args(argv)
    try:
        convert(args.data, args.out, args.compressed, args.depth, args.odometry, args.first,
                args.last, args.rate)
    except (OSError, ValueError) as exc:
        print(f'sevenscenes_to_bag: error: {exc}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
