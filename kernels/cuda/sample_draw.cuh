// The last two stages both token samplers share (sample.cu: VAR's, llama.cu: LlamaGen's), reproducing the CPU's
// samplers/sampling.c smp_categorical: the filtered row written back and its weights, then the inverse-CDF draw in
// index order. One block per row; thread tid holds the row's items tid*IT .. tid*IT + IT - 1 (NT * IT >= V).
// The includer brings cub's BlockScan and cuda_common.cuh.
#pragma once

// ------------------------------------------------------------------------------------------- sampler tail
struct DrawSmem {
    int first, last;  // block_categorical: the lowest index past the target, the highest index with weight
};

// Writes the filtered row back (x = load(idx), then -inf where x is not >= the top-k threshold th when use_k, or
// where drop[idx] when drop is non-NULL) and returns the row max (NaN ignored, as the CPU's `>` scan). w gets this
// thread's weights exp(x - max) in double (0 for -inf and NaN, exactly 1 at the max), pre their exclusive prefix
// sum over the block and total the row's sum.
template <int NT, int IT, class Load>
__device__ float filtered_row_weights(float *row, int V, Load load, bool use_k, float th, const unsigned char *drop,
                                      typename cub::BlockScan<double, NT>::TempStorage &scan, double (&w)[IT],
                                      double &pre, double &total) {
    __shared__ float shm[32];
    int tid = threadIdx.x;
    float lv[IT], mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < IT; i++) {
        int idx = tid * IT + i;
        float x = load(idx);
        if (use_k && !(x >= th)) x = -INFINITY;
        if (drop && idx < V && drop[idx]) x = -INFINITY;
        if (idx < V) row[idx] = x;
        lv[i] = x;
        mx = fmaxf(mx, x);
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
