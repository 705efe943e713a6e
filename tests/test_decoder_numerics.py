"""The decoder networks as decoding runs them on a GPU (LayerNorm by reductions, 1x1 convolutions as matrix
products, bf16 in channels-last layout) compute the networks training made: checked on the CPU against the
training forms. (The fused LayerNorm kernel, GPU only, is checked against F.layer_norm by
benchmarks.network_speed's `fused_norm_max_error`.)"""
import copy

import torch


def test_layer_norm_by_reductions_is_layer_norm_over_channels():
    # The form LayerNorm2d takes when decoding on a GPU must compute what F.layer_norm computes in training.
    from nvcodec.models.blocks import LayerNorm2d, layer_norm_by_reductions
    torch.manual_seed(0)
    norm = LayerNorm2d(24)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 24, 7, 9) * 3 + 1
    with torch.no_grad():
        expected = norm(x)
        for layout in (torch.contiguous_format, torch.channels_last):
            got = layer_norm_by_reductions(x.contiguous(memory_format=layout), norm.weight, norm.bias, norm.eps)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_hinerv_bf16_channels_last_copy_decodes_what_fp32_does():
    # decoding._for_precision's network (bf16 weights, channels-last) is the same network: within bf16's rounding.
    from nvcodec import decoding, sizing
    from nvcodec.models import Decoder
    from nvcodec.models.dsnerv import decoder_inputs
    plan = sizing.plan_for_bpp("hinerv", 96, 64, 4, 2.0, 6)
    torch.manual_seed(0)
    decoder = Decoder(plan.arch).eval()
    tables = {k: torch.randn(s) * 0.1 for k, s in plan.arch.section_shapes(4).items()}
    inputs = decoder_inputs(plan.arch, tables, torch.arange(3, dtype=torch.float64), 4)
    with torch.no_grad():
        expected = decoder(*inputs)
        fast = copy.deepcopy(decoder).to(dtype=torch.bfloat16, memory_format=torch.channels_last)
        got = fast(*(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) if x.dim() == 4
                     else x.to(torch.bfloat16) for x in inputs))
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    assert (got.float() - expected).abs().max() < 0.02
    assert decoding._for_precision(decoder, torch.device("cpu"), torch.bfloat16)[0] is decoder   # CPUs: autocast


def test_hinerv_channels_last_decode_is_the_trained_network(monkeypatch):
    # Without gradients a channels-last input takes the 1x1 convolutions as matrix products (hinerv._pointwise):
    # the same frames as the convolutions, in fp32, and the output stays channels-last.
    from nvcodec import sizing
    from nvcodec.models import Decoder
    from nvcodec.models.dsnerv import decoder_inputs
    plan = sizing.plan_for_bpp("hinerv", 96, 64, 4, 2.0, 6)
    torch.manual_seed(1)
    decoder = Decoder(plan.arch).eval()
    tables = {k: torch.randn(s) * 0.1 for k, s in plan.arch.section_shapes(4).items()}
    inputs = decoder_inputs(plan.arch, tables, torch.arange(3, dtype=torch.float64), 4)
    products = []
    linear = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda *a: products.append(a[0].shape) or linear(*a))
    with torch.no_grad():
        expected = decoder(*inputs)
        products.clear()    # (CPU convolutions may already leave some outputs channels-last)
        cl = copy.deepcopy(decoder).to(memory_format=torch.channels_last)
        got = cl(*(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs))
    assert len(products) == 2 * sum(plan.arch.depths)    # every block's two 1x1 convolutions
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last)
