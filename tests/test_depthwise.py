"""models.blocks.depthwise_conv: compiled training takes shifted slices on large maps; the function is the
convolution's."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nvcodec.models import blocks
from nvcodec.models.blocks import depthwise_by_slices, depthwise_conv


@pytest.mark.parametrize("k", [1, 3, 5])
def test_slices_match_the_convolution_in_value_and_gradient(k):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 4, 6, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    want = F.conv2d(x, w, b, padding=k // 2, groups=4)
    got = depthwise_by_slices(x, w, b)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    for a, c in zip(torch.autograd.grad(want, (x, w, b), upstream), torch.autograd.grad(got, (x, w, b), upstream)):
        assert torch.allclose(a, c, rtol=0, atol=1e-10)


def ops_traced(fn, *args):
    """The call targets of the graph Dynamo captures for fn(*args), and fn's compiled result."""
    seen = []

    def backend(gm, _inputs):
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op in ("call_function", "call_module", "call_method"))
        return gm.forward

    torch._dynamo.reset()
    try:
        return seen, torch.compile(fn, backend=backend, fullgraph=True)(*args)
    finally:
        torch._dynamo.reset()


def test_compiled_large_maps_take_slices_small_maps_and_eager_the_convolution(monkeypatch):
    conv = nn.Conv2d(3, 3, 3, padding=1, groups=3)
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(depthwise_conv(conv, x), conv(x))          # eager: the module itself
    small, out = ops_traced(lambda t: depthwise_conv(conv, t), x)
    assert any("conv" in op for op in small)
    monkeypatch.setattr(blocks, "SLICED_DEPTHWISE_MIN_PIXELS", 64)
    large, out = ops_traced(lambda t: depthwise_conv(conv, t), x)
    assert not any("conv" in op for op in large) and any("pad" in op for op in large)
    assert torch.allclose(out, conv(x), rtol=0, atol=1e-6)


def test_slices_compute_in_the_autocast_dtype(monkeypatch):
    """Under autocast the library convolution computes and returns bfloat16: the slices do the same, rather than
    promoting to the float32 weight."""
    monkeypatch.setattr(blocks, "SLICED_DEPTHWISE_MIN_PIXELS", 64)
    conv = nn.Conv2d(3, 3, 3, padding=1, groups=3)
    x = torch.randn(1, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, out = ops_traced(lambda t: depthwise_conv(conv, t), x)
        want = conv(x)
    assert out.dtype == want.dtype == torch.bfloat16
    assert torch.allclose(out.float(), want.float(), rtol=0, atol=0.05)
