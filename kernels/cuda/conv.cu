// 2-D convolution (cross-correlation) on NHWC maps through cuDNN, with KRSC filters = our (Co, kh, kw, Ci).
// fp32 weights: cuDNN in fp32 with FMA-only kernels (no TF32) when the backend computes in fp32, so results match the
// CPU; TF32 allowed when the backend's matmul dtype is 16-bit. bf16/fp16 weights: the input is converted to the
// weight dtype in scratch, cuDNN computes with fp32 accumulation into a 16-bit output, and one pass converts it back
// to fp32 and adds the bias. cuDNN pads symmetrically only, so asymmetric padding (VAR's Downsample2x: bottom/right)
// is applied explicitly in that same input copy; 16-bit channel counts are padded to multiples of 8 (tensor-core
// kernels need it: conv_in has Ci = 3, conv_out Co = 3). A direct kernel covers anything cuDNN refuses.
// ref: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride)
// Dims: B batch, H/W input, Hp/Wp padded input, Ho/Wo output, Ci/Co channels (Cip/Cop padded), kh/kw kernel.
#include "cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONV_WS_CAP ((size_t)1 << 30)   // largest cuDNN workspace an algorithm may ask for
#define CONV_TUNE_WS ((size_t)128 << 20) // workspace offered to the algorithms timed at a shape's first run

struct CudaConvPlan {
    int64_t B, H, W, Ci, Co, kh, kw;
    int stride, pad[4], dt, strict;  // key (dt: weight dtype; strict: fp32 without TF32)
    bool explicit_pad;               // asymmetric: padded copy, cuDNN pad 0
    int64_t Hp, Wp, Cip, Cop, Ho, Wo;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    cudnnConvolutionFwdAlgo_t algo;
    cudnnMathType_t math;
    size_t ws;
    bool ok;                         // false: cuDNN has no algorithm (direct kernel)
    bool tuned;                      // algorithms timed (cudnnFind) on the first eager run of this shape
};

void cuda_convs_free(CudaImpl *c) {
    for (int i = 0; i < c->n_convs; i++) {
        CudaConvPlan *p = &c->convs[i];
        if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
        if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
        if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
        if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
    }
    free(c->convs);
    c->convs = NULL;
    c->n_convs = c->cap_convs = 0;
}

static cudnnDataType_t dnn_dt(int dt) {
    return dt == KT_BF16 ? CUDNN_DATA_BFLOAT16 : dt == KT_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

static KtStatus plan_build(KtBackend *be, CudaConvPlan *p) {
    CudaImpl *c = cuda_impl(be);
    cudnnDataType_t dt = dnn_dt(p->dt);
    int ph = p->explicit_pad ? 0 : p->pad[0], pw = p->explicit_pad ? 0 : p->pad[2];
    KT_CUDA_TRY(cudnnCreateTensorDescriptor(&p->xd));
    KT_CUDA_TRY(cudnnCreateTensorDescriptor(&p->yd));
    KT_CUDA_TRY(cudnnCreateFilterDescriptor(&p->wd));
    KT_CUDA_TRY(cudnnCreateConvolutionDescriptor(&p->cd));
    KT_CUDA_TRY(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, dt, (int)p->B, (int)p->Cip, (int)p->Hp, (int)p->Wp));
    KT_CUDA_TRY(cudnnSetFilter4dDescriptor(p->wd, dt, CUDNN_TENSOR_NHWC, (int)p->Cop, (int)p->Cip, (int)p->kh, (int)p->kw));
    KT_CUDA_TRY(cudnnSetConvolution2dDescriptor(p->cd, ph, pw, p->stride, p->stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
    KT_CUDA_TRY(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, dt, (int)p->B, (int)p->Cop, (int)p->Ho, (int)p->Wo));
    KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    KT_CUDA_TRY(cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, p->xd, p->wd, p->cd, p->yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > CONV_WS_CAP) continue;
        if (p->strict && perf[i].mathType != CUDNN_FMA_MATH) continue;  // DEFAULT_MATH may use TF32
        if (cudnnSetConvolutionMathType(p->cd, perf[i].mathType) != CUDNN_STATUS_SUCCESS) continue;
        size_t ws = 0;
        if (cudnnGetConvolutionForwardWorkspaceSize(c->dnn, p->xd, p->wd, p->cd, p->yd, perf[i].algo, &ws) !=
            CUDNN_STATUS_SUCCESS)
            continue;
        p->algo = perf[i].algo;
        p->math = perf[i].mathType;
        p->ws = ws;
        p->ok = true;
        break;
    }
    if (getenv("ARGEN_CUDA_VERBOSE"))
        fprintf(stderr, "argen cuda: conv (%lld,%lld,%lld,%lld)->%lld k%lldx%lld s%d %s%s: %s algo %d, %zu B workspace\n",
                (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip, (long long)p->Cop,
                (long long)p->kh, (long long)p->kw, p->stride, kt_dtype_name((KtDType)p->dt),
                p->strict ? " strict" : "", p->ok ? "cuDNN" : "direct kernel", p->ok ? (int)p->algo : -1, p->ws);
    return KT_OK;
}

static KtStatus plan_get(KtBackend *be, CudaConvPlan **out, const CudaConvPlan *key) {
    CudaImpl *c = cuda_impl(be);
    for (int i = 0; i < c->n_convs; i++) {
        CudaConvPlan *p = &c->convs[i];
        if (p->B == key->B && p->H == key->H && p->W == key->W && p->Ci == key->Ci && p->Co == key->Co &&
            p->kh == key->kh && p->kw == key->kw && p->stride == key->stride && !memcmp(p->pad, key->pad, sizeof p->pad) &&
            p->dt == key->dt && p->strict == key->strict) {
            *out = p;
            return KT_OK;
        }
    }
    if (c->n_convs == c->cap_convs) {
        int cap = c->cap_convs ? 2 * c->cap_convs : 32;
        CudaConvPlan *np = (CudaConvPlan *)realloc(c->convs, (size_t)cap * sizeof *np);
        if (!np) return KT_FAIL(KT_ERR_OOM, "kt_conv2d: out of host memory for conv plans");
        c->convs = np;
        c->cap_convs = cap;
    }
    CudaConvPlan *p = &c->convs[c->n_convs++];
    *p = *key;
    if (plan_build(be, p) != KT_OK) {  // descriptors cuDNN rejects: the direct kernel takes this shape
        p->ok = false;
        kt_clear_error();
    }
    *out = p;
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------------ kernels
template <typename T> __device__ __forceinline__ T cvt(float v);
template <> __device__ __forceinline__ float cvt<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half cvt<__half>(float v) { return __float2half_rn(v); }

// xp (B, Hp, Wp, Cip) <- x (B, H, W, Ci) shifted by (top, left), zero outside and in channels >= Ci.
template <typename T, typename IDX>
__global__ void conv_prep_kernel(T *__restrict__ xp, const float *__restrict__ x, IDX H, IDX W, IDX Ci, IDX Hp, IDX Wp,
                                 IDX Cip, int top, int left, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX c = i % Cip, p = i / Cip, ix = p % Wp, r = p / Wp, iy = r % Hp, b = r / Hp;
        int64_t sy = (int64_t)iy - top, sx = (int64_t)ix - left;
        float v = 0.f;
        if (c < Ci && sy >= 0 && sy < (int64_t)H && sx >= 0 && sx < (int64_t)W) v = x[((b * H + sy) * W + sx) * Ci + c];
        xp[i] = cvt<T>(v);
    }
}

// wp (Cop, kh, kw, Cip) <- w (Co, kh, kw, Ci), zero padded.
template <typename T>
__global__ void conv_wpad_kernel(T *__restrict__ wp, const T *__restrict__ w, int64_t Co, int64_t KK, int64_t Ci,
                                 int64_t Cip, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % Cip, r = i / Cip, k = r % KK, o = r / KK;
        wp[i] = (c < Ci && o < Co) ? w[(o * KK + k) * Ci + c] : cvt<T>(0.f);
    }
}

// y (P, Co) = (float)yo (P, Cop)[:, :Co] + b.
template <typename T, typename IDX>
__global__ void conv_finish_kernel(float *__restrict__ y, const T *__restrict__ yo, const float *__restrict__ b, IDX Co,
                                   IDX Cop, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX co = i % Co, p = i / Co;
        float v = to_f32(yo[p * Cop + co]);
        y[i] = b ? v + b[co] : v;
    }
}

// y (P, Co) += b in place.
template <typename IDX>
__global__ void bias_kernel(float *__restrict__ y, const float *__restrict__ b, IDX Co, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x)
        y[i] += b[i % Co];
}

// Direct convolution, one thread per output: the fallback for shapes cuDNN refuses. w: any float dtype.
template <typename WT>
__global__ void conv_direct_kernel(float *__restrict__ y, const float *__restrict__ x, const WT *__restrict__ w,
                                   const float *__restrict__ b, int64_t H, int64_t W, int64_t Ci, int64_t Ho,
                                   int64_t Wo, int64_t Co, int64_t kh, int64_t kw, int stride, int top, int left,
                                   int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t co = i % Co, p = i / Co, ox = p % Wo, r = p / Wo, oy = r % Ho, bb = r / Ho;
        float acc = 0.f;
        for (int64_t ky = 0; ky < kh; ky++) {
            int64_t iy = oy * stride - top + ky;
            if (iy < 0 || iy >= H) continue;
            for (int64_t kx = 0; kx < kw; kx++) {
                int64_t ix = ox * stride - left + kx;
                if (ix < 0 || ix >= W) continue;
                const float *xp = x + ((bb * H + iy) * W + ix) * Ci;
                const WT *wp = w + ((co * kh + ky) * kw + kx) * Ci;
                for (int64_t c = 0; c < Ci; c++) acc += xp[c] * to_f32(wp[c]);
            }
        }
        y[i] = b ? acc + b[co] : acc;
    }
}

// Few output channels (the decoder's conv_out: 160 -> 3): one warp per output pixel, lanes over the input channels
// of each tap (coalesced NHWC reads), all Co sums in fp32 registers, then warp reductions. The weights are
// converted once per block into shared memory. cuDNN needs 3.1 ms for (8, 256, 256, 160) -> 8 channels on H100 and
// a thread-per-pixel version 2.5 ms (uncoalesced 640-byte strides). w: (Co, kh, kw, Ci), any float dtype.
template <typename WT, int CO>
__global__ void __launch_bounds__(256)
conv_small_co_kernel(float *__restrict__ y, const float *__restrict__ x, const WT *__restrict__ w,
                     const float *__restrict__ b, int Co, int64_t H, int64_t W, int Ci, int64_t Ho, int64_t Wo, int kh,
                     int kw, int stride, int top, int left, int64_t npix) {
    extern __shared__ float wsm[];  // (Co, kh*kw*Ci)
    int KK = kh * kw * Ci, lane = threadIdx.x & 31;
    for (int i = threadIdx.x; i < Co * KK; i += blockDim.x) wsm[i] = to_f32(w[i]);
    __syncthreads();
    int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t p = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; p < npix; p += nwarps) {
        int64_t ox = p % Wo, r = p / Wo, oy = r % Ho, bb = r / Ho;
        float acc[CO];
#pragma unroll
        for (int o = 0; o < CO; o++) acc[o] = 0.f;
        for (int ky = 0; ky < kh; ky++) {
            int64_t iy = oy * stride - top + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < kw; kx++) {
                int64_t ix = ox * stride - left + kx;
                if (ix < 0 || ix >= W) continue;
                const float *xp = x + ((bb * H + iy) * W + ix) * Ci;
                const float *wk = wsm + (ky * kw + kx) * Ci;
                for (int c = lane; c < Ci; c += 32) {
                    float v = xp[c];
#pragma unroll
                    for (int o = 0; o < CO; o++)
                        if (o < Co) acc[o] += v * wk[o * KK + c];
                }
            }
        }
#pragma unroll
        for (int o = 0; o < CO; o++) acc[o] = warp_sum(acc[o]);
        if (lane == 0) {
#pragma unroll
            for (int o = 0; o < CO; o++)
                if (o < Co) y[p * Co + o] = b ? acc[o] + b[o] : acc[o];
        }
    }
}

template <typename WT>
static KtStatus run_small_co(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int stride, const int pad[4]) {
    int64_t npix = y->shape[0] * y->shape[1] * y->shape[2];
    int Co = (int)w->shape[0], kh = (int)w->shape[1], kw = (int)w->shape[2], Ci = (int)x->shape[3];
    size_t smem = (size_t)Co * kh * kw * Ci * sizeof(float);
    static size_t attr = 48 << 10;
    if (smem > attr) {
        KT_CUDA_TRY(cudaFuncSetAttribute(conv_small_co_kernel<WT, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem));
        attr = smem;
    }
    unsigned g = cuda_blocks_capped(npix * 32, 256, 16 * cuda_impl(be)->sm_count);
    conv_small_co_kernel<WT, 8><<<g, 256, smem, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, (const WT *)w->data, b ? (const float *)b->data : NULL, Co,
        x->shape[1], x->shape[2], Ci, y->shape[1], y->shape[2], kh, kw, stride, pad[0], pad[2], npix);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------------ launcher
// Times the candidate algorithms on the real buffers (cudnnFind, fastest first) and keeps the fastest one that fits
// `ws_size` and, in strict fp32, uses FMA math only. The heuristic's choice stays when nothing better runs.
static KtStatus conv_tune(KtBackend *be, CudaConvPlan *p, const void *xin, const void *win, void *yout, void *ws,
                          size_t ws_size) {
    CudaImpl *c = cuda_impl(be);
    p->tuned = true;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    cudnnStatus_t e = cudnnFindConvolutionForwardAlgorithmEx(c->dnn, p->xd, xin, p->wd, win, p->cd, p->yd, yout,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf, ws, ws_size);
    for (int i = 0; e == CUDNN_STATUS_SUCCESS && i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_size) continue;
        if (p->strict && perf[i].mathType != CUDNN_FMA_MATH) continue;
        p->algo = perf[i].algo;
        p->ws = perf[i].memory;
        p->math = perf[i].mathType;
        KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->math));
        if (getenv("ARGEN_CUDA_VERBOSE"))
            fprintf(stderr, "argen cuda: conv (%lld,%lld,%lld,%lld)->%lld timed: algo %d, %.3f ms, %zu B workspace\n",
                    (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip, (long long)p->Cop,
                    (int)p->algo, perf[i].time, p->ws);
        return KT_OK;
    }
    KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->math));  // keep the heuristic's choice
    return KT_OK;
}

template <typename IDX, typename T>
static void launch_prep(KtBackend *be, T *xp, const float *x, const CudaConvPlan *p, int top, int left, int64_t n) {
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    conv_prep_kernel<T, IDX><<<g, 256, 0, cuda_stream(be)>>>(xp, x, (IDX)p->H, (IDX)p->W, (IDX)p->Ci, (IDX)p->Hp,
                                                             (IDX)p->Wp, (IDX)p->Cip, top, left, (IDX)n);
}

template <typename T>
static KtStatus run_conv(KtBackend *be, CudaConvPlan *p, KtTensor *y, const KtTensor *x, const KtTensor *w,
                         const KtTensor *b) {
    CudaImpl *c = cuda_impl(be);
    cudaStream_t st = c->stream;
    bool is16 = p->dt != KT_F32;
    bool prep = p->explicit_pad || is16;  // fp32 never has channel padding
    bool wpad = is16 && (p->Cip != p->Ci || p->Cop != p->Co);
    bool own_out = is16;
    int64_t nx = p->B * p->Hp * p->Wp * p->Cip, nw = p->Cop * p->kh * p->kw * p->Cip, ny = p->B * p->Ho * p->Wo * p->Cop;
    bool tune = !p->tuned && !c->capturing;
    size_t ws_size = tune && p->ws < CONV_TUNE_WS ? CONV_TUNE_WS : p->ws;
    CudaCarve cv = {0};
    size_t ox = prep ? cuda_carve(&cv, (size_t)nx * sizeof(T)) : 0, ow = wpad ? cuda_carve(&cv, (size_t)nw * sizeof(T)) : 0;
    size_t oy = own_out ? cuda_carve(&cv, (size_t)ny * sizeof(T)) : 0, ows = cuda_carve(&cv, ws_size);
    void *s;
    KT_TRY(cuda_scratch(be, cv.off, &s));
    const void *xin = x->data, *win = w->data;
    void *yout = y->data;
    if (prep) {
        xin = (char *)s + ox;
        int top = p->explicit_pad ? p->pad[0] : 0, left = p->explicit_pad ? p->pad[2] : 0;
        if (nx < (1ll << 31)) launch_prep<uint32_t>(be, (T *)xin, (const float *)x->data, p, top, left, nx);
        else launch_prep<int64_t>(be, (T *)xin, (const float *)x->data, p, top, left, nx);
        KT_CUDA_LAUNCHED();
    }
    if (wpad) {
        win = (char *)s + ow;
        conv_wpad_kernel<T><<<cuda_blocks_capped(nw, 256, 4096), 256, 0, st>>>((T *)win, (const T *)w->data, p->Co,
                                                                               p->kh * p->kw, p->Ci, p->Cip, nw);
        KT_CUDA_LAUNCHED();
    }
    if (own_out) yout = (char *)s + oy;
    if (tune) KT_TRY(conv_tune(be, p, xin, win, yout, (char *)s + ows, ws_size));
    float one = 1.f, zero = 0.f;
    cudnnStatus_t e = cudnnConvolutionForward(c->dnn, &one, p->xd, xin, p->wd, win, p->cd, p->algo, (char *)s + ows,
                                              p->ws, &zero, p->yd, yout);
    if (e != CUDNN_STATUS_SUCCESS) {
        if (c->capturing) KT_CUDA_TRY(e);
        p->ok = false;  // e.g. an alignment the algorithm cannot take: use the direct kernel from now on
        return KT_ERR_UNSUPPORTED;
    }
    int64_t n = p->B * p->Ho * p->Wo * p->Co;
    const float *bp = b ? (const float *)b->data : NULL;
    unsigned g = cuda_blocks_capped(n, 256, 16 * c->sm_count);
    if (own_out) {
        if (n < (1ll << 31))
            conv_finish_kernel<T, uint32_t><<<g, 256, 0, st>>>((float *)y->data, (const T *)yout, bp, (uint32_t)p->Co,
                                                               (uint32_t)p->Cop, (uint32_t)n);
        else
            conv_finish_kernel<T, int64_t><<<g, 256, 0, st>>>((float *)y->data, (const T *)yout, bp, p->Co, p->Cop, n);
        KT_CUDA_LAUNCHED();
    } else if (bp) {
        if (n < (1ll << 31)) bias_kernel<uint32_t><<<g, 256, 0, st>>>((float *)y->data, bp, (uint32_t)p->Co, (uint32_t)n);
        else bias_kernel<int64_t><<<g, 256, 0, st>>>((float *)y->data, bp, p->Co, n);
        KT_CUDA_LAUNCHED();
    }
    return KT_OK;
}

template <typename WT>
static KtStatus run_direct(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                           int stride, const int pad[4]) {
    int64_t n = kt_numel(y);
    conv_direct_kernel<WT><<<cuda_blocks_capped(n, 128, 64 * cuda_impl(be)->sm_count), 128, 0, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, (const WT *)w->data, b ? (const float *)b->data : NULL,
        x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2], y->shape[3], w->shape[1], w->shape[2],
        stride, pad[0], pad[2], n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// x: (B, H, W, Ci); w: (Co, kh, kw, Ci); b: (Co) or NULL; pad = {top, bottom, left, right}; y: (B, Ho, Wo, Co).
KtStatus cuda_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                     const int pad[4]) {
    if (kt_numel(y) == 0) return KT_OK;
    if (w->shape[0] <= 8 && x->shape[3] > 0 && x->shape[3] < INT32_MAX &&
        (size_t)w->shape[0] * w->shape[1] * w->shape[2] * x->shape[3] * 4 <= cuda_impl(be)->smem_optin) {
        if (w->dtype == KT_BF16) return run_small_co<__nv_bfloat16>(be, y, x, w, b, stride, pad);
        if (w->dtype == KT_F16) return run_small_co<__half>(be, y, x, w, b, stride, pad);
        return run_small_co<float>(be, y, x, w, b, stride, pad);
    }
    CudaConvPlan key;
    memset(&key, 0, sizeof key);
    key.B = x->shape[0]; key.H = x->shape[1]; key.W = x->shape[2]; key.Ci = x->shape[3];
    key.Co = w->shape[0]; key.kh = w->shape[1]; key.kw = w->shape[2];
    key.stride = stride;
    memcpy(key.pad, pad, sizeof key.pad);
    key.dt = (int)w->dtype;
    key.strict = w->dtype == KT_F32 && be->matmul_dtype == KT_F32;
    key.explicit_pad = pad[0] != pad[1] || pad[2] != pad[3];
    key.Hp = key.explicit_pad ? key.H + pad[0] + pad[1] : key.H;
    key.Wp = key.explicit_pad ? key.W + pad[2] + pad[3] : key.W;
    bool is16 = w->dtype != KT_F32;
    key.Cip = is16 ? (key.Ci + 7) / 8 * 8 : key.Ci;
    key.Cop = is16 ? (key.Co + 7) / 8 * 8 : key.Co;
    key.Ho = y->shape[1];
    key.Wo = y->shape[2];
    bool fits = key.B < INT32_MAX && key.Hp < INT32_MAX && key.Wp < INT32_MAX && key.Cip < INT32_MAX &&
                key.Cop < INT32_MAX && key.kh < INT32_MAX && key.kw < INT32_MAX && key.Ci > 0;
    CudaConvPlan *p = NULL;
    if (fits) KT_TRY(plan_get(be, &p, &key));
    if (p && p->ok) {
        KtStatus s = w->dtype == KT_BF16 ? run_conv<__nv_bfloat16>(be, p, y, x, w, b)
                     : w->dtype == KT_F16 ? run_conv<__half>(be, p, y, x, w, b)
                                          : run_conv<float>(be, p, y, x, w, b);
        if (s != KT_ERR_UNSUPPORTED) return s;
    }
    if (w->dtype == KT_BF16) return run_direct<__nv_bfloat16>(be, y, x, w, b, stride, pad);
    if (w->dtype == KT_F16) return run_direct<__half>(be, y, x, w, b, stride, pad);
    return run_direct<float>(be, y, x, w, b, stride, pad);
}
