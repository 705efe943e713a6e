"""What starting the compiler's import early (`nvcodec.compiler_import`) saves an encode, from a cold start.

Each run is a fresh process (as `dnv encode` is) with empty Inductor and Triton caches, encoding a short schedule
(`--epochs`, `--prune-epochs`: the compiles of both phases, little training), once with the import begun while the
video is read ("early", the default) and once with it left to the first compiled step ("late"), alternating, `--runs`
pairs. Reported per run: the process's wall time from launch to exit, the encode's own `encode_seconds`, and the
first epoch's seconds (with the compile).

    python3 -m benchmarks.compiler_import_overlap CLIP [--frames 0:96] [--bpp 0.05] [--runs 2] [--out DIR]

On a GPU only (on a CPU the encode does not compile by default). With --out writes compiler_import_overlap.json there.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import machine

CHILD = r"""
import json, sys
from nvcodec import codec, compiler_import
clip, out, first, end, bpp, epochs, prune_epochs, when = sys.argv[1:]
if when == "late":
    compiler_import.start = lambda: None
r = codec.encode(clip, out, frame_range=(int(first), int(end)), bpp=float(bpp), epochs=int(epochs),
                 prune_epochs=int(prune_epochs), progress=False, checkpoint_every=0)
print(json.dumps({"encode_seconds": r["encode_seconds"], "first_epoch_seconds": r["train_curves_seconds"][0][0],
                  "psnr": r["psnr"], "bpp": r["bpp"], "device": r["device"]}))
"""


def one_run(args, when: str, workdir: Path) -> dict:
    caches = tempfile.mkdtemp(dir=workdir)
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=f"{caches}/inductor", TRITON_CACHE_DIR=f"{caches}/triton")
    first, end = args.frames.split(":")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, args.clip, str(workdir / f"{when}.dnv"), first, end,
                           str(args.bpp), str(args.epochs), str(args.prune_epochs), when],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the {when} run failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"when": when, "process_seconds": round(wall, 2), **report}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip")
    p.add_argument("--frames", default="0:96")
    p.add_argument("--bpp", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--prune-epochs", type=int, default=1)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--start-with", choices=("early", "late"), default="early")
    p.add_argument("--out")
    args = p.parse_args(argv)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            pair = ("early", "late") if args.start_with == "early" else ("late", "early")
            for when in (pair if i % 2 == 0 else pair[::-1]):
                runs.append(one_run(args, when, Path(tmp)))
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for when in ("early", "late"):
        mine = [r for r in runs if r["when"] == when]
        summary[when] = {key: round(statistics.mean(r[key] for r in mine), 2)
                         for key in ("process_seconds", "encode_seconds", "first_epoch_seconds")}
    summary["saved_seconds"] = round(summary["late"]["process_seconds"] - summary["early"]["process_seconds"], 2)
    print(json.dumps(summary))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        result = {"machine": machine(), "args": vars(args), "runs": runs, "summary": summary}
        (Path(args.out) / "compiler_import_overlap.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
