// Checks of the emulator itself: lane semantics of the warp intrinsics, barriers, thread-block clusters, and that it
// reports what it claims to report (races as schedule dependence, deadlocks, divergent barriers, cluster misuse).
#include <sys/wait.h>
#include <unistd.h>

#include "emu_cuda.h"

static int fails = 0;
#define CHECK(c, ...)                                  \
    do {                                               \
        if (!(c)) {                                    \
            fails++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                       \
            printf("\n");                              \
        }                                              \
    } while (0)

__global__ void k_shfl(int *out) {
    int t = threadIdx.x, lane = t & 31;
    int *o = out + t * 16;
    o[0] = __shfl_xor_sync(0xffffffffu, t * 10, 5);
    o[1] = __shfl_down_sync(0xffffffffu, t * 10, 3);
    o[2] = __shfl_up_sync(0xffffffffu, t * 10, 2);
    o[3] = __shfl_sync(0xffffffffu, t * 10, 7);
    o[4] = __shfl_sync(0xffffffffu, t * 10, lane + 1, 8);  // segments of 8
    o[5] = __shfl_down_sync(0xffffffffu, t * 10, 3, 8);
    o[6] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
    o[7] = __any_sync(0xffffffffu, lane == 31);
    o[8] = __all_sync(0xffffffffu, lane < 31);
    o[9] = (int)__match_any_sync(0xffffffffu, lane / 4);
    double d = __shfl_xor_sync(0xffffffffu, (double)t + 0.25, 1);
    o[10] = (int)(d * 4);
    if (lane < 16) o[11] = __shfl_xor_sync(0x0000ffffu, t, 8);  // partial mask
    else o[11] = -1;
    float v = (float)lane;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    o[12] = (int)v;
}

__global__ void k_block(int *out) {
    __shared__ int sh[256];
    sh[threadIdx.x] = threadIdx.x + 1000 * blockIdx.x;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = sh[(threadIdx.x + 1) % blockDim.x];
}

__global__ void k_race(int *out) {  // no barrier between the write and the read of a neighbour's slot
    __shared__ int sh[64];
    sh[threadIdx.x] = threadIdx.x;
    __syncwarp();  // only the warp is synchronised: the neighbour in the other warp may not have written yet
    out[threadIdx.x] = sh[(threadIdx.x + 32) % 64];
    __syncthreads();
    sh[threadIdx.x] = -1;
}

__global__ void k_early_exit(float *out) {  // lanes >= 16 leave, then a full-mask shuffle: deadlock on a GPU
    if ((threadIdx.x & 31) >= 16) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

__global__ void k_divergent_bar(int *out) {
    if (threadIdx.x < 32) __syncthreads();
    else __syncthreads();
    out[threadIdx.x] = 1;
}

__global__ void k_dyn(float *out) {
    float *dyn = (float *)emu::dyn_smem();  // extract.py's rewrite of extern __shared__ float dyn[];
    if (threadIdx.x < 4) dyn[threadIdx.x] = 1.f;
    __syncthreads();
    out[threadIdx.x] = dyn[threadIdx.x];  // threads >= 4 read unwritten shared memory
}

// Two phases: warp sums by shuffles, written to shared memory, then read by the next warp; SYNC = false drops the
// barrier between them (the race only the greedy schedules are sure to show: round robin lets every warp finish
// phase 1 first).
template <bool SYNC> __global__ void k_phases(int *out) {
    int *a = (int *)emu::dyn_smem();  // 0xFF bytes: -1 until written
    int t = threadIdx.x, v = t;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    a[t] = v;
    if (SYNC) __syncthreads();
    out[t] = a[(t + 32) % blockDim.x];
}

// ---------------------------------------------------------------------------------------------------- clusters
namespace cg = cooperative_groups;

// Each block writes values of its own to its dynamic shared memory; each thread sums the same slot of the other
// blocks of its cluster through map_shared_rank. SYNC: the cluster barrier between the writes and the remote reads;
// FINAL: the one that keeps every block alive until the others have read its memory.
template <bool SYNC, bool FINAL> __global__ void k_cluster_sum(float *out) {
    cg::cluster_group cl = cg::this_cluster();
    float *a = (float *)emu::dyn_smem();
    unsigned t = threadIdx.x, q = cl.block_rank(), n = cl.num_blocks();
    a[t] = (float)(blockIdx.x * 1000 + t);
    if (SYNC) cl.sync();
    float s = 0;
    for (unsigned r = 1; r < n; r++) s += cl.map_shared_rank(a, (q + r) % n)[t];
    out[blockIdx.x * blockDim.x + t] = s;
    if (FINAL) cl.sync();
}

// blockIdx, threadIdx and the rank as seen after each kind of synchronisation point (5 records per thread)
__global__ void k_cluster_idx(int *out) {
    cg::cluster_group cl = cg::this_cluster();
    int slot = ((blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
    auto rec = [&](int k) {
        out[slot * 5 + k] = (int)(blockIdx.x + 100 * blockIdx.y + 10000 * blockIdx.z + 100000 * cl.block_rank() +
                                  1000000 * threadIdx.x);
    };
    rec(0);
    __syncthreads();
    rec(1);
    cl.sync();
    rec(2);
    (void)__shfl_xor_sync(0xffffffffu, 1, 1);
    rec(3);
    cl.barrier_arrive();
    cl.barrier_wait();
    rec(4);
}

// __syncthreads in a cluster is its block's barrier: block q passes q + 1 pairs of them (and block 0 one more, at
// another line) while the others are elsewhere; each step reads a neighbour's slot of the block's own shared memory.
__global__ void k_cluster_bar(int *out) {
    cg::cluster_group cl = cg::this_cluster();
    int *a = (int *)emu::dyn_smem();
    unsigned t = threadIdx.x, q = cl.block_rank();
    int v = (int)t;
    for (unsigned i = 0; i <= q; i++) {
        a[t] = v;
        __syncthreads();
        v = a[(t + 1) % blockDim.x] + 1;
        __syncthreads();
    }
    if (q == 0) __syncthreads();
    out[blockIdx.x * blockDim.x + t] = v;
    cl.sync();
}

// What the emulator must report in a cluster (KIND): 0 a stack address mapped, 1 a rank outside the cluster, 2 a
// static __shared__ array, 3 block 1 exits while the others wait at cl.sync(), 4 a deadlock (thread 0 of block 1
// waits at the cluster barrier, the rest of its block at __syncthreads)
__global__ void k_cluster_bad(int kind, int *out) {
    cg::cluster_group cl = cg::this_cluster();
    int *a = (int *)emu::dyn_smem();
    int x = 1;
    if (kind == 0) out[threadIdx.x] = *cl.map_shared_rank(&x, 1);
    if (kind == 1) out[threadIdx.x] = *cl.map_shared_rank(a, cl.num_blocks());
    if (kind == 2) {
        __shared__ int st[64];
        st[threadIdx.x] = 1;
        out[threadIdx.x] = st[threadIdx.x];
    }
    if (kind == 3 && cl.block_rank() == 1) return;
    if (kind == 4 && cl.block_rank() == 1) {
        if (threadIdx.x == 0) cl.sync();
        else __syncthreads();
    }
    cl.sync();
}

// Outside a cluster launch: a cluster of one block
__global__ void k_cluster_one(int *out) {
    cg::cluster_group cl = cg::this_cluster();
    int *a = (int *)emu::dyn_smem();
    a[threadIdx.x] = (int)threadIdx.x;
    cl.sync();
    out[threadIdx.x] = (int)(cl.num_blocks() * 1000 + cl.block_rank() * 100) +
                       (cl.map_shared_rank(a, 0) == a ? cl.map_shared_rank(a, 0)[(threadIdx.x + 1) % 32] : -1000);
}

static const char *mode_name(int m) {
    static const char *n[] = {"forward", "reverse", "random", "greedy", "greedy_rev"};
    return n[m];
}

int main() {
    for (int mode : {emu::FORWARD, emu::REVERSE, emu::RANDOM, emu::GREEDY, emu::GREEDY_REV}) {
        emu::g_mode = mode;
        std::vector<int> o(64 * 16, 0);
        emu::launch(dim3(1), dim3(64), 0, [&] { k_shfl(o.data()); });
        for (int t = 0; t < 64; t++) {
            int lane = t & 31, w = t & ~31;
            int *r = &o[t * 16];
            CHECK(r[0] == (w + (lane ^ 5)) * 10, "xor t%d %d", t, r[0]);
            CHECK(r[1] == (lane + 3 < 32 ? t + 3 : t) * 10, "down t%d %d", t, r[1]);
            CHECK(r[2] == (lane >= 2 ? t - 2 : t) * 10, "up t%d %d", t, r[2]);
            CHECK(r[3] == (w + 7) * 10, "idx t%d", t);
            CHECK(r[4] == (w + (lane & ~7) + ((lane + 1) & 7)) * 10, "idx w8 t%d %d", t, r[4]);
            CHECK(r[5] == ((lane & 7) + 3 < 8 ? t + 3 : t) * 10, "down w8 t%d %d", t, r[5]);
            unsigned bal = 0;
            for (int i = 0; i < 32; i++) bal |= (i % 3 == 0) << i;
            CHECK((unsigned)r[6] == bal, "ballot");
            CHECK(r[7] == 1 && r[8] == 0, "any/all");
            CHECK((unsigned)r[9] == (0xfu << (lane / 4 * 4)), "match t%d %08x", t, r[9]);
            CHECK(r[10] == ((t ^ 1) * 4 + 1), "double t%d %d", t, r[10]);
            CHECK(r[11] == (lane < 16 ? (w + (lane ^ 8)) : -1), "partial t%d %d", t, r[11]);
            CHECK(r[12] == 496, "butterfly sum");
        }
        std::vector<int> b(3 * 256);
        emu::launch(dim3(3), dim3(256), 0, [&] { k_block(b.data()); });
        for (int i = 0; i < 3 * 256; i++) CHECK(b[i] == (i % 256 + 1) % 256 + 1000 * (i / 256), "block %d", i);
        std::vector<int> ph(128);
        emu::launch(dim3(1), dim3(128), 128 * 4, [&] { k_phases<true>(ph.data()); });
        for (int t = 0; t < 128; t++) CHECK(ph[t] == ((t + 32) % 128 / 32) * 1024 + 496, "phases t%d %d", t, ph[t]);
    }
    CHECK(emu::g_errors == 0, "errors on correct kernels: %ld", emu::g_errors);

    // a race shows as schedule dependence
    std::vector<int> r1(64), r2(64);
    emu::g_mode = emu::FORWARD;
    emu::launch(dim3(1), dim3(64), 0, [&] { k_race(r1.data()); });
    emu::g_mode = emu::REVERSE;
    emu::launch(dim3(1), dim3(64), 0, [&] { k_race(r2.data()); });
    CHECK(r1 != r2, "race not visible");
    printf("race: forward out[0] = %d, reverse out[0] = %d (schedule dependent: %s)\n", r1[0], r2[0],
           r1 != r2 ? "yes" : "no");

    // a missing barrier between two phases: the greedy schedules run the first / last warp through both phases
    // before the others start
    for (int mode : {emu::GREEDY, emu::GREEDY_REV}) {
        emu::g_mode = mode;
        std::vector<int> ph(128);
        emu::launch(dim3(1), dim3(128), 128 * 4, [&] { k_phases<false>(ph.data()); });
        int stale = 0;
        for (int t = 0; t < 128; t++) stale += ph[t] == -1;
        CHECK(stale >= 32, "greedy schedule %d: missing barrier not visible", mode);
        printf("missing barrier between phases, schedule %s: %d of 128 threads read unwritten shared memory\n",
               mode == emu::GREEDY ? "greedy" : "greedy-reverse", stale);
    }

    // unwritten dynamic shared memory reads NaN
    std::vector<float> d(64);
    emu::launch(dim3(1), dim3(64), 64 * 4, [&] { k_dyn(d.data()); });
    CHECK(d[0] == 1.f && d[10] != d[10], "dyn smem poison");

    long e0 = emu::g_errors;
    std::vector<int> dv(64);
    emu::launch(dim3(1), dim3(64), 0, [&] { k_divergent_bar(dv.data()); });
    CHECK(emu::g_errors > e0, "divergent barrier not reported");


    // clusters: 2 clusters of 4 blocks of 64 threads
    const int CB = 8, CT = 64;
    std::vector<float> want(CB * CT);
    for (int b = 0; b < CB; b++)
        for (int t = 0; t < CT; t++) {
            float s = 0;
            for (int r = b / 4 * 4; r < b / 4 * 4 + 4; r++)
                if (r != b) s += (float)(r * 1000 + t);
            want[b * CT + t] = s;
        }
    int nosync_seen = 0, noexit_seen = 0;
    long ec = emu::g_errors;
    for (int mode : {emu::FORWARD, emu::REVERSE, emu::RANDOM, emu::GREEDY, emu::GREEDY_REV}) {
        emu::g_mode = mode;
        std::vector<float> o(CB * CT, -7.f), o2(CB * CT, -7.f), o3(CB * CT, -7.f);
        emu::launch_cluster(dim3(CB), dim3(CT), CT * 4, 4, [&] { k_cluster_sum<true, true>(o.data()); });
        CHECK(o == want, "cluster sum, schedule %s: block 0 thread 0 %g (want %g)", mode_name(mode), o[0], want[0]);
        // (b) no barrier between the writes and the remote reads
        emu::launch_cluster(dim3(CB), dim3(CT), CT * 4, 4, [&] { k_cluster_sum<false, true>(o2.data()); });
        int bad2 = 0, bad3 = 0;
        for (int i = 0; i < CB * CT; i++) bad2 += !(o2[i] == want[i]);
        // (c) no barrier before the exit: a block may exit while the others still read its memory
        emu::launch_cluster(dim3(CB), dim3(CT), CT * 4, 4, [&] { k_cluster_sum<true, false>(o3.data()); });
        for (int i = 0; i < CB * CT; i++) bad3 += o3[i] != o3[i];
        printf("cluster, schedule %s: no barrier before the remote reads: %d of %d sums wrong; none before the exit: "
               "%d NaN\n", mode_name(mode), bad2, CB * CT, bad3);
        nosync_seen += bad2 > 0, noexit_seen += bad3 > 0;
        // (d) blockIdx / threadIdx / rank in every fiber after every kind of switch; grid (8, 2, 2) in clusters of 4
        std::vector<int> id(8 * 2 * 2 * CT * 5, -1);
        emu::launch_cluster(dim3(8, 2, 2), dim3(CT), 0, 4, [&] { k_cluster_idx(id.data()); });
        int badid = 0;
        for (int slot = 0; slot < 32 * CT; slot++) {
            int t = slot % CT, bl = slot / CT, x = bl % 8, y = bl / 8 % 2, z = bl / 16;
            for (int k = 0; k < 5; k++) badid += id[slot * 5 + k] != x + 100 * y + 10000 * z + 100000 * (x % 4) + 1000000 * t;
        }
        CHECK(badid == 0, "cluster blockIdx, schedule %s: %d records wrong", mode_name(mode), badid);
        // (f) __syncthreads synchronises the block only
        std::vector<int> bo(CB * CT, -7);
        emu::launch_cluster(dim3(CB), dim3(CT), CT * 4, 4, [&] { k_cluster_bar(bo.data()); });
        int badbar = 0;
        for (int i = 0; i < CB * CT; i++) {
            int t = i % CT, q = i / CT % 4;
            badbar += bo[i] != (t + q + 1) % CT + q + 1;
        }
        CHECK(badbar == 0, "cluster __syncthreads, schedule %s: %d wrong", mode_name(mode), badbar);
        std::vector<int> one(32, -7);
        emu::launch(dim3(1), dim3(32), 32 * 4, [&] { k_cluster_one(one.data()); });
        for (int t = 0; t < 32; t++) CHECK(one[t] == 1000 + (t + 1) % 32, "this_cluster outside a cluster t%d %d", t, one[t]);
    }
    CHECK(emu::g_errors == ec, "errors on correct cluster kernels: %ld", emu::g_errors - ec);
    CHECK(nosync_seen > 0, "missing cluster barrier before the remote reads not visible under any schedule");
    CHECK(noexit_seen > 0, "reading an exited block's shared memory not visible under any schedule");

    // (e) bad cluster launches: reported, nothing runs
    for (unsigned cx : {4u, 0u, 17u}) {
        long e1 = emu::g_errors;
        std::vector<float> o(6 * CT, -7.f);
        emu::launch_cluster(dim3(6), dim3(CT), CT * 4, cx, [&] { k_cluster_sum<true, true>(o.data()); });
        CHECK(emu::g_errors > e1 && o[0] == -7.f, "bad cluster launch (grid 6, cluster %u) not reported", cx);
    }
    // misuse inside a cluster
    emu::g_mode = emu::FORWARD;
    for (int kind = 0; kind < 4; kind++) {
        long e1 = emu::g_errors;
        std::vector<int> o(2 * CT);
        emu::launch_cluster(dim3(2), dim3(CT), CT * 4, 2, [&] { k_cluster_bad(kind, o.data()); });
        CHECK(emu::g_errors > e1, "cluster misuse %d not reported", kind);
    }
    {
        long e1 = emu::g_errors;  // a static __shared__ array outside a cluster is fine
        std::vector<int> o(CT);
        emu::launch(dim3(2), dim3(CT), CT * 4, [&] { k_cluster_bad(2, o.data()); });
        CHECK(emu::g_errors == e1, "static __shared__ outside a cluster reported");
    }

    // deadlock: in a child process (the emulator aborts)
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        std::vector<float> x(64);
        emu::launch(dim3(1), dim3(64), 0, [&] { k_early_exit(x.data()); });
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "deadlock not detected");
    printf("deadlock on a shuffle naming exited lanes: %s\n", WIFSIGNALED(st) ? "detected (abort)" : "missed");
    pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        std::vector<int> x(2 * 64);
        emu::launch_cluster(dim3(2), dim3(64), 64 * 4, 2, [&] { k_cluster_bad(4, x.data()); });
        _exit(0);
    }
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "cluster deadlock not detected");
    printf("deadlock between a cluster barrier and __syncthreads: %s\n", WIFSIGNALED(st) ? "detected (abort)" : "missed");
    printf("selftest: %s (%d failures)\n", fails ? "FAIL" : "ok", fails);
    return fails != 0;
}
