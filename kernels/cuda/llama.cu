// Raster-model (LlamaGen) layer ops on the GPU: RMSNorm (alone and after the residual add), the SwiGLU gate, 2D-RoPE
// attention inputs scattered into the positional KV cache, attention causal by position (online softmax; split keys
// for caches longer than a warp; the RoPE prep fused in for single-token steps and, on thread-block clusters, for
// windows), row L2 normalisation. The sampler and the decoding loops' device-side bookkeeping are in llama_sample.cu.
// Semantics are those of kernels/cpu/llama.c; sums run as block reductions, so results match the CPU within float
// rounding.
// Positions outside the cache are not written (prep) or clamped (attention): memory-safe; the CPU backend reports
// them as errors.
// ref: LlamaGen autoregressive/models/gpt.py; kernels/cpu/llama.c
// Dims: B batch, T/Tq tokens, C channels, NH heads, HS head size, Tcap cache rows, P rotary rows.
#include <cooperative_groups.h>

#include "cuda_common.cuh"

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
        kt_backend_note(be, "attention: cluster launch refused (%s), windows as prep + attention",
                        cudaGetErrorString(e));
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
