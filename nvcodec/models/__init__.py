"""Networks by name. `Decoder` is all that decoding needs; `Encoders` are used only while fitting."""
from .arch import Arch, ArchError, MODEL_IDS, reduced_widths
from .decoder import Decoder, param_count

MODELS = tuple(MODEL_IDS)

__all__ = ["Arch", "ArchError", "MODEL_IDS", "MODELS", "Decoder", "param_count", "reduced_widths"]
