"""Reproduction of the DNeRV paper's Table 1a on Bunny: 0.35M / 0.75M / 1.5M / 3M decoders.

    python3 -m benchmarks.bunny CLIP [--sizes 0.35M 3M] [--epochs 300] [--batch 2] [--lr 1e-3] [--minutes M]
        [--train NAME=VALUE ...] [--append]

The 132-frame 1280x720 Bunny clip is center-cropped to 640x1280 as the papers do (only here: the
codec itself never crops), written losslessly (FFV1) and encoded with `dnv`'s own pipeline at each
model size. Recorded per size: the float model's PSNR before pruning (`psnr_float`: measured over
all frames in fp32 after training; results from before 2026-11-22 hold the last epoch's running
figure instead, see NOTES.md), the PSNR of what the .dnv holds after pruning + quantization + entropy coding
(`psnr_coded`), the file's bpp, and the training wall time. Paper (300 epochs): 30.80 / 33.30 /
35.22 / 38.09 dB. Each size is one call, so each fits a 10-minute GPU command with --epochs set
accordingly; --minutes M starts no new size after M minutes, and --append merges with an existing
bunny.json, so the next command goes on with the sizes left. `--merge OTHER/bunny.json...` adds the
records of runs made elsewhere (e.g. one size per GPU, each with its own --out) and rewrites bunny.md.
Each record names the command, date and GPU that produced it, and its `recipe`: the training settings
that tell recipes apart (the preset's, changed by `--batch`, `--lr`, `--train NAME=VALUE` as in `dnv encode --train`).
Each run's learning curve (running PSNR per epoch) goes to bunny-curves.json beside bunny.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import SIZES, machine, markdown_table, shown_command, write_file, write_json
from nvcodec import codec, sizing
from nvcodec.fit import TrainSettings, parse_train_option
from nvcodec.video import read_video, write_video

PAPER = {"0.35M": 30.80, "0.75M": 33.30, "1.5M": 35.22, "3M": 38.09}


def center_crop_640x1280(clip: Path, folder: Path) -> Path:
    frames, info = read_video(clip)
    t, h, w = frames.shape[:3]
    top, left = (h - 640) // 2, (w - 1280) // 2
    out = folder / "bunny_640x1280.mkv"
    write_video(out, frames[:, top:top + 640, left:left + 1280], info.fps)
    return out


SIZE_ORDER = list(PAPER)


def train_option(text: str) -> tuple[str, object]:
    try:
        return parse_train_option(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def recipe(options: dict) -> str:
    """The training settings that tell recipes apart, from an encode report's `train_options`,
    e.g. "batch 1, lr 0.001, beta1 0.9, reduce-overhead, bf16"."""
    o = options
    # Other settings only where they differ from TrainSettings' defaults (Adam, the recipe of the older records,
    # so that names stay comparable across runs), e.g. ", warmup 0.05, enc_dim 32" or ", adan".
    others = "".join(f", {name} {o[name]:g}" if isinstance(o[name], (int, float)) else f", {o[name]}"
                     for name in ("optimizer", "warmup", "enc_dim", "grad_clip", "code_lr_scale")
                     if name in o and o[name] != getattr(TrainSettings, name))
    return (f"batch {o['batch']}, lr {o['lr']:g}, beta1 {o['beta1']:g}, {o['compile_mode']}, "
            f"{'bf16' if o['amp'] else 'fp32'}" + ("" if o["loss"] == "l2" else f", {o['loss']}") + others)


def add_curves(out: Path, curves: dict) -> None:
    """Add learning curves ("SIZE RECIPE": running PSNR per epoch) to OUT/bunny-curves.json."""
    path = out / "bunny-curves.json"
    merged = {**(json.loads(path.read_text()) if path.exists() else {}), **curves}
    write_file(path, json.dumps(merged) + "\n")


def write_report(out: Path, records: list[dict], meta: dict) -> None:
    """bunny.json (records sorted by size) and bunny.md (the table, and each record's command)."""
    records = sorted(records, key=lambda r: (SIZE_ORDER.index(r["size"]), r.get("model", "dnerv")))
    write_json(out / "bunny.json", records, meta)
    cols = ["size", "params", "widths", "epochs", "batch", "recipe", "psnr_float", "psnr_coded", "paper_psnr", "bpp",
            "train_seconds", "train_fps", "train_tflops", "rollbacks", "psnr_float_method", "gpu"]
    runs = sorted({(r.get("date", "?"), r.get("gpu", "?"), r.get("torch", "?"), r.get("command", "?"))
                   for r in records})
    lines = ["# Bunny 640x1280 (DNeRV paper Table 1a)", "", markdown_table(records, cols), "",
             "psnr_float: the float model before pruning, all frames in fp32 (`psnr_float_method`: 'evaluated'); "
             "'running' marks a record from before that measurement, holding the last epoch's running PSNR. "
             "rollbacks: times training diverged and went back to its last good state, with a lower learning rate "
             "(records before 2026-11-22 halved the rate for the rest of the schedule; later ones cap it at half "
             "the failed epoch's highest rate). widths: the decoder's channel widths, stem first (records before "
             "2026-12-02 have the authors' rule; later ones are rounded to multiples of 8 where that keeps 95 % of "
             "the parameters).",
             "", "Runs:", ""]
    lines += [f"- {date}, {gpu}, torch {torch}: `{shown_command(command)}`" for date, gpu, torch, command in runs]
    write_file(out / "bunny.md", "\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path, nargs="?", help="the Bunny clip (not needed with --merge)")
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--prune-epochs", type=int, default=None, help="default: 10%% of --epochs")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--model", default="dnerv")
    ap.add_argument("--align", type=int, default=None,
                    help="round channel widths to multiples of this (sizing.WIDTH_ALIGN; default: the codec's)")
    ap.add_argument("--train", nargs="+", default=[], metavar="NAME=VALUE", type=train_option,
                    help="training settings to override, as `dnv encode --train`")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--append", action="store_true")
    ap.add_argument("--minutes", type=float, default=None, help="start no new size after this many minutes")
    ap.add_argument("--merge", nargs="+", type=Path, default=None, metavar="BUNNY_JSON",
                    help="add these bunny.json files' records to --out's (theirs replace the same size), "
                         "rewrite bunny.md, train nothing")
    a = ap.parse_args()
    if a.align is not None:
        sizing.WIDTH_ALIGN = a.align
    started = time.monotonic()
    meta = machine()
    path = a.out / "bunny.json"
    records = json.loads(path.read_text()) if (a.append or a.merge) and path.exists() else []
    if a.merge:
        for other in a.merge:
            theirs = json.loads(other.read_text())
            replaced = {(r["size"], r.get("model", "dnerv")) for r in theirs}
            records = [r for r in records if (r["size"], r.get("model", "dnerv")) not in replaced] + theirs
            their_curves = other.with_name("bunny-curves.json")
            if their_curves.exists():
                add_curves(a.out, json.loads(their_curves.read_text()))
        write_report(a.out, records, meta)
        return
    if a.clip is None:
        ap.error("give the clip (or --merge)")
    with tempfile.TemporaryDirectory() as tmp:
        cropped = center_crop_640x1280(a.clip, Path(tmp))
        for size in a.sizes:
            if a.minutes is not None and time.monotonic() - started > 60 * a.minutes:
                print(f"{a.minutes:g} minutes spent: not starting {size} (rerun with --append)", flush=True)
                break
            r = codec.encode(cropped, Path(tmp) / f"{size}.dnv", model_size=SIZES[size], model=a.model,
                             epochs=a.epochs, prune_epochs=a.prune_epochs or max(1, a.epochs // 10),
                             batch=a.batch, lr=a.lr, train_options=dict(a.train), progress=False, log=print)
            widths = codec.info(Path(tmp) / f"{size}.dnv")["widths"]     # as the file holds them
            rec = {"size": size, "params": r["params"], "widths": widths, "epochs": a.epochs,
                   "prune_epochs": r["prune_epochs"], "batch": r["batch"],
                   "psnr_float": round(r["psnr_float_unpruned"], 3),
                   "psnr_coded": round(r["psnr"], 3), "paper_psnr": PAPER[size], "bpp": round(r["bpp"], 5),
                   "bytes": r["bytes"], "train_seconds": round(r["train_seconds"], 1),
                   # the float model (psnr_float) was ready after train_seconds_unpruned; the first epoch's
                   # seconds hold compiling and CUDA-graph capture
                   "train_seconds_unpruned": round(r["train_seconds_unpruned"], 1),
                   "first_epoch_seconds": round(r["train_curves_seconds"][0][0], 1),
                   "train_fps": round(r["train_frames_per_second"], 1),
                   "train_fps_steady": round(r["train_steady_frames_per_second"], 1),
                   "train_tflops": round(r["train_tflops"], 2),
                   "gpu": meta["gpu"], "torch": meta["torch"], "model": a.model,
                   "psnr_float_method": "evaluated", "rollbacks": r["rollbacks"],
                   "recipe": recipe(r["train_options"]),
                   "date": meta["date"], "command": meta["command"]}
            print(rec, flush=True)
            add_curves(a.out, {f"{size} {rec['recipe']}": r["train_curves"][0]})
            records = [x for x in records if not (x["size"] == size and x.get("model", "dnerv") == a.model)] + [rec]
            write_report(a.out, records, meta)


if __name__ == "__main__":
    main()
