// Elementwise ops and row softmax on the CPU, written like torch's CPU kernels (float32 math, same formula order).
// ref: F.gelu(approximate='tanh'), F.silu, torch.add / mul, F.softmax(-1); VAR demo_sample.ipynb uint8 conversion.
// Dims: N elements, V softmax row length.
#include <math.h>

#include "cpu_ops.h"

KtStatus cpu_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t n = kt_numel(x);
    const float *xd = x->data;
    float *yd = y->data;
    const float beta = (float)0.7978845608028654, kappa = 0.044715f;  // sqrt(2/pi)
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = xd[i], inner = beta * (v + kappa * (v * v * v));
        yd[i] = 0.5f * v * (1.0f + tanhf(inner));
    }
    return KT_OK;
}

KtStatus cpu_silu(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t n = kt_numel(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = xd[i] / (1.0f + expf(-xd[i]));
    return KT_OK;
}

// y (...) = a (...) + b (trailing part of a's shape), b repeating every nb elements.
KtStatus cpu_add(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b) {
    (void)be;
    int64_t n = kt_numel(a), nb = kt_numel(b);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
    if (n == 0 || nb == 0) return KT_OK;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n / nb; r++)
        for (int64_t j = 0; j < nb; j++) yd[r * nb + j] = ad[r * nb + j] + bd[j];
    return KT_OK;
}

KtStatus cpu_axpby(KtBackend *be, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b) {
    (void)be;
    int64_t n = kt_numel(a);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = alpha * ad[i] + beta * bd[i];
    return KT_OK;
}

// exp(x - max) normalised by the (double) sum, multiplied by its reciprocal as torch's vectorised kernel does.
// A row whose entries are all -inf has no mass anywhere: it becomes all zeros (torch gives NaN).
void cpu_softmax_row(float *row, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (row[i] > m || isnan(row[i])) m = row[i];
    if (m == -INFINITY) {
        for (int64_t i = 0; i < n; i++) row[i] = 0;
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        row[i] = expf(row[i] - m);
        s += row[i];
    }
    float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; i++) row[i] *= inv;
}

KtStatus cpu_softmax(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t N = kt_rows(x), V = kt_cols(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
        float *yr = yd + r * V;
        if (yr != xd + r * V)
            for (int64_t i = 0; i < V; i++) yr[i] = xd[r * V + i];
        cpu_softmax_row(yr, V);
    }
    return KT_OK;
}

// ((clamp(x, -1, 1) + 1) * 0.5) * 255, truncated toward zero (the VAR demo's img.add_(1).mul_(0.5), mul_(255),
// astype(uint8)). Non-finite inputs map to 0 and are counted.
KtStatus cpu_image_to_u8(KtBackend *be, KtTensor *y, const KtTensor *x, KtTensor *nonfinite) {
    (void)be;
    int64_t n = kt_numel(x), bad = 0;
    const float *xd = x->data;
    uint8_t *yd = y->data;
#pragma omp parallel for schedule(static) reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) {
        float v = xd[i];
        if (!isfinite(v)) {
            yd[i] = 0;
            bad++;
            continue;
        }
        v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
        yd[i] = (uint8_t)((v + 1.0f) * 0.5f * 255.0f);
    }
    if (nonfinite) *(int64_t *)nonfinite->data += bad;
    return KT_OK;
}

KtStatus cpu_count_nonfinite(KtBackend *be, KtTensor *count, const KtTensor *x) {
    (void)be;
    int64_t n = kt_numel(x), bad = 0;
    const float *xd = x->data;
#pragma omp parallel for schedule(static) reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) bad += !isfinite(xd[i]);
    *(int64_t *)count->data += bad;
    return KT_OK;
}

// The CPU's map dtype is float32, so the only conversion validated for it is float32 -> float32: a copy.
KtStatus cpu_convert(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t n = kt_numel(x);
    const float *xd = x->data;
    float *yd = y->data;
    if (yd == xd) return KT_OK;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = xd[i];
    return KT_OK;
}

// The reference of the fused op is the two ops in sequence (the same float operations as kt_linear + kt_gelu_tanh).
KtStatus cpu_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    KT_TRY(cpu_linear(be, y, x, w, b));
    return cpu_gelu_tanh(be, y, y);
}
