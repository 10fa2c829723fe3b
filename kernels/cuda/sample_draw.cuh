// The last two stages both token samplers share (sample.cu: VAR's, llama.cu: LlamaGen's), reproducing the CPU's
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
// where drop[idx] when drop is non-NULL) and returns the row max (NaN ignored, as the CPU's `>` scan). w gets this
// thread's weights exp(x - max) in double (0 for -inf and NaN, exactly 1 at the max), pre their exclusive prefix
// sum over the block and total the row's sum.
template <int NT, int IT, class F>
__device__ float filtered_row_weights(float *row, int V, F f, bool use_k, float th, const unsigned char *drop,
                                      typename cub::BlockScan<double, NT>::TempStorage &scan, double (&w)[IT],
                                      double &pre, double &total) {
    static_assert(IT % 4 == 0, "items per thread: a multiple of 4");
    __shared__ float shm[32];
    int tid = threadIdx.x;
    bool vec = row_vec4(row, V);
    float lv[IT], mx = -INFINITY;
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
    mx = block_max(mx, shm);
    double part = 0;
#pragma unroll
    for (int i = 0; i < IT; i++) {
        float x = lv[i];
        w[i] = (x != x || x == -INFINITY) ? 0.0 : x == mx ? 1.0 : exp((double)x - (double)mx);
        part += w[i];
    }
    __syncthreads();  // the caller's earlier use of the scan's storage (a union with the sort's) is over
    cub::BlockScan<double, NT>(scan).ExclusiveSum(part, pre, total);
    return mx;
}

// The draw from the weights of filtered_row_weights with uniform u in [0, 1): the first index whose cumulative
// weight (index order) exceeds u * total, else the last index with a weight (rounding at the top); -1 when every
// weight is 0. Every thread gets the result.
template <int NT, int IT>
__device__ int block_categorical(const double (&w)[IT], double pre, double total, double u, DrawSmem &sm) {
    int tid = threadIdx.x;
    if (tid == 0) { sm.first = INT_MAX; sm.last = -1; }
    __syncthreads();
    double target = u * total, cum = pre;
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
    return sm.first != INT_MAX ? sm.first : sm.last;
}
