// Raster-model (LlamaGen) ops on the CPU: RMSNorm (alone and after the residual add), the SwiGLU gate, 2D-RoPE
// attention inputs written into a positional KV cache, attention that is causal by position, row L2 normalisation,
// and LlamaGen's sampler.
// ref: LlamaGen autoregressive/models/gpt.py (RMSNorm, FeedForward, Attention, apply_rotary_emb, KVCache),
//      generate.py (sample, top_k_top_p_filtering), tokenizer/tokenizer_image/vq_model.py (F.normalize)
// Dims: B batch, T/Tq tokens, C channels, NH heads, HS head size, Tcap cache rows, P rotary-table rows, V vocab.
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "cpu_ops.h"

// One row of RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, the statistic in double, then two float multiplies as
// torch's (x * rsqrt(...)).type_as(x) * weight.
static void rmsnorm_row(float *yr, const float *xr, const float *w, int64_t C, float eps) {
    double ss = 0;
    for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
    float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] * r) * w[c];
}

KtStatus cpu_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps) {
    (void)be;
    int64_t N = kt_rows(x), C = kt_cols(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) rmsnorm_row(yd + i * C, xd + i * C, w->data, C, eps);
    return KT_OK;
}

KtStatus cpu_add_rmsnorm(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps) {
    (void)be;
    int64_t N = kt_rows(x), C = kt_cols(x);
    const float *hd = h->data;
    float *xd = x->data, *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        float *xr = xd + i * C;
        for (int64_t c = 0; c < C; c++) xr[c] += hd[i * C + c];
        rmsnorm_row(yd + i * C, xr, w->data, C, eps);
    }
    return KT_OK;
}

// y[r, f] = silu(a[r, f]) * a[r, F + f] with silu(v) = v / (1 + exp(-v)).
KtStatus cpu_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a) {
    (void)be;
    int64_t N = kt_rows(y), F = kt_cols(y);
    const float *ad = a->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *g = ad + i * 2 * F, *u = g + F;
        for (int64_t f = 0; f < F; f++) yd[i * F + f] = g[f] / (1.0f + expf(-g[f])) * u[f];
    }
    return KT_OK;
}

// Every position of `positions` (n entries) in [0, limit).
static KtStatus check_positions(const char *op, const KtTensor *positions, int64_t limit) {
    const int32_t *p = positions->data;
    int64_t n = kt_numel(positions);
    for (int64_t i = 0; i < n; i++)
        if (p[i] < 0 || p[i] >= limit)
            return KT_FAIL(KT_ERR_ARG, "%s: position %d (entry %lld) outside [0, %lld)", op, p[i], (long long)i,
                           (long long)limit);
    return KT_OK;
}

// dst[2j], dst[2j+1] = rotation of src's pair j by (cos, sin) = cs[j].
static void rotate(float *dst, const float *src, const float *cs, int64_t half) {
    for (int64_t j = 0; j < half; j++) {
        float x0 = src[2 * j], x1 = src[2 * j + 1], c = cs[2 * j], s = cs[2 * j + 1];
        dst[2 * j] = x0 * c - x1 * s;
        dst[2 * j + 1] = x1 * c + x0 * s;
    }
}

KtStatus cpu_llama_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                             const KtTensor *rope, const KtTensor *positions) {
    (void)be;
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], C = NH * HS;
    int64_t Tcap = kcache->shape[2], P = rope->shape[0];
    KT_TRY(check_positions("kt_llama_attn_prep", positions, P < Tcap ? P : Tcap));
    const float *src = qkv->data, *rt = rope->data;
    const int32_t *pos = positions->data;
    float *qd = q->data, *kd = kcache->data, *vd = vcache->data;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T, p = pos[bt];
        const float *row = src + bt * 3 * C, *cs = rt + p * HS;  // (HS/2, 2) at position p
        for (int64_t h = 0; h < NH; h++) {
            int64_t c = ((b * NH + h) * Tcap + p) * HS;
            rotate(qd + ((b * NH + h) * T + t) * HS, row + h * HS, cs, HS / 2);
            rotate(kd + c, row + C + h * HS, cs, HS / 2);
            memcpy(vd + c, row + 2 * C + h * HS, (size_t)HS * sizeof(float));
        }
    }
    return KT_OK;
}

#define ATT_QB 64  // query rows per work item

// Work items (b, h, block of ATT_QB queries) on one thread each: scores over keys [0, max position of the block],
// keys beyond a query's own position masked, softmax, P@V, through serial OpenBLAS calls.
KtStatus cpu_attention_pos(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                           const KtTensor *positions, float scale) {
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3], Tcap = k->shape[2];
    int64_t C = NH * HS, nqb = (Tq + ATT_QB - 1) / ATT_QB, qb_rows = Tq < ATT_QB ? Tq : ATT_QB;
    KT_TRY(cpu_blas_dims("kt_attention_pos", Tq, Tcap, C));
    KT_TRY(check_positions("kt_attention_pos", positions, Tcap));
    if (B == 0 || NH == 0 || Tq == 0 || HS == 0) return KT_OK;
    int nt = cpu_max_threads();
    size_t per = ((size_t)(qb_rows * Tcap) * sizeof(float) + 63) / 64 * 64;
    char *scratch;
    KT_TRY(cpu_scratch(be, per * (size_t)nt, (void **)&scratch));
    const float *qd = q->data, *kd = k->data, *vd = v->data;
    const int32_t *pos = positions->data;
    float *od = out->data;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t item = 0; item < B * NH * nqb; item++) {
        int64_t bh = item / nqb, b = bh / NH, h = bh % NH, i0 = (item % nqb) * ATT_QB;
        int64_t m = Tq - i0 < ATT_QB ? Tq - i0 : ATT_QB, kv = 0;
        const int32_t *pb = pos + b * Tq + i0;
        for (int64_t i = 0; i < m; i++)
            if (pb[i] + 1 > kv) kv = pb[i] + 1;
        float *s = (float *)(scratch + per * (size_t)cpu_thread_id());  // (m, kv)
        const float *kh = kd + bh * Tcap * HS, *vh = vd + bh * Tcap * HS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)kv, (int)HS, scale,
                    qd + (bh * Tq + i0) * HS, (int)HS, kh, (int)HS, 0.0f, s, (int)kv);
        for (int64_t i = 0; i < m; i++) {
            float *si = s + i * kv;
            for (int64_t j = pb[i] + 1; j < kv; j++) si[j] = -INFINITY;
            cpu_softmax_row(si, kv);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)HS, (int)kv, 1.0f, s, (int)kv, vh,
                    (int)HS, 0.0f, od + (b * Tq + i0) * C + h * HS, (int)C);
    }
    return KT_OK;
}

// y = x / max(||x||, 1e-12): the norm accumulated in double and rounded to float, then an IEEE division.
KtStatus cpu_l2_normalize(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t N = kt_rows(x), D = kt_cols(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *xr = xd + i * D;
        double ss = 0;
        for (int64_t d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float nrm = (float)sqrt(ss);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int64_t d = 0; d < D; d++) yd[i * D + d] = xr[d] / nrm;
    }
    return KT_OK;
}

// Per-thread scratch of the row samplers: V floats + V int32.
static KtStatus row_scratch(KtBackend *be, int64_t V, int nt, size_t *per, char **scratch) {
    if (V > INT32_MAX) return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: vocabulary of %lld entries", (long long)V);
    *per = ((size_t)V * (sizeof(float) + sizeof(int32_t)) + 63) / 64 * 64;
    return cpu_scratch(be, *per * (size_t)nt, (void **)scratch);
}

KtStatus cpu_sample_llama(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                          const KtTensor *positions, SmpParams params) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
    int nt = cpu_max_threads();
    size_t per;
    char *scratch;
    KT_TRY(row_scratch(be, V, nt, &per, &scratch));
    const int64_t *ids = image_ids->data;
    const int32_t *pos = positions->data;
    float *ld = logits->data;
    int32_t *tok = tokens->data;
    int64_t n_empty = 0, first_empty = -1;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : n_empty)
    for (int64_t r = 0; r < B * T; r++) {
        if (pos[r] < 0) continue;
        char *mine = scratch + per * (size_t)cpu_thread_id();
        float *sv = (float *)mine;
        int32_t *si = (int32_t *)(mine + (size_t)V * sizeof(float));
        int32_t t = smp_sample_hf_row(ld + r * V, V, params, (uint64_t)ids[r / T], (uint32_t)pos[r], sv, si);
        tok[r] = t < 0 ? 0 : t;
        n_empty += t < 0;
    }
    if (n_empty) {
        for (int64_t r = 0; r < B * T && first_empty < 0; r++) {
            if (pos[r] < 0) continue;
            bool any = false;
            for (int64_t i = 0; i < V && !any; i++) any = ld[r * V + i] > -INFINITY;
            if (!any) first_empty = r;
        }
        return KT_FAIL(KT_ERR_NUMERIC, "sampling: %lld row(s) have no finite logit (first: batch %lld, token %lld)",
                       (long long)n_empty, (long long)(first_empty / T), (long long)(first_empty % T));
    }
    return KT_OK;
}

KtStatus cpu_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params) {
    int64_t N = kt_rows(logits), V = kt_cols(logits);
    int nt = cpu_max_threads();
    size_t per;
    char *scratch;
    KT_TRY(row_scratch(be, V, nt, &per, &scratch));
    float *ld = logits->data, *pd = probs->data;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t r = 0; r < N; r++) {
        char *mine = scratch + per * (size_t)cpu_thread_id();
        smp_hf_probs_row(pd + r * V, ld + r * V, V, params, (float *)mine, (int32_t *)(mine + (size_t)V * sizeof(float)));
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------ sequential step counter
KtStatus cpu_raster_step_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                                int64_t B) {
    (void)be;
    int64_t N = seq->shape[0], S = seq->shape[1], R = tok->shape[0], n = *(const int32_t *)step->data;
    if (n < 1 || n >= N)
        return KT_FAIL(KT_ERR_ARG, "kt_raster_step_inputs: step %lld outside [1, %lld)", (long long)n, (long long)N);
    const int32_t *prev = (const int32_t *)seq->data + (n - 1) * S;  // (S) tokens n-1
    int32_t *t = tok->data, *p = pos->data;
    for (int64_t r = 0; r < R; r++) {
        t[r] = prev[r % B];
        p[r] = (int32_t)n;
    }
    return KT_OK;
}

KtStatus cpu_raster_step_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, KtTensor *step) {
    (void)be;
    int64_t N = seq->shape[0], S = seq->shape[1], B = sampled->shape[0];
    int32_t *ctr = step->data, n = *ctr;
    if (n < 0 || n >= N)
        return KT_FAIL(KT_ERR_ARG, "kt_raster_step_commit: step %d outside [0, %lld)", n, (long long)N);
    memcpy((int32_t *)seq->data + n * S, sampled->data, (size_t)B * sizeof(int32_t));
    *ctr = n + 1;
    return KT_OK;
}

// ------------------------------------------------------------------------------------------- window plan (ZipAR)
// The feed rows' cells checked first: a bad plan changes nothing.
static KtStatus check_cells(const char *op, const int32_t *fe, int64_t T, int col, int64_t N) {
    for (int64_t j = 0; j < T; j++)
        if (fe[3 * j + col] < -1 || fe[3 * j + col] >= N)
            return KT_FAIL(KT_ERR_ARG, "%s: feed %lld names cell %d outside [-1, %lld)", op, (long long)j,
                           fe[3 * j + col], (long long)N);
    return KT_OK;
}

KtStatus cpu_raster_window_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                  const KtTensor *seq) {
    (void)be;
    int64_t R = tok->shape[0], T = tok->shape[1], B = spos->shape[0], N = seq->shape[0], S = seq->shape[1];
    const int32_t *fe = feeds->data, *sq = seq->data;
    KT_TRY(check_cells("kt_raster_window_inputs", fe, T, 0, N));
    KT_TRY(check_cells("kt_raster_window_inputs", fe, T, 2, N));
    int32_t *t = tok->data, *p = pos->data, *sp = spos->data;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < T; j++) {
            int32_t c = fe[3 * j];
            t[r * T + j] = c >= 0 ? sq[c * S + r % B] : 0;
            p[r * T + j] = fe[3 * j + 1];
            if (r < B) sp[r * T + j] = fe[3 * j + 2];
        }
    return KT_OK;
}

KtStatus cpu_raster_window_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds) {
    (void)be;
    int64_t B = sampled->shape[0], T = sampled->shape[1], N = seq->shape[0], S = seq->shape[1];
    const int32_t *fe = feeds->data, *s = sampled->data;
    KT_TRY(check_cells("kt_raster_window_commit", fe, T, 2, N));
    int32_t *sq = seq->data;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++)
            if (fe[3 * j + 2] >= 0) sq[fe[3 * j + 2] * S + b] = s[b * T + j];
    return KT_OK;
}
