"""The decoder networks as decoding runs them on a GPU (LayerNorm by reductions where the fused kernel cannot run,
bf16 in channels-last layout) compute the networks training made: checked on the CPU against the training forms.
The fused LayerNorm kernel (`kernels.channel_norm`, GPU only) is checked against F.layer_norm on the GPU by
benchmarks.network_speed (`fused_norm_max_error`)."""
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
