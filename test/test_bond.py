"""
depth_node_managed forms the bond Nav2's lifecycle manager waits for.

The manager's end is bondpy in another process (test/ros_peer.py ``manager``), which does
what nav2_lifecycle_manager does: configure, activate, then a bond on ``bond`` with the
node's name as id, waiting half the bond timeout (2 s) for it to form. Deactivating breaks
the bond at once; a killed node breaks it by heartbeat timeout (4 s).
"""

import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest
from ros2_tools import toolchain_env
from ros_harness import env_without, Process

pytestmark = [pytest.mark.ros, pytest.mark.ros2_tools]

PEER = Path(__file__).resolve().parent / 'ros_peer.py'


def events(text):
    """Return [(event, seconds)] of the peer's output lines."""
    return [(m.group(1), float(m.group(2)))
            for m in re.finditer(r'^(\w+) ([0-9.]+)$', text, re.MULTILINE)]


def wait_events(log, count, timeout, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = events(log.read_text())
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f'fewer than {count} manager events in {timeout} s:\n'
                         f'{log.read_text()}' + (f'\nnode:\n{proc.output()}' if proc else ''))


def test_nav2_style_manager_forms_and_loses_the_bond(tmp_path):
    env = toolchain_env()
    name = 'bonded_depth'
    node = Process('depth_node_managed', ['-r', f'__node:={name}', '-p', 'autostart:=false'],
                   str(tmp_path), env=env)
    log = tmp_path / 'manager.log'
    with open(log, 'w') as out:
        manager = subprocess.Popen([sys.executable, str(PEER), 'manager', name], env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        # activated, formed, deactivating, {broken, deactivated}, activated, formed
        found = wait_events(log, 7, 90.0, node)
        names = [e for e, _ in found[:7]]
        assert names[:3] == ['activated', 'formed', 'deactivating'], (names, node.output())
        assert sorted(names[3:5]) == ['broken', 'deactivated'], (names, node.output())
        assert names[5:7] == ['activated', 'formed'], (names, node.output())
        # Formed within 2 s of each activation (the manager waits half its 4 s timeout).
        assert found[1][1] - found[0][1] <= 2.0 and found[6][1] - found[5][1] <= 2.0, found
        # Deactivation broke it explicitly: well within the 4 s heartbeat timeout.
        broken_at = dict(found[3:5])['broken']
        assert broken_at - found[2][1] < 2.0, found
        assert 'creating bond (bonded_depth)' in node.output()
        # bondpy's end starts its heartbeat timer on the first heartbeat after forming
        # (BondSM: Connected() does not arm it): let a few arrive before the crash.
        time.sleep(1.0)
        os.kill(node.pid, signal.SIGKILL)
        killed = time.monotonic()
        found = wait_events(log, 8, 20.0)
        assert found[7][0] == 'broken', found
        assert time.monotonic() - killed < 10.0
        assert manager.wait(10) == 0, log.read_text()
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait()
        node.stop()


def test_without_bondpy_the_node_says_so_once_and_runs(tmp_path):
    env = env_without('bondpy', tmp_path)  # a robot without bondpy
    node = Process('depth_node_managed', ['-r', '__node:=no_bond'], str(tmp_path), env=env)
    try:
        end = time.monotonic() + 60.0
        while time.monotonic() < end and 'ready:' not in node.output() and node.alive():
            time.sleep(0.2)
        out = node.output()
        assert 'ready:' in out, out
        assert out.count('bondpy is not installed') == 1, out
        assert node.alive()
    finally:
        assert node.stop() == 0, node.output()


def test_package_xml_declares_bondpy():
    root = ET.parse(Path(__file__).resolve().parents[1] / 'package.xml').getroot()
    assert 'bondpy' in {e.text for e in root if e.tag in ('exec_depend', 'depend')}
