"""Lint the whole project with the ament_flake8 settings."""

from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ['mono_depth_ros', 'training', 'test', 'scripts', 'launch', 'setup.py']


@pytest.mark.linter
def test_flake8():
    paths = [str(ROOT / p) for p in PATHS if (ROOT / p).exists()]
    rc, errors = main_with_errors(argv=paths)
    assert rc == 0, 'Found %d code style errors / warnings:\n' % len(errors) + '\n'.join(errors)
