"""Where the float model's quality goes between training and the file: one main training phase, then several
variants of the stage after it (pruning, quantization-aware or rate-aware fine-tuning), each ending in a real
.dnv file measured as `dnv encode` measures it.

    python3 -m benchmarks.finetune_probe CLIP --bpp 0.05 --preset medium --out DIR \
        --variant base: --variant rate: --train rate=true --variant noprune: --no-prune ...

The main phase runs once: the trainer's state at its end is saved (DIR/main.pt) and every variant starts from it
(so they differ only in what comes after; a DIR/main.pt of another network, e.g. from older code, is refused). A variant is `NAME:` followed by `dnv encode` options that leave the
network's plan unchanged (`--train prune_epochs=N`, `--train rate=true`, `--train qat=false`, ...), and the
probe's own `--no-prune` (the pruning step keeps every weight: the file then holds them all, and rate control
trims the bit depth to land on the target instead), and `--fp32-grid` (quantization-aware training rounds on
float32 scales where the file has float16 ones: what the compiled training step did before `as_stored` was
computed by arithmetic), and `--bf16` (the steps after the main phase under bfloat16 autocast, as on a GPU). Each
variant writes DIR/NAME.json (the encode report, with
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

from nvcodec.compress import learned, qat

# What the probe's flags patch, as the package defines them (restored after each variant).
MAGNITUDE_MASKS, AS_STORED = fitmod.magnitude_masks, qat.as_stored


def _fp32_grid(on: bool) -> None:
    """With `on`, quantization-aware training rounds on float32 scales, as the compiled step did before
    `as_stored` rounded by arithmetic (Inductor drops the float16 round trip): the file still uses float16."""
    qat.as_stored = learned.as_stored = (lambda x: x) if on else AS_STORED


def _patched_trainer(snapshot: Path, no_prune: bool, bf16: bool = False):
    """A Trainer class whose main phase is loaded from `snapshot` when it exists, else run and saved there; `bf16`:
    the steps after it run under bfloat16 autocast, as on a GPU (where the main phase did too)."""
    base = fitmod.Trainer

    class Probed(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if snapshot.is_file():
                state = torch.load(snapshot, weights_only=False)
                _check_same_network(snapshot, state["modules"]["decoder"], self.decoder.state_dict())
                self.load_state(state)
                self.amp = self.amp or bf16

        def _evaluate(self, after):
            if after == "train" and snapshot.is_file() and any(h.get("after") == "train" for h in self.history):
                return          # loaded with the main phase's evaluation
            super()._evaluate(after)
            if after == "train" and not snapshot.is_file():
                torch.save(self.state(copy=True), snapshot)

    fitmod.magnitude_masks = (lambda model, fraction, size_exponent=0.0: {}) if no_prune else MAGNITUDE_MASKS
    return Probed


def _check_same_network(snapshot: Path, saved: dict, planned: dict) -> None:
    """A snapshot is only reused for the network it was trained for: the plan can change with the code (the
    planner's side bytes, a new default depth) while DIR/main.pt stays."""
    for name, tensor in planned.items():
        if name not in saved or saved[name].shape != tensor.shape:
            got = tuple(saved[name].shape) if name in saved else "none"
            raise SystemExit(f"{snapshot} was trained for another network ({name}: {got}, the plan now "
                             f"{tuple(tensor.shape)}); remove it or choose another --out")


def run_variant(clip: str, common: list[str], name: str, options: list[str], out: Path) -> dict:
    flags = {"--no-prune", "--fp32-grid", "--bf16"}
    probe_flags = [o for o in options if o in flags]
    options = [o for o in options if o not in flags]
    _fp32_grid("--fp32-grid" in probe_flags)
    fitmod.Trainer = _patched_trainer(out / "main.pt", "--no-prune" in probe_flags, "--bf16" in probe_flags)
    report = out / f"{name}.json"
    args = ["encode", clip, "-y", "-o", str(out / f"{name}.dnv"), "--json", str(report), *common, *options]
    start = time.perf_counter()
    try:
        cli_main(args, standalone_mode=False)
    finally:
        fitmod.Trainer, fitmod.magnitude_masks = fitmod.Fitter, MAGNITUDE_MASKS
        _fp32_grid(False)
    data = json.loads(report.read_text())
    data["probe_seconds"] = time.perf_counter() - start
    data["probe_options"] = options + probe_flags
    report.write_text(json.dumps(data, indent=1))
    return data


def _before_variants(argv: list[str] | None) -> list[str]:
    args = sys.argv[1:] if argv is None else argv
    return args[:args.index("--variant")] if "--variant" in args else args


def _variants(argv: list[str] | None) -> list[list[str]]:
    """The words after each --variant, up to the next."""
    args = sys.argv[1:] if argv is None else argv
    groups: list[list[str]] = []
    for word in args[len(_before_variants(argv)):]:
        if word == "--variant":
            groups.append([])
        else:
            groups[-1].append(word)
    return groups


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--variant", help="NAME: then the variant's dnv encode options, up to the next --variant")
    opts, common = ap.parse_known_args(_before_variants(argv))
    opts.out.mkdir(parents=True, exist_ok=True)
    variants = [(words[0].rstrip(":"), words[1:]) for words in _variants(argv) if words]
    if not variants:
        ap.error("give at least one --variant NAME: [options]")
    command = shlex.join(["python3", "-m", "benchmarks.finetune_probe", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"# finetune probe: {opts.clip}", "", f"- command: `{command}`",
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
