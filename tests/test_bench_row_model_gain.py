"""benchmarks.row_model_gain: the same weight symbols as the file, and a row-model size that a real coder reaches."""
import struct
from pathlib import Path

import numpy as np
import torch

from benchmarks import row_model_gain
from nvcodec import bitstream
from nvcodec.compress import entropy, rowcoder
from nvcodec.models import Decoder

FILE = Path(__file__).parent / "data" / "compat" / "hinerv_64x48_4f.dnv"


def test_symbols_are_the_files_and_the_row_model_estimate_is_what_the_row_coder_writes():
    header, sections = bitstream.unpack(FILE.read_bytes())
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(header.arch).state_dict().items()}
    symbols, groups, blob_bytes = row_model_gain.decoder_symbols(sections["DECODER"], shapes)
    assert [s.shape for s in symbols] == list(shapes.values())
    # The blobs end the section: coding the symbols read again gives the file's bytes, so the sizes are the file's.
    coded = [entropy.encode_symbols(np.concatenate([symbols[i].ravel() for i in g])) for g in groups]
    tail = b"".join(struct.pack("<I", len(c)) + c for c in coded)
    assert sections["DECODER"].endswith(tail) and sum(blob_bytes) == len(tail)

    m = row_model_gain.measure(FILE)
    entries = [row_model_gain.best_rows(rowcoder.to_rows(s, 0), per_tensor=False)[1] for s in symbols if s.ndim >= 2]
    ones = np.concatenate([s.ravel() for s in symbols if s.ndim < 2])
    real = len(rowcoder.pack(entries)) + len(entropy.encode_symbols(ones)) + 4
    assert abs(m["row_models"]["bytes"] - real) <= 0.01 * real + 8
    assert m["blob_bytes"] == sum(blob_bytes) and m["tensor_models"]["bytes"] > 0
