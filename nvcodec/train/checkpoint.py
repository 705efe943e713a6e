"""Training checkpoints: the trainer's whole state, a tree of state dicts, saved with `torch.save` and read back
with `torch.load(weights_only=True)` (tensors and plain values only: loading runs no code from the file).

The file holds {"kind": KIND, "format": FORMAT, "identity": JSON text, "state": the trainer's state}. The
state (`fit.Trainer.state`) is: the state dict of each module by name, one of each optimizer (any number,
in order), the pruning masks, the position in the schedule with the history and the recovery state, and
the RNG states. The identity says which encode it belongs to (video, network, training settings); another
encode refuses it with one line saying what differs.

A checkpoint is written to a temporary file beside its place and renamed, so it is never half-written.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..outputs import file_mode, temp_file
from .errors import TrainingError

KIND = "dnv training state"
FORMAT = 4      # 4: torch.save of state dicts. 3 and before (dnv until 2026-12): safetensors with JSON metadata
# What the identity's parts are called in a refusal.
IDENTITY = {"video": "another video or frame range", "arch": "another network (--model, --bpp or --model-size)",
            "settings": "other training settings"}


def map_tensors(tree, fn):
    """`tree` (dicts, lists, tuples of anything) with `fn` applied to each tensor in it."""
    if torch.is_tensor(tree):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: map_tensors(v, fn) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(map_tensors(v, fn) for v in tree)
    return tree


def cloned(tree):
    """A copy of `tree` that shares no tensor with it (a rollback snapshot must not move with training)."""
    return map_tensors(tree, lambda t: t.detach().clone())


def write(path: Path, identity: dict, state: dict) -> None:
    """Save `state` as the checkpoint of the encode `identity` at `path`, atomically. OSError or RuntimeError
    (torch's writer) where it cannot be written; no file is left behind then."""
    tmp = temp_file(path)
    try:
        torch.save({"kind": KIND, "format": FORMAT, "identity": json.dumps(identity),
                    "state": map_tensors(state, lambda t: t.detach().cpu())}, tmp)
        tmp.chmod(file_mode())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read(path: Path, identity: dict) -> dict:
    """The training state in the checkpoint at `path` (tensors on the CPU); TrainingError (one line) where it is
    not a dnv checkpoint of this format or belongs to another encode than `identity`."""
    if _is_safetensors(path):
        raise TrainingError(f"cannot resume: {path} is a checkpoint of an earlier version of dnv, which this one "
                            "cannot continue; delete it or run without --resume")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        raise TrainingError(f"cannot resume: {path} is not a readable dnv checkpoint "
                            f"({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    if not isinstance(saved, dict) or saved.get("kind") != KIND:
        raise TrainingError(f"cannot resume: {path} is not a dnv checkpoint")
    if saved.get("format") != FORMAT:
        raise TrainingError(f"cannot resume: {path} is of checkpoint format {saved.get('format')}, this dnv "
                            f"reads format {FORMAT}; delete it or run without --resume")
    try:
        there, state = json.loads(saved["identity"]), saved["state"]
    except (KeyError, TypeError, ValueError):
        raise TrainingError(f"cannot resume: {path} is not a dnv checkpoint") from None
    here = json.loads(json.dumps(identity))     # (tuples as lists, as the file has them)
    for key, what in IDENTITY.items():
        if there.get(key) != here[key]:
            why = _differences(there.get(key), here[key])
            raise TrainingError(f"cannot resume: {path} is from an encode with {what}"
                                + (f" ({why})" if why else "") + "; delete it or run without --resume")
    return state


def _is_safetensors(path: Path) -> bool:
    """A safetensors file (an 8-byte little-endian header length, then the JSON header): earlier checkpoints."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path)
    except OSError:
        return False        # (torch.load says why)


def _differences(saved, current) -> str:
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return ""
    keys = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    return ", ".join(f"{k} {saved.get(k)} there, {current.get(k)} here" for k in keys[:3])
