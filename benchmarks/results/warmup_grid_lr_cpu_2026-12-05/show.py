"""The table of every run's report here (python3 show.py)."""
import json, glob, os
HERE = os.path.dirname(os.path.abspath(__file__))
rows = []
for f in sorted(glob.glob(os.path.join(HERE, '*.json'))):
    d = json.load(open(f))
    t = d.get('train_options', {})
    rows.append((os.path.basename(f)[:-5], d['bpp'], d['psnr'], d.get('psnr_yuv'), d['encode_seconds'], t.get('epochs'), t.get('prune_epochs'), t.get('warmup'), t.get('code_lr_scale'), t.get('batch'), d.get('bytes')))
print("| run | bpp | bytes | RGB PSNR | YUV PSNR | epochs | warmup | grid lr scale | batch | encode s |")
print("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r[0]} | {r[1]:.4f} | {r[10]} | {r[2]:.3f} | {r[3]:.3f} | {r[5]}+{r[6]} | {r[7]} | {r[8]} | {r[9]} | {r[4]:.0f} |")
