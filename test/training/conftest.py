"""Fixtures shared by the training tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run torch single-threaded: OpenMP threads spin badly on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
