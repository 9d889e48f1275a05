"""Shared fixtures: the real sample data, and an isolated loopback ROS graph per session."""

import importlib.util
import os
from pathlib import Path
import random

import pytest
from ros2_tools import colcon_ws  # noqa: F401 - a session fixture for every module

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('MONO_DEPTH_SHARED_DATA', REPO_ROOT.parent / 'shared' / 'data'))

# Every ROS process a test starts inherits these: discovery stays on loopback, and a
# random domain keeps concurrent test sessions on one machine from hearing each other.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# Best-effort samples larger than Fast DDS's 512 KiB shared-memory segment (a 640x480 image,
# any full cloud) are nearly all lost between processes, with the default transports and with
# LARGE_DATA (scripts/bench/bench_transport.py); the shipped profile's 16 MiB segment delivers
# them.
# Set before rclpy starts, so the node subprocesses inherit it too.
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO_ROOT / 'config' / 'fastdds_large_shm.xml'))
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random().randint(1, 100)))
os.environ.setdefault('AMENT_PREFIX_PATH', os.path.dirname(os.path.dirname(
    os.path.realpath(__import__('sys').executable))))


def _require_data() -> bool:
    return os.environ.get('MONO_DEPTH_REQUIRE_DATA', '') not in ('', '0', 'false')


TORCH_ABSENT = "No module named 'torch'"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Outside CI, a test module that needs torch skips with the reason where torch is absent.

    The installed package runs without torch (a robot's ``colcon test``); only the training,
    export and torch-backend tests need it. In CI (MONO_DEPTH_REQUIRE_DATA) it stays an error,
    and any other import failure (a broken training package) always fails.
    """
    outcome = yield
    report = outcome.get_result()
    if report.failed and not _require_data() and TORCH_ABSENT in str(report.longrepr):
        path = str(getattr(collector, 'path', None) or collector.fspath)
        report.outcome = 'skipped'
        report.longrepr = (path, None, 'Skipped: needs torch, which is not installed '
                           '(pip install -r requirements/dev.txt)')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Likewise for a fixture that needs torch: its set-up skips where torch is absent."""
    outcome = yield
    report = outcome.get_result()
    if (report.when == 'setup' and report.failed and not _require_data() and
            TORCH_ABSENT in str(report.longrepr)):
        report.outcome = 'skipped'
        report.longrepr = (str(item.fspath), item.location[1],
                           'Skipped: needs torch, which is not installed')


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    """
    Skip what needs torch where it is absent (an error in CI).

    That is the tests marked needs_torch, and test/training/ as a whole: training/ is the
    offline torch side, not installed, so a robot's ``colcon test`` has no use for it.
    """
    if _require_data() or _importable('torch'):
        return
    skip = pytest.mark.skip(reason='needs torch, which is not installed')
    training = Path(__file__).resolve().parent / 'training'
    for item in items:
        if item.get_closest_marker('needs_torch') or training in Path(
                str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope='session')
def shared_data() -> Path:
    """Return ../shared/data; skip when absent, or fail when MONO_DEPTH_REQUIRE_DATA is set."""
    if not SHARED_DATA.is_dir():
        message = (f'real sample data not found at {SHARED_DATA} '
                   '(set MONO_DEPTH_SHARED_DATA to its location)')
        if _require_data():
            pytest.fail(message + '; MONO_DEPTH_REQUIRE_DATA is set, so this is an error')
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope='session')
def ros():
    """Initialise rclpy once for the test process."""
    import rclpy
    rclpy.init()
    yield
    rclpy.try_shutdown()
