"""benchmarks.depthwise_speed: its shifted-slice form is the depthwise convolution, and it finds every depthwise
convolution of the planned network."""
import torch

from benchmarks.depthwise_speed import by_conv, by_slices, conv_shapes


def test_the_slice_form_is_the_depthwise_convolution_in_value_and_gradients():
    gen = torch.Generator().manual_seed(0)
    for k in (3, 5):
        x = torch.randn(2, 4, 7, 9, generator=gen, dtype=torch.float64).requires_grad_()
        w = torch.randn(4, 1, k, k, generator=gen, dtype=torch.float64).requires_grad_()
        g = torch.randn(2, 4, 7, 9, generator=gen, dtype=torch.float64)
        a, b = by_conv(x, w, g), by_slices(x, w, g)
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
        for ga, gb in zip(torch.autograd.grad(a, (x, w)), torch.autograd.grad(b, (x, w))):
            assert torch.allclose(ga, gb, rtol=1e-10, atol=1e-12)


def test_it_counts_each_block_of_the_planned_network():
    arch, shapes = conv_shapes(1280, 720, 96, 0.05)
    assert sum(n for *_, n in shapes) == sum(arch.depths)
    assert (arch.widths[-2], 720, 1280, arch.kernels[-1], 1) in shapes       # the last stage, at full size
