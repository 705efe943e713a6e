"""The file's grid over many tensors at once: every decoder weight and every learnable table value of a network in
one flat buffer, so that rounding them all as the file will (`qat.weight_grid` / `qat.table_grid`, tensor by tensor)
is some twenty operations whatever the number of tensors.

Two users: the quantization-aware fine-tuning (`FileValues`: the parameters hold the file's values during a step's
forward and backward) and the freezing of oscillating values (`freeze.OscillationFreezer`: its checks). Per tensor,
each of a network's dozens of tensors cost some ten kernel launches a step: on an H200 the launches alone took
tens of seconds of an encode.
"""
from __future__ import annotations

import contextlib
import math

import torch

from .qat import depth_of, table_scale, weight_scale
from .quantize import embedding_levels, weight_levels


def entries_of(decoder: torch.nn.Module, tables: dict[str, torch.Tensor]) -> list[tuple[str, str, torch.Tensor, bool]]:
    """(key, name, tensor, is_weight) of every decoder parameter (`decoder.NAME`) and table (`table.NAME`): the
    values the file stores, with the name that looks up their depth (`qat.depth_of`)."""
    entries = [(f"decoder.{name}", name, p, True) for name, p in decoder.named_parameters()]
    return entries + [(f"table.{name}", name, p, False) for name, p in tables.items()]


class FlatGrid:
    """Where each tracked tensor lies in one flat buffer, and each value's row: an output channel of a weight
    (the whole tensor for a 1-D weight), a channel of a table. A row is what shares a scale on the file's grid."""

    def __init__(self, entries: list[tuple[str, str, torch.Tensor, bool]], bits):
        self.keys = [key for key, _, _, _ in entries]
        self.shapes = [p.shape for _, _, p, _ in entries]
        self.sizes = [p.numel() for _, _, p, _ in entries]
        self.signature = signature(entries, bits)
        device = entries[0][2].device
        rows, levels, weight_row, base = [], [], [], 0
        for (_, name, p, is_weight), (_, _, level, count) in zip(entries, self.signature):
            index = torch.arange(p.numel(), device=device)
            if is_weight:      # rows of equal length, in order
                rows.append(base + index // max(1, p.numel() // count))
            else:              # (N, C, ...): the channel is the second axis
                rows.append(base + (index // math.prod(p.shape[2:])) % count)
            levels += [level] * count
            weight_row += [is_weight] * count
            base += count
        self.row = torch.cat(rows)
        self.levels = torch.tensor(levels, dtype=torch.float64, device=device)
        self.weight_row = torch.tensor(weight_row, device=device)
        self._bounds: dict[torch.dtype, tuple[torch.Tensor, ...]] = {}   # `bounds`, by dtype

    def bounds(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(levels of each row, lowest and highest integer of each value) in `dtype`: the same every step, so
        computed once (two gathers over every value fewer a step)."""
        if dtype not in self._bounds:
            levels = self.levels.to(dtype)
            lower = torch.where(self.weight_row, -levels, torch.zeros_like(levels))
            self._bounds[dtype] = levels, lower[self.row], levels[self.row]
        return self._bounds[dtype]

    def row_extremes(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's largest and smallest value."""
        rows = self.levels.numel()
        hi = flat.new_full((rows,), -math.inf).scatter_reduce_(0, self.row, flat, "amax")
        lo = flat.new_full((rows,), math.inf).scatter_reduce_(0, self.row, flat, "amin")
        return hi, lo

    def steps(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, offset) of every value, as `grid` rounds it."""
        hi, lo = self.row_extremes(flat)
        levels = self.bounds(flat.dtype)[0]
        table_step, table_lo = table_scale(lo, hi, levels)
        scale = torch.where(self.weight_row, weight_scale(torch.maximum(hi, -lo), self.levels).to(flat.dtype),
                            table_step)
        offset = torch.where(self.weight_row, torch.zeros_like(table_lo), table_lo)
        return scale[self.row], offset[self.row]

    def grid(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(integers, scale, offset) of every value, exactly as `qat.weight_grid` / `qat.table_grid` give them
        tensor by tensor (a row's largest magnitude is the larger of its max and minus its min)."""
        scale, offset = self.steps(flat)
        _, lowest, highest = self.bounds(flat.dtype)
        q = torch.round((flat - offset) / scale).clamp(lowest, highest)
        return q, scale, offset

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of `flat`, one per tensor, in its shape."""
        return [part.view(shape) for part, shape in zip(flat.split(self.sizes), self.shapes)]

    def buffer(self, like: torch.Tensor) -> "FlatBuffer":
        return FlatBuffer(self, like)


class FlatBuffer:
    """A flat buffer of every value a `FlatGrid` tracks, and its views one per tensor (made once): gathering the
    tensors into it, or putting it back into them, is one `torch._foreach_copy_` where `torch.cat` of reshaped tensors
    and `split` take some four operations per tensor (on a GPU each fine-tuning step spent milliseconds issuing
    them)."""

    def __init__(self, grid: FlatGrid, like: torch.Tensor):
        self.grid = grid
        self.flat = like.new_empty(sum(grid.sizes))
        self.views = grid.split(self.flat)

    def fits(self, grid: FlatGrid, like: torch.Tensor) -> bool:
        return self.grid is grid and self.flat.device == like.device and self.flat.dtype == like.dtype

    def gather(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """The tensors' values, copied into the buffer; returns it."""
        torch._foreach_copy_(self.views, tensors)
        return self.flat

    def scatter(self, tensors: list[torch.Tensor]) -> None:
        """The buffer's values, copied into the tensors."""
        torch._foreach_copy_(tensors, self.views)


def signature(entries, bits) -> tuple:
    """What a layout depends on: per tensor, its key, shape, largest symbol on the file's grid and number of rows."""
    out = []
    for key, name, p, is_weight in entries:
        if is_weight:
            out.append((key, tuple(p.shape), weight_levels(depth_of(bits, name)), p.shape[0] if p.dim() >= 2 else 1))
        else:
            out.append((key, tuple(p.shape), embedding_levels(depth_of(bits, name)), p.shape[1]))
    return tuple(out)


def grid_for(grid: FlatGrid | None, entries, bits) -> FlatGrid:
    """`grid` if it still fits these tensors and depths, else a new one (built once per fine-tuning)."""
    return grid if grid is not None and grid.signature == signature(entries, bits) else FlatGrid(entries, bits)


class FileValues:
    """Quantization-aware training by swapping: `with file_values(decoder, tables, bits):` the parameters hold the
    values the file would store (rounded on its grid), and their trained values come back after. A step's forward and
    backward run inside, the optimizer's step after: the gradient taken at the rounded values moves the trained ones,
    which is the straight-through estimator of `qat.fake_quant_weight` without the rounding in the compiled graph. So
    the fine-tuning runs the main phase's compiled step and CUDA graphs as they are, instead of compiling a second
    graph (on an H200, most of 57 s of a 519 s encode), and evaluations decode with the file's weights."""

    def __init__(self):
        self.grid: FlatGrid | None = None
        self.trained: FlatBuffer | None = None      # the trained values, while the file's are in the parameters
        self.file: FlatBuffer | None = None         # the file's values

    @contextlib.contextmanager
    def __call__(self, decoder: torch.nn.Module, tables: dict[str, torch.Tensor], bits, noise: bool = False):
        """`noise`: instead of the rounded values, the trained ones plus uniform noise of one rounding step (the
        usual differentiable stand-in for rounding), for training that learns to live with the file's grid before
        it knows the file's depth."""
        entries = entries_of(decoder, tables)
        params = [p for _, _, p, _ in entries]
        self.grid = grid_for(self.grid, entries, bits)
        if self.trained is None or not self.trained.fits(self.grid, params[0]):
            self.trained, self.file = self.grid.buffer(params[0]), self.grid.buffer(params[0])
        with torch.no_grad():
            trained = self.trained.gather(params)
            if noise:
                scale, _ = self.grid.steps(trained)
                torch.rand(self.file.flat.shape, dtype=scale.dtype, device=scale.device, out=self.file.flat)
                self.file.flat.sub_(0.5).mul_(scale).add_(trained)
            else:
                q, scale, offset = self.grid.grid(trained)
                torch.mul(q, scale, out=self.file.flat).add_(offset)
            self.file.scatter(params)
        try:
            yield
        finally:
            with torch.no_grad():
                self.trained.scatter(params)
