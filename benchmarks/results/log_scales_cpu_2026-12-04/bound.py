"""How much would per-row parametric models (rowcoder) save over today's per-tensor coder, on real files?"""
import sys, math, struct
import numpy as np, torch
from nvcodec import bitstream
from nvcodec.compress import pack, entropy, rowcoder
from nvcodec.models.decoder import Decoder  # noqa

def symbols_of(path):
    data = open(path, 'rb').read()
    header, sections = bitstream.unpack(data)
    arch = header.arch
    from nvcodec.decoding import Decoder as D
    with torch.device('meta'):
        shapes = {k: tuple(v.shape) for k, v in D(arch).state_dict().items()}
    r = pack._Reader(sections['DECODER'], 'DECODER')
    names = list(shapes); learned = []
    for n in names:
        mode = r.u8(); r.f16(shapes[n][0] if mode == 1 and shapes[n] else 1); learned.append(mode == 2)
    syms = {}
    groups = pack._plain_groups([shapes[n] for n in names], learned)
    blobbytes = []
    for g in groups:
        sizes = [math.prod(shapes[names[i]]) for i in g]
        start = r.pos
        flat = r.blob(sum(sizes)); blobbytes.append((g, r.pos - start))
        for i, part in zip(g, np.split(flat, np.cumsum(sizes)[:-1])):
            syms[names[i]] = part.reshape(shapes[names[i]])
    tables = {}
    for name, shape in arch.section_shapes(header.frames).items():
        rr = pack._Reader(sections[name], name); t = rr.u8(); rr.f16(shape[1]); rr.f16(shape[1])
        start = rr.pos; s = rr.blob(math.prod(shape)).reshape(shape); tables[name] = (t, s, rr.pos - start)
    return sections, syms, blobbytes, tables, names

def best_rows(rows, spike_ok=True):
    """bits of coding rows with per-row q, best kind, best z; plus ~side info estimate."""
    m = int(np.abs(rows).max()) if rows.size else 0
    if m == 0: return 0.0, 0
    best = None
    for kind in (0, 1, 2, 3):
        zs = [0] if kind < 2 else list(range(0, 256, 16))
        for z in zs:
            qs = []
            tot = 0.0
            for row in rows:
                # per-row q by search around the moment estimate
                if kind in (0, 2):
                    q0 = entropy._laplace_q(float(np.abs(row).mean()) + 1e-9)
                else:
                    q0 = entropy._gauss_q(float((row.astype(float)**2).mean()) + 1e-9)
                cands = range(max(q0 - 12, 0), min(q0 + 13, 256), 1)
                costs = [(float(rowcoder.code_lengths(kind, q, m, z)[row + m].sum()), q) for q in cands]
                c, q = min(costs); tot += c; qs.append(q)
            if best is None or tot < best[0]: best = (tot, kind, z, qs)
    tot, kind, z, qs = best
    side = entropy.estimate_bits(np.array(qs)) + 48
    return tot + side, kind

if __name__ == '__main__':
    for path in sys.argv[1:]:
        sections, syms, blobbytes, tables, names = symbols_of(path)
        cur_bits = sum(b for _, b in blobbytes) * 8
        row_bits = 0.0; emp_tensor = 0.0; emp_row = 0.0
        for g, b in blobbytes:
            gbits = 0.0
            for i in g:
                s = syms[names[i]]
                rows = rowcoder.to_rows(s, 0) if s.ndim else s.reshape(1, -1)
                rb, kind = best_rows(rows.astype(np.int64))
                gbits += rb
                vals, cnt = np.unique(s, return_counts=True); p = cnt / cnt.sum(); emp_tensor += -(cnt * np.log2(p)).sum()
                for row in rows:
                    v, c = np.unique(row, return_counts=True); pp = c / c.sum(); emp_row += -(c * np.log2(pp)).sum()
            row_bits += min(gbits, b * 8)
        print(path, 'DECODER bytes', len(sections['DECODER']), 'blobs', cur_bits / 8, 'rowcoder(per-tensor min)', round(row_bits / 8), 'empirical per-tensor', round(emp_tensor / 8), 'empirical per-row', round(emp_row / 8))
        for name, (t, s, b) in tables.items():
            rows = rowcoder.to_rows(s, 1).astype(np.int64)
            d = s.astype(np.int64).copy(); d[1:] -= s[:-1]
            rb, kind = best_rows(rows)
            rbd, _ = best_rows(rowcoder.to_rows(d, 1))
            print('  ', name, s.shape, 'transform', t, 'blob', b, 'rowcoder', round(rb / 8), 'rowcoder delta', round(rbd / 8))
