"""Bjøntegaard delta rate and PSNR with piecewise cubic (PCHIP) interpolation.

This is the JCT-VC/VCEG variant (JCTVC-L1100 common-test-conditions sheet; also the default of the
``bjontegaard`` package and of Netflix's VMAF tools): interpolate log-rate as a function of PSNR
(BD-rate) or PSNR as a function of log-rate (BD-PSNR) with ``scipy.interpolate.PchipInterpolator``,
integrate both curves exactly over the range where they overlap, and average the difference.
It reproduces JCTVC-E137's worked examples (see tests/test_bd.py).

Conventions:
- A is the anchor, B the test. ``bd_rate`` is in percent, negative when B needs fewer bits for the
  same quality; ``bd_psnr`` is in dB, positive when B is better at the same rate.
- Rates may be in any unit (bpp, kbit/s), as long as both curves use the same one.
- Points are sorted; points that are dominated (more bits and no more PSNR than another point of
  the same curve) are dropped, since they are not on the codec's RD curve and would make the
  interpolation non-monotonic. Non-finite values and rates <= 0 are dropped too.
- Four points per curve is the classic requirement. Two or three are accepted (with two the
  interpolation is a straight line in log-rate, with three a two-piece cubic): the result is less
  reliable and callers should say so. With fewer than two usable points on either curve, or when
  the curves do not overlap on the integration axis, the functions return None, not a number.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import PchipInterpolator


def _curve(rates, psnrs) -> tuple[np.ndarray, np.ndarray] | None:
    """(log-rates, PSNRs) on the RD front, both strictly increasing; None if < 2 usable points."""
    r = np.asarray(rates, dtype=np.float64).ravel()
    p = np.asarray(psnrs, dtype=np.float64).ravel()
    if r.shape != p.shape:
        raise ValueError(f"{r.size} rates but {p.size} PSNR values")
    keep = np.isfinite(r) & np.isfinite(p) & (r > 0)
    r, p = r[keep], p[keep]
    order = np.lexsort((-p, r))  # by rate, the best PSNR first among equal rates
    front_r, front_p = [], []
    for rate, psnr in zip(r[order], p[order]):
        if not front_p or (psnr > front_p[-1] and rate > front_r[-1]):
            front_r.append(rate)
            front_p.append(psnr)
    if len(front_r) < 2:
        return None
    return np.log(front_r), np.array(front_p)


def _mean_gap(xa, ya, xb, yb) -> float | None:
    """Mean of (curve B - curve A) over the overlap of their x ranges, both PCHIP-interpolated."""
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not hi > lo:
        return None
    area_a = PchipInterpolator(xa, ya).integrate(lo, hi)
    area_b = PchipInterpolator(xb, yb).integrate(lo, hi)
    return float((area_b - area_a) / (hi - lo))


def bd_rate(rates_a, psnr_a, rates_b, psnr_b) -> float | None:
    """Average rate difference of B against A at equal PSNR, in percent (negative: B saves bits)."""
    a, b = _curve(rates_a, psnr_a), _curve(rates_b, psnr_b)
    if a is None or b is None:
        return None
    gap = _mean_gap(a[1], a[0], b[1], b[0])  # x = PSNR, y = log-rate
    return None if gap is None else (math.exp(gap) - 1.0) * 100.0


def bd_psnr(rates_a, psnr_a, rates_b, psnr_b) -> float | None:
    """Average PSNR difference of B against A at equal rate, in dB (positive: B is better)."""
    a, b = _curve(rates_a, psnr_a), _curve(rates_b, psnr_b)
    if a is None or b is None:
        return None
    return _mean_gap(a[0], a[1], b[0], b[1])  # x = log-rate, y = PSNR


def yuv_against_source_planes(point: dict) -> bool:
    """Whether a result point's YUV PSNR is measured against the source's own 4:2:0 planes, so that it compares
    with dnv's (scored against them): an anchor counts only where its encode read those planes (rd.json's
    `input` "source 4:2:0"); a JPEG folder's anchors coded an RGB conversion, another reference."""
    return point.get("codec") == "dnv" or str(point.get("input", "")).startswith("source 4:2:0")
