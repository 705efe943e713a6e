"""Spreading segments over processes with torch.distributed (NCCL on GPUs, gloo on CPUs).

Each rank encodes the segments `i` with `i % world == rank` (`Group.mine`); the results travel to rank 0 with one
`gather_object`, and only rank 0 writes the file. A failure on any rank is reported to all ranks in
that same collective, so the run ends with one clear error and no file.

Two ways in:
- `dnv encode ... --gpus N`: this process spawns N workers on this machine (`spawn_local`);
- `torchrun --nproc-per-node N [--nnodes M --rdzv-endpoint HOST:PORT] -m nvcodec encode ...`: each
  process finds RANK / WORLD_SIZE / LOCAL_RANK in its environment (`from_environment`).
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist


class RankFailed(RuntimeError):
    """Some rank could not encode its share: one line naming the rank and its error."""


@dataclass(frozen=True)
class Group:
    rank: int
    world: int
    local_rank: int

    def mine(self, item: int) -> bool:
        return item % self.world == self.rank

    def device(self, requested: str) -> str:
        """Each rank takes its own GPU when CUDA is used."""
        if self.world > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested


SINGLE = Group(0, 1, 0)


def from_environment() -> Group | None:
    """The group torchrun set up for this process (initialising torch.distributed), or None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) < 2:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    _share_cpu(int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=6))
    return Group(dist.get_rank(), dist.get_world_size(), local_rank)


def _share_cpu(processes: int) -> None:
    """The processes of one machine split its cores, GPU workers too (their host-side work, reading
    frames, entropy coding, runs on the CPU): each taking all of them makes OpenMP threads spin against
    each other. Before GPU workers shared too, 2 GPUs of an h200-x2 encoded no faster than 1
    (benchmarks/results/multi_gpu), with both ranks' host-side work slowed."""
    torch.set_num_threads(max(1, usable_cores() // processes))


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), or fewer where OMP_NUM_THREADS asks for fewer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(wanted))) if wanted.isdigit() and int(wanted) > 0 else cores


def run_on_first_rank(group: Group, check: Callable[[], None]) -> None:
    """Run `check()` on rank 0 only (the rank that writes the file). If it fails, rank 0 raises its own error and
    every other rank RankFailed with its line, instead of waiting for a rank that has stopped."""
    error = None
    if group.rank == 0:
        try:
            check()
        except Exception as e:  # noqa: BLE001 - told to every rank, then raised
            error = e
    verdict = [None if error is None else f"rank 0: {type(error).__name__}: {' '.join(str(error).split())}"]
    dist.broadcast_object_list(verdict, src=0)
    if error is not None:
        raise error
    if verdict[0]:
        raise RankFailed(verdict[0])


def gather_results(group: Group, work: Callable[[], dict]) -> dict | None:
    """Run `work()` (this rank's share, as {item: result}); rank 0 gets every rank's results merged.

    With several processes, raises RankFailed on every rank if any rank failed (after all have reported);
    with one, work()'s own exception.
    """
    if group.world == 1:   # one process: its errors reach the caller as they are (their type says what went wrong)
        return work()
    mine, error = {}, None
    try:
        mine = work()
    except Exception as e:  # noqa: BLE001 - reported to all ranks, then raised as one line
        error = f"rank {group.rank}: {type(e).__name__}: {' '.join(str(e).split())}"
    # One object per rank; the results are bytes (segments), so gather_object's pickling is cheap.
    everything = [None] * group.world if group.rank == 0 else None
    dist.gather_object((mine, error), everything, dst=0)
    # Rank 0 knows whether all went well; tell the others, so that every rank ends the same way.
    verdict = [None]
    if group.rank == 0:
        errors = [err for _, err in everything if err]
        verdict = ["; ".join(errors) if errors else ""]
    dist.broadcast_object_list(verdict, src=0)
    if verdict[0]:
        raise RankFailed(verdict[0])
    if group.rank != 0:
        return None
    merged = {}
    for part, _ in everything:
        merged.update(part)
    return merged


def _worker(local_rank: int, world: int, port: int, job: Callable[[Group], None], backend: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(local_rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank))
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    _share_cpu(world)
    dist.init_process_group(backend, rank=local_rank, world_size=world, timeout=datetime.timedelta(hours=6))
    try:
        job(Group(local_rank, world, local_rank))
    finally:
        dist.destroy_process_group()


def spawn_local(world: int, job: Callable[[Group], None]) -> None:
    """Run `job(group)` in `world` processes on this machine (one per GPU when CUDA is there)."""
    import socket

    import torch.multiprocessing as mp

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl" and torch.cuda.device_count() < world:
        raise RankFailed(f"--gpus {world} asked for, but only {torch.cuda.device_count()} GPUs are visible")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        mp.spawn(_worker, args=(world, port, job, backend), nprocs=world, join=True)
    except mp.ProcessRaisedException as e:
        last = [line for line in str(e).strip().splitlines() if line.strip()][-1]
        raise RankFailed(last.split(": ", 1)[-1] if ": " in last else last) from None
    except mp.ProcessExitedException as e:
        raise RankFailed(f"an encoding process died ({e})") from None
