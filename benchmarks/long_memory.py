"""Peak memory of encoding and decoding long videos: it must not grow with the video's length.

    python3 -m benchmarks.long_memory [--lengths 300 3000] [--size 96x64] [--epochs 1]

Writes a synthetic-motion clip (a moving, rotating colour pattern; FFV1 .mkv) of each length, then runs
`dnv encode` (segments of 300 frames) and `dnv decode` in fresh processes and reads their peak RSS
(`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`). Also times a random-access decode of 60 frames
against decoding the whole file. Writes long_memory.json / .md into --out.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.common import machine, markdown_table, write_file, write_json
from nvcodec.video import VideoWriter


def synthetic_clip(path: Path, frames: int, width: int, height: int) -> None:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with VideoWriter(path, width, height, Fraction(25)) as writer:
        for t in range(frames):
            a = t * 0.05
            u = (x - width / 2) * np.cos(a) - (y - height / 2) * np.sin(a) + 3 * t
            v = (x - width / 2) * np.sin(a) + (y - height / 2) * np.cos(a)
            rgb = np.stack([np.sin(u / 7), np.cos(v / 9), np.sin((u + v) / 11 + t * 0.1)], -1)
            writer.write(((rgb * 0.5 + 0.5) * 255).astype(np.uint8))


def run_measured(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `python -m nvcodec ARGS` in a fresh process."""
    code = ("import resource, runpy, sys; sys.argv = ['dnv'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('nvcodec', run_name='__main__')\nexcept SystemExit as e:\n"
            "    rc = e.code\nelse:\n    rc = 0\n"
            "print('PEAK_RSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(rc)")
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        said = [line for line in p.stderr.strip().splitlines() if not line.startswith("PEAK_RSS_KIB")]
        raise SystemExit(f"dnv {' '.join(args)} failed: {said[-1] if said else 'exit ' + str(p.returncode)}")
    kib = int([line for line in p.stderr.splitlines() if line.startswith("PEAK_RSS_KIB")][-1].split()[1])
    return seconds, kib / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[300, 3000])
    ap.add_argument("--size", default="96x64")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--bpp", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/long_memory"))
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.lengths:
            clip, dnv = Path(tmp) / f"clip{n}.mkv", Path(tmp) / f"clip{n}.dnv"
            synthetic_clip(clip, n, w, h)
            enc_s, enc_mib = run_measured(["encode", str(clip), "-o", str(dnv), "--bpp", str(a.bpp), "--epochs",
                                           str(a.epochs), "--prune-epochs", "0", "--device", "cpu", "-q",
                                           "--segment-frames", "300"])
            dec_s, dec_mib = run_measured(["decode", str(dnv), "-o", str(Path(tmp) / "rec.mkv"), "--ref", str(clip),
                                           "--device", "cpu"])
            mid = n // 2
            ra_s, ra_mib = run_measured(["decode", str(dnv), "-o", str(Path(tmp) / "part.mkv"), "--device", "cpu",
                                         "--frames", f"{mid}:{mid + 60}"])
            rec = {"frames": n, "width": w, "height": h, "bytes": dnv.stat().st_size,
                   "encode_seconds": round(enc_s, 1), "encode_peak_rss_mib": round(enc_mib),
                   "decode_seconds": round(dec_s, 1), "decode_peak_rss_mib": round(dec_mib),
                   "random_access_60_seconds": round(ra_s, 2), "random_access_peak_rss_mib": round(ra_mib)}
            print(rec, flush=True)
            records.append(rec)
    meta = machine()
    write_json(a.out / "long_memory.json", records, meta)
    write_file(a.out / "long_memory.md", 
        f"# Peak memory against video length (CPU)\n\n{meta['date']}, torch {meta['torch']}, {meta['cpu_count']} CPUs.  \n"
        f"Command: `{meta['command']}`  \nEach figure is a fresh process "
        "(`python -m nvcodec ...`); seconds include process start-up and imports.\n\n"
        + markdown_table(records, list(records[0])) + "\n")


if __name__ == "__main__":
    main()
