"""make demo's script end to end: processes, a rosbag2 recording that decodes, preview."""

import os
import signal
import subprocess
import sys
import time

import cv2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.ros


def test_demo_records_a_readable_mcap_and_a_preview(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'demo.py'),
                          '--output-dir', str(tmp_path), '--seconds', '3'],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'frames out (depth)' in out.stdout and 'abs_rel' in out.stdout
    # A rosbag2 folder (metadata.yaml + MCAP), read by an independent reader (rosbags).
    from test_bag import check_rosbag2_folder
    bag = check_rosbag2_folder(str(tmp_path / 'demo_bag'),
                               {'/image', '/camera_info', '/depth/image', '/depth/camera_info',
                                '/points', '/ground_truth/depth'})
    assert '/depth/colored' not in bag  # left out to keep the bag small
    depth = bag['/depth/image'][-1][1]
    assert depth.encoding == '32FC1' and depth.width == 640
    cloud = bag['/points'][-1][1]
    assert cloud.fields[0].name == 'x' and (cloud.width, cloud.height) == (160, 120)
    # The mcap_ros2 reader (Foxglove's decoding) reads the same file.
    from mcap_ros2.reader import read_ros2_messages
    topics = {m.channel.topic for m in read_ros2_messages(
        str(tmp_path / 'demo_bag' / 'demo_bag_0.mcap'))}
    assert topics == set(bag)
    preview = cv2.imread(str(tmp_path / 'preview.png'))
    # a second row shows a real NYU picture through the node's pipeline, when the data is here
    data = os.environ.get('MONO_DEPTH_SHARED_DATA') or os.path.join(ROOT, '..', 'shared', 'data')
    rows = 2 if os.path.isfile(os.path.join(data, 'nyu', 'rgb', '0010.png')) else 1
    assert preview is not None and preview.shape == (240 * rows, 1280, 3)
    if rows == 2:
        assert preview[240:, 320:640].std() > 5.0  # a depth map was drawn, not a blank


# -- the demo stops its children on any exit -----------------------------------------------------
def _children(pid):
    """Return {child pid: command line} of a process, from /proc."""
    out = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as handle:
                stat = handle.read()
            with open(f'/proc/{entry}/cmdline', 'rb') as handle:
                cmdline = handle.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
            out[int(entry)] = cmdline
    return out


def _running(pid):
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def _start_demo(tmp_path, *extra):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'scripts', 'demo.py'),
                             '--output-dir', str(tmp_path), '--seconds', '30', *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_children(demo, names, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = {pid: cmd for pid, cmd in _children(demo.pid).items()
                 if any(name in cmd for name in names)}
        if len(found) == len(names) and all(_running(pid) for pid in found):
            return found
        assert demo.poll() is None, demo.communicate()[0]
        time.sleep(0.1)
    raise AssertionError(f'the demo did not start {names}')


def _assert_gone(pids, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_running(pid) for pid in pids):
        time.sleep(0.1)
    left = [pid for pid in pids if _running(pid)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f'orphans left running: {left}'


@pytest.mark.parametrize('how', ['sigint', 'sigterm', 'sigkill'])
def test_demo_stops_its_children_when_it_is_stopped_mid_way(tmp_path, how):
    demo = _start_demo(tmp_path)
    try:
        kids = _wait_for_children(demo, ('sample_camera', 'depth_node'))
        time.sleep(1.0)  # both running, the recording under way or about to start
        demo.send_signal({'sigint': signal.SIGINT, 'sigterm': signal.SIGTERM,
                          'sigkill': signal.SIGKILL}[how])
        code = demo.wait(30)
    finally:
        if demo.poll() is None:
            demo.kill()
    # kill -9 cannot be handled by the demo: the kernel tells the children (PDEATHSIG).
    _assert_gone(list(kids))
    if how == 'sigint':
        assert code == 130, demo.communicate()[0]
    elif how == 'sigterm':
        assert code == 128 + signal.SIGTERM, demo.communicate()[0]


def test_demo_stops_the_camera_when_depth_node_fails(tmp_path):
    demo = _start_demo(tmp_path, '--model', str(tmp_path / 'missing.onnx'))
    try:
        kids = _wait_for_children(demo, ('sample_camera',))
        out = demo.communicate(timeout=60)[0]
    finally:
        if demo.poll() is None:
            demo.kill()
    _assert_gone(list(kids))
    assert demo.returncode == 1, out
    assert 'not found' in out  # depth_node's one-line reason, shown by the demo


def test_demo_without_the_sample_data_says_so_in_one_line(tmp_path, capfd):
    from mono_depth_ros.tools.preview import real_row
    assert real_row('unused.onnx', 640, data=str(tmp_path / 'no_data')) is None
    out, err = capfd.readouterr()
    assert out.strip().splitlines() == [
        'demo: no real NYU sample picture here; the preview shows synthetic rooms only']
    assert "can't open" not in err and 'imread' not in err, err  # no raw OpenCV warnings
