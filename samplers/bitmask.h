// Bit masks of the entries an inverse-CDF draw adds (samplers/sampling_hf.c smp_draw_probs, samplers/sjd.c's
// residual draw): the draws then add only those entries, in index order, so their double sums are the same
// additions as a scan with `if (w > 0) total += w` - bit for bit - without the scan's unpredictable branch per
// entry and its serial chain through the zeros (a top-k 2000 row of a 16,384-entry vocabulary is 88% zeros).
// SSE2 compares 4 floats at a time where the compiler targets it (every x86-64); elsewhere a plain loop.
// Dims: n <= 64 entries per mask; bit k is entry k.
#pragma once

#include <stdint.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// Bits of p[k] > 0 for k < n (NaN, -0 and negatives are not set).
static inline uint64_t smp_bits_positive(const float *p, int64_t n) {
    uint64_t m = 0;
#if defined(__SSE2__)
    if (n == 64) {
        __m128 zero = _mm_setzero_ps();
        for (int k = 0; k < 64; k += 4)
            m |= (uint64_t)(unsigned)_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + k), zero)) << k;
        return m;
    }
#endif
    for (int64_t k = 0; k < n; k++) m |= (uint64_t)(p[k] > 0) << k;
    return m;
}

// Bits of p[k] > q[k] for k < n: exactly where the double difference (double)p[k] - q[k] is > 0 (the difference of
// two floats rounds to 0 only when they are equal, and keeps its sign; NaN on either side sets no bit).
static inline uint64_t smp_bits_greater(const float *p, const float *q, int64_t n) {
    uint64_t m = 0;
#if defined(__SSE2__)
    if (n == 64) {
        for (int k = 0; k < 64; k += 4)
            m |= (uint64_t)(unsigned)_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + k), _mm_loadu_ps(q + k))) << k;
        return m;
    }
#endif
    for (int64_t k = 0; k < n; k++) m |= (uint64_t)(p[k] > q[k]) << k;
    return m;
}

// Index of the lowest set bit of m != 0.
static inline int smp_lowest_bit(uint64_t m) {
#if defined(__GNUC__)
    return __builtin_ctzll(m);
#else
    int k = 0;
    while (!(m & 1)) m >>= 1, k++;
    return k;
#endif
}
