"""Shared fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny tensors: on a shared 2-core machine a
    second intra-op thread only contends (~6x slower); the stages that fit or train
    small nets use one thread too (``track.threads``). Used through ``pytestmark``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
