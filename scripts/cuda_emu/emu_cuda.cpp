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
static bool ready(Block &B, int i) {
    const Fiber &f = B.f[i];
    if (f.done) return false;
    if (f.wait_kind == 1) return B.bar_gen != f.wait_seq;
    if (f.wait_kind == 2) return B.warps[i >> 5].done_seq[i & 31] != f.wait_seq;
    return true;
}

static int pick_next(Block &B, int from) {
    int n = B.n;
    if (B.live == 0) return -1;
    if (g_mode == GREEDY || g_mode == GREEDY_REV) {
        for (int k = 0; k < n; k++) {
            int i = g_mode == GREEDY ? k : n - 1 - k;
            if (ready(B, i)) return i;
        }
        // nothing can run: fall through to round robin (the stall counter reports the deadlock)
    }
    if (g_mode != REVERSE && g_mode != RANDOM) {
        for (int k = 1; k <= n; k++) {
            int i = (from + k) % n;
            if (!B.f[i].done) return i;
        }
    } else if (g_mode == REVERSE) {
        for (int k = 1; k <= n; k++) {
            int i = ((from - k) % n + n) % n;
            if (!B.f[i].done) return i;
        }
    } else {
        int s = std::uniform_int_distribution<int>(0, n - 1)(g_rng);
        for (int k = 0; k < n; k++) {
            int i = (s + k) % n;
            if (!B.f[i].done) return i;
        }
    }
    return -1;
}

static void switch_to(int nx) {
    Block &B = *g_blk;
    int me = B.cur;
    if (nx == me || nx < 0) return;
    B.cur = nx;
    threadIdx = B.f[nx].tid;
    ASAN_START(&B.f[me].fake, B.f[nx].stack, STACK);
    swapcontext(&B.f[me].ctx, &B.f[nx].ctx);
    ASAN_FINISH(B.f[me].fake);
}

static void deadlock() {
    Block &B = *g_blk;
    fprintf(stderr, "[emu] DEADLOCK in block (%u,%u,%u): no thread can progress\n", blockIdx.x, blockIdx.y,
            blockIdx.z);
    for (int i = 0; i < B.n; i++) {
        const Fiber &f = B.f[i];
        if (f.done) continue;
        fprintf(stderr, "  thread %d: %s at line %d mask %08x\n", i, f.wait_kind == 1 ? "__syncthreads" : "warp op",
                f.wait_line, f.wait_mask);
        if (i > 64) break;
    }
    abort();
}

void progress() { g_blk->stall = 0; }

void yield_() {
    Block &B = *g_blk;
    long lim = (g_mode == RANDOM ? 64L : 4L) * B.n + 64;
    if (++B.stall > lim) deadlock();
    switch_to(pick_next(B, B.cur));
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
    Fiber &me = B.f[B.cur];
    if (++B.bar_count >= B.live) {
        B.bar_count = 0;
        B.bar_gen++;
        return;
    }
    me.wait_kind = 1, me.wait_line = line, me.wait_seq = gen;
    while (B.bar_gen == gen) yield_();
    B.f[B.cur].wait_kind = 0;
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
    Fiber &me = B.f[B.cur];
    me.wait_kind = 2, me.wait_line = line, me.wait_mask = mask, me.wait_seq = seq;
    while (W.done_seq[lane] == seq) yield_();
    B.f[B.cur].wait_kind = 0;
    return W.snap[lane];
}

static void fiber_entry() {
    Block &B = *g_blk;
    ASAN_FINISH(B.f[B.cur].fake);
    (*B.body)();
    Fiber &me = B.f[B.cur];
    me.done = true;
    B.live--;
    progress();
    if (B.bar_count > 0) {
        note("a thread exited while %d threads wait at __syncthreads (line %d)", B.bar_count, B.bar_line);
        g_errors++;
        if (B.bar_count >= B.live) {
            B.bar_count = 0;
            B.bar_gen++;
        }
    }
    // a pending warp op naming this lane can no longer complete: the deadlock detector reports it
    int nx = pick_next(B, B.cur);
    if (nx < 0) {
        ASAN_START(nullptr, g_main_bottom, g_main_size);
        setcontext(&B.main_ctx);
    }
    B.cur = nx;
    threadIdx = B.f[nx].tid;
    ASAN_START(nullptr, B.f[nx].stack, STACK);
    setcontext(&B.f[nx].ctx);
}

static void run_block(Block &B, const std::function<void()> &body, dim3 block, size_t smem) {
    int n = block.x * block.y * block.z;
    B.n = n, B.live = n, B.bar_count = 0, B.bar_gen = 0, B.stall = 0;
    B.body = &body;
    B.f.assign(n, Fiber{});
    for (auto &w : B.warps) {
        w.pend.clear();
        memset(w.done_seq, 0, sizeof w.done_seq);
    }
    free(B.dyn);
    B.dyn = (unsigned char *)malloc(smem ? smem : 1);
    memset(B.dyn, 0xFF, smem);  // NaN pattern: unwritten shared memory shows
    while ((int)g_stacks.size() < n) g_stacks.push_back((char *)malloc(STACK));
    for (int i = 0; i < n; i++) {
        Fiber &f = B.f[i];
        f.done = false;
        f.tid = uint3{(unsigned)(i % block.x), (unsigned)(i / block.x % block.y), (unsigned)(i / (block.x * block.y))};
        f.stack = g_stacks[i];
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    int first = g_mode == RANDOM ? std::uniform_int_distribution<int>(0, n - 1)(g_rng)
                : g_mode == REVERSE || g_mode == GREEDY_REV ? n - 1 : 0;
    B.cur = first;
    threadIdx = B.f[first].tid;
    ASAN_START(&B.main_fake, B.f[first].stack, STACK);
    swapcontext(&B.main_ctx, &B.f[first].ctx);
    ASAN_FINISH(B.main_fake);
    if (B.live != 0 || B.bar_count) {
        note("block ended with live threads");
        g_errors++;
    }
    for (auto &w : B.warps)
        if (!w.pend.empty()) {
            note("block ended with a warp op still pending (op %d line %d)", w.pend[0].op, w.pend[0].line);
            g_errors++;
        }
}

void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
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
    if (smem > 48 * 1024 && !g_limits_checked) note("launch: %zu bytes of dynamic shared memory need cudaFuncSetAttribute", smem);
    static Block B;
    Block *saved = g_blk;
    g_blk = &B;
    gridDim = grid, blockDim = block;
    long nb = (long)grid.x * grid.y * grid.z;
    std::vector<long> order(nb);
    for (long i = 0; i < nb; i++) order[i] = i;
    if (g_mode == REVERSE || g_mode == GREEDY_REV) std::reverse(order.begin(), order.end());
    if (g_mode == RANDOM) std::shuffle(order.begin(), order.end(), g_rng);
    for (long bi : order) {
        blockIdx = uint3{(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y), (unsigned)(bi / ((long)grid.x * grid.y))};
        run_block(B, body, block, smem);
    }
    g_blk = saved;
}

}  // namespace emu
