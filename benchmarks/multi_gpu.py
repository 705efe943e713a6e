"""Encoding a long clip on 1 and on N GPUs: the speed-up, and whether the outputs decode to the same quality.

    python3 -m benchmarks.multi_gpu CLIP [--length 1200] [--gpus 1 2] [--bpp 0.05] [--epochs 30]
        [--segment-frames 300] [--device auto] [--out benchmarks/results/multi_gpu]

The clip is looped to --length frames, played forwards then backwards so that the motion has no jump
(written losslessly to a temporary FFV1 .mkv at its own size). For each count in --gpus, `dnv encode
--gpus N` runs in a fresh process and its wall time is measured. Each output is then decoded with
`--ref` the looped clip. Writes multi_gpu.json and multi_gpu.md.
Speed-up = wall time with the first count / wall time with each other count. The quality check
compares the decoded PSNRs. The bytes can differ between counts: on a GPU cuDNN's training kernels
are not guaranteed bit-reproducible, and on a CPU the processes split the cores, and a convolution's
sums depend on the thread count. `run_seconds` is the time inside the encode (rank 0, from its start
to the written file); the rest of the wall time is start-up. `busiest_rank_seconds` sums the segment
times (fit + compress + check) of the rank with the most.
On a CPU (`--device cpu`), N processes share the cores, so the speed-up there says nothing about GPUs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from fractions import Fraction
from pathlib import Path

from benchmarks.common import machine, markdown_table, write_file, write_json
from benchmarks.long_memory import run_measured
from nvcodec.video import VideoReader, VideoWriter


def looped_clip(source: Path, length: int, path: Path) -> tuple[int, int, Fraction]:
    """Write `length` frames of `source` played forwards, backwards, forwards ... to `path`."""
    with VideoReader(source) as reader:
        frames = list(reader)
        fps = reader.info.fps
    if len(frames) < 2:
        raise SystemExit(f"{source}: needs at least 2 frames to loop")
    cycle = frames + frames[-2:0:-1]          # 0..n-1, then n-2..1: no repeated or skipped frame at the turns
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, fps) as writer:
        for i in range(length):
            writer.write(cycle[i % len(cycle)])
    return w, h, fps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--length", type=int, default=1200)
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bpp", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--prune-epochs", type=int, default=None, help="default: 10%% of --epochs")
    ap.add_argument("--segment-frames", type=int, default=300)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/multi_gpu"))
    a = ap.parse_args(argv)
    prune_epochs = a.prune_epochs if a.prune_epochs is not None else max(1, a.epochs // 10)
    records = []
    with tempfile.TemporaryDirectory(prefix="dnv-multi-") as tmp:
        clip = Path(tmp) / "looped.mkv"
        w, h, fps = looped_clip(a.clip, a.length, clip)
        print(f"{a.clip.name} looped to {a.length} frames at {w}x{h}", flush=True)
        for n in a.gpus:
            dnv, enc_json, dec_json = (Path(tmp) / f"gpus{n}.{ext}" for ext in ("dnv", "enc.json", "dec.json"))
            seconds, _ = run_measured(["encode", str(clip), "-o", str(dnv), "--bpp", str(a.bpp), "--epochs",
                                       str(a.epochs), "--prune-epochs", str(prune_epochs), "--segment-frames",
                                       str(a.segment_frames), "--gpus", str(n), "--device", a.device, "-q",
                                       "--json", str(enc_json)])
            run_measured(["decode", str(dnv), "--ref", str(clip), "--device", a.device, "--json", str(dec_json)])
            enc, dec = json.loads(enc_json.read_text()), json.loads(dec_json.read_text())
            records.append({"gpus": n, "processes": enc["processes"], "device": enc["device"],
                            "segments": len(enc["segments"]), "encode_wall_seconds": round(seconds, 1),
                            "train_seconds_sum": round(enc["train_seconds"], 1),
                            # summed over segments (so over ranks too): where the wall time went
                            **{f"{part}_seconds_sum": round(sum(sg["seconds"][part] for sg in enc["segments"]), 1)
                               for part in ("fit", "compress", "check")},
                            # inside the encode: from rank 0's start to the written file; the rest of the
                            # wall time is start-up (interpreters, CUDA, NCCL). Segments go round-robin.
                            "run_seconds": round(enc["encode_seconds"], 1),
                            "busiest_rank_seconds": round(max(
                                sum(sum(sg["seconds"].values()) for sg in enc["segments"][r::enc["processes"]])
                                for r in range(enc["processes"])), 1),
                            "bytes": enc["bytes"],
                            "bpp": enc["bpp"], "psnr_decoded": dec["psnr"], "psnr_at_encode": enc["psnr"],
                            "sha_prefix": hashlib.sha256(dnv.read_bytes()).hexdigest()[:16]})
            print(records[-1], flush=True)
    base = records[0]
    for r in records:
        r["speedup"] = round(base["encode_wall_seconds"] / r["encode_wall_seconds"], 3)
        r["psnr_difference_db"] = r["psnr_decoded"] - base["psnr_decoded"]
        r["same_bytes"] = r["sha_prefix"] == base["sha_prefix"]
    meta = {**machine(), "clip": a.clip.name, "length": a.length, "width": w, "height": h, "fps": str(fps),
            "epochs": a.epochs, "prune_epochs": prune_epochs, "segment_frames": a.segment_frames, "bpp": a.bpp}
    write_json(a.out / "multi_gpu.json", records, meta)
    write_file(a.out / "multi_gpu.md", 
        f"# Encoding on 1 and several GPUs\n\n{meta['date']}, GPU {meta['gpu']}, torch {meta['torch']}.  \n"
        f"Command: `{meta['command']}`  \n{a.clip.name} looped to {a.length} frames "
        f"({w}x{h}), segments of {a.segment_frames}, {a.epochs}+{prune_epochs} epochs, --bpp {a.bpp}. "
        "Wall time of `dnv encode` in a fresh process (start-up, compile and the per-segment quality check "
        "included).\n\n"
        + markdown_table(records, ["gpus", "processes", "device", "segments", "encode_wall_seconds", "speedup",
                                   "run_seconds", "busiest_rank_seconds",
                                   "fit_seconds_sum", "compress_seconds_sum", "check_seconds_sum",
                                   "bytes", "bpp", "psnr_decoded", "psnr_difference_db", "same_bytes"]) + "\n")


if __name__ == "__main__":
    main()
