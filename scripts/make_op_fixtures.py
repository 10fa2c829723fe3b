#!/usr/bin/python3
"""Op-level fixtures for tests/test_ops.c and tests/test_sampling.c: torch (CPU, float32) reference outputs of every
op in kernels/ops.h on small odd shapes (C=65, T=1, H != W, batch 3, kv_len < capacity, -inf masks, VAR's
asymmetric stride-2 downsampler, every 16<->pn resize of VAR's schedule), plus VAR's top-k/top-p masking and the FID
Inception ops (pools, pool3 mean, folded BN + ReLU, the pytorch-fid input pipeline, and the ADM evaluator's TF1 legacy
resize computed with numpy as spec/fid.md 1.1 states it: torch has no legacy grid), and LlamaGen's evaluation
downsample (bicubic, then its 8-bit conversion). New cases go last so the earlier tensors keep their values.

Torch layouts are converted to argen's (NCHW -> NHWC, OIHW -> OHWI) here, so each C test feeds the op its own layout.
Writes tests/fixtures/ops.tar.xz holding ops/ops.safetensors (the safetensors format is written by hand: 8-byte
little-endian header length, JSON header, raw little-endian data).

Usage: /usr/bin/python3 scripts/make_op_fixtures.py [--out tests/fixtures/ops.tar.xz]
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
SEED = 20240611
PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)

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


def nhwc(x):  # NCHW -> NHWC
    return x.permute(0, 2, 3, 1).contiguous()


def ohwi(w):  # OIHW -> OHWI
    return w.permute(0, 2, 3, 1).contiguous()


# ------------------------------------------------------------------------------------------------------ dense
def dense():
    x, w, b = rn(3, 5, 65), rn(33, 65, scale=0.1), rn(33)
    put('linear.x', x), put('linear.w', w), put('linear.b', b)
    put('linear.y', F.linear(x, w, b))
    put('linear_nobias.y', F.linear(x, w))
    x1 = rn(1, 1, 65)
    put('linear_t1.x', x1), put('linear_t1.y', F.linear(x1, w, b))

    table = rn(37, 65)
    idx = torch.tensor([0, 36, 5, 5, 17, 2, 33, 0, 9, 21, 36])
    put('embedding.table', table), put('embedding.idx', idx), put('embedding.y', F.embedding(idx, table))

    x = rn(3, 6 * 13)
    put('split_chunks.x', x), put('split_chunks.y', x.view(3, 6, 13).permute(1, 0, 2))

    logits, t = rn(6, 5, 37, scale=3.0), 0.75
    put('cfg_combine.logits', logits), put('cfg_combine.t', t)
    put('cfg_combine.y', (1 + t) * logits[:3] - t * logits[3:])  # VAR autoregressive_infer_cfg

    # VQ nearest codeword, VAR quant.py: |z|^2 + |e|^2 - 2 z.e (addmm, alpha=-2), argmin.
    cb = rn(257, 32)
    pick = torch.randint(0, 257, (40,), generator=GEN)
    z = torch.cat([cb[pick] + rn(40, 32, scale=0.3), rn(10, 32)])
    d = torch.sum(z.square(), dim=1, keepdim=True) + torch.sum(cb.square(), dim=1, keepdim=False)
    d.addmm_(z, cb.T, alpha=-2, beta=1)
    idx = torch.argmin(d, dim=1)
    d64 = ((z.double()[:, None, :] - cb.double()[None]) ** 2).sum(-1)
    top2 = d64.topk(2, dim=1, largest=False).values
    margin = (top2[:, 1] - top2[:, 0]) / top2[:, 1].abs().clamp_min(1.0)
    assert margin.min().item() > 1e-3, f'codebook_argmin: near-tie (margin {margin.min().item():.2e})'
    assert torch.equal(idx, d64.argmin(dim=1)), 'codebook_argmin: float32 and float64 argmin differ'
    put('codebook_argmin.z', z), put('codebook_argmin.codebook', cb), put('codebook_argmin.idx', idx)


# ------------------------------------------------------------------------------------------------------- norms
def norms():
    for name, shape in (('layernorm', (3, 5, 65)), ('layernorm_t1', (2, 1, 65))):
        x = rn(*shape, scale=3.0, offset=2.0)
        put(f'{name}.x', x), put(f'{name}.y', F.layer_norm(x, (shape[-1],), None, None, 1e-6))

    x, h, scale, shift, gate = rn(3, 5, 65, offset=0.5), rn(3, 5, 65), rn(3, 65, scale=0.5), rn(3, 65), rn(3, 65)
    put('adaln.x', x), put('adaln.h', h), put('adaln.scale', scale), put('adaln.shift', shift), put('adaln.gate', gate)
    # VAR basic_var.py: ln_wo_grad(x).mul(scale.add(1)).add_(shift); x + attn(...).mul_(gamma)
    put('adaln_modulate.y', x.mul(scale[:, None].add(1)).add_(shift[:, None]))
    ln = F.layer_norm(x, (65,), None, None, 1e-6)
    put('layernorm_adaln.y', ln.mul(scale[:, None].add(1)).add_(shift[:, None]))
    put('gated_residual.y', x + h.mul(gate[:, None]))

    x, w, b = rn(2, 96, 5, 7, scale=2.0, offset=1.0), rn(96, offset=1.0), rn(96)
    y = F.group_norm(x, 32, w, b, 1e-6)
    put('group_norm.x', nhwc(x)), put('group_norm.w', w), put('group_norm.b', b)
    put('group_norm.y', nhwc(y)), put('group_norm_silu.y', nhwc(F.silu(y)))


# ------------------------------------------------------------------------------------------------- elementwise
def elementwise():
    x = torch.cat([torch.linspace(-10, 10, 1001), rn(999, scale=3.0)])
    put('act.x', x), put('gelu_tanh.y', F.gelu(x, approximate='tanh')), put('silu.y', F.silu(x))

    a, b2, b1 = rn(3, 5, 65), rn(5, 65), rn(65)
    put('add.a', a), put('add.b2', b2), put('add.b1', b1), put('add.y2', a + b2), put('add.y1', a + b1)
    bb, alpha, beta = rn(3, 5, 65), 0.7, -1.3
    put('axpby.b', bb), put('axpby.alpha', alpha), put('axpby.beta', beta)
    put('axpby.y', a.mul(alpha).add(bb.mul(beta)))

    x = rn(7, 65, scale=4.0)
    x[0, [3, 9, 64]] = -math.inf
    x[1, :] = -math.inf
    x[1, 20] = 0.5  # a single finite entry
    x[2] += 1000.0  # large logits: max subtraction matters
    x[3, ::2] = -math.inf
    put('softmax.x', x), put('softmax.y', F.softmax(x, -1))

    x = torch.rand(2, 4, 5, 3, generator=GEN) * 2.6 - 1.3
    x.view(-1)[:6] = torch.tensor([-1.0, 1.0, 0.0, 0.5, -0.5, 1.0 / 255.0])
    put('image_to_u8.x', x)
    put('image_to_u8.y', torch.from_numpy(((x.clamp(-1, 1) + 1) * 0.5 * 255).numpy().astype(np.uint8)).long())


# ------------------------------------------------------------------------------------------------------- convs
def convs():
    # name, x NCHW, w OIHW, bias?, stride, pad (top, bottom, left, right)
    cases = (
        ('conv_s1', (2, 13, 7, 9), (11, 13, 3, 3), True, 1, (1, 1, 1, 1)),
        ('conv_s2', (2, 13, 8, 10), (11, 13, 3, 3), True, 2, (0, 1, 0, 1)),  # VAR Downsample2x
        ('conv_1x1', (2, 65, 5, 7), (33, 65, 1, 1), True, 1, (0, 0, 0, 0)),
        ('conv_in', (1, 3, 6, 5), (65, 3, 3, 3), False, 1, (1, 1, 1, 1)),
        ('conv_k13', (2, 13, 7, 9), (5, 13, 1, 3), True, 1, (0, 0, 1, 1)),
    )
    for name, xs, ws, has_b, stride, pad in cases:
        x, w = rn(*xs), rn(*ws, scale=1.0 / math.sqrt(ws[1] * ws[2] * ws[3]))
        b = rn(ws[0]) if has_b else None
        top, bottom, left, right = pad
        y = F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride)
        put(f'{name}.x', nhwc(x)), put(f'{name}.w', ohwi(w)), put(f'{name}.y', nhwc(y))
        if b is not None:
            put(f'{name}.b', b)
        put(f'{name}.stride', stride), put(f'{name}.pad', torch.tensor(pad))


# ---------------------------------------------------------------------------------------------------- resample
def resample():
    x = rn(2, 5, 7, 3)
    put('upsample_nearest2x.x', nhwc(x)), put('upsample_nearest2x.y', nhwc(F.interpolate(x, scale_factor=2)))

    def both(name, x, size):
        put(f'bicubic_{name}.y', nhwc(F.interpolate(x, size=size, mode='bicubic', align_corners=False)))
        put(f'area_{name}.y', nhwc(F.interpolate(x, size=size, mode='area')))

    x16 = rn(2, 5, 16, 16)
    put('resize.x16', nhwc(x16))
    for pn in PATCH_NUMS[:-1]:
        xp = rn(2, 5, pn, pn)
        put(f'resize.x{pn}', nhwc(xp))
        both(f'16_{pn}', x16, (pn, pn))
        both(f'{pn}_16', xp, (16, 16))
    xo = rn(2, 3, 7, 11)
    put('resize.x7x11', nhwc(xo))
    both('7x11_13x5', xo, (13, 5))
    both('7x11_4x6', xo, (4, 6))


# --------------------------------------------------------------------------------------------------- attention
def attention():
    B, T, NH, HS = 3, 4, 3, 16
    C = NH * HS
    qkv = rn(B, T, 3 * C)
    hsl = torch.tensor([0.5, 5.0, -0.3])  # 5.0 > ln(100): exercises the clamp
    q, k, v = qkv.view(B, T, 3, NH, HS).permute(2, 0, 3, 1, 4).unbind(0)  # VAR SelfAttention.forward, (B, NH, T, HS)
    max_scale_mul = torch.log(torch.tensor(100)).item()
    scale_mul = hsl.view(1, NH, 1, 1).clamp_max(max_scale_mul).exp()
    put('qkv.qkv', qkv), put('qkv.head_scale_log', hsl), put('qkv.t0', 3), put('qkv.tcap', 9)
    put('split_qkv_heads.q', q), put('split_qkv_heads.k', k), put('split_qkv_heads.v', v)
    put('var_attn_prep.q', F.normalize(q, dim=-1).mul(scale_mul)), put('var_attn_prep.k', F.normalize(k, dim=-1))

    # name, B, NH, Tq, HS, Tcap, kv_len, bias?, scale
    cases = (
        ('attention', 3, 2, 5, 64, 12, 9, True, 0.125),
        ('attention_t1', 2, 3, 1, 64, 12, 12, False, 1.0),
        ('attention_1head', 2, 1, 7, 40, 7, 7, False, 40 ** -0.5),
    )
    for name, B, NH, Tq, HS, Tcap, L, has_bias, scale in cases:
        q, k, v = rn(B, NH, Tq, HS, scale=0.5), rn(B, NH, Tcap, HS, scale=0.5), rn(B, NH, Tcap, HS)
        s = q.mul(scale) @ k[:, :, :L].transpose(-2, -1)  # VAR slow path: q.mul(scale) @ k^T, + bias, softmax, @ v
        if has_bias:
            bias = rn(Tq, L)
            bias[bias < -0.8] = -math.inf
            bias[:, 0] = 0.0  # every query keeps at least one key
            put(f'{name}.bias', bias)
            s = s + bias
        out = (s.softmax(-1) @ v[:, :, :L]).transpose(1, 2).reshape(B, Tq, NH * HS)
        put(f'{name}.q', q), put(f'{name}.k', k), put(f'{name}.v', v), put(f'{name}.out', out)
        put(f'{name}.kv_len', L), put(f'{name}.scale', float(scale))


# ---------------------------------------------------------------------------------------------------- sampling
def var_mask(logits_BlV, top_k, top_p):
    """The masking half of VAR models/helpers.py sample_with_top_k_top_p_ (in place)."""
    V = logits_BlV.shape[-1]
    if top_k > 0:
        kth = logits_BlV.topk(top_k, largest=True, sorted=False, dim=-1)[0].amin(dim=-1, keepdim=True)
        idx_to_remove = logits_BlV < kth
        logits_BlV.masked_fill_(idx_to_remove, -torch.inf)
    if top_p > 0:
        sorted_logits, sorted_idx = logits_BlV.sort(dim=-1, descending=False)
        sorted_idx_to_remove = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        sorted_idx_to_remove[..., -1:] = False
        logits_BlV.masked_fill_(sorted_idx_to_remove.scatter(sorted_idx.ndim - 1, sorted_idx, sorted_idx_to_remove),
                                -torch.inf)
    return logits_BlV


def top_p_margin(masked_topk, top_p):
    """Smallest distance between a cumulative probability (float64, the C side's precision) and 1 - top_p."""
    srt = masked_topk.double().sort(dim=-1).values
    cum = srt.softmax(-1).cumsum(-1)[..., :-1]
    return (cum - (1 - np.float32(top_p).item())).abs().min().item()


def sampling():
    # name, rows, V, top_k, top_p, logits kind
    cases = (
        ('p90', 4, 64, 0, 0.9, 'randn'),
        ('k10_p80', 4, 64, 10, 0.8, 'randn'),
        ('p50_premasked', 3, 64, 0, 0.5, 'premasked'),
        ('k7_ties', 6, 64, 7, 0.0, 'ties'),
        ('k1', 3, 64, 1, 0.0, 'randn'),
        ('k900_p96', 2, 4096, 900, 0.96, 'randn'),
    )
    for name, R, V, k, p, kind in cases:
        x = rn(1, R, V, scale=2.0)
        if kind == 'premasked':
            x[..., torch.randperm(V, generator=GEN)[:20]] = -math.inf
        if kind == 'ties':
            x = torch.round(x * 2) / 2
        y = var_mask(x.clone(), k, p)
        if p > 0:
            m = top_p_margin(var_mask(x.clone(), k, 0.0), p)
            assert m > 1e-5, f'sampling {name}: cumulative probability within {m:.1e} of 1 - top_p'
        if kind == 'ties':
            assert (y > -math.inf).sum(-1).max().item() > k, 'sampling ties: no row keeps more than k entries'
        put(f'sampling.{name}.logits', x[0]), put(f'sampling.{name}.expected', y[0])
        put(f'sampling.{name}.top_k', k), put(f'sampling.{name}.top_p', float(p))


# ---------------------------------------------------------------------------------------------- FID Inception
def legacy_coeffs(n, out):
    """TF1 ResizeBilinear's legacy grid (shared/reference/fid_numpy.py _resize_coeffs_legacy)."""
    scale = np.float32(n) / np.float32(out)
    s = np.arange(out, dtype=np.float32) * scale
    lo = np.floor(s).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, (s - lo.astype(np.float32)).astype(np.float32)


def resize_adm(u8_nchw, size):
    """ADM evaluator input (spec/fid.md 1.1, fid_numpy.py preprocess_adm): float32 lerps along x, then y."""
    x = u8_nchw.numpy().astype(np.float32)
    ylo, yhi, fy = legacy_coeffs(x.shape[2], size[0])
    xlo, xhi, fx = legacy_coeffs(x.shape[3], size[1])
    fx, fy = fx[None, None, None, :], fy[None, None, :, None]
    rows_lo, rows_hi = x[:, :, ylo], x[:, :, yhi]
    top = rows_lo[..., xlo] + (rows_lo[..., xhi] - rows_lo[..., xlo]) * fx
    bot = rows_hi[..., xlo] + (rows_hi[..., xhi] - rows_hi[..., xlo]) * fx
    v = (top + (bot - top) * fy).astype(np.float32)
    return torch.from_numpy((v - np.float32(128)) * np.float32(0.0078125))


def fid():
    # Appended last and drawing from GEN after every other maker, so the tensors above keep their values.
    x = rn(2, 65, 9, 11)
    put('pool.x', nhwc(x))
    put('max_pool_k3s2p0.y', nhwc(F.max_pool2d(x, 3, 2, 0)))  # stem, Mixed_6a, Mixed_7a
    put('max_pool_k3s1p1.y', nhwc(F.max_pool2d(x, 3, 1, 1)))  # Mixed_7c branch_pool
    put('avg_pool_k3s1p1.y', nhwc(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)))  # FID A/C/E_1 branch_pool
    put('avg_pool_k3s2p1.y', nhwc(F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)))
    for name, shape in (('spatial_mean', (3, 65, 5, 7)), ('spatial_mean_8x8', (2, 33, 8, 8))):
        x = rn(*shape, offset=0.5)
        put(f'{name}.x', nhwc(x)), put(f'{name}.y', F.adaptive_avg_pool2d(x, 1).flatten(1))  # pytorch-fid pool3

    x, scale, shift = rn(2, 5, 7, 65), rn(65), rn(65)
    put('channel_affine_relu.x', x), put('channel_affine_relu.scale', scale), put('channel_affine_relu.shift', shift)
    put('channel_affine_relu.y', F.relu(x * scale + shift))

    # name, input (H, W), output (Ho, Wo): upsampling (like 256 -> 299), downsampling, one axis unchanged
    for name, (h, w), size in (('up', (13, 17), (29, 31)), ('down', (37, 41), (19, 23)), ('mixed', (11, 40), (11, 7))):
        u8 = torch.randint(0, 256, (2, 3, h, w), generator=GEN, dtype=torch.uint8)
        u8.view(-1)[:2] = torch.tensor([0, 255], dtype=torch.uint8)
        put(f'fid_{name}.x', nhwc(u8).long())
        # pytorch-fid: ToTensor (u8 / 255), F.interpolate(bilinear, align_corners=False) on NCHW, 2x - 1
        y = F.interpolate(u8.float() / 255, size=size, mode='bilinear', align_corners=False)
        put(f'fid_pytorch_{name}.y', nhwc(2 * y - 1))
        put(f'fid_adm_{name}.y', nhwc(resize_adm(u8, size)))


# --------------------------------------------------------------------------------------- evaluation resize
def eval_resize():
    # LlamaGen's FID protocol for its 384px models (sample_c2i_ddp.py): the decoded float image in [-1, 1] (a little
    # beyond), F.interpolate(bicubic, align_corners=False, no antialias) to the evaluation size, then
    # clamp(127.5 x + 128, 0, 255) and a truncating uint8 cast. 48 -> 32 has 384 -> 256's ratio (same tap pattern).
    x = rn(2, 3, 48, 48, scale=0.7)
    for name, size in (('48_32', (32, 32)), ('48_20', (20, 20))):
        y = F.interpolate(x, size=size, mode='bicubic', align_corners=False)
        put(f'eval_resize_{name}.y', nhwc(y))
        put(f'eval_resize_{name}.u8', nhwc(torch.clamp(127.5 * y + 128.0, 0, 255).to(torch.uint8)).long())
    put('eval_resize.x', nhwc(x))


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
    ap.add_argument('--out', default=os.path.join(root, 'tests', 'fixtures', 'ops.tar.xz'))
    args = ap.parse_args()
    for make in (dense, norms, elementwise, convs, resample, attention, sampling, fid, eval_resize):
        make()
    data = safetensors_bytes(OUT, {'format': 'argen-op-fixtures', 'version': str(VERSION), 'seed': str(SEED),
                                   'torch': torch.__version__})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w:xz') as tar:
        for d in ('ops',):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        info = tarfile.TarInfo('ops/ops.safetensors')
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    with open(args.out, 'wb') as f:
        f.write(buf.getvalue())
    print(f'{args.out}: {len(OUT)} tensors, {len(data)} bytes raw, {len(buf.getvalue())} bytes compressed')


if __name__ == '__main__':
    main()
