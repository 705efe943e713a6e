"""Would per-row entropy models code a default file's decoder weights in fewer bytes? The same symbols, three ways.

NVRC's largest single gain in its ablation is a Gaussian model per row and column of each weight tensor instead of one
per tensor (+13 % BD-rate without it). dnv's default file codes its weight symbols (on a per-output-channel scale,
`quantize`) in one blob per large tensor and one for all small ones, each under a model the coder picks for the blob
(`entropy`). This reads the DECODER section of .dnv files and codes the very same symbols, nothing retrained:

- `file`: the blobs as the file holds them;
- `row models`: each weight tensor of 2+ dimensions with a Laplace or Gaussian model per output channel, with or
  without a spike at zero, the kind per tensor, as `rowcoder.pack` codes them (its side information included), the
  1-D tensors of each blob still in a blob;
- `tensor models`: the same with one scale per tensor (3 bytes of side information a tensor).

    python3 -m benchmarks.row_model_gain FILE.dnv... [--json OUT.json]

Files with rate-aware tensors (DECODER mode 2) are refused: they are row-coded already.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from nvcodec import bitstream
from nvcodec.compress import entropy, learned, pack, rowcoder
from nvcodec.models import Decoder

TENSOR_SIDE_BYTES = 3       # a kind, a scale index and a spike a tensor, for one model per tensor


def decoder_symbols(section: bytes, shapes: dict[str, tuple[int, ...]]):
    """(symbols per tensor, the blobs' groups of tensor indices, each blob's bytes) of a DECODER section. The entropy
    coder is deterministic: coding a group's symbols again gives the file's blob (`tests/test_bench_row_model_gain.py`)."""
    symbols, _, _, learned = pack.read_weights(section, shapes)
    if any(learned):
        raise ValueError("the file has rate-aware (row-coded) tensors")
    symbols = [s.astype(np.int64) for s in symbols]
    groups = pack._plain_groups(list(shapes.values()), learned)
    blob_bytes = [len(entropy.encode_symbols(np.concatenate([symbols[i].ravel() for i in g]))) + 4 for g in groups]
    return symbols, groups, blob_bytes


def best_rows(rows: np.ndarray, per_tensor: bool) -> tuple[float, tuple]:
    """(bits, `rowcoder.pack` entry) of the cheapest kind for a tensor's rows, their scales fitted per row (or one
    for the tensor)."""
    best = None
    t = torch.from_numpy(rows.astype(np.float64))
    for kind in rowcoder.KINDS:
        if per_tensor:
            q = learned.fit_q(t.reshape(1, -1), kind).numpy().astype(np.int64).repeat(rows.shape[0])
        else:
            q = learned.fit_q(t, kind).numpy().astype(np.int64)
        z = int(learned.fit_z(t, torch.from_numpy(q).double(), kind)) if kind >= 2 else 0
        bits = rowcoder.coded_bits(rows, q, kind, z)
        if best is None or bits < best[0]:
            best = (bits, (rows, q, kind, z))
    return best


def measure(path: Path) -> dict:
    header, sections = bitstream.unpack(path.read_bytes())
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(header.arch).state_dict().items()}
    symbols, groups, blob_bytes = decoder_symbols(sections["DECODER"], shapes)
    out = {"file": str(path), "bytes": path.stat().st_size, "decoder_bytes": len(sections["DECODER"]),
           "blob_bytes": sum(blob_bytes), "blobs": len(blob_bytes), "tensors": len(symbols)}
    for label, per_tensor in (("row_models", False), ("tensor_models", True)):
        total, coded = 0.0, []
        for group in groups:
            ones = [symbols[i].ravel() for i in group if symbols[i].ndim < 2]
            if ones:
                total += len(entropy.encode_symbols(np.concatenate(ones))) + 4
            for i in group:
                if symbols[i].ndim >= 2:
                    bits, entry = best_rows(rowcoder.to_rows(symbols[i], 0), per_tensor)
                    total += bits / 8
                    coded.append(entry)
        if per_tensor:
            side = TENSOR_SIDE_BYTES * len(coded)
        else:
            side = len(entropy.encode_symbols(rowcoder.side_symbols(coded))) + 8 if coded else 0
        out[label] = {"bytes": round(total + side), "side_bytes": side,
                      "change": (total + side) / out["blob_bytes"] - 1}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    results = []
    for path in a.files:
        m = measure(path)
        results.append(m)
        print(f"{path}: {m['bytes']:,} bytes, DECODER {m['decoder_bytes']:,}, weight symbols {m['blob_bytes']:,} in "
              f"{m['blobs']} blob(s) for {m['tensors']} tensors; row models {m['row_models']['bytes']:,} "
              f"({m['row_models']['change']:+.1%}, side {m['row_models']['side_bytes']:,}); one model a tensor "
              f"{m['tensor_models']['bytes']:,} ({m['tensor_models']['change']:+.1%})")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
