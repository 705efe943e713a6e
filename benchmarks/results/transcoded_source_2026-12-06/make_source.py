"""carphone (x264 QP 10, near lossless) re-encoded as a typical web source: x264 CRF C, preset medium, yuv420p.

    python3 make_source.py .testdata/carphone_qcif_120f_x264qp10.mp4 carphone_crf28.mp4 28
"""
import sys
import av
import numpy as np

src, dst, crf = sys.argv[1], sys.argv[2], sys.argv[3]
inp = av.open(src)
vs = inp.streams.video[0]
out = av.open(dst, "w")
st = out.add_stream("libx264", rate=vs.average_rate)
st.width, st.height, st.pix_fmt = vs.width, vs.height, "yuv420p"
st.options = {"crf": crf, "preset": "medium"}
n = 0
for frame in inp.decode(vs):
    f = av.VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
    for p in st.encode(f):
        out.mux(p)
    n += 1
for p in st.encode():
    out.mux(p)
out.close()
import os
size = os.path.getsize(dst)
print(f"{n} frames, {size} bytes, {size * 8 / (n * vs.width * vs.height):.4f} bpp (container)")
