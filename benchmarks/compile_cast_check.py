"""Does the compiled training step round the quantizer's scales to float16 as the file does?

    python3 -m benchmarks.compile_cast_check [--device cuda] [--out FILE.json]

Compares, eager against torch.compile (Inductor), on the device: a plain float32 -> float16 -> float32 round trip,
`quantize.as_stored`, and `qat.fake_quant_weight` against the file's dequantized weights (`quantize.quantize_weight`).
Prints and writes the fraction of values that differ for each (0 is right).
"""
from __future__ import annotations

import argparse
import json
import platform

import torch

from nvcodec.compress.qat import fake_quant_weight
from nvcodec.compress.quantize import as_stored, quantize_weight


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out")
    opts = ap.parse_args()
    dev = torch.device(opts.device)
    g = torch.Generator().manual_seed(0)
    x = (torch.exp2(torch.rand(100000, generator=g) * 30 - 20) * torch.randn(100000, generator=g).sign()).to(dev)
    w = (torch.randn(64, 32, 3, 3, generator=g) * 0.05).to(dev)
    bits = 5.0625
    file_grid = quantize_weight(w.cpu(), bits).dequantize().to(dev)

    def round_trip(t):
        return t.to(torch.float16).to(torch.float32)

    def differ(a, b) -> float:
        return float((a != b).float().mean())

    report = {"torch": torch.__version__, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
              platform.processor() or "cpu"}
    report["round_trip_compiled_vs_eager"] = differ(torch.compile(round_trip)(x), round_trip(x))
    report["as_stored_compiled_vs_float16"] = differ(torch.compile(as_stored)(x), round_trip(x))
    report["fake_quant_eager_vs_file"] = differ(fake_quant_weight(w, bits), file_grid)
    report["fake_quant_compiled_vs_file"] = differ(torch.compile(lambda t: fake_quant_weight(t, bits))(w), file_grid)
    print(json.dumps(report, indent=1))
    if opts.out:
        with open(opts.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
