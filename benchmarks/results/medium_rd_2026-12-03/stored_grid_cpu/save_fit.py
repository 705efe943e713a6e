import sys, torch
import nvcodec.fit as fitmod
from nvcodec import codec
captured = {}
real_fit = fitmod.fit
def spy(frames, arch, s, dev, **kw):
    r = real_fit(frames, arch, s, dev, **kw)
    captured.update(frames=frames, arch=arch, result=r, qat_bits=r.qat_bits if hasattr(r, "qat_bits") else None)
    return r
fitmod.fit = spy
lr, out = sys.argv[1], sys.argv[2]
rep = codec.encode(".testdata/carphone_qcif_120f_x264qp10.mp4", out, bpp=0.05, preset="fast", device="cpu",
                   progress=False, train_options={"lr": float(lr)})
r = captured["result"]
torch.save({"frames": captured["frames"], "arch": captured["arch"], "state": {k: v.detach().clone() for k, v in r.decoder.state_dict().items()},
            "tables": {k: v.clone() for k, v in r.tables.items()}, "report": rep, "qat_bits": r.qat_bits,
            "history": r.history}, out + ".pt")
print("saved", rep["psnr_yuv"], rep["psnr_float_model"], r.qat_bits)
