// Dense ops: kt_linear (cuBLASLt GEMM with a fused bias epilogue; a weight-streaming kernel for M <= 8 rows; a plain
// tiled kernel for shapes cuBLASLt refuses), codebook_argmin (GEMM + first-index argmin), embedding, split_chunks.
// ref: torch.nn.functional.linear. Row-major y (M, N) = x (M, K) . w^T (w: (N, K)) + b (N).
// In column-major terms that is y^T (N x M) = op_T(w) . x^T: cuBLAS "TN" with m = N, n = M, k = K.
// Dims: M rows (B*T), K in-features, N out-features, V codebook size, D code dim.
#include "cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


// --------------------------------------------------------------------------------------------- conversions
// from_f32: cuda_common.cuh
template <typename T>
__global__ void convert_kernel(T *__restrict__ dst, const float *__restrict__ src, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = from_f32<T>(src[i]);
}

// src (n) float32 -> dst (n) bf16/fp16.
KtStatus cuda_convert_f32(KtBackend *be, void *dst, KtDType dt, const float *src, int64_t n) {
    if (n <= 0) return KT_OK;
    unsigned g = cuda_blocks_capped(n, 256, 8 * cuda_impl(be)->sm_count * 8);
    if (dt == KT_BF16)
        convert_kernel<<<g, 256, 0, cuda_stream(be)>>>((__nv_bfloat16 *)dst, src, n);
    else
        convert_kernel<<<g, 256, 0, cuda_stream(be)>>>((__half *)dst, src, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------ small-M weight streaming
// Eight consecutive weights as floats (16-byte loads for 16-bit weights, two for fp32).
__device__ __forceinline__ void load8(const float *p, float *o) {
    float4 a = __ldg((const float4 *)p), b = __ldg((const float4 *)p + 1);
    o[0] = a.x; o[1] = a.y; o[2] = a.z; o[3] = a.w; o[4] = b.x; o[5] = b.y; o[6] = b.z; o[7] = b.w;
}
__device__ __forceinline__ void load8(const __nv_bfloat16 *p, float *o) {
    uint4 u = __ldg((const uint4 *)p);
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(h[i]);
        o[2 * i] = f.x;
        o[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void load8(const __half *p, float *o) {
    uint4 u = __ldg((const uint4 *)p);
    const __half2 *h = (const __half2 *)&u;
    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(h[i]);
        o[2 * i] = f.x;
        o[2 * i + 1] = f.y;
    }
}

// One warp per output feature n: lanes stream w[n, :] in 8-wide chunks (UNROLL chunks in flight), each chunk is
// dotted with the (few) x rows, then a warp reduction; the epilogue adds the bias and, with `gelu`, applies the exact
// tanh-GELU before rounding to YT. x: (M, K) XT; w: (N, K) WT; b: (N) YT or NULL; y: (M, N) YT. K % 8 == 0, M <= MT.
template <typename WT, typename XT, typename YT, int MT, int UNROLL>
__global__ void __launch_bounds__(256) linear_small_m_kernel(YT *__restrict__ y, const XT *__restrict__ x,
                                                             const WT *__restrict__ w, const YT *__restrict__ b,
                                                             int M, int N, int K, bool gelu) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= N) return;
    const WT *wr = w + (int64_t)warp * K;
    float acc[MT];
#pragma unroll
    for (int m = 0; m < MT; m++) acc[m] = 0.f;
    int nchunk = K / 8;
    for (int c0 = lane; c0 < nchunk; c0 += 32 * UNROLL) {
        float wv[UNROLL][8];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int c = c0 + u * 32;
            if (c < nchunk) {
                load8(wr + (int64_t)c * 8, wv[u]);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) wv[u][i] = 0.f;
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int c = c0 + u * 32;
            if (c >= nchunk) break;
#pragma unroll
            for (int m = 0; m < MT; m++) {
                if (m >= M) break;
                float a[8];
                load8(x + (int64_t)m * K + (int64_t)c * 8, a);
                acc[m] += a[0] * wv[u][0] + a[1] * wv[u][1] + a[2] * wv[u][2] + a[3] * wv[u][3] + a[4] * wv[u][4] +
                          a[5] * wv[u][5] + a[6] * wv[u][6] + a[7] * wv[u][7];
            }
        }
    }
#pragma unroll
    for (int m = 0; m < MT; m++) {
        if (m >= M) break;
        float s = warp_sum(acc[m]);
        if (lane == 0) {
            float v = s + (b ? to_f32(b[warp]) : 0.f);
            y[(int64_t)m * N + warp] = from_f32<YT>(gelu ? gelu_tanh_f(v) : v);
        }
    }
}

template <typename WT, typename XT, typename YT>
static KtStatus launch_small_m(KtBackend *be, const KtTensor *y, const KtTensor *x, const KtTensor *w,
                               const KtTensor *bt, int M, int N, int K, bool gelu) {
    unsigned g = cuda_blocks((int64_t)N * 32, 256);
    cudaStream_t st = cuda_stream(be);
    YT *yp = (YT *)y->data;
    const XT *xp = (const XT *)x->data;
    const WT *wp = (const WT *)w->data;
    const YT *b = bt ? (const YT *)bt->data : NULL;
    if (M <= 1) linear_small_m_kernel<WT, XT, YT, 1, 4><<<g, 256, 0, st>>>(yp, xp, wp, b, M, N, K, gelu);
    else if (M <= 2) linear_small_m_kernel<WT, XT, YT, 2, 4><<<g, 256, 0, st>>>(yp, xp, wp, b, M, N, K, gelu);
    else if (M <= 4) linear_small_m_kernel<WT, XT, YT, 4, 4><<<g, 256, 0, st>>>(yp, xp, wp, b, M, N, K, gelu);
    else if (M <= 8) linear_small_m_kernel<WT, XT, YT, 8, 2><<<g, 256, 0, st>>>(yp, xp, wp, b, M, N, K, gelu);
    else linear_small_m_kernel<WT, XT, YT, 16, 1><<<g, 256, 0, st>>>(yp, xp, wp, b, M, N, K, gelu);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// 16-bit weights WT: x and y each float32 or WT.
template <typename WT>
static KtStatus launch_small_m16(KtBackend *be, const KtTensor *y, const KtTensor *x, const KtTensor *w,
                                 const KtTensor *b, int M, int N, int K, bool gelu) {
    bool x16 = x->dtype != KT_F32, y16 = y->dtype != KT_F32;
    if (x16 && y16) return launch_small_m<WT, WT, WT>(be, y, x, w, b, M, N, K, gelu);
    if (x16) return launch_small_m<WT, WT, float>(be, y, x, w, b, M, N, K, gelu);
    if (y16) return launch_small_m<WT, float, WT>(be, y, x, w, b, M, N, K, gelu);
    return launch_small_m<WT, float, float>(be, y, x, w, b, M, N, K, gelu);
}

// ------------------------------------------------------------------------------------------ generic fallback
// 16x16 output tile per block through shared memory; any K, any alignment. x: (M, K); w: (N, K); b: (N) YT;
// y: (M, N) YT, with the exact tanh-GELU when `gelu`.
template <typename WT, typename YT>
__global__ void linear_generic_kernel(YT *__restrict__ y, const float *__restrict__ x, const WT *__restrict__ w,
                                      const YT *__restrict__ b, int64_t M, int64_t N, int64_t K, bool gelu) {
    __shared__ float xs[16][17], ws[16][17];
    int tx = threadIdx.x, ty = threadIdx.y;
    int64_t m = (int64_t)blockIdx.y * 16 + ty, n = (int64_t)blockIdx.x * 16 + tx;
    int64_t wn = (int64_t)blockIdx.x * 16 + ty;  // the w row this thread loads
    float acc = 0.f;
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
        xs[ty][tx] = (m < M && k0 + tx < K) ? x[m * K + k0 + tx] : 0.f;
        ws[ty][tx] = (wn < N && k0 + tx < K) ? to_f32(w[wn * K + k0 + tx]) : 0.f;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < 16; k++) acc += xs[ty][k] * ws[tx][k];
        __syncthreads();
    }
    if (m < M && n < N) {
        float v = acc + (b ? to_f32(b[n]) : 0.f);
        y[m * N + n] = from_f32<YT>(gelu ? gelu_tanh_f(v) : v);
    }
}

// x: float32 (M, K).
template <typename WT, typename YT>
static KtStatus launch_generic(KtBackend *be, const KtTensor *y, const float *x, const KtTensor *w,
                               const KtTensor *b, int64_t M, int64_t N, int64_t K, bool gelu) {
    dim3 grid((unsigned)((N + 15) / 16), (unsigned)((M + 15) / 16)), block(16, 16);
    if (grid.y > 65535) return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_linear: %lld rows exceed the fallback kernel's grid",
                                       (long long)M);
    linear_generic_kernel<WT, YT><<<grid, block, 0, cuda_stream(be)>>>(
        (YT *)y->data, x, (const WT *)w->data, b ? (const YT *)b->data : NULL, M, N, K, gelu);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------- cuBLASLt
struct CudaLtPlan {
    int64_t M, N, K;
    int wdt, ydt;       // weight (and 16-bit input) dtype; output dtype (the bias follows it)
    bool bias, gelu;
    int align[4];  // x, w, y, bias pointer alignment classes
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    bool ok;       // false: cuBLASLt has no algorithm for this shape (use the fallback)
};

static int align_class(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int c = 256;
    while (c > 1 && a % c) c /= 2;
    return c;
}

void cuda_plans_free(CudaImpl *c) {
    for (int i = 0; i < c->n_plans; i++) {
        CudaLtPlan *p = &c->plans[i];
        if (p->desc) cublasLtMatmulDescDestroy(p->desc);
        if (p->la) cublasLtMatrixLayoutDestroy(p->la);
        if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
        if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
    }
    free(c->plans);
    c->plans = NULL;
    c->n_plans = c->cap_plans = 0;
}

static cudaDataType_t cuda_dt(KtDType d) {
    return d == KT_BF16 ? CUDA_R_16BF : d == KT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

// Builds the descriptors and asks the heuristic for the best algorithm; p->ok is false when there is none.
static KtStatus plan_build(KtBackend *be, CudaLtPlan *p, const void *b) {
    CudaImpl *c = cuda_impl(be);
    cudaDataType_t dt = cuda_dt((KtDType)p->wdt);
    KT_CUDA_TRY(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));  // never TF32
    cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA));
    KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB));
    if (p->bias || p->gelu) {
        cublasLtEpilogue_t ep = p->gelu ? (p->bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU)
                                        : CUBLASLT_EPILOGUE_BIAS;
        KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    }
    if (p->bias) {
        cudaDataType_t bt = cuda_dt((KtDType)p->ydt);
        KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
        KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
    }
    KT_CUDA_TRY(cublasLtMatrixLayoutCreate(&p->la, dt, (uint64_t)p->K, (uint64_t)p->N, p->K));   // w: K x N col
    KT_CUDA_TRY(cublasLtMatrixLayoutCreate(&p->lb, dt, (uint64_t)p->K, (uint64_t)p->M, p->K));   // x: K x M col
    KT_CUDA_TRY(cublasLtMatrixLayoutCreate(&p->lc, cuda_dt((KtDType)p->ydt), (uint64_t)p->N, (uint64_t)p->M, p->N));
    cublasLtMatmulPreference_t pref;
    KT_CUDA_TRY(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = c->blas_ws_size;
    uint32_t al[4] = {(uint32_t)p->align[1], (uint32_t)p->align[0], (uint32_t)p->align[2], (uint32_t)p->align[2]};
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], 4);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3], 4);
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    p->ok = st == CUBLAS_STATUS_SUCCESS && n > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (p->ok) p->algo = res.algo;
    if (getenv("ARGEN_CUDA_VERBOSE"))
        fprintf(stderr, "argen cuda: gemm M=%lld N=%lld K=%lld %s -> %s bias=%d gelu=%d: %s\n", (long long)p->M,
                (long long)p->N, (long long)p->K, kt_dtype_name((KtDType)p->wdt), kt_dtype_name((KtDType)p->ydt),
                p->bias, p->gelu,
                p->ok ? "cublasLt" : "fallback kernel");
    return KT_OK;
}

static KtStatus plan_get(KtBackend *be, CudaLtPlan **out, int64_t M, int64_t N, int64_t K, KtDType wdt,
                         KtDType ydt, const void *xin, const void *w, void *y, const void *b, bool gelu) {
    CudaImpl *c = cuda_impl(be);
    int al[4] = {align_class(xin), align_class(w), align_class(y), b ? align_class(b) : 256};
    for (int i = 0; i < c->n_plans; i++) {
        CudaLtPlan *p = &c->plans[i];
        if (p->M == M && p->N == N && p->K == K && p->wdt == (int)wdt && p->ydt == (int)ydt && p->bias == (b != NULL) &&
            p->gelu == gelu &&
            !memcmp(p->align, al, sizeof al)) {
            *out = p;
            return KT_OK;
        }
    }
    if (c->n_plans == c->cap_plans) {
        int cap = c->cap_plans ? 2 * c->cap_plans : 64;
        CudaLtPlan *np = (CudaLtPlan *)realloc(c->plans, (size_t)cap * sizeof *np);
        if (!np) return KT_FAIL(KT_ERR_OOM, "kt_linear: out of host memory for GEMM plans");
        c->plans = np;
        c->cap_plans = cap;
    }
    CudaLtPlan *p = &c->plans[c->n_plans];
    memset(p, 0, sizeof *p);
    p->M = M; p->N = N; p->K = K; p->wdt = (int)wdt; p->ydt = (int)ydt; p->bias = b != NULL; p->gelu = gelu;
    memcpy(p->align, al, sizeof al);
    c->n_plans++;  // kept even on failure so its descriptors are freed with the cache
    KT_TRY(plan_build(be, p, b));
    *out = p;
    return KT_OK;
}

// y (M, N, ydt) = xin (M, K, weight dtype) . w^T + b (ydt) [then GELU] (+ y when beta = 1: in place, C = D) through
// a cached cublasLt plan. *done = false: no algorithm.
static KtStatus lt_matmul(KtBackend *be, bool *done, void *y, KtDType ydt, const void *xin, const void *w,
                          const void *b, int64_t M, int64_t N, int64_t K, KtDType wdt, bool gelu, float beta = 0.f) {
    CudaImpl *c = cuda_impl(be);
    CudaLtPlan *p = NULL;
    KT_TRY(plan_get(be, &p, M, N, K, wdt, ydt, xin, w, y, b, gelu));
    *done = p->ok;
    if (!p->ok) return KT_OK;
    if (b) KT_CUDA_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
    float one = 1.f;
    KT_CUDA_TRY(cublasLtMatmul(c->lt, p->desc, &one, w, p->la, xin, p->lb, &beta, y, p->lc, y, p->lc, &p->algo,
                               c->blas_ws, c->blas_ws_size, c->stream));
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------- kt_linear
// y (M, K) float32 <- x (M, K) 16-bit, for the fallback kernels.
template <typename T>
__global__ void widen_kernel(float *__restrict__ y, const T *__restrict__ x, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        y[i] = to_f32(x[i]);
}

// x: (..., K) fp32, or 16-bit in w's dtype; w: (N, K) fp32 / bf16 / fp16; y: (..., N) fp32, or 16-bit in w's
// dtype; b: (N) in y's dtype, or NULL. gelu: y = gelu_tanh(x . w^T + b); in cuBLASLt's epilogue with 16-bit weights,
// else exact (a separate pass after cuBLASLt, or in the streaming/fallback kernels' epilogue).
static KtStatus linear_impl(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                            bool gelu) {
    int64_t M = kt_rows(x), K = kt_cols(x), N = w->shape[0];
    KtDType wdt = w->dtype, ydt = y->dtype;
    bool x16 = x->dtype != KT_F32, fuse = gelu && wdt != KT_F32;
    if (M == 0 || N == 0) return KT_OK;
    bool vec_ok = K % 8 == 0 && cuda_aligned(x->data, 16) && cuda_aligned(w->data, 16) && N < (1 << 26) &&
                  K < (1 << 30);
    // Measured on H100 (bf16, graph replay): with a float32 x (cuBLASLt then needs a conversion pass) streaming wins
    // at M <= 2 up to ~4M weights (3.2 vs 5.2 us at 1024x1024, 4.2 vs 5.1 us at 3072x1024); with a 16-bit x only
    // up to 1024x1024 (4096->1024: 9.6 vs 6.7 us, 1024->4096: 4.8 vs 4.4 us). cuBLASLt wins from M = 8.
    bool small = M <= cuda_impl(be)->small_m_max && vec_ok && N * K <= (x16 ? (1ll << 20) : (4ll << 20));
    if (!small && K > 0) {
        const void *xin = x->data;
        if (wdt != KT_F32 && !x16) {
            void *s;
            KT_TRY(cuda_scratch(be, (size_t)(M * K) * 2, &s));
            KT_TRY(cuda_convert_f32(be, s, wdt, (const float *)x->data, M * K));
            xin = s;
        }
        bool done = false;
        KT_TRY(lt_matmul(be, &done, y->data, ydt, xin, w->data, b ? b->data : NULL, M, N, K, wdt, fuse));
        if (done) return gelu && !fuse ? cuda_gelu_tanh(be, y, y) : KT_OK;  // !fuse: fp32 weights, so fp32 y
    }
    if (small && wdt == KT_BF16) return launch_small_m16<__nv_bfloat16>(be, y, x, w, b, (int)M, (int)N, (int)K, gelu);
    if (small && wdt == KT_F16) return launch_small_m16<__half>(be, y, x, w, b, (int)M, (int)N, (int)K, gelu);
    if (small) return launch_small_m<float, float, float>(be, y, x, w, b, (int)M, (int)N, (int)K, gelu);
    if (K > 0)
        kt_backend_note(be, "linear %lld -> %lld (%s): no cuBLASLt algorithm, generic kernel", (long long)K,
                        (long long)N, kt_dtype_name(wdt));
    const float *xp = (const float *)x->data;
    if (x16 && M * K > 0) {  // the fallback kernel reads float32
        void *s;
        KT_TRY(cuda_scratch(be, (size_t)(M * K) * 4, &s));
        unsigned g = cuda_blocks_capped(M * K, 256, 16 * cuda_impl(be)->sm_count);
        if (x->dtype == KT_BF16) widen_kernel<<<g, 256, 0, cuda_stream(be)>>>((float *)s, (const __nv_bfloat16 *)x->data, M * K);
        else widen_kernel<<<g, 256, 0, cuda_stream(be)>>>((float *)s, (const __half *)x->data, M * K);
        KT_CUDA_LAUNCHED();
        xp = (const float *)s;
    }
    bool y16 = ydt != KT_F32;
    if (wdt == KT_BF16 && y16) return launch_generic<__nv_bfloat16, __nv_bfloat16>(be, y, xp, w, b, M, N, K, gelu);
    if (wdt == KT_BF16) return launch_generic<__nv_bfloat16, float>(be, y, xp, w, b, M, N, K, gelu);
    if (wdt == KT_F16 && y16) return launch_generic<__half, __half>(be, y, xp, w, b, M, N, K, gelu);
    if (wdt == KT_F16) return launch_generic<__half, float>(be, y, xp, w, b, M, N, K, gelu);
    return launch_generic<float, float>(be, y, xp, w, b, M, N, K, gelu);
}

KtStatus cuda_linear_accumulate(KtBackend *be, bool *done, KtTensor *y, const KtTensor *x, const KtTensor *w) {
    int64_t M = kt_rows(x), K = kt_cols(x), N = w->shape[0];
    KtDType wdt = w->dtype;
    *done = false;
    // 16-bit weights with a GEMM input of their dtype (what LlamaGen's layers pass); anything else: the caller's
    // composition
    if (M == 0 || N == 0 || K == 0 || wdt == KT_F32 || x->dtype != wdt || y->dtype != KT_F32) return KT_OK;
    return lt_matmul(be, done, y->data, KT_F32, x->data, w->data, NULL, M, N, K, wdt, false, 1.f);
}

KtStatus cuda_linear(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    return linear_impl(be, y, x, w, b, false);
}
KtStatus cuda_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    return linear_impl(be, y, x, w, b, true);
}

// ------------------------------------------------------------------------------------------- batched fp32 GEMM
KtStatus cuda_gemm_f32_batched(KtBackend *be, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, int64_t sa, const float *Bm, int64_t ldb, int64_t sb, bool b_trans,
                               float beta, float *C, int64_t ldc, int64_t sc, int64_t batch) {
    CudaImpl *c = cuda_impl(be);
    if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || batch > INT32_MAX)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "cuda GEMM: dimensions exceed 32 bits");
    cublasComputeType_t ct = be->matmul_dtype == KT_F32 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    KT_CUDA_TRY(cublasGemmStridedBatchedEx(c->blas, b_trans ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M,
                                           (int)K, &alpha, Bm, CUDA_R_32F, (int)ldb, sb, A, CUDA_R_32F, (int)lda, sa,
                                           &beta, C, CUDA_R_32F, (int)ldc, sc, (int)batch, ct, CUBLAS_GEMM_DEFAULT));
    return KT_OK;
}

// ------------------------------------------------------------------------------------------- codebook argmin
// ee[v] = |e_v|^2. codebook: (V, D).
__global__ void row_sqnorm_kernel(float *__restrict__ ee, const float *__restrict__ e, int64_t V, int64_t D) {
    int64_t v = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (v >= V) return;
    float s = 0.f;
    for (int64_t d = threadIdx.x & 31; d < D; d += 32) s += e[v * D + d] * e[v * D + d];
    s = warp_sum(s);
    if ((threadIdx.x & 31) == 0) ee[v] = s;
}

// One block per row: d_v = (|z|^2 + |e_v|^2) - 2 z.e_v; idx = first argmin. dot: (rows, V); z: (rows, D).
__global__ void argmin_kernel(int32_t *__restrict__ idx, const float *__restrict__ dot, const float *__restrict__ ee,
                              const float *__restrict__ z, int64_t V, int64_t D) {
    __shared__ float sh[32];
    __shared__ float bv[32];
    __shared__ int64_t bi[32];
    int64_t r = blockIdx.x;
    float zz = 0.f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) zz += z[r * D + d] * z[r * D + d];
    zz = block_sum(zz, sh);
    float best = INFINITY;
    int64_t bidx = INT64_MAX;
    for (int64_t v = threadIdx.x; v < V; v += blockDim.x) {
        float dv = (zz + ee[v]) - 2.f * dot[r * V + v];
        if (dv < best) { best = dv; bidx = v; }  // v increases per thread: first index kept on ties
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, best, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, bidx, o);
        if (ov < best || (ov == best && oi < bidx)) { best = ov; bidx = oi; }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) { bv[w] = best; bi[w] = bidx; }
    __syncthreads();
    if (w == 0) {
        int nw = blockDim.x >> 5;
        best = lane < nw ? bv[lane] : INFINITY;
        bidx = lane < nw ? bi[lane] : INT64_MAX;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, best, o);
            int64_t oi = __shfl_xor_sync(0xffffffffu, bidx, o);
            if (ov < best || (ov == best && oi < bidx)) { best = ov; bidx = oi; }
        }
        if (lane == 0) idx[r] = bidx == INT64_MAX ? 0 : (int32_t)bidx;  // all-NaN row: 0 like torch.argmin's NaN
    }
}

// z: (N, D); codebook: (V, D); idx: (N) int32.
KtStatus cuda_codebook_argmin(KtBackend *be, KtTensor *idx, const KtTensor *z, const KtTensor *codebook) {
    int64_t N = z->shape[0], D = z->shape[1], V = codebook->shape[0];
    if (N == 0) return KT_OK;
    if (V == 0) return KT_FAIL(KT_ERR_SHAPE, "kt_codebook_argmin: empty codebook");
    int64_t rows = (64ll << 20) / (V * 4);  // rows per chunk: <= 64 MiB of distances
    if (rows < 1) rows = 1;
    if (rows > N) rows = N;
    CudaCarve cv = {0};
    size_t o_ee = cuda_carve(&cv, (size_t)V * 4), o_dot = cuda_carve(&cv, (size_t)(rows * V) * 4);
    void *s;
    KT_TRY(cuda_scratch(be, cv.off, &s));
    float *ee = (float *)((char *)s + o_ee), *dot = (float *)((char *)s + o_dot);
    const float *zp = (const float *)z->data, *ep = (const float *)codebook->data;
    row_sqnorm_kernel<<<cuda_blocks(V * 32, 256), 256, 0, cuda_stream(be)>>>(ee, ep, V, D);
    KT_CUDA_LAUNCHED();
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
        int64_t nr = N - r0 < rows ? N - r0 : rows;
        if (D > 0) {
            // dot (nr, V) = z (nr, D) . codebook^T; fp32 without TF32 regardless of matmul dtype: exact ties matter.
            KtDType saved = be->matmul_dtype;
            be->matmul_dtype = KT_F32;
            KtStatus st = cuda_gemm_f32_batched(be, nr, V, D, 1.f, zp + r0 * D, D, 0, ep, D, 0, true, 0.f, dot, V, 0, 1);
            be->matmul_dtype = saved;
            KT_TRY(st);
        } else {
            KT_CUDA_TRY(cudaMemsetAsync(dot, 0, (size_t)(nr * V) * 4, cuda_stream(be)));
        }
        argmin_kernel<<<(unsigned)nr, 256, 0, cuda_stream(be)>>>((int32_t *)idx->data + r0, dot, ee, zp + r0 * D, V, D);
        KT_CUDA_LAUNCHED();
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------ embedding, split_chunks
// y[i, :] = table[idx[i], :]; an index outside [0, V) gives a zero row and raises the backend's error flag.
__global__ void embedding_kernel(float *__restrict__ y, const float *__restrict__ table,
                                 const int32_t *__restrict__ idx, int64_t N, int64_t C, int64_t V,
                                 int32_t *__restrict__ flag) {
    pdl_wait();  // a dependent launch: the indices may come from the kernel before
    pdl_launch_dependents();
    int64_t total = N * C, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t r = i / C, c = i - r * C;
        int32_t t = idx[r];
        if (t < 0 || t >= V) {
            y[i] = 0.f;
            atomicOr(flag, 1);
        } else {
            y[i] = table[(int64_t)t * C + c];
        }
    }
}

// y: (N, C); table: (V, C); idx: (N) int32.
KtStatus cuda_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx) {
    int64_t N = y->shape[0], C = y->shape[1], V = table->shape[0];
    if (N * C == 0) return KT_OK;
    int32_t *flag = (int32_t *)((char *)cuda_impl(be)->dev_small + CUDA_SMALL_FLAG);
    KT_CUDA_TRY(cuda_launch_pdl(be, embedding_kernel, dim3(cuda_blocks_capped(N * C, 256, 65536)), dim3(256), 0,
                                (float *)y->data, (const float *)table->data, (const int32_t *)idx->data, N, C, V, flag));
    return KT_OK;
}

// y[k, b, c] = x[b, k*C + c]. y: (K, B, C); x: (B, K*C).
__global__ void split_chunks_kernel(float *__restrict__ y, const float *__restrict__ x, int64_t K, int64_t B,
                                    int64_t C) {
    int64_t total = K * B * C, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int64_t c = i % C, kb = i / C, b = kb % B, k = kb / B;
        y[i] = x[b * K * C + k * C + c];
    }
}

KtStatus cuda_split_chunks(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t K = y->shape[0], B = y->shape[1], C = y->shape[2];
    if (K * B * C == 0) return KT_OK;
    split_chunks_kernel<<<cuda_blocks_capped(K * B * C, 256, 65536), 256, 0, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, K, B, C);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}
