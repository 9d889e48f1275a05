"""One-line errors for the training command lines (evaluate, export): no tracebacks for users."""

from __future__ import annotations

import re
import sys

MAX_CHARS = 300


def one_line(exc: BaseException) -> str:
    """
    Return an exception's message as one line.

    A checkpoint refused by ``torch.load(weights_only=True)`` carries a long multi-line text
    whose advice (retry with ``weights_only=False``) is the one thing not to do with an
    untrusted file; it becomes "refused: ... pickled code (GLOBAL posix.system)" instead.
    """
    text = str(exc) or type(exc).__name__
    if 'Weights only load failed' in text:
        head = text.split('Weights only load failed', 1)[0].rstrip(' :')
        found = re.search(r'GLOBAL ([\w.]+)', text)
        what = f' ({found.group(0)})' if found else ''
        text = (f'{head}: refused, it holds pickled code or objects{what} that a checkpoint '
                'must not contain; it was not executed')
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if 'Original Traceback' in text and lines:
        # Re-raised from a DataLoader worker: the message carries the worker's traceback;
        # its last line is the error itself.
        lines = [lines[-1].split(': ', 1)[-1] if lines[-1].startswith(type(exc).__name__)
                 else lines[-1]]
    text = ' '.join(lines)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 3] + '...'


def fail(program: str, exc: BaseException) -> int:
    """Print ``program: error: <one line>`` to stderr and return the exit code 1."""
    print(f'{program}: error: {one_line(exc)}', file=sys.stderr, flush=True)
    return 1
