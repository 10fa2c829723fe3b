#!/usr/bin/env python3
"""FLOPs and minimum memory traffic of LlamaGen class-conditional sampling (sequential decoding, one token per
forward, CFG doubling the rows) and of the VQ-16 decode, per the official configurations (spec/raster.md). Prints the
lower bounds that docs/PERFORMANCE.md quotes. Usage: scripts/llamagen_cost.py [--tflops 700] [--tbps 3.0]"""
import argparse

from var_cost import vqvae_decode

V = 16384  # VQ-16 codebook = the GPT vocabulary
GPT = {'B': (12, 768), 'L': (24, 1024), 'XL': (36, 1280), 'XXL': (48, 1536), '3B': (24, 3200)}  # layers, width


def ffn_hidden(d):
    h = int(2 * 4 * d / 3)
    return (h + 255) // 256 * 256  # multiple_of 256


def transformer(name, batch, grid=16):
    layers, d = GPT[name]
    f_h = ffn_hidden(d)
    rows = 2 * batch                                     # CFG: conditional + null-class rows
    per_layer = 4 * d * d + 3 * d * f_h                  # wqkv 3d^2 + wo d^2; w1, w3, w2 (no biases)
    params = layers * per_layer + d * V                  # + the output head
    n = grid * grid                                      # image tokens = forwards (the class token is position 0)
    flops = n * 2 * rows * params                        # token GEMMs, one row set per step
    cache_rows = sum(t + 1 for t in range(n))            # keys attended over all steps (class token included)
    flops += layers * 2 * 2 * rows * cache_rows * d      # q.k and p.v
    weight_bytes = n * 2 * params                        # every weight read once per step (bf16)
    kv_bytes = layers * 2 * rows * cache_rows * d * 2    # K and V read once per step (bf16)
    return flops, weight_bytes + kv_bytes, params


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tflops', type=float, default=700.0, help='dense bf16 GEMM rate reachable (TFLOP/s)')
    ap.add_argument('--tbps', type=float, default=3.0, help='device memory bandwidth (TB/s)')
    a = ap.parse_args()
    print(f'rates: {a.tflops:g} TFLOP/s, {a.tbps:g} TB/s; 256x256 images (16x16 tokens), sequential, CFG')
    print('| workload | params (M) | GFLOP | min GB moved | compute floor ms | memory floor ms |')
    print('|---|---|---|---|---|---|')
    for name, batch in (('B', 1), ('B', 32), ('L', 1), ('L', 32), ('XL', 1), ('XXL', 1), ('3B', 1)):
        f, b, p = transformer(name, batch)
        fd = vqvae_decode(batch, ch=128, cv=256, pq=(8, 1))
        tot = f + fd
        print(f'| GPT-{name} B={batch} transformer+decode | {p / 1e6:,.0f} | {tot / 1e9:,.0f} | {b / 1e9:.2f} | '
              f'{tot / a.tflops / 1e9:.2f} | {b / a.tbps / 1e9:.2f} |')
    fd = vqvae_decode(1, ch=128, cv=256, pq=(8, 1))
    print(f'| VQ-16 decode, one image | - | {fd / 1e9:,.0f} | - | {fd / a.tflops / 1e9:.3f} | - |')


if __name__ == '__main__':
    main()
