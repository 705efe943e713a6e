import sys, torch
from nvcodec import planeloss
from nvcodec.models import Decoder
from nvcodec.models.dsnerv import decoder_inputs
from nvcodec.compress.quantize import quantize_weight, quantize_embedding
from nvcodec.compress.qat import fake_quant_weight, fake_quant_table
d = torch.load(sys.argv[1], weights_only=False)
frames, arch, state, tables, bits = d["frames"], d["arch"], d["state"], d["tables"], d["qat_bits"]
print("qat_bits", bits, "report", d["report"]["psnr_yuv"], d["report"]["psnr_float_model"], d["report"]["effective_bits"])
t, h, w = frames.shape[:3]
ref = frames.permute(0, 3, 1, 2).float() / 255
psnr = planeloss.frame_psnr(arch.color.planes)
dec = Decoder(arch).eval()
fb = d["report"]["effective_bits"]
def score(st, tb):
    dec.load_state_dict({k: v.clone() for k, v in st.items()})
    with torch.no_grad():
        o = dec(*decoder_inputs(arch, tb, torch.arange(t, dtype=torch.float64), t))[..., :h, :w].clamp(0, 1)
    return float(psnr(o, ref).mean())
fq_w = {k: fake_quant_weight(v, bits) for k, v in state.items()}
fq_t = {k: fake_quant_table(v, bits) for k, v in tables.items()}
file_w = {k: quantize_weight(v, fb).dequantize().reshape(v.shape) for k, v in state.items()}
file_t = {k: quantize_embedding(v, fb).dequantize() for k, v in tables.items()}
print("float", score(state, tables))
print("fake w + fake t", score(fq_w, fq_t))
print("file w + file t", score(file_w, file_t))
print("file w + fake t", score(file_w, fq_t))
print("fake w + file t", score(fq_w, file_t))
for k in state:
    a, b = fq_w[k], file_w[k]
    diff = (a - b).abs().max().item()
    if diff > 1e-3:
        q = quantize_weight(state[k], fb)
        print("weight differs", k, tuple(state[k].shape), "max diff", round(diff, 5), "file axis", q.axis)
for k in tables:
    print("table", k, "max diff", (fq_t[k] - file_t[k]).abs().max().item())
