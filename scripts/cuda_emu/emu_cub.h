// The CUB block collectives the samplers use (kernels/cuda/sample.cu, llama.cu's LlamaGen sampler), as block
// collectives of the emulator (emu_cuda.h): cub::BlockRadixSort<Key, NT, IT, Value> (Sort, SortDescending; keys
// alone or with values) and cub::BlockScan<T, NT> (ExclusiveSum / InclusiveSum of one item per thread, with or without
// the block aggregate). Include after emu_cuda.h.
//
// Semantics reproduced (CUB 3.0.1 of CUDA 13.0, /usr/local/cuda/include/cccl/cub/):
// - BlockRadixSort is stable and sorts the blocked arrangement (thread t holds items t*IT .. t*IT+IT-1, before and
//   after); values move with their keys (block/block_radix_sort.cuh: "BlockRadixSort is stable", SortBlocked).
// - Float keys are ordered by CUB's bit twiddle (util_type.cuh BaseTraits<FLOATING_POINT>::TwiddleIn: sign bit set ->
//   flip all bits, else flip the sign bit), and the digit extractor maps the twiddled -0.0 onto +0.0
//   (block/radix_rank_sort_operations.cuh BaseDigitExtractor<KeyT, true>::ProcessFloatMinusZero): -0.0 and +0.0 are
//   equal keys (stable: input order), and are returned unchanged (the key bits are only reordered). NaNs are not
//   special: +NaN (sign clear) sorts after +inf, -NaN before -inf, NaNs among themselves by payload bits.
// - SortDescending: CUB reverses the ranking, it does not invert the key bits; it stays stable (equal keys keep their
//   input order), -0.0 == +0.0 as above.
// - [begin_bit, end_bit) restricts the compared bits of the twiddled (and -0 mapped) key.
// - BlockScan: ExclusiveSum gives thread 0 exactly 0 and thread t in[0] + ... + in[t-1]; the aggregate goes to
//   every thread. The sums here run left to right; CUB's raking/warp-scan association differs, so a double sum can
//   differ from the GPU's in the last bits (the samplers' stated ~1e-16 allowance).
// How: like CUB, a collective first writes the TempStorage (which lives in the kernel's shared memory) without a
// leading barrier, and returns right after each thread read its results without a trailing one: reusing the storage
// needs a __syncthreads in between, as with CUB, and a kernel that forgets it races here too. In between: stage,
// __syncthreads, one thread (linear id 0) sorts / scans, __syncthreads, read back. The sort stages keys and values
// one after the other in a key-sized (or value-sized) array, so TempStorage is as big as CUB's exchange storage; its
// size is CUB's own for the configurations the samplers use (measured with nvcc from CUDA 13.0), so the launchers'
// sizeof(...Smem) is the GPU build's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "emu_cuda.h"

namespace cub {

struct NullType {};

namespace emu_detail {

// sizeof(cub::BlockRadixSort<float, NT, IT, int>::TempStorage) and sizeof(cub::BlockScan<double, NT>::TempStorage)
// with nvcc 13.0 (CUB 3.0.1), sm_90; 0 where not measured.
constexpr size_t real_sort_bytes(int nt, int it, size_t ksz, size_t vsz) {
    return (ksz == 4 && vsz == 4) ? (nt == 128 && it == 8 ? 4640 : nt == 256 && it == 16 ? 16896
                                                              : nt == 512 && it == 32 ? 67584 : 0)
                                  : 0;
}
constexpr size_t real_scan_bytes(int nt, size_t tsz) {
    return tsz == 8 ? (nt == 128 ? 1312 : nt == 256 ? 2336 : nt == 512 ? 4384 : 0) : 0;
}
constexpr size_t cmax(size_t a, size_t b) { return a > b ? a : b; }

template <typename K> struct Bits {
    static_assert(sizeof(K) == 4 || sizeof(K) == 8, "emu_cub: 32- or 64-bit keys");
    using U = typename std::conditional<sizeof(K) == 4, uint32_t, uint64_t>::type;
};

// The radix-ordered unsigned image of a key (CUB's TwiddleIn, then ProcessFloatMinusZero for floating point).
template <typename K> inline typename Bits<K>::U ordered(K k) {
    using U = typename Bits<K>::U;
    U u;
    memcpy(&u, &k, sizeof u);
    const U high = U(1) << (8 * sizeof(U) - 1);
    if (std::is_floating_point<K>::value) {
        u ^= (u & high) ? U(~U(0)) : high;
        const U tw_minus_zero = U(~high), tw_zero = high;  // TwiddleIn(0x80..0) = 0x7f..f, TwiddleIn(0) = 0x80..0
        if (u == tw_minus_zero) u = tw_zero;
    } else if (std::is_signed<K>::value) {
        u ^= high;
    }
    return u;
}

}  // namespace emu_detail

template <typename KeyT, int BLOCK_DIM_X, int ITEMS_PER_THREAD, typename ValueT = NullType, int RADIX_BITS = 4,
          bool MEMOIZE_OUTER_SCAN = true, int INNER_SCAN_ALGORITHM = 0, int SMEM_CONFIG = 0, int BLOCK_DIM_Y = 1,
          int BLOCK_DIM_Z = 1>
class BlockRadixSort {
    static constexpr int NT = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z, IT = ITEMS_PER_THREAD, N = NT * IT;
    static constexpr bool KEYS_ONLY = std::is_same<ValueT, NullType>::value;
    static constexpr size_t VSZ = KEYS_ONLY ? 0 : sizeof(ValueT);
    static constexpr size_t STAGE = (size_t)N * emu_detail::cmax(sizeof(KeyT), VSZ);

  public:
    struct TempStorage {
        alignas(16) unsigned char bytes[emu_detail::cmax(STAGE, emu_detail::real_sort_bytes(NT, IT, sizeof(KeyT), VSZ))];
    };
    explicit BlockRadixSort(TempStorage &ts) : ts_(ts) {}

    void Sort(KeyT (&keys)[IT], int begin_bit = 0, int end_bit = sizeof(KeyT) * 8) {
        sort_impl(keys, (ValueT *)nullptr, begin_bit, end_bit, false);
    }
    template <typename V = ValueT, typename = typename std::enable_if<!std::is_same<V, NullType>::value>::type>
    void Sort(KeyT (&keys)[IT], V (&values)[IT], int begin_bit = 0, int end_bit = sizeof(KeyT) * 8) {
        sort_impl(keys, values, begin_bit, end_bit, false);
    }
    void SortDescending(KeyT (&keys)[IT], int begin_bit = 0, int end_bit = sizeof(KeyT) * 8) {
        sort_impl(keys, (ValueT *)nullptr, begin_bit, end_bit, true);
    }
    template <typename V = ValueT, typename = typename std::enable_if<!std::is_same<V, NullType>::value>::type>
    void SortDescending(KeyT (&keys)[IT], V (&values)[IT], int begin_bit = 0, int end_bit = sizeof(KeyT) * 8) {
        sort_impl(keys, values, begin_bit, end_bit, true);
    }

  private:
    TempStorage &ts_;

    template <typename T> void put(int i, const T &v) { memcpy(ts_.bytes + (size_t)i * sizeof(T), &v, sizeof(T)); }
    template <typename T> T get(int i) const {
        T v;
        memcpy(&v, ts_.bytes + (size_t)i * sizeof(T), sizeof(T));
        return v;
    }

    void sort_impl(KeyT (&keys)[IT], ValueT *values, int begin_bit, int end_bit, bool descending) {
        using U = typename emu_detail::Bits<KeyT>::U;
        int tid = emu::linear_tid();
        if (emu::g_blk->n != NT) {
            emu::note("cub::BlockRadixSort<NT=%d> used in a block of %d threads", NT, emu::g_blk->n);
            emu::g_errors++;
        }
        for (int i = 0; i < IT; i++) put<KeyT>(tid * IT + i, keys[i]);
        __syncthreads();
        std::vector<int> perm;  // thread 0's: sorted position -> input position
        if (tid == 0) {
            std::vector<KeyT> k(N);
            std::vector<U> d(N);
            U mask = 0;
            for (int b = begin_bit; b < end_bit && b < (int)(8 * sizeof(U)); b++) mask |= U(1) << b;
            for (int j = 0; j < N; j++) k[j] = get<KeyT>(j), d[j] = emu_detail::ordered(k[j]) & mask;
            perm.resize(N);
            for (int j = 0; j < N; j++) perm[j] = j;
            std::stable_sort(perm.begin(), perm.end(),
                             [&](int a, int b) { return descending ? d[a] > d[b] : d[a] < d[b]; });
            for (int j = 0; j < N; j++) put<KeyT>(j, k[perm[j]]);
        }
        __syncthreads();
        for (int i = 0; i < IT; i++) keys[i] = get<KeyT>(tid * IT + i);
        if (KEYS_ONLY) return;
        __syncthreads();  // (CUB: keys, then values, through the same exchange storage)
        for (int i = 0; i < IT; i++) put<ValueT>(tid * IT + i, values[i]);
        __syncthreads();
        if (tid == 0) {
            std::vector<ValueT> v(N);
            for (int j = 0; j < N; j++) v[j] = get<ValueT>(j);
            for (int j = 0; j < N; j++) put<ValueT>(j, v[perm[j]]);
        }
        __syncthreads();
        for (int i = 0; i < IT; i++) values[i] = get<ValueT>(tid * IT + i);
    }
};

template <typename T, int BLOCK_DIM_X, int ALGORITHM = 0, int BLOCK_DIM_Y = 1, int BLOCK_DIM_Z = 1>
class BlockScan {
    static constexpr int NT = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;

  public:
    struct TempStorage {
        alignas(16) unsigned char bytes[emu_detail::cmax((NT + 1) * sizeof(T), emu_detail::real_scan_bytes(NT, sizeof(T)))];
    };
    explicit BlockScan(TempStorage &ts) : ts_(ts) {}

    void ExclusiveSum(T input, T &output) {
        T agg;
        scan(input, output, agg, false);
    }
    void ExclusiveSum(T input, T &output, T &block_aggregate) { scan(input, output, block_aggregate, false); }
    void InclusiveSum(T input, T &output) {
        T agg;
        scan(input, output, agg, true);
    }
    void InclusiveSum(T input, T &output, T &block_aggregate) { scan(input, output, block_aggregate, true); }

  private:
    TempStorage &ts_;
    void put(int i, const T &v) { memcpy(ts_.bytes + (size_t)i * sizeof(T), &v, sizeof(T)); }
    T get(int i) const {
        T v;
        memcpy(&v, ts_.bytes + (size_t)i * sizeof(T), sizeof(T));
        return v;
    }
    void scan(T input, T &output, T &aggregate, bool inclusive) {
        int tid = emu::linear_tid();
        if (emu::g_blk->n != NT) {
            emu::note("cub::BlockScan<NT=%d> used in a block of %d threads", NT, emu::g_blk->n);
            emu::g_errors++;
        }
        put(tid, input);
        __syncthreads();
        if (tid == 0) {
            T run = get(0);
            put(0, inclusive ? run : T(0));
            for (int t = 1; t < NT; t++) {
                T x = get(t);
                T nx = run + x;
                put(t, inclusive ? nx : run);
                run = nx;
            }
            put(NT, run);
        }
        __syncthreads();
        output = get(tid);
        aggregate = get(NT);
    }
};

}  // namespace cub
