"""dnv's RGB PSNR against x265 / x264 medium at dnv's own bpp (anchors interpolated in log bpp), per source.

    python3 gap.py anchors_crf28/rd.json:carphone_crf28:c28-0.025.json,c28-0.05.json,c28-0.1.json
    (RD_JSON:PART_OF_THE_CLIP_NAME:REPORT,REPORT...; a report needs only its "bpp" and "psnr")
"""
import json, sys
import numpy as np

def anchors(rd, clip_part, codec):
    pts = sorted((p['bpp'], p['psnr_rgb']) for p in json.load(open(rd))['points']
                 if clip_part in p['clip'] and p['codec'] == codec and p['preset'] == 'medium')
    return np.array(pts)

def at(curve, bpp):
    return float(np.interp(np.log(bpp), np.log(curve[:, 0]), curve[:, 1]))

for rd, clip_part, reports in [(a, b, c.split(',')) for a, b, c in (s.split(':') for s in sys.argv[1:])]:
    for r in reports:
        d = json.load(open(r))
        x5, x4 = at(anchors(rd, clip_part, 'x265'), d['bpp']), at(anchors(rd, clip_part, 'x264'), d['bpp'])
        print(f"{clip_part:28s} {d['bpp']:.4f} dnv {d['psnr']:.2f}  x265 {x5:.2f} ({d['psnr'] - x5:+.2f})  "
              f"x264 {x4:.2f} ({d['psnr'] - x4:+.2f})   {r}")
