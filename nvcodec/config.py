"""`EncodeConfig`: every option of an encode, its default and its check, defined once.

The CLI builds one from its options, `codec.encode` from its keywords, and the encode job reads it
(it is plain data, so it pickles to the worker processes of --gpus N). Defaults that depend on the
model (quantizer depth) or on the preset and the network's size (epochs, learning rate, optimizer:
`fit.recipe`) are None here and resolved where they are used.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .color import PLANES
from .models import DEFAULT_MODEL, MODELS, quant_bits_for

DEFAULT_BPP = 0.05      # the target when neither bpp nor model_size is given
BIT_DEPTHS = ("rd", "single")   # how rate control sets the quantizer's depths (`compress.bitalloc`)


@dataclass(frozen=True)
class EncodeConfig:
    bpp: float | None = None            # target bits per pixel of the whole file (None: DEFAULT_BPP, or model_size)
    model_size: float | None = None     # decoder parameters instead of a bpp target
    model: str = DEFAULT_MODEL          # network family (`models.MODELS`)
    preset: str = "medium"              # time for quality: a recipe of epochs and optimizer (`fit.PRESETS`)
    epochs: int | None = None           # training epochs (None: the preset's)
    prune_epochs: int | None = None     # fine-tuning epochs after pruning (None: the preset's share)
    batch: int | None = None            # frames per training step (None: `fit.TrainSettings`')
    lr: float | None = None             # peak learning rate (None: the optimizer's)
    loss: str = "l2"                    # training loss (`fit.LOSSES`)
    prune: float = 0.1                  # fraction of decoder weights pruned
    quant_bits: int | None = None       # quantizer depth before rate control trims it (None: the model's own)
    # "single": one quantizer depth for all tensors; "rd": a depth per group of tensors by rate-distortion
    # (`compress.bitalloc`; not the default: it has not yet won at equal bpp on two clips, see the README).
    bit_depths: str = "single"
    device: str = "auto"                # auto, cuda, cuda:N or cpu
    frame_range: tuple = (0, None)      # encode frames [START, END) only (END None: to the end)
    size: tuple | None = None           # raw .yuv input: (width, height)
    pix_fmt: str = "yuv420p"            # raw .yuv input: pixel format
    fps: object = None                  # frame rate of raw .yuv and image folders (None: the reader's default)
    # The sample format coded (`color.PLANES`): None codes the source's own, its 4:2:0 planes where it is 4:2:0
    # (`video.default_planes`), RGB otherwise.
    color: str | None = None
    seed: int = 0                       # random seed of training
    compile: bool | None = None         # torch.compile the training step (None: on CUDA only)
    progress: bool = True               # show a progress bar
    resume: bool = False                # continue from the checkpoint of an interrupted encode
    checkpoint_every: float = 60.0      # seconds between training checkpoints (0: only on Ctrl-C)
    segment_frames: int | None = None   # frames per segment (None: `segments.DEFAULT_SEGMENT_FRAMES`)
    gpus: int = 1                       # processes to spread segments over
    train_options: dict = field(default_factory=dict)   # other training settings by name (`fit.TRAIN_OPTIONS`)
    overwrite: bool = True              # replace an existing output file

    def __post_init__(self):
        # Called on every construction, `dataclasses.replace` included: no config holds a bad value.
        from .codec import CodecError   # (codec imports this module)
        from .fit import PRESETS

        # A copy of its own (and {} for None): the caller's dict may change after.
        object.__setattr__(self, "train_options", dict(self.train_options or {}))
        if self.model not in MODELS:
            raise CodecError(f"unknown model {self.model!r} (choose {', '.join(MODELS)})")
        if self.color is not None and self.color not in PLANES:
            raise CodecError(f"unknown --color {self.color!r} (choose {' or '.join(PLANES)})")
        if self.preset not in PRESETS:
            raise CodecError(f"unknown preset {self.preset!r} (choose {', '.join(PRESETS)})")
        if self.bpp is not None and not 0 < self.bpp < float("inf"):
            raise CodecError("--bpp must be a positive number")
        if not (2 <= self.planned_quant_bits <= 16):
            raise CodecError("--quant-bits must be between 2 and 16")
        if self.bit_depths not in BIT_DEPTHS:
            raise CodecError(f"unknown --bit-depths {self.bit_depths!r} (choose {', '.join(BIT_DEPTHS)})")
        if not (0 <= self.prune < 1):
            raise CodecError("--prune must be in [0, 1)")
        if self.segment_frames is not None and self.segment_frames < 2:
            raise CodecError("--segment-frames must be at least 2")
        if self.gpus < 1:
            raise CodecError("--gpus must be at least 1")
        self.train_settings()   # checks the training options

    @property
    def target_bpp(self) -> float | None:
        """The bpp target: the one given, DEFAULT_BPP when no size was asked for, None with model_size alone."""
        return DEFAULT_BPP if self.bpp is None and self.model_size is None else self.bpp

    @property
    def planned_quant_bits(self) -> int:
        return quant_bits_for(self.model) if self.quant_bits is None else self.quant_bits

    @property
    def read_options(self) -> dict:
        """`video.VideoReader`'s keywords."""
        return dict(frame_range=self.frame_range, size=self.size, pix_fmt=self.pix_fmt, fps=self.fps, color=self.color)

    def train_settings(self):
        """(fit.TrainSettings, the names the caller chose). Optimizer, learning rate and epochs not chosen come
        from the preset's recipe for each network's size (`fit.recipe`), once the video's size has set it."""
        from .codec import CodecError
        from .fit import TrainSettings, check_train_option

        settings, chosen = TrainSettings(loss=self.loss, prune=self.prune, seed=self.seed), set()
        explicit = dict(epochs=self.epochs, prune_epochs=self.prune_epochs, batch=self.batch, lr=self.lr)
        for name, value in [*explicit.items(), *self.train_options.items()]:
            if value is None:
                continue
            try:
                check_train_option(name, value)
            except ValueError as e:
                raise CodecError(str(e)) from None
            setattr(settings, name, value)
            chosen.add(name)
        betas = [name for name in ("beta1", "beta2") if name in chosen]
        if betas:  # Adam's settings: choosing one chooses Adam
            if "optimizer" in chosen and settings.optimizer != "adam":
                raise CodecError(f"--train {betas[0]} is one of Adam's betas; {settings.optimizer} has no such setting")
            settings.optimizer = "adam"
            chosen.add("optimizer")
        return settings, chosen

    def replace(self, **options) -> EncodeConfig:
        """A copy with `options` changed (checked again); TypeError for a name that is no option."""
        return dataclasses.replace(self, **options) if options else self
