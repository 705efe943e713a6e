"""One-off (kept with its results; run as `EVAL_LOG=... PYTHONPATH=. python3 THIS CLIP <finetune_probe options>`): quantization-aware fine-tuning with oscillating weights frozen (Nagel et al. 2022, iterative freezing):
after every step, each quantized value's integer is compared with the step before; a change opposite to its last
change is an oscillation; an EMA (FREEZE_M) of oscillations per step above FREEZE_TH freezes the value at its
EMA integer. Decoder weights and the tables (HiNeRV's grids) both. FREEZE_TH=0 turns it off."""
import os, sys
import torch
from nvcodec import fit as fitmod
from nvcodec.compress import qat
from nvcodec.compress.quantize import MIN_SCALE, as_stored, embedding_levels, weight_levels
M = float(os.environ.get("FREEZE_M", "0.99")); TH = float(os.environ.get("FREEZE_TH", "0.02"))
STATE = {}

def grid(p, bits, table):
    """(integers, scale, offset) as the file quantizes p."""
    if table:
        levels = embedding_levels(bits)
        flat = p.transpose(0, 1).flatten(1)
        shape = [1, -1] + [1] * (p.dim() - 2)
        lo = as_stored(flat.amin(1).reshape(shape))
        scale = as_stored(((flat.amax(1).reshape(shape) - lo) / levels).clamp_min(MIN_SCALE))
        return torch.round((p - lo) / scale).clamp(0, levels), scale, lo
    levels = weight_levels(bits)
    peak = p.abs().flatten(1).amax(1) if p.dim() >= 2 else p.abs().amax().reshape(1)
    shape = [-1] + [1] * (p.dim() - 1) if p.dim() >= 2 else [1]
    scale = as_stored((peak / levels).clamp_min(MIN_SCALE)).reshape(shape)
    return torch.round(p / scale).clamp(-levels, levels), scale, torch.zeros_like(scale)

def freeze_step(tr):
    bits = tr.qat_bits
    items = [("d." + n, p, qat.depth_of(bits, n), False) for n, p in tr.decoder.named_parameters()]
    items += [("t." + n, p, qat.depth_of(bits, n.rsplit(".", 1)[-1]), True) for n, p in tr.inputs.module.named_parameters()]
    frozen_total = 0
    with torch.no_grad():
        for key, p, depth, table in items:
            st = STATE.get(key)
            if st is not None and st["frozen"].any():
                p.copy_(torch.where(st["frozen"], st["value"], p))
            q, scale, lo = grid(p, depth, table)
            if st is None:
                STATE[key] = dict(prev=q, dir=torch.zeros_like(q), freq=torch.zeros_like(q), ema=q.clone(),
                                  frozen=torch.zeros_like(q, dtype=torch.bool), value=p.clone())
                continue
            d = torch.sign(q - st["prev"])
            osc = (d != 0) & (d == -st["dir"])
            st["dir"] = torch.where(d != 0, d, st["dir"])
            st["freq"].mul_(M).add_(osc.float(), alpha=1 - M)
            st["ema"].mul_(M).add_(q, alpha=1 - M)
            st["prev"] = q
            new = (st["freq"] > TH) & ~st["frozen"]
            if new.any():
                st["value"] = torch.where(new, torch.round(st["ema"]) * scale + lo, st["value"])
                st["frozen"] |= new
                p.copy_(torch.where(st["frozen"], st["value"], p))
            frozen_total += int(st["frozen"].sum())
    tr._frozen = frozen_total

orig_step = fitmod.Trainer._step
def _step(self, idx, lr):
    mse = orig_step(self, idx, lr)
    if TH > 0 and self.phase == "prune" and self.qat_bits is not None:
        freeze_step(self)
    return mse
fitmod.Trainer._step = _step
orig_eval = fitmod.Trainer._evaluate
def _evaluate(self, after):
    orig_eval(self, after)
    if str(after).startswith(fitmod.FINETUNE_EVAL) or after == "final":
        print(f"eval {after}: {self.history[-1]['psnr']:.3f} frozen {getattr(self, '_frozen', 0)}", file=sys.stderr, flush=True)
fitmod.Trainer._evaluate = _evaluate
from benchmarks.finetune_probe import main
sys.exit(main())
