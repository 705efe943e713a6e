"""External codecs (x264, x265, SVT-AV1 through PyAV's FFmpeg) and dnv, behind one interface.

Each codec is a small class in the manner of CompressAI's ``compressai/utils/bench/codecs.py``:
``codec.run(frames, fps, crf)`` (``target_bpp`` for dnv) encodes the ground truth, decodes it back and
returns one record (a dict)::

    {codec, preset, crf | target_bpp, bpp, bpp_container, info_sei_bytes, psnr_rgb, psnr_yuv, ms_ssim,
     encode_seconds, decode_seconds, device, frames, width, height}

Conventions (DESIGN.md, "Measuring"):

- Input: the ground-truth frames, (T,H,W,3) uint8 RGB, are what every figure is measured against.
  What the anchors encode is either
  (a) the source's own 8-bit 4:2:0 frames (``SourceYuv``, from ``load_source_yuv``), when the
      ground truth is exactly their RGB conversion (checked): the stream keeps the source's matrix
      and range, and decoded frames go to RGB by the same call as the ground truth did, so the
      anchors pay for their coding loss only, as when they are run on the source itself; or
  (b) the RGB ground truth converted to yuv420p with swscale (bicubic chroma, FFmpeg's default),
      limited range, BT.709 when H >= 720 and BT.601 below, the stream tagged with that matrix,
      range, primaries and transfer, and decoded back with the same matrix and range. This round
      trip alone limits RGB PSNR to about 45 dB (Bunny), which costs about 1 dB at 40 dB.
  Records say which in ``input``.
- Odd sizes (path b): frames are padded to even width/height by edge replication before the
  conversion and cropped back after decoding; every bpp is counted over the original W x H.
- ``bpp``: the elementary stream, i.e. what ``ffmpeg -c copy -f h264|hevc|obu`` would write (packets
  in Annex-B form with their parameter sets; AV1 OBUs as muxed), less the encoders' informational
  SEI (x264/x265 write their version and option string as user-data-unregistered SEI, 0.7-2.5 kB
  that no decoder needs; it would dominate the rate of a short, small clip). Those bytes are
  reported as ``info_sei_bytes``. ``bpp_container``: the whole .mp4 file the encoder wrote.
- Timing: ``encode_seconds`` covers the encoder only (the RGB->YUV conversion happens before the
  clock starts); ``decode_seconds`` covers demuxing and decoding to YUV frames, not the YUV->RGB
  conversion. Encoders run with their default threading on the CPU.
- Metrics come from ``nvcodec.metrics``: RGB PSNR (per frame, averaged), YUV 4:2:0 PSNR (6:1:1)
  with the same matrix as the stream, MS-SSIM.
- Presets: x264/x265 take their own names. SVT-AV1 presets are numbers (0 = slowest, 13 = fastest);
  names map as SVT_PRESETS below: 'medium' -> 8 (about x264-medium speed), 'veryslow' -> 4 (the
  usual "slow, high quality" SVT choice); a number given as a string is passed through.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation

from nvcodec import metrics
from nvcodec.video import image_files

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder otherwise (1 = errors only)

SVT_PRESETS = {
    "ultrafast": 12, "superfast": 11, "veryfast": 10, "faster": 9, "fast": 8,
    "medium": 8, "slow": 6, "slower": 5, "veryslow": 4, "placebo": 2,
}

_INTERP = Interpolation.BICUBIC  # RGB -> 4:2:0 chroma filter (FFmpeg's default scaler)


@dataclass(frozen=True)
class Colour:
    """How 4:2:0 planes map to the RGB ground truth, and how the stream is tagged."""

    swscale: str       # reformat() matrix name
    tag: int           # AVCOL_SPC / _PRI / _TRC value written in the stream
    full_range: bool
    metric: str        # nvcodec.metrics matrix for the YUV PSNR: 'bt709' or 'bt601'

    def to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """Same call as nvcodec.video uses to make the ground truth from a source frame."""
        return frame.reformat(format="rgb24", src_colorspace=self.swscale,
                              src_color_range="JPEG" if self.full_range else "MPEG",
                              dst_color_range="JPEG").to_ndarray()

    def describe(self) -> str:
        return f"{'BT.709' if self.tag == 1 else 'BT.601'} {'full' if self.full_range else 'limited'} range"


BT709 = Colour("ITU709", 1, False, "bt709")
BT601 = Colour("ITU601", 6, False, "bt601")


def yuv_matrix(height: int) -> str:
    """BT.709 for HD (height >= 720), BT.601 below: the usual convention for untagged RGB."""
    return "bt709" if height >= 720 else "bt601"


def rgb_colour(height: int) -> Colour:
    return BT709 if yuv_matrix(height) == "bt709" else BT601


def rgb_to_yuv420(frames: np.ndarray, colour: Colour) -> list[np.ndarray]:
    """(T,H,W,3) uint8 RGB (even H, W) -> yuv420p planes, one (3H/2, W) array per frame."""
    return [av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=colour.swscale, dst_color_range="MPEG",
        interpolation=_INTERP).to_ndarray() for rgb in frames]


@dataclass
class SourceYuv:
    """A source's own 8-bit 4:2:0 frames, given to the anchors as they are.

    The ground truth was made from these planes, so encoding them (rather than converting the RGB
    ground truth back to 4:2:0, which alone costs 45-46 dB of RGB PSNR) charges the anchors for
    their coding loss only, as when x264/x265 are run on the source itself.
    """

    planes: list[np.ndarray]  # one (3H/2, W) uint8 array per frame
    colour: Colour


_SOURCE_MATRIX = {1: ("ITU709", 1, "bt709"), 5: ("ITU601", 5, "bt601"), 6: ("ITU601", 6, "bt601"),
                  2: ("ITU601", 6, "bt601")}  # undeclared: BT.601, as nvcodec.video and FFmpeg do


def load_source_yuv(path: str | Path, frame_range, gt: np.ndarray) -> tuple[SourceYuv | None, str]:
    """The source's 4:2:0 frames over frame_range, if they reproduce gt exactly; else (None, why)."""
    path = Path(path)
    if path.is_dir():
        return None, "image folder"
    if gt.shape[1] % 2 or gt.shape[2] % 2:
        return None, "odd size"
    start, end = frame_range
    if path.suffix.lower() == ".yuv":     # headerless yuv420p (nvcodec.video's raw input): no matrix declared
        return _raw_source_yuv(path, start, gt)
    planes, colour = [], None
    try:
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if end is not None and i >= end:
                    break
                if i < start:
                    continue
                if frame.format.name not in ("yuv420p", "yuvj420p") or frame.colorspace not in _SOURCE_MATRIX:
                    return None, f"source is {frame.format.name}, colorspace {frame.colorspace}"
                if colour is None:
                    swscale, tag, metric = _SOURCE_MATRIX[frame.colorspace]
                    full = frame.format.name == "yuvj420p" or frame.color_range == 2
                    colour = Colour(swscale, tag, full, metric)
                planes.append(frame.to_ndarray())
    except (av.FFmpegError, OSError) as exc:
        return None, f"cannot decode the source with PyAV ({exc})"
    return _checked(planes, colour, start, gt)


def _raw_source_yuv(path: Path, start: int, gt: np.ndarray) -> tuple[SourceYuv | None, str]:
    """A headerless yuv420p file's frames start.. (as many as gt has), limited range, BT.601 (undeclared)."""
    h, w = gt.shape[1:3]
    frame_bytes = w * h * 3 // 2
    with open(path, "rb") as f:
        f.seek(start * frame_bytes)
        data = f.read(len(gt) * frame_bytes)
    planes = [np.frombuffer(data, np.uint8, frame_bytes, i * frame_bytes).reshape(h * 3 // 2, w)
              for i in range(len(data) // frame_bytes)]
    swscale, tag, metric = _SOURCE_MATRIX[2]
    return _checked(planes, Colour(swscale, tag, False, metric), start, gt)


def _checked(planes, colour, start: int, gt: np.ndarray) -> tuple[SourceYuv | None, str]:
    """The source's frames, if three of them (first, middle, last) convert to the ground truth exactly."""
    if len(planes) != len(gt):
        return None, f"source gave {len(planes)} frames, ground truth has {len(gt)}"
    for i in sorted({0, len(gt) // 2, len(gt) - 1}):
        rgb = colour.to_rgb(av.VideoFrame.from_ndarray(planes[i], format="yuv420p"))
        if not np.array_equal(rgb, gt[i]):
            return None, f"source frame {start + i} does not convert to the ground truth exactly"
    return SourceYuv(planes, colour), f"source 4:2:0 frames, {colour.describe()}"


def _as_fraction(fps) -> Fraction:
    return fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)


def pad_even(frames: np.ndarray) -> np.ndarray:
    """Pad (T,H,W,3) to even H and W by replicating the last row/column."""
    _, h, w, _ = frames.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _nal_units(data: bytes):
    """Split an Annex-B byte stream into (start, end) spans, each including its start code."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    spans = []
    for i, s in enumerate(starts):
        begin = s - 1 if s > 0 and data[s - 1] == 0 else s
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        if i + 1 < len(starts) and data[end - 1] == 0:
            end -= 1  # the zero byte belongs to the next 4-byte start code
        spans.append((begin, s + 3, end))
    return spans


def info_sei_bytes(data: bytes, codec: str) -> int:
    """Bytes of SEI NAL units whose first message is user_data_unregistered (payload type 5)."""
    total = 0
    for begin, nal, end in _nal_units(data):
        if nal >= end:
            continue
        if codec == "h264":
            is_sei, header = (data[nal] & 0x1F) == 6, 1
        else:  # hevc: prefix (39) or suffix (40) SEI, two header bytes
            is_sei, header = ((data[nal] >> 1) & 0x3F) in (39, 40), 2
        if not is_sei:
            continue
        i, ptype = nal + header, 0
        while i < end and data[i] == 0xFF:
            ptype, i = ptype + 255, i + 1
        if i < end and ptype + data[i] == 5:
            total += end - begin
    return total


def elementary_stream(path: str | Path) -> tuple[int, int]:
    """(bytes, informational SEI bytes) of the video elementary stream held in a container file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.codec.name
        kind = "h264" if codec.endswith("264") else "hevc" if "265" in codec or "hevc" in codec else None
        bsf = None
        if kind:
            from av.bitstream import BitStreamFilterContext
            bsf = BitStreamFilterContext(f"{kind}_mp4toannexb", stream)
        chunks = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            chunks += [bytes(p) for p in bsf.filter(packet)] if bsf else [bytes(packet)]
        if bsf:
            chunks += [bytes(p) for p in bsf.filter(None)]
    data = b"".join(chunks)
    return len(data), (info_sei_bytes(data, kind) if kind else 0)


def source_rate(path: str | Path, frame_range=(0, None)) -> dict:
    """What the source itself spent on the frames benchmarked: {"coded": its codec, "bpp": bits per pixel of its
    video stream over those frames (packets in display order)}; for a folder of images, their files' bytes; for
    headerless .yuv, {"coded": "raw"}. Anchors near a source's own rate can rebuild what its codec did
    (results/transcoded_source_2026-12-06), so the RD tables say it beside each clip."""
    path = Path(path)
    start, end = frame_range or (0, None)
    if path.suffix.lower() == ".yuv":
        return {"coded": "raw"}
    if path.is_dir():
        files = image_files(path)[start:end]
        with av.open(str(files[0])) as c:
            width, height = c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height
        kinds = sorted({f.suffix.lower().lstrip(".").replace("jpg", "jpeg") for f in files})
        coded_bytes = sum(f.stat().st_size for f in files)
        return {"coded": "/".join(kinds), "bpp": 8 * coded_bytes / (len(files) * width * height)}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        coded = stream.codec_context.codec.name
        packets = [(p.pts, i, p.size) for i, p in enumerate(container.demux(stream)) if p.size]
    # Display order where the container gives times (B-frames come after the frames they refer to), else as stored.
    sizes = [size for _, _, size in sorted(packets, key=lambda p: (p[0] is None, p[0] or 0, p[1]))][start:end]
    return {"coded": coded, "bpp": 8 * sum(sizes) / (len(sizes) * width * height)}


def measure(gt: np.ndarray, rec: np.ndarray, matrix: str, chunk: int = 8) -> dict:
    """Quality of rec against gt, both (T,H,W,3) uint8 RGB, with nvcodec.metrics.

    All three figures are means over frames, so they are computed over chunks of frames (bounded
    memory) and recombined exactly. RGB PSNR and MS-SSIM run on the GPU when there is one (the
    metrics take torch tensors); the YUV PSNR is numpy, spread over threads.
    """
    import torch

    dev = torch.device("cuda") if torch.cuda.is_available() else None
    spans = [(i, min(i + chunk, len(gt))) for i in range(0, len(gt), chunk)]

    def yuv(span):
        a, b = span
        return metrics.psnr_yuv420(gt[a:b], rec[a:b], matrix) * (b - a)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        psnr_yuv = sum(pool.map(yuv, spans))
    psnr_rgb = ssim = 0.0
    for a, b in spans:
        x, y = gt[a:b], rec[a:b]
        if dev is not None:
            x, y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
        psnr_rgb += metrics.psnr(x, y) * (b - a)
        ssim += metrics.ms_ssim(x, y) * (b - a)
    n = len(gt)
    return {"psnr_rgb": psnr_rgb / n, "psnr_yuv": psnr_yuv / n, "ms_ssim": ssim / n}


class FFmpegCodec:
    """One external encoder through PyAV's FFmpeg, in-process. Subclasses set the names and options."""

    name = ""          # record name: 'x264', 'x265', 'svt-av1'
    encoder = ""       # FFmpeg encoder name
    crf_range = (0, 51)
    crf_start = (23, 35)  # two first probes of a CRF sweep

    def __init__(self, preset: str = "medium"):
        self.preset = str(preset)

    def options(self, crf: int) -> dict:
        return {"crf": str(crf), "preset": self.preset}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.preset!r})"

    def encode(self, planes: list[np.ndarray], fps, crf: int, path: str | Path, colour: Colour) -> float:
        """Encode yuv420p planes ((3H/2, W) arrays) into the .mp4 at path; returns encoder seconds."""
        height, width = planes[0].shape[0] * 2 // 3, planes[0].shape[1]
        frames = []
        for i, p in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(p, format="yuv420p")
            frame.pts = i
            frames.append(frame)
        with av.open(str(path), "w") as out:
            stream = out.add_stream(self.encoder, rate=_as_fraction(fps))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            ctx = stream.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = colour.tag
            ctx.color_range = 2 if colour.full_range else 1
            stream.options = self.options(crf)
            start = time.perf_counter()
            for frame in frames:
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
            seconds = time.perf_counter() - start
        return seconds

    def decode(self, path: str | Path, colour: Colour) -> tuple[np.ndarray, float]:
        """Decode the container at path to (T,H,W,3) uint8 RGB; returns (frames, decode seconds)."""
        with av.open(str(path)) as container:
            start = time.perf_counter()
            decoded = list(container.decode(video=0))
            seconds = time.perf_counter() - start
        return np.stack([colour.to_rgb(f) for f in decoded]), seconds

    def compress(self, frames: np.ndarray, fps, crf: int, path: str | Path,
                 source: SourceYuv | None = None) -> dict:
        """Encode at one CRF into path (.mp4); returns the rate part of the record.

        The input is the source's own 4:2:0 frames when given, else the RGB ground truth
        converted (padded to even size, BT.709 from 720 lines up, BT.601 below, limited range).
        """
        t, h, w, _ = frames.shape
        if source is not None:
            planes, colour, how = source.planes, source.colour, "source 4:2:0"
        else:
            colour = rgb_colour(h)
            planes, how = rgb_to_yuv420(pad_even(frames), colour), "RGB -> 4:2:0"
        enc_s = self.encode(planes, fps, crf, path, colour)
        es_bytes, sei = elementary_stream(path)
        return {
            "codec": self.name, "preset": self.preset, "crf": crf,
            "bpp": metrics.bpp(es_bytes - sei, w, h, t),
            "bpp_container": metrics.bpp(Path(path).stat().st_size, w, h, t),
            "info_sei_bytes": sei, "encode_seconds": enc_s,
            "device": f"cpu ({os.cpu_count()} threads)", "frames": t, "width": w, "height": h,
            "input": f"{how}, {colour.describe()}",
        }

    def evaluate(self, record: dict, path: str | Path, frames: np.ndarray,
                 source: SourceYuv | None = None) -> dict:
        """Decode what compress() wrote at path and complete its record with quality and timing."""
        t, h, w, _ = frames.shape
        colour = source.colour if source is not None else rgb_colour(h)
        rec, dec_s = self.decode(path, colour)
        if rec.shape[0] != t:
            raise RuntimeError(f"{self}: decoded {rec.shape[0]} frames, expected {t}")
        quality = measure(frames, rec[:, :h, :w], colour.metric)
        return {**record, **quality, "decode_seconds": dec_s}

    def run(self, frames: np.ndarray, fps, crf: int, workdir: str | Path | None = None,
            source: SourceYuv | None = None) -> dict:
        """Encode, decode and measure at one CRF; returns the record described in the module doc."""
        with tempfile.TemporaryDirectory(dir=workdir, prefix=f"{self.name}-") as tmp:
            path = Path(tmp) / "out.mp4"
            return self.evaluate(self.compress(frames, fps, crf, path, source), path, frames, source)


class X264(FFmpegCodec):
    name, encoder = "x264", "libx264"


class X265(FFmpegCodec):
    name, encoder = "x265", "libx265"
    crf_start = (25, 37)

    def options(self, crf: int) -> dict:
        return {**super().options(crf), "x265-params": "log-level=error"}


class SvtAv1(FFmpegCodec):
    """SVT-AV1 (libsvtav1). CRF 1-63; preset names map through SVT_PRESETS."""

    name, encoder = "svt-av1", "libsvtav1"
    crf_range = (1, 63)
    crf_start = (30, 48)

    def __init__(self, preset: str = "medium"):
        super().__init__(preset)
        self.svt_preset = int(preset) if str(preset).isdigit() else SVT_PRESETS[str(preset)]

    def options(self, crf: int) -> dict:
        return {"crf": str(crf), "preset": str(self.svt_preset)}


CODECS = {"x264": X264, "x265": X265, "svt-av1": SvtAv1}


def crf_sweep(codec: FFmpegCodec, frames: np.ndarray, fps, targets, tries: int = 3,
              tolerance: float = 0.15, workdir=None, log=None, source: SourceYuv | None = None) -> list[dict]:
    """Records whose bpp lands near each target bpp (one per target, duplicates merged, by bpp).

    log(bpp) is close to linear in CRF, so: encode the codec's two start CRFs, then for each
    target interpolate (or extrapolate) log(bpp) between the two encoded CRFs that bracket it and
    encode the predicted integer CRF; repeat while the nearest point is more than ``tolerance``
    away (relative, in bpp) and fewer than ``tries`` encodes were spent on this target. Probes
    only encode (the rate is all the search needs) and are shared by the targets; only the chosen
    CRFs are decoded and measured. A target the codec cannot reach (beyond CRF 51 or 63) gets
    the nearest point there is.
    """
    with tempfile.TemporaryDirectory(dir=workdir, prefix=f"{codec.name}-sweep-") as tmp:
        def file(crf: int) -> Path:
            return Path(tmp) / f"crf{crf}.mp4"

        probes = _sweep(codec, lambda crf: codec.compress(frames, fps, crf, file(crf), source),
                        targets, tries, tolerance, log)
        chosen = []
        for r in probes:
            chosen.append(codec.evaluate(r, file(r["crf"]), frames, source))
            if log:
                log(f"  {codec.name} {codec.preset} crf {r['crf']}: {r['bpp']:.4f} bpp, "
                    f"{chosen[-1]['psnr_rgb']:.2f} dB RGB")
    return chosen


def _sweep(codec: FFmpegCodec, compress, targets, tries, tolerance, log) -> list[dict]:
    """The CRF search of crf_sweep on rates only: the rate records of the chosen CRFs, by bpp."""
    done: dict[int, dict] = {}
    lo, hi = codec.crf_range

    def encode(crf: int) -> dict:
        if crf not in done:
            done[crf] = compress(crf)
            if log:
                log(f"  {codec.name} {codec.preset} probe crf {crf}: {done[crf]['bpp']:.4f} bpp")
        return done[crf]

    def predict(target: float) -> int:
        pts = sorted((c, math.log(r["bpp"])) for c, r in done.items() if r["bpp"] > 0)
        y = math.log(target)
        # the bracketing pair (rate falls as CRF rises), else the two nearest ends
        pair = next(((a, b) for a, b in zip(pts, pts[1:]) if b[1] <= y <= a[1]), None)
        if pair is None:
            pair = (pts[0], pts[1]) if y > pts[0][1] else (pts[-2], pts[-1])
        (c0, y0), (c1, y1) = pair
        slope = (y1 - y0) / (c1 - c0) if c1 != c0 and y1 != y0 else -math.log(2) / 6
        slope = min(slope, -0.02)  # rate must fall with CRF; guard against flat or noisy probes
        return int(round(min(max(c0 + (y - y0) / slope, lo), hi)))

    def nearest(target: float) -> dict:
        return min(done.values(), key=lambda r: abs(math.log(max(r["bpp"], 1e-9) / target)))

    for crf in codec.crf_start:
        encode(crf)
    chosen = []
    for target in sorted(targets):
        for _ in range(tries):
            if abs(nearest(target)["bpp"] / target - 1) <= tolerance:
                break
            crf = predict(target)
            if crf in done:
                break
            encode(crf)
        chosen.append(nearest(target))
    unique = {r["crf"]: r for r in chosen}
    return sorted(unique.values(), key=lambda r: r["bpp"])


class Dnv:
    """The dnv codec through its Python API (nvcodec.codec, imported when first used)."""

    name = "dnv"

    def __init__(self, preset: str = "medium", epochs: int | None = None, device: str = "auto",
                 model: str = "dnerv", color: str | None = None):
        # color: the sample format dnv codes (`dnv encode --color`; None: the source's own).
        self.preset, self.epochs, self.device, self.model, self.color = preset, epochs, device, model, color

    def __repr__(self) -> str:
        return f"Dnv({self.preset!r}, epochs={self.epochs})"

    def run(self, source: str | Path, frames: np.ndarray, target_bpp: float,
            frame_range=(0, None), workdir=None, matrix: str | None = None, size=None, fps=None) -> dict:
        """Encode source (frames = its ground truth over frame_range) at target_bpp, decode, measure.

        An encoder error that says the target is infeasible gives a record with ``skipped`` (the
        message) instead of figures; any other error propagates. ``matrix`` is the YUV-PSNR matrix
        (default: yuv_matrix(height)); give the anchors' so that the figures compare. ``size`` (W, H) and
        ``fps`` describe a headerless .yuv source.
        """
        from nvcodec.codec import decode_to_array, encode

        t, h, w, _ = frames.shape
        base = {"codec": self.name, "model": self.model, "preset": self.preset, "target_bpp": target_bpp,
                "epochs": self.epochs, "frames": t, "width": w, "height": h}
        with tempfile.TemporaryDirectory(dir=workdir, prefix="dnv-") as tmp:
            path = Path(tmp) / "out.dnv"
            try:
                report = encode(str(source), str(path), bpp=target_bpp, model=self.model,
                                preset=self.preset, epochs=self.epochs, device=self.device,
                                frame_range=tuple(frame_range), progress=False, color=self.color,
                                size=size, fps=fps)
            except Exception as exc:  # noqa: BLE001 - only the infeasible case is kept
                if _is_infeasible(exc):
                    return {**base, "skipped": f"{type(exc).__name__}: {exc}"}
                raise
            start = time.perf_counter()
            rec, dec_report = decode_to_array(str(path), device=self.device)
            dec_wall = time.perf_counter() - start
            file_bytes = path.stat().st_size
        if rec.shape != frames.shape:
            raise RuntimeError(f"dnv decoded {rec.shape}, expected {frames.shape}")
        return {
            **base,
            "bpp": metrics.bpp(file_bytes, w, h, t),
            "bpp_container": metrics.bpp(file_bytes, w, h, t),
            **measure(frames, rec, matrix or yuv_matrix(h)),
            "encode_seconds": report.get("encode_seconds"),
            "decode_seconds": dec_report.get("decode_seconds", dec_wall),
            "device": report.get("device") or dec_report.get("device"),
            "gpu": report.get("device") if report.get("device", "cpu") != "cpu" else "none",
            "epochs_used": report.get("epochs"),
            "prune_epochs_used": report.get("prune_epochs"),
            "optimizer": (report.get("train_options") or {}).get("optimizer"),
            "params": report.get("params"),
            "report_psnr": report.get("psnr"),
            "color": report.get("color", "rgb").split(" ")[0],     # the sample format coded: rgb or yuv420
        }


_INFEASIBLE = re.compile(r"infeasib|below what|can(not|'t)? reach|too (low|small)|unreachable", re.I)


def _is_infeasible(exc: BaseException | None) -> bool:
    """True for nvcodec's "target bpp below what the smallest model reaches" error (sizing.InfeasibleRate,
    re-raised by codec.encode as CodecError with the same message), matched by type name or text."""
    while exc is not None:
        if "infeasib" in type(exc).__name__.lower() or _INFEASIBLE.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
