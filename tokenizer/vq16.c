// LlamaGen VQ-16 forward passes (NHWC): encoder + cosine quantizer (encode) and codebook lookup + decoder
// (decode_code), the level layout over the shared VQGAN blocks (vq_blocks.c). Feature maps live in four ping-pong
// buffers m->act[0..3] in the backend's map dtype (bf16/fp16 on CUDA with a 16-bit --dtype); latents, code vectors
// and the output image stay float32.
// ref: LlamaGen tokenizer/tokenizer_image/vq_model.py Encoder.forward, Decoder.forward, VectorQuantizer.forward,
//      VQModel.decode_code; spec: shared/spec/raster.md §8.1-8.5
// Dims: B batch, H/W spatial, C channels, g grid side, Z latent channels, D code dim, V codebook size.
#include <math.h>

#include "kernels/ops.h"
#include "vq16.h"

// The blocks' workspace: this model's ping-pong maps and float32 attention scratch (q, k, v as three Linears).
static VqMaps maps(Vq16 *m) {
    return (VqMaps){.be = m->be, .act = m->act, .norm_groups = m->config.norm_groups, .attn_x = &m->attn_x,
                    .attn_t = &m->t, .qkv = NULL, .q = &m->q, .k = &m->k, .v = &m->v, .att = &m->att};
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
    VqMaps w = maps(m);
    VqFmap f = {0, S, S, c->ch};
    KT_TRY(vq_conv_in(&w, &m->enc, B, img, f));  // (B, S, S, ch)
    for (int i = 0; i < c->n_levels; i++) KT_TRY(vq_level_down(&w, &m->enc.level[i], B, &f));
    KT_TRY(vq_mid_forward(&w, &m->enc, B, &f));
    KtTensor z = kt_reshape4(&m->z, B, g, g, c->Z);  // (B, g, g, Z)
    KT_TRY(vq_head_forward(&w, &m->enc, B, f, &z));
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
    VqMaps w = maps(m);
    VqFmap f = {0, g, g, (int64_t)c->ch * c->ch_mult[last]};
    KtTensor z4 = kt_reshape4(&z, B, g, g, c->Z);  // (B, g, g, Z)
    KT_TRY(vq_conv_in(&w, &m->dec, B, &z4, f));     // (B, g, g, ch * ch_mult[last])
    KT_TRY(vq_mid_forward(&w, &m->dec, B, &f));
    for (int i = 0; i < c->n_levels; i++) KT_TRY(vq_level_up(&w, &m->dec.level[i], B, &f));
    return vq_head_forward(&w, &m->dec, B, f, img);  // (B, S, S, 3)
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
