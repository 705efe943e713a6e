"""benchmarks.network_speed: every setting runs the same network (its output agrees with fp32) and the record
holds a row per setting and the slowest kernels. CPU, a tiny network (the figures are for GPUs)."""
import json

from benchmarks import network_speed


def test_each_setting_runs_the_same_network_and_the_record_says_so(tmp_path, capsys):
    settings = ["autocast_layer_norm", "fp32", "bf16_layer_norm", "bf16", "bf16_var_mean"]
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
