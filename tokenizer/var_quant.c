// VAR's multi-scale residual quantizer: token maps <-> the cumulative latent f_hat, with the Phi convolutions.
// ref: VAR models/quant.py VectorQuantizer2 (f_to_idxBl_or_fhat, idxBl_to_var_input, get_next_autoregressive_input)
// Dims: B batch, pn a scale's side, Hl latent side (patch_nums[last]), Cv latent channels, SN number of scales.
#include <stdlib.h>

#include "kernels/ops.h"
#include "var_vqvae.h"

// contrib = Phi_k(h') with h' = UP(h -> Hl) for all but the last scale: 0.5 h' + 0.5 conv3x3_k(h').
// h: (B, pn, pn, Cv) -> lat[1] (B, Hl, Hl, Cv). Uses lat[0] for the upsampled map.
static KtStatus scale_contrib(VarVqvae *m, KtTensor *contrib, const KtTensor *h, int si) {
    const VarVqConfig *c = &m->config;
    int64_t B = h->shape[0], hl = c->latent_size;
    int k = c->phi_index[si];
    KtTensor up = *h;
    if (si != c->n_scales - 1) {
        up = kt_reshape4(&m->lat[0], B, hl, hl, c->Cvae);  // (B, Hl, Hl, Cv)
        KT_TRY(kt_resize_bicubic(m->be, &up, h));
    }
    *contrib = kt_reshape4(&m->lat[1], B, hl, hl, c->Cvae);  // (B, Hl, Hl, Cv)
    KT_TRY(kt_conv2d(m->be, contrib, &up, &m->phi_w[k], &m->phi_b[k], 1, (int[]){1, 1, 1, 1}));
    return kt_axpby(m->be, contrib, 0.5f, &up, 0.5f, contrib);
}

KtStatus vq_var_add_scale_latent(VarVqvae *m, KtTensor *f_hat, const KtTensor *h, int si) {
    KtTensor contrib;
    KT_TRY(scale_contrib(m, &contrib, h, si));
    return kt_add(m->be, f_hat, f_hat, &contrib);
}

// Embedding lookup of one scale's tokens into lat[2]: (B, pn, pn, Cv).
static KtStatus embed_scale(VarVqvae *m, KtTensor *h, const KtTensor *idx, int si, int64_t B) {
    const VarVqConfig *c = &m->config;
    int64_t pn = c->patch_nums[si];
    KtTensor flat = kt_reshape2(&m->lat[2], B * pn * pn, c->Cvae);  // (B*pn*pn, Cv)
    KT_TRY(kt_embedding(m->be, &flat, &m->codebook, idx));
    *h = kt_reshape4(&flat, B, pn, pn, c->Cvae);
    return KT_OK;
}

KtStatus vq_var_add_scale(VarVqvae *m, KtTensor *f_hat, const KtTensor *idx, int si, int B) {
    KtTensor h;
    KT_TRY(embed_scale(m, &h, idx, si, B));
    return vq_var_add_scale_latent(m, f_hat, &h, si);
}

// Uploads scale si of host tokens (B, L) into m->idx as int32 (B*pn*pn).
static KtStatus upload_scale(VarVqvae *m, KtTensor *idx, const int64_t *tokens, int B, int si) {
    const VarVqConfig *c = &m->config;
    int L = vq_var_num_tokens(c), begin = 0, n = c->patch_nums[si] * c->patch_nums[si];
    for (int i = 0; i < si; i++) begin += c->patch_nums[i] * c->patch_nums[i];
    int32_t *tmp = malloc((size_t)B * (size_t)n * sizeof *tmp);
    if (!tmp) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = KT_OK;
    for (int b = 0; b < B && st == KT_OK; b++)
        for (int t = 0; t < n; t++) {
            int64_t v = tokens[(int64_t)b * L + begin + t];
            if (v < 0 || v >= c->V) {
                st = KT_FAIL(KT_ERR_ARG, "token %lld at image %d, position %d is outside the codebook [0, %d)",
                             (long long)v, b, begin + t, c->V);
                break;
            }
            tmp[b * n + t] = (int32_t)v;
        }
    *idx = kt_slice0(&m->idx, 0, (int64_t)B * n);
    if (st == KT_OK) st = kt_upload(m->be, idx, tmp);
    free(tmp);
    return st;
}

static KtStatus check_batch(const VarVqvae *m, int B) {
    if (B < 1 || B > m->max_batch)
        return KT_FAIL(KT_ERR_ARG, "VQVAE: batch %d outside [1, %d] (the workspace size)", B, m->max_batch);
    return KT_OK;
}

KtStatus vq_var_img_to_tokens(VarVqvae *m, int64_t *tokens, const KtTensor *img) {
    const VarVqConfig *c = &m->config;
    int64_t B = img->shape[0], hl = c->latent_size, L = vq_var_num_tokens(c);
    KT_TRY(check_batch(m, (int)B));
    KtTensor f_hat = kt_reshape4(&m->lat[3], B, hl, hl, c->Cvae);   // (B, Hl, Hl, Cv)
    KtTensor f_rest = kt_reshape4(&m->lat[4], B, hl, hl, c->Cvae);  // (B, Hl, Hl, Cv)
    KT_TRY(vq_var_encode_f(m, &f_rest, img));
    KT_TRY(kt_zero(m->be, &f_hat));
    int32_t *idx_host = malloc((size_t)(B * hl * hl) * sizeof *idx_host);
    if (!idx_host) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = KT_OK;
    for (int si = 0, begin = 0; si < c->n_scales && st == KT_OK; si++) {
        int64_t pn = c->patch_nums[si], n = pn * pn;
        KtTensor z = f_rest;  // the last scale quantizes the residual itself
        if (si != c->n_scales - 1) {
            z = kt_reshape4(&m->lat[5], B, pn, pn, c->Cvae);  // (B, pn, pn, Cv)
            if ((st = kt_resize_area(m->be, &z, &f_rest)) != KT_OK) break;
        }
        KtTensor zf = kt_reshape2(&z, B * n, c->Cvae), idx = kt_slice0(&m->idx, 0, B * n), h, contrib;
        if ((st = kt_codebook_argmin(m->be, &idx, &zf, &m->codebook)) != KT_OK) break;
        if ((st = kt_download(m->be, idx_host, &idx)) != KT_OK) break;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < n; t++) tokens[b * L + begin + t] = idx_host[b * n + t];
        if ((st = embed_scale(m, &h, &idx, si, B)) != KT_OK) break;
        if ((st = scale_contrib(m, &contrib, &h, si)) != KT_OK) break;
        if ((st = kt_add(m->be, &f_hat, &f_hat, &contrib)) != KT_OK) break;
        st = kt_axpby(m->be, &f_rest, 1.0f, &f_rest, -1.0f, &contrib);
        begin += (int)n;
    }
    free(idx_host);
    return st;
}

KtStatus vq_var_tokens_to_var_input(VarVqvae *m, float *var_input, const int64_t *tokens, int B) {
    const VarVqConfig *c = &m->config;
    int64_t hl = c->latent_size, L = vq_var_num_tokens(c), Cv = c->Cvae;
    KT_TRY(check_batch(m, B));
    KtTensor f_hat = kt_reshape4(&m->lat[3], B, hl, hl, Cv);  // (B, Hl, Hl, Cv)
    KT_TRY(kt_zero(m->be, &f_hat));
    float *next = malloc((size_t)(B * hl * hl * Cv) * sizeof *next);
    if (!next) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = KT_OK;
    for (int si = 0, begin = 1; si < c->n_scales - 1 && st == KT_OK; si++) {
        KtTensor idx;
        int64_t pn = c->patch_nums[si + 1], n = pn * pn;
        if ((st = upload_scale(m, &idx, tokens, B, si)) != KT_OK) break;
        if ((st = vq_var_add_scale(m, &f_hat, &idx, si, B)) != KT_OK) break;
        KtTensor nx = kt_reshape4(&m->lat[5], B, pn, pn, Cv);  // (B, pn', pn', Cv): AREA(f_hat) of the next scale
        if ((st = kt_resize_area(m->be, &nx, &f_hat)) != KT_OK) break;
        if ((st = kt_download(m->be, next, &nx)) != KT_OK) break;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < n * Cv; t++) var_input[(b * (L - 1) + begin - 1) * Cv + t] = next[b * n * Cv + t];
        begin += (int)n;
    }
    free(next);
    return st;
}

KtStatus vq_var_tokens_to_image(VarVqvae *m, KtTensor *img, const int64_t *tokens, int B) {
    const VarVqConfig *c = &m->config;
    int64_t hl = c->latent_size;
    KT_TRY(check_batch(m, B));
    KtTensor f_hat = kt_reshape4(&m->lat[3], B, hl, hl, c->Cvae);  // (B, Hl, Hl, Cv)
    KT_TRY(kt_zero(m->be, &f_hat));
    for (int si = 0; si < c->n_scales; si++) {
        KtTensor idx;
        KT_TRY(upload_scale(m, &idx, tokens, B, si));
        KT_TRY(vq_var_add_scale(m, &f_hat, &idx, si, B));
    }
    return vq_var_decode(m, img, &f_hat);
}
