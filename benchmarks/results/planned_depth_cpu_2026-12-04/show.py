import json, glob, sys
for f in sorted(glob.glob('/tmp/xp/*.json')):
    d = json.load(open(f))
    print(f.split('/')[-1][:-5].ljust(14), 'bpp %.5f' % d['bpp'], 'RGB %.2f YUV %.2f' % (d['psnr'], d['psnr_yuv']), 'float %.2f unpruned %.2f' % (d['psnr_float_model'], d['psnr_float_unpruned']), 'bits', d['effective_bits'], 'params', d['params'], 'DEC', d['sections']['DECODER'], 'bytes', d['bytes'], 'enc %.0f s' % d['encode_seconds'])
