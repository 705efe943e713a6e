"""Experiment: sizing.smallest_plan choosing, among the smallest networks that fit, the one with the most decoder
parameters (ties: grids' share nearest hinerv.GRID_SHARE_GOAL) instead of the most total bytes."""
import math, sys
from nvcodec import sizing
from nvcodec.models import hinerv

def smallest_plan(floors, budget, bpp, frame_pixels, frames, predict, quant_bits):
    from nvcodec.compress.ratecontrol import MIN_BITS
    for bits in ((MIN_BITS + quant_bits) / 2, MIN_BITS):
        fitting = [a for a in floors if predict(a, bits) <= budget]
        if fitting:
            def key(a):
                share = sizing.embedding_bytes(a, frames, quant_bits) / predict(a, quant_bits)
                return (sizing.param_count(a), -abs(math.log(share / hinerv.GRID_SHARE_GOAL)))
            arch = max(fitting, key=key)
            predicted = predict(arch, quant_bits)
            return sizing.Plan(arch, sizing.param_count(arch), predicted,
                               sizing.embedding_bytes(arch, frames, quant_bits) / predicted)
    raise sizing.InfeasibleRate(bpp, minimum=min(predict(a, MIN_BITS) for a in floors) * 8 / (frame_pixels * frames))

sizing.smallest_plan = smallest_plan
if __name__ == "__main__":
    from nvcodec.cli import main
    main(sys.argv[1:])
