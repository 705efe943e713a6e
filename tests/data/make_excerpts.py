"""Build the test excerpts in tests/data from the full clips of ../shared/testdata (see MANIFEST.md).

    python3 tests/data/make_excerpts.py [SOURCE_FOLDER]

The compressed clips are cut without re-encoding (their first packets are copied as they are, so the
decoded frames are bit-identical to the originals' first frames and the stream keeps its quirks: colour
tags, B-frames, full range, the audio track); the raw .yuv keeps its first frames' bytes. The JPEG folder
is made anew from Big Buck Bunny frames, because the DAVIS frames the tests used before may not be
redistributed. The script checks every excerpt against its source and exits 1 on any difference.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import av
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "testdata"

# excerpt name: (source name, frames kept)
MP4_CUTS = {
    "carphone_qcif_16f.mp4": ("carphone_qcif_120f_x264qp10.mp4", 16),
    "bigbuckbunny_1280x720_8f.mp4": ("bigbuckbunny_1280x720_132f.mp4", 8),
    "coffee_1280x720_16f.mp4": ("sam2_04_coffee_1280x720.mp4", 16),
}
ANNEXB_CUT = ("openh264_1920x1080_fullrange_5f.264", "openh264_VID_1920x1080_25fps_54f.264", 5)
YUV_CUT = ("CiscoVT2people_320x192_5f.yuv", "CiscoVT2people_320x192_12fps.yuv", 5, 320 * 192 * 3 // 2)
JPEG_FOLDER = ("bunny_854x480_jpg", "bigbuckbunny_1280x720_132f.mp4", range(64, 69), (854, 480), 85)


def decoded(path: Path, count: int | None = None) -> list[np.ndarray]:
    """The first `count` frames of a video (all of them when None), as the decoder gives its planes."""
    frames = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            frames.append(frame.to_ndarray())
            if count is not None and len(frames) == count:
                break
    return frames


def top_level_boxes(path: Path) -> list[str]:
    """The mp4's top-level box types in file order (e.g. ftyp, moov, mdat)."""
    data, names, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at:at + 8])
        size = struct.unpack(">Q", data[at + 8:at + 16])[0] if size == 1 else size or len(data) - at
        names.append(kind.decode("latin-1"))
        at += size
    return names


def cut_mp4(src: Path, dst: Path, frames: int) -> None:
    """Copy the first `frames` video packets (in decode order they must hold exactly the first `frames`
    frames) and the audio packets of the same span, without re-encoding. The index (moov) stays where
    the source has it: a file cut short keeps its index only when it comes first."""
    with av.open(str(src)) as inp:
        video = inp.streams.video[0]
        packets = [p for p in inp.demux(video) if p.dts is not None][:frames]
        pts = sorted(p.pts for p in packets)
        step = pts[1] - pts[0]
        if pts != list(range(pts[0], pts[0] + step * frames, step)):
            raise SystemExit(f"{src.name}: the first {frames} packets are not the first {frames} frames")
        end_seconds = (pts[-1] + step) * video.time_base
    boxes = top_level_boxes(src)
    options = {"movflags": "faststart"} if boxes.index("moov") < boxes.index("mdat") else {}
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4", options=options) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        kept = 0
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            is_video = packet.stream.type == "video"
            if is_video:
                if kept == frames:
                    continue
                kept += 1
            elif packet.pts * packet.stream.time_base >= end_seconds:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def cut_annexb(src: Path, dst: Path, frames: int) -> None:
    """The first `frames` access units of a raw H.264 stream, as bytes (parameter sets included)."""
    with av.open(str(src)) as inp:
        units = [bytes(p) for p, _ in zip(inp.demux(video=0), range(frames))]
    dst.write_bytes(b"".join(units))


def make_jpeg_folder(src: Path, dst: Path, indices: range, size: tuple[int, int], quality: int) -> None:
    """Frames of `src` scaled to `size` (Lanczos) and saved as baseline JPEG, 4:2:0, by Pillow's libjpeg."""
    dst.mkdir(exist_ok=True)
    for old in dst.glob("*.jpg"):
        old.unlink()
    with av.open(str(src)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in indices:
                image = frame.to_image().resize(size, Image.LANCZOS)
                image.save(dst / f"{i - indices.start:05d}.jpg", quality=quality, subsampling="4:2:0")
            if i >= indices.stop:
                break


def check_same_start(excerpt: Path, source: Path, frames: int) -> None:
    ours, theirs = decoded(excerpt), decoded(source, frames)
    if len(ours) != frames or any(not np.array_equal(a, b) for a, b in zip(ours, theirs)):
        raise SystemExit(f"{excerpt.name}: does not decode to the first {frames} frames of {source.name}")


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    if not source.is_dir():
        raise SystemExit(f"source clips not found at {source}")
    for name, (src, frames) in MP4_CUTS.items():
        cut_mp4(source / src, HERE / name, frames)
        check_same_start(HERE / name, source / src, frames)
    name, src, frames = ANNEXB_CUT
    cut_annexb(source / src, HERE / name, frames)
    check_same_start(HERE / name, source / src, frames)
    name, src, frames, frame_bytes = YUV_CUT
    (HERE / name).write_bytes((source / src).read_bytes()[: frames * frame_bytes])
    name, src, indices, size, quality = JPEG_FOLDER
    make_jpeg_folder(source / src, HERE / name, indices, size, quality)
    for path in sorted(HERE.iterdir()):
        if path.name not in ("make_excerpts.py", "MANIFEST.md", "__pycache__"):
            nbytes = sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size
            print(f"{path.name}: {nbytes:,} bytes")


if __name__ == "__main__":
    main()
