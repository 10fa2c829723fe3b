// Checks of the emulator itself: lane semantics of the warp intrinsics, barriers, and that it reports what it claims
// to report (races as schedule dependence, deadlocks, divergent barriers).
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
    printf("selftest: %s (%d failures)\n", fails ? "FAIL" : "ok", fails);
    return fails != 0;
}
