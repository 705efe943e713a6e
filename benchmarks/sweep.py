"""Run many `dnv encode` jobs at once on one machine and tabulate their reports (for quality figures: jobs
that share a GPU are not timed alone; time a job alone for speed figures).

    python3 -m benchmarks.sweep --out DIR [--parallel N] [--only NAME ...] JOBFILE

JOBFILE: one job a line, `NAME: ARGUMENTS` (the arguments of `dnv encode` after the input, e.g.
`bunny-hinerv-0.05: .testdata/bigbuckbunny_1280x720_132f.mp4 --model hinerv --bpp 0.05`; `#` starts a
comment). Arguments may start with hinerv planner settings, `NAME=VALUE` (`benchmarks.hinerv_plan`'s knobs, e.g.
`GRID_SHARE_GOAL=0.06 CLIP --bpp 0.05`): that job runs through `benchmarks.hinerv_plan`, and the settings make
it a variant of its own in `benchmarks.sweep_bd`. Each job writes DIR/NAME.json (the encode report, with the
job's arguments as `sweep_args`) and DIR/NAME.log; the .dnv goes to a temporary folder and is removed. A job
whose report exists is not run again (resumable). At the end, and after every job, DIR/sweep.md holds a table of
every report, with the machine and the command.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import hinerv_plan
from benchmarks.common import machine, split_settings, write_file

COLUMNS = ("bpp", "psnr", "psnr_yuv", "color", "psnr_float_model", "params", "effective_bits", "bytes",
           "estimated_bytes", "lambda", "epochs", "train_seconds",
           "train_steady_frames_per_second", "encode_seconds")


def read_jobs(path: Path) -> list[tuple[str, list[str]]]:
    jobs = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, args = line.partition(":")
            jobs.append((name.strip(), shlex.split(args)))
    return jobs


def encoder(args: list[str]) -> tuple[list[str], list[str]]:
    """The program that runs a job (`dnv`, or `benchmarks.hinerv_plan` with the job's leading settings) and
    the job's encode arguments."""
    settings, args = split_settings(args)
    for setting in settings:
        hinerv_plan.parse_setting(setting)            # a wrong name or value stops the sweep before it starts
    if not args:
        sys.exit("sweep: a job needs an input after its settings")
    if settings:
        return [sys.executable, "-m", "benchmarks.hinerv_plan", *settings, "encode"], args
    return [sys.executable, "-m", "nvcodec", "encode"], args


def run_job(name: str, args: list[str], out: Path, keep: bool = False) -> str:
    """Encode one job; `keep`: its .dnv stays as DIR/NAME.dnv (else it is removed)."""
    report = out / f"{name}.json"
    if report.is_file():
        return f"{name}: kept"
    program, encode_args = encoder(args)
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp:
        dnv = out / f"{name}.dnv" if keep else Path(tmp) / "out.dnv"
        command = [*program, encode_args[0], "-o", str(dnv), "-y",
                   "--json", str(Path(tmp) / "report.json"), "-q", *encode_args[1:]]
        started = time.perf_counter()
        with open(out / f"{name}.log", "w") as log:
            log.write(shlex.join(command) + "\n")
            log.flush()
            code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
        if code == 0:
            data = json.loads((Path(tmp) / "report.json").read_text())
            data["sweep_args"] = args
            write_file(report, json.dumps(data, indent=1))
    return f"{name}: exit {code} after {time.perf_counter() - started:.0f} s"


def table(out: Path, jobs, meta: dict, parallel: int) -> str:
    rows = ["| job | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, _ in jobs:
        path = out / f"{name}.json"
        if not path.is_file():
            rows.append(f"| {name} | " + " | ".join("" for _ in COLUMNS) + " |")
            continue
        r = json.loads(path.read_text())
        cells = [f"{r.get(k):.4g}" if isinstance(r.get(k), float) else str(r.get(k)) for k in COLUMNS]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    head = [f"# Sweep: {out.name}", "", f"- command: `{meta['command']}`", f"- machine: {meta['machine']}",
            f"- GPU: {meta['gpu']}; torch {meta['torch']}; date {meta['date']}",
            ("- jobs ran side by side: their times are not those of a job alone" if parallel > 1
             else "- one job at a time: each job's times are its own"), ""]
    return "\n".join(head + rows) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jobfile", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--parallel", type=int, default=4, help="jobs at once")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these jobs of JOBFILE")
    ap.add_argument("--keep", action="store_true", help="keep each job's file as OUT/NAME.dnv")
    opts = ap.parse_args(argv)
    jobs = read_jobs(opts.jobfile)
    if opts.only:
        unknown = sorted(set(opts.only) - {name for name, _ in jobs})
        if unknown:
            sys.exit(f"sweep: no job named {', '.join(unknown)} in {opts.jobfile}")
        jobs = [job for job in jobs if job[0] in opts.only]
    for _, args in jobs:
        encoder(args)                                 # settings checked before anything runs
    opts.out.mkdir(parents=True, exist_ok=True)
    meta = machine()
    with ThreadPoolExecutor(opts.parallel) as pool:
        for done in pool.map(lambda job: run_job(*job, opts.out, keep=opts.keep), jobs):
            print(done, flush=True)
            write_file(opts.out / "sweep.md", table(opts.out, jobs, meta, opts.parallel))
    write_file(opts.out / "sweep.md", table(opts.out, jobs, meta, opts.parallel))


if __name__ == "__main__":
    main()
