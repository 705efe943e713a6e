import sys, math, numpy as np, torch
sys.argv
from nvcodec import bitstream
from nvcodec.compress import pack, entropy
from nvcodec.decoding import Decoder as D
for path in sys.argv[1:]:
    data = open(path, 'rb').read(); header, sections = bitstream.unpack(data)
    with torch.device('meta'):
        shapes = {k: tuple(v.shape) for k, v in D(header.arch).state_dict().items()}
    r = pack._Reader(sections['DECODER'], 'DECODER'); scales = []
    for n in shapes:
        mode = r.u8(); s = r.f16(shapes[n][0] if mode == 1 and shapes[n] else 1); scales.append(s.astype(np.float64))
    nsc = sum(len(s) for s in scales)
    print(path, 'DECODER', len(sections['DECODER']), 'file', len(data), 'scales', nsc, 'bytes', 2 * nsc, f'{2*nsc/len(data):.1%} of file')
    for S in (8, 16, 32):
        ks = [np.ceil(S * np.log2(s)).astype(np.int64) for s in scales]
        allk = np.concatenate(ks)
        b1 = len(entropy.encode_symbols(allk))
        d = np.concatenate([k - int(np.median(k)) for k in ks]); b2 = len(entropy.encode_symbols(d)) + len(entropy.encode_symbols(np.array([int(np.median(k)) for k in ks])))
        print(f'  S={S}: one blob {b1} B, per-tensor-median {b2} B; mean step increase {np.mean(np.concatenate([2**(k/S)/s for k,s in zip(ks,scales)]))-1:.3%}')
