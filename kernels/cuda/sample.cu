// Token sampling and VAR's more_smooth latents on the GPU, one block per (b, t) row, reproducing
// samplers/sampling.c smp_sample_row / smp_smooth_embed_row: temperature (IEEE division, written back), top-k
// (keep >= the k-th largest, NaN as -inf), VAR's top-p (finite logits ascending by (value, index), softmax and
// cumulative sum in double, drop cumulative <= 1 - p except the largest), then the inverse-CDF draw with the same
// Philox words: the first index whose cumulative exp(l - max) (double, index order) exceeds u * total.
// One stable block radix sort of (value, index) pairs serves both filters. Sums run as block scans instead of the
// CPU's left-to-right loops, so a token can differ only when u * total (or 1 - p) falls within ~1e-16 of a
// cumulative boundary.
// ref: VAR models/helpers.py sample_with_top_k_top_p_, gumbel_softmax_with_rng; samplers/sampling.h
// Dims: B batch, T tokens per step, V vocabulary, D code dim; NT threads x IT items per thread >= V.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include "cuda_common.cuh"
#include "samplers/philox.h"
#include "sample_draw.cuh"

#define SMP_FLAG_EMPTY 2  // a row had no finite logit (reported as KT_ERR_NUMERIC at the next sync)

template <int NT, int IT>
struct SampleSmem {
    union {
        typename cub::BlockRadixSort<float, NT, IT, int>::TempStorage sort;
        typename cub::BlockScan<double, NT>::TempStorage scan;
    } tmp;
    unsigned char drop[NT * IT];  // top-p: 1 = masked, by vocabulary index
    float th, m;
    int lo, hi_inf;
    DrawSmem draw;
};

// Row r = b*T + t of logits (B, T, V), masked in place; tokens (B, T).
template <int NT, int IT>
__global__ void __launch_bounds__(NT)
sample_kernel(int32_t *__restrict__ tokens, float *__restrict__ logits, const int64_t *__restrict__ image_ids,
              int64_t T, int V, int64_t pos0, uint64_t seed, int top_k, float top_p, float temp,
              int32_t *__restrict__ flag) {
    constexpr int P = NT * IT;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    SampleSmem<NT, IT> &sm = *reinterpret_cast<SampleSmem<NT, IT> *>(smem_raw);
    int tid = threadIdx.x;
    int64_t r = blockIdx.x, b = r / T, t = r % T;
    float *row = logits + r * V;
    bool use_k = top_k > 0 && top_k < V, use_p = top_p > 0.f && top_p < 1.f, div = temp > 0.f && temp != 1.f;
    auto f = [&](float x) { return div ? __fdiv_rn(x, temp) : x; };  // the temperature
    bool vec = row_vec4(row, V);

    float th = -INFINITY;
    if (use_k || use_p) {
        for (int i = tid; i < P; i += NT) sm.drop[i] = 0;
        if (tid == 0) { sm.lo = 0; sm.hi_inf = 0; }
        float keys[IT];
        int vals[IT];
#pragma unroll
        for (int i = 0; i < IT; i += 4) {
            float x[4];
            row_load4(row, V, tid * IT + i, vec, f, x);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                keys[i + j] = (x[j] != x[j]) ? -INFINITY : (x[j] == 0.f ? 0.f : x[j]);  // NaN sorts as -inf; -0 as +0
                vals[i + j] = tid * IT + i + j;
            }
        }
        cub::BlockRadixSort<float, NT, IT, int>(sm.tmp.sort).Sort(keys, vals);  // ascending, stable: index order
        __syncthreads();                                                      // on ties; rank = tid*IT + i
        if (use_k) {
#pragma unroll
            for (int i = 0; i < IT; i++)
                if (tid * IT + i == P - top_k) sm.th = keys[i];
            __syncthreads();
            th = sm.th;
        }
        if (use_p) {
            int lo = 0, hi_inf = 0;
#pragma unroll
            for (int i = 0; i < IT; i++) {
                lo += !(keys[i] >= th) || keys[i] == -INFINITY;  // masked by top-k, or non-finite low
                hi_inf += keys[i] == INFINITY;
            }
            atomicAdd(&sm.lo, lo);
            atomicAdd(&sm.hi_inf, hi_inf);
            __syncthreads();
            lo = sm.lo;
            int hi = P - sm.hi_inf;  // finite survivors: ranks [lo, hi)
            if (hi - lo >= 2) {
#pragma unroll
                for (int i = 0; i < IT; i++)
                    if (tid * IT + i == hi - 1) sm.m = keys[i];
                __syncthreads();
                double m = sm.m, e[IT], part = 0;
#pragma unroll
                for (int i = 0; i < IT; i++) {
                    int rank = tid * IT + i;
                    e[i] = rank >= lo && rank < hi ? exp((double)keys[i] - m) : 0.0;
                    part += e[i];
                }
                double pre, z;
                cub::BlockScan<double, NT>(sm.tmp.scan).ExclusiveSum(part, pre, z);
                double thr = 1.0 - (double)top_p, cum = pre;
#pragma unroll
                for (int i = 0; i < IT; i++) {
                    int rank = tid * IT + i;
                    cum += e[i];
                    if (rank >= lo && rank < hi - 1 && cum / z <= thr) sm.drop[vals[i]] = 1;
                }
            }
        }
        __syncthreads();
    }

    // Masked row back to memory, and the categorical draw in index order.
    double w[IT], pre, total;
    filtered_row_weights<NT, IT>(row, V, f, use_k, th, use_p ? sm.drop : nullptr, sm.tmp.scan, w, pre, total);
    SmpPhilox4 blk = smp_rng_block(seed, (uint64_t)image_ids[b], (uint32_t)(pos0 + t), SMP_STREAM_TOKEN);
    int tok = block_categorical<NT, IT>(w, pre, total, smp_u53(blk.v[0], blk.v[1]), sm.draw);
    if (tid == 0) {
        // an empty row is reported at the next sync; token 0 keeps later kernels (embedding) in range meanwhile
        tokens[r] = tok < 0 ? 0 : tok;
        if (tok < 0) atomicOr(flag, SMP_FLAG_EMPTY);
    }
}

template <int NT, int IT>
static KtStatus launch_sample(KtBackend *be, int64_t rows, int32_t *tok, float *logits, const int64_t *ids, int64_t T,
                              int V, int64_t pos0, const SmpParams *p) {
    size_t smem = sizeof(SampleSmem<NT, IT>);
    // per call: the attribute belongs to the current device's context (cheap, and allowed during capture)
    KT_CUDA_TRY(cudaFuncSetAttribute(sample_kernel<NT, IT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int32_t *flag = (int32_t *)((char *)cuda_impl(be)->dev_small + CUDA_SMALL_FLAG);
    sample_kernel<NT, IT><<<(unsigned)rows, NT, smem, cuda_stream(be)>>>(tok, logits, ids, T, V, pos0, p->seed,
                                                                          p->top_k, p->top_p, p->temperature, flag);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// tokens: (B, T) int32; logits: (B, T, V) masked in place; image_ids: (B) int64.
KtStatus cuda_sample_top_k_top_p(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                                 int64_t pos0, SmpParams params) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2], rows = B * T;
    if (rows == 0) return KT_OK;
    if (rows > INT32_MAX) return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: %lld rows in one call", (long long)rows);
    if (V < 1 || V > 16384)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "sampling: the CUDA sampler handles vocabularies of 1..16384, got %lld",
                       (long long)V);
    int32_t *tok = (int32_t *)tokens->data;
    float *lg = (float *)logits->data;
    const int64_t *ids = (const int64_t *)image_ids->data;
    if (V <= 1024) return launch_sample<128, 8>(be, rows, tok, lg, ids, T, (int)V, pos0, &params);
    if (V <= 4096) return launch_sample<256, 16>(be, rows, tok, lg, ids, T, (int)V, pos0, &params);
    return launch_sample<512, 32>(be, rows, tok, lg, ids, T, (int)V, pos0, &params);
}

// ------------------------------------------------------------------------------------------------ more_smooth
// Block per row: w_v = (l_v * mul + g_v) / tau with g_v = -log(-log(u)) from word v%4 of Gumbel block v/4 (masked
// logits get -inf and no noise); e_v = exp(w_v - max) in double, stored rounded to float as on the CPU; z = sum e;
// h[d] = sum_v (e_v / z) * codebook[v, d] in double. Warps split v, lanes split d (coalesced codebook rows).
// h: (B, T, D); logits: (B, T, V); codebook: (V, D). Dynamic shared memory: V floats.
__global__ void __launch_bounds__(256)
smooth_embed_kernel(float *__restrict__ h, const float *__restrict__ logits, const float *__restrict__ cb,
                    const int64_t *__restrict__ image_ids, int64_t T, int64_t V, int64_t D, int64_t pos0,
                    uint64_t seed, float mul, float tau) {
    extern __shared__ float wv[];
    __shared__ float shf[32];
    __shared__ double shd[32];
    __shared__ double acc[8][32];
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    int64_t r = blockIdx.x, b = r / T, t = r % T;
    const float *lr = logits + r * V;
    uint64_t image = (uint64_t)image_ids[b];
    uint32_t pos = (uint32_t)(pos0 + t);
    float m = -INFINITY;
    for (int64_t j = tid; j < (V + 3) / 4; j += blockDim.x) {
        SmpPhilox4 blk = smp_rng_block(seed, image, pos, (uint32_t)(SMP_STREAM_GUMBEL + j));
#pragma unroll
        for (int q = 0; q < 4; q++) {
            int64_t v = 4 * j + q;
            if (v >= V) break;
            float l = lr[v], x = -INFINITY;
            if (!(l != l) && l != -INFINITY) {
                float g = -logf(-logf(smp_u24_open(blk.v[q])));
                x = __fdiv_rn(__fadd_rn(__fmul_rn(l, mul), g), tau);
            }
            wv[v] = x;
            m = fmaxf(m, x);
        }
    }
    m = block_max(m, shf);
    float *hr = h + r * D;
    if (m == -INFINITY) {
        for (int64_t d = tid; d < D; d += blockDim.x) hr[d] = 0.f;
        return;
    }
    double z = 0;
    for (int64_t v = tid; v < V; v += blockDim.x) {
        float x = wv[v];
        double e = x == -INFINITY ? 0.0 : x == m ? 1.0 : exp((double)x - (double)m);
        wv[v] = (float)e;
        z += e;
    }
    z = block_sum_d(z, shd);  // its barriers also publish wv
    for (int64_t d0 = 0; d0 < D; d0 += 32) {
        int64_t d = d0 + lane;
        double a = 0;
        if (d < D)
            for (int64_t v = warp; v < V; v += nw) {
                float e = wv[v];
                if (e != 0.f) a += ((double)e / z) * cb[v * D + d];
            }
        acc[warp][lane] = a;
        __syncthreads();
        if (warp == 0 && d < D) {
            double s = 0;
            for (int k = 0; k < nw; k++) s += acc[k][lane];
            hr[d] = (float)s;
        }
        __syncthreads();
    }
}

KtStatus cuda_smooth_embed(KtBackend *be, KtTensor *h, const KtTensor *logits, const KtTensor *codebook, float ratio,
                           const KtTensor *image_ids, int64_t pos0, uint64_t seed) {
    int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2], D = codebook->shape[1];
    if (B * T == 0) return KT_OK;
    size_t smem = (size_t)V * sizeof(float);
    if (smem > cuda_impl(be)->smem_optin)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_smooth_embed: vocabulary %lld exceeds shared memory", (long long)V);
    static size_t high = 48u << 10;  // per call (per device), never lowered under an earlier captured launch
    if (smem > high) high = smem;
    if (high > (48u << 10))
        KT_CUDA_TRY(cudaFuncSetAttribute(smooth_embed_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)high));
    float mul = (float)(1.0 + (double)ratio);
    double tau_d = 0.27 * (1.0 - 0.95 * (double)ratio);
    float tau = (float)(tau_d > 0.005 ? tau_d : 0.005);
    smooth_embed_kernel<<<(unsigned)(B * T), 256, smem, cuda_stream(be)>>>(
        (float *)h->data, (const float *)logits->data, (const float *)codebook->data,
        (const int64_t *)image_ids->data, T, V, D, pos0, seed, mul, tau);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}
