"""
Atomic file writes.

A reader (or a robot rebooting mid-write) sees either the old file or the new one,
never half of one: the data goes to a temporary file in the same folder, is flushed to
disk, and is renamed over the target. The result has the mode a plain ``open()`` would give
it (the target's mode when it exists, otherwise 0666 less the umask), not the 0600 of a
temporary file.
"""

import contextlib
import os
import stat
import tempfile
from typing import Iterator, Union


def _current_umask() -> int:
    """Return the process umask without changing it (Linux), else the usual 022."""
    try:
        with open('/proc/self/status', encoding='ascii') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _final_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: Union[str, os.PathLike]) -> Iterator[str]:
    """
    Yield a temporary path to write; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                               dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, 'rb+') as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: Union[str, os.PathLike], data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as handle:
            handle.write(data)


def atomic_write_text(path: Union[str, os.PathLike], text: str) -> None:
    """Write UTF-8 text to path atomically."""
    atomic_write_bytes(path, text.encode('utf-8'))
