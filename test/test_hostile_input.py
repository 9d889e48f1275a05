"""Hostile compressed images sent to a running depth_node: refused, counted, node carries on."""

import time

import cv2
import hostile_images as hostile
from mono_depth_ros.core import image_codec
from mono_depth_ros.core.intrinsics import Intrinsics
from mono_depth_ros.ros import messages as ros_io
import numpy as np
from onnx_models import brightness_model
import pytest
from ros_harness import grey, Harness, Process
from sensor_msgs.msg import CompressedImage

pytestmark = pytest.mark.ros

FQN = '/depth_hostile'


@pytest.fixture(scope='module')
def node(ros, tmp_path_factory):
    path = tmp_path_factory.mktemp('models') / 'brightness.onnx'
    brightness_model(path, 24, 32)
    proc = Process('depth_node', ['-r', f'__node:={FQN[1:]}', '-p', f'model_path:={path}',
                                  '-p', 'input_transport:=compressed',
                                  '-p', 'diagnostics_period:=0.2'],
                   str(tmp_path_factory.mktemp('logs')))
    harness = Harness('harness_hostile')
    harness.subscribe_all()
    try:
        harness.wait_connected('compressed')
    except AssertionError:
        raise AssertionError('node did not come up:\n' + proc.output())
    yield proc, harness
    harness.destroy()
    assert proc.stop() == 0, proc.output()


def _intrinsics(w, h):
    return Intrinsics(0.8 * w, 0.8 * w, (w - 1) / 2, (h - 1) / 2, w, h)


def _send_compressed(harness, fmt, data, size):
    """Publish a CameraInfo of ``size`` and a CompressedImage with the same stamp."""
    header = harness.header(harness.now_ns())
    harness.pub_info.publish(ros_io.camera_info(_intrinsics(*size), header))
    msg = CompressedImage(header=header, format=fmt)
    msg.data = data
    harness.pub_compressed.publish(msg)
    return header.stamp


def _good_frame_follows(proc, harness):
    assert proc.alive(), proc.output()
    harness.received['depth/image'].clear()
    for _ in range(20):
        harness.send(grey(120), _intrinsics(32, 24), compressed=True)
        try:
            harness.wait_for(lambda: harness.received['depth/image'], 0.5, 'depth')
            break
        except AssertionError:
            continue
    depth = ros_io.depth_from_image(harness.received['depth/image'][-1])
    assert depth.shape == (24, 32)
    assert np.allclose(depth, 4.0 * 120 / 255 + 1.0, atol=0.05)  # JPEG rounding


def _redwood(shared_data):
    return (shared_data / 'redwood' / 'color' / '00000.jpg').read_bytes()


@pytest.mark.parametrize('case, counter', [
    ('png_bomb', 'bad_too_large'),
    ('jpeg_huge_header', 'bad_too_large'),
    ('jpeg_scan_bomb', 'bad_too_large'),
    ('jpeg_cut', 'bad_corrupt_image'),
    ('jpeg_randomised', 'bad_corrupt_image'),
    ('compressed_depth', 'bad_unsupported_encoding'),
])
def test_hostile_image_is_counted_and_the_next_frame_is_right(node, shared_data, case, counter):
    proc, harness = node
    before = harness.diag(FQN).get(counter, 0)
    jpeg = _redwood(shared_data)
    fmt, size = 'jpeg', (640, 480)
    if case == 'png_bomb':
        fmt, data, size = 'png', hostile.png_bomb(20000), (20000, 20000)
    elif case == 'jpeg_huge_header':
        data, size = hostile.set_jpeg_size(jpeg, 30000, 30000), (30000, 30000)
    elif case == 'jpeg_scan_bomb':  # within max_input_pixels; 1006 scans, a second of CPU
        data, size = hostile.jpeg_scan_bomb(4096, 2160, 1000), (4096, 2160)
    elif case == 'jpeg_cut':
        data = hostile.cut_jpeg(jpeg, 0.5)
    elif case == 'jpeg_randomised':
        data = hostile.randomised_jpeg(jpeg, seed=0)  # one that libjpeg warns about
    else:
        depth_mm = (np.arange(480 * 640) % 5000).astype(np.uint16).reshape(480, 640)
        fmt = '16UC1; compressedDepth png'
        data = cv2.imencode('.png', depth_mm)[1].tobytes()
    harness.received['depth/image'].clear()
    stamp = _send_compressed(harness, fmt, data, size)
    harness.wait_for(lambda: harness.diag(FQN).get(counter, 0) >= before + 1, 10,
                     f'{counter} to count the {case}')
    harness.spin(0.3)
    assert not [m for m in harness.received['depth/image'] if m.header.stamp == stamp]
    _good_frame_follows(proc, harness)


def test_exif_orientation_is_ignored_by_the_node(node, shared_data):
    proc, harness = node
    rgb = np.zeros((24, 32, 3), np.uint8)
    rgb[:, :16] = 255  # left half white: 5 m on the left, 1 m on the right
    _, jpeg = image_codec.encode_compressed(rgb, 'jpeg', quality=95)
    harness.received['depth/image'].clear()
    for _ in range(20):
        _send_compressed(harness, 'jpeg', hostile.jpeg_with_exif_orientation(jpeg), (32, 24))
        try:
            harness.wait_for(lambda: harness.received['depth/image'], 0.5, 'depth')
            break
        except AssertionError:
            continue
    depth = ros_io.depth_from_image(harness.received['depth/image'][-1])
    assert depth.shape == (24, 32)  # stored 32x24, not turned to 24x32
    assert depth[:, :12].mean() > 4.5 and depth[:, 20:].mean() < 1.5


def test_sigint_during_a_long_decode_does_not_wait_for_it(ros, tmp_path):
    # A scan bomb let through (max_jpeg_scans raised) keeps the worker in libjpeg for many
    # seconds; the stop must not wait on it (it waited 5 s, then longer for the decode).
    model = tmp_path / 'brightness.onnx'
    brightness_model(model, 24, 32)
    fqn = '/depth_slow_decode'
    proc = Process('depth_node', ['-r', f'__node:={fqn[1:]}', '-p', f'model_path:={model}',
                                  '-p', 'input_transport:=compressed',
                                  '-p', 'max_jpeg_scans:=1000000',
                                  '-p', 'diagnostics_period:=0.2'], str(tmp_path))
    harness = Harness('harness_slow_decode')
    harness.subscribe_all()
    try:
        harness.wait_connected('compressed')
        bomb = hostile.jpeg_scan_bomb(4096, 2160, 20000)  # 0.9 MB, about 14 s of CPU here
        before = harness.diag(fqn).get('frames_processed', 0)
        for _ in range(10):  # best effort: resend until the worker has taken one
            _send_compressed(harness, 'jpeg', bomb, (4096, 2160))
            try:
                harness.wait_for(
                    lambda: harness.diag(fqn).get('frames_processed', 0) > before, 1.0)
                break
            except AssertionError:
                continue
        assert harness.diag(fqn).get('frames_processed', 0) > before, proc.output()
        harness.spin(0.5)  # well inside the decode
        assert proc.alive()
        start = time.monotonic()
        code = proc.stop(timeout=30)
        elapsed = time.monotonic() - start
    finally:
        harness.destroy()
    with open(proc.log_path) as handle:
        log = handle.read()
    assert code == 0, log
    assert 'not waiting for the frame in progress' in log, log
    assert elapsed < 4.5, (elapsed, log)  # the old 5 s join alone is longer
