"""make demo's script end to end: processes, MCAP recording that decodes, preview, summary."""

import os
import subprocess
import sys

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
    from mcap_ros2.reader import read_ros2_messages
    seen = {}
    for message in read_ros2_messages(str(tmp_path / 'demo.mcap')):
        seen.setdefault(message.channel.topic, message.ros_msg)
    assert {'/image', '/camera_info', '/depth', '/points', '/ground_truth/depth'} <= set(seen)
    depth = seen['/depth']
    assert depth.encoding == '32FC1' and depth.width == 640
    assert seen['/points'].fields[0].name == 'x'
    preview = cv2.imread(str(tmp_path / 'preview.png'))
    assert preview is not None and preview.shape == (240, 1280, 3)
