// Dense ops on the CPU: GEMM-backed linear, row gathers, chunk splitting, CFG mixing and the VQ nearest-codeword
// search. ref: torch.nn.functional.linear, F.embedding, VAR quant.py VectorQuantizer2.f_to_idxBl_or_fhat
// Dims: N rows, K in-features, M out-features (the GEMM's n), V codebook size, D code dim, B batch, T tokens, C chans.
#include <string.h>

#include <cblas.h>

#include "cpu_ops.h"

// Tile grid of cpu_sgemm: at most GEMM_MB x GEMM_NB per tile; the row block shrinks (down to GEMM_MB_MIN) until
// there are GEMM_MIN_TILES tiles, so small problems still spread over the threads. Depends only on the shape.
#define GEMM_MB 256
#define GEMM_MB_MIN 64
#define GEMM_NB 256
#define GEMM_MIN_TILES 16

void cpu_sgemm(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K == 0) {  // empty contraction: BLAS rejects lda = 0, and the product is zero
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    int64_t nb = GEMM_NB, nt = (N + nb - 1) / nb, mb = GEMM_MB;
    while (mb > GEMM_MB_MIN && ((M + mb - 1) / mb) * nt < GEMM_MIN_TILES) mb /= 2;
    int64_t mt = (M + mb - 1) / mb;
    CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#pragma omp parallel for schedule(dynamic, 1) if (mt * nt > 1)
    for (int64_t t = 0; t < mt * nt; t++) {
        int64_t i = (t / nt) * mb, j = (t % nt) * nb;
        int64_t m = M - i < mb ? M - i : mb, n = N - j < nb ? N - j : nb;
        const float *bt = trans_b ? B + j * ldb : B + j;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, (int)m, (int)n, (int)K, alpha, A + i * lda, (int)lda, bt,
                    (int)ldb, beta, C + i * ldc + j, (int)ldc);
    }
}

// y (N, M) = x (N, K) @ w (M, K)^T + b (M). The bias is written first and accumulated by the GEMM (beta = 1), like
// torch's addmm.
KtStatus cpu_linear(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    (void)be;
    int64_t N = 1, K = kt_cols(x), M = w->shape[0];
    for (int i = 0; i < x->ndim - 1; i++) N *= x->shape[i];  // not kt_rows: it is 0 when K is 0
    KT_TRY(cpu_blas_dims("kt_linear", N, K, M));
    float *yd = y->data;
    if (N == 0 || M == 0) return KT_OK;
    if (b) {
        const float *bd = b->data;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < N; i++) memcpy(yd + i * M, bd, (size_t)M * sizeof(float));
    }
    cpu_sgemm(true, N, M, K, 1.0f, x->data, K, w->data, K, b ? 1.0f : 0.0f, yd, M);
    return KT_OK;
}

// y (N, C) = table (V, C)[idx (N)].
KtStatus cpu_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx) {
    (void)be;
    int64_t N = idx->shape[0], V = table->shape[0], C = table->shape[1];
    const int32_t *id = idx->data;
    for (int64_t i = 0; i < N; i++)
        if (id[i] < 0 || id[i] >= V)
            return KT_FAIL(KT_ERR_ARG, "kt_embedding: idx[%lld] = %d outside [0, %lld)", (long long)i, id[i],
                           (long long)V);
    const float *td = table->data;
    float *yd = y->data;
    for (int64_t i = 0; i < N; i++) memcpy(yd + i * C, td + (int64_t)id[i] * C, (size_t)C * sizeof(float));
    return KT_OK;
}

// y (K, B, C)[k, b, :] = x (B, K*C)[b, k*C : (k+1)*C].
KtStatus cpu_split_chunks(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t K = y->shape[0], B = y->shape[1], C = y->shape[2];
    const float *xd = x->data;
    float *yd = y->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t b = 0; b < B; b++)
            memcpy(yd + (k * B + b) * C, xd + b * K * C + k * C, (size_t)C * sizeof(float));
    return KT_OK;
}

// y (B, T, V) = (1 + t) * logits[:B] - t * logits[B:]. The factor 1 + t is formed in double and rounded once, as
// torch does with a Python scalar.
KtStatus cpu_cfg_combine(KtBackend *be, KtTensor *y, const KtTensor *logits, float t) {
    (void)be;
    int64_t n = kt_numel(y);
    const float *c = logits->data, *u = (const float *)logits->data + n;
    float *yd = y->data;
    float a = (float)(1.0 + (double)t);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = a * c[i] - t * u[i];
    return KT_OK;
}

// idx (N) = argmin_v |z|^2 + |e_v|^2 - 2 z.e_v, all float32 as in VAR (sum of squares + addmm(alpha=-2, beta=1)).
// Rows are processed in chunks so the (rows, V) distance block stays within CPU_CHUNK_BYTES.
KtStatus cpu_codebook_argmin(KtBackend *be, KtTensor *idx, const KtTensor *z, const KtTensor *codebook) {
    int64_t N = z->shape[0], D = z->shape[1], V = codebook->shape[0];
    KT_TRY(cpu_blas_dims("kt_codebook_argmin", N, D, V));
    if (N == 0) return KT_OK;
    if (V == 0) return KT_FAIL(KT_ERR_ARG, "kt_codebook_argmin: empty codebook");
    int64_t rows = (int64_t)(CPU_CHUNK_BYTES / ((size_t)V * sizeof(float)));
    if (rows < 1) rows = 1;
    if (rows > N) rows = N;
    float *scratch;
    KT_TRY(cpu_scratch(be, (size_t)(V + rows * V) * sizeof(float), (void **)&scratch));
    float *e2 = scratch, *dist = scratch + V;  // (V), (rows, V)
    const float *zd = z->data, *cb = codebook->data;
    int32_t *out = idx->data;
#pragma omp parallel for schedule(static)
    for (int64_t v = 0; v < V; v++) {
        float s = 0;
        for (int64_t d = 0; d < D; d++) s += cb[v * D + d] * cb[v * D + d];
        e2[v] = s;
    }
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t n = N - r0 < rows ? N - r0 : rows;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float *zi = zd + (r0 + i) * D;
            float s = 0;
            for (int64_t d = 0; d < D; d++) s += zi[d] * zi[d];
            for (int64_t v = 0; v < V; v++) dist[i * V + v] = s + e2[v];
        }
        cpu_sgemm(true, n, V, D, -2.0f, zd + r0 * D, D, cb, D, 1.0f, dist, V);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float *di = dist + i * V;
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (di[v] < di[best]) best = v;
            out[r0 + i] = (int32_t)best;
        }
    }
    return KT_OK;
}
