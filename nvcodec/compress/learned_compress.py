"""Section payloads from a network trained for rate (`compress.learned`): the learned steps and row models in
the file, landed on the byte target.

Every modelled tensor is quantized with its learned step and coded with its row models (`compress.rowcoder`),
unless the post-training coder (`compress.entropy`) codes the same symbols smaller: then that one is used, at
the same step (the decoded values are the same). The other tensors (biases, norms) are quantized and coded as
without rate-aware training, at the bit depth training used for them. If the file misses the target by more
than the tolerance, every learned step is scaled by one factor (searched like `ratecontrol`'s bit depth).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import entropy, pack, rowcoder
from .learned import TABLE_AXIS, WEIGHT_AXIS, RateModel, estimate_bits
from .quantize import QuantizedTensor, quantize_embedding, quantize_weight
from .ratecontrol import TOLERANCE, Compressed

STEP_SCALES = (0.25, 4.0)     # the range of the step factor searched to land on the target


@dataclass
class LearnedCompressed(Compressed):
    estimated_bytes: float = 0.0   # the training's estimate of the modelled tensors + the rest as coded
    rest_bytes: float = 0.0        # the payload's bytes other than the modelled tensors' symbols
    learned_tensors: int = 0       # tensors coded with the learned models (the others: the post-training coder)
    step_scale: float = 1.0


def _choose_weight(t: rowcoder.LearnedTensor):
    """The learned tensor, or the same symbols as a plain per-tensor one where `entropy` codes them smaller."""
    if np.abs(t.symbols).max(initial=0) > rowcoder.MAX_M:
        return QuantizedTensor(t.symbols.astype(np.int32), t.step, None, None)
    learned = rowcoder.coded_bits(t.rows(), t.q, t.kind, t.z)
    return t if learned <= entropy.estimate_bits(t.symbols) else QuantizedTensor(t.symbols.astype(np.int32),
                                                                                  t.step, None, None)


def _choose_table(t: rowcoder.LearnedTensor):
    channels = t.symbols.shape[TABLE_AXIS]
    plain = QuantizedTensor(t.symbols.astype(np.int32), np.repeat(t.step, channels),
                            np.zeros(channels, dtype=np.float16), TABLE_AXIS)
    if np.abs(t.symbols).max(initial=0) > rowcoder.MAX_M:
        return plain
    learned = len(pack.pack_embedding(t))
    return t if learned <= len(pack.pack_embedding(plain)) else plain


def compress(state: dict[str, torch.Tensor], tables: dict[str, torch.Tensor], model: RateModel, bits: float,
             step_scale: float = 1.0) -> LearnedCompressed:
    quantized, estimate, modelled = {}, 0.0, {}
    for name, t in state.items():
        if name in model.weight_names:
            lt = model.learned_tensor(model._index(name, False), t, WEIGHT_AXIS, step_scale)
            quantized[name] = _choose_weight(lt)
            modelled[name] = lt
        else:
            quantized[name] = quantize_weight(t, bits)
    sections = {"DECODER": pack.pack_weights(quantized)}
    for name, t in tables.items():
        if name not in model.table_names:       # computed by encoders (DNeRV, HNeRV): not trained as parameters
            sections[name] = pack.pack_embedding(quantize_embedding(t, bits))
            continue
        lt = model.learned_tensor(model._index(name, True), t, TABLE_AXIS, step_scale)
        sections[name] = pack.pack_embedding(_choose_table(lt))
        modelled[name] = lt
    for lt in modelled.values():
        estimate += estimate_bits(lt) / 8
    coded = sum(isinstance(q, rowcoder.LearnedTensor) for q in quantized.values())
    learned_tables = sum(s[0] == 2 for n, s in sections.items() if n != "DECODER")
    # The estimate replaces the coded bytes of the modelled symbols; the rest of the payload is counted as coded.
    rest = sum(len(v) for v in sections.values()) - _symbol_bytes(quantized, sections, tables, model)
    return LearnedCompressed(sections, bits, estimated_bytes=estimate + rest, rest_bytes=rest,
                             learned_tensors=coded + learned_tables, step_scale=step_scale)


def _symbol_bytes(quantized: dict, sections: dict, tables: dict, model: RateModel) -> float:
    """Bytes the file spends on the modelled tensors' symbols (their streams and blobs, without side information)."""
    learned = [q.coding() for q in quantized.values() if isinstance(q, rowcoder.LearnedTensor)]
    total = len(rowcoder.pack(learned)) - _side_bytes(learned) if learned else 0
    plain = [q for n, q in quantized.items() if not isinstance(q, rowcoder.LearnedTensor) and q.symbols.ndim >= 2]
    total += sum(entropy.estimate_bits(q.symbols) / 8 for q in plain)
    for name in model.table_names:
        payload = sections[name]
        total += len(payload) - (3 + _side_bytes_of(payload) if payload[0] == 2 else 1 + 4 * tables[name].shape[1])
    return total


def _side_bytes(items) -> int:
    """Bytes of a `rowcoder.pack` payload that are not the symbol stream: the side blob and two length fields."""
    return 8 + len(entropy.encode_symbols(rowcoder.side_symbols(items)))


def _side_bytes_of(payload: bytes) -> int:
    return 8 + int.from_bytes(payload[3:7], "little")


def compress_to_target(state, tables, model: RateModel, bits: float, target_payload: int | None,
                       tolerance: float = TOLERANCE) -> LearnedCompressed:
    """`compress` at the learned steps; if a target is given and missed by more than `tolerance`, the step factor
    that lands closest under it (or the coarsest, if none fits)."""
    nominal = compress(state, tables, model, bits)
    if target_payload is None or abs(nominal.payload_bytes / target_payload - 1) <= tolerance:
        return nominal
    upward = nominal.payload_bytes < target_payload        # under the target: finer steps
    lo, hi = (np.log2(STEP_SCALES[0]), 0.0) if upward else (0.0, np.log2(STEP_SCALES[1]))
    edge = compress(state, tables, model, bits, 2.0 ** (lo if upward else hi))
    if (edge.payload_bytes <= target_payload) == upward:
        return edge
    best = nominal if nominal.payload_bytes <= target_payload else None
    for _ in range(10):
        mid = (lo + hi) / 2
        trial = compress(state, tables, model, bits, 2.0 ** mid)
        if trial.payload_bytes <= target_payload:
            if best is None or trial.payload_bytes > best.payload_bytes:
                best = trial
            hi = mid            # fits: a finer step may still fit
        else:
            lo = mid
        if best is not None and abs(best.payload_bytes / target_payload - 1) <= tolerance / 2:
            break
    return best if best is not None else edge
