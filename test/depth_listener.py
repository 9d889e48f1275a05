"""
A best-effort depth subscriber in a process of its own, as RViz or a costmap would be.

    python depth_listener.py TOPIC SECONDS

Counts the sensor_msgs/Image messages that arrive on TOPIC with sensor-data QoS for
SECONDS, then prints one JSON line: {"count": N, "sizes": [[w, h], ...], "stamps": [ns, ...]}.
"""

import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    """Listen, then print the count."""
    topic, seconds = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = Node('depth_listener')
    got = []
    node.create_subscription(
        Image, topic, lambda m: got.append((m.width, m.height, m.header.stamp.sec * 10 ** 9 +
                                            m.header.stamp.nanosec)), qos_profile_sensor_data)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        print(json.dumps({'count': len(got), 'sizes': sorted({g[:2] for g in got}),
                          'stamps': [g[2] for g in got]}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
