#!/usr/bin/env python3
"""FLOPs and minimum memory traffic of VAR sampling (all scales, CFG) and of the VQVAE decode, per the official
architectures (spec/var.md). Prints the lower bounds on an H100 (or the rates given) that docs/PERFORMANCE.md
quotes. Usage: scripts/var_cost.py [--tflops 700] [--tbps 3.0]"""
import argparse

PN = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


def transformer(depth, batch):
    C, V, Cv = 64 * depth, 4096, 32
    rows = 2 * batch                              # CFG: conditional + null-class rows
    per_token_params = depth * 12 * C * C + V * C  # qkv 3C^2, proj C^2, fc1 4C^2, fc2 4C^2; head
    flops = gemm_bytes = 0
    end = 0
    for pn in PN:
        T = pn * pn
        end += T
        flops += 2 * rows * T * per_token_params           # token GEMMs
        flops += 2 * rows * T * Cv * C                      # word_embed
        flops += depth * 2 * 2 * rows * T * end * C         # q.k and p.v over the cache
        gemm_bytes += 2 * per_token_params                  # every weight read once per scale (bf16)
        gemm_bytes += depth * 2 * rows * end * C * 2        # K and V cache read once per scale (bf16)
    flops += 2 * rows * depth * 6 * C * C                   # AdaLN modulation, once per image
    return flops, gemm_bytes


def vqvae_decode(batch, ch=160, mult=(1, 1, 2, 2, 4), nrb=2, cv=32, hl=16, pq=None):
    """VQGAN-style decoder FLOPs. pq = (channels in, kernel) of post_quant_conv (VAR: cv -> cv, 3x3; LlamaGen's
    VQ-16: 8 -> 256, 1x1)."""
    def conv(h, cin, cout, k=3):
        return 2 * h * h * cin * cout * k * k
    pq_in, pq_k = pq if pq else (cv, 3)
    f = conv(hl, pq_in, cv, pq_k) + conv(hl, cv, ch * mult[-1])
    c = ch * mult[-1]
    h = hl
    attn = lambda h, c: 2 * h * h * c * 3 * c + 2 * 2 * (h * h) ** 2 * c + 2 * h * h * c * c
    f += 2 * (2 * conv(h, c, c)) + attn(h, c)  # mid: two res blocks + attention
    for i in reversed(range(len(mult))):
        cout = ch * mult[i]
        for j in range(nrb + 1):
            f += conv(h, c, cout) + conv(h, cout, cout) + (2 * h * h * c * cout if c != cout else 0)
            if i == len(mult) - 1:
                f += attn(h, cout)
            c = cout
        if i:
            h *= 2
            f += conv(h, c, c)
    f += conv(h, c, 3)
    return batch * f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tflops', type=float, default=700.0, help='dense bf16 GEMM rate reachable (TFLOP/s)')
    ap.add_argument('--tbps', type=float, default=3.0, help='device memory bandwidth (TB/s)')
    a = ap.parse_args()
    print(f'rates: {a.tflops:g} TFLOP/s, {a.tbps:g} TB/s')
    print('| workload | GFLOP | min GB moved | compute floor ms | memory floor ms |')
    print('|---|---|---|---|---|')
    for depth, batch in ((16, 1), (16, 64), (30, 1), (30, 32)):
        f, b = transformer(depth, batch)
        fd = vqvae_decode(batch)
        tot = f + fd
        print(f'| VAR-d{depth} B={batch} transformer+decode | {tot / 1e9:,.0f} | {b / 1e9:.2f} | '
              f'{tot / a.tflops / 1e9:.2f} | {b / a.tbps / 1e9:.2f} |')
    fd = vqvae_decode(32)
    print(f'| VQVAE decode B=32 | {fd / 1e9:,.0f} | - | {fd / a.tflops / 1e9:.2f} | - |')


if __name__ == '__main__':
    main()
