#!/usr/bin/env python3
"""Measure engine-step times of a Llama-shaped decoder on one GPU with plain PyTorch.

Why: servesim's GPU step times come from a roofline model; this script gives measured
points to check it against (validation/gpu/README.md) and a step-time table
(`step_time: {kind: table, ...}`) for the measured model/GPU.

What it is: a dense Llama decoder (RMSNorm, fused QKV, rotary, GQA attention through
PyTorch SDPA/FlashAttention, SwiGLU MLP, LM head on each sequence's last token) with
random bf16 weights, every step captured in a CUDA graph (as vLLM does for decode) and
timed with CUDA events (median of replays). It is *not* vLLM: no paged attention, no
fused norm/activation kernels, one KV buffer shared by all layers (HBM traffic is the
same when it exceeds L2; small shapes may be slightly optimistic). A step is a batch of
at most one prefill chunk (with an optional cached prefix) plus B decodes of equal
context, which is the shape vLLM's chunked-prefill scheduler produces most.

Output: CSV in servesim's step-time table format (catalog/steptime/*.csv) on stdout,
with provenance comments.
"""
import argparse
import datetime
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

SHAPES = {
    # name: layers, hidden, q heads, kv heads, head dim, intermediate, vocab
    "llama-3.1-8b": (32, 4096, 32, 8, 128, 14336, 128256),
    "tiny": (2, 256, 4, 2, 64, 512, 1000),
}


def build(shape, dev):
    L, H, nq, nkv, d, I, V = shape
    g = torch.Generator(device=dev).manual_seed(0)

    def w(*s):
        return (torch.randn(*s, device=dev, dtype=torch.bfloat16, generator=g) * 0.02)

    layers = []
    for _ in range(L):
        layers.append(dict(
            n1=torch.ones(H, device=dev, dtype=torch.bfloat16),
            qkv=w((nq + 2 * nkv) * d, H),
            o=w(H, nq * d),
            n2=torch.ones(H, device=dev, dtype=torch.bfloat16),
            gu=w(2 * I, H),
            down=w(H, I),
        ))
    return dict(layers=layers, norm=torch.ones(H, device=dev, dtype=torch.bfloat16), lm=w(V, H),
                emb=w(V, H))


def rmsnorm(x, w):
    return F.rms_norm(x, (x.shape[-1],), w, 1e-5)


def rotary(x, cos, sin):
    # x: [T, heads, d]; rotate halves
    d2 = x.shape[-1] // 2
    x1, x2 = x[..., :d2], x[..., d2:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def make_step(model, shape, c, p, B, ctx, dev):
    """Returns a closure running one engine step: one prefill chunk of c tokens after a
    cached prefix of p tokens (c may be 0), plus B decodes each attending ctx tokens."""
    L, H, nq, nkv, d, I, V = shape
    T = c + B
    ids = torch.randint(0, V, (T,), device=dev)
    pos = torch.arange(T, device=dev, dtype=torch.float32)
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, device=dev, dtype=torch.float32) / d))
    ang = pos[:, None] * inv[None, :]
    cos = ang.cos().to(torch.bfloat16)[:, None, :]
    sin = ang.sin().to(torch.bfloat16)[:, None, :]
    # KV buffers shared by all layers.
    kp = torch.randn(1, nkv, p + c, d, device=dev, dtype=torch.bfloat16) if c > 0 else None
    vp = torch.randn_like(kp) if c > 0 else None
    kd = torch.randn(B, nkv, ctx, d, device=dev, dtype=torch.bfloat16) if B > 0 else None
    vd = torch.randn_like(kd) if B > 0 else None
    mask = causal_lower_right(c, p + c) if (c > 0 and p > 0) else None
    last = []
    if c > 0:
        last.append(c - 1)
    last += list(range(c, c + B))
    last = torch.tensor(last, device=dev)

    def step():
        x = model["emb"][ids]
        for ly in model["layers"]:
            h = rmsnorm(x, ly["n1"])
            qkv = F.linear(h, ly["qkv"])
            q = qkv[:, : nq * d].view(T, nq, d)
            k = qkv[:, nq * d: (nq + nkv) * d].view(T, nkv, d)
            q = rotary(q, cos, sin)
            k = rotary(k, cos, sin)
            outs = []
            if c > 0:
                qp = q[:c].transpose(0, 1).unsqueeze(0)  # [1, nq, c, d]
                kp[:, :, p:, :] = k[:c].transpose(0, 1).unsqueeze(0)
                if mask is not None:
                    a = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=mask, enable_gqa=True)
                else:
                    a = F.scaled_dot_product_attention(qp, kp, vp, is_causal=True, enable_gqa=True)
                outs.append(a.squeeze(0).transpose(0, 1).reshape(c, nq * d))
            if B > 0:
                qd = q[c:].unsqueeze(2)  # [B, nq, 1, d]
                a = F.scaled_dot_product_attention(qd, kd, vd, enable_gqa=True)
                outs.append(a.reshape(B, nq * d))
            a = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
            x = x + F.linear(a, ly["o"])
            h = rmsnorm(x, ly["n2"])
            gu = F.linear(h, ly["gu"])
            x = x + F.linear(F.silu(gu[:, :I]) * gu[:, I:], ly["down"])
        h = rmsnorm(x[last], model["norm"])
        return F.linear(h, model["lm"]).argmax(-1)

    return step


def time_step(step, reps):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        graph.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1000.0)  # us
    del graph
    times.sort()
    return times[len(times) // 2], times[0], times[-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="llama-3.1-8b", choices=sorted(SHAPES))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="few shapes (smoke test)")
    ap.add_argument("--components", action="store_true",
                    help="also time the parts alone (GEMMs, attention) and print achieved TFLOP/s and GB/s")
    args = ap.parse_args()
    dev = "cuda"
    shape = SHAPES[args.model]
    t0 = time.time()
    model = build(shape, dev)
    props = torch.cuda.get_device_properties(0)
    # (prefill chunk, cached prefix, decodes, context per decode)
    shapes = []
    for c in (16, 64, 128, 256, 512, 1024, 2048, 4096, 8192):
        shapes.append((c, 0, 0, 0))
    for c, p in ((512, 2048), (512, 8192), (2048, 2048), (2048, 8192), (2048, 30000), (512, 30000)):
        shapes.append((c, p, 0, 0))
    for B in (1, 4, 16, 32, 64, 128, 256):
        for ctx in (512, 2048, 8192):
            if B * ctx <= 1 << 20:
                shapes.append((0, 0, B, ctx))
    for c, B, ctx in ((512, 32, 2048), (2048, 32, 2048), (2048, 128, 2048), (1024, 64, 8192), (256, 128, 512)):
        shapes.append((c, 0, B, ctx))
    if args.quick:
        shapes = shapes[:2] + shapes[-2:]
    print(f"# Measured engine steps of a {args.model}-shaped decoder (random bf16 weights) on "
          f"{props.name} ({props.total_memory // 2**20} MiB), TP1, PyTorch {torch.__version__}, "
          f"CUDA graphs, SDPA attention; validation/gpu/measure_steps.py, "
          f"{datetime.date.today().isoformat()}. Median of {args.reps} replays; "
          f"not vLLM kernels (see validation/gpu/README.md).")
    print("prefill_tokens,decode_seqs,context_tokens,duration_us,prefill_seqs,prefill_context,min_us,max_us")
    for (c, p, B, ctx) in shapes:
        try:
            step = make_step(model, shape, c, p, B, ctx, dev)
            med, lo, hi = time_step(step, args.reps)
        except Exception as e:  # a shape that fails is reported, the sweep goes on
            print(f"# shape c={c} p={p} B={B} ctx={ctx} failed: {type(e).__name__}: {e}".replace("\n", " "))
            torch.cuda.empty_cache()
            continue
        context = p + B * ctx
        print(f"{c},{B},{context},{med:.1f},{1 if c > 0 else 0},{p},{lo:.1f},{hi:.1f}", flush=True)
        torch.cuda.empty_cache()
    if args.components:
        components(shape, dev, args.reps)
    print(f"# wall {time.time() - t0:.0f} s", file=sys.stderr)


def components(shape, dev, reps):
    """Achieved throughput of the step's parts alone, to compare with the roofline's
    efficiency constants (flops, bandwidth, attention flops)."""
    L, H, nq, nkv, d, I, V = shape
    print("# components: part,tokens,context,us,tflops,gbps")
    ws = [torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.02
          for n, k in (((nq + 2 * nkv) * d, H), (H, nq * d), (2 * I, H), (H, I))]
    wbytes = sum(w.numel() * 2 for w in ws)
    for T in (1, 8, 32, 128, 512, 2048, 8192):
        xs = [torch.randn(T, w.shape[1], device=dev, dtype=torch.bfloat16) for w in ws]

        def f():
            for x, w in zip(xs, ws):
                F.linear(x, w)
        med, _, _ = time_step(f, reps)
        flops = 2 * T * sum(w.numel() for w in ws)
        print(f"# gemm,{T},0,{med:.1f},{flops / med / 1e6:.1f},{wbytes / med / 1e3:.1f}")
    for c, p in ((512, 0), (2048, 0), (8192, 0), (512, 8192), (2048, 30000)):
        q = torch.randn(1, nq, c, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, nkv, p + c, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        m = causal_lower_right(c, p + c) if p > 0 else None

        def g():
            if m is None:
                F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:
                F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)
        try:
            med, _, _ = time_step(g, reps)
        except Exception as e:
            print(f"# attn c={c} p={p} failed: {type(e).__name__}")
            continue
        flops = 4 * nq * d * c * (p + (c + 1) / 2)
        print(f"# prefill_attention,{c},{p},{med:.1f},{flops / med / 1e6:.1f},0")
    for B, ctx in ((1, 8192), (32, 8192), (128, 2048), (128, 8192)):
        q = torch.randn(B, nq, 1, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, nkv, ctx, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn_like(k)

        def h():
            F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        med, _, _ = time_step(h, reps)
        kvbytes = 2 * B * nkv * ctx * d * 2
        print(f"# decode_attention,{B},{ctx},{med:.1f},0,{kvbytes / med / 1e3:.1f}")


if __name__ == "__main__":
    main()
