"""flops.frame_cost (the decoder's per-frame FLOPs and layer outputs, which size decoding batches) is counted on a
small copy of the network and extrapolated: it must give exactly what counting the real size on meta tensors with
torch's FlopCounterMode gives (`flops.count_on_meta`), for every model, at sizes that pad and at odd ones."""
import dataclasses
import sys

import pytest

from nvcodec import flops, memory, sizing
from nvcodec.models import MODELS


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("size", [(1280, 720, 96, 0.05), (175, 143, 20, 0.3), (320, 192, 9, 0.1)])
def test_frame_cost_is_what_the_full_size_network_counts(model, size):
    width, height, frames, bpp = size
    arch = sizing.plan_for_bpp(model, width, height, frames, bpp, 6).arch
    assert flops.frame_cost(arch) == flops.count_on_meta(arch)
    assert memory.decode_bytes_per_frame(arch) == int(memory.DECODE_PEAK_FACTOR * 4 * flops.count_on_meta(arch)[0])


def test_a_cell_larger_than_any_frame_is_counted_as_it_is():
    # A header may ask for strides whose product exceeds the largest frame: no small copy exists; the count (far
    # beyond this machine's memory, so that decoding refuses it in one line) comes from the meta tensors.
    arch = dataclasses.replace(sizing.plan_for_bpp("hnerv", 320, 192, 9, 0.1, 6).arch, strides=(8,) * 5,
                               kernels=(3,) * 5)
    assert arch.total_stride > 16384
    assert flops.frame_cost(arch) == flops.count_on_meta(arch)
    assert memory.decode_bytes_per_frame(arch) > 2**35     # 32 GiB: a 32768x32768 frame


def test_frame_cost_does_not_import_dynamo():
    # What it is for: `dnv decode` would otherwise import torch._dynamo (seconds on some machines) to size a batch.
    import subprocess
    code = ("import sys; from nvcodec import flops, sizing; "
            "flops.frame_cost(sizing.plan_for_bpp('hinerv', 320, 192, 9, 0.1, 6).arch); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
