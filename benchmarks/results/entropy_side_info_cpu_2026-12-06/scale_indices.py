import sys, numpy as np, torch, math
from nvcodec import bitstream
from nvcodec.compress import pack, entropy, quantize
from nvcodec.models import Decoder
def B(x): return len(entropy.encode_symbols(np.asarray(x,dtype=np.int64)))
for f in sys.argv[1:]:
    data=open(f,'rb').read()
    header, sections = bitstream.unpack(data)
    with torch.device("meta"):
        shapes={k: tuple(v.shape) for k,v in Decoder(header.arch).state_dict().items()}
    sym, sc, ax, le = pack.read_weights(sections["DECODER"], shapes)
    idx=[quantize.scale_index(torch.from_numpy(np.asarray(s,dtype=np.float64))*quantize.weight_levels(6)*0+torch.from_numpy(np.asarray(s,dtype=np.float64)), 1).numpy() for s in sc]
    # simpler: recover index from scale by log2
    idx=[np.round(np.log2(np.asarray(s,dtype=np.float64))*16).astype(np.int64) for s in sc]
    allidx=np.concatenate(idx)
    now=B(allidx)
    med=[np.median(i).round().astype(np.int64) for i in idx]
    delta=np.concatenate([i-m for i,m in zip(idx,med)])
    print(f,"indices",allidx.size,"blob now",now,"delta-from-median blob",B(delta),"+ medians",B(np.array(med)), "first-diff", B(np.concatenate([np.diff(np.r_[0,i]) for i in idx])))
