"""Small helpers shared by the benchmark scripts: machine description, sizes, result files."""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

SIZES = {"0.35M": 0.35e6, "0.75M": 0.75e6, "1.5M": 1.5e6, "3M": 3.0e6}


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


def machine() -> dict:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"gpu": gpu, "torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "date": datetime.date.today().isoformat(),
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}


def write_json(path: Path, records, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(records, indent=2) + "\n")
    tmp.replace(path)
    meta_path = path.with_suffix(".meta.json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")


def markdown_table(records: list[dict], columns: list[str]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in records]
    return "\n".join(lines)
