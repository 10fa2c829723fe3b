"""PyTorch modules for a small VAR (multi-scale residual VQVAE + next-scale-prediction transformer), written from
shared/spec/var.md (sections 1-3) with state-dict names exactly as argen's C loaders read them
(tokenizer/var_vqvae_load.c, generator/var_load.c). Used by var_train.py (training, export, verification).

VQVAE: Encoder/Decoder of ResnetBlocks (GroupNorm eps 1e-6 with a configurable group count, SiLU, 3x3 convs),
single-head attention blocks at the lowest level and in the middle, asymmetric-pad stride-2 downsampling,
nearest-2x upsampling + conv; quant_conv/post_quant_conv 3x3; VectorQuantizer2 with K=4 partially shared Phi convs
(Phi(h) = 0.5 h + 0.5 conv(h)), area-down / bicubic-up multi-scale residual quantisation.

VAR: AdaLN self-attention blocks (ada_lin gives gamma1, gamma2, scale1, scale2, shift1, shift2), L2-normalised
q/k attention with a per-head learned log temperature (scale_mul_1H11, clamped at ln 100), tanh-GELU MLP,
AdaLN head (scale, shift), class_emb with num_classes + 1 rows (the last one is the null class for CFG).
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-6
LN_EPS = 1e-6


# ------------------------------------------------------------------------------------------------------ VQVAE
def _gn(c, groups):
    return nn.GroupNorm(groups, c, eps=GN_EPS, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = _gn(cin, groups)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = _gn(cout, groups)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    """Single head over all positions, q/k/v from one 1x1 conv, scores scaled by C^-1/2."""

    def __init__(self, c, groups):
        super().__init__()
        self.norm = _gn(c, groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        qkv = self.qkv(self.norm(x)).reshape(B, 3, C, H * W)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # B, C, N
        s = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * C ** -0.5, dim=-1)
        o = torch.einsum("bij,bcj->bci", s, v).reshape(B, C, H, W)
        return x + self.proj_out(o)


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Level(nn.Module):
    pass


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.block_1 = ResnetBlock(c, c, groups)
        self.attn_1 = AttnBlock(c, groups)
        self.block_2 = ResnetBlock(c, c, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, nrb, z, groups):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        nl = len(ch_mult)
        self.down = nn.ModuleList()
        cin = ch
        for i in range(nl):
            lv = Level()
            cout = ch * ch_mult[i]
            lv.block = nn.ModuleList()
            lv.attn = nn.ModuleList()
            for _ in range(nrb):
                lv.block.append(ResnetBlock(cin, cout, groups))
                cin = cout
                if i == nl - 1:
                    lv.attn.append(AttnBlock(cout, groups))
            if i != nl - 1:
                lv.downsample = Downsample(cout)
            self.down.append(lv)
        self.mid = Mid(cin, groups)
        self.norm_out = _gn(cin, groups)
        self.conv_out = nn.Conv2d(cin, z, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            for j, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if hasattr(lv, "downsample"):
                h = lv.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, nrb, z, groups):
        super().__init__()
        nl = len(ch_mult)
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, 1, 1)
        self.mid = Mid(cin, groups)
        ups = [None] * nl
        for i in reversed(range(nl)):
            lv = Level()
            cout = ch * ch_mult[i]
            lv.block = nn.ModuleList()
            lv.attn = nn.ModuleList()
            for _ in range(nrb + 1):
                lv.block.append(ResnetBlock(cin, cout, groups))
                cin = cout
                if i == nl - 1:
                    lv.attn.append(AttnBlock(cout, groups))
            if i != 0:
                lv.upsample = Upsample(cout)
            ups[i] = lv
        self.up = nn.ModuleList(ups)
        self.norm_out = _gn(cin, groups)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            lv = self.up[i]
            for j, b in enumerate(lv.block):
                h = b(h)
                if len(lv.attn):
                    h = lv.attn[j](h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Phi(nn.Conv2d):
    """Phi(h) = (1 - r) h + r conv3x3(h), r = 0.5."""

    def __init__(self, c, resi=0.5):
        super().__init__(c, c, 3, 1, 1)
        self.resi = abs(resi)

    def forward(self, h):
        return h.mul(1 - self.resi) + super().forward(h).mul_(self.resi)


def phi_indices(K, SN):
    """PhiPartiallyShared: argmin |ticks - si/(SN-1)| in float64, ticks as numpy linspace."""
    ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K) if K == 4 else np.linspace(1 / 2 / K, 1 - 1 / 2 / K, K)
    return [int(np.argmin(np.abs(ticks - (si / (SN - 1) if SN > 1 else 0.0)))) for si in range(SN)]


def up_to(h, n):
    return h if h.shape[-1] == n else F.interpolate(h, size=(n, n), mode="bicubic", align_corners=False)


def area_to(f, pn):
    return f if f.shape[-1] == pn else F.interpolate(f, size=(pn, pn), mode="area")


class Quantizer(nn.Module):
    def __init__(self, V, Cvae, patch_nums, K=4, beta=0.25):
        super().__init__()
        self.V, self.Cvae, self.patch_nums, self.beta = V, Cvae, tuple(patch_nums), beta
        self.embedding = nn.Embedding(V, Cvae)
        nn.init.uniform_(self.embedding.weight, -1 / V, 1 / V)
        self.quant_resi = nn.Module()
        self.quant_resi.qresi_ls = nn.ModuleList([Phi(Cvae) for _ in range(K)])
        self.phi_idx = phi_indices(K, len(patch_nums))

    def phi(self, si):
        return self.quant_resi.qresi_ls[self.phi_idx[si]]

    def nearest(self, z):  # z [N, Cvae] -> idx [N]
        e = self.embedding.weight
        d = (z * z).sum(1, keepdim=True) + (e * e).sum(1)[None] - 2 * z @ e.t()
        return d.argmin(1)

    def idx_to_map(self, idx, pn):  # idx [B, pn*pn] -> [B, Cvae, pn, pn]
        return self.embedding(idx).transpose(1, 2).reshape(idx.shape[0], self.Cvae, pn, pn)

    def quantize(self, f):
        """Training/encoding pass: f [B,Cvae,Hl,Hl] -> (f_hat with straight-through grads, vq loss, idx list,
        per-scale usage counts)."""
        SN, Hl = len(self.patch_nums), self.patch_nums[-1]
        B = f.shape[0]
        f_ng = f.detach()
        f_rest = f_ng.clone()
        f_hat = torch.zeros_like(f_ng)
        loss = 0.0
        idxs = []
        for si, pn in enumerate(self.patch_nums):
            z = area_to(f_rest, pn) if si != SN - 1 else f_rest
            idx = self.nearest(z.permute(0, 2, 3, 1).reshape(-1, self.Cvae)).reshape(B, pn * pn)
            idxs.append(idx)
            h = self.idx_to_map(idx, pn)
            if si != SN - 1:
                h = up_to(h, Hl)
            h = self.phi(si)(h)
            f_hat = f_hat + h
            f_rest = f_rest - h.detach()
            loss = loss + F.mse_loss(f_hat.detach(), f) * self.beta + F.mse_loss(f_hat, f_ng)
        loss = loss / SN
        f_st = (f_hat.detach() - f_ng) + f  # straight-through: decoder grads flow to the encoder
        return f_hat, f_st, loss, idxs

    def idxs_to_fhat(self, idxs):
        SN, Hl = len(self.patch_nums), self.patch_nums[-1]
        f_hat = 0
        for si, pn in enumerate(self.patch_nums):
            h = self.idx_to_map(idxs[si], pn)
            if si != SN - 1:
                h = up_to(h, Hl)
            f_hat = f_hat + self.phi(si)(h)
        return f_hat

    def idxs_to_var_input(self, idxs):
        """Teacher-forcing input [B, L - pn0^2, Cvae]."""
        SN, Hl = len(self.patch_nums), self.patch_nums[-1]
        B = idxs[0].shape[0]
        f_hat = torch.zeros(B, self.Cvae, Hl, Hl)
        outs = []
        for si in range(SN - 1):
            pn = self.patch_nums[si]
            f_hat = f_hat + self.phi(si)(up_to(self.idx_to_map(idxs[si], pn), Hl))
            outs.append(area_to(f_hat, self.patch_nums[si + 1]).flatten(2).transpose(1, 2))
        return torch.cat(outs, 1)

    def next_input(self, si, f_hat, h):
        SN, Hl = len(self.patch_nums), self.patch_nums[-1]
        if si != SN - 1:
            f_hat = f_hat + self.phi(si)(up_to(h, Hl))
            return f_hat, area_to(f_hat, self.patch_nums[si + 1])
        f_hat = f_hat + self.phi(si)(h)
        return f_hat, f_hat


class VQVAE(nn.Module):
    def __init__(self, ch=16, ch_mult=(1, 1, 2, 2, 4), nrb=1, Cvae=8, V=512, norm_groups=16,
                 patch_nums=(1, 2, 3, 4, 5, 6, 8)):
        super().__init__()
        self.cfg = dict(ch=ch, ch_mult=tuple(ch_mult), nrb=nrb, Cvae=Cvae, V=V, norm_groups=norm_groups,
                        patch_nums=tuple(patch_nums))
        self.encoder = Encoder(ch, ch_mult, nrb, Cvae, norm_groups)
        self.decoder = Decoder(ch, ch_mult, nrb, Cvae, norm_groups)
        self.quant_conv = nn.Conv2d(Cvae, Cvae, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(Cvae, Cvae, 3, 1, 1)
        self.quantize = Quantizer(V, Cvae, patch_nums)

    def encode_f(self, img):
        return self.quant_conv(self.encoder(img))

    def decode_fhat(self, f_hat):
        return self.decoder(self.post_quant_conv(f_hat))

    def forward(self, img):
        f = self.encode_f(img)
        f_hat, f_st, vq_loss, idxs = self.quantize.quantize(f)
        return self.decode_fhat(f_st), vq_loss, idxs, f

    @torch.no_grad()
    def img_to_idxs(self, img):
        return self.quantize.quantize(self.encode_f(img))[3]

    @torch.no_grad()
    def idxs_to_img(self, idxs):
        return self.decode_fhat(self.quantize.idxs_to_fhat(idxs)).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------- transformer
class SelfAttention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.C, self.H, self.hd = C, H, C // H
        self.mat_qkv = nn.Linear(C, 3 * C, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(C))
        self.v_bias = nn.Parameter(torch.zeros(C))
        self.register_buffer("zero_k_bias", torch.zeros(C))
        self.scale_mul_1H11 = nn.Parameter(torch.full((1, H, 1, 1), 4.0).log())
        self.proj = nn.Linear(C, C)
        self.cache = None  # (k, v) during cached inference

    def forward(self, x, mask=None):
        B, L, C = x.shape
        bias = torch.cat([self.q_bias, self.zero_k_bias, self.v_bias])
        qkv = F.linear(x, self.mat_qkv.weight, bias).reshape(B, L, 3, self.H, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # B, H, L, hd
        s = self.scale_mul_1H11.clamp(max=math.log(100)).exp()
        q = F.normalize(q, dim=-1, eps=1e-12) * s
        k = F.normalize(k, dim=-1, eps=1e-12)
        if self.cache is not None:
            if self.cache[0] is not None:
                k = torch.cat([self.cache[0], k], 2)
                v = torch.cat([self.cache[1], v], 2)
            self.cache = (k, v)
        att = q @ k.transpose(-2, -1)
        if mask is not None:
            att = att + mask
        o = torch.softmax(att, -1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, C, hidden):
        super().__init__()
        self.fc1 = nn.Linear(C, hidden)
        self.fc2 = nn.Linear(hidden, C)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdaLNBlock(nn.Module):
    def __init__(self, C, H, mlp_ratio=4.0):
        super().__init__()
        self.C = C
        self.attn = SelfAttention(C, H)
        self.ffn = FFN(C, int(round(C * mlp_ratio)))
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))

    def forward(self, x, cond, mask=None):
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond)[:, None, :].chunk(6, -1)
        x = x + g1 * self.attn(F.layer_norm(x, (self.C,), eps=LN_EPS) * (1 + s1) + b1, mask)
        return x + g2 * self.ffn(F.layer_norm(x, (self.C,), eps=LN_EPS) * (1 + s2) + b2)


class AdaLNHead(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.C = C
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 2 * C))

    def forward(self, x, cond):
        sc, sh = self.ada_lin(cond)[:, None, :].chunk(2, -1)
        return F.layer_norm(x, (self.C,), eps=LN_EPS) * (1 + sc) + sh


class VAR(nn.Module):
    def __init__(self, V=512, Cvae=8, depth=4, C=128, H=2, num_classes=10, patch_nums=(1, 2, 3, 4, 5, 6, 8),
                 mlp_ratio=4.0, cond_drop=0.1):
        super().__init__()
        self.cfg = dict(V=V, Cvae=Cvae, depth=depth, C=C, H=H, num_classes=num_classes,
                        patch_nums=tuple(patch_nums), mlp_ratio=mlp_ratio, cond_drop=cond_drop)
        self.V, self.Cvae, self.C, self.num_classes = V, Cvae, C, num_classes
        self.patch_nums = tuple(patch_nums)
        self.cond_drop = cond_drop
        self.begin_ends, cur = [], 0
        for pn in patch_nums:
            self.begin_ends.append((cur, cur + pn * pn))
            cur += pn * pn
        self.L = cur
        std = math.sqrt(1 / C / 3)
        self.word_embed = nn.Linear(Cvae, C)
        self.class_emb = nn.Embedding(num_classes + 1, C)
        nn.init.trunc_normal_(self.class_emb.weight, std=std)
        self.pos_start = nn.Parameter(torch.empty(1, 1, C))
        nn.init.trunc_normal_(self.pos_start, std=std)
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, C))
        nn.init.trunc_normal_(self.pos_1LC, std=std)
        self.lvl_embed = nn.Embedding(len(patch_nums), C)
        nn.init.trunc_normal_(self.lvl_embed.weight, std=std)
        self.blocks = nn.ModuleList([AdaLNBlock(C, H, mlp_ratio) for _ in range(depth)])
        self.head_nm = AdaLNHead(C)
        self.head = nn.Linear(C, V)
        lvl = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(patch_nums)])
        self.register_buffer("lvl_1L", lvl[None], persistent=False)
        mask = torch.where(lvl[None, :] <= lvl[:, None], 0.0, -math.inf)
        self.register_buffer("attn_mask", mask[None, None], persistent=False)
        self._init(std)

    def _init(self, std):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.head.weight, std=0.02 * std)
        C = self.C
        for b in self.blocks:
            lin = b.ada_lin[1]
            lin.weight.data.mul_(0.5)
            lin.bias.data.zero_()
            lin.bias.data[:2 * C] = 1e-1  # gammas start small but non-zero
            b.attn.proj.weight.data.div_(math.sqrt(2 * len(self.blocks)))
            b.ffn.fc2.weight.data.div_(math.sqrt(2 * len(self.blocks)))
        self.head_nm.ada_lin[1].weight.data.mul_(0.5)
        self.head_nm.ada_lin[1].bias.data.zero_()

    def lvl_pos(self):
        return self.lvl_embed(self.lvl_1L[0]) + self.pos_1LC[0]  # L, C

    def forward(self, labels, x_wo_first, drop=True):
        """Teacher-forced logits [B, L, V] (spec 2.7); labels dropped to the null class with prob cond_drop."""
        if drop and self.training and self.cond_drop > 0:
            labels = torch.where(torch.rand(labels.shape[0]) < self.cond_drop,
                                 torch.full_like(labels, self.num_classes), labels)
        cond = self.class_emb(labels)
        first = cond[:, None, :] + self.pos_start
        x = torch.cat([first, self.word_embed(x_wo_first)], 1) + self.lvl_pos()[None]
        for b in self.blocks:
            x = b(x, cond, self.attn_mask)
        return self.head(self.head_nm(x, cond))

    @torch.no_grad()
    def infer_greedy(self, vq, labels, cfg):
        """autoregressive_infer_cfg with top_k = 1 (argmax, no RNG): CFG ramp t = cfg * si / (SN - 1), KV caches,
        f_hat accumulation, next-scale input. Returns (tokens [B, L], f_hat)."""
        return self.infer(vq, labels, cfg, top_k=1)

    @torch.no_grad()
    def infer(self, vq, labels, cfg, top_k=0, top_p=0.0, generator=None):
        """autoregressive_infer_cfg (spec section 3, more_smooth off); top_k == 1 is argmax (no RNG).
        Returns (tokens [B, L], f_hat)."""
        B = labels.shape[0]
        SN, Hl = len(self.patch_nums), self.patch_nums[-1]
        lab2 = torch.cat([labels, torch.full_like(labels, self.num_classes)])
        cond = self.class_emb(lab2)
        lvl_pos = self.lvl_pos()
        x = cond[:, None, :] + self.pos_start + lvl_pos[None, :1]
        f_hat = torch.zeros(B, self.Cvae, Hl, Hl)
        for b in self.blocks:
            b.attn.cache = (None, None)
        toks = []
        try:
            for si, pn in enumerate(self.patch_nums):
                t = cfg * si / (SN - 1)
                h = x
                for b in self.blocks:
                    h = b(h, cond)
                logits = self.head(self.head_nm(h, cond))
                logits = (1 + t) * logits[:B] - t * logits[B:]
                idx = logits.argmax(-1) if top_k == 1 else sample_top_k_top_p(logits, top_k, top_p, generator)
                toks.append(idx)
                f_hat, nxt = vq.quantize.next_input(si, f_hat, vq.quantize.idx_to_map(idx, pn))
                if si != SN - 1:
                    b0, e0 = self.begin_ends[si + 1]
                    nx = self.word_embed(nxt.flatten(2).transpose(1, 2)) + lvl_pos[None, b0:e0]
                    x = torch.cat([nx, nx], 0)
        finally:
            for b in self.blocks:
                b.attn.cache = None
        return torch.cat(toks, 1), f_hat


def sample_top_k_top_p(logits, top_k, top_p, generator=None):
    """logits [B, n, V] -> idx [B, n]: top-k (ties at the threshold kept), then top-p (sorted ascending, remove
    entries whose cumulative probability is <= 1 - top_p, never the largest), then one multinomial draw."""
    B, n, V = logits.shape
    logits = logits.clone()
    if top_k > 0:
        kth = logits.topk(min(top_k, V), dim=-1).values[..., -1:]
        logits[logits < kth] = -math.inf
    if top_p > 0:
        srt, order = logits.sort(-1)
        cum = srt.softmax(-1).cumsum(-1)
        rm = cum <= 1 - top_p
        rm[..., -1] = False
        logits.scatter_(-1, order, srt.masked_fill(rm, -math.inf))
    probs = logits.softmax(-1).reshape(-1, V)
    return torch.multinomial(probs, 1, generator=generator).reshape(B, n)
