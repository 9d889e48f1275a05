"""
The Nav2 and RTAB-Map recipes: checked statically, and the RTAB-Map launch run for real.

Nav2 and RTAB-Map cannot be installed here. The Nav2 snippet is checked against the
parameter names the voxel and obstacle layers declare (nav2_costmap_2d VoxelLayer /
ObstacleLayer::onInitialize); the RTAB-Map launch runs under the real ``ros2 launch`` with
only RTAB-Map's executables replaced by stand-ins that report the parameters, remappings and
messages they get.
"""

import ast
import json
import os
from pathlib import Path
import re
import sys
import time

import pytest
from ros2_tools import Launch, ROOT
import yaml

NAV2_FILE = ROOT / 'config' / 'nav2_depth_costmap.yaml'
RTABMAP_LAUNCH = ROOT / 'launch' / 'depth_rtabmap.launch.py'
NODE_TOPICS = {'depth/image', 'depth/camera_info', 'depth/colored', 'points', 'depth/relative'}
# nav2_costmap_2d (Humble to Kilted): the voxel layer's own parameters, then the parameters of
# each observation source (ObstacleLayer::onInitialize).
VOXEL_LAYER = {'plugin', 'enabled', 'footprint_clearing_enabled', 'min_obstacle_height',
               'max_obstacle_height', 'z_voxels', 'origin_z', 'z_resolution',
               'unknown_threshold', 'mark_threshold', 'combination_method', 'publish_voxel_map',
               'observation_sources'}
OBSERVATION_SOURCE = {'topic', 'sensor_frame', 'observation_persistence',
                      'expected_update_rate', 'data_type', 'min_obstacle_height',
                      'max_obstacle_height', 'inf_is_valid', 'marking', 'clearing',
                      'obstacle_max_range', 'obstacle_min_range', 'raytrace_max_range',
                      'raytrace_min_range'}
# rtabmap_ros (CommonDataSubscriber and the nodes): the parameters the launch file sets.
RTABMAP_PARAMETERS = {'frame_id', 'subscribe_depth', 'subscribe_rgb', 'approx_sync',
                      'approx_sync_max_interval', 'sync_queue_size', 'qos', 'qos_camera_info'}
RTABMAP_TOPICS = {'rgb/image', 'rgb/camera_info', 'depth/image'}


def nav2():
    return yaml.safe_load(NAV2_FILE.read_text())


def test_nav2_snippet_uses_real_parameter_names_and_the_nodes_cloud():
    data = nav2()
    costmap = data['local_costmap']['local_costmap']['ros__parameters']
    layer = costmap['voxel_layer']
    assert layer['plugin'] == 'nav2_costmap_2d::VoxelLayer'
    assert 'voxel_layer' in costmap['plugins']
    sources = layer['observation_sources'].split()
    assert set(layer) - set(sources) <= VOXEL_LAYER, set(layer) - set(sources) - VOXEL_LAYER
    assert layer['z_voxels'] <= 16  # the voxel grid's limit
    node_section = data['/camera/depth_node']['ros__parameters']
    for source in sources:
        obs = layer[source]
        assert set(obs) <= OBSERVATION_SOURCE, set(obs) - OBSERVATION_SOURCE
        assert obs['data_type'] == 'PointCloud2'
        # The topic is the node's cloud in the namespace the recipe starts it in.
        namespace, _, topic = obs['topic'].strip('/').partition('/')
        assert namespace == 'camera' and topic == 'points'
        # Marking and clearing stay inside the range the node publishes.
        assert obs['obstacle_max_range'] < obs['raytrace_max_range'] <= node_section['max_depth']
        assert (obs['min_obstacle_height'] < obs['max_obstacle_height'] <=
                layer['max_obstacle_height'])


def test_nav2_snippet_node_section_is_a_valid_params_file_for_the_node():
    from mono_depth_ros.ros.params import defaults, validate
    values = nav2()['/camera/depth_node']['ros__parameters']
    known = defaults()
    assert set(values) <= set(known)
    for name, value in values.items():
        assert type(value) is type(known[name]), name
    assert validate({**known, **values}) is None
    assert values['cloud_decimation'] > 1 and values['points_rgb'] is False


def test_rtabmap_launch_feeds_depth_camera_info_and_rgb_with_approx_sync():
    tree = ast.parse(RTABMAP_LAUNCH.read_text())
    params = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                  getattr(n.targets[0], 'id', '') == 'parameters')
    keys = {k.value for k in params.value.elts[0].keys}
    assert keys == RTABMAP_PARAMETERS
    remaps = next(n for n in ast.walk(tree) if isinstance(n, ast.Assign) and
                  getattr(n.targets[0], 'id', '') == 'remappings')
    assert {e.elts[0].value for e in remaps.value.elts} == RTABMAP_TOPICS
    # depth/image is the node's depth topic under its namespace.
    assert ("PathJoinSubstitution(['/', arg['namespace'], 'depth', 'image'])" in
            RTABMAP_LAUNCH.read_text())
    assert 'depth/image' in NODE_TOPICS


FAKE = '''#!{python}
"""Stand-in for RTAB-Map's {executable}: reports parameters, remappings and messages."""
import json
import signal
import sys

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

rclpy.init(args=sys.argv)
node = Node('{executable}', automatically_declare_parameters_from_overrides=True)
params = {{name: node.get_parameter(name).value for name in node._parameters
          if name not in ('use_sim_time', 'start_type_description_service')}}
topics = {{t: node.resolve_topic_name(t) for t in ('rgb/image', 'rgb/camera_info',
                                                 'depth/image')}}
print('FAKE_PARAMS', json.dumps(params), flush=True)
print('FAKE_TOPICS', json.dumps(topics), flush=True)
qos = QoSProfile(depth=10, reliability=ReliabilityPolicy(params['qos']))
stamps = {{t: set() for t in topics}}


def on(topic):
    def record(msg):
        stamps[topic].add((msg.header.stamp.sec, msg.header.stamp.nanosec))
        if all(stamps.values()) and stamps['depth/image'] & stamps['rgb/image']:
            print('FAKE_PAIRED', len(stamps['depth/image'] & stamps['rgb/image']),
                  msg.header.frame_id, flush=True)
    return record


node.create_subscription(Image, 'rgb/image', on('rgb/image'), qos)
node.create_subscription(CameraInfo, 'rgb/camera_info', on('rgb/camera_info'), qos)
node.create_subscription(Image, 'depth/image', on('depth/image'), qos)
stop = []
signal.signal(signal.SIGINT, lambda *_: stop.append(1))
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:
    rclpy.spin_once(node, timeout_sec=0.1)
node.destroy_node()
rclpy.try_shutdown()
'''


def fake_rtabmap(prefix: Path) -> None:
    """Install stand-in rtabmap_odom/rgbd_odometry and rtabmap_slam/rtabmap under prefix."""
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    for package, executable in (('rtabmap_odom', 'rgbd_odometry'), ('rtabmap_slam', 'rtabmap'),
                                ('rtabmap_viz', 'rtabmap_viz')):
        (index / package).write_text('')
        folder = prefix / 'lib' / package
        folder.mkdir(parents=True)
        script = folder / executable
        script.write_text(FAKE.format(python=sys.executable, executable=executable))
        script.chmod(0o755)


@pytest.mark.ros
@pytest.mark.ros2_tools
def test_rtabmap_launch_runs_with_stand_ins_for_rtabmaps_executables(colcon_ws, tmp_path):
    fake_rtabmap(tmp_path / 'fake_rtabmap')
    env = colcon_ws.launch_env()
    fake = tmp_path / 'fake_rtabmap'
    env['AMENT_PREFIX_PATH'] = f'{fake}{os.pathsep}{env["AMENT_PREFIX_PATH"]}'
    launch = Launch(['ros2', 'launch', 'mono_depth_ros', 'depth_rtabmap.launch.py',
                     'use_sample_camera:=true', 'frame_id:=camera_optical_frame'], env,
                    tmp_path / 'rtabmap.log')
    try:
        end = time.monotonic() + 120.0
        while time.monotonic() < end and not all(
                re.search(rf'\[{e}-\d+\] FAKE_PAIRED', launch.output())
                for e in ('rgbd_odometry', 'rtabmap')):
            assert launch.alive(), launch.output()
            time.sleep(0.5)
        out = launch.output()
    finally:
        code = launch.stop()
    for executable in ('rgbd_odometry', 'rtabmap'):
        lines = [line for line in out.splitlines() if line.startswith(f'[{executable}-')]
        params = json.loads(next(line for line in lines if 'FAKE_PARAMS' in line)
                            .split('FAKE_PARAMS ', 1)[1])
        assert set(params) == RTABMAP_PARAMETERS, params
        assert params['approx_sync'] is True and params['subscribe_depth'] is True
        assert params['qos'] == 2 and params['frame_id'] == 'camera_optical_frame'
        topics = json.loads(next(line for line in lines if 'FAKE_TOPICS' in line)
                            .split('FAKE_TOPICS ', 1)[1])
        assert topics == {'rgb/image': '/camera/image_raw',
                          'rgb/camera_info': '/camera/camera_info',
                          'depth/image': '/camera/depth/image'}
        # depth arrives with the image's stamp, so the pair is found.
        assert any('FAKE_PAIRED' in line for line in lines), out[-4000:]
    assert 'rtabmap_viz' not in out  # off by default
    assert code == 0, out[-4000:]
