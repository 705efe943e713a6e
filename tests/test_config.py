"""EncodeConfig: one definition of each encode option, checked once, for the API, the CLI and the workers."""
import pickle

import pytest
from click.testing import CliRunner

from nvcodec import codec
from nvcodec.cli import main
from nvcodec.config import DEFAULT_BPP, EncodeConfig
from nvcodec.models import quant_bits_for


@pytest.mark.parametrize("options, message", [
    (dict(model="nope"), "unknown model 'nope' (choose "),
    (dict(preset="nope"), "unknown preset 'nope' (choose "),
    (dict(bpp=0), "--bpp must be a positive number"),
    (dict(bpp=float("inf")), "--bpp must be a positive number"),
    (dict(quant_bits=17), "--quant-bits must be between 2 and 16"),
    (dict(prune=1.0), "--prune must be in [0, 1)"),
    (dict(segment_frames=1), "--segment-frames must be at least 2"),
    (dict(gpus=0), "--gpus must be at least 1"),
    (dict(epochs=0), "epochs must be at least 1"),
    (dict(train_options={"lr": -1.0}), "lr must be positive"),
    (dict(train_options={"beta1": 0.5, "optimizer": "adan"}), "--train beta1 is one of Adam's betas; adan has no"),
])
def test_bad_options_are_one_line_codec_errors_before_any_work(tmp_path, options, message):
    with pytest.raises(codec.CodecError) as e:
        codec.encode(tmp_path / "none.mp4", tmp_path / "o.dnv", **options)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    with pytest.raises(codec.CodecError):     # changing a good config checks it again
        EncodeConfig().replace(**options)
    assert not any(tmp_path.iterdir())


def test_an_unknown_option_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="bogus"):
        codec.encode(tmp_path / "none.mp4", tmp_path / "o.dnv", bogus=1)
    with pytest.raises(TypeError, match="bogus"):
        codec.encode(tmp_path / "none.mp4", tmp_path / "o.dnv", EncodeConfig(), bogus=1)


def test_defaults_that_depend_on_other_options():
    config = EncodeConfig(model="dnerv")
    assert config.quant_bits is None and config.planned_quant_bits == quant_bits_for("dnerv")
    assert config.target_bpp == DEFAULT_BPP
    assert EncodeConfig(model_size=3e3).target_bpp is None
    assert EncodeConfig(bpp=0.2, quant_bits=4).replace(model="hinerv").planned_quant_bits == 4
    settings, chosen = EncodeConfig(lr=1e-3, train_options={"beta1": 0.5}).train_settings()
    assert settings.lr == 1e-3 and settings.optimizer == "adam" and chosen == {"lr", "beta1", "optimizer"}


def test_the_config_pickles_and_keeps_its_own_train_options():
    options = {"amp": False}
    config = EncodeConfig(bpp=0.1, frame_range=(0, 8), train_options=options)
    options["amp"] = True
    assert config.train_options == {"amp": False}
    assert pickle.loads(pickle.dumps(config)) == config     # the job goes to --gpus N's workers


@pytest.mark.parametrize("option, value, message", [
    ("--bpp", "0", "0.0 is not in the range x>0"),
    ("--quant-bits", "1", "1 is not in the range 2<=x<=16"),
    ("--prune", "1", "1.0 is not in the range 0<=x<1"),
    ("--gpus", "0", "0 is not in the range x>=1"),
    ("--segment-frames", "1", "1 is not in the range x>=2"),
    ("--epochs", "0", "0 is not in the range x>=1"),
])
def test_cli_ranges_are_checked_by_click(tmp_path, option, value, message):
    r = CliRunner().invoke(main, ["encode", str(tmp_path / "none.mp4"), "-o", str(tmp_path / "o.dnv"), option, value])
    assert r.exit_code == 2
    errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: Invalid value for '{option}': {message}."]
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("option, value, message", [
    ("--size", "abc", "expected WxH, e.g. 1920x1080, not 'abc'"),
    ("--fps", "0", "must be positive"),
])
def test_cli_size_and_rate_are_usage_errors(tmp_path, option, value, message):
    """Parsed with the other options: a bad one is click's usage error, not an internal one."""
    r = CliRunner().invoke(main, ["encode", str(tmp_path / "v.yuv"), "-o", str(tmp_path / "o.dnv"), option, value])
    assert r.exit_code == 2
    assert [line for line in r.output.splitlines() if line.startswith("Error:")] == [
        f"Error: Invalid value for '{option}': {message}"]


def test_an_encode_gives_a_small_frame_the_training_budget_unless_epochs_are_chosen():
    # carphone's 120 frames of 176x144 at medium: twice the preset's epochs (fit.budget_factor); the frame's size
    # reaches the recipe.
    job = codec._EncodeJob("in.mp4", "out.dnv", EncodeConfig(model="hinerv"), print)
    assert (job._settings_for(10_000, 120, 176 * 144).epochs, job._settings_for(10_000, 120, 1280 * 720).epochs) == (
        460, 230)
    chosen = codec._EncodeJob("in.mp4", "out.dnv", EncodeConfig(model="hinerv", epochs=7), print)
    assert chosen._settings_for(10_000, 120, 176 * 144).epochs == 7
