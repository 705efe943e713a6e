"""compress.freeze: a value that goes back and forth across a rounding threshold is frozen on the file's grid and
held there; one that moves one way is not."""
import pytest
import torch

from nvcodec.compress import freeze
from nvcodec.compress.freeze import OscillationFreezer
from nvcodec.compress.qat import table_grid, weight_grid

BITS = 4.0      # weight_levels(4) = 7: with a peak of 0.7 per channel, the grid's step is 0.1


def decoder(values) -> torch.nn.Module:
    layer = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.7, values[0], 0.0], [0.7, values[1], 0.0]]))
    return layer


@pytest.fixture
def every_step(monkeypatch):
    monkeypatch.setattr(freeze, "EVERY", 1)


def test_a_value_oscillating_across_a_threshold_is_frozen_and_held_on_the_grid(every_step):
    net = decoder([0.149, 0.149])
    freezer = OscillationFreezer(threshold=0.02)
    freezer.step(net, {}, BITS)
    for i in range(12):
        # value 0,1: back and forth across 0.15 (integer 1 <-> 2); value 1,1: steadily up, one level a step
        with torch.no_grad():
            net.weight[0, 1] = 0.151 if i % 2 == 0 else 0.149
            net.weight[1, 1] = 0.149 + 0.1 * (i + 1)
            net.weight[1, 1].clamp_(max=0.7)
        freezer.step(net, {}, BITS)
    st = freezer.state["decoder.weight"]
    assert bool(st["frozen"][0, 1]) and not bool(st["frozen"][1, 1])
    assert freezer.frozen() == 1
    q, scale, _ = weight_grid(net.weight, BITS)
    held = float(net.weight.detach()[0, 1])
    assert abs(held / float(scale[0]) - round(held / float(scale[0]))) < 1e-5     # on the grid
    with torch.no_grad():                     # an optimizer's move is undone at the next step
        net.weight[0, 1] = 0.6
    freezer.step(net, {}, BITS)
    assert float(net.weight.detach()[0, 1]) == held


def test_only_checks_count_a_value_seen_on_the_same_side_at_every_check_is_not_counted():
    net = decoder([0.149, 0.3])
    freezer = OscillationFreezer(threshold=0.01)
    for step, v in enumerate((0.149, 0.151, 0.149, 0.151, 0.149, 0.151, 0.149, 0.151, 0.149)):
        with torch.no_grad():
            net.weight[0, 1] = v
        freezer.step(net, {}, BITS)
        if step < 8:           # checks at steps 0 and 4 saw the same side, so no change: nothing frozen yet
            assert freezer.frozen() == 0
    assert freezer.steps == 9
    st = freezer.state["decoder.weight"]
    assert float(st["frequency"].sum()) == 0.0


def test_the_state_round_trips(every_step):
    net = decoder([0.149, 0.3])
    freezer = OscillationFreezer(threshold=0.01)
    for v in (0.149, 0.151, 0.149, 0.151):
        with torch.no_grad():
            net.weight[0, 1] = v
        freezer.step(net, {}, BITS)
    copy = OscillationFreezer(threshold=0.01)
    copy.load_state_dict(freezer.state_dict())
    assert copy.frozen() == freezer.frozen() > 0
    assert copy.state["decoder.weight"].keys() == freezer.state["decoder.weight"].keys()
    for field, tensor in freezer.state["decoder.weight"].items():
        assert torch.equal(copy.state["decoder.weight"][field], tensor)


def test_a_table_value_oscillating_is_frozen_and_held(every_step):
    net = torch.nn.Linear(2, 2, bias=False)
    table = torch.nn.Parameter(torch.tensor([[0.0, 0.0], [0.149, 0.3], [1.5, 1.5]]))    # channels span 0 to 1.5
    freezer = OscillationFreezer(threshold=0.02)
    for i in range(13):
        with torch.no_grad():
            table[1, 0] = 0.151 if i % 2 else 0.149     # across a threshold of the first channel's grid
        freezer.step(net, {"GRID0": table}, BITS)
    st = freezer.state["table.GRID0"]
    assert bool(st["frozen"][1, 0]) and freezer.frozen() == 1
    held = float(table.detach()[1, 0])
    with torch.no_grad():
        table[1, 0] = 0.9
    freezer.step(net, {"GRID0": table}, BITS)
    assert float(table.detach()[1, 0]) == held
    _, scale, lo = table_grid(table, BITS)
    step = float(scale[0, 0])
    assert abs((held - float(lo[0, 0])) / step - round((held - float(lo[0, 0])) / step)) < 1e-4   # on the grid


def test_the_kept_buffer_gives_what_a_fresh_gather_gives_step_by_step(every_step):
    """The freezer gathers the values into a buffer it keeps between steps: over steps that move the values (and a
    change of depth, which rebuilds its layout), it must hold and freeze exactly what a freezer that gathers into a
    new buffer at every step does."""
    torch.manual_seed(3)
    nets = [torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.Linear(4, 3)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    tables = [{"GRID0": torch.nn.Parameter(torch.randn(4, 2, 3, 3))} for _ in range(2)]
    tables[1]["GRID0"].data.copy_(tables[0]["GRID0"].data)
    kept, fresh = OscillationFreezer(0.05), OscillationFreezer(0.05)
    for step in range(30):
        bits = 4.0 if step < 15 else 3.0
        moves = [torch.randn_like(p) * 0.02 * (-1) ** step for p in nets[0].parameters()]
        table_move = torch.randn_like(tables[0]["GRID0"]) * 0.02 * (-1) ** step
        for net, t in zip(nets, tables):
            with torch.no_grad():
                for p, m in zip(net.parameters(), moves):
                    p.add_(m)
                t["GRID0"].add_(table_move)
        kept.step(nets[0], tables[0], bits)
        fresh.values = None
        fresh.step(nets[1], tables[1], bits)
        for a, b in zip([*nets[0].parameters(), tables[0]["GRID0"]], [*nets[1].parameters(), tables[1]["GRID0"]]):
            assert torch.equal(a, b), step
    assert kept.frozen() == fresh.frozen() > 0
