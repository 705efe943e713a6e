"""One-off: the probe with Quant-Noise in quantization-aware fine-tuning (QNOISE = fraction of weights rounded per
step, as HiNeRV's 0.9; the rest pass unrounded), to see whether it lands the file better."""
import os, sys
import torch
from nvcodec.compress import qat
P = float(os.environ.get("QNOISE", "0.9"))
fw, ft = qat.fake_quant_weight, qat.fake_quant_table
def noisy(fn):
    def f(t, bits):
        q = fn(t, bits)
        if not torch.is_grad_enabled():
            return q
        keep = (torch.rand_like(t) < P).to(t.dtype)
        return t + (q - t) * keep
    return f
qat.fake_quant_weight, qat.fake_quant_table = noisy(fw), noisy(ft)
from benchmarks.finetune_probe import main
sys.exit(main())
