"""Rate-aware training: the learned entropy models (compress.learned), their coder (compress.rowcoder), their place in
the file (DECODER mode 2, table transforms 2 and 3) and in the training loop."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from nvcodec import sizing
from nvcodec.bitstream import BitstreamError
from nvcodec.compress import learned, learned_compress, pack, rowcoder
from nvcodec.compress.quantize import MIN_SCALE, quantize_weight
from nvcodec.fit import CodeFitter, TrainSettings, parse_train_option

pytestmark = pytest.mark.usefixtures("single_thread")


def laplace_rows(rng, scales, n) -> np.ndarray:
    return np.round(rng.laplace(0, np.asarray(scales, dtype=float)[:, None], (len(scales), n))).astype(np.int64)


def reader(data: bytes):
    pos = [0]

    def take(n):
        out = data[pos[0]:pos[0] + n]
        pos[0] += n
        return out
    return take, pos


def test_rows_round_trip_with_every_kind_of_row():
    rng = np.random.default_rng(0)
    a = laplace_rows(rng, [0.2, 3, 40, 0], 200)            # a zero row, a wide row
    q = learned.fit_q(torch.from_numpy(a)).long().numpy()
    zeros = np.zeros((3, 7), dtype=np.int64)                 # M = 0: nothing coded
    b = laplace_rows(rng, [1.0], 5)
    g = np.round(rng.normal(0, [[0.3], [5]], (2, 300))).astype(np.int64)
    gq = learned.fit_q(torch.from_numpy(g), rowcoder.GAUSSIAN).long().numpy()
    items = [(a, q, rowcoder.LAPLACE, 0), (zeros, np.zeros(3, np.int64), rowcoder.GAUSSIAN, 0),
             (b, np.array([7]), rowcoder.LAPLACE_SPIKE, 40),      # q 7: a poor fit still codes
             (g, gq, rowcoder.GAUSSIAN, 0), (g, gq, rowcoder.GAUSSIAN_SPIKE, 255)]
    data = rowcoder.pack(items)
    take, pos = reader(data)
    out = rowcoder.unpack(take, [x.shape for x, _, _, _ in items])
    assert pos[0] == len(data)
    for x, (y, _, _, _) in zip(out, items):
        assert np.array_equal(x, y)


@pytest.mark.parametrize("kind", rowcoder.KINDS)
def test_the_training_rate_formula_is_what_the_coder_spends(kind):
    """On the rounded symbols, the differentiable rate equals the coder's exact code lengths (to 0.2 %: the coder's
    probabilities are multiples of 2**-24, which shows in far tails), and the stream holds that plus a flush of a few
    bytes: Laplace and Gaussian rows, with and without a spike, narrow and wide, on data of either with a fifth of
    the values pruned to zero."""
    rng = np.random.default_rng(1)
    for scales, n in (([0.3, 0.8, 2, 9], 3000), ([50, 120], 2000), ([0.05] * 4, 500)):
        for x in (laplace_rows(rng, scales, n),
                  np.round(rng.normal(0, np.asarray(scales)[:, None], (len(scales), n))).astype(np.int64)):
            x = np.where(rng.random(x.shape) < 0.2, 0, x)
            rows = torch.from_numpy(x)
            q = learned.fit_q(rows, kind)
            z = int(learned.fit_z(rows, q, kind)) if kind >= 2 else 0
            q = q.long().numpy()
            t = rowcoder.LearnedTensor(x, np.array([1.0], np.float16), q, 0, kind=kind, z=z)
            estimate, exact = learned.estimate_bits(t), rowcoder.coded_bits(x, q, kind, z)
            assert estimate == pytest.approx(exact, rel=2e-3, abs=1.0)
            stream = len(rowcoder.pack([t.coding()])) - learned_compress._side_bytes([t.coding()])
            assert 0 <= stream - exact / 8 <= 8


def test_a_spike_pays_where_weights_were_pruned():
    rng = np.random.default_rng(6)
    x = np.where(rng.random((8, 500)) < 0.3, 0, np.round(rng.laplace(0, 6, (8, 500)))).astype(np.int64)
    rows = torch.from_numpy(x)
    plain = rowcoder.coded_bits(x, learned.fit_q(rows, 0).long().numpy(), 0)
    q = learned.fit_q(rows, rowcoder.LAPLACE_SPIKE)
    spiked = rowcoder.coded_bits(x, q.long().numpy(), 2, int(learned.fit_z(rows, q, 2)))
    assert spiked < 0.97 * plain


def test_fit_q_is_the_coders_maximum_likelihood_scale():
    rng = np.random.default_rng(2)
    x = laplace_rows(rng, [0.5, 4, 30], 5000)
    q = learned.fit_q(torch.from_numpy(x)).long().numpy()
    for row, qr in zip(x, q):
        costs = {c: rowcoder.coded_bits(row[None], np.array([c])) for c in (qr - 2, qr, qr + 2)}
        assert costs[qr] == min(costs.values())


def test_weights_in_mode_2_beside_the_other_modes_decode_exactly():
    rng = np.random.default_rng(3)
    symbols = laplace_rows(rng, [1, 2, 3, 4, 0, 6, 7, 8], 36).reshape(8, 4, 3, 3)
    learned_t = rowcoder.LearnedTensor(symbols, np.array([0.01], np.float16), np.full(8, 120), 0)
    state = {"a.weight": learned_t, "a.bias": quantize_weight(torch.randn(8), 6),
             "b.weight": quantize_weight(torch.randn(80, 70), 6), "c.weight": learned_t}
    data = pack.pack_weights(state)
    back = pack.unpack_weights(data, {k: tuple(v.symbols.shape) for k, v in state.items()})
    for k, v in state.items():
        assert torch.equal(back[k], v.dequantize())
    with pytest.raises(BitstreamError, match="DECODER section"):
        pack.unpack_weights(data[:-3], {k: tuple(v.symbols.shape) for k, v in state.items()})


@pytest.mark.parametrize("delta", [False, True])
def test_tables_in_transforms_2_and_3_decode_exactly(delta):
    rng = np.random.default_rng(4)
    symbols = np.cumsum(laplace_rows(rng, [1, 3, 0.5], 5 * 6).reshape(3, 5, 2, 3).transpose(1, 0, 2, 3), axis=0)
    t = rowcoder.LearnedTensor(symbols, np.array([0.02], np.float16), np.full(3, 110), 1, delta, int(delta))
    data = pack.pack_embedding(t)
    assert data[0] == (3 if delta else 2)
    assert torch.equal(pack.unpack_embedding(data, symbols.shape, "GRID0"), t.dequantize())


def tiny_fitter(rate: learned.RateTerm | None, frames: int = 3):
    rng = np.random.default_rng(5)
    video = torch.from_numpy(rng.integers(0, 256, (frames, 32, 48, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("hinerv", 48, 32, 3000, frames=frames).arch
    settings = TrainSettings(epochs=1, prune_epochs=2, batch=1, rate=True, prune=0.1)
    return CodeFitter(video, arch, settings, torch.device("cpu"), progress=False, log=lambda m: None,
                      quantizer=lambda state, tables: 6.0, rate=rate)


def test_rate_aware_fine_tuning_learns_steps_and_moves_lambda_towards_the_target():
    pixels = 3 * 32 * 48
    fitter = tiny_fitter(learned.RateTerm(pixels, target_bytes=200))
    fitter._start_pruning()
    assert fitter.rate_on and fitter.qat_bits == 6.0
    model = fitter.rate.model
    assert len(model.table_names) == 3 and model.weight_names
    steps0 = [float(p.detach()) for p in model.log_step]
    lam0 = fitter.rate.lam
    for _ in range(2 * learned.RATE_EVERY):
        fitter._step(torch.tensor([1]), 1e-3)
    assert [float(p.detach()) for p in model.log_step] != steps0      # the steps learn
    assert fitter.rate.lam > lam0       # a network of ~3,000 parameters is far over 200 bytes: lambda rises
    assert int(model.steps) == 2 * learned.RATE_EVERY


def test_the_rate_model_survives_a_checkpoint():
    """A resumed rate-aware fine-tuning takes the same next step as an uninterrupted one."""
    a, b = tiny_fitter(learned.RateTerm(1000, 500)), tiny_fitter(learned.RateTerm(1000, 500))
    a._start_pruning()
    for _ in range(3):
        a._step(torch.tensor([0]), 1e-3)
    saved = io.BytesIO()
    torch.save(a.state(), saved)        # as a checkpoint holds it: state dicts that weights_only reads back
    saved.seek(0)
    b.load_state(torch.load(saved, weights_only=True))
    assert b.rate_on and b.rate.steps == 3
    a._step(torch.tensor([2]), 1e-3)
    b._step(torch.tensor([2]), 1e-3)
    assert torch.equal(a.rate.model.lam, b.rate.model.lam)
    for p, q in zip([*a.decoder.parameters(), *a.rate.model.parameters()],
                    [*b.decoder.parameters(), *b.rate.model.parameters()]):
        assert torch.equal(p, q)


def main_phase_rate_fitter(epochs: int = 4, rate_from: float = 0.5, target_bytes: int = 400):
    rng = np.random.default_rng(5)
    video = torch.from_numpy(rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8))
    arch = sizing.plan_for_params("hinerv", 48, 32, 3000, frames=3).arch
    settings = TrainSettings(epochs=epochs, prune_epochs=2, batch=1, rate=True, rate_from=rate_from, prune=0.1)
    return CodeFitter(video, arch, settings, torch.device("cpu"), progress=False, log=lambda m: None,
                      quantizer=lambda state, tables: 6.0, rate=learned.RateTerm(3 * 32 * 48, target_bytes),
                      noise_bits=5)


def test_rate_aware_training_from_the_main_phase_steps_on_noise_then_rounds():
    """`rate_from`: the rate term and learned steps start part-way through the main phase, the training steps on
    values plus noise of one step (evaluations round), and the fine-tuning after pruning rounds, keeping the steps."""
    fitter = main_phase_rate_fitter()
    seen = []

    def record():
        f = fitter
        model = f.rate.model if f.rate_on else None
        seen.append((f.phase, f.epoch, f.rate_on, model is not None and model.noisy, model))
    fitter.after_step = record
    result = fitter.fit()
    main = [s for s in seen if s[0] == "train"]
    assert [s[2] for s in main] == [False] * 6 + [True] * 6      # epochs 3 and 4 of 4 (3 steps each)
    assert all(s[3] for s in main if s[2])
    fine = [s for s in seen if s[0] == "prune"]
    assert fine and all(s[2] and not s[3] for s in fine)
    assert len({id(s[4]) for s in seen if s[2]}) == 1      # one model from the main phase to the end
    assert result.rate_model is not None and result.qat_bits == 5       # the rest at the planned depth
    # The entropy models' parameters joined the main phase's optimizer once, and its state was kept.
    assert len(fitter.optimizers[0].param_groups) == len(fitter.inputs.param_groups(fitter.decoder)[0]) + 1


def test_noisy_values_are_noise_of_one_step_and_evaluations_round():
    fitter = main_phase_rate_fitter(rate_from=0)
    fitter._start_rate(5)
    model = fitter.rate.model
    assert model.noisy
    name = model.weight_names[0]
    w = dict(fitter.decoder.named_parameters())[name]
    i = model._index(name, False)
    step = float(model.step(i).detach())
    noisy = model.quantize(i, w)
    assert 0 < float((noisy - w).abs().max()) <= step / 2 * (1 + 1e-3)
    assert not torch.allclose(noisy / step, torch.round(noisy / step))
    with torch.no_grad():
        rounded = model.quantize(i, w)
    assert torch.allclose(rounded / step, torch.round(rounded / step), atol=1e-3)


def test_a_checkpoint_taken_in_the_main_phases_rate_aware_share_resumes_with_noise():
    a, b = main_phase_rate_fitter(rate_from=0), main_phase_rate_fitter(rate_from=0)
    a._start_rate(5)
    for _ in range(3):
        a._step(torch.tensor([0]), 1e-3)
    saved = io.BytesIO()
    torch.save(a.state(), saved)
    saved.seek(0)
    b.load_state(torch.load(saved, weights_only=True))
    assert b.rate_on and b.rate.model.noisy and b.rate.bits == 5
    assert [len(o.param_groups) for o in b.optimizers] == [len(o.param_groups) for o in a.optimizers]


def test_the_target_share_of_the_modelled_symbols_follows_the_rest_of_the_payload():
    """The rest of the payload (biases and norms, side information) changes as the network trains: the share of
    the target left to the modelled symbols is retaken from it as it codes now."""
    fitter = main_phase_rate_fitter(rate_from=0, target_bytes=4000)
    fitter._start_rate(5)
    term = fitter.rate
    before = term.other_bytes
    with torch.no_grad():
        for name, p in fitter.decoder.named_parameters():
            if p.dim() == 1:
                p.copy_(torch.randn_like(p))
    state = {k: v.detach() for k, v in fitter.decoder.state_dict().items()}
    rest = learned_compress.compress(state, fitter.tables(), term.model, 5).rest_bytes
    assert rest != before
    term.retarget(fitter.decoder, fitter._learned_tables())
    assert term.other_bytes == rest and term.target_bits == 8 * (4000 - rest)


def test_the_models_rate_and_fit_over_all_rows_at_once_are_each_tensors_own():
    """`RateModel.bits` and `refit` lay every tensor's rows end to end; they must give what the per-tensor formulas
    (`row_bits`, `fit_q`, `fit_z`, which the file's estimate uses) give tensor by tensor, whatever each one's kind."""
    fitter = main_phase_rate_fitter(rate_from=0, target_bytes=4000)
    fitter._start_rate(5)
    model = fitter.rate.model
    weights, tables = dict(fitter.decoder.named_parameters()), fitter._learned_tables()
    with torch.no_grad():
        first = model.weight_names[0]
        weights[first][: weights[first].shape[0] // 2] = 0      # pruned rows: a spike pays
    n = len(model.log_step)
    for i in range(n):      # every kind among the tensors
        getattr(model, f"kind{i}").fill_(i % 4)
    model.sync_flags()
    model.refit(weights, tables)
    total = 0.0
    for i, t, axis in model.items(weights, tables):
        r = learned.rows(model.coded(i, torch.round(t.detach() / model.step(i).detach())), axis)
        q = learned.fit_q(r, model.kind(i))
        assert torch.equal(model.q(i), q), i
        z = learned.fit_z(r, q, model.kind(i)) if model.kind(i) >= 2 else 0
        if model.kind(i) >= 2:
            assert float(getattr(model, f"z{i}")) == float(z), i
        total += float(learned.row_bits(model.kind(i), r, q, r.abs().max(), z))
    assert float(model.bits(weights, tables, noise=False)) == pytest.approx(total, rel=1e-5)


def test_the_first_lambda_weighs_a_percent_of_rate_as_a_percent_of_distortion_in_the_losss_own_units():
    """For the MSE loss that is MSE / bpp; for 4:2:0's log10-MSE loss (`planeloss`) 1 / (ln 10 * bpp), whatever the
    MSE (taking the MSE there made lambda 370 times too small at 0.05 bpp: the controller took most of training to
    climb out)."""
    for log_loss, distortion in ((False, 4e-4), (True, 4e-4), (True, 1e-2)):
        fitter = main_phase_rate_fitter(rate_from=0, target_bytes=4000)
        fitter.rate.log_loss = log_loss
        fitter.rate.start(fitter.decoder, fitter._learned_tables(), 5, distortion)
        bpp = fitter.rate.target_bits / fitter.rate.pixels
        expected = (1 / np.log(10) if log_loss else distortion) / bpp
        assert fitter.rate.lam == pytest.approx(expected, rel=1e-6)


def test_a_step_driven_below_what_float16_holds_stays_at_the_files_finest():
    """The controller can drive a step under float16's range; stored as 0 it made 0 / 0 of pruned weights (NaN, and a
    fine-tuning that rolled back until it failed). Steps stop at `quantize.MIN_SCALE`, as the file's do."""
    fitter = main_phase_rate_fitter(rate_from=0, target_bytes=4000)
    fitter._start_rate(5)
    model = fitter.rate.model
    with torch.no_grad():
        model.log_step[0].fill_(-40.0)
    w = torch.zeros(4, 3)
    with torch.no_grad():       # (evaluations round)
        assert torch.equal(model.quantize(0, w), w)
    assert torch.isfinite(model.quantize(0, w)).all()       # noisy values, in training
    assert float(model.all_steps()[0]) == pytest.approx(MIN_SCALE) and float(model.step(0)) == pytest.approx(MIN_SCALE)
    weights, tables = dict(fitter.decoder.named_parameters()), fitter._learned_tables()
    assert torch.isfinite(model.bits(weights, tables, noise=True))


def test_rate_from_needs_the_rate_term(tmp_path, testdata):
    from nvcodec import codec

    with pytest.raises(codec.CodecError, match="rate_from needs --train rate=true"):
        codec.encode(testdata / "carphone_qcif_16f.mp4", tmp_path / "x.dnv", bpp=1.0, device="cpu",
                     progress=False, train_options={"rate_from": 0.5})
    with pytest.raises(ValueError, match=r"rate_from must be in \[0, 1\]"):
        parse_train_option("rate_from=1.5")


def test_learned_compression_lands_on_a_target_by_scaling_the_steps():
    fitter = tiny_fitter(learned.RateTerm(1000, None))
    fitter._start_pruning()
    state = {k: v.detach() for k, v in fitter.decoder.state_dict().items()}
    tables, model = fitter.tables(), fitter.rate.model
    nominal = learned_compress.compress(state, tables, model, 6.0)
    target = int(nominal.payload_bytes * 0.85)
    landed = learned_compress.compress_to_target(state, tables, model, 6.0, target)
    assert landed.step_scale > 1 and abs(landed.payload_bytes / target - 1) <= 0.04
    assert landed.payload_bytes <= target


def test_an_encode_trained_for_rate_decodes_to_what_it_reports(tmp_path, testdata):
    from nvcodec import codec

    out = tmp_path / "rate.dnv"
    report = codec.encode(testdata / "carphone_qcif_16f.mp4", out, bpp=3.0, frame_range=(0, 3), device="cpu",
                          epochs=2, prune_epochs=1, progress=False, train_options={"rate": True})
    assert report["lambda"] > 0 and report["estimated_bytes"] > 0
    assert report["segments"][0]["step_scale"] > 0
    frames, dec = codec.decode_to_array(out, device="cpu")
    assert frames.shape[0] == 3
    info = codec.info(out)
    assert info["learned_tensors"] > 0
    plain = codec.encode(testdata / "carphone_qcif_16f.mp4", tmp_path / "plain.dnv", bpp=3.0, frame_range=(0, 3),
                         device="cpu", epochs=2, prune_epochs=1, progress=False)
    assert plain["lambda"] is None and plain["estimated_bytes"] is None
    assert codec.info(tmp_path / "plain.dnv")["learned_tensors"] == 0


def test_a_model_whose_tables_come_from_encoders_trains_its_weights_for_rate(tmp_path, testdata):
    """DNeRV's embeddings are computed, not trained: they keep the post-training coder; its weights get the models."""
    from nvcodec import codec

    out = tmp_path / "dnerv.dnv"
    report = codec.encode(testdata / "carphone_qcif_16f.mp4", out, bpp=3.0, frame_range=(0, 3), device="cpu",
                          model="dnerv", epochs=1, prune_epochs=1, progress=False, train_options={"rate": True})
    assert report["lambda"] > 0
    assert codec.info(out)["learned_tensors"] > 0
    assert codec.decode_to_array(out, device="cpu")[0].shape[0] == 3
