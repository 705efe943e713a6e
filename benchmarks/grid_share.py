"""`dnv` with hinerv's planner aiming its feature grids at another share of the file (`GRID_SHARE_GOAL`), for
ablations of that choice at equal bpp; the file and its report are a normal encode's. Shorthand for
`benchmarks.hinerv_plan GRID_SHARE_GOAL=GOAL encode ...`.

    python3 -m benchmarks.grid_share GOAL encode CLIP --bpp 0.05 -o OUT.dnv --json OUT.json ...

The planner picks the grids' width among a few scales (`hinerv.GRID_SCALES`) and the decoder's width from what is
left, so GOAL moves the grids' share in steps: see the encode's first line and its report's `sections`.
"""
from __future__ import annotations

import sys

from .hinerv_plan import parse_setting, run_with


def main(argv: list[str] | None = None):
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python3 -m benchmarks.grid_share GOAL encode ARGS...")
    return run_with(dict([parse_setting(f"GRID_SHARE_GOAL={args[0]}")]), args[1:], argv is None)


if __name__ == "__main__":
    main()
