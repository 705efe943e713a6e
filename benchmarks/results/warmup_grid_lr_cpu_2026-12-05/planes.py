"""Y, U and V PSNR of each run's decoded file against the source's planes. Run from the repository root:
    python3 benchmarks/results/warmup_grid_lr_cpu_2026-12-05/planes.py"""
import av, numpy as np, glob, os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
def planes(path, n=None):
    out=[]
    with av.open(path) as c:
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format='yuv420p'))
            if n and len(out)==n: break
    return np.stack(out)
def raw(path,w,h):
    a=np.fromfile(path,np.uint8).reshape(-1,h*w*3//2)
    return np.stack([np.concatenate([f[:h*w].reshape(h,w), f[h*w:].reshape(-1,w)]) for f in a])
def p(a,b):
    m=((a.astype(float)-b.astype(float))**2).mean(); return 10*np.log10(255**2/m)
srcs={'c10':(raw('.testdata/CiscoVT2people_320x192_12fps.yuv',320,192),192),
      'p30':(planes('.testdata/carphone_qcif_120f_x264qp10.mp4',30),144),
      'bx10':(planes('nvcodec/data/bunny_demo.mp4'),180)}
for f in sorted(glob.glob(os.path.join(HERE, '*.dnv'))):
    n=os.path.basename(f)[:-4]; y=os.path.join('/tmp', n+'.y4m')
    if not os.path.exists(y):
        subprocess.run([sys.executable,'-m','nvcodec','decode',f,'-o',y,'--device','cpu'],capture_output=True,env={**os.environ,'OMP_NUM_THREADS':'1'})
    src,H=srcs[n.split('-')[0]]; rec=planes(y); h4=H//4
    print(f"{n:22s} Y {p(rec[:,:H],src[:,:H]):.2f} U {p(rec[:,H:H+h4],src[:,H:H+h4]):.2f} V {p(rec[:,H+h4:],src[:,H+h4:]):.2f}")
