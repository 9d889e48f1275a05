"""
A launch_testing integration test in the upstream style: sample_camera feeds depth_node.

Run it under pytest with the launch_testing plugin (test/test_launch_testing.py does, from
a colcon install), or with ``launch_test test/launch_tests/depth_node_launch_testing.py``.
"""

import os
import unittest

import launch
import launch_ros.actions
import launch_testing
import launch_testing.actions
import launch_testing.asserts
from launch_testing_ros import WaitForTopics
import pytest
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

WIDTH, HEIGHT, DECIMATION = 160, 120, 4
# The runner's negative control starts the node with another decimation: the test must fail.
NODE_DECIMATION = int(os.environ.get('MONO_DEPTH_LAUNCH_TEST_NODE_DECIMATION', DECIMATION))


@pytest.mark.launch_test
def generate_test_description():
    camera = launch_ros.actions.Node(
        package='mono_depth_ros', executable='sample_camera', name='sample_camera',
        parameters=[{'source': 'synthetic', 'rate_hz': 10.0, 'width': WIDTH,
                     'height': HEIGHT, 'synthetic_frames': 8}])
    # WaitForTopics subscribes reliable; the node's outputs are reliable by default (REP 2003).
    node = launch_ros.actions.Node(
        package='mono_depth_ros', executable='depth_node', name='depth_node',
        parameters=[{'intrinsics': 'camera_info', 'cloud_decimation': NODE_DECIMATION}])
    return launch.LaunchDescription([
        camera, node, launch_testing.actions.ReadyToTest()]), {
            'camera': camera, 'depth_node': node}


class TestOutputs(unittest.TestCase):

    def test_depth_camera_info_and_points_arrive(self, proc_output, depth_node):
        topics = [('depth/image', Image), ('depth/camera_info', CameraInfo),
                  ('points', PointCloud2)]
        wait = WaitForTopics(topics, timeout=120.0)
        try:
            self.assertTrue(wait.wait(), f'nothing on {wait.topics_not_received()}')
            depth = wait.received_messages('depth/image')[-1]
            info = wait.received_messages('depth/camera_info')[-1]
            cloud = wait.received_messages('points')[-1]
        finally:
            wait.shutdown()
        self.assertEqual((depth.encoding, depth.width, depth.height), ('32FC1', WIDTH, HEIGHT))
        self.assertEqual((info.width, info.height), (WIDTH, HEIGHT))
        self.assertEqual((cloud.width, cloud.height),
                         (WIDTH // DECIMATION, HEIGHT // DECIMATION))
        self.assertEqual(depth.header.frame_id, cloud.header.frame_id)
        proc_output.assertWaitFor('ready:', process=depth_node, timeout=10)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):

    def test_processes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
