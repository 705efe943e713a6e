"""Add a round of Bunny runs to the recipe log (benchmarks/results/bunny/recipes.json and its curves).

    python3 -m benchmarks.add_recipes --round "2026-12-02 adan" --machine "H200 d" RES/bunny-*/bunny.json [--note TEXT]

Each record of each bunny.json (as `bunny.py --out` writes it) is appended with its round, machine and note (by
default the name of its folder); its learning curve, from the bunny-curves.json beside it, is added under
"SIZE EPOCHS epochs, RECIPE (ROUND, MACHINE)". A record already in the log (same command, date and PSNR) is not
added twice, so the command can be run again. `bunny.py --merge` is for the table of sizes (bunny.json); this is
for the runs that compare recipes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import write_file

RECIPES = Path(__file__).resolve().parent / "results" / "bunny"


def add(files: list[Path], round_: str, machine: str, note: str | None = None, into: Path = RECIPES) -> int:
    """Append the records of `files` to `into`/recipes.json (and their curves); returns how many were new."""
    log_path, curves_path = into / "recipes.json", into / "recipes-curves.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else []
    curves = json.loads(curves_path.read_text()) if curves_path.exists() else {}
    seen = {(r.get("command"), r.get("date"), r.get("psnr_float")) for r in log}
    added = 0
    for path in files:
        curves_beside = path.with_name("bunny-curves.json")
        theirs = json.loads(curves_beside.read_text()) if curves_beside.exists() else {}
        for record in json.loads(path.read_text()):
            if (record.get("command"), record.get("date"), record.get("psnr_float")) in seen:
                continue
            log.append({**record, "round": round_, "machine": machine, "note": note or path.parent.name})
            curve = theirs.get(f"{record['size']} {record['recipe']}")
            if curve is not None:
                curves[f"{record['size']} {record['epochs']} epochs, {record['recipe']} ({round_}, {machine})"] = curve
            added += 1
    write_file(log_path, json.dumps(log, indent=2) + "\n")
    write_file(curves_path, json.dumps(curves) + "\n")
    return added


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, metavar="BUNNY_JSON")
    ap.add_argument("--round", required=True, help='e.g. "2026-12-02 adan": tells rounds of runs apart')
    ap.add_argument("--machine", required=True, help='e.g. "H200 d": tells runs on different machines apart')
    ap.add_argument("--note", default=None, help="what the runs tried (default: each file's folder name)")
    a = ap.parse_args()
    print(f"{add(a.files, a.round, a.machine, a.note)} record(s) added to {RECIPES / 'recipes.json'}")


if __name__ == "__main__":
    main()
