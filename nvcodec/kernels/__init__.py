"""GPU kernels that PyTorch's own operators run slowly, each with its PyTorch fallback named in its module.

Modules named `*_triton` import Triton; they are imported only when a kernel is first used on a GPU.
"""
