"""The launch_testing integration test, run under pytest with the launch_testing plugin."""

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from ros2_tools import ROOT

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]
LAUNCH_TEST = ROOT / 'test' / 'launch_tests' / 'depth_node_launch_testing.py'


def test_launch_test_passes_under_pytest_with_the_plugin(colcon_ws, tmp_path):
    # The suite's pytest.ini disables the auto-loaded launch_testing plugins; this run loads
    # them as installed (their pytest11 entry points).
    # In a folder of its own, with its own ini: the plugin imports every module of each
    # directory that collection walks through, and test/ holds modules that skip themselves.
    run = tmp_path / 'launch'
    run.mkdir()
    shutil.copy(LAUNCH_TEST, run / LAUNCH_TEST.name)
    (run / 'pytest.ini').write_text('[pytest]\naddopts = -p no:cacheprovider\n')
    env = dict(colcon_ws.env)
    env.pop('MONO_DEPTH_LAUNCH_TEST_NODE_DECIMATION', None)
    passed = launch_test(run, env, tmp_path / 'pass.xml')
    assert passed.returncode == 0, passed.stdout[-6000:] + passed.stderr[-2000:]
    cases = list(ET.parse(tmp_path / 'pass.xml').getroot().iter('testcase'))
    assert [c.get('name') for c in cases] == ['depth_node_launch_testing']
    assert all(c.find('failure') is None and c.find('skipped') is None for c in cases)
    # Negative control: a node configured differently must fail the same test, so the pass
    # above came from assertions on the node's real output.
    env['MONO_DEPTH_LAUNCH_TEST_NODE_DECIMATION'] = '2'
    failed = launch_test(run, env, tmp_path / 'fail.xml')
    assert failed.returncode == 1, failed.stdout[-6000:]
    assert '(80, 60) != (40, 30)' in failed.stdout, failed.stdout[-6000:]


def launch_test(folder, env, report):
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rA', f'--junitxml={report}',
                           LAUNCH_TEST.name], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=400)
