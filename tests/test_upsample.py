"""models.blocks.upsample_bilinear: the shifted-slice form that compiled training runs is F.interpolate's function."""
import pytest
import torch
import torch.nn.functional as F

from nvcodec.models.blocks import _upsample_axis, upsample_bilinear


def reference(x, s):
    return F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)


@pytest.mark.parametrize("s", [2, 3, 4, 5])
@pytest.mark.parametrize("hw", [(1, 1), (2, 5), (7, 3)])
def test_slices_match_interpolate_in_value_and_gradient(s, hw):
    g = torch.Generator().manual_seed(s)
    x = torch.randn(2, 3, *hw, generator=g, dtype=torch.float64, requires_grad=True)
    want = reference(x, s)
    got = _upsample_axis(_upsample_axis(x, s, -1), s, -2)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
    grad_want, = torch.autograd.grad(want, x, upstream)
    grad_got, = torch.autograd.grad(got, x, upstream)
    assert torch.allclose(grad_got, grad_want, rtol=0, atol=1e-11)


def test_eager_calls_and_factor_one_are_interpolate_itself():
    x = torch.randn(1, 4, 6, 9)
    assert torch.equal(upsample_bilinear(x, 3), reference(x, 3))
    assert upsample_bilinear(x, 1) is x


def test_compiled_upsampling_matches_interpolate():
    x = torch.randn(1, 5, 6, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    upstream = torch.randn(1, 5, 12, 8)
    try:
        step = torch.compile(lambda t: torch.autograd.grad((upsample_bilinear(t, 2) * upstream).sum(), t)[0])
        got = step(x)
    except Exception as e:  # noqa: BLE001 - no compiler on this machine
        pytest.skip(f"torch.compile unavailable ({type(e).__name__})")
    want, = torch.autograd.grad((reference(x, 2) * upstream).sum(), x)
    assert torch.allclose(got, want, rtol=0, atol=1e-5)
