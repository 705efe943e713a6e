"""Entropy coding of integer symbol arrays: round trips, coded size, robustness, speed."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from nvcodec.compress import entropy as E
from nvcodec.compress.entropy import EntropyError, decode_symbols, encode_symbols, estimate_bits


def _laplace(rng, n, std, zero_frac=0.0, clip=127):
    x = np.round(rng.laplace(0.0, std / np.sqrt(2), n)).clip(-clip, clip)
    x[rng.random(n) < zero_frac] = 0
    return x.astype(np.int32)


def _cases():
    rng = np.random.default_rng(1234)
    return {
        # (a) 8-bit conv weights, Laplacian std ~10 levels, 10% pruned zeros
        "conv_weights": _laplace(rng, 100_000, 10, zero_frac=0.1),
        # (b) a small bias tensor, not centred on 0
        "bias": np.round(rng.normal(3, 12, 300)).clip(-127, 127).astype(np.int32),
        # (c) 8-bit embeddings, uniform-ish and Gaussian-ish
        "embed_uniform": rng.integers(0, 256, 50_000).astype(np.int32),
        "embed_gauss": np.round(rng.normal(128, 30, 50_000)).clip(0, 255).astype(np.int32),
        # temporal deltas of embeddings: signed, peaked
        "deltas": _laplace(rng, 20_000, 3, clip=255),
        # low bit depth, mostly zeros
        "sparse": (rng.random(50_000) < 0.02) * rng.integers(-3, 4, 50_000),
        "binary": rng.integers(0, 2, 5_000),
    }


CASES = _cases()


def _entropy_bits(x: np.ndarray) -> float:
    """Empirical (zeroth-order) entropy of the whole array, in bits."""
    _, counts = np.unique(x, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def _roundtrip(x) -> bytes:
    blob = encode_symbols(x)
    assert isinstance(blob, bytes)
    n = np.asarray(x).size
    y = decode_symbols(blob, n)
    assert y.dtype == np.int32 and y.shape == (n,)
    np.testing.assert_array_equal(y, np.asarray(x).reshape(-1))
    return blob


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_roundtrip_realistic(name):
    _roundtrip(CASES[name])


def test_roundtrip_dtypes_shapes_and_negatives():
    rng = np.random.default_rng(5)
    base = rng.integers(-40, 41, (3, 4, 5, 6))
    for dtype in (np.int8, np.int16, np.int32, np.int64):
        _roundtrip(base.astype(dtype))
    _roundtrip(np.abs(base).astype(np.uint8))
    _roundtrip(np.asfortranarray(base))              # C-order flattening even for F-ordered input
    _roundtrip(base.transpose(2, 0, 3, 1))           # non-contiguous view
    _roundtrip(np.array([[-1, -(2**20 - 1)], [2**20 - 1, 0]], dtype=np.int64))
    _roundtrip([3, -2, 7])                           # plain lists work too
    _roundtrip(np.array(5))                          # 0-d array: one symbol


def test_constant_and_empty():
    for value, n in [(0, 1), (0, 100_000), (-7, 3), (2**20 - 1, 10), (-(2**20) + 1, 10)]:
        blob = _roundtrip(np.full(n, value, dtype=np.int64))
        assert len(blob) <= 4, (value, len(blob))
        assert estimate_bits(np.full(n, value)) == 8 * len(blob)
    assert len(_roundtrip(np.full((10, 10), 3))) == 2
    assert encode_symbols(np.zeros(0, dtype=np.int32)) == b""
    assert encode_symbols(np.zeros((0, 5), dtype=np.int64)) == b""
    assert decode_symbols(b"", 0).shape == (0,)
    assert estimate_bits(np.zeros(0, dtype=np.int32)) == 0.0


def test_two_values_and_wide_ranges():
    rng = np.random.default_rng(9)
    _roundtrip(np.array([0, 1]))
    _roundtrip(np.array([-(2**20) + 1, 2**20 - 1]))
    _roundtrip(rng.integers(-(2**20) + 1, 2**20, 3000))
    _roundtrip(np.concatenate([rng.integers(-1005, -995, 500), rng.integers(995, 1005, 500)]))
    # a rare far outlier in otherwise small values
    x = rng.integers(-3, 4, 20_000)
    x[123] = 900_000
    _roundtrip(x)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        encode_symbols(np.array([0, 2**20]))
    with pytest.raises(ValueError):
        encode_symbols(np.array([-(2**20)]))
    with pytest.raises(ValueError):
        encode_symbols(np.array([2**40], dtype=np.uint64))
    with pytest.raises(TypeError):
        encode_symbols(np.array([0.5, 1.0]))


@settings(max_examples=150, deadline=None, database=None)
@given(hnp.arrays(dtype=st.sampled_from([np.int8, np.int16, np.int32, np.int64]),
                  shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=12),
                  elements=st.integers(-128, 127)),
       st.integers(-(2**19), 2**19), st.integers(0, 12))
def test_roundtrip_property(x, offset, shift):
    values = (x.astype(np.int64) << shift) // 8 + offset   # spread and move the range around
    values = values.clip(-(2**20) + 1, 2**20 - 1)
    blob = _roundtrip(values)
    if values.size:
        est, actual = estimate_bits(values), 8 * len(blob)
        assert actual <= 1.02 * est + 64
        # a trailing run of the smallest value (the alphabet's first symbol, pushed first onto the
        # empty ANS stack) costs nothing, which the estimate does not credit; otherwise it is close
        if values.reshape(-1)[-1] != values.min():
            assert est <= 1.02 * actual + 64


# --- coded size ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_size_close_to_empirical_entropy(name):
    x = CASES[name]
    blob = _roundtrip(x)
    h = _entropy_bits(x)
    assert 8 * len(blob) <= 1.02 * h + 64 * 8, (name, 8 * len(blob), h)
    if x.size >= 20_000:   # large arrays: overhead well under 1% + a few dozen bytes
        assert 8 * len(blob) <= 1.005 * h + 48 * 8, (name, 8 * len(blob), h)


def test_size_of_typical_large_arrays_is_tight():
    blob = encode_symbols(CASES["conv_weights"])
    h = _entropy_bits(CASES["conv_weights"])
    assert 8 * len(blob) - h < 1200, 8 * len(blob) - h    # model + flush: ~0.1% here
    blob = encode_symbols(CASES["embed_uniform"])
    assert len(blob) <= 50_000 + 8                        # 8 bits per symbol plus a few bytes
    assert blob[0] == E._UNIFORM


_PARAMETRIC = (E._LAPLACE, E._GAUSSIAN, E._LAPLACE_SPIKE, E._GAUSSIAN_SPIKE)


def test_small_arrays_use_a_parametric_model():
    rng = np.random.default_rng(3)
    for x in (CASES["bias"], _laplace(rng, 300, 10), _laplace(rng, 64, 20),
              _laplace(rng, 1000, 10, zero_frac=0.1),
              np.round(rng.normal(-20, 6, 500)).astype(np.int32)):
        blob = _roundtrip(x)
        assert blob[0] in _PARAMETRIC, blob[0]
        hist = E._encode_forced(x, E._HISTOGRAM)
        assert decode_symbols(hist, x.size).tolist() == x.tolist()
        assert len(blob) < len(hist), (len(blob), len(hist))


def test_spike_pays_for_pruned_zeros():
    rng = np.random.default_rng(4)
    x = _laplace(rng, 5000, 10, zero_frac=0.1)
    blob = _roundtrip(x)
    assert blob[0] == E._LAPLACE_SPIKE
    assert len(blob) < len(E._encode_forced(x, E._LAPLACE)) - 10


def test_histogram_wins_where_no_shape_fits():
    rng = np.random.default_rng(12)
    x = np.concatenate([_laplace(rng, 50_000, 4) - 40, _laplace(rng, 50_000, 8) + 30])
    blob = _roundtrip(x)
    assert blob[0] == E._HISTOGRAM
    for mode in (E._UNIFORM, E._LAPLACE, E._GAUSSIAN):   # (no excess at a centre: no spike)
        forced = E._encode_forced(x, mode)
        assert decode_symbols(forced, x.size).tolist() == x.tolist()
        assert len(blob) < 0.97 * len(forced)


def test_picks_the_smallest_mode():
    rng = np.random.default_rng(11)
    for x in list(CASES.values()) + [_laplace(rng, n, 5) for n in (50, 2000)]:
        blob = encode_symbols(x)
        sizes = []
        for mode in range(1, len(E._MODE_NAMES)):
            try:
                sizes.append(len(E._encode_forced(x, mode)))
            except ValueError:     # mode not applicable (e.g. no excess at the centre for a spike)
                pass
        assert len(sizes) >= 4
        assert len(blob) <= min(sizes)


def test_estimate_bits_matches_coded_size():
    for name, x in CASES.items():
        est, actual = estimate_bits(x), 8 * len(encode_symbols(x))
        assert abs(est - actual) <= 0.01 * actual + 48, (name, est, actual)
    # the intended use: choosing between raw and delta-coded embeddings
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.integers(-2, 3, (40, 500)), axis=0)
    delta = np.diff(walk, axis=0, prepend=0)
    assert estimate_bits(delta) < estimate_bits(walk)
    assert len(encode_symbols(delta)) < len(encode_symbols(walk))


# --- malformed input ----------------------------------------------------------------------------

def _decode_or_error(blob: bytes, count: int):
    """Decoding malformed data may only raise EntropyError or give `count` symbols."""
    try:
        y = decode_symbols(blob, count)
    except EntropyError as e:
        msg = str(e)
        assert msg and "\n" not in msg
        return None
    assert isinstance(y, np.ndarray) and y.dtype == np.int32 and y.shape == (count,)
    assert np.all(np.abs(y.astype(np.int64)) < 2**20)
    return y


def _small_blobs():
    """One small blob per mode (forced where the encoder might prefer another), with its input."""
    rng = np.random.default_rng(7)
    const = np.full(40, 3)
    uni = rng.integers(0, 256, 60)
    lap = _laplace(rng, 80, 6, zero_frac=0.2)
    gauss = np.round(rng.normal(30, 4, 80)).astype(int)
    big = _laplace(rng, 3000, 4, zero_frac=0.3)
    blobs = [(encode_symbols(const), const), (encode_symbols(big), big)]
    for mode, x in [(E._UNIFORM, uni), (E._LAPLACE, lap), (E._GAUSSIAN, gauss),
                    (E._HISTOGRAM, lap), (E._LAPLACE_SPIKE, lap), (E._GAUSSIAN_SPIKE, lap)]:
        blobs.append((E._encode_forced(x, mode), x))
    assert {b[0] for b, _ in blobs} == set(range(len(E._MODE_NAMES)))
    for blob, x in blobs:
        assert decode_symbols(blob, x.size).tolist() == x.tolist()
    return blobs


SMALL_BLOBS = _small_blobs()


@pytest.mark.parametrize("index", range(len(SMALL_BLOBS)))
def test_truncation_at_every_length(index):
    blob, x = SMALL_BLOBS[index]
    for cut in range(len(blob)):
        y = _decode_or_error(blob[:cut], x.size)
        if cut <= 1 or (blob[0] != E._CONSTANT and cut <= 3):
            assert y is None, cut                     # header cut off: always detected


@pytest.mark.parametrize("index", range(len(SMALL_BLOBS)))
def test_bit_flips(index):
    blob, x = SMALL_BLOBS[index]
    rng = np.random.default_rng(100 + index)
    detected = 0
    trials = 300
    for _ in range(trials):
        bad = bytearray(blob)
        flips = rng.choice(8 * len(bad), size=min(8 * len(bad), int(rng.integers(1, 4))),
                           replace=False)
        for bit in flips:
            bad[bit // 8] ^= 1 << (bit % 8)
        y = _decode_or_error(bytes(bad), x.size)
        detected += y is None or not np.array_equal(y, x)
    assert detected == trials                         # a changed blob never decodes to the input


def test_garbage_bytes():
    rng = np.random.default_rng(42)
    for _ in range(1500):
        blob = rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8).tobytes()
        if rng.random() < 0.7 and blob:              # mostly valid modes, to get past byte 0
            blob = bytes([int(rng.integers(0, 8))]) + blob[1:]
        _decode_or_error(blob, int(rng.choice([1, 2, 17, 300, 5000])))


def test_garbage_cannot_force_huge_allocations():
    # a histogram range far beyond what the count allows, a table maximum beyond its bound
    for blob in (bytes([E._HISTOGRAM]) + E._varint(0) + E._varint(1_000_000) + b"\x00\x05",
                 bytes([E._HISTOGRAM]) + E._varint(0) + E._varint(10) + E._varint(10**6) + b"\x05"):
        with pytest.raises(EntropyError):
            decode_symbols(blob, 10)
    with pytest.raises(EntropyError):                 # varints longer than the fields can be
        decode_symbols(bytes([E._UNIFORM]) + b"\xff\xff\xff\xff\x01\x00", 10)
    with pytest.raises(EntropyError):
        decode_symbols(bytes([E._CONSTANT]) + E._varint(2**22), 10)
    with pytest.raises(EntropyError):
        decode_symbols(b"\x00\x00", E.MAX_COUNT + 1)
    with pytest.raises(EntropyError):
        decode_symbols(b"\x00\x00", -1)


def test_count_mismatch():
    rng = np.random.default_rng(8)
    for x in [rng.integers(0, 200, 1000), _laplace(rng, 500, 5),
              _laplace(rng, 3000, 3, zero_frac=0.3), CASES["bias"]]:
        x = np.asarray(x).copy()
        x[-1] = x.max()   # the last symbol is not the alphabet's first: its bits are in the stream
        blob = encode_symbols(x)
        assert blob[0] != E._CONSTANT
        for count in (x.size - 1, x.size // 2, 1):
            with pytest.raises(EntropyError):
                decode_symbols(blob, count)
        for count in (x.size + 1, 2 * x.size):       # may go unnoticed (see module docstring)
            y = _decode_or_error(blob, count)
            if y is not None:
                np.testing.assert_array_equal(y[:x.size], x)
        with pytest.raises(EntropyError):
            decode_symbols(blob, 0)
    with pytest.raises(EntropyError):
        decode_symbols(b"", 5)
    with pytest.raises(EntropyError):
        decode_symbols(b"\x00\x06", 0)
    assert decode_symbols(b"\x00\x06", 4).tolist() == [3, 3, 3, 3]


def test_non_canonical_blobs_are_rejected():
    blob = encode_symbols(CASES["bias"])
    with pytest.raises(EntropyError):
        decode_symbols(blob + b"\x00", CASES["bias"].size)       # zero byte at the end
    with pytest.raises(EntropyError):
        decode_symbols(b"\x00\x06\x00", 3)                      # trailing byte after a constant
    with pytest.raises(EntropyError):
        decode_symbols(b"\x00\x86\x00", 3)                      # overlong varint
    with pytest.raises(EntropyError):
        decode_symbols(b"\x07\x00", 3)                          # unknown mode


# --- speed ----------------------------------------------------------------------------------------

def test_speed_one_million_symbols():
    rng = np.random.default_rng(0)
    x = _laplace(rng, 1_000_000, 10, zero_frac=0.1)
    encode_symbols(x[:1000])                                   # warm up
    t0 = time.perf_counter()
    blob = encode_symbols(x)
    t1 = time.perf_counter()
    y = decode_symbols(blob, x.size)
    t2 = time.perf_counter()
    np.testing.assert_array_equal(y, x)
    assert t1 - t0 < 1.0 and t2 - t1 < 1.0, (t1 - t0, t2 - t1)


# --- bitstream stability ------------------------------------------------------------------------

_I = np.arange(64)
GOLDEN = [   # (mode, symbols, blob): the format must not drift (e.g. with a constriction upgrade)
    (E._CONSTANT, np.full(9, -3), "0005"),
    (E._UNIFORM, (_I * 37) % 23 - 11,
     "0115150813e74b5a28a172fdba63a6aafe20a6d20ad7cd22cb936b5e6e57d07d2e124e661f036ab7080c"),
    (E._LAPLACE, np.array([0, 1, -1, 0, 2, 0, -3, 1, 0, 0, 5, -1, 0, 1, 0, -2] * 4),
     "02050703819ac4634f885a219a28730680b8d1fdab13275da8675b35"),
    (E._GAUSSIAN, (_I * _I * 7) % 13 + 100 - (_I * 3) % 5,
     "03c0010e08dd1e6a1861491a7623b1e9e14781c8c19e3cbe42e663bcfc8d8f1086a6e7b5262006"),
    (E._HISTOGRAM, np.array([0, 0, 0, 7, 7, -7, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0] * 4),
     "040d0d0185aaa2efbbb7baa13676a50be4a8abc650c010"),
    (E._LAPLACE_SPIKE,
     np.array([0, 0, 0, 0, 1, -1, 0, 2, 0, -3, 1, 0, 0, 0, 5, -1, 0, 1, 0, -2] * 4),
     "050507037f49fb2d9356cf67c052a1fe4c91d6e9d11cbf0b1ea9aa21547f13"),
    (E._GAUSSIAN_SPIKE, np.where(_I % 3 == 0, 0, (_I * _I * 7) % 13 - 6),
     "060b0a06de64698e52f01424a97586d58d3fae6c65ba784c6c70779d9951b31b03"),
]


@pytest.mark.parametrize("mode, x, hexblob", GOLDEN)
def test_golden_blobs(mode, x, hexblob):
    blob = bytes.fromhex(hexblob)
    assert decode_symbols(blob, x.size).tolist() == x.tolist()
    made = encode_symbols(x) if mode == E._CONSTANT else E._encode_forced(x, mode)
    assert made.hex() == hexblob


def test_code_lengths_reproduce_constriction():
    """The size estimates rely on reproducing constriction's fixed-point quantization exactly."""
    rng = np.random.default_rng(6)
    for k in (2, 3, 17, 256):
        w = rng.integers(0, 2**32, k).astype(np.float64)
        w[rng.random(k) < 0.3] = 0.0
        w[0] += 1.0
        model = E._categorical(w)

        def left_cumulative(sym):
            # one symbol pushed onto an empty ANS stack leaves exactly its left cumulative
            if sym == k:
                return 1 << 24
            coder = E._AnsCoder()
            coder.encode_reverse(np.array([sym], dtype=np.int32), model)
            words = coder.get_compressed()
            return int(words[0]) if words.size else 0

        lefts = [left_cumulative(sym) for sym in range(k + 1)]
        expected = 24 - np.log2(np.diff(lefts).astype(np.float64))
        np.testing.assert_array_equal(E._code_lengths(w), expected)
