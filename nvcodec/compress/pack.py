"""Section payloads: quantized decoder weights and embeddings, entropy-coded.

DECODER payload, for the decoder's tensors in `state_dict` order (shapes come from the header's
architecture, so none are stored):
    per tensor: mode u8 (0: one scale, 1: a scale per output channel, 2: a learned step and per-row
    Laplace or Gaussian models, `compress.rowcoder`; 3: scales on the log grid of `quantize.scale_of_index`,
    one per output channel from 2 dimensions on where there are several, else one), then the float16 scales
    (mode 2: the one float16 step; mode 3: nothing here)
    if any tensor is in mode 3: `u32 length + entropy.encode_symbols(...)` of their scale indices, tensor by
    tensor, each within [SCALE_INDEX_MIN, SCALE_INDEX_MAX]
    then the symbol blobs of the tensors in modes 0, 1 and 3, each `u32 length + entropy.encode_symbols(...)`:
    one blob per tensor of at least BLOB_MIN symbols, in order, then one blob with all smaller tensors
    concatenated; then, if any tensor is in mode 2, their `rowcoder.pack` payload (rows: output channels).

CONTENT / DIFF payload (embedding of shape T x C x h x w), and every other table section:
    transform u8 (0: symbols as they are, 1: temporal delta q[t] - q[t-1], whichever codes smaller;
                  2: a learned step and per-channel Laplace models; 3: the same on the temporal delta)
    transforms 0 and 1: C float16 offsets, C float16 scales, u32 length + entropy blob of the T*C*h*w symbols
    transforms 2 and 3: float16 step, then the `rowcoder.pack` payload of the table (rows: channels)
"""
from __future__ import annotations

import math
import struct

import numpy as np
import torch

from ..bitstream import BitstreamError
from . import entropy, rowcoder
from .rowcoder import LearnedTensor
from .quantize import (SCALE_INDEX_MAX, SCALE_INDEX_MIN, QuantizedTensor, per_channel, quantize_weight,
                       scale_of_index)

BLOB_MIN = 4096


class _Reader:
    def __init__(self, data: bytes, what: str):
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(f"{self.what} section is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def f16(self, n: int) -> np.ndarray:
        values = np.frombuffer(self.take(2 * n), dtype="<f2").astype(np.float16)
        if not np.isfinite(values).all():
            raise BitstreamError(f"{self.what} section has a non-finite quantization parameter")
        return values

    def blob(self, count: int) -> np.ndarray:
        data = self.take(self.u32())
        try:
            return entropy.decode_symbols(data, count)
        except entropy.EntropyError as e:
            raise BitstreamError(f"{self.what} section: {e}") from None

    def learned(self, shapes: list[tuple[int, ...]], axis: int) -> list[np.ndarray]:
        """The symbols of tensors of `shapes` from a `rowcoder.pack` payload."""
        try:
            rows = rowcoder.unpack(self.take, [rowcoder.rows_of(s, axis) for s in shapes])
        except entropy.EntropyError as e:
            raise BitstreamError(f"{self.what} section: {e}") from None
        return [rowcoder.from_rows(r, s, axis) for r, s in zip(rows, shapes)]

    def done(self):
        if self.pos != len(self.data):
            raise BitstreamError(f"{self.what} section has trailing bytes")


def _blob(symbols: np.ndarray) -> bytes:
    coded = entropy.encode_symbols(symbols)
    return struct.pack("<I", len(coded)) + coded


def _groups(shapes: list[tuple[int, ...]]) -> list[list[int]]:
    """Which tensors share a blob: large ones alone, small ones together at the end."""
    big = [[i] for i, s in enumerate(shapes) if math.prod(s) >= BLOB_MIN]
    small = [i for i, s in enumerate(shapes) if math.prod(s) < BLOB_MIN]
    return big + ([small] if small else [])


# --- decoder weights ----------------------------------------------------------------------------

def quantize_state(state: dict[str, torch.Tensor], bits: float) -> dict[str, QuantizedTensor]:
    return {name: quantize_weight(t, bits) for name, t in state.items()}


def _plain_groups(shapes: list[tuple[int, ...]], learned: list[bool]) -> list[list[int]]:
    """`_groups` of the tensors coded with `entropy` (not in mode 2), as indices among all tensors."""
    plain = [i for i, is_learned in enumerate(learned) if not is_learned]
    return [[plain[j] for j in group] for group in _groups([shapes[i] for i in plain])]


def pack_weights(quantized: dict[str, QuantizedTensor | LearnedTensor]) -> bytes:
    params = bytearray()
    tensors = list(quantized.values())
    learned = [isinstance(q, LearnedTensor) for q in tensors]
    for q, is_learned in zip(tensors, learned):
        if is_learned:
            params += struct.pack("<B", 2) + q.step.astype("<f2").tobytes()
        elif q.index is not None:
            params += struct.pack("<B", 3)
        else:
            params += struct.pack("<B", 0 if q.axis is None else 1) + q.scale.astype("<f2").tobytes()
    indices = [q.index.ravel() for q, is_learned in zip(tensors, learned) if not is_learned and q.index is not None]
    if indices:
        params += _blob(np.concatenate(indices))
    blobs = b"".join(_blob(np.concatenate([tensors[i].symbols.ravel() for i in group]))
                     for group in _plain_groups([q.symbols.shape for q in tensors], learned))
    if any(learned):
        blobs += rowcoder.pack([q.coding() for q in tensors if isinstance(q, LearnedTensor)])
    return bytes(params) + blobs


def learned_count(sections: dict[str, bytes], shapes: dict[str, tuple[int, ...]]) -> int:
    """Tensors a file codes with learned entropy models: DECODER tensors in mode 2, tables in transforms 2 and 3."""
    if "DECODER" not in sections:
        raise BitstreamError("file has no DECODER section")
    r, count = _Reader(sections["DECODER"], "DECODER"), 0
    for shape in shapes.values():
        mode = r.u8()
        count += mode == 2
        r.take(0 if mode == 3 else 2 * (shape[0] if mode == 1 and shape else 1))
    return count + sum(1 for name, data in sections.items() if name != "DECODER" and data[:1] in (b"\x02", b"\x03"))


def unpack_weights(data: bytes, shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    symbols, scales, axes, _ = read_weights(data, shapes)
    return {n: QuantizedTensor(s, sc, None, ax).dequantize()
            for n, s, sc, ax in zip(shapes, symbols, scales, axes)}


def read_weights(data: bytes, shapes: dict[str, tuple[int, ...]]):
    """A DECODER payload's (symbols, scales, scale axes, learned flags), each a list in `shapes`' order: the integer
    symbols as coded, before dequantizing."""
    r = _Reader(data, "DECODER")
    names = list(shapes)
    scales, axes, learned, on_log_grid = [], [], [], []
    for name in names:
        mode = r.u8()
        if mode not in (0, 1, 2, 3):
            raise BitstreamError("DECODER section: bad quantization mode")
        shape = shapes[name]
        channels = (mode == 1 and len(shape) >= 1) or (mode == 3 and per_channel(shape))
        scales.append(None if mode == 3 else r.f16(shape[0] if channels else 1))
        axes.append(0 if channels else None)
        learned.append(mode == 2)
        on_log_grid.append(mode == 3)
    if any(on_log_grid):
        counts = [shapes[n][0] if ax == 0 else 1 for n, ax, log in zip(names, axes, on_log_grid) if log]
        index = r.blob(sum(counts))
        if index.size and (index.min() < SCALE_INDEX_MIN or index.max() > SCALE_INDEX_MAX):
            raise BitstreamError("DECODER section has a scale index out of range")
        parts = iter(np.split(scale_of_index(torch.from_numpy(index.astype(np.int64))).numpy(), np.cumsum(counts)[:-1]))
        scales = [next(parts) if log else sc for sc, log in zip(scales, on_log_grid)]
    symbols: list[np.ndarray | None] = [None] * len(names)
    for group in _plain_groups([shapes[n] for n in names], learned):
        sizes = [math.prod(shapes[names[i]]) for i in group]
        flat = r.blob(sum(sizes))
        for i, part in zip(group, np.split(flat, np.cumsum(sizes)[:-1])):
            symbols[i] = part.reshape(shapes[names[i]])
    if any(learned):
        chosen = [i for i, is_learned in enumerate(learned) if is_learned]
        for i, s in zip(chosen, r.learned([shapes[names[i]] for i in chosen], axis=0)):
            symbols[i] = s
    r.done()
    return symbols, scales, axes, learned


# --- embeddings ---------------------------------------------------------------------------------

def _temporal_delta(q: np.ndarray) -> np.ndarray:
    d = q.astype(np.int32).copy()
    d[1:] -= q[:-1]
    return d


def pack_embedding(q: QuantizedTensor | LearnedTensor) -> bytes:
    if isinstance(q, LearnedTensor):
        return struct.pack("<B", 3 if q.delta else 2) + q.step.astype("<f2").tobytes() + rowcoder.pack([q.coding()])
    raw = q.symbols
    delta = _temporal_delta(raw) if raw.shape[0] > 1 else raw
    use_delta = raw.shape[0] > 1 and entropy.estimate_bits(delta) < entropy.estimate_bits(raw)
    head = struct.pack("<B", int(use_delta)) + q.offset.astype("<f2").tobytes() + q.scale.astype("<f2").tobytes()
    return head + _blob(delta if use_delta else raw)


def unpack_embedding(data: bytes, shape: tuple[int, ...], what: str) -> torch.Tensor:
    r = _Reader(data, what)
    transform = r.u8()
    if transform not in (0, 1, 2, 3):
        raise BitstreamError(f"{what} section: bad transform")
    if transform >= 2:
        step = r.f16(1)
        symbols = r.learned([shape], axis=1)[0]
        r.done()
        if transform == 3:
            symbols = np.cumsum(symbols, axis=0)
        return QuantizedTensor(symbols, step, None, None).dequantize()
    offset, scale = r.f16(shape[1]), r.f16(shape[1])
    symbols = r.blob(math.prod(shape)).reshape(shape).astype(np.int64)
    r.done()
    if transform == 1:
        symbols = np.cumsum(symbols, axis=0)
    return QuantizedTensor(symbols, scale, offset, 1).dequantize()
