"""Signals while streaming: a clean stop, no spurious frame errors, a second SIGINT exits 0."""

import signal
import time

from mono_depth_ros.core.intrinsics import Intrinsics
from onnx_models import brightness_model
import pytest
from ros_harness import grey, Harness, Process

pytestmark = pytest.mark.ros

H, W = 24, 32
INTR = Intrinsics(30.0, 28.0, 15.2, 11.7, W, H)


@pytest.fixture(scope='module')
def slow_model(tmp_path_factory):
    """Build a model slow enough (tens of ms a frame) that a signal lands mid-frame."""
    path = tmp_path_factory.mktemp('models') / 'slow.onnx'
    brightness_model(path, H, W, slow_matmuls=40)
    return str(path)


def _streaming_node(tmp_path, model, tag):
    proc = Process('depth_node', ['-r', f'__node:=depth_{tag}', '-p', f'model_path:={model}',
                                  '-p', 'diagnostics_period:=0.2'], str(tmp_path), tag=tag)
    harness = Harness(f'harness_{tag}')
    harness.subscribe_all()
    try:
        harness.wait_connected()
    except AssertionError:
        raise AssertionError('node did not come up:\n' + proc.output())
    end = time.monotonic() + 20
    while not harness.received['depth/image'] and time.monotonic() < end:
        harness.send(grey(90), INTR)
        harness.spin(0.03)
    assert harness.received['depth/image'], proc.output()
    return proc, harness


def _stream_while(proc, harness, seconds, interrupts=()):
    """Keep sending frames at about 30 Hz for ``seconds``; send SIGINT at the given offsets."""
    start = time.monotonic()
    pending = sorted(interrupts)
    while time.monotonic() - start < seconds and proc.alive():
        if pending and time.monotonic() - start >= pending[0]:
            pending.pop(0)
            proc.popen.send_signal(signal.SIGINT)
        harness.send(grey(90), INTR)
        harness.spin(0.03)


@pytest.mark.parametrize('second', [False, True], ids=['one_sigint', 'two_sigints'])
def test_sigint_while_streaming_stops_cleanly(ros, tmp_path, slow_model, second):
    tag = 'twice' if second else 'once'
    proc, harness = _streaming_node(tmp_path, slow_model, tag)
    try:
        # Frames keep arriving while the node stops: the worker is busy when the signal lands.
        _stream_while(proc, harness, 1.0, (0.3, 0.5) if second else (0.3,))
        code = proc.popen.wait(10)
    finally:
        harness.destroy()
        if proc.alive():
            proc.popen.kill()
    out = proc.output()
    assert code == 0, out
    for spurious in ('frame failed', 'RCLError', 'context is invalid', 'Traceback',
                     'KeyboardInterrupt'):
        assert spurious not in out, out
