// NHWC 2-D convolution (cross-correlation) on the CPU: im2col in bounded row chunks + one tiled SGEMM per chunk.
// A 1x1, stride-1, unpadded conv is a plain GEMM over pixels. Padding is explicit and may be asymmetric
// (VAR's Downsample2x pads bottom/right only).
// ref: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride)
// Dims: B batch, H/W input size, Ho/Wo output size, Ci/Co channels, kh/kw kernel, K = kh*kw*Ci, P = B*Ho*Wo pixels.
#include <string.h>

#include "cpu_ops.h"

typedef struct {
    const float *x;
    int64_t H, W, Ci, Ho, Wo, kh, kw;
    int stride, top, left;
} Im2col;

// One row of the column matrix: the (kh, kw, Ci) patch under output pixel p (zeros outside the image), in the same
// order as the weights' (kh, kw, Ci) so the GEMM contracts them directly.
static void im2col_row(const Im2col *c, int64_t p, float *row) {
    int64_t b = p / (c->Ho * c->Wo), oy = p / c->Wo % c->Ho, ox = p % c->Wo;
    int64_t y0 = oy * c->stride - c->top, x0 = ox * c->stride - c->left;
    size_t px = (size_t)c->Ci * sizeof(float);
    for (int64_t ky = 0; ky < c->kh; ky++) {
        int64_t iy = y0 + ky;
        float *dst = row + ky * c->kw * c->Ci;
        if (iy < 0 || iy >= c->H) {
            memset(dst, 0, px * (size_t)c->kw);
            continue;
        }
        const float *src = c->x + ((b * c->H + iy) * c->W) * c->Ci;
        for (int64_t kx = 0; kx < c->kw; kx++) {
            int64_t ix = x0 + kx;
            if (ix < 0 || ix >= c->W)
                memset(dst + kx * c->Ci, 0, px);
            else
                memcpy(dst + kx * c->Ci, src + ix * c->Ci, px);
        }
    }
}

// y rows [p0, p0 + n) (Co each) <- bias, so the GEMM can accumulate with beta = 1.
static void fill_bias(float *y, const KtTensor *b, int64_t n, int64_t Co) {
    if (!b) return;
    const float *bd = b->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) memcpy(y + i * Co, bd, (size_t)Co * sizeof(float));
}

// x: (B, H, W, Ci); w: (Co, kh, kw, Ci); b: (Co) or NULL; pad = {top, bottom, left, right}; y: (B, Ho, Wo, Co).
KtStatus cpu_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                    const int pad[4]) {
    Im2col c = {.x = x->data, .H = x->shape[1], .W = x->shape[2], .Ci = x->shape[3], .Ho = y->shape[1],
                .Wo = y->shape[2], .kh = w->shape[1], .kw = w->shape[2], .stride = stride, .top = pad[0],
                .left = pad[2]};
    int64_t Co = w->shape[0], K = c.kh * c.kw * c.Ci, P = y->shape[0] * c.Ho * c.Wo;
    float *yd = y->data;
    const float *wd = w->data;
    KT_TRY(cpu_blas_dims("kt_conv2d", P, K, Co));
    if (P == 0 || Co == 0) return KT_OK;
    float beta = b ? 1.0f : 0.0f;
    if (c.kh == 1 && c.kw == 1 && stride == 1 && !pad[0] && !pad[1] && !pad[2] && !pad[3]) {
        fill_bias(yd, b, P, Co);
        cpu_sgemm(true, P, Co, K, 1.0f, c.x, K, wd, K, beta, yd, Co);
        return KT_OK;
    }
    int64_t rows = (int64_t)(CPU_CHUNK_BYTES / ((size_t)K * sizeof(float)));
    if (rows < 1) rows = 1;
    if (rows > P) rows = P;
    float *cols;  // (rows, K)
    KT_TRY(cpu_scratch(be, (size_t)(rows * K) * sizeof(float), (void **)&cols));
    for (int64_t p0 = 0; p0 < P; p0 += rows) {
        int64_t n = P - p0 < rows ? P - p0 : rows;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) im2col_row(&c, p0 + i, cols + i * K);
        fill_bias(yd + p0 * Co, b, n, Co);
        cpu_sgemm(true, n, Co, K, 1.0f, cols, K, wd, K, beta, yd + p0 * Co, Co);
    }
    return KT_OK;
}

// y = max(conv(x, w) + b, 0): the conv with its bias, then ReLU in place (NaN stays NaN).
KtStatus cpu_conv2d_bias_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                              int stride, const int pad[4]) {
    KT_TRY(cpu_conv2d(be, y, x, w, b, stride, pad));
    float *yd = y->data;
    int64_t n = kt_numel(y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) yd[i] = yd[i] < 0.0f ? 0.0f : yd[i];
    return KT_OK;
}
