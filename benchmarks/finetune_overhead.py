"""What a quantization-aware fine-tuning step adds around the compiled training step, piece by piece, at the network
planned for a video: the swap of the file's values into the parameters and back (`flatgrid.FileValues`), its grid
alone (`FlatGrid.grid`: two scatter reductions over every value), the freezer's step between checks and with a
check (`freeze.OscillationFreezer`), the pruning masks (`prune.apply_masks`), and gradient clipping with the
optimizer's step (as `fit.Trainer._step` runs them). Also each row's largest and smallest value two ways: as the grid
takes them (`scatter_reduce_` amax and amin into one slot per row: on a GPU, atomics that thousands of values of one
row contend for) and, a candidate, as segment reductions over the values put in row order. On CUDA, another
candidate: the swap captured as two CUDA graphs and replayed (`graphed_swap`, checked against the swap).

    python3 -m benchmarks.finetune_overhead [--size 1280x720] [--frames 96] [--bpp 0.05] [--iters 50] [--out DIR]

On an H200 a fine-tuning epoch of Bunny 0.05 took about 1.5 s against 0.77-1.04 s for a main-phase epoch of the same
network (results/medium_blackswan_prune_gpu_2026-12-04/). For each piece: the host time of a call (what the Python
loop spends issuing it; on a GPU the device may run behind) and the device time (CUDA events around `--iters` calls
back to back, then a wait; on a CPU both are wall time), and the ATen operations a call dispatches (what a GPU's
host pays for one by one, whatever the device). fp32, as the parameters are held. With --out writes
finetune_overhead_WxH_DEVICE.json there.
"""
from __future__ import annotations

import json
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nvcodec import sizing
from nvcodec.compress.flatgrid import FileValues, FlatGrid, entries_of
from nvcodec.compress.freeze import EVERY, OscillationFreezer
from nvcodec.compress.prune import apply_masks
from nvcodec.models import Decoder, hinerv

from .common import layer_bench_args, machine, sync

BITS = 5.72     # Bunny 0.05's depth after rate control's trimming


def network(width: int, height: int, frames: int, bpp: float, device):
    """The planned decoder, its tables as parameters (small random values, as trained grids are) and masks pruning
    a tenth of each weight matrix, on `device`."""
    arch = sizing.plan_for_bpp("hinerv", width, height, frames, bpp, 6).arch
    gen = torch.Generator().manual_seed(0)
    decoder = Decoder(arch).to(device)
    tables = {name: torch.nn.Parameter((0.1 * torch.randn(shape, generator=gen)).to(device))
              for name, shape in hinerv.section_shapes(arch, frames).items()}
    masks = {name: (torch.rand(p.shape, generator=gen) > 0.1).float().to(device)
             for name, p in decoder.named_parameters() if p.dim() > 1}
    return arch, decoder, tables, masks


def timed(fn, iters: int, device) -> tuple[float, float]:
    """(host, device) milliseconds per call, after three warm-ups."""
    for _ in range(3):
        fn()
    sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    host = (time.perf_counter() - t) / iters
    if device.type == "cuda":
        end.record()
        sync(device)
        return host * 1e3, start.elapsed_time(end) / iters
    return host * 1e3, host * 1e3


class _CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def aten_ops(fn) -> int:
    """The ATen operations one call of `fn` dispatches (views included: each costs the host a dispatch)."""
    with _CountOps() as counter:
        fn()
    return counter.count


def row_extremes_by_segments(grid: FlatGrid):
    """Each row's extremes as `FlatGrid.row_extremes` gives them, but by segment reductions: the values gathered in
    row order (a permutation computed once), each row a run of `lengths` values. Returns a function of the values."""
    order = torch.argsort(grid.row, stable=True)
    lengths = torch.bincount(grid.row, minlength=grid.levels.numel())

    def extremes(flat):
        ordered = flat[order]
        return (torch.segment_reduce(ordered, "max", lengths=lengths),
                torch.segment_reduce(ordered, "min", lengths=lengths))
    return extremes


def graphed_swap(decoder, tables) -> tuple:
    """A candidate on CUDA: the swap in and the swap back as two CUDA graphs, captured once, replayed each step (the
    parameters and the swap's buffers keep their addresses). Checked against the swap as it runs: the same values in
    the parameters after each replay, else RuntimeError. Returns (swap in, swap back)."""
    values = FileValues()
    params = [p for _, _, p, _ in entries_of(decoder, tables)]
    trained = [p.detach().clone() for p in params]
    with values(decoder, tables, BITS):
        want = [p.detach().clone() for p in params]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):               # warm-up off the default stream, as capturing asks
        for _ in range(3):
            with values(decoder, tables, BITS):
                pass
    torch.cuda.current_stream().wait_stream(side)
    swap_in, swap_back = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    inside = values(decoder, tables, BITS)
    with torch.cuda.graph(swap_in):
        inside.__enter__()
    with torch.cuda.graph(swap_back):
        inside.__exit__(None, None, None)
    swap_in.replay()
    torch.cuda.synchronize()
    if not all(torch.equal(p, w) for p, w in zip(params, want)):
        raise RuntimeError("the graphed swap put other values in the parameters than the swap does")
    swap_back.replay()
    torch.cuda.synchronize()
    if not all(torch.equal(p, t) for p, t in zip(params, trained)):
        raise RuntimeError("the graphed swap did not put the trained values back")
    return swap_in.replay, swap_back.replay


def pieces(decoder, tables, masks, device) -> dict:
    """Each piece as a function of no arguments."""
    values = FileValues()
    params = [p for _, _, p, _ in entries_of(decoder, tables)]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    grid = FlatGrid(entries_of(decoder, tables), BITS)
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    adam = torch.optim.Adam(params, lr=1e-4, fused=device.type == "cuda")
    between, checking = OscillationFreezer(0.24), OscillationFreezer(0.24)

    def swap():
        with values(decoder, tables, BITS):
            pass

    def freeze_between():       # a step that is not a check (EVERY - 1 of EVERY)
        between.steps = 1
        between.step(decoder, tables, BITS)

    def freeze_check():
        checking.steps = 0
        checking.step(decoder, tables, BITS)

    def clip_and_adam():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        adam.step()

    with torch.no_grad():
        checking.step(decoder, tables, BITS)    # (the first check only records where values stand)
        between.step(decoder, tables, BITS)
    by_segments = row_extremes_by_segments(grid)
    graphed = {}
    if device.type == "cuda":
        try:
            swap_in, swap_back = graphed_swap(decoder, tables)
            graphed = {"file_values_swap_graphed": lambda: (swap_in(), swap_back())}
        except Exception as e:      # a candidate: its failure is a finding, not the end of the other measurements
            print(f"  file_values_swap_graphed failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return {"file_values_swap": swap, **graphed, "flat_grid_only": lambda: grid.grid(flat),
            "row_extremes_scatter": lambda: grid.row_extremes(flat),
            "row_extremes_segments": lambda: by_segments(flat),
            "freezer_between_checks": torch.no_grad()(freeze_between), "freezer_check": torch.no_grad()(freeze_check),
            "apply_masks": torch.no_grad()(lambda: apply_masks(decoder, masks)), "clip_and_adam": clip_and_adam}


def main(argv=None):
    a, width, height, device, _ = layer_bench_args(__doc__.splitlines()[0], argv)
    arch, decoder, tables, masks = network(width, height, a.frames, a.bpp, device)
    values = sum(p.numel() for p in decoder.parameters()) + sum(t.numel() for t in tables.values())
    print(f"{a.size}, {a.frames} frames, {a.bpp} bpp: widths {arch.widths}, {values:,} values in "
          f"{len(list(decoder.parameters())) + len(tables)} tensors, on {device}")
    rows = {}
    for name, fn in pieces(decoder, tables, masks, device).items():
        host, dev = timed(fn, a.iters, device)
        rows[name] = {"host_ms": host, "device_ms": dev, "aten_ops": aten_ops(fn)}
        print(f"  {name:24s} host {host:7.3f} ms, device {dev:7.3f} ms a call, {rows[name]['aten_ops']:5d} ATen ops")
    per_step = {k: sum(rows[p][k] for p in ("file_values_swap", "apply_masks", "clip_and_adam"))
                + (rows["freezer_check"][k] + (EVERY - 1) * rows["freezer_between_checks"][k]) / EVERY
                for k in ("host_ms", "device_ms", "aten_ops")}
    print(f"  a fine-tuning step's share (freezer checks one step in {EVERY}): host {per_step['host_ms']:.3f} ms, "
          f"device {per_step['device_ms']:.3f} ms, {per_step['aten_ops']:.0f} ATen ops")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        record = {"size": a.size, "frames": a.frames, "bpp": a.bpp, "widths": list(arch.widths), "values": values,
                  "iters": a.iters, "machine": machine(), "torch": torch.__version__, "pieces": rows,
                  "per_step": per_step}
        (a.out / f"finetune_overhead_{a.size}_{device.type}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
