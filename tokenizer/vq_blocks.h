// The taming-VQGAN building blocks shared by VAR's VQVAE and LlamaGen's VQ-16: res blocks (GroupNorm+SiLU+conv3x3
// twice, 1x1 shortcut when the width changes), the single-head attention block, 2x down/up-sampling, the conv_in and
// norm_out/conv_out heads, and the registration of their weights in a name table. Each tokenizer keeps its own level
// layout (which levels, how many blocks, their names) and its quantizer.
// ref: VAR models/basic_vae.py ResnetBlock, AttnBlock, Downsample2x, Upsample2x; LlamaGen
//      tokenizer/tokenizer_image/vq_model.py ResnetBlock, AttnBlock, Downsample, Upsample (both from taming)
// Dims: B batch, H/W spatial, C channels, T = H*W positions. Feature maps are NHWC, in four ping-pong buffers.
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"
#include "kernels/weights.h"

#define VQ_MAX_LEVELS 8
#define VQ_MAX_RES 4  // res blocks per level (the decoder has num_res_blocks + 1)

typedef struct {
    KtTensor norm1_w, norm1_b, conv1_w, conv1_b, norm2_w, norm2_b, conv2_w, conv2_b;
    KtTensor nin_w, nin_b;  // 1x1 shortcut as a Linear (cout, cin), only when cin != cout
    int cin, cout;
} VqResBlock;

typedef struct {
    KtTensor norm_w, norm_b;
    KtTensor qkv_w, qkv_b;                  // VAR: q, k, v as one 1x1 conv, a Linear (3C, C); else data NULL
    KtTensor q_w, q_b, k_w, k_b, v_w, v_b;  // LlamaGen: three 1x1 convs as Linears (C, C); else data NULL
    KtTensor proj_w, proj_b;                // proj_out, a Linear (C, C)
    float scale;                            // softmax scale C^-1/2 (VqLayout.scale_f32 says how it is rounded)
} VqAttn;

typedef struct {
    VqResBlock res[VQ_MAX_RES];
    VqAttn attn[VQ_MAX_RES];  // attn[j] follows res[j] for j < n_attn
    int n_res, n_attn;
    KtTensor resample_w, resample_b;  // downsample (encoder) / upsample (decoder) conv, if present
    bool has_resample;
} VqLevel;

typedef struct {
    KtTensor conv_in_w, conv_in_b;
    VqLevel level[VQ_MAX_LEVELS];
    VqResBlock mid_res1, mid_res2;
    VqAttn mid_attn;
    KtTensor norm_out_w, norm_out_b, conv_out_w, conv_out_b;
} VqCoder;

// How a tokenizer's checkpoint names the shared blocks and how its port computes them.
typedef struct {
    const char *res;     // a level's res-block list: "block" (VAR) / "res" (LlamaGen)
    const char *mid[3];  // mid res, attention, res: "mid.block_1", "mid.attn_1", "mid.block_2" / "mid.0", ...
    bool fused_qkv;      // attention q, k, v as one 1x1 conv "qkv" (VAR) or three, "q", "k", "v" (LlamaGen)
    bool scale_f32;      // softmax scale as 1/sqrtf((float)C) (VAR's port) or (float)(1/sqrt((double)C))
                         // (LlamaGen's); they differ in the last bit for many C, each is kept bit-identical
} VqLayout;

// ---- weight table (state-dict names verbatim: "<p>.weight", "<p>.bias")
// k x k conv: p.weight (co, ci, k, k), p.bias (co).
KtStatus vq_conv_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t co, int64_t ci, int k, const char *p);
// 1x1 conv kept as a Linear: p.weight (co, ci, 1, 1) -> (co, ci), p.bias (co).
KtStatus vq_1x1_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t co, int64_t ci, const char *p);
// GroupNorm: p.weight (c), p.bias (c).
KtStatus vq_norm_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t c, const char *p);
// p.norm1, p.conv1, p.norm2, p.conv2 and, when cin != cout, p.nin_shortcut.
KtStatus vq_res_add(KtWeightTable *t, VqResBlock *r, int cin, int cout, const char *p);
// p.norm, then p.qkv or p.q, p.k, p.v (ly->fused_qkv), then p.proj_out; sets the softmax scale.
KtStatus vq_attn_add(KtWeightTable *t, const VqLayout *ly, VqAttn *a, int c, const char *p);
// A level "p": n_res res blocks "p.<ly->res>.j" (cin -> cout, then cout -> cout), the first n_attn of them each
// followed by attention "p.attn.j", then "p.<resample>.conv" (3x3, cout -> cout) unless resample is NULL.
KtStatus vq_level_add(KtWeightTable *t, const VqLayout *ly, VqLevel *lv, const char *p, int cin, int cout, int n_res,
                      int n_attn, const char *resample);
// "<coder>.<ly->mid[0..2]>": res, attention, res at width c.
KtStatus vq_mid_add(KtWeightTable *t, const VqLayout *ly, VqCoder *cd, int c, const char *coder);
// "<coder>.norm_out" (cin) and "<coder>.conv_out" (3x3, cin -> cout).
KtStatus vq_head_add(KtWeightTable *t, VqCoder *cd, int cin, int cout, const char *coder);

// ---- forward
// A feature map in ping-pong buffer `buf`: (B, H, W, C).
typedef struct {
    int buf;
    int64_t H, W, C;
} VqFmap;

// The workspace the blocks run in; every pointer is borrowed from the tokenizer that owns the arena.
typedef struct {
    KtBackend *be;
    KtTensor *act;    // [4] ping-pong maps, each (max_batch, max H*W*C), in the backend's map dtype
    int norm_groups;
    // attention scratch, float32, for the attention resolution:
    KtTensor *attn_x;           // (B, T, C) copy of the input map; used only with 16-bit maps
    KtTensor *attn_t;           // (B, T, C) normed input, then projection; data NULL: a free ping-pong map
                                // (only valid with float32 maps)
    KtTensor *qkv;              // (B, T, 3C) for fused q, k, v; NULL otherwise
    KtTensor *q, *k, *v, *att;  // (B, T, C) each
} VqMaps;

// View of ping-pong buffer `buf` as (B, H, W, C).
KtTensor vq_map_view(const VqMaps *w, int buf, int64_t B, int64_t H, int64_t W, int64_t C);
// 3x3 conv, stride 1, zero padding 1. y: (B, H, W, co), x: (B, H, W, ci).
KtStatus vq_conv3x3(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
// conv_in(x) into map f: x (B, f.H, f.W, cin) -> (B, f.H, f.W, f.C). x must not be buffer f.buf.
KtStatus vq_conv_in(const VqMaps *w, const VqCoder *cd, int64_t B, const KtTensor *x, VqFmap f);
// One res block: the result lands in another buffer (*f updated, C becomes r->cout).
KtStatus vq_res_forward(const VqMaps *w, const VqResBlock *r, int64_t B, VqFmap *f);
// x += proj_out(attention(q, k, v of norm(x))), in place on map f.
KtStatus vq_attn_forward(const VqMaps *w, const VqAttn *a, int64_t B, VqFmap f);
// mid: res, attention, res.
KtStatus vq_mid_forward(const VqMaps *w, const VqCoder *cd, int64_t B, VqFmap *f);
// An encoder level: its res (+ attention) blocks, then Downsample (H, W halve) if it has one.
KtStatus vq_level_down(const VqMaps *w, const VqLevel *lv, int64_t B, VqFmap *f);
// A decoder level: its res (+ attention) blocks, then Upsample (H, W double) if it has one.
KtStatus vq_level_up(const VqMaps *w, const VqLevel *lv, int64_t B, VqFmap *f);
// conv_out(silu(norm_out(x))) of map f into y (B, f.H, f.W, cout); y must not be a ping-pong buffer.
KtStatus vq_head_forward(const VqMaps *w, const VqCoder *cd, int64_t B, VqFmap f, KtTensor *y);
