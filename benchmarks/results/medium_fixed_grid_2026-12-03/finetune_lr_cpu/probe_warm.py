"""One-off: the probe with a warmup in the fine-tuning phase (FT_WARMUP env), to see whether a gentler start helps."""
import os, sys
from nvcodec import fit as fitmod
orig = fitmod.Trainer._phase
W = float(os.environ.get("FT_WARMUP", "0"))
def _phase(self, epochs, peak_lr, warmup):
    if self.phase == "prune":
        warmup = W
    return orig(self, epochs, peak_lr, warmup)
fitmod.Trainer._phase = _phase
from benchmarks.finetune_probe import main
sys.exit(main())
