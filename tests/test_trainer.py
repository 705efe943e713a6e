"""The training loop serves any model through its registry entry, and its checkpoints are state dicts
(`torch.save`, read back with `torch.load(weights_only=True)`) for any number of optimizers; a checkpoint
that is not this encode's, or not this version's, is refused with one line. Tiny networks on the CPU."""
from __future__ import annotations

import dataclasses
import fractions
import json

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.fit import Interrupted, Trainer, TrainingError, TrainSettings
from nvcodec.models import SPECS, registry
from nvcodec.models.training import LearnedTables
from nvcodec.train import checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")
CPU = torch.device("cpu")


def frames(seed: int = 0, count: int = 4) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 32, 48, 3))
    return torch.from_numpy(np.clip(base + np.arange(count)[:, None, None, None] * 11, 0, 255).astype(np.uint8))


def settings(**kw) -> TrainSettings:
    return TrainSettings(**{"epochs": 3, "prune_epochs": 2, "batch": 2, "lr": 5e-3, **kw})


class TablesWithTheirOwnOptimizer(LearnedTables):
    """Learnable tables trained by a second optimizer (a model the loop was not written for)."""

    def param_groups(self, decoder):
        return [[{"params": list(decoder.parameters())}],
                [{"params": list(self.module.parameters()), "lr_scale": 10.0}]]


@pytest.fixture
def toy(monkeypatch):
    """A model registered for the test only: HNeRV's decoder fed by learnable tables with their own optimizer."""
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    monkeypatch.setattr(registry, "_BY_ID", dict(registry._BY_ID))
    hnerv = SPECS["hnerv"]
    registry.register(dataclasses.replace(hnerv, name="toy", model_id=201, training=TablesWithTheirOwnOptimizer))
    return dataclasses.replace(sizing.plan_for_params("hnerv", 48, 32, 3e3, frames=4).arch, model="toy")


def stop_after(step: int):
    count = [0]

    def hook(trainer):
        count[0] += 1
        if count[0] == step:
            raise KeyboardInterrupt
    return hook


def run(arch, path=None, resume=False, quantizer=None, **kw) -> Trainer:
    trainer = Trainer(frames(), arch, settings(**kw), CPU, progress=False, log=lambda m: None, checkpoint=path,
                      resume=resume, quantizer=quantizer)
    trainer.fit()
    return trainer


def interrupted(arch, path, step: int, monkeypatch, **kw) -> dict:
    """Run until step `step`, where the run is stopped (its checkpoint written); the checkpoint as saved."""
    monkeypatch.setattr(Trainer, "after_step", stop_after(step))
    with pytest.raises(Interrupted):
        run(arch, path, **kw)
    monkeypatch.setattr(Trainer, "after_step", None)
    return torch.load(path, weights_only=True)


def same_result(a: Trainer, b: Trainer) -> bool:
    weights = zip(a.decoder.state_dict().values(), b.decoder.state_dict().values())
    tables = zip(a.tables().values(), b.tables().values())
    return all(torch.equal(x, y) for x, y in [*weights, *tables]) and a.history[-1]["psnr"] == b.history[-1]["psnr"]


def test_a_model_with_two_optimizers_trains_and_resumes_bit_identically(toy, tmp_path, monkeypatch):
    reference = run(toy)
    assert len(reference.optimizers) == 2 and reference.optimizers[1].param_groups[0]["lr_scale"] == 10.0
    path = tmp_path / "toy.ckpt"
    # 4 frames at batch 2: steps 1-6 train, 7-10 fine-tune. Stop at step 3 (epoch 2 of training), then 6 steps
    # into the resumed run, at step 9 (in the fine-tuning after pruning).
    for step in (3, 6):
        monkeypatch.setattr(Trainer, "after_step", stop_after(step))
        with pytest.raises(Interrupted):
            run(toy, path, resume=step == 6)
    saved = torch.load(path, weights_only=True)
    assert saved["format"] == checkpoint.FORMAT and len(saved["state"]["optimizers"]) == 2
    assert saved["state"]["loop"]["phase"] == "prune" and saved["state"]["masks"]
    monkeypatch.setattr(Trainer, "after_step", None)
    resumed = run(toy, path, resume=True)
    assert resumed.resumed and same_result(resumed, reference)


def test_a_resume_within_the_fine_tunings_evaluated_epochs_keeps_the_same_best_epoch(toy, tmp_path, monkeypatch):
    """Quantization-aware fine-tuning evaluates its last epochs and keeps the best: a resume from a checkpoint taken
    after one of them carries that choice (4 frames at batch 2: steps 1-6 train, 7-14 fine-tune, epochs 3-4 of
    the fine-tuning evaluated; stopped at step 13, after epoch 3's evaluation)."""
    kw = dict(prune_epochs=4, quantizer=lambda state, tables: 4.0, finetune_lr=2.0, finetune_pick=0.5)
    reference = run(toy, **kw)
    path = tmp_path / "toy.ckpt"
    saved = interrupted(toy, path, 13, monkeypatch, **kw)
    assert saved["state"]["finetune_best"]["epoch"] == 3
    resumed = run(toy, path, resume=True, **kw)
    assert resumed.resumed and same_result(resumed, reference)
    assert resumed.best["epoch"] == reference.best["epoch"] and resumed.best["psnr"] == reference.best["psnr"]


def test_a_resume_with_oscillating_values_frozen_is_bit_identical(toy, tmp_path, monkeypatch):
    """`freeze`: the frozen values, the oscillation counts and the step count travel in the checkpoint (4 frames at
    batch 2: steps 1-6 train, 7-30 fine-tune, a check every 4 steps; stopped at step 27, between two checks, after
    values were frozen)."""
    kw = dict(prune_epochs=12, quantizer=lambda state, tables: 4.0, finetune_lr=2.0, freeze=0.01)
    reference = run(toy, **kw)
    assert reference.freezer.frozen() > 0
    assert [h["frozen"] for h in reference.history if h["phase"] == "prune"][-1] == reference.freezer.frozen()
    path = tmp_path / "toy.ckpt"
    saved = interrupted(toy, path, 27, monkeypatch, **kw)
    assert saved["state"]["freeze"]["steps"] == 21
    assert sum(int(st["frozen"].sum()) for st in saved["state"]["freeze"]["tensors"].values()) > 0
    resumed = run(toy, path, resume=True, **kw)
    assert resumed.resumed and same_result(resumed, reference)
    assert resumed.freezer.frozen() == reference.freezer.frozen()


def test_a_checkpoint_holds_state_dicts_and_plain_values_only_and_resumes_bit_identically(tmp_path, monkeypatch):
    arch = sizing.plan_for_params("dnerv", 48, 32, 3e3, frames=4).arch
    path = tmp_path / "d.ckpt"
    monkeypatch.setattr(Trainer, "after_step", stop_after(5))
    with pytest.raises(Interrupted):
        run(arch, path, optimizer="adan")
    saved = torch.load(path, weights_only=True)           # would raise on anything but tensors and plain values
    state = saved["state"]
    assert set(state) == {"modules", "optimizers", "masks", "loop", "recovery", "qat_bits", "finetune_best", "rate",
                          "freeze", "rng"}
    decoder = SPECS["dnerv"].decoder(arch).state_dict()
    assert state["modules"]["decoder"].keys() == decoder.keys()
    assert any(k.startswith("content.") for k in state["modules"]["inputs"])    # DNeRV's encoders
    [adan] = state["optimizers"]
    assert int(adan["param_groups"][0]["step"]) == 5 and adan["state"]
    assert (state["loop"]["phase"], state["loop"]["epoch"], state["loop"]["pos"]) == ("train", 2, 2)
    assert json.loads(saved["identity"])["arch"]["model"] == "dnerv"
    monkeypatch.setattr(Trainer, "after_step", None)
    assert same_result(run(arch, path, resume=True, optimizer="adan"), run(arch, optimizer="adan"))


def test_another_video_or_setting_is_refused_with_one_line(tmp_path, monkeypatch):
    arch = sizing.plan_for_params("hinerv", 48, 32, 3e3, frames=4).arch
    path = tmp_path / "h.ckpt"
    monkeypatch.setattr(Trainer, "after_step", stop_after(2))
    with pytest.raises(Interrupted):
        run(arch, path)
    monkeypatch.setattr(Trainer, "after_step", None)
    with pytest.raises(TrainingError, match="another video or frame range"):
        Trainer(frames(seed=1), arch, settings(), CPU, progress=False, checkpoint=path, resume=True)
    with pytest.raises(TrainingError, match=r"other training settings \(lr 0.005 there, 0.001 here\)"):
        Trainer(frames(), arch, settings(lr=1e-3), CPU, progress=False, checkpoint=path, resume=True)
    other = sizing.plan_for_params("hinerv", 48, 32, 6e3, frames=4).arch
    with pytest.raises(TrainingError, match="another network"):
        Trainer(frames(), other, settings(), CPU, progress=False, checkpoint=path, resume=True)


@pytest.mark.parametrize("content, says", [
    ("safetensors", "is a checkpoint of an earlier version of dnv"),
    ("future", "is of checkpoint format 99, this dnv reads format 4"),
    ("code", "is not a readable dnv checkpoint (UnpicklingError"),    # weights_only: no object is built
    ("other", "is not a dnv checkpoint"),
    ("empty", "is not a readable dnv checkpoint"),
])
def test_a_checkpoint_of_another_version_or_kind_is_refused_with_one_line(tmp_path, old_checkpoint, content, says):
    path = tmp_path / "x.ckpt"
    if content == "safetensors":        # as dnv wrote them before (format 3)
        old_checkpoint(path)
    elif content == "future":
        torch.save({"kind": checkpoint.KIND, "format": 99, "identity": "{}", "state": {}}, path)
    elif content == "code":
        torch.save({"kind": checkpoint.KIND, "format": checkpoint.FORMAT, "x": fractions.Fraction(1, 3)}, path)
    elif content == "other":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(b"")
    arch = sizing.plan_for_params("dnerv", 48, 32, 3e3, frames=4).arch
    with pytest.raises(TrainingError) as e:
        Trainer(frames(), arch, settings(), CPU, progress=False, checkpoint=path, resume=True)
    message = str(e.value)
    assert message.startswith(f"cannot resume: {path} ") and says in message and "\n" not in message


def test_every_model_says_how_it_is_trained(monkeypatch):
    from nvcodec.models.training import FrameTriplets, TablesAndDiff
    assert {name: spec.training for name, spec in SPECS.items()} == {
        "hnerv": FrameTriplets, "dnerv": FrameTriplets, "dsnerv": LearnedTables, "hinerv": LearnedTables,
        "hinerv-diff": TablesAndDiff}
    assert [spec.learned_tables for spec in SPECS.values()] == [False, False, True, True, False]
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    monkeypatch.setattr(registry, "_BY_ID", dict(registry._BY_ID))
    with pytest.raises(ValueError, match="does not say how it is trained"):
        registry.register(dataclasses.replace(SPECS["hnerv"], name="untrained", model_id=202, training=None))
