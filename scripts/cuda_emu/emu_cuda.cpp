// The fiber scheduler behind emu_cuda.h.
#include "emu_cuda.h"

#include <pthread.h>

#include <cstdarg>
#include <set>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

namespace emu {

int g_mode = FORWARD;
std::mt19937 g_rng(12345);
long g_errors = 0;
std::vector<std::string> g_notes;
Block *g_blk = nullptr;
Group *g_grp = nullptr;
bool g_limits_checked = false;

static const size_t STACK = 256 * 1024;
static std::vector<char *> g_stacks;
static void *g_main_bottom = nullptr;
static size_t g_main_size = 0;

void note(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    std::string s(buf);
    if (std::find(g_notes.begin(), g_notes.end(), s) == g_notes.end() && g_notes.size() < 50) {
        g_notes.push_back(s);
        fprintf(stderr, "[emu] %s\n", buf);
    }
}

#ifdef __SANITIZE_ADDRESS__
#define ASAN_START(save, bottom, size) __sanitizer_start_switch_fiber((save), (bottom), (size))
#define ASAN_FINISH(save) __sanitizer_finish_switch_fiber((save), nullptr, nullptr)
#else
#define ASAN_START(save, bottom, size) (void)0
#define ASAN_FINISH(save) (void)0
#endif

// A fiber can run unless it waits for a barrier or a warp exchange that has not completed yet.
static bool ready(const Group &G, int i) {
    const Fiber &f = G.f[i];
    if (f.done) return false;
    if (f.wait_kind == 1) return G.b[f.blk].bar_gen != f.wait_seq;
    if (f.wait_kind == 2) return G.b[f.blk].warps[f.lt >> 5].done_seq[f.lt & 31] != f.wait_seq;
    if (f.wait_kind == 3) return G.cbar_gen != f.wait_seq;
    return true;
}

static int pick_next(Group &G, int from) {
    int n = G.n;
    if (G.live == 0) return -1;
    if (g_mode == GREEDY || g_mode == GREEDY_REV) {
        for (int k = 0; k < n; k++) {
            int i = g_mode == GREEDY ? k : n - 1 - k;
            if (ready(G, i)) return i;
        }
        // nothing can run: fall through to round robin (the stall counter reports the deadlock)
    }
    if (g_mode != REVERSE && g_mode != RANDOM) {
        for (int k = 1; k <= n; k++) {
            int i = (from + k) % n;
            if (!G.f[i].done) return i;
        }
    } else if (g_mode == REVERSE) {
        for (int k = 1; k <= n; k++) {
            int i = ((from - k) % n + n) % n;
            if (!G.f[i].done) return i;
        }
    } else {
        int s = std::uniform_int_distribution<int>(0, n - 1)(g_rng);
        for (int k = 0; k < n; k++) {
            int i = (s + k) % n;
            if (!G.f[i].done) return i;
        }
    }
    return -1;
}

// Makes fiber i the running one: threadIdx, its block, and blockIdx in a cluster (a one-block group keeps the
// blockIdx its launch set: emu_shim_maps.h's sparse mode overrides it in the body).
static inline void enter(Group &G, int i) {
    const Fiber &f = G.f[i];
    G.cur = i;
    threadIdx = f.tid;
    g_blk = &G.b[f.blk];
    if (G.nb > 1) blockIdx = g_blk->idx;
}

static void switch_to(int nx) {
    Group &G = *g_grp;
    int me = G.cur;
    if (nx == me || nx < 0) return;
    enter(G, nx);
    ASAN_START(&G.f[me].fake, G.f[nx].stack, STACK);
    swapcontext(&G.f[me].ctx, &G.f[nx].ctx);
    ASAN_FINISH(G.f[me].fake);
}

static void deadlock() {
    Group &G = *g_grp;
    const Block &B0 = G.b[0];
    if (G.nb > 1)
        fprintf(stderr, "[emu] DEADLOCK in the cluster of blocks (%u..%u,%u,%u): no thread can progress\n", B0.idx.x,
                B0.idx.x + G.nb - 1, B0.idx.y, B0.idx.z);
    else
        fprintf(stderr, "[emu] DEADLOCK in block (%u,%u,%u): no thread can progress\n", B0.idx.x, B0.idx.y, B0.idx.z);
    static const char *what[] = {"running", "__syncthreads", "warp op", "cluster barrier"};
    std::vector<int> shown(G.nb);  // the first 65 live threads of a block, 16 of each block of a cluster
    for (int i = 0; i < G.n; i++) {
        const Fiber &f = G.f[i];
        if (f.done || shown[f.blk]++ > (G.nb > 1 ? 15 : 64)) continue;
        if (G.nb > 1) fprintf(stderr, "  block %d thread %d: %s at line %d mask %08x\n", f.blk, f.lt, what[f.wait_kind],
                              f.wait_line, f.wait_mask);
        else fprintf(stderr, "  thread %d: %s at line %d mask %08x\n", i, what[f.wait_kind], f.wait_line, f.wait_mask);
    }
    abort();
}

void progress() { g_grp->stall = 0; }

void yield_() {
    Group &G = *g_grp;
    long lim = (g_mode == RANDOM ? 64L : 4L) * G.n + 64;
    if (++G.stall > lim) deadlock();
    switch_to(pick_next(G, G.cur));
}

void syncthreads(int line) {
    Block &B = *g_blk;
    progress();
    if (B.live < B.n) {
        note("__syncthreads (line %d) reached with %d of %d threads exited", line, B.n - B.live, B.n);
        g_errors++;
    }
    if (B.bar_count == 0) B.bar_line = line;
    else if (B.bar_line != line) {
        note("__syncthreads divergence: lines %d and %d in one barrier", B.bar_line, line);
        g_errors++;
    }
    unsigned gen = B.bar_gen;
    Fiber &me = g_grp->f[g_grp->cur];
    if (++B.bar_count >= B.live) {
        B.bar_count = 0;
        B.bar_gen++;
        return;
    }
    me.wait_kind = 1, me.wait_line = line, me.wait_seq = gen;
    while (B.bar_gen == gen) yield_();
    g_grp->f[g_grp->cur].wait_kind = 0;
}

// The cluster barrier completes when every live thread of the group has arrived (threads that arrived and exited
// since count as arrived, as on the GPU).
static void cluster_release(Group &G) {
    if (G.cbar_count > 0 && G.cbar_count - G.cbar_gone >= G.live) {
        G.cbar_count = G.cbar_gone = 0;
        G.cbar_gen++;
    }
}

void cluster_arrive(int line) {
    Group &G = *g_grp;
    progress();
    Fiber &me = G.f[G.cur];
    if (me.cl_arrived) {
        note("cluster barrier_arrive (line %d) twice without barrier_wait", line);
        g_errors++;
        return;
    }
    int exited = G.n - G.live - G.cbar_gone;  // and did not arrive in this generation
    if (exited > 0) {
        note("cluster barrier (line %d) reached with %d of %d threads of the cluster exited", line, exited, G.n);
        g_errors++;
    }
    if (G.cbar_count == 0) G.cbar_line = line;
    else if (G.cbar_line != line) {
        note("cluster barrier divergence: lines %d and %d in one barrier", G.cbar_line, line);
        g_errors++;
    }
    me.cl_arrived = true, me.cl_gen = G.cbar_gen;
    G.cbar_count++;
    cluster_release(G);
}

void cluster_wait(int line) {
    Group &G = *g_grp;
    progress();
    Fiber &me = G.f[G.cur];
    if (!me.cl_arrived) {
        note("cluster barrier_wait (line %d) without barrier_arrive", line);
        g_errors++;
        return;
    }
    me.cl_arrived = false;
    if (G.cbar_gen != me.cl_gen) return;
    me.wait_kind = 3, me.wait_line = line, me.wait_seq = me.cl_gen;
    while (G.cbar_gen == me.cl_gen) yield_();
    G.f[G.cur].wait_kind = 0;
}

void *map_shared(const void *p, unsigned rank, int line) {
    Group &G = *g_grp;
    const Block &B = *g_blk;
    const unsigned char *q = (const unsigned char *)p;
    if (rank >= G.nb) {
        note("map_shared_rank (line %d): rank %u outside the cluster of %u blocks", line, rank, G.nb);
        g_errors++;
        return (void *)p;
    }
    if (q < B.dyn || q >= B.dyn + B.smem) {
        note("map_shared_rank (line %d): the address is not in the block's dynamic shared memory (%zu bytes; static "
             "__shared__ cannot be mapped here)", line, B.smem);
        g_errors++;
        return (void *)p;
    }
    return G.b[rank].dyn + (q - B.dyn);
}

unsigned shared_rank(const void *p, int line) {
    Group &G = *g_grp;
    const unsigned char *q = (const unsigned char *)p;
    for (unsigned r = 0; r < G.nb; r++)
        if (q >= G.b[r].dyn && q < G.b[r].dyn + G.b[r].smem) return r;
    note("query_shared_rank (line %d): the address is in no block's dynamic shared memory", line);
    g_errors++;
    return 0;
}

bool static_shared(int line) {
    if (g_grp && g_grp->nb > 1) {
        note("static __shared__ declaration (line %d) in a cluster of %u blocks: one copy serves all blocks here "
             "(use the dynamic shared memory)", line, g_grp->nb);
        g_errors++;
    }
    return true;
}

const uint64_t *warp_exchange(unsigned mask, uint64_t bits, int op, int line) {
    Block &B = *g_blk;
    progress();
    int t = linear_tid(), lane = t & 31, w = t >> 5;
    WarpState &W = B.warps[w];
    int in_warp = std::min(32, B.n - w * 32);
    unsigned exist = in_warp == 32 ? 0xffffffffu : ((1u << in_warp) - 1);
    if (!(mask >> lane & 1)) {
        note("warp op %d (line %d): lane %d calls with mask %08x that does not name it", op, line, lane, mask);
        g_errors++;
    }
    if (mask & ~exist) {
        note("warp op %d (line %d): mask %08x names lanes that do not exist", op, line, mask);
        g_errors++;
    }
    Pending *p = nullptr;
    for (auto &q : W.pend)
        if (q.op == op && q.mask == mask && !(q.arrived >> lane & 1)) {
            p = &q;
            break;
        }
    if (!p) {
        for (auto &q : W.pend)
            if (!(q.arrived >> lane & 1)) {
                note("warp ops pending together in warp %d: op %d mask %08x (line %d) and op %d mask %08x (line %d)", w,
                     q.op, q.mask, q.line, op, mask, line);
            }
        W.pend.push_back(Pending{op, line, mask, 0, {}});
        p = &W.pend.back();
    } else if (p->line != line) {
        note("warp op %d mask %08x joined from lines %d and %d", op, mask, p->line, line);
    }
    p->slot[lane] = bits;
    p->arrived |= 1u << lane;
    unsigned long seq = W.done_seq[lane];
    if ((p->arrived & mask) == (mask & exist)) {
        for (int i = 0; i < 32; i++)
            if (p->arrived >> i & 1) {
                memcpy(W.snap[i], p->slot, sizeof p->slot);
                W.done_seq[i]++;
            }
        W.pend.erase(W.pend.begin() + (p - W.pend.data()));
        return W.snap[lane];
    }
    Fiber &me = g_grp->f[g_grp->cur];
    me.wait_kind = 2, me.wait_line = line, me.wait_mask = mask, me.wait_seq = seq;
    while (W.done_seq[lane] == seq) yield_();
    g_grp->f[g_grp->cur].wait_kind = 0;
    return W.snap[lane];
}

static void fiber_entry() {
    Group &G = *g_grp;
    ASAN_FINISH(G.f[G.cur].fake);
    (*G.body)();
    Fiber &me = G.f[G.cur];
    Block &B = *g_blk;
    me.done = true;
    B.live--, G.live--;
    progress();
    if (B.bar_count > 0) {
        note("a thread exited while %d threads wait at __syncthreads (line %d)", B.bar_count, B.bar_line);
        g_errors++;
        if (B.bar_count >= B.live) {
            B.bar_count = 0;
            B.bar_gen++;
        }
    }
    if (me.cl_arrived && me.cl_gen == G.cbar_gen) G.cbar_gone++;  // arrived, exits without waiting: allowed
    else if (G.cbar_count > 0) {
        note("a thread exited while %d threads wait at the cluster barrier (line %d)", G.cbar_count, G.cbar_line);
        g_errors++;
        cluster_release(G);
    }
    // reading the shared memory of a block that has exited is undefined: here it then reads 0xFF bytes
    if (B.live == 0 && G.live > 0) memset(B.dyn, 0xFF, B.smem);
    // a pending warp op naming this lane can no longer complete: the deadlock detector reports it
    int nx = pick_next(G, G.cur);
    if (nx < 0) {
        ASAN_START(nullptr, g_main_bottom, g_main_size);
        setcontext(&G.main_ctx);
    }
    enter(G, nx);
    ASAN_START(nullptr, G.f[nx].stack, STACK);
    setcontext(&G.f[nx].ctx);
}

// Runs the blocks idx[0 .. nb - 1] as one group of fibers (a cluster; rank r is idx[r]).
static void run_group(Group &G, const std::function<void()> &body, dim3 block, size_t smem, const uint3 *idx,
                      unsigned nb) {
    int nt = block.x * block.y * block.z, n = nt * (int)nb;
    G.n = n, G.live = n, G.nb = nb, G.stall = 0;
    G.cbar_count = G.cbar_gone = 0, G.cbar_gen = 0;
    G.body = &body;
    G.f.assign(n, Fiber{});
    if (G.b.size() < nb) G.b.resize(nb);
    for (unsigned r = 0; r < nb; r++) {
        Block &B = G.b[r];
        B.n = nt, B.live = nt, B.bar_count = 0, B.bar_gen = 0;
        B.idx = idx[r], B.rank = r, B.smem = smem;
        for (auto &w : B.warps) {
            w.pend.clear();
            memset(w.done_seq, 0, sizeof w.done_seq);
        }
        free(B.dyn);
        B.dyn = (unsigned char *)malloc(smem ? smem : 1);
        memset(B.dyn, 0xFF, smem);  // NaN pattern: unwritten shared memory shows
    }
    while ((int)g_stacks.size() < n) g_stacks.push_back((char *)malloc(STACK));
    for (int i = 0; i < n; i++) {
        Fiber &f = G.f[i];
        int t = i % nt;
        f.done = false;
        f.blk = i / nt, f.lt = t;
        f.tid = uint3{(unsigned)(t % block.x), (unsigned)(t / block.x % block.y), (unsigned)(t / (block.x * block.y))};
        f.stack = g_stacks[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    int first = g_mode == RANDOM ? std::uniform_int_distribution<int>(0, n - 1)(g_rng)
                : g_mode == REVERSE || g_mode == GREEDY_REV ? n - 1 : 0;
    if (nb == 1) blockIdx = idx[0];
    enter(G, first);
    ASAN_START(&G.main_fake, G.f[first].stack, STACK);
    swapcontext(&G.main_ctx, &G.f[first].ctx);
    ASAN_FINISH(G.main_fake);
    bool bar = G.cbar_count != 0;
    for (unsigned r = 0; r < nb; r++) bar |= G.b[r].bar_count != 0;
    if (G.live != 0 || bar) {
        note("block ended with live threads");
        g_errors++;
    }
    for (unsigned r = 0; r < nb; r++)
        for (auto &w : G.b[r].warps)
            if (!w.pend.empty()) {
                note("block ended with a warp op still pending (op %d line %d)", w.pend[0].op, w.pend[0].line);
                g_errors++;
            }
}

// Fiber stacks are STACK bytes of address space each: a cluster's threads are bounded (16 blocks of 1024 threads).
static const long kClusterThreads = 16 * 1024;

void launch_cluster(dim3 grid, dim3 block, size_t smem, unsigned cluster_x, const std::function<void()> &body) {
    if (!g_main_bottom) {
        pthread_attr_t a;
        pthread_getattr_np(pthread_self(), &a);
        pthread_attr_getstack(&a, &g_main_bottom, &g_main_size);
        pthread_attr_destroy(&a);
    }
    long nt = (long)block.x * block.y * block.z;
    if (nt < 1 || nt > 1024 || block.z > 64) {
        note("launch: bad block (%u,%u,%u)", block.x, block.y, block.z);
        g_errors++;
        return;
    }
    if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.y > 65535 || grid.z > 65535) {
        note("launch: bad grid (%u,%u,%u)", grid.x, grid.y, grid.z);
        g_errors++;
        return;
    }
    if (cluster_x < 1 || cluster_x > 16 || grid.x % cluster_x || cluster_x * nt > kClusterThreads) {
        note("launch: clusters of %u blocks in a grid of %u blocks in x (1 to 16 blocks dividing grid.x, at most %ld "
             "threads)", cluster_x, grid.x, kClusterThreads);
        g_errors++;
        return;
    }
    if (smem > 48 * 1024 && !g_limits_checked) note("launch: %zu bytes of dynamic shared memory need cudaFuncSetAttribute", smem);
    static Group G;
    Block *saved = g_blk;
    Group *saved_grp = g_grp;
    g_grp = &G;
    gridDim = grid, blockDim = block;
    long ncx = grid.x / cluster_x, nc = ncx * grid.y * grid.z;
    std::vector<long> order(nc);
    for (long i = 0; i < nc; i++) order[i] = i;
    if (g_mode == REVERSE || g_mode == GREEDY_REV) std::reverse(order.begin(), order.end());
    if (g_mode == RANDOM) std::shuffle(order.begin(), order.end(), g_rng);
    uint3 idx[16];
    for (long ci : order) {
        unsigned x0 = (unsigned)(ci % ncx) * cluster_x, y = (unsigned)(ci / ncx % grid.y),
                 z = (unsigned)(ci / (ncx * grid.y));
        for (unsigned r = 0; r < cluster_x; r++) idx[r] = uint3{x0 + r, y, z};
        run_group(G, body, block, smem, idx, cluster_x);
    }
    g_blk = saved;
    g_grp = saved_grp;
}

void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    launch_cluster(grid, block, smem, 1, body);
}

}  // namespace emu
