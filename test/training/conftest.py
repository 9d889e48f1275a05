"""Fixtures shared by the training tests."""

import pytest


@pytest.fixture
def one_thread():
    """Run torch single-threaded: OpenMP threads spin badly on a shared 2-core machine."""
    import torch  # here, so that this folder's modules can skip where torch is absent
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
