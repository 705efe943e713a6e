"""finetune_probe with the freezing's check every 8 steps (momentum 0.96**2 per check: the same horizon in steps)."""
import sys, runpy
from nvcodec.compress import freeze
freeze.EVERY, freeze.MOMENTUM = 8, 0.96 ** 2
sys.argv = ["finetune_probe"] + sys.argv[1:]
runpy.run_module("benchmarks.finetune_probe", run_name="__main__")
