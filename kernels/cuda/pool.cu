// The FID Inception-v3's non-conv ops on NHWC maps: the 8-bit input pipeline (bilinear resize to 299, pytorch-fid
// and ADM/TF1 variants), folded BatchNorm + ReLU, max and average pooling (TF "SAME" averaging over in-bounds
// taps), the global spatial mean (pool3) and channel-slice copies (branch concatenation). One thread per output
// element repeats the CPU reference's float operations in its order with round-to-nearest intrinsics (fused only
// where the reference fuses: the pytorch-fid resize), so both backends give the same bits. Maps are float32 or the
// backend's 16-bit map dtype, computed in float32 and rounded once on store.
// ref: kernels/cpu/pool.c, kernels/cpu/resample.c cpu_fid_preprocess; spec/fid.md sections 1.1-1.5
// Dims: B batch, H/W input size, Ho/Wo output size, C channels, k kernel size.
#include "cuda_common.cuh"

#define POOL_THREADS 256

#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                       \
         i += (int64_t)gridDim.x * blockDim.x)

static inline unsigned pool_grid(KtBackend *be, int64_t n) {
    return cuda_blocks_capped(n, POOL_THREADS, (int64_t)cuda_impl(be)->sm_count * 16);
}

// ------------------------------------------------------------------------------------------- FID preprocessing
struct LinTap {
    int64_t lo, hi;
    float w0, w1;  // PYTORCH: weights of lo and hi; ADM: w1 is the lerp fraction
};

// Taps of output coordinate o for input size n -> out (cpu_fid_preprocess's lin_tap): scale = (float)n / out;
// PYTORCH: s = scale * (o + 0.5) - 0.5 in double (exact: a 24-bit scale times a short o + 0.5), clamped at 0,
// w1 = (float)(s - lo), w0 = 1 - w1; ADM: s = o * scale in float32.
__device__ LinTap lin_tap(int64_t n, int64_t out, int64_t o, bool pt) {
    float scale = __fdiv_rn((float)n, (float)out);
    LinTap t;
    if (pt) {
        double s = __dadd_rn(__dmul_rn((double)scale, (double)o + 0.5), -0.5);
        if (s < 0) s = 0;
        t.lo = (int64_t)s;
        t.hi = t.lo + (t.lo < n - 1);
        double l = s - (double)t.lo;
        t.w1 = __double2float_rn(l > 1 ? 1 : l);
    } else {
        float s = __fmul_rn((float)o, scale);
        t.lo = (int64_t)floorf(s);
        if (t.lo > n - 1) t.lo = n - 1;
        t.hi = t.lo + 1 < n - 1 ? t.lo + 1 : n - 1;
        t.w1 = __fsub_rn(s, (float)t.lo);
    }
    t.w0 = __fsub_rn(1.f, t.w1);
    return t;
}

// x: (B, H, W, C) uint8; y: (B, Ho, Wo, C) float32.
__global__ void fid_preprocess_kernel(float *__restrict__ y, const uint8_t *__restrict__ x, int64_t H, int64_t W,
                                      int64_t Ho, int64_t Wo, int64_t C, bool pt, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t c = i % C, p = i / C, ox = p % Wo, r = p / Wo, oy = r % Ho, b = r / Ho;
        LinTap ty = lin_tap(H, Ho, oy, pt), tx = lin_tap(W, Wo, ox, pt);
        const uint8_t *row0 = x + (b * H + ty.lo) * W * C + c, *row1 = x + (b * H + ty.hi) * W * C + c;
        float tl = row0[tx.lo * C], tr = row0[tx.hi * C], bl = row1[tx.lo * C], br = row1[tx.hi * C];
        if (pt) {
            tl = __fdiv_rn(tl, 255.f), tr = __fdiv_rn(tr, 255.f), bl = __fdiv_rn(bl, 255.f), br = __fdiv_rn(br, 255.f);
            float t0 = __fmaf_rn(tx.w0, tl, __fmul_rn(tx.w1, tr)), t1 = __fmaf_rn(tx.w0, bl, __fmul_rn(tx.w1, br));
            float v = __fmaf_rn(ty.w0, t0, __fmul_rn(ty.w1, t1));
            y[i] = __fsub_rn(__fmul_rn(2.f, v), 1.f);
        } else {
            float top = __fadd_rn(tl, __fmul_rn(__fsub_rn(tr, tl), tx.w1));
            float bottom = __fadd_rn(bl, __fmul_rn(__fsub_rn(br, bl), tx.w1));
            float v = __fadd_rn(top, __fmul_rn(__fsub_rn(bottom, top), ty.w1));
            y[i] = __fmul_rn(__fsub_rn(v, 128.f), 0.0078125f);
        }
    }
}

KtStatus cuda_fid_preprocess(KtBackend *be, KtTensor *y, const KtTensor *x, KtFidResize mode) {
    int64_t H = x->shape[1], W = x->shape[2], C = x->shape[3], Ho = y->shape[1], Wo = y->shape[2], n = kt_numel(y);
    if (n == 0) return KT_OK;
    fid_preprocess_kernel<<<pool_grid(be, n), POOL_THREADS, 0, cuda_stream(be)>>>(
        (float *)y->data, (const uint8_t *)x->data, H, W, Ho, Wo, C, mode == KT_FID_RESIZE_PYTORCH, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ----------------------------------------------------------------------------------------- folded BN + ReLU
// Both kernels below take N channels per thread (one 16-byte pack when C and the pointers allow, else N = 1) and index
// in IDX (uint32_t when every index fits): 64-bit divisions per element had made them the slow part of a batch.
template <typename T> static int pack_width(int64_t C, const void *y, const void *x) {
    int n = 16 / (int)sizeof(T);
    return C % n == 0 && cuda_aligned(y, 16) && cuda_aligned(x, 16) ? n : 1;
}

// y[p, yc0 + c] = max(x[p, c] * scale[c] + shift[c], 0) (NaN stays NaN) for pixel p. x: (P, C); y: (P, Cy), in
// place when y = x, Cy = C, yc0 = 0; T: float32 or the 16-bit map dtype. In packs of N channels: CN = C / N,
// CYN = Cy / N, Y0N = yc0 / N, n = P * CN.
template <typename T, int N, typename IDX>
__global__ void affine_relu_kernel(T *y, const T *x, const float *__restrict__ scale, const float *__restrict__ shift,
                                   IDX CN, IDX CYN, IDX Y0N, IDX n) {
    for (IDX i = (IDX)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX p = i / CN, cp = i - p * CN, c0 = cp * N;
        CudaPack<T, N> v = ((const CudaPack<T, N> *)x)[i];
#pragma unroll
        for (int j = 0; j < N; j++) {
            float f = __fadd_rn(__fmul_rn(to_f32(v.v[j]), scale[c0 + j]), shift[c0 + j]);
            v.v[j] = from_f32<T>(f < 0.f ? 0.f : f);
        }
        ((CudaPack<T, N> *)y)[p * CYN + Y0N + cp] = v;
    }
}

template <typename T, int N, typename IDX>
static void affine_relu_launch(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                               const KtTensor *shift, int64_t n) {
    affine_relu_kernel<T, N, IDX><<<pool_grid(be, n / N), POOL_THREADS, 0, cuda_stream(be)>>>(
        (T *)y->data, (const T *)x->data, (const float *)scale->data, (const float *)shift->data,
        (IDX)(kt_cols(x) / N), (IDX)(kt_cols(y) / N), (IDX)(yc0 / N), (IDX)(n / N));
}

template <typename T>
static KtStatus affine_relu(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift) {
    int64_t n = kt_numel(x), ny = kt_numel(y);
    if (n == 0) return KT_OK;
    constexpr int NP = 16 / sizeof(T);
    // 16-byte packs: C, Cy and yc0 whole packs (so every pack of y starts 16-byte aligned with y's pointer)
    bool wide = pack_width<T>(kt_cols(x), y->data, x->data) == NP && kt_cols(y) % NP == 0 && yc0 % NP == 0;
    bool small = n < INT32_MAX && ny < INT32_MAX;
    if (wide && small) affine_relu_launch<T, NP, uint32_t>(be, y, yc0, x, scale, shift, n);
    else if (wide) affine_relu_launch<T, NP, int64_t>(be, y, yc0, x, scale, shift, n);
    else if (small) affine_relu_launch<T, 1, uint32_t>(be, y, yc0, x, scale, shift, n);
    else affine_relu_launch<T, 1, int64_t>(be, y, yc0, x, scale, shift, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_channel_affine_relu(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                  const KtTensor *shift) {
    if (x->dtype == KT_BF16) return affine_relu<__nv_bfloat16>(be, y, yc0, x, scale, shift);
    if (x->dtype == KT_F16) return affine_relu<__half>(be, y, yc0, x, scale, shift);
    return affine_relu<float>(be, y, yc0, x, scale, shift);
}

// --------------------------------------------------------------------------------------------------- pooling
// One thread per N adjacent output channels of a pixel: the in-bounds taps of its k x k window in (ky, kx) order.
// Max takes a tap when v > max or v is NaN (aten's test); average sums in float32 and divides by the tap count.
// x: (B, H, W, C); y: (B, Ho, Wo, C); CN = C / N, n = numel(y) / N.
template <typename T, bool AVG, int N, typename IDX>
__global__ void pool_kernel(T *__restrict__ y, const T *__restrict__ x, IDX H, IDX W, IDX Ho, IDX Wo, IDX CN, int k,
                            int stride, int pad, IDX n) {
    typedef CudaPack<T, N> P;
    for (IDX i = (IDX)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX c = i % CN, p = i / CN, ox = p % Wo, r = p / Wo, oy = r % Ho, b = r / Ho;
        int y0 = (int)oy * stride - pad, x0 = (int)ox * stride - pad, y1 = y0 + k, x1 = x0 + k;
        y0 = y0 < 0 ? 0 : y0, x0 = x0 < 0 ? 0 : x0, y1 = y1 > (int)H ? (int)H : y1, x1 = x1 > (int)W ? (int)W : x1;
        float acc[N];
#pragma unroll
        for (int j = 0; j < N; j++) acc[j] = AVG ? 0.f : -INFINITY;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
                P v = ((const P *)x)[((b * H + (IDX)iy) * W + (IDX)ix) * CN + c];
#pragma unroll
                for (int j = 0; j < N; j++) {
                    float f = to_f32(v.v[j]);
                    if (AVG) acc[j] = __fadd_rn(acc[j], f);
                    else if (f > acc[j] || f != f) acc[j] = f;
                }
            }
        P o;
#pragma unroll
        for (int j = 0; j < N; j++) o.v[j] = from_f32<T>(AVG ? __fdiv_rn(acc[j], (float)((y1 - y0) * (x1 - x0))) : acc[j]);
        ((P *)y)[i] = o;
    }
}

template <typename T, bool AVG, int N, typename IDX>
static void pool_launch(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    int64_t n = kt_numel(y) / N;
    pool_kernel<T, AVG, N, IDX><<<pool_grid(be, n), POOL_THREADS, 0, cuda_stream(be)>>>(
        (T *)y->data, (const T *)x->data, (IDX)x->shape[1], (IDX)x->shape[2], (IDX)y->shape[1], (IDX)y->shape[2],
        (IDX)(x->shape[3] / N), k, stride, pad, (IDX)n);
}

template <typename T, bool AVG>
static void pool_pick(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    constexpr int NP = 16 / sizeof(T);
    bool wide = pack_width<T>(x->shape[3], y->data, x->data) == NP;
    bool small = kt_numel(x) < INT32_MAX && kt_numel(y) < INT32_MAX;
    if (wide && small) pool_launch<T, AVG, NP, uint32_t>(be, y, x, k, stride, pad);
    else if (wide) pool_launch<T, AVG, NP, int64_t>(be, y, x, k, stride, pad);
    else if (small) pool_launch<T, AVG, 1, uint32_t>(be, y, x, k, stride, pad);
    else pool_launch<T, AVG, 1, int64_t>(be, y, x, k, stride, pad);
}

template <typename T>
static KtStatus pool(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad, bool avg) {
    if (kt_numel(y) == 0) return KT_OK;
    if (x->shape[1] > INT32_MAX / 2 || x->shape[2] > INT32_MAX / 2)
        return KT_FAIL(KT_ERR_SHAPE, "kt_pool2d: %lld x %lld maps are too large", (long long)x->shape[1],
                       (long long)x->shape[2]);
    if (avg) pool_pick<T, true>(be, y, x, k, stride, pad);
    else pool_pick<T, false>(be, y, x, k, stride, pad);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

static KtStatus pool_any(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad, bool avg) {
    if (x->dtype == KT_BF16) return pool<__nv_bfloat16>(be, y, x, k, stride, pad, avg);
    if (x->dtype == KT_F16) return pool<__half>(be, y, x, k, stride, pad, avg);
    return pool<float>(be, y, x, k, stride, pad, avg);
}

KtStatus cuda_max_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    return pool_any(be, y, x, k, stride, pad, false);
}

KtStatus cuda_avg_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    return pool_any(be, y, x, k, stride, pad, true);
}

// ------------------------------------------------------------------------------------------------ spatial mean
// One thread per (b, c): float32 sum over the H*W pixels in row-major order, then / (H*W). x: (B, H, W, C);
// y: (B, C) float32. Consecutive threads read consecutive channels (coalesced).
template <typename T>
__global__ void spatial_mean_kernel(float *__restrict__ y, const T *__restrict__ x, int64_t HW, int64_t C, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t c = i % C, b = i / C;
        const T *src = x + b * HW * C + c;
        float s = 0.f;
        for (int64_t p = 0; p < HW; p++) s = __fadd_rn(s, to_f32(src[p * C]));
        y[i] = __fdiv_rn(s, (float)HW);
    }
}

template <typename T>
static KtStatus spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t HW = x->shape[1] * x->shape[2], C = x->shape[3], n = kt_numel(y);
    if (n == 0) return KT_OK;
    spatial_mean_kernel<T><<<pool_grid(be, n), POOL_THREADS, 0, cuda_stream(be)>>>((float *)y->data,
                                                                                  (const T *)x->data, HW, C, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x) {
    if (x->dtype == KT_BF16) return spatial_mean<__nv_bfloat16>(be, y, x);
    if (x->dtype == KT_F16) return spatial_mean<__half>(be, y, x);
    return spatial_mean<float>(be, y, x);
}

// ----------------------------------------------------------------------------------------------- channel copy
// y[..., yc0 + i] = x[..., xc0 + i], i < n: one strided 2-D copy (rows = pixels), any dtype, graph-capturable.
KtStatus cuda_copy_channels(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n) {
    size_t es = kt_dtype_size(x->dtype);
    int64_t P = kt_rows(x);
    if (n == 0 || P == 0) return KT_OK;
    KT_CUDA_TRY(cudaMemcpy2DAsync((char *)y->data + (size_t)yc0 * es, (size_t)y->shape[3] * es,
                                  (const char *)x->data + (size_t)xc0 * es, (size_t)x->shape[3] * es, (size_t)n * es,
                                  (size_t)P, cudaMemcpyDeviceToDevice, cuda_stream(be)));
    return KT_OK;
}
