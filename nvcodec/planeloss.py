"""The training loss on the coded planes: each plane's loss weighted (Y:U:V 6:1:1 by default, as the YUV PSNR).

On YUV 4:2:0 frames (`nvcodec.color`) the chroma is compared at its own samples only, so every stored sample
counts once; on RGB the loss is the plain one over the three planes (equal weights), as it always was.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .color import YUV_WEIGHTS, plane_views
from .metrics import psnr_from_mse

DEFAULT_WEIGHTS = ":".join(f"{w:g}" for w in YUV_WEIGHTS)


def parse_weights(text: str) -> tuple[float, float, float]:
    """"6:1:1" -> (6.0, 1.0, 1.0); ValueError (one line) for anything else than three non-negative numbers, not
    all zero."""
    try:
        weights = tuple(float(part) for part in str(text).split(":"))
    except ValueError:
        weights = ()
    if len(weights) != 3 or any(not (0 <= w < float("inf")) for w in weights) or sum(weights) <= 0:
        raise ValueError(f"plane_weights {text!r}: expected three non-negative numbers Y:U:V, e.g. 6:1:1")
    return weights


# How the planes' losses are combined: "mse" weighs the losses themselves; "psnr" weighs their logarithms, i.e.
# each plane's PSNR, which is what the YUV PSNR averages (the weight of a plane's loss then grows as the loss
# shrinks: chroma, whose error is several times smaller than luma's, is not neglected).
BALANCES = ("mse", "psnr")


def plane_loss(loss_fn, planes: str, weights: str, balance: str = "mse"):
    """`loss_fn(out, ref)` applied to each coded plane of (B, 3, H, W) frames and weighted (`BALANCES`); on RGB,
    `loss_fn`."""
    if planes == "rgb":
        return loss_fn
    w = parse_weights(weights)
    if balance not in BALANCES:
        raise ValueError(f"plane_balance {balance!r}: choose {' or '.join(BALANCES)}")
    combine = (lambda x: x) if balance == "mse" else (lambda x: torch.log10(x.clamp_min(1e-10)))  # noqa: E731

    def weighted(out, ref):
        return sum(wi * combine(loss_fn(o, r)) for wi, o, r in
                   zip(w, plane_views(out, planes), plane_views(ref, planes)) if wi) / sum(w)
    return weighted


def _plane_mse(out, ref, planes: str) -> list[torch.Tensor]:
    """(B,) mean squared error of each frame, per coded plane."""
    return [(o - r).square().flatten(1).mean(1) for o, r in zip(plane_views(out, planes), plane_views(ref, planes))]


def frame_mse(planes: str, weights: str):
    """A function (out, ref) -> (B,) mean squared error of each frame over its coded planes, weighted (the weights
    parsed once, outside a compiled training step)."""
    if planes == "rgb":
        return lambda out, ref: (out - ref).square().flatten(1).mean(1)
    w = parse_weights(weights)
    return lambda out, ref: sum(wi * p for wi, p in zip(w, _plane_mse(out, ref, planes))) / sum(w)


def frame_psnr(planes: str):
    """A function (out, ref) -> (B,) PSNR of each frame in [0, 1], as the encode report measures the file: over the
    three planes on RGB; on YUV 4:2:0 each plane's PSNR, weighted as the report's YUV PSNR (`color.YUV_WEIGHTS`), so
    that the float model's figure and the file's compare."""
    def psnr(mse):
        return psnr_from_mse(mse.double()).clamp_max(100.0)
    if planes == "rgb":
        return lambda out, ref: psnr((out - ref).square().flatten(1).mean(1))
    return lambda out, ref: (sum(wi * psnr(p) for wi, p in zip(YUV_WEIGHTS, _plane_mse(out, ref, planes)))
                             / sum(YUV_WEIGHTS))


def batch_mse(planes: str, weights: str):
    """A function (out, ref) -> the batch's mean squared error over its coded planes (what a training epoch's
    PSNR is made of)."""
    if planes == "rgb":
        return F.mse_loss
    per_frame = frame_mse(planes, weights)
    return lambda out, ref: per_frame(out, ref).mean()
