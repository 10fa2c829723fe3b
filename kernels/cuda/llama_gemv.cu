// LlamaGen's GEMMs at small batch (a decode step: 2 rows per image under CFG, up to 8 rows) as weight-streaming
// kernels with their neighbours fused in: the RMSNorm before the qkv / w1|w3 / head GEMMs (computed by every block
// from x), the residual add after wo / w2, the SwiGLU gate after w1|w3. One kernel per op of kt_rmsnorm_linear,
// kt_rmsnorm_linear_swiglu and kt_linear_residual (ops.h) instead of two or three, and each launched as a
// programmatic dependent launch (sm_90): a block issues its first weight loads, then waits for the previous kernel,
// so the weights stream during the previous kernel's tail and the launch gap (a GPT-B step is ~100 latency-bound
// kernels at batch 1; its weights alone take ~65 us of HBM time per token).
// Larger batches and fp32 weights run the compositions (RMSNorm kernel + cuBLASLt + SwiGLU kernel; cuBLASLt adds the
// residual with beta = 1).
// Numerics: the GEMM input is rounded to the weights' dtype exactly as kt_rmsnorm rounds it; products are summed in
// float in another order than cuBLAS (within the GEMM tolerance of the CUDA tests); residual and SwiGLU as the CPU.
// ref: the compositions in kernels/ops_raster.c (the CPU backend runs them); kernels/cpu/llama.c
// Dims: R rows (<= MT <= 8), K inputs, N outputs (SwiGLU: F, from the 2F rows of w13), S warps splitting K.
#include "cuda_common.cuh"

enum { GEMV_IN_RMSNORM = 0, GEMV_IN_LOAD = 1 };                     // where the GEMM input comes from
enum { GEMV_OUT_STORE = 0, GEMV_OUT_RESIDUAL = 1, GEMV_OUT_SWIGLU = 2 };  // what the epilogue does
#define GEMV_THREADS 256
#define GEMV_WARPS 8
#define GEMV_PREFETCH 4  // chunks of 8 weights per row and lane loaded before the wait for the previous kernel

struct GemvArgs {
    const void *w;    // (N, K) weights WT; SwiGLU: (2F, K), rows f and F + f make output f
    const float *x;   // IN_RMSNORM: (R, K) float32 rows to normalise
    const float *nw;  // IN_RMSNORM: (K) the norm's weight
    const void *in;   // IN_LOAD: (R, K) the GEMM input, WT
    void *y;          // STORE: (R, N) float32; RESIDUAL: (R, N) float32, y += result; SWIGLU: (R, F) WT
    int R, N, K;      // N: outputs (SwiGLU: F)
    int ksplit;       // S: warps per output pair, each summing a 1/S slice of K (1, 2, 4 or 8)
    float eps;
};

// Eight consecutive weights (or GEMM inputs) of type T as floats, from one 16-byte access (two for float32).
__device__ __forceinline__ void f8(const uint4 &u, const __nv_bfloat16 *, float (&o)[8]) {
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(h[i]);
        o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void f8(const uint4 &u, const __half *, float (&o)[8]) {
    const __half2 *h = (const __half2 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(h[i]);
        o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
}

// Two weight rows (r0, r1) against the MT input rows in xs, chunks c = c0, c0 + 32, ... < c1 of this lane.
template <typename WT, int MT>
__device__ __forceinline__ void gemv_chunk(float (&acc)[2][MT], const uint4 &u0, const uint4 &u1, const WT *xs, int K,
                                           int c) {
    float w0[8], w1[8];
    f8(u0, (const WT *)nullptr, w0);
    f8(u1, (const WT *)nullptr, w1);
#pragma unroll
    for (int m = 0; m < MT; m++) {
        float xv[8];
        f8(*reinterpret_cast<const uint4 *>(xs + (int64_t)m * K + (int64_t)c * 8), (const WT *)nullptr, xv);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            acc[0][m] = fmaf(w0[i], xv[i], acc[0][m]);
            acc[1][m] = fmaf(w1[i], xv[i], acc[1][m]);
        }
    }
}

// One block of 8 warps: G = 8 / S output pairs, S warps each. Shared memory: xs (MT, K) WT, the GEMM input (rows >= R
// zero), then the warps' partial sums (8, 2, MT) float.
template <typename WT, int MT, int IN, int OUT>
__global__ void __launch_bounds__(GEMV_THREADS) llama_gemv_kernel(GemvArgs a) {
    extern __shared__ __align__(16) unsigned char gemv_smem[];
    __shared__ double ssq[MT][GEMV_WARPS];
    const int K = a.K, N = a.N, S = a.ksplit, G = GEMV_WARPS / S;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, grp = warp / S, slice = warp % S;
    WT *xs = (WT *)gemv_smem;
    float *part = (float *)(gemv_smem + ((size_t)MT * K * sizeof(WT) + 15) / 16 * 16);
    const int units = OUT == GEMV_OUT_SWIGLU ? N : (N + 1) / 2;
    int unit = blockIdx.x * G + grp;
    if (unit >= units) unit = units - 1;  // a tail warp computes a valid pair again and does not store it
    int64_t r0 = OUT == GEMV_OUT_SWIGLU ? unit : 2 * (int64_t)unit;
    int64_t r1 = OUT == GEMV_OUT_SWIGLU ? (int64_t)N + unit : (r0 + 1 < N ? r0 + 1 : r0);
    const WT *w0 = (const WT *)a.w + r0 * K, *w1 = (const WT *)a.w + r1 * K;
    const int nch = K / 8, cps = (nch + S - 1) / S, c_begin = slice * cps;
    const int c_end = c_begin + cps < nch ? c_begin + cps : nch;

    // weights only (no kernel writes them) before the wait
    uint4 p0[GEMV_PREFETCH] = {}, p1[GEMV_PREFETCH] = {};
#pragma unroll
    for (int i = 0; i < GEMV_PREFETCH; i++) {
        int c = c_begin + lane + 32 * i;
        if (c < c_end) {
            p0[i] = __ldg(reinterpret_cast<const uint4 *>(w0) + c);
            p1[i] = __ldg(reinterpret_cast<const uint4 *>(w1) + c);
        }
    }
    pdl_launch_dependents();
    pdl_wait();

    // the GEMM input
    if (IN == GEMV_IN_RMSNORM) {  // as rmsnorm_kernel: the sum of squares in double, r rounded to float
        double ss[MT];
#pragma unroll
        for (int m = 0; m < MT; m++) {
            ss[m] = 0;
            if (m < a.R)
                for (int k = threadIdx.x; k < K; k += GEMV_THREADS) {
                    float v = a.x[(int64_t)m * K + k];
                    ss[m] += (double)v * v;
                }
            ss[m] = warp_sum_d(ss[m]);
            if (lane == 0) ssq[m][warp] = ss[m];
        }
        __syncthreads();
#pragma unroll
        for (int m = 0; m < MT; m++) {
            double t = 0;
            for (int w = 0; w < GEMV_WARPS; w++) t += ssq[m][w];
            float r = (float)(1.0 / sqrt(t / (double)K + (double)a.eps));
            for (int k = threadIdx.x; k < K; k += GEMV_THREADS)
                xs[(int64_t)m * K + k] = from_f32<WT>(
                    m < a.R ? __fmul_rn(__fmul_rn(a.x[(int64_t)m * K + k], r), a.nw[k]) : 0.f);
        }
    } else {  // 16-byte copies
        const uint4 *src = (const uint4 *)a.in;
        uint4 *dst = (uint4 *)xs;
        int64_t n = (int64_t)a.R * nch;
        for (int64_t i = threadIdx.x; i < (int64_t)MT * nch; i += GEMV_THREADS)
            dst[i] = i < n ? src[i] : make_uint4(0u, 0u, 0u, 0u);
    }
    __syncthreads();

    float acc[2][MT];
#pragma unroll
    for (int m = 0; m < MT; m++) acc[0][m] = acc[1][m] = 0.f;
#pragma unroll
    for (int i = 0; i < GEMV_PREFETCH; i++) {
        int c = c_begin + lane + 32 * i;
        if (c < c_end) gemv_chunk<WT, MT>(acc, p0[i], p1[i], xs, K, c);
    }
    for (int c = c_begin + lane + 32 * GEMV_PREFETCH; c < c_end; c += 32 * GEMV_PREFETCH) {
#pragma unroll
        for (int i = 0; i < GEMV_PREFETCH; i++) {  // loads first, then the arithmetic
            int ci = c + 32 * i;
            if (ci < c_end) {
                p0[i] = __ldg(reinterpret_cast<const uint4 *>(w0) + ci);
                p1[i] = __ldg(reinterpret_cast<const uint4 *>(w1) + ci);
            }
        }
#pragma unroll
        for (int i = 0; i < GEMV_PREFETCH; i++)
            if (c + 32 * i < c_end) gemv_chunk<WT, MT>(acc, p0[i], p1[i], xs, K, c + 32 * i);
    }

#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int m = 0; m < MT; m++) {
            float v = warp_sum(acc[j][m]);
            if (lane == 0) part[(warp * 2 + j) * MT + m] = v;
        }
    __syncthreads();

    // epilogue: thread (g, m) adds the S slices of its pair in slice order
    int g = threadIdx.x / MT, m = threadIdx.x % MT;
    if (g >= G || m >= a.R) return;
    int u = blockIdx.x * G + g;
    if (u >= units) return;
    float v0 = 0.f, v1 = 0.f;
    for (int s = 0; s < S; s++) {
        v0 += part[((g * S + s) * 2 + 0) * MT + m];
        v1 += part[((g * S + s) * 2 + 1) * MT + m];
    }
    if (OUT == GEMV_OUT_SWIGLU) {  // as swiglu_kernel
        ((WT *)a.y)[(int64_t)m * N + u] = from_f32<WT>(__fmul_rn(__fdiv_rn(v0, 1.0f + expf(-v0)), v1));
        return;
    }
    float *y = (float *)a.y + (int64_t)m * N;
    int64_t n0 = 2 * (int64_t)u;
    if (OUT == GEMV_OUT_RESIDUAL) {  // x += h, h the float32 GEMM output (as kt_add after kt_linear)
        y[n0] = __fadd_rn(y[n0], v0);
        if (n0 + 1 < N) y[n0 + 1] = __fadd_rn(y[n0 + 1], v1);
    } else {
        y[n0] = v0;
        if (n0 + 1 < N) y[n0 + 1] = v1;
    }
}

// ------------------------------------------------------------------------------------------------ launchers
// Dynamic shared memory of a launch; the kernel's static ssq (MT x 8 doubles) comes on top (gemv_static_bytes).
static size_t gemv_smem_bytes(int MT, int64_t K, size_t wsize) {
    return ((size_t)MT * (size_t)K * wsize + 15) / 16 * 16 + (size_t)GEMV_WARPS * 2 * MT * sizeof(float);
}
static size_t gemv_static_bytes(int MT) { return (size_t)MT * GEMV_WARPS * sizeof(double); }
static int gemv_mt(int64_t R) { return R <= 1 ? 1 : R <= 2 ? 2 : R <= 4 ? 4 : 8; }

// Whether the fused kernel takes this call: 16-bit weights, rows <= be's fused_rows (<= 8), K a multiple of 8, the
// 16-byte alignment of the vector accesses, the input rows in shared memory. in16: the 16-bit tensor the kernel
// reads or writes beside w (hn's, inp's or g's dtype must be w's: the composition's rounding).
static bool gemv_fits(KtBackend *be, int64_t R, int64_t K, int64_t N, const KtTensor *w, const KtTensor *in16,
                      const void *in_ptr) {
    CudaImpl *c = cuda_impl(be);
    if (R < 1 || R > c->fused_rows || R > 8 || K < 8 || K % 8 || N < 1 || N >= (1ll << 30) || K >= (1ll << 24))
        return false;
    if (w->dtype == KT_F32 || in16->dtype != w->dtype) return false;
    if (!cuda_aligned(w->data, 16) || (in_ptr && !cuda_aligned(in_ptr, 16))) return false;
    return gemv_smem_bytes(gemv_mt(R), K, 2) + gemv_static_bytes(gemv_mt(R)) <= c->smem_optin;
}

// S: split K over more warps while the grid has fewer blocks than SMs and each slice keeps >= 32 chunks per lane
// group.
static int gemv_ksplit(KtBackend *be, int64_t units, int64_t K) {
    int S = 1;
    int64_t nch = K / 8;
    while (S < GEMV_WARPS && (units + GEMV_WARPS / S - 1) / (GEMV_WARPS / S) < cuda_impl(be)->sm_count &&
           nch / (2 * S) >= 32)
        S *= 2;
    return S;
}

template <typename WT, int MT, int IN, int OUT>
static KtStatus gemv_launch_mt(KtBackend *be, const GemvArgs &a) {
    int64_t units = OUT == GEMV_OUT_SWIGLU ? a.N : (a.N + 1) / 2;
    GemvArgs args = a;
    args.ksplit = gemv_ksplit(be, units, a.K);
    int G = GEMV_WARPS / args.ksplit;
    size_t smem = gemv_smem_bytes(MT, a.K, sizeof(WT));
    void (*kern)(GemvArgs) = llama_gemv_kernel<WT, MT, IN, OUT>;
    // static + dynamic above the default 48 KiB needs the opt-in (the dynamic part's limit)
    if (smem + gemv_static_bytes(MT) > 48 * 1024)
        KT_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    KT_CUDA_TRY(cuda_launch_pdl(be, kern, dim3((unsigned)((units + G - 1) / G)), dim3(GEMV_THREADS), smem, args));
    return KT_OK;
}

template <typename WT, int IN, int OUT>
static KtStatus gemv_launch(KtBackend *be, const GemvArgs &a) {
    switch (gemv_mt(a.R)) {
    case 1: return gemv_launch_mt<WT, 1, IN, OUT>(be, a);
    case 2: return gemv_launch_mt<WT, 2, IN, OUT>(be, a);
    case 4: return gemv_launch_mt<WT, 4, IN, OUT>(be, a);
    default: return gemv_launch_mt<WT, 8, IN, OUT>(be, a);
    }
}

template <int IN, int OUT>
static KtStatus gemv_by_dtype(KtBackend *be, KtDType wdt, const GemvArgs &a) {
    if (wdt == KT_BF16) return gemv_launch<__nv_bfloat16, IN, OUT>(be, a);
    return gemv_launch<__half, IN, OUT>(be, a);
}

// ------------------------------------------------------------------------------------------------------ ops
KtStatus cuda_rmsnorm_linear(KtBackend *be, KtTensor *y, KtTensor *hn, const KtTensor *x, const KtTensor *nw,
                             const KtTensor *w, float eps) {
    int64_t R = kt_rows(x), K = kt_cols(x), N = w->shape[0];
    if (R == 0 || N == 0) return KT_OK;
    if (!gemv_fits(be, R, K, N, w, hn, x->data)) {
        KT_TRY(cuda_rmsnorm(be, hn, x, nw, eps));
        return cuda_linear(be, y, hn, w, NULL);
    }
    GemvArgs a = {w->data, (const float *)x->data, (const float *)nw->data, NULL, y->data, (int)R, (int)N, (int)K,
                  1, eps};
    return gemv_by_dtype<GEMV_IN_RMSNORM, GEMV_OUT_STORE>(be, w->dtype, a);
}

KtStatus cuda_rmsnorm_linear_swiglu(KtBackend *be, KtTensor *g, KtTensor *a13, KtTensor *hn, const KtTensor *x,
                                    const KtTensor *nw, const KtTensor *w13, float eps) {
    int64_t R = kt_rows(x), K = kt_cols(x), F = kt_cols(g);
    if (R == 0 || F == 0) return KT_OK;
    if (!gemv_fits(be, R, K, F, w13, hn, x->data) || g->dtype != w13->dtype) {
        KT_TRY(cuda_rmsnorm(be, hn, x, nw, eps));
        KT_TRY(cuda_linear(be, a13, hn, w13, NULL));
        return cuda_swiglu(be, g, a13);
    }
    GemvArgs a = {w13->data, (const float *)x->data, (const float *)nw->data, NULL, g->data, (int)R, (int)F, (int)K,
                  1, eps};
    return gemv_by_dtype<GEMV_IN_RMSNORM, GEMV_OUT_SWIGLU>(be, w13->dtype, a);
}

KtStatus cuda_linear_residual(KtBackend *be, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w) {
    int64_t R = kt_rows(inp), K = kt_cols(inp), N = w->shape[0];
    if (R == 0 || N == 0) return KT_OK;
    if (!gemv_fits(be, R, K, N, w, inp, inp->data)) {
        bool done = false;
        KT_TRY(cuda_linear_accumulate(be, &done, x, inp, w));  // cuBLASLt: x = x + inp . w^T
        if (done) return KT_OK;
        KT_TRY(cuda_linear(be, h, inp, w, NULL));
        return cuda_add(be, x, x, h);
    }
    GemvArgs a = {w->data, NULL, NULL, inp->data, x->data, (int)R, (int)N, (int)K, 1, 0.f};
    return gemv_by_dtype<GEMV_IN_LOAD, GEMV_OUT_RESIDUAL>(be, w->dtype, a);
}
