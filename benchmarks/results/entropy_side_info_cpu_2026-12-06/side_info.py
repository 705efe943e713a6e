"""Where a .dnv file's decoder bits go (2026-12-06, kept with its results): the symbols' entropy per tensor and with
today's blob layout, other groupings of the tensors into blobs, and other codings of the per-channel scale indices.

    PYTHONPATH=$MAIN python3 side_info.py FILE.dnv ...
"""
import math
import sys

import numpy as np
import torch

from nvcodec import bitstream
from nvcodec.compress import entropy, pack
from nvcodec.models import Decoder


def coded(x) -> int:
    return len(entropy.encode_symbols(np.asarray(x, dtype=np.int64)))


def entropy_bits(x) -> float:
    _, counts = np.unique(x, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum() * counts.sum())


for path in sys.argv[1:]:
    header, sections = bitstream.unpack(open(path, "rb").read())
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Decoder(header.arch).state_dict().items()}
    symbols, scales, _, _ = pack.read_weights(sections["DECODER"], shapes)
    flat = [q.reshape(-1).astype(np.int64) for q in symbols]
    n = sum(x.size for x in flat)
    print(f"== {path}: {n} weights, DECODER {len(sections['DECODER'])} bytes = "
          f"{8 * len(sections['DECODER']) / n:.2f} bits a weight")
    print(f"per-tensor entropy {sum(entropy_bits(x) for x in flat) / n:.2f} bits a weight; all in one blob "
          f"{entropy_bits(np.concatenate(flat)) / n:.2f}")
    for name, q in zip(shapes, symbols):
        if q.size > 500:
            print(f"  {name:36s} {str(q.shape):18s} max {np.abs(q).max():3d} zeros {np.mean(q == 0):.3f} std {q.std():5.2f}")
    # Blobs: today's layout (large tensors alone, small ones together), each tensor alone, the best contiguous grouping.
    groups = pack._groups(list(shapes.values()))
    today = sum(coded(np.concatenate([flat[i] for i in g])) + 4 for g in groups)
    alone = sum(coded(x) + 2 for x in flat)
    best = [0] + [math.inf] * len(flat)
    for j in range(1, len(flat) + 1):
        for i in range(max(0, j - 40), j):
            best[j] = min(best[j], best[i] + coded(np.concatenate(flat[i:j])) + 2)
    print(f"symbol blobs: today {today} bytes, each tensor alone {alone}, best contiguous grouping {best[-1]}")
    # Scale indices (the log grid of 16 steps an octave): today's one blob, or differences from each tensor's median.
    index = [np.round(np.log2(np.asarray(s, dtype=np.float64)) * 16).astype(np.int64) for s in scales]
    medians = [int(np.round(np.median(i))) for i in index]
    print(f"scale indices: {sum(i.size for i in index)}, today {coded(np.concatenate(index))} bytes, from medians "
          f"{coded(np.concatenate([i - m for i, m in zip(index, medians)]))} + {coded(medians)}")
