# Eager bf16 channels-last timing of hinerv's depthwise 3x3 and MLP 1x1 convs at Bunny 0.05's widths (128/64) vs prune 0.2's (136/72).
import torch, torch.nn.functional as F, sys
dev = "cuda"
def t(fn, iters=30):
    for _ in range(3): fn()
    torch.cuda.synchronize(); s, e = torch.cuda.Event(True), torch.cuda.Event(True); s.record()
    for _ in range(iters): fn()
    e.record(); torch.cuda.synchronize(); return s.elapsed_time(e) / iters
for bench in (True, False):
    torch.backends.cudnn.benchmark = bench
    for c, h, w in [(128,90,160),(136,90,160),(128,180,320),(136,180,320),(64,180,320),(72,180,320),(64,360,640),(72,360,640),(32,360,640),(48,180,320),(88,90,160)]:
        x = torch.randn(1,c,h,w,device=dev,dtype=torch.bfloat16).to(memory_format=torch.channels_last).requires_grad_()
        wd = (torch.randn(c,1,3,3,device=dev,dtype=torch.bfloat16)/3).requires_grad_()
        w1 = (torch.randn(4*c,c,1,1,device=dev,dtype=torch.bfloat16)/c**.5).requires_grad_()
        w2 = (torch.randn(c,4*c,1,1,device=dev,dtype=torch.bfloat16)/c**.5).requires_grad_()
        g = torch.randn(1,c,h,w,device=dev,dtype=torch.bfloat16).to(memory_format=torch.channels_last)
        def dw(): F.conv2d(x, wd, padding=1, groups=c).backward(g)
        def mlp(): F.conv2d(F.gelu(F.conv2d(x, w1)), w2).backward(g)
        print(f"bench={bench} {c:4d}x{h}x{w}: depthwise fwd+bwd {t(dw):.3f} ms, 1x1 MLP fwd+bwd {t(mlp):.3f} ms", flush=True)
