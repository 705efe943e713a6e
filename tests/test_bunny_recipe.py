"""bunny.py names each run's recipe; settings changed from the codec's defaults must show in the name."""
from dataclasses import asdict

from benchmarks.bunny import recipe
from nvcodec.fit import TrainSettings


def test_default_recipe_names_the_main_settings_only():
    assert recipe(asdict(TrainSettings())) == "batch 1, lr 0.001, beta1 0.9, reduce-overhead, bf16"


def test_changed_settings_appear_in_the_recipe():
    options = asdict(TrainSettings(lr=7e-4, enc_dim=32, warmup=0.05, loss="l1ssim", amp=False))
    assert recipe(options) == "batch 1, lr 0.0007, beta1 0.9, reduce-overhead, fp32, l1ssim, warmup 0.05, enc_dim 32"
    assert recipe(asdict(TrainSettings(optimizer="adan", lr=3e-3))).endswith("lr 0.003, beta1 0.9, reduce-overhead, bf16, adan")
