// VAR VQVAE encoder and decoder forward passes (NHWC).
// ref: VAR models/basic_vae.py Encoder.forward, Decoder.forward, ResnetBlock, AttnBlock, Downsample2x, Upsample2x
// Dims: B batch, H/W spatial, C channels. Feature maps live in four ping-pong buffers m->act[0..3], in the backend's
// map dtype (bf16/fp16 on CUDA with a 16-bit --dtype); the latents and the output image stay float32.
#include <math.h>

#include "kernels/ops.h"
#include "var_vqvae.h"

#define GN_EPS 1e-6f

// A feature map in one of the ping-pong buffers.
typedef struct {
    int buf;
    int64_t H, W, C;
} Fmap;

static KtTensor view(VarVqvae *m, int buf, int64_t B, int64_t H, int64_t W, int64_t C) {
    return kt_reshape4(&m->act[buf], B, H, W, C);
}
static KtTensor fview(VarVqvae *m, Fmap f, int64_t B) { return view(m, f.buf, B, f.H, f.W, f.C); }

// The three buffers other than `used`, in order.
static void others(int used, int out[3]) {
    for (int i = 0, n = 0; i < 4; i++)
        if (i != used) out[n++] = i;
}

static KtStatus conv(VarVqvae *m, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int k) {
    int p = k / 2;
    return kt_conv2d(m->be, y, x, w, b, 1, (int[]){p, p, p, p});
}

// out = shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x)))))); the result lands in a new buffer (*f updated).
static KtStatus resblock(VarVqvae *m, const VqResBlock *r, int64_t B, Fmap *f) {
    KtBackend *be = m->be;
    int o[3];
    others(f->buf, o);
    KtTensor x = fview(m, *f, B);                       // (B, H, W, cin)
    KtTensor t = view(m, o[0], B, f->H, f->W, r->cin);  // (B, H, W, cin)
    KtTensor h = view(m, o[1], B, f->H, f->W, r->cout); // (B, H, W, cout)
    KtTensor y = view(m, o[2], B, f->H, f->W, r->cout); // (B, H, W, cout)
    KT_TRY(kt_group_norm_silu(be, &t, &x, &r->norm1_w, &r->norm1_b, m->config.norm_groups, GN_EPS));
    KT_TRY(conv(m, &h, &t, &r->conv1_w, &r->conv1_b, 3));
    KtTensor t2 = view(m, o[0], B, f->H, f->W, r->cout);
    KT_TRY(kt_group_norm_silu(be, &t2, &h, &r->norm2_w, &r->norm2_b, m->config.norm_groups, GN_EPS));
    KT_TRY(conv(m, &y, &t2, &r->conv2_w, &r->conv2_b, 3));
    if (r->nin_w.data) {  // 1x1 shortcut conv: a Linear over channels (float32 maps) or a 1x1 kt_conv2d (16-bit)
        if (x.dtype == KT_F32) {
            KT_TRY(kt_linear(be, &h, &x, &r->nin_w, &r->nin_b));  // (B, H, W, cout)
        } else {
            KtTensor w = kt_reshape4(&r->nin_w, r->cout, 1, 1, r->cin);  // (cout, 1, 1, cin)
            KT_TRY(kt_conv2d(be, &h, &x, &w, &r->nin_b, 1, (int[]){0, 0, 0, 0}));
        }
        KT_TRY(kt_add(be, &y, &y, &h));
    } else {
        KT_TRY(kt_add(be, &y, &y, &x));
    }
    f->buf = o[2];
    f->C = r->cout;
    return KT_OK;
}

// x += proj_out(attention(qkv(gn(x)))), single head over all H*W positions, scale C^-1/2. In place. Runs in
// float32: 16-bit maps are converted into attn_x first and back at the end (small: the lowest resolution).
static KtStatus attnblock(VarVqvae *m, const VqAttn *a, int64_t B, Fmap f) {
    KtBackend *be = m->be;
    int o[3];
    others(f.buf, o);
    int64_t T = f.H * f.W, C = f.C;
    KtTensor map = fview(m, f, B);                      // (B, H, W, C) in the map dtype
    bool f32 = map.dtype == KT_F32;
    KtTensor x = kt_reshape3(f32 ? &m->act[f.buf] : &m->attn_x, B, T, C);  // (B, T, C)
    KtTensor t = kt_reshape3(f32 ? &m->act[o[0]] : &m->attn_t, B, T, C);   // (B, T, C)
    KtTensor x4 = kt_reshape4(&x, B, f.H, f.W, C), t4 = kt_reshape4(&t, B, f.H, f.W, C);
    if (!f32) KT_TRY(kt_convert(be, &x4, &map));
    KtTensor qkv = kt_reshape3(&m->qkv, B, T, 3 * C);   // (B, T, 3C)
    KtTensor q = kt_reshape4(&m->q, B, 1, T, C), k = kt_reshape4(&m->k, B, 1, T, C), v = kt_reshape4(&m->v, B, 1, T, C);
    KtTensor att = kt_reshape3(&m->att, B, T, C);      // (B, T, C)
    KT_TRY(kt_group_norm(be, &t4, &x4, &a->norm_w, &a->norm_b, m->config.norm_groups, GN_EPS));
    KT_TRY(kt_linear(be, &qkv, &t, &a->qkv_w, &a->qkv_b));
    KT_TRY(kt_split_qkv_heads(be, &q, &k, &v, &qkv));
    KT_TRY(kt_attention(be, &att, &q, &k, &v, T, NULL, 1.0f / sqrtf((float)C)));
    KT_TRY(kt_linear(be, &t, &att, &a->proj_w, &a->proj_b));
    KT_TRY(kt_add(be, &x, &x, &t));
    return f32 ? KT_OK : kt_convert(be, &map, &x4);
}

static KtStatus mid(VarVqvae *m, const VqCoder *cd, int64_t B, Fmap *f) {
    KT_TRY(resblock(m, &cd->mid_block1, B, f));
    KT_TRY(attnblock(m, &cd->mid_attn, B, *f));
    return resblock(m, &cd->mid_block2, B, f);
}

// conv_out(silu(norm_out(x))) into `y`.
static KtStatus head_out(VarVqvae *m, const VqCoder *cd, int64_t B, Fmap f, KtTensor *y) {
    int o[3];
    others(f.buf, o);
    KtTensor x = fview(m, f, B), t = view(m, o[0], B, f.H, f.W, f.C);
    KT_TRY(kt_group_norm_silu(m->be, &t, &x, &cd->norm_out_w, &cd->norm_out_b, m->config.norm_groups, GN_EPS));
    return conv(m, y, &t, &cd->conv_out_w, &cd->conv_out_b, 3);
}

KtStatus vq_var_encode_f(VarVqvae *m, KtTensor *f_out, const KtTensor *img) {
    const VarVqConfig *c = &m->config;
    int64_t B = img->shape[0], S = c->image_size, hl = c->latent_size;
    if (img->ndim != 4 || img->shape[1] != S || img->shape[2] != S || img->shape[3] != 3 || B > m->max_batch)
        return KT_FAIL(KT_ERR_SHAPE, "VQVAE encode: expected images (<=%d, %lld, %lld, 3)", m->max_batch,
                       (long long)S, (long long)S);
    Fmap f = {0, S, S, c->ch};
    KtTensor x0 = fview(m, f, B);
    KT_TRY(conv(m, &x0, img, &m->enc.conv_in_w, &m->enc.conv_in_b, 3));
    for (int i = 0; i < c->n_levels; i++) {
        const VqLevel *lv = &m->enc.level[i];
        for (int j = 0; j < lv->n_blocks; j++) {
            KT_TRY(resblock(m, &lv->block[j], B, &f));
            if (j < lv->n_attn) KT_TRY(attnblock(m, &lv->attn[j], B, f));
        }
        if (lv->has_resample) {  // Downsample2x: zero pad bottom/right by one, 3x3 stride 2, no other padding
            int o[3];
            others(f.buf, o);
            KtTensor x = fview(m, f, B), y = view(m, o[0], B, f.H / 2, f.W / 2, f.C);
            KT_TRY(kt_conv2d(m->be, &y, &x, &lv->resample_w, &lv->resample_b, 2, (int[]){0, 1, 0, 1}));
            f = (Fmap){o[0], f.H / 2, f.W / 2, f.C};
        }
    }
    KT_TRY(mid(m, &m->enc, B, &f));
    KtTensor z = kt_reshape4(&m->lat[2], B, hl, hl, c->Cvae);  // (B, Hl, Wl, Cv)
    KT_TRY(head_out(m, &m->enc, B, f, &z));
    return conv(m, f_out, &z, &m->quant_conv_w, &m->quant_conv_b, 3);
}

KtStatus vq_var_decode(VarVqvae *m, KtTensor *img, const KtTensor *f_hat) {
    const VarVqConfig *c = &m->config;
    int64_t B = f_hat->shape[0], hl = c->latent_size, last = c->n_levels - 1;
    if (B > m->max_batch || img->ndim != 4 || img->shape[0] != B)
        return KT_FAIL(KT_ERR_SHAPE, "VQVAE decode: batch %lld exceeds the workspace (%d) or output mismatch",
                       (long long)B, m->max_batch);
    KtTensor z = kt_reshape4(&m->lat[2], B, hl, hl, c->Cvae);  // (B, Hl, Wl, Cv)
    KT_TRY(conv(m, &z, f_hat, &m->post_quant_conv_w, &m->post_quant_conv_b, 3));
    Fmap f = {0, hl, hl, (int64_t)c->ch * c->ch_mult[last]};
    KtTensor x0 = fview(m, f, B);
    KT_TRY(conv(m, &x0, &z, &m->dec.conv_in_w, &m->dec.conv_in_b, 3));
    KT_TRY(mid(m, &m->dec, B, &f));
    for (int i = (int)last; i >= 0; i--) {
        const VqLevel *lv = &m->dec.level[i];
        for (int j = 0; j < lv->n_blocks; j++) {
            KT_TRY(resblock(m, &lv->block[j], B, &f));
            if (j < lv->n_attn) KT_TRY(attnblock(m, &lv->attn[j], B, f));
        }
        if (lv->has_resample) {  // Upsample2x: nearest 2x, then 3x3 conv
            int o[3];
            others(f.buf, o);
            KtTensor x = fview(m, f, B), u = view(m, o[0], B, 2 * f.H, 2 * f.W, f.C);
            KtTensor y = view(m, o[1], B, 2 * f.H, 2 * f.W, f.C);
            KT_TRY(kt_upsample_nearest2x(m->be, &u, &x));
            KT_TRY(conv(m, &y, &u, &lv->resample_w, &lv->resample_b, 3));
            f = (Fmap){o[1], 2 * f.H, 2 * f.W, f.C};
        }
    }
    return head_out(m, &m->dec, B, f, img);
}
