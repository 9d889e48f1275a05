"""DepthRuntime in this process: the lifecycle steps, the order of checks, a safe stop."""

import threading

from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros.depth_node import DepthRuntime, StartupError
from onnx_models import brightness_model
import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import grey
from std_msgs.msg import Header

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, 24, 32)
    return str(path)


@pytest.fixture
def make(ros, request):
    """Return a factory of (node, runtime) with parameter overrides; destroys them after."""
    made = []

    def factory(**overrides):
        name = f'runtime_{request.node.name}_{len(made)}'.replace('[', '_').replace(']', '')
        node = Node(name[:60], parameter_overrides=[Parameter(k, value=v)
                                                    for k, v in overrides.items()])
        runtime = DepthRuntime(node)
        made.append((node, runtime))
        return node, runtime
    yield factory
    for node, runtime in made:
        runtime.shutdown()
        node.destroy_node()


def topics(node):
    return sorted(p.topic_name for p in node.publishers)


def test_parameters_are_checked_before_the_model_is_loaded(make, tmp_path):
    missing = str(tmp_path / 'missing.onnx')
    _, runtime = make(model_path=missing, intrinsics='manual', fx=500.0, fy=500.0)
    with pytest.raises(StartupError, match='cx, cy'):
        runtime.configure()  # the parameter, not the missing model
    assert runtime.backend is None and not runtime.configured
    _, runtime = make(model_path=missing)
    with pytest.raises(StartupError, match='not found'):
        runtime.configure()


def test_configure_activate_deactivate_cleanup(make, model):
    node, runtime = make(model_path=model)
    base = topics(node)
    with pytest.raises(StartupError, match='before configure'):
        runtime.activate()
    runtime.configure()
    assert runtime.configured and runtime.backend is not None and topics(node) == base
    runtime.activate()
    outputs = set(topics(node)) - set(base)
    assert {node.resolve_topic_name(t) for t in ('depth/image', 'depth/camera_info', 'points',
                                                 'depth/colored')} <= outputs
    worker = runtime._worker
    assert worker.is_alive()
    assert runtime.deactivate()
    assert topics(node) == base and not worker.is_alive()  # no output while inactive
    assert runtime.backend is not None  # the model stays loaded
    runtime.activate()  # and it comes back
    assert set(topics(node)) - set(base) == outputs
    runtime.shutdown()
    assert runtime.backend is None and not runtime.configured and topics(node) == base


def test_stop_never_closes_the_backend_under_a_running_worker(make, model):
    _, runtime = make(model_path=model)
    runtime.configure()
    runtime.activate()
    entered, release = threading.Event(), threading.Event()
    closed = []
    backend = runtime.backend
    original_close = backend.close
    backend.close = lambda: closed.append(True) or original_close()

    def stuck(msg, cfg, wanted):
        entered.set()
        release.wait(10)
    runtime._process = stuck
    runtime._wanted = lambda cfg: (True, False, False)
    # Whatever wait the caller asks for, give up on the stuck worker after 0.2 s.
    runtime._stop_worker = lambda *_args, **_kw: DepthRuntime._stop_worker(runtime, timeout=0.2)
    runtime._on_image(ros_io.rgb_to_image(grey(10), Header()))
    assert entered.wait(10)
    runtime.shutdown()
    assert closed == [] and runtime.backend is backend  # the worker still runs inference
    release.set()
    runtime._worker.join(5)
    assert not runtime._worker.is_alive()
    runtime.cleanup()
    assert closed == [True] and runtime.backend is None
