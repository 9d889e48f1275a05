"""
Launch depth_node (or depth_node_managed), optionally with a sample camera and RViz.

    ros2 launch mono_depth_ros depth.launch.py image_topic:=/camera/image_raw \
        camera_info_topic:=/camera/camera_info

Parameters, lowest precedence first: config/depth.yaml (the defaults), the user's
``params_file``, then only the node arguments the user gave on the command line
(``model_path``, ``backend``, ``intrinsics``; empty = not given). A value in the user's
params file is never overridden by an argument the user did not give.

Boolean arguments (``use_sample_camera``, ``rviz``, ``managed``) take true or false (also
True/False, 1/0, as launch's own conditions read them); anything else, a typo such as
``ture``, stops the launch with the argument's name and its valid values (launch's
DeclareLaunchArgument choices). When depth_node exits by itself (a missing or corrupt
model, a bad parameter), the whole launch shuts down rather than run the sample camera and
RViz without it.

``rviz:=true`` starts RViz when rviz2 is installed; without it the launch logs an error that
says so and carries on without RViz (RViz is a viewer; the node keeps running). An RViz that
exits (no display) does not stop the node either.

Large images over Fast DDS: Fast DDS's default shared-memory segment (512 KiB) drops nearly
every best-effort sample larger than itself, a 640x480 rgb8 image or a point cloud, between
processes on one machine, with the default transports and with LARGE_DATA alike
(scripts/bench/bench_transport.py). ``dds_profile:=default`` points the processes started here at
config/fastdds_large_shm.xml (a 16 MiB segment); ``none`` at config/fastdds_defaults.xml, a
profile that changes nothing, so that Fast DDS keeps its built-in defaults (the node would
otherwise apply the large profile itself); any other value is the path of your own profile.
Export the same profile for your camera driver too (FASTDDS_DEFAULT_PROFILES_FILE, or
FASTRTPS_DEFAULT_PROFILES_FILE on Humble).
"""

import os

from ament_index_python.packages import get_package_prefix, get_package_share_directory
import launch
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.actions import SetEnvironmentVariable
from launch_ros.actions import Node

PACKAGE = 'mono_depth_ros'
ARGUMENTS = [
    ('image_topic', '/camera/image_raw', 'input image topic (sensor_msgs/Image); for '
     'input_transport compressed, <image_topic>/compressed is used'),
    ('camera_info_topic', '/camera/camera_info', 'CameraInfo topic of the input camera'),
    ('model_path', '', 'ONNX model or TensorRT engine (a training checkpoint is exported '
     'first with training/export_onnx.py); empty = the params file value (default: the '
     'bundled model)'),
    ('backend', '', 'inference backend: auto, tensorrt, onnxruntime or torch; empty = the '
     'params file value (default: auto)'),
    ('intrinsics', '', 'camera_info, kinect, kitti or manual (fx fy cx cy in the params '
     'file); empty = the params file value (default: camera_info)'),
    ('params_file', '', 'YAML parameters for the node, applied over config/depth.yaml; '
     'empty = config/depth.yaml only'),
    ('namespace', '', 'namespace of the node and its topics (one per camera)'),
    ('use_sample_camera', 'false', 'also start sample_camera (see sample_source)'),
    ('sample_source', 'synthetic', "what sample_camera plays: 'synthetic' rooms, a folder of "
     'pictures, or a video file'),
    ('rviz', 'false', 'also start RViz with config/depth.rviz (skipped with an error '
     'message when rviz2 is not installed)'),
    ('managed', 'false', 'start depth_node_managed (a lifecycle node; its autostart '
     'parameter, default true, takes it to active by itself) instead of depth_node'),
    ('dds_profile', 'default', 'Fast DDS XML profile for the processes started here: default '
     '= config/fastdds_large_shm.xml (16 MiB shared memory for large images and clouds), a '
     'path to your own, or none to keep the Fast DDS defaults'),
]
# Arguments that are node parameters: passed on only when the user gave them.
NODE_ARGUMENTS = ('model_path', 'backend', 'intrinsics')
# Boolean arguments accept what launch's IfCondition reads as booleans (launch,
# launch/conditions/evaluate_condition_expression_impl.py: true/false in any case, 1/0), spelled
# as users write them; anything else is refused by DeclareLaunchArgument's choices.
BOOLEANS = ('use_sample_camera', 'rviz', 'managed')
BOOLEAN_CHOICES = ['true', 'false', 'True', 'False', '1', '0']
TRUE = ('true', '1')


def fastdds_profile(choice: str, share: str) -> str:
    """Return the profile file for a dds_profile value."""
    if choice == 'default':
        return os.path.join(share, 'config', 'fastdds_large_shm.xml')
    if choice == 'none':
        return os.path.join(share, 'config', 'fastdds_defaults.xml')
    return os.path.expanduser(choice)


def installed(package: str) -> bool:
    try:
        get_package_prefix(package)
    except (LookupError, ValueError):
        return False
    return True


def launch_setup(context):
    log = launch.logging.get_logger('launch')
    share = get_package_share_directory(PACKAGE)
    arg = {name: context.launch_configurations[name] for name, _, _ in ARGUMENTS}
    params = [os.path.join(share, 'config', 'depth.yaml')]
    if arg['params_file']:
        params.append(os.path.expanduser(arg['params_file']))
    given = {name: arg[name] for name in NODE_ARGUMENTS if arg[name] != ''}
    if given:
        params.append(given)
    # Fast DDS 2.x (Humble) reads FASTRTPS_..., Fast DDS 3 (Jazzy and later) FASTDDS_...,
    # and warns that the old name is deprecated when it is set.
    variable = ('FASTRTPS_DEFAULT_PROFILES_FILE' if os.environ.get('ROS_DISTRO') == 'humble'
                else 'FASTDDS_DEFAULT_PROFILES_FILE')
    profile = fastdds_profile(arg['dds_profile'], share)
    actions = [SetEnvironmentVariable(variable, profile)]
    if not os.path.isfile(profile):
        log.error(f'dds_profile: {profile} does not exist; Fast DDS will report it and use '
                  'its defaults')
    managed = arg['managed'].lower() in TRUE
    remap = [('image', arg['image_topic']), ('image/compressed', arg['image_topic'] +
                                             '/compressed'),
             ('camera_info', arg['camera_info_topic'])]
    actions.append(Node(
        package=PACKAGE, executable='depth_node_managed' if managed else 'depth_node',
        name='depth_node', namespace=arg['namespace'], output='screen', parameters=params,
        remappings=remap,
        # A node that cannot start (bad model or parameter) exits 1 with the reason: end the
        # launch with it instead of running the camera and RViz for nothing.
        on_exit=Shutdown(reason='depth_node exited (the reason is in its log above)')))
    if arg['use_sample_camera'].lower() in TRUE:
        actions.append(Node(
            package=PACKAGE, executable='sample_camera', name='sample_camera',
            namespace=arg['namespace'], output='screen',
            parameters=[{'source': os.path.expanduser(arg['sample_source']) or 'synthetic',
                         'rate_hz': 15.0}], remappings=remap))
    if arg['rviz'].lower() in TRUE:
        if installed('rviz2'):
            actions.append(Node(
                package='rviz2', executable='rviz2', name='rviz2', output='screen',
                arguments=['-d', os.path.join(share, 'config', 'depth.rviz')]))
        else:
            log.error('rviz:=true but rviz2 is not installed (sudo apt install '
                      'ros-$ROS_DISTRO-rviz2); the node runs without RViz')
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text,
                               choices=BOOLEAN_CHOICES if name in BOOLEANS else None)
         for name, default, text in ARGUMENTS] +
        [OpaqueFunction(function=launch_setup)])
