"""One-off (kept with its results; run as `EVAL_LOG=... PYTHONPATH=. python3 THIS CLIP <finetune_probe options>`): after every fine-tuning epoch, the quantized network's PSNR (as the file is measured) and, per tensor,
how many of its quantized values changed since the epoch before and by how much the float weights moved: which
tensors' flips go with the swings?"""
import os, sys, json
import torch
from nvcodec import fit as fitmod
from nvcodec.compress import qat
from nvcodec.compress.quantize import quantize_weight, quantize_embedding
LOG = os.environ["EVAL_LOG"]
orig = fitmod.Trainer.state
prev = {}
def snapshot(self):
    out = {}
    bits = self.qat_bits
    for name, p in self.decoder.named_parameters():
        qt = quantize_weight(p, qat.depth_of(bits, name))
        out["dec." + name] = (p.detach().clone(), torch.from_numpy(qt.symbols), torch.from_numpy(qt.scale.astype("float32")))
    for name, p in self.inputs.module.named_parameters():
        sec = name.rsplit(".", 1)[-1]
        qt = quantize_embedding(p, qat.depth_of(bits, sec))
        out["tab." + name] = (p.detach().clone(), torch.from_numpy(qt.symbols), torch.from_numpy(qt.scale.astype("float32")))
    return out
def state(self, copy=False):
    if copy and self.phase == "prune" and self.qat_bits is not None:
        self._evaluate(f"ft{self.epoch}")
        snap = snapshot(self)
        flips, moves = {}, {}
        rescaled = {}
        for k, (w, q, sc) in snap.items():
            if k in prev:
                pw, pq, psc = prev[k]
                flips[k] = int((q != pq).sum())
                moves[k] = float((w - pw).abs().max())
                rescaled[k] = int((sc != psc).sum())
        prev.clear(); prev.update(snap)
        lrs = [g["lr"] for opt in self.optimizers for g in opt.param_groups]
        with open(LOG, "a") as f:
            f.write(json.dumps({"epoch": self.epoch, "eval": round(self.history[-1]["psnr"], 3), "lr": lrs,
                                "flips": flips, "moves": moves, "rescaled": rescaled, "sizes": {k: v[0].numel() for k, v in snap.items()}}) + "\n")
    return orig(self, copy)
fitmod.Trainer.state = state
from benchmarks.finetune_probe import main
sys.exit(main())
