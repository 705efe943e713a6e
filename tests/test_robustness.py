"""Long encodes survive trouble: interruption and resume, running out of memory, diverging training;
decoding is deterministic and fits the memory it has. All on the CPU with tiny schedules."""
from __future__ import annotations

import math
import os
import signal

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from nvcodec import codec, decoding, memory
from nvcodec.bitstream import BitstreamError
from nvcodec.cli import main
from nvcodec.codec import checkpoint_path
from nvcodec.fit import Fitter, Interrupted, lr_at

# Batch 2 (not the default 1): the step counts below (where an interrupt lands) are written for it.
FAST = dict(model_size=3e3, epochs=4, prune_epochs=2, lr=5e-3, batch=2, device="cpu", progress=False)
CLI_FAST = ["--model-size", "3000", "--epochs", "4", "--prune-epochs", "2", "--lr", "5e-3", "--batch", "2",
            "--device", "cpu", "-q"]
# 4 frames at batch 2: 2 steps an epoch; steps 1-8 train, 9-12 fine-tune after pruning.

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def carphone(testdata, tmp_path_factory):
    """4 frames of carphone cropped to 64x48 (fast to fit)."""
    from nvcodec.video import read_video, write_video
    frames, info = read_video(testdata / "carphone_qcif_16f.mp4", frame_range=(0, 4))
    path = tmp_path_factory.mktemp("clip") / "small.y4m"
    write_video(path, frames[:, 40:88, 56:120].copy(), info.fps)
    return path


@pytest.fixture(scope="module")
def reference(carphone, tmp_path_factory):
    """An uninterrupted encode: (file bytes, report)."""
    out = tmp_path_factory.mktemp("ref") / "ref.dnv"
    report = codec.encode(carphone, out, **FAST)
    return out.read_bytes(), report


def stop_at(*steps, action=None):
    """A Fitter.after_step hook that interrupts (or runs `action`) after the given global step numbers."""
    count = [0]

    def hook(fitter):
        count[0] += 1
        if count[0] in steps:
            if action is None:
                raise KeyboardInterrupt
            action(fitter)
    return hook


def assert_one_line_error(result, fragment):
    """Exit status 1 and, after the log lines, one `Error: ...` line (no traceback)."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("Error: ") and fragment in lines[-1], result.stderr
    assert sum(line.startswith("Error") for line in lines) == 1 and "Traceback" not in result.output


def test_interrupt_and_resume_is_bit_identical(carphone, reference, tmp_path, monkeypatch):
    """Ctrl-C in training and in fine-tuning, resumed each time: the same file as without interruption."""
    out = tmp_path / "out.dnv"
    monkeypatch.setattr(Fitter, "after_step", stop_at(3, 11))
    with pytest.raises(Interrupted):                      # mid-epoch 2 of training
        codec.encode(carphone, out, **FAST)
    assert checkpoint_path(out).is_file() and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dnv.ckpt"]   # no partial file of any kind
    runner = CliRunner()
    r = runner.invoke(main, ["encode", str(carphone), "-o", str(out), *CLI_FAST, "--resume"])
    assert r.exit_code == 130, r.output                   # again, in fine-tuning, through the command line
    assert "Interrupted; resume with: dnv encode" in r.stderr and "--resume" in r.stderr
    assert "resuming from" in r.stderr and not out.exists()
    logs = []
    report = codec.encode(carphone, out, resume=True, log=logs.append, **FAST)   # hook done: runs to the end
    assert any("prune epoch 2, 2/4 frames in" in m for m in logs), logs
    assert report["resumed"] and not checkpoint_path(out).exists()
    assert out.read_bytes() == reference[0]
    assert report["psnr"] == reference[1]["psnr"]


def test_killed_encode_resumes_from_the_periodic_checkpoint(carphone, reference, tmp_path, monkeypatch):
    """A kill leaves the last periodic checkpoint (here: every step, the last after the last step of
    training, before its epoch is closed); resuming from it gives the same file."""
    out = tmp_path / "out.dnv"

    def kill(fitter):
        raise SystemExit("killed")         # no checkpoint is written on the way out, as with SIGKILL
    monkeypatch.setattr(Fitter, "after_step", stop_at(9, action=kill))
    with pytest.raises(SystemExit):
        codec.encode(carphone, out, checkpoint_every=1e-9, **FAST)
    assert checkpoint_path(out).is_file() and not out.exists()
    monkeypatch.setattr(Fitter, "after_step", None)
    codec.encode(carphone, out, resume=True, **FAST)
    assert out.read_bytes() == reference[0]


def test_sigint_stops_at_the_end_of_a_step(carphone, tmp_path, monkeypatch):
    out = tmp_path / "out.dnv"
    before = signal.getsignal(signal.SIGINT)   # Python's handler, or SIG_IGN where a shell started us in the background
    monkeypatch.setattr(Fitter, "after_step", stop_at(2, action=lambda f: os.kill(os.getpid(), signal.SIGINT)))
    with pytest.raises(Interrupted) as e:
        codec.encode(carphone, out, **FAST)
    assert e.value.checkpoint == checkpoint_path(out) and e.value.checkpoint.is_file()
    assert signal.getsignal(signal.SIGINT) is before     # handler given back


def signal_in_first_step(signum, went_on: list):
    """A Fitter._step that sends `signum` to this process in the first step it runs (as a GPU encode's first step,
    which compiles for a minute or more) and notes in `went_on` whether that step went on past it."""
    real, calls = Fitter._step, [0]

    def step(fitter, idx, lr):
        calls[0] += 1
        if calls[0] == 1:
            os.kill(os.getpid(), signum)
            went_on.append(True)
        return real(fitter, idx, lr)
    return step


def test_a_signal_in_the_first_step_stops_at_once(carphone, reference, tmp_path, monkeypatch):
    """Before a process's first step has ended, Ctrl-C / SIGTERM stop at once: nothing is saved where nothing was,
    and a checkpoint resumed from is left as it was (and still resumes to the same file)."""
    out, went_on, real = tmp_path / "out.dnv", [], Fitter._step
    monkeypatch.setattr(Fitter, "_step", signal_in_first_step(signal.SIGTERM, went_on))
    with pytest.raises(KeyboardInterrupt) as e:
        codec.encode(carphone, out, **FAST)
    assert not isinstance(e.value, Interrupted) and e.value.signum == signal.SIGTERM and not went_on
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Fitter, "_step", real)
    monkeypatch.setattr(Fitter, "after_step", stop_at(3))
    with pytest.raises(Interrupted):
        codec.encode(carphone, out, **FAST)
    saved = checkpoint_path(out).read_bytes()
    monkeypatch.setattr(Fitter, "after_step", None)
    monkeypatch.setattr(Fitter, "_step", signal_in_first_step(signal.SIGINT, went_on))
    with pytest.raises(Interrupted) as e:
        codec.encode(carphone, out, resume=True, **FAST)
    assert e.value.checkpoint == checkpoint_path(out) and e.value.signum == signal.SIGINT and not went_on
    assert checkpoint_path(out).read_bytes() == saved and not out.exists()
    monkeypatch.setattr(Fitter, "_step", real)
    codec.encode(carphone, out, resume=True, **FAST)
    assert out.read_bytes() == reference[0]


def test_resume_refuses_another_encodes_checkpoint(carphone, tmp_path, monkeypatch, old_checkpoint):
    out = tmp_path / "out.dnv"
    monkeypatch.setattr(Fitter, "after_step", stop_at(2))
    with pytest.raises(Interrupted):
        codec.encode(carphone, out, **FAST)
    monkeypatch.setattr(Fitter, "after_step", None)
    r = CliRunner().invoke(main, ["encode", str(carphone), "-o", str(out), *CLI_FAST, "--epochs", "5", "--resume"])
    assert_one_line_error(r, "cannot resume")
    assert "epochs 4 there, 5 here" in r.stderr
    checkpoint_path(out).write_bytes(b"not a checkpoint")
    r = CliRunner().invoke(main, ["encode", str(carphone), "-o", str(out), *CLI_FAST, "--resume"])
    assert_one_line_error(r, "not a readable dnv checkpoint")
    old_checkpoint(checkpoint_path(out))        # left by an earlier version of dnv
    r = CliRunner().invoke(main, ["encode", str(carphone), "-o", str(out), *CLI_FAST, "--resume"])
    assert_one_line_error(r, "is a checkpoint of an earlier version of dnv")
    assert not out.exists()


def test_out_of_memory_lowers_the_batch(carphone, reference, tmp_path, monkeypatch):
    real_step = Fitter._step
    calls = []

    def step(self, idx, lr):
        calls.append(self.batch)
        if len(calls) == 3:       # once, in the second epoch
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return real_step(self, idx, lr)
    monkeypatch.setattr(Fitter, "_step", step)
    logs = []
    report = codec.encode(carphone, tmp_path / "o.dnv", log=logs.append, **FAST)
    assert "note: out of cpu memory at batch 2; continuing with batch 1" in logs
    assert calls[2:4] == [2, 1] and report["batch"] == 1
    assert math.isfinite(report["psnr"]) and report["psnr"] > reference[1]["psnr"] - 3


def test_out_of_memory_at_batch_one_names_the_memory_needed(carphone, tmp_path, monkeypatch):
    def step(self, idx, lr):
        raise torch.OutOfMemoryError("out of memory")
    monkeypatch.setattr(Fitter, "_step", step)
    r = CliRunner().invoke(main, ["encode", str(carphone), "-o", str(tmp_path / "o.dnv"), *CLI_FAST])
    assert_one_line_error(r, "even at batch 1")
    assert "needs about" in r.stderr and "iB" in r.stderr
    assert not any(tmp_path.iterdir())


def test_nan_divergence_rolls_back_with_a_lower_learning_rate(carphone, tmp_path, monkeypatch):
    def poison(fitter):
        with torch.no_grad():
            for p in fitter.decoder.parameters():
                p.fill_(float("nan"))
    monkeypatch.setattr(Fitter, "after_step", stop_at(5, action=poison))    # in epoch 3
    rates, step = [], Fitter._step

    def recording_step(self, idx, lr):
        rates.append(lr)
        return step(self, idx, lr)
    monkeypatch.setattr(Fitter, "_step", recording_step)
    logs = []
    report = codec.encode(carphone, tmp_path / "o.dnv", log=logs.append, **FAST)
    line = next(m for m in logs if "diverged" in m)
    assert "training diverged at train epoch 3 (PSNR" in line and "-> nan dB); rolled back to epoch 2" in line
    assert report["rollbacks"] == 1 and math.isfinite(report["psnr"])
    # The schedule of the 8 training steps (warm-up 1 step, then cosine); epoch 3 is steps 4 and 5.
    schedule = [lr_at(s, 8, 1, 5e-3) for s in range(8)]
    cap = max(schedule[4:6]) / 2
    assert line.endswith(f"learning rate now at most {cap:.3g}")
    # Steps 1-6 ran (epoch 3 failed), then epoch 3 again under the cap, then epoch 4, where the schedule has
    # fallen below the cap and is followed again.
    assert rates[:6] == pytest.approx(schedule[:6])
    assert rates[6:8] == pytest.approx([cap, cap])
    assert schedule[6] < cap and rates[8:10] == pytest.approx(schedule[6:8])


def test_psnr_collapse_rolls_back(carphone, tmp_path, monkeypatch):
    def blackout(fitter):          # a saturated head: black frames, no gradient to climb back with
        with torch.no_grad():
            fitter.decoder.head.bias.fill_(-1e4)
    monkeypatch.setattr(Fitter, "after_step", stop_at(7, action=blackout))   # first step of epoch 4
    logs = []
    report = codec.encode(carphone, tmp_path / "o.dnv", log=logs.append, **FAST)
    assert any("training diverged at train epoch 4" in m and "rolled back to epoch 3" in m for m in logs), logs
    assert report["rollbacks"] == 1


# --- decoding ---------------------------------------------------------------------------------------

def test_decoding_is_deterministic_and_fits_the_memory_it_has(reference, monkeypatch):
    data = reference[0]
    cpu = torch.device("cpu")
    runs = [np.concatenate(list(decoding.render(decoding.load(data, cpu), cpu))) for _ in range(2)]
    assert np.array_equal(runs[0], runs[1])
    loaded = decoding.load(data, cpu)
    per_frame = memory.decode_bytes_per_frame(loaded.header.arch)
    # Room for two frames: batches of two, the same frames.
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2.6 * per_frame / 0.8)
    batches = list(decoding.render(loaded, cpu, batch=8))
    assert [len(b) for b in batches] == [2, 2]
    assert np.array_equal(np.concatenate(batches), runs[0])
    monkeypatch.setattr(memory, "available_bytes", lambda device: per_frame / 2)
    with pytest.raises(BitstreamError, match=r"decoding one 64x48 frame needs .* of memory"):
        next(decoding.render(loaded, cpu))


def test_video_that_does_not_fit_on_the_device_stays_in_host_memory(carphone, reference, tmp_path, monkeypatch):
    import nvcodec.fit as fit
    real_pad = fit.pad_frames
    calls = []

    def pad(frames, arch, device):
        calls.append(device)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("out of memory")
        return real_pad(frames, arch, device)
    monkeypatch.setattr(fit, "pad_frames", pad)
    logs = []
    codec.encode(carphone, tmp_path / "o.dnv", log=logs.append, **FAST)
    assert any("does not fit in cpu memory; keeping it in host memory" in m for m in logs), logs
    assert (tmp_path / "o.dnv").read_bytes() == reference[0]


def test_decoding_halves_its_batch_when_the_device_runs_out(reference, monkeypatch):
    cpu = torch.device("cpu")
    loaded = decoding.load(reference[0], cpu)
    expected = np.concatenate(list(decoding.render(loaded, cpu)))
    real_forward, calls = loaded.decoder.forward, []

    def forward(*inputs):
        calls.append(len(inputs[0]))
        if len(inputs[0]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_forward(*inputs)
    monkeypatch.setattr(loaded.decoder, "forward", forward)
    batches = list(decoding.render(loaded, cpu, batch=4))
    assert calls == [4, 2, 1, 1, 1, 1] and np.array_equal(np.concatenate(batches), expected)


def test_a_checkpoint_that_cannot_be_written_does_not_stop_training(carphone, reference, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    logs = []
    codec.encode(carphone, tmp_path / "o.dnv", log=logs.append, checkpoint_every=1e-9, **FAST)
    assert any("could not write the checkpoint" in m and "No space left on device" in m for m in logs)
    assert (tmp_path / "o.dnv").read_bytes() == reference[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.dnv"]
