"""Two gloo processes on the CPU: each encodes its share, rank 0 gathers; one failure ends all."""
import os
from functools import partial

import pytest

from nvcodec.distributed import RankFailed, gather_results, spawn_local


def _produce(i: int, fail_on: int | None) -> bytes:
    if i == fail_on:
        raise ValueError(f"segment {i} is broken")
    return f"segment {i} by pid {os.getpid()}".encode()


def _job(group, out: str, count: int, fail_on: int | None):
    results = gather_results(group, lambda: {i: _produce(i, fail_on) for i in range(count) if group.mine(i)})
    if group.rank == 0:
        with open(out, "wb") as f:
            f.write(b"\n".join(results[i] for i in range(count)))


def test_two_processes_share_and_gather(tmp_path):
    out = tmp_path / "all.txt"
    spawn_local(2, partial(_job, out=str(out), count=5, fail_on=None))
    lines = out.read_bytes().split(b"\n")
    assert [line.split(b" by ")[0] for line in lines] == [f"segment {i}".encode() for i in range(5)]
    pids = {line.split(b"pid ")[1] for line in lines}
    assert len(pids) == 2  # both processes did work


def test_a_failing_rank_ends_the_run_without_output(tmp_path):
    out = tmp_path / "all.txt"
    with pytest.raises(RankFailed, match="rank 1: ValueError: segment 3 is broken"):
        spawn_local(2, partial(_job, out=str(out), count=5, fail_on=3))
    assert not out.exists()


def test_one_process_raises_its_own_error():
    """Alone, a failure keeps its type (the CLI words a bad --bpp or an out-of-memory by it), with no rank."""
    from nvcodec.distributed import SINGLE
    with pytest.raises(ValueError, match="^segment 1 is broken$"):
        gather_results(SINGLE, lambda: {i: _produce(i, fail_on=1) for i in range(3)})
    assert gather_results(SINGLE, lambda: {0: b"x"}) == {0: b"x"}


def _check_on_first_rank(group, folder: str, fail: bool):
    from nvcodec.distributed import run_on_first_rank

    def check():
        assert group.rank == 0, "the check runs on rank 0 only"
        if fail:
            raise ValueError("output exists")
    try:
        run_on_first_rank(group, check)
        outcome = "ok"
    except Exception as e:  # noqa: BLE001 - recorded for the test
        outcome = f"{type(e).__name__}: {e}"
    with open(os.path.join(folder, f"rank{group.rank}"), "w") as f:
        f.write(outcome)


@pytest.mark.parametrize("fail", [False, True])
def test_a_check_on_the_first_rank_ends_every_rank_the_same_way(tmp_path, fail):
    """Under torchrun only rank 0 checks (and locks) the output; when it refuses, no other rank waits for it."""
    spawn_local(2, partial(_check_on_first_rank, folder=str(tmp_path), fail=fail))
    outcomes = [(tmp_path / f"rank{r}").read_text() for r in (0, 1)]
    if fail:
        assert outcomes == ["ValueError: output exists", "RankFailed: rank 0: ValueError: output exists"]
    else:
        assert outcomes == ["ok", "ok"]
