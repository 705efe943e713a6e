"""Learning curves: running PSNR per epoch from a curves file (bunny.py's bunny-curves.json).

    python3 -m benchmarks.plot_curves CURVES.json --out curves.png [--match 3M] [--title TEXT]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import save_figure  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("curves", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--match", default="", help="only curves whose label contains this text")
    ap.add_argument("--title", default="Running PSNR of each training epoch")
    a = ap.parse_args()
    curves = {k: v for k, v in json.loads(a.curves.read_text()).items() if a.match in k}
    if not curves:
        ap.error(f"no curve in {a.curves} matches {a.match!r}")
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, psnr in curves.items():
        ax.plot(range(1, len(psnr) + 1), psnr, label=label, linewidth=1.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("PSNR (dB, running, while the weights move)")
    ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
