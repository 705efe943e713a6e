"""benchmarks.train_probe: --compile-times (Dynamo's phase accounting, longest first, or one line where it has none),
--compile-profile, --inductor (one of Inductor's settings by its dotted name) and --rate."""
import pytest
import torch._dynamo.utils

from benchmarks import train_probe


def test_phases_longest_first_and_a_line_where_none_were_recorded(monkeypatch, capsys):
    table = "TorchDynamo compilation metrics:\nFunction, Runtimes (s)\ncompile_fx_inner, 2.5\n_compile.compile_inner, 3.0\n"
    monkeypatch.setattr(torch._dynamo.utils, "compile_times", lambda repr, aggregate: table)
    train_probe.print_compile_times(1)
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["3.00", "_compile.compile_inner"] and len(out) == 2
    monkeypatch.setattr(torch._dynamo.utils, "compile_times", lambda repr, aggregate: table.split("compile_fx")[0])
    train_probe.print_compile_times(5)
    assert "recorded none" in capsys.readouterr().out


def test_the_first_step_profile_names_the_compiler_functions_it_spent_time_in(capsys):
    """A step that compiles a small function (eager backend: no C++ toolchain needed): the profile's table must list
    Dynamo's functions."""
    import torch

    compiled = torch.compile(lambda x: (x * 2).sin().sum(), backend="eager")
    train_probe.first_step_profile(lambda: compiled(torch.randn(8)), torch.device("cpu"), 5)
    out = capsys.readouterr().out
    assert out.startswith("first step under cProfile:") and "_dynamo" in out and "cumtime" in out


def test_an_inductor_setting_is_set_by_its_dotted_name_and_an_unknown_one_is_refused(monkeypatch):
    import torch._inductor.config as config

    from nvcodec import fit

    monkeypatch.setattr(config.triton, "autotune_pointwise", False)
    monkeypatch.setattr(fit, "INDUCTOR_OPTIONS", dict(fit.INDUCTOR_OPTIONS))
    train_probe.set_inductor("triton.autotune_pointwise=True")
    # The probe's setting wins over the one the training step's compile would pass itself.
    assert config.triton.autotune_pointwise is True
    assert "triton.autotune_pointwise" not in fit.compile_options("reduce-overhead")
    with pytest.raises(SystemExit, match="has no triton.no_such_setting"):
        train_probe.set_inductor("triton.no_such_setting=1")
    with pytest.raises(SystemExit, match="has no no_such_group.x"):
        train_probe.set_inductor("no_such_group.x=1")


def test_the_rate_aware_step_is_timed_with_its_entropy_models_upkeep():
    """--rate on: the step is rate-aware training's (learned steps on noisy values, the rate term every
    `learned.RATE_EVERY` steps, the models refitted after), started before the first step."""
    import numpy as np
    import torch

    from nvcodec import sizing
    from nvcodec.compress import learned

    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    arch = sizing.plan_for_params("hinerv", 48, 32, 3000, frames=3).arch
    f, step = train_probe.fitter_and_step(frames, arch, 1, "eager", torch.device("cpu"), rate_bpp=0.5)
    assert f.rate_on and f.rate.model.noisy and f.rate.target_bytes == int(0.5 * 3 * 32 * 48 / 8)
    for _ in range(learned.RATE_EVERY):
        step()
    assert int(f.rate.model.steps) == learned.RATE_EVERY
    plain, _ = train_probe.fitter_and_step(frames, arch, 1, "eager", torch.device("cpu"))
    assert not plain.rate_on
