"""flops.frame_cost (the decoder's per-frame FLOPs and layer outputs, which size decoding batches) is counted on a
small copy of the network and extrapolated: it must give exactly what counting the real size on meta tensors with
torch's FlopCounterMode gives, for every model, at sizes that pad and at odd ones."""
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nvcodec import flops, memory, sizing
from nvcodec.models import MODELS, Decoder


def counted_on_meta(arch):
    values = 0

    def count(_module, _inputs, output):
        nonlocal values
        values += output.numel()

    with torch.device("meta"), torch.no_grad():
        decoder = Decoder(arch)
        for m in decoder.modules():
            if not any(True for _ in m.children()):
                m.register_forward_hook(count)
        inputs = [torch.empty(1, *shape[1:]) for shape in arch.section_shapes(1).values()]
        with FlopCounterMode(display=False) as counter:
            decoder(*inputs)
    return values, counter.get_total_flops()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", [(1280, 720, 96, 0.05), (175, 143, 20, 0.3), (320, 192, 9, 0.1)])
def test_frame_cost_is_what_the_full_size_network_counts(model, size):
    width, height, frames, bpp = size
    arch = sizing.plan_for_bpp(model, width, height, frames, bpp, 6).arch
    assert flops.frame_cost(arch) == counted_on_meta(arch)
    assert memory.decode_bytes_per_frame(arch) == int(memory.DECODE_PEAK_FACTOR * 4 * counted_on_meta(arch)[0])


def test_frame_cost_does_not_import_dynamo():
    # What it is for: `dnv decode` would otherwise import torch._dynamo (seconds on some machines) to size a batch.
    import subprocess
    code = ("import sys; from nvcodec import flops, sizing; "
            "flops.frame_cost(sizing.plan_for_bpp('hinerv', 320, 192, 9, 0.1, 6).arch); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
