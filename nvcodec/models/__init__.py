"""Networks by name. `Decoder` is all that decoding needs; `Encoders` are used only while fitting."""
from .arch import Arch, ArchError, MODEL_IDS, reduced_widths
from .decoder import Decoder, param_count

MODELS = tuple(MODEL_IDS)
# The network `dnv encode` fits without --model: the HiNeRV-class one was 1.1-2.0 dB above DNeRV at equal bpp on
# every clip it was measured on (benchmarks/results/hinerv_2026-12-02).
DEFAULT_MODEL = "hinerv"
# The quantizer depth each model is planned for (rate control then trims it to the target). HiNeRV's networks are
# fine-tuned with the quantizer in the loop: at 6 bits they hold more parameters in the same bytes, which won
# 0.18-0.27 dB over 8 bits at 0.05 bpp on two clips.
QUANT_BITS = {"hinerv": 6}
OTHER_QUANT_BITS = 8


def quant_bits_for(model: str) -> int:
    return QUANT_BITS.get(model, OTHER_QUANT_BITS)

__all__ = ["Arch", "ArchError", "DEFAULT_MODEL", "MODEL_IDS", "MODELS", "quant_bits_for", "Decoder", "param_count", "reduced_widths"]
