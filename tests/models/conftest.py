"""Model tests run torch on one thread: small tensors gain nothing from more, and
on a busy machine a second thread mostly waits for a core."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
