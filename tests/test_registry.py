"""The model registry: every model's header bytes are those files already hold, and the code outside the model
modules names no model."""
import re
from fractions import Fraction
from pathlib import Path

import pytest

from nvcodec import bitstream, sizing
from nvcodec.models import MODELS, SPECS, Arch, ArchError, hinerv

# Headers of 176x144 x 120 frames at 30000/1001 fps, 6-bit, planned for 0.1 bpp (packed before the registry;
# hinerv's with its grids planned for a quarter of the file, as then).
HEADERS = {
    "hnerv": "00b00090007800000030750000e903000006050305030302020103050505100010000800080007000500100202040303",
    "dnerv": "01b00090007800000030750000e9030000060503050303020201030505050b0009000700050004000400100202050303",
    "dsnerv": "02b00090007800000030750000e9030000060503050303020201030505050b000900070005000400040010010205030310"
              "0000007800000001",
    "hinerv": "03b00090007800000030750000e903000006040303030202030303031d001d000e000700040010020204030303030301040404"
              "0102040300080600040600",
    "hinerv-diff": "04b00090007800000030750000e903000006040303030202030303031b001b000d0006000400100200030101030303010404"
                   "040102040300080600040600",
}


@pytest.mark.parametrize("model", sorted(HEADERS))
def test_each_model_packs_and_unpacks_the_header_bytes_files_hold(model, monkeypatch):
    monkeypatch.setattr(hinerv, "GRID_SHARE_GOAL", 0.25)
    header = bitstream.Header(sizing.plan_for_bpp(model, 176, 144, 120, 0.1).arch, 120, Fraction(30000, 1001), 6)
    data = bitstream.pack_header(header)
    assert data.hex() == HEADERS[model]
    assert bitstream.unpack_header(data) == header
    with pytest.raises(bitstream.BitstreamError, match="header is truncated|header has"):
        bitstream.unpack_header(data[:-1])


def test_the_registry_lists_every_model_once_with_distinct_ids_and_section_tags():
    assert MODELS == ("hnerv", "dnerv", "dsnerv", "hinerv", "hinerv-diff")
    assert len({spec.model_id for spec in SPECS.values()}) == len(SPECS)
    assert len(set(bitstream.SECTION_TAGS.values())) == len(bitstream.SECTION_TAGS)
    for spec in SPECS.values():
        arch = spec.plan_for_params(176, 144, 5e4, 8).arch
        assert set(arch.section_shapes(8)) <= set(spec.tables)
    with pytest.raises(ArchError, match="unknown model 'nope'"):
        Arch("nope", 64, 64, (2,), (8, 8), (3,))


def test_the_container_cli_training_loop_info_and_fuzzer_name_no_model():
    root = Path(__file__).resolve().parents[1]
    names = re.compile("|".join(rf"\b{m}\b" for m in MODELS))
    for rel in ("nvcodec/bitstream.py", "nvcodec/cli.py", "nvcodec/fit.py", "nvcodec/codec.py", "nvcodec/flops.py",
                "nvcodec/sizing.py", "nvcodec/models/decoder.py", "nvcodec/models/arch.py", "benchmarks/fuzz_dnv.py",
                *(str(p.relative_to(root)) for p in sorted((root / "nvcodec/train").glob("*.py")))):
        code = [line for line in (root / rel).read_text().splitlines() if not line.lstrip().startswith("#")]
        hits = [line for line in code if names.search(line) and '"' in line]
        assert not hits, (rel, hits)


def test_a_new_model_needs_no_edit_of_the_container(monkeypatch):
    from nvcodec.models import registry
    from nvcodec.models.nerv import NeRVDecoder

    hnerv = SPECS["hnerv"]
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    monkeypatch.setattr(registry, "_BY_ID", dict(registry._BY_ID))
    toy = registry.register(registry.ModelSpec(
        "toy", 200, "Toy", "content, one header byte of its own", NeRVDecoder, hnerv.section_shapes, hnerv.tables,
        training=hnerv.training,
        pack_tail=lambda arch: bytes([arch.heads]),
        unpack_tail=lambda data, pos, stages: (dict(heads=data[pos]), pos + 1),
        check_header=lambda fields, stages, frames: None if fields["heads"] == 7 else "toy header without its 7"))
    arch = Arch("toy", 64, 48, (2, 2), (8, 8, 8), (3, 3), heads=7)
    header = bitstream.Header(arch, 5, Fraction(25), 8)
    data = bitstream.pack_header(header)
    assert data[0] == toy.model_id and data[-1] == 7 and bitstream.unpack_header(data) == header
    with pytest.raises(bitstream.BitstreamError, match="toy header without its 7"):
        bitstream.unpack_header(data[:-1] + b"\x08")
