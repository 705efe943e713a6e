"""Quality measures: exact, independent of how frames are batched, and flat in memory."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nvcodec import metrics


def _pair(frames=5, h=70, w=90, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    noise = rng.integers(-12, 13, a.shape)
    return a, np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)


def test_psnr_per_frame_matches_float64_reference():
    a, b = _pair()
    mse = ((a.astype(np.float64) - b.astype(np.float64)) / 255.0) ** 2
    expected = -10 * np.log10(mse.reshape(len(a), -1).mean(1))
    assert metrics.psnr_per_frame(a, b) == pytest.approx(list(expected), abs=1e-9)
    assert metrics.psnr(a, b) == pytest.approx(expected.mean(), abs=1e-9)


def test_identical_frames_are_capped_at_100_db():
    a, _ = _pair(frames=2)
    assert metrics.psnr_per_frame(a, a) == [100.0, 100.0]


def test_batching_does_not_change_the_figures():
    a, b = _pair(frames=7, h=96, w=96)
    one = metrics.frame_mse(a, b, batch=1)
    many = metrics.frame_mse(a, b, batch=16)
    assert one.tolist() == many.tolist()
    assert metrics.ms_ssim(a, b, batch=2) == pytest.approx(metrics.ms_ssim(a, b, batch=16), abs=1e-6)


def test_tally_adds_up_to_the_whole_clip():
    a, b = _pair(frames=6)
    tally = metrics.Tally("cpu")
    for i in range(0, 6, 4):
        tally.add(a[i:i + 4], b[i:i + 4])
    psnr, ssim = tally.result()
    assert tally.frames == 6
    assert psnr == pytest.approx(metrics.psnr(a, b), abs=1e-9)
    assert ssim == pytest.approx(metrics.ms_ssim(a, b), abs=1e-6)


def test_float_frames_in_channel_first_layout_are_accepted():
    import torch
    a, b = _pair(frames=3)
    fa = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255
    fb = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
    assert metrics.psnr(fa, fb) == pytest.approx(metrics.psnr(a, b), abs=1e-4)


def test_shape_mismatch_is_an_error():
    a, b = _pair()
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.psnr(a, b[:, :-1])


def test_psnr_of_a_long_720p_clip_stays_flat_in_memory():
    # The encoder's quality check once turned a whole 300-frame segment into float64 at once:
    # gigabytes of host memory at 720p. 48 frames of 1280x720 would take about 3 GB that way.
    code = textwrap.dedent("""
        import resource, numpy as np
        from nvcodec import metrics
        a = np.full((48, 720, 1280, 3), 7, np.uint8); b = a.copy(); b[..., 0] = 10
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        p = metrics.psnr(a, b)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(p, (after - before) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    psnr, grown_mib = float(out[0]), float(out[1])
    assert psnr == pytest.approx(-10 * np.log10((3 / 255) ** 2 / 3), abs=1e-9)
    assert grown_mib < 400, f"peak memory grew by {grown_mib:.0f} MiB"
