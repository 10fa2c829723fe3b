// VAR VQVAE encoder and decoder forward passes (NHWC): the level layout over the shared VQGAN blocks (vq_blocks.c).
// ref: VAR models/basic_vae.py Encoder.forward, Decoder.forward
// Dims: B batch, S image side, Hl latent side, Cv latent channels. Feature maps live in four ping-pong buffers
// m->act[0..3], in the backend's map dtype (bf16/fp16 on CUDA with a 16-bit --dtype); the latents and the output
// image stay float32.
#include "kernels/ops.h"
#include "var_vqvae.h"

// The blocks' workspace: this model's ping-pong maps and attention scratch (attn_t has data only with 16-bit maps;
// with float32 maps the attention uses a free ping-pong map).
static VqMaps maps(VarVqvae *m) {
    return (VqMaps){.be = m->be, .act = m->act, .norm_groups = m->config.norm_groups, .attn_x = &m->attn_x,
                    .attn_t = &m->attn_t, .qkv = &m->qkv, .q = &m->q, .k = &m->k, .v = &m->v, .att = &m->att};
}

KtStatus vq_var_encode_f(VarVqvae *m, KtTensor *f_out, const KtTensor *img) {
    const VarVqConfig *c = &m->config;
    int64_t B = img->shape[0], S = c->image_size, hl = c->latent_size;
    if (img->ndim != 4 || img->shape[1] != S || img->shape[2] != S || img->shape[3] != 3 || B > m->max_batch)
        return KT_FAIL(KT_ERR_SHAPE, "VQVAE encode: expected images (<=%d, %lld, %lld, 3)", m->max_batch,
                       (long long)S, (long long)S);
    VqMaps w = maps(m);
    VqFmap f = {0, S, S, c->ch};
    KT_TRY(vq_conv_in(&w, &m->enc, B, img, f));  // (B, S, S, ch)
    for (int i = 0; i < c->n_levels; i++) KT_TRY(vq_level_down(&w, &m->enc.level[i], B, &f));
    KT_TRY(vq_mid_forward(&w, &m->enc, B, &f));
    KtTensor z = kt_reshape4(&m->lat[2], B, hl, hl, c->Cvae);  // (B, Hl, Wl, Cv)
    KT_TRY(vq_head_forward(&w, &m->enc, B, f, &z));
    return vq_conv3x3(m->be, f_out, &z, &m->quant_conv_w, &m->quant_conv_b);  // (B, Hl, Wl, Cv)
}

KtStatus vq_var_decode(VarVqvae *m, KtTensor *img, const KtTensor *f_hat) {
    const VarVqConfig *c = &m->config;
    int64_t B = f_hat->shape[0], hl = c->latent_size, last = c->n_levels - 1;
    if (B > m->max_batch || img->ndim != 4 || img->shape[0] != B)
        return KT_FAIL(KT_ERR_SHAPE, "VQVAE decode: batch %lld exceeds the workspace (%d) or output mismatch",
                       (long long)B, m->max_batch);
    VqMaps w = maps(m);
    KtTensor z = kt_reshape4(&m->lat[2], B, hl, hl, c->Cvae);  // (B, Hl, Wl, Cv)
    KT_TRY(vq_conv3x3(m->be, &z, f_hat, &m->post_quant_conv_w, &m->post_quant_conv_b));
    VqFmap f = {0, hl, hl, (int64_t)c->ch * c->ch_mult[last]};
    KT_TRY(vq_conv_in(&w, &m->dec, B, &z, f));  // (B, Hl, Wl, ch * ch_mult[last])
    KT_TRY(vq_mid_forward(&w, &m->dec, B, &f));
    for (int i = (int)last; i >= 0; i--) KT_TRY(vq_level_up(&w, &m->dec.level[i], B, &f));
    return vq_head_forward(&w, &m->dec, B, f, img);  // (B, S, S, 3)
}
