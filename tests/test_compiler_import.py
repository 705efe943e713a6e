"""The compiler's import begun early (`nvcodec.compiler_import`): it really imports Inductor, and an encode that
compiles starts it before reading the video and waits for it before compiling."""
from __future__ import annotations

import subprocess
import sys

import torch

from nvcodec import codec, compiler_import


def test_start_imports_inductor_in_a_fresh_process():
    script = ("import sys; from nvcodec import compiler_import; m = 'torch._inductor.compile_fx';"
              "assert m not in sys.modules; compiler_import.start(); compiler_import.start(); compiler_import.wait();"
              "assert m in sys.modules; import threading;"
              "assert [t for t in threading.enumerate() if t.name == 'dnv-compiler-import'] == []; print('ok')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_compiling_encode_starts_the_import_first_and_waits_for_it_before_compiling(testdata, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(compiler_import, "start", lambda: calls.append("start"))
    monkeypatch.setattr(compiler_import, "wait", lambda: calls.append("wait"))
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile",
                        lambda fn, mode=None: calls.append("compile") or real_compile(fn, backend="eager"))
    clip = testdata / "carphone_qcif_16f.mp4"
    codec.encode(clip, tmp_path / "a.dnv", bpp=1.0, frame_range=(0, 4), epochs=1, prune_epochs=1, device="cpu",
                 progress=False, compile=True)
    assert calls[:3] == ["start", "wait", "compile"]
    calls.clear()
    codec.encode(clip, tmp_path / "b.dnv", bpp=1.0, frame_range=(0, 4), epochs=1, prune_epochs=1, device="cpu",
                 progress=False)     # on the CPU it does not compile by default: no import begun
    assert "start" not in calls and "compile" not in calls
