"""DS-NeRV (static + dynamic codes) and frame interpolation (--fps-scale), on the CPU with tiny schedules."""
from __future__ import annotations

import json
import math
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec import bitstream, codec, decoding, metrics, sizing
from nvcodec.bitstream import BitstreamError, Header
from nvcodec.cli import main
from nvcodec.compress.quantize import quantize_embedding
from nvcodec.compress.ratecontrol import compress
from nvcodec.models import Decoder
from nvcodec.models.dsnerv import Codes, interpolate
from nvcodec.models.nerv import STATIC_EVERY
from nvcodec.video import read_video, write_video

EVEN = 6                                  # coded frames: carphone 0, 2, ..., 10
FULL = 2 * EVEN - 1                       # frames 0..10 at the full rate
CPU = dict(device="cpu", progress=False)


@pytest.fixture(scope="module")
def carphone(testdata) -> Path:
    return testdata / "carphone_qcif_16f.mp4"


@pytest.fixture(scope="module")
def source(carphone):
    frames, info = read_video(carphone, frame_range=(0, FULL))
    return frames, info.fps


@pytest.fixture(scope="module")
def even_clip(source, tmp_path_factory) -> Path:
    """The even frames of carphone 0..10, lossless (FFV1 RGB), at half the frame rate."""
    frames, fps = source
    path = tmp_path_factory.mktemp("even") / "even.mkv"
    write_video(path, frames[0::2], fps / 2)
    return path


@pytest.fixture(scope="module")
def ds_encoded(even_clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "even.dnv"
    report = codec.encode(even_clip, out, bpp=1.0, model="dsnerv", epochs=10, prune_epochs=2, lr=1e-2, **CPU)
    return out, report


# --- DS-NeRV encode / decode ----------------------------------------------------------------------

def test_dsnerv_round_trip(ds_encoded, even_clip):
    path, enc = ds_encoded
    assert enc["model"] == "dsnerv" and enc["frames"] == EVEN
    assert enc["bytes"] == path.stat().st_size
    assert abs(enc["bpp"] / 1.0 - 1) <= 0.10, enc["bpp"]
    dec = codec.decode(path, ref=even_clip, device="cpu")
    assert abs(dec["psnr"] - enc["psnr"]) < 0.01
    info = codec.info(path)
    assert info["model"] == "dsnerv" and info["content_embedding"] is None
    assert info["static_codes"][0] == 1 + math.ceil((EVEN - 1) / STATIC_EVERY)
    assert info["dynamic_codes"][0] in (EVEN, 1 + math.ceil((EVEN - 1) / 2))
    assert {"STATIC", "DYNAMIC", "DECODER", "HEAD"} <= set(info["sections"])
    assert not {"CONTENT", "DIFF"} & set(info["sections"])
    assert sum(enc["sections"].values()) == enc["bytes"]
    # A real reconstruction: clearly better than the clip's own mean colour.
    frames, _ = read_video(even_clip)
    flat = np.broadcast_to(frames.reshape(-1, 3).mean(0).round().astype(np.uint8), frames.shape)
    assert enc["psnr"] > metrics.psnr(flat, frames) + 2


def test_code_sections_round_trip_bit_exact(ds_encoded):
    """Codes -> quantize -> sections -> file -> load gives the quantized codes exactly, and packing is deterministic."""
    path, _ = ds_encoded
    header, sections, _ = bitstream.read_file(path)
    arch = header.arch
    assert bitstream.unpack(bitstream.pack(header, {}))[0] == header     # HEAD, and COLOR after it
    torch.manual_seed(1)
    codes, decoder = Codes(arch, header.frames), Decoder(arch)
    tables = codes.tables()
    packed = compress(decoder.state_dict(), tables, 7.3)
    data = bitstream.pack(header, packed.sections)
    loaded = decoding.load(data, torch.device("cpu"))
    for name, table in tables.items():
        assert torch.equal(loaded.tables[name], quantize_embedding(table, 7.3).dequantize()), name
    assert compress(decoder.state_dict(), tables, 7.3).sections == packed.sections
    # The encoded file: its code sections decode to the same tensors on every load.
    a = decoding.load(path.read_bytes(), torch.device("cpu"))
    b = decoding.load(path.read_bytes(), torch.device("cpu"))
    for name in arch.sections:
        assert a.tables[name].shape == arch.section_shapes(header.frames)[name]
        assert torch.equal(a.tables[name], b.tables[name])


def test_interpolate_is_distance_weighted():
    table = torch.arange(3 * 2, dtype=torch.float32).reshape(3, 2, 1, 1) ** 2  # 3 codes over 9 frames: t=0,4,8
    got = interpolate(table, torch.tensor([0.0, 4.0, 8.0, 2.0, 1.0, 7.0]), 9)
    assert torch.equal(got[:3], table)
    assert torch.allclose(got[3], (table[0] + table[1]) / 2)
    assert torch.allclose(got[4], 0.75 * table[0] + 0.25 * table[1])
    assert torch.allclose(got[5], 0.25 * table[1] + 0.75 * table[2])
    # One entry per frame (content/diff embeddings): integer times give each frame's entry exactly.
    emb = torch.randn(5, 3, 2, 2)
    assert torch.equal(interpolate(emb, torch.arange(5, dtype=torch.float64), 5), emb)
    assert torch.allclose(interpolate(emb, torch.tensor([2.5]), 5)[0], (emb[2] + emb[3]) / 2)


def test_sizing_plans_dsnerv_near_target():
    for w, h, t, bpp in ((176, 144, 6, 1.0), (1280, 720, 132, 0.05)):
        plan = sizing.plan_for_bpp("dsnerv", w, h, t, bpp)
        assert plan.arch.static_codes == 1 + math.ceil((t - 1) / STATIC_EVERY)
        assert 1 <= plan.arch.dynamic_codes <= t
        assert 0.6 < plan.predicted_bytes / (bpp * w * h * t / 8) < 1.05


# --- frame interpolation -------------------------------------------------------------------------

def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_fps_scale_2_dsnerv(ds_encoded, carphone, source, tmp_path):
    """Even frames coded, decoded at 2x: 2T-1 frames at 2x the rate; the coded ones unchanged, the others plausible."""
    path, enc = ds_encoded
    r = run_cli("decode", path, "--fps-scale", "2", "-o", tmp_path / "x2.mkv", "--ref", carphone,
                "--ref-frames", f"0:{FULL}", "--device", "cpu", "--json", tmp_path / "d.json")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "d.json").read_text())
    frames, info = read_video(tmp_path / "x2.mkv")
    assert frames.shape[0] == rep["frames"] == FULL and rep["coded_frames"] == EVEN
    assert info.fps == source[1] and rep["fps"] == pytest.approx(float(source[1]))
    plain, _ = codec.decode_to_array(path, device="cpu")
    # Integer times: the coded frames, up to a rare 1-level rounding flip (the network runs on other batches of
    # frames, and batched convolutions may round the last bit differently).
    off = np.abs(frames[0::2].astype(int) - plain.astype(int))
    assert off.max() <= 1 and np.count_nonzero(off) <= off.size * 1e-4, (off.max(), np.count_nonzero(off))
    assert rep["psnr_coded"] == pytest.approx(enc["psnr"], abs=0.01)
    truth = source[0]
    coded = metrics.psnr_per_frame(frames[0::2], truth[0::2])
    between = metrics.psnr_per_frame(frames[1::2], truth[1::2])
    assert rep["psnr_interpolated"] == pytest.approx(sum(between) / len(between), abs=1e-9)
    flat = metrics.psnr(np.broadcast_to(truth.reshape(-1, 3).mean(0).round().astype(np.uint8), truth.shape), truth)
    for i, p in enumerate(between):
        assert math.isfinite(p) and p > flat + 1, (i, p, flat)
        assert p > min(coded[i], coded[i + 1]) - 2.0, (i, p, coded)


@pytest.mark.parametrize("model", ["hnerv", "dnerv"])
def test_fps_scale_embedding_models(model, tmp_path):
    """A file written from an untrained decoder and random embeddings (encoding is tested elsewhere)."""
    torch.manual_seed(0)
    arch = sizing.plan_for_bpp(model, 176, 144, 3, 1.5).arch
    tables = {name: torch.randn(shape) for name, shape in arch.section_shapes(3).items()}
    packed = compress(Decoder(arch).state_dict(), tables, 8)
    out = tmp_path / f"{model}.dnv"
    out.write_bytes(bitstream.pack(Header(arch, 3, Fraction(25), 8), packed.sections))
    plain, _ = codec.decode_to_array(out, device="cpu")
    x3, rep = codec.decode_to_array(out, device="cpu", fps_scale=3)
    assert x3.shape[0] == rep["frames"] == 3 * 3 - 2 and rep["coded_frames"] == 3
    assert np.array_equal(x3[0::3], plain)
    assert not np.array_equal(x3[1], x3[0]) or not np.array_equal(x3[1], x3[3])


# --- errors --------------------------------------------------------------------------------------

def assert_one_line_error(result, fragment: str):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]


def test_errors_are_one_line(ds_encoded, carphone, tmp_path):
    path, _ = ds_encoded
    assert_one_line_error(run_cli("decode", path, "--fps-scale", "0", "--device", "cpu"), "--fps-scale")
    assert_one_line_error(run_cli("decode", path, "--fps-scale", "2", "--ref", carphone, "--ref-frames", "0:6",
                                  "--device", "cpu"), f"{FULL} frames")
    assert_one_line_error(run_cli("encode", carphone, "-o", tmp_path / "o.dnv", "--model", "dsnerv", "--bpp",
                                  "0.0001", "--frames", "0:4", "--device", "cpu"), "smallest model")
    # A header (with a right CRC) claiming more static codes than frames is refused.
    data = path.read_bytes()
    header, _ = bitstream.unpack(data)
    head = bytearray(bitstream.pack_header(header))
    struct.pack_into("<I", head, len(head) - 9, EVEN + 1)
    forged = bytearray(data)
    forged[6 + 9:6 + 9 + len(head)] = head
    forged[6 + 5:6 + 9] = struct.pack("<I", zlib.crc32(bytes(head)))
    (tmp_path / "forged.dnv").write_bytes(bytes(forged))
    assert_one_line_error(run_cli("info", tmp_path / "forged.dnv"), "static or dynamic codes")
    # A header declaring far more frames than its dynamic codes cover (a small file that would
    # decode for ever) is refused too.
    bomb = bitstream.Header(header.arch, 1_000_000, header.fps, header.quant_bits)
    with pytest.raises(BitstreamError, match="dynamic codes"):
        bitstream.unpack_header(bitstream.pack_header(bomb))
    with pytest.raises(BitstreamError, match="truncated"):
        bitstream.unpack_header(bitstream.pack_header(header)[:-1])
    assert not (tmp_path / "o.dnv").exists()


# --- the benchmark's report ----------------------------------------------------------------------

def test_models_benchmark_report():
    from benchmarks.models import render_md

    meta = {"command": "python3 -m benchmarks.models", "date": "today", "machine": "m", "gpu": "g",
            "torch": "t", "epochs": 5, "preset": "fast"}
    points = [{"clip": "c.mp4", "frame_range": [0, 9], "part": part, "model": m, "target_bpp": 0.1,
               "bpp": 0.1, "psnr": 30.0 + i, "psnr_coded": 31.0, "params": 1000, "encode_seconds": 1.0,
               "device": "cpu", "width": 176, "height": 144}
              for i, m in enumerate(("hnerv", "dnerv", "dsnerv")) for part in ("regression", "interpolation")]
    md = render_md({"meta": meta, "points": points})
    rows = [line for line in md.splitlines() if line.startswith("| 0.1 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["hnerv", "dnerv", "dsnerv"]
    assert "32.00" in rows[2] and "frames 0:9" in md
