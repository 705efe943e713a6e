"""Freezing the values that oscillate in quantization-aware fine-tuning.

With the rounding in the loop and a straight-through gradient, a value that sits near a rounding threshold is
pushed across it and back, step after step, down to the smallest learning rates (Nagel et al., "Overcoming
Oscillations in Quantization-Aware Training", ICML 2022). Measured here (carphone, CPU): hundreds of values still
change their integer in the last fine-tuning epoch, where the learning rate is under 1e-6, and the quantized
network's quality swings by up to 1 dB from one epoch's end to the next.

Their remedy, iterative freezing: every `EVERY` steps each value's integer on the file's grid (the grid of
`qat.weight_grid`, `qat.table_grid`) is compared with the check before; a change opposite to the value's last
change is an oscillation. An exponential moving average of oscillations per check (`MOMENTUM`) above the threshold
freezes the value at its moving-average integer, and every later step puts it back there (the optimizer's move is
undone). Decoder weights and the tables that are parameters (HiNeRV's grids) are both tracked. Checking every few
steps instead of every step (Nagel et al. count per step) keeps the cost down.

All tracked values live in one flat buffer (`_Layout`): a check is some 60 operations whatever the number of
tensors, and holding the frozen values three. Per tensor, as first written, a check was about 50 operations for each
of a network's dozens of tensors: on an H200 its kernel launches took 73 of a 531 s encode. Nothing here waits for
the device.
"""
from __future__ import annotations

import math
import time

import torch

from .qat import depth_of, table_scale, weight_scale
from .quantize import embedding_levels, weight_levels

EVERY = 4                # steps between checks
MOMENTUM = 0.96          # per check, of the oscillation frequency and the integer's moving average (~100 steps)
FIELDS = ("prev", "direction", "frequency", "average", "frozen", "value")


class _Layout:
    """Where each tracked tensor lies in one flat buffer, and each value's row: an output channel of a weight
    (the whole tensor for a 1-D weight), a channel of a table. A row is what shares a scale on the file's grid."""

    def __init__(self, entries: list[tuple[str, str, torch.Tensor, bool]], bits):
        self.keys = [key for key, _, _, _ in entries]
        self.shapes = [p.shape for _, _, p, _ in entries]
        self.sizes = [p.numel() for _, _, p, _ in entries]
        self.signature = _signature(entries, bits)
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

    def grid(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(integers, scale, offset) of every value, exactly as `qat.weight_grid` / `qat.table_grid` give them
        tensor by tensor (a row's largest magnitude is the larger of its max and minus its min)."""
        rows = self.levels.numel()
        hi = flat.new_full((rows,), -math.inf).scatter_reduce_(0, self.row, flat, "amax")
        lo = flat.new_full((rows,), math.inf).scatter_reduce_(0, self.row, flat, "amin")
        levels = self.levels.to(flat.dtype)
        table_step, table_lo = table_scale(lo, hi, levels)
        scale = torch.where(self.weight_row, weight_scale(torch.maximum(hi, -lo), self.levels).to(flat.dtype),
                            table_step)
        offset = torch.where(self.weight_row, torch.zeros_like(table_lo), table_lo)
        lower = torch.where(self.weight_row, -levels, torch.zeros_like(levels))
        scale, offset = scale[self.row], offset[self.row]
        q = torch.round((flat - offset) / scale).clamp(lower[self.row], levels[self.row])
        return q, scale, offset

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of `flat`, one per tensor, in its shape."""
        return [part.view(shape) for part, shape in zip(flat.split(self.sizes), self.shapes)]


class OscillationFreezer:
    """`threshold`: oscillations per check (their moving average) at which a value is frozen."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.steps = 0
        self.seconds = 0.0      # host time spent here (launching its kernels: on a GPU, time the device may idle)
        self.layout: _Layout | None = None
        self.flat: dict[str, torch.Tensor] = {}            # FIELDS, each over every tracked value
        self.loaded: dict[str, dict[str, torch.Tensor]] = {}   # a checkpoint's state, until the first step

    @torch.no_grad()
    def step(self, decoder: torch.nn.Module, tables: dict[str, torch.Tensor], bits) -> None:
        """After an optimizer step: hold the frozen values; every `EVERY` steps, count oscillations and freeze the
        new oscillators."""
        started = time.perf_counter()
        check = self.steps % EVERY == 0
        self.steps += 1
        entries = [(f"decoder.{name}", name, p, True) for name, p in decoder.named_parameters()]
        entries += [(f"table.{name}", name, p, False) for name, p in tables.items()]
        params = [p for _, _, p, _ in entries]
        if self.layout is None or self.layout.signature != _signature(entries, bits):
            self.layout = _Layout(entries, bits)
            if self.loaded:
                self.flat = {f: torch.cat([self.loaded[key][f].reshape(-1) for key in self.layout.keys])
                             for f in FIELDS}
                self.loaded = {}
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        if self.flat:
            flat = torch.where(self.flat["frozen"], self.flat["value"], flat)
        if check:
            flat = self._check(flat)
        if self.flat:
            torch._foreach_copy_(params, self.layout.split(flat))
        self.seconds += time.perf_counter() - started

    def _check(self, flat: torch.Tensor) -> torch.Tensor:
        """Count oscillations from the values' integers on the file's grid; freeze the new oscillators. Returns the
        values with every frozen one held."""
        q, scale, offset = self.layout.grid(flat)
        st = self.flat
        if not st:
            self.flat = {"prev": q, "direction": torch.zeros_like(q), "frequency": torch.zeros_like(q),
                         "average": q.clone(), "frozen": torch.zeros_like(q, dtype=torch.bool),
                         "value": flat.clone()}
            return flat
        change = torch.sign(q - st["prev"])
        oscillated = (change != 0) & (change == -st["direction"])
        torch.where(change != 0, change, st["direction"], out=st["direction"])
        st["frequency"].mul_(MOMENTUM).add_(oscillated.to(q.dtype), alpha=1 - MOMENTUM)
        st["average"].mul_(MOMENTUM).add_(q, alpha=1 - MOMENTUM)
        st["prev"].copy_(q)
        new = (st["frequency"] > self.threshold) & ~st["frozen"]
        torch.where(new, torch.round(st["average"]) * scale + offset, st["value"], out=st["value"])
        st["frozen"] |= new
        return torch.where(st["frozen"], st["value"], flat)

    @property
    def state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per tensor (`decoder.NAME`, `table.NAME`), its FIELDS in its shape: views of the flat state."""
        if not self.flat:
            return self.loaded
        views = {f: self.layout.split(t) for f, t in self.flat.items()}
        return {key: {f: views[f][i] for f in FIELDS} for i, key in enumerate(self.layout.keys)}

    def frozen(self) -> int:
        if self.flat:
            return int(self.flat["frozen"].sum())       # one read-back, not one per tensor
        return sum(int(st["frozen"].sum()) for st in self.loaded.values())

    def state_dict(self) -> dict:
        return {"steps": self.steps,
                "tensors": {key: {f: t.clone() for f, t in st.items()} for key, st in self.state.items()}}

    def load_state_dict(self, state: dict, device=None) -> None:
        self.steps = int(state["steps"])
        self.layout, self.flat = None, {}
        self.loaded = {key: {f: t.to(device).clone() for f, t in st.items()} for key, st in state["tensors"].items()}


def _signature(entries, bits) -> tuple:
    """What a layout depends on: per tensor, its key, shape, largest symbol on the file's grid and number of rows."""
    out = []
    for key, name, p, is_weight in entries:
        if is_weight:
            out.append((key, tuple(p.shape), weight_levels(depth_of(bits, name)), p.shape[0] if p.dim() >= 2 else 1))
        else:
            out.append((key, tuple(p.shape), embedding_levels(depth_of(bits, name)), p.shape[1]))
    return tuple(out)
