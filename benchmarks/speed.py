"""Neural decoding speed of the DNeRV decoder, and the end-to-end split of `dnv decode`.

    python3 -m benchmarks.speed [--sizes 0.35M 3M] [--resolutions 1280x720 1920x1080]
                               [--batches 8 32] [--dtypes fp32 bf16] [--dnv FILE --ref CLIP]

Part 1 times the decoder alone (random weights and embeddings: speed does not depend on values) per
model size, resolution, batch and dtype, compiled with torch.compile, channels-last, with CUDA events
around many calls after a warm-up; frames/s = batch x calls / time. The output conversion to uint8
is included. Part 2 (with --dnv) runs `codec.decode` on a real file in fp32 and bf16 and records
the split into load (read + entropy decoding + model build), neural decoding and file writing, and
the PSNR of both precisions against --ref.
Writes speed.json (+ .meta.json) and speed.md into --out (benchmarks/results/speed.json holds the merged runs).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchmarks.common import SIZES, machine, markdown_table, write_file, write_json
from nvcodec import codec
from nvcodec.decoding import to_uint8
from nvcodec.models import Decoder
from nvcodec.sizing import plan_for_params


def time_decoder(arch, batch: int, dtype: str, device, compile_: bool, calls: int = 30) -> float:
    dec = Decoder(arch).to(device).eval()
    if device.type == "cuda":
        dec = dec.to(memory_format=torch.channels_last)
    content = torch.randn(batch, *arch.content_shape, device=device)
    diff = torch.randn(batch, *arch.diff_shape, device=device) if arch.has_diff else None
    autocast_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32

    def run(c, d):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=dtype == "bf16"):
            return to_uint8(dec(c, d)[..., : arch.height, : arch.width])

    fn = torch.compile(run) if compile_ else run
    with torch.no_grad():
        for _ in range(3):
            fn(content, diff)
        if device.type != "cuda":
            import time
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(content, diff)
            return batch * calls / (time.perf_counter() - t0)
        times = []
        for _ in range(5):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn(content, diff)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    return batch * calls / statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--resolutions", nargs="+", default=["1280x720", "1920x1080"])
    ap.add_argument("--batches", nargs="+", type=int, default=[8, 32])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--calls", type=int, default=30)
    ap.add_argument("--dnv", type=Path, default=None, help="A real .dnv for the end-to-end split.")
    ap.add_argument("--ref", type=Path, default=None, help="Its source clip (PSNR of fp32 vs bf16).")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if a.dnv is not None and not a.dnv.is_file():
        ap.error(f"--dnv {a.dnv}: no such file")
    meta = machine()
    records = []
    end_to_end = []
    for res in a.resolutions:
        w, h = map(int, res.split("x"))
        for size in a.sizes:
            arch = plan_for_params("dnerv", w, h, SIZES[size]).arch
            params = sum(p.numel() for p in Decoder(arch).parameters())
            for batch in a.batches:
                for dtype in a.dtypes:
                    fps = time_decoder(arch, batch, dtype, device, not a.no_compile, a.calls)
                    rec = {"size": size, "model_params": params, "width": w, "height": h, "batch": batch,
                           "dtype": dtype, "decode_fps": round(fps, 1), "compiled": not a.no_compile,
                           "gpu": meta["gpu"], "torch": meta["torch"]}
                    records.append(rec)
                    print(rec, flush=True)
                    write_json(a.out / "speed.json", records, {**meta, "end_to_end": end_to_end})
    if a.dnv is not None:
        with tempfile.TemporaryDirectory() as tmp:
            for precision in ("fp32", "bf16"):
                for _ in range(2):  # the second run is the one kept: the first warms up libraries and caches
                    r = codec.decode(a.dnv, Path(tmp) / "rec.mp4", ref=a.ref, device=str(device),
                                     precision=precision, batch=16)
                end_to_end.append({k: r[k] for k in ("precision", "frames", "width", "height", "bpp", "load_seconds",
                                                     "neural_seconds", "neural_fps", "write_seconds",
                                                     "decode_seconds", "decode_fps", "score_seconds", "psnr")})
                print(end_to_end[-1], flush=True)
    write_json(a.out / "speed.json", records, {**meta, "end_to_end": end_to_end})
    cols = ["size", "model_params", "width", "height", "batch", "dtype", "decode_fps"]
    md = [f"# Neural decoding speed\n\nGPU: {meta['gpu']}, torch {meta['torch']}, {meta['date']}.  ",
          f"Command: `{meta['command']}`\n", markdown_table(records, cols)]
    if end_to_end:
        md += ["\n## `dnv decode` end to end (second of two runs; writing H.264 .mp4)\n",
               markdown_table(end_to_end, list(end_to_end[0]))]
    write_file(a.out / "speed.md", "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
