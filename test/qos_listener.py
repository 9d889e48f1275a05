"""
Subscribers of both reliabilities in a process of their own, as RViz and a costmap would be.

    python qos_listener.py SECONDS TOPIC:TYPE [TOPIC:TYPE ...]

TYPE is Image, CameraInfo or PointCloud2. For every topic one subscription is reliable
(RViz's and depth_image_proc's default) and one best effort (sensor data); the process
listens until each has a message or SECONDS pass, then prints one JSON line:
``{"counts": {"TOPIC reliable": N, "TOPIC best_effort": N, ...},
"offered": {"TOPIC": ["reliable", ...]}}``, ``offered`` being the publishers' reliability
as the graph reports it.
"""

import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

TYPES = {'Image': Image, 'CameraInfo': CameraInfo, 'PointCloud2': PointCloud2}


def main() -> int:
    """Listen, then print the counts."""
    seconds, specs = float(sys.argv[1]), [a.rsplit(':', 1) for a in sys.argv[2:]]
    rclpy.init()
    node = Node('qos_listener')
    counts = {}
    for topic, kind in specs:
        for name, policy in (('reliable', ReliabilityPolicy.RELIABLE),
                             ('best_effort', ReliabilityPolicy.BEST_EFFORT)):
            key = f'{topic} {name}'
            counts[key] = 0

            def on_msg(_msg, key=key):
                counts[key] += 1

            node.create_subscription(TYPES[kind], topic, on_msg,
                                     QoSProfile(depth=5, reliability=policy))
    end = time.monotonic() + seconds
    offered = {}
    try:
        while time.monotonic() < end and not all(counts.values()):
            rclpy.spin_once(node, timeout_sec=0.05)
        for topic, _ in specs:
            offered[topic] = sorted(i.qos_profile.reliability.name.lower()
                                    for i in node.get_publishers_info_by_topic(topic))
    finally:
        print(json.dumps({'counts': counts, 'offered': offered}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
