"""Coding quantized tensors row by row, each row with its own zero-mean Laplace or Gaussian model: the coder of
the entropy models that rate-aware training learns (`compress.learned`).

A tensor is seen as rows (a weight's output channels, a table's channels: `rows_of`); row r of a tensor
whose symbols lie in [-M, M] is coded with the integer weights of `entropy` (the same deterministic integer
arithmetic, so decoding is exact on any platform) of the tensor's kind for the row's scale index q[r]:
    Laplace (kind 0):  weight(j) ~ 2**32 * 2**(-|j| * 2**(q/8 - 16))
    Gaussian (kind 1): weight(j) ~ 2**32 * 2**(-j*j * 2**(q/8 - 32))
    kinds 2 and 3: the same plus the tensor's spike at zero, weight(0) += floor(2**(28 + z/16)) (pruned zeros)
j in [-M, M], handed to Categorical(perfect=False).

Payload of a group of tensors (`pack`), the decoder knowing each tensor's shape:
    u32 length + entropy blob (`entropy.encode_symbols`) of the side information: the kind of every
        tensor, then M of every tensor, then z of every tensor (0 for kinds 0 and 1), then the q of every
        row of every tensor (present, and ignored, where M = 0)
    u32 length + one ANS stream (32-bit words, little endian, zero high bytes of the last word dropped,
        as in `entropy`) of the symbols: tensor by tensor; within a tensor, the rows of each distinct q
        in increasing q, rows in order, each row's symbols in C order. A tensor with M = 0 codes nothing.
"""
from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass

import numpy as np
import torch

from . import entropy
from .quantize import QuantizedTensor
from .entropy import EntropyError

MAX_M = 4095          # largest symbol magnitude this coder takes (the encoder falls back to `entropy` beyond)
Q_MAX = 255
LAPLACE, GAUSSIAN, LAPLACE_SPIKE, GAUSSIAN_SPIKE = KINDS = (0, 1, 2, 3)
_BASE = (entropy._LAPLACE, entropy._GAUSSIAN)


@dataclass
class LearnedTensor:
    """A tensor quantized with a learned step, its rows coded with learned Laplace or Gaussian scales."""
    symbols: np.ndarray          # int, the tensor's shape
    step: np.ndarray             # float16, (1,): value = symbol * step
    q: np.ndarray                # int, (rows,): each row's scale index
    axis: int                    # the axis the rows run along (0: a weight's output channels; 1: a table's channels)
    delta: bool = False          # a table coded as its temporal differences (entry t minus entry t - 1)
    kind: int = LAPLACE          # the rows' distribution (KINDS)
    z: int = 0                   # the spike at zero, for kinds 2 and 3

    def dequantize(self) -> torch.Tensor:
        return QuantizedTensor(self.symbols, self.step, None, None).dequantize()

    def coded(self) -> np.ndarray:
        """The symbols the stream holds: as they are, or their temporal differences."""
        if not self.delta:
            return self.symbols
        d = self.symbols.copy()
        d[1:] -= self.symbols[:-1]
        return d

    def rows(self) -> np.ndarray:
        return to_rows(self.coded(), self.axis)

    def coding(self) -> tuple:
        """What `pack` takes of it."""
        return self.rows(), self.q, self.kind, self.z


def rows_of(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """(rows, symbols per row) of a tensor of `shape` whose rows run along `axis`."""
    rows = shape[axis] if len(shape) > axis else 1
    return rows, math.prod(shape) // max(rows, 1)


def to_rows(symbols: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(symbols, axis, 0).reshape(symbols.shape[axis], -1)


def from_rows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved = (shape[axis],) + tuple(s for i, s in enumerate(shape) if i != axis)
    return np.moveaxis(rows.reshape(moved), 0, axis)


@functools.lru_cache(maxsize=1024)
def _weights(kind: int, q: int, m: int, z: int = 0) -> np.ndarray:
    w = entropy._param_weights(_BASE[kind & 1], 2 * m + 1, m, q, z if kind >= 2 else None)
    w.setflags(write=False)
    return w


@functools.lru_cache(maxsize=1024)
def code_lengths(kind: int, q: int, m: int, z: int = 0) -> np.ndarray:
    """Bits of each symbol value -M..M (index j + M) under row model q, exactly as the coder spends them."""
    bits = entropy._code_lengths(_weights(kind, q, m, z))
    bits.setflags(write=False)
    return bits


def coded_bits(rows: np.ndarray, q: np.ndarray, kind: int = LAPLACE, z: int = 0) -> float:
    """Exact information content (bits) of `rows` (R, n) under the row models `q` (R,), the stream's flush aside."""
    m = int(np.abs(rows).max()) if rows.size else 0
    if m == 0:
        return 0.0
    total = 0.0
    for qv in np.unique(q):
        sel = rows[q == qv] + m
        total += float(code_lengths(kind, int(qv), m, z)[sel].sum())
    return total


def _groups(q: np.ndarray):
    """Row indices by distinct q, increasing q (the stream's order)."""
    return [(int(qv), np.flatnonzero(q == qv)) for qv in np.unique(q)]


def side_symbols(tensors: list[tuple]) -> np.ndarray:
    """The side information of `pack`'s tensors, as the symbols its blob codes."""
    head = [k for _, _, k, _ in tensors] + [int(np.abs(r).max(initial=0)) for r, _, _, _ in tensors] \
        + [z if k >= 2 else 0 for _, _, k, z in tensors]
    return np.concatenate([np.array(head, dtype=np.int64)] + [np.asarray(q, dtype=np.int64) for _, q, _, _ in tensors])


def pack(tensors: list[tuple[np.ndarray, np.ndarray, int, int]]) -> bytes:
    """(rows (R, n) int, q (R,) int, kind, z) of each tensor -> payload. ValueError where a symbol exceeds MAX_M."""
    ms = [int(np.abs(r).max()) if r.size else 0 for r, _, _, _ in tensors]
    if max(ms, default=0) > MAX_M:
        raise ValueError(f"symbol magnitude {max(ms)} exceeds {MAX_M}")
    side = side_symbols(tensors)
    coder = entropy._AnsCoder()
    for (rows, q, kind, z), m in reversed(list(zip(tensors, ms))):     # a stack: the last decoded goes in first
        if m == 0:
            continue
        for qv, idx in reversed(_groups(np.asarray(q))):
            coder.encode_reverse((rows[idx] + m).reshape(-1).astype(np.int32),
                                 entropy._categorical(_weights(kind, qv, m, z if kind >= 2 else 0)))
    stream = entropy._words_to_bytes(coder.get_compressed())
    side_blob = entropy.encode_symbols(side)
    return struct.pack("<I", len(side_blob)) + side_blob + struct.pack("<I", len(stream)) + stream


def unpack(take, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """The rows (R, n) of each tensor of `shapes` ((R, n) each), reading the payload through `take(nbytes)`.

    EntropyError for a malformed payload (`take` raises its own error where the bytes run out)."""
    n = len(shapes)
    side = entropy.decode_symbols(take(struct.unpack("<I", take(4))[0]), 3 * n + sum(r for r, _ in shapes))
    side = side.astype(np.int64)
    kinds, ms, zs, qs = side[:n], side[n:2 * n], side[2 * n:3 * n], side[3 * n:]
    if kinds.min(initial=0) < 0 or kinds.max(initial=0) >= len(KINDS) or ms.min(initial=0) < 0 \
            or ms.max(initial=0) > MAX_M or zs.min(initial=0) < 0 or zs.max(initial=0) > 255 \
            or qs.min(initial=0) < 0 or qs.max(initial=0) > Q_MAX:
        raise EntropyError("learned entropy model out of range")
    words = entropy._read_words(take(struct.unpack("<I", take(4))[0]), 0)
    try:
        return _decode_rows(words, shapes, kinds, ms, zs, qs)
    except EntropyError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # constriction errors (ValueError, pyo3 panics, ...)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EntropyError(f"learned entropy stream is corrupt: {msg}") from None


def _decode_rows(words, shapes, kinds, ms, zs, qs) -> list[np.ndarray]:
    coder = entropy._AnsCoder(words)
    out, start = [], 0
    for (n_rows, n), kind, m, z in zip(shapes, kinds, ms, zs):
        q = qs[start:start + n_rows]
        start += n_rows
        rows = np.zeros((n_rows, n), dtype=np.int64)
        if m > 0 and n > 0:
            for qv, idx in _groups(q):
                values = coder.decode(entropy._categorical(_weights(int(kind), qv, int(m), int(z))), idx.size * n)
                rows[idx] = values.reshape(idx.size, n).astype(np.int64) - m
        out.append(rows)
    if not coder.is_empty():
        raise EntropyError("learned entropy stream has coded data left over")
    return out
