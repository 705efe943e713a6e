"""`dnv` with some of hinerv's planner constants set otherwise, for ablations of those choices at equal bpp; the
file and its report are a normal encode's.

    python3 -m benchmarks.hinerv_plan NAME=VALUE [NAME=VALUE ...] encode CLIP --bpp 0.05 -o OUT.dnv --json OUT.json ...

NAME is one of `KNOBS`: GRID_SHARE_GOAL (the share of the file the feature grids aim at; the planner picks their
width among `hinerv.GRID_SCALES`, so it moves in steps), GRID_LEVELS (the base grid's levels as CHANNELSxFRAMES per
entry, comma-separated, e.g. `2x6,4x12`: the channels at grid scale 1, which the planner then scales), LOCAL_CH and
LOCAL_EVERY (the local grids' channels and frames per entry), STRIDES (the stages' upsampling factors, comma-separated,
first stage first, e.g. `3,2,2,2`, in place of `hinerv.choose_strides`' choice: a finer or coarser base grid), FLOORS
(the smallest networks for tight budgets as STEMxBLOCKS, most preferred first), NEAR_FLOORS (floors tried first, at
`sizing.NEAR_BITS` under the planned depth) and FALLBACK_FIT (`sizing`'s: where between the planned depth and the
lowest the smallest networks must first fit). See the encode's first line and its report's `sections` for what was
planned.
"""
from __future__ import annotations

import sys

from nvcodec import sizing
from nvcodec.cli import main as cli_main
from nvcodec.models import hinerv


def strides(text: str) -> tuple[int, ...]:
    """"3,2,2,2" -> (3, 2, 2, 2); ValueError if it is not that form."""
    return tuple(int(s) for s in text.split(","))


def floors(text: str) -> tuple[tuple[int, int], ...]:
    """"8x3,6x3,4x1" -> ((8, 3), (6, 3), (4, 1)): (stem width, blocks a stage but the last); ValueError otherwise."""
    return tuple((int(stem), int(depth)) for stem, depth in (floor.split("x") for floor in text.split(",")))


def grid_levels(text: str) -> tuple[tuple[int, int], ...]:
    """"2x6,4x12" -> ((2, 6), (4, 12)); ValueError if it is not that form."""
    return tuple((int(ch), int(every)) for ch, every in (level.split("x") for level in text.split(",")))


KNOBS = {"GRID_SHARE_GOAL": (float, lambda v: 0 < v < 1, "a share of the file between 0 and 1"),
         "GRID_LEVELS": (grid_levels,
                         lambda v: 1 <= len(v) <= hinerv.MAX_GRID_LEVELS
                         and all(c >= 1 and 1 <= e <= hinerv.MAX_FRAMES_PER_ENTRY for c, e in v),
                         f"1 to {hinerv.MAX_GRID_LEVELS} levels CHANNELSxFRAMES, e.g. 2x6,4x12, with frames per entry "
                         f"from 1 to {hinerv.MAX_FRAMES_PER_ENTRY}"),
         "LOCAL_CH": (int, lambda v: v >= 1, "a channel count of at least 1"),
         "LOCAL_EVERY": (int, lambda v: 1 <= v <= hinerv.MAX_FRAMES_PER_ENTRY,
                         f"frames per entry from 1 to {hinerv.MAX_FRAMES_PER_ENTRY}"),
         "STRIDES": (strides, lambda v: 3 <= len(v) <= 5 and all(2 <= s <= 5 for s in v),
                     "3 to 5 upsampling factors from 2 to 5, e.g. 3,2,2,2"),
         "FLOORS": (floors, lambda v: len(v) >= 1 and all(stem >= 4 and depth >= 1 for stem, depth in v),
                    "STEMxBLOCKS, comma-separated, stems of at least 4, e.g. 8x3,6x3,4x3,4x2,4x1"),
         "NEAR_FLOORS": (floors, lambda v: all(stem >= 4 and depth >= 1 for stem, depth in v),
                         "STEMxBLOCKS, comma-separated, stems of at least 4, e.g. 8x3,7x3,6x3"),
         "FALLBACK_FIT": (float, lambda v: 0 <= v <= 1, "a share between 0 and 1")}
# Knobs of `nvcodec.sizing` rather than of hinerv.
MODULES = {"FALLBACK_FIT": sizing}
# Knobs that replace one of hinerv's functions rather than a constant: the value becomes that function's answer.
FUNCTIONS = {"STRIDES": "choose_strides"}


def parse_setting(text: str) -> tuple[str, object]:
    name, sep, raw = text.partition("=")
    if not sep or name not in KNOBS:
        raise SystemExit(f"hinerv_plan: expected NAME=VALUE with NAME one of {', '.join(KNOBS)}, not {text!r}")
    kind, valid, what = KNOBS[name]
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit(f"hinerv_plan: {name} must be {what}, not {raw!r}") from None
    if not valid(value):
        raise SystemExit(f"hinerv_plan: {name} must be {what}, not {value}")
    return name, value


def run_with(settings: dict, cli_args: list[str], standalone: bool):
    """The CLI with hinerv's constants (`sizing`'s for those of `MODULES`; the functions of `FUNCTIONS`) set to
    `settings`, restored afterwards."""
    settings = {FUNCTIONS.get(name, name): (lambda *_, v=value: v) if name in FUNCTIONS else value
                for name, value in settings.items()}
    saved = {name: getattr(MODULES.get(name, hinerv), name) for name in settings}
    for name, value in settings.items():
        setattr(MODULES.get(name, hinerv), name, value)
    try:
        return cli_main(cli_args, standalone_mode=standalone)
    finally:
        for name, value in saved.items():
            setattr(MODULES.get(name, hinerv), name, value)


def main(argv: list[str] | None = None):
    args = sys.argv[1:] if argv is None else argv
    if "encode" not in args or args.index("encode") == 0:
        raise SystemExit("usage: python3 -m benchmarks.hinerv_plan NAME=VALUE [...] encode ARGS...")
    at = args.index("encode")
    return run_with(dict(parse_setting(a) for a in args[:at]), args[at:], argv is None)


if __name__ == "__main__":
    main()
