"""RGB against YUV 4:2:0 coding at equal bpp (issue 19): both PSNRs of every job, measured the same way.

    python3 -m benchmarks.yuv420 JOBFILE --out DIR [--parallel N]

JOBFILE is a `benchmarks.sweep` job file whose job names end in `-rgb` or `-yuv420` (the same job otherwise,
with `--color rgb` or `--color yuv420`); a variant `CLIP-BPP-VARIANT-yuv420` (other training settings, say) is
compared with `CLIP-BPP-rgb`. Each job is encoded as `benchmarks.sweep` does, keeping its .dnv
(DIR/NAME.dnv, resumable), then decoded and scored against its source read in the source's own format:
- YUV PSNR (6:1:1, per frame, averaged) against the source's own 4:2:0 planes; an RGB file's frames are
  converted to 4:2:0 with the source's matrix and range (swscale);
- RGB PSNR and MS-SSIM against the source converted to RGB (the frames an RGB encode trains on); a 4:2:0 file's
  planes are converted with the same call.
So both files of a pair are scored against the same references (`nvcodec.metrics.Tally`). DIR/yuv420.md
tabulates each pair and the differences (yuv420 minus rgb); DIR/yuv420.json holds the figures.
"""
from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import command_line, machine, write_file
from benchmarks.sweep import read_jobs, run_job

SUFFIXES = ("-rgb", "-yuv420")


def source_options(args: list[str]) -> tuple[str, dict]:
    """(input, VideoReader keywords) of a job's `dnv encode` arguments, parsed by the CLI itself."""
    from nvcodec.cli import _frames, encode

    ctx = encode.make_context("encode", [args[0], "-o", "unused.dnv", *args[1:]])
    p = ctx.params
    return p["input"], dict(frame_range=_frames(p["frame_range"], "--frames"), size=p["size"],
                            pix_fmt=p["pix_fmt"], fps=p["fps"])


def score(dnv: Path, args: list[str], device: str = "auto", batch: int = 16) -> dict:
    """Decode `dnv` and compare it with the job's source (see the module docstring)."""
    import numpy as np
    import torch

    from nvcodec import codec, metrics
    from nvcodec.color import Color
    from nvcodec.video import VideoReader

    frames, report = codec.decode_to_array(dnv, device=device, planes=True)
    info = codec.info(dnv)
    info = info.get("first_segment", info)
    color = Color(info["color"], info["color_matrix"], info["color_range"], info["color_primaries"], info["color_trc"])
    source, options = source_options(args)
    dev = codec.resolve_device(device)
    tally = metrics.Tally(dev if dev.type == "cuda" else None, color)
    with VideoReader(source, color=None, **options) as reader, torch.no_grad():
        done, pending = 0, []
        for frame in reader:
            pending.append(frame)
            if len(pending) == batch:
                tally.ref_color = reader.info.color
                tally.add(frames[done:done + batch], np.stack(pending))
                done, pending = done + batch, []
        if pending:
            tally.ref_color = reader.info.color
            tally.add(frames[done:], np.stack(pending))
    if tally.frames != len(frames):
        raise RuntimeError(f"{dnv}: {len(frames)} frames decoded, the source gave {tally.frames}")
    psnr, ms_ssim = tally.result()
    return {"bpp": report["bpp"], "psnr_rgb": psnr, "psnr_yuv": tally.yuv_result(), "ms_ssim": ms_ssim,
            "color": color.describe(), "source_color": tally.ref_color.describe()}


def rgb_partner(pair: str, names: list[str]) -> str | None:
    """The RGB job a yuv420 job `pair`-yuv420 is compared with: `pair`-rgb, or that of a shorter prefix."""
    parts = pair.split("-")
    for n in range(len(parts), 0, -1):
        if "-".join(parts[:n]) + "-rgb" in names:
            return "-".join(parts[:n]) + "-rgb"
    return None


def table(out: Path, jobs, figures: dict, meta: dict) -> str:
    rows = ["| pair | bpp rgb / yuv420 | PSNR RGB: rgb / yuv420 (Δ) | PSNR YUV 6:1:1: rgb / yuv420 (Δ) | "
            "MS-SSIM: rgb / yuv420 | train s rgb / yuv420 |", "|---|---|---|---|---|---|"]
    deltas = []
    for pair in [name[: -len("-yuv420")] for name, _ in jobs if name.endswith("-yuv420")]:
        a, b = figures.get(rgb_partner(pair, [name for name, _ in jobs])), figures.get(pair + "-yuv420")
        if not a or not b:
            rows.append(f"| {pair} | (missing) | | | | |")
            continue
        d_rgb, d_yuv = b["psnr_rgb"] - a["psnr_rgb"], b["psnr_yuv"] - a["psnr_yuv"]
        if figures.get(pair + "-rgb") is a:     # (the mean is over the plain pairs, not the variants)
            deltas.append((d_rgb, d_yuv))
        rows.append(f"| {pair} | {a['bpp']:.4f} / {b['bpp']:.4f} | {a['psnr_rgb']:.2f} / {b['psnr_rgb']:.2f} "
                    f"({d_rgb:+.2f}) | {a['psnr_yuv']:.2f} / {b['psnr_yuv']:.2f} ({d_yuv:+.2f}) | "
                    f"{a['ms_ssim']:.4f} / {b['ms_ssim']:.4f} | {a.get('train_seconds', 0):.0f} / "
                    f"{b.get('train_seconds', 0):.0f} |")
    if deltas:
        rows.append(f"| **mean of {len(deltas)} pairs** | | ({sum(d for d, _ in deltas) / len(deltas):+.2f}) | "
                    f"({sum(d for _, d in deltas) / len(deltas):+.2f}) | | |")
    head = [f"# RGB against YUV 4:2:0 coding: {out.name}", "", f"- command: `{meta['command']}`",
            f"- machine: {meta['machine']}", f"- GPU: {meta['gpu']}; torch {meta['torch']}; date {meta['date']}",
            "- encodes ran side by side: their times are not those of an encode alone",
            "- PSNR YUV against the source's own 4:2:0 planes; PSNR RGB against its RGB conversion "
            "(benchmarks/yuv420.py)", ""]
    return "\n".join(head + rows) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobfile", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--parallel", type=int, default=4, help="encodes at once")
    ap.add_argument("--device", default="auto", help="where to decode and score")
    opts = ap.parse_args(argv)
    opts.out.mkdir(parents=True, exist_ok=True)
    jobs = read_jobs(opts.jobfile)
    odd = [name for name, _ in jobs if not name.endswith(SUFFIXES)]
    if odd:
        raise SystemExit(f"job names must end in -rgb or -yuv420: {', '.join(odd)}")
    meta = {**machine(), "command": command_line(argv)}
    with ThreadPoolExecutor(opts.parallel) as pool:
        for done in pool.map(lambda job: run_job(*job, opts.out, keep=True), jobs):
            print(done, flush=True)
    figures = {}
    for name, args in jobs:
        dnv, report = opts.out / f"{name}.dnv", opts.out / f"{name}.json"
        if dnv.is_file() and report.is_file():
            encoded = json.loads(report.read_text())
            figures[name] = {**score(dnv, args, opts.device), "train_seconds": encoded.get("train_seconds", 0.0),
                             "encode_psnr": encoded.get("psnr"), "encode_psnr_yuv": encoded.get("psnr_yuv")}
            print(f"{name}: {figures[name]}", flush=True)
    write_file(opts.out / "yuv420.json", json.dumps({"meta": meta, "figures": figures}, indent=1))
    write_file(opts.out / "yuv420.md", table(opts.out, jobs, figures, meta))
    print((opts.out / "yuv420.md").read_text())


if __name__ == "__main__":
    main()
