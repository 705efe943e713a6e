"""Writing decoded frames, per frame: RGB frames (RGB coding: swscale RGB -> 4:2:0, then the encoder) against 4:2:0
planes (YUV coding: copied in), to .mp4 and .y4m, runs interleaved, medians.

    python3 -m benchmarks.write_speed [CLIP] [--frames N] [--runs R]

The network is the same in both formats (its last conv gives three planes either way), so this is what the sample
format changes in `dnv decode`'s time, apart from reading the file.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine
from nvcodec.color import RGB
from nvcodec.video import VideoWriter, read_video

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("clip", nargs="?", default=".testdata/bigbuckbunny_1280x720_132f.mp4")
ap.add_argument("--frames", type=int, default=24)
ap.add_argument("--runs", type=int, default=5)
a = ap.parse_args()
planes, info = read_video(a.clip, frame_range=(0, a.frames), color="yuv420")
rgb, _ = read_video(a.clip, frame_range=(0, a.frames), color="rgb")
h, w = rgb.shape[1:3]
results = {}
with tempfile.TemporaryDirectory() as tmp:
    for rep in range(a.runs):
        for ext in ("mp4", "y4m"):
            for name, frames, color in (("rgb", rgb, RGB), ("yuv420", planes, info.color)):
                t = time.perf_counter()
                writer = VideoWriter(Path(tmp) / f"o.{ext}", w, h, 25, color)
                writer.write(frames)
                writer.close()
                results.setdefault(f"{ext} {name}", []).append((time.perf_counter() - t) / len(frames) * 1000)
for k, v in results.items():
    print(f"{k}: median {statistics.median(v):.2f} ms/frame (runs {', '.join(f'{x:.2f}' for x in v)})")
print(json.dumps({"clip": Path(a.clip).name, "size": f"{w}x{h}", "frames": a.frames, "runs": a.runs,
                  "ms_per_frame_median": {k: round(statistics.median(v), 2) for k, v in results.items()},
                  **machine()}))
