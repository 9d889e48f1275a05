"""Placeholder entry point: build_engine is not implemented yet."""

import sys


def main(argv=None):
    """Exit with a clear message instead of pretending to work."""
    print('build_engine: not implemented yet (see README.md, Status)', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
