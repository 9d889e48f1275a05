"""
Launch depth_node (and optionally a sample camera and RViz).

    ros2 launch mono_depth_ros depth.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info

Large images over Fast DDS: best-effort 640x480 streams lose most samples with the default
transports. ``large_data:=true`` (the default) sets FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA
for the processes started here; set the same variable for your camera driver too.
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
    ('large_data', 'true', 'use Fast DDS LARGE_DATA transports for the processes started here'),
]


def generate_launch_description():
    share = get_package_share_directory('mono_depth_ros')
    default_params = os.path.join(share, 'config', 'depth.yaml')
    params_file = LaunchConfiguration('params_file')
    params = PythonExpression(["'", params_file, "' or '", default_params, "'"])
    image_topic = LaunchConfiguration('image_topic')
    info_topic = LaunchConfiguration('camera_info_topic')

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
        [SetEnvironmentVariable('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA',
                                condition=IfCondition(LaunchConfiguration('large_data'))),
         depth_node, sample_camera, rviz])
