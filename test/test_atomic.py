"""Atomic writes: all-or-nothing, and the file mode a plain open() would give."""

import os
import stat

from mono_depth_ros.core.atomic import atomic_path, atomic_write_text
import pytest


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_new_file_gets_umask_mode_not_temp_mode(tmp_path, umask_027):
    target = tmp_path / 'a.txt'
    atomic_write_text(target, 'hello')
    assert target.read_text() == 'hello'
    assert _mode(target) == 0o640


def test_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / 'b.txt'
    target.write_text('old')
    os.chmod(target, 0o604)
    atomic_write_text(target, 'new')
    assert target.read_text() == 'new'
    assert _mode(target) == 0o604


def test_failure_leaves_target_and_no_temporary(tmp_path):
    target = tmp_path / 'c.txt'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            with open(tmp, 'w') as handle:
                handle.write('half')
            raise RuntimeError('killed mid-write')
    assert target.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['c.txt']
