"""Video reading and writing for nvcodec, through PyAV only.

Frames are uint8 numpy arrays of shape (H, W, 3) at the source's own
resolution: nothing is ever cropped or resized. They are RGB, or with
``color="yuv420"`` (``None``: the source's own format, `default_planes`) the
source's 4:2:0 planes as they are stored, chroma repeated over 2x2 blocks
(`nvcodec.color`); ``info.color`` says which, with the colour description the
source declares.

Reading (``VideoReader`` / ``read_video``) accepts
  * any file FFmpeg can open (mp4, mkv, mov, avi, webm, y4m, raw H.264/H.265
    elementary streams such as ``.264`` / ``.hevc``); the first video stream is
    used and audio is ignored (with a note);
  * a folder of PNG / JPEG (or BMP) images, taken in natural name order;
  * a headerless ``.yuv`` file, given ``size=(W, H)`` and ``pix_fmt``.

YUV -> RGB conversion follows the stream: full range for ``yuvj*`` formats or a
declared ``pc``/JPEG range, limited (``tv``) otherwise; the declared matrix
(BT.709, BT.601, ...) when there is one. A stream that declares no matrix is
converted with BT.601, which is FFmpeg's own default: this keeps the output
bit-identical to ``ffmpeg -pix_fmt rgb24`` (and so to published benchmark
frames such as NeRV's "Bunny" PNGs), even for HD sources.

Writing (``VideoWriter`` / ``write_video``) picks the format from the path:
  * ``.mp4``: H.264 (libx264, CRF 10, preset ultrafast), yuv420p tagged BT.709 limited range.
    H.264 4:2:0 cannot store an odd width or height, so odd-sized video is
    written as yuv444p (High 4:4:4): exact size, but some players (browsers,
    QuickTime) cannot play it. A note in ``VideoWriter.notes`` says so;
  * ``.mkv``: FFV1 lossless in bgr0, so RGB round-trips exactly;
  * ``.y4m``: raw yuv420p, BT.601 limited range (y4m cannot declare a matrix,
    and BT.601 is what readers assume);
  * a folder (path ends in '/' or is an existing empty folder): PNG files
    ``frame_000001.png``, ``frame_000002.png``, ...
  * ``-``: a y4m stream on standard output (as ``.y4m``).
Frames of a YUV 4:2:0 ``color`` go into .mp4, .mkv and .y4m as they are (no
conversion), tagged with its description; PNG converts them to RGB with it.
Output to a path is atomic: it goes to a hidden temporary sibling that is
renamed onto the final name only on a successful ``close()``. The RGB -> YUV
conversion is done once per frame, straight from the array (no copy), by one
swscale context kept for the whole file; the encoders use every core (libx264,
FFV1).

``-`` as the input path reads a stream from standard input (y4m, or any format
FFmpeg can read without seeking), once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .color import PLANES, RANGE_PC, RANGE_TV, RGB, Color, chroma_planes, replicate
from .outputs import temp_file, temp_folder

__all__ = [
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "parse_fps",
    "parse_frame_range",
    "read_video",
    "write_video",
]

DEFAULT_FPS = Fraction(25)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
# Raw elementary streams have no container; if probing fails we name the format.
RAW_STREAM_FORMATS = {".264": "h264", ".h264": "h264", ".avc": "h264",
                      ".265": "hevc", ".h265": "hevc", ".hevc": "hevc"}
OUTPUT_KINDS = (".mp4", ".mkv", ".y4m", "folder/ (PNG frames)", "- (y4m to standard output)")
STDIO = "-"     # the path that means standard input (reading) or standard output (writing)


class VideoError(Exception):
    """One-line, user-facing message naming the file and what is wrong."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int | None  # frames after the frame-range selection, if cheaply known
    pix_fmt: str  # source pixel format as stored
    color_range: str  # 'tv' or 'pc': the range used for conversion to RGB
    notes: list[str] = field(default_factory=list)
    # The sample format the frames are given in, and the colour description the source declares (`color`):
    # set when the reader opens, and from the first frame's own declaration once it is read.
    color: Color = RGB


# ---------------------------------------------------------------- small parsers

def parse_frame_range(text: str | None) -> tuple[int, int | None]:
    """Parse "START:END" (END exclusive; either side may be empty) into (start, end)."""
    if text is None or text.strip() in ("", ":"):
        return (0, None)
    m = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text)
    if not m:
        raise VideoError(f"bad frame range {text!r}: use START:END with END exclusive, "
                         "e.g. 0:10, 5: or :20")
    start = int(m.group(1)) if m.group(1) else 0
    end = int(m.group(2)) if m.group(2) else None
    return _check_range((start, end))


def _check_range(frame_range) -> tuple[int, int | None]:
    start, end = frame_range
    if start is None:
        start = 0
    if start < 0 or (end is not None and end < 0):
        raise VideoError(f"bad frame range {start}:{end}: frame numbers cannot be negative")
    if end is not None and end <= start:
        raise VideoError(f"bad frame range {start}:{end}: END must be greater than START")
    return int(start), (None if end is None else int(end))


def parse_fps(value) -> Fraction:
    """Frame rate from a Fraction, int, float or text such as '25' or '30000/1001'."""
    try:
        if isinstance(value, float):
            fps = Fraction(value).limit_denominator(1001)
        else:
            fps = Fraction(str(value).strip()) if isinstance(value, str) else Fraction(value)
    except (ValueError, ZeroDivisionError, TypeError):
        raise VideoError(f"bad frame rate {value!r}: use e.g. 25 or 30000/1001") from None
    if fps <= 0:
        raise VideoError(f"bad frame rate {value!r}: must be positive")
    return fps


def _selected_count(total: int | None, start: int, end: int | None) -> int | None:
    if total is None:
        return None
    stop = total if end is None else min(end, total)
    return max(0, stop - start)


# ------------------------------------------------------------- colour handling

# AVColorSpace (what a frame declares) -> swscale matrix name for reformat().
_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M",
           9: "BT2020", 10: "BT2020"}
_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_RESERVED = 2, 3
_AVCOL_RANGE_JPEG = 2


def _is_full_range(pix_fmt: str, color_range: int) -> bool:
    return pix_fmt.startswith("yuvj") or color_range == _AVCOL_RANGE_JPEG


def _is_yuv(fmt: av.VideoFormat) -> bool:
    # Gray is copied straight to RGB by swscale, whatever the declared range.
    return not fmt.is_rgb and not fmt.name.startswith(("gray", "pal", "ya"))


def _range_name(fmt: av.VideoFormat, color_range: int) -> str:
    if not _is_yuv(fmt):
        return "pc"
    return "pc" if _is_full_range(fmt.name, color_range) else "tv"


def _to_rgb(frame: av.VideoFrame, notes: list[str]) -> np.ndarray:
    """Convert a decoded frame to (H, W, 3) uint8 RGB with its declared range/matrix."""
    fmt = frame.format
    if fmt.name == "rgb24":
        return frame.to_ndarray()
    bits = max(c.bits for c in fmt.components)
    for note, applies in (("alpha channel dropped", any(c.is_alpha for c in fmt.components)),
                          (f"{bits}-bit source ({fmt.name}) coded as 8-bit RGB", bits > 8)):
        if applies and note not in notes:
            notes.append(note)
    if not _is_yuv(fmt):
        return frame.reformat(format="rgb24").to_ndarray()
    matrix = _MATRIX.get(frame.colorspace)
    if matrix is None:
        if frame.colorspace not in (_AVCOL_SPC_UNSPECIFIED, _AVCOL_SPC_RESERVED):
            note = f"colorspace {frame.colorspace} not supported, converted as BT.601"
            if note not in notes:
                notes.append(note)
        matrix = "ITU601"  # FFmpeg's default for undeclared streams
    full = _is_full_range(fmt.name, frame.color_range)
    # Passing both explicitly keeps the result independent of PyAV's defaults;
    # for tv-range / undeclared streams it is bit-exact with `ffmpeg -pix_fmt rgb24`.
    rgb = frame.reformat(format="rgb24", src_colorspace=matrix,
                         src_color_range="JPEG" if full else "MPEG",
                         dst_color_range="JPEG")
    return rgb.to_ndarray()


def is_420(fmt: av.VideoFormat) -> bool:
    """A YUV format with chroma at half the resolution in both directions (yuv420p, yuvj420p, nv12, 10-bit ...)."""
    comps = av.VideoFormat(fmt.name, 64, 64).components     # (a format without a size has no plane sizes)
    return (_is_yuv(fmt) and len(comps) >= 3 and not fmt.is_rgb
            and comps[1].width == 32 and comps[1].height == 32)


def default_planes(fmt: av.VideoFormat) -> str:
    """What a source is coded as without --color: its 4:2:0 planes when it is 4:2:0, else RGB."""
    return "yuv420" if is_420(fmt) else "rgb"


def _describe(fmt: av.VideoFormat, planes: str, colorspace: int, color_range: int, primaries: int,
              trc: int, height: int) -> Color:
    """The Color of frames of `fmt` read as `planes`, with what the source declares."""
    if not _is_yuv(fmt):
        if planes == "rgb":
            return Color("rgb", 0, RANGE_PC, primaries, trc)
        # An RGB or gray source read as 4:2:0 planes: converted with BT.709 (HD) or BT.601, limited range.
        return Color("yuv420", 1 if height >= 720 else 6, RANGE_TV, primaries, trc)
    full = _is_full_range(fmt.name, color_range)
    matrix = colorspace if colorspace in _MATRIX or colorspace == _AVCOL_SPC_UNSPECIFIED else _AVCOL_SPC_UNSPECIFIED
    return Color(planes, matrix, RANGE_PC if full else RANGE_TV, primaries if primaries <= 22 else 2,
                 trc if trc <= 18 else 2)


def frame_color(frame: av.VideoFrame, planes: str) -> Color:
    return _describe(frame.format, planes, frame.colorspace, frame.color_range, frame.color_primaries,
                     frame.color_trc, frame.height)


def _to_yuv420(frame: av.VideoFrame, color: Color, notes: list[str]) -> np.ndarray:
    """A decoded frame as (H, W, 3) replicated 4:2:0 planes (`nvcodec.color`): 8-bit 4:2:0 as it is stored,
    other YUV formats resampled to 4:2:0 8 bits in their own matrix and range, RGB and gray converted."""
    fmt = frame.format
    if fmt.name not in ("yuv420p", "yuvj420p"):
        bits = max(c.bits for c in fmt.components)
        for note, applies in (("alpha channel dropped", any(c.is_alpha for c in fmt.components)),
                              (f"{bits}-bit source ({fmt.name}) coded as 8-bit 4:2:0", bits > 8),
                              (f"{fmt.name} source: chroma subsampled to 4:2:0 (--color rgb keeps it)",
                               _is_yuv(fmt) and not is_420(fmt)),
                              (f"{fmt.name} source converted to 4:2:0 ({color.describe()})", not _is_yuv(fmt))):
            if applies and note not in notes:
                notes.append(note)
        range_ = "JPEG" if color.full_range else "MPEG"
        if _is_yuv(fmt):    # same matrix and range: only the chroma is resampled (and the depth reduced)
            frame = frame.reformat(format="yuv420p", src_color_range=range_, dst_color_range=range_)
        else:
            frame = frame.reformat(format="yuv420p", dst_colorspace=_MATRIX[color.matrix], dst_color_range=range_)
    y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width] for p in frame.planes)
    return replicate(y, u, v)


def yuv_frame(planes: np.ndarray, color: Color, pix_fmt: str = "yuv420p") -> av.VideoFrame:
    """(H, W, 3) 4:2:0 planes (`nvcodec.color`) -> an AVFrame of `pix_fmt` (yuv420p, or yuv444p: the chroma
    repeated) that declares `color`'s matrix and range; no conversion."""
    h, w = planes.shape[:2]
    frame = av.VideoFrame(w, h, pix_fmt)
    chroma = chroma_planes(planes)[1:]
    if pix_fmt == "yuv444p":
        chroma = [np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w] for c in chroma]
    for plane, values in zip(frame.planes, (planes[..., 0], *chroma)):
        dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        dst[: plane.height, : plane.width] = values
    return tag_color(frame, color)


def tag_color(frame: av.VideoFrame, color: Color) -> av.VideoFrame:
    """`frame`, declaring `color`'s matrix and range."""
    frame.colorspace = color.matrix if color.matrix in _MATRIX else _AVCOL_SPC_UNSPECIFIED
    frame.color_range = RANGE_PC if color.full_range else RANGE_TV
    return frame


def yuv_to_rgb(frames: np.ndarray, color: Color) -> np.ndarray:
    """(T, H, W, 3) 4:2:0 frames -> RGB through swscale with the declared matrix and range: the RGB
    the source's own frames convert to (`_to_rgb`)."""
    return np.stack([_to_rgb(yuv_frame(f, color), []) for f in frames])


def rgb_to_yuv(frames: np.ndarray, color: Color) -> np.ndarray:
    """(T, H, W, 3) RGB -> replicated 4:2:0 planes through swscale, in the matrix and range of `color` (BT.601
    where it declares none, as `_to_rgb` assumes)."""
    matrix = _MATRIX.get(color.matrix, "ITU601")
    range_ = "JPEG" if color.full_range else "MPEG"
    out = []
    for rgb in frames:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p", dst_colorspace=matrix, dst_color_range=range_)
        y, u, v = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[: p.height, : p.width] for p in frame.planes)
        out.append(replicate(y, u, v))
    return np.stack(out)


class _Source:
    """What every input source shares: how a decoded frame becomes an array (`planes`: None for the source's
    own format, see `default_planes`), and the Color that says so in `info.color`."""
    planes: str | None = None
    info: VideoInfo

    def _set_planes(self, planes: str | None, fmt: av.VideoFormat, declared: tuple) -> None:
        self.planes = planes or default_planes(fmt)
        self.info.color = _describe(fmt, self.planes, *declared, self.info.height)
        self._first = True

    def convert(self, frame: av.VideoFrame) -> np.ndarray:
        if self._first:     # the first frame's own declaration (a raw stream declares none before it)
            self._first = False
            self.info.color = frame_color(frame, self.planes)
        if self.planes == "rgb":
            return _to_rgb(frame, self.info.notes)
        return _to_yuv420(frame, self.info.color, self.info.notes)


# ---------------------------------------------------------------- input sources

class _StandardStream:
    """Standard input or output as PyAV's file object: not seekable, and not closed with the container."""

    def __init__(self, stream):
        self._stream = stream

    def read(self, size: int) -> bytes:
        return self._stream.read(size)

    def write(self, data) -> int:
        return self._stream.write(data)


def _open_container(path: Path):
    """av.open with user-facing errors; raw .264/.hevc fall back to a named format."""
    if str(path) == STDIO:
        try:
            return av.open(_StandardStream(sys.stdin.buffer), "r")
        except (av.FFmpegError, OSError, ValueError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise VideoError(f"standard input: not a video stream FFmpeg can read ({reason}); "
                             "pipe a y4m stream, e.g. ffmpeg -i IN -f yuv4mpegpipe -") from None
    try:
        return av.open(str(path))
    except FileNotFoundError:
        raise VideoError(f"No such file: {path}") from None
    except av.error.EOFError:
        raise VideoError(f"{path}: video has no frames (file ends before any video data)") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        fmt = RAW_STREAM_FORMATS.get(path.suffix.lower())
        if fmt is not None:
            try:
                return av.open(str(path), format=fmt)
            except (av.FFmpegError, OSError):
                pass
        reason = getattr(e, "strerror", None) or str(e)
        raise VideoError(f"{path}: not a video FFmpeg can read ({reason})") from None


def _declared_seconds(container) -> float | None:
    """Length of the video stream as the file's headers declare it, if they do."""
    stream = container.streams.video[0]
    tag = stream.metadata.get("DURATION")      # Matroska writes one per track
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            pass
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1:
        return container.duration / av.time_base
    return None


class _ContainerSource(_Source):
    """A file FFmpeg demuxes and decodes (including raw elementary streams)."""

    def __init__(self, path: Path, start: int, end: int | None, size, fps, planes=None):
        self.path, self.start, self.end = path, start, end
        self.container = _open_container(path)
        try:
            self.info = self._probe(size, fps)
            cc = self.container.streams.video[0].codec_context
            self._set_planes(planes, cc.format, (cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc))
        except BaseException:
            self.container.close()
            raise

    def _probe(self, size, fps) -> VideoInfo:
        c = self.container
        if not c.streams.video:
            raise VideoError(f"{self.path}: no video stream (only "
                             f"{', '.join(s.type for s in c.streams) or 'nothing'})")
        stream = c.streams.video[0]
        cc = stream.codec_context
        notes = []
        if c.streams.audio:
            notes.append("audio stream ignored")
        if len(c.streams.video) > 1:
            notes.append(f"{len(c.streams.video) - 1} extra video stream(s) ignored")
        if cc.width <= 0 or cc.height <= 0 or cc.format is None:
            raise VideoError(f"{self.path}: video stream has unknown size or pixel format "
                             "(corrupt or unsupported codec)")
        if size is not None and tuple(size) != (cc.width, cc.height):
            notes.append(f"size {size[0]}x{size[1]} ignored: file stores {cc.width}x{cc.height}")
        # guessed_rate is FFmpeg's own pick (av_guess_frame_rate). Raw .264/.hevc
        # demuxers invent 25 fps when the stream headers carry no timing.
        stored = stream.guessed_rate or stream.average_rate or stream.base_rate
        if c.format.name in RAW_STREAM_FORMATS.values() and not cc.framerate:
            stored = None
        if fps is not None:
            if stored and Fraction(stored) != fps:
                notes.append(f"fps {fps} given, file says {stored}")
        elif stored:
            fps = Fraction(stored)
        else:
            fps = DEFAULT_FPS
            notes.append("fps unknown, assuming 25")
        self.total = stream.frames or None  # 0 means "not stored" (e.g. raw .264)
        return VideoInfo(width=cc.width, height=cc.height, fps=fps,
                         frames=_selected_count(self.total, self.start, self.end),
                         pix_fmt=cc.format.name,
                         color_range=_range_name(cc.format, cc.color_range), notes=notes)

    def frames(self) -> Iterator[np.ndarray]:
        container, self.container = self.container, None
        if container is None:  # second iteration: start again from the top
            if str(self.path) == STDIO:
                raise VideoError("standard input can be read only once")
            container = _open_container(self.path)
        self._intervals: list[float] = []
        try:
            yield from self._decode(container)
        finally:
            container.close()
            self._check_timing()

    def _check_timing(self):
        """Variable frame rate: frames are coded in order, at the stream's rate; say so."""
        steps = [d for d in self._intervals if d > 0]
        if len(steps) >= 2 and max(steps) > 1.2 * min(steps):
            note = (f"variable frame rate (frames {min(steps) * 1000:.0f} to {max(steps) * 1000:.0f} ms apart): "
                    f"coded in order at {float(self.info.fps):.3f} fps, the timing is not kept")
            if note not in self.info.notes:
                self.info.notes.append(note)

    def _decode(self, container) -> Iterator[np.ndarray]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index, done, last_time = 0, 0, None
        decoded = container.decode(stream)
        while self.end is None or index < self.end:
            try:
                frame = next(decoded)
            except StopIteration:
                self._check_complete(index, container, last_time)
                return
            except av.FFmpegError as e:
                # Truncated or corrupt data: keep what was good, if anything.
                reason = getattr(e, "strerror", None) or str(e)
                if done == 0:
                    raise VideoError(f"{self.path}: unreadable data at frame {index} "
                                     f"({reason})") from None
                self.info.notes.append(f"corrupt data after {index} good frames, "
                                       f"stopped there ({reason})")
                return
            if index >= self.start:
                self._check_size(frame, index)
                if frame.rotation and not any("rotation" in n for n in self.info.notes):
                    self.info.notes.append(f"rotation metadata ({frame.rotation} deg) ignored")
                if frame.time is not None:
                    if last_time is not None:
                        self._intervals.append(frame.time - last_time)
                    last_time = frame.time
                yield self.convert(frame)
                done += 1
            index += 1

    def _check_complete(self, decoded: int, container, last_time: float | None):
        # A cut-off download often just ends early without any decoder error.
        if self.total and decoded < self.total:
            self.info.notes.append(f"only {decoded} of {self.total} frames could be decoded "
                                   "(file truncated?)")
        elif not self.total and self.end is None and last_time is not None:
            # No frame count stored (e.g. Matroska): compare with the duration the file declares.
            length = _declared_seconds(container)
            covered = last_time + 1 / float(self.info.fps)
            if length is not None and covered + 1.5 / float(self.info.fps) < length:
                self.info.notes.append(f"the video stops at {covered:.2f} s of the {length:.2f} s the "
                                       "file declares (file truncated?)")

    def _check_size(self, frame, index):
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            raise VideoError(f"{self.path}: frame {index} is {frame.width}x{frame.height}, "
                             f"expected {self.info.width}x{self.info.height} "
                             "(size changes mid-stream are not supported)")

    def close(self):
        if self.container is not None:
            self.container.close()
            self.container = None


def _natural_key(path: Path):
    # frame_2.png sorts before frame_10.png; zero-padded names sort as usual.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def _decode_image(path: Path) -> av.VideoFrame:
    try:
        with av.open(str(path)) as c:
            return next(c.decode(video=0))
    except (av.FFmpegError, OSError, StopIteration, IndexError) as e:
        raise VideoError(f"{path}: unreadable image ({e})") from None


def image_files(path: Path) -> list[Path]:
    """A folder's image files in the order they are read as frames (natural name order)."""
    return sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file()), key=_natural_key)


class _ImageFolderSource(_Source):
    """A folder of still images, one frame each, in natural name order."""

    def __init__(self, path: Path, start: int, end: int | None, fps, planes=None):
        self.path = path
        files = image_files(path)
        if not files:
            raise VideoError(f"{path}: folder has no {'/'.join(IMAGE_EXTS)} images")
        self.total = total = len(files)
        self.files = files[start:end]
        first = _decode_image(self.files[0] if self.files else files[0])
        notes = []
        if fps is None:
            fps = DEFAULT_FPS
            notes.append("fps unknown, assuming 25")
        self.info = VideoInfo(width=first.width, height=first.height, fps=fps,
                              frames=_selected_count(total, start, end),
                              pix_fmt=first.format.name,
                              color_range=_range_name(first.format, first.color_range),
                              notes=notes)
        self._set_planes(planes, first.format, (first.colorspace, first.color_range, first.color_primaries,
                                                first.color_trc))

    def frames(self) -> Iterator[np.ndarray]:
        for f in self.files:
            frame = _decode_image(f)
            if (frame.width, frame.height) != (self.info.width, self.info.height):
                raise VideoError(f"{f}: image is {frame.width}x{frame.height}, the others are "
                                 f"{self.info.width}x{self.info.height}")
            yield self.convert(frame)

    def close(self):
        pass


# Raw .yuv layouts: per plane (width divisor, height divisor, bytes per pixel).
_P420 = [(1, 1, 1), (2, 2, 1), (2, 2, 1)]
_P422 = [(1, 1, 1), (2, 1, 1), (2, 1, 1)]
_P444 = [(1, 1, 1)] * 3
RAW_LAYOUTS = {
    "yuv420p": _P420, "yuvj420p": _P420, "yuv422p": _P422, "yuvj422p": _P422,
    "yuv444p": _P444, "yuvj444p": _P444,
    "yuv420p10le": [(1, 1, 2), (2, 2, 2), (2, 2, 2)],
    "yuv422p10le": [(1, 1, 2), (2, 1, 2), (2, 1, 2)],
    "yuv444p10le": [(1, 1, 2)] * 3,
    "nv12": [(1, 1, 1), (2, 2, 2)], "nv21": [(1, 1, 1), (2, 2, 2)],
    "gray": [(1, 1, 1)], "gray10le": [(1, 1, 2)],
    "rgb24": [(1, 1, 3)], "bgr24": [(1, 1, 3)],
}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _RawYuvSource(_Source):
    """Headerless raw frames; size, pixel format and fps come from the caller."""

    def __init__(self, path: Path, start: int, end: int | None, size, pix_fmt: str, fps, planes=None):
        self.path, self.pix_fmt = path, pix_fmt
        if size is None:
            raise VideoError(f"{path}: raw .yuv needs --size WxH")
        if pix_fmt not in RAW_LAYOUTS:
            raise VideoError(f"{path}: pixel format {pix_fmt!r} not supported for raw .yuv "
                             f"(use one of {', '.join(RAW_LAYOUTS)})")
        w, h = (int(v) for v in size)
        if w <= 0 or h <= 0:
            raise VideoError(f"{path}: bad size {w}x{h}")
        self.rows = [(_ceil_div(h, hd), _ceil_div(w, wd) * bpp)
                     for wd, hd, bpp in RAW_LAYOUTS[pix_fmt]]
        self.frame_bytes = sum(r * b for r, b in self.rows)
        nbytes = path.stat().st_size
        if nbytes % self.frame_bytes:
            raise VideoError(f"{path}: size {nbytes} bytes is not a multiple of one {w}x{h} "
                             f"{pix_fmt} frame ({self.frame_bytes} bytes); wrong --size or "
                             "pixel format?")
        self.total = total = nbytes // self.frame_bytes
        self.first, self.last = min(start, total), total if end is None else min(end, total)
        notes = []
        if fps is None:
            fps = DEFAULT_FPS
            notes.append("fps unknown, assuming 25")
        fmt = av.VideoFormat(pix_fmt)
        range_ = "pc" if not _is_yuv(fmt) or pix_fmt.startswith("yuvj") else "tv"
        self.info = VideoInfo(width=w, height=h, fps=fps,
                              frames=_selected_count(total, start, end), pix_fmt=pix_fmt,
                              color_range=range_, notes=notes)
        self._set_planes(planes, fmt, (_AVCOL_SPC_UNSPECIFIED, 2 if range_ == "pc" else 1, 2, 2))

    def frames(self) -> Iterator[np.ndarray]:
        with open(self.path, "rb") as f:
            f.seek(self.first * self.frame_bytes)
            for _ in range(self.first, self.last):
                data = f.read(self.frame_bytes)
                if len(data) < self.frame_bytes:  # file shrank while reading
                    raise VideoError(f"{self.path}: file ended in the middle of a frame")
                yield self.convert(self._frame(data))

    def _frame(self, data: bytes) -> av.VideoFrame:
        """Copy one frame's packed planes into an AVFrame (whose rows may be padded)."""
        frame = av.VideoFrame(self.info.width, self.info.height, self.pix_fmt)
        offset = 0
        for plane, (rows, row_bytes) in zip(frame.planes, self.rows):
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            n = rows * row_bytes
            src = np.frombuffer(data, np.uint8, n, offset).reshape(rows, row_bytes)
            dst[:rows, :row_bytes] = src
            offset += n
        return frame

    def close(self):
        pass


# ---------------------------------------------------------------- public reading

class VideoReader:
    """Streaming reader: iterate to get (H, W, 3) uint8 frames of the selected range: RGB, or with `color`
    "yuv420" the source's 4:2:0 planes (replicated, see `nvcodec.color`); `color` None: the source's own format
    (`default_planes`). `info.color` says which, with the source's colour description.

    ``info`` is available right after construction. ``size``, ``pix_fmt`` and (for
    raw input and image folders) ``fps`` describe raw ``.yuv`` input; ``fps`` also
    overrides a container's frame rate. Iteration raises VideoError if it yields no
    frame at all.
    """

    def __init__(self, path, *, frame_range=(0, None), size: tuple[int, int] | None = None,
                 pix_fmt: str = "yuv420p", fps=None, color: str | None = "rgb"):
        self.path = Path(path)
        start, end = _check_range(frame_range)
        fps = None if fps is None else parse_fps(fps)
        if color not in (None, *PLANES):
            raise VideoError(f"unknown sample format {color!r} (choose {' or '.join(PLANES)})")
        if str(path) == STDIO:
            self._source = _ContainerSource(self.path, start, end, size, fps, color)
        elif not self.path.exists():
            raise VideoError(f"No such file: {self.path}")
        elif self.path.is_dir():
            self._source = _ImageFolderSource(self.path, start, end, fps, color)
        elif self.path.suffix.lower() == ".yuv":
            self._source = _RawYuvSource(self.path, start, end, size, pix_fmt, fps, color)
        else:
            self._source = _ContainerSource(self.path, start, end, size, fps, color)
        self.info: VideoInfo = self._source.info
        self._range = (start, end)
        self._active = None

    def __iter__(self) -> Iterator[np.ndarray]:
        self._active = frames = self._source.frames()
        count = 0
        for frame in frames:
            count += 1
            yield frame
        if count == 0:
            raise VideoError(self._no_frames_message())

    def _no_frames_message(self) -> str:
        start, end = self._range
        if start == 0 and end is None:
            return f"{self.path}: video has no frames"
        total = self._source.total
        has = "" if total is None else f" (video has {total} frames)"
        return f"{self.path}: no frames in range {start}:{'' if end is None else end}{has}"

    def close(self):
        if self._active is not None:
            self._active.close()  # runs the source's cleanup (closes the container)
            self._active = None
        self._source.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_video(path, *, frame_range=(0, None), size=None, pix_fmt="yuv420p",
               fps=None, color: str | None = "rgb") -> tuple[np.ndarray, VideoInfo]:
    """All selected frames as one (T, H, W, 3) uint8 array; ``info.frames`` is set to T."""
    with VideoReader(path, frame_range=frame_range, size=size, pix_fmt=pix_fmt,
                     fps=fps, color=color) as reader:
        frames = list(reader)
        info = reader.info
    info.frames = len(frames)
    return np.stack(frames), info


# ---------------------------------------------------------------- writing

@dataclass(frozen=True)
class _ContainerSpec:
    format: str
    codec: str
    pix_fmt: str
    matrix: str | None  # swscale matrix for RGB -> YUV (None for RGB storage)
    tags: tuple[int, int, int, int]  # colorspace, range, primaries, trc (AVCOL_* values)
    options: dict


_BT709_TV = (1, 1, 1, 1)
# .mp4 at CRF 10 stays near-transparent (about 50 dB against the frames written). Preset ultrafast, because the
# writer bounds decoding to .mp4: on 2 cores it writes 720p 1.7 to 2.1x as fast as superfast, 0.5 dB closer to the
# frames written, in files 1.4 to 2x as large (no CABAC, no deblocking; benchmarks.writer_speed,
# benchmarks/results/decode_speed/fused_norm_pipeline_2026-12-03/writer_preset).
_CONTAINER_SPECS = {
    ".mp4": _ContainerSpec("mp4", "libx264", "yuv420p", "ITU709", _BT709_TV, {"crf": "10", "preset": "ultrafast"}),
    # FFV1 has no 8-bit gbrp; bgr0 is its lossless 8-bit RGB layout.
    ".mkv": _ContainerSpec("matroska", "ffv1", "bgr0", None, (0, 2, 2, 2),
                           {"level": "3", "slices": "4", "slicecrc": "1"}),
    # y4m cannot declare a matrix; readers (FFmpeg, us) assume BT.601.
    ".y4m": _ContainerSpec("yuv4mpegpipe", "rawvideo", "yuv420p", "ITU601", (6, 1, 2, 2), {}),
}


class _ContainerSink:
    """Frames into one container: `target` is a file path or a file object (standard output)."""

    def __init__(self, target, spec: _ContainerSpec, width, height, fps, notes, color: Color = RGB):
        self.spec, self.fps, self.color = spec, fps, color
        pix_fmt = "yuv420p" if color.yuv else spec.pix_fmt     # 4:2:0 planes go in as they are (FFV1 too)
        if (width % 2 or height % 2) and spec.codec == "ffv1" and color.yuv:
            pix_fmt = "yuv444p"     # FFV1 takes no odd-sized 4:2:0: the chroma repeated, still lossless
        if spec.codec == "libx264" and (width % 2 or height % 2):
            pix_fmt = "yuv444p"
            notes.append(f"odd size {width}x{height}: H.264 written as yuv444p "
                         "(High 4:4:4), which some players cannot play")
        self.pix_fmt = pix_fmt
        # One swscale context for the whole file (a fresh one per frame costs about as much as the conversion).
        self.reformatter = VideoReformatter()
        self.container = av.open(target if not isinstance(target, Path) else str(target), "w", format=spec.format)
        try:
            options = dict(spec.options)
            if spec.format == "mp4":
                self.container.options["movflags"] = "+faststart"  # playable while streaming
            self.stream = self.container.add_stream(spec.codec, rate=fps, options=options)
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
            cc = self.stream.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = spec.tags
            if color.yuv:   # the source's own description, written back
                cc.colorspace = color.matrix if color.matrix in _MATRIX else _AVCOL_SPC_UNSPECIFIED
                cc.color_range = RANGE_PC if color.full_range else RANGE_TV
                cc.color_primaries, cc.color_trc = color.primaries, color.trc
            cc.thread_type, cc.thread_count = "AUTO", 0     # 0: as many threads as the machine has cores
        except BaseException:
            self.container.close()
            raise
        self.count = 0

    def write(self, rgb: np.ndarray):
        if self.color.yuv:  # the planes are copied in: no conversion
            self._encode(yuv_frame(rgb, self.color, self.pix_fmt))
            return
        # No copy: swscale reads the array, and its output (never rgb24) is a new frame the encoder may keep.
        frame = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
        # swscale's threads are PyAV's default (every core from PyAV 17); the result is the same whatever the count.
        if self.spec.matrix is None:
            frame = self.reformatter.reformat(frame, format=self.pix_fmt)
        else:
            frame = self.reformatter.reformat(frame, format=self.pix_fmt, dst_colorspace=self.spec.matrix,
                                              dst_color_range="MPEG")
        self._encode(frame)

    def write_packed(self, packed: np.ndarray):
        """One (3H/2, W) yuv420p frame, contiguous: the encoder reads the array itself (no copy)."""
        self._encode(tag_color(av.VideoFrame.from_numpy_buffer(packed, format="yuv420p"), self.color))

    def _encode(self, frame: av.VideoFrame):
        frame.pts = self.count
        frame.time_base = 1 / self.fps
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def finish(self):
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()

    def discard(self):
        try:
            self.container.close()
        except Exception:  # already broken; the temp file is removed anyway
            pass


class _PngSink:
    def __init__(self, tmp: Path, width, height, color: Color = RGB):
        self.dir, self.color = tmp, color
        self.codec = av.CodecContext.create("png", "w")
        self.codec.width, self.codec.height, self.codec.pix_fmt = width, height, "rgb24"
        self.count = 0

    def write(self, rgb: np.ndarray):
        if self.color.yuv:  # PNG is RGB: converted with the declared matrix and range
            rgb = _to_rgb(yuv_frame(rgb, self.color), [])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        data = b"".join(bytes(p) for p in self.codec.encode(frame))
        self.count += 1
        (self.dir / f"frame_{self.count:06d}.png").write_bytes(data)

    def finish(self):
        pass

    def discard(self):
        pass


def _is_folder_target(path) -> bool:
    text = os.fspath(path)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


class VideoWriter:
    """Atomic video writer; the format comes from the path (see the module docstring).

    Frames go to a hidden temporary sibling (``.NAME.XXXX.partial``) that is renamed
    to ``path`` on a successful ``close()``; on an exception inside ``with`` or on
    ``abort()`` it is removed, so no partial output ever appears under ``path``.
    ``path`` ``-`` writes a y4m stream to standard output instead.
    An existing file at ``path`` is replaced; an existing folder must be empty.
    ``notes`` lists anything the user should know (e.g. odd-size mp4 as 4:4:4).
    With a YUV 4:2:0 ``color``, frames are replicated 4:2:0 planes (`nvcodec.color`): .mp4, .mkv (FFV1) and .y4m
    store them as they are, tagged with the colour description; PNG converts them to RGB with it.
    """

    def __init__(self, path, width: int, height: int, fps: Fraction, color: Color = RGB):
        self.color = color
        self.folder = _is_folder_target(path)
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = parse_fps(fps)
        self.notes: list[str] = []
        self._sink = None
        self._tmp: Path | None = None
        if self.width <= 0 or self.height <= 0:
            raise VideoError(f"{self.path}: bad frame size {width}x{height}")
        if os.fspath(path) == STDIO:
            self.folder = False
            self._open_stdout()
            return
        parent = self.path.parent
        if not parent.is_dir():
            raise VideoError(f"{self.path}: no such folder {parent}")
        if self.folder:
            self._open_folder(parent)
        else:
            self._open_file(parent)

    def _open_folder(self, parent: Path):
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise VideoError(f"{self.path}: output folder exists and is not empty")
        self._tmp = temp_folder(parent / self.path.name)
        self._sink = _PngSink(self._tmp, self.width, self.height, self.color)

    def _open_stdout(self):
        self._stdout = sys.stdout.buffer
        try:
            self._sink = _ContainerSink(_StandardStream(self._stdout), _CONTAINER_SPECS[".y4m"], self.width,
                                        self.height, self.fps, self.notes, self.color)
        except av.FFmpegError as e:
            raise VideoError(f"standard output: cannot start the y4m writer ({e})") from None

    def _open_file(self, parent: Path):
        spec = _CONTAINER_SPECS.get(self.path.suffix.lower())
        if spec is None:
            raise VideoError(f"{self.path}: unknown output type {self.path.suffix or '(none)'!r}; "
                             f"supported: {', '.join(OUTPUT_KINDS)}")
        if self.path.is_dir():
            raise VideoError(f"{self.path}: is a folder")
        self._tmp = temp_file(parent / self.path.name, ".partial")
        try:
            self._sink = _ContainerSink(self._tmp, spec, self.width, self.height, self.fps,
                                        self.notes, self.color)
        except av.FFmpegError as e:
            self._remove_tmp()
            raise VideoError(f"{self.path}: cannot start {spec.codec} encoder ({e})") from None

    @property
    def takes_packed(self) -> bool:
        """Whether `write` takes 4:2:0 frames packed as yuv420p (N, 3H/2, W): a video file (not PNG) of 4:2:0
        planes of even size, which its encoder takes as they are."""
        return (isinstance(self._sink, _ContainerSink) and self._sink.pix_fmt == "yuv420p" and self.color.yuv
                and self.width % 2 == 0 and self.height % 2 == 0)

    def write(self, frames: np.ndarray):
        """Append one (H, W, 3) frame or a batch (N, H, W, 3) of uint8 RGB frames (or replicated 4:2:0 planes,
        `nvcodec.color`), or where `takes_packed`, a batch (N, 3H/2, W) of yuv420p frames."""
        if self._sink is None:
            raise VideoError(f"{self.path}: writer is closed")
        frames = np.asarray(frames)
        if (frames.dtype == np.uint8 and frames.ndim == 3 and frames.shape[1:] == (self.height * 3 // 2, self.width)
                and self.takes_packed):
            with self._encoding_errors():
                for packed in frames:
                    self._sink.write_packed(np.ascontiguousarray(packed))
            return
        if frames.ndim == 3:
            frames = frames[None]
        if (frames.dtype != np.uint8 or frames.ndim != 4
                or frames.shape[1:] != (self.height, self.width, 3)):
            raise VideoError(f"{self.path}: expected uint8 frames of shape "
                             f"({self.height}, {self.width}, 3), got {frames.dtype} "
                             f"{frames.shape}")
        with self._encoding_errors():
            for rgb in frames:
                self._sink.write(np.ascontiguousarray(rgb))

    @contextlib.contextmanager
    def _encoding_errors(self):
        """A closed standard output or an encoder's failure, as one line."""
        try:
            yield
        except BrokenPipeError:
            _drop_standard_output()
            raise VideoError("standard output was closed before the last frame") from None
        except (av.FFmpegError, OSError) as e:
            raise VideoError(f"{self._name()}: encoding failed ({e})") from None

    def _name(self) -> str:
        return "standard output" if os.fspath(self.path) == STDIO else str(self.path)

    @property
    def frames_written(self) -> int:
        return self._sink.count if self._sink is not None else 0

    def close(self):
        """Finish the file and move it to its final name (no-op if already closed)."""
        if self._sink is None:
            return
        sink = self._sink
        if sink.count == 0:
            self.abort()
            raise VideoError(f"{self.path}: no frames were written")
        try:
            sink.finish()
            if self._tmp is None:     # standard output
                self._stdout.flush()
        except BrokenPipeError:
            self.abort()
            _drop_standard_output()
            raise VideoError("standard output was closed before the last frame") from None
        except (av.FFmpegError, OSError) as e:
            self.abort()
            raise VideoError(f"{self._name()}: could not finish writing ({e})") from None
        self._sink = None
        if self._tmp is None:
            return
        if self.folder and self.path.is_dir():
            self.path.rmdir()  # checked empty at open
        os.replace(self._tmp, self.path)
        self._tmp = None

    def abort(self):
        """Drop everything written so far; nothing appears at ``path``."""
        if self._sink is not None:
            self._sink.discard()
            self._sink = None
        self._remove_tmp()

    def _remove_tmp(self):
        if self._tmp is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def _drop_standard_output() -> None:
    """Its reader has gone: what Python still buffers for standard output goes to /dev/null, so that exiting
    does not print a second error about it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):   # no file descriptor (e.g. captured in tests): nothing to protect
        pass


def write_video(path, frames: np.ndarray, fps, color: Color = RGB) -> None:
    """Write (T, H, W, 3) uint8 frames (RGB, or replicated 4:2:0 planes of `color`) to ``path``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"{path}: expected frames of shape (T, H, W, 3), got {frames.shape}")
    with VideoWriter(path, frames.shape[2], frames.shape[1], fps, color) as writer:
        writer.write(frames)
