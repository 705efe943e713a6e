"""finetune_probe where rate-aware fine-tuning also evaluates its last epochs and keeps the best (a diagnosis)."""
import sys, runpy
from nvcodec import fit


def _picking(self, epochs):
    share = self.s.finetune_pick
    return (self.phase == "prune" and self.qat_bits is not None and share > 0
            and self.epoch > epochs - max(1, round(epochs * share)))


fit.Fitter._picking = _picking
sys.argv = ["finetune_probe"] + sys.argv[1:]
runpy.run_module("benchmarks.finetune_probe", run_name="__main__")
