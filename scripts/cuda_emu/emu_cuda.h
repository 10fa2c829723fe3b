// CPU emulation of the CUDA execution model, enough for kernels/cuda/llama.cu's kernels to compile with g++ and run.
// - Blocks run one after another (order: forward / reverse / random, see emu::g_mode and emu::Order); the blocks of a
//   thread-block cluster (launch_cluster) run together, and clusters one after another in that order.
// - The threads of a block (of all the blocks of a cluster) run as cooperative fibers (ucontext, one stack each); a
//   fiber runs uninterrupted from one synchronisation point (__syncthreads, a warp intrinsic, cluster.sync) to the
//   next, and the scheduler picks the next fiber in round-robin, random or greedy order (so code that relies on an
//   unsynchronised order between threads, including lanes of one warp and blocks of one cluster, gives
//   schedule-dependent results).
// - __syncthreads: block barrier. Warp intrinsics (*_sync): a barrier of the lanes named in the mask plus an exchange
//   with the PTX lane semantics; a lane calling with a mask that does not name it, lanes disagreeing on mask/op, a
//   source lane outside the mask and a deadlock (a named lane that exited or never arrives) are reported.
// - Clusters (cooperative_groups::this_cluster(), below): cluster.sync() is a barrier of every thread of the cluster;
//   map_shared_rank maps an address in the block's dynamic shared memory to the same offset in another block's. A
//   block whose threads have all exited while the rest of its cluster runs has its dynamic shared memory refilled
//   with 0xFF bytes (reading it is undefined on the GPU).
// - __shared__ arrays: `static` (blocks run sequentially), so one copy serves all the blocks of a cluster: executing
//   a __shared__ declaration in a cluster of more than one block is reported. extern __shared__: a per-block heap
//   buffer filled with 0xFF bytes (NaN as float) so that reads of unwritten shared memory show.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>
#include <ucontext.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// a __shared__ declaration also declares a local whose initialiser reports its use in a cluster launch
#define EMU_CAT2(a, b) a##b
#define EMU_CAT(a, b) EMU_CAT2(a, b)
#define __shared__ \
    [[maybe_unused]] const bool EMU_CAT(emu_static_shared_, __COUNTER__) = ::emu::static_shared(__LINE__); static
#define __align__(n) alignas(n)

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace emu {

// FORWARD / REVERSE: round robin from one synchronisation point to the next (a block's warps advance together);
// RANDOM: the next fiber at random; GREEDY / GREEDY_REV: the lowest- / highest-numbered fiber that can run, so the
// first / last warp runs ahead to the next barrier before the others start (races between barrier-separated phases).
enum Order { FORWARD = 0, REVERSE = 1, RANDOM = 2, GREEDY = 3, GREEDY_REV = 4 };
extern int g_mode;  // fiber and block order
extern std::mt19937 g_rng;
extern long g_errors;  // emulation-detected errors (UB in the kernel)
extern bool g_limits_checked;  // the caller checks shared-memory limits itself (backend/emu_runtime.cpp)
extern std::vector<std::string> g_notes;
void note(const char *fmt, ...);

struct Fiber {
    ucontext_t ctx;
    char *stack;
    bool done;
    uint3 tid;
    int blk = 0, lt = 0;      // its block (rank in the group) and linear thread index in the block
    void *fake = nullptr;     // ASan fake stack
    int wait_kind = 0, wait_line = 0;  // 1 barrier, 2 warp op, 3 cluster barrier (deadlock reports, greedy schedules)
    unsigned wait_mask = 0;
    unsigned long wait_seq = 0;  // the barrier generation / warp exchange count the fiber waits to see change
    bool cl_arrived = false;     // cluster barrier_arrive'd, not yet barrier_wait'ed, in generation cl_gen
    unsigned long cl_gen = 0;
};

struct Pending {  // one warp exchange being gathered
    int op, line;
    unsigned mask, arrived;
    uint64_t slot[32];
};

struct WarpState {
    std::vector<Pending> pend;
    unsigned long done_seq[32];
    uint64_t snap[32][32];  // each lane's copy of its last completed exchange
};

struct Block {  // one thread block: its barrier, warps and dynamic shared memory
    int n = 0, live = 0;
    int bar_count = 0, bar_line = 0;
    unsigned bar_gen = 0;
    WarpState warps[32];
    uint3 idx{};         // blockIdx
    unsigned rank = 0;   // in its cluster
    size_t smem = 0;
    unsigned char *dyn = nullptr;  // exactly the launch's dynamic shared memory (ASan sees overruns)
};

struct Group {  // the blocks that run together: a cluster (one block outside a cluster launch)
    int n = 0, cur = 0, live = 0;  // threads of all its blocks; block r's thread t is f[r * threads + t]
    unsigned nb = 0;                // blocks
    std::vector<Fiber> f;
    std::vector<Block> b;           // b[0 .. nb - 1]
    ucontext_t main_ctx;
    void *main_fake = nullptr;
    long stall = 0;
    const std::function<void()> *body = nullptr;
    int cbar_count = 0, cbar_line = 0, cbar_gone = 0;  // cluster barrier: arrivals, of which exited since arriving
    unsigned long cbar_gen = 0;
};
extern Block *g_blk;  // the running fiber's block
extern Group *g_grp;

inline int linear_tid() { return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z); }

void yield_();
void progress();

inline void *dyn_smem() { return g_blk->dyn; }

void syncthreads(int line);

// op codes for the warp exchange
enum { OP_SHFL = 1, OP_XOR, OP_UP, OP_DOWN, OP_BALLOT, OP_ANY, OP_ALL, OP_MATCH, OP_SYNCWARP };

// Deposits `bits`, waits for every lane of `mask`, returns a pointer to the 32 slots of this exchange.
const uint64_t *warp_exchange(unsigned mask, uint64_t bits, int op, int line);

// A launch: grid.x / cluster_x * grid.y * grid.z clusters of cluster_x consecutive blocks in x (launch: clusters of
// one block). A bad configuration is a note and an error; nothing runs.
void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
void launch_cluster(dim3 grid, dim3 block, size_t smem, unsigned cluster_x, const std::function<void()> &body);

// The cluster barrier (cooperative_groups::cluster_group): sync = arrive + wait.
void cluster_arrive(int line);
void cluster_wait(int line);
// p in the calling block's dynamic shared memory -> the same offset in block `rank` of the cluster (a bad rank or an
// address outside that memory: note, error, p returned).
void *map_shared(const void *p, unsigned rank, int line);
// The rank of the block whose dynamic shared memory holds p (none: note, error, 0).
unsigned shared_rank(const void *p, int line);
// Evaluated by each __shared__ declaration: an error inside a cluster of more than one block.
bool static_shared(int line);

template <typename T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of > 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T> inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

// PTX shfl.sync semantics (width = 32 - c's segment): returns the source lane, or -1 when the lane keeps its own
// value.
inline int shfl_src(int op, int lane, int arg, int width) {
    int seg = lane & ~(width - 1), in = lane & (width - 1);
    switch (op) {
    case OP_SHFL: return seg + (arg & (width - 1));
    case OP_XOR: {
        int j = lane ^ arg;
        return ((j & ~(width - 1)) == seg && j < 32) ? j : -1;
    }
    case OP_UP: return in >= arg ? lane - arg : -1;
    case OP_DOWN: return in + arg < width ? lane + arg : -1;
    }
    return -1;
}

template <typename T> inline T shfl_generic(int line, unsigned mask, T v, int op, int arg, int width) {
    if (width <= 0 || width > 32 || (width & (width - 1))) {
        note("shuffle width %d invalid", width);
        g_errors++;
    }
    const uint64_t *s = warp_exchange(mask, to_bits(v), op, line);
    int lane = linear_tid() & 31, src = shfl_src(op, lane, arg, width);
    if (src < 0) return v;
    if (!(mask >> src & 1)) {
        note("shuffle op %d: lane %d reads lane %d outside mask %08x", op, lane, src, mask);
        g_errors++;
        return v;
    }
    return from_bits<T>(s[src]);
}

}  // namespace emu

// --------------------------------------------------------------------------------------------- CUDA device API
#define __syncthreads() emu::syncthreads(__LINE__)
#define __syncwarp(...) emu_syncwarp(__LINE__, ##__VA_ARGS__)
#define __shfl_sync(...) emu_shfl_sync(__LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) emu_shfl_xor_sync(__LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) emu_shfl_up_sync(__LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) emu_shfl_down_sync(__LINE__, __VA_ARGS__)
#define __ballot_sync(...) emu_ballot_sync(__LINE__, __VA_ARGS__)
#define __any_sync(...) (emu_ballot_sync(__LINE__, __VA_ARGS__) != 0)
#define __all_sync(m, p) (emu_ballot_sync(__LINE__, (m), (p)) == (unsigned)(m))
#define __match_any_sync(...) emu_match_any_sync(__LINE__, __VA_ARGS__)
inline void emu_syncwarp(int line, unsigned mask = 0xffffffffu) { emu::warp_exchange(mask, 0, emu::OP_SYNCWARP, line); }
template <typename T> inline T emu_shfl_sync(int line, unsigned mask, T v, int src, int width = 32) {
    return emu::shfl_generic(line, mask, v, emu::OP_SHFL, src, width);
}
template <typename T> inline T emu_shfl_xor_sync(int line, unsigned mask, T v, int lm, int width = 32) {
    return emu::shfl_generic(line, mask, v, emu::OP_XOR, lm, width);
}
template <typename T> inline T emu_shfl_up_sync(int line, unsigned mask, T v, unsigned d, int width = 32) {
    return emu::shfl_generic(line, mask, v, emu::OP_UP, (int)d, width);
}
template <typename T> inline T emu_shfl_down_sync(int line, unsigned mask, T v, unsigned d, int width = 32) {
    return emu::shfl_generic(line, mask, v, emu::OP_DOWN, (int)d, width);
}
inline unsigned emu_ballot_sync(int line, unsigned mask, int pred) {
    const uint64_t *s = emu::warp_exchange(mask, pred != 0, emu::OP_BALLOT, line);
    unsigned r = 0;
    for (int i = 0; i < 32; i++)
        if ((mask >> i & 1) && s[i]) r |= 1u << i;
    return r;
}
template <typename T> inline unsigned emu_match_any_sync(int line, unsigned mask, T v) {
    const uint64_t *s = emu::warp_exchange(mask, emu::to_bits(v), emu::OP_MATCH, line);
    uint64_t me = emu::to_bits(v);
    unsigned r = 0;
    for (int i = 0; i < 32; i++)
        if ((mask >> i & 1) && s[i] == me) r |= 1u << i;
    return r;
}
// Atomics: a fiber runs uninterrupted between synchronisation points and blocks run one after another, so a plain
// read-modify-write is atomic here. Returns the old value, as CUDA's.
template <typename T> inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }
template <typename T> inline T atomicMin(T *p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <typename T> inline T atomicMax(T *p, T v) { T o = *p; *p = v > o ? v : o; return o; }
template <typename T> inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }
template <typename T> inline T atomicAnd(T *p, T v) { T o = *p; *p = o & v; return o; }
template <typename T> inline T atomicExch(T *p, T v) { T o = *p; *p = v; return o; }
template <typename T> inline T atomicCAS(T *p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <typename T> inline T __ldg(const T *p) { return *p; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
inline int __clz(unsigned x) { return x ? __builtin_clz(x) : 32; }

// IEEE-rounded float intrinsics: exact host equivalents; the asm barrier keeps g++ from contracting a * b + c into an
// fma across inlined calls (the _rn intrinsics are never contracted by nvcc).
#define EMU_OPAQUE(r) asm("" : "+x"(r))
inline float __fadd_rn(float a, float b) { float r = a + b; EMU_OPAQUE(r); return r; }
inline float __fsub_rn(float a, float b) { float r = a - b; EMU_OPAQUE(r); return r; }
inline float __fmul_rn(float a, float b) { float r = a * b; EMU_OPAQUE(r); return r; }
inline float __fdiv_rn(float a, float b) { float r = a / b; EMU_OPAQUE(r); return r; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __frcp_rn(float a) { float r = 1.f / a; EMU_OPAQUE(r); return r; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { double r = a + b; EMU_OPAQUE(r); return r; }
inline double __dmul_rn(double a, double b) { double r = a * b; EMU_OPAQUE(r); return r; }
// Approximate GPU intrinsics (results differ from the GPU's within their documented error: compare with a tolerance).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x != x ? 0.f : x < 0.f ? 0.f : x > 1.f ? 1.f : x; }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }

// ------------------------------------------------------------------------- cooperative_groups (clusters, blocks)
// What <cooperative_groups.h> gives the kernels (gen_backend.py / extract.py blank that include). Outside a cluster
// launch this_cluster() is a cluster of one block, as on the GPU. Member calls take the caller's line for the notes.
namespace cooperative_groups {

struct thread_block {
    void sync(int line = __builtin_LINE()) const { emu::syncthreads(line); }
    unsigned thread_rank() const { return (unsigned)emu::linear_tid(); }
    unsigned num_threads() const { return blockDim.x * blockDim.y * blockDim.z; }
    unsigned size() const { return num_threads(); }
    dim3 group_index() const { return dim3(blockIdx.x, blockIdx.y, blockIdx.z); }
    dim3 thread_index() const { return dim3(threadIdx.x, threadIdx.y, threadIdx.z); }
    dim3 group_dim() const { return blockDim; }
    dim3 dim_threads() const { return blockDim; }
};
inline thread_block this_thread_block() { return thread_block(); }

struct cluster_group {
    void sync(int line = __builtin_LINE()) const {
        emu::cluster_arrive(line);
        emu::cluster_wait(line);
    }
    void barrier_arrive(int line = __builtin_LINE()) const { emu::cluster_arrive(line); }
    void barrier_wait(int line = __builtin_LINE()) const { emu::cluster_wait(line); }
    unsigned block_rank() const { return emu::g_blk->rank; }
    unsigned num_blocks() const { return emu::g_grp->nb; }
    dim3 block_index() const { return dim3(block_rank(), 0, 0); }
    dim3 dim_blocks() const { return dim3(num_blocks(), 1, 1); }
    unsigned thread_rank() const { return block_rank() * (unsigned)emu::g_blk->n + (unsigned)emu::linear_tid(); }
    unsigned num_threads() const { return num_blocks() * (unsigned)emu::g_blk->n; }
    unsigned size() const { return num_threads(); }
    bool is_valid() const { return true; }
    unsigned query_shared_rank(const void *p, int line = __builtin_LINE()) const { return emu::shared_rank(p, line); }
    template <typename T> T *map_shared_rank(T *p, unsigned rank, int line = __builtin_LINE()) const {
        return (T *)emu::map_shared((const void *)p, rank, line);
    }
    template <typename T> T &map_shared_rank(T &r, unsigned rank, int line = __builtin_LINE()) const {
        return *(T *)emu::map_shared((const void *)&r, rank, line);
    }
};
inline cluster_group this_cluster() { return cluster_group(); }
template <typename G> inline void sync(const G &g, int line = __builtin_LINE()) { g.sync(line); }

}  // namespace cooperative_groups
