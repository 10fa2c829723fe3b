// LlamaGen VQ-16 forward passes (NHWC): encoder + cosine quantizer (encode) and codebook lookup + decoder
// (decode_code). Feature maps live in four ping-pong buffers m->act[0..3] in the backend's map dtype (bf16/fp16 on
// CUDA with a 16-bit --dtype); latents, code vectors and the output image stay float32.
// ref: LlamaGen tokenizer/tokenizer_image/vq_model.py Encoder.forward, Decoder.forward, ResnetBlock, AttnBlock,
//      VectorQuantizer.forward, VQModel.decode_code; spec: shared/spec/raster.md §8.1-8.5
// Dims: B batch, H/W spatial, C channels, g grid side, Z latent channels, D code dim, V codebook size.
#include <math.h>

#include "kernels/ops.h"
#include "vq16.h"

#define GN_EPS 1e-6f  // LlamaGen's Normalize(): GroupNorm(32, eps=1e-6)

typedef struct {
    int buf;
    int64_t H, W, C;
} Fmap;

static KtTensor view(Vq16 *m, int buf, int64_t B, int64_t H, int64_t W, int64_t C) {
    return kt_reshape4(&m->act[buf], B, H, W, C);
}
static KtTensor fview(Vq16 *m, Fmap f, int64_t B) { return view(m, f.buf, B, f.H, f.W, f.C); }

static void others(int used, int out[3]) {
    for (int i = 0, n = 0; i < 4; i++)
        if (i != used) out[n++] = i;
}

static KtStatus conv3(Vq16 *m, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    return kt_conv2d(m->be, y, x, w, b, 1, (int[]){1, 1, 1, 1});
}

// A 1x1 conv stored as a Linear (cout, cin): kt_linear on float32 maps, a 1x1 kt_conv2d on 16-bit maps.
static KtStatus conv1x1(Vq16 *m, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    if (x->dtype == KT_F32 && y->dtype == KT_F32) return kt_linear(m->be, y, x, w, b);
    KtTensor w4 = kt_reshape4(w, w->shape[0], 1, 1, w->shape[1]);
    return kt_conv2d(m->be, y, x, &w4, b, 1, (int[]){0, 0, 0, 0});
}

// out = shortcut(x) + conv2(swish(norm2(conv1(swish(norm1(x)))))) into a new buffer (*f updated).
static KtStatus resblock(Vq16 *m, const Vq16Res *r, int64_t B, Fmap *f) {
    KtBackend *be = m->be;
    int o[3];
    others(f->buf, o);
    KtTensor x = fview(m, *f, B);                        // (B, H, W, cin)
    KtTensor t = view(m, o[0], B, f->H, f->W, r->cin);   // (B, H, W, cin)
    KtTensor h = view(m, o[1], B, f->H, f->W, r->cout);  // (B, H, W, cout)
    KtTensor y = view(m, o[2], B, f->H, f->W, r->cout);  // (B, H, W, cout)
    KT_TRY(kt_group_norm_silu(be, &t, &x, &r->norm1_w, &r->norm1_b, m->config.norm_groups, GN_EPS));
    KT_TRY(conv3(m, &h, &t, &r->conv1_w, &r->conv1_b));
    KtTensor t2 = view(m, o[0], B, f->H, f->W, r->cout);
    KT_TRY(kt_group_norm_silu(be, &t2, &h, &r->norm2_w, &r->norm2_b, m->config.norm_groups, GN_EPS));
    KT_TRY(conv3(m, &y, &t2, &r->conv2_w, &r->conv2_b));
    if (r->nin_w.data) {
        KT_TRY(conv1x1(m, &h, &x, &r->nin_w, &r->nin_b));  // (B, H, W, cout)
        KT_TRY(kt_add(be, &y, &y, &h));
    } else {
        KT_TRY(kt_add(be, &y, &y, &x));
    }
    f->buf = o[2];
    f->C = r->cout;
    return KT_OK;
}

// x += proj_out(softmax(q k^T / sqrt(C)) v) with q, k, v = 1x1 convs of norm(x); one head over all H*W positions.
// In place, in float32 (16-bit maps go through attn_x).
static KtStatus attnblock(Vq16 *m, const Vq16Attn *a, int64_t B, Fmap f) {
    KtBackend *be = m->be;
    int o[3];
    others(f.buf, o);
    int64_t T = f.H * f.W, C = f.C;
    KtTensor map = fview(m, f, B);                                       // (B, H, W, C) in the map dtype
    bool f32 = map.dtype == KT_F32;
    KtTensor x = kt_reshape3(f32 ? &m->act[f.buf] : &m->attn_x, B, T, C);  // (B, T, C)
    KtTensor x4 = kt_reshape4(&x, B, f.H, f.W, C);
    if (!f32) KT_TRY(kt_convert(be, &x4, &map));
    KtTensor t = kt_reshape3(&m->t, B, T, C), t4 = kt_reshape4(&t, B, f.H, f.W, C);  // (B, T, C)
    KtTensor q = kt_reshape3(&m->q, B, T, C), k = kt_reshape3(&m->k, B, T, C), v = kt_reshape3(&m->v, B, T, C);
    KtTensor att = kt_reshape3(&m->att, B, T, C);                       // (B, T, C)
    KT_TRY(kt_group_norm(be, &t4, &x4, &a->norm_w, &a->norm_b, m->config.norm_groups, GN_EPS));
    KT_TRY(kt_linear(be, &q, &t, &a->q_w, &a->q_b));
    KT_TRY(kt_linear(be, &k, &t, &a->k_w, &a->k_b));
    KT_TRY(kt_linear(be, &v, &t, &a->v_w, &a->v_b));
    KtTensor q4 = kt_reshape4(&q, B, 1, T, C), k4 = kt_reshape4(&k, B, 1, T, C), v4 = kt_reshape4(&v, B, 1, T, C);
    KT_TRY(kt_attention(be, &att, &q4, &k4, &v4, T, NULL, (float)(1.0 / sqrt((double)C))));
    KT_TRY(kt_linear(be, &t, &att, &a->proj_w, &a->proj_b));
    KT_TRY(kt_add(be, &x, &x, &t));
    return f32 ? KT_OK : kt_convert(be, &map, &x4);
}

static KtStatus mid(Vq16 *m, const Vq16Coder *cd, int64_t B, Fmap *f) {
    KT_TRY(resblock(m, &cd->mid_res1, B, f));
    KT_TRY(attnblock(m, &cd->mid_attn, B, *f));
    return resblock(m, &cd->mid_res2, B, f);
}

// Res blocks (each followed by its attention block, if the level has them) of one level.
static KtStatus level_blocks(Vq16 *m, const Vq16Level *lv, int64_t B, Fmap *f) {
    for (int j = 0; j < lv->n_res; j++) {
        KT_TRY(resblock(m, &lv->res[j], B, f));
        if (j < lv->n_attn) KT_TRY(attnblock(m, &lv->attn[j], B, *f));
    }
    return KT_OK;
}

// conv_out(swish(norm_out(x))) into y.
static KtStatus head_out(Vq16 *m, const Vq16Coder *cd, int64_t B, Fmap f, KtTensor *y) {
    int o[3];
    others(f.buf, o);
    KtTensor x = fview(m, f, B), t = view(m, o[0], B, f.H, f.W, f.C);
    KT_TRY(kt_group_norm_silu(m->be, &t, &x, &cd->norm_out_w, &cd->norm_out_b, m->config.norm_groups, GN_EPS));
    return conv3(m, y, &t, &cd->conv_out_w, &cd->conv_out_b);
}

static KtStatus check_batch(const Vq16 *m, int64_t B) {
    if (B < 1 || B > m->max_batch)
        return KT_FAIL(KT_ERR_ARG, "VQ tokenizer: batch %lld outside [1, %d] (the workspace size)", (long long)B,
                       m->max_batch);
    return KT_OK;
}

KtStatus vq16_encode(Vq16 *m, KtTensor *tokens, const KtTensor *img) {
    const Vq16Config *c = &m->config;
    int64_t B = img->shape[0], S = c->image_size, g = c->grid;
    if (img->ndim != 4 || img->shape[1] != S || img->shape[2] != S || img->shape[3] != 3)
        return KT_FAIL(KT_ERR_SHAPE, "VQ encode: expected images (B, %lld, %lld, 3)", (long long)S, (long long)S);
    KT_TRY(check_batch(m, B));
    Fmap f = {0, S, S, c->ch};
    KtTensor x0 = fview(m, f, B);
    KT_TRY(conv3(m, &x0, img, &m->enc.conv_in_w, &m->enc.conv_in_b));
    for (int i = 0; i < c->n_levels; i++) {
        const Vq16Level *lv = &m->enc.level[i];
        KT_TRY(level_blocks(m, lv, B, &f));
        if (lv->has_resample) {  // Downsample: zero pad right and bottom by one, 3x3 stride 2, no other padding
            int o[3];
            others(f.buf, o);
            KtTensor x = fview(m, f, B), y = view(m, o[0], B, f.H / 2, f.W / 2, f.C);
            KT_TRY(kt_conv2d(m->be, &y, &x, &lv->resample_w, &lv->resample_b, 2, (int[]){0, 1, 0, 1}));
            f = (Fmap){o[0], f.H / 2, f.W / 2, f.C};
        }
    }
    KT_TRY(mid(m, &m->enc, B, &f));
    KtTensor z = kt_reshape4(&m->z, B, g, g, c->Z);  // (B, g, g, Z)
    KT_TRY(head_out(m, &m->enc, B, f, &z));
    KtTensor z2 = kt_reshape2(&z, B * g * g, c->Z), e = kt_reshape2(&m->e, B * g * g, c->D);  // (B*N, Z), (B*N, D)
    KT_TRY(kt_linear(m->be, &e, &z2, &m->quant_conv_w, &m->quant_conv_b));
    KT_TRY(kt_l2_normalize(m->be, &e, &e));
    *tokens = kt_slice0(&m->idx, 0, B * g * g);  // (B*N) int32, n = row*g + col
    return kt_codebook_argmin(m->be, tokens, &e, &m->codebook_n);
}

KtStatus vq16_decode_code(Vq16 *m, KtTensor *img, const KtTensor *tokens, int B) {
    const Vq16Config *c = &m->config;
    int64_t g = c->grid, S = c->image_size;
    KT_TRY(check_batch(m, B));
    if (tokens->ndim != 1 || tokens->shape[0] != B * g * g || tokens->dtype != KT_I32)
        return KT_FAIL(KT_ERR_SHAPE, "VQ decode: expected %lld int32 tokens (B=%d, grid %lld)", (long long)(B * g * g),
                       B, (long long)g);
    if (img->ndim != 4 || img->shape[0] != B || img->shape[1] != S || img->shape[2] != S || img->shape[3] != 3)
        return KT_FAIL(KT_ERR_SHAPE, "VQ decode: the output must be (%d, %lld, %lld, 3)", B, (long long)S,
                       (long long)S);
    KtTensor e = kt_reshape2(&m->e, B * g * g, c->D), z = kt_reshape2(&m->z, B * g * g, c->Z);  // (B*N, D), (B*N, Z)
    KT_TRY(kt_embedding(m->be, &e, &m->codebook_n, tokens));
    KT_TRY(kt_linear(m->be, &z, &e, &m->post_quant_conv_w, &m->post_quant_conv_b));
    int last = c->n_levels - 1;
    Fmap f = {0, g, g, (int64_t)c->ch * c->ch_mult[last]};
    KtTensor x0 = fview(m, f, B), z4 = kt_reshape4(&z, B, g, g, c->Z);
    KT_TRY(conv3(m, &x0, &z4, &m->dec.conv_in_w, &m->dec.conv_in_b));
    KT_TRY(mid(m, &m->dec, B, &f));
    for (int i = 0; i < c->n_levels; i++) {
        const Vq16Level *lv = &m->dec.level[i];
        KT_TRY(level_blocks(m, lv, B, &f));
        if (lv->has_resample) {  // Upsample: nearest 2x, then 3x3 conv
            int o[3];
            others(f.buf, o);
            KtTensor x = fview(m, f, B), u = view(m, o[0], B, 2 * f.H, 2 * f.W, f.C);
            KtTensor y = view(m, o[1], B, 2 * f.H, 2 * f.W, f.C);
            KT_TRY(kt_upsample_nearest2x(m->be, &u, &x));
            KT_TRY(conv3(m, &y, &u, &lv->resample_w, &lv->resample_b));
            f = (Fmap){o[1], 2 * f.H, 2 * f.W, f.C};
        }
    }
    return head_out(m, &m->dec, B, f, img);
}

int64_t vq16_image_to_u8(uint8_t *px, const float *img, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = img[i];
        if (!isfinite(v)) {
            bad++;
            px[i] = 0;
            continue;
        }
        float y = 127.5f * v + 128.0f;  // torch: clamp(127.5 * x + 128, 0, 255).to(uint8)
        px[i] = (uint8_t)(y < 0.0f ? 0.0f : y > 255.0f ? 255.0f : y);
    }
    return bad;
}
