"""
``ros2 launch mono_depth_ros depth.launch.py`` from a colcon install, as users run it.

Two launches side by side (namespaces front and rear) serve most checks: outputs arrive,
parameter precedence, no crossed topics, rviz:=true without rviz2. Two short ones check
dds_profile:=none and a custom profile path. No Fast DDS profile variable is set for the
launches: the launch file exports it.
"""

import os
from pathlib import Path
import re
import shutil
import time

import cv2
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from ros2_tools import Launch, ros2
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]

PARAMS = '/**:\n  ros__parameters:\n    intrinsics: kinect\n    cloud_decimation: 4\n'
FIRST_OUTPUT_S = 90.0  # start-up, model load and the first synthetic renders on a busy machine
CLI = ['--no-daemon', '--spin-time', '3']


def param_get(env, node, name, timeout=60.0):
    """``ros2 param get``, retried while discovery is still finding the node."""
    end = time.monotonic() + timeout
    while True:
        try:
            out = ros2(['param', 'get', *CLI, node, name], env, timeout=60)
            return out.strip().split(': ', 1)[1]
        except AssertionError:
            if time.monotonic() > end:
                raise
            time.sleep(1.0)


def child_pid(launch, executable, timeout=60.0):
    """Return the pid ``ros2 launch`` reports for the process it started from executable."""
    pattern = re.compile(rf'\[{executable}-\d+\]: process started with pid \[(\d+)\]')
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = pattern.search(launch.output())
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f'{executable} never started:\n{launch.output()}')


def process_env(pid):
    raw = Path(f'/proc/{pid}/environ').read_bytes().split(b'\0')
    return dict(e.decode(errors='replace').split('=', 1) for e in raw if b'=' in e)


def rviz2_installed(env):
    return any(Path(prefix, 'share', 'ament_index', 'resource_index', 'packages', 'rviz2')
               .is_file() for prefix in env.get('AMENT_PREFIX_PATH', '').split(os.pathsep)
               if prefix)


def launch_args(ns, params_file, *extra):
    return ['ros2', 'launch', 'mono_depth_ros', 'depth.launch.py', f'namespace:={ns}',
            f'image_topic:=/{ns}/camera/image_raw',
            f'camera_info_topic:=/{ns}/camera/camera_info', f'params_file:={params_file}',
            *extra]


@pytest.fixture(scope='module')
def two_cameras(colcon_ws, ros, tmp_path_factory):
    """Launch front (no node arguments, rviz:=true) and rear (intrinsics given) together."""
    import rclpy
    logs = tmp_path_factory.mktemp('launch')
    params = logs / 'params.yaml'
    params.write_text(PARAMS)
    env = colcon_ws.launch_env()
    assert not any(k.endswith('DEFAULT_PROFILES_FILE') for k in env)
    # rviz:=true only where rviz2 is absent: that case is what the test checks, and it
    # opens no window on a maintainer's desktop.
    rviz = [] if rviz2_installed(env) else ['rviz:=true']
    front = Launch(launch_args('front', params, 'use_sample_camera:=true', *rviz),
                   env, logs / 'front.log')
    # The rear camera plays a folder of pictures (sample_source), the front synthetic rooms.
    pictures = logs / 'pictures'
    pictures.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(pictures / f'{i:03d}.png'),
                    cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), np.uint8), (0, 0), 5))
    rear = Launch(launch_args('rear', params, 'use_sample_camera:=true',
                              'intrinsics:=camera_info', f'sample_source:={pictures}'),
                  env, logs / 'rear.log')
    node = rclpy.create_node('launch_probe')
    received = {}
    for ns in ('front', 'rear'):
        for topic, kind in (('depth/image', Image), ('depth/camera_info', CameraInfo),
                            ('points', PointCloud2)):
            name = f'/{ns}/{topic}'
            received[name] = []
            node.create_subscription(kind, name, lambda m, n=name: received[n].append(m),
                                     qos_profile_sensor_data)
    try:
        end = time.monotonic() + FIRST_OUTPUT_S
        while time.monotonic() < end and not all(received.values()):
            rclpy.spin_once(node, timeout_sec=0.1)
            assert front.alive() and rear.alive(), front.output() + rear.output()
        yield {'front': front, 'rear': rear, 'node': node, 'received': received, 'env': env,
               'started': time.monotonic(), 'pictures': pictures}
    finally:
        node.destroy_node()
        codes = {name: launch.stop() for name, launch in (('front', front), ('rear', rear))}
        assert codes == {'front': 0, 'rear': 0}, front.output() + rear.output()


def test_sample_camera_launch_publishes_depth_camera_info_and_points(two_cameras):
    received = two_cameras['received']
    missing = [t for t, msgs in received.items() if not msgs]
    assert not missing, f'nothing on {missing}:\n' + two_cameras['front'].output()
    depth = received['/front/depth/image'][-1]
    info = received['/front/depth/camera_info'][-1]
    assert (depth.encoding, depth.width, depth.height) == ('32FC1', 640, 480)
    assert (info.width, info.height) == (640, 480) and info.k[0] > 0
    # cloud_decimation 4 from the params file: every 4th pixel of 640x480.
    cloud = received['/front/points'][-1]
    assert (cloud.width, cloud.height) == (160, 120)


def test_params_file_values_win_over_arguments_not_given(two_cameras):
    env = two_cameras['env']
    assert param_get(env, '/front/depth_node', 'intrinsics') == 'kinect'
    assert param_get(env, '/front/depth_node', 'cloud_decimation') == '4'
    # An argument the user gives still wins over the params file.
    assert param_get(env, '/rear/depth_node', 'intrinsics') == 'camera_info'
    assert param_get(env, '/rear/depth_node', 'cloud_decimation') == '4'
    assert (two_cameras['received']['/rear/points'][-1].width ==
            two_cameras['received']['/front/points'][-1].width)


def test_sample_source_plays_a_folder_of_pictures(two_cameras):
    env = two_cameras['env']
    assert param_get(env, '/rear/sample_camera', 'source') == str(two_cameras['pictures'])
    assert param_get(env, '/front/sample_camera', 'source') == 'synthetic'
    assert two_cameras['received']['/rear/depth/image'], two_cameras['rear'].output()


def test_two_namespaced_launches_do_not_cross_topics(two_cameras):
    node = two_cameras['node']
    for ns, other in (('front', 'rear'), ('rear', 'front')):
        pubs = node.get_publishers_info_by_topic(f'/{ns}/depth/image')
        assert {(p.node_namespace, p.node_name) for p in pubs} == {(f'/{ns}', 'depth_node')}
        subs = node.get_subscriptions_info_by_topic(f'/{ns}/camera/image_raw')
        assert {(s.node_namespace, s.node_name) for s in subs} == {(f'/{ns}', 'depth_node')}
        cams = node.get_publishers_info_by_topic(f'/{ns}/camera/image_raw')
        assert {(p.node_namespace, p.node_name) for p in cams} == {(f'/{ns}', 'sample_camera')}
    assert not node.get_publishers_info_by_topic('/depth/image')
    assert not node.get_publishers_info_by_topic('/camera/image_raw')


def test_rviz_without_rviz2_is_an_error_line_and_the_node_keeps_running(two_cameras):
    import rclpy
    front = two_cameras['front']
    if rviz2_installed(two_cameras['env']):
        pytest.skip('rviz2 is installed here; this checks its absence')
    assert re.search(r'\[ERROR\] \[launch\]: rviz:=true but rviz2 is not installed',
                     front.output()), front.output()
    before = len(two_cameras['received']['/front/depth/image'])
    end = time.monotonic() + 20.0
    while time.monotonic() < end and len(two_cameras['received']['/front/depth/image']) == before:
        rclpy.spin_once(two_cameras['node'], timeout_sec=0.1)
    assert len(two_cameras['received']['/front/depth/image']) > before and front.alive()


def test_dds_profile_none_and_custom_path_and_managed(colcon_ws, tmp_path):
    custom = tmp_path / 'my_profile.xml'
    shutil.copy(colcon_ws.install / 'mono_depth_ros' / 'share' / 'mono_depth_ros' / 'config' /
                'fastdds_large_shm.xml', custom)
    share = colcon_ws.install / 'mono_depth_ros' / 'share' / 'mono_depth_ros' / 'config'
    params = tmp_path / 'params.yaml'
    params.write_text(PARAMS)
    env = colcon_ws.launch_env()
    variable = ('FASTRTPS_DEFAULT_PROFILES_FILE' if env.get('ROS_DISTRO') == 'humble' else
                'FASTDDS_DEFAULT_PROFILES_FILE')
    runs = {'none': (share / 'fastdds_defaults.xml'), str(custom): custom}
    # The first also checks managed:=true: depth_node_managed starts and autostarts to active.
    executables = {'none': 'depth_node_managed', str(custom): 'depth_node'}
    launches = {choice: Launch(launch_args(f'p{i}', params, f'dds_profile:={choice}',
                                           f'managed:={i == 0}'), env,
                               tmp_path / f'profile{i}.log')
                for i, choice in enumerate(runs)}
    try:
        for choice, launch in launches.items():
            pid = child_pid(launch, executables[choice])
            launch.wait_output('ready:', FIRST_OUTPUT_S)
            seen = {k: v for k, v in process_env(pid).items() if k.endswith('PROFILES_FILE')}
            assert seen == {variable: str(runs[choice])}, choice
            # The node honours a profile it was given and does not apply its own.
            assert 'using the shipped large shared-memory profile' not in launch.output()
        # Retried like param_get: on a loaded machine discovery can outlast one spin time.
        end = time.monotonic() + 60.0
        while True:
            try:
                out = ros2(['lifecycle', 'get', *CLI, '/p0/depth_node'], env)
                break
            except AssertionError:
                if time.monotonic() > end:
                    raise
                time.sleep(1.0)
        assert out.startswith('active'), out
    finally:
        codes = [launch.stop() for launch in launches.values()]
    assert codes == [0, 0], [launch.output() for launch in launches.values()]
