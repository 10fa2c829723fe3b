// 2-D convolution (cross-correlation) on NHWC maps through cuDNN, with KRSC filters = our (Co, kh, kw, Ci).
// fp32 weights: cuDNN in fp32 with FMA-only kernels (no TF32) when the backend computes in fp32, so results match the
// CPU; TF32 allowed when the backend's matmul dtype is 16-bit. bf16/fp16 weights: maps already in the weight dtype
// (the backend's map dtype) go to cuDNN as they are, fp32 maps are converted in scratch; cuDNN computes with fp32
// accumulation into a 16-bit output, written straight into a 16-bit y (then the bias in place) or into scratch and
// converted by the pass that adds the bias. cuDNN pads symmetrically only, so asymmetric padding (VAR's Downsample2x: bottom/right)
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
    bool relu;                       // key: kt_conv2d_bias_relu (ReLU after the bias; perhaps one fused cuDNN call)
    bool bias;                       // key: a bias is added (16-bit: perhaps in the fused call, see below)
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
    // a bias with 16-bit weights: y = [ReLU](conv + bias) as one cudnnConvolutionBiasActivationForward when `fused`
    // (chosen by conv_tune) with its own algorithm, math type and workspace; bd/ad NULL: cuDNN refused them
    cudnnTensorDescriptor_t bd;      // the bias, (1, Cop, 1, 1) in the weight dtype (cuDNN's documented config)
    cudnnTensorDescriptor_t bd32;    // the same in float32 (the caller's bias as it is), tried where bd is refused
    cudnnActivationDescriptor_t ad;  // ReLU (NaN propagated), or IDENTITY (cuDNN: IMPLICIT_PRECOMP_GEMM only)
    bool fused;
    bool fbias32;                    // the fused call takes the float32 bias (bd32)
    cudnnConvolutionFwdAlgo_t falgo;
    cudnnMathType_t fmath;
    size_t fws;
};

void cuda_convs_free(CudaImpl *c) {
    for (int i = 0; i < c->n_convs; i++) {
        CudaConvPlan *p = &c->convs[i];
        if (p->xd) cudnnDestroyTensorDescriptor(p->xd);
        if (p->yd) cudnnDestroyTensorDescriptor(p->yd);
        if (p->wd) cudnnDestroyFilterDescriptor(p->wd);
        if (p->cd) cudnnDestroyConvolutionDescriptor(p->cd);
        if (p->bd) cudnnDestroyTensorDescriptor(p->bd);
        if (p->bd32) cudnnDestroyTensorDescriptor(p->bd32);
        if (p->ad) cudnnDestroyActivationDescriptor(p->ad);
    }
    free(c->convs);
    c->convs = NULL;
    c->n_convs = c->cap_convs = 0;
}

static cudnnDataType_t dnn_dt(int dt) {
    return dt == KT_BF16 ? CUDNN_DATA_BFLOAT16 : dt == KT_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

// The fused call's bias and activation descriptors (left NULL when cuDNN refuses them: no fusion then).
static void fuse_descs(CudaConvPlan *p) {
    bool ok = cudnnCreateTensorDescriptor(&p->bd) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(p->bd, CUDNN_TENSOR_NHWC, dnn_dt(p->dt), 1, (int)p->Cop, 1, 1) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnCreateTensorDescriptor(&p->bd32) == CUDNN_STATUS_SUCCESS &&
              cudnnSetTensor4dDescriptor(p->bd32, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, (int)p->Cop, 1, 1) ==
                  CUDNN_STATUS_SUCCESS &&
              cudnnCreateActivationDescriptor(&p->ad) == CUDNN_STATUS_SUCCESS &&
              cudnnSetActivationDescriptor(p->ad, p->relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                           CUDNN_PROPAGATE_NAN, 0.0) == CUDNN_STATUS_SUCCESS;
    if (ok) return;
    if (p->bd) cudnnDestroyTensorDescriptor(p->bd);
    if (p->bd32) cudnnDestroyTensorDescriptor(p->bd32);
    if (p->ad) cudnnDestroyActivationDescriptor(p->ad);
    p->bd = p->bd32 = NULL;
    p->ad = NULL;
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
    if (p->ok && p->bias && p->dt != KT_F32) fuse_descs(p);
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
            p->dt == key->dt && p->strict == key->strict && p->relu == key->relu &&
            p->bias == key->bias) {
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
// xp (B, Hp, Wp, Cip) <- x (B, H, W, Ci) shifted by (top, left), zero outside and in channels >= Ci.
template <typename T, typename XT, typename IDX>
__global__ void conv_prep_kernel(T *__restrict__ xp, const XT *__restrict__ x, IDX H, IDX W, IDX Ci, IDX Hp, IDX Wp,
                                 IDX Cip, int top, int left, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX c = i % Cip, p = i / Cip, ix = p % Wp, r = p / Wp, iy = r % Hp, b = r / Hp;
        int64_t sy = (int64_t)iy - top, sx = (int64_t)ix - left;
        float v = 0.f;
        if (c < Ci && sy >= 0 && sy < (int64_t)H && sx >= 0 && sx < (int64_t)W)
            v = to_f32(x[((b * H + sy) * W + sx) * Ci + c]);
        xp[i] = from_f32<T>(v);
    }
}

// wp (Cop, kh, kw, Cip) <- w (Co, kh, kw, Ci), zero padded.
template <typename T>
__global__ void conv_wpad_kernel(T *__restrict__ wp, const T *__restrict__ w, int64_t Co, int64_t KK, int64_t Ci,
                                 int64_t Cip, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % Cip, r = i / Cip, k = r % KK, o = r / KK;
        wp[i] = (c < Ci && o < Co) ? w[(o * KK + k) * Ci + c] : from_f32<T>(0.f);
    }
}

// ReLU that keeps NaN (as kt_channel_affine_relu and the CPU): the finishing passes of kt_conv2d_bias_relu.
template <bool RELU>
__device__ __forceinline__ float conv_act(float v) { return RELU && v < 0.f ? 0.f : v; }

// y (P, Co) = (YT)act((float)yo (P, Cop)[:, :Co] + b).
template <typename T, typename YT, typename IDX, bool RELU>
__global__ void conv_finish_kernel(YT *__restrict__ y, const T *__restrict__ yo, const float *__restrict__ b, IDX Co,
                                   IDX Cop, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x) {
        IDX co = i % Co, p = i / Co;
        float v = to_f32(yo[p * Cop + co]);
        y[i] = from_f32<YT>(conv_act<RELU>(b ? v + b[co] : v));
    }
}

// 16-bit y (P, Co) = act(y + b) in place, 8 channels per thread (Co % 8 == 0, y 16-byte aligned).
template <typename T, typename IDX, bool RELU>
__global__ void bias16_kernel(CudaPack<T, 8> *__restrict__ y, const float *__restrict__ b, IDX Co8, IDX n8) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n8; i += (IDX)gridDim.x * blockDim.x) {
        CudaPack<T, 8> v = y[i];
        const float *bp = b + (i % Co8) * 8;
#pragma unroll
        for (int j = 0; j < 8; j++) v.v[j] = from_f32<T>(conv_act<RELU>(to_f32(v.v[j]) + bp[j]));
        y[i] = v;
    }
}

// y (P, Co) = act(y + b) in place.
template <typename IDX, bool RELU>
__global__ void bias_kernel(float *__restrict__ y, const float *__restrict__ b, IDX Co, IDX n) {
    for (IDX i = blockIdx.x * (IDX)blockDim.x + threadIdx.x; i < n; i += (IDX)gridDim.x * blockDim.x)
        y[i] = conv_act<RELU>(y[i] + b[i % Co]);
}

// y = ReLU(y) in place (after the small-Co and direct kernels, which add the bias themselves).
template <typename T>
__global__ void relu_kernel(T *__restrict__ y, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f32<T>(conv_act<true>(to_f32(y[i])));
}

// Direct convolution, one thread per output: the fallback for shapes cuDNN refuses. w: any float dtype.
template <typename WT, typename XT, typename YT>
__global__ void conv_direct_kernel(YT *__restrict__ y, const XT *__restrict__ x, const WT *__restrict__ w,
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
                const XT *xp = x + ((bb * H + iy) * W + ix) * Ci;
                const WT *wp = w + ((co * kh + ky) * kw + kx) * Ci;
                for (int64_t c = 0; c < Ci; c++) acc += to_f32(xp[c]) * to_f32(wp[c]);
            }
        }
        y[i] = from_f32<YT>(b ? acc + b[co] : acc);
    }
}

// Few output channels (the decoder's conv_out: 160 -> 3): one warp per output pixel, lanes over the input channels
// of each tap (coalesced NHWC reads), all Co sums in fp32 registers, then warp reductions. The weights are
// converted once per block into shared memory. cuDNN needs 3.1 ms for (8, 256, 256, 160) -> 8 channels on H100 and
// a thread-per-pixel version 2.5 ms (uncoalesced 640-byte strides). w: (Co, kh, kw, Ci), any float dtype.
template <typename WT, typename XT, typename YT, int CO>
__global__ void __launch_bounds__(256)
conv_small_co_kernel(YT *__restrict__ y, const XT *__restrict__ x, const WT *__restrict__ w,
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
                const XT *xp = x + ((bb * H + iy) * W + ix) * Ci;
                const float *wk = wsm + (ky * kw + kx) * Ci;
                for (int c = lane; c < Ci; c += 32) {
                    float v = to_f32(xp[c]);
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
                if (o < Co) y[p * Co + o] = from_f32<YT>(b ? acc[o] + b[o] : acc[o]);
        }
    }
}

// Few output channels, stride 1, kernels up to 3x3: a 16x16 tile of output pixels per block, one pixel per thread.
// Per chunk of SC_CC input channels the (16+kh-1, 16+kw-1) input tile and the chunk's weights go to shared memory
// as float (pixel stride SC_PS: 16-byte rows, no bank conflicts for the float4 reads); every input value is then
// read from global memory ~1.3 times instead of once per tap and output channel. H100, (8, 256, 256, 160) bf16 -> 3:
// 0.585 ms (7.7 TFLOP/s); the warp-per-pixel kernel below (now only for strides > 1 or larger kernels) took 1.69 ms.
#define SC_TILE 16
#define SC_CC 16
#define SC_PS (SC_CC + 4)
template <typename WT, typename XT, typename YT, int CO>
__global__ void __launch_bounds__(SC_TILE *SC_TILE)
conv_small_co_tiled_kernel(YT *__restrict__ y, const XT *__restrict__ x, const WT *__restrict__ w,
                           const float *__restrict__ b, int Co, int H, int W, int Ci, int Ho, int Wo, int kh, int kw,
                           int top, int left, int tiles_x) {
    __shared__ __align__(16) float xt[(SC_TILE + 2) * (SC_TILE + 2) * SC_PS];
    __shared__ __align__(16) float wt[CO * 9 * SC_CC];
    int tx = threadIdx.x % SC_TILE, ty = threadIdx.x / SC_TILE, KK = kh * kw;
    int x0 = (blockIdx.x % tiles_x) * SC_TILE, y0 = (blockIdx.x / tiles_x) * SC_TILE;
    int TW = SC_TILE + kw - 1, TH = SC_TILE + kh - 1;
    int64_t bb = blockIdx.y;
    float acc[CO];
#pragma unroll
    for (int o = 0; o < CO; o++) acc[o] = 0.f;
    for (int c0 = 0; c0 < Ci; c0 += SC_CC) {
        __syncthreads();  // the previous chunk's reads are done
        for (int i = threadIdx.x; i < TH * TW * SC_CC; i += blockDim.x) {
            int c = i % SC_CC, p = i / SC_CC, px = p % TW, py = p / TW;
            int iy = y0 - top + py, ix = x0 - left + px;
            float v = 0.f;
            if (c0 + c < Ci && iy >= 0 && iy < H && ix >= 0 && ix < W) v = to_f32(x[((bb * H + iy) * W + ix) * Ci + c0 + c]);
            xt[p * SC_PS + c] = v;
        }
        for (int i = threadIdx.x; i < CO * KK * SC_CC; i += blockDim.x) {
            int c = i % SC_CC, r = i / SC_CC, k = r % KK, o = r / KK;
            wt[(o * 9 + k) * SC_CC + c] = o < Co && c0 + c < Ci ? to_f32(w[((int64_t)o * KK + k) * Ci + c0 + c]) : 0.f;
        }
        __syncthreads();
        for (int ky = 0; ky < kh; ky++)
            for (int kx = 0; kx < kw; kx++) {
                const float4 *xp = (const float4 *)(xt + ((ty + ky) * TW + tx + kx) * SC_PS);
                const float4 *wp = (const float4 *)(wt + (ky * kw + kx) * SC_CC);
#pragma unroll
                for (int c4 = 0; c4 < SC_CC / 4; c4++) {
                    float4 v = xp[c4];
#pragma unroll
                    for (int o = 0; o < CO; o++) {
                        float4 q = wp[o * 9 * SC_CC / 4 + c4];
                        acc[o] += v.x * q.x + v.y * q.y + v.z * q.z + v.w * q.w;
                    }
                }
            }
    }
    int ox = x0 + tx, oy = y0 + ty;
    if (ox >= Wo || oy >= Ho) return;
    YT *yp = y + ((bb * Ho + oy) * Wo + ox) * Co;
#pragma unroll
    for (int o = 0; o < CO; o++)
        if (o < Co) yp[o] = from_f32<YT>(b ? acc[o] + b[o] : acc[o]);
}

template <typename WT, typename XT, typename YT>
static KtStatus run_small_co(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int stride, const int pad[4]) {
    int64_t npix = y->shape[0] * y->shape[1] * y->shape[2];
    if (stride == 1 && w->shape[1] <= 3 && w->shape[2] <= 3 && x->shape[0] <= 65535 && y->shape[1] < (1 << 20) &&
        y->shape[2] < (1 << 20) && x->shape[1] < (1 << 20) && x->shape[2] < (1 << 20)) {
        int Ho = (int)y->shape[1], Wo = (int)y->shape[2], tiles_x = (Wo + SC_TILE - 1) / SC_TILE;
        int64_t tiles = (int64_t)tiles_x * ((Ho + SC_TILE - 1) / SC_TILE);
        if (tiles <= INT32_MAX) {
            dim3 grid((unsigned)tiles, (unsigned)x->shape[0]);
            const float *bp = b ? (const float *)b->data : NULL;
            int Co = (int)w->shape[0], H = (int)x->shape[1], W = (int)x->shape[2], Ci = (int)x->shape[3];
            int kh = (int)w->shape[1], kw = (int)w->shape[2];
            if (Co <= 4)
                conv_small_co_tiled_kernel<WT, XT, YT, 4><<<grid, SC_TILE * SC_TILE, 0, cuda_stream(be)>>>(
                    (YT *)y->data, (const XT *)x->data, (const WT *)w->data, bp, Co, H, W, Ci, Ho, Wo, kh, kw, pad[0],
                    pad[2], tiles_x);
            else
                conv_small_co_tiled_kernel<WT, XT, YT, 8><<<grid, SC_TILE * SC_TILE, 0, cuda_stream(be)>>>(
                    (YT *)y->data, (const XT *)x->data, (const WT *)w->data, bp, Co, H, W, Ci, Ho, Wo, kh, kw, pad[0],
                    pad[2], tiles_x);
            KT_CUDA_LAUNCHED();
            return KT_OK;
        }
    }
    int Co = (int)w->shape[0], kh = (int)w->shape[1], kw = (int)w->shape[2], Ci = (int)x->shape[3];
    size_t smem = (size_t)Co * kh * kw * Ci * sizeof(float);
    // Set on every call (the attribute belongs to the current device's context; cheap, capturable), to the largest
    // size used so far: never lowered under a kernel captured earlier with a larger one.
    static size_t high = 48u << 10;
    if (smem > high) high = smem;
    if (high > (48u << 10))
        KT_CUDA_TRY(cudaFuncSetAttribute(conv_small_co_kernel<WT, XT, YT, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)high));
    unsigned g = cuda_blocks_capped(npix * 32, 256, 16 * cuda_impl(be)->sm_count);
    conv_small_co_kernel<WT, XT, YT, 8><<<g, 256, smem, cuda_stream(be)>>>(
        (YT *)y->data, (const XT *)x->data, (const WT *)w->data, b ? (const float *)b->data : NULL, Co,
        x->shape[1], x->shape[2], Ci, y->shape[1], y->shape[2], kh, kw, stride, pad[0], pad[2], npix);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------------ launcher
// Mean time of one algorithm over CONV_TUNE_REPS runs after an untimed one (which loads its kernels); < 0 when
// cuDNN refuses to run it.
#define CONV_TUNE_REPS 3
static float conv_time_algo(CudaImpl *c, CudaConvPlan *p, const cudnnConvolutionFwdAlgoPerf_t *a, const void *xin,
                            const void *win, void *yout, void *ws, cudaEvent_t e0, cudaEvent_t e1) {
    float one = 1.f, zero = 0.f, ms = -1.f;
    if (cudnnSetConvolutionMathType(p->cd, a->mathType) != CUDNN_STATUS_SUCCESS) return -1.f;
    for (int r = 0; r <= CONV_TUNE_REPS; r++) {
        if (r == 1 && cudaEventRecord(e0, c->stream) != cudaSuccess) return -1.f;
        if (cudnnConvolutionForward(c->dnn, &one, p->xd, xin, p->wd, win, p->cd, a->algo, ws, a->memory, &zero, p->yd,
                                    yout) != CUDNN_STATUS_SUCCESS)
            return -1.f;
    }
    if (cudaEventRecord(e1, c->stream) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
        cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
        return -1.f;
    return ms / CONV_TUNE_REPS;
}

template <typename IDX, typename T, typename XT>
static void launch_prep(KtBackend *be, T *xp, const XT *x, const CudaConvPlan *p, int top, int left, int64_t n) {
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    conv_prep_kernel<T, XT, IDX><<<g, 256, 0, cuda_stream(be)>>>(xp, x, (IDX)p->H, (IDX)p->W, (IDX)p->Ci, (IDX)p->Hp,
                                                             (IDX)p->Wp, (IDX)p->Cip, top, left, (IDX)n);
}

// The pass after cuDNN: y = act(yout[:, :Co] + b) out of scratch (own_out: padded channels or an fp32 y), or the
// bias (and ReLU) in place; nothing when there is neither a bias nor scratch.
template <typename T, bool RELU>
static void finish(KtBackend *be, const CudaConvPlan *p, KtTensor *y, const void *yout, const float *bp,
                   bool own_out) {
    CudaImpl *c = cuda_impl(be);
    cudaStream_t st = c->stream;
    bool y16 = y->dtype != KT_F32;
    int64_t ny = p->B * p->Ho * p->Wo * p->Cop;
    int64_t n = p->B * p->Ho * p->Wo * p->Co;
    unsigned g = cuda_blocks_capped(n, 256, 16 * c->sm_count);
    bool small = ny < (1ll << 31);  // the kernel reads yo up to ny (Cop >= Co)
    if (own_out && y16) {
        if (small)
            conv_finish_kernel<T, T, uint32_t, RELU><<<g, 256, 0, st>>>((T *)y->data, (const T *)yout, bp,
                                                                        (uint32_t)p->Co, (uint32_t)p->Cop, (uint32_t)n);
        else
            conv_finish_kernel<T, T, int64_t, RELU><<<g, 256, 0, st>>>((T *)y->data, (const T *)yout, bp, p->Co,
                                                                       p->Cop, n);
    } else if (own_out) {
        if (small)
            conv_finish_kernel<T, float, uint32_t, RELU><<<g, 256, 0, st>>>((float *)y->data, (const T *)yout, bp,
                                                                      (uint32_t)p->Co, (uint32_t)p->Cop, (uint32_t)n);
        else
            conv_finish_kernel<T, float, int64_t, RELU><<<g, 256, 0, st>>>((float *)y->data, (const T *)yout, bp, p->Co,
                                                                     p->Cop, n);
    } else if (bp && y16) {  // Co == Cop is a multiple of 8 and y 16-byte aligned here
        unsigned g8 = cuda_blocks_capped(n / 8, 256, 16 * c->sm_count);
        if (small)
            bias16_kernel<T, uint32_t, RELU><<<g8, 256, 0, st>>>((CudaPack<T, 8> *)y->data, bp, (uint32_t)(p->Co / 8),
                                                           (uint32_t)(n / 8));
        else
            bias16_kernel<T, int64_t, RELU><<<g8, 256, 0, st>>>((CudaPack<T, 8> *)y->data, bp, p->Co / 8, n / 8);
    } else if (bp) {
        if (small) bias_kernel<uint32_t, RELU><<<g, 256, 0, st>>>((float *)y->data, bp, (uint32_t)p->Co, (uint32_t)n);
        else bias_kernel<int64_t, RELU><<<g, 256, 0, st>>>((float *)y->data, bp, p->Co, n);
    }
}

// Picks the algorithm for a shape on its first eager run: cudnnFind lists the candidates, then each one that fits
// `ws_size` (and, in strict fp32, uses FMA math only) is timed here on the real buffers and the fastest kept.
// cudnnFind's own ranking is not trusted: with lazy module loading its single timed run of an algorithm can include
// loading that algorithm's kernels, and at batch 1 it ranked a non-tensor-core engine first for most VQVAE decoder
// convs (H100: 185 us per conv, the batch-1 decode 9 ms). The heuristic's choice stays when nothing runs.
//
// fy (the plans with a bias that can fuse; else NULL): y with the float32 bias fb and its copy `bias` in T. Then each
// candidate also runs as cudnnConvolutionBiasActivationForward (without a ReLU only IMPLICIT_PRECOMP_GEMM: cuDNN's
// rule for IDENTITY), with the float32 bias as the pass adds it, or, with the ReLU and where cuDNN refuses every
// candidate that way, with the bias in T (cuDNN's documented configuration for 16-bit data: the bias rounded to 16
// bits, which the VQVAE encoder's token argmin showed to matter: 39 of 60 tokens official instead of 58); the fused
// call is kept when it beats the chosen conv plus the finishing pass (bias [+ ReLU] over y, timed here too), or
// always with ARGEN_CUDA_CONV_FUSE=1.
template <typename T>
static KtStatus conv_tune(KtBackend *be, CudaConvPlan *p, const void *xin, const void *win, void *yout, void *ws,
                          size_t ws_size, KtTensor *fy, const float *fb, const void *bias) {
    CudaImpl *c = cuda_impl(be);
    p->tuned = true;
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    cudnnStatus_t e = cudnnFindConvolutionForwardAlgorithmEx(c->dnn, p->xd, xin, p->wd, win, p->cd, p->yd, yout,
                                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf, ws, ws_size);
    if (e != CUDNN_STATUS_SUCCESS) n = 0;
    cudaEvent_t e0, e1;
    KT_CUDA_TRY(cudaEventCreate(&e0));
    if (cudaEventCreate(&e1) != cudaSuccess) {
        cudaEventDestroy(e0);
        return KT_FAIL(KT_ERR_CUDA, "kt_conv2d: cudaEventCreate failed while timing conv algorithms");
    }
    int best = -1;
    float best_ms = 0.f;
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_size) continue;
        if (p->strict && perf[i].mathType != CUDNN_FMA_MATH) continue;
        float ms = conv_time_algo(c, p, &perf[i], xin, win, yout, ws, e0, e1);
        if (getenv("ARGEN_CUDA_VERBOSE"))
            fprintf(stderr, "argen cuda: conv (%lld,%lld,%lld,%lld)->%lld algo %d math %d: %.4f ms (cudnnFind %.4f)\n",
                    (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip, (long long)p->Cop,
                    (int)perf[i].algo, (int)perf[i].mathType, ms, perf[i].time);
        if (ms >= 0.f && (best < 0 || ms < best_ms)) best = i, best_ms = ms;
    }
    float pass_ms = -1.f, fused_ms = -1.f;
    int fbest = -1;
    p->fbias32 = false;
    if (fy) {
        float one = 1.f, zero = 0.f;
        bool timed = true;
        for (int r = 0; timed && r <= CONV_TUNE_REPS; r++) {  // the finishing pass, in place on y (= yout)
            if (r == 1) timed = cudaEventRecord(e0, c->stream) == cudaSuccess;
            if (p->relu) finish<T, true>(be, p, fy, yout, fb, false);
            else finish<T, false>(be, p, fy, yout, fb, false);
        }
        if (timed && cudaEventRecord(e1, c->stream) == cudaSuccess && cudaEventSynchronize(e1) == cudaSuccess &&
            cudaEventElapsedTime(&pass_ms, e0, e1) == cudaSuccess)
            pass_ms /= CONV_TUNE_REPS;
        else
            pass_ms = -1.f;
        // the float32 bias first (no rounding of the bias); the bias in T only with the ReLU (Inception's folded
        // units, already a 16-bit approximation) and only where cuDNN ran no candidate with the float32 one
        for (int k = 0; k < 2 * n; k++) {
            if (k == n && (fbest >= 0 || !p->relu)) break;
            int i = k % n;
            bool b32 = k < n;
            if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_size) continue;
            if (!p->relu && perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) continue;
            if (cudnnSetConvolutionMathType(p->cd, perf[i].mathType) != CUDNN_STATUS_SUCCESS) continue;
            float ms = -1.f;
            for (int r = 0; r <= CONV_TUNE_REPS; r++) {
                if (r == 1 && cudaEventRecord(e0, c->stream) != cudaSuccess) break;
                if (cudnnConvolutionBiasActivationForward(c->dnn, &one, p->xd, xin, p->wd, win, p->cd, perf[i].algo,
                                                          ws, perf[i].memory, &zero, p->yd, yout, b32 ? p->bd32 : p->bd,
                                                          b32 ? (const void *)fb : bias, p->ad, p->yd,
                                                          yout) != CUDNN_STATUS_SUCCESS)
                    break;
                if (r == CONV_TUNE_REPS &&
                    (cudaEventRecord(e1, c->stream) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
                     cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess))
                    ms = -1.f;
            }
            if (ms >= 0.f) ms /= CONV_TUNE_REPS;
            if (getenv("ARGEN_CUDA_VERBOSE"))
                fprintf(stderr,
                        "argen cuda: conv+bias%s (%lld,%lld,%lld,%lld)->%lld algo %d math %d: %.4f ms fused (bias %s)\n",
                        p->relu ? "+relu" : "",
                        (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip, (long long)p->Cop,
                        (int)perf[i].algo, (int)perf[i].mathType, ms, b32 ? "float32" : "16-bit");
            if (ms >= 0.f && (fbest < 0 || ms < fused_ms)) fbest = i, fused_ms = ms, p->fbias32 = b32;
        }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaGetLastError();  // a refused candidate leaves nothing to report
    p->fused = fbest >= 0 && (c->conv_fuse == 1 || best < 0 || pass_ms < 0.f || fused_ms < best_ms + pass_ms);
    if (p->fused) {
        p->falgo = perf[fbest].algo;
        p->fws = perf[fbest].memory;
        p->fmath = perf[fbest].mathType;
    }
    if (fy && getenv("ARGEN_CUDA_VERBOSE"))
        fprintf(stderr, "argen cuda: conv+bias%s (%lld,%lld,%lld,%lld)->%lld: %s (fused %.4f ms, conv %.4f + pass "
                "%.4f ms)\n", p->relu ? "+relu" : "", (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip,
                (long long)p->Cop, p->fused ? "fused" : "conv + pass", fused_ms, best_ms, pass_ms);
    if (best >= 0) {
        p->algo = perf[best].algo;
        p->ws = perf[best].memory;
        p->math = perf[best].mathType;
        if (getenv("ARGEN_CUDA_VERBOSE"))
            fprintf(stderr, "argen cuda: conv (%lld,%lld,%lld,%lld)->%lld timed: algo %d, %.4f ms, %zu B workspace\n",
                    (long long)p->B, (long long)p->Hp, (long long)p->Wp, (long long)p->Cip, (long long)p->Cop,
                    (int)p->algo, best_ms, p->ws);
    }
    KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->fused ? p->fmath : p->math));
    return KT_OK;
}

// T: the weight (compute) dtype. x and y are float32 or T (16-bit maps only with 16-bit weights; ops.c checks).
// Sets *refused (and returns KT_OK, y unwritten) when cuDNN refuses the shape outside a capture: the caller then runs
// the direct kernel.
// y = conv + b, or ReLU(conv + b) with relu (kt_conv2d_bias_relu); with a bias as one fused cuDNN call where the
// plan chose it.
template <typename T>
static KtStatus run_conv(KtBackend *be, CudaConvPlan *p, KtTensor *y, const KtTensor *x, const KtTensor *w,
                         const KtTensor *b, bool relu, bool *refused) {
    CudaImpl *c = cuda_impl(be);
    cudaStream_t st = c->stream;
    bool is16 = p->dt != KT_F32, x16 = x->dtype != KT_F32, y16 = y->dtype != KT_F32;
    bool prep = p->explicit_pad || (is16 && (!x16 || p->Cip != p->Ci));  // fp32 never has channel padding
    bool wpad = is16 && (p->Cip != p->Ci || p->Cop != p->Co);
    bool own_out = is16 && (!y16 || p->Cop != p->Co || !cuda_aligned(y->data, 16));
    int64_t nx = p->B * p->Hp * p->Wp * p->Cip, nw = p->Cop * p->kh * p->kw * p->Cip, ny = p->B * p->Ho * p->Wo * p->Cop;
    bool tune = !p->tuned && !c->capturing;
    // the fused call reads x and w as they are and writes y itself: 16-bit maps without padded channels
    bool fusable = b && is16 && !prep && !wpad && !own_out && p->bd && p->ad && c->conv_fuse != 0;
    if (!fusable) p->fused = false;
    bool fuse_now = fusable && (tune || p->fused);
    bool convert_bias = fuse_now && p->relu && (tune || !p->fbias32);  // the bias in T, for the fused call
    size_t ws_size = p->fused && p->fws > p->ws ? p->fws : p->ws;
    if (tune && ws_size < CONV_TUNE_WS) ws_size = CONV_TUNE_WS;
    CudaCarve cv = {0};
    size_t ox = prep ? cuda_carve(&cv, (size_t)nx * sizeof(T)) : 0, ow = wpad ? cuda_carve(&cv, (size_t)nw * sizeof(T)) : 0;
    size_t oy = own_out ? cuda_carve(&cv, (size_t)ny * sizeof(T)) : 0, ows = cuda_carve(&cv, ws_size);
    size_t ob = convert_bias ? cuda_carve(&cv, (size_t)p->Cop * sizeof(T)) : 0;
    void *s;
    KT_TRY(cuda_scratch(be, cv.off, &s));
    const void *xin = x->data, *win = w->data;
    void *yout = y->data;
    if (prep) {
        xin = (char *)s + ox;
        int top = p->explicit_pad ? p->pad[0] : 0, left = p->explicit_pad ? p->pad[2] : 0;
        bool small = nx < (1ll << 31);
        if (x16 && small) launch_prep<uint32_t>(be, (T *)xin, (const T *)x->data, p, top, left, nx);
        else if (x16) launch_prep<int64_t>(be, (T *)xin, (const T *)x->data, p, top, left, nx);
        else if (small) launch_prep<uint32_t>(be, (T *)xin, (const float *)x->data, p, top, left, nx);
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
    const float *bp = b ? (const float *)b->data : NULL;
    void *bias = convert_bias ? (char *)s + ob : NULL;
    if (convert_bias) KT_TRY(cuda_convert_f32(be, bias, (KtDType)p->dt, bp, p->Co));
    if (tune) KT_TRY(conv_tune<T>(be, p, xin, win, yout, (char *)s + ows, ws_size, fuse_now ? y : NULL, bp, bias));
    float one = 1.f, zero = 0.f;
    if (p->fused) {
        cudnnStatus_t e = cudnnConvolutionBiasActivationForward(c->dnn, &one, p->xd, xin, p->wd, win, p->cd, p->falgo,
                                                                (char *)s + ows, p->fws, &zero, p->yd, yout,
                                                                p->fbias32 ? p->bd32 : p->bd,
                                                                p->fbias32 ? (const void *)bp : bias, p->ad, p->yd,
                                                                yout);
        if (e == CUDNN_STATUS_SUCCESS) return KT_OK;
        if (c->capturing) KT_CUDA_TRY(e);
        p->fused = false;  // from now on the conv and the finishing pass
        KT_CUDA_TRY(cudnnSetConvolutionMathType(p->cd, p->math));
        kt_backend_note(be, "conv2d with a bias: cuDNN's fused call refused (%s): conv + pass", cudnnGetErrorString(e));
    }
    cudnnStatus_t e = cudnnConvolutionForward(c->dnn, &one, p->xd, xin, p->wd, win, p->cd, p->algo, (char *)s + ows,
                                              p->ws, &zero, p->yd, yout);
    if (e != CUDNN_STATUS_SUCCESS) {
        if (c->capturing) KT_CUDA_TRY(e);
        p->ok = false;  // e.g. an alignment the algorithm cannot take: use the direct kernel from now on
        *refused = true;
        return KT_OK;
    }
    if (relu) finish<T, true>(be, p, y, yout, bp, own_out);
    else finish<T, false>(be, p, y, yout, bp, own_out);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

template <typename WT, typename XT, typename YT>
static KtStatus run_direct(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                           int stride, const int pad[4]) {
    int64_t n = kt_numel(y);
    conv_direct_kernel<WT, XT, YT><<<cuda_blocks_capped(n, 128, 64 * cuda_impl(be)->sm_count), 128, 0, cuda_stream(be)>>>(
        (YT *)y->data, (const XT *)x->data, (const WT *)w->data, b ? (const float *)b->data : NULL,
        x->shape[1], x->shape[2], x->shape[3], y->shape[1], y->shape[2], y->shape[3], w->shape[1], w->shape[2],
        stride, pad[0], pad[2], n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// The small-Co and direct kernels for every (weight, x, y) dtype combination ops.c lets through: fp32 maps with any
// weights, 16-bit maps with weights of their dtype.
template <typename WT>
static KtStatus run_kernel16(KtBackend *be, bool small_co, KtTensor *y, const KtTensor *x, const KtTensor *w,
                             const KtTensor *b, int stride, const int pad[4]) {
    bool x16 = x->dtype != KT_F32, y16 = y->dtype != KT_F32;
    if (small_co) {
        if (x16 && y16) return run_small_co<WT, WT, WT>(be, y, x, w, b, stride, pad);
        if (x16) return run_small_co<WT, WT, float>(be, y, x, w, b, stride, pad);
        if (y16) return run_small_co<WT, float, WT>(be, y, x, w, b, stride, pad);
        return run_small_co<WT, float, float>(be, y, x, w, b, stride, pad);
    }
    if (x16 && y16) return run_direct<WT, WT, WT>(be, y, x, w, b, stride, pad);
    if (x16) return run_direct<WT, WT, float>(be, y, x, w, b, stride, pad);
    if (y16) return run_direct<WT, float, WT>(be, y, x, w, b, stride, pad);
    return run_direct<WT, float, float>(be, y, x, w, b, stride, pad);
}

static KtStatus run_kernel(KtBackend *be, bool small_co, KtTensor *y, const KtTensor *x, const KtTensor *w,
                           const KtTensor *b, int stride, const int pad[4]) {
    if (w->dtype == KT_BF16) return run_kernel16<__nv_bfloat16>(be, small_co, y, x, w, b, stride, pad);
    if (w->dtype == KT_F16) return run_kernel16<__half>(be, small_co, y, x, w, b, stride, pad);
    if (small_co) return run_small_co<float, float, float>(be, y, x, w, b, stride, pad);
    return run_direct<float, float, float>(be, y, x, w, b, stride, pad);
}

// y = ReLU(y) in place, after the kernels that add the bias themselves.
static KtStatus relu_pass(KtBackend *be, KtTensor *y) {
    int64_t n = kt_numel(y);
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    if (y->dtype == KT_BF16) relu_kernel<__nv_bfloat16><<<g, 256, 0, cuda_stream(be)>>>((__nv_bfloat16 *)y->data, n);
    else if (y->dtype == KT_F16) relu_kernel<__half><<<g, 256, 0, cuda_stream(be)>>>((__half *)y->data, n);
    else relu_kernel<float><<<g, 256, 0, cuda_stream(be)>>>((float *)y->data, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// x: (B, H, W, Ci); w: (Co, kh, kw, Ci); b: (Co) or NULL; pad = {top, bottom, left, right}; y: (B, Ho, Wo, Co).
// relu: y = ReLU(conv + b) (b given).
static KtStatus conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                       const int pad[4], bool relu) {
    if (kt_numel(y) == 0) return KT_OK;
    if (w->shape[0] <= 8 && x->shape[3] > 0 && x->shape[3] < INT32_MAX &&
        (size_t)w->shape[0] * w->shape[1] * w->shape[2] * x->shape[3] * 4 <= cuda_impl(be)->smem_optin) {
        KT_TRY(run_kernel(be, true, y, x, w, b, stride, pad));
        return relu ? relu_pass(be, y) : KT_OK;
    }
    CudaConvPlan key;
    memset(&key, 0, sizeof key);
    key.B = x->shape[0]; key.H = x->shape[1]; key.W = x->shape[2]; key.Ci = x->shape[3];
    key.Co = w->shape[0]; key.kh = w->shape[1]; key.kw = w->shape[2];
    key.stride = stride;
    memcpy(key.pad, pad, sizeof key.pad);
    key.dt = (int)w->dtype;
    key.strict = w->dtype == KT_F32 && be->matmul_dtype == KT_F32;
    key.relu = relu;
    key.bias = b != NULL;
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
        bool refused = false;  // by cuDNN (other errors, e.g. scratch during capture, are errors)
        KtStatus s = w->dtype == KT_BF16 ? run_conv<__nv_bfloat16>(be, p, y, x, w, b, relu, &refused)
                     : w->dtype == KT_F16 ? run_conv<__half>(be, p, y, x, w, b, relu, &refused)
                                          : run_conv<float>(be, p, y, x, w, b, relu, &refused);
        if (s != KT_OK || !refused) return s;
    }
    kt_backend_note(be, "conv2d %lldx%lldx%lld -> %lld (k%lldx%lld, stride %d): cuDNN %s, direct kernel",
                    (long long)key.H, (long long)key.W, (long long)key.Ci, (long long)key.Co, (long long)key.kh,
                    (long long)key.kw, stride, fits ? "refused the shape" : "cannot index it");
    KT_TRY(run_kernel(be, false, y, x, w, b, stride, pad));
    return relu ? relu_pass(be, y) : KT_OK;
}

KtStatus cuda_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                     const int pad[4]) {
    return conv2d(be, y, x, w, b, stride, pad, false);
}

KtStatus cuda_conv2d_bias_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                               int stride, const int pad[4]) {
    return conv2d(be, y, x, w, b, stride, pad, true);
}
