"""Freezing the values that oscillate in quantization-aware fine-tuning.

With the rounding in the loop and a straight-through gradient, a value that sits near a rounding threshold is
pushed across it and back, step after step, down to the smallest learning rates (Nagel et al., "Overcoming
Oscillations in Quantization-Aware Training", ICML 2022). Measured here (carphone, CPU): hundreds of values still
change their integer in the last fine-tuning epoch, where the learning rate is under 1e-6, and the quantized
network's quality swings by up to 1 dB from one epoch's end to the next.

Their remedy, iterative freezing: every `EVERY` steps each value's integer on the file's grid (`qat.weight_grid`,
`qat.table_grid`) is compared with the check before; a change opposite to the value's last change is an
oscillation. An exponential moving average of oscillations per check (`MOMENTUM`) above the threshold freezes the
value at its moving-average integer, and every later step puts it back there (the optimizer's move is undone).
Decoder weights and the tables that are parameters (HiNeRV's grids) are both tracked. Checking every few steps
instead of every step (Nagel et al. count per step) keeps the cost down: the check is some 50 small operations per
tensor; holding the frozen values, one. Nothing here waits for the device.
"""
from __future__ import annotations

import time

import torch

from .qat import depth_of, table_grid, weight_grid

EVERY = 4                # steps between checks
MOMENTUM = 0.96          # per check, of the oscillation frequency and the integer's moving average (~100 steps)


class OscillationFreezer:
    """`threshold`: oscillations per check (their moving average) at which a value is frozen."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.steps = 0
        self.seconds = 0.0      # host time spent here (launching its kernels: on a GPU, time the device may idle)
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self, decoder: torch.nn.Module, tables: dict[str, torch.Tensor], bits) -> None:
        """After an optimizer step: hold the frozen values; every `EVERY` steps, count oscillations and freeze the
        new oscillators."""
        started = time.perf_counter()
        check = self.steps % EVERY == 0
        self.steps += 1
        params = [(f"decoder.{name}", name, p, weight_grid) for name, p in decoder.named_parameters()]
        params += [(f"table.{name}", name, p, table_grid) for name, p in tables.items()]
        for key, name, p, grid in params:
            st = self.state.get(key)
            if st is not None:
                torch.where(st["frozen"], st["value"], p, out=p)
            if check:
                self._check(key, p, *grid(p, depth_of(bits, name)))
        self.seconds += time.perf_counter() - started

    def _check(self, key: str, p: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor) -> None:
        """Count `p`'s oscillations from its integers `q` on the grid (`scale`, `offset`); freeze the new oscillators."""
        st = self.state.get(key)
        if st is None:
            self.state[key] = {"prev": q, "direction": torch.zeros_like(q), "frequency": torch.zeros_like(q),
                               "average": q.clone(), "frozen": torch.zeros_like(q, dtype=torch.bool),
                               "value": p.detach().clone()}
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
        torch.where(st["frozen"], st["value"], p, out=p)

    def frozen(self) -> int:
        return sum(int(st["frozen"].sum()) for st in self.state.values())

    def state_dict(self) -> dict:
        return {"steps": self.steps,
                "tensors": {key: {f: t.clone() for f, t in st.items()} for key, st in self.state.items()}}

    def load_state_dict(self, state: dict, device=None) -> None:
        self.steps = int(state["steps"])
        self.state = {key: {f: t.to(device).clone() for f, t in st.items()} for key, st in state["tensors"].items()}
