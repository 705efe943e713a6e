"""Turning a fitted model into section payloads that land on a byte target.

The architecture was sized for the target before training (`sizing`); what the entropy coder really
produces depends on the content, so the last step trims the quantizer: if the file at the requested
bit depth misses the target by more than `tolerance`, the number of quantization levels of weights
and embeddings is moved together (a fractional bit depth) until the file fits. With quantization-aware
fine-tuning that choice is made before the fine-tuning (under the target), and the file keeps it
(`compress_as_trained`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import pack
from .quantize import quantize_embedding, quantize_weight


@dataclass
class Compressed:
    sections: dict[str, bytes]
    bits: float             # the bit depth used (may differ from the requested one after trimming)
    # Bits above `bits` of some tensors, by decoder state name or table section name (`compress.bitalloc`).
    offsets: dict[str, float] = field(default_factory=dict)

    @property
    def payload_bytes(self) -> int:
        return sum(len(v) for v in self.sections.values())

    def depth(self, name: str) -> float:
        """The bit depth tensor or table `name` is quantized at."""
        return depth(self.bits + self.offsets.get(name, 0.0))


def depth(bits: float) -> float:
    """A tensor's bit depth, kept within what the quantizers handle (2 bits: symbols -1, 0, 1)."""
    return min(16.0, max(2.0, bits))


def compress(state: dict[str, torch.Tensor], tables: dict[str, torch.Tensor], bits: float,
             offsets: dict[str, float] | None = None) -> Compressed:
    """DECODER from the decoder's state, then one section per input table (CONTENT, DIFF / STATIC, DYNAMIC).

    Every tensor at `bits`, plus its `offsets` entry where it has one."""
    out = Compressed({}, bits, dict(offsets or {}))
    out.sections["DECODER"] = pack.pack_weights({n: quantize_weight(t, out.depth(n)) for n, t in state.items()})
    for name, table in tables.items():
        out.sections[name] = pack.pack_embedding(quantize_embedding(table, out.depth(name)))
    return out


# The bit depths the search below may use: down to MIN_BITS, and up to MAX_RAISE_BITS above the requested depth
# (never above MAX_BITS).
MIN_BITS = 3.0
MAX_BITS = 10.0
MAX_RAISE_BITS = 2.0


def highest_bits(bits: float) -> float:
    """The largest bit depth that `compress_to_target` may raise a requested depth of `bits` to."""
    return max(bits, min(MAX_BITS, bits + MAX_RAISE_BITS))


TOLERANCE = 0.04        # how far a file may miss its target, either way, before rate control moves the depth


def compress_to_target(state, tables, bits: float, target_payload: int | None,
                       tolerance: float = TOLERANCE, min_bits: float = MIN_BITS, offsets=None,
                       under: bool = False) -> Compressed:
    """Compress at `bits`; if a target is given and missed by more than `tolerance`, search the bit depth.

    Never goes above `highest_bits(bits)` nor below `min_bits`; the closest result under the target (or
    the smallest, if none fits) is returned. `offsets` (see `compress`) move with the common depth. `under`:
    a result over the target is searched down even within `tolerance` (the depths quantization-aware
    fine-tuning runs at: the file keeps them, so they need room for the few per cent fine-tuning adds).
    """
    def at(b: float) -> Compressed:
        return compress(state, tables, b, offsets)

    nominal = at(bits)
    if target_payload is None:
        return nominal
    miss = nominal.payload_bytes / target_payload - 1
    if abs(miss) <= tolerance and not (under and miss > 0):
        return nominal
    upward = nominal.payload_bytes < target_payload
    lo, hi = (bits, highest_bits(bits)) if upward else (min_bits, bits)
    # The far end of the range first: if even it stays on the same side of the target, it is the closest result.
    edge = at(hi if upward else lo)
    if (edge.payload_bytes <= target_payload) == upward:
        return edge
    best = nominal if nominal.payload_bytes <= target_payload else None
    for _ in range(10):
        mid = (lo + hi) / 2
        trial = at(mid)
        if trial.payload_bytes <= target_payload:
            if best is None or trial.payload_bytes > best.payload_bytes:
                best = trial
            lo = mid
        else:
            hi = mid
        if best is not None and abs(best.payload_bytes / target_payload - 1) <= tolerance / 2:
            break
    return best if best is not None else edge      # (going down, the fewest bits fit)


def compress_as_trained(state, tables, bits: float, target_payload: int | None,
                        offsets=None) -> tuple[Compressed, int]:
    """The file of a network fine-tuned with the file's quantizers in the loop, and its payload at the depths it
    was tuned for. It keeps those depths: at any other grid the tuned network decodes worse (Bunny 720p at 0.025
    bpp, H200: 0.28 bits lower lost 1.9 dB against the tuned grid's evaluation). Only a file over its target by
    more than `TOLERANCE` moves them, down together, to the closest result under the target."""
    kept = compress(state, tables, bits, offsets)
    if target_payload is None or kept.payload_bytes <= target_payload * (1 + TOLERANCE):
        return kept, kept.payload_bytes
    return compress_to_target(state, tables, bits, target_payload, offsets=offsets), kept.payload_bytes
