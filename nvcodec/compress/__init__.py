"""Compression of the decoder's weights and embeddings: quantization, pruning, entropy coding."""
from .entropy import EntropyError, decode_symbols, encode_symbols, estimate_bits

__all__ = ["EntropyError", "decode_symbols", "encode_symbols", "estimate_bits"]
