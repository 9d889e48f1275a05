"""Inference backends behind one interface (see base.py)."""

from mono_depth_ros.inference.base import (available_backends, Backend, BackendError,  # noqa: F401
                                           create_backend)
