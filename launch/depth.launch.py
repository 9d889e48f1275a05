"""
Launch depth_node (and optionally a sample camera and RViz).

    ros2 launch mono_depth_ros depth.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info

Large images over Fast DDS: Fast DDS's default shared-memory segment (512 KiB) drops nearly
every best-effort sample larger than itself, a 640x480 rgb8 image or a point cloud, between
processes on one machine, with the default transports and with LARGE_DATA alike
(scripts/bench_transport.py). ``dds_profile:=default`` points the processes started here at
config/fastdds_large_shm.xml (a 16 MiB segment); export the same profile for your camera
driver too (FASTDDS_DEFAULT_PROFILES_FILE, or FASTRTPS_DEFAULT_PROFILES_FILE on Humble).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

ARGUMENTS = [
    ('image_topic', '/camera/image_raw', 'input image topic (sensor_msgs/Image); for '
     'input_transport compressed, <image_topic>/compressed is used'),
    ('camera_info_topic', '/camera/camera_info', 'CameraInfo topic of the input camera'),
    ('model_path', '', 'ONNX model, TensorRT engine or checkpoint; empty = the bundled model'),
    ('backend', 'auto', 'inference backend: auto, tensorrt, onnxruntime or torch'),
    ('intrinsics', 'camera_info', 'camera_info, kinect, kitti or manual (fx fy cx cy in '
     'the params file)'),
    ('params_file', '', 'YAML parameters for depth_node; empty = config/depth.yaml'),
    ('namespace', '', 'namespace of the node and its topics (one per camera)'),
    ('use_sample_camera', 'false', 'also start sample_camera with synthetic rooms'),
    ('rviz', 'false', 'also start RViz with config/depth.rviz'),
    ('dds_profile', 'default', 'Fast DDS XML profile for the processes started here: default '
     '= config/fastdds_large_shm.xml (16 MiB shared memory for large images and clouds), a '
     'path to your own, or none to keep the Fast DDS defaults'),
]


def generate_launch_description():
    share = get_package_share_directory('mono_depth_ros')
    default_params = os.path.join(share, 'config', 'depth.yaml')
    params_file = LaunchConfiguration('params_file')
    params = PythonExpression(["'", params_file, "' or '", default_params, "'"])
    image_topic = LaunchConfiguration('image_topic')
    info_topic = LaunchConfiguration('camera_info_topic')
    profile_arg = LaunchConfiguration('dds_profile')
    shipped_profile = os.path.join(share, 'config', 'fastdds_large_shm.xml')
    profile = PythonExpression(["'", shipped_profile, "' if '", profile_arg,
                                "' == 'default' else '", profile_arg, "'"])
    use_profile = IfCondition(PythonExpression(["'", profile_arg, "' != 'none'"]))
    # Fast DDS 2.x (Humble) reads FASTRTPS_..., Fast DDS 3 (Jazzy and later) FASTDDS_...,
    # and warns that the old name is deprecated when it is set.
    profile_variable = ('FASTRTPS_DEFAULT_PROFILES_FILE' if os.environ.get('ROS_DISTRO') ==
                        'humble' else 'FASTDDS_DEFAULT_PROFILES_FILE')

    depth_node = Node(
        package='mono_depth_ros', executable='depth_node', name='depth_node',
        namespace=LaunchConfiguration('namespace'), output='screen',
        parameters=[params, {
            'model_path': LaunchConfiguration('model_path'),
            'backend': LaunchConfiguration('backend'),
            'intrinsics': LaunchConfiguration('intrinsics'),
        }],
        remappings=[('image', image_topic),
                    ('image/compressed', [image_topic, '/compressed']),
                    ('camera_info', info_topic)],
    )
    sample_camera = Node(
        package='mono_depth_ros', executable='sample_camera', name='sample_camera',
        namespace=LaunchConfiguration('namespace'), output='screen',
        parameters=[{'source': 'synthetic', 'rate_hz': 15.0}],
        remappings=[('image', image_topic), ('image/compressed', [image_topic, '/compressed']),
                    ('camera_info', info_topic)],
        condition=IfCondition(LaunchConfiguration('use_sample_camera')),
    )
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', os.path.join(share, 'config', 'depth.rviz')],
        condition=IfCondition(LaunchConfiguration('rviz')),
    )
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, default, text in ARGUMENTS] +
        [SetEnvironmentVariable(profile_variable, profile, condition=use_profile)] +
        [depth_node, sample_camera, rviz])
