#!/usr/bin/python3
"""Op-level fixtures for tests/test_llama_ops.c: torch (CPU, float32) reference outputs of the raster-model
(LlamaGen) ops of kernels/ops.h on small odd shapes, written the way LlamaGen's code computes them:
RMSNorm, the SwiGLU gate, apply_rotary_emb + KV-cache writes at scattered positions, attention causal by position
over a partly written cache (HS 8 and 100, Tq = 1), F.normalize rows (one all-zero), LlamaGen's
top_k_top_p_filtering + softmax (logits_to_probs) incl. ties and temperature, and the 2D rotary table
precompute_freqs_cis_2d for the head sizes of the tiny fixture (32), GPT-B (64) and GPT-3B (100).

Writes tests/fixtures/llama_ops.tar.xz holding llama_ops/llama_ops.safetensors.
Usage: /usr/bin/python3 scripts/make_llama_op_fixtures.py [--out tests/fixtures/llama_ops.tar.xz]
"""
import argparse
import io
import json
import math
import os
import struct
import tarfile

import numpy as np
import torch
import torch.nn.functional as F

VERSION = 1
SEED = 20250301

torch.set_grad_enabled(False)
torch.set_num_threads(1)
GEN = torch.Generator().manual_seed(SEED)
OUT = {}


def rn(*shape, scale=1.0, offset=0.0):
    return torch.randn(*shape, generator=GEN) * scale + offset


def put(name, t):
    assert name not in OUT, name
    if isinstance(t, (int, float)):
        t = torch.tensor([t], dtype=torch.float32 if isinstance(t, float) else torch.int64)
    if isinstance(t, torch.Tensor):
        t = t.detach().contiguous().numpy()
    OUT[name] = np.ascontiguousarray(t)


# ------------------------------------------------------------------------------- LlamaGen code (gpt.py, generate.py)
def rms_norm(x, w, eps=1e-5):  # RMSNorm.forward
    out = (x.float() * torch.rsqrt(torch.mean(x.float() * x.float(), dim=-1, keepdim=True) + eps)).type_as(x)
    return out * w


def precompute_freqs_cis_2d(grid_size, n_elem, base=10000, cls_token_num=120):
    half_dim = n_elem // 2
    freqs = 1.0 / (base ** (torch.arange(0, half_dim, 2)[: (half_dim // 2)].float() / half_dim))
    t = torch.arange(grid_size, device=freqs.device)
    freqs = torch.outer(t, freqs)
    freqs_grid = torch.concat([freqs[:, None, :].expand(-1, grid_size, -1),
                               freqs[None, :, :].expand(grid_size, -1, -1)], dim=-1)
    cache_grid = torch.stack([torch.cos(freqs_grid), torch.sin(freqs_grid)], dim=-1)
    cache = cache_grid.flatten(0, 1)
    return torch.cat([torch.zeros(cls_token_num, n_elem // 2, 2), cache])


def apply_rotary_emb(x, freqs_cis):  # x (bs, seq, n_head, head_dim), freqs_cis (seq, head_dim // 2, 2)
    xshaped = x.float().reshape(*x.shape[:-1], -1, 2)
    freqs_cis = freqs_cis.view(1, xshaped.size(1), 1, xshaped.size(3), 2)
    x_out2 = torch.stack([xshaped[..., 0] * freqs_cis[..., 0] - xshaped[..., 1] * freqs_cis[..., 1],
                          xshaped[..., 1] * freqs_cis[..., 0] + xshaped[..., 0] * freqs_cis[..., 1]], dim=-1)
    return x_out2.flatten(3).type_as(x)


def top_k_top_p_filtering(logits, top_k=0, top_p=1.0, filter_value=-float('Inf'), min_tokens_to_keep=1):
    if top_k > 0:
        top_k = min(max(top_k, min_tokens_to_keep), logits.size(-1))
        indices_to_remove = logits < torch.topk(logits, top_k)[0][..., -1, None]
        logits[indices_to_remove] = filter_value
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        sorted_indices_to_remove = cumulative_probs > top_p
        sorted_indices_to_remove[..., 1:] = sorted_indices_to_remove[..., :-1].clone()
        sorted_indices_to_remove[..., 0] = 0
        indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
        logits[indices_to_remove] = filter_value
    return logits


def logits_to_probs(logits, temperature=1.0, top_p=1.0, top_k=0):
    logits = logits / max(temperature, 1e-5)
    if top_k > 0 or top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k=top_k, top_p=top_p)
    return F.softmax(logits, dim=-1)


# ------------------------------------------------------------------------------------------------------ cases
def norms():
    for name, shape in (('rmsnorm', (3, 5, 65)), ('rmsnorm_t1', (2, 1, 65))):
        x, w = rn(*shape, scale=2.0, offset=0.5), rn(shape[-1], offset=1.0)
        put(f'{name}.x', x), put(f'{name}.w', w), put(f'{name}.y', rms_norm(x, w))
    a, b = rn(3, 5, 65, scale=3.0), rn(3, 5, 65)
    put('silu_mul.a', a), put('silu_mul.b', b), put('silu_mul.y', F.silu(a) * b)
    x = rn(7, 8)
    x[3] = 0.0
    put('l2_normalize.x', x), put('l2_normalize.y', F.normalize(x, p=2, dim=-1))


def rope_tables():
    for g, hd in ((4, 32), (16, 64), (3, 100)):
        put(f'rope.g{g}_hd{hd}', precompute_freqs_cis_2d(g, hd, cls_token_num=1))


def attn_prep(name, B, T, NH, HS, P, Tcap):
    qkv = rn(B, T, 3 * NH * HS)
    rope = rn(P, HS // 2, 2)
    pos = torch.stack([torch.randperm(min(P, Tcap), generator=GEN)[:T] for _ in range(B)])  # distinct per row
    kc0, vc0 = rn(B, NH, Tcap, HS), rn(B, NH, Tcap, HS)
    q, k, v = qkv.split(NH * HS, dim=-1)
    q, k, v = q.view(B, T, NH, HS), k.view(B, T, NH, HS), v.view(B, T, NH, HS)
    qo = torch.empty(B, T, NH, HS)
    kc, vc = kc0.clone(), vc0.clone()
    for b in range(B):  # Attention.forward with input_pos = pos[b]: rotate, then KVCache.update
        qo[b] = apply_rotary_emb(q[b:b + 1], rope[pos[b]])[0]
        kr = apply_rotary_emb(k[b:b + 1], rope[pos[b]])[0]
        kc[b][:, pos[b]] = kr.transpose(0, 1)
        vc[b][:, pos[b]] = v[b].transpose(0, 1)
    put(f'{name}.qkv', qkv), put(f'{name}.rope', rope), put(f'{name}.positions', pos)
    put(f'{name}.kcache0', kc0), put(f'{name}.vcache0', vc0)
    put(f'{name}.q', qo.transpose(1, 2)), put(f'{name}.kcache', kc), put(f'{name}.vcache', vc)


def attention_pos(name, B, NH, Tq, HS, Tcap):
    q, k, v = rn(B, NH, Tq, HS), rn(B, NH, Tcap, HS), rn(B, NH, Tcap, HS)
    k[:, :, Tcap // 2] = 0.0  # a slot never written (zeros): attended with logit 0 and value 0
    v[:, :, Tcap // 2] = 0.0
    pos = torch.randint(0, Tcap, (B, Tq), generator=GEN)
    pos[0, 0] = 0
    scale = 1.0 / math.sqrt(HS)
    out = torch.empty(B, Tq, NH * HS)
    for b in range(B):
        mask = torch.arange(Tcap)[None, :] <= pos[b][:, None]          # (Tq, Tcap): the row input_pos of the mask
        s = (q[b] @ k[b].transpose(-1, -2)) * scale
        s = s.masked_fill(~mask[None], float('-inf'))
        out[b] = (torch.softmax(s, dim=-1) @ v[b]).transpose(0, 1).reshape(Tq, NH * HS)
    put(f'{name}.q', q), put(f'{name}.k', k), put(f'{name}.v', v), put(f'{name}.positions', pos)
    put(f'{name}.scale', scale), put(f'{name}.out', out)


def hf_margin(logits, top_p):
    """Smallest |mass before an entry - top_p| over the finite entries of every row (float64)."""
    worst = math.inf
    for row in logits.double():
        f = row[torch.isfinite(row)]
        s = torch.sort(f, descending=True).values
        p = torch.softmax(s, 0)
        before = torch.cumsum(p, 0) - p
        worst = min(worst, (before[1:] - top_p).abs().min().item())  # the top entry always stays
    return worst


def sampling():
    cases = (  # name, rows, V, top_k, top_p, temperature, kind
        ('plain', 3, 37, 0, 1.0, 1.0, 'randn'),
        ('k5', 4, 37, 5, 1.0, 1.0, 'randn'),
        ('k7_ties', 4, 37, 7, 1.0, 1.0, 'ties'),
        ('p80', 4, 100, 0, 0.8, 1.0, 'randn'),
        ('p0', 2, 37, 0, 0.0, 1.0, 'randn'),
        ('k10_p90_t07', 4, 100, 10, 0.9, 0.7, 'randn'),
        ('k1', 3, 37, 1, 1.0, 1.0, 'randn'),
        ('t15_premasked', 3, 37, 0, 0.95, 1.5, 'premasked'),
        ('k2000', 2, 4096, 2000, 1.0, 1.0, 'randn'),
    )
    for name, R, V, k, p, t, kind in cases:
        x = rn(1, R, V, scale=2.0)
        if kind == 'premasked':
            x[..., torch.randperm(V, generator=GEN)[:9]] = -math.inf
        if kind == 'ties':
            x = torch.round(x * 2) / 2
        probs = logits_to_probs(x[0].clone(), temperature=t, top_p=p, top_k=k)
        if p < 1.0:
            scaled = x[0] / max(t, 1e-5)
            if k > 0:
                scaled = top_k_top_p_filtering(scaled.clone(), top_k=k)
            m = hf_margin(scaled, p)
            assert m > 1e-5, f'sampling {name}: mass before an entry within {m:.1e} of top_p'
        if kind == 'ties':
            assert ((probs > 0).sum(-1) > k).any(), 'sampling ties: no row keeps more than k entries'
        put(f'hf.{name}.logits', x[0]), put(f'hf.{name}.probs', probs)
        put(f'hf.{name}.top_k', k), put(f'hf.{name}.top_p', float(p)), put(f'hf.{name}.temperature', float(t))


# ------------------------------------------------------------------------------------------------------ output
DTYPES = {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64'}


def safetensors_bytes(tensors, metadata):
    header, blobs, off = {'__metadata__': metadata}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        if a.dtype == np.float64:
            a = a.astype(np.float32)
        a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder('<')))
        raw = a.tobytes()
        header[name] = {'dtype': DTYPES[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument('--out', default=os.path.join(root, 'tests', 'fixtures', 'llama_ops.tar.xz'))
    args = ap.parse_args()
    norms()
    rope_tables()
    attn_prep('attn_prep', 3, 5, 3, 8, 9, 8)
    attn_prep('attn_prep_t1', 2, 1, 2, 100, 6, 7)
    attention_pos('attention_pos', 3, 2, 6, 8, 11)
    attention_pos('attention_pos_hs100', 2, 3, 1, 100, 9)
    attention_pos('attention_pos_long', 1, 2, 70, 16, 80)
    sampling()
    data = safetensors_bytes(OUT, {'format': 'argen-llama-op-fixtures', 'version': str(VERSION), 'seed': str(SEED),
                                   'torch': torch.__version__})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:xz') as tar:
        info = tarfile.TarInfo('llama_ops')
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
        tar.addfile(info)
        info = tarfile.TarInfo('llama_ops/llama_ops.safetensors')
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    with open(args.out, 'wb') as f:
        f.write(buf.getvalue())
    print(f'{args.out}: {len(OUT)} tensors, {len(data)} bytes raw, {len(buf.getvalue())} bytes compressed')


if __name__ == '__main__':
    main()
