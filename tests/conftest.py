import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Folder of real test clips: $NVCODEC_TESTDATA, else shared/testdata beside the repo."""
    default = Path(__file__).resolve().parents[2] / "shared" / "testdata"
    root = Path(os.environ.get("NVCODEC_TESTDATA", default))
    if not root.is_dir():
        pytest.skip(f"test clips not found at {root} (set NVCODEC_TESTDATA)")
    return root


@pytest.fixture(scope="module")
def single_thread():
    """Tiny CPU models train faster on one thread (no OpenMP hand-offs), and far faster on a busy machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
