"""The float model's PSNR that training reports is an exact measurement, not the epochs' running figure."""
import io
import math
import re

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.fit import TrainSettings, fit
from nvcodec.models import SPECS
from nvcodec.models.dsnerv import decoder_inputs


def saved_and_read(state: dict) -> dict:
    """`state` as a checkpoint file gives it back (torch.save, then torch.load with weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("model", ["dnerv", "dsnerv"])
def test_evaluated_psnr_is_the_float_models_psnr_over_all_frames(model):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (1, 40, 56, 3))
    frames = np.clip(base + np.arange(6)[:, None, None, None] * 9, 0, 255).astype(np.uint8)
    arch = sizing.plan_for_params(model, 56, 40, 0.01, frames=6).arch
    settings = TrainSettings(epochs=3, prune_epochs=2, batch=2, seed=0)
    result = fit(torch.from_numpy(frames), arch, settings, torch.device("cpu"), progress=False)

    final, unpruned = result.evaluated_psnr("final"), result.evaluated_psnr("train")
    assert final is not None and unpruned is not None
    # Recompute the final model's PSNR from its own outputs, frame by frame.
    inputs = decoder_inputs(arch, result.tables, torch.arange(6, dtype=torch.float64), 6)
    with torch.no_grad():
        out = result.decoder(*inputs)[..., :40, :56].clamp(0, 1)
    ref = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255
    mse = (out.double() - ref).square().flatten(1).mean(1)
    expected = float((-10 * torch.log10(mse)).mean())
    assert final == pytest.approx(expected, abs=1e-3)
    # The running figure of the last epoch is another number (taken while the weights moved).
    assert math.isfinite(result.train_psnr)
    # Every epoch and evaluation says when it ended, on one clock that starts with the fit and ends within it.
    seconds = [h["seconds"] for h in result.history]
    assert [h["phase"] for h in result.history] == ["train"] * 3 + ["eval"] + ["prune"] * 2 + ["eval"]
    assert seconds == sorted(seconds) and 0 < seconds[0] and seconds[-1] <= result.train_seconds + 1e-3  # (ms)


def test_compiling_allows_a_process_many_model_shapes():
    """One process that encodes many videos must not fall back to eager training after 8 shapes."""
    import torch._dynamo

    from nvcodec.fit import RECOMPILE_LIMIT, Fitter

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    before = getattr(config, name)
    try:
        setattr(config, name, 8)
        frames = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
        arch = sizing.plan_for_params("dnerv", 48, 32, 0.01, frames=4).arch
        Fitter(frames, arch, TrainSettings(epochs=1, batch=2, compile=True), torch.device("cpu"))
        assert getattr(config, name) >= RECOMPILE_LIMIT
    finally:
        setattr(config, name, before)


def test_training_options_are_parsed_typed_and_checked():
    from nvcodec.fit import parse_train_option

    assert parse_train_option("beta1=0.5") == ("beta1", 0.5)
    assert parse_train_option("compile-mode=reduce-overhead") == ("compile_mode", "reduce-overhead")
    assert parse_train_option("amp=off") == ("amp", False)
    assert parse_train_option("batch=8") == ("batch", 8)
    assert parse_train_option("optimizer=adan") == ("optimizer", "adan")
    assert parse_train_option("finetune_lr=0.05") == ("finetune_lr", 0.05)
    assert parse_train_option("finetune_pick=0") == ("finetune_pick", 0.0)
    assert parse_train_option("freeze=0") == ("freeze", 0.0)
    for bad, says in [("foo=1", "NAME one of"), ("optimizer=sgd", "choose adam or adan"), ("batch=1.5", "integer"), ("amp=maybe", "true or false"),
                      ("compile_mode=fastest", "choose"), ("beta1=1", "[0, 1)"), ("lr=0", "positive"), ("finetune_lr=0", "positive"), ("finetune_pick=1.5", "[0, 1]"),
                      ("freeze=-0.1", "not be negative"), ("lr", "NAME=")]:
        with pytest.raises(ValueError, match=re.escape(says)):
            parse_train_option(bad)


def test_beta1_reaches_the_optimizer():
    from nvcodec.fit import Fitter

    frames = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
    arch = sizing.plan_for_params("dnerv", 48, 32, 0.01, frames=4).arch
    fitter = Fitter(frames, arch, TrainSettings(epochs=1, batch=2, beta1=0.5), torch.device("cpu"), progress=False)
    assert all(g["betas"] == (0.5, 0.999) for opt in fitter.optimizers for g in opt.param_groups)


def test_adan_fits_and_its_whole_state_survives_a_checkpoint():
    """Adan (torch-optimi) keeps its step count in the parameter group and leaves unused buffers as None: a
    checkpoint or rollback snapshot must carry both, so that the next step is the one an uninterrupted run takes."""
    from optimi import Adan

    from nvcodec.fit import Fitter

    rng = np.random.default_rng(2)
    frames = torch.from_numpy(rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("dnerv", 48, 32, 0.01, frames=4).arch
    make = lambda: Fitter(frames, arch, TrainSettings(epochs=1, batch=2, optimizer="adan"),  # noqa: E731
                          torch.device("cpu"), progress=False)
    a, b = make(), make()
    [opt] = a.optimizers
    assert isinstance(opt, Adan) and all(g["weight_decay"] == 0 for g in opt.param_groups)
    idx = torch.tensor([0, 1])
    losses = [float(a._step(idx, 1e-3)) for _ in range(6)]
    assert losses[-1] < losses[0]                       # it learns
    b.load_state(saved_and_read(a.state()))
    assert int(b.optimizers[0].param_groups[0]["step"]) == 6
    a._step(idx, 1e-3)
    b._step(idx, 1e-3)
    for p, q in zip(a.decoder.parameters(), b.decoder.parameters()):
        assert torch.equal(p, q)


def test_encode_refuses_a_bad_training_option(tmp_path, testdata):
    from click.testing import CliRunner

    from nvcodec import codec
    from nvcodec.cli import main

    clip = testdata / "carphone_qcif_16f.mp4"
    with pytest.raises(codec.CodecError, match="unknown training option"):
        codec.encode(clip, tmp_path / "a.dnv", train_options={"momentum": 0.5}, device="cpu", progress=False)
    r = CliRunner().invoke(main, ["encode", str(clip), "-o", str(tmp_path / "b.dnv"), "--train", "beta1=2"])
    assert r.exit_code == 2 and "beta1 must be in [0, 1)" in r.output
    # beta1 is Adam's: with Adan it would be silently ignored, so it is refused.
    r = CliRunner().invoke(main, ["encode", str(clip), "-o", str(tmp_path / "b.dnv"), "--train", "optimizer=adan",
                                  "--train", "beta1=0.5"])
    assert r.exit_code == 1 and "one of Adam's betas; adan has no such" in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "a.dnv").exists() and not (tmp_path / "b.dnv").exists()


def test_the_learning_rate_cap_survives_a_checkpoint_and_a_rollback_snapshot():
    """A rollback's cap is part of the training state: a resumed encode keeps it (and "no cap" stays no cap)."""
    from nvcodec.fit import Fitter

    frames = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
    arch = sizing.plan_for_params("dnerv", 48, 32, 0.01, frames=4).arch
    make = lambda: Fitter(frames, arch, TrainSettings(epochs=1, batch=2), torch.device("cpu"), progress=False)  # noqa: E731
    a, b = make(), make()
    assert a.lr_cap == math.inf
    b.load_state(a.state(copy=True))
    assert b.lr_cap == math.inf
    a.lr_cap = 2.5e-4
    b.load_state(saved_and_read(a.state()))
    assert b.lr_cap == 2.5e-4


def test_channel_widths_are_multiples_of_eight_where_they_can_be():
    """GPU convolutions are far faster on channel counts in multiples of 8 (+27 % training throughput at 3M):
    the planner rounds every width of at least 8, and still finds the largest network within the budget."""
    from nvcodec.models import reduced_widths
    assert reduced_widths(107, 5) == [107, 89, 74, 61, 50, 41]          # the authors' rule
    assert reduced_widths(107, 5, align=8) == [104, 88, 72, 64, 48, 40]
    assert reduced_widths(11, 3, align=8) == [8, 8, 7, 5]               # below 8: as they were
    plan = sizing.plan_for_params("dnerv", 1280, 640, 3e6)
    assert sizing.WIDTH_ALIGN == 8 and all(w % 8 == 0 for w in plan.arch.widths)
    assert 0.95 * 3e6 < plan.params <= 3e6


def test_rounding_widths_never_costs_more_than_the_slack_in_parameters(monkeypatch):
    """Small networks move in coarse steps once rounded: where the rounded network would be more than
    ALIGN_SLACK smaller than the authors' widths allow, the planner keeps the authors' widths."""
    def planned(align, params=None, bpp=None, size=(1280, 640, 132)):
        monkeypatch.setattr(sizing, "WIDTH_ALIGN", align)
        w, h, t = size
        return sizing.plan_for_params("dnerv", w, h, params) if params else sizing.plan_for_bpp("dnerv", w, h, t, bpp)

    for params in (0.35e6, 3e6):
        plain, chosen = planned(1, params=params), planned(8, params=params)
        assert chosen.params >= (1 - sizing.ALIGN_SLACK) * plain.params
    small_plain, small = planned(1, params=0.35e6), planned(8, params=0.35e6)
    assert small.arch.widths == small_plain.arch.widths == (38, 31, 25, 20, 16, 13)   # 8s would lose > 5 %
    for bpp, size in ((0.05, (854, 480, 50)), (0.025, (1280, 720, 132)), (0.1, (176, 144, 120))):
        plain, chosen = planned(1, bpp=bpp, size=size), planned(8, bpp=bpp, size=size)
        assert chosen.predicted_bytes >= 0.95 * plain.predicted_bytes     # the rate is not undershot


def test_widths_round_up_where_rounding_down_would_cost_more_than_the_slack(monkeypatch):
    """hinerv at Bunny 0.05 (96 frames): the authors' widths are (149, 149, 74, 37, 18), the largest rounded network
    below them 5.2 % smaller; the smallest above, 2.8 % larger, is taken (rate control trims the few percent), with
    the same grids: the rounding does not move the grids' share."""
    def planned(align):
        monkeypatch.setattr(sizing, "WIDTH_ALIGN", align)
        return sizing.plan_for_bpp("hinerv", 1280, 720, 96, 0.05, 6)

    plain, chosen = planned(1), planned(8)
    assert plain.arch.widths == (149, 149, 74, 37, 18)
    assert all(w % 8 == 0 for w in chosen.arch.widths)
    assert plain.params < chosen.params <= (1 + sizing.ALIGN_SLACK) * plain.params
    assert chosen.arch.grid_ch == plain.arch.grid_ch
    # blackswan 0.05: rounding up here must not flip the planner to the wider grids either
    monkeypatch.setattr(sizing, "WIDTH_ALIGN", 1)
    plain = sizing.plan_for_bpp("hinerv", 854, 480, 50, 0.05, 6)
    monkeypatch.setattr(sizing, "WIDTH_ALIGN", 8)
    chosen = sizing.plan_for_bpp("hinerv", 854, 480, 50, 0.05, 6)
    assert chosen.arch.grid_ch == plain.arch.grid_ch and chosen.arch.widths != plain.arch.widths


def test_cudnn_algorithm_search_is_on_only_inside_the_block():
    from nvcodec.fit import cudnn_benchmark
    cudnn = torch.backends.cudnn
    before = cudnn.benchmark
    try:
        cudnn.benchmark = False
        with cudnn_benchmark(True):
            assert cudnn.benchmark
        assert not cudnn.benchmark
        cudnn.benchmark = True      # a caller's own choice is kept
        with cudnn_benchmark(False):
            assert cudnn.benchmark
        assert cudnn.benchmark
    finally:
        cudnn.benchmark = before


def test_the_steady_rate_leaves_out_the_first_epoch():
    """The first epoch holds compiling; the rate after it is what the device sustains."""
    from nvcodec.fit import steady_rate
    history = [{"phase": "train", "epoch": 1, "seconds": 40.0}, {"phase": "train", "epoch": 2, "seconds": 41.0},
               {"phase": "train", "epoch": 3, "seconds": 42.0}, {"phase": "eval", "after": "train", "seconds": 43.0},
               {"phase": "prune", "epoch": 1, "seconds": 44.0}]
    assert steady_rate(history, 132) == 132.0          # 2 epochs of 132 frames in 2 s
    assert math.isnan(steady_rate(history[:1], 132))   # one epoch: nothing after the first
    assert math.isnan(steady_rate([{"phase": "train", "epoch": 1, "psnr": 20.0}] * 3, 132))  # untimed (old)


def test_the_recipe_gives_large_dnerv_networks_adan_and_the_rest_adam():
    from nvcodec.fit import recipe
    from nvcodec.models.nerv import ADAN_MIN_PARAMS

    big, small = ADAN_MIN_PARAMS, ADAN_MIN_PARAMS - 1
    assert recipe("medium", "dnerv", big) == dict(optimizer="adan", lr=4e-3, epochs=210, prune_epochs=21)
    assert recipe("medium", "dnerv", small) == dict(optimizer="adam", lr=1e-3, epochs=230, prune_epochs=23)
    assert recipe("slow", "dnerv", big) == dict(optimizer="adan", lr=4e-3, epochs=600, prune_epochs=60)
    for model in ("hnerv", "dsnerv"):  # not measured with Adan
        assert recipe("medium", model, 10 * big)["optimizer"] == "adam"
    # A chosen optimizer brings its own rate and the preset's epochs for it, whatever the size.
    assert recipe("medium", "dnerv", small, "adan") == dict(optimizer="adan", lr=4e-3, epochs=210, prune_epochs=21)
    assert recipe("medium", "dnerv", big, "adam") == dict(optimizer="adam", lr=1e-3, epochs=230, prune_epochs=23)
    with pytest.raises(KeyError):
        recipe("veryslow", "dnerv", big)


def test_a_short_clip_gets_the_steps_of_a_longer_one():
    from nvcodec.fit import STEP_FRAMES, recipe

    short = recipe("medium", "hinerv", 10_000, frames=9)
    assert short["epochs"] * 9 >= 230 * STEP_FRAMES > (short["epochs"] - 1) * 9
    assert short["prune_epochs"] == -(-short["epochs"] * 23 // 230)    # the preset's share, rounded up
    assert recipe("medium", "hinerv", 10_000, frames=STEP_FRAMES)["epochs"] == 230
    assert recipe("medium", "hinerv", 10_000, frames=120)["epochs"] == 230
    assert recipe("fast", "hinerv", 10_000, frames=STEP_FRAMES // 2) == dict(optimizer="adam", lr=3e-3, epochs=200,
                                                                          prune_epochs=20)
    # Epochs the user chose stand.
    assert recipe("medium", "hinerv", 10_000, epochs=5, frames=9)["epochs"] == 5


def test_a_clip_cheaper_than_the_budget_trains_more_epochs_up_to_the_cap():
    from nvcodec.fit import BUDGET_FRAMES, BUDGET_PIXELS, MAX_BUDGET_FACTOR, STEP_FRAMES, budget_factor, recipe

    # The budget's own clip, and a 720p clip a little shorter, keep the preset's epochs (the factor is to a tenth).
    assert budget_factor(BUDGET_FRAMES, BUDGET_PIXELS) == 1.0
    assert recipe("medium", "hinerv", 10_000, frames=96, pixels=1280 * 720)["epochs"] == 230
    # Longer or larger clips never train fewer epochs than the preset's.
    assert budget_factor(300, 1920 * 1080) == 1.0
    # Small frames: the cap (carphone's 120 frames of 176x144, half of 100 frames of 854x480).
    assert recipe("medium", "hinerv", 10_000, frames=120, pixels=176 * 144) == dict(
        optimizer="adam", lr=3e-3, epochs=460, prune_epochs=46)
    assert budget_factor(50, 854 * 480) == MAX_BUDGET_FACTOR
    # In between, the factor falls as the clip's steps grow, and stays within [1, cap].
    factors = [budget_factor(frames, 854 * 480) for frames in (100, 120, 150, 200, 400)]
    assert factors == sorted(factors, reverse=True) and 1.0 < factors[1] < MAX_BUDGET_FACTOR and factors[-1] == 1.0
    # A clip under STEP_FRAMES frames gets the budget on top of the steps of a STEP_FRAMES-frame clip.
    short = recipe("medium", "hinerv", 10_000, frames=9, pixels=320 * 192)
    assert short["epochs"] == round(MAX_BUDGET_FACTOR * -(-230 * STEP_FRAMES // 9))
    # Epochs the user chose stand.
    assert recipe("medium", "hinerv", 10_000, epochs=7, frames=120, pixels=176 * 144)["epochs"] == 7


def test_a_model_may_have_its_own_learning_rate_for_an_optimizer():
    from nvcodec.fit import recipe

    # hinerv's Adam rate is its own 3e-3 (measured, models/hinerv.py); its Adan and DNeRV's Adam keep fit's.
    assert recipe("fast", "hinerv", 10_000) == dict(optimizer="adam", lr=3e-3, epochs=100, prune_epochs=10)
    assert recipe("fast", "hinerv-diff", 10_000)["lr"] == 3e-3
    assert recipe("fast", "hinerv", 10_000, "adan")["lr"] == 4e-3
    assert recipe("fast", "dnerv", 10_000)["lr"] == 1e-3


def test_an_encode_takes_the_recipe_where_the_caller_chose_nothing(tmp_path, testdata, monkeypatch):
    from nvcodec import codec

    clip = testdata / "carphone_qcif_16f.mp4"

    def encode(name, **kw):
        report = codec.encode(clip, tmp_path / name, bpp=1.0, frame_range=(0, 4), device="cpu", progress=False,
                              **{"model": "dnerv", **kw})
        return {k: report["train_options"][k] for k in ("optimizer", "lr", "epochs", "prune_epochs")}

    # A small network: Adam's recipe; what is given wins.
    assert encode("a.dnv", epochs=2, prune_epochs=1) == dict(optimizer="adam", lr=1e-3, epochs=2, prune_epochs=1)
    assert encode("b.dnv", epochs=2, prune_epochs=1, lr=2e-3)["lr"] == 2e-3
    # beta1 is Adam's: giving it keeps Adam even where the network's size would choose Adan.
    monkeypatch.setattr(SPECS["dnerv"], "adan_min_params", 0)
    assert encode("c.dnv", epochs=2, prune_epochs=1) == dict(optimizer="adan", lr=4e-3, epochs=2, prune_epochs=1)
    assert encode("d.dnv", prune_epochs=1, train_options={"epochs": 2, "beta1": 0.5})["optimizer"] == "adam"
    betas, adam = [], torch.optim.Adam          # and beta2 too, which reaches Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda *a, **k: betas.append(k["betas"]) or adam(*a, **k))
    assert encode("f.dnv", prune_epochs=1, train_options={"epochs": 2, "beta2": 0.99})["optimizer"] == "adam"
    assert betas and set(betas) == {(0.9, 0.99)}
    monkeypatch.setattr(torch.optim, "Adam", adam)
    report = codec.encode(clip, tmp_path / "e.dnv", bpp=1.0, frame_range=(0, 4), prune_epochs=1, model="hnerv",
                          train_options={"epochs": 2, "optimizer": "adan"}, device="cpu", progress=False)
    assert (report["train_options"]["optimizer"], report["train_options"]["lr"]) == ("adan", 4e-3)
    assert report["segments"][0]["optimizer"] == "adan"


def test_quantization_aware_fine_tuning_keeps_its_best_evaluated_epoch():
    """The last half of the fine-tuning's epochs are evaluated as the file is measured; the network kept is the best
    of them (the final evaluation equals their maximum), and the choice survives a checkpoint."""
    from nvcodec.fit import Fitter

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (1, 40, 56, 3))
    frames = torch.from_numpy(np.clip(base + np.arange(6)[:, None, None, None] * 9, 0, 255).astype(np.uint8))
    arch = sizing.plan_for_params("hinerv", 56, 40, 0.01, frames=6).arch
    # A high fine-tuning rate at 3 bits, so that the evaluated epochs differ.
    settings = TrainSettings(epochs=4, prune_epochs=6, batch=2, seed=0, finetune_lr=2.0, finetune_pick=0.5)
    fitter = Fitter(frames, arch, settings, torch.device("cpu"), progress=False, quantizer=lambda state, tables: 3.0)
    result = fitter.fit()

    evals = {h["after"]: h["psnr"] for h in result.history if str(h.get("after", "")).startswith("finetune epoch")}
    picked = round(6 * settings.finetune_pick)
    assert sorted(evals) == [f"finetune epoch {e}" for e in range(7 - picked, 7)]
    assert len(set(evals.values())) > 1
    assert result.evaluated_psnr("final") == pytest.approx(max(evals.values()), abs=1e-9)
    fitter._evaluate("again")       # the network left in the fitter is the one that scored it
    assert fitter.history[-1]["psnr"] == pytest.approx(result.evaluated_psnr("final"), abs=1e-6)
    kept = saved_and_read(fitter.state())["finetune_best"]
    assert kept["psnr"] == max(evals.values()) and f"finetune epoch {kept['epoch']}" in evals
    # finetune_pick=0: no epoch is evaluated, and the last one is kept (as before the choice existed).
    unpicked = TrainSettings(epochs=4, prune_epochs=6, batch=2, seed=0, finetune_lr=2.0, finetune_pick=0.0)
    off = Fitter(frames, arch, unpicked, torch.device("cpu"), progress=False, quantizer=lambda state, tables: 3.0)
    plain = off.fit()
    assert not any(str(h.get("after", "")).startswith("finetune epoch") for h in plain.history) and off.best is None
    assert plain.evaluated_psnr("final") == pytest.approx(evals["finetune epoch 6"], abs=1e-9)


def test_an_evaluation_runs_on_the_files_values_and_puts_the_trained_ones_back():
    """During quantization-aware fine-tuning an evaluation runs the decoder and the grids on the values the file would
    store (all rounded at once, `flatgrid.FileValues`): the same PSNR as with them rounded tensor by tensor by the
    grid's definition (`qat.weight_grid` / `qat.table_grid`: integers * scale + offset, what decoding makes of them),
    and the trained values unchanged after."""
    from nvcodec.compress.qat import table_grid, weight_grid
    from nvcodec.fit import Fitter

    frames = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (5, 40, 56, 3)).astype(np.uint8))
    arch = sizing.plan_for_params("hinerv", 56, 40, 0.01, frames=5).arch
    settings = TrainSettings(epochs=2, prune_epochs=2, batch=2, seed=0)
    fitter = Fitter(frames, arch, settings, torch.device("cpu"), progress=False, quantizer=lambda state, tables: 4.0)
    fitter.fit()
    assert fitter.qat_bits == 4.0
    params = dict(fitter.decoder.named_parameters()) | fitter._learned_tables()
    assert set(fitter._learned_tables()) == set(arch.sections)
    trained = {n: p.detach().clone() for n, p in params.items()}
    fitter._evaluate("on the grid")
    assert all(torch.equal(trained[n], p.detach()) for n, p in params.items())
    with torch.no_grad():       # the file's values by hand, tensor by tensor: integers * scale + offset, as decoded
        for n, p in params.items():
            q, scale, offset = (table_grid if n in arch.sections else weight_grid)(p, 4.0)
            p.copy_(q * scale + offset)
    fitter.qat_bits = None      # (so the evaluation does not round again)
    fitter._evaluate("by hand")
    on_grid, by_hand = fitter.history[-2]["psnr"], fitter.history[-1]["psnr"]
    assert on_grid == pytest.approx(by_hand, abs=1e-9)
    # Off the grid the float network differs: the evaluation did run on quantized values.
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(trained[n])
    fitter._evaluate("float")
    assert abs(fitter.history[-1]["psnr"] - on_grid) > 1e-3


def test_the_quantization_aware_fine_tuning_reuses_the_main_phases_compiled_step(monkeypatch):
    """The fine-tuning puts the file's values in the parameters around the step instead of rounding inside it, so
    torch.compile traces no second graph (on an H200 that graph took about 45 s to compile). Traced by dynamo alone
    (the eager backend): the guards, not the code generation, decide whether a graph is traced again."""
    from torch._dynamo.utils import counters

    from nvcodec.fit import Fitter

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **options: real_compile(fn, backend="eager"))
    torch._dynamo.reset()
    counters.clear()
    frames = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (6, 40, 56, 3)).astype(np.uint8))
    arch = sizing.plan_for_params("hinerv", 56, 40, 0.01, frames=6).arch
    settings = TrainSettings(epochs=2, prune_epochs=2, batch=2, seed=0, compile=True, compile_mode="default")
    fitter = Fitter(frames, arch, settings, torch.device("cpu"), progress=False, quantizer=lambda state, tables: 4.0)
    graphs = {}
    start_pruning = fitter._start_pruning

    def counted():
        graphs["main"] = counters["stats"]["unique_graphs"]
        start_pruning()
    fitter._start_pruning = counted
    fitter.fit()
    assert fitter.qat_bits == 4.0 and graphs["main"] == 1
    assert counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()


def test_the_training_compile_keeps_its_modes_settings_and_skips_pointwise_autotuning_unless_asked_for():
    from nvcodec.fit import COMPILE_MODES, compile_options

    options = {mode: compile_options(mode) for mode in COMPILE_MODES}
    assert options["default"] == {"triton.autotune_pointwise": False}
    assert options["reduce-overhead"] == {"triton.cudagraphs": True, "triton.autotune_pointwise": False}
    # The max-autotune modes ask for Inductor's searches: they keep them.
    assert options["max-autotune"]["max_autotune"] and "triton.autotune_pointwise" not in options["max-autotune"]
    assert "triton.autotune_pointwise" not in options["max-autotune-no-cudagraphs"]


def test_the_fine_tuning_goes_back_to_its_best_epoch_when_that_was_not_the_last():
    from nvcodec.fit import Fitter

    scripted = {4: 5.0, 5: 9.0, 6: 1.0}      # evaluated PSNR of fine-tuning epochs 4-6: the 5th is the best
    seen = {}

    class Scripted(Fitter):
        def _evaluate(self, after):
            if not after.startswith("finetune epoch"):
                return super()._evaluate(after)
            epoch = int(after.rsplit(" ", 1)[1])
            seen[epoch] = {k: v.clone() for k, v in self.decoder.state_dict().items()}
            self.history.append({"phase": "eval", "after": after, "psnr": scripted[epoch], "seconds": self._clock()})

    rng = np.random.default_rng(4)
    frames = torch.from_numpy(rng.integers(0, 256, (4, 40, 56, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("hinerv", 56, 40, 0.01, frames=4).arch
    said = []
    fitter = Scripted(frames, arch, TrainSettings(epochs=2, prune_epochs=6, batch=2, seed=0, finetune_pick=0.5),
                      torch.device("cpu"),
                      progress=False, log=said.append, quantizer=lambda state, tables: 4.0)
    result = fitter.fit()
    assert sorted(seen) == [4, 5, 6]
    final = result.decoder.state_dict()
    assert all(torch.equal(final[k], seen[5][k]) for k in seen[5])
    assert any(not torch.equal(seen[6][k], seen[5][k]) for k in seen[5])     # (the last epoch's network differed)
    assert any("kept fine-tuning epoch 5" in line for line in said)


def test_without_pruning_the_quantization_aware_fine_tuning_still_runs():
    from nvcodec.fit import Fitter

    frames = torch.from_numpy(np.random.default_rng(7).integers(0, 256, (4, 24, 32, 3)).astype(np.uint8))
    arch = sizing.plan_for_params("hinerv", 32, 24, 0.005, frames=4).arch
    settings = TrainSettings(epochs=1, prune_epochs=2, prune=0.0, batch=2, seed=0)
    fitter = Fitter(frames, arch, settings, torch.device("cpu"), progress=False, quantizer=lambda state, tables: 6.0)
    fitter.fit()
    assert fitter.qat_bits == 6.0 and fitter.masks == {}
    assert sum(h["phase"] == "prune" for h in fitter.history) >= 2
