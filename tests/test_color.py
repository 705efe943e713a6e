"""YUV 4:2:0 coding (issue 19): the sample format from reading to writing, the plane head of every model, the
plane-weighted loss, the COLOR section, and both PSNRs in the reports."""
from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from nvcodec import bitstream, codec, planeloss
from nvcodec.bitstream import BitstreamError, Header
from nvcodec.cli import main
from nvcodec.color import RGB, Color, ColorError, chroma_planes, fill_chroma, pack, psnr_yuv, replicate, unpack
from nvcodec.models import SPECS, param_count
from nvcodec.video import read_video, write_video, yuv_to_rgb

pytestmark = pytest.mark.usefixtures("single_thread")

BT709_TV = Color("yuv420", 1, 1, 1, 1)


def random_planes(t, h, w, seed=0) -> np.ndarray:
    """(t, h, w, 3) replicated 4:2:0 frames of random planes."""
    rng = np.random.default_rng(seed)
    ch, cw = -(-h // 2), -(-w // 2)
    return np.stack([replicate(rng.integers(0, 256, (h, w), np.uint8), rng.integers(0, 256, (ch, cw), np.uint8),
                               rng.integers(0, 256, (ch, cw), np.uint8)) for _ in range(t)])


def av_planes(frame: av.VideoFrame):
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width] for p in frame.planes]


# --- the COLOR section -------------------------------------------------------------------------------------------

def test_color_section_round_trips_and_refuses_what_ffmpeg_does_not_define():
    for color in (RGB, BT709_TV, Color("yuv420", 5, 2, 6, 6), Color("rgb", 0, 2, 2, 2)):
        assert unpack(pack(color)) == color
    for bad in (bytes([2, 1, 1, 1, 1]), bytes([1, 18, 1, 1, 1]), bytes([1, 1, 3, 1, 1]), bytes([1, 1, 1]),
                bytes([1, 1, 1, 23, 1]), bytes([1, 1, 1, 1, 19])):
        with pytest.raises(ColorError) as e:
            unpack(bad)
        assert "\n" not in str(e.value)


def tiny_arch(model="hinerv", color=RGB, width=35, height=27):
    return dataclasses.replace(SPECS[model].plan_for_params(width, height, 3000, frames=3).arch, color=color)


def test_rgb_files_without_a_colour_description_have_no_color_section():
    """What every file written before the COLOR section was: the same bytes."""
    header = Header(tiny_arch(), 3, Fraction(25), 8)
    data = bitstream.pack(header, {})
    assert "COLOR" not in bitstream.section_sizes(data)
    assert bitstream.unpack(data)[0].arch.color == RGB


def test_yuv_files_carry_the_color_section_and_a_damaged_one_is_refused():
    header = Header(tiny_arch(color=BT709_TV), 3, Fraction(25), 8)
    data = bitstream.pack(header, {})
    assert bitstream.section_sizes(data)["COLOR"] == 9 + 5
    assert bitstream.unpack(data)[0] == header
    damaged = bitstream.pack(header, {}).replace(pack(BT709_TV), bytes([7, 1, 1, 1, 1]))
    from benchmarks.fuzz_dnv import forge_crcs
    with pytest.raises(BitstreamError, match="unknown sample format 7"):
        bitstream.unpack(forge_crcs(damaged))


def test_the_fuzzer_knows_the_color_tag():
    from benchmarks.fuzz_dnv import COLOR_TAG
    assert bitstream.SECTION_TAGS["COLOR"] == COLOR_TAG


# --- every model codes 4:2:0 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", list(SPECS))
def test_every_model_codes_yuv420(model, crop, tmp_path):
    """A tiny encode and decode of each registered model in 4:2:0: the network's size does not depend on it."""
    rgb, yuv = tiny_arch(model, RGB), tiny_arch(model, BT709_TV)
    assert param_count(rgb) == param_count(yuv)
    out = tmp_path / "m.dnv"
    report = codec.encode(crop, out, model=model, bpp=24, epochs=1, prune_epochs=0, device="cpu", progress=False)
    assert report["color"].startswith("yuv420")
    planes, meta = codec.decode_to_array(out, device="cpu", planes=True)
    assert planes.shape == (3, 32, 48, 3) and meta["color"].startswith("yuv420")
    assert np.array_equal(planes, fill_chroma(planes))      # the chroma samples, each over its 2x2 block


# --- the loss ----------------------------------------------------------------------------------------------------

def test_plane_weights_are_checked():
    assert planeloss.parse_weights("6:1:1") == (6.0, 1.0, 1.0)
    for bad in ("6:1", "a:b:c", "-1:1:1", "0:0:0", "inf:1:1"):
        with pytest.raises(ValueError, match="plane_weights"):
            planeloss.parse_weights(bad)
    with pytest.raises(codec.CodecError, match="plane_weights"):
        codec.EncodeConfig(train_options={"plane_weights": "1:1"})


def test_yuv_loss_counts_each_stored_sample_once_with_the_plane_weights():
    ref = torch.rand(2, 3, 6, 8)
    out = ref.clone()
    out[:, 1:, 1::2, :] += 0.5      # chroma rows that are only copies: not stored, not counted
    out[:, 1:, :, 1::2] += 0.5
    assert planeloss.frame_mse("yuv420", "6:1:1")(out, ref).abs().max() == 0
    out = ref.clone()
    out[:, 0] += 0.1
    assert torch.allclose(planeloss.frame_mse("yuv420", "6:1:1")(out, ref), torch.full((2,), 0.75 * 0.01))
    out[:, 2, ::2, ::2] += 0.2
    loss = planeloss.plane_loss(lambda a, b: F.mse_loss(a, b), "yuv420", "6:1:1")(out, ref)
    assert torch.isclose(loss, torch.tensor((6 * 0.01 + 0.04) / 8))
    assert torch.equal(planeloss.batch_mse("rgb", "6:1:1")(out, ref), F.mse_loss(out, ref))


# --- reading and writing -----------------------------------------------------------------------------------------

def test_a_420_source_is_read_as_its_own_planes(testdata):
    clip = testdata / "carphone_qcif_16f.mp4"
    planes, info = read_video(clip, frame_range=(0, 2), color=None)
    rgb, _ = read_video(clip, frame_range=(0, 2))
    assert info.color.planes == "yuv420" and info.color.range == 1
    with av.open(str(clip)) as c:
        first = next(c.decode(video=0))
    y, u, v = av_planes(first)
    py, pu, pv = chroma_planes(planes[0])
    assert np.array_equal(py, y) and np.array_equal(pu, u) and np.array_equal(pv, v)
    # Converted with the declared matrix and range, the planes give exactly the RGB frames read before.
    assert np.array_equal(yuv_to_rgb(planes, info.color), rgb)


def test_full_range_jpeg_frames_keep_their_range(testdata):
    planes, info = read_video(testdata / "bunny_854x480_jpg", frame_range=(0, 1), color=None)
    assert info.color.planes == "yuv420" and info.color.full_range


@pytest.mark.parametrize("size", [(64, 48), (175, 143)])
def test_planes_go_into_y4m_and_ffv1_as_they_are(tmp_path, size):
    frames = random_planes(2, size[1], size[0])
    color = Color("yuv420", 1, 2, 1, 1)
    for name in ("a.y4m", "a.mkv"):
        write_video(tmp_path / name, frames, 25, color)
        back, info = read_video(tmp_path / name, color="yuv420")
        if size[0] % 2 == 0 or name.endswith(".y4m"):
            assert np.array_equal(back, frames), name
        else:   # odd-sized FFV1 is written as 4:4:4 with the chroma repeated: still lossless
            with av.open(str(tmp_path / name)) as c:
                frame = next(c.decode(video=0))
            assert frame.format.name == "yuv444p"
            assert np.array_equal(np.stack(av_planes(frame), -1), frames[0])
    with av.open(str(tmp_path / "a.mkv")) as c:    # the colour description is written back
        cc = c.streams.video[0].codec_context
        assert (cc.colorspace, cc.color_range) == (1, 2)


def test_mp4_output_is_tagged_with_the_source_description(tmp_path):
    frames = random_planes(2, 48, 64)
    write_video(tmp_path / "a.mp4", frames, 25, Color("yuv420", 5, 2, 6, 6))
    with av.open(str(tmp_path / "a.mp4")) as c:
        frame = next(c.decode(video=0))
    assert (frame.colorspace, frame.color_range) == (5, 2)


def test_png_output_is_rgb_converted_with_the_declared_matrix(tmp_path):
    frames = random_planes(1, 27, 35)
    color = Color("yuv420", 1, 1, 1, 1)
    write_video(f"{tmp_path}/png/", frames, 25, color)
    back, _ = read_video(tmp_path / "png")
    assert np.array_equal(back, yuv_to_rgb(frames, color))
    assert not np.array_equal(back, yuv_to_rgb(frames, Color("yuv420", 6, 2)))    # the matrix matters


def test_yuv_psnr_weights_the_planes_six_one_one():
    a = random_planes(1, 8, 8)
    b = a.copy()
    b[..., 0] ^= 1                  # Y off by one everywhere: 48.13 dB; U and V exact: 100 dB (the cap)
    y_psnr = 10 * np.log10(255 ** 2)
    assert float(psnr_yuv(a, b)[0]) == pytest.approx((6 * y_psnr + 200) / 8)


# --- end to end --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crop(testdata, tmp_path_factory):
    """3 frames of carphone, 48x32, as 4:2:0 (y4m)."""
    frames, info = read_video(testdata / "carphone_qcif_16f.mp4", frame_range=(0, 3), color=None)
    path = tmp_path_factory.mktemp("crop") / "crop.y4m"
    write_video(path, np.ascontiguousarray(frames[:, 40:72, 60:108]), info.fps, info.color)
    return path


@pytest.mark.parametrize("color", ["yuv420", "rgb"])
def test_encode_reports_both_psnrs_and_decode_agrees(crop, tmp_path, color):
    out, report_path = tmp_path / "c.dnv", tmp_path / "c.json"
    args = ["encode", str(crop), "-o", str(out), "--bpp", "8", "--epochs", "2", "--prune-epochs", "1",
            "--device", "cpu", "-q", "--json", str(report_path)]
    r = CliRunner().invoke(main, args + ([] if color == "yuv420" else ["--color", "rgb"]))   # 4:2:0: the default
    assert r.exit_code == 0, r.output
    report = json.loads(report_path.read_text())
    assert report["color"].startswith(color) and "(YUV 6:1:1)" in r.output
    info = codec.info(out)
    assert info["color"] == color and ("COLOR" in info["sections"])
    decoded = codec.decode(out, tmp_path / "d.y4m", ref=crop, device="cpu")
    # The file is the truth: decoding measures what encoding reported. (The YUV PSNR of an RGB file: the encoder
    # has the source's RGB only, and compares both sides converted back to 4:2:0; decoding compares with the
    # source's own planes.)
    assert decoded["psnr"] == pytest.approx(report["psnr"], abs=1e-9)
    assert decoded["psnr_yuv"] == pytest.approx(report["psnr_yuv"], abs=1e-9 if color == "yuv420" else 0.3)
    assert 5 < report["psnr_yuv"] < 100 and 5 < report["psnr"] < 100
    written, _ = read_video(tmp_path / "d.y4m", color="yuv420")
    planes, meta = codec.decode_to_array(out, device="cpu", planes=True)
    if color == "yuv420":           # the network's planes, written without conversion
        assert np.array_equal(written, planes) and meta["color"].startswith("yuv420")
        rgb, _ = codec.decode_to_array(out, device="cpu")
        assert np.array_equal(rgb, yuv_to_rgb(planes, info_color(out)))
    r = CliRunner().invoke(main, ["info", str(out)])
    assert r.exit_code == 0 and f"HiNeRV, {color} (" in r.output and "sample format" in r.output


def info_color(path):
    return bitstream.unpack(path.read_bytes())[0].arch.color


def test_bad_color_option_is_one_line(crop, tmp_path):
    r = CliRunner().invoke(main, ["encode", str(crop), "-o", str(tmp_path / "x.dnv"), "--color", "yuv444"])
    assert r.exit_code == 2 and "yuv444" in r.output
    with pytest.raises(codec.CodecError, match="unknown --color"):
        codec.EncodeConfig(color="yuv444")


def test_psnr_balance_weighs_each_planes_log_error():
    ref = torch.zeros(1, 3, 4, 4)
    out = ref.clone()
    out[:, 0] += 0.1                 # Y: MSE 1e-2
    out[:, 1, ::2, ::2] += 0.01      # U: MSE 1e-4 at its samples; V exact (clamped at 1e-10)
    loss = planeloss.plane_loss(lambda a, b: F.mse_loss(a, b), "yuv420", "6:1:1", "psnr")(out, ref)
    assert torch.isclose(loss, torch.tensor((6 * -2.0 + -4.0 + -10.0) / 8))
    with pytest.raises(codec.CodecError, match="plane_balance"):
        codec.EncodeConfig(train_options={"plane_balance": "ssim"})


@pytest.mark.parametrize("pix_fmt, default, note", [
    ("yuv420p", "yuv420", None),
    ("yuv420p10le", "yuv420", "10-bit source (yuv420p10le) coded as 8-bit 4:2:0"),
    ("yuv422p", "rgb", None),
    ("yuv444p", "rgb", None),
    ("gray", "rgb", None),
])
def test_each_source_format_is_coded_as_the_supported_inputs_table_says(tmp_path, pix_fmt, default, note):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 143, 175, 3), np.uint8)         # an odd size too
    path = tmp_path / "in.mkv"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 175, 143, pix_fmt
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    got, info = read_video(path, color=None)
    assert info.color.planes == default and got.shape == (2, 143, 175, 3)
    assert (note in info.notes) if note else not info.notes
    planes, info = read_video(path, color="yuv420")     # asked for: every format can be coded as 4:2:0
    y, u, v = chroma_planes(planes)
    assert u.shape == v.shape == (2, 72, 88)
    if pix_fmt in ("yuv422p", "yuv444p"):
        assert any("chroma subsampled to 4:2:0" in n for n in info.notes)
    if pix_fmt == "gray":
        assert (u == 128).all() and (v == 128).all()


def test_the_sample_format_is_read_from_a_files_first_bytes():
    header = Header(tiny_arch(color=BT709_TV), 3, Fraction(25), 8)
    data = bitstream.pack(header, {"DECODER": b"x" * 1000})
    assert bitstream.color_of(data[:200]) == BT709_TV
    assert bitstream.color_of(bitstream.pack(Header(tiny_arch(), 3, Fraction(25), 8), {})) == RGB
    damaged = bytearray(data)
    damaged[data.index(pack(BT709_TV))] ^= 1
    with pytest.raises(BitstreamError, match="COLOR"):
        bitstream.color_of(bytes(damaged[:200]))


def test_the_float_models_psnr_is_measured_as_the_reports_yuv_psnr():
    # Training's evaluation (planeloss.frame_psnr) on frames in [0, 1] and the report's YUV PSNR on the same frames as
    # uint8 agree, so that the report's float-model figure and the file's compare (RGB: the plain PSNR).
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (2, 6, 8, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    as_float = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2).double() / 255  # noqa: E731
    yuv = planeloss.frame_psnr("yuv420")(as_float(b), as_float(a))
    assert torch.allclose(yuv, psnr_yuv(b, a).double(), atol=1e-9)
    rgb = planeloss.frame_psnr("rgb")(as_float(b), as_float(a))
    mse = ((b.astype(float) - a) / 255) ** 2
    assert torch.allclose(rgb, torch.from_numpy(-10 * np.log10(mse.reshape(2, -1).mean(1))), atol=1e-9)
