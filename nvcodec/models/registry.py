"""The models dnv knows, by name: each model module registers one `ModelSpec` that says all the rest of dnv needs
to know about it (the container, the CLI, the training loop, `info` and the planner only look models up here).

Adding a model means adding a module to this package that builds its `ModelSpec` and calls `register` (the
package imports all its modules): its header bytes, its input tables (with their section tags), its decoder, how
its inputs are trained (`models.training`), its quantizer depth and its planners.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Table:
    """One per-video input table of a model, stored in its own section of the file."""
    tag: int                    # the section's tag byte in the file (unique among all sections)
    label: str                  # what `dnv info` calls it
    init_std: float = 1.0       # starting spread of a learnable table (models whose tables are trained)
    # Bits per coded value below the quantizer's depth, where not the model's (`ModelSpec.table_bits_below_quant`):
    # a table whose values code unlike the model's others (encoder outputs beside learned grids).
    bits_below_quant: float | None = None


@dataclass(eq=False)
class ModelSpec:
    name: str                   # --model NAME, and `Arch.model`
    model_id: int               # the header's model byte: never reuse or change one (files hold it)
    display: str                # how people write it ("DS-NeRV")
    description: str            # one line for --help
    # The decoder network of an Arch of this model (nn.Module; forward takes the tables of `arch.sections`).
    decoder: Callable
    # (arch, frames) -> {section name: (entries, channels, h, w)}, the decoder's inputs first to last.
    section_shapes: Callable
    tables: dict[str, Table]    # every section `section_shapes` may name
    # Raises ArchError where the model's own fields of an Arch are out of range.
    validate: Callable = lambda arch: None
    # The header bytes after the common fields: pack_tail(arch) -> bytes; unpack_tail(data, pos, stages) ->
    # (Arch keyword arguments, pos) (struct.error or IndexError where the data runs out); check_header(fields,
    # stages, frames) -> None, or one line saying what is wrong with a header that parsed.
    pack_tail: Callable = lambda arch: b""
    unpack_tail: Callable = lambda data, pos, stages: ({}, pos)
    check_header: Callable = lambda fields, stages, frames: None
    # How its inputs are trained (`models.training`): (arch, frames, TrainSettings) -> a TrainingInputs, e.g.
    # `FrameTriplets` (encoders compute them from frames t-1, t, t+1; the file holds their outputs) or
    # `LearnedTables` (learnable tables trained with the decoder; the file holds them), or `TablesAndDiff` (learnable
    # tables and an encoder's diff embeddings). Required.
    training: Callable = None
    # A second input branch joins the first after `Arch.fuse_stage` (the header's diff-branch fields are used).
    two_stream: bool = False
    quant_bits: int = 8         # the quantizer depth the planner assumes (rate control then trims it)
    table_bits_below_quant: float = 4.0     # bits per coded table value below the quantizer's depth (unless
    # the `Table` says its own)
    # plan_for_bpp(width, height, frames, bpp, quant_bits, prune) -> sizing.Plan (or sizing.InfeasibleRate);
    # plan_for_params(width, height, params, frames) -> sizing.Plan.
    plan_for_bpp: Callable = None
    plan_for_params: Callable = None
    adan_min_params: float = math.inf       # networks of this many decoder parameters train with Adan, not Adam
    # Peak learning rates of this model by optimizer, where they differ from `fit.OPTIMIZER_LR`'s.
    learning_rates: dict = field(default_factory=dict)
    # (arch, section shapes) -> the model's own fields of `dnv info` (keys in `info_keys`).
    info: Callable = lambda arch, shapes: {}
    info_keys: tuple[str, ...] = ()
    # An Arch with the same decoder network, for caching parameter counts (fields that only size tables reset).
    network_of: Callable = lambda arch: arch
    # Files `benchmarks/fuzz_dnv.py` mutates: (frames, bpp, frame size crop or None[, frames a segment or None[,
    # training options]]) each.
    fuzz_seeds: tuple = ()

    @property
    def learned_tables(self) -> bool:
        """Whether the inputs are learnable tables trained with the decoder (no encoders to count or run)."""
        return self.training.learned_tables


MODELS: dict[str, ModelSpec] = {}      # in the order of their ids, whatever the order of registration
_BY_ID: dict[int, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in MODELS or spec.model_id in _BY_ID:
        raise ValueError(f"model {spec.name!r} or id {spec.model_id} registered twice")
    if spec.training is None:
        raise ValueError(f"model {spec.name!r} does not say how it is trained (ModelSpec.training)")
    for other in MODELS.values():
        for name, table in spec.tables.items():
            clash = [n for n, t in other.tables.items() if (n == name) != (t.tag == table.tag)]
            if clash:
                raise ValueError(f"table {name} of {spec.name} clashes with {clash[0]} of {other.name}")
    ordered = sorted([*MODELS.values(), spec], key=lambda s: s.model_id)
    MODELS.clear()
    MODELS.update((s.name, s) for s in ordered)
    _BY_ID[spec.model_id] = spec
    return spec


def spec_of(name: str) -> ModelSpec | None:
    return MODELS.get(name)


def spec_by_id(model_id: int) -> ModelSpec | None:
    return _BY_ID.get(model_id)


def table_sections() -> dict[str, Table]:
    """Every registered model's tables, by section name."""
    return {name: table for spec in MODELS.values() for name, table in spec.tables.items()}
