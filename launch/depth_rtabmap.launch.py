"""
RTAB-Map RGB-D SLAM with one RGB camera: the camera's image and depth_node's depth.

    ros2 launch mono_depth_ros depth_rtabmap.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info frame_id:=base_link

Starts depth.launch.py (depth_node in ``namespace``, default ``camera``), then RTAB-Map's
visual odometry (rtabmap_odom rgbd_odometry) and SLAM (rtabmap_slam rtabmap) on:

* ``rgb/image`` = image_topic and ``rgb/camera_info`` = camera_info_topic (the camera's own);
* ``depth/image`` = ``/<namespace>/depth/image``: 32FC1 metres (REP 118, REP 117 values),
  which RTAB-Map accepts, with the image's stamp and frame_id, so it is registered to the
  RGB image by construction; at the image's resolution, or the image's divided by an
  integer when ``max_output_pixels`` caps it (RTAB-Map requires whole multiples).

``approx_sync`` is on: depth_node processes only the newest frame and drops the rest when the
model is slower than the camera, so an exact-time synchroniser would wait on images that never
get a depth. Both rtabmap nodes subscribe best effort (``qos: 2``), which accepts depth_node's
reliable output and a best-effort or reliable camera driver alike.

The processes started here get config/fastdds_large_shm.xml (see depth.launch.py). Needs
rtabmap_ros (``sudo apt install ros-$ROS_DISTRO-rtabmap-ros``) and TF from ``frame_id`` (the
robot's base) to the image's optical frame.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.actions import SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node

ARGUMENTS = [
    ('image_topic', '/camera/image_raw', 'RGB image topic of the camera (sensor_msgs/Image)'),
    ('camera_info_topic', '/camera/camera_info', 'CameraInfo topic of the camera'),
    ('namespace', 'camera', 'namespace of depth_node: its depth is /<namespace>/depth/image'),
    ('frame_id', 'camera_link', "the robot's base frame for RTAB-Map (TF to the optical "
     'frame must exist)'),
    ('model_path', '', 'depth model for depth_node; empty = the bundled model'),
    ('params_file', '', 'extra YAML parameters for depth_node (see depth.launch.py)'),
    ('use_sample_camera', 'false', 'also start sample_camera with synthetic rooms'),
    ('rtabmap_viz', 'false', "also start rtabmap_viz, RTAB-Map's viewer"),
]


def generate_launch_description():
    share = get_package_share_directory('mono_depth_ros')
    arg = {name: LaunchConfiguration(name) for name, _, _ in ARGUMENTS}
    depth_topic = PathJoinSubstitution(['/', arg['namespace'], 'depth', 'image'])
    depth = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'depth.launch.py')),
        launch_arguments={name: arg[name] for name in (
            'image_topic', 'camera_info_topic', 'namespace', 'model_path', 'params_file',
            'use_sample_camera')}.items())
    parameters = [{
        'frame_id': arg['frame_id'],
        'subscribe_depth': True,
        'subscribe_rgb': True,
        'approx_sync': True,
        # Input and depth share a stamp; anything within half a 15 Hz frame is a pair.
        'approx_sync_max_interval': 0.03,
        'sync_queue_size': 10,
        'qos': 2,
        'qos_camera_info': 2,
    }]
    remappings = [('rgb/image', arg['image_topic']),
                  ('rgb/camera_info', arg['camera_info_topic']),
                  ('depth/image', depth_topic)]
    # RTAB-Map receives the same large best-effort images and depth: the same Fast DDS profile.
    variable = ('FASTRTPS_DEFAULT_PROFILES_FILE' if os.environ.get('ROS_DISTRO') == 'humble'
                else 'FASTDDS_DEFAULT_PROFILES_FILE')
    profile = os.path.join(share, 'config', 'fastdds_large_shm.xml')
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] + [
            SetEnvironmentVariable(variable, profile),
            depth,
            Node(package='rtabmap_odom', executable='rgbd_odometry', name='rgbd_odometry',
                 output='screen', parameters=parameters, remappings=remappings),
            Node(package='rtabmap_slam', executable='rtabmap', name='rtabmap', output='screen',
                 parameters=parameters, remappings=remappings, arguments=['-d']),
            Node(package='rtabmap_viz', executable='rtabmap_viz', name='rtabmap_viz',
                 output='screen', parameters=parameters, remappings=remappings,
                 condition=IfCondition(arg['rtabmap_viz'])),
        ])
