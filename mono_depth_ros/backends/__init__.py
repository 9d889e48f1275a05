"""Inference backends behind one interface (see base.py)."""

from mono_depth_ros.backends.base import (  # noqa: F401
    available_backends, Backend, BackendError, create_backend)
