import sys, numpy as np, torch
from nvcodec import bitstream
from nvcodec.compress import pack
from nvcodec.models import Decoder
data=open(sys.argv[1],'rb').read()
header, sections = bitstream.unpack(data)
a=header.arch
with torch.device("meta"):
    shapes={k: tuple(v.shape) for k,v in Decoder(a).state_dict().items()}
sym, sc, ax, le = pack.read_weights(sections["DECODER"], shapes)
tot_n=0; tot_H=0; tot_Hc=0
for (n,s),q,scale in zip(shapes.items(),sym,sc):
    q=q.astype(np.int64); N=q.size
    vals,c=np.unique(q,return_counts=True); p=c/N; H=-(p*np.log2(p)).sum()*N
    # per-channel entropy (oracle)
    Hc=0
    if q.ndim>=2:
        for r in q.reshape(q.shape[0],-1):
            v,cc=np.unique(r,return_counts=True); pp=cc/r.size; Hc+=-(pp*np.log2(pp)).sum()*r.size
    else: Hc=H
    tot_n+=N; tot_H+=H; tot_Hc+=Hc
    if N>500: print(f"{n:40s} {str(s):20s} N={N:7d} max={np.abs(q).max():3d} zeros={np.mean(q==0):.3f} std={q.std():5.2f} H={H/N:.2f} Hch={Hc/N:.2f}")
print("total params",tot_n,"H/param",tot_H/tot_n,"per-channel H",tot_Hc/tot_n,"coded bits/param",8*len(sections['DECODER'])/tot_n)
from nvcodec.compress import entropy
allq=np.concatenate([q.reshape(-1) for q in sym]).astype(np.int64)
v,c=np.unique(allq,return_counts=True); p=c/c.sum()
print("concat entropy bits/param", -(p*np.log2(p)).sum(), "blob bits", 8*len(entropy.encode_symbols(allq))/allq.size)
nch=sum(s[0] if len(s)>=2 and s[0]>1 else 1 for s in shapes.values())
print("tensors",len(shapes),"scale count",nch, "scale bits/param", nch*5/allq.size)
