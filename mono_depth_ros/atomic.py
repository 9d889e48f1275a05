"""
Atomic file writes.

A reader (or a robot rebooting mid-write) sees either the old file or the new one,
never half of one: the data goes to a temporary file in the same folder, is flushed to
disk, and is renamed over the target.
"""

import contextlib
import os
import tempfile
from typing import Iterator, Union


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
