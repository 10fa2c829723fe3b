// The taming-VQGAN blocks of both tokenizers: their forward passes over the ping-pong feature maps and the
// registration of their weights.
// ref: VAR models/basic_vae.py ResnetBlock, AttnBlock, Downsample2x, Upsample2x; LlamaGen
//      tokenizer/tokenizer_image/vq_model.py ResnetBlock, AttnBlock, Downsample, Upsample
// Dims: B batch, H/W spatial, C channels, T = H*W positions. Maps are NHWC in the backend's map dtype (bf16/fp16 on
// CUDA with a 16-bit --dtype); the attention block runs in float32.
#include <math.h>
#include <stdio.h>

#include "kernels/ops.h"
#include "vq_blocks.h"

#define GN_EPS 1e-6f  // Normalize(): GroupNorm(num_groups, eps=1e-6) in both references

// ------------------------------------------------------------------------------------------------- name table
#define VEC(dst, n, ...) KT_TRY(kt_wtab_add(t, (dst), KT_W_PLAIN, 1, (int64_t[]){(n)}, __VA_ARGS__))

KtStatus vq_conv_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t co, int64_t ci, int k, const char *p) {
    KT_TRY(kt_wtab_add(t, w, KT_W_CONV, 4, (int64_t[]){co, ci, k, k}, "%s.weight", p));
    VEC(b, co, "%s.bias", p);
    return KT_OK;
}

KtStatus vq_1x1_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t co, int64_t ci, const char *p) {
    KT_TRY(kt_wtab_add(t, w, KT_W_CONV1X1_LINEAR, 4, (int64_t[]){co, ci, 1, 1}, "%s.weight", p));
    VEC(b, co, "%s.bias", p);
    return KT_OK;
}

KtStatus vq_norm_add(KtWeightTable *t, KtTensor *w, KtTensor *b, int64_t c, const char *p) {
    VEC(w, c, "%s.weight", p);
    VEC(b, c, "%s.bias", p);
    return KT_OK;
}

KtStatus vq_res_add(KtWeightTable *t, VqResBlock *r, int cin, int cout, const char *p) {
    char s[192];
    r->cin = cin;
    r->cout = cout;
    snprintf(s, sizeof s, "%s.norm1", p);
    KT_TRY(vq_norm_add(t, &r->norm1_w, &r->norm1_b, cin, s));
    snprintf(s, sizeof s, "%s.conv1", p);
    KT_TRY(vq_conv_add(t, &r->conv1_w, &r->conv1_b, cout, cin, 3, s));
    snprintf(s, sizeof s, "%s.norm2", p);
    KT_TRY(vq_norm_add(t, &r->norm2_w, &r->norm2_b, cout, s));
    snprintf(s, sizeof s, "%s.conv2", p);
    KT_TRY(vq_conv_add(t, &r->conv2_w, &r->conv2_b, cout, cout, 3, s));
    if (cin == cout) return KT_OK;
    snprintf(s, sizeof s, "%s.nin_shortcut", p);
    return vq_1x1_add(t, &r->nin_w, &r->nin_b, cout, cin, s);
}

KtStatus vq_attn_add(KtWeightTable *t, const VqLayout *ly, VqAttn *a, int c, const char *p) {
    char s[192];
    a->scale = ly->scale_f32 ? 1.0f / sqrtf((float)c) : (float)(1.0 / sqrt((double)c));
    snprintf(s, sizeof s, "%s.norm", p);
    KT_TRY(vq_norm_add(t, &a->norm_w, &a->norm_b, c, s));
    if (ly->fused_qkv) {
        snprintf(s, sizeof s, "%s.qkv", p);
        KT_TRY(vq_1x1_add(t, &a->qkv_w, &a->qkv_b, 3 * (int64_t)c, c, s));
    } else {
        struct { KtTensor *w, *b; const char *name; } conv[] = {
            {&a->q_w, &a->q_b, "q"}, {&a->k_w, &a->k_b, "k"}, {&a->v_w, &a->v_b, "v"}};
        for (int i = 0; i < 3; i++) {
            snprintf(s, sizeof s, "%s.%s", p, conv[i].name);
            KT_TRY(vq_1x1_add(t, conv[i].w, conv[i].b, c, c, s));
        }
    }
    snprintf(s, sizeof s, "%s.proj_out", p);
    return vq_1x1_add(t, &a->proj_w, &a->proj_b, c, c, s);
}

KtStatus vq_level_add(KtWeightTable *t, const VqLayout *ly, VqLevel *lv, const char *p, int cin, int cout, int n_res,
                      int n_attn, const char *resample) {
    char s[160];
    if (n_res < 0 || n_res > VQ_MAX_RES || n_attn < 0 || n_attn > n_res)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: %d res blocks (%d with attention) per level, at most %d supported",
                       p, n_res, n_attn, VQ_MAX_RES);
    lv->n_res = n_res;
    lv->n_attn = n_attn;
    for (int j = 0; j < n_res; j++, cin = cout) {
        snprintf(s, sizeof s, "%s.%s.%d", p, ly->res, j);
        KT_TRY(vq_res_add(t, &lv->res[j], cin, cout, s));
        if (j < n_attn) {
            snprintf(s, sizeof s, "%s.attn.%d", p, j);
            KT_TRY(vq_attn_add(t, ly, &lv->attn[j], cout, s));
        }
    }
    if (!(lv->has_resample = resample != NULL)) return KT_OK;
    snprintf(s, sizeof s, "%s.%s.conv", p, resample);
    return vq_conv_add(t, &lv->resample_w, &lv->resample_b, cout, cout, 3, s);
}

KtStatus vq_mid_add(KtWeightTable *t, const VqLayout *ly, VqCoder *cd, int c, const char *coder) {
    char p[96];
    snprintf(p, sizeof p, "%s.%s", coder, ly->mid[0]);
    KT_TRY(vq_res_add(t, &cd->mid_res1, c, c, p));
    snprintf(p, sizeof p, "%s.%s", coder, ly->mid[1]);
    KT_TRY(vq_attn_add(t, ly, &cd->mid_attn, c, p));
    snprintf(p, sizeof p, "%s.%s", coder, ly->mid[2]);
    return vq_res_add(t, &cd->mid_res2, c, c, p);
}

KtStatus vq_head_add(KtWeightTable *t, VqCoder *cd, int cin, int cout, const char *coder) {
    char p[96];
    snprintf(p, sizeof p, "%s.norm_out", coder);
    KT_TRY(vq_norm_add(t, &cd->norm_out_w, &cd->norm_out_b, cin, p));
    snprintf(p, sizeof p, "%s.conv_out", coder);
    return vq_conv_add(t, &cd->conv_out_w, &cd->conv_out_b, cout, cin, 3, p);
}

// ---------------------------------------------------------------------------------------------------- forward
KtTensor vq_map_view(const VqMaps *w, int buf, int64_t B, int64_t H, int64_t W, int64_t C) {
    return kt_reshape4(&w->act[buf], B, H, W, C);
}
static KtTensor fview(const VqMaps *w, VqFmap f, int64_t B) { return vq_map_view(w, f.buf, B, f.H, f.W, f.C); }

// The three buffers other than `used`, in order.
static void others(int used, int out[3]) {
    for (int i = 0, n = 0; i < 4; i++)
        if (i != used) out[n++] = i;
}

KtStatus vq_conv3x3(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    return kt_conv2d(be, y, x, w, b, 1, (int[]){1, 1, 1, 1});
}

// A 1x1 conv stored as a Linear (cout, cin): kt_linear on float32 maps, a 1x1 kt_conv2d on 16-bit maps.
static KtStatus conv1x1(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    if (x->dtype == KT_F32 && y->dtype == KT_F32) return kt_linear(be, y, x, w, b);
    KtTensor w4 = kt_reshape4(w, w->shape[0], 1, 1, w->shape[1]);  // (cout, 1, 1, cin)
    return kt_conv2d(be, y, x, &w4, b, 1, (int[]){0, 0, 0, 0});
}

KtStatus vq_conv_in(const VqMaps *w, const VqCoder *cd, int64_t B, const KtTensor *x, VqFmap f) {
    KtTensor y = fview(w, f, B);  // (B, H, W, C)
    return vq_conv3x3(w->be, &y, x, &cd->conv_in_w, &cd->conv_in_b);
}

// out = shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x)))))).
KtStatus vq_res_forward(const VqMaps *w, const VqResBlock *r, int64_t B, VqFmap *f) {
    KtBackend *be = w->be;
    int o[3];
    others(f->buf, o);
    KtTensor x = fview(w, *f, B);                              // (B, H, W, cin)
    KtTensor t = vq_map_view(w, o[0], B, f->H, f->W, r->cin);  // (B, H, W, cin)
    KtTensor h = vq_map_view(w, o[1], B, f->H, f->W, r->cout); // (B, H, W, cout)
    KtTensor y = vq_map_view(w, o[2], B, f->H, f->W, r->cout); // (B, H, W, cout)
    KT_TRY(kt_group_norm_silu(be, &t, &x, &r->norm1_w, &r->norm1_b, w->norm_groups, GN_EPS));
    KT_TRY(vq_conv3x3(be, &h, &t, &r->conv1_w, &r->conv1_b));
    KtTensor t2 = vq_map_view(w, o[0], B, f->H, f->W, r->cout);  // (B, H, W, cout)
    KT_TRY(kt_group_norm_silu(be, &t2, &h, &r->norm2_w, &r->norm2_b, w->norm_groups, GN_EPS));
    KT_TRY(vq_conv3x3(be, &y, &t2, &r->conv2_w, &r->conv2_b));
    if (r->nin_w.data) {
        KT_TRY(conv1x1(be, &h, &x, &r->nin_w, &r->nin_b));  // (B, H, W, cout)
        KT_TRY(kt_add(be, &y, &y, &h));
    } else {
        KT_TRY(kt_add(be, &y, &y, &x));
    }
    f->buf = o[2];
    f->C = r->cout;
    return KT_OK;
}

// x += proj_out(softmax(q k^T * scale) v) with q, k, v = 1x1 convs of norm(x); one head over all T positions.
// Runs in float32: 16-bit maps are converted into attn_x first and back at the end (small: the lowest resolution).
KtStatus vq_attn_forward(const VqMaps *w, const VqAttn *a, int64_t B, VqFmap f) {
    KtBackend *be = w->be;
    int o[3];
    others(f.buf, o);
    int64_t T = f.H * f.W, C = f.C;
    KtTensor map = fview(w, f, B);  // (B, H, W, C) in the map dtype
    bool f32 = map.dtype == KT_F32;
    KtTensor x = kt_reshape3(f32 ? &w->act[f.buf] : w->attn_x, B, T, C);             // (B, T, C)
    KtTensor t = kt_reshape3(w->attn_t->data ? w->attn_t : &w->act[o[0]], B, T, C);  // (B, T, C)
    KtTensor x4 = kt_reshape4(&x, B, f.H, f.W, C), t4 = kt_reshape4(&t, B, f.H, f.W, C);
    if (!f32) KT_TRY(kt_convert(be, &x4, &map));
    KtTensor q4 = kt_reshape4(w->q, B, 1, T, C), k4 = kt_reshape4(w->k, B, 1, T, C);  // (B, 1, T, C)
    KtTensor v4 = kt_reshape4(w->v, B, 1, T, C);                                       // (B, 1, T, C)
    KtTensor att = kt_reshape3(w->att, B, T, C);                                       // (B, T, C)
    KT_TRY(kt_group_norm(be, &t4, &x4, &a->norm_w, &a->norm_b, w->norm_groups, GN_EPS));
    if (a->qkv_w.data) {
        KtTensor qkv = kt_reshape3(w->qkv, B, T, 3 * C);  // (B, T, 3C)
        KT_TRY(kt_linear(be, &qkv, &t, &a->qkv_w, &a->qkv_b));
        KT_TRY(kt_split_qkv_heads(be, &q4, &k4, &v4, &qkv));
    } else {
        KtTensor q = kt_reshape3(w->q, B, T, C), k = kt_reshape3(w->k, B, T, C), v = kt_reshape3(w->v, B, T, C);
        KT_TRY(kt_linear(be, &q, &t, &a->q_w, &a->q_b));  // (B, T, C)
        KT_TRY(kt_linear(be, &k, &t, &a->k_w, &a->k_b));  // (B, T, C)
        KT_TRY(kt_linear(be, &v, &t, &a->v_w, &a->v_b));  // (B, T, C)
    }
    KT_TRY(kt_attention(be, &att, &q4, &k4, &v4, T, NULL, a->scale));
    KT_TRY(kt_linear(be, &t, &att, &a->proj_w, &a->proj_b));  // (B, T, C)
    KT_TRY(kt_add(be, &x, &x, &t));
    return f32 ? KT_OK : kt_convert(be, &map, &x4);
}

KtStatus vq_mid_forward(const VqMaps *w, const VqCoder *cd, int64_t B, VqFmap *f) {
    KT_TRY(vq_res_forward(w, &cd->mid_res1, B, f));
    KT_TRY(vq_attn_forward(w, &cd->mid_attn, B, *f));
    return vq_res_forward(w, &cd->mid_res2, B, f);
}

// Res blocks (each followed by its attention block, if the level has them) of one level.
static KtStatus level_blocks(const VqMaps *w, const VqLevel *lv, int64_t B, VqFmap *f) {
    for (int j = 0; j < lv->n_res; j++) {
        KT_TRY(vq_res_forward(w, &lv->res[j], B, f));
        if (j < lv->n_attn) KT_TRY(vq_attn_forward(w, &lv->attn[j], B, *f));
    }
    return KT_OK;
}

KtStatus vq_level_down(const VqMaps *w, const VqLevel *lv, int64_t B, VqFmap *f) {
    KT_TRY(level_blocks(w, lv, B, f));
    if (!lv->has_resample) return KT_OK;
    // Downsample: zero pad bottom/right by one, 3x3 stride 2, no other padding
    int o[3];
    others(f->buf, o);
    KtTensor x = fview(w, *f, B), y = vq_map_view(w, o[0], B, f->H / 2, f->W / 2, f->C);  // (B, H/2, W/2, C)
    KT_TRY(kt_conv2d(w->be, &y, &x, &lv->resample_w, &lv->resample_b, 2, (int[]){0, 1, 0, 1}));
    *f = (VqFmap){o[0], f->H / 2, f->W / 2, f->C};
    return KT_OK;
}

KtStatus vq_level_up(const VqMaps *w, const VqLevel *lv, int64_t B, VqFmap *f) {
    KT_TRY(level_blocks(w, lv, B, f));
    if (!lv->has_resample) return KT_OK;
    // Upsample: nearest 2x, then 3x3 conv
    int o[3];
    others(f->buf, o);
    KtTensor x = fview(w, *f, B), u = vq_map_view(w, o[0], B, 2 * f->H, 2 * f->W, f->C);  // (B, 2H, 2W, C)
    KtTensor y = vq_map_view(w, o[1], B, 2 * f->H, 2 * f->W, f->C);                      // (B, 2H, 2W, C)
    KT_TRY(kt_upsample_nearest2x(w->be, &u, &x));
    KT_TRY(vq_conv3x3(w->be, &y, &u, &lv->resample_w, &lv->resample_b));
    *f = (VqFmap){o[1], 2 * f->H, 2 * f->W, f->C};
    return KT_OK;
}

KtStatus vq_head_forward(const VqMaps *w, const VqCoder *cd, int64_t B, VqFmap f, KtTensor *y) {
    int o[3];
    others(f.buf, o);
    KtTensor x = fview(w, f, B), t = vq_map_view(w, o[0], B, f.H, f.W, f.C);  // (B, H, W, C)
    KT_TRY(kt_group_norm_silu(w->be, &t, &x, &cd->norm_out_w, &cd->norm_out_b, w->norm_groups, GN_EPS));
    return vq_conv3x3(w->be, y, &t, &cd->conv_out_w, &cd->conv_out_b);
}
