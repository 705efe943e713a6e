"""How fast libx264 writes a clip's 4:2:0 frames at CRF 10, per preset: the choice of `dnv decode`'s .mp4 writer.

    python3 -m benchmarks.writer_speed CLIP [--frames 48] [--presets superfast ultrafast] [--repeat 2] [--out DIR]

The clip's first --frames frames are decoded to yuv420p once, then written to an .mp4 with every core (as
`video._ContainerSink` does) for each preset, --repeat times; each row gives frames/s, the file's size and the
PSNR of the written file against the frames given to it (Y, U and V samples together). Prints a table; with --out
writes writer_CLIP_DATE.json there.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from benchmarks.common import machine, markdown_table, write_file


def write(frames: list[np.ndarray], preset: str, path: Path) -> float:
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=25, options={"crf": "10", "preset": preset})
    stream.height, stream.width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_type, stream.codec_context.thread_count = "AUTO", 0
    start = time.perf_counter()
    for i, planes in enumerate(frames):
        frame = av.VideoFrame.from_numpy_buffer(planes, format="yuv420p")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return time.perf_counter() - start


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--presets", nargs="+", default=["superfast", "ultrafast"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with av.open(str(args.clip)) as c:
        frames = [f.to_ndarray(format="yuv420p") for _, f in zip(range(args.frames), c.decode(video=0))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.mp4"
        for _ in range(args.repeat):
            for preset in args.presets:
                seconds = write(frames, preset, path)
                with av.open(str(path)) as c:
                    back = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
                mse = np.mean([(b.astype(np.float64) - a) ** 2 for b, a in zip(back, frames)])
                rows.append({"preset": preset, "frames_per_second": round(len(frames) / seconds, 1),
                             "kib": path.stat().st_size // 1024,
                             "psnr_vs_written": round(10 * np.log10(255**2 / mse), 2)})
                print(json.dumps(rows[-1]), flush=True)
    print(markdown_table(rows, ["preset", "frames_per_second", "kib", "psnr_vs_written"]))
    if args.out:
        record = {"clip": args.clip.name, "frames": len(frames), "crf": 10, "rows": rows,
                  "command": "python3 -m benchmarks.writer_speed " + " ".join(sys.argv[1:] if argv is None else argv), **machine()}
        write_file(args.out / f"writer_{args.clip.stem}_{datetime.date.today():%Y-%m-%d}.json",
                   json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
