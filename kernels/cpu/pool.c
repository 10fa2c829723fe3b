// The FID Inception-v3's non-conv ops on NHWC maps: folded BatchNorm + ReLU, max and average pooling (TF "SAME"
// averaging over in-bounds taps), the global spatial mean (pool3) and channel-slice copies (branch concatenation).
// Each output element is computed by one thread in a fixed order, as torch's CPU kernels do for NCHW float32.
// ref: F.relu(x * scale + shift), F.max_pool2d, F.avg_pool2d(count_include_pad=False), F.adaptive_avg_pool2d(x, 1);
//      aten MaxPoolKernel.cpp, AvgPoolKernel.cpp; spec/fid.md sections 1.2-1.5
// Dims: B batch, H/W input size, Ho/Wo output size, C channels, k kernel size.
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

// y[..., yc0 + c] = max(x[..., c] * scale[c] + shift[c], 0). x: (..., C); y: (..., Cy), rows as x's; NaN stays NaN
// (as torch's relu). In place when y = x (then yc0 = 0, Cy = C): each element is read before it is written.
KtStatus cpu_channel_affine_relu(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                 const KtTensor *shift) {
    (void)be;
    int64_t N = kt_rows(x), C = kt_cols(x), Cy = kt_cols(y);
    const float *xd = x->data, *sc = scale->data, *sh = shift->data;
    float *yd = (float *)y->data + yc0;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++)
        for (int64_t c = 0; c < C; c++) {
            float v = xd[r * C + c] * sc[c] + sh[c];
            yd[r * Cy + c] = v < 0.0f ? 0.0f : v;
        }
    return KT_OK;
}

// In-bounds window [*lo, *hi) of output index o along an axis of size n.
static void pool_window(int64_t o, int64_t n, int k, int stride, int pad, int64_t *lo, int64_t *hi) {
    int64_t s = o * stride - pad, e = s + k;
    *lo = s < 0 ? 0 : s;
    *hi = e > n ? n : e;
}

// x: (B, H, W, C); y: (B, Ho, Wo, C). Per output pixel: the in-bounds taps in (ky, kx) order; max takes a tap when
// `v > max || isnan(v)` (aten's test: NaN wins), average sums in float32 and divides by the tap count.
static void pool2d(KtTensor *y, const KtTensor *x, int k, int stride, int pad, bool avg) {
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = y->shape[1], Wo = y->shape[2];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho, y0, y1;
        pool_window(oy, H, k, stride, pad, &y0, &y1);
        for (int64_t ox = 0; ox < Wo; ox++) {
            int64_t x0, x1;
            pool_window(ox, W, k, stride, pad, &x0, &x1);
            float *dst = yd + (r * Wo + ox) * C;
            for (int64_t c = 0; c < C; c++) dst[c] = avg ? 0.0f : -INFINITY;
            for (int64_t iy = y0; iy < y1; iy++)
                for (int64_t ix = x0; ix < x1; ix++) {
                    const float *src = xd + ((b * H + iy) * W + ix) * C;
                    if (avg) {
                        for (int64_t c = 0; c < C; c++) dst[c] += src[c];
                    } else {
                        for (int64_t c = 0; c < C; c++)
                            if (src[c] > dst[c] || isnan(src[c])) dst[c] = src[c];
                    }
                }
            if (avg) {
                float count = (float)((y1 - y0) * (x1 - x0));
                for (int64_t c = 0; c < C; c++) dst[c] = dst[c] / count;
            }
        }
    }
}

KtStatus cpu_max_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    (void)be;
    pool2d(y, x, k, stride, pad, false);
    return KT_OK;
}

KtStatus cpu_avg_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    (void)be;
    pool2d(y, x, k, stride, pad, true);
    return KT_OK;
}

// x: (B, H, W, C); y: (B, C) = float32 sum over (h, w) in row-major order, / (H * W).
KtStatus cpu_spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t B = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *dst = yd + b * C;
        for (int64_t c = 0; c < C; c++) dst[c] = 0.0f;
        for (int64_t p = 0; p < HW; p++)
            for (int64_t c = 0; c < C; c++) dst[c] += xd[(b * HW + p) * C + c];
        for (int64_t c = 0; c < C; c++) dst[c] = dst[c] / (float)HW;
    }
    return KT_OK;
}

// y[..., yc0 + i] = x[..., xc0 + i], i < n. x: (B, H, W, Cx); y: (B, H, W, Cy).
KtStatus cpu_copy_channels(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n) {
    (void)be;
    int64_t P = kt_rows(x), Cx = x->shape[3], Cy = y->shape[3];
    const float *xd = x->data;
    float *yd = y->data;
    if (n == 0) return KT_OK;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++) memcpy(yd + p * Cy + yc0, xd + p * Cx + xc0, (size_t)n * sizeof(float));
    return KT_OK;
}
