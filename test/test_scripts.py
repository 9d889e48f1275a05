"""Every command line under scripts/ starts from its own folder (the repository's root found)."""

import importlib.util
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'scripts').rglob('*.py'))


def _torch_importable() -> bool:
    try:
        return importlib.util.find_spec('torch') is not None
    except ImportError:
        return False


def test_scripts_are_grouped_by_purpose():
    # the command lines live in bench/, data/, models/ and eval/; only the demo stays on top
    assert [s for s in SCRIPTS if os.path.dirname(s) == 'scripts'] == ['scripts/demo.py']
    assert {os.path.dirname(s) for s in SCRIPTS} == {
        'scripts', 'scripts/bench', 'scripts/data', 'scripts/models', 'scripts/eval'}


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_starts_from_anywhere(script, tmp_path):
    # Run from elsewhere, the repository left off PYTHONPATH (a ROS install's entries stay):
    # the script itself must put the root on sys.path (training/ is not installed), at its
    # folder's depth.
    keep = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p and Path(p).resolve() != ROOT]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(keep))
    out = subprocess.run([sys.executable, str(ROOT / script), '--help'], cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=120, env=env)
    if out.returncode and re.search(r"No module named '(torch|scipy)'", out.stderr) and \
            not _torch_importable():
        pytest.skip('needs the development requirements (torch), which are not installed')
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('usage: ')
