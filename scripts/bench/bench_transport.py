#!/usr/bin/env python3
"""
How many large messages Fast DDS delivers between two processes on this machine.

For each transport set-up (Fast DDS defaults, FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA, and the
shipped profile config/fastdds_large_shm.xml), each reliability (best effort, reliable) and
each payload (a 640x480 rgb8 Image, a 640x480 xyzrgb PointCloud2), one process publishes at
30 Hz and another counts what arrives and the latency (publish stamp to receipt, read from
the serialized header). Prints one table. Every process runs with
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless the caller set it otherwise.

    .venv/bin/python scripts/bench/bench_transport.py [--seconds 8] [--rate 30]
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = os.path.join(REPO, 'config', 'fastdds_large_shm.xml')
SETUPS = {
    'defaults': {},
    'LARGE_DATA': {'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'},
    'fastdds_large_shm.xml': {'FASTDDS_DEFAULT_PROFILES_FILE': PROFILE},
}
PAYLOADS = {'image 640x480 rgb8': 'image', 'cloud 640x480 xyzrgb': 'cloud'}


def _qos(reliability):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    policy = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
              'reliable': ReliabilityPolicy.RELIABLE}[reliability]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=policy)


def _message(kind):
    import numpy as np
    from sensor_msgs.msg import Image, PointCloud2, PointField
    h, w = 480, 640
    if kind == 'image':
        msg = Image(height=h, width=w, encoding='rgb8', step=3 * w)
        msg.data = np.random.default_rng(0).integers(0, 255, h * w * 3, np.uint8).tobytes()
        return Image, msg
    fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, n in enumerate('xyz')]
    fields.append(PointField(name='rgb', offset=12, datatype=PointField.FLOAT32, count=1))
    msg = PointCloud2(height=h, width=w, fields=fields, is_bigendian=False, point_step=16,
                      row_step=16 * w, is_dense=False)
    msg.data = np.random.default_rng(0).random(h * w * 4, np.float32).tobytes()
    return PointCloud2, msg


def publisher(args):
    import rclpy
    from builtin_interfaces.msg import Time
    rclpy.init()
    node = rclpy.create_node('bench_transport_pub')
    msg_type, msg = _message(args.payload)
    pub = node.create_publisher(msg_type, 'bench_transport', _qos(args.reliability))
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)  # let the data connection settle (TCP for LARGE_DATA)
    sent, next_t = 0, time.monotonic()
    end = next_t + args.seconds
    while time.monotonic() < end:
        ns = node.get_clock().now().nanoseconds
        msg.header.stamp = Time(sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)
        pub.publish(msg)
        sent += 1
        next_t += 1.0 / args.rate
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(1.0)
    print(json.dumps({'sent': sent}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def subscriber(args):
    import rclpy
    rclpy.init()
    node = rclpy.create_node('bench_transport_sub')
    msg_type, _msg = _message(args.payload)
    latencies = []

    def on_raw(raw):
        # CDR: 4-byte encapsulation header, then the header stamp (int32 sec, uint32 nsec).
        sec, nanosec = struct.unpack_from('<iI', raw, 4)
        latencies.append((node.get_clock().now().nanoseconds - sec * 10 ** 9 - nanosec) / 1e6)

    node.create_subscription(msg_type, 'bench_transport', on_raw, _qos(args.reliability),
                             raw=True)
    end = time.monotonic() + args.seconds + 4.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({'latencies': latencies}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def _run_cell(setup, reliability, payload, args, domain):
    env = {k: v for k, v in os.environ.items()
           if k not in ('FASTDDS_BUILTIN_TRANSPORTS', 'FASTDDS_DEFAULT_PROFILES_FILE',
                        'FASTRTPS_DEFAULT_PROFILES_FILE')}
    env.update(SETUPS[setup])
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env['ROS_DOMAIN_ID'] = str(domain)
    common = [sys.executable, os.path.abspath(__file__), '--seconds', str(args.seconds),
              '--rate', str(args.rate), '--reliability', reliability, '--payload', payload]
    sub = subprocess.Popen(common + ['--role', 'sub'], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.5)
    pub = subprocess.run(common + ['--role', 'pub'], env=env, capture_output=True, text=True,
                         timeout=args.seconds + 30)
    out, _ = sub.communicate(timeout=args.seconds + 30)
    sent = json.loads(pub.stdout.strip().splitlines()[-1])['sent']
    lat = json.loads(out.strip().splitlines()[-1])['latencies']
    return sent, lat


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    parser.add_argument('--reliability', default='best_effort', help=argparse.SUPPRESS)
    parser.add_argument('--payload', default='image', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == 'pub':
        return publisher(args)
    if args.role == 'sub':
        return subscriber(args)
    import numpy as np
    print(f'{args.rate:.0f} Hz for {args.seconds:.0f} s per cell, two processes, one machine\n')
    print('| transports | QoS | payload | delivered | latency p50 / p95 ms |')
    print('|---|---|---|---|---|')
    domain = 60 + os.getpid() % 40
    for setup in SETUPS:
        for reliability in ('best_effort', 'reliable'):
            for label, payload in PAYLOADS.items():
                sent, lat = _run_cell(setup, reliability, payload, args, domain)
                share = 100.0 * len(lat) / max(sent, 1)
                timing = (f'{np.percentile(lat, 50):.1f} / {np.percentile(lat, 95):.1f}'
                          if lat else '-')
                print(f'| {setup} | {reliability} | {label} | {len(lat)}/{sent} '
                      f'({share:.0f}%) | {timing} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
