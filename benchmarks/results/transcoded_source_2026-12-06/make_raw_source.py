"""CiscoVT (raw I420, 320x192, 9 frames, 12 fps) through libx264 at CRF C, preset medium, yuv420p.

    python3 make_raw_source.py .testdata/CiscoVT2people_320x192_12fps.yuv cisco_crfC.mp4 C
"""
import sys

import av
import numpy as np

src, dst, crf = sys.argv[1], sys.argv[2], sys.argv[3]
raw = np.fromfile(src, dtype=np.uint8).reshape(-1, 192 * 3 // 2, 320)
out = av.open(dst, "w")
st = out.add_stream("libx264", rate=12)
st.width, st.height, st.pix_fmt = 320, 192, "yuv420p"
st.options = {"crf": crf, "preset": "medium"}
for f in raw:
    for p in st.encode(av.VideoFrame.from_ndarray(f, format="yuv420p")):
        out.mux(p)
for p in st.encode():
    out.mux(p)
out.close()
c = av.open(dst)
sizes = [p.size for p in c.demux(c.streams.video[0]) if p.size]
dec = np.stack([f.to_ndarray(format="yuv420p") for f in av.open(dst).decode(video=0)]).astype(float)
y = np.mean([10 * np.log10(255 ** 2 / np.mean((dec[i, :192] - raw[i, :192]) ** 2)) for i in range(len(raw))])
print(f"{dst}: {8 * sum(sizes) / (len(raw) * 320 * 192):.4f} bpp video stream, Y PSNR {y:.2f} dB against the raw frames")
