"""Import torch's compiler in a thread while the video is read and the network is built.

Importing Inductor took 13-15 s in every process on the GPU machines (a bytecode cache did not help:
benchmarks/results/finetune_overhead_import_gpu_2026-12-05/); without this it is paid inside the first
compiled step. Started early, the part that overlaps work which releases the lock Python's threads share
(decoding frames, copying them to the GPU, starting CUDA) is saved.

`start()` once the encode knows it will compile; `wait()` before anything touches `torch._dynamo`: two
threads importing the same package, whose modules import each other, could deadlock.
"""
from __future__ import annotations

import importlib
import threading

_MODULE = "torch._inductor.compile_fx"
_thread: threading.Thread | None = None


def _import() -> None:
    try:
        importlib.import_module(_MODULE)
    except Exception:  # noqa: BLE001 - the compiled step imports it again, and reports a failure there
        pass


def start() -> None:
    """Begin the import in a daemon thread (once per process)."""
    global _thread
    if _thread is None:
        _thread = threading.Thread(target=_import, name="dnv-compiler-import", daemon=True)
        _thread.start()


def wait() -> None:
    """Return once the import started by `start` has ended (at once if none was started)."""
    if _thread is not None:
        _thread.join()
