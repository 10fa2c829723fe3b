// Philox4x32-10 counter-based RNG (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// generator behind every random draw in argen. Header-only and branch-free so the CPU backend and the CUDA kernels
// compute bit-identical streams. Constants are those of Random123 and cuRAND's philox4_32_10.
//
// argen's stream layout (the written spec; changing it changes every image):
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (image & 0xffffffff, image >> 32, position, stream)
//   `image` is the image's index in the run (class-major: class i, sample j -> i*n + j), so an image never depends on
//   batch size, thread count, shard or device. `position` is the token's index within the image (VAR: all scales
//   concatenated; raster models: raster order).
//   stream SMP_STREAM_TOKEN           : the categorical draw of that token (words 0,1 -> one 53-bit uniform)
//   stream SMP_STREAM_GUMBEL + v/4    : Gumbel noise for vocabulary entry v (word v%4), VAR's more_smooth
//   streams >= SMP_STREAM_DECODING    : reserved for decoding strategies. Speculative Jacobi decoding
//                                       (samplers/sjd.c) uses SMP_STREAM_DECODING + 4 * iteration + purpose at the
//                                       raster index concerned (iteration: the image's own window count from 1;
//                                       purpose 0 Jacobi sample / bonus token, 1 acceptance uniform, 2 residual draw,
//                                       3 random draft); its first token, sequential and ZipAR use SMP_STREAM_TOKEN.
#pragma once

#include <stdint.h>

#ifdef __CUDACC__
#define SMP_HD __host__ __device__ __forceinline__
#else
#define SMP_HD static inline
#endif

enum { SMP_STREAM_TOKEN = 0, SMP_STREAM_GUMBEL = 1, SMP_STREAM_DECODING = 0x40000000 };

typedef struct {
    uint32_t v[4];
} SmpPhilox4;

SMP_HD uint32_t smp_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

// One Philox4x32-10 block: 10 rounds over `ctr` with key schedule from `key`.
SMP_HD SmpPhilox4 smp_philox4x32_10(SmpPhilox4 ctr, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = smp_mulhilo32(0xD2511F53u, ctr.v[0], &hi0);
        uint32_t lo1 = smp_mulhilo32(0xCD9E8D57u, ctr.v[2], &hi1);
        SmpPhilox4 n;
        n.v[0] = hi1 ^ ctr.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ ctr.v[3] ^ k1;
        n.v[3] = lo0;
        ctr = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

// The four 32-bit words for (seed, image, position, stream).
SMP_HD SmpPhilox4 smp_rng_block(uint64_t seed, uint64_t image, uint32_t position, uint32_t stream) {
    SmpPhilox4 c;
    c.v[0] = (uint32_t)image;
    c.v[1] = (uint32_t)(image >> 32);
    c.v[2] = position;
    c.v[3] = stream;
    return smp_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// Uniform double in [0, 1) with 53 random bits from two words.
SMP_HD double smp_u53(uint32_t w0, uint32_t w1) {
    uint64_t m = ((uint64_t)(w0 >> 5) << 26) | (uint64_t)(w1 >> 6);
    return (double)m * (1.0 / 9007199254740992.0);
}

// Uniform float in (0, 1) (never 0 or 1): safe inside log(). Uses 23 random bits so that every value
// (k + 0.5) / 2^23 is exact in float32 (with 24 bits, k + 0.5 rounds for k >= 2^23 and k = 2^24 - 1 gave 1.0).
SMP_HD float smp_u24_open(uint32_t w) { return ((float)(w >> 9) + 0.5f) * (1.0f / 8388608.0f); }
