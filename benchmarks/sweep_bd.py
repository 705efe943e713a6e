"""Bjøntegaard figures of sweep encodes (benchmarks.sweep reports) against the anchors of rd.json files.

    python3 -m benchmarks.sweep_bd REPORT.json... --anchors rd.json... [--out FILE.md] [--add-to rd.json]

    python3 -m benchmarks.sweep_bd DIR/*-rgb.json DIR/*-yuv420.json --scores DIR/yuv420.json... --anchors rd.json...

Reports are grouped into curves by clip, frame range, model, preset, sample format (rgb, yuv420) and requested
quantizer depth; each curve with two points or more is compared, per clip and frame range, with every anchor
curve (codec, preset) of the rd.json files: BD-PSNR (dB, positive: dnv better) and BD-rate (%, negative: dnv
needs fewer bits), PCHIP over the overlap (benchmarks.bd), on RGB PSNR and on YUV PSNR (6:1:1). Anchors must
cover the same frames.

The YUV figures need both sides scored against the same 4:2:0 planes: `--scores` takes them from a
`benchmarks.yuv420` run (every file against the source's own planes; an encode report's own YUV PSNR of an RGB
encode is not), and an anchor curve counts only where its encodes read the source's own 4:2:0 frames (rd.json's
`input` "source 4:2:0"; a JPEG folder's anchors code an RGB conversion, another reference).

--add-to appends the reports to an rd.json as dnv points (with their model, preset and GPU), so that
`python3 -m benchmarks.rd --report-only --out FOLDER` puts them in its tables. When the default changed,
`--supersede NAME` first marks the points already there on the reports' curves (same clip, frames, model, preset
and sample format) as `variant` NAME: they stay in rd.json as their own curve (`dnv-...-NAME`), and the reports
make the current one.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks import bd
from benchmarks.common import command_line, split_settings, write_file


def frame_range(args: list[str], frames: int, recorded=None) -> tuple[int, int | None]:
    """The frames a sweep job encoded, as rd.json writes them: [start, end or None]; from the job's `--frames`, else
    from the report's own `frame_range` (`recorded`: reports of direct encodes), else the whole clip."""
    if "--frames" in args:
        start, _, end = args[args.index("--frames") + 1].partition(":")
        return int(start or 0), int(end) if end else None
    if recorded is not None:
        return int(recorded[0]), None if recorded[1] is None else int(recorded[1])
    return 0, None


CURVE_AXES = ("--bpp", "--frames", "--color", "--preset", "--model", "--size", "--fps", "--pix-fmt")


def variant(args: list[str]) -> tuple[str, ...]:
    """The job's other settings (planner settings such as `GRID_SHARE_GOAL=0.06`, `--train rate=true`,
    `--bit-depths rd`, ...): each variant is a curve of its own."""
    settings, args = split_settings(args)
    rest, skip = list(settings), False
    for a in args[1:]:
        if skip:
            skip = False
        elif a in CURVE_AXES:
            skip = True
        else:
            rest.append(a)
    return tuple(rest)


def sample_format(r: dict) -> str:
    """rgb or yuv420: the first word of a report's colour ("rgb (source: ...)", "yuv420 (BT.601, ...)")."""
    return (r.get("color") or "rgb").split()[0]


def curves(reports: list[dict]) -> dict:
    """{(clip, frames, model, preset, sample format, bits, extra): [(bpp, PSNR RGB, PSNR YUV or None)]}."""
    out = defaultdict(list)
    for r in reports:
        args = r.get("sweep_args", [])
        key = (Path(r["input"]).name, frame_range(args, r["frames"], r.get("frame_range")), r["model"], r["preset"],
               sample_format(r), r["quant_bits"], variant(args))
        out[key].append((r["bpp"], r["psnr"], r.get("psnr_yuv")))
    return {k: sorted(v) for k, v in out.items() if len(v) >= 2}


def apply_scores(reports: list[dict], names: list[str], scores: dict) -> None:
    """Replace each report's PSNRs by its `benchmarks.yuv420` scores (same references for every file)."""
    for r, name in zip(reports, names):
        if name in scores:
            r["psnr"], r["psnr_yuv"] = scores[name]["psnr_rgb"], scores[name]["psnr_yuv"]
        else:
            r["psnr_yuv"] = None


def rd_point(r: dict) -> dict:
    """An encode report as a point of benchmarks.rd (the fields its tables and BD figures read)."""
    start, end = frame_range(r.get("sweep_args", []), r["frames"], r.get("frame_range"))
    return {"clip": Path(r["input"]).name, "frame_range": [start, end], "codec": "dnv", "model": r["model"],
            "preset": r["preset"], "target_bpp": r["target_bpp"], "epochs": None, "frames": r["frames"],
            "width": r["width"], "height": r["height"], "bpp": r["bpp"], "bpp_container": r["bpp"],
            "psnr_rgb": r["psnr"], "psnr_yuv": r.get("psnr_yuv"), "color": sample_format(r), "ms_ssim": r["ms_ssim"], "encode_seconds": r["encode_seconds"],
            "decode_seconds": None, "device": r["device"], "gpu": r["device"] if r["device"] != "cpu" else "none",
            "epochs_used": r["epochs"], "prune_epochs_used": r["prune_epochs"], "params": r["params"],
            "quant_bits": r["quant_bits"], "optimizer": r["train_options"]["optimizer"], "report_psnr": r["psnr"],
            "sweep_args": r.get("sweep_args")}


def _curve_of(p: dict) -> tuple:
    return p["clip"], tuple(p["frame_range"]), p.get("model"), p["preset"], p.get("color")


def supersede(points: list[dict], new: list[dict], name: str) -> int:
    """Mark the current dnv points (no `variant`) that lie on a curve of `new` as `variant` `name`; returns how
    many."""
    curves = {_curve_of(p) for p in new}
    marked = 0
    for p in points:
        if p.get("codec") == "dnv" and not p.get("variant") and _curve_of(p) in curves:
            p["variant"] = name
            marked += 1
    return marked


def anchor_curves(paths: list[Path]) -> dict:
    """{(clip, frames, codec, preset): [(bpp, PSNR RGB, PSNR YUV or None)]}; YUV only for source-plane inputs."""
    out = defaultdict(list)
    for path in paths:
        for p in json.loads(path.read_text())["points"]:
            if p.get("codec") != "dnv" and "psnr_rgb" in p and not p.get("skipped"):
                key = (p["clip"], tuple(p["frame_range"]), p["codec"], p["preset"])
                point = (p["bpp"], p["psnr_rgb"], p.get("psnr_yuv") if bd.yuv_against_source_planes(p) else None)
                if point not in out[key]:
                    out[key].append(point)
    return {k: sorted(v) for k, v in out.items()}


def bd_pair(anchor: list[tuple], points: list[tuple], metric: int) -> tuple[float | None, float | None]:
    """(BD-PSNR, BD-rate) on column `metric` (1: RGB, 2: YUV) of both curves; None where a side lacks it."""
    a = [(p[0], p[metric]) for p in anchor if p[metric] is not None]
    b = [(p[0], p[metric]) for p in points if p[metric] is not None]
    if len(a) < 2 or len(b) < 2 or len(a) < len(anchor) or len(b) < len(points):
        return None, None
    (ra, pa), (rb, pb) = zip(*a), zip(*b)
    return bd.bd_psnr(ra, pa, rb, pb), bd.bd_rate(ra, pa, rb, pb)


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def table(dnv: dict, anchors: dict) -> list[str]:
    rows = ["| clip | frames | model, preset, format, bits | points (bpp: dB RGB / YUV) | anchor | BD-PSNR RGB (dB) "
            "| BD-rate RGB (%) | BD-PSNR YUV (dB) | BD-rate YUV (%) |",
            "|---|---|---|---|---|---:|---:|---:|---:|"]
    for (clip, frames, model, preset, color, bits, extra), points in sorted(dnv.items(), key=lambda kv: str(kv[0])):
        shown = ", ".join(f"{b:.4f}: {p:.2f}" + ("" if y is None else f" / {y:.2f}") for b, p, y in points)
        for (aclip, aframes, codec, apreset), apoints in sorted(anchors.items(), key=lambda kv: str(kv[0])):
            if aclip != clip or (aframes[0], aframes[1]) != frames:
                continue
            dp, dr = bd_pair(apoints, points, 1)
            dpy, dry = bd_pair(apoints, points, 2)
            rows.append(f"| {clip} | {frames[0]}:{'' if frames[1] is None else frames[1]} | {model}, {preset}, "
                        f"{color}, {bits}{' ' + ' '.join(extra) if extra else ''} | {shown} | {codec} {apreset} | "
                        f"{_fmt(dp, 2)} | {_fmt(dr, 1)} | {_fmt(dpy, 2)} | {_fmt(dry, 1)} |")
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reports", nargs="+", type=Path)
    ap.add_argument("--anchors", nargs="+", type=Path, required=True)
    ap.add_argument("--scores", type=Path, nargs="+", default=[],
                    help="benchmarks.yuv420 yuv420.json files: both PSNRs of each report, against the same references")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--add-to", type=Path, default=None, help="append the reports to this rd.json as dnv points")
    ap.add_argument("--supersede", default=None, metavar="NAME",
                    help="with --add-to: mark the points already on the reports' curves as variant NAME")
    opts = ap.parse_args(argv)
    reports = [json.loads(p.read_text()) for p in opts.reports]
    scores = {name: f for path in opts.scores for name, f in json.loads(path.read_text())["figures"].items()}
    apply_scores(reports, [p.stem for p in opts.reports], scores)
    text = "\n".join([f"Command: `{command_line()}`", "", *table(curves(reports), anchor_curves(opts.anchors))]) + "\n"
    print(text)
    if opts.out:
        write_file(opts.out, text)
    if opts.add_to:
        others = {str(path): " ".join(variant(r.get("sweep_args", []))) for path, r in zip(opts.reports, reports)}
        others = {path: settings for path, settings in others.items() if settings}
        if others:      # rd.json's dnv series are the encoder's defaults (and the defaults they superseded)
            path, settings = next(iter(others.items()))
            sys.exit(f"sweep_bd: --add-to takes reports of the default settings; {path} has {settings} "
                     "(compare it with --out only)")
        data = json.loads(opts.add_to.read_text())
        new = [rd_point(r) for r in reports]
        if opts.supersede:
            supersede(data["points"], new, opts.supersede)
        have = {json.dumps(p.get("sweep_args")) + p["clip"] for p in data["points"]
                if p.get("sweep_args") and not p.get("variant")}
        data["points"] += [p for p in new if json.dumps(p.get("sweep_args")) + p["clip"] not in have]
        write_file(opts.add_to, json.dumps(data, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
