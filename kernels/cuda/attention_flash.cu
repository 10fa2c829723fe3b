// Fused attention (flash style: one pass over the keys with an online softmax, scores never leave the chip).
//  - flash_f16: fp16 tensor cores (mma.sync m16n8k16, fp32 accumulation), used when the backend's matmul dtype is
//    16-bit. K/V tiles stream in as fp32 through a two-stage cp.async pipeline and are converted to fp16 in shared
//    memory; q is pre-multiplied by scale*log2(e) so the softmax runs on exp2. fp16 (not bf16) keeps 10 mantissa
//    bits for VAR's scores of magnitude up to 100 (q is L2-normalised times exp(<= ln 100)), as torch's fp16 SDPA.
//  - flash_f32: plain fp32 FMA (no TF32), for the float32 backend: matches the CPU to rounding.
// Both give zeros for rows whose keys are all masked (-inf bias), like the CPU reference.
// ref: F.scaled_dot_product_attention; VAR models/basic_var.py SelfAttention (KV-cached inference, masked forward)
// Dims: B batch, NH heads, Tq queries, Tcap cache capacity, D head size, kv keys in use; BQ/BK query/key tile.
#include "cuda_common.cuh"

#define LOG2E_F 1.4426950408889634f

// ------------------------------------------------------------------------------------------------- PTX helpers
__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t *r, const void *p) {
    unsigned a = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(a));
}
// c (16x8 fp32) += a (16x16 fp16, row) . b (16x8 fp16, col)
__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_h2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

// ------------------------------------------------------------------------------------------ fp16 tensor cores
typedef struct {
    void *out;          // (B, Tq, NH*D) in OT
    float *q, *k, *v;   // q (B, NH, Tq, D); k, v (B, NH, Tcap, D). PREP: q and rows [t0, kv) of k, v are written
    const float *bias;  // (Tq, kv) or NULL
    const float *qkv, *hsl;  // PREP: (B, Tq, 3 NH D), (NH)
    int64_t Tcap;
    int NH, Tq, kv, t0, qtiles;
    float qscale;
} FlashF16Args;

// Sum over the D/4 consecutive lanes holding one row (groups aligned to D/4 lanes, D/4 <= 32).
template <int D> __device__ __forceinline__ float row_sum(float x) {
#pragma unroll
    for (int o = D / 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float sumsq4(float4 a) { return a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w; }
// a / max(||row||, 1e-12) with ss = ||row||^2. Float sums and a multiply by the rounded reciprocal instead of
// kt_var_attn_prep's double sum and IEEE division (a few ulp apart; the result is rounded to fp16 next): this sits
// on the per-tile critical path of a latency-bound kernel.
__device__ __forceinline__ float4 l2div4(float4 a, float ss) {
    float nrm = __fsqrt_rn(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    float r = __frcp_rn(nrm);
    return make_float4(a.x * r, a.y * r, a.z * r, a.w * r);
}
__device__ __forceinline__ void store2(float *p, float a, float b) { *(float2 *)p = make_float2(a, b); }
__device__ __forceinline__ void store2(__nv_bfloat16 *p, float a, float b) {
    *(__nv_bfloat162 *)p = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void store2(__half *p, float a, float b) { *(__half2 *)p = __floats2half2_rn(a, b); }

// Block: NW warps, 16 query rows each (BQ = 16*NW), one (b, h). Shared memory: fp32 K/V stages [2][BK][D] each,
// fp16 K/V tiles [BK][D+8], fp16 Q [BQ][D+8] (the +8 halves keep ldmatrix rows on distinct banks).
// PREP (VAR's step, kt_var_attention): queries are read from qkv and L2-normalised times the head's temperature
// (written to q as well); keys [t0, kv) are read from qkv, their K rows L2-normalised in the fp32 stage, and the
// block with query tile 0 writes them to the caches. Every block reads only cache rows < t0, which no block of this
// launch writes. The row reductions run on all lanes (loop trip counts are multiples of the block size).
template <int D, int BK, int NW, typename OT, bool PREP>
__global__ void __launch_bounds__(NW * 32) flash_f16_kernel(FlashF16Args A) {
    constexpr int BQ = 16 * NW, DH = D + 8, NT = NW * 32, D4 = D / 4;
    static_assert((BQ * D4) % NT == 0 && (BK * D4) % NT == 0 && NT % D4 == 0, "uniform loops for the row sums");
    extern __shared__ __align__(16) unsigned char smem[];
    float *Kf = (float *)smem, *Vf = Kf + 2 * BK * D;
    __half *Kh = (__half *)(Vf + 2 * BK * D), *Vh = Kh + BK * DH, *Qh = Vh + BK * DH;
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int Tq = A.Tq, kv = A.kv, NH = A.NH, t0 = A.t0;
    int bh = blockIdx.x / A.qtiles, qt = blockIdx.x % A.qtiles, q0 = qt * BQ, b = bh / NH, h = bh % NH;
    const int64_t C = (int64_t)NH * D, C3 = 3 * C;
    float *kh = A.k + (int64_t)bh * A.Tcap * D, *vh = A.v + (int64_t)bh * A.Tcap * D;
    const float *nb = PREP ? A.qkv + (int64_t)b * Tq * C3 + h * D : NULL;  // this (b, h)'s q part of new token 0

    auto issue = [&](int tile, int stage) {  // cp.async one K/V tile (rows past kv are zero-filled)
        for (int i = tid; i < BK * D4; i += NT) {
            int r = i / D4, c4 = i % D4, key = tile * BK + r;
            bool ok = key < kv;
            const float *ks = kh, *vs = vh;
            if (ok && PREP && key >= t0) {
                ks = nb + (int64_t)(key - t0) * C3 + C + c4 * 4;
                vs = ks + C;
            } else if (ok) {
                ks = kh + (int64_t)key * D + c4 * 4;
                vs = vh + (int64_t)key * D + c4 * 4;
            }
            cp_async16(Kf + (stage * BK + r) * D + c4 * 4, ks, ok ? 16 : 0);
            cp_async16(Vf + (stage * BK + r) * D + c4 * 4, vs, ok ? 16 : 0);
        }
        cp_async_commit();
    };
    int ntiles = (kv + BK - 1) / BK;
    issue(0, 0);
    float hs = 1.f;
    if (PREP) {
        const float ln100 = 4.605170249938965f;  // float32(log(100)), VAR's max_scale_mul
        float lg = A.hsl[h] < ln100 ? A.hsl[h] : ln100;
        hs = (float)exp((double)lg);  // correctly rounded like the CPU's expf (glibc)
    }
#pragma unroll 4
    for (int it = 0; it < BQ * D4 / NT; it++) {  // Q tile -> fp16, pre-scaled
        int i = tid + it * NT, r = i / D4, c4 = i % D4;
        bool in = q0 + r < Tq;
        float4 x = make_float4(0, 0, 0, 0);
        if (PREP) {
            if (in) x = *(const float4 *)(nb + (int64_t)(q0 + r) * C3 + c4 * 4);
            x = l2div4(x, row_sum<D>(sumsq4(x)));
            x = make_float4(__fmul_rn(x.x, hs), __fmul_rn(x.y, hs), __fmul_rn(x.z, hs), __fmul_rn(x.w, hs));
            if (in) *(float4 *)(A.q + ((int64_t)bh * Tq + q0 + r) * D + c4 * 4) = x;
        } else if (in) {
            x = *(const float4 *)(A.q + ((int64_t)bh * Tq + q0 + r) * D + c4 * 4);
        }
        float qs = A.qscale;
        uint2 u = make_uint2(pack_h2(x.x * qs, x.y * qs), pack_h2(x.z * qs, x.w * qs));
        *(uint2 *)(Qh + r * DH + c4 * 4) = u;
    }
    __syncthreads();
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) ldsm_x4(qf[kk], Qh + (warp * 16 + (lane & 15)) * DH + kk * 16 + (lane >> 4) * 8);
    float o[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
    int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
    const float *bias = A.bias;

    for (int kt = 0; kt < ntiles; kt++) {
        int st = kt & 1;
        if (kt + 1 < ntiles) {
            issue(kt + 1, st ^ 1);
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // tile kt landed; every warp is done with the previous fp16 tiles
        bool fresh = PREP && (kt + 1) * BK > t0;  // the tile holds new keys (uniform over the block)
#pragma unroll 4
        for (int it = 0; it < BK * D4 / NT; it++) {
            int i = tid + it * NT, r = i / D4, c4 = i % D4;
            float4 a = *(const float4 *)(Kf + (st * BK + r) * D + c4 * 4), c = *(const float4 *)(Vf + (st * BK + r) * D + c4 * 4);
            if (fresh) {
                int key = kt * BK + r;
                float ss = row_sum<D>(sumsq4(a));
                if (key >= t0 && key < kv) {
                    a = l2div4(a, ss);
                    if (qt == 0) {
                        *(float4 *)(kh + (int64_t)key * D + c4 * 4) = a;
                        *(float4 *)(vh + (int64_t)key * D + c4 * 4) = c;
                    }
                }
            }
            *(uint2 *)(Kh + r * DH + c4 * 4) = make_uint2(pack_h2(a.x, a.y), pack_h2(a.z, a.w));
            *(uint2 *)(Vh + r * DH + c4 * 4) = make_uint2(pack_h2(c.x, c.y), pack_h2(c.z, c.w));
        }
        __syncthreads();
        float s[BK / 8][4];
#pragma unroll
        for (int n = 0; n < BK / 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
            for (int j = 0; j < BK / 16; j++) {
                uint32_t bf[4];
                ldsm_x4(bf, Kh + (j * 16 + (lane & 7) + (lane >> 4) * 8) * DH + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816(s[2 * j], qf[kk], bf[0], bf[1]);
                mma16816(s[2 * j + 1], qf[kk], bf[2], bf[3]);
            }
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < BK / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = kt * BK + n * 8 + 2 * t4 + (e & 1), row = e < 2 ? r0 : r1;
                float x = s[n][e];
                if (key >= kv) x = -INFINITY;
                else if (bias && row < Tq) x += bias[(int64_t)row * kv + key] * LOG2E_F;
                s[n][e] = x;
                if (e < 2) mx0 = fmaxf(mx0, x);
                else mx1 = fmaxf(mx1, x);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;  // fully masked so far
        float c0 = ex2(m0 - mu0), c1 = ex2(m1 - mu1);
        m0 = mn0;
        m1 = mn1;
        float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
        for (int n = 0; n < BK / 8; n++) {
            s[n][0] = ex2(s[n][0] - mu0);
            s[n][1] = ex2(s[n][1] - mu0);
            s[n][2] = ex2(s[n][2] - mu1);
            s[n][3] = ex2(s[n][3] - mu1);
            rs0 += s[n][0] + s[n][1];
            rs1 += s[n][2] + s[n][3];
        }
        l0 = l0 * c0 + rs0;  // per-thread partial row sums: reduced over the quad once at the end
        l1 = l1 * c1 + rs1;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            o[n][0] *= c0;
            o[n][1] *= c0;
            o[n][2] *= c1;
            o[n][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            uint32_t a[4] = {pack_h2(s[2 * kk][0], s[2 * kk][1]), pack_h2(s[2 * kk][2], s[2 * kk][3]),
                             pack_h2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack_h2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int j = 0; j < D / 16; j++) {
                uint32_t bf[4];
                ldsm_x4_t(bf, Vh + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DH + j * 16 + (lane >> 4) * 8);
                mma16816(o[2 * j], a, bf[0], bf[1]);
                mma16816(o[2 * j + 1], a, bf[2], bf[3]);
            }
        }
    }
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float i0 = l0 != 0.f ? 1.f / l0 : 0.f, i1 = l1 != 0.f ? 1.f / l1 : 0.f;  // NaN stays NaN
    OT *out = (OT *)A.out;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
        int d = h * D + n * 8 + 2 * t4;
        if (r0 < Tq) store2(out + ((int64_t)b * Tq + r0) * C + d, o[n][0] * i0, o[n][1] * i0);
        if (r1 < Tq) store2(out + ((int64_t)b * Tq + r1) * C + d, o[n][2] * i1, o[n][3] * i1);
    }
}

template <int D, int BK, int NW, typename OT, bool PREP>
static KtStatus launch_f16(KtBackend *be, FlashF16Args a, int64_t BH) {
    constexpr int BQ = 16 * NW;
    size_t smem = (size_t)4 * BK * D * 4 + (size_t)(2 * BK + BQ) * (D + 8) * 2;
    if (smem > cuda_impl(be)->smem_optin) return KT_ERR_UNSUPPORTED;
    // per call: the attribute belongs to the current device's context (cheap, and allowed during capture)
    KT_CUDA_TRY(cudaFuncSetAttribute(flash_f16_kernel<D, BK, NW, OT, PREP>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
    a.qtiles = (a.Tq + BQ - 1) / BQ;
    int64_t grid = BH * a.qtiles;
    if (grid > INT32_MAX) return KT_ERR_UNSUPPORTED;
    flash_f16_kernel<D, BK, NW, OT, PREP><<<(unsigned)grid, NW * 32, smem, cuda_stream(be)>>>(a);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

template <typename OT, bool PREP>
static KtStatus dispatch_f16(KtBackend *be, const FlashF16Args &a, int64_t BH, int64_t HS, int nw) {
    if (HS == 64) {
        if (nw == 1) return launch_f16<64, 64, 1, OT, PREP>(be, a, BH);
        if (nw == 4) return launch_f16<64, 64, 4, OT, PREP>(be, a, BH);
        return launch_f16<64, 64, 8, OT, PREP>(be, a, BH);
    }
    if (nw == 1) return launch_f16<128, 32, 1, OT, PREP>(be, a, BH);
    if (nw == 4) return launch_f16<128, 32, 4, OT, PREP>(be, a, BH);
    return launch_f16<128, 32, 8, OT, PREP>(be, a, BH);
}

KtStatus cuda_attention_flash_f16(KtBackend *be, void *out, KtDType odt, float *q, float *k, float *v, int64_t B,
                                  int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv_len, const float *bias,
                                  float scale, const CudaVarPrep *prep) {
    if ((HS != 64 && HS != 128) || Tq > INT32_MAX || kv_len > INT32_MAX || NH > INT32_MAX) return KT_ERR_UNSUPPORTED;
    if (!cuda_aligned(q, 16) || !cuda_aligned(k, 16) || !cuda_aligned(v, 16) ||
        !cuda_aligned(out, odt == KT_F32 ? 8 : 4))
        return KT_ERR_UNSUPPORTED;
    if (prep && (!cuda_aligned(prep->qkv, 16) || prep->t0 > INT32_MAX)) return KT_ERR_UNSUPPORTED;
    if (B * NH * Tq == 0) return KT_OK;
    // Warps per block: 1 for a handful of queries (VAR's first scales), 8 when there are enough 128-query tiles to
    // fill the GPU twice (each K/V tile is then converted once for 128 queries), else 4.
    int nw = Tq <= 16 ? 1 : 4, sms = cuda_impl(be)->sm_count;
    if (Tq >= 128 && B * NH * ((Tq + 127) / 128) >= 2 * sms) nw = 8;
    // With prep, every query tile of a (b, h) normalises all new keys on its critical path (and again per tile). On
    // a GPU filled twice over that is cheap next to the attention (throughput-bound); in less than two waves (batch
    // 1) it costs more than a separate prep kernel spread over the GPU (H100, B2=2: T=256 kv=680 fused 41 us vs 29 us
    // for prep + attention; T=64 kv=155, one tile, 14.1 vs 12.1 us) -> let the caller run the two ops. One-warp
    // blocks (T <= 16: VAR's first scales) stay fused: a handful of keys costs less than a launch.
    int64_t qt = (Tq + 16 * nw - 1) / (16 * nw);
    if (prep && nw > 1 && B * NH * qt < 2 * sms) return KT_ERR_UNSUPPORTED;
    FlashF16Args a = {};
    a.out = out, a.q = q, a.k = k, a.v = v, a.bias = bias, a.Tcap = Tcap;
    a.NH = (int)NH, a.Tq = (int)Tq, a.kv = (int)kv_len, a.qscale = scale * LOG2E_F;
    if (prep) {
        a.qkv = prep->qkv, a.hsl = prep->head_scale_log, a.t0 = (int)prep->t0;
        if (odt == KT_BF16) return dispatch_f16<__nv_bfloat16, true>(be, a, B * NH, HS, nw);
        if (odt == KT_F16) return dispatch_f16<__half, true>(be, a, B * NH, HS, nw);
        return dispatch_f16<float, true>(be, a, B * NH, HS, nw);
    }
    if (odt == KT_BF16) return dispatch_f16<__nv_bfloat16, false>(be, a, B * NH, HS, nw);
    if (odt == KT_F16) return dispatch_f16<__half, false>(be, a, B * NH, HS, nw);
    return dispatch_f16<float, false>(be, a, B * NH, HS, nw);
}

// ----------------------------------------------------------------------------------------------- fp32 (FMA)
// Block: 128 threads, BQ = 32 queries of one (b, h), key tiles of BK = 64. Thread (ty, tx) = (tid/16, tid%16) owns
// rows 4ty..4ty+3; for scores the keys tx + 16j, for the output the dims tx*DPT..tx*DPT+DPT-1.
template <int D>
__global__ void __launch_bounds__(128)
flash_f32_kernel(float *__restrict__ out, const float *__restrict__ q, const float *__restrict__ k,
                 const float *__restrict__ v, int NH, int Tq, int64_t Tcap, int kv, const float *__restrict__ bias,
                 float scale, int qtiles) {
    constexpr int BQ = 32, BK = 64, DP = D + 4, PP = BK + 4, DPT = D / 16;
    extern __shared__ __align__(16) unsigned char smem[];
    float *Qs = (float *)smem, *Ks = Qs + BQ * D, *Vs = Ks + BK * DP, *Ps = Vs + BK * D;
    int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    int bh = blockIdx.x / qtiles, q0 = (blockIdx.x % qtiles) * BQ, b = bh / NH, h = bh % NH;
    const float *qh = q + (int64_t)bh * Tq * D, *kh = k + (int64_t)bh * Tcap * D, *vh = v + (int64_t)bh * Tcap * D;
    for (int i = tid; i < BQ * D / 4; i += 128) {
        int r = i / (D / 4), c4 = i % (D / 4);
        ((float4 *)Qs)[i] = q0 + r < Tq ? *(const float4 *)(qh + (int64_t)(q0 + r) * D + c4 * 4) : make_float4(0, 0, 0, 0);
    }
    float m[4], l[4], o[4][DPT];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.f;
#pragma unroll
        for (int d = 0; d < DPT; d++) o[i][d] = 0.f;
    }
    for (int k0 = 0; k0 < kv; k0 += BK) {
        __syncthreads();  // the previous tile's readers are done
        for (int i = tid; i < BK * D / 4; i += 128) {
            int r = i / (D / 4), c4 = i % (D / 4);
            bool ok = k0 + r < kv;
            float4 z = make_float4(0, 0, 0, 0);
            *(float4 *)(Ks + r * DP + c4 * 4) = ok ? *(const float4 *)(kh + (int64_t)(k0 + r) * D + c4 * 4) : z;
            *(float4 *)(Vs + r * D + c4 * 4) = ok ? *(const float4 *)(vh + (int64_t)(k0 + r) * D + c4 * 4) : z;
        }
        __syncthreads();
        float s[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll 4
        for (int d = 0; d < D; d += 4) {
            float4 qa[4], kb[4];
#pragma unroll
            for (int i = 0; i < 4; i++) qa[i] = *(const float4 *)(Qs + (ty * 4 + i) * D + d);
#pragma unroll
            for (int j = 0; j < 4; j++) kb[j] = *(const float4 *)(Ks + (tx + 16 * j) * DP + d);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    s[i][j] += qa[i].x * kb[j].x + qa[i].y * kb[j].y + qa[i].z * kb[j].z + qa[i].w * kb[j].w;
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int row = q0 + ty * 4 + i;
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int key = k0 + tx + 16 * j;
                float x = s[i][j] * scale;
                if (key >= kv) x = -INFINITY;
                else if (bias && row < Tq) x += bias[(int64_t)row * kv + key];
                s[i][j] = x;
                mx = fmaxf(mx, x);
            }
            for (int off = 8; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
            float mn = fmaxf(m[i], mx), mu = mn == -INFINITY ? 0.f : mn;
            float corr = expf(m[i] - mu), rs = 0.f;
            m[i] = mn;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float p = expf(s[i][j] - mu);
                rs += p;
                Ps[(ty * 4 + i) * PP + tx + 16 * j] = p;
            }
            for (int off = 8; off > 0; off >>= 1) rs += __shfl_xor_sync(0xffffffffu, rs, off);
            l[i] = l[i] * corr + rs;
#pragma unroll
            for (int d = 0; d < DPT; d++) o[i][d] *= corr;
        }
        __syncthreads();
#pragma unroll 2
        for (int j = 0; j < BK; j += 4) {
            float4 pa[4];
#pragma unroll
            for (int i = 0; i < 4; i++) pa[i] = *(const float4 *)(Ps + (ty * 4 + i) * PP + j);
#pragma unroll
            for (int jj = 0; jj < 4; jj++) {
                float vv[DPT];
#pragma unroll
                for (int d = 0; d < DPT; d++) vv[d] = Vs[(j + jj) * D + tx * DPT + d];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float p = jj == 0 ? pa[i].x : jj == 1 ? pa[i].y : jj == 2 ? pa[i].z : pa[i].w;
#pragma unroll
                    for (int d = 0; d < DPT; d++) o[i][d] += p * vv[d];
                }
            }
        }
    }
    int64_t C = (int64_t)NH * D;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int row = q0 + ty * 4 + i;
        if (row >= Tq) continue;
        float inv = l[i] != 0.f ? 1.f / l[i] : 0.f;  // no finite score: zeros; NaN stays NaN
        float *dst = out + ((int64_t)b * Tq + row) * C + h * D + tx * DPT;
#pragma unroll
        for (int d = 0; d < DPT; d++) dst[d] = o[i][d] * inv;
    }
}

template <int D>
static KtStatus launch_f32(KtBackend *be, float *out, const float *q, const float *k, const float *v, int64_t BH,
                           int NH, int Tq, int64_t Tcap, int kv, const float *bias, float scale) {
    size_t smem = (size_t)(32 * D + 64 * (D + 4) + 64 * D + 32 * 68) * 4;
    if (smem > cuda_impl(be)->smem_optin) return KT_ERR_UNSUPPORTED;
    KT_CUDA_TRY(cudaFuncSetAttribute(flash_f32_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int qtiles = (Tq + 31) / 32;
    int64_t grid = BH * qtiles;
    if (grid > INT32_MAX) return KT_ERR_UNSUPPORTED;
    flash_f32_kernel<D><<<(unsigned)grid, 128, smem, cuda_stream(be)>>>(out, q, k, v, NH, Tq, Tcap, kv, bias, scale,
                                                                        qtiles);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_attention_flash_f32(KtBackend *be, float *out, const float *q, const float *k, const float *v,
                                  int64_t B, int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv_len,
                                  const float *bias, float scale) {
    if ((HS != 32 && HS != 64 && HS != 128) || Tq > INT32_MAX || kv_len > INT32_MAX || NH > INT32_MAX)
        return KT_ERR_UNSUPPORTED;
    if (!cuda_aligned(q, 16) || !cuda_aligned(k, 16) || !cuda_aligned(v, 16)) return KT_ERR_UNSUPPORTED;
    int nh = (int)NH, tq = (int)Tq, kv = (int)kv_len;
    if (HS == 32) return launch_f32<32>(be, out, q, k, v, B * NH, nh, tq, Tcap, kv, bias, scale);
    if (HS == 64) return launch_f32<64>(be, out, q, k, v, B * NH, nh, tq, Tcap, kv, bias, scale);
    return launch_f32<128>(be, out, q, k, v, B * NH, nh, tq, Tcap, kv, bias, scale);
}
