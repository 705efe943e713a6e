"""Rate-distortion benchmark: dnv against x264, x265 and SVT-AV1 on real clips.

    python3 -m benchmarks.rd CLIP... --bpp 0.01 0.025 0.05 0.1 [--epochs N] [--frames START:END]
        [--out benchmarks/results] [--codecs dnv,x264,x265,svt-av1] [--presets medium,veryslow]
        [--append] [--budget SECONDS] [--size WxH --fps FPS (headerless .yuv clips)]

For each clip the ground truth is read once (native size, the range the stream declares); dnv is
encoded at each target bpp, and every anchor (codec x preset) gets a CRF sweep aimed at the same
targets plus one point beyond each end (``--margin``), so that its curve spans dnv's. Anchors
encode the source's own 4:2:0 frames when the ground truth is exactly their RGB conversion (8-bit
4:2:0 video files), else the RGB ground truth converted to 4:2:0 (see benchmarks/codecs.py);
``--anchor-input rgb`` forces the latter. Writes into
--out, atomically: rd.json ({"points", "bd", "meta"}), rd.md (tables, BD summary, the command,
machine and date) and <clip>.png (RGB PSNR against bpp).

``--report-only`` rewrites rd.md, the BD figures and the plots from an existing rd.json (e.g.
where matplotlib is installed, after a run on a machine without it). ``--merge OTHER/rd.json...``
first adds the points of other runs (e.g. one per GPU, each with its own --out) that --out's rd.json
lacks, and their run records.

Each clip's section says what its source spent on the benchmarked frames (meta "sources", by clip label:
`codecs.source_rate`): anchors near a low-rate source's own rate can rebuild what its codec did. A run records its
clips; ``--report-only --sources CLIP...`` records them for an rd.json made before.

Resumable: with --append, points already in rd.json are kept and not measured again (an anchor
sweep is skipped when that clip/frames/codec/preset already has points; a dnv point when that
clip/frames/preset/epochs/target does). Outputs are rewritten after every sweep or dnv point, and
--budget stops starting new work after that many seconds, so a 10-minute machine slot can run a
few clips per command and the next command picks up where it stopped.

BD figures: dnv (each preset/epochs/sample-format variant) against every anchor, per clip with PCHIP
Bjøntegaard on RGB PSNR and on YUV 4:2:0 PSNR (6:1:1; benchmarks/bd.py), and their mean over the clips where
both exist (clip 'average', with the number of clips). `--dnv-color` chooses the sample format dnv codes.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import av

from benchmarks import bd
from benchmarks.codecs import CODECS, Dnv, crf_sweep, load_source_yuv, source_rate
from nvcodec.models import DEFAULT_MODEL
from benchmarks.common import machine, merge_points, save_figure, write_file

ANCHORS = ("x264", "x265", "svt-av1")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- reading the ground truth

def read_clip(path: Path, frame_range, size=None, fps=None):
    """(frames (T,H,W,3) uint8 RGB at native size, fps) with the range the stream declares; `size` (W, H) and
    `fps` describe a headerless .yuv file (yuv420p)."""
    from nvcodec.video import read_video

    frames, info = read_video(path, frame_range=frame_range, size=size, fps=fps)
    return frames, info.fps


def parse_size(text: str) -> tuple[int, int]:
    """'320x192' -> (320, 192)."""
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WxH (e.g. 320x192)")
    return int(match[1]), int(match[2])


def parse_frames(text: str | None):
    from nvcodec.video import parse_frame_range

    return parse_frame_range(text)


# ---------------------------------------------------------------- records and series

def series(p: dict) -> str:
    """Curve label of a point: 'x265-medium', 'dnv-medium', 'dnv-medium-e300' or, for another network than
    DNeRV (points before the model was recorded are DNeRV's), 'dnv-hinerv-medium'."""
    model = p.get("model", "dnerv") if p["codec"] == "dnv" else "dnerv"
    label = f"{p['codec']}-{'' if model == 'dnerv' else model + '-'}{p['preset']}"
    if p["codec"] == "dnv" and p.get("epochs"):
        label += f"-e{p['epochs']}"
    if p["codec"] == "dnv" and p.get("color") == "yuv420":     # (points before the sample format existed: RGB)
        label += "-yuv420"
    if p["codec"] == "dnv" and p.get("variant"):     # a superseded default (benchmarks.sweep_bd --supersede)
        label += f"-{p['variant']}"
    return label


def _epoch_budgets(points: list[dict]) -> str:
    """Each dnv series' training budget, e.g. 'dnv-fast: the preset's, 100 + 10 pruning epochs'."""
    from nvcodec.fit import PRESETS

    parts = []
    for name in sorted({series(p) for p in points if p["codec"] == "dnv"}):
        members = [p for p in points if p["codec"] == "dnv" and series(p) == name]
        first = members[0]
        # What each encode reported; points made before the Adan recipe (2026-12-02) lack it: then the preset's
        # epochs for Adam, which trained every network then (and trains every one below 2M parameters, `fit.recipe`).
        adam = PRESETS.get(first["preset"], {}).get("adam", (None, None))
        budgets = sorted({(p.get("epochs_used") or adam[0], p.get("prune_epochs_used") or adam[1]) for p in members},
                         key=lambda b: (b[0] or 0, b[1] or 0))
        low, high = ("{} + {}".format(*b) for b in (budgets[0], budgets[-1]))
        if first.get("epochs"):
            parts.append(f"{name}: {first['epochs']} + the {first['preset']} preset's {budgets[0][1]} pruning epochs")
        elif len(budgets) == 1:
            parts.append(f"{name}: the {first['preset']} preset's, {low} pruning epochs")
        else:   # a short clip (fit.STEP_FRAMES) or a small frame (fit.budget_factor) trains more epochs
            parts.append(f"{name}: the {first['preset']} preset's, {low} to {high} pruning epochs by clip length "
                         "and frame size")
    return "; ".join(parts) or "no dnv points"


def _family(test: str) -> str:
    """'dnv-fast-e40' -> 'dnv-fast': the series without its epoch budget."""
    return re.sub(r"-e\d+$", "", test)


def clip_label(p: dict) -> str:
    """What a point's curves are compared over: its clip, and the frame range where it is not the whole clip."""
    start, end = p.get("frame_range") or (0, None)
    return p["clip"] if (start, end) == (0, None) else f"{p['clip']}[{start}:{'' if end is None else end}]"


def _same_clip(p: dict, clip: str, frames) -> bool:
    return p["clip"] == clip and tuple(p.get("frame_range") or (0, None)) == tuple(frames)


def compute_bd(points: list[dict]) -> list[dict]:
    """BD-rate/BD-PSNR (RGB and YUV PSNR) of each dnv series against each anchor series, per clip + mean."""
    by_clip: dict[str, dict[str, list[dict]]] = {}
    for p in points:
        if "bpp" in p and "skipped" not in p:
            by_clip.setdefault(clip_label(p), {}).setdefault(series(p), []).append(p)
    rows = []
    for clip, curves in sorted(by_clip.items()):
        tests = sorted(s for s in curves if s.startswith("dnv-"))
        anchors = sorted(s for s in curves if not s.startswith("dnv-"))
        for test in tests:
            for anchor in anchors:
                a, b = curves[anchor], curves[test]
                row = {"clip": clip, "test": test, "anchor": anchor}
                for metric, suffix in (("psnr_rgb", ""), ("psnr_yuv", "_yuv")):
                    # (Encode reports carry no YUV PSNR; YUV PSNRs compare only against the same planes.)
                    if any(p.get(metric) is None or (suffix and not bd.yuv_against_source_planes(p)) for p in a + b):
                        row[f"bd_rate{suffix}_percent"] = row[f"bd_psnr{suffix}_db"] = None
                        continue
                    args = ([p["bpp"] for p in a], [p[metric] for p in a],
                            [p["bpp"] for p in b], [p[metric] for p in b])
                    row[f"bd_rate{suffix}_percent"] = bd.bd_rate(*args)
                    row[f"bd_psnr{suffix}_db"] = bd.bd_psnr(*args)
                rows.append({**row, "points_test": len(b), "points_anchor": len(a)})
    # Means over clips: per dnv series, and per preset over its epoch budgets ('dnv-fast*') where
    # clips were run at different budgets (e.g. a long clip at fewer epochs), so that every clip counts.
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["test"], r["anchor"]), []).append(r)
    for family in sorted({_family(r["test"]) for r in rows}):
        members = {r["test"] for r in rows if _family(r["test"]) == family}
        if len(members) > 1:
            for anchor in sorted({r["anchor"] for r in rows}):
                groups[(family + "*", anchor)] = [r for r in rows if r["test"] in members and r["anchor"] == anchor]
    for (test, anchor), mine in sorted(groups.items()):
        avg = {"clip": "average", "test": test, "anchor": anchor}
        for key in ("bd_rate_percent", "bd_psnr_db", "bd_rate_yuv_percent", "bd_psnr_yuv_db"):
            values = [r[key] for r in mine if r[key] is not None]
            avg[key] = sum(values) / len(values) if values else None
            avg[f"clips_{key}"] = len(values)
        rows.append(avg)
    return rows


# ---------------------------------------------------------------- outputs

def _fmt(v, digits=4):
    if v is None:
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _variant_line(points: list[dict]) -> list[str]:
    """The header line that names the superseded defaults (dnv series with a `variant`), if any."""
    names = sorted({p["variant"] for p in points if p.get("codec") == "dnv" and p.get("variant")})
    if not names:
        return []
    return [f"- superseded defaults, kept as their own curves (`dnv-...-NAME`): {', '.join(names)}; a series "
            "without such a suffix is the encoder at the time of its points (benchmarks.sweep_bd --supersede)"]


def render_md(data: dict) -> str:
    meta, points = data["meta"], data["points"]
    lines = ["# Rate-distortion benchmark", "",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}",
             f"- machine: {meta['machine']}; GPU: {meta['gpu']}",
             f"- torch {meta['torch']}, PyAV {meta['av']} (FFmpeg {meta['ffmpeg']})",
             f"- dnv epoch budgets: {_epoch_budgets(data['points'])}",
             "- bpp: elementary stream without the encoders' version SEI (anchors), the whole .dnv "
             "file (dnv); 'bpp mp4' is the container file. PSNR RGB: per frame, averaged; PSNR YUV: "
             "4:2:0, 6:1:1.", *_variant_line(points), ""]
    if len(meta.get("runs", [])) > 1:
        lines += ["Earlier runs merged into this file (--append):", ""]
        lines += [f"- {r['date']} on {r['machine']}: `{r['command']}`" for r in meta["runs"][:-1]] + [""]
    lines += ["## BD summary (dnv vs anchors, PCHIP; RGB PSNR, and YUV 4:2:0 PSNR 6:1:1)", "",
              "| clip | dnv | anchor | BD-rate % | BD-PSNR dB | BD-rate % YUV | BD-PSNR dB YUV "
              "| points (dnv/anchor) or clips |", "|---|---|---|---|---|---|---|---|"]
    for r in data["bd"]:
        n = (f"clips: {r['clips_bd_rate_percent']} (BD-rate), {r['clips_bd_psnr_db']} (BD-PSNR)"
             if r["clip"] == "average" else f"{r['points_test']}/{r['points_anchor']}")
        lines.append(f"| {r['clip']} | {r['test']} | {r['anchor']} | {_fmt(r['bd_rate_percent'], 2)} "
                     f"| {_fmt(r['bd_psnr_db'], 3)} | {_fmt(r.get('bd_rate_yuv_percent'), 2)} "
                     f"| {_fmt(r.get('bd_psnr_yuv_db'), 3)} | {n} |")
    if not data["bd"]:
        lines.append("| (no dnv and anchor curves to compare yet) | | | | | | | |")
    lines.append("")
    for clip in sorted({clip_label(p) for p in points}):
        mine = sorted((p for p in points if clip_label(p) == clip),
                      key=lambda p: (series(p), p.get("bpp") or 0))
        first = next((p for p in mine if "width" in p), mine[0])
        source = data["meta"].get("sources", {}).get(clip)
        lines += [f"## {clip}", "",
                  f"{first.get('width')}x{first.get('height')}, {first.get('frames')} frames "
                  f"({_range_text(first.get('frame_range'))})"
                  + (f"; the source is {_source_text(source)} over these frames" if source else "")
                  + f". ![RD plot]({_plot_name(clip)})", "",
                  "| series | CRF / target | bpp | bpp mp4 | PSNR RGB | PSNR YUV | MS-SSIM | enc s | dec s | device |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for p in mine:
            knob = f"crf {p['crf']}" if "crf" in p else f"{p['target_bpp']} bpp"
            if "skipped" in p:
                lines.append(f"| {series(p)} | {knob} | skipped: {p['skipped']} | | | | | | | |")
                continue
            lines.append(f"| {series(p)} | {knob} | {_fmt(p['bpp'])} | {_fmt(p['bpp_container'])} "
                         f"| {_fmt(p['psnr_rgb'], 2)} | {_fmt(p.get('psnr_yuv'), 2)} | {_fmt(p['ms_ssim'])} "
                         f"| {_fmt(p['encode_seconds'], 2)} | {_fmt(p.get('decode_seconds'), 3)} | {p['device']} |")
        lines.append("")
    return "\n".join(lines)


_COLOURS = {"dnv": "black", "x264": "tab:red", "x265": "tab:green", "svt-av1": "tab:blue"}
_MARKERS = {"dnv": "o", "x264": "^", "x265": "s", "svt-av1": "D"}
_NICE_BPP = [m * 10.0 ** e for e in range(-4, 2) for m in (1, 2, 5)]


def _range_text(frame_range) -> str:
    start, end = frame_range or (0, None)
    return "all frames" if (start, end) == (0, None) else f"frames {start}:{'' if end is None else end}"


def _plot_name(label: str) -> str:
    clip, _, frames = label.partition("[")
    return f"rd_{Path(clip).stem}" + (f"_frames{frames.rstrip(']').replace(':', '-')}" if frames else "") + ".png"


def plot_clip(points: list[dict], clip: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    curves: dict[str, list[dict]] = {}
    for p in points:
        if clip_label(p) == clip and "bpp" in p and "skipped" not in p:
            curves.setdefault(series(p), []).append(p)
    fig, ax = plt.subplots(figsize=(7, 5))
    for name, pts in sorted(curves.items()):
        pts.sort(key=lambda p: p["bpp"])
        codec, preset = pts[0]["codec"], str(pts[0]["preset"])
        dash = {"medium": "-", "veryslow": "--"}.get(preset, ":")
        superseded = bool(pts[0].get("variant"))     # an older default: thin and grey beside the current one
        ax.plot([p["bpp"] for p in pts], [p["psnr_rgb"] for p in pts], dash,
                marker=_MARKERS.get(codec, "o"), color="grey" if superseded else _COLOURS.get(codec), label=name,
                linewidth=2.5 if codec == "dnv" and not superseded else 1.2, markersize=4)
    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_locator(FixedLocator([t for t in _NICE_BPP if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("bpp")
    ax.set_ylabel("PSNR RGB (dB)")
    ax.set_title(clip)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)


def save(out: Path, data: dict) -> None:
    data["bd"] = compute_bd(data["points"])
    out.mkdir(parents=True, exist_ok=True)
    write_file(out / "rd.json", json.dumps(data, indent=1, default=str) + "\n")
    write_file(out / "rd.md", render_md(data) + "\n")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("matplotlib is not installed: no plots (run --report-only where it is)")
        return
    for clip in sorted({clip_label(p) for p in data["points"]}):
        if any(clip_label(p) == clip and "bpp" in p for p in data["points"]):
            plot_clip(data["points"], clip, out / _plot_name(clip))


def machine_meta(args) -> dict:
    return {**machine(), "epochs": args.epochs if args.epochs is not None else "default of the preset"}


# ---------------------------------------------------------------- the run

def run(args) -> dict:
    out = Path(args.out)
    if args.sources and not (args.report_only or args.merge):
        raise SystemExit("--sources goes with --report-only (a run records its own clips' sources)")
    if args.report_only or args.merge:
        data = json.loads((out / "rd.json").read_text())
        for other in args.merge or []:
            theirs = json.loads(Path(other).read_text())
            log(f"{other}: {merge_points(data, theirs, _point_key)} new points")
            data["meta"].setdefault("sources", {}).update(theirs.get("meta", {}).get("sources", {}))
        for clip_path in map(Path, args.sources or []):
            for frame_range in sorted({tuple(p.get("frame_range") or (0, None)) for p in data["points"]
                                       if p["clip"] == clip_path.name}, key=str):
                record_source(data, clip_path, frame_range, log)
        save(out, data)
        return data
    if not args.clips or not args.bpp:
        raise SystemExit("give at least one clip and --bpp (or --report-only)")
    data = {"points": [], "bd": [], "meta": {}}
    if args.append and (out / "rd.json").exists():
        data = json.loads((out / "rd.json").read_text())
        log(f"appending to {out / 'rd.json'} ({len(data['points'])} points)")
    meta = machine_meta(args)
    earlier = data.get("meta", {})
    data["meta"] = {**meta, "runs": earlier.get("runs", []) + [meta], "sources": earlier.get("sources", {})}
    frame_range = parse_frames(args.frames)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = set(codecs) - set(CODECS) - {"dnv"}
    if unknown:
        raise SystemExit(f"unknown codec(s): {', '.join(sorted(unknown))}; known: dnv, {', '.join(CODECS)}")
    targets = sorted(args.bpp)
    anchor_targets = sorted({targets[0] / args.margin, *targets, targets[-1] * args.margin})
    start = time.monotonic()

    def out_of_time() -> bool:
        if args.budget and time.monotonic() - start > args.budget:
            log(f"budget of {args.budget:.0f} s spent: stopping here (rerun with --append to continue)")
            return True
        return False

    for clip_path in map(Path, args.clips):
        clip = clip_path.name
        have = [p for p in data["points"] if _same_clip(p, clip, frame_range)]
        frames = fps = source = None
        for codec in codecs:
            for preset in ([args.dnv_preset] if codec == "dnv" else presets):
                jobs = ([("dnv", preset, t) for t in targets] if codec == "dnv"
                        else [(codec, preset, None)])
                for _, _, target in jobs:
                    if _present(have, codec, preset, target, args.epochs, args.dnv_model, args.dnv_color):
                        continue
                    if out_of_time():
                        save(out, data)
                        return data
                    if frames is None:
                        frames, fps = read_clip(clip_path, frame_range, args.size, args.fps)
                        log(f"{clip}: {frames.shape[0]} frames {frames.shape[2]}x{frames.shape[1]} @ {float(fps):.3f} fps")
                        record_source(data, clip_path, frame_range, log)
                        if args.anchor_input == "source":
                            source, why = load_source_yuv(clip_path, frame_range, frames)
                            log(f"{clip}: anchors encode " + (why if source else f"the RGB ground truth ({why})"))
                    base = {"clip": clip, "frame_range": list(frame_range)}
                    if codec == "dnv":
                        log(f"{clip}: dnv {preset} at {target} bpp")
                        r = Dnv(preset, epochs=args.epochs, device=args.device, model=args.dnv_model,
                                color=None if args.dnv_color == "source" else args.dnv_color).run(
                            clip_path, frames, target, frame_range=frame_range,
                            matrix=source.colour.metric if source else None, size=args.size, fps=args.fps)
                        log("  -> " + (r.get("skipped") or f"{r['bpp']:.4f} bpp, {r['psnr_rgb']:.2f} dB"))
                        new = [r]
                    else:
                        log(f"{clip}: {codec} {preset} CRF sweep toward {', '.join(f'{t:g}' for t in anchor_targets)} bpp")
                        new = crf_sweep(CODECS[codec](preset), frames, fps, anchor_targets,
                                        tries=args.tries, log=log, source=source)
                    for r in new:
                        data["points"].append({**base, **r})
                    have = [p for p in data["points"] if _same_clip(p, clip, frame_range)]
                    save(out, data)
    save(out, data)
    return data


def record_source(data: dict, clip_path: Path, frame_range, log=print) -> None:
    """Put what the source spent on the benchmarked frames (`codecs.source_rate`) in data's meta, by clip label."""
    label = clip_label({"clip": clip_path.name, "frame_range": list(frame_range)})
    try:
        data["meta"].setdefault("sources", {})[label] = rate = source_rate(clip_path, frame_range)
    except (av.FFmpegError, OSError, IndexError, ZeroDivisionError) as e:
        log(f"{label}: the source's own rate is unknown ({e})")
        return
    log(f"{label}: source {_source_text(rate)}")


def _source_text(rate: dict) -> str:
    return "raw (uncompressed)" if "bpp" not in rate else f"{rate['coded']} at {rate['bpp']:.4f} bpp"


def _point_key(p: dict) -> tuple:
    return (p["clip"], tuple(p.get("frame_range") or (0, None)), p["codec"], p.get("model"), p.get("preset"),
            p.get("epochs"), p.get("target_bpp"), p.get("crf"), p.get("bpp"))


def _present(have, codec, preset, target, epochs, model, color="source") -> bool:
    """Whether `have` holds the point; dnv's `color` 'source' (the source's own format) counts only points that
    recorded their sample format."""
    if codec != "dnv":
        return any(p["codec"] == codec and p["preset"] == preset for p in have)
    return any(p["codec"] == "dnv" and p["preset"] == preset and p.get("epochs") == epochs
               and p.get("model", "dnerv") == model and math.isclose(p["target_bpp"], target)
               and ("color" in p if color == "source" else p.get("color", "rgb") == color) for p in have)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", help="video files (anything nvcodec.video.read_video reads)")
    ap.add_argument("--bpp", type=float, nargs="+", help="target bpp values")
    ap.add_argument("--epochs", type=int, default=None, help="dnv training epochs (default: the preset's)")
    ap.add_argument("--frames", default=None, help="START:END frame range (END exclusive, optional)")
    ap.add_argument("--size", type=parse_size, default=None, help="WxH of headerless .yuv clips (yuv420p)")
    ap.add_argument("--fps", type=float, default=None, help="frame rate of headerless .yuv clips")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument("--codecs", default="dnv,x264,x265,svt-av1")
    ap.add_argument("--presets", default="medium,veryslow", help="anchor presets (SVT-AV1: see codecs.SVT_PRESETS)")
    ap.add_argument("--dnv-preset", default="medium")
    ap.add_argument("--dnv-model", default=DEFAULT_MODEL, help="dnv's network (default: dnv's own default)")
    ap.add_argument("--device", default="auto", help="dnv device")
    ap.add_argument("--dnv-color", choices=("source", "yuv420", "rgb"), default="source",
                    help="the sample format dnv codes (default: the source's own; yuv420 points form their own "
                         "series, e.g. dnv-hinerv-fast-yuv420)")
    ap.add_argument("--margin", type=float, default=1.5,
                    help="anchors also aim at min(bpp)/margin and max(bpp)*margin, to span dnv's curve")
    ap.add_argument("--tries", type=int, default=3, help="at most this many encodes per anchor target")
    ap.add_argument("--anchor-input", choices=("source", "rgb"), default="source",
                    help="anchors encode the source's own 4:2:0 frames where they reproduce the ground "
                         "truth exactly (default), or always the RGB ground truth converted to 4:2:0")
    ap.add_argument("--append", action="store_true", help="merge with an existing rd.json, skip points it has")
    ap.add_argument("--budget", type=float, default=None, help="start no new work after this many seconds")
    ap.add_argument("--merge", nargs="+", metavar="RD_JSON", default=None,
                    help="add the points of these rd.json files to --out's rd.json, then rewrite the report")
    ap.add_argument("--sources", nargs="+", metavar="CLIP",
                    help="with --report-only: record what each clip's source spends on the frames of every range "
                         "rd.json holds for it (a run records its own clips)")
    ap.add_argument("--report-only", action="store_true",
                    help="only rewrite rd.md, the BD table and the plots from --out's rd.json")
    return ap


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    data = run(args)
    summary = [r for r in data["bd"] if r["clip"] == "average"]
    for r in summary:
        log(f"average {r['test']} vs {r['anchor']}: BD-rate {_fmt(r['bd_rate_percent'], 2)} %, "
            f"BD-PSNR {_fmt(r['bd_psnr_db'], 3)} dB")
    log(f"wrote {Path(args.out) / 'rd.json'}, rd.md and plots")


if __name__ == "__main__":
    main()
