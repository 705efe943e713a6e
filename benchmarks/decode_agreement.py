"""Deterministic decoding: the same .dnv decoded several times on each device, and CPU against GPU.

    python3 -m benchmarks.decode_agreement FILE.dnv [--ref ORIGINAL] [--runs 3] [--out benchmarks/results/decode_agreement]

Reports whether repeated decodes on one device give identical frames, the PSNR of the GPU decode
against the CPU decode, and (with --ref) the PSNR of each against the original and their difference
(the README's claim: within 0.05 dB). GPU decodes run with TF32 convolutions on (PyTorch's default,
what `dnv decode` uses) and off.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import machine, write_file
from nvcodec import decoding, metrics
from nvcodec.codec import device_name


def decode(data: bytes, device: torch.device) -> np.ndarray:
    return np.concatenate(list(decoding.render(decoding.load(data, device), device)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dnv", type=Path)
    p.add_argument("--ref", type=Path, default=None, help="the original video, to compare PSNRs")
    p.add_argument("--ref-frames", default=None, help="START:END of --ref that was encoded")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = p.parse_args(argv)

    data = args.dnv.read_bytes()
    reference = None
    if args.ref is not None:
        from nvcodec.video import parse_frame_range, read_video
        reference, _ = read_video(args.ref, frame_range=parse_frame_range(args.ref_frames))
    settings = [("cpu", None)]
    if torch.cuda.is_available():
        settings += [("cuda", True), ("cuda", False)]
    runs, report = {}, {"file": str(args.dnv), "runs": args.runs, "devices": {}}
    for kind, tf32 in settings:
        label = kind if tf32 is None else f"cuda tf32={'on' if tf32 else 'off'}"
        if tf32 is not None:
            torch.backends.cudnn.allow_tf32 = tf32
        outs = [decode(data, torch.device(kind)) for _ in range(args.runs)]
        runs[label] = outs[0]
        entry = {"device": device_name(torch.device(kind)),
                 "identical_runs": all(np.array_equal(outs[0], o) for o in outs[1:])}
        if label != "cpu":
            entry["psnr_vs_cpu"] = metrics.psnr(outs[0], runs["cpu"])
            entry["frames_differing_from_cpu"] = int((outs[0] != runs["cpu"]).any(axis=(1, 2, 3)).sum())
        if reference is not None:
            entry["psnr_vs_ref"] = metrics.psnr(outs[0], reference)
            if label != "cpu":
                entry["psnr_difference_db"] = entry["psnr_vs_ref"] - report["devices"]["cpu"]["psnr_vs_ref"]
        report["devices"][label] = entry
        print(label, json.dumps(entry), flush=True)
    report.update(machine())
    if args.out:
        write_file(args.out.with_suffix(".json"), json.dumps(report, indent=2) + "\n")
        lines = [f"# Decode agreement: {args.dnv.name}", "", f"{report['date']}, {report['machine']}, "
                 f"torch {report['torch']}, {args.runs} decodes per setting.", "",
                 "| setting | device | identical runs | PSNR vs CPU decode | PSNR vs original | difference |",
                 "|---|---|---|---:|---:|---:|"]
        for label, e in report["devices"].items():
            lines.append(f"| {label} | {e['device']} | {e['identical_runs']} | {e.get('psnr_vs_cpu', '—')} | "
                         f"{e.get('psnr_vs_ref', '—')} | {e.get('psnr_difference_db', '—')} |")
        write_file(args.out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
