"""Bjøntegaard figures of sweep encodes (benchmarks.sweep reports) against the anchors of rd.json files.

    python3 -m benchmarks.sweep_bd REPORT.json... --anchors rd.json... [--out FILE.md] [--add-to rd.json]

Reports are grouped into curves by clip, frame range, model, preset and requested quantizer depth; each
curve with two points or more is compared, per clip and frame range, with every anchor curve (codec, preset)
of the rd.json files: BD-PSNR (dB, positive: dnv better) and BD-rate (%, negative: dnv needs fewer bits),
on RGB PSNR, PCHIP over the overlap (benchmarks.bd). Anchors must cover the same frames.

--add-to appends the reports to an rd.json as dnv points (with their model, preset and GPU; an encode report
has no YUV PSNR), so that `python3 -m benchmarks.rd --report-only --out FOLDER` puts them in its tables.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from benchmarks import bd
from benchmarks.common import command_line, write_file


def frame_range(args: list[str], frames: int) -> tuple[int, int | None]:
    """The frames a sweep job encoded, as rd.json writes them: [start, end or None]."""
    if "--frames" in args:
        start, _, end = args[args.index("--frames") + 1].partition(":")
        return int(start or 0), int(end) if end else None
    return 0, None


def curves(reports: list[dict]) -> dict:
    out = defaultdict(list)
    for r in reports:
        args = r.get("sweep_args", [])
        key = (Path(r["input"]).name, frame_range(args, r["frames"]), r["model"], r["preset"], r["quant_bits"],
               tuple(a for a in args if a.startswith("qat=")))
        out[key].append((r["bpp"], r["psnr"]))
    return {k: sorted(v) for k, v in out.items() if len(v) >= 2}


def rd_point(r: dict) -> dict:
    """An encode report as a point of benchmarks.rd (the fields its tables and BD figures read)."""
    start, end = frame_range(r.get("sweep_args", []), r["frames"])
    return {"clip": Path(r["input"]).name, "frame_range": [start, end], "codec": "dnv", "model": r["model"],
            "preset": r["preset"], "target_bpp": r["target_bpp"], "epochs": None, "frames": r["frames"],
            "width": r["width"], "height": r["height"], "bpp": r["bpp"], "bpp_container": r["bpp"],
            "psnr_rgb": r["psnr"], "psnr_yuv": None, "ms_ssim": r["ms_ssim"], "encode_seconds": r["encode_seconds"],
            "decode_seconds": None, "device": r["device"], "gpu": r["device"] if r["device"] != "cpu" else "none",
            "epochs_used": r["epochs"], "prune_epochs_used": r["prune_epochs"], "params": r["params"],
            "quant_bits": r["quant_bits"], "optimizer": r["train_options"]["optimizer"], "report_psnr": r["psnr"],
            "sweep_args": r.get("sweep_args")}


def anchor_curves(paths: list[Path]) -> dict:
    out = defaultdict(list)
    for path in paths:
        for p in json.loads(path.read_text())["points"]:
            if p.get("codec") != "dnv" and "psnr_rgb" in p and not p.get("skipped"):
                key = (p["clip"], tuple(p["frame_range"]), p["codec"], p["preset"])
                if (p["bpp"], p["psnr_rgb"]) not in out[key]:
                    out[key].append((p["bpp"], p["psnr_rgb"]))
    return {k: sorted(v) for k, v in out.items()}


def table(dnv: dict, anchors: dict) -> list[str]:
    rows = ["| clip | frames | model, preset, bits | points (bpp: dB) | anchor | BD-PSNR (dB) | BD-rate (%) |",
            "|---|---|---|---|---|---:|---:|"]
    for (clip, frames, model, preset, bits, extra), points in sorted(dnv.items(), key=lambda kv: str(kv[0])):
        shown = ", ".join(f"{b:.4f}: {p:.2f}" for b, p in points)
        for (aclip, aframes, codec, apreset), apoints in sorted(anchors.items(), key=lambda kv: str(kv[0])):
            if aclip != clip or (aframes[0], aframes[1]) != frames:
                continue
            ra, pa = zip(*apoints)
            rb, pb = zip(*points)
            dp, dr = bd.bd_psnr(ra, pa, rb, pb), bd.bd_rate(ra, pa, rb, pb)
            rows.append(f"| {clip} | {frames[0]}:{'' if frames[1] is None else frames[1]} | {model}, {preset}, "
                        f"{bits}{' ' + ' '.join(extra) if extra else ''} | {shown} | {codec} {apreset} | "
                        f"{'n/a' if dp is None else f'{dp:+.2f}'} | {'n/a' if dr is None else f'{dr:+.1f}'} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", type=Path)
    ap.add_argument("--anchors", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--add-to", type=Path, default=None, help="append the reports to this rd.json as dnv points")
    opts = ap.parse_args(argv)
    reports = [json.loads(p.read_text()) for p in opts.reports]
    text = "\n".join([f"Command: `{command_line()}`", "", *table(curves(reports), anchor_curves(opts.anchors))]) + "\n"
    print(text)
    if opts.out:
        write_file(opts.out, text)
    if opts.add_to:
        data = json.loads(opts.add_to.read_text())
        have = {json.dumps(p.get("sweep_args")) + p["clip"] for p in data["points"] if p.get("sweep_args")}
        data["points"] += [rd_point(r) for r in reports
                           if json.dumps(r.get("sweep_args")) + Path(r["input"]).name not in have]
        write_file(opts.add_to, json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
