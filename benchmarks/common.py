"""Small helpers shared by the benchmark scripts: the machine description, sizes, result files."""
from __future__ import annotations

import datetime
import io
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from nvcodec.bitstream import write_atomic

SIZES = {"0.35M": 0.35e6, "0.75M": 0.75e6, "1.5M": 1.5e6, "3M": 3.0e6}
_PACKAGE = Path(__file__).resolve().parent


def merge_points(data: dict, other: dict, key) -> int:
    """Add the points of `other` (another run's {"points", "meta"} results, e.g. from another GPU) that
    `data` lacks by `key(point)`, and its run records; the header meta becomes the latest run's."""
    have = {key(p) for p in data["points"]}
    new = [p for p in other["points"] if key(p) not in have]
    data["points"] += new
    runs = data.setdefault("meta", {}).setdefault("runs", [])
    runs += [r for r in other.get("meta", {}).get("runs", []) if r not in runs]
    latest = max(runs, key=lambda r: str(r.get("date", "")), default=None)
    if latest:
        data["meta"] = {**latest, "runs": runs}
    return len(new)


def split_settings(args: list[str]) -> tuple[list[str], list[str]]:
    """A sweep job's leading planner settings (`NAME=VALUE`, run through `benchmarks.hinerv_plan`) and the rest,
    the input and `dnv encode`'s arguments."""
    at = 0
    while at < len(args) and "=" in args[at] and not args[at].startswith("-"):
        at += 1
    return args[:at], args[at:]


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as it can be typed again from the repository root."""
    argv = sys.argv if argv is None else argv
    script = Path(argv[0])
    if script.suffix == ".py" and script.resolve().parent == _PACKAGE:
        head = ["python3", "-m", f"benchmarks.{script.stem}"]
    else:
        head = [script.name]
    return shlex.join(head + list(argv[1:]))


def shown_command(command: str) -> str:
    """A recorded command as it can be typed: records older than command_line() hold 'SCRIPT.py ARGS'."""
    first = command.split(" ", 1)[0]
    return f"python3 -m benchmarks.{first[:-3]}{command[len(first):]}" if first.endswith(".py") else command


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What ran a benchmark, recorded in every result file: the command, when, the host (`machine`: one line
    with its CPU and threads), the GPU ("none" without CUDA) and the versions that decide the figures."""
    import av
    import torch

    cuda = torch.cuda.is_available()
    return {
        "command": command_line(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({cpu_model()}, {os.cpu_count()} CPU threads, {platform.platform()})",
        "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if cuda else "none",
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "torch": torch.__version__, "python": platform.python_version(),
        "av": av.__version__, "ffmpeg": getattr(av, "ffmpeg_version_info", "?"),
    }


def sync(device) -> None:
    """Wait for the GPU's queued work (timings must include it); nothing on a CPU. `device`: a torch.device
    or its name ("auto" counts as the GPU where there is one)."""
    import torch

    if str(device) != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()


def layer_bench_args(description: str, argv=None):
    """The options of a benchmark that times layers of the network planned for a video (`upsample_speed`,
    `depthwise_speed`), parsed: (args, width, height, device, dtype). bf16 on a GPU and fp32 on a CPU, as training
    runs them."""
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--bpp", type=float, default=0.05)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    width, height = map(int, a.size.split("x"))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return a, width, height, device, torch.bfloat16 if device.type == "cuda" else torch.float32


def write_file(path: Path, content: str | bytes) -> None:
    """Write a result file whole or not at all (never a half-written file), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content.encode() if isinstance(content, str) else content)


def save_figure(fig, path: Path, **savefig_options) -> None:
    """A matplotlib figure to `path` (its format from the suffix), through write_file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", **savefig_options)
    write_file(path, buffer.getvalue())


def write_json(path: Path, records, meta: dict) -> None:
    """PATH (the records) and PATH with .meta.json (the machine and run description)."""
    write_file(path, json.dumps(records, indent=2) + "\n")
    write_file(path.with_suffix(".meta.json"), json.dumps(meta, indent=2) + "\n")


def markdown_table(records: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)
