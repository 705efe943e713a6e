"""What dnv writes, and when it refuses to: existing outputs, outputs that are the input, outputs that cannot be
written (found before training), two encodes to one output, file permissions, signals, targets out of reach."""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import tempfile

import click
import pytest
from click.testing import CliRunner

from nvcodec import codec, sizing
from nvcodec.cli import main
from nvcodec.codec import checkpoint_path
from nvcodec.fit import Fitter, recipe
from nvcodec.models import SPECS

FAST = dict(model_size=3e3, epochs=2, prune_epochs=1, lr=5e-3, device="cpu", progress=False)
CLI_FAST = ["--model-size", "3000", "--epochs", "2", "--prune-epochs", "1", "--lr", "5e-3", "--device", "cpu", "-q"]

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def clip(testdata, tmp_path_factory):
    """4 frames of carphone cropped to 64x48."""
    from nvcodec.video import read_video, write_video
    frames, info = read_video(testdata / "carphone_qcif_16f.mp4", frame_range=(0, 4))
    path = tmp_path_factory.mktemp("clip") / "small.y4m"
    write_video(path, frames[:, 40:88, 56:120].copy(), info.fps)
    return path


@pytest.fixture(scope="module")
def encoded(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "small.dnv"
    codec.encode(clip, out, **FAST)
    return out


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: the refusals below must come before it."""
    def trained(_self):
        raise AssertionError("training started")
    monkeypatch.setattr(Fitter, "fit", trained)


def run_cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(result, fragment):
    """Exit status 1, one `Error: ...` line with `fragment`, no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.output


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_an_output_that_is_the_input_is_refused_even_with_overwrite(clip, tmp_path, no_training):
    source = tmp_path / "in.y4m"
    source.write_bytes(clip.read_bytes())
    (tmp_path / "soft.y4m").symlink_to(source)
    os.link(source, tmp_path / "hard.y4m")
    for output in (source, tmp_path / "soft.y4m", tmp_path / "hard.y4m"):
        r = run_cli("encode", source, "-o", output, "-y", *CLI_FAST)
        assert_refused(r, "is the input")
    assert source.read_bytes() == clip.read_bytes()
    assert listing(tmp_path) == ["hard.y4m", "in.y4m", "soft.y4m"]       # no checkpoint, lock or temporary file


def test_an_existing_output_is_replaced_only_with_overwrite(clip, tmp_path, monkeypatch):
    out, report = tmp_path / "out.dnv", tmp_path / "out.json"
    out.write_bytes(b"the user's file")
    report.write_text("{}")
    with monkeypatch.context() as m:
        m.setattr(Fitter, "fit", lambda _self: pytest.fail("training started"))
        assert_refused(run_cli("encode", clip, "-o", out, *CLI_FAST), f"-o {out} exists; add -y (--overwrite)")
        assert_refused(run_cli("encode", clip, "-o", tmp_path / "new.dnv", "--json", report, *CLI_FAST),
                       f"--json {report} exists")
    assert out.read_bytes() == b"the user's file" and listing(tmp_path) == ["out.dnv", "out.json"]
    r = run_cli("encode", clip, "-o", out, "--json", report, "-y", *CLI_FAST)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"DNV\x1a" and json.loads(report.read_text())["bytes"] == out.stat().st_size
    assert listing(tmp_path) == ["out.dnv", "out.json"]


@pytest.mark.parametrize("case", ["folder", "checkpoint folder", "json is output", "json folder", "no folder"])
def test_outputs_that_cannot_be_written_are_refused_before_training(clip, tmp_path, no_training, case):
    out = tmp_path / "out.dnv"
    args, fragment = ["-o", out], {"folder": "is a folder", "checkpoint folder": "checkpoint",
                                   "json is output": "name the same file", "json folder": "--json",
                                   "no folder": "does not exist"}[case]
    if case == "folder":
        out.mkdir()
    elif case == "checkpoint folder":
        checkpoint_path(out).mkdir()
    elif case == "json is output":
        args += ["--json", out]
    elif case == "json folder":
        args += ["--json", tmp_path]
    else:
        args = ["-o", tmp_path / "missing" / "out.dnv"]
    before = listing(tmp_path)
    assert_refused(run_cli("encode", clip, *args, *CLI_FAST), fragment)
    assert listing(tmp_path) == before


def test_a_folder_that_takes_no_file_is_found_before_training(clip, tmp_path, no_training, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        probe = tempfile.NamedTemporaryFile(dir=folder)    # root may still write there: then a read-only file system
        probe.close()
        real = tempfile.mkstemp

        def read_only(*args, dir=None, **kwargs):
            if dir is not None and os.path.samefile(dir, folder):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS))
            return real(*args, dir=dir, **kwargs)
        monkeypatch.setattr(tempfile, "mkstemp", read_only)
    except PermissionError:
        pass
    r = run_cli("encode", clip, "-o", folder / "out.dnv", *CLI_FAST)
    assert_refused(r, f"cannot write in {folder}")
    folder.chmod(0o755)
    assert listing(folder) == []


def test_a_second_encode_to_the_same_output_is_refused_and_the_first_goes_on(clip, tmp_path, monkeypatch):
    out, second = tmp_path / "out.dnv", []

    def start_another(fitter):
        if not second:
            second.append(run_cli("encode", clip, "-o", out, "-y", *CLI_FAST))
    monkeypatch.setattr(Fitter, "after_step", start_another)
    report = codec.encode(clip, out, **FAST)
    assert_refused(second[0], f"-o {out} is being written by another dnv encode (process {os.getpid()})")
    assert report["bytes"] == out.stat().st_size and codec.info(out)["frames"] == 4
    assert listing(tmp_path) == ["out.dnv"]          # lock and checkpoint gone


def test_a_lock_left_by_a_killed_encode_does_not_block(clip, tmp_path):
    out = tmp_path / "out.dnv"
    (tmp_path / ".out.dnv.lock").write_text("999999\n")     # the file stays after kill -9; the lock does not
    codec.encode(clip, out, **FAST)
    assert listing(tmp_path) == ["out.dnv"]


def test_files_get_the_permissions_of_the_umask(clip, encoded, tmp_path, monkeypatch):
    old = os.umask(0o027)
    try:
        monkeypatch.setattr(Fitter, "after_step", lambda _fitter: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            codec.encode(clip, tmp_path / "stopped.dnv", **FAST)
        monkeypatch.setattr(Fitter, "after_step", None)
        r = run_cli("decode", encoded, "-o", tmp_path / "rec.mkv", "--json", tmp_path / "dec.json", "--device", "cpu")
        assert r.exit_code == 0, r.output
        r = run_cli("decode", encoded, "-o", str(tmp_path / "png") + "/", "--device", "cpu")
        assert r.exit_code == 0, r.output
        codec.encode(clip, tmp_path / "new.dnv", **FAST)
    finally:
        os.umask(old)
    mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert mode == {"stopped.dnv.ckpt": 0o640, "rec.mkv": 0o640, "dec.json": 0o640, "png": 0o750, "new.dnv": 0o640}


def test_decode_refuses_to_overwrite_its_input_reference_or_an_existing_file(clip, encoded, tmp_path):
    rec = tmp_path / "rec.mkv"
    rec.write_bytes(b"the user's file")
    assert_refused(run_cli("decode", encoded, "-o", encoded, "-y"), "is the input")
    assert_refused(run_cli("decode", encoded, "-o", clip, "-y", "--ref", clip), "is the input")
    assert_refused(run_cli("decode", encoded, "-o", rec, "--device", "cpu"), "exists; add -y")
    assert_refused(run_cli("decode", encoded, "--json", clip, "--ref", clip), "is the input")
    assert rec.read_bytes() == b"the user's file" and encoded.read_bytes()[:4] == b"DNV\x1a"
    r = run_cli("decode", encoded, "-o", rec, "-y", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert rec.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"          # Matroska


def test_decode_range_errors_quote_the_range_and_the_frames(encoded):
    assert_refused(run_cli("decode", encoded, "--frames", "30:40"),
                   "--frames 30:40 selects no frame: the file holds 4 frames (0-3)")
    assert_refused(run_cli("decode", encoded, "--frames", "7:"), "--frames 7: selects no frame")


def test_a_target_above_what_the_largest_network_reaches_is_refused_before_training(clip, tmp_path, no_training):
    r = run_cli("encode", clip, "-o", tmp_path / "o.dnv", "--bpp", "1e9", "--model", "dnerv", "--device", "cpu", "-q")
    assert_refused(r, "--bpp 1e+09 is above what the largest model can reach for this video (about ")
    maximum = float(r.stderr.split("(about ")[1].split(" bpp")[0].replace(",", ""))
    plan = sizing.plan_for_bpp("dnerv", 64, 48, 4, 0.8 * maximum)       # below it: the largest network
    assert plan.largest and plan.arch.widths[0] == sizing.MAX_STEM
    assert not sizing.plan_for_bpp("dnerv", 64, 48, 4, 20).largest
    assert listing(tmp_path) == []


def test_a_file_that_misses_its_target_says_by_how_much_and_why(clip, tmp_path, monkeypatch):
    # A planner that overrates what weights and embeddings cost picks too small a network: even at the finest
    # quantizer rate control may use, the file lands far below the target, and the report says so.
    monkeypatch.setattr(sizing, "WEIGHT_BITS_BELOW_QUANT", -8.0)
    monkeypatch.setattr(SPECS["dnerv"], "table_bits_below_quant", -8.0)
    r = run_cli("encode", clip, "-o", tmp_path / "o.dnv", "--bpp", "20", "--model", "dnerv", "--epochs", "1",
                "--device", "cpu", "-q", "--json", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["bpp"] < 0.95 * 20 and report["effective_bits"] == 10
    assert report["target_missed"].startswith(f"{1 - report['bpp'] / 20:.0%} below the target 20 bpp: the network "
                                              "sized for the target")
    assert "codes smaller even at 10 bits, the most allowed with --quant-bits 8" in report["target_missed"]
    assert f"note     {report['target_missed']}" in r.output
    assert "quantized at 10.00 bits (2^10.00 levels; --quant-bits 8 raised toward the target size)" in r.output


def test_a_file_on_target_has_no_note(encoded, clip, tmp_path):
    r = run_cli("encode", clip, "-o", tmp_path / "o.dnv", "--bpp", "20", "--epochs", "1", "--device", "cpu", "-q",
                "--json", tmp_path / "o.json")
    report = json.loads((tmp_path / "o.json").read_text())
    assert abs(report["bpp"] / 20 - 1) <= 0.05 and report["target_missed"] is None and "note " not in r.output


def test_epochs_scale_the_fine_tuning_epochs_unless_they_are_given(clip, tmp_path):
    assert recipe("medium", "dnerv", 10_000, epochs=2)["prune_epochs"] == 1          # 10 %, at least one
    assert recipe("medium", "dnerv", 10_000, epochs=40)["prune_epochs"] == 4
    assert recipe("medium", "dnerv", 10_000, epochs=41)["prune_epochs"] == 5         # rounded up
    assert recipe("medium", "dnerv", 10**8, epochs=100)["prune_epochs"] == 10        # Adan's 210 + 21: the same share
    r = codec.encode(clip, tmp_path / "a.dnv", model_size=3e3, epochs=3, lr=5e-3, device="cpu", progress=False)
    assert (r["epochs"], r["prune_epochs"]) == (3, 1)
    phases = [len(curve) for curve in r["train_curves"]]
    assert phases == [3]
    r = codec.encode(clip, tmp_path / "b.dnv", **{**FAST, "prune_epochs": 2})
    assert (r["epochs"], r["prune_epochs"]) == (2, 2)


def test_sigterm_saves_training_and_exits_143(clip, tmp_path, monkeypatch):
    out = tmp_path / "out.dnv"
    monkeypatch.setattr(Fitter, "after_step", lambda _fitter: os.kill(os.getpid(), signal.SIGTERM))
    r = run_cli("encode", clip, "-o", out, *CLI_FAST)
    assert r.exit_code == 143, r.output
    assert "Terminated; resume with:" in r.stderr
    assert listing(tmp_path) == ["out.dnv.ckpt"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL                   # handler given back


def test_sigterm_before_training_exits_143_and_leaves_nothing(clip, tmp_path, monkeypatch):
    real = sizing.plan_for_params

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    monkeypatch.setattr(sizing, "plan_for_params", terminated)
    r = run_cli("encode", clip, "-o", tmp_path / "out.dnv", *CLI_FAST)
    assert r.exit_code == 143, r.output
    assert "Terminated; no output file was written." in r.stderr
    assert listing(tmp_path) == []


def test_every_option_has_help():
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"dnv {name} {param.opts[0]} has no help text"
