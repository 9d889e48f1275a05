#!/usr/bin/env python3
"""
The demo: a synthetic camera, depth_node with the bundled model, a recording and a preview.

Starts ``sample_camera`` (a camera moving through procedural rooms, which also publishes the
exact ground-truth depth) and ``depth_node`` as processes, records every topic for a few
seconds into a rosbag2 folder with an MCAP file (opens in Foxglove, plays with
``ros2 bag play``), writes
``preview.png`` (input | predicted depth | ground truth | point cloud) and prints a summary.
"""

import argparse
import atexit
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'config',
                       'fastdds_large_shm.xml')
# Large images and clouds need it: see config/fastdds_large_shm.xml.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', os.path.abspath(PROFILE))

import cv2  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from mono_depth_ros.core.atomic import atomic_path  # noqa: E402
from mono_depth_ros.core.colormap import colorize_depth  # noqa: E402
from mono_depth_ros.core.pointcloud import unpack_cloud  # noqa: E402
from mono_depth_ros.ros import messages as ros_io  # noqa: E402
from mono_depth_ros.tools.preview import label, real_row, render_cloud  # noqa: E402
from mono_depth_ros.tools.rosbag2_writer import Rosbag2Writer  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

TOPICS = {
    '/image': Image, '/camera_info': CameraInfo, '/depth/image': Image,
    '/depth/camera_info': CameraInfo, '/depth/colored': Image, '/points': PointCloud2,
    '/ground_truth/depth': Image, '/diagnostics': DiagnosticArray,
}
# Recorded into the bag: everything but the colour map (a view of depth that Foxglove and
# RViz draw themselves), to keep the bag small.
BAG_TOPICS = set(TOPICS) - {'/depth/colored'}


class Children:
    """
    The demo's child processes, stopped on any exit of the demo.

    Each child runs in its own process group (so a terminal's Ctrl-C reaches only the demo,
    which then stops them in order) and is told by the kernel to terminate if the demo dies
    without cleaning up (``kill -9``: PR_SET_PDEATHSIG). :meth:`stop` runs from ``finally``,
    from ``atexit`` and after SIGTERM/SIGHUP, and is idempotent.
    """

    def __init__(self):
        self.procs = []
        self._codes = None

    @staticmethod
    def _die_with_parent():
        try:
            import ctypes
            ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # not Linux/glibc: finally and atexit still apply
            pass

    def start(self, argv, log):
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=self._die_with_parent)
        self.procs.append(proc)
        return proc

    def stop(self, timeout=15.0):
        """SIGINT each child's group, SIGKILL what is left after ``timeout``; return codes."""
        if self._codes is not None:
            return self._codes
        for proc in self.procs:
            self._signal(proc, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        self._codes = [proc.returncode for proc in self.procs]
        return self._codes

    @staticmethod
    def _signal(proc, sig):
        try:
            os.killpg(proc.pid, sig)  # the child and anything it started
        except (ProcessLookupError, PermissionError):
            pass


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through finally, which stops the children


def main():
    children = Children()
    atexit.register(children.stop)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    # Interrupt even where the shell started the demo with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(children)
    except KeyboardInterrupt:
        print('demo: interrupted', file=sys.stderr)
        return 130
    finally:
        children.stop()


def run(children):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--output-dir', default='out/demo')
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--rate', type=float, default=10.0)
    parser.add_argument('--bag-seconds', type=float, default=3.0,
                        help='record this first part of the window into the bag (small)')
    parser.add_argument('--model', default='', help='model file (default: the bundled one)')
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    bin_dir = os.path.dirname(sys.executable)
    os.environ.setdefault('ROS_DOMAIN_ID', str(50 + os.getpid() % 50))
    logs = {name: open(os.path.join(args.output_dir, f'{name}.log'), 'w')
            for name in ('sample_camera', 'depth_node')}
    camera = children.start(
        [os.path.join(bin_dir, 'sample_camera'), '--ros-args', '-p', f'rate_hz:={args.rate}',
         '-p', 'synthetic_frames:=40', '-p', 'seed:=7', '-p', 'reliability:=reliable'],
        logs['sample_camera'])
    # Reliable end to end: a recording should hold every frame (a reliable publisher also
    # serves best-effort subscribers such as RViz's defaults).
    # Every 4th pixel in the cloud (160x120 points): the recording stays small.
    # The outputs are reliable by default; the subscriptions are made reliable too.
    node_args = [os.path.join(bin_dir, 'depth_node'), '--ros-args',
                 '-p', 'qos_overrides./image.subscription.reliability:=reliable',
                 '-p', 'qos_overrides./camera_info.subscription.reliability:=reliable',
                 '-p', 'cloud_decimation:=4']
    if args.model:
        node_args += ['-p', f'model_path:={args.model}']
    node = children.start(node_args, logs['depth_node'])

    # The demo handles its signals itself (main): rclpy's handlers would replace them.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    recorder_node = rclpy.create_node('demo_recorder')
    bag_path = os.path.join(args.output_dir, 'demo_bag')
    recorder = Rosbag2Writer(bag_path)
    bag_until = []  # the bag's end (ns) once the window starts with the first depth image
    latest, stamps, latencies, ground_truth, scores = {}, {}, [], {}, []
    counts = {t: 0 for t in TOPICS}

    def callback(topic, msg_type):
        def on_message(data):
            now = time.time_ns()
            if bag_until and now <= bag_until[0] and topic in BAG_TOPICS:
                recorder.write(topic, msg_type, data, now)
            counts[topic] += 1
            if topic in ('/depth/image', '/ground_truth/depth', '/points', '/image'):
                msg = deserialize_message(data, msg_type)
                latest[topic] = msg
                stamp = msg.header.stamp.sec * 10 ** 9 + msg.header.stamp.nanosec
                if topic == '/depth/image':
                    latencies.append((now - stamp) / 1e6)
                    stamps[stamp] = msg
                elif topic == '/ground_truth/depth':
                    ground_truth[stamp] = msg
                elif topic == '/image':
                    stamps.setdefault(('image', stamp), msg)
                elif topic == '/points':
                    stamps[('points', stamp)] = msg
        return on_message

    for topic, msg_type in TOPICS.items():
        qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        recorder_node.create_subscription(msg_type, topic, callback(topic, msg_type), qos,
                                          raw=True)
    print(f'demo: recording {args.seconds:.0f} s of synthetic camera -> depth_node ...',
          flush=True)
    start = time.monotonic()
    deadline = start + args.seconds + 60.0  # start-up (rendering, model load) not counted
    recording_since = None
    while time.monotonic() < deadline:
        rclpy.spin_once(recorder_node, timeout_sec=0.05)
        if node.poll() is not None or camera.poll() is not None:
            break
        if recording_since is None and counts['/depth/image'] > 0:
            recording_since = time.monotonic()
            bag_until.append(time.time_ns() + int(min(args.bag_seconds, args.seconds) * 1e9))
            for topic in counts:
                counts[topic] = 0
            latencies.clear()
        if recording_since is not None and time.monotonic() - recording_since > args.seconds:
            break
    elapsed = time.monotonic() - (recording_since or start)
    codes = children.stop()
    recorder.close()
    recorder_node.destroy_node()
    rclpy.try_shutdown()
    if counts['/depth/image'] == 0:
        for name in logs:
            logs[name].close()
            print(open(os.path.join(args.output_dir, f'{name}.log')).read())
        print('demo: FAILED, no depth images were received')
        return 1

    for stamp, depth_msg in stamps.items():
        if isinstance(stamp, int) and stamp in ground_truth:
            pred = ros_io.depth_from_image(depth_msg)
            gt = ros_io.depth_from_image(ground_truth[stamp])
            ok = np.isfinite(pred) & np.isfinite(gt) & (gt > 0)
            if ok.any():
                ratio = np.maximum(pred[ok] / gt[ok], gt[ok] / pred[ok])
                scores.append((np.mean(np.abs(pred[ok] - gt[ok]) / gt[ok]),
                               np.mean(ratio < 1.25), ok.mean()))
    paired = [s for s in stamps if isinstance(s, int) and s in ground_truth]
    if paired:  # show the frame with the most depth structure
        stamp = max(paired, key=lambda s: float(np.nanstd(
            ros_io.depth_from_image(ground_truth[s]))))
    else:
        stamp = max(s for s in stamps if isinstance(s, int))
    depth = ros_io.depth_from_image(stamps[stamp])
    image_msg = stamps.get(('image', stamp), latest.get('/image'))
    rgb = ros_io.image_to_rgb(image_msg) if image_msg is not None else np.zeros(
        depth.shape + (3,), np.uint8)
    # One colour scale for prediction and ground truth, spanning what the scene holds.
    ref = ros_io.depth_from_image(ground_truth[stamp]) if stamp in ground_truth else depth
    lo = max(0.1, float(np.nanpercentile(ref, 2)) * 0.8)
    hi = max(lo + 0.5, float(np.nanpercentile(ref, 98)) * 1.2)
    panels = [label(rgb, 'input (synthetic camera)'),
              label(colorize_depth(depth, lo, hi, inverse=False), 'predicted depth')]
    if stamp in ground_truth:
        panels.append(label(colorize_depth(ref, lo, hi, inverse=False), 'ground truth'))
    cloud_msg = stamps.get(('points', stamp), latest.get('/points'))
    if cloud_msg is not None:
        xyz, colour = unpack_cloud(ros_io.cloud_from_msg(cloud_msg))
        panels.append(label(render_cloud(xyz, colour), 'point cloud (points)'))
    preview_image = np.hstack(panels)
    from mono_depth_ros.ros.depth_node import bundled_model_path
    real = real_row(args.model or bundled_model_path(), preview_image.shape[1])
    if real is not None:
        preview_image = np.vstack([preview_image, real])
    preview = os.path.join(args.output_dir, 'preview.png')
    with atomic_path(preview) as tmp:
        cv2.imwrite(tmp + '.png', cv2.cvtColor(preview_image, cv2.COLOR_RGB2BGR))
        os.replace(tmp + '.png', tmp)

    lat = np.array(latencies) if latencies else np.array([np.nan])
    print('\n== mono_depth_ros demo ==')
    print(f'frames in (image):        {counts["/image"]}')
    print(f'frames out (depth):       {counts["/depth/image"]}  (points: {counts["/points"]}, '
          f'colored: {counts["/depth/colored"]})')
    print(f'output rate:              {counts["/depth/image"] / elapsed:.1f} Hz '
          f'(camera at {args.rate:.0f} Hz)')
    print(f'latency stamp->receipt:   p50 {np.percentile(lat, 50):.1f} ms, '
          f'p95 {np.percentile(lat, 95):.1f} ms')
    if scores:
        s = np.array(scores)
        print(f'accuracy vs ground truth: abs_rel {s[:, 0].mean():.3f}, d1 {s[:, 1].mean():.3f}'
              f' over {len(s)} frames (valid share {s[:, 2].mean():.2f})')
    print(f'recording:                {bag_path}/ (rosbag2, mcap; {recorder.count} messages, '
          f'{recorder.size_bytes() / 1e6:.1f} MB; ros2 bag play {bag_path})')
    print(f'preview:                  {preview}')
    print(f'exit codes:               sample_camera {codes[0]}, depth_node {codes[1]}')
    for handle in logs.values():
        handle.close()
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == '__main__':
    sys.exit(main())
