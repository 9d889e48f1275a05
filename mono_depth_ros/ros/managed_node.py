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

On activate the node forms a bond (bondpy) on topic ``bond`` with its own name as id, as
Nav2's nodes do, so that ``nav2_lifecycle_manager`` (which waits for it after activating
each node) can bring it up with bonds on; it is broken on deactivate and shutdown, and by
heartbeat timeout when the process dies. Without bondpy the node says so once and runs
without a bond (set ``bond_timeout: 0.0`` in the manager then).

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

try:  # bondpy comes with a ROS install (ros-<distro>-bondpy); optional
    from bondpy.bondpy import Bond
except ImportError:  # pragma: no cover - depends on the machine
    Bond = None

NAME = 'depth_node'
AUTOSTART_DESCRIPTION = ('configure and activate at start-up (false: wait for a lifecycle '
                         'manager or ros2 lifecycle set)')
# The bond of nav2_util::LifecycleNode::createBond (navigation2, Humble to Kilted:
# nav2_util/src/lifecycle_node.cpp at 16d6e63, lines 42 and 71-83): topic "bond", the
# node's name as id, heartbeat period from bond_heartbeat_period (0.1 s), timeout 4 s.
BOND_TOPIC = 'bond'
BOND_HEARTBEAT_TIMEOUT_S = 4.0
BOND_PERIOD_DEFAULT_S = 0.1
BOND_PERIOD_DESCRIPTION = ("heartbeat period of the bond with Nav2's lifecycle manager, s, as "
                           "Nav2's own nodes; 0 = no bond")


class ManagedDepthNode(LifecycleNode):
    """A LifecycleNode whose transitions drive a DepthRuntime."""

    def __init__(self, **kwargs):
        super().__init__(NAME, **kwargs)
        self.declare_parameter('autostart', True, ParameterDescriptor(
            description=AUTOSTART_DESCRIPTION, type=ParameterType.PARAMETER_BOOL,
            read_only=True))
        self.declare_parameter('bond_heartbeat_period', BOND_PERIOD_DEFAULT_S,
                               ParameterDescriptor(description=BOND_PERIOD_DESCRIPTION,
                                                   type=ParameterType.PARAMETER_DOUBLE,
                                                   read_only=True))
        self.bond = None
        self._bond_formed = False
        self._bond_missing_told = False
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
        self.create_bond()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.destroy_bond()
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
        self.destroy_bond()
        self.runtime.shutdown()
        self.get_logger().info(f'shut down from {state.label}')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Back to unconfigured with nothing held, or finalized if that is not possible.
        self.destroy_bond()
        self.runtime.shutdown()
        held = self.runtime.active or self.runtime.configured
        return TransitionCallbackReturn.FAILURE if held else TransitionCallbackReturn.SUCCESS

    def create_bond(self) -> None:
        """Start the bond with a lifecycle manager (no-op without bondpy or with period 0)."""
        period = float(self.get_parameter('bond_heartbeat_period').value)
        if period <= 0 or self.bond is not None:
            return
        if Bond is None:
            if not self._bond_missing_told:
                self._bond_missing_told = True
                self.get_logger().warn(
                    "bondpy is not installed: no bond, so Nav2's lifecycle manager cannot "
                    'bring this node up with bonds on (install ros-<distro>-bondpy, or set '
                    'bond_timeout: 0.0 in the manager)')
            return
        self.get_logger().info(f'creating bond ({self.get_name()}) to lifecycle manager')
        self._bond_formed = False
        bond = Bond(self, BOND_TOPIC, self.get_name(), on_broken=self._on_bond_broken,
                    on_formed=self._on_bond_formed)
        bond.heartbeat_period = period
        bond.heartbeat_timeout = BOND_HEARTBEAT_TIMEOUT_S
        bond.start()
        self.bond = bond

    def destroy_bond(self) -> None:
        """Break the bond, telling the manager at once (not by heartbeat timeout)."""
        bond, self.bond = self.bond, None
        if bond is not None:
            self.get_logger().info(f'destroying bond ({self.get_name()}) to lifecycle manager')
            try:
                bond.shutdown()  # publishes the bond's end, then destroys its topics itself
                # ... but not through the node, which keeps their event handlers in its wait
                # set (the executor then fails on a destroyed handle): remove them too.
                self.destroy_subscription(bond.sub)
                self.destroy_publisher(bond.pub)
            except Exception as exc:  # noqa: BLE001 - the context may be gone at shutdown
                self.get_logger().debug(f'bond shutdown: {exc}')

    def _on_bond_formed(self) -> None:
        self._bond_formed = True
        self.get_logger().info('bond formed with the lifecycle manager')

    def _on_bond_broken(self) -> None:
        if self.bond is None:
            return  # our own destroy_bond
        if self._bond_formed:
            self.get_logger().warn('the bond with the lifecycle manager is broken (the '
                                   'manager stopped, or its heartbeat timed out)')
        else:  # bondpy's connect timeout: nothing manages this node (autostart), which is fine
            self.get_logger().info('no lifecycle manager formed the bond; running without one')

    def autostart(self) -> bool:
        """Configure and activate; return False (the reason is logged) if either fails."""
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            return False
        return self.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Release everything the runtime holds, whatever the state (SIGINT, SIGTERM)."""
        self.destroy_bond()
        self.runtime.shutdown(EXIT_WAIT_S)


def help_text() -> str:
    """Return depth_node's usage text plus the managed node's own parameter."""
    text = node_params.help_text('depth_node_managed')
    return (text + f'  autostart (bool, default True): {AUTOSTART_DESCRIPTION}\n'
            f'  bond_heartbeat_period (double, default {BOND_PERIOD_DEFAULT_S}): '
            f'{BOND_PERIOD_DESCRIPTION}\n')


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
