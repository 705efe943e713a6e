"""The whole training step as one CUDA graph: no torch.compile, so no compile time.

A batch-1 step of a NeRV network is a few hundred small kernels; launched one by one from Python they
leave the GPU idle most of the time. torch.compile's CUDA graphs ("reduce-overhead") fix that, but
compiling costs 25-75 s per encode, a large part of a 3-minute training budget. Here the step as
`Fitter` runs it eagerly (gather the batch from the resident video, forward, backward, gradient
clipping, fused Adam, pruning masks) is captured once with `torch.cuda.graph` and replayed; each
replay only copies in the frame indices (and the optimizer reads its learning rate from a device
tensor that the fitter fills before the replay).

PyTorch's recipe ("whole network capture"): a few eager steps on a side stream first (they allocate
the optimizer state and let cuDNN pick its algorithms), then the capture, with the gradients unset so
that backward writes them into the graph's own memory. Those warm-up steps are real training steps.
A graph belongs to one optimizer and one batch size: a new optimizer (pruning, a rollback, a resume)
or a lowered batch means warming up and capturing again. If capturing fails, the fitter is told to
go on without graphs.
"""
from __future__ import annotations

import torch

WARMUP_STEPS = 3


class StepGraph:
    def __init__(self, run_step, on_failure):
        """`run_step(idx)` runs one eager training step and returns its detached MSE; `on_failure(error)`
        is called (and None returned) if a capture fails."""
        self.run_step, self.on_failure = run_step, on_failure
        self.owner = None
        self.graphs: dict[int, tuple] = {}   # batch size -> (graph, its index tensor, its MSE tensor)
        self.warm: dict[int, int] = {}       # batch size -> eager steps taken with this optimizer

    def __call__(self, idx: torch.Tensor, optimizer) -> torch.Tensor | None:
        """One training step on frames `idx` (a device tensor) with `optimizer`: replayed from the graph,
        or eager while warming up; None if capturing failed (the caller then steps without graphs).
        A last, smaller batch of an epoch gets a graph of its own."""
        if self.owner is not optimizer:
            self.owner, self.graphs, self.warm = optimizer, {}, {}
        batch = idx.numel()
        if batch in self.graphs:
            graph, static_idx, mse = self.graphs[batch]
            static_idx.copy_(idx)
            graph.replay()
            return mse
        if self.warm.get(batch, 0) < WARMUP_STEPS:
            self.warm[batch] = self.warm.get(batch, 0) + 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                mse = self.run_step(idx)
            torch.cuda.current_stream().wait_stream(side)
            return mse
        return self._capture(idx, optimizer)

    def _capture(self, idx, optimizer):
        static_idx = idx.clone()
        optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                mse = self.run_step(static_idx)
        except torch.OutOfMemoryError:
            raise
        except Exception as e:  # noqa: BLE001 - any capture failure falls back to eager steps, said once
            optimizer.zero_grad(set_to_none=True)
            self.on_failure(e)
            return None
        self.graphs[idx.numel()] = graph, static_idx, mse
        graph.replay()      # capturing records the step without running it
        return mse
