// Normalisation ops on the CPU: non-affine LayerNorm, AdaLN modulation, gated residuals, GroupNorm (+SiLU).
// Statistics are accumulated in double; the normalised value is then formed like torch's CPU kernels
// (y = x * rstd + (-mean * rstd), per-channel scale/bias for GroupNorm).
// ref: F.layer_norm, F.group_norm, VAR basic_var.py AdaLNSelfAttn / AdaLNBeforeHead
// Dims: B batch, T tokens, C channels, H/W spatial, G groups.
#include <math.h>

#include "cpu_ops.h"

// Pixels per GroupNorm statistics block: partial sums are per block and combined in block order, so the result
// does not depend on how blocks are spread over threads.
#define GN_BLOCK 256

// y[i] = (x[i] - mean) * rstd over one row of C.
static void ln_row(float *y, const float *x, int64_t C, float eps) {
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; c++) s += x[c];
    double mean = s / (double)C;
    for (int64_t c = 0; c < C; c++) {
        double d = x[c] - mean;
        ss += d * d;
    }
    double rstd = 1.0 / sqrt(ss / (double)C + (double)eps);
    float sc = (float)rstd, bi = (float)(-mean * rstd);
    for (int64_t c = 0; c < C; c++) y[c] = x[c] * sc + bi;
}

// y, x: (..., C).
KtStatus cpu_layernorm(KtBackend *be, KtTensor *y, const KtTensor *x, float eps) {
    (void)be;
    int64_t N = kt_rows(x), C = kt_cols(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) ln_row(yd + i * C, xd + i * C, C, eps);
    return KT_OK;
}

// y, x: (B, T, C); scale, shift: (B, C). y = x * (1 + scale) + shift, optionally after LayerNorm.
static void modulate(KtTensor *y, const KtTensor *x, const KtTensor *scale, const KtTensor *shift, bool norm,
                     float eps) {
    int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    const float *xd = x->data, *sc = scale->data, *sh = shift->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * T; r++) {
        const float *s = sc + (r / T) * C, *h = sh + (r / T) * C;
        float *yr = yd + r * C;
        if (norm) ln_row(yr, xd + r * C, C, eps);
        const float *src = norm ? yr : xd + r * C;
        for (int64_t c = 0; c < C; c++) yr[c] = src[c] * (s[c] + 1.0f) + h[c];
    }
}

KtStatus cpu_adaln_modulate(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift) {
    (void)be;
    modulate(y, x, scale, shift, false, 0);
    return KT_OK;
}

KtStatus cpu_layernorm_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                             const KtTensor *shift, float eps) {
    (void)be;
    modulate(y, x, scale, shift, true, eps);
    return KT_OK;
}

// x (B, T, C) += gate (B, C) * h (B, T, C).
KtStatus cpu_gated_residual(KtBackend *be, KtTensor *x, const KtTensor *h, const KtTensor *gate) {
    (void)be;
    int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    const float *hd = h->data, *gd = gate->data;
    float *xd = x->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * T; r++) {
        const float *g = gd + (r / T) * C, *hr = hd + r * C;
        float *xr = xd + r * C;
        for (int64_t c = 0; c < C; c++) xr[c] = xr[c] + hr[c] * g[c];
    }
    return KT_OK;
}

// x += gate * h, then y = LN(x) * (1 + scale) + shift: exactly the two ops in sequence.
KtStatus cpu_gated_residual_layernorm_adaln(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h,
                                            const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                            float eps) {
    KT_TRY(cpu_gated_residual(be, x, h, gate));
    return cpu_layernorm_adaln(be, y, x, scale, shift, eps);
}

// y, x: (B, H, W, C); w, b: (C). Pass 1: per-(sample, pixel block) group sums in double. Pass 2: per-sample
// per-channel scale/bias from the combined sums. Pass 3: y = x * scale + bias (then SiLU).
static KtStatus group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                           int G, float eps, bool silu) {
    int64_t B = x->shape[0], P = x->shape[1] * x->shape[2], C = x->shape[3], cpg = C / G;
    int64_t nblk = (P + GN_BLOCK - 1) / GN_BLOCK;
    size_t part_bytes = (size_t)(B * nblk * G * 2) * sizeof(double);
    char *scratch;
    KT_TRY(cpu_scratch(be, part_bytes + (size_t)(2 * B * C) * sizeof(float), (void **)&scratch));
    double *part = (double *)scratch;                           // (B, nblk, G, 2)
    float *csc = (float *)(scratch + part_bytes), *cbi = csc + B * C;  // (B, C) each
    const float *xd = x->data, *wd = w->data, *bd = b->data;
    float *yd = y->data;

#pragma omp parallel for schedule(static)
    for (int64_t bk = 0; bk < B * nblk; bk++) {
        int64_t bi = bk / nblk, p0 = (bk % nblk) * GN_BLOCK, p1 = p0 + GN_BLOCK < P ? p0 + GN_BLOCK : P;
        double *pr = part + bk * G * 2;
        for (int64_t g = 0; g < 2 * G; g++) pr[g] = 0;
        for (int64_t p = p0; p < p1; p++) {
            const float *px = xd + (bi * P + p) * C;
            for (int64_t g = 0; g < G; g++) {
                double s = 0, ss = 0;
                for (int64_t j = 0; j < cpg; j++) {
                    double v = px[g * cpg + j];
                    s += v;
                    ss += v * v;
                }
                pr[2 * g] += s;
                pr[2 * g + 1] += ss;
            }
        }
    }
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < G; g++) {
            double s = 0, ss = 0, n = (double)(P * cpg);
            for (int64_t k = 0; k < nblk; k++) {
                s += part[((bi * nblk + k) * G + g) * 2];
                ss += part[((bi * nblk + k) * G + g) * 2 + 1];
            }
            double mean = s / n, var = ss / n - mean * mean;
            double rstd = 1.0 / sqrt((var > 0 ? var : 0) + (double)eps);
            for (int64_t j = 0; j < cpg; j++) {
                int64_t c = g * cpg + j;
                csc[bi * C + c] = (float)(rstd * wd[c]);
                cbi[bi * C + c] = (float)(bd[c] - mean * rstd * wd[c]);
            }
        }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * P; r++) {
        const float *sc = csc + (r / P) * C, *bi = cbi + (r / P) * C, *xr = xd + r * C;
        float *yr = yd + r * C;
        if (silu) {
            for (int64_t c = 0; c < C; c++) {
                float v = xr[c] * sc[c] + bi[c];
                yr[c] = v / (1.0f + expf(-v));
            }
        } else {
            for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * sc[c] + bi[c];
        }
    }
    return KT_OK;
}

KtStatus cpu_group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                        int groups, float eps) {
    return group_norm(be, y, x, w, b, groups, eps, false);
}

KtStatus cpu_group_norm_silu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int groups, float eps) {
    return group_norm(be, y, x, w, b, groups, eps, true);
}
