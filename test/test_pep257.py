"""Check docstrings with the ament_pep257 settings."""

from pathlib import Path

from ament_pep257.main import main
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_pep257():
    paths = [str(ROOT / p) for p in ('mono_depth_ros', 'training', 'scripts')
             if (ROOT / p).exists()]
    rc = main(argv=paths)
    assert rc == 0, 'Found code style errors / warnings'
