// Spatial resampling on NHWC maps: nearest 2x, PyTorch's bicubic (A = -0.75, align_corners=False, no antialias)
// and area (= adaptive average pooling). Both resizes reproduce torch's CPU kernels operation by operation on NCHW
// float32 (spec/var.md §1.5), only with channels innermost. Also the FID Inception input (8-bit image -> bilinear
// resize -> [-1, 1]) in pytorch-fid's and the ADM evaluator's (TF1 legacy grid) variants (spec/fid.md §1.1).
// ref: F.interpolate(mode='nearest' / 'bicubic' / 'area' / 'bilinear'); aten UpSampleKernel.cpp,
//      AdaptiveAvgPoolKernel.cpp; TF1 ResizeBilinear (legacy grid); shared/reference/fid_numpy.py preprocess_*
// Dims: B batch, H/W input size, Ho/Wo output size, C channels.
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

// x: (B, H, W, C); y: (B, 2H, 2W, C).
KtStatus cpu_upsample_nearest2x(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    const float *xd = x->data;
    float *yd = y->data;
    size_t px = (size_t)C * sizeof(float);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * 2 * H; r++) {
        int64_t b = r / (2 * H), oy = r % (2 * H);
        const float *src = xd + (b * H + oy / 2) * W * C;
        float *dst = yd + r * 2 * W * C;
        for (int64_t ox = 0; ox < 2 * W; ox++) memcpy(dst + ox * C, src + (ox / 2) * C, px);
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------------ bicubic
typedef struct {
    int64_t idx[4];
    float w[4];
} CubicTaps;

static float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static float cubic2(float x, float A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

// Taps of output coordinate o for input size n: scale = (float)n / out in float32; the source coordinate is
// formed in double and rounded to float (scale * (o + 0.5) - 0.5, as aten's area_pixel_compute_source_index);
// taps i0-1..i0+2 are clamped to the border.
static CubicTaps cubic_taps(int64_t n, int64_t out, int64_t o) {
    const float A = -0.75f;
    float scale = (float)n / (float)out;
    float src = (float)((double)scale * ((double)o + 0.5) - 0.5);
    float fl = floorf(src);
    float t = src - fl;
    int64_t i0 = (int64_t)fl;
    CubicTaps c;
    c.w[0] = cubic2((float)((double)t + 1.0), A);
    c.w[1] = cubic1(t, A);
    float t2 = (float)(1.0 - (double)t);
    c.w[2] = cubic1(t2, A);
    c.w[3] = cubic2((float)((double)t2 + 1.0), A);
    for (int j = 0; j < 4; j++) {
        int64_t i = i0 - 1 + j;
        c.idx[j] = i < 0 ? 0 : i > n - 1 ? n - 1 : i;
    }
    return c;
}

// x: (B, H, W, C); y: (B, Ho, Wo, C). For each of the 4 tap rows interpolate along x, then combine along y, each
// sum accumulated left to right (aten's Interpolate<2>::eval order).
KtStatus cpu_resize_bicubic(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = y->shape[1], Wo = y->shape[2];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho;
        CubicTaps ty = cubic_taps(H, Ho, oy);
        for (int64_t ox = 0; ox < Wo; ox++) {
            CubicTaps tx = cubic_taps(W, Wo, ox);
            const float *p[4][4];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) p[i][j] = xd + ((b * H + ty.idx[i]) * W + tx.idx[j]) * C;
            float *dst = yd + (r * Wo + ox) * C;
            for (int64_t c = 0; c < C; c++) {
                float out = 0;
                for (int i = 0; i < 4; i++) {
                    float t = p[i][0][c] * tx.w[0];
                    t += p[i][1][c] * tx.w[1];
                    t += p[i][2][c] * tx.w[2];
                    t += p[i][3][c] * tx.w[3];
                    if (i == 0)
                        out = t * ty.w[0];
                    else
                        out += t * ty.w[i];
                }
                dst[c] = out;
            }
        }
    }
    return KT_OK;
}

// --------------------------------------------------------------------------------------------------------- area
// Window of output index a for input size n -> out: [floor(a*n/out), ceil((a+1)*n/out)).
static void area_window(int64_t n, int64_t out, int64_t a, int64_t *s, int64_t *e) {
    *s = (a * n) / out;
    *e = ((a + 1) * n + out - 1) / out;
}

// x: (B, H, W, C); y: (B, Ho, Wo, C). Per output pixel: float sum in (iy, ix) row-major order, then / kh / kw
// (aten's cpu_adaptive_avg_pool).
KtStatus cpu_resize_area(KtBackend *be, KtTensor *y, const KtTensor *x) {
    (void)be;
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = y->shape[1], Wo = y->shape[2];
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho, y0, y1;
        area_window(H, Ho, oy, &y0, &y1);
        for (int64_t ox = 0; ox < Wo; ox++) {
            int64_t x0, x1;
            area_window(W, Wo, ox, &x0, &x1);
            float *dst = yd + (r * Wo + ox) * C;
            for (int64_t c = 0; c < C; c++) dst[c] = 0;
            for (int64_t iy = y0; iy < y1; iy++)
                for (int64_t ix = x0; ix < x1; ix++) {
                    const float *src = xd + ((b * H + iy) * W + ix) * C;
                    for (int64_t c = 0; c < C; c++) dst[c] += src[c];
                }
            float kh = (float)(y1 - y0), kw = (float)(x1 - x0);
            for (int64_t c = 0; c < C; c++) dst[c] = dst[c] / kh / kw;
        }
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------------- FID preprocessing
typedef struct {
    int64_t lo, hi;
    float w0, w1;  // PYTORCH: weights of lo and hi; ADM: w1 is the lerp fraction
} LinTap;

// Taps of output coordinate o for input size n -> out, scale = (float)n / out in float32.
// PYTORCH: aten's compute_source_index_and_lambda with its CPU acc_type (double): s = scale * (o + 0.5) - 0.5 in
// double, clamped at 0; w1 = (float)(s - lo), w0 = 1 - w1. ADM (TF1 legacy): s = o * scale in float32, no shift.
static LinTap lin_tap(int64_t n, int64_t out, int64_t o, KtFidResize mode) {
    float scale = (float)n / (float)out;
    LinTap t;
    if (mode == KT_FID_RESIZE_PYTORCH) {
        double s = (double)scale * ((double)o + 0.5) - 0.5;
        if (s < 0) s = 0;
        t.lo = (int64_t)s;
        t.hi = t.lo + (t.lo < n - 1);
        double l = s - (double)t.lo;
        t.w1 = (float)(l > 1 ? 1 : l);
        t.w0 = 1.0f - t.w1;
    } else {
        float s = (float)o * scale;
        t.lo = (int64_t)floorf(s);
        if (t.lo > n - 1) t.lo = n - 1;  // invariant guard: o * scale < n for every o < out
        t.hi = t.lo + 1 < n - 1 ? t.lo + 1 : n - 1;
        t.w1 = s - (float)t.lo;
        t.w0 = 1.0f - t.w1;
    }
    return t;
}

// x: (B, H, W, 3) uint8; y: (B, Ho, Wo, 3) float32. Interpolation along x (rows lo and hi), then along y, in the
// float operations of kt_fid_preprocess's comment (ops.h); fmaf is exact fused multiply-add (C99), as aten's AVX2
// build contracts its `t0 * w0 + t1 * w1`.
KtStatus cpu_fid_preprocess(KtBackend *be, KtTensor *y, const KtTensor *x, KtFidResize mode) {
    (void)be;
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = y->shape[1], Wo = y->shape[2];
    const uint8_t *xd = x->data;
    float *yd = y->data;
    bool pt = mode == KT_FID_RESIZE_PYTORCH;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < B * Ho; r++) {
        int64_t b = r / Ho, oy = r % Ho;
        LinTap ty = lin_tap(H, Ho, oy, mode);
        const uint8_t *row0 = xd + (b * H + ty.lo) * W * C, *row1 = xd + (b * H + ty.hi) * W * C;
        for (int64_t ox = 0; ox < Wo; ox++) {
            LinTap tx = lin_tap(W, Wo, ox, mode);
            float *dst = yd + (r * Wo + ox) * C;
            for (int64_t c = 0; c < C; c++) {
                float tl = row0[tx.lo * C + c], tr = row0[tx.hi * C + c];
                float bl = row1[tx.lo * C + c], br = row1[tx.hi * C + c];
                if (pt) {
                    tl /= 255.0f, tr /= 255.0f, bl /= 255.0f, br /= 255.0f;
                    float t0 = fmaf(tx.w0, tl, tx.w1 * tr), t1 = fmaf(tx.w0, bl, tx.w1 * br);
                    float v = fmaf(ty.w0, t0, ty.w1 * t1);
                    dst[c] = 2.0f * v - 1.0f;
                } else {
                    float top = tl + (tr - tl) * tx.w1, bottom = bl + (br - bl) * tx.w1;
                    float v = top + (bottom - top) * ty.w1;
                    dst[c] = (v - 128.0f) * 0.0078125f;
                }
            }
        }
    }
    return KT_OK;
}
