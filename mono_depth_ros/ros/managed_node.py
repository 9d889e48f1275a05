"""
depth_node_managed: depth_node as a managed (lifecycle) node.

The same :class:`~mono_depth_ros.ros.depth_node.DepthRuntime` as depth_node does all the
work; only the start-up differs. The lifecycle transitions map onto its steps:

* configure: read and validate the parameters, load the model (a bad model or parameter
  fails the transition with the reason in the log; the node stays unconfigured and alive);
* activate: create the subscriptions, publishers and diagnostics timer, start the worker;
* deactivate: stop the worker and destroy them, so an inactive node publishes nothing;
* cleanup: release the model;
* shutdown (from any state): whichever of deactivate and cleanup apply.

``autostart`` (default true) configures and activates the node by itself, so that it runs
like depth_node when nothing manages it; a failed autostart exits 1 with one line, as
depth_node does. Set ``autostart:=false`` when a lifecycle manager (Nav2's, or
``ros2 lifecycle set``) drives the transitions.

Only rclpy.lifecycle APIs that exist in ROS 2 Humble are used.
"""

import os
import sys

from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros import params as node_params
from mono_depth_ros.ros import transport
from mono_depth_ros.ros.depth_node import DepthRuntime, EXIT_WAIT_S, StartupError
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
import rclpy
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

NAME = 'depth_node'
AUTOSTART_DESCRIPTION = ('configure and activate at start-up (false: wait for a lifecycle '
                         'manager or ros2 lifecycle set)')


class ManagedDepthNode(LifecycleNode):
    """A LifecycleNode whose transitions drive a DepthRuntime."""

    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self.declare_parameter('autostart', True, ParameterDescriptor(
            description=AUTOSTART_DESCRIPTION, type=ParameterType.PARAMETER_BOOL,
            read_only=True))
        self.runtime = DepthRuntime(self)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.runtime.configure()
        except StartupError as exc:
            self.get_logger().error(f'configure failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f'configured: {self.runtime.backend.describe()}, model '
                               f'{self.runtime.model_path}')
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.runtime.activate()
        except StartupError as exc:
            self.get_logger().error(f'activate failed: {exc}')
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        if not self.runtime.deactivate():
            self.get_logger().error('deactivate: the worker did not stop')
            return TransitionCallbackReturn.ERROR
        self.get_logger().info('deactivated: no subscriptions, no output')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runtime.cleanup()
        self.get_logger().info('cleaned up: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.runtime.shutdown()
        self.get_logger().info(f'shut down from {state.label}')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Back to unconfigured with nothing held, or finalized if that is not possible.
        self.runtime.shutdown()
        held = self.runtime.active or self.runtime.configured
        return TransitionCallbackReturn.FAILURE if held else TransitionCallbackReturn.SUCCESS

    def autostart(self) -> bool:
        """Configure and activate; return False (the reason is logged) if either fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Release everything the runtime holds, whatever the state (SIGINT, SIGTERM)."""
        self.runtime.shutdown(EXIT_WAIT_S)


def help_text() -> str:
    """Return depth_node's usage text plus the managed node's own parameter."""
    text = node_params.help_text('depth_node_managed')
    return text + f'  autostart (bool, default True): {AUTOSTART_DESCRIPTION}\n'


def main(argv=None) -> int:
    """Run depth_node_managed until SIGINT or SIGTERM."""
    args = sys.argv[1:] if argv is None else list(argv)
    if ros_io.wants_help(args):
        sys.stdout.write(help_text())
        return 0
    profile_note = transport.apply_default_profile(os.environ)
    rclpy.init(args=argv)
    try:
        node = ManagedDepthNode()
    except StartupError as exc:
        print(f'[depth_node_managed] cannot start: {exc}', file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    if profile_note:
        node.get_logger().info(profile_note)
    if node.get_parameter('autostart').value and not node.autostart():
        print('[depth_node_managed] cannot start: autostart failed (see the log above)',
              file=sys.stderr, flush=True)
        node.stop()
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    ros_io.spin_until_shutdown(node, node.stop)
    return 0


if __name__ == '__main__':
    sys.exit(main())
