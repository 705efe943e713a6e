"""A bit depth per group of tensors, chosen by rate-distortion inside rate control.

Rate control (`ratecontrol.compress_to_target`) finds one depth b for every tensor that lands the file on
its target. Not every tensor is worth the same bits: a head of a few hundred weights costs nothing and
colours every pixel, a wide stage holds most of the bytes. So the tensors are grouped (each input table;
the decoder's stem and first stage, each later stage, its head, any other branch) and each group's depth
may sit at b + one of OFFSETS. For every group and offset, with every other group at b, two figures are
measured: the group's coded bytes (R, the real packers) and the mean squared error of a few decoded frames
against the video (D, `Probe`: what the file would decode to). Taking both as sums over groups, the
offsets that give the least D for no more bytes than the single depth are picked by a Lagrangian search
(each group minimises dD + lambda * dR; lambda is bisected). Rate control then trims a common depth under
those offsets to land on the target again, and the choice is kept only if its probe error is below the
single depth's at no more bytes. After quantization-aware fine-tuning at the chosen depths, the file keeps
them (`compress_at_depths`): choosing again then would meet a network tuned for other depths.

The file needs nothing new: each tensor's symbols and scales already say all the decoder needs, whatever
their depth.
"""
from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F

from . import pack
from .quantize import quantize_embedding, quantize_weight
from .ratecontrol import Compressed, compress_as_trained, compress_to_target, depth

# A group's depth relative to the common one: a few steps each way (whole and half bits).
OFFSETS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)
PROBE_FRAMES = 8        # frames the distortion is measured on, evenly spaced over the segment
_STAGE = re.compile(r"^(?:stages|local)\.(\d+)\.")


def weight_group(name: str) -> str:
    """The group of a decoder tensor, by its name: stem (with stage 0), stage i, head, or other."""
    if name.startswith("head."):
        return "head"
    match = _STAGE.match(name)
    if name.startswith("stem.") or (match and match.group(1) == "0"):
        return "stage 0"
    return f"stage {match.group(1)}" if match else "other"


def groups_of(state_names, table_names) -> dict[str, list[str]]:
    """Groups by name: each table alone (by section name), the decoder's tensors by `weight_group`."""
    groups: dict[str, list[str]] = {name: [name] for name in table_names}
    for name in state_names:
        groups.setdefault(weight_group(name), []).append(name)
    return groups


class Probe:
    """Distortion of a decoder's state and tables: the mean squared error of PROBE_FRAMES decoded frames."""

    def __init__(self, arch, frames_u8: np.ndarray, device: torch.device, count: int = PROBE_FRAMES):
        from ..models import Decoder
        from ..models.dsnerv import decoder_inputs

        self.arch, self.frames, self.device = arch, frames_u8.shape[0], device
        idx = np.unique(np.linspace(0, self.frames - 1, min(count, self.frames)).round().astype(int))
        self.times = torch.as_tensor(idx, dtype=torch.float64)
        ref = torch.from_numpy(np.ascontiguousarray(frames_u8[idx])).permute(0, 3, 1, 2)
        self.ref = ref.to(device).float().div_(255.0)
        self.decoder = Decoder(arch).to(device).eval()
        self._inputs = decoder_inputs

    @torch.no_grad()
    def __call__(self, state: dict[str, torch.Tensor], tables: dict[str, torch.Tensor]) -> float:
        self.decoder.load_state_dict(state)
        total = 0.0
        for i, t in enumerate(self.times):     # a frame at a time: a HiNeRV-class frame holds gigabytes at 720p
            inputs = [x.to(self.device) for x in self._inputs(self.arch, tables, t.reshape(1), self.frames)]
            out = self.decoder(*inputs)[..., : self.ref.shape[-2], : self.ref.shape[-1]].float()
            total += F.mse_loss(out, self.ref[i:i + 1], reduction="sum").item()
        return total / self.ref.numel()


def _quantized(state, tables, name: str, bits: float):
    """Tensor or table `name` quantized as the file would hold it at `bits`."""
    return quantize_embedding(tables[name], bits) if name in tables else quantize_weight(state[name], bits)


def _coded(state, tables, names: list[str], bits: float) -> tuple[dict[str, torch.Tensor], int]:
    """(the tensors `names` as the file would hold them, their coded bytes) at `bits`: a table alone, or decoder
    tensors packed together."""
    qs = {name: _quantized(state, tables, name, bits) for name in names}
    size = len(pack.pack_embedding(qs[names[0]])) if names[0] in tables else len(pack.pack_weights(qs))
    return {name: q.dequantize() for name, q in qs.items()}, size


def choose_offsets(state, tables, bits: float, probe: Probe, offsets=OFFSETS) -> dict[str, float]:
    """Per tensor name (decoder state names, table section names): bits above `bits` (zero left out)."""
    groups = groups_of(state, tables)
    base = {g: _coded(state, tables, names, bits) for g, names in groups.items()}

    def held(group: str | None = None, values: dict | None = None) -> tuple[dict, dict]:
        every = {n: v for g, (vals, _) in base.items() for n, v in (values if g == group else vals).items()}
        return {n: every[n] for n in state}, {n: every[n] for n in tables}

    d0 = probe(*held())
    # Per group: (offset, dR bytes, dD) for offset 0 and each offset that changes the depth.
    options = {}
    for group, names in groups.items():
        rows = [(0.0, 0, 0.0)]
        for off in offsets:
            if depth(bits + off) == depth(bits):
                continue
            values, size = _coded(state, tables, names, depth(bits + off))
            rows.append((off, size - base[group][1], probe(*held(group, values)) - d0))
        options[group] = rows

    def pick(lam: float) -> tuple[dict, int]:
        chosen = {g: min(rows, key=lambda r: (r[2] + lam * r[1], r[1])) for g, rows in options.items()}
        return chosen, sum(r[1] for r in chosen.values())

    # The smallest lambda (D per byte) whose choice adds no bytes; a large enough one picks the fewest bytes.
    lo, hi = 0.0, 1.0
    for _ in range(60):
        if pick(hi)[1] <= 0:
            break
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if pick(mid)[1] > 0:
            lo = mid
        else:
            hi = mid
    chosen, _ = pick(hi)
    return {name: row[0] for g, row in chosen.items() if row[0] for name in groups[g]}


def dequantized(state, tables, packed: Compressed) -> tuple[dict, dict]:
    """The decoder state and tables as `packed` holds them."""
    def held(name):
        return _quantized(state, tables, name, packed.depth(name)).dequantize()
    return {n: held(n) for n in state}, {n: held(n) for n in tables}


def compress_rd(state, tables, bits: float, target_payload: int | None, probe: Probe,
                under: bool = False) -> Compressed:
    """`compress_to_target`, with a depth per group chosen by rate-distortion where that decodes better at no
    more bytes (`under`: as there)."""
    single = compress_to_target(state, tables, bits, target_payload, under=under)
    offsets = choose_offsets(state, tables, single.bits, probe)
    if not offsets:
        return single
    # The common depth under the offsets that fills the single depth's bytes (tolerance 0: the closest under).
    chosen = compress_to_target(state, tables, single.bits, single.payload_bytes, tolerance=0.0, offsets=offsets)
    if chosen.payload_bytes > single.payload_bytes:
        return single
    if probe(*dequantized(state, tables, chosen)) >= probe(*dequantized(state, tables, single)):
        return single
    return chosen


def compress_at_depths(state, tables, depths: float | dict[str, float],
                       target_payload: int | None) -> tuple[Compressed, int]:
    """The file of a network quantization-aware fine-tuned at `depths` (one for all, or one per tensor), and its
    payload at them: `compress_as_trained`, which keeps them; where it must move them, they move together (their
    differences stay)."""
    if not isinstance(depths, dict):
        return compress_as_trained(state, tables, depths, target_payload)
    ref = min(depths.values())
    offsets = {name: b - ref for name, b in depths.items() if b != ref}
    return compress_as_trained(state, tables, ref, target_payload, offsets)


def group_depths(packed: Compressed, state_names, table_names) -> dict[str, float]:
    """The depth of each group in `packed`, for reports."""
    return {g: round(packed.depth(names[0]), 3) for g, names in groups_of(state_names, table_names).items()}
