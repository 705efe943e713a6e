"""`dnv` with hinerv's planner aiming its feature grids at another share of the file (`GRID_SHARE_GOAL`), for
ablations of that choice at equal bpp; the file and its report are a normal encode's.

    python3 -m benchmarks.grid_share GOAL encode CLIP --bpp 0.05 -o OUT.dnv --json OUT.json ...

The planner picks the grids' width among a few scales (`hinerv.GRID_SCALES`) and the decoder's width from what is
left, so GOAL moves the grids' share in steps: see the encode's first line and its report's `sections`.
"""
from __future__ import annotations

import sys

from nvcodec.cli import main as cli_main
from nvcodec.models import hinerv


def main(argv: list[str] | None = None):
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python3 -m benchmarks.grid_share GOAL encode ARGS...")
    try:
        goal = float(args[0])
    except ValueError:
        raise SystemExit(f"grid_share: GOAL must be a share of the file such as 0.12, not {args[0]!r}") from None
    if not 0 < goal < 1:
        raise SystemExit(f"grid_share: GOAL must lie between 0 and 1, not {goal}")
    saved, hinerv.GRID_SHARE_GOAL = hinerv.GRID_SHARE_GOAL, goal
    try:
        return cli_main(args[1:], standalone_mode=argv is None)
    finally:
        hinerv.GRID_SHARE_GOAL = saved


if __name__ == "__main__":
    main()
