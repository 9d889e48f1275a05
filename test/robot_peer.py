"""
A robot in its own process: a camera driver and odometry publishing a recorded sequence.

Run with the ROS 2 overlay on the path (tf2_ros), as ``ros2_tools.toolchain_env()`` gives it:

    robot_peer.py PLAN.json

PLAN holds ``sequence`` (a 7-Scenes folder: ``frame-NNNNNN.color.jpg`` and ``.pose.txt``,
the pose camera-to-world in metres), ``intrinsics`` ([fx, fy, cx, cy]), ``odom_frame``,
``camera_frame``, ``period`` (s between messages) and ``steps``: ``[frame, stamp_s, tf]``
each. Per step it broadcasts the frame's pose as the transform ``odom_frame`` ->
``camera_frame`` stamped ``stamp_s`` after the start (when ``tf`` is true: odometry that
drops out otherwise), then the image and its CameraInfo with the same stamp, as a robot's
odometry and camera would. It prints ``ready T0`` (the stamp of step time 0, ns) once the
node subscribes, ``sent N`` per
step and ``done`` at the end, then spins until SIGINT.
"""

import json
from pathlib import Path
import sys
import time

import cv2
from geometry_msgs.msg import TransformStamped
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from tf2_ros import TransformBroadcaster


def quaternion(r):
    """Return (x, y, z, w) of a rotation matrix (Shepperd's method)."""
    trace = np.trace(r)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        return [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s,
                0.25 * s]
    i = int(np.argmax(np.diag(r)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k])
    q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
    q[i], q[j], q[k] = 0.25 * s, (r[j, i] + r[i, j]) / s, (r[k, i] + r[i, k]) / s
    return q


def main(path):
    """Publish the plan, then spin until SIGINT."""
    plan = json.loads(Path(path).read_text())
    seq = Path(plan['sequence'])
    fx, fy, cx, cy = plan['intrinsics']
    rclpy.init()
    node = Node('robot_peer')
    tf = TransformBroadcaster(node)
    pub_image = node.create_publisher(Image, 'image', qos_profile_sensor_data)
    pub_info = node.create_publisher(CameraInfo, 'camera_info', qos_profile_sensor_data)
    while pub_image.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    t0 = node.get_clock().now().nanoseconds
    print(f'ready {t0}', flush=True)
    for n, (frame, stamp_s, with_tf) in enumerate(plan['steps']):
        ns = t0 + int(round(stamp_s * 1e9))
        header = Header(frame_id=plan['camera_frame'])
        header.stamp.sec, header.stamp.nanosec = ns // 10 ** 9, ns % 10 ** 9
        if with_tf:
            pose = np.loadtxt(seq / f'frame-{frame:06d}.pose.txt')
            msg = TransformStamped(header=Header(stamp=header.stamp,
                                                 frame_id=plan['odom_frame']),
                                   child_frame_id=plan['camera_frame'])
            t, q = msg.transform.translation, msg.transform.rotation
            t.x, t.y, t.z = (float(v) for v in pose[:3, 3])
            q.x, q.y, q.z, q.w = (float(v) for v in quaternion(pose[:3, :3]))
            tf.sendTransform(msg)
        rgb = cv2.imread(str(seq / f'frame-{frame:06d}.color.jpg'))[..., ::-1]
        h, w = rgb.shape[:2]
        info = CameraInfo(header=header, width=w, height=h, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                          p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        pub_info.publish(info)
        pub_image.publish(Image(header=header, height=h, width=w, encoding='rgb8',
                                is_bigendian=0, step=3 * w,
                                data=np.ascontiguousarray(rgb).tobytes()))
        print(f'sent {n}', flush=True)
        end = time.monotonic() + plan['period']
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    print('done', flush=True)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main(sys.argv[1])
