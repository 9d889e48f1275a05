"""
``ros2 launch mono_depth_ros depth.launch.py`` refuses what would fail silently.

A boolean argument with a typo (``use_sample_camera:=ture``) stops the launch with the
argument and its valid values, instead of reading as false; a depth_node that exits at start
(a model file that does not exist) shuts the whole launch down, sample camera included.
"""

import os
import re
import time

import pytest
from ros2_tools import Launch

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]

EXIT_S = 90.0  # start-up of launch and the node on a busy machine


def wait_exit(launch, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end and launch.alive():
        time.sleep(0.2)
    assert not launch.alive(), f'the launch still runs after {timeout} s:\n{launch.output()}'


def test_a_boolean_typo_is_refused_with_the_reason(colcon_ws, tmp_path):
    launch = Launch(['ros2', 'launch', 'mono_depth_ros', 'depth.launch.py',
                     'namespace:=typo', 'use_sample_camera:=ture'],
                    colcon_ws.launch_env(), tmp_path / 'typo.log')
    try:
        wait_exit(launch, EXIT_S)
        out = launch.output()
        assert 'use_sample_camera' in out and '"ture" is not valid' in out, out
        assert "'true', 'false'" in out, out
        assert 'process started' not in out, out  # nothing ran on a misread argument
    finally:
        code = launch.stop()
    assert code != 0, launch.output()


def test_a_node_that_cannot_start_shuts_the_launch_down(colcon_ws, tmp_path):
    launch = Launch(['ros2', 'launch', 'mono_depth_ros', 'depth.launch.py',
                     'namespace:=badmodel', 'use_sample_camera:=True',
                     f'model_path:={tmp_path / "missing.onnx"}'],
                    colcon_ws.launch_env(), tmp_path / 'bad_model.log')
    try:
        wait_exit(launch, EXIT_S)
        out = launch.output()
        assert 'cannot start: model file not found' in out, out
        camera = re.search(r'\[sample_camera-\d+\]: process started with pid \[(\d+)\]', out)
        assert camera, out  # the camera had started, and went down with the launch
        pid = int(camera.group(1))
        end = time.monotonic() + 10.0
        while time.monotonic() < end and os.path.exists(f'/proc/{pid}'):
            time.sleep(0.2)
        assert not os.path.exists(f'/proc/{pid}'), out
    finally:
        launch.stop()
