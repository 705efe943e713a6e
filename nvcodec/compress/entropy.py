"""Lossless entropy coding of integer symbol arrays (quantized weights and embeddings).

`encode_symbols` turns an integer array (any shape, flattened in C order; |value| < 2**20) into a
self-contained blob: a small header holding the probability model's parameters, followed by the
words of one ANS stream (`constriction.stream.stack.AnsCoder`: 32-bit words, probabilities in
units of 2**-24). The number of symbols is not stored: the caller knows it and passes it to
`decode_symbols`.

The encoder fits every model below to the array's histogram, computes the coded size of each
(exactly: it reproduces constriction's fixed-point quantization of the probabilities; supports of
more than 65536 values are estimated) and keeps the smallest, header included; when two are
within a few bytes it codes both and keeps the shorter blob. `estimate_bits` is that size
estimate without the coding.

Blob layout. varint: unsigned LEB128, at most 4 bytes, no overlong forms. zz: zigzag
(0, -1, 1, -2, ... stored as 0, 1, 2, 3, ...).

    count 0 (empty array):   the blob is empty (0 bytes).

    byte 0    mode
    mode 0, CONSTANT (all symbols equal; 2-4 bytes in all):
              varint zz(value)
    modes 1-6 (at least two distinct values) continue with the support [lo, lo + K - 1]:
              varint zz(lo)                 lo = smallest value
              varint K - 2                  K - 1 = largest - smallest value, so K >= 2
    mode 1, UNIFORM: constriction's Uniform(K) (probability floor(2**24 / K) * 2**-24 for each
              value, the rounding remainder to the largest). Nothing else in the header.
    modes 2, 3, 5, 6, PARAMETRIC (2 LAPLACE, 3 GAUSSIAN, 5 LAPLACE+SPIKE, 6 GAUSSIAN+SPIKE):
              varint c                      centre = lo + c, c < K
              u8     q                      shape parameter, v = floor(2**(q/8 + 16))
              u8     z                      modes 5 and 6 only: spike at the centre
          Integer weights over the support, j = distance from the centre:
              cost  = j * v                 (Laplace,  2**(q/8 - 16) bits per step)
              cost  = (j * j * v) >> 16     (Gaussian, 2**(q/8 - 32) bits per step**2)
                      (cost in units of 2**-32 bits; j is capped where the weight reaches 0)
              weight = E[(cost >> 24) & 255] >> min(cost >> 32, 40),
                      E[f] = floor(2**(32 - f/256))   (so weight ~ 2**32 * 2**-cost)
              spike:  weight[centre] += floor(2**(28 + z/16))   (pruned zeros: excess at 0)
          coded with Categorical(weights, perfect=False) over the K values.
    mode 4, HISTOGRAM: the empirical distribution, from a table a[0..K-1] of small integers:
              a[k] = 0 if lo + k does not occur, else max(1, round(sqrt(count_k) * s)) for a
              scale s <= 16 picked by the encoder (s is not stored). P(lo + k) ~ a[k]**2; values
              with a[k] = 0 are left out of the alphabet.
              varint A - 1                  A = max a[k]; 1 <= A <= 16 * (isqrt(count) + 1)
              u8     q                      Laplace shape (as above) of the table differences
          The table travels in the ANS stream, before the symbols: its differences
          a[k] - a[k-1] (a[-1] = 0) coded with the Laplace weights for q, centre 0, support
          [-A, A]. The symbols are then coded with Categorical(a[k]**2 for the a[k] > 0).
          Only used when K <= 16 * count + 1024 (the decoder checks it).
    then, modes 1-6: the ANS stream's 32-bit words, little endian, with the zero high bytes of
              the last word dropped (at most 3; an ANS stream never ends in a zero word, so a
              valid blob never ends in a 0x00 byte here); the decoder pads to a multiple of 4,
              decodes (mode 4: the K table differences, then) the `count` symbols and requires
              the stream to be exactly used up.

Determinism: the weights are integers computed with integer arithmetic only (the tables with
`math.isqrt`), so encoder and decoder hand constriction identical float64 inputs on any platform;
constriction's `Categorical(perfect=False)` turns them into fixed-point probabilities with IEEE
basic operations only (cdf[i] = floor(sum(w[:i]) * (2**24 - K) / sum(w)) + i), the same everywhere.
tests/test_entropy.py pins golden blobs so that a constriction upgrade that changes this shows up.

Counts: a `count` smaller than the encoded one leaves words unread and raises EntropyError. A
larger one may go unnoticed: a used-up ANS stream keeps decoding the alphabet's first symbol
(the smallest value), which is also why a trailing run of the smallest value costs no bits.
"""
from __future__ import annotations

import math
import operator

import numpy as np
import constriction

__all__ = ["EntropyError", "encode_symbols", "decode_symbols", "estimate_bits",
           "MAX_ABS", "MAX_COUNT"]

MAX_ABS = 1 << 20          # symbols must satisfy |value| < MAX_ABS
MAX_COUNT = 1 << 28        # most symbols per blob (decode allocates 4 bytes each)

_M = constriction.stream.model
_AnsCoder = constriction.stream.stack.AnsCoder

_CONSTANT, _UNIFORM, _LAPLACE, _GAUSSIAN, _HISTOGRAM, _LAPLACE_SPIKE, _GAUSSIAN_SPIKE = range(7)
_MODE_NAMES = ("constant", "uniform", "laplace", "gaussian", "histogram", "laplace+spike",
               "gaussian+spike")
_BASE_KIND = {_LAPLACE: _LAPLACE, _GAUSSIAN: _GAUSSIAN,
              _LAPLACE_SPIKE: _LAPLACE, _GAUSSIAN_SPIKE: _GAUSSIAN}

_PREC = 24                 # constriction's default: probabilities are multiples of 2**-24
_HIST_S_MAX_LOG2 = 4       # table scale s <= 2**4 (the decoder's bound on A relies on it)
_ANS_OVERHEAD_BITS = 20.0  # average flush cost of an ANS stream beyond the information content
_EXACT_K = 1 << 16         # larger supports: model costs are estimated, not reproduced exactly


class EntropyError(ValueError):
    """Raised for malformed coded data; one-line message."""


# --- deterministic integer model weights ------------------------------------------------------

def _root_pow2(exponent: int, halvings: int) -> int:
    """floor(2**(exponent / 2**halvings)) exactly (nested isqrt keeps the floor exact)."""
    n = 1 << exponent
    for _ in range(halvings):
        n = math.isqrt(n)
    return n


# _EXP2[f] = floor(2**(32 - f/256)), f = 0..255
_EXP2 = np.array([_root_pow2(256 * 32 - f, 8) for f in range(256)], dtype=np.int64)
# _PARAM[q] = floor(2**(q/8 + 16)), q = 0..255
_PARAM = [_root_pow2(q + 128, 3) for q in range(256)]
# _SPIKE[z] = floor(2**(28 + z/16)), z = 0..255: extra weight at the centre (peak weight 2**32)
_SPIKE = [_root_pow2(z + 448, 4) for z in range(256)]


def _weights_from_cost(cost32: np.ndarray) -> np.ndarray:
    """Integer weights ~ 2**32 * 2**(-cost) for costs in units of 2**-32 bits (int64, >= 0)."""
    frac = (cost32 >> 24) & 255
    whole = np.minimum(cost32 >> 32, 40)
    return _EXP2[frac] >> whole


def _param_weights(kind: int, size: int, center: int, q: int, z: int | None = None) -> np.ndarray:
    """Parametric weights over indices 0..size-1 as float64 integers (exact, < 2**53).

    kind: _LAPLACE or _GAUSSIAN; z: the spike parameter, if any.
    """
    v = _PARAM[q]
    j = np.abs(np.arange(size, dtype=np.int64) - center)
    if kind == _LAPLACE:
        cap = (41 << 32) // v + 1                      # beyond: 2**-41 or less, weight 0
        cost = np.minimum(j, cap) * v
    else:
        cap = math.isqrt((41 << 48) // v) + 1
        jj = np.minimum(j, cap)
        cost = (jj * jj * v) >> 16
    w = _weights_from_cost(cost)
    if z is not None:
        w[center] += _SPIKE[z]
    return w.astype(np.float64)


def _code_lengths(weights: np.ndarray) -> np.ndarray:
    """Bits per symbol under constriction's Categorical(weights, perfect=False) (exact)."""
    k = weights.shape[0]
    scale = float((1 << _PREC) - k) / float(weights.sum())
    left = np.empty(k, dtype=np.float64)
    left[0] = 0.0
    np.cumsum(weights[:-1], out=left[1:])
    cdf = np.floor(left * scale).astype(np.int64) + np.arange(k, dtype=np.int64)
    prob = np.diff(cdf, append=np.int64(1 << _PREC))
    return _PREC - np.log2(prob.astype(np.float64))


def _categorical(weights: np.ndarray):
    return _M.Categorical(weights, perfect=False)


# --- varints ------------------------------------------------------------------------------------

def _zz(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzz(u: int) -> int:
    return u >> 1 if not u & 1 else -((u + 1) >> 1)


def _varint(u: int) -> bytes:
    out = bytearray()
    while True:
        b = u & 0x7F
        u >>= 7
        if u:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _varint_len(u: int) -> int:
    return max(1, (u.bit_length() + 6) // 7)


class _Reader:
    def __init__(self, blob: bytes):
        self.blob, self.pos = blob, 0

    def u8(self, what: str) -> int:
        if self.pos >= len(self.blob):
            raise EntropyError(f"entropy blob truncated in {what}")
        self.pos += 1
        return self.blob[self.pos - 1]

    def varint(self, what: str, limit: int) -> int:
        value = 0
        for i in range(4):
            b = self.u8(what)
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if b == 0 and i > 0:
                    raise EntropyError(f"entropy blob has an overlong varint in {what}")
                if value > limit:
                    raise EntropyError(f"entropy blob: {what} {value} out of range")
                return value
        raise EntropyError(f"entropy blob has a varint longer than 4 bytes in {what}")


# --- input handling -----------------------------------------------------------------------------

def _flatten(symbols) -> np.ndarray:
    arr = np.asarray(symbols)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"entropy coding needs an integer array, got dtype {arr.dtype}")
    flat = arr.reshape(-1)
    if flat.size > MAX_COUNT:
        raise ValueError(f"too many symbols for one blob: {flat.size} > {MAX_COUNT}")
    if flat.size:
        lo, hi = flat.min(), flat.max()
        if int(lo) <= -MAX_ABS or int(hi) >= MAX_ABS:
            raise ValueError(f"symbol out of range: values must satisfy |v| < 2**20, "
                             f"got [{int(lo)}, {int(hi)}]")
    return flat.astype(np.int64, copy=False)


# --- model selection ----------------------------------------------------------------------------

class _Stats:
    """Histogram of an array with at least two distinct values."""

    def __init__(self, x: np.ndarray):
        self.x = x
        self.n = int(x.size)
        self.lo = int(x.min())
        self.K = int(x.max()) - self.lo + 1
        self.counts = np.bincount(x - self.lo, minlength=self.K)
        self.pos = np.flatnonzero(self.counts)           # indices of values that occur
        self.cnt = self.counts[self.pos].astype(np.float64)
        self.support_header = _varint_len(_zz(self.lo)) + _varint_len(self.K - 2)


def _laplace_q(mean_abs: float) -> int:
    """q whose slope is the maximum-likelihood two-sided geometric fit to E|j| = mean_abs."""
    if mean_abs <= 0:
        return 255
    r = (math.sqrt(1.0 + mean_abs * mean_abs) - 1.0) / mean_abs  # P(j) ~ r**|j|
    slope = -math.log2(r) if 0 < r < 1 else 2.0 ** -16
    return int(min(255, max(0, round(8 * (math.log2(slope) + 16)))))


def _gauss_q(mean_sq: float) -> int:
    if mean_sq <= 0:
        return 255
    coef = math.log2(math.e) / (2 * mean_sq)
    return int(min(255, max(0, round(8 * (math.log2(coef) + 32)))))


def _neighbours(q: int, radius: int) -> range:
    return range(max(0, q - radius), min(255, q + radius) + 1)


def _param_cost(st: _Stats, kind: int, center: int, q: int, z: int | None = None) -> float:
    if st.K <= _EXACT_K:
        bits = _code_lengths(_param_weights(kind, st.K, center, q, z))
        return float(st.cnt @ bits[st.pos])
    # large supports (no spike): weights by distance up to where they vanish, P ~ w * scale + 1
    v = _PARAM[q]
    far = max(center, st.K - 1 - center)
    reach = (41 << 32) // v + 1 if kind == _LAPLACE else math.isqrt((41 << 48) // v) + 1
    w = _param_weights(kind, min(far, reach) + 1, 0, q)
    cum = np.cumsum(w)
    total = cum[min(center, w.size - 1)] + cum[min(st.K - 1 - center, w.size - 1)] - w[0]
    scale = float((1 << _PREC) - st.K) / float(total)
    dist = np.abs(st.pos - center)
    wi = np.where(dist < w.size, w[np.minimum(dist, w.size - 1)], 0.0)
    return float(st.cnt @ (_PREC - np.log2(wi * scale + 1.0)))


def _fit_param(st: _Stats, kind: int, spike: bool):
    """Best (bits, header_bytes, (center, q, z)) of a parametric model, z None without spike.

    Centre: the median (Laplace) or rounded mean (Gaussian); scale: the maximum-likelihood fit,
    refined by trying neighbouring q. With a spike, the shape is fitted to the other values and
    the spike to the centre's excess count.
    """
    values = st.pos.astype(np.float64)
    small = st.K <= _EXACT_K
    radius = 2 if small else 1
    if kind == _LAPLACE:
        med = int(np.searchsorted(np.cumsum(st.counts), (st.n + 1) // 2))
        centers = sorted({max(0, med - 1), med, min(st.K - 1, med + 1)}) if small else [med]
    else:
        centers = [int(min(st.K - 1, max(0, round(float(st.cnt @ values) / st.n))))]
    best = None
    for c in centers:
        d = values - c
        n_c = int(st.counts[c])
        if not spike:
            q0 = (_laplace_q(float(st.cnt @ np.abs(d)) / st.n) if kind == _LAPLACE
                  else _gauss_q(float(st.cnt @ (d * d)) / st.n))
        elif n_c == 0 or n_c == st.n:
            continue
        elif kind == _LAPLACE:     # |j| given j != 0 is geometric on 1, 2, ...: mean 1 / (1 - r)
            m = float(st.cnt @ np.abs(d)) / (st.n - n_c)
            slope = -math.log2(1.0 - 1.0 / m) if m > 1.0 else 64.0
            q0 = int(min(255, max(0, round(8 * (math.log2(slope) + 16)))))
        else:
            q0 = _gauss_q(float(st.cnt @ (d * d)) / (st.n - n_c))
        for q in _neighbours(q0, radius):
            zs = [None]
            if spike:
                w = _param_weights(kind, st.K, c, q)
                # best extra weight S at the centre: (w_c + S) / (W + S) = n_c / n
                extra = (n_c * float(w.sum()) - st.n * float(w[c])) / (st.n - n_c)
                if extra <= 0:
                    continue
                z0 = int(min(255, max(0, round(16 * (math.log2(extra) - 28)))))
                zs = list(_neighbours(z0, 1))
            for z in zs:
                bits = _param_cost(st, kind, c, q, z)
                if best is None or bits < best[0]:
                    best = (bits, (c, q, z))
    if best is None:
        return None
    header = 1 + st.support_header + _varint_len(best[1][0]) + 1 + spike
    return best[0], header, best[1]


def _table(counts: np.ndarray, s: float) -> np.ndarray:
    """Table entries for (nonzero) counts at scale s: round(sqrt(count) * s), at least 1."""
    return np.maximum(1, np.floor(np.sqrt(counts) * s + 0.5)).astype(np.int64)


class _TableShape:
    """What the histogram table's cost depends on, grouped by distinct counts.

    The table's differences a[k] - a[k-1] are: at an occurring value, its entry minus its left
    neighbour's (0 if that one does not occur); right after an occurring value that is followed
    by a gap, minus that value's entry; zero everywhere else. Each depends only on one or two
    counts, so they are tallied as (count, count) pairs once and re-costed per table scale.
    """

    def __init__(self, st: _Stats):
        self.ucount, inv = np.unique(st.cnt, return_inverse=True)
        inv = inv.reshape(-1)
        self.inv = inv
        self.mult = np.bincount(inv).astype(np.float64)           # entries per distinct count
        adjacent = np.zeros(inv.size, dtype=bool)
        adjacent[1:] = st.pos[1:] == st.pos[:-1] + 1
        prev = np.full(inv.size, -1, dtype=np.int64)
        prev[1:] = np.where(adjacent[1:], inv[:-1], -1)
        u = self.ucount.size
        pairs, self.rise_mult = np.unique((prev + 1) * u + inv, return_counts=True)
        self.rise_prev, self.rise_cur = pairs // u - 1, pairs % u
        gap_after = np.ones(inv.size, dtype=bool)
        gap_after[:-1] = ~adjacent[1:]
        gap_after[-1] = False                                     # the last entry ends the table
        self.drop_idx, self.drop_mult = np.unique(inv[gap_after], return_counts=True)
        self.zeros = st.K - inv.size - int(gap_after.sum())


def _hist_cost(st: _Stats, shape: _TableShape, s: float):
    """(bits, A, q) of the histogram model with table scale s (table + symbols)."""
    au = _table(shape.ucount, s)
    A = int(au[-1])
    if st.pos.size <= _EXACT_K:
        a = au[shape.inv]
        data_bits = float(st.cnt @ _code_lengths((a * a).astype(np.float64)))
    else:   # probability ~ a**2 * scale + 1, summed per distinct count
        w = (au * au).astype(np.float64)
        scale = float((1 << _PREC) - st.pos.size) / float(shape.mult @ w)
        data_bits = float((shape.mult * shape.ucount) @ (_PREC - np.log2(w * scale + 1.0)))
    prev = np.where(shape.rise_prev >= 0, au[np.maximum(shape.rise_prev, 0)], 0)
    diffs = np.concatenate([au[shape.rise_cur] - prev, -au[shape.drop_idx]]) + A
    mult = np.concatenate([shape.rise_mult, shape.drop_mult]).astype(np.float64)
    diff_hist = np.bincount(diffs, weights=mult, minlength=2 * A + 1)
    diff_hist[A] += shape.zeros
    nz = np.flatnonzero(diff_hist)
    dh = diff_hist[nz]
    mean_abs = float(dh @ np.abs(nz - A)) / st.K
    best = None
    for q in _neighbours(_laplace_q(mean_abs), 2):
        bits = float(dh @ _code_lengths(_param_weights(_LAPLACE, 2 * A + 1, A, q))[nz])
        if best is None or bits < best[0]:
            best = (bits, q)
    return data_bits + best[0], A, best[1]


def _hist_allowed(n: int, K: int) -> bool:
    return K <= 16 * n + 1024


def _fit_hist(st: _Stats):
    """Best (bits, header_bytes, (s, A, q)) of the histogram model, searching the table scale."""
    cache = {}
    shape = _TableShape(st)

    def cost(t):
        if t not in cache:
            s = 2.0 ** (t / 8 - _HIST_S_MAX_LOG2)
            cache[t] = _hist_cost(st, shape, s) + (s,)
        return cache[t]

    # hill climb over t (the cost is close to unimodal in t; optimum usually near s ~ 0.6)
    t_max = 16 * _HIST_S_MAX_LOG2
    best_t = 28
    for step in (8, 4, 2, 1):
        moved = True
        while moved:
            moved = False
            for t in (best_t - step, best_t + step):
                if 0 <= t <= t_max and cost(t)[0] < cost(best_t)[0]:
                    best_t, moved = t, True
    bits, A, q, s = cost(best_t)
    header = 1 + st.support_header + _varint_len(A - 1) + 1
    return bits, header, (s, A, q)


def _candidates(st: _Stats):
    """[(estimated total bits, mode, params)] for every applicable model."""
    out = []
    # constriction's Uniform(K): probability floor(2**24 / K) each, the remainder to the last value
    p = (1 << _PREC) // st.K
    p_last = (1 << _PREC) - (st.K - 1) * p
    n_last = int(st.counts[-1])
    uni_bits = (st.n - n_last) * (_PREC - math.log2(p)) + n_last * (_PREC - math.log2(p_last))
    out.append((uni_bits, 1 + st.support_header, _UNIFORM, None))
    for mode in (_LAPLACE, _GAUSSIAN, _LAPLACE_SPIKE, _GAUSSIAN_SPIKE):
        spike = mode in (_LAPLACE_SPIKE, _GAUSSIAN_SPIKE)
        if spike and st.K > _EXACT_K:
            continue
        fit = _fit_param(st, _BASE_KIND[mode], spike)
        if fit is not None:
            out.append((fit[0], fit[1], mode, fit[2]))
    if _hist_allowed(st.n, st.K):
        bits, header, params = _fit_hist(st)
        out.append((bits, header, _HISTOGRAM, params))
    return sorted((8 * header + bits + _ANS_OVERHEAD_BITS, mode, params)
                  for bits, header, mode, params in out)


# --- encoding -----------------------------------------------------------------------------------

def _words_to_bytes(words: np.ndarray) -> bytes:
    raw = words.astype("<u4").tobytes()
    strip = 0
    while strip < 3 and raw and raw[len(raw) - 1 - strip] == 0:
        strip += 1
    return raw[:len(raw) - strip]


def _encode_mode(st: _Stats, mode: int, params) -> bytes:
    head = bytearray([mode]) + _varint(_zz(st.lo)) + _varint(st.K - 2)
    idx = st.x - st.lo
    coder = _AnsCoder()
    if mode == _UNIFORM:
        coder.encode_reverse(idx.astype(np.int32), _M.Uniform(st.K))
    elif mode in _BASE_KIND:
        center, q, z = params
        head += _varint(center) + bytes([q] if z is None else [q, z])
        model = _categorical(_param_weights(_BASE_KIND[mode], st.K, center, q, z))
        coder.encode_reverse(idx.astype(np.int32), model)
    elif mode == _HISTOGRAM:
        s, A, q = params
        a = np.zeros(st.K, dtype=np.int64)
        a[st.pos] = _table(st.cnt, s)
        head += _varint(A - 1) + bytes([q])
        rank = np.cumsum(a > 0) - 1
        coder.encode_reverse(rank[idx].astype(np.int32),
                             _categorical((a[st.pos] ** 2).astype(np.float64)))
        diffs = np.diff(a, prepend=0) + A
        coder.encode_reverse(diffs.astype(np.int32),
                             _categorical(_param_weights(_LAPLACE, 2 * A + 1, A, q)))
    else:  # pragma: no cover
        raise AssertionError(mode)
    return bytes(head) + _words_to_bytes(coder.get_compressed())


def _encode_forced(symbols: np.ndarray, mode: int) -> bytes:
    """Encode with a given mode (tests and measurements); ValueError if it does not apply."""
    x = _flatten(symbols)
    if x.size == 0 or x.min() == x.max():
        raise ValueError("forced modes need at least two distinct values")
    st = _Stats(x)
    for _, m, params in _candidates(st):
        if m == mode:
            return _encode_mode(st, mode, params)
    raise ValueError(f"mode {_MODE_NAMES[mode]} does not apply to this array")


def encode_symbols(symbols: np.ndarray) -> bytes:
    """Code an integer array (|value| < 2**20, flattened in C order) into a self-contained blob."""
    x = _flatten(symbols)
    if x.size == 0:
        return b""
    lo = int(x.min())
    if lo == int(x.max()):
        return bytes([_CONSTANT]) + _varint(_zz(lo))
    st = _Stats(x)
    cands = _candidates(st)
    best = _encode_mode(st, cands[0][1], cands[0][2])
    # estimates are exact up to the ANS flush (a few bytes): settle close calls by coding both
    for est, mode, params in cands[1:]:
        if est > cands[0][0] + 48 or st.K > _EXACT_K:
            break
        blob = _encode_mode(st, mode, params)
        if len(blob) < len(best):
            best = blob
    return best


def estimate_bits(symbols: np.ndarray) -> float:
    """Approximate size of encode_symbols(symbols) in bits, without coding."""
    x = _flatten(symbols)
    if x.size == 0:
        return 0.0
    lo = int(x.min())
    if lo == int(x.max()):
        return 8.0 * (1 + _varint_len(_zz(lo)))
    return float(_candidates(_Stats(x))[0][0])


# --- decoding -----------------------------------------------------------------------------------

def _read_words(blob: bytes, pos: int) -> np.ndarray:
    rest = blob[pos:]
    if rest and rest[-1] == 0:
        raise EntropyError("entropy blob ends in a zero byte (not a canonical coded stream)")
    rest = rest + b"\0" * (-len(rest) % 4)
    return np.frombuffer(rest, dtype="<u4").astype(np.uint32)


def _decode_stream(mode: int, words: np.ndarray, count: int, K: int, extra) -> np.ndarray:
    coder = _AnsCoder(words)
    if mode == _UNIFORM:
        out = coder.decode(_M.Uniform(K), count)
    elif mode in _BASE_KIND:
        center, q, z = extra
        out = coder.decode(_categorical(_param_weights(_BASE_KIND[mode], K, center, q, z)), count)
    else:
        A, q = extra
        diffs = coder.decode(_categorical(_param_weights(_LAPLACE, 2 * A + 1, A, q)), K)
        a = np.cumsum(diffs.astype(np.int64) - A)
        if a.min() < 0 or a.max() != A or a[0] == 0 or a[-1] == 0:
            raise EntropyError("entropy blob has an invalid histogram table")
        pos = np.flatnonzero(a)
        if pos.size < 2:
            raise EntropyError("entropy blob has a histogram with fewer than two symbols")
        model = _categorical((a[pos] ** 2).astype(np.float64))
        out = pos.astype(np.int32)[coder.decode(model, count)]
    if not coder.is_empty():
        raise EntropyError("entropy blob has coded data left over (wrong symbol count?)")
    return out


def decode_symbols(blob: bytes, count: int) -> np.ndarray:
    """Decode `count` symbols from `blob` as a 1-D int32 array; EntropyError if malformed."""
    try:
        count = operator.index(count)
    except TypeError:
        raise TypeError(f"count must be an integer, got {type(count).__name__}") from None
    if not 0 <= count <= MAX_COUNT:
        raise EntropyError(f"symbol count {count} out of range [0, {MAX_COUNT}]")
    blob = bytes(blob)
    if count == 0:
        if blob:
            raise EntropyError("entropy blob is not empty but the symbol count is 0")
        return np.zeros(0, dtype=np.int32)
    if not blob:
        raise EntropyError(f"entropy blob is empty but {count} symbols are expected")
    r = _Reader(blob)
    mode = r.u8("mode")
    if mode == _CONSTANT:
        value = _unzz(r.varint("value", 2 * MAX_ABS - 2))
        if r.pos != len(blob):
            raise EntropyError("entropy blob has trailing bytes after a constant")
        return np.full(count, value, dtype=np.int32)
    if mode >= len(_MODE_NAMES):
        raise EntropyError(f"entropy blob has unknown mode {mode}")
    lo = _unzz(r.varint("minimum", 2 * MAX_ABS - 2))
    K = r.varint("range", 2 * MAX_ABS) + 2
    if lo + K - 1 >= MAX_ABS:
        raise EntropyError(f"entropy blob has a symbol range beyond 2**20: [{lo}, {lo + K - 1}]")
    if mode in _BASE_KIND:
        extra = (r.varint("centre", K - 1), r.u8("parameter"),
                 r.u8("spike") if mode in (_LAPLACE_SPIKE, _GAUSSIAN_SPIKE) else None)
    elif mode == _HISTOGRAM:
        if not _hist_allowed(count, K):
            raise EntropyError(f"entropy blob has a histogram of {K} entries for {count} symbols")
        A = r.varint("table maximum", 16 * (math.isqrt(count) + 1) - 1) + 1
        extra = (A, r.u8("table parameter"))
    else:
        extra = None
    words = _read_words(blob, r.pos)
    try:
        out = _decode_stream(mode, words, count, K, extra)
    except EntropyError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # constriction errors (ValueError, pyo3 panics, ...)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EntropyError(f"entropy blob is corrupt: {msg}") from None
    out = np.asarray(out, dtype=np.int32)
    out += np.int32(lo)                      # |values| < 2**20: no overflow
    return out
