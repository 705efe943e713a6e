"""Where the float model's quality goes between training and the file: one main training phase, then several
variants of the stage after it (pruning, quantization-aware or rate-aware fine-tuning), each ending in a real
.dnv file measured as `dnv encode` measures it.

    python3 -m benchmarks.finetune_probe CLIP --bpp 0.05 --preset medium --out DIR \
        --variant base: --variant rate: --train rate=true --variant noprune: --no-prune ...

The main phase runs once: the trainer's state at its end is saved (DIR/main.pt) and every variant starts from it
(so they differ only in what comes after). A variant is `NAME:` followed by `dnv encode` options that leave the
network's plan unchanged (`--train prune_epochs=N`, `--train rate=true`, `--train qat=false`, ...), and the
probe's own `--no-prune` (the pruning step keeps every weight: the file then holds them all, and rate control
trims the bit depth to land on the target instead). Each variant writes DIR/NAME.json (the encode report, with
`psnr_float_unpruned`: the float model before pruning, the same for every variant) and a line of DIR/probe.md.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from nvcodec import fit as fitmod
from nvcodec.cli import main as cli_main


def _patched_trainer(snapshot: Path, no_prune: bool):
    """A Trainer class whose main phase is loaded from `snapshot` when it exists, else run and saved there."""
    base = fitmod.Trainer

    class Probed(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if snapshot.is_file():
                self.load_state(torch.load(snapshot, weights_only=False))

        def _evaluate(self, after):
            if after == "train" and snapshot.is_file() and any(h.get("after") == "train" for h in self.history):
                return          # loaded with the main phase's evaluation
            super()._evaluate(after)
            if after == "train" and not snapshot.is_file():
                torch.save(self.state(copy=True), snapshot)

    if no_prune:
        fitmod.magnitude_masks = lambda model, fraction: {}
    return Probed


def run_variant(clip: str, common: list[str], name: str, options: list[str], out: Path) -> dict:
    no_prune = "--no-prune" in options
    options = [o for o in options if o != "--no-prune"]
    fitmod.Trainer = _patched_trainer(out / "main.pt", no_prune)
    report = out / f"{name}.json"
    args = ["encode", clip, "-y", "-o", str(out / f"{name}.dnv"), "--json", str(report), *common, *options]
    start = time.perf_counter()
    try:
        cli_main(args, standalone_mode=False)
    finally:
        fitmod.Trainer = fitmod.Fitter
    data = json.loads(report.read_text())
    data["probe_seconds"] = time.perf_counter() - start
    data["probe_options"] = options + (["--no-prune"] if no_prune else [])
    report.write_text(json.dumps(data, indent=1))
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--variant", action="append", required=True, nargs=argparse.REMAINDER,
                    help="NAME: then the variant's dnv encode options (up to the next --variant)")
    opts, common = ap.parse_known_args()
    opts.out.mkdir(parents=True, exist_ok=True)
    variants = []
    for v in " ".join(shlex.join(x) for x in opts.variant).split("--variant"):
        words = shlex.split(v)
        if words:
            variants.append((words[0].rstrip(":"), words[1:]))
    lines = [f"# finetune probe: {opts.clip}", "", f"- command: `{shlex.join(sys.argv)}`",
             f"- torch {torch.__version__}, device {'cuda' if torch.cuda.is_available() else 'cpu'}", "",
             "| variant | options | bpp | RGB | YUV | float unpruned | float final | bits | lambda |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, options in variants:
        r = run_variant(opts.clip, common, name, options, opts.out)
        lam = r.get("lambda")
        lines.append(f"| {name} | `{' '.join(options)}` | {r['bpp']:.4f} | {r['psnr']:.2f} | {r['psnr_yuv']:.2f} | "
                     f"{r['psnr_float_unpruned']:.2f} | {r['psnr_float_model']:.2f} | {r['effective_bits']:.2f} | "
                     f"{'' if lam is None else f'{lam:.3g}'} |")
        (opts.out / "probe.md").write_text("\n".join(lines) + "\n")
        print(lines[-1], flush=True)


if __name__ == "__main__":
    main()
