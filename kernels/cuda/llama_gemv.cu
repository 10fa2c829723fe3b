// LlamaGen's GEMMs at small row counts (a decode step: 2 rows per image under CFG, so batches up to 32; SJD's and
// ZipAR's windows; up to 64 rows while the input rows fit in shared memory) as weight-streaming tensor-core kernels with their neighbours fused in: the RMSNorm before the qkv / w1|w3
// / head GEMMs (computed by every block from x), the residual add after wo / w2, the SwiGLU gate after w1|w3. One
// kernel per op of kt_rmsnorm_linear, kt_rmsnorm_linear_swiglu and kt_linear_residual (ops.h) instead of two or
// three, each launched as a programmatic dependent launch (sm_90): a block issues its first weight loads, then waits
// for the previous kernel, so the weights stream during the previous kernel's tail and the launch gap (a GPT-B step
// is ~100 latency-bound kernels at batch 1; its weights alone take ~65 us of HBM time per token).
// More rows, wider inputs (64 rows of K = 2048: GPT-B's w2 at batch 32) and fp32 weights run the compositions
// (RMSNorm kernel + cuBLASLt + SwiGLU kernel; cuBLASLt adds the residual with beta = 1).
//
// The tensor cores see the problem transposed: mma.m16n8k16's A operand (16 x 16) is 16 GEMM input rows (x, from
// shared memory; rows >= R zero), its B operand (16 x 8) is 8 weight rows, i.e. 8 outputs. A warp owns 8 outputs (a
// "unit"; SwiGLU: w1 rows f..f+7 and w3 rows F+f..F+f+7, two B tiles) over a 1/S slice of K, in blocks of 32 k:
// lane (g = lane / 4, t = lane % 4) loads 16 bytes of weight row g at k = 32 kb + 8t, and the matching 16 bytes of
// input rows g and g + 8. The k order inside a block is permuted so that those loads are the mma fragments as they
// are (PTX "Matrix Fragments for mma.m16n8k16": A holds (row g, k 2t..2t+1) and (row g, k 2t+8..2t+9), B holds
// (k 2t..2t+1, col g) and (k 2t+8..2t+9, col g)): mma step s (0, 1) takes 32-bit words 2s and 2s+1 of each 16-byte
// load as its "k 2t.." and "k 2t+8.." pairs, for the weights and the inputs alike. The permutation is the same on
// both operands, so the dot products are unchanged; only the order of the float sums differs from cuBLAS.
// Numerics: the GEMM input is rounded to the weights' dtype exactly as kt_rmsnorm rounds it; products are exact,
// summed in float by the tensor cores (within the GEMM tolerance of the CUDA tests); residual and SwiGLU as the CPU.
// ref: the compositions in kernels/ops_raster.c (the CPU backend runs them); kernels/cpu/llama.c
// Dims: R rows (<= MT: 8, 16, 32 or 64), K inputs (a multiple of 8), N outputs (SwiGLU: F, from the 2F rows of w13), S
// warps splitting K.
#include "cuda_common.cuh"

// ------------------------------------------------------------------------------------------------- PTX helpers
// c (16x8 fp32) += a (16x16, row) . b (16x8, col), 16-bit inputs
__device__ __forceinline__ void mma16816_bf16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma16816_f16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ------------------------------------------------------------------------------------------------- kernel
enum { GEMV_IN_RMSNORM = 0, GEMV_IN_LOAD = 1 };                     // where the GEMM input comes from
enum { GEMV_OUT_STORE = 0, GEMV_OUT_RESIDUAL = 1, GEMV_OUT_SWIGLU = 2, GEMV_OUT_CFG = 3 };  // what the epilogue does
#define GEMV_THREADS 256
#define GEMV_WARPS 8
#define GEMV_MAX_ROWS 64
#define GEMV_PREFETCH 8  // 16-byte weight loads per lane in flight (loaded before the wait for the previous kernel)

struct GemvArgs {
    const void *w;    // (N, K) weights WT; SwiGLU: (2F, K), rows f and F + f make output f
    const float *x;   // IN_RMSNORM: (R, K) float32 rows to normalise
    const float *nw;  // IN_RMSNORM: (K) the norm's weight
    const void *in;   // IN_LOAD: (R, K) the GEMM input, WT
    void *y;          // STORE: (R, N) float32; RESIDUAL: (R, N) float32, y += result; SWIGLU: (R, F) WT;
                      // CFG: (R / 2, N) float32, cfg_a * row m - cfg_t * row R / 2 + m (conditional rows first)
    int R, N, K;      // N: outputs (SwiGLU: F)
    int ksplit;       // S: warps per unit, each summing a 1/S slice of K's 32-blocks (1, 2, 4 or 8)
    float eps;
    float cfg_a, cfg_t;  // CFG: (float)(1 + (double)t) and t, as kt_cfg_combine
};

__device__ __forceinline__ void mma_tile(float *c, const uint32_t *a, uint32_t b0, uint32_t b1, const __nv_bfloat16 *) {
    mma16816_bf16(c, a, b0, b1);
}
__device__ __forceinline__ void mma_tile(float *c, const uint32_t *a, uint32_t b0, uint32_t b1, const __half *) {
    mma16816_f16(c, a, b0, b1);
}
// 32-bit word i of a 16-byte load (i a compile-time constant after unrolling)
__device__ __forceinline__ uint32_t word(const uint4 &u, int i) {
    return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w;
}

// Row stride of the input rows in shared memory (elements): K rounded up to 32, plus 64 bytes when that is a multiple
// of 128 bytes, so that the two rows a quarter-warp reads (lanes g = 0, 1) fall in different banks.
__host__ __device__ __forceinline__ int gemv_ldx(int K) {
    int k32 = (K + 31) / 32 * 32;
    return k32 % 64 ? k32 : k32 + 32;
}

// One 32-block of k for this lane: the input fragments of the MT rows against the NB weight tiles in wv.
template <typename WT, int MT, int NB>
__device__ __forceinline__ void gemv_block(float (&acc)[(MT + 15) / 16][NB][4], const uint4 (&wv)[NB], const WT *xs,
                                           int ldx, int k) {
#pragma unroll
    for (int mt = 0; mt < (MT + 15) / 16; mt++) {
        const WT *xr = xs + (int64_t)(mt * 16 + (threadIdx.x & 31) / 4) * ldx + k;
        uint4 xa = *reinterpret_cast<const uint4 *>(xr), xb = make_uint4(0u, 0u, 0u, 0u);
        if (MT >= 16) xb = *reinterpret_cast<const uint4 *>(xr + 8 * (int64_t)ldx);
#pragma unroll
        for (int s = 0; s < 2; s++) {
            const uint32_t a[4] = {word(xa, 2 * s), word(xb, 2 * s), word(xa, 2 * s + 1), word(xb, 2 * s + 1)};
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                mma_tile(acc[mt][nb], a, word(wv[nb], 2 * s), word(wv[nb], 2 * s + 1), (const WT *)nullptr);
        }
    }
}

// One block of 8 warps: G = 8 / S units, S warps each. Dynamic shared memory: xs (MT, ldx) WT, the GEMM input (rows
// >= R and columns >= K zero); after the products, the same bytes hold the warps' partial sums (8, MT, 8 NB) float.
template <typename WT, int MT, int IN, int OUT>
__global__ void __launch_bounds__(GEMV_THREADS, 1) llama_gemv_kernel(GemvArgs a) {
    constexpr int NB = OUT == GEMV_OUT_SWIGLU ? 2 : 1, MTILES = (MT + 15) / 16, PF = GEMV_PREFETCH / NB;
    extern __shared__ __align__(16) unsigned char gemv_smem[];
    __shared__ float rinv[MT];
    const int K = a.K, N = a.N, S = a.ksplit, G = GEMV_WARPS / S, ldx = gemv_ldx(K);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int grp = warp / S, slice = warp % S, units = (N + 7) / 8;
    WT *xs = (WT *)gemv_smem;
    int unit = blockIdx.x * G + grp;
    if (unit >= units) unit = units - 1;  // a tail warp computes a valid unit again and does not store it
    const int n = 8 * unit + g < N ? 8 * unit + g : N - 1;  // this lane's weight row (SwiGLU: w1's; w3's is F + n)
    const WT *wrow[NB];
    wrow[0] = (const WT *)a.w + (int64_t)n * K;
    if (NB == 2) wrow[NB - 1] = (const WT *)a.w + ((int64_t)N + n) * K;
    const int nkb = (K + 31) / 32, kps = (nkb + S - 1) / S, kb_begin = slice * kps;
    const int kb_end = kb_begin + kps < nkb ? kb_begin + kps : nkb;

    // weights only (no kernel writes them) before the wait
    uint4 wv[PF][NB];
#pragma unroll
    for (int i = 0; i < PF; i++) {
        int k = 32 * (kb_begin + i) + 8 * t;
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
            wv[i][nb] = kb_begin + i < kb_end && k < K ? __ldg(reinterpret_cast<const uint4 *>(wrow[nb] + k))
                                                         : make_uint4(0u, 0u, 0u, 0u);
    }
    pdl_launch_dependents();
    pdl_wait();

    // the GEMM input
    const int k32 = nkb * 32;
    if (IN == GEMV_IN_RMSNORM) {  // as rmsnorm_kernel: the sum of squares in double, r rounded to float
        for (int m = warp; m < a.R; m += GEMV_WARPS) {
            double ss = 0;
            for (int k = lane; k < K; k += 32) {
                float v = a.x[(int64_t)m * K + k];
                ss += (double)v * v;
            }
            ss = warp_sum_d(ss);
            if (lane == 0) rinv[m] = (float)(1.0 / sqrt(ss / (double)K + (double)a.eps));
        }
        __syncthreads();
        for (int m = 0; m < MT; m++)
            for (int k = threadIdx.x; k < k32; k += GEMV_THREADS)
                xs[(int64_t)m * ldx + k] = from_f32<WT>(
                    m < a.R && k < K ? __fmul_rn(__fmul_rn(a.x[(int64_t)m * K + k], rinv[m]), a.nw[k]) : 0.f);
    } else {  // 16-byte copies
        const uint4 *src = (const uint4 *)a.in;
        const int cpr = k32 / 8, kc = K / 8;  // 16-byte chunks per padded row, per input row
        for (int i = threadIdx.x; i < MT * cpr; i += GEMV_THREADS) {
            int m = i / cpr, c = i % cpr;
            reinterpret_cast<uint4 *>(xs + (int64_t)m * ldx)[c] =
                m < a.R && c < kc ? src[(int64_t)m * kc + c] : make_uint4(0u, 0u, 0u, 0u);
        }
    }
    __syncthreads();

    float acc[MTILES][NB][4];
#pragma unroll
    for (int mt = 0; mt < MTILES; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[mt][nb][i] = 0.f;
#pragma unroll
    for (int i = 0; i < PF; i++)
        if (kb_begin + i < kb_end) gemv_block<WT, MT, NB>(acc, wv[i], xs, ldx, 32 * (kb_begin + i) + 8 * t);
    for (int kb = kb_begin + PF; kb < kb_end; kb += PF) {
#pragma unroll
        for (int i = 0; i < PF; i++) {  // loads first, then the products
            int k = 32 * (kb + i) + 8 * t;
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                wv[i][nb] = kb + i < kb_end && k < K ? __ldg(reinterpret_cast<const uint4 *>(wrow[nb] + k))
                                                     : make_uint4(0u, 0u, 0u, 0u);
        }
#pragma unroll
        for (int i = 0; i < PF; i++)
            if (kb + i < kb_end) gemv_block<WT, MT, NB>(acc, wv[i], xs, ldx, 32 * (kb + i) + 8 * t);
    }

    // partial sums: part[warp][row][col], accumulator c[i] = (row g + 8 (i >= 2), col 2t + i % 2) of its tile
    __syncthreads();  // every warp is done with xs
    float *part = (float *)gemv_smem;
#pragma unroll
    for (int mt = 0; mt < MTILES; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int row = mt * 16 + g + 8 * (i >> 1);
                if (row < MT) part[((int64_t)warp * MT + row) * (8 * NB) + nb * 8 + 2 * t + (i & 1)] = acc[mt][nb][i];
            }
    __syncthreads();

    // epilogue: item (unit group u, row m, column c) adds the S slices in slice order (CFG: rows m and R/2 + m of the
    // logits, combined as cfg_kernel does, for m < R/2)
    const int RO = OUT == GEMV_OUT_CFG ? a.R / 2 : a.R;  // output rows
    for (int i = threadIdx.x; i < G * RO * 8; i += GEMV_THREADS) {
        int gu = i / (RO * 8), m = i / 8 % RO, c = i % 8, u = blockIdx.x * G + gu, col = 8 * u + c;
        if (u >= units || col >= N) continue;
        float v0 = 0.f, v1 = 0.f;
        for (int s = 0; s < S; s++) {
            const float *p = part + ((int64_t)(gu * S + s) * MT + m) * (8 * NB);
            v0 += p[c];
            if (NB == 2) v1 += p[8 + c];
            if (OUT == GEMV_OUT_CFG) v1 += p[(int64_t)RO * 8 * NB + c];  // row RO + m: the unconditional logit
        }
        if (OUT == GEMV_OUT_CFG) {
            ((float *)a.y)[(int64_t)m * N + col] = __fsub_rn(__fmul_rn(a.cfg_a, v0), __fmul_rn(a.cfg_t, v1));
        } else if (OUT == GEMV_OUT_SWIGLU) {  // as swiglu_kernel
            ((WT *)a.y)[(int64_t)m * N + col] = from_f32<WT>(__fmul_rn(__fdiv_rn(v0, 1.0f + expf(-v0)), v1));
        } else {
            float *y = (float *)a.y + (int64_t)m * N + col;
            *y = OUT == GEMV_OUT_RESIDUAL ? __fadd_rn(*y, v0) : v0;  // x += h as kt_add after kt_linear
        }
    }
}

// ------------------------------------------------------------------------------------------------ launchers
static int gemv_mt(int64_t R) { return R <= 8 ? 8 : R <= 16 ? 16 : R <= 32 ? 32 : 64; }
// Dynamic shared memory of a launch: the input rows, or the partial sums when those are larger (the same bytes).
static size_t gemv_smem_bytes(int MT, int64_t K, bool swiglu) {
    size_t xs = (size_t)MT * (size_t)gemv_ldx((int)K) * 2, part = (size_t)GEMV_WARPS * MT * 8 * (swiglu ? 2 : 1) * 4;
    return xs > part ? xs : part;
}

// Whether the fused kernel takes this call: 16-bit weights, rows <= be's fused_rows (<= 64), K a multiple of 8, the
// 16-byte alignment of the vector accesses, the input rows in shared memory, tensor cores with bf16 (sm_80). in16:
// the 16-bit tensor the kernel reads or writes beside w (hn's, inp's or g's dtype must be w's: the composition's
// rounding).
static bool gemv_fits(KtBackend *be, int64_t R, int64_t K, int64_t N, const KtTensor *w, const KtTensor *in16,
                      const void *in_ptr, bool swiglu) {
    CudaImpl *c = cuda_impl(be);
    if (R < 1 || R > c->fused_rows || R > GEMV_MAX_ROWS || c->cc_major < 8 || K < 8 || K % 8 || N < 1 ||
        N >= (1ll << 30) || K >= (1ll << 24))
        return false;
    if (w->dtype == KT_F32 || in16->dtype != w->dtype) return false;
    if (!cuda_aligned(w->data, 16) || (in_ptr && !cuda_aligned(in_ptr, 16))) return false;
    int MT = gemv_mt(R);
    return gemv_smem_bytes(MT, K, swiglu) + (size_t)MT * sizeof(float) <= c->smem_optin;
}

// S: split K over more warps while the grid has fewer blocks than SMs and each warp keeps >= 2 blocks of 32 k.
static int gemv_ksplit(KtBackend *be, int64_t units, int64_t K) {
    int S = 1;
    int64_t nkb = (K + 31) / 32;
    while (S < GEMV_WARPS && (units + GEMV_WARPS / S - 1) / (GEMV_WARPS / S) < cuda_impl(be)->sm_count &&
           nkb / (2 * S) >= 2)
        S *= 2;
    return S;
}

template <typename WT, int MT, int IN, int OUT>
static KtStatus gemv_launch_mt(KtBackend *be, const GemvArgs &a) {
    int64_t units = (a.N + 7) / 8;
    GemvArgs args = a;
    args.ksplit = gemv_ksplit(be, units, a.K);
    int G = GEMV_WARPS / args.ksplit;
    size_t smem = gemv_smem_bytes(MT, a.K, OUT == GEMV_OUT_SWIGLU);
    void (*kern)(GemvArgs) = llama_gemv_kernel<WT, MT, IN, OUT>;
    // static + dynamic above the default 48 KiB needs the opt-in (the dynamic part's limit)
    if (smem + MT * sizeof(float) > 48 * 1024)
        KT_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    KT_CUDA_TRY(cuda_launch_pdl(be, kern, dim3((unsigned)((units + G - 1) / G)), dim3(GEMV_THREADS), smem, args));
    return KT_OK;
}

template <typename WT, int IN, int OUT>
static KtStatus gemv_launch(KtBackend *be, const GemvArgs &a) {
    switch (gemv_mt(a.R)) {
    case 8: return gemv_launch_mt<WT, 8, IN, OUT>(be, a);
    case 16: return gemv_launch_mt<WT, 16, IN, OUT>(be, a);
    case 32: return gemv_launch_mt<WT, 32, IN, OUT>(be, a);
    default: return gemv_launch_mt<WT, 64, IN, OUT>(be, a);
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
    if (!gemv_fits(be, R, K, N, w, hn, x->data, false)) {
        KT_TRY(cuda_rmsnorm(be, hn, x, nw, eps));
        return cuda_linear(be, y, hn, w, NULL);
    }
    GemvArgs a = {w->data, (const float *)x->data, (const float *)nw->data, NULL, y->data, (int)R, (int)N, (int)K,
                  1, eps, 0.f, 0.f};
    return gemv_by_dtype<GEMV_IN_RMSNORM, GEMV_OUT_STORE>(be, w->dtype, a);
}

// The head with CFG: the fused kernel's epilogue combines each conditional logit with its unconditional row (never
// stored); otherwise kt_rmsnorm_linear into `logits`, then kt_cfg_combine.
KtStatus cuda_rmsnorm_linear_cfg(KtBackend *be, KtTensor *lc, KtTensor *logits, KtTensor *hn, const KtTensor *x,
                                 const KtTensor *nw, const KtTensor *w, float eps, float t) {
    int64_t R = kt_rows(x), K = kt_cols(x), N = w->shape[0];
    if (R == 0 || N == 0) return KT_OK;
    if (R % 2 || !gemv_fits(be, R, K, N, w, hn, x->data, false)) {
        KT_TRY(cuda_rmsnorm_linear(be, logits, hn, x, nw, w, eps));
        return cuda_cfg_combine(be, lc, logits, t);
    }
    GemvArgs a = {w->data, (const float *)x->data, (const float *)nw->data, NULL, lc->data, (int)R, (int)N, (int)K,
                  1, eps, (float)(1.0 + (double)t), t};
    return gemv_by_dtype<GEMV_IN_RMSNORM, GEMV_OUT_CFG>(be, w->dtype, a);
}

KtStatus cuda_rmsnorm_linear_swiglu(KtBackend *be, KtTensor *g, KtTensor *a13, KtTensor *hn, const KtTensor *x,
                                    const KtTensor *nw, const KtTensor *w13, float eps) {
    int64_t R = kt_rows(x), K = kt_cols(x), F = kt_cols(g);
    if (R == 0 || F == 0) return KT_OK;
    if (!gemv_fits(be, R, K, F, w13, hn, x->data, true) || g->dtype != w13->dtype) {
        KT_TRY(cuda_rmsnorm(be, hn, x, nw, eps));
        KT_TRY(cuda_linear(be, a13, hn, w13, NULL));
        return cuda_swiglu(be, g, a13);
    }
    GemvArgs a = {w13->data, (const float *)x->data, (const float *)nw->data, NULL, g->data, (int)R, (int)F, (int)K,
                  1, eps, 0.f, 0.f};
    return gemv_by_dtype<GEMV_IN_RMSNORM, GEMV_OUT_SWIGLU>(be, w13->dtype, a);
}

KtStatus cuda_linear_residual(KtBackend *be, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w) {
    int64_t R = kt_rows(inp), K = kt_cols(inp), N = w->shape[0];
    if (R == 0 || N == 0) return KT_OK;
    if (!gemv_fits(be, R, K, N, w, inp, inp->data, false)) {
        bool done = false;
        KT_TRY(cuda_linear_accumulate(be, &done, x, inp, w));  // cuBLASLt: x = x + inp . w^T
        if (done) return KT_OK;
        KT_TRY(cuda_linear(be, h, inp, w, NULL));
        return cuda_add(be, x, x, h);
    }
    GemvArgs a = {w->data, NULL, NULL, inp->data, x->data, (int)R, (int)N, (int)K, 1, 0.f, 0.f, 0.f};
    return gemv_by_dtype<GEMV_IN_LOAD, GEMV_OUT_RESIDUAL>(be, w->dtype, a);
}
