"""How training stops early: an error it cannot go past, or an interrupt once the state is saved."""
from __future__ import annotations

import signal
from pathlib import Path


class TrainingError(Exception):
    """Training cannot go on (out of memory at batch 1, diverging again and again, a checkpoint that
    belongs to another encode): one line saying why."""


def signal_interrupt(signum: int) -> KeyboardInterrupt:
    """The KeyboardInterrupt that a signal raises; `signum` says which (Ctrl-C exits 130, SIGTERM 143)."""
    interrupt = KeyboardInterrupt()
    interrupt.signum = int(signum)
    return interrupt


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM (`signum`) during training, raised once the state is saved to `checkpoint`."""

    def __init__(self, checkpoint, signum: int = signal.SIGINT):
        super().__init__(f"interrupted; training state saved to {checkpoint}")
        self.checkpoint = Path(checkpoint)
        self.signum = int(signum)
