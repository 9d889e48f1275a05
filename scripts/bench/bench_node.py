#!/usr/bin/env python3
"""
Drive depth_node with a 30 Hz 640x480 stream and report what it costs.

    python scripts/bench/bench_node.py [--seconds 120] [--rate 30] [--no-points] [--model M]
                                 [--subscribers best_effort|reliable]

The stream is the real NYU sample pictures with the Kinect intrinsics when the shared data
is there, else synthetic rooms; depth and the (decimated, xyzrgb by default) cloud are
subscribed, best effort (a costmap) or reliable (RViz, depth_image_proc); the node publishes
reliable by default. Prints the output rate, latency p50/p95 (input stamp to receipt here), the
node's per-stage times (from its /diagnostics), the non-inference cost per frame (decode,
preprocess, postprocess, cloud, publish) against the 4 ms target, the node's CPU time per
frame from /proc, and its memory after warm-up, at the middle and at the end of the run.
The driver shares the machine with the node; the load average is printed with the figures.
"""

import argparse
import os
import signal
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'config',
                       'fastdds_large_shm.xml')
# Large images and clouds need it: see config/fastdds_large_shm.xml.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE', os.path.abspath(PROFILE))

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from mono_depth_ros.ros import messages as ros_io  # noqa: E402
from mono_depth_ros.sim.synthetic import SyntheticStream  # noqa: E402
from mono_depth_ros.tools.depth_bench import rss_bytes  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402


def rss_mb(pid):
    return rss_bytes(pid) / 2 ** 20


def cpu_seconds(pid):
    """Return a process's user + system CPU time so far (all threads), from /proc."""
    with open(f'/proc/{pid}/stat') as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def real_frames(width, height):
    """Return the NYU sample pictures at width x height and their Kinect intrinsics."""
    import cv2
    from mono_depth_ros.core.intrinsics import preset
    root = os.environ.get('MONO_DEPTH_SHARED_DATA', os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'data'))
    folder = os.path.join(root, 'nyu', 'rgb')
    if not os.path.isdir(folder):
        return [], None, ''
    frames = []
    for name in sorted(os.listdir(folder)):
        bgr = cv2.imread(os.path.join(folder, name), cv2.IMREAD_COLOR)
        if bgr is not None:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frames.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
                          if rgb.shape[:2] != (height, width) else rgb)
    return frames, preset('kinect_nyu').resize(width, height), f'{len(frames)} NYU pictures'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--seconds', type=float, default=120.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--model', default='')
    parser.add_argument('--no-points', action='store_true', help='do not subscribe to points')
    parser.add_argument('--subscribers', choices=('best_effort', 'reliable'),
                        default='best_effort', help="this driver's depth and points QoS")
    parser.add_argument('--cv2-threads', type=int, default=1,
                        help="OpenCV threads in the node (1: all of the node's own work runs "
                        'on its worker thread, so its CPU time is the whole one-core cost)')
    args = parser.parse_args()
    os.environ.setdefault('ROS_DOMAIN_ID', str(50 + os.getpid() % 50))
    frames, intr, source = real_frames(args.width, args.height)
    if not frames:
        stream = SyntheticStream(args.width, args.height, seed=3, frames_per_room=30)
        frames = [stream.frame(i).rgb for i in range(30)]
        intr, source = stream.intrinsics, 'synthetic rooms'

    cmd = [os.path.join(os.path.dirname(sys.executable), 'depth_node'), '--ros-args',
           '-p', 'diagnostics_period:=1.0']
    if args.model:
        cmd += ['-p', f'model_path:={args.model}']
    log = open('/tmp/bench_node_depth_node.log', 'w')
    env = dict(os.environ)
    if args.cv2_threads > 0:
        env['OPENCV_FOR_THREADS_NUM'] = str(args.cv2_threads)
    node_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    rclpy.init()
    node = rclpy.create_node('bench_driver')
    pub_img = node.create_publisher(Image, 'image', qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, 'camera_info', qos_profile_sensor_data)
    latencies, diag = [], {}

    def on_depth(raw):
        # Raw (serialized) subscriptions: the driver shares the 2 cores with the node, so it
        # does not deserialize 1.2 MB depth images and 4.9 MB clouds in Python. The stamp is
        # read from the CDR bytes: a 4-byte encapsulation header, then int32 sec, uint32 nsec.
        sec, nanosec = struct.unpack_from('<iI', raw, 4)
        latencies.append((node.get_clock().now().nanoseconds - (sec * 10 ** 9 + nanosec)) / 1e6)

    def on_diag(msg):
        for status in msg.status:
            if status.name.startswith('/depth_node'):
                diag.update({kv.key: kv.value for kv in status.values})

    out_qos = qos_profile_sensor_data if args.subscribers == 'best_effort' else QoSProfile(
        depth=5, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, 'depth/image', on_depth, out_qos, raw=True)
    if not args.no_points:
        node.create_subscription(PointCloud2, 'points', lambda _raw: None, out_qos, raw=True)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    prebuilt = [ros_io.rgb_to_image(rgb, Header(frame_id='camera_optical_frame'))
                for rgb in frames]
    while pub_img.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
        if node_proc.poll() is not None:
            print(open('/tmp/bench_node_depth_node.log').read())
            return 1
    subscribed = ('depth' if args.no_points else 'depth + points') + f', {args.subscribers}'
    print(f'driving depth_node with {args.width}x{args.height} rgb8 at {args.rate:.0f} Hz for '
          f'{args.seconds:.0f} s from {source} ({subscribed} subscribed)', flush=True)
    warm_end = time.monotonic() + 3.0
    period = 1.0 / args.rate
    sent, rss_start, rss_mid, next_t = 0, None, None, time.monotonic()
    end = warm_end + args.seconds
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_t:
            msg = prebuilt[sent % len(prebuilt)]
            ns = node.get_clock().now().nanoseconds
            msg.header.stamp = Time(sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)
            pub_info.publish(ros_io.camera_info(intr, msg.header))
            pub_img.publish(msg)
            sent += 1
            next_t += period
        if rss_start is None and now > warm_end:
            rss_start = rss_mb(node_proc.pid)
            cpu_start = cpu_seconds(node_proc.pid)
            latencies.clear()
            sent_at_start, diag_start = sent, dict(diag)
            t_start = now
        if rss_mid is None and now > warm_end + args.seconds / 2:
            rss_mid = rss_mb(node_proc.pid)
        rclpy.spin_once(node, timeout_sec=max(0.0, min(period, next_t - time.monotonic())))
    rss_end = rss_mb(node_proc.pid)
    cpu_end = cpu_seconds(node_proc.pid)
    load = os.getloadavg()
    elapsed = time.monotonic() - t_start
    node_proc.send_signal(signal.SIGINT)
    code = node_proc.wait(15)
    node.destroy_node()
    rclpy.try_shutdown()

    def ms(key):
        try:
            return float(diag.get(key, 'nan'))
        except ValueError:
            return float('nan')
    lat = np.array(latencies) if latencies else np.array([np.nan])
    stages = ('decode', 'preprocess', 'inference', 'postprocess', 'colored', 'cloud', 'publish')
    times = {s: ms(f'{s}_ms') for s in stages}
    frame = ms('frame_time_mean_ms')
    overhead = frame - times['inference']
    print(f'\nbackend: {diag.get("backend", "?")}')

    def delta(key):  # node counters over the measured window (diagnostics come at 1 Hz)
        return ms(key) - float(diag_start.get(key, 'nan'))
    print(f'frames sent {sent - sent_at_start}, depth received {len(latencies)}, '
          f'output rate {len(latencies) / elapsed:.1f} Hz; node over the window: frames_in '
          f'{delta("frames_in"):.0f}, frames_out {delta("frames_out"):.0f}, '
          f'dropped {delta("dropped"):.0f}')
    print(f'latency input stamp -> receipt: p50 {np.percentile(lat, 50):.1f} ms, '
          f'p95 {np.percentile(lat, 95):.1f} ms')
    stage_text = ', '.join(f'{s} {v:.2f}' for s, v in times.items() if not np.isnan(v))
    print(f'per-stage mean ms: {stage_text}')
    print(f'frame time {frame:.1f} ms; overhead (all but inference) {overhead:.1f} ms = '
          f'{100 * overhead / frame:.0f}% of frame time')
    parts = ('decode', 'preprocess', 'postprocess', 'colored', 'cloud', 'publish')
    non_inference = sum(times[s] for s in parts if not np.isnan(times[s]))
    print(f'non-inference per frame (sum of the stage means): {non_inference:.2f} ms '
          f'(target 4 ms: {"met" if non_inference <= 4.0 else "NOT met"})')
    print(f'non-inference CPU time per frame (the worker thread, thread_time): '
          f'{ms("non_inference_cpu_ms"):.2f} ms (target 4 ms: '
          f'{"met" if ms("non_inference_cpu_ms") <= 4.0 else "NOT met"}): decode '
          f'{ms("decode_cpu_ms"):.2f}, pipeline (preprocess, postprocess, cloud) '
          f'{ms("pipeline_cpu_ms"):.2f}, messages and publish {ms("publish_cpu_ms"):.2f} ms')
    frames_out = delta('frames_out')
    if frames_out > 0:
        cpu_ms = 1000 * (cpu_end - cpu_start) / frames_out
        print(f'depth_node CPU time per frame, all its threads (/proc, inference and DDS '
              f'included): {cpu_ms:.2f} ms')
    print(f'depth_node RSS: {rss_start:.0f} MB after warm-up, {rss_mid:.0f} MB halfway, '
          f'{rss_end:.0f} MB at the end ({rss_end - rss_start:+.1f} MB over {elapsed:.0f} s); '
          f'exit code {code}')
    print(f'load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} '
          f'({os.cpu_count()} cores)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
