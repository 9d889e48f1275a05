"""colcon build and colcon test of this package, as README's robot steps and maintainers do."""

import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from ros2_tools import PACKAGE, ROOT, ros2

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]

# An install without torch, as on a robot: this interpreter start-up hook makes `import torch`
# fail exactly as it does where torch is not installed.
HIDE_TORCH = """import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
"""
# What the nested colcon test runs, to stay inside CI's time: every module is collected (a
# collection error fails the run), then the unit tests and test_node.py's node tests, which
# start the install's depth_node. The linters (the same files as the outer run), the slow
# tests, the other node tests (the same executables, run by the outer suite) and the
# ros2-tool tests (this file among them) are deselected.
NESTED_SELECTION = ['-m', 'not linter and not slow and not ros2_tools',
                    '-k', 'not ros or test_node.py']


def console_scripts():
    text = (ROOT / 'setup.py').read_text()
    return set(re.findall(r"'(\w+) = mono_depth_ros[\w.]+:main'", text))


def test_install_holds_executables_launch_config_rviz_model_and_index(colcon_ws):
    prefix = colcon_ws.install / PACKAGE
    scripts = console_scripts()
    assert {'depth_node', 'sample_camera', 'build_engine', 'depth_bench'} <= scripts
    for name in scripts:
        path = prefix / 'lib' / PACKAGE / name
        assert path.is_file() and path.stat().st_mode & 0o111, f'{path} missing or not executable'
    share = prefix / 'share' / PACKAGE
    for rel in ('package.xml', 'launch/depth.launch.py', 'config/depth.yaml', 'config/depth.rviz',
                'config/fastdds_large_shm.xml', 'config/intrinsics/kinect_nyu.yaml',
                'config/intrinsics/kitti.yaml', 'config/nav2_depth_costmap.yaml',
                'launch/depth_rtabmap.launch.py', 'models/starter_indoor.onnx',
                'models/fastdepth_nyu.onnx'):
        assert (share / rel).is_file(), f'{rel} is not installed under {share}'
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    assert marker.is_file()
    # The real CLI finds them through the ament index, as `ros2 run` will.
    listed = ros2(['pkg', 'executables', PACKAGE], colcon_ws.env).split()
    assert set(listed[1::2]) == scripts and set(listed[::2]) == {PACKAGE}
    assert ros2(['pkg', 'prefix', PACKAGE], colcon_ws.env).strip() == str(prefix)
    # The install's package, not the source tree's, is what its executables import.
    probe = subprocess.run([sys.executable, '-c',
                            'import mono_depth_ros; print(mono_depth_ros.__file__)'],
                           env=colcon_ws.env, cwd=colcon_ws.root, capture_output=True,
                           text=True, timeout=60)
    assert probe.stdout.startswith(str(prefix / 'lib')), probe.stdout + probe.stderr


def test_package_xml_declares_what_the_code_and_tests_use():
    root = ET.parse(ROOT / 'package.xml').getroot()
    deps = {e.tag: set() for e in root}
    for e in root:
        deps[e.tag].add(e.text)
    run = deps.get('exec_depend', set()) | deps.get('depend', set())
    test = deps.get('test_depend', set())
    assert {'ament_index_python', 'lifecycle_msgs', 'python3-onnx',
            'python3-simplejpeg-pip'} <= run
    assert 'rviz2' not in run  # a headless robot must not pull Qt
    assert {'launch_testing', 'launch_testing_ros', 'ros2launch', 'ros2lifecycle', 'ros2param',
            'mcap-ros2-support', 'python3-rosbags-pip', 'python3-pytest'} <= test
    package = (ROOT / 'mono_depth_ros').rglob('*.py')
    uses_lifecycle = any('rclpy.lifecycle' in p.read_text() for p in package)
    assert uses_lifecycle, 'lifecycle_msgs is declared but no module uses rclpy.lifecycle'


def test_colcon_test_passes_without_torch(colcon_ws, tmp_path):
    hide = tmp_path / 'no_torch'
    hide.mkdir()
    (hide / 'sitecustomize.py').write_text(HIDE_TORCH)
    env = dict(colcon_ws.env)
    env['PYTHONPATH'] = f'{hide}:{env.get("PYTHONPATH", "")}'
    env.pop('MONO_DEPTH_REQUIRE_DATA', None)  # a maintainer's machine: missing torch skips
    out = subprocess.run(['colcon', 'test', '--packages-select', PACKAGE,
                          '--event-handlers', 'console_direct+',
                          '--pytest-args', *NESTED_SELECTION, '-ra'],
                         cwd=colcon_ws.root, env=env, capture_output=True, text=True,
                         timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-6000:]
    result = subprocess.run(['colcon', 'test-result', '--all', '--verbose'],
                            cwd=colcon_ws.root, env=env, capture_output=True, text=True,
                            timeout=60)
    summary = re.search(r'Summary: (\d+) tests?, (\d+) errors?, (\d+) failures?, (\d+) skipped',
                        result.stdout)
    assert summary, result.stdout + result.stderr
    tests, errors, failures, skipped = map(int, summary.groups())
    assert errors == 0 and failures == 0 and result.returncode == 0, result.stdout
    assert tests - skipped >= 50, f'only {tests - skipped} tests ran:\n{log[-4000:]}'
    # Torch really was absent, and the node tests ran (against the install: its prefix leads
    # AMENT_PREFIX_PATH, where ros_harness looks first).
    assert 'needs torch, which is not installed' in log
    cases = ET.parse(colcon_ws.root / 'build' / PACKAGE / 'pytest.xml').getroot().iter('testcase')
    ran = {c.get('classname') for c in cases
           if c.find('skipped') is None and c.find('failure') is None}
    assert {f'{PACKAGE}.test.test_node', f'{PACKAGE}.test.test_launch_static'} <= ran, ran
