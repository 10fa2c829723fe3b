// Spatial resampling on NHWC maps: nearest 2x, PyTorch's bicubic (A = -0.75, align_corners=False, border-clamped
// taps, no antialias) and area (adaptive average pooling). The resizes repeat the CPU reference's float operations
// in its order (tap weights, x pass then y pass, left-to-right sums) with round-to-nearest intrinsics, so both
// backends give the same bits.
// ref: F.interpolate(mode='nearest' / 'bicubic' / 'area'); spec/var.md §1.5; kernels/cpu/resample.c
// Dims: B batch, H/W input size, Ho/Wo output size, C channels.
#include "cuda_common.cuh"

#define RS_THREADS 256

// y[b, oy, ox, c] = x[b, oy/2, ox/2, c]. x: (B, H, W, C); y: (B, 2H, 2W, C), any dtype: each pixel's channels are
// moved as Cu units of type U (16, 4 or 2 bytes).
template <typename U>
__global__ void upsample2x_kernel(U *__restrict__ y, const U *__restrict__ x, int64_t H, int64_t W, int64_t Cu,
                                  int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % Cu, p = i / Cu, ox = p % (2 * W), r = p / (2 * W), oy = r % (2 * H), b = r / (2 * H);
        y[i] = x[((b * H + oy / 2) * W + ox / 2) * Cu + c];
    }
}

template <typename U>
static KtStatus upsample_units(KtBackend *be, KtTensor *y, const KtTensor *x, int64_t row_bytes) {
    int64_t Cu = row_bytes / (int64_t)sizeof(U), n = kt_numel(y) / x->shape[3] * Cu;
    unsigned cap = 16 * cuda_impl(be)->sm_count;
    upsample2x_kernel<U><<<cuda_blocks_capped(n, RS_THREADS, cap), RS_THREADS, 0, cuda_stream(be)>>>(
        (U *)y->data, (const U *)x->data, x->shape[1], x->shape[2], Cu, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_upsample_nearest2x(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t es = (int64_t)kt_dtype_size(x->dtype), row = x->shape[3] * es;
    if (kt_numel(y) == 0) return KT_OK;
    if (row % 16 == 0 && cuda_aligned(x->data, 16) && cuda_aligned(y->data, 16)) return upsample_units<uint4>(be, y, x, row);
    if (es == 4) return upsample_units<uint32_t>(be, y, x, row);
    return upsample_units<uint16_t>(be, y, x, row);
}

// ------------------------------------------------------------------------------------------------------ bicubic
struct CubicTaps {
    int64_t idx[4];
    float w[4];
};

__device__ __forceinline__ float cubic1(float x, float A) {  // ((A + 2) x - (A + 3)) x x + 1
    return __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(__fmul_rn(__fadd_rn(A, 2.f), x), __fadd_rn(A, 3.f)), x), x), 1.f);
}
__device__ __forceinline__ float cubic2(float x, float A) {  // ((A x - 5A) x + 8A) x - 4A
    float t = __fsub_rn(__fmul_rn(A, x), __fmul_rn(5.f, A));
    t = __fadd_rn(__fmul_rn(t, x), __fmul_rn(8.f, A));
    return __fsub_rn(__fmul_rn(t, x), __fmul_rn(4.f, A));
}

// Taps of output coordinate o for input size n: scale = (float)n / out; src = (float)(scale * (o + 0.5) - 0.5) in
// double; taps i0-1..i0+2 clamped to [0, n-1].
__device__ CubicTaps cubic_taps(int64_t n, int64_t out, int64_t o) {
    const float A = -0.75f;
    float scale = __fdiv_rn((float)n, (float)out);
    float src = (float)((double)scale * ((double)o + 0.5) - 0.5);
    float fl = floorf(src);
    float t = __fsub_rn(src, fl);
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

// One thread per output element: x pass over the 4 tap rows, then the y pass. x: (B, H, W, C); y: (B, Ho, Wo, C).
__global__ void bicubic_kernel(float *__restrict__ y, const float *__restrict__ x, int64_t H, int64_t W, int64_t Ho,
                               int64_t Wo, int64_t C, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, p = i / C, ox = p % Wo, r = p / Wo, oy = r % Ho, b = r / Ho;
        CubicTaps ty = cubic_taps(H, Ho, oy), tx = cubic_taps(W, Wo, ox);
        float out = 0.f;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float *row = x + ((b * H + ty.idx[k]) * W) * C + c;
            float t = __fmul_rn(row[tx.idx[0] * C], tx.w[0]);
            t = __fadd_rn(t, __fmul_rn(row[tx.idx[1] * C], tx.w[1]));
            t = __fadd_rn(t, __fmul_rn(row[tx.idx[2] * C], tx.w[2]));
            t = __fadd_rn(t, __fmul_rn(row[tx.idx[3] * C], tx.w[3]));
            out = k == 0 ? __fmul_rn(t, ty.w[0]) : __fadd_rn(out, __fmul_rn(t, ty.w[k]));
        }
        y[i] = out;
    }
}

KtStatus cuda_resize_bicubic(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t H = x->shape[1], W = x->shape[2], C = x->shape[3], Ho = y->shape[1], Wo = y->shape[2], n = kt_numel(y);
    if (n == 0) return KT_OK;
    bicubic_kernel<<<cuda_blocks_capped(n, RS_THREADS, 16 * cuda_impl(be)->sm_count), RS_THREADS, 0, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, H, W, Ho, Wo, C, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// --------------------------------------------------------------------------------------------------------- area
// Output a averages input indices [floor(a*n/out), ceil((a+1)*n/out)): float sum in (iy, ix) order, / kh / kw.
__global__ void area_kernel(float *__restrict__ y, const float *__restrict__ x, int64_t H, int64_t W, int64_t Ho,
                            int64_t Wo, int64_t C, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, p = i / C, ox = p % Wo, r = p / Wo, oy = r % Ho, b = r / Ho;
        int64_t y0 = (oy * H) / Ho, y1 = ((oy + 1) * H + Ho - 1) / Ho;
        int64_t x0 = (ox * W) / Wo, x1 = ((ox + 1) * W + Wo - 1) / Wo;
        float s = 0.f;
        for (int64_t iy = y0; iy < y1; iy++)
            for (int64_t ix = x0; ix < x1; ix++) s = __fadd_rn(s, x[((b * H + iy) * W + ix) * C + c]);
        y[i] = __fdiv_rn(__fdiv_rn(s, (float)(y1 - y0)), (float)(x1 - x0));
    }
}

KtStatus cuda_resize_area(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t H = x->shape[1], W = x->shape[2], C = x->shape[3], Ho = y->shape[1], Wo = y->shape[2], n = kt_numel(y);
    if (n == 0) return KT_OK;
    area_kernel<<<cuda_blocks_capped(n, RS_THREADS, 16 * cuda_impl(be)->sm_count), RS_THREADS, 0, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, H, W, Ho, Wo, C, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}
