"""Placeholder entry point: depth_node is not implemented yet."""

import sys


def main(argv=None):
    """Exit with a clear message instead of pretending to work."""
    print('depth_node: not implemented yet (see README.md, Status)', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
