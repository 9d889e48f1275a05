"""depth_node_managed driven with the real ``ros2 lifecycle set`` / ``get``."""

import subprocess
import time

from onnx_models import brightness_model
import pytest
from ros2_tools import toolchain_env
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import Image

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]

H, W = 24, 32
CLI = ['--no-daemon', '--spin-time', '2']
QUIET_S = 2.0


def lifecycle(env, *args, timeout=60.0):
    """Run ``ros2 lifecycle ...``; retry while discovery has not found the node yet."""
    end = time.monotonic() + timeout
    while True:
        out = subprocess.run(['ros2', 'lifecycle', *args[:1], *CLI, *args[1:]], env=env,
                             capture_output=True, text=True, timeout=60)
        text = (out.stdout + out.stderr).strip()
        if 'Node not found' not in text or time.monotonic() > end:
            return text
        time.sleep(1.0)


def log_text(proc):
    with open(proc.log_path) as handle:
        return handle.read()


def state(env, node):
    return lifecycle(env, 'get', node).split(' [')[0]


def transition(env, node, name):
    out = lifecycle(env, 'set', node, name)
    assert out == 'Transitioning successful', f'{name}: {out}'


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, H, W)
    return str(path)


@pytest.fixture(scope='module')
def env():
    return toolchain_env()


def outputs_after_sending(harness, seconds):
    for topic in harness.received:
        harness.received[topic].clear()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        harness.send(grey(120, H, W))
        harness.spin(0.2)
        if harness.received['depth/image']:
            break
    return {t: len(m) for t, m in harness.received.items()}


def test_transitions_create_and_destroy_the_outputs(ros, model, env, tmp_path):
    proc = Process('depth_node_managed', ['-r', '__node:=managed_a', '-p', 'autostart:=false',
                                          '-p', f'model_path:={model}'], str(tmp_path))
    harness = Harness('harness_lifecycle')
    harness.subscribe('depth/image', Image)
    try:
        transition(env, '/managed_a', 'configure')
        assert state(env, '/managed_a') == 'inactive'
        assert 'configured: onnxruntime' in proc.output()
        # Inactive: no publishers, no subscriptions, so nothing comes out.
        assert harness.node.count_publishers('/depth/image') == 0
        assert harness.node.count_subscribers('/image') == 0
        transition(env, '/managed_a', 'activate')
        harness.wait_connected()
        assert outputs_after_sending(harness, 20.0)['depth/image'] > 0, proc.output()
        transition(env, '/managed_a', 'deactivate')
        harness.wait_for(lambda: harness.node.count_publishers('/depth/image') == 0, 10.0,
                         'depth publisher gone')
        assert outputs_after_sending(harness, QUIET_S)['depth/image'] == 0
        transition(env, '/managed_a', 'cleanup')
        assert 'model released' in proc.output()
        # Configure again after cleanup, then shut down from inactive.
        transition(env, '/managed_a', 'configure')
        transition(env, '/managed_a', 'shutdown')
        assert state(env, '/managed_a') == 'finalized'
        assert proc.alive(), proc.output()
    finally:
        harness.destroy()
        code = proc.stop()
    assert code == 0, log_text(proc)
    assert 'Traceback' not in log_text(proc)


def test_bad_model_fails_configure_with_a_reason_and_the_node_stays_up(ros, env, tmp_path):
    missing = tmp_path / 'missing.onnx'
    proc = Process('depth_node_managed', ['-r', '__node:=managed_bad', '-p', 'autostart:=false',
                                          '-p', f'model_path:={missing}'], str(tmp_path))
    try:
        out = lifecycle(env, 'set', '/managed_bad', 'configure')
        assert out == 'Transitioning failed', out
        assert state(env, '/managed_bad') == 'unconfigured'
        assert proc.alive()
        assert f'configure failed: model file not found: {missing}' in proc.output()
        transition(env, '/managed_bad', 'shutdown')  # from unconfigured
    finally:
        code = proc.stop()
    assert code == 0, log_text(proc)
    assert 'Traceback' not in log_text(proc)


def test_autostart_reaches_active_and_shuts_down_from_active(ros, model, env, tmp_path):
    proc = Process('depth_node_managed', ['-r', '__node:=managed_auto',
                                          '-p', f'model_path:={model}'], str(tmp_path))
    harness = Harness('harness_autostart')
    harness.subscribe('depth/image', Image)
    try:
        harness.wait_connected()
        assert outputs_after_sending(harness, 20.0)['depth/image'] > 0, proc.output()
        assert state(env, '/managed_auto') == 'active'
        transition(env, '/managed_auto', 'shutdown')  # from active
        harness.wait_for(lambda: harness.node.count_publishers('/depth/image') == 0, 10.0,
                         'depth publisher gone')
    finally:
        harness.destroy()
        code = proc.stop()
    assert code == 0, log_text(proc)


def test_autostart_with_a_bad_model_exits_1_with_one_line(ros, tmp_path):
    proc = Process('depth_node_managed', ['-p', f'model_path:={tmp_path / "no.onnx"}'],
                   str(tmp_path))
    proc.popen.wait(60)
    assert proc.stop() == 1
    assert 'configure failed: model file not found' in log_text(proc)
    assert 'cannot start: autostart failed' in log_text(proc)
    assert 'Traceback' not in log_text(proc)
