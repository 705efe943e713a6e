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

All tracked values live in one flat buffer (`flatgrid.FlatGrid`): a check is some 60 operations whatever the number
of tensors, and holding the frozen values three. Per tensor, as first written, a check was about 50 operations for each
of a network's dozens of tensors: on an H200 its kernel launches took 73 of a 531 s encode. Nothing here waits for
the device.
"""
from __future__ import annotations

import time

import torch

from .flatgrid import FlatBuffer, FlatGrid, entries_of, grid_for

EVERY = 4                # steps between checks
MOMENTUM = 0.96          # per check, of the oscillation frequency and the integer's moving average (~100 steps)
FIELDS = ("prev", "direction", "frequency", "average", "frozen", "value")


class OscillationFreezer:
    """`threshold`: oscillations per check (their moving average) at which a value is frozen."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.steps = 0
        self.seconds = 0.0      # host time spent here (launching its kernels: on a GPU, time the device may idle)
        self.layout: FlatGrid | None = None
        self.values: FlatBuffer | None = None              # the tracked values, gathered
        self.flat: dict[str, torch.Tensor] = {}            # FIELDS, each over every tracked value
        self.loaded: dict[str, dict[str, torch.Tensor]] = {}   # a checkpoint's state, until the first step

    @torch.no_grad()
    def step(self, decoder: torch.nn.Module, tables: dict[str, torch.Tensor], bits) -> None:
        """After an optimizer step: hold the frozen values; every `EVERY` steps, count oscillations and freeze the
        new oscillators."""
        started = time.perf_counter()
        check = self.steps % EVERY == 0
        self.steps += 1
        entries = entries_of(decoder, tables)
        params = [p for _, _, p, _ in entries]
        layout, self.layout = self.layout, grid_for(self.layout, entries, bits)
        if self.layout is not layout:
            if self.loaded:
                self.flat = {f: torch.cat([self.loaded[key][f].reshape(-1) for key in self.layout.keys])
                             for f in FIELDS}
                self.loaded = {}
        if self.values is None or not self.values.fits(self.layout, params[0]):
            self.values = self.layout.buffer(params[0])
        flat = self.values.gather(params)
        if self.flat:
            torch.where(self.flat["frozen"], self.flat["value"], flat, out=flat)
        if check:
            self._check(flat)
        if self.flat:
            self.values.scatter(params)
        self.seconds += time.perf_counter() - started

    def _check(self, flat: torch.Tensor) -> None:
        """Count oscillations from the values' integers on the file's grid; freeze the new oscillators. Holds every
        frozen value in `flat`."""
        q, scale, offset = self.layout.grid(flat)
        st = self.flat
        if not st:
            self.flat = {"prev": q, "direction": torch.zeros_like(q), "frequency": torch.zeros_like(q),
                         "average": q.clone(), "frozen": torch.zeros_like(q, dtype=torch.bool),
                         "value": flat.clone()}
            return
        change = torch.sign(q - st["prev"])
        oscillated = (change != 0) & (change == -st["direction"])
        torch.where(change != 0, change, st["direction"], out=st["direction"])
        st["frequency"].mul_(MOMENTUM).add_(oscillated.to(q.dtype), alpha=1 - MOMENTUM)
        st["average"].mul_(MOMENTUM).add_(q, alpha=1 - MOMENTUM)
        st["prev"].copy_(q)
        new = (st["frequency"] > self.threshold) & ~st["frozen"]
        torch.where(new, torch.round(st["average"]) * scale + offset, st["value"], out=st["value"])
        st["frozen"] |= new
        torch.where(st["frozen"], st["value"], flat, out=flat)

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
        self.layout, self.flat, self.values = None, {}, None
        self.loaded = {key: {f: t.to(device).clone() for f, t in st.items()} for key, st in state["tensors"].items()}
