"""benchmarks.network_speed: every setting runs the same network (its output agrees with fp32) and the record
holds a row per setting and the slowest kernels. CPU, a tiny network (the figures are for GPUs)."""
import json

from benchmarks import network_speed


def test_each_setting_runs_the_same_network_and_the_record_says_so(tmp_path, capsys):
    settings = ["autocast_layer_norm", "fp32_reductions", "fp32", "fp32_channels_last", "bf16_layer_norm", "bf16_reductions", "bf16",
                "bf16_var_mean", "bf16_products"]
    assert network_speed.main(["--device", "cpu", "--model", "hinerv", "--size", "96x64", "--frames", "4",
                               "--bpp", "2", "--batch", "2", "--iters", "1", "--settings", *settings,
                               "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("network_hinerv_96x64_*.json")
    record = json.loads(path.read_text())
    assert [r["setting"] for r in record["settings"]] == settings
    for row in record["settings"]:
        assert row["frames_per_second"] > 0
        assert row["psnr_vs_fp32"] > 40, row        # bf16 rounding at most, never a different network
    assert record["top_kernels"] and all(record["top_kernels"].values())
    assert record["params"] > 0 and record["batch"] == 2
    assert record["fused_norm_max_error"] is None      # no GPU: the fused kernel is not run


def test_products_candidate_computes_hinerv_block():
    # The `bf16_products` candidate: a block whose 1x1 convolutions are matrix products computes the same block.
    import torch
    from nvcodec.models.hinerv import MLPBlock
    torch.manual_seed(0)
    block = MLPBlock(12, 12, 3, 4).eval()
    x = torch.randn(2, 12, 9, 7).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = block(x)
        product = network_speed._pointwise_as_product(block.pw1, x)
        network_speed.use_products(block, True)
        got = block(x)
        network_speed.use_products(block, False)
    torch.testing.assert_close(product, block.pw1(x), rtol=1e-5, atol=1e-5)
    assert product.is_contiguous(memory_format=torch.channels_last)     # a view of the product: no copy
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
