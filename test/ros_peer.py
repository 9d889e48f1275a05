"""
The other end of a test, in its own process: a tf2 static publisher, or a lifecycle manager.

Run with the ROS 2 overlay on the path (tf2_ros, bondpy), as ``ros2_tools.toolchain_env()``
gives it:

* ``ros_peer.py static_tf FILE``: publish the static transforms listed in the JSON file
  (``[[parent, child, [x, y, z], [qx, qy, qz, qw]], ...]``) with tf2_ros's
  StaticTransformBroadcaster, print ``ready``, and spin until SIGINT.
* ``ros_peer.py tf FILE``: the same transforms as a moving frame's, on ``/tf`` with
  TransformBroadcaster at 20 Hz, each stamped with the time it is sent.
* ``ros_peer.py manager NODE``: drive NODE's lifecycle as Nav2's lifecycle manager does
  (configure, activate, then a bond on topic ``bond`` with NODE's name as id, heartbeat
  period 0.1 s and timeout 4 s, waiting half the timeout for it to form), deactivate,
  activate again with a new bond, then wait for that bond to break (the test kills NODE).
  Each event is printed as ``EVENT <seconds since start>`` (``activated``, ``formed``,
  ``not_formed``, ``deactivating``, ``deactivated``, ``broken``).
"""

import json
import sys
import threading
import time

import rclpy
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

BOND_TIMEOUT_S = 4.0     # nav2_lifecycle_manager's bond_timeout default
BOND_PERIOD_S = 0.1      # its heartbeat period in Humble to Kilted
T0 = time.monotonic()


def say(event):
    """Print one event line with the seconds since start."""
    print(f'{event} {time.monotonic() - T0:.3f}', flush=True)


def static_tf(path, moving=False):
    """Publish the transforms of a JSON file until SIGINT (static, or at 20 Hz on /tf)."""
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster

    node = Node('test_moving_tf' if moving else 'test_static_tf')
    broadcaster = (TransformBroadcaster if moving else StaticTransformBroadcaster)(node)
    transforms = []
    with open(path) as handle:
        for parent, child, t, q in json.load(handle):
            msg = TransformStamped()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id, msg.child_frame_id = parent, child
            tr = msg.transform
            tr.translation.x, tr.translation.y, tr.translation.z = (float(v) for v in t)
            tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w = (float(v) for v in q)
            transforms.append(msg)
    if moving:
        def send():
            stamp = node.get_clock().now().to_msg()
            for msg in transforms:
                msg.header.stamp = stamp
            broadcaster.sendTransform(transforms)
        node.create_timer(0.05, send)
    else:
        broadcaster.sendTransform(transforms)
    say('ready')
    rclpy.spin(node)


def manager(name):
    """Bring NODE up as Nav2's lifecycle manager does, with a bond; report the events."""
    from bondpy.bondpy import Bond

    node = Node('test_lifecycle_manager')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        return drive(node, name, Bond)
    finally:
        executor.shutdown()
        spinner.join(10.0)


def drive(node, name, bond_type):
    """Configure, activate with a bond, deactivate, activate again; wait for a break."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    client = node.create_client(ChangeState, f'/{name}/change_state')
    if not client.wait_for_service(timeout_sec=30.0):
        say('no_service')
        return 1

    def change(transition_id):
        future = client.call_async(ChangeState.Request(
            transition=Transition(id=transition_id)))
        end = time.monotonic() + 60.0
        while not future.done() and time.monotonic() < end:
            time.sleep(0.01)
        return future.done() and future.result().success

    def bond_up():
        broken = threading.Event()
        bond = bond_type(node, 'bond', name, on_broken=lambda: (say('broken'), broken.set()))
        bond.heartbeat_timeout = BOND_TIMEOUT_S
        bond.heartbeat_period = BOND_PERIOD_S
        bond.start()
        formed = bond.wait_until_formed(Duration(seconds=BOND_TIMEOUT_S / 2))
        say('formed' if formed else 'not_formed')
        return bond, broken

    if not change(Transition.TRANSITION_CONFIGURE):
        say('configure_failed')
        return 1
    for round_ in (1, 2):
        if not change(Transition.TRANSITION_ACTIVATE):
            say('activate_failed')
            return 1
        say('activated')
        bond, broken = bond_up()
        if round_ == 1:
            say('deactivating')
            if not change(Transition.TRANSITION_DEACTIVATE):
                say('deactivate_failed')
                return 1
            say('deactivated')
            broken.wait(10.0)
            # Dropped, as the manager erases it on deactivate (bondpy's own shutdown()
            # destroys its topics behind the node's back, which breaks the spinning executor).
            node.destroy_subscription(bond.sub)
            node.destroy_publisher(bond.pub)
    broken.wait(60.0)
    return 0


def main():
    """Run the peer named on the command line."""
    rclpy.init()
    try:
        if sys.argv[1] in ('static_tf', 'tf'):
            static_tf(sys.argv[2], moving=sys.argv[1] == 'tf')
            return 0
        return manager(sys.argv[2])
    except KeyboardInterrupt:
        return 0
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
