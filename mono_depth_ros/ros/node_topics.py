"""
depth_node's topics and the QoS of each: REP 2003, with the standard qos_overrides.

The output topic names follow image_transport's pairing of an image with its CameraInfo;
publishers and subscriptions take rclpy's QoSOverridingOptions, so the read-only
``qos_overrides.<topic>.publisher|subscription.history|depth|reliability`` parameters
work as they do for rclcpp nodes.
"""

from rcl_interfaces.msg import SetParametersResult
from rclpy.qos import HistoryPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.qos_overriding_options import QoSOverridingOptions

# Output topics. Each image has its CameraInfo where image_transport looks for it: the
# sibling camera_info in the image topic's own namespace (image_common,
# image_transport/src/camera_common.cpp, getCameraInfoTopic), which is how
# depth_image_proc and every CameraSubscriber pair them. The depth image, its colour map and
# a relative model's map share one pixel grid and stamp, so they share depth/camera_info,
# as a camera's image_raw, image_rect and image_color share its camera_info.
DEPTH_TOPIC = 'depth/image'
DEPTH_INFO_TOPIC = 'depth/camera_info'
COLORED_TOPIC = 'depth/colored'
RELATIVE_TOPIC = 'depth/relative'
POINTS_TOPIC = 'points'
# REP 2003's sensor-driver QoS: publishers at the system default, reliable, so that
# reliable subscribers (RViz's image and cloud displays, depth_image_proc) connect, and
# best-effort ones get best effort; subscriptions at sensor-data QoS, which accept both.
# Keep last 2: one sample may still be repaired while the next is written; never a queue
# of stale depth images behind a slow reader. The outputs and the image and camera_info
# subscriptions take the standard read-only qos_overrides.<topic>.publisher|subscription.
# history|depth|reliability parameters (rclpy's QoSOverridingOptions, as rclcpp nodes do).
OUTPUT_HISTORY_DEPTH = 2


def output_qos() -> QoSProfile:
    """Return the default QoS of every output (before qos_overrides)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=OUTPUT_HISTORY_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE)


def input_qos() -> QoSProfile:
    """Return the default QoS of every subscription (before qos_overrides): sensor data."""
    profile = qos_profile_sensor_data
    return QoSProfile(history=profile.history, depth=profile.depth,
                      reliability=profile.reliability, durability=profile.durability)


def _check_qos(qos: QoSProfile) -> SetParametersResult:
    """Refuse a qos_overrides result the node cannot work with, saying why."""
    if qos.history == HistoryPolicy.KEEP_LAST and not 1 <= qos.depth <= 1000:
        return SetParametersResult(successful=False,
                                   reason=f'depth must be 1 to 1000, got {qos.depth}')
    return SetParametersResult(successful=True)


QOS_OVERRIDES = QoSOverridingOptions.with_default_policies(callback=_check_qos)
