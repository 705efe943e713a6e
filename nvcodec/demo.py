"""`dnv demo`: encode and decode a short clip shipped inside the package, and print both reports.

The clip is 24 frames of Big Buck Bunny (c) Blender Foundation, CC BY 3.0, scaled to 320x180.
On a CPU the demo uses a reduced schedule so that it ends in a few minutes, and says so.
"""
from __future__ import annotations

import json
import tempfile
from importlib import resources
from pathlib import Path

import click

from . import codec

DEMO_BPP = 0.3


def demo_clip() -> Path:
    return Path(str(resources.files("nvcodec") / "data" / "bunny_demo.mp4"))


def run_demo(device: str = "auto", output_dir: Path | None = None) -> dict:
    from .cli import print_encode_report

    dev = codec.resolve_device(device)
    reduced = dev.type == "cpu"
    settings = dict(preset="fast", epochs=40, prune_epochs=6) if reduced else dict(preset="medium")
    click.echo(f"dnv demo: {demo_clip().name} (Big Buck Bunny, (c) Blender Foundation, CC BY 3.0)")
    if reduced:
        click.echo("no GPU found: using a reduced setting (40 + 6 epochs) so that the demo ends in a few minutes; "
                   "quality is far below what the normal preset reaches on a GPU")
    with tempfile.TemporaryDirectory() as tmp:
        folder = output_dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        dnv, rec = folder / "demo.dnv", folder / "demo_decoded.mp4"
        enc = codec.encode(demo_clip(), dnv, bpp=DEMO_BPP, device=device, log=lambda m: click.echo(m, err=True),
                           **settings)
        print_encode_report(enc)
        dec = codec.decode(dnv, rec, ref=demo_clip(), device=device)
        click.echo(f"decoded -> {rec.name}: PSNR {dec['psnr']:.3f} dB (encode said {enc['psnr']:.3f} dB), "
                   f"{dec['decode_seconds']:.2f} s, {dec['decode_fps']:.1f} frames/s "
                   f"(the network alone {dec['neural_fps']:.1f})")
        if output_dir:
            (folder / "demo_report.json").write_text(json.dumps({"encode": enc, "decode": dec}, indent=2))
            click.echo(f"files kept in {folder}")
    return {"encode": enc, "decode": dec}
