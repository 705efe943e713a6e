"""Rate-aware training: learned quantization steps and entropy models, and the rate term of D + lambda * R.

`RateModel` holds, for every weight tensor of two or more dimensions and every learnable input table, a learned
quantization step (per tensor, in log2) and a zero-mean Laplace model per row (a weight's output channel, a
table's channel): the scale index q of `compress.rowcoder`, the coder that writes them to the file. In training:
- the decoder and the tables run on their values rounded to the step (straight-through for the values, and
  the step learns through the rounding as in LSQ: d(step * round(x / step)) / d step = round(x / step) - x / step);
- the rate is the bits the file's coder would spend on them: -log2 P(j) of the two-sided geometric
  distribution over [-M, M] that q describes, on the symbols plus uniform noise (differentiable in the values
  and the step); the same formula on the rounded symbols (`estimate_bits`) is the training's estimate of the
  coded size, and the real coder matches it within a fraction of a percent (`tests/test_learned.py`);
- each row's q is refitted after every step to its rounded symbols (the maximum-likelihood scale, as the
  coder's own fit in `entropy`), so that the model the rate sees is the one the file will carry.

`RateTerm` is the hook the trainer calls (`fit.Trainer`): it starts the model when the fine-tuning after pruning
begins (or earlier in the main phase, `rate_from`, on noisy values until the fine-tuning), adds lambda * R (bits per
pixel of the video) to the loss, and after each step moves lambda so that the estimated file lands on the rate
control's target (a multiplicative controller on the estimate's relative error).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn

from . import rowcoder
from .qat import fake_quant_weight
from .quantize import MIN_SCALE, as_stored, embedding_levels, weight_levels

LN2 = math.log(2.0)
LOG2E = 1 / LN2
GAUSS_TERMS = 8           # terms of a narrow Gaussian row's normaliser summed on each side
LAMBDA_GAIN = 0.05        # per step: lambda *= exp(gain * (estimate / target - 1))
# And every step moves by this many octaves times the estimate's relative error: the distortion's pull on the steps
# is weak, so without it the rate drifts under the target (measured on the CPU: 5 % in 100 steps, lambda falling 5x).
STEP_GAIN = 1.0
LAMBDA_RANGE = 1e4        # lambda stays within [lambda0 / RANGE, lambda0 * RANGE]
STEP_LR_SCALE = 25.0      # learning rate of the log2 steps relative to the weights'
# The rate term (weighted by this factor), the row models' refit and lambda's move come every this many steps: the
# rate's gradient changes slowly, and NVRC found every 8th step costs nothing visible while saving step time.
RATE_EVERY = 4
CALIBRATION_OCTAVES, CALIBRATION_STEPS = 8.0, 16     # the search of the steps' starting factor: range, halvings
TABLE_AXIS, WEIGHT_AXIS = 1, 0
SAFE_Q = 128.0     # a scale index every formula takes without overflow (for the rows of another kind)


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def rows(t: torch.Tensor, axis: int) -> torch.Tensor:
    return t.movedim(axis, 0).flatten(1)


class RowStats(NamedTuple):
    """What the rate of a row depends on besides its model, each (R,) over R rows."""
    n: torch.Tensor          # values in the row
    abs_sum: torch.Tensor    # sum of |y|
    sq_sum: torch.Tensor     # sum of y**2
    zeros: torch.Tensor      # values that round to 0 (no gradient)


def row_stats(y: torch.Tensor) -> RowStats:
    """The stats of each row of `y` (R, n)."""
    zeros = (torch.round(y.detach()) == 0).sum(1).to(y.dtype)
    return RowStats(torch.full_like(zeros, y.shape[1]), y.abs().sum(1), y.square().sum(1), zeros)


def segment_stats(y: torch.Tensor, row_of: torch.Tensor, row_length: torch.Tensor) -> RowStats:
    """The stats of rows laid end to end in `y` (N,), value k in row `row_of[k]`, row r `row_length[r]` long."""
    def total(v):
        return torch.zeros(len(row_length), dtype=y.dtype, device=y.device).index_add(0, row_of, v)
    return RowStats(row_length.to(y.dtype), total(y.abs()), total(y.square()),
                    total((torch.round(y.detach()) == 0).to(y.dtype)))


def bits_of_rows(kind, q: torch.Tensor, m: torch.Tensor, s: torch.Tensor, st: RowStats) -> torch.Tensor:
    """The bits of each row (R,) under its model: `kind` (`rowcoder.KINDS`, one for all rows or one per row), scale
    index `q`, symbols in [-m, m] (m per row, or one), spike weight `s` (`spike_weight`; ignored where the kind has
    none): n * log2(Z + s) + sum of cost(y) - n0 * log2(1 + s), where cost(j) = -log2 of the weight relative to the
    peak (Laplace: slope * |j|, slope = 2**(q/8 - 16); Gaussian: c * j**2, c = 2**(q/8 - 32)), Z the sum of 2**-cost
    over [-m, m], s the spike's weight relative to the peak, n0 the row's zero symbols. Rows with m = 0 cost 0."""
    dtype = st.abs_sum.dtype
    kind = torch.as_tensor(kind, device=q.device)
    m = torch.as_tensor(m, dtype=dtype, device=q.device)
    laplace = kind & 1 == rowcoder.LAPLACE
    q = q.to(dtype)
    # Each kind's formula on every row, with a harmless q where the row is of the other kind (no inf to leak into
    # the gradient through `where`).
    q_lap, q_gauss = torch.where(laplace, q, SAFE_Q), torch.where(laplace, SAFE_Q, q)
    slope = torch.exp2(q_lap / 8 - 16)
    a = slope * LN2
    norm_lap = (1 + torch.exp(-a) - 2 * torch.exp(-a * (m + 1))) / -torch.expm1(-a)
    norm_gauss, c = gaussian_normaliser(q_gauss, m)
    norm = torch.where(laplace, norm_lap, norm_gauss)
    cost = torch.where(laplace, slope * st.abs_sum, c * st.sq_sum)
    s = torch.where(kind >= 2, torch.as_tensor(s, dtype=dtype, device=q.device), 0.0)
    bits = st.n * torch.log2(norm.clamp_min(1.0) + s) + cost - st.zeros * torch.log2(1 + s)
    return torch.where(m > 0, bits, torch.zeros_like(bits))


def row_bits(kind: int, y: torch.Tensor, q: torch.Tensor, m, z=0) -> torch.Tensor:
    """Bits of the rows `y` (R, n) (symbols, or symbols plus noise) under row models `q` (R,) of `kind`
    over [-m, m], with the tensor's spike `z` for the kinds that have one (`bits_of_rows`)."""
    return bits_of_rows(kind, q, m, spike_weight(z, y), row_stats(y)).sum()


def gaussian_normaliser(q: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, c) of Gaussian rows (m: one, or per row): Z summed term by term for narrow rows (variance under one step:
    terms beyond |j| = 8 are below 2**-46) and integrated for wide ones (where the sum and the integral differ by
    about exp(-2 pi**2 variance))."""
    c = torch.exp2(q / 8 - 32)
    a = c * LN2
    j = torch.arange(GAUSS_TERMS + 1, dtype=q.dtype, device=q.device)
    z_sum = 2 * (torch.exp(-a[:, None] * j * j) * (j <= m[..., None])).sum(1) - 1
    z_int = torch.sqrt(math.pi / a) * torch.erf((m + 0.5) * torch.sqrt(a))
    return torch.where(a > 0.5, z_sum, z_int), c


def spike_weight(z, like: torch.Tensor) -> torch.Tensor:
    """The spike's extra weight at zero relative to the peak weight, 2**(z/16 - 4) (`entropy._SPIKE`: 2**(28 + z/16)
    on a peak of 2**32)."""
    return torch.exp2(torch.as_tensor(z, dtype=like.dtype, device=like.device) / 16 - 4)


def fit_z(symbol_rows: torch.Tensor, q: torch.Tensor, kind: int) -> torch.Tensor:
    """The tensor's spike z (0-255) that minimises the rate of its rows under their q (all z at once)."""
    y = symbol_rows.float()
    rows_of = torch.zeros(y.shape[0], dtype=torch.int64, device=y.device)
    return z_from_stats(kind, q, y.abs().max(), row_stats(y), rows_of, 1)[0]


def z_from_stats(kind, q: torch.Tensor, m: torch.Tensor, st: RowStats, tensor_of: torch.Tensor,
                 tensors: int) -> torch.Tensor:
    """Each tensor's spike z (0-255) minimising the rate of its rows (row r in tensor `tensor_of[r]`), given the
    rows' q and m (`bits_of_rows` with a spike, less the cost of the symbols, which z does not change)."""
    no_cost = st._replace(abs_sum=torch.zeros_like(st.abs_sum), sq_sum=torch.zeros_like(st.sq_sum))
    s = torch.exp2(torch.arange(256, dtype=st.n.dtype, device=st.n.device) / 16 - 4)[:, None]      # (256, 1)
    kind = torch.as_tensor(kind, device=q.device) | 2     # (the spike's kinds)
    per_row = bits_of_rows(kind, q, m, s, no_cost).T      # (R, 256)
    per_tensor = torch.zeros(tensors, 256, dtype=per_row.dtype, device=per_row.device).index_add(0, tensor_of, per_row)
    return torch.argmin(per_tensor, 1).to(st.n.dtype)


def temporal_delta(t: torch.Tensor) -> torch.Tensor:
    """Entry 0, then each entry minus the one before (along the first axis)."""
    return torch.cat([t[:1], t[1:] - t[:-1]])


def fit_q(symbol_rows: torch.Tensor, kind: int = 0) -> torch.Tensor:
    """Each row's maximum-likelihood scale index for its integer symbols (`q_from_stats`)."""
    return q_from_stats(kind, row_stats(symbol_rows.float()))


def q_from_stats(kind, st: RowStats) -> torch.Tensor:
    """Each row's maximum-likelihood scale index (as `entropy._laplace_q`, `_gauss_q`; with a spike, fitted to the
    nonzero symbols, the spike taking the zeros' excess); `kind`: one for all rows or one per row."""
    kind = torch.as_tensor(kind, device=st.n.device)
    spike, laplace = kind >= 2, kind & 1 == rowcoder.LAPLACE
    count = torch.where(spike, (st.n - st.zeros).clamp_min(1), st.n.clamp_min(1))
    mean_abs, mean_sq = st.abs_sum / count, st.sq_sum / count
    # Laplace with a spike: |j| given j != 0 is geometric on 1, 2, ...: mean 1 / (1 - r). (At most 16 bits a step:
    # where every nonzero is +-1 the fit is unbounded, and the coder's probabilities have a floor of 2**-24 that the
    # rate formula does not.)
    slope_spike = (-torch.log2((1 - 1 / mean_abs).clamp_min(1e-30))).clamp(max=16.0)
    r = (torch.sqrt(1 + mean_abs * mean_abs) - 1) / mean_abs.clamp_min(1e-12)
    slope_plain = -torch.log2(r.clamp(1e-30, 1 - 1e-7))
    q_lap = torch.round(8 * (torch.log2(torch.where(spike, slope_spike, slope_plain)) + 16))
    q_gauss = torch.round(8 * (torch.log2(LOG2E / (2 * mean_sq.clamp_min(1e-12))) + 32))
    q = torch.where(laplace, q_lap, q_gauss).clamp(0, rowcoder.Q_MAX)
    mean = torch.where(laplace, mean_abs, mean_sq)
    return torch.where(mean > 0, q, torch.full_like(q, rowcoder.Q_MAX))


class RateModel(nn.Module):
    """Learned steps and per-row Laplace models of the decoder's weight tensors (2+ dimensions) and the tables."""

    def __init__(self, weights: dict[str, torch.Tensor], tables: dict[str, torch.Tensor], bits: float):
        super().__init__()
        self.weight_names = [n for n, t in weights.items() if t.dim() >= 2]
        self.table_names = list(tables)
        self.log_step = nn.ParameterList()
        self.register_buffer("lam", torch.zeros(()))
        self.register_buffer("lam0", torch.zeros(()))   # the first lambda: the controller's range is around it
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))     # training steps taken with the model
        for n in self.weight_names:
            peak = weights[n].detach().abs().max().clamp_min(1e-8)
            self.log_step.append(nn.Parameter(torch.log2(peak / weight_levels(bits)).float().reshape(())))
        for n in self.table_names:
            t = tables[n].detach()
            span = (t.max() - t.min()).clamp_min(1e-8)
            self.log_step.append(nn.Parameter(torch.log2(span / embedding_levels(bits)).float().reshape(())))
        for i, t in enumerate([weights[n] for n in self.weight_names] + [tables[n] for n in self.table_names]):
            axis = WEIGHT_AXIS if i < len(self.weight_names) else TABLE_AXIS
            self.register_buffer(f"q{i}", torch.full((t.shape[axis],), float(rowcoder.Q_MAX), device=t.device))
            # Tables: coded as their temporal differences (1) or as they are (0), whichever the estimate prefers;
            # and each tensor's distribution (`rowcoder.LAPLACE` or `GAUSSIAN`), the same way.
            self.register_buffer(f"delta{i}", torch.zeros((), device=t.device))
            self.register_buffer(f"kind{i}", torch.zeros((), device=t.device))
            self.register_buffer(f"z{i}", torch.zeros((), device=t.device))     # the spike, for the kinds with one
        # Every modelled tensor's rows laid end to end, so that the rate and the models' fit are computed for all at
        # once (a few dozen operations, not a few dozen a tensor: `bits` runs in the training step, `refit` after it).
        shapes = [(t.shape[axis], t.numel() // max(1, t.shape[axis])) for _, t, axis in self.items(weights, tables)]
        self.rows_per_tensor = [r for r, _ in shapes]
        row_length = torch.repeat_interleave(torch.tensor([n for _, n in shapes]), torch.tensor(self.rows_per_tensor))
        self.register_buffer("tensor_of_row", torch.repeat_interleave(torch.arange(len(shapes)),
                                                                      torch.tensor(self.rows_per_tensor)),
                             persistent=False)
        self.register_buffer("row_of_value", torch.repeat_interleave(torch.arange(len(row_length)), row_length),
                             persistent=False)
        self.register_buffer("row_length", row_length.float(), persistent=False)
        self.register_buffer("kind_of_row", torch.zeros(len(row_length), dtype=torch.int64), persistent=False)
        self.to(next(iter(weights.values())).device)
        self.sync_flags()
        # Values plus uniform noise of one step in training steps instead of rounded (the main phase); evaluations
        # (no gradient) always round.
        self.noisy = False

    def _index(self, name: str, table: bool) -> int:
        return len(self.weight_names) + self.table_names.index(name) if table else self.weight_names.index(name)

    def step(self, i: int) -> torch.Tensor:
        return self.all_steps()[i]

    def q(self, i: int) -> torch.Tensor:
        return getattr(self, f"q{i}")

    def delta(self, i: int) -> bool:
        return self._deltas[i]

    def coded(self, i: int, y: torch.Tensor) -> torch.Tensor:
        """What the stream codes of a tensor's (scaled) values `y`: them, or their temporal differences."""
        return temporal_delta(y) if self.delta(i) else y

    def all_steps(self) -> torch.Tensor:
        """Every tensor's step (one operation for all: the training step's graph stays small), no finer than the
        file can store (`learned_tensor`): a step that underflowed float16 made 0 / 0 of pruned weights."""
        return torch.exp2(torch.stack(list(self.log_step))).clamp_min(MIN_SCALE)

    def stored_steps(self) -> torch.Tensor:
        """Every tensor's step as the file stores it (float16, `learned_tensor`), straight-through."""
        steps = self.all_steps()
        return steps + (as_stored(steps) - steps).detach()

    def quantize(self, i: int, t: torch.Tensor, stored_steps: torch.Tensor | None = None) -> torch.Tensor:
        """`t` on tensor i's grid (`stored_steps`: `stored_steps()`, computed once for many tensors)."""
        step = (self.stored_steps() if stored_steps is None else stored_steps)[i]
        if self.noisy and torch.is_grad_enabled():
            return t + (torch.rand_like(t) - 0.5) * step
        return round_ste(t / step).clamp(-rowcoder.MAX_M, rowcoder.MAX_M) * step

    def items(self, weights: dict, tables: dict):
        """(index, tensor, axis) of every modelled tensor."""
        for n in self.weight_names:
            yield self._index(n, False), weights[n], WEIGHT_AXIS
        for n in self.table_names:
            yield self._index(n, True), tables[n], TABLE_AXIS

    def bits(self, weights: dict, tables: dict, noise: bool) -> torch.Tensor:
        """The rate of every modelled tensor, in bits: on the symbols plus uniform noise, or on the symbols."""
        values, peaks, steps = [], [], self.all_steps()
        for i, t, axis in self.items(weights, tables):
            y = t / steps[i]
            peaks.append(self.coded(i, torch.round(y.detach()).clamp(-rowcoder.MAX_M, rowcoder.MAX_M)).abs().max())
            y = y + torch.rand_like(y) - 0.5 if noise else round_ste(y)
            values.append(rows(self.coded(i, y), axis).reshape(-1))
        y = torch.cat(values)
        st = segment_stats(y, self.row_of_value, self.row_length)
        m = torch.stack(peaks)[self.tensor_of_row]
        return bits_of_rows(self.kind_of_row, self.all_q(), m, self.spike_of_row(y), st).sum()

    def all_q(self) -> torch.Tensor:
        return torch.cat([self.q(i) for i in range(len(self.log_step))])

    def spike_of_row(self, like: torch.Tensor) -> torch.Tensor:
        return spike_weight(torch.stack([getattr(self, f"z{i}") for i in range(len(self.log_step))]),
                            like)[self.tensor_of_row]

    @torch.no_grad()
    def refit(self, weights: dict, tables: dict) -> None:
        """Each row's q (and each spiked tensor's z), fitted to its rounded symbols."""
        steps = self.all_steps()
        y = torch.cat([rows(self.coded(i, torch.round(t / steps[i])), axis).reshape(-1).float()
                       for i, t, axis in self.items(weights, tables)])
        st = segment_stats(y, self.row_of_value, self.row_length)
        q = q_from_stats(self.kind_of_row, st)
        n = len(self.log_step)
        torch._foreach_copy_([self.q(i) for i in range(n)], list(q.split(self.rows_per_tensor)))
        spiked = [i for i in range(n) if self.kind(i) >= 2]
        if spiked:
            row_peak = torch.zeros_like(q).scatter_reduce(0, self.row_of_value, y.abs(), "amax")
            peak = torch.zeros(n, dtype=q.dtype, device=q.device).scatter_reduce(0, self.tensor_of_row, row_peak,
                                                                                  "amax")
            z = z_from_stats(self.kind_of_row, q, peak[self.tensor_of_row], st, self.tensor_of_row, n)
            torch._foreach_copy_([getattr(self, f"z{i}") for i in spiked], list(z[spiked]))

    @torch.no_grad()
    def calibrate(self, weights: dict, tables: dict, target_bits: float) -> None:
        """Move every step by one factor so that the estimate starts on `target_bits`: the distortion's pull on the
        steps is weak next to the rate's, so training should start where the file has to end, not far from it."""
        start = [p.detach().clone() for p in self.log_step]

        def bits_at(shift: float) -> float:
            for p, p0 in zip(self.log_step, start):
                p.copy_(p0 + shift)
            self.refit(weights, tables)
            return float(self.bits(weights, tables, noise=False))
        lo, hi = -CALIBRATION_OCTAVES, CALIBRATION_OCTAVES       # log2 of the factor; the estimate falls with it
        for _ in range(CALIBRATION_STEPS):
            mid = (lo + hi) / 2
            if bits_at(mid) > target_bits:
                lo = mid
            else:
                hi = mid
        bits_at(hi)

    @torch.no_grad()
    def choose_models(self, weights: dict, tables: dict) -> None:
        """Each tensor's distribution, and for each table of more than one entry whether to code its temporal
        differences: whichever the estimate finds cheapest."""
        for i, t, axis in self.items(weights, tables):
            symbols, costs = torch.round(t / self.step(i)), {}
            deltas = (False, True) if axis == TABLE_AXIS and t.shape[0] > 1 else (False,)
            for delta in deltas:
                r = rows(temporal_delta(symbols) if delta else symbols, axis)
                for kind in rowcoder.KINDS:
                    q = fit_q(r, kind)
                    z = fit_z(r, q, kind) if kind >= 2 else 0
                    costs[(delta, kind)] = float(row_bits(kind, r, q, r.abs().max(), z))
            delta, kind = min(costs, key=costs.get)
            getattr(self, f"delta{i}").fill_(float(delta))
            getattr(self, f"kind{i}").fill_(float(kind))
        self.sync_flags()
        self.refit(weights, tables)

    def sync_flags(self) -> None:
        """Read the flags once (the training step must not wait on the device for them)."""
        n = len(self.log_step)
        self._deltas = {i: bool(getattr(self, f"delta{i}")) for i in range(n)}
        self._kinds = {i: int(getattr(self, f"kind{i}")) for i in range(n)}
        kinds = torch.tensor([self._kinds[i] for i in range(n)], device=self.tensor_of_row.device)
        self.kind_of_row.copy_(kinds[self.tensor_of_row])

    def kind(self, i: int) -> int:
        return self._kinds[i]

    @torch.no_grad()
    def learned_tensor(self, i: int, t: torch.Tensor, axis: int, step_scale: float = 1.0) -> rowcoder.LearnedTensor:
        """The tensor as the file holds it: symbols at the float16 step (times `step_scale`), q refitted to them
        where the step was scaled (kept as trained otherwise)."""
        step = np.array([float(self.step(i)) * step_scale], dtype=np.float32).astype(np.float16)
        step = np.maximum(step, np.float16(MIN_SCALE))
        t = t.detach().float().cpu()
        symbols = torch.round(t / float(step[0])).clamp(-rowcoder.MAX_M - 1, rowcoder.MAX_M + 1)
        q, z = self.q(i).detach().cpu(), getattr(self, f"z{i}").detach().cpu()
        if step_scale != 1.0:
            r = rows(self.coded(i, symbols), axis)
            q = fit_q(r, self.kind(i))
            z = fit_z(r, q, self.kind(i)) if self.kind(i) >= 2 else z
        return rowcoder.LearnedTensor(symbols.to(torch.int64).numpy(), step, q.to(torch.int64).numpy(), axis,
                                      self.delta(i), self.kind(i), int(z))


def estimate_bits(t: rowcoder.LearnedTensor) -> float:
    """The training's rate formula on a tensor as the file holds it (bits)."""
    r = torch.from_numpy(t.rows()).double()
    return float(row_bits(t.kind, r, torch.from_numpy(t.q), r.abs().max() if r.numel() else 0, t.z))


class RateTerm:
    """The trainer's hook for D + lambda * R during the fine-tuning after pruning (or from `rate_from`).

    `pixels`: width x height x frames of the video (R is in bits per pixel); `target_bytes`: the payload the
    file should have (None: lambda stays at its first value); `lam`: the first lambda (None: where a 1 % change of
    rate weighs as a 1 % change of distortion: the loss's change for 1 % of distortion over 1 % of the target bpp);
    `log_loss`: the loss is a log10 of the MSE (4:2:0 coding's, `planeloss`), whose change for 1 % of distortion is
    0.01 / ln 10 whatever the distortion (for the MSE itself it is 1 % of the MSE)."""

    def __init__(self, pixels: int, target_bytes: int | None, lam: float | None = None, log_loss: bool = False):
        self.pixels, self.target_bytes, self.lam0, self.log_loss = pixels, target_bytes, lam, log_loss
        self.model: RateModel | None = None
        self.bits = None            # the bit depth of what the model does not cover (1-D tensors)
        self.other_bytes = 0.0      # bytes of the file's payload other than the modelled symbols (`retarget`)
        self.target_bits = None
        self.steps, self.due = 0, True     # steps taken; whether this step takes the rate term

    def start(self, decoder: nn.Module, tables: dict[str, torch.Tensor], bits: float, distortion: float,
              noisy: bool = False) -> None:
        """`noisy`: the model's values carry noise instead of rounding (`RateModel.noisy`) until `harden`."""
        self.bits = bits
        weights = dict(decoder.named_parameters())
        self.model = RateModel(weights, tables, bits)
        self.model.noisy = noisy
        self.model.choose_models(weights, tables)
        if self.target_bytes is not None:
            self.retarget(decoder, tables)
            self.model.calibrate(weights, tables, self.target_bits)
        with torch.no_grad():
            bpp = (self.target_bits or float(self.model.bits(weights, tables, noise=False))) / self.pixels
        per_percent = 1 / math.log(10) if self.log_loss else distortion
        lam = self.lam0 if self.lam0 is not None else per_percent / max(bpp, 1e-9)
        self.model.lam.fill_(lam)
        self.model.lam0.fill_(lam)

    @torch.no_grad()
    def retarget(self, decoder: nn.Module, tables: dict[str, torch.Tensor]) -> None:
        """The modelled symbols' share of the target: the target less the rest of the payload as it codes now
        (biases and norms, side information), which changes as the network trains."""
        if self.target_bytes is None:
            return
        from .learned_compress import compress      # (it imports this module)
        state = {k: v.detach().float().cpu() for k, v in decoder.state_dict().items()}
        self.other_bytes = compress(state, {k: v.detach().float().cpu() for k, v in tables.items()},
                                    self.model, self.bits).rest_bytes
        self.target_bits = max(1.0, 8 * (self.target_bytes - self.other_bytes))

    def load_state(self, decoder: nn.Module, tables: dict, bits: float, state: dict, noisy: bool = False) -> None:
        """Start from a checkpoint's state (`self.model.state_dict()`)."""
        self.start(decoder, tables, bits, 1.0, noisy)
        self.model.load_state_dict(state)
        self.model.sync_flags()
        self.steps = int(self.model.steps)
        self.due = self.steps % RATE_EVERY == 0

    @torch.no_grad()
    def harden(self, decoder: nn.Module, tables: dict) -> None:
        """From noisy to rounded values (the fine-tuning after pruning), each tensor's model chosen again for the
        pruned weights and the target's share retaken; steps and lambda go on as trained."""
        self.model.noisy = False
        self.model.choose_models(dict(decoder.named_parameters()), tables)
        self.retarget(decoder, tables)

    def param_group(self) -> dict:
        return {"params": list(self.model.parameters()), "lr_scale": STEP_LR_SCALE}

    def decoder_params(self, decoder: nn.Module) -> dict[str, torch.Tensor]:
        """The decoder's parameters as the file will hold them (`torch.func.functional_call`)."""
        m = self.model
        steps, out = m.stored_steps(), {}
        for n, p in decoder.named_parameters():
            if n in m.weight_names:
                out[n] = m.quantize(m._index(n, False), p, steps)
            elif m.noisy and torch.is_grad_enabled():
                # The main phase: the rest (biases, norms: a few hundred values) trains in float, as without the
                # rate term; the fine-tuning rounds it. (Rounding it here is most of the step's graph.)
                out[n] = p
            else:
                out[n] = fake_quant_weight(p, self.bits)
        return out

    def table_params(self, tables: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        m = self.model
        steps = m.stored_steps()
        return {prefix + n: m.quantize(m._index(n, True), t, steps) for n, t in tables.items()}

    def penalty(self, decoder: nn.Module, tables: dict) -> torch.Tensor:
        """RATE_EVERY * lambda * R on the steps that take it (R in bits per pixel of the video, with noise), else 0."""
        if not self.due:
            return 0.0
        bits = self.model.bits(dict(decoder.named_parameters()), tables, noise=True)
        return RATE_EVERY * self.model.lam * bits / self.pixels

    @torch.no_grad()
    def after_step(self, decoder: nn.Module, tables: dict) -> None:
        """Every RATE_EVERY steps: refit the row models, and move lambda and the steps towards the target (no host
        sync)."""
        self.steps += 1
        self.model.steps.add_(1)
        self.due = self.steps % RATE_EVERY == 0
        if not self.due:
            return
        weights = dict(decoder.named_parameters())
        self.model.refit(weights, tables)
        if self.target_bits is not None:
            estimate = self.model.bits(weights, tables, noise=False)
            lam = self.model.lam * torch.exp(RATE_EVERY * LAMBDA_GAIN * (estimate / self.target_bits - 1))
            torch._foreach_add_(list(self.model.log_step), STEP_GAIN * (estimate / self.target_bits - 1))
            lam0 = self.model.lam0
            self.model.lam.copy_(torch.minimum(torch.maximum(lam, lam0 / LAMBDA_RANGE), lam0 * LAMBDA_RANGE))

    @property
    def lam(self) -> float:
        return float(self.model.lam)
