"""sample_camera: file sources, lazy synthetic rendering, start-up time, --help, bad values."""

import subprocess
import threading
import time

import cv2
from mono_depth_ros.core.intrinsics import Intrinsics, preset, save_camera_info_yaml
from mono_depth_ros.ros import messages as ros_io
from mono_depth_ros.ros.sample_camera import folder_source, RenderAhead, synthetic_source
from mono_depth_ros.sim.synthetic import SyntheticStream
import numpy as np
import pytest
from ros_harness import executable, Harness, Process
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


def listen(name, topics):
    harness = Harness(name)
    for topic, kind in topics:
        harness.subscribe(topic, kind)
    return harness


@pytest.mark.ros
@pytest.mark.parametrize('kind', ['folder', 'video'])
def test_file_sources_with_camera_info_yaml(ros, tmp_path, kind):
    frames = []
    for i in range(3):
        img = np.zeros((48, 64, 3), np.uint8)
        img[:, :, 2] = 80 * i  # BGR: red grows
        img[10:20, 10 + 10 * i:20 + 10 * i] = 255
        frames.append(img)
    if kind == 'folder':
        source = tmp_path / 'images'
        source.mkdir()
        for i, img in enumerate(frames):
            cv2.imwrite(str(source / f'{i:03d}.png'), img)
        (source / 'readme.txt').write_text('not an image')
    else:
        source = tmp_path / 'clip.avi'
        writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
        for img in frames:
            writer.write(img)
        writer.release()
    calib = tmp_path / 'cam.yaml'
    intr = Intrinsics(55.0, 54.0, 31.7, 23.2, 64, 48)
    save_camera_info_yaml(str(calib), intr, 'test_cam')
    proc = Process('sample_camera', ['-r', f'__node:=cam_{kind}', '-p', f'source:={source}',
                                     '-p', f'camera_info_url:=file://{calib}',
                                     '-p', 'width:=0', '-p', 'height:=0', '-p', 'rate_hz:=20.0',
                                     '-p', 'transport:=both', '-p', 'frame_id:=cam_opt'],
                   str(tmp_path), tag=kind)
    harness = listen(f'l_{kind}', [('image', Image), ('camera_info', CameraInfo),
                                   ('image/compressed', CompressedImage)])
    try:
        harness.wait_for(lambda: len(harness.received['image']) >= 4 and
                         harness.received['camera_info'] and
                         harness.received['image/compressed'], 20, 'frames')
        msg = harness.received['image'][-1]
        assert (msg.width, msg.height, msg.encoding) == (64, 48, 'rgb8')
        assert msg.header.frame_id == 'cam_opt' and msg.header.stamp.sec > 0
        info = harness.received['camera_info'][-1]
        assert list(info.k) == pytest.approx(list(intr.K.reshape(-1)))
        rgb = ros_io.image_to_rgb(msg)
        reds = {int(np.median(ros_io.image_to_rgb(m)[30:, :, 0]))
                for m in harness.received['image']}
        tol = 0 if kind == 'folder' else 12  # MJPG is lossy
        assert any(abs(r - 160) <= tol for r in reds), reds  # frames loop through the source
        assert rgb.shape == (48, 64, 3)
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


@pytest.mark.ros
def test_bad_source_exits_with_a_message(ros, tmp_path):
    proc = Process('sample_camera', ['-p', f'source:={tmp_path / "nothing_here"}'],
                   str(tmp_path))
    assert proc.popen.wait(20) == 1
    assert 'neither synthetic' in proc.output()


# -- lazy synthetic rendering (no ROS graph) -----------------------------------------------------
def _counting_render(delay=0.0):
    calls = []

    def render(index):
        calls.append(index)
        time.sleep(delay)
        return np.full((2, 3, 3), index, np.uint8), None
    return render, calls


def test_render_ahead_keeps_the_whole_loop_when_it_fits():
    render, calls = _counting_render()
    frames = RenderAhead(render, count=5, keep=5)
    try:
        seen = []
        for position in range(12):
            assert frames.wait_ready(position, 5.0)
            seen.append(int(frames.take(position)[0][0, 0, 0]))
        assert seen == [0, 1, 2, 3, 4] * 2 + [0, 1]  # in order, looping
        assert sorted(calls) == [0, 1, 2, 3, 4]  # every frame rendered exactly once
    finally:
        frames.close()


def test_render_ahead_renders_only_a_window_when_the_loop_does_not_fit():
    render, calls = _counting_render()
    frames = RenderAhead(render, count=1000, keep=10, ahead=3)
    try:
        for position in range(6):
            assert frames.wait_ready(position, 5.0)
            assert int(frames.take(position)[0][0, 0, 0]) == position
        time.sleep(0.1)
        assert calls == sorted(calls) and max(calls) <= 5 + 3  # no pre-rendering of 1000
        assert len(frames._frames) <= 3
    finally:
        frames.close()


def test_render_ahead_never_blocks_and_reports_a_render_error():
    release = threading.Event()

    def held(index):  # rendering cannot finish until the test lets it
        release.wait(30.0)
        return np.full((2, 3, 3), index, np.uint8), None
    frames = RenderAhead(held, count=4, keep=4)
    try:
        # Not rendered yet: the tick gets nothing and goes on. Had take() waited for the
        # render, it would return only after the release, which comes after it.
        assert frames.take(0) is None
        assert not release.is_set()
    finally:
        release.set()
        frames.close()

    def broken(index):
        raise ValueError('scene exploded')
    frames = RenderAhead(broken, count=4, keep=4)
    try:
        assert frames.wait_ready(0, 5.0)
        with pytest.raises(RuntimeError, match='scene exploded'):
            frames.take(0)
    finally:
        frames.close()


def test_synthetic_source_is_the_deterministic_synthetic_stream():
    intr = preset('kinect_nyu').resize(64, 48)
    source = synthetic_source(64, 48, intr, n=4, seed=3)
    try:
        reference = SyntheticStream(64, 48, intrinsics=intr, seed=3, frames_per_room=2)
        for position in (0, 1, 2, 3, 4):
            assert source.wait_ready(position, 30.0)
            rgb, depth = source.take(position)
            expected = reference.frame(position % 4)
            assert np.array_equal(rgb, expected.rgb)
            assert np.array_equal(depth, expected.depth, equal_nan=True)
    finally:
        source.close()


# -- the executable ------------------------------------------------------------------------------
@pytest.mark.ros
def test_starts_publishing_640x480_within_seconds_without_pre_rendering(ros, tmp_path):
    # 100000 frames: rendering them first (about 0.2 s each) would take hours.
    t0 = time.monotonic()
    proc = Process('sample_camera', ['-r', '__node:=cam_fast', '-r', 'image:=fast/image',
                                     '-r', 'camera_info:=fast/camera_info',
                                     '-p', 'synthetic_frames:=100000', '-p', 'rate_hz:=30.0'],
                   str(tmp_path), tag='fast')
    harness = listen('l_fast', [('fast/image', Image), ('fast/camera_info', CameraInfo)])
    try:
        harness.wait_for(lambda: harness.received['fast/image'], 20, 'the first image')
        first = time.monotonic() - t0
        msg = harness.received['fast/image'][0]
        assert (msg.width, msg.height) == (640, 480)
        # About 2 s on an idle machine; rendering first would take hours.
        assert first < 8.0, f'first image after {first:.1f} s'
        assert 'rendered in the background' in proc.output()
    finally:
        harness.destroy()
        assert proc.stop() == 0, proc.output()


def test_help_prints_the_parameter_table_without_starting(tmp_path):
    out = subprocess.run([executable('sample_camera'), '--help'], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('usage: sample_camera')
    for name in ('source', 'rate_hz', 'synthetic_frames', 'cache_mb', 'reliability'):
        assert f'\n  {name} ' in out.stdout
    assert 'publishing' not in out.stdout + out.stderr


@pytest.mark.ros
@pytest.mark.parametrize('args, words', [
    (['-p', 'transport:=pigeon'], 'transport must be one of'),
    (['-p', 'rate_hz:=0.0'], 'rate_hz'),
    (['-p', 'width:=-5'], 'width'),
])
def test_bad_parameters_exit_1_with_one_line(ros, tmp_path, args, words):
    proc = Process('sample_camera', args, str(tmp_path), tag=words.split()[0])
    assert proc.popen.wait(30) == 1
    out = proc.output()
    assert words in out and 'Traceback' not in out, out
    assert len(out.strip().splitlines()) == 1, out


def test_a_render_failure_stops_the_camera_with_its_reason():
    import rclpy
    from rclpy.parameter import Parameter
    from mono_depth_ros.ros.sample_camera import SampleCamera
    context = rclpy.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = SampleCamera(context=context, parameter_overrides=[
            Parameter('width', value=32), Parameter('height', value=24),
            Parameter('synthetic_frames', value=2)])
        node.source.close()

        def broken(index):
            raise ValueError('scene exploded')
        node.source = RenderAhead(broken, count=2, keep=2)
        assert node.source.wait_ready(0, 5.0)
        node._tick()
        assert 'scene exploded' in node.failed
        assert not rclpy.ok(context=context)  # spin_until_shutdown returns, main exits 1
    finally:
        if node is not None:
            node.source.close()
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def test_folder_source_reads_lazily_in_order_at_the_first_images_size(tmp_path):
    for i in range(30):
        size = (640, 480) if i % 2 == 0 else (320, 240)  # mixed sizes follow the first image
        cv2.imwrite(str(tmp_path / f'{i:03d}.png'), np.full(size[::-1] + (3,), i, np.uint8))
    (tmp_path / '999.png').write_text('not an image, whatever its name says')
    # 1 MB holds one 640x480 frame: the rest is read as needed, a few frames ahead.
    source = folder_source(str(tmp_path), None, cache_mb=1)
    try:
        assert source.count == 30 and source.size == (640, 480) and not source.keep_all
        time.sleep(0.3)
        assert source.rendered <= 2  # nothing read far ahead of the publisher
        for position in range(35):
            assert source.wait_ready(position, 10.0)
            rgb, gt = source.take(position)
            assert gt is None and rgb.shape == (480, 640, 3)
            assert int(rgb[0, 0, 0]) == position % 30
        assert source.rendered <= 35 + 2
    finally:
        source.close()
