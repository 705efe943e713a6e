from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """Excerpts of real clips committed with the tests (tests/data/MANIFEST.md). A checkout without
    them fails here rather than skipping half the suite."""
    if not (TESTDATA / "MANIFEST.md").is_file():
        pytest.fail(f"test clips missing at {TESTDATA}: the checkout is incomplete")
    return TESTDATA


@pytest.fixture(scope="module")
def single_thread():
    """Tiny CPU models train faster on one thread (no OpenMP hand-offs), and far faster on a busy machine."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
