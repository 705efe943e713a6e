import sys, numpy as np
sys.path.insert(0, __import__('os').path.dirname(__file__))
from bound import symbols_of
from nvcodec.compress import entropy, rowcoder
for path in sys.argv[1:]:
    sections, syms, blobbytes, tables, names = symbols_of(path)
    cur = sum(b for _, b in blobbytes)
    print(path, 'blobs', [(len(g), b) for g, b in blobbytes])
    # all rows of all tensors, each as its own row
    rows = []
    for n in names:
        s = syms[n].astype(np.int64)
        if s.ndim > 1: rows += list(rowcoder.to_rows(s, 0))
        else: rows.append(s.ravel())
    spread = np.array([np.abs(r).mean() for r in rows])
    allsym = np.concatenate(rows)
    res = {}
    for K in (1, 2, 3, 4, 6, 8):
        edges = np.quantile(spread, np.linspace(0, 1, K + 1)[1:-1])
        cls = np.searchsorted(edges, spread, side='right')
        t = sum(len(entropy.encode_symbols(np.concatenate([r for r, c in zip(rows, cls) if c == k]))) + 4 for k in range(K) if (cls == k).any())
        t += len(entropy.encode_symbols(cls)) if K > 1 else 0
        res[K] = round(t)
    # per tensor blobs
    pt = sum(len(entropy.encode_symbols(syms[n].ravel())) + 4 for n in names)
    print('   current', cur, 'per-tensor', pt, 'row classes', res, 'rows', len(rows), 'symbols', allsym.size)
