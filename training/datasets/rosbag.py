"""
A rosbag2 recording of the robot as a self-supervised training source (known metric poses).

Two passes over the bag (``rosbags``' AnyReader: rosbag2 MCAP and sqlite3 alike, messages
decoded with the bag's own definitions; first the small messages, then the images)
collect:

* the images of ``image_topic`` (sensor_msgs/Image), or of ``image_topic + '/compressed'``
  (sensor_msgs/CompressedImage, JPEG or PNG) when only that is in the bag, decoded by the
  node's own decoders (``mono_depth_ros.core.image_codec``) and resized to the training
  size at once, so a long recording costs ``W x H x 3`` bytes a frame;
* the CameraInfo of ``camera_info_topic``, paired with each image by header stamp (the
  nearest within ``sync_tolerance``); an image with distortion (``D`` not all zero) is
  rectified as image_proc would (:class:`_Rectifier`), and the intrinsics follow the
  rectification, the cut and the resize to the training size;
* the poses: ``tf`` (``/tf`` and ``/tf_static``, the chain from ``target_frame`` to the
  image's ``frame_id`` as tf2 resolves it) or ``odometry`` (nav_msgs/Odometry
  ``header.frame_id <- child_frame_id``, then the fixed ``camera_extrinsic`` from the
  odometry's child frame to the camera's optical frame). Each dynamic link is interpolated
  to the image stamp, linearly in translation and by slerp in rotation, between the two
  samples around it; an image outside the samples or in a gap longer than ``max_pose_gap``
  gets no pose (tf2 refuses to extrapolate likewise);
* optionally a depth image (``depth_topic``: 16UC1 mm or 32FC1 m), paired by stamp, for
  validation metrics only.

Triplets are chosen by pose, not by image difference: for a target frame the sources are
the nearest earlier and later frames at least ``min_baseline`` metres away (camera
centres), within ``max_span`` seconds; a target without both (the robot standing still)
is skipped as ``static``, and one whose nearest such neighbour is more than
``max_baseline`` away (a pose jump) as ``pose_jump``. The last ``val_fraction`` of the
recording (by time) is the validation split, and triplets never cross the split, so
validation frames are never trained on, not even as sources.

Bad input is never silent: a missing topic, a frame chain tf cannot resolve at all, or a
bag with no usable frame is a :class:`BagError` naming what is there; per-frame problems
(an image without camera_info, without a pose, that does not decode, whose stamp is not
later than the previous image's) are skipped and counted in ``skips``, which the dataset
logs once.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
import logging
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics
import numpy as np
from training.datasets.augment import RawSample, resize_depth
from training.datasets.base import DatasetError, DepthDataset

LOG = logging.getLogger(__name__)
TF_TOPICS = ('/tf', '/tf_static')
# The frame name the fixed odometry extrinsic attaches the camera as.
ODOMETRY_CAMERA = '__camera_from_extrinsic__'


class BagError(DatasetError):
    """The bag cannot give training frames: what is missing, and what the bag has."""


# -- rotations --------------------------------------------------------------------------------
def quat_to_matrix(q: Sequence[float]) -> np.ndarray:
    """Return the 3x3 rotation of a quaternion (x, y, z, w), normalised first."""
    x, y, z, w = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def slerp(q0: Sequence[float], q1: Sequence[float], alpha: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions (x, y, z, w), the short way."""
    q0 = np.asarray(q0, np.float64) / np.linalg.norm(q0)
    q1 = np.asarray(q1, np.float64) / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0:  # q and -q are the same rotation: take the shorter arc
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact to float precision, and stable
        out = q0 + alpha * (q1 - q0)
        return out / np.linalg.norm(out)
    theta = np.arccos(min(dot, 1.0))
    return (np.sin((1 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / np.sin(theta)


def make_transform(translation: Sequence[float], quat: Sequence[float]) -> np.ndarray:
    """Return the 4x4 matrix of a translation and a quaternion (x, y, z, w)."""
    out = np.eye(4)
    out[:3, :3] = quat_to_matrix(quat)
    out[:3, 3] = translation
    return out


# -- a tf buffer over a whole recording -------------------------------------------------------
@dataclass
class _Link:
    parent: str
    static: bool
    times: List[int] = field(default_factory=list)
    translations: List[np.ndarray] = field(default_factory=list)
    rotations: List[np.ndarray] = field(default_factory=list)


class TransformBuffer:
    """
    Parent <- child links over time, looked up between any two frames at a stamp.

    As tf2's BufferCore: every frame has one parent; static links hold at every time;
    dynamic links are interpolated between the samples around the stamp (translation
    linearly, rotation by slerp) and never extrapolated.
    """

    def __init__(self, max_gap_ns: int):
        self.max_gap_ns = int(max_gap_ns)
        self.links: Dict[str, _Link] = {}
        self._sorted = True

    def add(self, parent: str, child: str, stamp_ns: int, translation, quat,
            static: bool = False) -> None:
        """Add a sample of the link parent <- child (a static one replaces any earlier)."""
        parent, child = parent.lstrip('/'), child.lstrip('/')
        sample = (np.asarray(translation, np.float64), np.asarray(quat, np.float64))
        link = self.links.get(child)
        if static:
            self.links[child] = _Link(parent, True, [0], [sample[0]], [sample[1]])
            return
        if link is not None and link.static:
            return  # a frame has one parent; the static link stays (as in tf2)
        if link is None or link.parent != parent:
            link = self.links[child] = _Link(parent, False)
        link.times.append(int(stamp_ns))
        link.translations.append(sample[0])
        link.rotations.append(sample[1])
        self._sorted = False

    def _sort(self) -> None:
        for link in self.links.values():
            if link.static or len(link.times) < 2:
                continue
            order = np.argsort(np.asarray(link.times), kind='stable')
            times = [link.times[i] for i in order]
            keep = [k for k in range(len(times)) if k == 0 or times[k] != times[k - 1]]
            link.times = [times[k] for k in keep]
            link.translations = [link.translations[order[k]] for k in keep]
            link.rotations = [link.rotations[order[k]] for k in keep]
        self._sorted = True

    def _link_at(self, child: str, stamp_ns: int) -> np.ndarray:
        link = self.links[child]
        if link.static:
            return make_transform(link.translations[0], link.rotations[0])
        times = link.times
        i = bisect.bisect_left(times, stamp_ns)
        if i < len(times) and times[i] == stamp_ns:
            return make_transform(link.translations[i], link.rotations[i])
        if i == 0 or i == len(times):
            raise LookupError(f'{link.parent} <- {child} has no sample around this stamp '
                              '(extrapolation)')
        t0, t1 = times[i - 1], times[i]
        if t1 - t0 > self.max_gap_ns:
            raise LookupError(f'{link.parent} <- {child}: samples {(t1 - t0) / 1e9:.3f} s '
                              'apart around this stamp, more than max_pose_gap')
        alpha = (stamp_ns - t0) / (t1 - t0)
        translation = (1 - alpha) * link.translations[i - 1] + alpha * link.translations[i]
        return make_transform(translation,
                              slerp(link.rotations[i - 1], link.rotations[i], alpha))

    def chain(self, frame: str) -> List[str]:
        """Return frame and its ancestors up to the root."""
        out = [frame]
        while out[-1] in self.links and len(out) <= len(self.links) + 1:
            out.append(self.links[out[-1]].parent)
        return out

    def can_connect(self, target: str, source: str) -> bool:
        """Return whether the two frames share a tree at all (at some time)."""
        return bool(set(self.chain(target.lstrip('/'))) & set(self.chain(source.lstrip('/'))))

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """Return the 4x4 target <- source at the stamp; LookupError when it cannot."""
        if not self._sorted:
            self._sort()
        target, source = target.lstrip('/'), source.lstrip('/')
        up_source, up_target = self.chain(source), self.chain(target)
        common = next((f for f in up_source if f in up_target), None)
        if common is None:
            raise LookupError(f'{target} and {source} are not connected')

        def to_ancestor(chain):
            out = np.eye(4)
            for child in chain[:chain.index(common)]:
                out = self._link_at(child, stamp_ns) @ out
            return out
        return np.linalg.inv(to_ancestor(up_target)) @ to_ancestor(up_source)

    def frames(self) -> List[str]:
        """Return every frame named (as a child or a parent)."""
        return sorted(set(self.links) | {link.parent for link in self.links.values()})


# -- reading ----------------------------------------------------------------------------------
@dataclass
class BagFrames:
    """What one pass over a bag gives, sorted by stamp (see the module docstring)."""

    stamps: List[int]
    images: List[np.ndarray]
    intrinsics: List[Intrinsics]
    poses: List[np.ndarray]
    depths: List[Optional[np.ndarray]]
    image_topic: str
    skips: Counter


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10 ** 9 + int(header.stamp.nanosec)


def _nearest(stamps: List[int], stamp: int, tolerance_ns: int) -> Optional[int]:
    i = bisect.bisect_left(stamps, stamp)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(stamps) and abs(stamps[j] - stamp) <= tolerance_ns and (
                best is None or abs(stamps[j] - stamp) < abs(stamps[best] - stamp)):
            best = j
    return best


def _decode_image(msg, compressed: bool) -> np.ndarray:
    from mono_depth_ros.core import image_codec
    if compressed:
        return image_codec.decode_compressed(msg.format, bytes(msg.data))
    return image_codec.decode_image(msg.encoding, int(msg.width), int(msg.height),
                                    int(msg.step), bytes(msg.data))


def _decode_depth(msg) -> np.ndarray:
    from mono_depth_ros.core import image_codec
    depth = image_codec.decode_depth(msg.encoding, int(msg.width), int(msg.height),
                                     int(msg.step), bytes(msg.data), bool(msg.is_bigendian))
    return np.nan_to_num(depth, nan=0.0)


def read_bag(path: str, size: Tuple[int, int], image_topic: str = '/camera/image_raw',
             camera_info_topic: str = '/camera/camera_info', pose_source: str = 'tf',
             target_frame: str = 'odom', camera_frame: str = '',
             odometry_topic: str = '/odom',
             camera_extrinsic: Sequence[float] = (0, 0, 0, 0, 0, 0, 1),
             depth_topic: str = '', sync_tolerance: float = 0.01,
             max_pose_gap: float = 0.2, native_rgb: bool = False,
             resize_mode: str = 'stretch', fit_aspect: float = 0.0,
             crop_fraction: float = 1.0) -> BagFrames:
    """
    Read a rosbag2 folder (or file) into frames at size (width, height); see the module.

    With ``native_rgb`` the images (and their intrinsics) keep the recorded size and only
    the depth images are resized (evaluation through the node's pipeline, which takes the
    camera's own image, against a coarser ground truth). Otherwise each image is first cut
    to :func:`fit_box` (``resize_mode``, ``fit_aspect``, ``crop_fraction``), as the node
    will cut it for the trained model.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import get_typestore, Stores
    if pose_source not in ('tf', 'odometry'):
        raise BagError(f'data.rosbag.pose_source must be tf or odometry, got {pose_source!r}')
    if not os.path.exists(path):
        raise BagError(f'rosbag2 not found: {path}')
    width, height = size
    skips: Counter = Counter()
    tf = TransformBuffer(int(max_pose_gap * 1e9))
    if pose_source == 'odometry':
        extrinsic = [float(v) for v in camera_extrinsic]
        if len(extrinsic) != 7:
            raise BagError('data.rosbag.camera_extrinsic is x y z qx qy qz qw, got '
                           f'{camera_extrinsic!r}')
    try:
        reader = AnyReader([_bag_path(path)],
                           default_typestore=get_typestore(Stores.ROS2_HUMBLE))
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several kinds for a bad folder
        raise BagError(f'{path}: not a readable rosbag2 (MCAP or sqlite3): {exc}') from exc
    try:
        topics = {c.topic: c.msgtype for c in reader.connections}
        listing = ', '.join(f'{t} ({m})' for t, m in sorted(topics.items())) or 'no topics'
        compressed = False
        if image_topic not in topics and image_topic + '/compressed' in topics:
            image_topic, compressed = image_topic + '/compressed', True
        elif topics.get(image_topic) == 'sensor_msgs/msg/CompressedImage':
            compressed = True
        needed = [image_topic, camera_info_topic] + (
            [odometry_topic] if pose_source == 'odometry' else []) + (
            [depth_topic] if depth_topic else [])
        missing = [t for t in needed if t not in topics]
        if pose_source == 'tf' and not any(t in topics for t in TF_TOPICS):
            missing.append('/tf')
        if missing:
            raise BagError(f'{path} lacks {", ".join(missing)}; it has: {listing}')
        types = {image_topic: ('sensor_msgs/msg/CompressedImage',) if compressed else
                 ('sensor_msgs/msg/Image',),
                 camera_info_topic: ('sensor_msgs/msg/CameraInfo',),
                 odometry_topic: ('nav_msgs/msg/Odometry',),
                 depth_topic: ('sensor_msgs/msg/Image',)}
        for topic in needed:
            if topics[topic] not in types[topic]:
                raise BagError(f'{path}: {topic} carries {topics[topic]}, not '
                               f'{" or ".join(types[topic])}')
        # Pass 1, the small messages: camera_info and poses.
        small = {camera_info_topic} | ({odometry_topic} if pose_source == 'odometry' else
                                       set(TF_TOPICS) & set(topics))
        infos: Dict[int, object] = {}
        for conn, _t, raw in reader.messages([c for c in reader.connections
                                              if c.topic in small]):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == camera_info_topic:
                infos[_stamp_ns(msg.header)] = msg
            elif conn.topic == odometry_topic:
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                tf.add(msg.header.frame_id, msg.child_frame_id, _stamp_ns(msg.header),
                       (p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
                tf.add(msg.child_frame_id, ODOMETRY_CAMERA, 0, extrinsic[:3], extrinsic[3:],
                       static=True)
            else:
                for t in msg.transforms:
                    tr, q = t.transform.translation, t.transform.rotation
                    tf.add(t.header.frame_id, t.child_frame_id, _stamp_ns(t.header),
                           (tr.x, tr.y, tr.z), (q.x, q.y, q.z, q.w),
                           static=conn.topic == '/tf_static')
        info_stamps = sorted(infos)
        tol = int(sync_tolerance * 1e9)
        # Pass 2, the images: each paired, rectified, cut and resized as it is read.
        depths: Dict[int, np.ndarray] = {}
        images: list = []
        seen, last_stamp = 0, None
        rectifier = _Rectifier()
        for conn, _t, raw in reader.messages([c for c in reader.connections
                                              if c.topic in (image_topic, depth_topic)]):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = _stamp_ns(msg.header)
            if conn.topic != image_topic:
                try:
                    depths[stamp] = _decode_depth(msg)
                except ValueError:
                    skips['depth_undecodable'] += 1
                continue
            seen += 1
            if last_stamp is not None and stamp <= last_stamp:
                skips['stamp_not_increasing'] += 1
                continue
            last_stamp = stamp
            j = _nearest(info_stamps, stamp, tol)
            if j is None:
                skips['no_camera_info'] += 1
                continue
            info = infos[info_stamps[j]]
            k = np.asarray(info.k, np.float64).reshape(3, 3)
            if k[0, 0] <= 0 or k[1, 1] <= 0:
                skips['bad_camera_info'] += 1
                continue
            try:
                rgb = _decode_image(msg, compressed)
            except ValueError as exc:
                skips['undecodable'] += 1
                LOG.debug('image at %d skipped: %s', stamp, exc)
                continue
            native_w, native_h = rgb.shape[1], rgb.shape[0]
            info_w, info_h = int(info.width) or native_w, int(info.height) or native_h
            camera = Intrinsics.from_K(k, info_w, info_h)
            if (info_w, info_h) != (native_w, native_h):
                camera = camera.resize(native_w, native_h)
            rgb, camera = rectifier(rgb, camera, info, path)
            box = (0, 0, native_w, native_h)
            if not native_rgb:
                box = fit_box(native_w, native_h, resize_mode, fit_aspect, crop_fraction,
                              width / height)
                x0, y0, bw, bh = box
                interp = cv2.INTER_AREA if width < bw else cv2.INTER_LINEAR
                rgb = cv2.resize(rgb[y0:y0 + bh, x0:x0 + bw], (width, height),
                                 interpolation=interp)
            camera = camera.crop(*box).resize(rgb.shape[1], rgb.shape[0])
            images.append((stamp, camera_frame or msg.header.frame_id, rgb, camera, box,
                           native_w, native_h))
    finally:
        reader.close()
    if not images:
        raise BagError(f'{path}: no usable image on {image_topic} '
                       f'({_describe(skips) or "the topic is empty"})')
    target = target_frame
    if pose_source == 'odometry':
        odom_frames = [f for f in tf.frames() if f not in tf.links]
        target = odom_frames[0] if odom_frames else target_frame
    source_of = (lambda frame: ODOMETRY_CAMERA) if pose_source == 'odometry' else \
        (lambda frame: frame)
    first_frame = images[0][1]
    if not tf.can_connect(target, source_of(first_frame)):
        raise BagError(f'{path}: no transform chain from {target!r} to the frame of the '
                       f'images {first_frame!r}; frames in the tf of the bag: '
                       f'{", ".join(tf.frames()) or "none"}')
    depth_stamps = sorted(depths)
    out = BagFrames([], [], [], [], [], image_topic, skips)
    for stamp, frame, rgb, camera, box, native_w, native_h in images:
        try:
            pose = tf.lookup(target, source_of(frame), stamp)
        except LookupError as exc:
            skips['no_transform'] += 1
            LOG.debug('image at %d skipped: %s', stamp, exc)
            continue
        depth = None
        if depth_topic:
            d = _nearest(depth_stamps, stamp, tol)
            depth = depths[depth_stamps[d]] if d is not None else None
            if depth is None:
                skips['no_depth'] += 1
            else:  # the colour image's box, at the depth image's own size
                sx, sy = depth.shape[1] / native_w, depth.shape[0] / native_h
                x0, y0, bw, bh = (int(round(box[0] * sx)), int(round(box[1] * sy)),
                                  int(round(box[2] * sx)), int(round(box[3] * sy)))
                depth = resize_depth(depth[y0:y0 + bh, x0:x0 + bw], width, height)
        out.stamps.append(stamp)
        out.images.append(rgb)
        out.intrinsics.append(camera)
        out.poses.append(pose)
        out.depths.append(depth)
    if not out.stamps:
        raise BagError(f'{path}: none of the {seen} images on {image_topic} is usable '
                       f'({_describe(skips)})')
    return out


def fit_box(width: int, height: int, resize_mode: str = 'stretch', fit_aspect: float = 0.0,
            crop_fraction: float = 1.0, model_aspect: float = 1.0) -> Tuple[int, int, int, int]:
    """
    Return the (x0, y0, w, h) box of a width x height image that the node feeds the model.

    The node's own fit (``mono_depth_ros.core.fit.make_plan``): ``crop``
    cuts the centred box of ``fit_aspect`` (0: the model input's aspect), then
    ``crop_fraction`` keeps the centred fraction of each side; ``stretch`` takes the whole
    image (then ``crop_fraction``). Training on the same box keeps a fine-tuned model's view
    of the world what it was.
    """
    if resize_mode not in ('stretch', 'crop'):
        raise BagError(f'data.rosbag.resize_mode must be stretch or crop (or init), got '
                       f'{resize_mode!r}')
    box = (0, 0, width, height)
    aspect = fit_aspect or model_aspect
    if resize_mode == 'crop':
        if width > height * aspect:
            cw = min(width, max(1, int(round(height * aspect))))
            box = ((width - cw) // 2, 0, cw, height)
        else:
            ch = min(height, max(1, int(round(width / aspect))))
            box = (0, (height - ch) // 2, width, ch)
    if crop_fraction < 1.0:
        bx, by, bw, bh = box
        cw, ch = max(1, int(round(bw * crop_fraction))), max(1, int(round(bh * crop_fraction)))
        box = (bx + (bw - cw) // 2, by + (bh - ch) // 2, cw, ch)
    return box


class _Rectifier:
    """
    Rectify images by their camera_info, as image_proc does, maps cached.

    As ``image_geometry``'s PinholeCameraModel (ros-perception/vision_opencv,
    image_geometry/src/pinhole_camera_model.cpp, ``initRectificationMaps``):
    ``cv::initUndistortRectifyMap(K, D, R, P)`` for plumb_bob and rational_polynomial,
    ``cv::fisheye::initUndistortRectifyMap`` for equidistant; the rectified image's camera is
    P's left 3x3 (K where P is unset).
    """

    MODELS = ('plumb_bob', 'rational_polynomial', 'equidistant')

    def __init__(self):
        self.maps: Dict[tuple, Tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, rgb: np.ndarray, camera: Intrinsics, info, path: str):
        """Return (rgb, camera) rectified; unchanged when D is all zero."""
        d = np.asarray(info.d, np.float64).reshape(-1)
        if not np.any(np.abs(d) > 1e-12):
            return rgb, camera
        model = info.distortion_model
        if model not in self.MODELS:
            raise BagError(f'{path}: camera_info distortion model {model!r} with D != 0; '
                           f'rectified here: {", ".join(self.MODELS)} (or record image_rect)')
        h, w = rgb.shape[:2]
        p = np.asarray(info.p, np.float64).reshape(3, 4)[:, :3].copy()
        if p[0, 0] <= 0 or p[1, 1] <= 0:
            p = camera.K.astype(np.float64)
        elif info.width and info.height and (int(info.width), int(info.height)) != (w, h):
            p[0] *= w / int(info.width)
            p[1] *= h / int(info.height)
        r = np.asarray(info.r, np.float64).reshape(3, 3)
        if not np.isfinite(r).all() or abs(np.linalg.det(r) - 1.0) > 1e-3:
            r = np.eye(3)
        k = camera.K.astype(np.float64)
        key = (model, k.tobytes(), d.tobytes(), r.tobytes(), p.tobytes(), w, h)
        if key not in self.maps:
            if model == 'equidistant':
                self.maps[key] = cv2.fisheye.initUndistortRectifyMap(
                    k, d[:4], r, p, (w, h), cv2.CV_32FC1)
            else:
                self.maps[key] = cv2.initUndistortRectifyMap(k, d, r, p, (w, h),
                                                             cv2.CV_32FC1)
        map_x, map_y = self.maps[key]
        rectified = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        return rectified, Intrinsics.from_K(p, w, h)


def _bag_path(path: str):
    from pathlib import Path
    path = Path(path)
    if path.is_file() and path.suffix in ('.mcap', '.db3') and (
            path.parent / 'metadata.yaml').is_file():
        return path.parent
    return path


def _describe(skips: Mapping[str, int]) -> str:
    return ', '.join(f'{k}: {v}' for k, v in sorted(skips.items()) if v)


# -- triplets ---------------------------------------------------------------------------------
def select_triplets(stamps: Sequence[int], poses: Sequence[np.ndarray], indices: Sequence[int],
                    min_baseline: float, max_baseline: float, max_span: float,
                    skips: Optional[Counter] = None) -> List[Tuple[int, int, int]]:
    """
    Return (previous, target, next) frame indices, chosen by camera motion (module doc).

    ``indices`` are the frames allowed (one split, sorted by time); sources come from them.
    """
    skips = skips if skips is not None else Counter()
    centres = np.array([np.asarray(poses[i])[:3, 3] for i in indices]) if indices else \
        np.zeros((0, 3))
    span_ns = max_span * 1e9
    out = []

    def neighbour(k: int, step: int) -> Tuple[Optional[int], str]:
        j = k + step
        while 0 <= j < len(indices) and abs(stamps[indices[j]] - stamps[indices[k]]) <= span_ns:
            dist = float(np.linalg.norm(centres[j] - centres[k]))
            if dist >= min_baseline:
                return (j, '') if dist <= max_baseline else (None, 'pose_jump')
            j += step
        return None, 'static'

    for k, index in enumerate(indices):
        prev, why_prev = neighbour(k, -1)
        nxt, why_next = neighbour(k, +1)
        if prev is None or nxt is None:
            skips[why_prev or why_next] += 1
            continue
        out.append((indices[prev], index, indices[nxt]))
    return out


_CACHE: Dict[tuple, BagFrames] = {}


class RosbagDataset(DepthDataset):
    """
    Frame triplets (or single frames) from a rosbag2 recording, see the module docstring.

    ``split`` is 'train' (the first 1 - val_fraction of the recording), 'val' (the rest) or
    'all'. Each sample's depth is the paired depth image when ``depth_topic`` is set, else
    zeros (no ground truth). ``frame_offsets`` may only be (-1, 1) or a subset: the earlier
    and later source chosen by pose.
    """

    max_eval_depth = 10.0
    eval_crop = None

    def __init__(self, root: str, split: str = 'train', image_topic: str = '/camera/image_raw',
                 camera_info_topic: str = '/camera/camera_info', pose_source: str = 'tf',
                 target_frame: str = 'odom', camera_frame: str = '',
                 odometry_topic: str = '/odom',
                 camera_extrinsic: Sequence[float] = (0, 0, 0, 0, 0, 0, 1),
                 depth_topic: str = '', sync_tolerance: float = 0.01,
                 max_pose_gap: float = 0.2, min_baseline: float = 0.05,
                 max_baseline: float = 0.5, max_span: float = 1.0, val_fraction: float = 0.25,
                 native_rgb: bool = False, resize_mode: str = 'stretch',
                 fit_aspect: float = 0.0, crop_fraction: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if split not in ('train', 'val', 'all'):
            raise BagError(f"split must be 'train', 'val' or 'all', got {split!r}")
        if not 0.0 <= float(val_fraction) < 1.0:
            raise BagError(f'data.rosbag.val_fraction must be in [0, 1), got {val_fraction}')
        if not 0 < float(min_baseline) < float(max_baseline):
            raise BagError('need 0 < data.rosbag.min_baseline < data.rosbag.max_baseline, got '
                           f'{min_baseline}, {max_baseline}')
        bad = [o for o in self.frame_offsets if o not in (-1, 1)]
        if bad:
            raise BagError(f'a rosbag gives the earlier and later source chosen by pose: '
                           f'frame offsets -1 and 1, not {bad}')
        key = (os.path.abspath(root), self.resize, image_topic, camera_info_topic, pose_source,
               target_frame, camera_frame, odometry_topic, tuple(camera_extrinsic),
               depth_topic, float(sync_tolerance), float(max_pose_gap), bool(native_rgb),
               resize_mode, float(fit_aspect), float(crop_fraction))
        if key not in _CACHE:
            _CACHE.clear()  # one recording in memory at a time
            _CACHE[key] = read_bag(root, self.resize, image_topic, camera_info_topic,
                                   pose_source, target_frame, camera_frame, odometry_topic,
                                   camera_extrinsic, depth_topic, sync_tolerance, max_pose_gap,
                                   native_rgb, resize_mode, fit_aspect, crop_fraction)
        self.frames = _CACHE[key]
        self.skips = Counter(self.frames.skips)
        n = len(self.frames.stamps)
        first_val = n if split == 'train' and val_fraction == 0 else \
            int(round(n * (1.0 - float(val_fraction))))
        self.indices = list(range(0, first_val)) if split == 'train' else \
            list(range(first_val, n)) if split == 'val' else list(range(n))
        self.split = split
        if self.frame_offsets:
            self.triplets = select_triplets(self.frames.stamps, self.frames.poses,
                                            self.indices, min_baseline, max_baseline,
                                            max_span, self.skips)
            if not self.triplets:
                raise BagError(f'{root}: no {split} frame has earlier and later frames at '
                               f'least {min_baseline} m away within {max_span} s '
                               f'({_describe(self.skips)}); is the camera moving?')
        else:
            self.triplets = [(i, i, i) for i in self.indices]
            if not self.triplets:
                raise BagError(f'{root}: the {split} split is empty ({n} usable frames, '
                               f'val_fraction {val_fraction})')
        LOG.info('%s (%s): %d frames, %d %s samples; skipped: %s', root, split, n,
                 len(self.triplets), 'triplet' if self.frame_offsets else 'frame',
                 _describe(self.skips) or 'none')

    def __len__(self) -> int:
        """Return the number of target frames."""
        return len(self.triplets)

    def _sample(self, i: int) -> RawSample:
        f = self.frames
        depth = f.depths[i]
        if depth is None:
            depth = np.zeros(f.images[i].shape[:2], np.float32)
        return RawSample(f.images[i], depth, f.intrinsics[i],
                         id=f'frame_{f.stamps[i]}', pose=f.poses[i])

    def load(self, index: int) -> RawSample:
        """Return the target frame of sample index."""
        return self._sample(self.triplets[index][1])

    def load_frame(self, index: int, offset: int) -> RawSample:
        """Return the earlier (offset -1) or later (+1) source of sample index."""
        prev, _target, nxt = self.triplets[index]
        return self._sample(prev if offset < 0 else nxt)
