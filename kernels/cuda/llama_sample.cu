// LlamaGen's token sampler on the GPU and the decoding loops' device-side bookkeeping: the HF-style sampler (top-k /
// top-p, then the draw of samplers/sampling.h with the same Philox words) and its probabilities, on one block per row
// (a radix select for top-k alone, a stable block radix sort with top-p) or a thread-block cluster per row; the
// sequential loop's step counter; ZipAR's plan (inputs gathered from, samples scattered into the device-side tokens).
// Semantics are those of kernels/cpu/llama.c; sums run as block reductions / scans, so results match the CPU within
// float rounding (a sampled token can differ only when u * total falls within ~1e-16 of a cumulative boundary).
// ref: LlamaGen autoregressive/models/generate.py; kernels/cpu/llama.c
// Dims: B batch, T tokens per row of logits, V vocabulary, N image tokens, S sequence columns.
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <cooperative_groups.h>

#include "cuda_common.cuh"
#include "samplers/philox.h"
#include "sample_draw.cuh"

#define LLAMA_FLAG_EMPTY 2  // a sampled row had no finite logit (the sampler's bit, reported at the next sync)

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
