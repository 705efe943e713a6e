"""Tiny .dnv files written by the codec before the model interface (run at commit e5a9ee9, from its checkout:
`python3 make_compat.py OUT_DIR tests/data/carphone_qcif_16f.mp4`), with the SHA-256 of the frames it decoded them
to: tests/test_compat.py checks that today's decoder gives the same frames, bit for bit.

hinerv_64x48_4f.dnv came later, the same way with ("hinerv", 8.0), at commit a254003: before the HiNeRV decoder
was shared with hinerv-diff."""
import hashlib, json, sys
from pathlib import Path
import numpy as np
from nvcodec import codec
from nvcodec.video import read_video, write_video

out = Path(sys.argv[1])
frames, info = read_video(sys.argv[2], frame_range=(0, 4))
clip = out / "clip_64x48.y4m"
small = np.ascontiguousarray(frames[:, :48, :64])
write_video(str(clip), small, info.fps)
record = {}
for model, bpp in (("hnerv", 8.0), ("dnerv", 8.0), ("dsnerv", 12.0)):
    dnv = out / f"{model}_64x48_4f.dnv"
    codec.encode(str(clip), str(dnv), model=model, bpp=bpp, epochs=1, prune_epochs=1, device="cpu", progress=False)
    rec, _ = codec.decode_to_array(str(dnv), device="cpu")
    record[dnv.name] = {"frames": int(rec.shape[0]), "sha256": hashlib.sha256(rec.tobytes()).hexdigest()}
clip.unlink()
(out / "compat.json").write_text(json.dumps(record, indent=1) + "\n")
print(record)
