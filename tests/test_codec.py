"""End-to-end tests of the codec on a few frames of real clips, on the CPU, with tiny schedules."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec import bitstream, codec, decoding, metrics
from nvcodec.cli import main
from nvcodec.compress import pack
from nvcodec.compress.quantize import quantize_embedding
from nvcodec.models import Decoder
from nvcodec.sizing import plan_for_bpp
from nvcodec.video import read_video

FAST = dict(epochs=6, prune_epochs=2, device="cpu", progress=False)


@pytest.fixture(scope="module")
def carphone(testdata) -> Path:
    return testdata / "carphone_qcif_16f.mp4"


@pytest.fixture(scope="module")
def encoded(carphone, tmp_path_factory):
    """One small encode shared by several tests: 8 frames of carphone (176x144) at 1 bpp."""
    out = tmp_path_factory.mktemp("enc") / "carphone.dnv"
    report = codec.encode(carphone, out, bpp=1.0, frame_range=(0, 8), **{**FAST, "epochs": 30, "lr": 3e-3})
    return out, report


def test_encode_report_is_true_to_the_file(encoded):
    path, report = encoded
    size = path.stat().st_size
    assert report["bytes"] == size
    assert report["bpp"] == pytest.approx(size * 8 / (176 * 144 * 8))
    assert (report["width"], report["height"], report["frames"]) == (176, 144, 8)
    for key in ("bpp", "bytes", "psnr", "ms_ssim", "frames", "width", "height", "params", "encode_seconds", "device"):
        assert key in report
    assert sum(report["sections"].values()) == size  # every byte is accounted for by a section or framing
    # The learning curve: one running PSNR per main-phase epoch, and training gets better.
    (curve,) = report["train_curves"]
    assert len(curve) == 30 and curve[-1] > curve[0] + 3
    assert report["train_options"]["lr"] == 3e-3 and report["train_options"]["epochs"] == 30
    # and one per fine-tuning epoch after pruning
    (finetune,) = report["finetune_curves"]
    assert len(finetune) == report["train_options"]["prune_epochs"] == 2


def test_bpp_lands_within_ten_percent(encoded):
    _, report = encoded
    assert abs(report["bpp"] / 1.0 - 1) <= 0.10, report["bpp"]


def test_decode_psnr_agrees_with_encode(encoded, carphone, tmp_path):
    path, enc = encoded
    dec = codec.decode(path, tmp_path / "rec.mkv", ref=carphone, ref_range=(0, 8), device="cpu")
    assert abs(dec["psnr"] - enc["psnr"]) < 0.01
    assert dec["ms_ssim"] == pytest.approx(enc["ms_ssim"], abs=1e-4)
    # The lossless .mkv holds exactly the frames the decoder produced.
    frames, _ = read_video(tmp_path / "rec.mkv")
    source, _ = read_video(carphone, frame_range=(0, 8))
    assert metrics.psnr(frames, source) == pytest.approx(dec["psnr"], abs=1e-9)
    # A real reconstruction (tiny schedule on purpose): clearly better than the clip's own mean colour.
    flat = np.broadcast_to(source.reshape(-1, 3).mean(0).round().astype(np.uint8), source.shape)
    assert enc["psnr"] > metrics.psnr(flat, source) + 2


def test_decode_is_deterministic(encoded):
    path, _ = encoded
    a, _ = codec.decode_to_array(path, device="cpu")
    b, _ = codec.decode_to_array(path, device="cpu")
    assert a.shape == (8, 144, 176, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_bitstream_round_trip_is_bit_exact(encoded):
    """Re-encoding the decoded (dequantized) tensors reproduces the same section bytes exactly."""
    path, _ = encoded
    header, sections, _ = bitstream.read_file(path)
    loaded = decoding.load(path.read_bytes(), torch.device("cpu"))
    shapes = {k: tuple(v.shape) for k, v in loaded.decoder.state_dict().items()}
    weights = pack.unpack_weights(sections["DECODER"], shapes)
    for name, tensor in loaded.decoder.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    # Tables (embeddings, grids): the sections decode to the same tensors every time.
    for name, shape in header.arch.section_shapes(header.frames).items():
        assert torch.equal(pack.unpack_embedding(sections[name], shape, name), loaded.tables[name]), name
    q = pack.quantize_state(weights, 8)
    again = pack.unpack_weights(pack.pack_weights(q), shapes)
    for name in shapes:
        assert torch.equal(again[name], q[name].dequantize()), name


def test_weight_scales_lie_on_an_exact_log_grid():
    """scale_of_index is integer arithmetic in disguise (the same scale on every device), and scale_index picks the
    finest scale that keeps the peak within the levels."""
    from fractions import Fraction

    from nvcodec.compress import entropy
    from nvcodec.compress.quantize import SCALE_INDEX_MAX, SCALE_INDEX_MIN, SCALE_STEPS, scale_index, scale_of_index

    k = torch.arange(SCALE_INDEX_MIN, SCALE_INDEX_MAX + 1)
    got = scale_of_index(k)
    for kk, value in zip(k.tolist(), got.tolist()):
        e, j = divmod(kk, SCALE_STEPS)
        mantissa = entropy._root_pow2(23 * SCALE_STEPS + j, 4)      # floor(2**(23 + j/16)), exactly
        assert Fraction(value) == mantissa * Fraction(2) ** (e - 23), kk
        assert abs(value / 2 ** (kk / SCALE_STEPS) - 1) < 2 ** -23
    assert torch.all(got[1:] > got[:-1])
    g = torch.Generator().manual_seed(0)
    peak = torch.exp2(torch.rand(5000, generator=g) * 30 - 20)
    peak = torch.cat([peak, scale_of_index(torch.arange(-100, 100)) * 31, torch.zeros(1)])   # exact hits, a zero
    for levels in (1, 31, 127, 32767):
        idx = scale_index(peak, levels)
        fits = scale_of_index(idx).double() * levels >= peak.double()
        tighter = scale_of_index(idx - 1).double() * levels < peak.double()
        inside = (idx > SCALE_INDEX_MIN) & (idx < SCALE_INDEX_MAX)
        assert torch.all(fits[inside]) and torch.all(tighter[inside]), levels
        assert torch.all(idx >= SCALE_INDEX_MIN) and torch.all(idx <= SCALE_INDEX_MAX)


def test_weight_scales_are_coded_as_log_grid_indices():
    """Mode 3: one byte per tensor and one entropy-coded blob of indices instead of 2 bytes per scale; a forged
    index out of range is refused with one line."""
    from nvcodec.compress.quantize import SCALE_INDEX_MAX, QuantizedTensor, quantize_weight

    torch.manual_seed(0)
    state = {"a.weight": torch.randn(64, 32, 3, 3) * 0.05, "a.bias": torch.randn(64) * 0.01,
             "b.weight": torch.randn(1, 64, 1, 1), "c.weight": torch.zeros(8, 4)}
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    qs = {k: quantize_weight(v, 6) for k, v in state.items()}
    data = pack.pack_weights(qs)
    assert list(data[:4]) == [3, 3, 3, 3]
    restored = pack.unpack_weights(data, shapes)
    for name, t in restored.items():
        assert torch.equal(t, qs[name].dequantize()), name
        assert np.abs(qs[name].symbols).max() <= 31
    half_precision = {k: QuantizedTensor(q.symbols, q.scale.astype(np.float16), None, q.axis) for k, q in qs.items()}
    assert len(data) <= len(pack.pack_weights(half_precision)) - 64    # 74 scales: 148 bytes as float16
    forged = dict(qs, **{"a.bias": QuantizedTensor(qs["a.bias"].symbols, qs["a.bias"].scale, None, None,
                                                    np.array([SCALE_INDEX_MAX + 1], dtype=np.int32))})
    with pytest.raises(bitstream.BitstreamError, match="scale index out of range"):
        pack.unpack_weights(pack.pack_weights(forged), shapes)


def test_quantized_symbols_survive_entropy_coding():
    torch.manual_seed(0)
    emb = torch.randn(5, 4, 3, 6) * 2 + torch.linspace(0, 3, 5)[:, None, None, None]
    q = quantize_embedding(emb, 8)
    data = pack.pack_embedding(q)
    out = pack.unpack_embedding(data, tuple(emb.shape), "CONTENT")
    assert torch.equal(out, q.dequantize())
    assert (out - emb).abs().max() <= q.scale.astype(np.float32).max() / 2 + 1e-6

    decoder = Decoder(plan_for_bpp("dnerv", 176, 144, 8, 1.0).arch)
    qs = pack.quantize_state(decoder.state_dict(), 8)
    shapes = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    restored = pack.unpack_weights(pack.pack_weights(qs), shapes)
    for name, t in restored.items():
        assert torch.equal(t, qs[name].dequantize())
        sym = np.round(t.numpy() / qs[name].scale.astype(np.float32).reshape(
            [-1] + [1] * (t.dim() - 1) if qs[name].axis == 0 else [1] * t.dim()))
        assert np.array_equal(sym.astype(np.int32), qs[name].symbols)


def test_hnerv_model(carphone, tmp_path):
    out = tmp_path / "h.dnv"
    report = codec.encode(carphone, out, bpp=1.0, model="hnerv", frame_range=(0, 4), **FAST)
    info = codec.info(out)
    assert info["model"] == "hnerv" and info["diff_embedding"] is None
    assert "DIFF" not in info["sections"]
    frames, _ = codec.decode_to_array(out, device="cpu")
    source, _ = read_video(carphone, frame_range=(0, 4))
    assert metrics.psnr(frames, source) == pytest.approx(report["psnr"], abs=1e-9)


# --- command line --------------------------------------------------------------------------------

def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def assert_one_line_error(result, fragment: str):
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.output


def test_cli_encode_info_decode(tmp_path, testdata):
    """Raw .yuv input through the command line, then info and decode to a PNG folder, with JSON reports."""
    yuv = testdata / "CiscoVT2people_320x192_5f.yuv"
    out = tmp_path / "cisco.dnv"
    r = run_cli("encode", yuv, "-o", out, "--size", "320x192", "--fps", "12", "--bpp", "2", "--epochs", "4",
                "--prune-epochs", "1", "--device", "cpu", "-q", "--json", tmp_path / "enc.json", "--frames", "0:4")
    assert r.exit_code == 0, r.output
    enc = json.loads((tmp_path / "enc.json").read_text())
    assert enc["frames"] == 4 and enc["width"] == 320 and enc["height"] == 192 and enc["frame_range"] == [0, 4]
    # When each of the 4 epochs ended, and when the float model was ready: within the training time.
    (curve,) = enc["train_curves_seconds"]
    assert len(curve) == 4 and curve == sorted(curve) and curve[-1] <= enc["train_seconds_unpruned"]
    assert enc["train_seconds_unpruned"] <= enc["train_seconds"] + 1e-3
    steady = 3 * 4 / (curve[-1] - curve[0])       # 3 epochs of 4 frames after the first
    assert enc["train_steady_frames_per_second"] == pytest.approx(steady, rel=1e-3)
    assert f"first epoch {curve[0]:.1f} s, then {steady:.1f} frames/s" in r.output
    assert "compil" not in r.output and not enc["compiled"]    # nothing is compiled on the CPU
    # The one fine-tuning epoch ended after the float model was ready, and its evaluation after it.
    (tuned,), (evals,) = enc["finetune_curves_seconds"], enc["finetune_evals_seconds"]
    assert len(tuned) == 1 and enc["train_seconds_unpruned"] <= tuned[0] <= enc["train_seconds"] + 1e-3
    assert list(evals) == ["1"] and tuned[0] <= evals["1"] <= enc["train_seconds"] + 1e-3
    (freezing,) = enc["finetune_freeze_seconds"]       # the freezing's host time, within the fine-tuning's
    assert 0 < freezing <= tuned[0] - enc["train_seconds_unpruned"]
    r = run_cli("info", out, "--json")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["bytes"] == out.stat().st_size and info["fps"] == "12/1"
    r = run_cli("decode", out, "-o", str(tmp_path / "png") + "/", "--device", "cpu", "--json", tmp_path / "d.json")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "png").glob("*.png"))) == 4
    dec = json.loads((tmp_path / "d.json").read_text())
    assert dec["psnr"] is None and dec["decode_fps"] > 0


def test_cli_jpeg_folder_input(tmp_path, testdata):
    out = tmp_path / "swan.dnv"
    r = run_cli("encode", testdata / "bunny_854x480_jpg", "-o", out, "--bpp", "0.5", "--epochs", "2",
                "--prune-epochs", "0", "--device", "cpu", "-q", "--frames", "0:3")
    assert r.exit_code == 0, r.output
    assert codec.info(out)["width"] == 854  # native size kept (854 is not a multiple of any stride)


def test_error_missing_input(tmp_path):
    r = run_cli("encode", tmp_path / "nope.mp4", "-o", tmp_path / "o.dnv", "--device", "cpu")
    assert_one_line_error(r, "nope.mp4")
    assert not (tmp_path / "o.dnv").exists()


def test_error_not_a_video(tmp_path):
    fake = tmp_path / "text.mp4"
    fake.write_text("this is not a video\n" * 20)
    r = run_cli("encode", fake, "-o", tmp_path / "o.dnv", "--device", "cpu")
    assert_one_line_error(r, "text.mp4")
    assert list(tmp_path.iterdir()) == [fake]


def test_error_one_frame_video(carphone, tmp_path):
    r = run_cli("encode", carphone, "-o", tmp_path / "o.dnv", "--frames", "0:1", "--device", "cpu")
    assert_one_line_error(r, "at least 2")
    assert not any(tmp_path.iterdir())


def test_error_empty_video(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    r = run_cli("encode", empty, "-o", tmp_path / "o.dnv", "--device", "cpu")
    assert_one_line_error(r, "empty.mp4")


def test_error_infeasible_bpp_names_the_minimum(carphone, tmp_path):
    r = run_cli("encode", carphone, "-o", tmp_path / "o.dnv", "--bpp", "0.0001", "--frames", "0:8",
                "--device", "cpu")
    assert_one_line_error(r, "smallest model")
    assert "bpp" in r.stderr
    assert not any(tmp_path.iterdir())


def _corrupt_cases(data: bytes):
    body = bytearray(data)
    body[len(body) // 2] ^= 0x10
    bad_version = bytearray(data)
    bad_version[4] = 99
    return {
        "bad magic": (b"XXXX" + data[4:], "magic"),
        "truncated": (data[: len(data) - 7], "truncated"),
        "crc": (bytes(body), "crc"),
        "version": (bytes(bad_version), "version"),
        "empty": (b"", "magic"),
        "trailing": (data + b"\0\0", "unexpected bytes"),
    }


@pytest.mark.parametrize("case", ["bad magic", "truncated", "crc", "version", "empty", "trailing"])
def test_error_corrupted_dnv(encoded, tmp_path, case):
    path, _ = encoded
    data, fragment = _corrupt_cases(path.read_bytes())[case]
    bad = tmp_path / "bad.dnv"
    bad.write_bytes(data)
    for args in (("decode", bad, "-o", tmp_path / "rec.mp4", "--device", "cpu"), ("info", bad)):
        r = run_cli(*args)
        assert_one_line_error(r, fragment)
    assert not (tmp_path / "rec.mp4").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.dnv"]


def test_header_fields_are_bounded(encoded, tmp_path):
    """A header whose CRC is right but whose sizes are absurd is refused before anything is allocated."""
    path, _ = encoded
    data = path.read_bytes()
    header, sections = bitstream.unpack(data)
    head = bytearray(bitstream.pack_header(header))
    struct.pack_into("<I", head, 5, 9_000_000)  # frames
    forged = bytearray(data)
    start = 6 + 9
    forged[start:start + len(head)] = head
    forged[6 + 5:6 + 9] = struct.pack("<I", zlib.crc32(bytes(head)))
    bad = tmp_path / "forged.dnv"
    bad.write_bytes(bytes(forged))
    r = run_cli("decode", bad, "--device", "cpu")
    assert_one_line_error(r, "more embedding values")


def test_unknown_output_extension_leaves_nothing(encoded, tmp_path):
    path, _ = encoded
    r = run_cli("decode", path, "-o", tmp_path / "out.xyz", "--device", "cpu")
    assert_one_line_error(r, "xyz")
    assert not any(tmp_path.iterdir())
