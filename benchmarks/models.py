"""HNeRV vs DNeRV vs DS-NeRV at equal bpp: regression PSNR and frame-interpolation PSNR.

    python3 -m benchmarks.models [CLIP...] [--bpp 0.1] [--models hnerv,dnerv,dsnerv]
        [--parts regression,interpolation] [--frames START:END] [--epochs N] [--preset medium]
        [--minutes M] [--append] [--out benchmarks/results] [--device auto]

Clips default to three of ../shared/testdata (or $NVCODEC_TESTDATA, or shared/testdata in the repo): Big Buck Bunny 1280x720 (the papers' "Bunny"),
DAVIS blackswan 854x480 (JPEG frames) and carphone QCIF.

For each clip, model and target bpp:
- regression: `codec.encode` of the clip (its frame range) at the target; PSNR (RGB, per frame,
  averaged) and bpp as the report measures them on the file.
- interpolation (the papers' protocol, DNeRV Table 6): the even frames 0, 2, 4, ... of the range
  (an odd count N' of source frames, the last one even) are written losslessly to a temporary .mkv
  and encoded at the same target bpp (bits per pixel of the coded even frames); the file is decoded
  with `fps_scale=2` (N' frames: the in-between ones from interpolated embeddings or codes) against
  the source at the full rate. `psnr_interpolated` is the PSNR of the in-between frames against the
  source's odd frames, `psnr_coded` that of the coded even frames.

Writes benchmarks/results/models.json ({"points", "meta"}) and models.md (tables, the command,
machine and date) after every point, atomically. --minutes stops starting new encodes after that
many minutes; with --append the points already in models.json are kept and not measured again, so
a run split over several 10-minute GPU commands resumes where the last one stopped (e.g. one
command per clip, or per part).
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from benchmarks.common import merge_points, write_file
from benchmarks.rd import _fmt, _range_text, log, machine_meta, parse_frames

_ROOT = Path(__file__).resolve().parents[1]

MODELS = ("hnerv", "dnerv", "dsnerv")
PARTS = ("regression", "interpolation")


def _testdata() -> Path:
    """$NVCODEC_TESTDATA, else ../shared/testdata beside the repository, else shared/testdata inside it."""
    import os
    candidates = [os.environ.get("NVCODEC_TESTDATA"), _ROOT.parent / "shared" / "testdata", _ROOT / "shared" / "testdata"]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), _ROOT.parent / "shared" / "testdata")


TESTDATA = _testdata()
DEFAULT_CLIPS = ("bigbuckbunny_1280x720_132f.mp4", "davis480p_blackswan_jpg", "carphone_qcif_120f_x264qp10.mp4")


def _key(p: dict) -> tuple:
    return (p["clip"], tuple(p.get("frame_range") or (0, None)), p["part"], p["model"], round(p["target_bpp"], 9),
            p.get("epochs"), p.get("preset"))


def encode_options(args) -> dict:
    return dict(preset=args.preset, epochs=args.epochs, device=args.device, progress=False, seed=args.seed)


def regression(clip: Path, model: str, bpp: float, frame_range, args, tmp: Path) -> dict:
    from nvcodec import codec

    r = codec.encode(str(clip), str(tmp / "reg.dnv"), bpp=bpp, model=model, frame_range=tuple(frame_range),
                     **encode_options(args))
    return {"bpp": r["bpp"], "psnr": r["psnr"], "ms_ssim": r["ms_ssim"], "frames": r["frames"],
            "width": r["width"], "height": r["height"], "params": r["params"], "epochs_used": r["epochs"],
            "effective_bits": r["effective_bits"], "encode_seconds": r["encode_seconds"], "device": r["device"]}


def interpolation(clip: Path, model: str, bpp: float, frame_range, args, tmp: Path) -> dict:
    """Encode the even frames of the range, decode at 2x the rate, PSNR of the in-between frames."""
    from nvcodec import codec
    from nvcodec.video import VideoWriter, read_video

    start = frame_range[0]
    source, info = read_video(clip, frame_range=tuple(frame_range))
    count = source.shape[0] if source.shape[0] % 2 else source.shape[0] - 1  # last frame even
    if count < 3:
        raise SystemExit(f"{clip.name}: the interpolation protocol needs at least 3 frames")
    even = tmp / "even.mkv"
    with VideoWriter(even, source.shape[2], source.shape[1], info.fps / 2) as w:
        w.write(source[0:count:2])
    del source
    r = codec.encode(str(even), str(tmp / "even.dnv"), bpp=bpp, model=model, **encode_options(args))
    d = codec.decode(str(tmp / "even.dnv"), ref=str(clip), ref_range=(start, start + count), fps_scale=2,
                     device=args.device)
    return {"bpp": r["bpp"], "psnr": d["psnr_interpolated"], "psnr_coded": d["psnr_coded"],
            "psnr_all": d["psnr"], "psnr_coded_at_encode": r["psnr"], "frames": r["frames"],
            "frames_interpolated": d["frames"] - r["frames"], "width": r["width"], "height": r["height"],
            "params": r["params"], "epochs_used": r["epochs"], "effective_bits": r["effective_bits"],
            "encode_seconds": r["encode_seconds"], "device": r["device"]}


def render_md(data: dict) -> str:
    meta, points = data["meta"], data["points"]
    lines = ["# Models: HNeRV vs DNeRV vs DS-NeRV at equal bpp", "",
             f"- command: `{meta['command']}`", f"- date: {meta['date']}",
             f"- machine: {meta['machine']}; GPU: {meta['gpu']}", f"- torch {meta['torch']}",
             f"- epochs: {meta['epochs']}, preset {meta.get('preset')}",
             "- regression: PSNR (RGB, per frame, averaged) of the decoded file over all frames; bpp of the whole file.",
             "- interpolation: only the even frames encoded (at the same target bpp), decoded with --fps-scale 2; "
             "PSNR of the in-between frames against the source's odd frames (DNeRV paper Table 6 protocol); "
             "'coded' is the PSNR of the even frames in that run.", ""]
    if len(meta.get("runs", [])) > 1:
        lines += ["Earlier runs merged into this file (--append):", ""]
        lines += [f"- {r['date']} on {r['machine']}: `{r['command']}`" for r in meta["runs"][:-1]] + [""]
    for clip in sorted({p["clip"] for p in points}):
        mine = [p for p in points if p["clip"] == clip]
        first = mine[0]
        epochs = sorted({str(p.get("epochs") or f"the {p.get('preset')} preset's") for p in mine})
        lines += [f"## {clip}", "", f"{first.get('width')}x{first.get('height')}, "
                  f"{_range_text(first.get('frame_range'))}; training epochs: {', '.join(epochs)}", "",
                  "| target bpp | model | regression bpp | regression PSNR | interpolation bpp | "
                  "interpolated PSNR (odd) | coded PSNR (even) | params | enc s (reg / interp) | device |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        rows = sorted({(p["target_bpp"], p["model"]) for p in mine}, key=lambda r: (r[0], MODELS.index(r[1])
                                                                                  if r[1] in MODELS else 9))
        for target, model in rows:
            reg = next((p for p in mine if p["part"] == "regression" and (p["target_bpp"], p["model"]) == (target, model)), {})
            itp = next((p for p in mine if p["part"] == "interpolation" and (p["target_bpp"], p["model"]) == (target, model)), {})
            skipped = reg.get("skipped") or itp.get("skipped")
            lines.append(f"| {target:g} | {model} | {_fmt(reg.get('bpp'))} | {_fmt(reg.get('psnr'), 2)} "
                         f"| {_fmt(itp.get('bpp'))} | {_fmt(itp.get('psnr'), 2)} | {_fmt(itp.get('psnr_coded'), 2)} "
                         f"| {_fmt((reg or itp).get('params'))} | {_fmt(reg.get('encode_seconds'), 1)} / "
                         f"{_fmt(itp.get('encode_seconds'), 1)} | {(reg or itp).get('device', '—')}"
                         + (f" (skipped: {skipped})" if skipped else "") + " |")
        lines.append("")
    return "\n".join(lines)


def save(out: Path, data: dict) -> None:
    write_file(out / "models.json", json.dumps(data, indent=1, default=str) + "\n")
    write_file(out / "models.md", render_md(data) + "\n")


def run(args) -> dict:
    from benchmarks.codecs import _is_infeasible

    out = Path(args.out)
    clips = [Path(c) for c in args.clips] or [TESTDATA / c for c in DEFAULT_CLIPS]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if set(models) - set(MODELS) or set(parts) - set(PARTS):
        raise SystemExit(f"--models from {','.join(MODELS)}; --parts from {','.join(PARTS)}")
    if args.merge:
        data = json.loads((out / "models.json").read_text())
        for other in args.merge:
            log(f"{other}: {merge_points(data, json.loads(Path(other).read_text()), _key)} new points")
        save(out, data)
        return data
    data = {"points": [], "meta": {}}
    if args.append and (out / "models.json").exists():
        data = json.loads((out / "models.json").read_text())
        log(f"appending to {out / 'models.json'} ({len(data['points'])} points)")
    meta = {**machine_meta(args), "preset": args.preset}
    data["meta"] = {**meta, "runs": data.get("meta", {}).get("runs", []) + [meta]}
    frame_range = list(parse_frames(args.frames))
    have = {_key(p) for p in data["points"]}
    started = time.monotonic()
    for clip in clips:
        for bpp in sorted(args.bpp):
            for part in parts:
                for model in models:
                    point = {"clip": clip.name, "frame_range": frame_range, "part": part, "model": model,
                             "target_bpp": bpp, "epochs": args.epochs, "preset": args.preset}
                    if _key(point) in have:
                        continue
                    if args.minutes and time.monotonic() - started > 60 * args.minutes:
                        log(f"{args.minutes:g} minutes spent: stopping here (rerun with --append to continue)")
                        save(out, data)
                        return data
                    log(f"{clip.name}: {part} {model} at {bpp:g} bpp")
                    with tempfile.TemporaryDirectory(prefix="dnv-models-") as tmp:
                        try:
                            fn = regression if part == "regression" else interpolation
                            point.update(fn(clip, model, bpp, frame_range, args, Path(tmp)))
                        except Exception as exc:  # noqa: BLE001 - only an infeasible target is recorded
                            if not _is_infeasible(exc):
                                raise
                            point["skipped"] = str(exc)
                    log("  -> " + (point.get("skipped") or f"{point['bpp']:.4f} bpp, {point['psnr']:.2f} dB"))
                    data["points"].append(point)
                    have.add(_key(point))
                    save(out, data)
    save(out, data)
    return data


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", help=f"video files (default: {', '.join(DEFAULT_CLIPS)} in {TESTDATA})")
    ap.add_argument("--bpp", type=float, nargs="+", default=[0.1],
                    help="target bpp values (default 0.1: below about 0.08 carphone's 60 even frames are infeasible)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--parts", default=",".join(PARTS))
    ap.add_argument("--frames", default=None, help="START:END frame range of each clip (END exclusive)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    ap.add_argument("--preset", default="fast", help="dnv preset (default fast)")
    ap.add_argument("--minutes", type=float, default=None, help="start no new encode after this many minutes")
    ap.add_argument("--append", action="store_true", help="merge with an existing models.json, skip its points")
    ap.add_argument("--merge", nargs="+", metavar="MODELS_JSON", default=None,
                    help="add the points of these models.json files to --out's models.json, rewrite models.md")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data = run(args)
    log(f"wrote {Path(args.out) / 'models.json'} and models.md ({len(data['points'])} points)")


if __name__ == "__main__":
    main()
