"""Start the package's executables as processes and talk to them over real DDS."""

import os
import shutil
import signal
import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.tools.depth_bench import rss_bytes
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header

BIN = os.path.dirname(sys.executable)
PACKAGE = 'mono_depth_ros'


def executable(name):
    """
    Return the package's executable: a colcon install's, else the one beside this interpreter.

    A colcon install puts the console scripts in ``<prefix>/lib/mono_depth_ros`` and its
    prefix on AMENT_PREFIX_PATH (what ``ros2 run`` uses); ``pip install -e .`` puts them
    next to the interpreter.
    """
    searched = []
    try:
        from ament_index_python.packages import get_package_prefix
        folder = os.path.join(get_package_prefix(PACKAGE), 'lib', PACKAGE)
        searched.append(folder)
        path = shutil.which(name, path=folder)
        if path:
            return path
    except (ImportError, LookupError, ValueError):
        pass  # not installed through colcon or not on AMENT_PREFIX_PATH
    searched.append(BIN)
    path = shutil.which(name, path=BIN)
    assert path, (f'{name} is not installed in {" or ".join(searched)} '
                  '(colcon build, or pip install -e .)')
    return path


class Process:
    """A running executable with its output captured to a file."""

    def __init__(self, name, args, log_dir, tag='', env=None):
        self.log_path = os.path.join(log_dir, f'{name}{tag}.log')
        self._log = open(self.log_path, 'w')
        self.popen = subprocess.Popen([executable(name), '--ros-args', *args], env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self):
        return self.popen.pid

    def output(self):
        self._log.flush()
        with open(self.log_path) as handle:
            return handle.read()

    def alive(self):
        return self.popen.poll() is None

    def rss_mb(self):
        rss = rss_bytes(self.pid)
        assert rss > 0, f'cannot read the memory of process {self.pid}: has it exited?'
        return rss / 2 ** 20

    def stop(self, timeout=10.0):
        """SIGINT, wait, and return the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


class Harness:
    """A test-side node that publishes camera input and records every output topic."""

    def __init__(self, name='harness', namespace=''):
        self.node = Node(name, namespace=namespace or None) if namespace else Node(name)
        self.received = {}
        self.diagnostics = {}
        self._subs = {}
        qos = qos_profile_sensor_data
        self.pub_image = self.node.create_publisher(Image, 'image', qos)
        self.pub_compressed = self.node.create_publisher(CompressedImage, 'image/compressed',
                                                         qos)
        self.pub_info = self.node.create_publisher(CameraInfo, 'camera_info', qos)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)

    def subscribe(self, topic, msg_type):
        if topic in self._subs:
            return
        self.received[topic] = []
        self._subs[topic] = self.node.create_subscription(
            msg_type, topic, lambda m, t=topic: self.received[t].append(m),
            qos_profile_sensor_data)

    def unsubscribe(self, topic):
        sub = self._subs.pop(topic, None)
        if sub is not None:
            self.node.destroy_subscription(sub)

    def subscribe_all(self):
        for topic, kind in (('depth/image', Image), ('depth/camera_info', CameraInfo),
                            ('depth/colored', Image), ('points', PointCloud2)):
            self.subscribe(topic, kind)

    def _on_diag(self, msg):
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            self.diagnostics[status.name] = values

    def diag(self, node_fqn):
        """Return the latest numeric diagnostics of a node as floats (and strings)."""
        values = self.diagnostics.get(f'{node_fqn}: depth', {})
        out = {}
        for k, v in values.items():
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
        return out

    def spin(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def wait_for(self, predicate, timeout=15.0, what='condition'):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rclpy.spin_once(self.node, timeout_sec=0.02)
            if predicate():
                return
        raise AssertionError(f'timed out after {timeout} s waiting for {what}')

    def wait_connected(self, transport='raw', timeout=20.0):
        pub = self.pub_image if transport == 'raw' else self.pub_compressed
        self.wait_for(lambda: pub.get_subscription_count() > 0 and
                      self.pub_info.get_subscription_count() > 0, timeout, 'the node')
        topics = list(self._subs)
        self.wait_for(lambda: all(self.node.count_publishers(
            self.node.resolve_topic_name(t)) > 0 for t in topics), timeout, 'publishers')
        self.spin(0.3)

    def header(self, stamp_ns, frame_id='test_optical_frame'):
        return Header(stamp=Time(sec=stamp_ns // 10 ** 9, nanosec=stamp_ns % 10 ** 9),
                      frame_id=frame_id)

    def now_ns(self):
        return self.node.get_clock().now().nanoseconds

    def send(self, rgb, intrinsics=None, encoding='rgb8', stamp_ns=None, compressed=False,
             frame_id='test_optical_frame', info=True):
        stamp_ns = self.now_ns() if stamp_ns is None else stamp_ns
        header = self.header(stamp_ns, frame_id)
        if info:
            h, w = rgb.shape[:2]
            intr = intrinsics or Intrinsics(0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2, w, h)
            self.pub_info.publish(ros_io.camera_info(intr, header))
        if compressed:
            self.pub_compressed.publish(ros_io.rgb_to_compressed(rgb, header, 'jpeg'))
        else:
            self.pub_image.publish(ros_io.rgb_to_image(rgb, header, encoding))
        return header

    def send_raw(self, msg):
        self.pub_image.publish(msg)

    def destroy(self):
        self.node.destroy_node()


def env_without(package, folder):
    """
    Return os.environ with ``package`` unimportable for child processes.

    A package of that name whose import raises is put ahead of everything on PYTHONPATH under
    ``folder``, as on a robot where it is not installed.
    """
    hide = folder / 'hide'
    (hide / package).mkdir(parents=True)
    (hide / package / '__init__.py').write_text('raise ImportError("hidden by the test")\n')
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(hide)] + [p for p in [env.get('PYTHONPATH')] if p])
    return env


def grey(value, h=24, w=32):
    """Return a uniform RGB image."""
    return np.full((h, w, 3), value, np.uint8)
