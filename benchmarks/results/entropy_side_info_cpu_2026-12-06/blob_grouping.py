import sys, numpy as np, torch, math
from nvcodec import bitstream
from nvcodec.compress import pack, entropy
from nvcodec.models import Decoder
def B(x): return len(entropy.encode_symbols(np.asarray(x,dtype=np.int64)))
for f in sys.argv[1:]:
    data=open(f,'rb').read()
    header, sections = bitstream.unpack(data)
    with torch.device("meta"):
        shapes={k: tuple(v.shape) for k,v in Decoder(header.arch).state_dict().items()}
    sym, sc, ax, le = pack.read_weights(sections["DECODER"], shapes)
    names=list(shapes); flat=[q.reshape(-1).astype(np.int64) for q in sym]
    groups=pack._groups([shapes[n] for n in names])
    cur=sum(B(np.concatenate([flat[i] for i in g]))+4 for g in groups)
    own=sum(B(x)+2 for x in flat)
    # DP: contiguous partition in file order minimizing bytes (+2 bytes length each)
    n=len(flat); best=[0]+[math.inf]*n; 
    cache={}
    for j in range(1,n+1):
        for i in range(max(0,j-40),j):
            c=best[i]+B(np.concatenate(flat[i:j]))+2
            if c<best[j]: best[j]=c
    # 1-D vs N-D split of small
    small=[i for i in range(n) if flat[i].size<pack.BLOB_MIN]
    big=[i for i in range(n) if flat[i].size>=pack.BLOB_MIN]
    s1=[i for i in small if len(shapes[names[i]])<2]; s2=[i for i in small if len(shapes[names[i]])>=2]
    split=sum(B(flat[i])+4 for i in big)+sum(B(np.concatenate([flat[i] for i in g]))+4 for g in (s1,s2) if g)
    # scales
    idx=[]
    for (nm,s) in shapes.items(): pass
    print(f, "decoder section",len(sections['DECODER']),"symbol blobs now",cur,"own blob each",own,"DP contiguous",best[n],"small split 1D/ND",split, "file",len(data))
