"""The file's grid in one flat buffer (`compress.flatgrid`): the same integers as tensor by tensor, and the swap of
the quantization-aware fine-tuning (`FileValues`)."""
import torch

from nvcodec.compress.flatgrid import FileValues, FlatGrid, entries_of
from nvcodec.compress.qat import fake_quant_table, fake_quant_weight, table_grid, weight_grid


def test_one_flat_grid_is_the_files_grid_tensor_by_tensor():
    """Every value rounded in one buffer: each tensor's integers, scales and offsets must be
    those of `qat.weight_grid` / `qat.table_grid`, at per-tensor depths, with all-zero rows and 1-D weights."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 3, 3), torch.nn.Linear(5, 6))
    with torch.no_grad():
        net[0].weight[1] = 0.0
        net[1].weight.mul_(40.0)
    tables = {"GRID0": torch.nn.Parameter(torch.randn(5, 3, 4, 2) * 3 + 1),
              "LOCAL": torch.nn.Parameter(torch.rand(7, 6) * 1e-6)}      # spans under the smallest scale
    bits = {"0.weight": 5.7, "0.bias": 6.0, "1.weight": 3.0, "1.bias": 8.0, "GRID0": 4.5, "LOCAL": 6.0}
    entries = entries_of(net, tables)
    layout = FlatGrid(entries, bits)
    flat = torch.cat([p.detach().reshape(-1) for _, _, p, _ in entries])
    q, scale, offset = (layout.split(t) for t in layout.grid(flat))
    for i, (_, name, p, is_weight) in enumerate(entries):
        want = (weight_grid if is_weight else table_grid)(p, bits[name])
        assert torch.equal(q[i], want[0]), name
        assert torch.equal(scale[i], want[1].expand_as(p)), name
        assert torch.equal(offset[i], want[2].expand_as(p)), name


def test_the_swap_gives_the_straight_through_gradient_and_puts_the_trained_values_back():
    """Inside `FileValues` a forward and backward see the file's values; the gradients equal those of the per-tensor
    straight-through fake quantization (`qat.fake_quant_*`), and the trained values are back afterwards."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(4, 2, 1))
    table = torch.nn.Parameter(torch.randn(2, 3, 6, 5))
    bits = {"0.weight": 4.0, "0.bias": 6.0, "2.weight": 3.5, "2.bias": 5.0, "GRID0": 3.0}
    x = torch.randn(2, 3, 6, 5)

    def loss_of(out):
        return (out - 0.3).square().mean()

    # The reference: the rounding in the graph, tensor by tensor.
    params = {n: fake_quant_weight(p, bits[n]) for n, p in net.named_parameters()}
    ref = loss_of(torch.func.functional_call(net, params, (x * fake_quant_table(table, bits["GRID0"]),)))
    ref.backward()
    want = {n: p.grad.clone() for n, p in net.named_parameters()} | {"GRID0": table.grad.clone()}
    want_values = {n: v.detach() for n, v in params.items()}
    for p in [*net.parameters(), table]:
        p.grad = None

    trained = {n: p.detach().clone() for n, p in net.named_parameters()} | {"GRID0": table.detach().clone()}
    swap = FileValues()
    with swap(net, {"GRID0": table}, bits):
        for n, p in net.named_parameters():       # the file's values, exactly (not w + (q - w): no rounding residue)
            assert torch.equal(p.detach(), weight_grid(trained[n], bits[n])[0] * weight_grid(trained[n], bits[n])[1])
            assert torch.allclose(p.detach(), want_values[n], atol=1e-7)
        q, scale, lo = table_grid(trained["GRID0"], bits["GRID0"])
        assert torch.equal(table.detach(), q * scale + lo)
        loss = loss_of(net(x * table))
        loss.backward()
    assert torch.allclose(loss.detach(), ref.detach(), atol=1e-6)
    for n, p in net.named_parameters():
        assert torch.equal(p.detach(), trained[n]), n            # the trained values came back
        assert torch.allclose(p.grad, want[n], rtol=1e-5, atol=1e-7), n
    assert torch.equal(table.detach(), trained["GRID0"])
    assert torch.allclose(table.grad, want["GRID0"], rtol=1e-5, atol=1e-7)
    # Rounding twice changes nothing: a second swap of the same values gives the same values.
    with swap(net, {"GRID0": table}, bits):
        once = [p.detach().clone() for p in net.parameters()]
    with swap(net, {"GRID0": table}, bits):
        assert all(torch.equal(a, p.detach()) for a, p in zip(once, net.parameters()))


def test_the_swap_follows_the_trained_values_from_step_to_step_and_a_change_of_depth():
    """The swap's buffers persist between steps: each swap must put in the file's values of the parameters as they
    are now (moved by an optimizer in between, depths changed half-way), computed afresh, and put them back after."""
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    table = torch.nn.Parameter(torch.randn(3, 2, 4, 4))
    swap = FileValues()
    for step in range(6):
        bits = 5.0 if step < 3 else 3.5
        entries = entries_of(net, {"GRID0": table})
        trained = [p.detach().clone() for _, _, p, _ in entries]
        fresh = FlatGrid(entries, bits)
        q, scale, offset = fresh.grid(torch.cat([t.reshape(-1) for t in trained]))
        want = fresh.split(q * scale + offset)
        with swap(net, {"GRID0": table}, bits):
            for (key, _, p, _), w in zip(entries, want):
                assert torch.equal(p.detach(), w), (step, key)
        for (key, _, p, _), t in zip(entries, trained):
            assert torch.equal(p.detach(), t), (step, key)
        with torch.no_grad():                     # an optimizer's step
            for _, _, p, _ in entries:
                p.add_(torch.randn_like(p) * 0.05)


def test_the_noisy_swap_moves_each_value_by_at_most_half_its_step_and_puts_the_trained_values_back():
    """`noise=True`: every value lies within half of its row's rounding step of its trained value, off the grid
    (uniform noise, not rounding), differently each call; the trained values come back afterwards."""
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(5, 6))
    table = torch.nn.Parameter(torch.randn(4, 3, 5, 2))
    bits = 4
    trained = [p.detach().clone() for p in [*net.parameters(), table]]
    entries = entries_of(net, {"GRID0": table})
    _, scale, _ = FlatGrid(entries, bits).grid(torch.cat([p.reshape(-1) for p in trained]))
    swap = FileValues()
    seen = []
    for _ in range(2):
        with swap(net, {"GRID0": table}, bits, noise=True):
            now = torch.cat([p.detach().reshape(-1) for p in [*net.parameters(), table]])
        seen.append(now)
        moved = now - torch.cat([p.reshape(-1) for p in trained])
        assert (moved.abs() <= scale / 2 + 1e-6).all()
        assert moved.abs().max() > scale.max() / 10        # noise of the step's order, not none
        assert all(torch.equal(a, p.detach()) for a, p in zip(trained, [*net.parameters(), table]))
    assert not torch.equal(seen[0], seen[1])
    with swap(net, {"GRID0": table}, bits):                  # the rounding itself is unchanged
        rounded = torch.cat([p.detach().reshape(-1) for p in [*net.parameters(), table]])
    assert not torch.equal(rounded, seen[0])
