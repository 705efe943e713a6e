"""How a model's inputs are trained: what the training loop (`nvcodec.fit`) asks of a model besides its
decoder, chosen by the model's registry entry (`ModelSpec.training`), so that the loop names no model.

A `TrainingInputs` is built from (arch, frames, settings) before the decoder (the seeded initialisation
follows that order). It owns `module`, the trainable network or tables that give the decoder its inputs,
and says:
- `param_groups(decoder)`: the parameters to train, one list of parameter groups per optimizer (a group's
  `lr_scale` multiplies the schedule's learning rate);
- `batch(video, idx, device)`: the tensors of one training step at the frames `idx`, from the whole video
  (uint8, T x 3 x pad_h x pad_w, on `device` or in host memory);
- `decoder_inputs(batch, rate)` and `reference(batch)`: the decoder's inputs and the frames it must give;
- `tables(video, device, batch)`: what the file stores beside the decoder, by section name (float32, CPU);
- `encoders(arch, enc_dim)` (a static method): the networks it runs on frames t-1, t, t+1, or None (for counting
  training FLOPs, `flops.training_flops`).
"""
from __future__ import annotations

import torch

from .arch import Arch
from .dsnerv import Codes
from .encoders import DiffEncoder, Encoders


def neighbours(video: torch.Tensor, idx: torch.Tensor):
    """Float frames t-1, t, t+1 for a batch of indices (ends repeat, so their differences are zero)."""
    last = video.shape[0] - 1
    get = lambda i: video[i].float().div_(255.0)  # noqa: E731
    return get((idx - 1).clamp(min=0)), get(idx), get((idx + 1).clamp(max=last))


def frame_triplets(video: torch.Tensor, idx: torch.Tensor, device: torch.device) -> tuple:
    """`neighbours` on `device`, from a video on the device or in host memory."""
    if video.device != idx.device:
        return tuple(x.to(device, non_blocking=True) for x in neighbours(video, idx.cpu()))
    return neighbours(video, idx)


@torch.no_grad()
def encode_every_frame(encoders: torch.nn.Module, video: torch.Tensor, device: torch.device,
                       batch: int) -> list[torch.Tensor]:
    """The outputs of `encoders` (forward(prev, cur, nxt) -> a tensor, or a tuple of them with None for an output
    it lacks) for every frame of `video`, in eval mode, `batch` frames at a time: a tensor per output (float32, CPU)."""
    training = encoders.training
    encoders.eval()
    outputs = []
    for i in range(0, video.shape[0], batch):
        idx = torch.arange(i, min(i + batch, video.shape[0]), device=device)
        out = encoders(*frame_triplets(video, idx, device))
        outputs.append([o.float().cpu() for o in (out if isinstance(out, tuple) else (out,)) if o is not None])
    encoders.train(training)
    return [torch.cat(parts) for parts in zip(*outputs)]


class TrainingInputs:
    module: torch.nn.Module
    learned_tables = False      # whether `module` holds every stored table itself (no encoders; see ModelSpec)

    def param_groups(self, decoder: torch.nn.Module) -> list[list[dict]]:
        raise NotImplementedError

    def batch(self, video: torch.Tensor, idx: torch.Tensor, device: torch.device) -> tuple:
        raise NotImplementedError

    def decoder_inputs(self, batch: tuple, rate=None) -> list:
        """`rate`: in rate-aware fine-tuning, the `compress.learned.RateTerm` whose steps quantize the tables. (In
        quantization-aware fine-tuning the trainer puts the file's values in the tables: `fit.Trainer._on_file_grid`.)"""
        raise NotImplementedError

    def learned_table_params(self) -> dict[str, torch.Tensor]:
        """The stored tables that are parameters (rate-aware training gives each a learned entropy model)."""
        return {}

    def reference(self, batch: tuple) -> torch.Tensor:
        raise NotImplementedError

    def tables(self, video: torch.Tensor, device: torch.device, batch: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @staticmethod
    def encoders(arch: Arch, enc_dim: int) -> torch.nn.Module | None:
        return None


class FrameTriplets(TrainingInputs):
    """HNeRV, DNeRV: ConvNeXt encoders compute the inputs from frames t-1, t, t+1 (the diff branch takes their
    differences). The encoders train with the decoder, in one parameter group; the file holds their outputs,
    not them."""
    encoders = staticmethod(Encoders)

    def __init__(self, arch: Arch, frames: int, settings):
        self.arch = arch
        self.module = self.encoders(arch, settings.enc_dim)

    def param_groups(self, decoder):
        return [[{"params": list(self.module.parameters()) + list(decoder.parameters())}]]

    def batch(self, video, idx, device):
        return frame_triplets(video, idx, device)

    def decoder_inputs(self, batch, rate=None):
        return self.module(*batch)      # (the encoders are not stored, so not quantized)

    def reference(self, batch):
        return batch[1]

    def tables(self, video, device, batch):
        """The content (and diff) embeddings of every frame."""
        return dict(zip(self.arch.sections, encode_every_frame(self.module, video, device, batch)))


class LearnedTables(TrainingInputs):
    """DS-NeRV's codes, HiNeRV's grids: the inputs are tables of parameters (`dsnerv.Codes`) read at the batch's
    frame times, trained with the decoder at `code_lr_scale` times its learning rate; the file stores them.
    During quantization-aware fine-tuning the trainer puts the file's values in them. `sections`: the tables it
    holds where not all of `arch.sections` (see `Codes`)."""
    learned_tables = True

    def __init__(self, arch: Arch, frames: int, settings, sections: tuple[str, ...] | None = None):
        self.module = Codes(arch, frames, sections)
        self.lr_scale = settings.code_lr_scale

    def param_groups(self, decoder):
        return [[{"params": list(decoder.parameters())}, self.table_group()]]

    def table_group(self) -> dict:
        """The tables' parameter group, at their learning-rate scale."""
        return {"params": list(self.module.parameters()), "lr_scale": self.lr_scale}

    def batch(self, video, idx, device):
        frames = video[idx.to(video.device)].to(device, non_blocking=True)
        return idx, frames.float().div_(255.0)

    def decoder_inputs(self, batch, rate=None):
        idx = batch[0]
        if rate is not None:
            params = rate.table_params(self.learned_table_params(), prefix="table.")
            return torch.func.functional_call(self.module, params, (idx,))
        return self.module(idx)

    def reference(self, batch):
        return batch[1]

    def learned_table_params(self):
        return dict(self.module.table.items())

    def tables(self, video, device, batch):
        return self.module.tables()


class TablesAndDiff(TrainingInputs):
    """HiNeRV-diff: `LearnedTables`' tables (every section but DIFF), and DNeRV's diff embedding of each frame,
    which the diff encoder computes from frames t-1, t, t+1 as in `FrameTriplets` (it trains with the decoder, in
    its parameter group; the file holds its outputs, DIFF, not it)."""
    encoders = staticmethod(DiffEncoder)

    def __init__(self, arch: Arch, frames: int, settings):
        self.arch = arch
        self.learned = LearnedTables(arch, frames, settings, tuple(s for s in arch.sections if s != "DIFF"))
        self.encoder = self.encoders(arch, settings.enc_dim)
        self.module = torch.nn.ModuleDict({"tables": self.learned.module, "diff": self.encoder})

    def param_groups(self, decoder):
        return [[{"params": list(self.encoder.parameters()) + list(decoder.parameters())},
                 self.learned.table_group()]]

    def batch(self, video, idx, device):
        return idx, *frame_triplets(video, idx, device)

    def decoder_inputs(self, batch, rate=None):
        idx, prev, cur, nxt = batch
        inputs = dict(zip(self.learned.module.sections, self.learned.decoder_inputs((idx,), rate)))
        inputs["DIFF"] = self.encoder(prev, cur, nxt)       # (the encoder is not stored, so not quantized)
        return [inputs[name] for name in self.arch.sections]

    def reference(self, batch):
        return batch[2]

    def learned_table_params(self):
        return self.learned.learned_table_params()

    def tables(self, video, device, batch):
        """The learned tables, and the diff embedding of every frame."""
        tables = {**self.learned.tables(video, device, batch),
                  "DIFF": encode_every_frame(self.encoder, video, device, batch)[0]}
        return {name: tables[name] for name in self.arch.sections}
