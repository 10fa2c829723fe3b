"""PyTorch modules for a small LlamaGen-architecture model: the VQ-16 tokenizer (VQModel) and the class-conditional
raster GPT, written from shared/spec/raster.md (§1-§5, §8) and shared/reference/raster_numpy.py.

State-dict names are exactly the names argen's loaders read (tokenizer/vq16_load.c, generator/llamagen_load.c):
  tokenizer: encoder.conv_in, encoder.conv_blocks.{i}.res.{j}.{norm1,conv1,norm2,conv2,nin_shortcut},
             encoder.conv_blocks.{last}.attn.{j}.{norm,q,k,v,proj_out}, encoder.conv_blocks.{i}.downsample.conv,
             encoder.mid.{0,1,2}, encoder.norm_out, encoder.conv_out, the same for decoder (upsample.conv, attention at
             decoder level 0, num_res_blocks + 1 blocks per level), quant_conv, post_quant_conv,
             quantize.embedding.weight (raw rows; L2-normalised when used).
  GPT:       cls_embedding.embedding_table.weight [num_classes + 1, D], tok_embeddings.weight, layers.{i}.
             {attention_norm, attention.wqkv, attention.wo, ffn_norm, feed_forward.{w1,w2,w3}}, norm, output.
The forward passes follow the numpy reference: GroupNorm eps 1e-6, asymmetric downsample padding, AttnBlock scale
C^-1/2, RMSNorm eps 1e-5, 2D RoPE (interleaved pairs, first half rows, second half columns, class position zeros),
SwiGLU hidden width int(8D/3) rounded up to a multiple of 256, no biases in the GPT.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GN_EPS = 1e-6


# ---------------------------------------------------------------------------------------------------- tokenizer
class ResnetBlock(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=GN_EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)
        else:
            self.nin_shortcut = None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=GN_EPS)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n = self.norm(x)
        B, C, H, W = x.shape
        q = self.q(n).reshape(B, C, H * W)
        k = self.k(n).reshape(B, C, H * W)
        v = self.v(n).reshape(B, C, H * W)
        a = torch.softmax(torch.einsum('bci,bcj->bij', q, k) * C ** -0.5, dim=-1)
        h = torch.einsum('bcj,bij->bci', v, a).reshape(B, C, H, W)
        return x + self.proj_out(h)


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
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Level(nn.Module):
    """conv_blocks.{i}: res.{j}, attn.{j} (after res j), then downsample or upsample."""

    def __init__(self, cin, cout, n_res, attn, groups, resample=None):
        super().__init__()
        self.res = nn.ModuleList()
        self.attn = nn.ModuleList()
        for _ in range(n_res):
            self.res.append(ResnetBlock(cin, cout, groups))
            cin = cout
            if attn:
                self.attn.append(AttnBlock(cout, groups))
        if resample == 'down':
            self.downsample = Downsample(cout)
        elif resample == 'up':
            self.upsample = Upsample(cout)

    def forward(self, h):
        for j, r in enumerate(self.res):
            h = r(h)
            if len(self.attn):
                h = self.attn[j](h)
        if hasattr(self, 'downsample'):
            h = self.downsample(h)
        if hasattr(self, 'upsample'):
            h = self.upsample(h)
        return h


def mid_block(c, groups):
    return nn.ModuleList([ResnetBlock(c, c, groups), AttnBlock(c, groups), ResnetBlock(c, c, groups)])


class Encoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, groups):
        super().__init__()
        L = len(ch_mult)
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        self.conv_blocks = nn.ModuleList()
        cin = ch
        for i in range(L):
            cout = ch * ch_mult[i]
            self.conv_blocks.append(Level(cin, cout, num_res_blocks, i == L - 1, groups,
                                          'down' if i != L - 1 else None))
            cin = cout
        self.mid = mid_block(cin, groups)
        self.norm_out = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv_out = nn.Conv2d(cin, z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.conv_blocks:
            h = lv(h)
        for m in self.mid:
            h = m(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, ch, ch_mult, num_res_blocks, z_channels, groups):
        super().__init__()
        L = len(ch_mult)
        cin = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, cin, 3, 1, 1)
        self.mid = mid_block(cin, groups)
        self.conv_blocks = nn.ModuleList()
        for i in range(L):
            cout = ch * ch_mult[L - 1 - i]
            self.conv_blocks.append(Level(cin, cout, num_res_blocks + 1, i == 0, groups,
                                          'up' if i != L - 1 else None))
            cin = cout
        self.norm_out = nn.GroupNorm(groups, cin, eps=GN_EPS)
        self.conv_out = nn.Conv2d(cin, 3, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        for m in self.mid:
            h = m(h)
        for lv in self.conv_blocks:
            h = lv(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def l2n(x):
    return F.normalize(x, p=2, dim=-1, eps=1e-12)


class VectorQuantizer(nn.Module):
    """L2-normalised codebook (codebook_l2_norm True). Training losses: codebook ||sg(z)-e||^2 and commitment
    beta * ||z-sg(e)||^2 on the normalised vectors, straight-through gradient."""

    def __init__(self, n_e, e_dim, beta=0.25):
        super().__init__()
        self.embedding = nn.Embedding(n_e, e_dim)
        self.embedding.weight.data.uniform_(-1.0 / n_e, 1.0 / n_e)
        self.beta = beta

    def forward(self, z):  # z [B, D, g, g]
        B, D, H, W = z.shape
        zf = l2n(z.permute(0, 2, 3, 1).reshape(-1, D))
        E = l2n(self.embedding.weight)
        d = (zf ** 2).sum(1, keepdim=True) + (E ** 2).sum(1)[None] - 2 * zf @ E.t()
        idx = d.argmin(1)
        zq = E[idx]
        codebook_loss = F.mse_loss(zq, zf.detach())
        commit_loss = F.mse_loss(zf, zq.detach())
        zq = zf + (zq - zf).detach()
        zq = zq.reshape(B, H, W, D).permute(0, 3, 1, 2)
        return zq, idx.reshape(B, H * W), codebook_loss + self.beta * commit_loss, zf


class VQModel(nn.Module):
    def __init__(self, ch=16, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, z_channels=32, codebook_size=512,
                 codebook_embed_dim=8, norm_groups=16):
        super().__init__()
        self.cfg = dict(ch=ch, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks, z_channels=z_channels,
                        codebook_size=codebook_size, codebook_embed_dim=codebook_embed_dim, norm_groups=norm_groups)
        self.encoder = Encoder(ch, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.decoder = Decoder(ch, ch_mult, num_res_blocks, z_channels, norm_groups)
        self.quant_conv = nn.Conv2d(z_channels, codebook_embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(codebook_embed_dim, z_channels, 1)
        self.quantize = VectorQuantizer(codebook_size, codebook_embed_dim)

    def encode(self, x):
        return self.quantize(self.quant_conv(self.encoder(x)))

    def forward(self, x):
        zq, idx, qloss, zf = self.encode(x)
        return self.decoder(self.post_quant_conv(zq)), idx, qloss, zf

    def decode_code(self, tokens, g):
        E = l2n(self.quantize.embedding.weight)
        B = tokens.shape[0]
        zq = E[tokens].reshape(B, g, g, -1).permute(0, 3, 1, 2)
        return self.decoder(self.post_quant_conv(zq))


# ---------------------------------------------------------------------------------------------------------- GPT
def ffn_hidden(D):
    h = int(2 * (4 * D) / 3)
    return (h + 255) // 256 * 256


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_table(grid, hd, base=10000.0, cls_token_num=1):
    """[T + g*g, hd/2, 2] (cos, sin); class rows zero; first hd/4 pairs = row, next hd/4 = column."""
    half, Q = hd // 2, hd // 4
    f = 1.0 / (base ** (torch.arange(0, half, 2)[:Q].float() / half))
    t = torch.arange(grid, dtype=torch.float32)
    fr = torch.outer(t, f)  # [g, Q]
    ang = torch.cat([fr[:, None, :].expand(grid, grid, Q), fr[None, :, :].expand(grid, grid, Q)], -1)
    ang = ang.reshape(grid * grid, half)
    tab = torch.stack([torch.cos(ang), torch.sin(ang)], -1)
    return torch.cat([torch.zeros(cls_token_num, half, 2), tab], 0)


def apply_rope(x, tab):
    """x [B, S, H, hd]; tab [S, hd/2, 2]."""
    c = tab[None, :, None, :, 0]
    s = tab[None, :, None, :, 1]
    xe, xo = x[..., 0::2], x[..., 1::2]
    return torch.stack([xe * c - xo * s, xo * c + xe * s], -1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, D, H):
        super().__init__()
        self.H = H
        self.wqkv = nn.Linear(D, 3 * D, bias=False)
        self.wo = nn.Linear(D, D, bias=False)

    def forward(self, x, tab):
        B, S, D = x.shape
        H, hd = self.H, D // self.H
        q, k, v = self.wqkv(x).split(D, dim=-1)
        q = apply_rope(q.reshape(B, S, H, hd), tab).transpose(1, 2)
        k = apply_rope(k.reshape(B, S, H, hd), tab).transpose(1, 2)
        v = v.reshape(B, S, H, hd).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(hd)
        mask = torch.ones(S, S, dtype=torch.bool, device=x.device).tril()
        s = s.masked_fill(~mask, float('-inf'))
        o = torch.softmax(s, -1) @ v
        return self.wo(o.transpose(1, 2).reshape(B, S, D))


class FeedForward(nn.Module):
    def __init__(self, D, Fh):
        super().__init__()
        self.w1 = nn.Linear(D, Fh, bias=False)
        self.w2 = nn.Linear(Fh, D, bias=False)
        self.w3 = nn.Linear(D, Fh, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, D, H, Fh):
        super().__init__()
        self.attention_norm = RMSNorm(D)
        self.attention = Attention(D, H)
        self.ffn_norm = RMSNorm(D)
        self.feed_forward = FeedForward(D, Fh)

    def forward(self, x, tab):
        h = x + self.attention(self.attention_norm(x), tab)
        return h + self.feed_forward(self.ffn_norm(h))


class LabelEmbedder(nn.Module):
    def __init__(self, num_classes, D):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, D)


class GPT(nn.Module):
    def __init__(self, vocab_size=512, n_layer=6, n_head=2, dim=128, num_classes=10, grid=8, class_dropout=0.1):
        super().__init__()
        self.cfg = dict(vocab_size=vocab_size, n_layer=n_layer, n_head=n_head, dim=dim, num_classes=num_classes,
                        grid=grid, class_dropout=class_dropout)
        self.num_classes = num_classes
        self.grid = grid
        self.class_dropout = class_dropout
        self.cls_embedding = LabelEmbedder(num_classes, dim)
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.layers = nn.ModuleList([Block(dim, n_head, ffn_hidden(dim)) for _ in range(n_layer)])
        self.norm = RMSNorm(dim)
        self.output = nn.Linear(dim, vocab_size, bias=False)
        self.register_buffer('freqs_cis', rope_table(grid, dim // n_head), persistent=False)
        self.apply(self._init)
        nn.init.constant_(self.output.weight, 0)  # as the official initialize_weights

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_embeds(self, x):
        S = x.shape[1]
        tab = self.freqs_cis[:S]
        for layer in self.layers:
            x = layer(x, tab)
        return self.output(self.norm(x)).float()

    def forward(self, labels, tokens):
        """Teacher forcing: labels [B], tokens [B, N] -> logits [B, N, V] (row p predicts image token p)."""
        if self.training and self.class_dropout > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.class_dropout
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        x = torch.cat([self.cls_embedding.embedding_table(labels)[:, None], self.tok_embeddings(tokens[:, :-1])], 1)
        return self.forward_embeds(x)

    @torch.no_grad()
    def generate_greedy(self, labels, cfg_scale, cfg_interval=-1.0):
        """Greedy (top_k 1) official generate: cond half first, uncond (label num_classes) second; CFG on every
        step while cfg_scale > 1 (after decode index cfg_interval: cond logits only). Recomputes the prefix each
        step (the same as the positional KV cache in plain raster order)."""
        B = labels.shape[0]
        N = self.grid * self.grid
        use_cfg = cfg_scale > 1.0
        lab = torch.cat([labels, torch.full_like(labels, self.num_classes)]) if use_cfg else labels
        x = self.cls_embedding.embedding_table(lab)[:, None]
        out = []
        for i in range(N):
            logits = self.forward_embeds(x)[:, -1]
            if use_cfg:
                c, u = logits[:B], logits[B:]
                if cfg_interval > -1 and i - 1 > cfg_interval:  # decode index i-1 (the prefill is step 0)
                    logits = c
                else:
                    logits = u + (c - u) * cfg_scale
            tok = logits.argmax(-1)
            out.append(tok)
            e = self.tok_embeddings(torch.cat([tok, tok]) if use_cfg else tok)[:, None]
            x = torch.cat([x, e], 1)
        return torch.stack(out, 1)


def fp16_state(module, skip=()):
    """state dict rounded to float16 (the exported dtype), buffers that are not weights skipped."""
    return {k: v.detach().to(torch.float16) for k, v in module.state_dict().items() if k not in skip}


def load_fp16_into(module, sd16):
    module.load_state_dict({k: v.float() for k, v in sd16.items()}, strict=False)
