"""PTQ probe (2026-12-06, kept with its results): per-row step sizes from Adam's second moments (a diagonal Fisher)
against the file's peak/L rule, on a float network with no fine-tuning after the rounding.

python3 ptq_probe.py MAIN.pt BASE.dnv CLIP OUTDIR ALPHAS BITS     (e.g. 0,0.5,1 4.5,5,5.5)
"""
import sys, math, json
from pathlib import Path
import numpy as np, torch
from nvcodec import bitstream, codec
from nvcodec.compress import pack, prune
from nvcodec.compress.quantize import (QuantizedTensor, weight_levels, scale_index, scale_of_index,
                                       quantize_weight, quantize_embedding, per_channel)
from nvcodec.models import Decoder

main_pt, base, clip, out = sys.argv[1:5]
out = Path(out); out.mkdir(exist_ok=True)
state = torch.load(main_pt, weights_only=False)
dec_state = {k: v.float().cpu() for k, v in state["modules"]["decoder"].items()}
inputs_state = state["modules"]["inputs"]
header, sections, _ = bitstream.read_file(base)
arch = header.arch
with torch.device("meta"):
    names = [n for n, _ in Decoder(arch).named_parameters()]
opt = state["optimizers"][0]
sq = [opt["state"][i]["exp_avg_sq"].float().cpu() for i in range(len(names))]
fisher = dict(zip(names, sq))
tables = {k.split(".")[-1]: v.float().cpu() for k, v in inputs_state.items()}
print("tables", {k: tuple(v.shape) for k, v in tables.items()}, "sections", list(sections))

# the codec's pruning (a tenth, global magnitude) on the float weights
model = Decoder(arch); model.load_state_dict(dec_state)
masks = prune.magnitude_masks(model, 0.1)
prune.apply_masks(model, masks)
w_state = {k: v.detach().clone() for k, v in model.state_dict().items()}


def rows(t):
    return t.reshape(t.shape[0], -1) if per_channel(tuple(t.shape)) else t.reshape(1, -1)


def quantize(name, w, bits, alpha, gm):
    """alpha 0: the file's rule; else levels per row L * (r / gm)**alpha, r = peak * sqrt(F)."""
    if alpha == 0:
        return quantize_weight(w, bits)
    L = weight_levels(bits)
    R = rows(w); F = rows(fisher[name]).mean(1)
    peak = R.abs().amax(1)
    r = peak * F.sqrt()
    lv = (L * (r / gm).clamp_min(1e-12) ** alpha).clamp(1, 8 * L).double()
    idx = scale_index(peak, lv)
    scale = scale_of_index(idx)
    q = torch.round(R / scale[:, None]).reshape(w.shape)
    axis = 0 if per_channel(tuple(w.shape)) else None
    return QuantizedTensor(q.to(torch.int32).numpy(), scale.numpy(), None, axis, idx.to(torch.int32).numpy())


def geo_mean():
    logs, ns = [], []
    for n, w in w_state.items():
        R = rows(w); F = rows(fisher[n]).mean(1); peak = R.abs().amax(1)
        r = (peak * F.sqrt()).clamp_min(1e-20)
        logs.append(r.log() * R.shape[1]); ns.append(R.shape[1] * R.shape[0])
    return math.exp(sum(l.sum().item() for l in logs) / sum(ns))


gm = geo_mean()
# the dispersion the high-rate theory says can be gained: AM/GM of F * step**2 (current rule)
vals, wts = [], []
for n, w in w_state.items():
    R = rows(w); F = rows(fisher[n]).mean(1); peak = R.abs().amax(1)
    vals.append((F * peak ** 2)); wts.append(torch.full_like(F, R.shape[1]))
v = torch.cat(vals).double(); wt = torch.cat(wts).double()
am = (v * wt).sum() / wt.sum(); gmv = torch.exp((v.clamp_min(1e-30).log() * wt).sum() / wt.sum())
print(f"AM/GM of F*peak^2: {am / gmv:.3f} -> up to {0.5 * math.log2(am / gmv):.3f} bits/weight or {10 * math.log10(am / gmv):.2f} dB less weight noise")

results = []
for alpha in [float(a) for a in sys.argv[5].split(",")]:
    for bits in [float(b) for b in sys.argv[6].split(",")]:
        q = {n: quantize(n, w, bits, alpha, gm) for n, w in w_state.items()}
        secs = dict(sections)
        secs["DECODER"] = pack.pack_weights(q)
        for name, t in tables.items():
            if name in secs:
                secs[name] = pack.pack_embedding(quantize_embedding(t, bits))
        path = out / f"a{alpha}-b{bits}.dnv"
        data = bitstream.pack(header, secs)
        path.write_bytes(data)
        rep = codec.decode(path, None, ref=clip, device="cpu")
        r = {"alpha": alpha, "bits": bits, "bytes": len(data), "decoder_bytes": len(secs["DECODER"]),
             "psnr": rep["psnr"], "psnr_yuv": rep.get("psnr_yuv")}
        print(r, flush=True)
        results.append(r)
(out / "ptq.json").write_text(json.dumps(results, indent=1))
