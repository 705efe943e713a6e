import os
from pathlib import Path

import pytest

TESTDATA = Path(__file__).resolve().parent / "data"


def pytest_configure(config):
    """Under pytest-xdist (the README's `-n 2`), each worker computes on one thread, and so do the encoders and
    decoders its tests start: two workers of two threads each on two cores would fight over them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


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


@pytest.fixture(scope="session")
def old_checkpoint():
    """A function that writes, at a path, a training checkpoint as dnv wrote them before format 4: a
    safetensors file (8-byte little-endian header length, JSON header with the metadata, tensor data)."""
    import json
    import struct

    def write(path: Path) -> None:
        header = {"__metadata__": {"nvcodec": json.dumps({"format": 3, "phase": "train"})},
                  "dec.head.bias": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}
        text = json.dumps(header).encode()
        Path(path).write_bytes(struct.pack("<Q", len(text)) + text + bytes(12))
    return write
