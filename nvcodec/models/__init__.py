"""Networks by name. `Decoder` is all that decoding needs; `Encoders` are used only while fitting.

Each model registers itself (`registry.register`) from its own module: every module of this package is
imported here, so a new model needs no edit outside its module.
"""
import importlib
import pkgutil

from .arch import Arch, ArchError, reduced_widths
from .decoder import Decoder, param_count
from .registry import MODELS as SPECS, ModelSpec, spec_by_id, spec_of

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

MODELS = tuple(SPECS)
MODEL_IDS = {name: spec.model_id for name, spec in SPECS.items()}
# The network `dnv encode` fits without --model: the HiNeRV-class one was above DNeRV at equal bpp on all three
# clips measured, by 0.2-0.6 dB on carphone and 1.1-2.0 dB on blackswan and Bunny
# (benchmarks/results/hinerv_2026-12-02).
DEFAULT_MODEL = "hinerv"


def quant_bits_for(model: str) -> int:
    """The quantizer depth `model` is planned for (rate control then trims it to the target)."""
    return SPECS[model].quant_bits


__all__ = ["Arch", "ArchError", "DEFAULT_MODEL", "MODEL_IDS", "MODELS", "SPECS", "ModelSpec", "quant_bits_for",
           "spec_of", "spec_by_id", "Decoder", "param_count", "reduced_widths"]
