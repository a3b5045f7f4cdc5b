import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models run fastest and most repeatably on one torch thread."""
    torch.set_num_threads(1)
    yield


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
