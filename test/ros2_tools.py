"""
The real ROS 2 tools for the tests that use them: colcon, ``ros2 launch`` and the ros2 CLI.

On a robot they come from the sourced ROS install. On a machine without ROS they come from
``../shared/ros2/install.sh .venv`` (``make test`` runs it once), which leaves
``.venv/ros2/setup.bash`` to source. Without either, these tests skip with the reason, except
in CI (MONO_DEPTH_REQUIRE_DATA), where that is an error.
"""

from dataclasses import dataclass
import functools
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'mono_depth_ros'
VENV_SETUP = Path(sys.prefix) / 'ros2' / 'setup.bash'
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
# What a clone holds; the rest of a working tree (venv, builds, outputs) stays behind.
NOT_SOURCE = ('.git', '.venv', 'build', 'install', 'log', 'out', 'runs', '__pycache__',
              '.pytest_cache', '*.egg-info', '*.pyc')


def _required() -> bool:
    return os.environ.get('MONO_DEPTH_REQUIRE_DATA', '') not in ('', '0', 'false')


def sourced(script: Path, env: Dict[str, str]) -> Dict[str, str]:
    """Return env after ``. script`` in bash, as a shell that sourced it would have it."""
    out = subprocess.run(['bash', '-c', f'. "{script}" >/dev/null && env -0'], env=env,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, f'sourcing {script} failed: {out.stderr.decode()}'
    pairs = (entry.split('=', 1) for entry in out.stdout.decode().split('\0') if '=' in entry)
    return dict(pairs)


@functools.lru_cache(maxsize=1)
def _toolchain() -> tuple:
    """Return (environment, None) with ros2 and colcon on PATH, or (None, why not)."""
    env = dict(os.environ)
    if VENV_SETUP.is_file():  # this venv's toolchain (sourcing it again changes nothing)
        env = sourced(VENV_SETUP, env)
        if shutil.which('ros2', path=env['PATH']) and shutil.which('colcon', path=env['PATH']):
            return env, None
        return None, f'{VENV_SETUP} does not put ros2 and colcon on PATH'
    if shutil.which('ros2') and shutil.which('colcon'):
        return env, None  # a sourced ROS install
    return None, ('the ROS 2 command line, launch and colcon are not installed: source a ROS 2 '
                  f'install, or run bash ../shared/ros2/install.sh {sys.prefix}')


def toolchain_env() -> Dict[str, str]:
    """Return an environment with the ROS 2 tools, or skip (fail in CI) with the reason."""
    env, reason = _toolchain()
    if env is None:
        if _required():
            pytest.fail(reason + '; MONO_DEPTH_REQUIRE_DATA is set, so this is an error')
        pytest.skip(reason)
    return dict(env)


def copy_source(dest: Path) -> None:
    """Copy the package's source as a clone holds it (tracked and unignored files)."""
    listed = None
    if (ROOT / '.git').exists() and shutil.which('git'):
        out = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=ROOT,
                             capture_output=True, timeout=60)
        if out.returncode == 0:
            listed = [p for p in out.stdout.decode().split('\0') if p]
    if listed is None:
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
        return
    for rel in listed:
        source = ROOT / rel
        if source.is_file():  # a file deleted in the work tree is still listed
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)


@dataclass
class ColconWorkspace:
    """A workspace with this package built by colcon, and the environment that sourced it."""

    root: Path
    install: Path
    env: Dict[str, str]
    build_seconds: float

    def launch_env(self) -> Dict[str, str]:
        """Return the sourced environment without any Fast DDS profile variable set."""
        env = dict(self.env)
        for name in PROFILE_VARIABLES:
            env.pop(name, None)
        return env


def build_workspace(root: Path) -> ColconWorkspace:
    """``colcon build --packages-select mono_depth_ros`` in root, as README's robot steps do."""
    env = toolchain_env()
    src = root / 'src' / PACKAGE
    src.mkdir(parents=True)
    copy_source(src)
    start = time.monotonic()
    out = subprocess.run(['colcon', 'build', '--packages-select', PACKAGE], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - start
    assert out.returncode == 0, f'colcon build failed:\n{out.stdout}\n{out.stderr}'
    return ColconWorkspace(root, root / 'install', sourced(root / 'install' / 'setup.bash', env),
                           seconds)


@pytest.fixture(scope='session')
def colcon_ws(tmp_path_factory) -> ColconWorkspace:
    """One colcon build of this package, shared by every test that needs an install."""
    return build_workspace(tmp_path_factory.mktemp('colcon_ws'))


def _default_sigint() -> None:
    """Undo an inherited SIG_IGN for SIGINT (background jobs of a non-interactive shell)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launch:
    """``ros2 launch`` (or any ros2 command) as a process group, bounded in time."""

    def __init__(self, args: List[str], env: Dict[str, str], log_path: Path):
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, 'w')
        # A new session: SIGINT reaches the whole group (launch and the nodes it started),
        # and a background job's inherited SIG_IGN for SIGINT does not apply.
        self.popen = subprocess.Popen(args, env=env, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_default_sigint)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_output(self, text: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.output():
                return
            if not self.alive():
                break
            time.sleep(0.2)
        raise AssertionError(f'{text!r} not seen in {timeout} s:\n{self.output()}')

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        """SIGINT the group as Ctrl-C would, then SIGKILL after timeout; return the exit code."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
            except ProcessLookupError:
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def ros2(args: List[str], env: Dict[str, str], timeout: float = 60.0) -> str:
    """Run one ``ros2`` CLI command; return its stdout, or fail with its output."""
    out = subprocess.run(['ros2', *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, f'ros2 {" ".join(args)} failed:\n{out.stdout}\n{out.stderr}'
    return out.stdout
