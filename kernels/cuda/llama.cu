// Raster-model (LlamaGen) ops on the GPU: RMSNorm (alone and after the residual add), the SwiGLU gate, 2D-RoPE
// attention inputs scattered into the positional KV cache, attention causal by position (online softmax; split keys
// for caches longer than a warp; the RoPE prep fused in for single-token steps), row L2 normalisation, and
// LlamaGen's HF-style sampler (top-k / top-p on one stable block radix sort, then the draw of samplers/sampling.h
// with the same Philox words) and its probabilities.
// Semantics are those of kernels/cpu/llama.c; sums run as block reductions / scans, so results match the CPU within
// float rounding (a sampled token can differ only when u * total falls within ~1e-16 of a cumulative boundary).
// Positions outside the cache are not written (prep) or clamped (attention): memory-safe; the CPU backend reports
// them as errors.
// ref: LlamaGen autoregressive/models/gpt.py, generate.py; kernels/cpu/llama.c
// Dims: B batch, T/Tq tokens, C channels, NH heads, HS head size, Tcap cache rows, P rotary rows, V vocabulary.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <cooperative_groups.h>

#include "cuda_common.cuh"
#include "samplers/philox.h"
#include "sample_draw.cuh"

#define LLAMA_FLAG_EMPTY 2  // a sampled row had no finite logit (the sampler's bit, reported at the next sync)

// ----------------------------------------------------------------------------------------------------- RMSNorm
// One block per row: (ADD: x += h first, stored back) sum of squares in double, y = (x * r) * w as the CPU, rounded
// once to OT (float32, or the 16-bit GEMM input). Each thread reads back only the elements it wrote, so y may alias x
// when !ADD.
template <typename OT, bool ADD>
__global__ void __launch_bounds__(256) rmsnorm_kernel(OT *y, float *x, const float *__restrict__ h,
                                                      const float *__restrict__ w, int64_t C, float eps) {
    __shared__ double sh[32];
    int64_t row = blockIdx.x;
    float *xr = x + row * C;
    OT *yr = y + row * C;
    double ss = 0;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float v = xr[c];
        if (ADD) xr[c] = v = __fadd_rn(v, h[row * C + c]);
        ss += (double)v * v;
    }
    ss = block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = from_f32<OT>(__fmul_rn(__fmul_rn(xr[c], r), w[c]));
}

template <bool ADD>
static KtStatus launch_rmsnorm(KtBackend *be, KtTensor *y, float *x, const float *h, const KtTensor *w, int64_t N,
                               int64_t C, float eps) {
    if (N == 0 || C == 0) return KT_OK;
    if (N > INT32_MAX) return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_rmsnorm: %lld rows", (long long)N);
    const float *wd = (const float *)w->data;
    cudaStream_t s = cuda_stream(be);
    if (y->dtype == KT_BF16)
        rmsnorm_kernel<__nv_bfloat16, ADD><<<(unsigned)N, 256, 0, s>>>((__nv_bfloat16 *)y->data, x, h, wd, C, eps);
    else if (y->dtype == KT_F16)
        rmsnorm_kernel<__half, ADD><<<(unsigned)N, 256, 0, s>>>((__half *)y->data, x, h, wd, C, eps);
    else
        rmsnorm_kernel<float, ADD><<<(unsigned)N, 256, 0, s>>>((float *)y->data, x, h, wd, C, eps);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps) {
    // x is only read (the kernel writes it back only when ADD)
    return launch_rmsnorm<false>(be, y, (float *)x->data, NULL, w, kt_rows(x), kt_cols(x), eps);
}

KtStatus cuda_add_rmsnorm(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps) {
    return launch_rmsnorm<true>(be, y, (float *)x->data, (const float *)h->data, w, kt_rows(x), kt_cols(x), eps);
}

// ---------------------------------------------------------------------------------------------------- SwiGLU
// y[r, f] = silu(a[r, f]) * a[r, F + f], rounded once to OT.
template <typename OT>
__global__ void swiglu_kernel(OT *__restrict__ y, const float *__restrict__ a, int64_t F, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float *ar = a + (i / F) * 2 * F + i % F;
        float v = ar[0];
        y[i] = from_f32<OT>(__fmul_rn(__fdiv_rn(v, 1.0f + expf(-v)), ar[F]));
    }
}

KtStatus cuda_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a) {
    int64_t n = kt_numel(y), F = kt_cols(y);
    if (n == 0) return KT_OK;
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    cudaStream_t s = cuda_stream(be);
    const float *ad = (const float *)a->data;
    if (y->dtype == KT_BF16) swiglu_kernel<<<g, 256, 0, s>>>((__nv_bfloat16 *)y->data, ad, F, n);
    else if (y->dtype == KT_F16) swiglu_kernel<<<g, 256, 0, s>>>((__half *)y->data, ad, F, n);
    else swiglu_kernel<<<g, 256, 0, s>>>((float *)y->data, ad, F, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------ RoPE + KV scatter
// One thread per (b, t, h, pair j): rotates q's and k's pair j with rope[pos, j], copies v's pair j. CT: the caches'
// dtype (float32, or the 16-bit matmul dtype: rounded once on store).
template <typename CT>
__global__ void llama_prep_kernel(float *__restrict__ q, CT *__restrict__ kc, CT *__restrict__ vc,
                                  const float *__restrict__ qkv, const float *__restrict__ rope,
                                  const int32_t *__restrict__ pos, int64_t T, int64_t NH, int64_t HS, int64_t Tcap,
                                  int64_t limit, int64_t n) {
    int64_t half = HS / 2, C = NH * HS;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % half, h = (i / half) % NH, bt = i / (half * NH), b = bt / T, t = bt % T;
        int64_t p = pos[bt];
        const float *row = qkv + bt * 3 * C + h * HS + 2 * j;
        float *qo = q + ((b * NH + h) * T + t) * HS + 2 * j;
        if (p < 0 || p >= limit) {  // validated on the CPU; here only kept memory-safe
            qo[0] = qo[1] = 0.f;
            continue;
        }
        float c = rope[(p * half + j) * 2], s = rope[(p * half + j) * 2 + 1];
        float q0 = row[0], q1 = row[1], k0 = row[C], k1 = row[C + 1];
        qo[0] = __fsub_rn(__fmul_rn(q0, c), __fmul_rn(q1, s));
        qo[1] = __fadd_rn(__fmul_rn(q1, c), __fmul_rn(q0, s));
        int64_t o = ((b * NH + h) * Tcap + p) * HS + 2 * j;
        kc[o] = from_f32<CT>(__fsub_rn(__fmul_rn(k0, c), __fmul_rn(k1, s)));
        kc[o + 1] = from_f32<CT>(__fadd_rn(__fmul_rn(k1, c), __fmul_rn(k0, s)));
        vc[o] = from_f32<CT>(row[2 * C]);
        vc[o + 1] = from_f32<CT>(row[2 * C + 1]);
    }
}

KtStatus cuda_llama_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                              const KtTensor *rope, const KtTensor *positions) {
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], Tcap = kcache->shape[2];
    int64_t P = rope->shape[0], n = B * T * NH * (HS / 2);
    if (n == 0) return KT_OK;
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    const float *qkvd = (const float *)qkv->data, *ropd = (const float *)rope->data;
    const int32_t *pd = (const int32_t *)positions->data;
    int64_t lim = P < Tcap ? P : Tcap;
    if (kcache->dtype == KT_BF16)
        llama_prep_kernel<<<g, 256, 0, cuda_stream(be)>>>((float *)q->data, (__nv_bfloat16 *)kcache->data,
                                                          (__nv_bfloat16 *)vcache->data, qkvd, ropd, pd, T, NH, HS,
                                                          Tcap, lim, n);
    else if (kcache->dtype == KT_F16)
        llama_prep_kernel<<<g, 256, 0, cuda_stream(be)>>>((float *)q->data, (__half *)kcache->data,
                                                          (__half *)vcache->data, qkvd, ropd, pd, T, NH, HS, Tcap, lim,
                                                          n);
    else
        llama_prep_kernel<<<g, 256, 0, cuda_stream(be)>>>((float *)q->data, (float *)kcache->data,
                                                          (float *)vcache->data, qkvd, ropd, pd, T, NH, HS, Tcap, lim,
                                                          n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------- attention causal by position
#define ATT_WARPS 4
#define ATT_MAXD 8  // head dims per lane: HS <= 256
#define ATT_SPLIT 8  // warps per query in the split-key kernel

// Four consecutive cache values as floats, one 16-byte (float32) or 8-byte (16-bit) access; p 4-element aligned.
__device__ __forceinline__ void load4(const float *p, float (&o)[4]) {
    float4 v = *reinterpret_cast<const float4 *>(p);
    o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
}
template <typename T> __device__ __forceinline__ void load4(const T *p, float (&o)[4]) {
    CudaPack<T, 4> v = *reinterpret_cast<const CudaPack<T, 4> *>(p);
#pragma unroll
    for (int i = 0; i < 4; i++) o[i] = to_f32(v.v[i]);
}

// One warp's online softmax for a query over keys j = j0, j0 + step, ... <= p (kb, vb: the head's cache rows): lane
// l holds dims l, l + 32, ... of q (qv) and of the running output acc; m, l: running max and sum (-inf scores
// weigh 0). Starts from acc = 0, m = -inf, l = 0.
template <typename CT>
__device__ __forceinline__ void attend_keys(float (&acc)[ATT_MAXD], float &m, float &l, const float (&qv)[ATT_MAXD],
                                            const CT *kb, const CT *vb, int64_t j0, int64_t step, int64_t p,
                                            int64_t HS, float scale, int lane) {
#pragma unroll
    for (int i = 0; i < ATT_MAXD; i++) acc[i] = 0.f;
    m = -INFINITY, l = 0.f;
    for (int64_t j = j0; j <= p; j += step) {
        const CT *kr = kb + j * HS, *vr = vb + j * HS;
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < ATT_MAXD; i++) {
            int64_t d = lane + 32 * i;
            if (d < HS) dot += qv[i] * to_f32(kr[d]);
        }
        float s = warp_sum(dot) * scale, mn = fmaxf(m, s);
        float corr = m == -INFINITY ? 0.f : expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);
        l = l * corr + e;
#pragma unroll
        for (int i = 0; i < ATT_MAXD; i++) {
            int64_t d = lane + 32 * i;
            acc[i] = acc[i] * corr + (d < HS ? e * to_f32(vr[d]) : 0.f);
        }
        m = mn;
    }
}

// The same online softmax taken 32 keys at a time (the split kernel): lane i scores the chunk's key i over the whole
// head (q read from shared memory qs), the warp folds the 32 scores into (m, l) with one max and one sum, then adds
// their value rows with lane l holding dims l, l + 32, ... of acc. MAXD: dims per lane (HS <= 32 * MAXD). Every load
// of a phase is issued before its first use (16 four-value key loads; 64 / MAXD value rows): a GPT-B decode step's
// chunk is one memory round trip for its keys and one for its values, where a loop that multiplies each value row as
// it arrives waits once per row group (8 round trips per chunk before). One key per step (attend_keys) is a chain of a
// dependent load, a shuffle reduction and two exps per key, ~17 us for a decode step's 257 keys on an H100.
template <typename CT, int MAXD>
__device__ __forceinline__ void attend_key_chunks(float (&acc)[MAXD], float &m, float &l, const float *qs,
                                                  const CT *kb, const CT *vb, int64_t j0, int64_t step,
                                                  int64_t p, int64_t HS, float scale, int lane) {
    constexpr int HMAX = 32 * MAXD, KB = 16, RB = 64 / MAXD;  // dims covered; key loads / value rows in flight
#pragma unroll
    for (int i = 0; i < MAXD; i++) acc[i] = 0.f;
    m = -INFINITY, l = 0.f;
    bool vec = (HS & 3) == 0 && ((uintptr_t)kb & (4 * sizeof(CT) - 1)) == 0;
    for (int64_t base = j0; base <= p; base += 32 * step) {
        int64_t j = base + lane * step;
        float s = -INFINITY;
        if (j <= p) {
            const CT *kr = kb + j * HS;
            float dot = 0.f;
            if (vec) {
#pragma unroll
                for (int d0 = 0; d0 < HMAX; d0 += 4 * KB) {
                    float kv[KB][4];
#pragma unroll
                    for (int u = 0; u < KB; u++) {
                        if (d0 + 4 * u < HS) load4(kr + d0 + 4 * u, kv[u]);
                        else kv[u][0] = kv[u][1] = kv[u][2] = kv[u][3] = 0.f;
                    }
#pragma unroll
                    for (int u = 0; u < KB; u++) {
                        int d = d0 + 4 * u;
                        if (d < HS) dot += qs[d] * kv[u][0] + qs[d + 1] * kv[u][1] + qs[d + 2] * kv[u][2] + qs[d + 3] * kv[u][3];
                    }
                }
            } else {
                for (int64_t d = 0; d < HS; d++) dot += qs[d] * to_f32(kr[d]);
            }
            s = dot * scale;
        }
        float mn = fmaxf(m, warp_max(s));
        float corr = m == -INFINITY ? 0.f : expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);
        l = l * corr + warp_sum(e);  // a NaN or +inf score makes l NaN: NaN rows, as on the CPU
#pragma unroll
        for (int i = 0; i < MAXD; i++) acc[i] *= corr;
        int cnt = (int)((p - base) / step + 1 < 32 ? (p - base) / step + 1 : 32);
#pragma unroll
        for (int t0 = 0; t0 < 32; t0 += RB) {
            if (t0 >= cnt) break;  // warp-uniform
            float vv[RB][MAXD];
#pragma unroll
            for (int u = 0; u < RB; u++) {
                bool row = t0 + u < cnt;
                const CT *vr = vb + (base + (int64_t)(row ? t0 + u : 0) * step) * HS;
#pragma unroll
                for (int i = 0; i < MAXD; i++) vv[u][i] = row && lane + 32 * i < HS ? to_f32(vr[lane + 32 * i]) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < RB; u++) {
                float et = __shfl_sync(0xffffffffu, e, t0 + u);  // 0 past cnt (those lanes scored -inf)
                if (t0 + u < cnt) {
#pragma unroll
                    for (int i = 0; i < MAXD; i++) acc[i] += et * vv[u][i];
                }
            }
        }
        m = mn;
    }
}

// One warp per query (b, h, t): keys 0..pos with an online softmax; lane l holds dims l, l+32, ...
template <typename OT, typename CT>
__global__ void __launch_bounds__(32 * ATT_WARPS)
attention_pos_kernel(OT *__restrict__ out, const float *__restrict__ q, const CT *__restrict__ k,
                     const CT *__restrict__ v, const int32_t *__restrict__ pos, int64_t NH, int64_t Tq, int64_t HS,
                     int64_t Tcap, float scale, int64_t n) {
    int64_t wid = (int64_t)blockIdx.x * ATT_WARPS + (threadIdx.x >> 5);
    if (wid >= n) return;
    int lane = threadIdx.x & 31;
    int64_t t = wid % Tq, bh = wid / Tq, b = bh / NH, h = bh % NH;
    int64_t p = pos[b * Tq + t];
    p = p < 0 ? 0 : p >= Tcap ? Tcap - 1 : p;
    const float *qr = q + wid * HS;
    const CT *kb = k + bh * Tcap * HS, *vb = v + bh * Tcap * HS;
    float qv[ATT_MAXD], acc[ATT_MAXD], m, l;
#pragma unroll
    for (int i = 0; i < ATT_MAXD; i++) qv[i] = lane + 32 * i < HS ? qr[lane + 32 * i] : 0.f;
    attend_keys(acc, m, l, qv, kb, vb, 0, 1, p, HS, scale, lane);
    OT *o = out + (b * Tq + t) * NH * HS + h * HS;
#pragma unroll
    for (int i = 0; i < ATT_MAXD; i++) {
        int64_t d = lane + 32 * i;
        if (d < HS) o[d] = from_f32<OT>(l != 0.f ? acc[i] / l : 0.f);  // no finite score: zeros; NaN: NaN (as the CPU)
    }
}

// The prep fused into the split-key kernel: each block rotates its query's q and new k, writes its cache rows, then
// attends over the cache. A single-token step (sequential decoding) has one block per head, which reads only rows it
// wrote itself (visible after a block barrier). A window of Tq tokens (SJD, ZipAR) is launched as clusters of the Tq
// blocks of a head (t fastest in the grid), and the block barrier becomes a cluster barrier: its release/acquire
// makes each block's cache rows visible to the other Tq - 1 before any of them attends. (Rows written twice, a
// short window's repeated last entry, get the same bits from the same inputs.)
template <typename CT>
struct LlamaPrepArgs {
    float *q;            // (B, NH, Tq, HS) out: the rotated q, as kt_llama_attn_prep writes it
    CT *kc, *vc;         // the caches: row positions[b, t] of head (b, h) written
    const float *qkv;    // (B, Tq, 3C)
    const float *rope;   // (P, HS/2, 2)
    int64_t limit;       // min(P, Tcap): positions outside are not written (q = 0), as the prep kernel
};

// Split keys (see attention_split): a block of `split` warps per query (b, h, t). Warp w takes keys w, w + split, ...
// with its own online softmax, 32 at a time (attend_key_chunks); the partial (max, sum, acc) of the warps are merged through shared memory, output
// dim d by thread d.
// PREP: q comes from qkv through the rotation, see LlamaPrepArgs (Tq > 1: launched in clusters of Tq blocks). k and
// v are not __restrict__: with PREP the blocks read rows they wrote (no read-only cache path).
template <typename OT, typename CT, bool PREP, int MAXD>
__global__ void __launch_bounds__(32 * ATT_SPLIT)
attention_pos_split_kernel(OT *__restrict__ out, const float *__restrict__ q, const CT *k, const CT *v,
                           const int32_t *__restrict__ pos, int64_t NH, int64_t Tq, int64_t HS, int64_t Tcap,
                           float scale, LlamaPrepArgs<CT> pa) {
    extern __shared__ float part[];  // (split, HS + 2): acc[HS], m, l of each warp; then q (HS)
    pdl_launch_dependents();         // (PREP: launched as a dependent of the qkv GEMM; a no-op otherwise)
    pdl_wait();
    int64_t wid = blockIdx.x;        // the query
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, split = blockDim.x >> 5;
    int64_t t = wid % Tq, bh = wid / Tq, b = bh / NH, h = bh % NH;
    int64_t p = pos[b * Tq + t];
    float *qs = part + split * (HS + 2);
    if (PREP) {
        bool ok = p >= 0 && p < pa.limit;
        int64_t half = HS / 2, C = NH * HS;
        const float *row = pa.qkv + (b * Tq + t) * 3 * C + h * HS;
        for (int64_t j = threadIdx.x; j < half; j += blockDim.x) {
            float q0 = row[2 * j], q1 = row[2 * j + 1], r0 = 0.f, r1 = 0.f;
            if (ok) {
                float c = pa.rope[(p * half + j) * 2], sn = pa.rope[(p * half + j) * 2 + 1];
                float k0 = row[C + 2 * j], k1 = row[C + 2 * j + 1];
                r0 = __fsub_rn(__fmul_rn(q0, c), __fmul_rn(q1, sn));
                r1 = __fadd_rn(__fmul_rn(q1, c), __fmul_rn(q0, sn));
                int64_t o = (bh * Tcap + p) * HS + 2 * j;
                pa.kc[o] = from_f32<CT>(__fsub_rn(__fmul_rn(k0, c), __fmul_rn(k1, sn)));
                pa.kc[o + 1] = from_f32<CT>(__fadd_rn(__fmul_rn(k1, c), __fmul_rn(k0, sn)));
                pa.vc[o] = from_f32<CT>(row[2 * C + 2 * j]);
                pa.vc[o + 1] = from_f32<CT>(row[2 * C + 2 * j + 1]);
            }
            qs[2 * j] = r0, qs[2 * j + 1] = r1;
            pa.q[wid * HS + 2 * j] = r0, pa.q[wid * HS + 2 * j + 1] = r1;
        }
        if (Tq > 1) cooperative_groups::this_cluster().sync();  // the head's Tq blocks: every new row written
        else __syncthreads();
    }
    if (!PREP) {
        for (int64_t d = threadIdx.x; d < HS; d += blockDim.x) qs[d] = q[wid * HS + d];
        __syncthreads();
    }
    p = p < 0 ? 0 : p >= Tcap ? Tcap - 1 : p;
    const CT *kb = k + bh * Tcap * HS, *vb = v + bh * Tcap * HS;
    float acc[MAXD], m, l;
    attend_key_chunks<CT, MAXD>(acc, m, l, qs, kb, vb, warp, split, p, HS, scale, lane);
    float *mine = part + warp * (HS + 2);
#pragma unroll
    for (int i = 0; i < MAXD; i++) {
        int64_t d = lane + 32 * i;
        if (d < HS) mine[d] = acc[i];
    }
    if (lane == 0) mine[HS] = m, mine[HS + 1] = l;
    __syncthreads();
    float M = -INFINITY;  // warp 0 always holds key 0, so M is finite for finite inputs
    for (int w = 0; w < split; w++) M = fmaxf(M, part[w * (HS + 2) + HS]);
    for (int64_t d = threadIdx.x; d < HS; d += blockDim.x) {
        float L = 0.f, o = 0.f;
        for (int w = 0; w < split; w++) {
            const float *pw = part + w * (HS + 2);
            float c = pw[HS] == -INFINITY ? 0.f : expf(pw[HS] - M);  // a warp without keys adds nothing
            L += pw[HS + 1] * c;
            o += pw[d] * c;
        }
        out[(b * Tq + t) * NH * HS + h * HS + d] = from_f32<OT>(L != 0.f ? o / L : 0.f);  // as above
    }
}

// The split-key kernel for every cache longer than a warp: one warp walking its keys is a serial chain of a
// dependent load, a shuffle reduction and an exp per key (latency-bound: up to 257 keys per query at 256px); 8
// warps per query cut the chain 8x at any batch (a batch-32 decode step is 768 queries, 768 blocks). The one-warp
// kernel stays for short caches. (Before: split only below ~4 queries per SM.)
static bool attention_split(int64_t Tcap) { return Tcap > 32; }

// The split-key kernel for HS <= 32 * MAXD (MAXD 2: head sizes up to 64, GPT-B..XXL; 4: up to 128, GPT-3B's 100;
// 8: up to 256). PREP: a programmatic dependent launch (see LlamaPrepArgs).
template <typename OT, typename CT, bool PREP, int MAXD>
static KtStatus launch_split(KtBackend *be, int64_t n, OT *out, const float *qd, const CT *kd, const CT *vd,
                             const int32_t *pd, int64_t NH, int64_t Tq, int64_t HS, int64_t Tcap, float scale,
                             LlamaPrepArgs<CT> pa) {
    size_t smem = (size_t)(ATT_SPLIT * (HS + 2) + HS) * sizeof(float);
    if (PREP && Tq > 1) {  // a window: clusters of the Tq blocks of a head (more than 8 is a non-portable size)
        if (Tq > 8)
            KT_CUDA_TRY(cudaFuncSetAttribute(attention_pos_split_kernel<OT, CT, true, MAXD>,
                                             cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
        cudaError_t e = cuda_launch_cluster(be, (unsigned)Tq, attention_pos_split_kernel<OT, CT, true, MAXD>,
                                            dim3((unsigned)n), dim3(32 * ATT_SPLIT), smem, out, qd, kd, vd, pd, NH, Tq,
                                            HS, Tcap, scale, pa);
        if (e == cudaSuccess) return KT_OK;
        // refused (no clusters of this size here): not sticky; cleared, noted, and windows take two kernels from now
        cudaGetLastError();
        cuda_impl(be)->window_cluster_tq = 0;
        kt_backend_note(be, "attention: cluster launch refused (%s), windows as prep + attention", cudaGetErrorString(e));
        return KT_ERR_UNSUPPORTED;
    }
    if (PREP) {
        KT_CUDA_TRY(cuda_launch_pdl(be, attention_pos_split_kernel<OT, CT, true, MAXD>, dim3((unsigned)n),
                                    dim3(32 * ATT_SPLIT), smem, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, pa));
    } else {
        attention_pos_split_kernel<OT, CT, false, MAXD><<<(unsigned)n, 32 * ATT_SPLIT, smem, cuda_stream(be)>>>(
            out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, pa);
    }
    KT_CUDA_LAUNCHED();
    return KT_OK;
}
template <typename OT, typename CT, bool PREP>
static KtStatus launch_split_by_hs(KtBackend *be, int64_t n, OT *out, const float *qd, const CT *kd, const CT *vd,
                                   const int32_t *pd, int64_t NH, int64_t Tq, int64_t HS, int64_t Tcap, float scale,
                                   LlamaPrepArgs<CT> pa) {
    if (HS <= 64) return launch_split<OT, CT, PREP, 2>(be, n, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, pa);
    if (HS <= 128) return launch_split<OT, CT, PREP, 4>(be, n, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, pa);
    return launch_split<OT, CT, PREP, 8>(be, n, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, pa);
}

// pa: the fused prep (split kernel; Tq > 1 on clusters), or NULL. CT: the caches' dtype.
template <typename OT, typename CT>
static KtStatus launch_attention_pos(KtBackend *be, OT *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                                    const KtTensor *positions, float scale, const LlamaPrepArgs<CT> *pa) {
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3], Tcap = k->shape[2];
    int64_t n = B * NH * Tq;
    const float *qd = (const float *)q->data;
    const CT *kd = (const CT *)k->data, *vd = (const CT *)v->data;
    const int32_t *pd = (const int32_t *)positions->data;
    if (pa) {  // a programmatic dependent launch: its blocks are resident when the qkv GEMM ends
        return launch_split_by_hs<OT, CT, true>(be, n, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, *pa);
    } else if (attention_split(Tcap)) {
        return launch_split_by_hs<OT, CT, false>(be, n, out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale,
                                                 LlamaPrepArgs<CT>{});
    } else {
        attention_pos_kernel<OT, CT><<<cuda_blocks(n, ATT_WARPS), 32 * ATT_WARPS, 0, cuda_stream(be)>>>(
            out, qd, kd, vd, pd, NH, Tq, HS, Tcap, scale, n);
    }
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

template <typename CT>
static KtStatus attention_pos_by_dtype(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k,
                                       const KtTensor *v, const KtTensor *positions, float scale,
                                       const LlamaPrepArgs<CT> *pa) {
    if (out->dtype == KT_BF16) return launch_attention_pos(be, (__nv_bfloat16 *)out->data, q, k, v, positions, scale, pa);
    if (out->dtype == KT_F16) return launch_attention_pos(be, (__half *)out->data, q, k, v, positions, scale, pa);
    return launch_attention_pos(be, (float *)out->data, q, k, v, positions, scale, pa);
}

KtStatus cuda_attention_pos(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                            const KtTensor *positions, float scale) {
    if (kt_numel(q) == 0) return KT_OK;
    if (q->shape[3] > 32 * ATT_MAXD)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_attention_pos: head size %lld > %d on CUDA", (long long)q->shape[3],
                       32 * ATT_MAXD);
    if (k->dtype == KT_BF16)
        return attention_pos_by_dtype(be, out, q, k, v, positions, scale, (const LlamaPrepArgs<__nv_bfloat16> *)NULL);
    if (k->dtype == KT_F16)
        return attention_pos_by_dtype(be, out, q, k, v, positions, scale, (const LlamaPrepArgs<__half> *)NULL);
    return attention_pos_by_dtype(be, out, q, k, v, positions, scale, (const LlamaPrepArgs<float> *)NULL);
}

template <typename CT>
static KtStatus llama_attention_fused(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                                      const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions,
                                      float scale) {
    int64_t P = rope->shape[0], Tcap = kcache->shape[2];
    LlamaPrepArgs<CT> pa = {(float *)q->data, (CT *)kcache->data, (CT *)vcache->data, (const float *)qkv->data,
                            (const float *)rope->data, P < Tcap ? P : Tcap};
    return attention_pos_by_dtype(be, out, q, kcache, vcache, positions, scale, &pa);
}

// Prep + attention: fused for single-token steps and for windows of up to window_cluster_tq tokens (clusters) that
// take the split kernel (caches longer than 32 rows), else the two kernels.
KtStatus cuda_llama_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                              const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions, float scale) {
    int64_t Tq = q->shape[2], HS = q->shape[3], Tcap = kcache->shape[2];
    if (HS > 32 * ATT_MAXD)  // refused before the prep writes anything
        return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_llama_attention: head size %lld > %d on CUDA", (long long)HS,
                       32 * ATT_MAXD);
    if (kt_numel(q) > 0 && attention_split(Tcap) && Tq <= (Tq == 1 ? 1 : cuda_impl(be)->window_cluster_tq)) {
        KtStatus s = kcache->dtype == KT_BF16
                         ? llama_attention_fused<__nv_bfloat16>(be, out, q, kcache, vcache, qkv, rope, positions, scale)
                     : kcache->dtype == KT_F16
                         ? llama_attention_fused<__half>(be, out, q, kcache, vcache, qkv, rope, positions, scale)
                         : llama_attention_fused<float>(be, out, q, kcache, vcache, qkv, rope, positions, scale);
        if (s != KT_ERR_UNSUPPORTED) return s;  // else a refused cluster launch: nothing ran
    }
    KT_TRY(cuda_llama_attn_prep(be, q, kcache, vcache, qkv, rope, positions));
    return cuda_attention_pos(be, out, q, kcache, vcache, positions, scale);
}

// ------------------------------------------------------------------------------------------ L2 normalisation
// One warp per row: the norm in double, rounded to float, then an IEEE division (as the CPU).
__global__ void l2_normalize_kernel(float *y, const float *x, int64_t N, int64_t D) {  // y may alias x
    int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (r >= N) return;
    int lane = threadIdx.x & 31;
    const float *xr = x + r * D;
    double ss = 0;
    for (int64_t d = lane; d < D; d += 32) ss += (double)xr[d] * xr[d];
    ss = warp_sum_d(ss);
    float nrm = (float)sqrt(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    for (int64_t d = lane; d < D; d += 32) y[r * D + d] = __fdiv_rn(xr[d], nrm);
}

KtStatus cuda_l2_normalize(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t N = kt_rows(x), D = kt_cols(x);
    if (N == 0 || D == 0) return KT_OK;
    l2_normalize_kernel<<<cuda_blocks(N * 32, 256), 256, 0, cuda_stream(be)>>>((float *)y->data,
                                                                               (const float *)x->data, N, D);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ---------------------------------------------------------------------------------------- LlamaGen's sampler
template <int NT, int IT>
struct HfSmem {
    union {
        typename cub::BlockRadixSort<float, NT, IT, int>::TempStorage sort;
        typename cub::BlockScan<double, NT>::TempStorage scan;
        unsigned hist[256];  // top-k alone: radix-select histogram
    } tmp;
    unsigned char drop[NT * IT];  // top-p: 1 = masked, by vocabulary index
    float th;
    DrawSmem draw;
    int sel_bin;         // radix select: the digit holding the k-th largest key
    unsigned sel_above;  // and how many keys lie above that digit's bin
};

// Order-preserving key of a logit: larger value, larger key; NaN ranks with -inf (as the sort path's NaN-last order
// leaves the top-k threshold at -inf), -0 with +0. key_value inverts it.
__device__ __forceinline__ uint32_t order_key(float x) {
    if (x != x) x = -INFINITY;
    if (x == 0.f) x = 0.f;
    uint32_t u = __float_as_uint(x);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Warp 0's step of a radix-select pass: in the 256 digit counts hist (descending digits), the bin holding the kk-th
// largest key, and how many keys lie in the bins above it (lane l reads bins 255 - 8l down to 248 - 8l).
__device__ __forceinline__ void kth_digit_bin(const unsigned *hist, unsigned kk, int *sel_bin, unsigned *sel_above) {
    int lane = threadIdx.x & 31;
    unsigned c[8], sum = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) sum += c[j] = hist[255 - 8 * lane - j];
    unsigned incl = sum;
#pragma unroll
    for (int off = 1; off < 32; off *= 2) {
        unsigned t = __shfl_up_sync(0xffffffffu, incl, off);
        if (lane >= off) incl += t;
    }
    unsigned run = incl - sum;
    if (run < kk && kk <= incl) {
#pragma unroll
        for (int j = 0; j < 8; j++) {
            if (run + c[j] >= kk) {
                *sel_bin = 255 - 8 * lane - j, *sel_above = run;
                break;
            }
            run += c[j];
        }
    }
}

// Adds the digits at `shift` of this thread's keys that match prefix under pmask to hist (warp-aggregated shared
// atomics: one atomic per distinct digit in a warp).
template <int IT>
__device__ __forceinline__ void digit_histogram(unsigned *hist, const uint32_t (&keys)[IT], uint32_t prefix,
                                                uint32_t pmask, int shift) {
    int lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < IT; i++) {
        bool cand = (keys[i] & pmask) == prefix;
        unsigned bin = (keys[i] >> shift) & 255u, live = __ballot_sync(0xffffffffu, cand);
        if (cand) {
            unsigned peers = __match_any_sync(live, bin);
            if (lane == __ffs(peers) - 1) atomicAdd(&hist[bin], (unsigned)__popc(peers));
        }
    }
}

// The k-th largest of the block's keys (thread t holds keys[0..IT)), 1 <= k <= NT * IT: four 8-bit radix passes,
// most significant digit first; each keeps the keys whose digits so far match the prefix, counts them per next
// digit, and warp 0 finds the digit bin holding the k-th from the top.
template <int NT, int IT>
__device__ uint32_t radix_select_kth(const uint32_t (&keys)[IT], int k, HfSmem<NT, IT> &sm) {
    int tid = threadIdx.x;
    uint32_t prefix = 0, pmask = 0;
    unsigned kk = (unsigned)k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += NT) sm.tmp.hist[i] = 0;
        __syncthreads();
        digit_histogram<IT>(sm.tmp.hist, keys, prefix, pmask, shift);
        __syncthreads();
        if (tid < 32) kth_digit_bin(sm.tmp.hist, kk, &sm.sel_bin, &sm.sel_above);
        __syncthreads();
        prefix |= (uint32_t)sm.sel_bin << shift;
        pmask |= 255u << shift;
        kk -= sm.sel_above;
    }
    return prefix;
}

// Row r of logits (rows, V): temperature, HF top-k (keep >= the k-th largest; NaN as -inf) and HF top-p (entries in
// descending (value, index) order; a finite survivor is masked when the mass of the finite survivors before it,
// over their total, exceeds top_p), written back; then PROBS: probs[r] = softmax (e = exp(x - max) in double, stored
// as float, times float(1 / sum)); else the draw of smp_categorical with the Philox uniform of
// (seed, image_ids[r / T], pos[r], SMP_STREAM_TOKEN) into tokens[r] (rows with pos < 0 skipped).
template <int NT, int IT, bool PROBS>
__global__ void __launch_bounds__(NT)
hf_kernel(int32_t *__restrict__ tokens, float *probs, float *logits,  // probs may alias logits
          const int64_t *__restrict__ image_ids, const int32_t *__restrict__ pos, int64_t T, int V, uint64_t seed,
          int top_k, float top_p, float temp, int32_t *__restrict__ flag) {
    constexpr int P = NT * IT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    HfSmem<NT, IT> &sm = *reinterpret_cast<HfSmem<NT, IT> *>(smem_raw);
    int tid = threadIdx.x;
    int64_t r = blockIdx.x;
    pdl_wait();  // a dependent launch: nothing is read before the logits are complete
    pdl_launch_dependents();
    if (!PROBS && pos[r] < 0) return;  // the whole block leaves together
    float *row = logits + r * V;
    bool use_k = top_k > 0 && top_k < V, use_p = top_p < 1.f, div = temp != 1.f;
    float td = temp > 1e-5f ? temp : 1e-5f;
    auto f = [&](float x) { return div ? __fdiv_rn(x, td) : x; };  // the temperature
    bool vec = row_vec4(row, V);

    float th = -INFINITY;
    if (use_k && !use_p) {  // top-k alone: the threshold by radix select, no sort
        uint32_t keys[IT];
#pragma unroll
        for (int i = 0; i < IT; i += 4) {
            float x[4];
            row_load4(row, V, tid * IT + i, vec, f, x);
#pragma unroll
            for (int j = 0; j < 4; j++) keys[i + j] = order_key(x[j]);
        }
        th = key_value(radix_select_kth<NT, IT>(keys, top_k, sm));
    } else if (use_k || use_p) {
        for (int i = tid; i < P; i += NT) sm.drop[i] = 0;
        float keys[IT];
        int vals[IT];
#pragma unroll
        for (int i = 0; i < IT; i += 4) {
            float x[4];
            row_load4(row, V, tid * IT + i, vec, f, x);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                keys[i + j] = (x[j] != x[j]) ? INFINITY : (x[j] == 0.f ? 0.f : -x[j]);  // -x ascending; NaN last
                vals[i + j] = tid * IT + i + j;
            }
        }
        cub::BlockRadixSort<float, NT, IT, int>(sm.tmp.sort).Sort(keys, vals);  // stable: index order on ties
        __syncthreads();
        if (use_k) {
#pragma unroll
            for (int i = 0; i < IT; i++)
                if (tid * IT + i == top_k - 1) sm.th = -keys[i];
            __syncthreads();
            th = sm.th;
        }
        if (use_p) {
            float mx = -INFINITY;  // the largest finite survivor
#pragma unroll
            for (int i = 0; i < IT; i++) {
                float x = -keys[i];
                if (isfinite(x) && x >= th) mx = fmaxf(mx, x);
            }
            __shared__ float shm[32];
            mx = block_max(mx, shm);
            double e[IT], part = 0;
            bool fin[IT];
#pragma unroll
            for (int i = 0; i < IT; i++) {
                float x = -keys[i];
                fin[i] = isfinite(x) && x >= th;
                e[i] = fin[i] ? exp((double)x - (double)mx) : 0.0;
                part += e[i];
            }
            double pre, z;
            __syncthreads();  // the sort's temp storage is reused by the scan
            cub::BlockScan<double, NT>(sm.tmp.scan).ExclusiveSum(part, pre, z);
            double cum = pre;
#pragma unroll
            for (int i = 0; i < IT; i++) {
                if (fin[i] && cum / z > (double)top_p) sm.drop[vals[i]] = 1;
                cum += e[i];
            }
        }
        __syncthreads();
    }

    double w[IT], pre, total;
    float mx = filtered_row_weights<NT, IT>(row, V, f, use_k, th, use_p ? sm.drop : nullptr, sm.tmp.scan, w, pre,
                                            total);
    if (PROBS) {
        float inv = mx == -INFINITY ? 0.f : (float)(1.0 / total);
        float *pr = probs + r * V;
#pragma unroll
        for (int i = 0; i < IT; i++) {
            int idx = tid * IT + i;
            if (idx < V) pr[idx] = mx == -INFINITY ? 0.f : __fmul_rn((float)w[i], inv);
        }
        return;
    }
    SmpPhilox4 blk = smp_rng_block(seed, (uint64_t)image_ids[r / T], (uint32_t)pos[r], SMP_STREAM_TOKEN);
    int tok = block_categorical<NT, IT>(w, pre, total, smp_u53(blk.v[0], blk.v[1]), sm.draw);
    if (tid == 0) {
        tokens[r] = tok < 0 ? 0 : tok;  // an empty row is reported at the next sync
        if (tok < 0) atomicOr(flag, LLAMA_FLAG_EMPTY);
    }
}

// ------------------------------------------------------------------------------------ the sampler on a cluster
// At a few rows (batch 1 after CFG: one row) hf_kernel's block per row leaves the other SMs idle and runs its four
// radix-select passes at one block's latency (60 us per token in the tenth session's H100 profile). hf_cluster_kernel
// shares a row over a thread-block cluster (sm_90) of C blocks: block q holds items q*NT*IT .. q*NT*IT + NT*IT - 1
// (thread t of it items t*IT ..), and the digit counts, the row max and the weight totals are combined through
// distributed shared memory, every block adding the C blocks' values in rank order, so all agree and nothing depends
// on timing. Top-p needs the row sorted and stays on hf_kernel. The results are hf_kernel's up to the order of the
// double sums of the weights.
namespace cg = cooperative_groups;

template <int NT, int IT>
struct HfClusterSmem {
    unsigned hist[2][256];  // this block's digit counts, by pass parity (read by every block until the next pass's
                            // cluster barrier, so the pass after that may clear them)
    unsigned tot[256];      // the cluster's counts of the current pass
    typename cub::BlockScan<double, NT>::TempStorage scan;
    float shm[32];          // block_max
    float bmax;             // this block's filtered max
    double btot;            // this block's weight total
    int sel_bin;
    unsigned sel_above;
    DrawSmem draw;   // this block's first / last index
    DrawSmem cdraw;  // rank 0's: the cluster's (atomics from every block)
};

// radix_select_kth over the cluster's keys (every block gets the same k-th largest).
template <int NT, int IT>
__device__ uint32_t cluster_radix_select_kth(const uint32_t (&keys)[IT], int k, HfClusterSmem<NT, IT> &sm,
                                             const cg::cluster_group &cl) {
    int tid = threadIdx.x;
    unsigned C = cl.num_blocks();
    uint32_t prefix = 0, pmask = 0;
    unsigned kk = (unsigned)k;
    for (int pass = 0, shift = 24; shift >= 0; pass++, shift -= 8) {
        unsigned *h = sm.hist[pass & 1];
        for (int i = tid; i < 256; i += NT) h[i] = 0;
        __syncthreads();
        digit_histogram<IT>(h, keys, prefix, pmask, shift);
        cl.sync();  // every block's counts are complete
        for (int i = tid; i < 256; i += NT) {
            unsigned t = 0;
            for (unsigned q = 0; q < C; q++) t += cl.map_shared_rank(h, q)[i];
            sm.tot[i] = t;
        }
        __syncthreads();
        if (tid < 32) kth_digit_bin(sm.tot, kk, &sm.sel_bin, &sm.sel_above);
        __syncthreads();
        prefix |= (uint32_t)sm.sel_bin << shift;
        pmask |= 255u << shift;
        kk -= sm.sel_above;
    }
    return prefix;
}

// hf_kernel without top-p (top_p >= 1): cluster blockIdx.x / C (C = the cluster size) samples row r = blockIdx.x / C.
template <int NT, int IT, bool PROBS>
__global__ void __launch_bounds__(NT)
hf_cluster_kernel(int32_t *__restrict__ tokens, float *probs, float *logits,  // probs may alias logits
                  const int64_t *__restrict__ image_ids, const int32_t *__restrict__ pos, int64_t T, int V,
                  uint64_t seed, int top_k, float temp, int32_t *__restrict__ flag) {
    constexpr int P = NT * IT;  // items per block
    extern __shared__ __align__(16) unsigned char smem_raw[];
    HfClusterSmem<NT, IT> &sm = *reinterpret_cast<HfClusterSmem<NT, IT> *>(smem_raw);
    cg::cluster_group cl = cg::this_cluster();
    int tid = threadIdx.x;
    unsigned q = cl.block_rank(), C = cl.num_blocks();
    int64_t r = blockIdx.x / C;
    pdl_wait();  // a dependent launch: nothing is read before the logits are complete
    pdl_launch_dependents();
    if (!PROBS && pos[r] < 0) return;  // the whole cluster leaves together
    int base = (int)q * P, Vq = V - base;  // this block's items: row[base .. base + min(P, Vq)), none when Vq <= 0
    float *row = logits + r * V + base;
    bool use_k = top_k > 0 && top_k < V, div = temp != 1.f;
    float td = temp > 1e-5f ? temp : 1e-5f;
    auto f = [&](float x) { return div ? __fdiv_rn(x, td) : x; };  // the temperature
    if (tid == 0) { sm.cdraw.first = INT_MAX; sm.cdraw.last = -1; }  // used after the cluster barriers below

    float th = -INFINITY;
    if (use_k) {
        bool vec = row_vec4(row, Vq);
        uint32_t keys[IT];
#pragma unroll
        for (int i = 0; i < IT; i += 4) {
            float x[4];
            row_load4(row, Vq, tid * IT + i, vec, f, x);
#pragma unroll
            for (int j = 0; j < 4; j++) keys[i + j] = order_key(x[j]);
        }
        th = key_value(cluster_radix_select_kth<NT, IT>(keys, top_k, sm, cl));
    }

    // The row max over the cluster, then the weights and their prefix sums: this block's, then the blocks' before it.
    float lv[IT];
    float bm = block_max(filter_row_items<IT>(row, Vq, f, use_k, th, nullptr, lv), sm.shm);
    if (tid == 0) sm.bmax = bm;
    cl.sync();
    float mx = -INFINITY;
    for (unsigned b = 0; b < C; b++) mx = fmaxf(mx, *cl.map_shared_rank(&sm.bmax, b));
    double w[IT], pre, btot;
    double part = row_item_weights<IT>(lv, mx, w);
    cub::BlockScan<double, NT>(sm.scan).ExclusiveSum(part, pre, btot);
    if (tid == 0) sm.btot = btot;
    cl.sync();
    double before = 0, total = 0;
    for (unsigned b = 0; b < C; b++) {
        double t = *cl.map_shared_rank(&sm.btot, b);
        if (b < q) before += t;
        total += t;
    }
    if (PROBS) {
        float inv = mx == -INFINITY ? 0.f : (float)(1.0 / total);
        float *pr = probs + r * V + base;
#pragma unroll
        for (int i = 0; i < IT; i++) {
            int idx = tid * IT + i;
            if (idx < Vq) pr[idx] = mx == -INFINITY ? 0.f : __fmul_rn((float)w[i], inv);
        }
        cl.sync();  // no block leaves while another may still read its total
        return;
    }
    SmpPhilox4 blk = smp_rng_block(seed, (uint64_t)image_ids[r / T], (uint32_t)pos[r], SMP_STREAM_TOKEN);
    block_first_last<NT, IT>(w, before + pre, smp_u53(blk.v[0], blk.v[1]) * total, sm.draw);
    if (tid == 0) {
        DrawSmem *c0 = cl.map_shared_rank(&sm.cdraw, 0);
        if (sm.draw.first != INT_MAX) atomicMin(&c0->first, base + sm.draw.first);
        if (sm.draw.last >= 0) atomicMax(&c0->last, base + sm.draw.last);
    }
    cl.sync();  // every block's totals read and its indices in rank 0
    if (q == 0 && tid == 0) {
        int tok = sm.cdraw.first != INT_MAX ? sm.cdraw.first : sm.cdraw.last;
        tokens[r] = tok < 0 ? 0 : tok;  // an empty row is reported at the next sync
        if (tok < 0) atomicOr(flag, LLAMA_FLAG_EMPTY);
    }
}

template <int NT, int IT, bool PROBS>
static KtStatus launch_hf_cluster(KtBackend *be, int64_t rows, int32_t *tok, float *probs, float *logits,
                                  const int64_t *ids, const int32_t *pos, int64_t T, int V, const SmpParams *p) {
    unsigned C = (unsigned)((V + NT * IT - 1) / (NT * IT));
    size_t smem = sizeof(HfClusterSmem<NT, IT>);
    KT_CUDA_TRY(cudaFuncSetAttribute(hf_cluster_kernel<NT, IT, PROBS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem));
    int32_t *flag = (int32_t *)((char *)cuda_impl(be)->dev_small + CUDA_SMALL_FLAG);
    cudaError_t e = cuda_launch_cluster(be, C, hf_cluster_kernel<NT, IT, PROBS>, dim3((unsigned)(rows * C)), dim3(NT),
                                        smem, tok, probs, logits, ids, pos, T, V, p->seed, p->top_k, p->temperature,
                                        flag);
    if (e == cudaSuccess) return KT_OK;
    // A launch the device refuses (clusters unavailable: a partitioned GPU, a driver limit) is not sticky: clear it,
    // note it and let the caller take one block per row from now on. (The first call of a run is eager, so a step
    // graph is captured with the fallback.)
    cudaGetLastError();
    cuda_impl(be)->cluster_rows = 0;
    kt_backend_note(be, "sampler: cluster launch refused (%s), one block per row", cudaGetErrorString(e));
    return KT_ERR_UNSUPPORTED;
}

template <int NT, int IT, bool PROBS>
static KtStatus launch_hf(KtBackend *be, int64_t rows, int32_t *tok, float *probs, float *logits, const int64_t *ids,
                          const int32_t *pos, int64_t T, int V, const SmpParams *p) {
    size_t smem = sizeof(HfSmem<NT, IT>);
    // per call: the attribute belongs to the current device's context (cheap, and allowed during capture)
    KT_CUDA_TRY(cudaFuncSetAttribute(hf_kernel<NT, IT, PROBS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int32_t *flag = (int32_t *)((char *)cuda_impl(be)->dev_small + CUDA_SMALL_FLAG);
    KT_CUDA_TRY(cuda_launch_pdl(be, hf_kernel<NT, IT, PROBS>, dim3((unsigned)rows), dim3(NT), smem, tok, probs, logits,
                                ids, pos, T, V, p->seed, p->top_k, p->top_p, p->temperature, flag));
    return KT_OK;
}

template <bool PROBS>
static KtStatus hf_dispatch(KtBackend *be, int64_t rows, int64_t V, int32_t *tok, float *probs, float *logits,
                            const int64_t *ids, const int32_t *pos, int64_t T, const SmpParams *p) {
    if (rows == 0) return KT_OK;
    if (rows > INT32_MAX) return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: %lld rows in one call", (long long)rows);
    if (V < 1 || V > 16384)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: the CUDA sampler handles vocabularies of 1..16384, got %lld",
                       (long long)V);
    // a few rows of a large vocabulary without top-p: each row on a cluster of up to 8 blocks of 2048 items
    if (V > 4096 && !(p->top_p < 1.f) && rows <= cuda_impl(be)->cluster_rows &&
        launch_hf_cluster<256, 8, PROBS>(be, rows, tok, probs, logits, ids, pos, T, (int)V, p) == KT_OK)
        return KT_OK;
    if (V <= 1024) return launch_hf<128, 8, PROBS>(be, rows, tok, probs, logits, ids, pos, T, (int)V, p);
    if (V <= 4096) return launch_hf<256, 16, PROBS>(be, rows, tok, probs, logits, ids, pos, T, (int)V, p);
    return launch_hf<512, 32, PROBS>(be, rows, tok, probs, logits, ids, pos, T, (int)V, p);
}

KtStatus cuda_sample_llama(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                           const KtTensor *positions, SmpParams params) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
    return hf_dispatch<false>(be, B * T, V, (int32_t *)tokens->data, NULL, (float *)logits->data,
                              (const int64_t *)image_ids->data, (const int32_t *)positions->data, T, &params);
}

KtStatus cuda_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params) {
    int64_t V = kt_cols(logits);
    return hf_dispatch<true>(be, kt_rows(logits), V, NULL, (float *)probs->data, (float *)logits->data, NULL, NULL, 1,
                             &params);
}

// ------------------------------------------------------------------------------------ sequential step counter
// The counter is read on the device, so a captured step replays for every token. Both kernels are dependent launches
// (every read after pdl_wait), as the layers' GEMVs and the sampler of the same step.
__global__ void raster_step_inputs_kernel(int32_t *__restrict__ tok, int32_t *__restrict__ pos,
                                          const int32_t *__restrict__ seq, const int32_t *__restrict__ step, int64_t N,
                                          int64_t S, int64_t R, int64_t B) {
    pdl_wait();
    pdl_launch_dependents();
    int64_t n = *step;
    if (n < 1 || n >= N) return;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; r < R; r += (int64_t)gridDim.x * blockDim.x) {
        tok[r] = seq[(n - 1) * S + r % B];
        pos[r] = (int32_t)n;
    }
}

KtStatus cuda_raster_step_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                                 int64_t B) {
    int64_t R = tok->shape[0];
    if (R == 0) return KT_OK;
    KT_CUDA_TRY(cuda_launch_pdl(be, raster_step_inputs_kernel, dim3(cuda_blocks_capped(R, 256, cuda_impl(be)->sm_count)),
                                dim3(256), 0, (int32_t *)tok->data, (int32_t *)pos->data, (const int32_t *)seq->data,
                                (const int32_t *)step->data, seq->shape[0], seq->shape[1], R, B));
    return KT_OK;
}

// One block: every thread reads n before thread 0 advances the counter.
__global__ void raster_step_commit_kernel(int32_t *__restrict__ seq, const int32_t *__restrict__ sampled,
                                          int32_t *__restrict__ step, int64_t N, int64_t S, int64_t B) {
    pdl_wait();
    pdl_launch_dependents();
    int64_t n = *step;
    __syncthreads();
    if (n < 0 || n >= N) return;
    for (int64_t b = threadIdx.x; b < B; b += blockDim.x) seq[n * S + b] = sampled[b];
    if (threadIdx.x == 0) *step = (int32_t)(n + 1);
}

KtStatus cuda_raster_step_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, KtTensor *step) {
    KT_CUDA_TRY(cuda_launch_pdl(be, raster_step_commit_kernel, dim3(1), dim3(256), 0, (int32_t *)seq->data,
                                (const int32_t *)sampled->data, (int32_t *)step->data, seq->shape[0], seq->shape[1],
                                sampled->shape[0]));
    return KT_OK;
}

// ------------------------------------------------------------------------------------ window plan (ZipAR)
// The plan's feeds (T, 3) and the tokens stay on the device: inputs gathered from seq, samples scattered into it.
__global__ void raster_window_inputs_kernel(int32_t *__restrict__ tok, int32_t *__restrict__ pos,
                                            int32_t *__restrict__ spos, const int32_t *__restrict__ feeds,
                                            const int32_t *__restrict__ seq, int64_t R, int64_t T, int64_t B, int64_t N,
                                            int64_t S) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < R * T; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / T, j = i % T;
        int32_t c = feeds[3 * j];
        tok[i] = c >= 0 && c < N ? seq[c * S + r % B] : 0;
        pos[i] = feeds[3 * j + 1];
        if (r < B) spos[i] = feeds[3 * j + 2];  // (B, T): the first B rows' indices
    }
}

KtStatus cuda_raster_window_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                   const KtTensor *seq) {
    int64_t R = tok->shape[0], T = tok->shape[1];
    if (R * T == 0) return KT_OK;
    raster_window_inputs_kernel<<<cuda_blocks_capped(R * T, 256, cuda_impl(be)->sm_count), 256, 0, cuda_stream(be)>>>(
        (int32_t *)tok->data, (int32_t *)pos->data, (int32_t *)spos->data, (const int32_t *)feeds->data,
        (const int32_t *)seq->data, R, T, spos->shape[0], seq->shape[0], seq->shape[1]);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

__global__ void raster_window_commit_kernel(int32_t *__restrict__ seq, const int32_t *__restrict__ sampled,
                                            const int32_t *__restrict__ feeds, int64_t B, int64_t T, int64_t N,
                                            int64_t S) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B * T; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = i / T, j = i % T;
        int32_t c = feeds[3 * j + 2];
        if (c >= 0 && c < N) seq[c * S + b] = sampled[i];
    }
}

KtStatus cuda_raster_window_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds) {
    int64_t B = sampled->shape[0], T = sampled->shape[1];
    if (B * T == 0) return KT_OK;
    raster_window_commit_kernel<<<cuda_blocks_capped(B * T, 256, cuda_impl(be)->sm_count), 256, 0, cuda_stream(be)>>>(
        (int32_t *)seq->data, (const int32_t *)sampled->data, (const int32_t *)feeds->data, B, T, seq->shape[0],
        seq->shape[1]);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}
