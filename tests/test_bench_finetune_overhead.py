"""benchmarks.finetune_overhead: times every piece it names on the planned network, and timing leaves the network's
values as they were (the swap puts the trained values back)."""
import json

import torch

from benchmarks.finetune_overhead import main, network, pieces, row_extremes_by_segments
from nvcodec.compress.flatgrid import FlatGrid, entries_of


def test_the_swap_puts_the_trained_values_back():
    device = torch.device("cpu")
    _, decoder, tables, masks = network(176, 144, 12, 0.1, device)
    before = [p.detach().clone() for p in list(decoder.parameters()) + list(tables.values())]
    pieces(decoder, tables, masks, device)["file_values_swap"]()
    after = list(decoder.parameters()) + list(tables.values())
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_both_ways_give_every_rows_extremes():
    _, decoder, tables, _ = network(176, 144, 12, 0.1, torch.device("cpu"))
    entries = entries_of(decoder, tables)
    grid = FlatGrid(entries, 5.72)
    flat = torch.cat([p.detach().reshape(-1) for _, _, p, _ in entries])
    hi, lo = grid.row_extremes(flat)
    assert torch.equal(torch.stack(row_extremes_by_segments(grid)(flat)), torch.stack([hi, lo]))
    first = decoder.stages[0][0].pw1.weight     # rows of a weight: its output channels
    n = first.shape[0]
    start = sum(p.numel() for _, _, p, _ in entries[:[p is first for _, _, p, _ in entries].index(True)])
    row0 = flat[start:start + first[0].numel()]
    assert n > 1 and row0.max() in hi and row0.min() in lo


def test_it_writes_every_piece(tmp_path):
    main(["--size", "176x144", "--frames", "12", "--bpp", "0.1", "--iters", "2", "--out", str(tmp_path)])
    record = json.loads((tmp_path / "finetune_overhead_176x144_cpu.json").read_text())
    assert set(record["pieces"]) == {"file_values_swap", "flat_grid_only", "row_extremes_scatter",
                                     "row_extremes_segments", "freezer_between_checks", "freezer_check",
                                     "apply_masks", "clip_and_adam"}
    assert all(r["host_ms"] > 0 and r["device_ms"] > 0 for r in record["pieces"].values())
    assert record["per_step"]["host_ms"] > record["pieces"]["apply_masks"]["host_ms"]
