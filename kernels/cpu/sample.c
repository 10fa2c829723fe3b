// Token sampling and VAR's more_smooth latents on the CPU: one call of the samplers/ row functions per (b, t) row,
// rows spread over threads with per-thread scratch from the backend (each row's draw depends only on its own
// (seed, image, position) Philox block, so the thread count never changes a token).
// ref: VAR models/helpers.py sample_with_top_k_top_p_, gumbel_softmax_with_rng; samplers/sampling.h
// Dims: B batch, T tokens per step, V vocabulary, D code dim.
#include "cpu_ops.h"

// tokens: (B, T) int32; logits: (B, T, V) masked in place; image_ids: (B) int64.
KtStatus cpu_sample_top_k_top_p(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                                int64_t pos0, SmpParams params) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
    if (V > INT32_MAX) return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: vocabulary of %lld entries", (long long)V);
    int nt = cpu_max_threads();
    size_t per = (size_t)V * (sizeof(float) + sizeof(int32_t));
    char *scratch;
    KT_TRY(cpu_scratch(be, per * (size_t)nt, (void **)&scratch));
    const int64_t *ids = image_ids->data;
    float *ld = logits->data;
    int32_t *tok = tokens->data;
    int64_t n_empty = 0, first_empty = -1;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : n_empty)
    for (int64_t r = 0; r < B * T; r++) {
        char *mine = scratch + per * (size_t)cpu_thread_id();
        float *sv = (float *)mine;
        int32_t *si = (int32_t *)(mine + (size_t)V * sizeof(float));
        int64_t b = r / T, t = r % T;
        tok[r] = smp_sample_row(ld + r * V, V, params, (uint64_t)ids[b], (uint32_t)(pos0 + t), sv, si);
        n_empty += tok[r] < 0;
    }
    if (n_empty) {
        for (int64_t r = 0; r < B * T && first_empty < 0; r++)
            if (tok[r] < 0) first_empty = r;
        return KT_FAIL(KT_ERR_NUMERIC, "sampling: %lld row(s) have no finite logit (first: batch %lld, token %lld)",
                       (long long)n_empty, (long long)(first_empty / T), (long long)(first_empty % T));
    }
    return KT_OK;
}

// h: (B, T, D); logits: (B, T, V); codebook: (V, D); image_ids: (B) int64.
KtStatus cpu_smooth_embed(KtBackend *be, KtTensor *h, const KtTensor *logits, const KtTensor *codebook, float ratio,
                          const KtTensor *image_ids, int64_t pos0, uint64_t seed) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2], D = codebook->shape[1];
    int nt = cpu_max_threads();
    size_t per = (size_t)V * sizeof(float);
    per = (per + 63) / 64 * 64;
    char *scratch;
    KT_TRY(cpu_scratch(be, per * (size_t)nt, (void **)&scratch));
    const int64_t *ids = image_ids->data;
    const float *ld = logits->data, *cb = codebook->data;
    float *hd = h->data;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t r = 0; r < B * T; r++) {
        float *w = (float *)(scratch + per * (size_t)cpu_thread_id());
        int64_t b = r / T, t = r % T;
        smp_smooth_embed_row(hd + r * D, ld + r * V, cb, V, D, ratio, seed, (uint64_t)ids[b], (uint32_t)(pos0 + t),
                             w);
    }
    return KT_OK;
}
