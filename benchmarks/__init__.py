"""Benchmarks of dnv against other codecs and of its own speed, memory and robustness.

Run each from the repository root as a module, e.g. `python3 -m benchmarks.rd --help`; results go under
benchmarks/results/ with the command and machine that made them (`common.machine`).
"""
