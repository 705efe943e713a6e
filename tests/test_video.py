"""Tests for nvcodec.video: real clips in, every output kind out, colour range, errors."""

import hashlib
import math
import shutil
from fractions import Fraction

import av
import numpy as np
import pytest

from nvcodec.video import (
    VideoError,
    VideoReader,
    VideoWriter,
    parse_fps,
    parse_frame_range,
    read_video,
    write_video,
)

BUNNY = "bigbuckbunny_1280x720_8f.mp4"  # 8 frames, yuv420p, no colorspace declared, + AAC audio
COFFEE = "coffee_1280x720_16f.mp4"  # 16 frames, yuv420p, declares BT.709 tv range, + AAC audio
OPENH264 = "openh264_1920x1080_fullrange_5f.264"  # Annex-B, yuvj420p (full range), 5 frames
CARPHONE = "carphone_qcif_16f.mp4"  # 176x144, 29.97 fps, 16 frames
CISCO = "CiscoVT2people_320x192_5f.yuv"  # raw I420, 5 frames
JPEGS = "bunny_854x480_jpg"  # 5 JPEG frames of 854x480 (yuvj420p)
NTSC = Fraction(30000, 1001)


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.fixture(scope="module")
def carphone(testdata):
    """Four real 176x144 frames to write out."""
    frames, _ = read_video(testdata / CARPHONE, frame_range=(0, 4))
    return frames


@pytest.fixture(scope="module")
def carphone_odd(carphone):
    # Test input of odd size, cut from real frames (the library itself never crops).
    return np.ascontiguousarray(carphone[:, :143, :175])


# ------------------------------------------------------------------ parsing

@pytest.mark.parametrize("text, expected", [
    (None, (0, None)), ("", (0, None)), (":", (0, None)), ("5:10", (5, 10)),
    (":7", (0, 7)), ("3:", (3, None)), (" 2 : 4 ", (2, 4)),
])
def test_parse_frame_range(text, expected):
    assert parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["10:5", "5:5", "-1:3", "2:-1", "a:b", "10", "1:2:3", "1.5:3"])
def test_parse_frame_range_rejects(text):
    with pytest.raises(VideoError, match="frame range"):
        parse_frame_range(text)


def test_parse_fps():
    assert parse_fps("30000/1001") == NTSC
    assert parse_fps(25) == 25 and parse_fps(Fraction(24)) == 24
    assert parse_fps(29.97) == Fraction(2997, 100)
    for bad in ("0", "-3", "abc", "1/0"):
        with pytest.raises(VideoError, match="frame rate"):
            parse_fps(bad)


@pytest.mark.parametrize("frame_range", [(-1, 3), (5, 2), (4, 4)])
def test_reader_rejects_bad_range(testdata, frame_range):
    with pytest.raises(VideoError, match="frame range"):
        VideoReader(testdata / CARPHONE, frame_range=frame_range)


# ------------------------------------------------------------------ inputs

def test_mp4_with_audio_matches_ffmpeg_bit_exactly(testdata):
    frames, info = read_video(testdata / BUNNY, frame_range=(0, 2))
    assert frames.shape == (2, 720, 1280, 3) and frames.dtype == np.uint8
    assert (info.width, info.height, info.fps, info.frames) == (1280, 720, 25, 2)
    assert (info.pix_fmt, info.color_range) == ("yuv420p", "tv")
    assert "audio stream ignored" in info.notes
    # MD5 of `ffmpeg -i BUNNY -map 0:v -pix_fmt rgb24` frame 1 (FFmpeg 9.0.2), which the
    # MANIFEST says equals NeRV's f00001.png: we must reproduce the benchmark exactly.
    assert hashlib.md5(frames[0].tobytes()).hexdigest() == "98e0e33fe9245a72a2500ab543e99d49"


def test_frame_range_decodes_from_the_start(testdata):
    with VideoReader(testdata / BUNNY, frame_range=(3, 5)) as reader:
        assert reader.info.frames == 2  # mp4 stores its frame count
        part = list(reader)
    whole, _ = read_video(testdata / BUNNY, frame_range=(0, 5))
    assert len(part) == 2
    np.testing.assert_array_equal(np.stack(part), whole[3:5])
    assert not np.array_equal(whole[0], whole[3])  # the range really moved


def test_raw_h264_annexb(testdata):
    with VideoReader(testdata / OPENH264, frame_range=(0, 2)) as reader:
        info = reader.info
        assert info.frames is None  # no container, so no stored frame count
        frames = np.stack(list(reader))
    assert frames.shape == (2, 1080, 1920, 3)
    assert info.fps == 25  # from the SPS timing info
    assert (info.pix_fmt, info.color_range) == ("yuvj420p", "pc")
    assert "fps unknown, assuming 25" not in info.notes
    _, info = read_video(testdata / OPENH264, frame_range=(3, None))
    assert info.frames == 2  # 5 frames in all


def test_jpeg_folder(testdata):
    frames, info = read_video(testdata / JPEGS, frame_range=(0, 3))
    assert frames.shape == (3, 480, 854, 3)
    assert (info.pix_fmt, info.color_range, info.fps) == ("yuvj420p", "pc", 25)
    assert "fps unknown, assuming 25" in info.notes
    with VideoReader(testdata / JPEGS, frame_range=(3, None), fps=24) as reader:
        assert reader.info.fps == 24 and reader.info.frames == 2
        assert not any("fps" in n for n in reader.info.notes)


def test_image_folder_natural_order_and_odd_file(testdata, tmp_path):
    src = sorted((testdata / JPEGS).glob("*.jpg"))[:3]
    folder = tmp_path / "frames"
    folder.mkdir()
    for name, f in zip(["f1.jpg", "f2.jpg", "f10.jpg"], src):
        shutil.copy(f, folder / name)
    (folder / "notes.txt").write_text("not a frame")
    frames, _ = read_video(folder)
    expected, _ = read_video(testdata / JPEGS, frame_range=(0, 3))
    np.testing.assert_array_equal(frames, expected)  # f10 comes after f2

    write_video(f"{tmp_path}/small/", np.zeros((1, 64, 48, 3), np.uint8), 25)
    shutil.copy(tmp_path / "small" / "frame_000001.png", folder / "f5.png")
    with pytest.raises(VideoError, match=r"f5\.png.*48x64"):
        read_video(folder)


def test_raw_yuv(testdata):
    path = testdata / CISCO
    with VideoReader(path, size=(320, 192)) as reader:
        assert reader.info.frames == 5
    frames, info = read_video(path, size=(320, 192), frame_range=(3, None), fps="12")
    assert frames.shape == (2, 192, 320, 3)
    assert (info.fps, info.frames, info.pix_fmt, info.color_range) == (12, 2, "yuv420p", "tv")
    # Compare with a BT.601 tv-range conversion of the file's own bytes.
    raw = np.fromfile(path, np.uint8).reshape(5, -1)[3]
    y, u, v = split_i420(raw, 320, 192)
    ref = reference_rgb(y, u, v, "bt601", full=False)
    assert np.abs(frames[0] - ref).max() <= 3


def split_i420(raw, w, h):
    y = raw[: w * h].reshape(h, w)
    u = raw[w * h: w * h * 5 // 4].reshape(h // 2, w // 2)
    v = raw[w * h * 5 // 4:].reshape(h // 2, w // 2)
    return y, u, v


def test_raw_yuv_pixel_formats(testdata, tmp_path):
    w, h = 320, 192
    base, _ = read_video(testdata / CISCO, size=(w, h), frame_range=(0, 2))
    raw = np.fromfile(testdata / CISCO, np.uint8).reshape(5, -1)[:2]
    planes = [split_i420(r, w, h) for r in raw]

    def up(c, fy, fx):
        return np.repeat(np.repeat(c, fy, 0), fx, 1)

    layouts = {
        "nv12": lambda y, u, v: [y, np.stack([u, v], -1)],
        "yuv422p": lambda y, u, v: [y, up(u, 2, 1), up(v, 2, 1)],
        "yuv444p": lambda y, u, v: [y, up(u, 2, 2), up(v, 2, 2)],
        "yuv420p10le": lambda y, u, v: [(p.astype("<u2") << 2) for p in (y, u, v)],
    }
    for fmt, layout in layouts.items():
        path = tmp_path / f"{fmt}.yuv"
        path.write_bytes(b"".join(p.tobytes() for yuv in planes for p in layout(*yuv)))
        frames, info = read_video(path, size=(w, h), pix_fmt=fmt)
        assert frames.shape == base.shape and info.pix_fmt == fmt, fmt
        # Same samples, so the same picture; swscale's chroma filter differs per format.
        assert psnr(frames, base) > 35, fmt
        # (FFmpeg's fast yuv420p->RGB path reads about 1 level low, the others do not.)
        assert np.abs(frames.mean((0, 1, 2)) - base.mean((0, 1, 2))).max() < 1.5, fmt

    (tmp_path / "gray.yuv").write_bytes(b"".join(p[0].tobytes() for p in planes))
    gray, _ = read_video(tmp_path / "gray.yuv", size=(w, h), pix_fmt="gray")
    np.testing.assert_array_equal(gray, np.stack([np.stack([p[0]] * 3, -1) for p in planes]))

    base.tofile(tmp_path / "rgb.yuv")
    rgb, info = read_video(tmp_path / "rgb.yuv", size=(w, h), pix_fmt="rgb24")
    np.testing.assert_array_equal(rgb, base)
    assert info.color_range == "pc"


def test_raw_yuv_errors(testdata):
    with pytest.raises(VideoError, match=r"raw \.yuv needs --size WxH"):
        VideoReader(testdata / CISCO)
    with pytest.raises(VideoError, match="not a multiple"):
        VideoReader(testdata / CISCO, size=(320, 180))
    with pytest.raises(VideoError, match="pixel format 'yuv410p' not supported"):
        VideoReader(testdata / CISCO, size=(320, 192), pix_fmt="yuv410p")


def pyav_write(path, fmt, codec, frames, fps, options=None, pix_fmt="yuv420p"):
    """Encode real frames with PyAV directly (not our writer) to make test inputs."""
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=fps, options=options or {})
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = pix_fmt
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.mark.parametrize("name, fmt, codec, options, min_psnr", [
    ("clip.mov", "mov", "libx264", {"crf": "10"}, 35),
    ("clip.avi", "avi", "mpeg4", {"qscale": "2"}, 30),
    ("clip.webm", "webm", "libvpx-vp9",
     {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}, 32),
    ("clip.265", "hevc", "libx265", {"crf": "10", "x265-params": "log-level=error"}, 35),
    ("clip.mkv", "matroska", "libx264", {"crf": "10"}, 35),
])
def test_containers_written_by_pyav(carphone, tmp_path, name, fmt, codec, options, min_psnr):
    path = tmp_path / name
    pyav_write(path, fmt, codec, carphone, NTSC, options)
    frames, info = read_video(path)
    assert frames.shape == carphone.shape
    assert (info.width, info.height, info.fps) == (176, 144, NTSC)
    assert psnr(frames, carphone) > min_psnr


def test_y4m_input_and_odd_size(carphone_odd, tmp_path):
    path = tmp_path / "odd.y4m"
    pyav_write(path, "yuv4mpegpipe", "rawvideo", carphone_odd, 50)
    frames, info = read_video(path, frame_range=(1, None))
    assert frames.shape == (3, 143, 175, 3)
    assert (info.width, info.height, info.fps, info.pix_fmt) == (175, 143, 50, "yuv420p")
    assert psnr(frames, carphone_odd[1:]) > 35

    # The same samples without the y4m headers, as an odd-sized raw .yuv.
    payload = path.read_bytes().split(b"FRAME\n")[1:]
    raw = tmp_path / "odd.yuv"
    raw.write_bytes(b"".join(payload))
    assert len(payload[0]) == 175 * 143 + 2 * 88 * 72
    raw_frames, _ = read_video(raw, size=(175, 143), frame_range=(1, None))
    np.testing.assert_array_equal(raw_frames, frames)


# ------------------------------------------------------------------ colour range

KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def reference_rgb(y, u, v, matrix, full):
    """Textbook YUV->RGB in float, chroma repeated 2x2 (as FFmpeg's unscaled path does)."""
    h, w = y.shape
    u = np.repeat(np.repeat(u, 2, 0), 2, 1)[:h, :w].astype(np.float64)
    v = np.repeat(np.repeat(v, 2, 0), 2, 1)[:h, :w].astype(np.float64)
    y = y.astype(np.float64)
    if full:
        yn, un, vn = y / 255, (u - 128) / 255, (v - 128) / 255
    else:
        yn, un, vn = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    kr, kb = KR_KB[matrix]
    r = yn + 2 * (1 - kr) * vn
    b = yn + 2 * (1 - kb) * un
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.stack([r, g, b], -1) * 255, 0, 255)


def first_frame_planes(path):
    """Y, U, V planes of the first frame, straight from the decoder."""
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    assert frame.format.name in ("yuv420p", "yuvj420p")
    h, w = frame.height, frame.width
    a = frame.to_ndarray()  # (H*3/2, W): Y rows, then U, then V
    u, v = a[h:].reshape(2, h // 2, w // 2)
    return a[:h], u, v


@pytest.mark.parametrize("clip, source, matrix, full, range_name", [
    (OPENH264, OPENH264, "bt601", True, "pc"),  # yuvj420p, no matrix declared
    (COFFEE, COFFEE, "bt709", False, "tv"),  # declares BT.709 tv
    (BUNNY, BUNNY, "bt601", False, "tv"),  # declares nothing: FFmpeg's BT.601
    (JPEGS, f"{JPEGS}/00000.jpg", "bt601", True, "pc"),  # JPEG
])
def test_colour_range_and_matrix(testdata, clip, source, matrix, full, range_name):
    frames, info = read_video(testdata / clip, frame_range=(0, 1))
    assert info.color_range == range_name
    y, u, v = first_frame_planes(testdata / source)
    ours = frames[0].astype(np.float64)
    right = reference_rgb(y, u, v, matrix, full)
    # FFmpeg's fast converter runs about 1 level low; a range mix-up is off by 4-11
    # levels on average and a matrix mix-up by 10+ on saturated pixels.
    assert np.abs(ours.mean((0, 1)) - right.mean((0, 1))).max() < 1.6
    assert np.abs(ours - right).max() <= 3
    other_matrix = "bt709" if matrix == "bt601" else "bt601"
    for wrong in (reference_rgb(y, u, v, matrix, not full),
                  reference_rgb(y, u, v, other_matrix, full)):
        assert np.abs(ours - wrong).max() >= 10


@pytest.mark.parametrize("fmt, name", [("matroska", "pc.mkv"), ("yuv4mpegpipe", "pc.y4m")])
def test_declared_full_range_on_plain_yuv420p(testdata, tmp_path, fmt, name):
    """Full range declared by tag, not by a yuvj* format, must convert as full range too."""
    y, u, v = first_frame_planes(testdata / OPENH264)
    y, u, v = y[:240, :320], u[:120, :160], v[:120, :160]  # real full-range samples
    path = tmp_path / name
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("ffv1" if fmt == "matroska" else "rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = 320, 240, "yuv420p"
        s.codec_context.color_range = 2  # JPEG / pc
        frame = av.VideoFrame.from_ndarray(np.concatenate([y, u.reshape(60, 320),
                                                           v.reshape(60, 320)]), "yuv420p")
        frame.pts = 0
        for p in [*s.encode(frame), *s.encode(None)]:
            c.mux(p)
    frames, info = read_video(path)
    assert (info.pix_fmt, info.color_range) == ("yuv420p", "pc")
    ours = frames[0].astype(np.float64)
    assert np.abs(ours - reference_rgb(y, u, v, "bt601", full=True)).max() <= 3
    assert np.abs(ours - reference_rgb(y, u, v, "bt601", full=False)).max() >= 10


# ------------------------------------------------------------------ outputs

def test_mkv_is_lossless(carphone, carphone_odd, tmp_path):
    for frames in (carphone, carphone_odd):
        path = tmp_path / f"{frames.shape[2]}.mkv"
        write_video(path, frames, NTSC)
        back, info = read_video(path)
        np.testing.assert_array_equal(back, frames)
        assert info.fps == NTSC and info.frames == len(frames)


def test_mp4_output(carphone, tmp_path):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, 176, 144, NTSC) as w:
        for f in carphone:  # one frame at a time
            w.write(f)
    assert w.notes == []
    back, info = read_video(path)
    assert back.shape == carphone.shape and info.fps == NTSC
    assert info.pix_fmt == "yuv420p" and info.color_range == "tv"
    assert psnr(back, carphone) > 36  # CRF 10, but 4:2:0 loses fine colour detail
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.colorspace, cc.color_range) == ("h264", 1, 1)  # BT.709, tv


def test_mp4_odd_size_is_444(carphone_odd, tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 175, 143, 25) as w:
        w.write(carphone_odd)
    assert any("yuv444p" in n for n in w.notes)
    back, info = read_video(path)
    assert back.shape == carphone_odd.shape and info.pix_fmt == "yuv444p"
    assert psnr(back, carphone_odd) > 38


def test_y4m_output(carphone, carphone_odd, tmp_path):
    for frames in (carphone, carphone_odd):
        path = tmp_path / f"{frames.shape[2]}.y4m"
        write_video(path, frames, 12)
        assert path.read_bytes().startswith(b"YUV4MPEG2 W%d H%d F12:1" % frames.shape[2:0:-1])
        back, info = read_video(path)
        assert back.shape == frames.shape and info.fps == 12
        assert psnr(back, frames) > 38


def test_png_folder_output(carphone, tmp_path):
    write_video(str(tmp_path / "pngs") + "/", carphone, 25)
    names = sorted(p.name for p in (tmp_path / "pngs").iterdir())
    assert names == [f"frame_{i:06d}.png" for i in range(1, 5)]
    back, info = read_video(tmp_path / "pngs")
    np.testing.assert_array_equal(back, carphone)
    assert info.pix_fmt == "rgb24"

    existing = tmp_path / "empty"  # an existing empty folder is a folder target too
    existing.mkdir()
    write_video(existing, carphone[:1], 25)
    assert [p.name for p in existing.iterdir()] == ["frame_000001.png"]
    with pytest.raises(VideoError, match="not empty"):
        VideoWriter(existing, 176, 144, 25)


def test_unknown_output_extension(tmp_path):
    with pytest.raises(VideoError, match=r"\.avi.*\.mp4.*\.mkv.*\.y4m"):
        VideoWriter(tmp_path / "out.avi", 16, 16, 25)
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(VideoError, match=r"\(144, 176, 3\)"):
        with VideoWriter(tmp_path / "x.mkv", 176, 144, 25) as w:
            w.write(np.zeros((144, 175, 3), np.uint8))
    with pytest.raises(VideoError, match="uint8"):
        with VideoWriter(tmp_path / "x.mkv", 176, 144, 25) as w:
            w.write(np.zeros((144, 176, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("target", ["out.mp4", "out.mkv", "out.y4m", "out/"])
def test_writer_is_atomic(carphone, tmp_path, target):
    path = tmp_path / target
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(f"{tmp_path}/{target}", 176, 144, 25) as w:
            w.write(carphone)
            assert not path.exists()  # nothing under the final name while writing
            assert len(list(tmp_path.iterdir())) == 1  # only the hidden temporary
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    w = VideoWriter(f"{tmp_path}/{target}", 176, 144, 25)
    w.write(carphone[:1])
    w.abort()
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(VideoError, match="no frames were written"):
        VideoWriter(f"{tmp_path}/{target}", 176, 144, 25).close()
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_existing_file(carphone, tmp_path):
    path = tmp_path / "out.mkv"
    path.write_bytes(b"old")
    write_video(path, carphone[:2], 25)
    back, _ = read_video(path)
    np.testing.assert_array_equal(back, carphone[:2])
    assert [p.name for p in tmp_path.iterdir()] == ["out.mkv"]


# ------------------------------------------------------------------ input errors

def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(VideoError) as err:
        result = fn(*args, **kwargs)
        if isinstance(result, VideoReader):
            list(result)
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_missing_file(tmp_path):
    assert one_line_error(read_video, tmp_path / "nope.mp4") == f"No such file: {tmp_path / 'nope.mp4'}"


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    msg = one_line_error(read_video, path)
    assert str(path) in msg and "not a video" in msg


def test_audio_only(testdata, tmp_path):
    path = tmp_path / "audio.m4a"  # the real AAC track of Big Buck Bunny, remuxed
    with av.open(str(testdata / BUNNY)) as src, av.open(str(path), "w", format="mp4") as dst:
        out = dst.add_stream_from_template(src.streams.audio[0])
        for i, packet in enumerate(src.demux(src.streams.audio[0])):
            if packet.dts is None or i > 20:
                continue
            packet.stream = out
            dst.mux(packet)
    msg = one_line_error(VideoReader, path)
    assert str(path) in msg and "no video stream" in msg


def test_zero_frames(testdata, tmp_path):
    header_only = tmp_path / "empty.y4m"
    header_only.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n")
    assert "has no frames" in one_line_error(read_video, header_only)

    empty_mkv = tmp_path / "empty.mkv"
    with av.open(str(empty_mkv), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "bgr0"
        c.start_encoding()
    assert "has no frames" in one_line_error(read_video, empty_mkv)

    msg = one_line_error(read_video, testdata / CARPHONE, frame_range=(200, 210))
    assert "no frames in range 200:210 (video has 16 frames)" in msg
    msg = one_line_error(VideoReader, testdata / CARPHONE, frame_range=(16, None))
    assert "no frames in range 16:" in msg


def test_corrupt_mid_stream_keeps_good_frames(carphone, tmp_path):
    good = tmp_path / "good.y4m"
    pyav_write(good, "yuv4mpegpipe", "rawvideo", carphone, 25)
    data = good.read_bytes()
    third = data.index(b"FRAME", data.index(b"FRAME", data.index(b"FRAME") + 1) + 1)
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(data[:third] + b"XXXXX" + data[third + 5:])
    frames, info = read_video(bad)
    expected, _ = read_video(good, frame_range=(0, 2))
    np.testing.assert_array_equal(frames, expected)
    assert any(n.startswith("corrupt data after 2 good frames") for n in info.notes)


def test_corrupt_before_first_frame_raises(carphone, tmp_path):
    good = tmp_path / "good.y4m"
    pyav_write(good, "yuv4mpegpipe", "rawvideo", carphone, 25)
    data = good.read_bytes()
    first = data.index(b"FRAME")
    bad = tmp_path / "bad.y4m"
    bad.write_bytes(data[:first] + b"XXXXX" + data[first + 5:])
    msg = one_line_error(read_video, bad)
    assert str(bad) in msg and "unreadable data at frame 0" in msg


def coffee_cut_in_video_packet(testdata, tmp_path, k):
    """The coffee clip cut off in the middle of its k-th video packet (a broken download)."""
    data = (testdata / COFFEE).read_bytes()
    with av.open(str(testdata / COFFEE)) as c:
        packet = next(p for i, p in enumerate(c.demux(video=0)) if i == k)
        cut = packet.pos + packet.size // 2
    path = tmp_path / f"cut{k}.mp4"
    path.write_bytes(data[:cut])
    return path


def test_truncated_mp4(testdata, tmp_path):
    path = coffee_cut_in_video_packet(testdata, tmp_path, 0)
    msg = one_line_error(read_video, path)
    assert str(path) in msg

    path = coffee_cut_in_video_packet(testdata, tmp_path, 8)
    frames, info = read_video(path)
    assert 1 <= len(frames) < 8
    expected, _ = read_video(testdata / COFFEE, frame_range=(0, len(frames)))
    np.testing.assert_array_equal(frames, expected)
    assert f"only {len(frames)} of 16 frames could be decoded (file truncated?)" in info.notes
