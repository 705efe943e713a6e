"""Files written by earlier versions of dnv still decode, bit for bit; a file of a newer format says which."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from nvcodec import bitstream, codec

COMPAT = Path(__file__).resolve().parent / "data" / "compat"
EXPECTED = json.loads((COMPAT / "compat.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_files_of_the_first_format_decode_to_the_same_frames(name):
    frames, _ = codec.decode_to_array(COMPAT / name, device="cpu")
    assert frames.shape[0] == EXPECTED[name]["frames"]
    assert hashlib.sha256(frames.tobytes()).hexdigest() == EXPECTED[name]["sha256"]


def test_a_newer_format_version_is_named_in_one_line(tmp_path):
    data = bytearray((COMPAT / "hnerv_64x48_4f.dnv").read_bytes())
    data[4] = bitstream.FORMAT_VERSION + 1
    path = tmp_path / "future.dnv"
    path.write_bytes(bytes(data))
    with pytest.raises(bitstream.BitstreamError, match=f"version {bitstream.FORMAT_VERSION + 1} "):
        codec.decode_to_array(path, device="cpu")
