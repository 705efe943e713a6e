"""End-to-end speed of `dnv decode` to .mp4 (or .y4m): loading, the network, writing, and frames/s over the whole.

    python3 -m benchmarks.decode_speed CLIP --frames N [--color rgb|yuv420] [--to mp4|y4m|none]
        [--out benchmarks/results/decode_speed]
    python3 -m benchmarks.decode_speed CLIP --dnv FILE [--out DIR]      # time an existing .dnv of CLIP

Without --dnv, frames 0..N-1 of CLIP are encoded first (--bpp, --preset, --epochs: the speed of decoding
depends on the network's size, which --bpp sets, not on how long it trained). Then `codec.decode` runs
once to warm up (libraries, CUDA context, allocator) and --runs more times; the record holds the median
of each figure: `load_seconds` (reading, entropy decoding, building the network), `neural_seconds` and
`neural_fps` (the network alone), `write_seconds` (the H.264 writer's working time, alongside the network),
`decode_seconds` and `decode_fps` (the whole decode). `command_seconds` is the median wall time of the
`dnv decode` command in a fresh process, which adds the interpreter's and torch's start-up. Timing is
synchronised with the GPU. Prints the JSON record; with --out, writes it there as
WxH_Nf_MODEL_DEVICE_COLOR_PRECISION_bBATCH_TO_DATE.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import machine, sync
from nvcodec import codec
from nvcodec.bitstream import write_atomic

TIMES = ("load_seconds", "neural_seconds", "write_seconds", "decode_seconds")


def time_decodes(dnv: Path, device: str, runs: int, batch: int, precision: str, folder: Path,
                 to: str = "mp4") -> list[dict]:
    """One warm-up decode, then `runs` timed ones, each to a new .mp4 or .y4m (the writer's real work), or to
    nothing (`none`: the frames reach the host and are dropped, which shows what writing adds)."""
    reports = []
    for i in range(runs + 1):
        out = None if to == "none" else folder / f"run{i}.{to}"
        sync(device)
        start = time.perf_counter()
        r = codec.decode(dnv, out, device=device, batch=batch, precision=precision)
        sync(device)
        r["wall_seconds"] = time.perf_counter() - start
        if out is not None:
            out.unlink()
        if i:
            reports.append(r)
    return reports


def time_command(dnv: Path, device: str, runs: int, batch: int, precision: str, folder: Path,
                 to: str = "mp4") -> list[float]:
    """Wall seconds of `dnv decode` in a fresh process (this checkout's code), `runs` times."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    seconds = []
    for i in range(runs):
        out = None if to == "none" else folder / f"cmd{i}.{to}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nvcodec", "decode", str(dnv), *(["-o", str(out)] if out else []),
                        "--device", device, *(["--batch", str(batch)] if batch else []),
                        "--precision", precision], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - start)
        if out is not None:
            out.unlink()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path, help="The source video.")
    ap.add_argument("--frames", type=int, default=96, help="Frames 0..N-1 of CLIP to encode (default 96).")
    ap.add_argument("--dnv", type=Path, default=None, help="Time this .dnv (of CLIP) instead of encoding one.")
    ap.add_argument("--bpp", type=float, default=0.05, help="Encode at this rate (default 0.05).")
    ap.add_argument("--model", default="dnerv", help="Encode this model (default dnerv).")
    ap.add_argument("--preset", default="fast", help="Encode preset (default fast).")
    ap.add_argument("--epochs", type=int, default=2, help="Encode epochs (default 2: the speed does not depend "
                                                          "on them).")
    ap.add_argument("--device", default="auto", help="auto (default), cuda or cpu.")
    ap.add_argument("--batch", type=int, default=None,
                    help="Frames per decoder call (default: dnv decode's).")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--runs", type=int, default=3, help="Timed runs after the warm-up (default 3).")
    ap.add_argument("--color", choices=["source", "rgb", "yuv420"], default="source",
                    help="The sample format of the encode (dnv encode --color; default: the source's own).")
    ap.add_argument("--to", choices=["mp4", "y4m", "none"], nargs="+", default=["mp4"],
                    help="What to decode to (default mp4; none: no file, what writing adds shows against it); "
                         "several: one record each, from the same .dnv.")
    ap.add_argument("--command-runs", type=int, default=None,
                    help="Fresh `dnv decode` processes to time (default: --runs; 0: none).")
    ap.add_argument("--save-dnv", type=Path, default=None, help="Keep the encoded .dnv here (for later --dnv runs).")
    ap.add_argument("--out", type=Path, default=None, help="Folder to write the record in.")
    a = ap.parse_args()
    if not a.clip.is_file():
        ap.error(f"{a.clip}: no such file")
    if a.dnv is not None and not a.dnv.is_file():
        ap.error(f"--dnv {a.dnv}: no such file")
    device = str(codec.resolve_device(a.device))
    with tempfile.TemporaryDirectory(prefix="decode_speed.") as tmp:
        tmp = Path(tmp)
        encode = None
        dnv = a.dnv
        if dnv is None:
            dnv = tmp / "clip.dnv"
            print(f"encoding frames 0-{a.frames - 1} of {a.clip} ...", file=sys.stderr, flush=True)
            enc = codec.encode(a.clip, dnv, bpp=a.bpp, model=a.model, preset=a.preset, epochs=a.epochs, prune_epochs=0,
                               frame_range=(0, a.frames), device=device, progress=False, compile=False,
                               color=None if a.color == "source" else a.color)
            encode = {k: enc[k] for k in ("model", "bpp", "target_bpp", "psnr", "preset", "epochs", "encode_seconds")}
            if a.save_dnv is not None:
                write_atomic(a.save_dnv, dnv.read_bytes())
        info = codec.info(dnv)
        for to in a.to:
            reports = time_decodes(dnv, device, a.runs, a.batch, a.precision, tmp, to)
            command_runs = a.runs if a.command_runs is None else a.command_runs
            command = time_command(dnv, device, command_runs, a.batch, a.precision, tmp, to)
            write_record(a, info, encode, to, reports, command)


def write_record(a: argparse.Namespace, info: dict, encode: dict | None, to: str, reports: list[dict],
                 command: list[float]) -> None:
    """Print the medians of one output kind's decodes and, with --out, write them as a JSON record."""
    median = {k: statistics.median(r[k] for r in reports) for k in TIMES}
    frames = reports[0]["frames"]
    record = {
        "clip": a.clip.name, "frames": frames, "width": info["width"], "height": info["height"],
        "bpp": info["bpp"], "bytes": info["bytes"], "model": info.get("model", info.get("first_segment", {})
                                                                    .get("model")),
        "decoder_params": info.get("decoder_params"), "device": reports[0]["device"], "batch": reports[0]["batch"],
        "precision": a.precision, "runs": a.runs, "default_batch": a.batch is None,
        "output": {"mp4": ".mp4 (H.264, CRF 10, ultrafast)", "y4m": ".y4m (raw 4:2:0)", "none": "none (no file)"}[to],
        "color": info.get("color", info.get("first_segment", {}).get("color")),
        **{k: round(v, 4) for k, v in median.items()},
        "neural_fps": round(frames / median["neural_seconds"], 1),
        "decode_fps": round(frames / median["decode_seconds"], 1),
        "command_seconds": round(statistics.median(command), 3) if command else None,
        "command_fps": round(frames / statistics.median(command), 1) if command else None,
        "decode_seconds_each": [round(r["decode_seconds"], 4) for r in reports],
        "command_seconds_each": [round(s, 3) for s in command],
        "encode": encode, **machine(),
    }
    text = json.dumps(record, indent=2) + "\n"
    print(text, end="")
    if a.out is not None:
        slug = re.sub(r"[^a-z0-9]+", "-", record["device"].lower()).strip("-")
        path = a.out / (f"{record['width']}x{record['height']}_{frames}f_{record['model']}_{slug}_{record['color']}_"
                        f"{a.precision}_b{record['batch']}_{to}_"
                        f"{time.strftime('%Y-%m-%d')}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text.encode())
        print(f"wrote {path}", file=sys.stderr)

if __name__ == "__main__":
    main()
