// The last two stages both token samplers share (sample.cu: VAR's, llama_sample.cu: LlamaGen's), reproducing the CPU's
// samplers/sampling.c smp_categorical: the filtered row written back and its weights, then the inverse-CDF draw in
// index order. One block per row; thread tid holds the row's items tid*IT .. tid*IT + IT - 1 (NT * IT >= V).
// The includer brings cub's BlockScan and cuda_common.cuh.
#pragma once

// ------------------------------------------------------------------------------------------- sampler tail
struct DrawSmem {
    int first, last;  // block_categorical: the lowest index past the target, the highest index with weight
};

// Items idx .. idx + 3 of a row (idx a multiple of 4) through f, -inf past the row's end; with vec (V a multiple of
// 4 and the row 16-byte aligned) one 16-byte access. A thread's IT consecutive items are then IT/4 accesses instead
// of IT: each of a warp's accesses touches 32 cache lines either way, so 4x fewer L1 wavefronts.
template <class F>
__device__ __forceinline__ void row_load4(const float *row, int V, int idx, bool vec, F f, float (&x)[4]) {
    if (vec && idx + 3 < V) {
        float4 v = *reinterpret_cast<const float4 *>(row + idx);
        x[0] = f(v.x), x[1] = f(v.y), x[2] = f(v.z), x[3] = f(v.w);
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++) x[j] = idx + j < V ? f(row[idx + j]) : -INFINITY;
    }
}
__device__ __forceinline__ void row_store4(float *row, int V, int idx, bool vec, const float (&x)[4]) {
    if (vec && idx + 3 < V) {
        *reinterpret_cast<float4 *>(row + idx) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (idx + j < V) row[idx + j] = x[j];
    }
}
__device__ __forceinline__ bool row_vec4(const float *row, int V) { return V % 4 == 0 && ((uintptr_t)row & 15) == 0; }

// Writes the filtered row back (x = f(row[idx]), then -inf where x is not >= the top-k threshold th when use_k, or
// where drop[idx] when drop is non-NULL); lv gets this thread's filtered values. Returns their max (NaN ignored, as
// the CPU's `>` scan).
template <int IT, class F>
__device__ __forceinline__ float filter_row_items(float *row, int V, F f, bool use_k, float th,
                                                  const unsigned char *drop, float (&lv)[IT]) {
    static_assert(IT % 4 == 0, "items per thread: a multiple of 4");
    int tid = threadIdx.x;
    bool vec = row_vec4(row, V);
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < IT; i += 4) {
        int idx = tid * IT + i;
        float x[4];
        row_load4(row, V, idx, vec, f, x);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (use_k && !(x[j] >= th)) x[j] = -INFINITY;
            if (drop && idx + j < V && drop[idx + j]) x[j] = -INFINITY;
            lv[i + j] = x[j];
            mx = fmaxf(mx, x[j]);
        }
        row_store4(row, V, idx, vec, x);
    }
    return mx;
}

// w = exp(x - mx) in double for this thread's filtered values (0 for -inf and NaN, exactly 1 at the max); returns
// their sum.
template <int IT>
__device__ __forceinline__ double row_item_weights(const float (&lv)[IT], float mx, double (&w)[IT]) {
    double part = 0;
#pragma unroll
    for (int i = 0; i < IT; i++) {
        float x = lv[i];
        w[i] = (x != x || x == -INFINITY) ? 0.0 : x == mx ? 1.0 : exp((double)x - (double)mx);
        part += w[i];
    }
    return part;
}

// filter_row_items and row_item_weights over one block's row: returns the row max; w gets this thread's weights, pre
// their exclusive prefix sum over the block and total the row's sum.
template <int NT, int IT, class F>
__device__ float filtered_row_weights(float *row, int V, F f, bool use_k, float th, const unsigned char *drop,
                                      typename cub::BlockScan<double, NT>::TempStorage &scan, double (&w)[IT],
                                      double &pre, double &total) {
    __shared__ float shm[32];
    float lv[IT];
    float mx = block_max(filter_row_items<IT>(row, V, f, use_k, th, drop, lv), shm);
    double part = row_item_weights<IT>(lv, mx, w);
    __syncthreads();  // the caller's earlier use of the scan's storage (a union with the sort's) is over
    cub::BlockScan<double, NT>(scan).ExclusiveSum(part, pre, total);
    return mx;
}

// The draw from the weights of filtered_row_weights with target u * total: sm.first gets the first index (item
// tid*IT + i of this block) whose cumulative weight (index order, from pre) exceeds target, INT_MAX if none; sm.last
// the last index with a weight, -1 if none. Visible to every thread on return.
template <int NT, int IT>
__device__ void block_first_last(const double (&w)[IT], double pre, double target, DrawSmem &sm) {
    int tid = threadIdx.x;
    if (tid == 0) { sm.first = INT_MAX; sm.last = -1; }
    __syncthreads();
    double cum = pre;
    int first = INT_MAX, last = -1;
#pragma unroll
    for (int i = 0; i < IT; i++) {
        if (w[i] <= 0) continue;
        cum += w[i];
        last = tid * IT + i;
        if (cum > target && first == INT_MAX) first = last;
    }
    if (first != INT_MAX) atomicMin(&sm.first, first);
    if (last >= 0) atomicMax(&sm.last, last);
    __syncthreads();
}

// The draw with uniform u in [0, 1): the first index whose cumulative weight exceeds u * total, else the last index
// with a weight (rounding at the top); -1 when every weight is 0. Every thread gets the result.
template <int NT, int IT>
__device__ int block_categorical(const double (&w)[IT], double pre, double total, double u, DrawSmem &sm) {
    block_first_last<NT, IT>(w, pre, u * total, sm);
    return sm.first != INT_MAX ? sm.first : sm.last;
}
