"""hinerv-diff: DNeRV's difference stream on the HiNeRV-class network, on the CPU with a tiny schedule; and hinerv's
network, which it shares, as files hold it."""
from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec import codec, decoding, sizing
from nvcodec.cli import main
from nvcodec.compress.flatgrid import FileValues
from nvcodec.fit import Interrupted, Trainer, TrainSettings
from nvcodec.flops import decoder_flops, training_flops
from nvcodec.models import Decoder
from nvcodec.models.training import TablesAndDiff

BPP = 0.5
FRAMES = 6

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def carphone(testdata):
    return testdata / "carphone_qcif_16f.mp4"


@pytest.fixture(scope="module")
def encoded(carphone, tmp_path_factory):
    out = tmp_path_factory.mktemp("hinerv_diff") / "carphone.dnv"
    report = codec.encode(carphone, out, model="hinerv-diff", bpp=BPP, frame_range=(0, FRAMES), epochs=8,
                          prune_epochs=2, lr=3e-3, device="cpu", progress=False)
    return out, report


def small_arch(model="hinerv-diff"):
    return sizing.plan_for_params(model, 64, 48, 2e4, frames=4).arch


def test_round_trip_decodes_what_the_encoder_reports_near_the_target_rate(encoded, carphone, tmp_path):
    path, report = encoded
    assert report["model"] == "hinerv-diff"
    assert abs(report["bpp"] / BPP - 1) <= 0.10, report["bpp"]
    decoded = codec.decode(path, tmp_path / "rec.mkv", ref=carphone, ref_range=(0, FRAMES), device="cpu")
    assert decoded["psnr"] == pytest.approx(report["psnr"], abs=0.01)


def test_info_names_the_model_and_its_diff_stream(encoded):
    path, _ = encoded
    text = CliRunner().invoke(main, ["info", str(path)])
    assert text.exit_code == 0, text.output
    assert "HiNeRV-diff" in text.output and "the difference embeddings join after stage 1" in text.output
    record = json.loads(CliRunner().invoke(main, ["info", "--json", str(path)]).output)
    header, _ = codec.bitstream.unpack(path.read_bytes())
    arch = header.arch
    assert record["model"] == "hinerv-diff" and record["fuse_stage"] == 0 and record["diff_up"] == arch.strides[0]
    assert record["diff_embedding"] == list(arch.diff_shape) == [2, *arch.content_shape[1:]]
    assert list(record["tables"]) == ["GRID0", "GRID1", "LOCAL", "DIFF"]
    assert record["tables"]["DIFF"] == [FRAMES, *arch.diff_shape]


def test_each_frame_depends_on_its_own_diff_embedding(encoded):
    path, _ = encoded
    loaded = decoding.load(path.read_bytes(), torch.device("cpu"))
    before = np.concatenate(list(decoding.render(loaded, torch.device("cpu"))))
    loaded.tables["DIFF"][2] += 1.0
    after = np.concatenate(list(decoding.render(loaded, torch.device("cpu"))))
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert changed == [i == 2 for i in range(FRAMES)]


def test_hinerv_keeps_its_state_dict_and_hinerv_diff_adds_the_diff_stream_before_the_head():
    arch = small_arch()
    plain = dataclasses.replace(arch, model="hinerv", fuse_stage=2, diff_up=4, diff_kernel=3, ccu_kernel=3)
    hinerv_keys = list(Decoder(plain).state_dict())
    expected = ["stem.weight", "stem.bias",
                *(f"local.{i}.{p}" for i in range(len(arch.strides)) for p in ("weight", "bias")),
                *(f"stages.{i}.{j}.{layer}.{p}" for i, depth in enumerate(arch.depths) for j in range(depth)
                  for layer in ("dwconv", "norm", "pw1", "pw2") for p in ("weight", "bias")),
                "head.weight", "head.bias"]
    assert hinerv_keys == expected
    diff_stream = ["ccu.from_content.weight", "ccu.from_content.bias", "ccu.from_diff.weight"]
    assert list(Decoder(arch).state_dict()) == hinerv_keys[:-2] + diff_stream + hinerv_keys[-2:]


def test_training_inputs_learn_the_grids_and_encode_the_diffs():
    arch, frames = small_arch(), 4
    settings = SimpleNamespace(code_lr_scale=30.0, enc_dim=8)
    inputs = TablesAndDiff(arch, frames, settings)
    decoder = Decoder(arch)
    (groups,) = inputs.param_groups(decoder)
    assert [len(g["params"]) for g in groups] == [len(list(inputs.encoder.parameters()))
                                                  + len(list(decoder.parameters())), 3]
    assert groups[1]["lr_scale"] == 30.0 and set(inputs.learned_table_params()) == {"GRID0", "GRID1", "LOCAL"}
    video = torch.randint(0, 256, (frames, 3, *arch.padded_size), dtype=torch.uint8)
    batch = inputs.batch(video, torch.tensor([0, 2]), torch.device("cpu"))
    assert torch.equal(inputs.reference(batch), video[[0, 2]].float() / 255)
    plain = inputs.decoder_inputs(batch)
    with FileValues()(decoder, inputs.learned_table_params(), 3):       # as quantization-aware fine-tuning runs
        rounded = inputs.decoder_inputs(batch)
    assert [tuple(x.shape[1:]) for x in plain] == [shape[1:] for shape in arch.section_shapes(frames).values()]
    assert all(not torch.equal(a, b) for a, b in zip(plain[:3], rounded[:3]))   # the grids as the file holds them
    assert torch.equal(plain[3], rounded[3])        # the encoder's outputs are not stored, so not quantized
    tables = inputs.tables(video, torch.device("cpu"), 3)
    assert {name: tuple(t.shape) for name, t in tables.items()} == arch.section_shapes(frames)
    assert list(tables) == list(arch.sections)


def test_the_planner_counts_the_diff_table_and_the_diff_encoder_is_counted_in_training():
    arch = small_arch()
    grids_only = dataclasses.replace(arch, model="hinerv")
    diff_values = FRAMES * math.prod(arch.diff_shape)
    assert sizing.embedding_bytes(arch, FRAMES, 6) == pytest.approx(
        sizing.embedding_bytes(grids_only, FRAMES, 6) + diff_values * (6 - 4.0) / 8)
    assert training_flops(arch) > 3 * decoder_flops(arch)
    # At 0.05 bpp the diff embeddings lie on the base grid: a few values a frame beside the budget.
    plan = sizing.plan_for_bpp("hinerv-diff", 1280, 720, 96, 0.05, 6)
    assert plan.arch.diff_shape == (2, 18, 32) and plan.arch.fuse_stage == 0
    assert plan.predicted_bytes == pytest.approx(0.05 * 1280 * 720 * 96 / 8, rel=0.05)


def test_training_resumes_from_a_checkpoint_bit_identically(tmp_path, monkeypatch):
    """The grids, the diff encoder and both parameter groups' optimizer state are in the checkpoint."""
    arch = sizing.plan_for_params("hinerv-diff", 48, 32, 3e3, frames=4).arch
    video = torch.randint(0, 256, (4, 32, 48, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)

    def run(path=None, resume=False) -> Trainer:
        trainer = Trainer(video, arch, TrainSettings(epochs=3, prune_epochs=2, batch=2, lr=5e-3),
                          torch.device("cpu"), progress=False, log=lambda m: None, checkpoint=path, resume=resume)
        trainer.fit()
        return trainer

    steps = []

    def stop_at_step_5(trainer):
        steps.append(trainer.pos)
        if len(steps) == 5:
            raise KeyboardInterrupt

    whole = run()
    monkeypatch.setattr(Trainer, "after_step", stop_at_step_5)
    with pytest.raises(Interrupted):
        run(tmp_path / "t.ckpt")
    monkeypatch.setattr(Trainer, "after_step", None)
    resumed = run(tmp_path / "t.ckpt", resume=True)
    assert resumed.resumed
    pairs = [*zip(whole.decoder.state_dict().values(), resumed.decoder.state_dict().values()),
             *zip(whole.tables().values(), resumed.tables().values())]
    assert all(torch.equal(a, b) for a, b in pairs)
