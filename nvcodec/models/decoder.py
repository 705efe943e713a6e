"""The decoder network: the only network stored in a .dnv file (decode never needs the encoders)."""
from __future__ import annotations

import functools

import torch
import torch.nn as nn

from .arch import Arch
from .registry import spec_of


def Decoder(arch: Arch) -> nn.Module:
    """The decoder network of `arch`'s model; its forward takes the tables of `arch.sections` at the frame times."""
    return spec_of(arch.model).decoder(arch)


def param_count(arch: Arch) -> int:
    return _param_count(spec_of(arch.model).network_of(arch))


@functools.lru_cache(maxsize=4096)
def _param_count(arch: Arch) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in Decoder(arch).parameters())
