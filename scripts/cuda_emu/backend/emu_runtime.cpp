// The CUDA runtime API the backend calls, on the CPU: one emulated device (an H100's properties), device memory in
// host memory (tracked, so operands can be range-checked; filled with 0xFF bytes, NaN as float, so reads of
// memory nobody wrote show), streams that queue their work and run it as late as the program allows (see "Streams"
// below), stream capture into graphs that replay the recorded work, events on the host clock, and the error model of
// the real runtime: launch errors reported by cudaGetLastError, a sticky error after a kernel the emulator caught
// misbehaving, and captures invalidated by what a capture forbids (synchronising, allocating, pageable host copies).
//
// Streams (ARGEN_EMU_STREAMS=lazy, the default): the work issued to a stream the program created (kernels, copies,
// memsets, library calls, event records, graph launches) is queued, in issue order, and runs only when something
// needs it done: cudaStreamSynchronize, cudaEventSynchronize (up to the event's record), a stream that reaches a
// cudaStreamWaitEvent node (the other stream up to the event's record, at that point of the waiting stream, not
// before), and the calls that synchronise the device (cudaFree, cudaFreeHost, cudaStreamDestroy). So a stream's work
// runs as late as the GPU would be allowed to run it, and what the program failed to order shows: a stream that
// reads what another stream writes without waiting on its event reads the old bytes, the host that reads a
// download's buffer without a sync reads the old bytes, an upload whose source the host changes before the copy ran
// copies the new ones. ARGEN_EMU_STREAMS=eager runs every stream's work at once, in issue order (the order between
// streams is then the host's). ARGEN_EMU_STREAMS=mixed runs the work of the first, third, ... stream created at once
// and queues the others': a backend's main stream then runs its work at the call and its side stream as late as it
// may, so a main-stream kernel that reads a side upload without the join reads the old bytes whatever the host
// synchronises later (under lazy, a host that waits for the side stream first hides that). The legacy stream (0)
// always runs its work at once.
//
// Environment: ARGEN_EMU_SCHEDULE = forward (default) | reverse | random | greedy | greedy_rev (the order of blocks
// and of threads inside a block, see ../emu_cuda.h), ARGEN_EMU_SEED (random schedule), ARGEN_EMU_DEVICES (0 hides the
// device, as on a machine without a GPU), ARGEN_EMU_STATS=1 (at exit, print the counts below to stderr: what ran
// eagerly, what was captured, what graph replays ran).
#include "emu_prelude.h"

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <set>

struct Node {
    std::function<void()> work;
    const char *what;
};
struct CUstream_st {
    bool capturing = false;
    bool invalidated = false;   // something forbidden happened during the capture
    struct CUgraph_st *graph = nullptr;
    uint64_t id = 0;            // never reused: queued waits name their stream by it (0: the legacy stream)
    bool lazy = false;          // queues its work (ARGEN_EMU_STREAMS=lazy)
    std::deque<Node> pending;   // lazy: issued, not yet run, in issue order
    uint64_t issued = 0, done = 0;  // lazy: work items issued to the queue / taken from it to run
};
struct CUgraph_st {
    std::vector<Node> nodes;
};
struct CUgraphExec_st {
    std::shared_ptr<const std::vector<Node>> nodes;  // shared with queued launches: destroying the exec is legal then
};
struct CUevent_st {
    double t = 0;
    bool recorded = false;      // its (last) record has run
    uint64_t stream_id = 0;     // lazy: the stream of the last record outside capture, and how much of that stream's
    uint64_t upto = 0;          // queue must run for the record to have run
};

namespace {

const size_t kTotalMem = 80ull << 30;
const int kSmemOptin = 232448;  // H100: 227 KiB of dynamic shared memory per block after cudaFuncSetAttribute

std::map<uintptr_t, size_t> g_dev;     // live device allocations: start -> bytes
std::set<const void *> g_pinned;       // cudaMallocHost buffers
size_t g_dev_used = 0;
CUstream_st g_legacy;                  // stream 0
std::map<uint64_t, CUstream_st *> g_streams;  // live created streams by id
uint64_t g_next_stream_id = 1;
enum { LAZY, EAGER, MIXED } g_streams_mode = LAZY;  // ARGEN_EMU_STREAMS (see "Streams" above)
CUstream_st *g_active_capture = nullptr;  // the capture this (only) host thread runs, if any
cudaError_t g_last = cudaSuccess;      // returned and cleared by cudaGetLastError
cudaError_t g_sticky = cudaSuccess;    // a kernel failed: every later call fails, as after a GPU fault
std::map<std::string, int> g_smem_limit;  // kernel name -> cudaFuncAttributeMaxDynamicSharedMemorySize
std::map<std::string, int> g_nonportable;  // kernel name -> cudaFuncAttributeNonPortableClusterSizeAllowed

struct Counts {
    long launches = 0;          // kernels run (eagerly or in a replay)
    long cluster_launches = 0;  // of which in clusters of more than one block
    long captured = 0;          // operations recorded into graphs
    long captures = 0, invalidated = 0, graph_launches = 0, replayed = 0;
    ~Counts() {
        if (!getenv("ARGEN_EMU_STATS")) return;
        fprintf(stderr, "[emu] %ld kernels run (%ld in clusters); %ld captures (%ld invalidated) recording %ld "
                "operations; %ld graph launches replaying %ld operations\n", launches, cluster_launches, captures,
                invalidated, captured, graph_launches, replayed);
    }
} g_counts;

CUstream_st *S(cudaStream_t s) { return s ? s : &g_legacy; }

cudaError_t fail(cudaError_t e) {
    if (e != cudaSuccess && g_last == cudaSuccess) g_last = e;
    return e;
}

double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

bool is_device(const void *p) {
    auto it = g_dev.upper_bound((uintptr_t)p);
    if (it == g_dev.begin()) return false;
    --it;
    return (uintptr_t)p < it->first + it->second;
}

struct Init {
    Init() {
        const char *s = getenv("ARGEN_EMU_SCHEDULE");
        std::string v = s ? s : "forward";
        emu::g_mode = v == "reverse" ? emu::REVERSE : v == "random" ? emu::RANDOM : v == "greedy" ? emu::GREEDY
                      : v == "greedy_rev" ? emu::GREEDY_REV : emu::FORWARD;
        emu::g_limits_checked = true;  // launch_config_ok checks them against cudaFuncSetAttribute
        if (const char *seed = getenv("ARGEN_EMU_SEED")) emu::g_rng.seed((unsigned)strtoul(seed, nullptr, 10));
        const char *st = getenv("ARGEN_EMU_STREAMS");
        if (st && strcmp(st, "lazy") && strcmp(st, "eager") && strcmp(st, "mixed")) {
            fprintf(stderr, "[emu] ARGEN_EMU_STREAMS=%s: expected lazy, eager or mixed\n", st);
            abort();
        }
        g_streams_mode = !st || !strcmp(st, "lazy") ? LAZY : !strcmp(st, "eager") ? EAGER : MIXED;
    }
} g_init;

// Runs stream s's queued work until `upto` items of its queue have been taken (all of it: s->issued). An item is
// counted as taken before it runs, so a wait it runs that needs this stream up to an earlier point finds it there.
// After a sticky error the work is dropped, as a faulted GPU drops it.
void run_until(CUstream_st *s, uint64_t upto) {
    while (s->done < upto && !s->pending.empty()) {
        Node n = std::move(s->pending.front());
        s->pending.pop_front();
        s->done++;
        if (!g_sticky) n.work();
    }
}

void run_stream_id(uint64_t id, uint64_t upto) {
    auto it = g_streams.find(id);
    if (it != g_streams.end()) run_until(it->second, upto);  // a destroyed stream ran all its work first
}

// What a device-wide synchronisation does: every stream's queue runs (in stream creation order; waits inside a
// queue pull in what they wait for).
void run_all_streams() {
    for (auto &kv : g_streams) run_until(kv.second, kv.second->issued);
}

}  // namespace

// ------------------------------------------------------------------------------------- the emu:: interface
namespace emu {

cudaError_t stream_work(cudaStream_t stream, std::function<void()> work, const char *what) {
    if (g_sticky) return g_sticky;
    CUstream_st *s = S(stream);
    if (s->capturing) {
        g_counts.captured++;
        s->graph->nodes.push_back(Node{std::move(work), what});
        return cudaSuccess;
    }
    if (s->lazy) {
        s->pending.push_back(Node{std::move(work), what});
        s->issued++;
        return g_sticky;
    }
    work();
    return g_sticky;
}

bool stream_capturing(cudaStream_t stream) { return S(stream)->capturing; }

cudaError_t capture_violation(cudaStream_t stream, const char *what) {
    CUstream_st *s = stream && S(stream)->capturing ? S(stream) : g_active_capture;
    if (s && !s->invalidated) fprintf(stderr, "[emu] %s during stream capture: the capture is invalidated\n", what);
    if (s) s->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
}

bool device_range(const void *p, size_t nbytes, const char *what) {
    auto it = g_dev.upper_bound((uintptr_t)p);
    if (it != g_dev.begin()) {
        --it;
        if ((uintptr_t)p >= it->first && (uintptr_t)p + nbytes <= it->first + it->second) return true;
        if ((uintptr_t)p < it->first + it->second) {
            fprintf(stderr, "[emu] %s: %zu bytes at offset %zu overrun a %zu-byte device allocation\n", what, nbytes,
                    (size_t)((uintptr_t)p - it->first), it->second);
            return false;
        }
    }
    if (nbytes == 0) return true;
    fprintf(stderr, "[emu] %s: %p is not device memory\n", what, p);
    return false;
}

cudaError_t set_smem_limit(const char *name, cudaFuncAttribute attr, int value) {
    if (g_sticky) return g_sticky;
    if (attr == cudaFuncAttributeNonPortableClusterSizeAllowed) {
        if (value != 0 && value != 1) return fail(cudaErrorInvalidValue);
        g_nonportable[name] = value;
        return cudaSuccess;
    }
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return fail(cudaErrorInvalidValue);
    if (value < 0 || value > kSmemOptin) return fail(cudaErrorInvalidValue);
    g_smem_limit[name] = value;
    return cudaSuccess;
}

bool launch_config_ok(const char *name, dim3 grid, dim3 block, size_t smem, unsigned cluster_x) {
    if (g_sticky) return false;
    long nt = (long)block.x * block.y * block.z;
    bool ok = nt >= 1 && nt <= 1024 && block.z <= 64 && grid.x >= 1 && grid.y >= 1 && grid.z >= 1 &&
              grid.y <= 65535 && grid.z <= 65535 && grid.x <= 0x7fffffffu;
    if (!ok) {
        fprintf(stderr, "[emu] launch of %s: bad configuration grid (%u,%u,%u) block (%u,%u,%u)\n", name, grid.x,
                grid.y, grid.z, block.x, block.y, block.z);
        fail(cudaErrorInvalidConfiguration);
        return false;
    }
    // clusters: up to 8 blocks portably, 16 with cudaFuncAttributeNonPortableClusterSizeAllowed (H100)
    auto np = g_nonportable.find(name);
    unsigned max_cluster = np != g_nonportable.end() && np->second ? 16 : 8;
    if (cluster_x < 1 || cluster_x > max_cluster || grid.x % cluster_x) {
        fprintf(stderr, "[emu] launch of %s: clusters of %u blocks in a grid of %u in x (at most %u%s)\n", name,
                cluster_x, grid.x, max_cluster, max_cluster == 8 ? " without the non-portable size attribute" : "");
        fail(cudaErrorInvalidClusterSize);
        return false;
    }
    auto it = g_smem_limit.find(name);
    size_t limit = it == g_smem_limit.end() ? 48 * 1024 : (size_t)std::max(it->second, 48 * 1024);
    if (smem > limit) {
        fprintf(stderr, "[emu] launch of %s: %zu bytes of dynamic shared memory, limit %zu (cudaFuncSetAttribute)\n",
                name, smem, limit);
        fail(cudaErrorInvalidValue);
        return false;
    }
    return true;
}

static bool g_pdl_waited = false;  // the running launch reached pdl_wait (in some thread)

void pdl_waited() { g_pdl_waited = true; }

void run_launch(const char *name, dim3 grid, dim3 block, size_t smem, unsigned cluster_x, bool pdl,
                const std::function<void()> &body) {
    long before = g_errors;
    g_counts.launches++;
    g_counts.cluster_launches += cluster_x > 1;
    g_pdl_waited = false;
    launch_cluster(grid, block, smem, cluster_x, body);
    emu_mma::end_launch();
    if (pdl && !g_pdl_waited) {
        fprintf(stderr, "[emu] kernel %s: a dependent launch (programmatic stream serialization) in which no thread "
                "reached pdl_wait(): it may finish before the kernel it overlaps, and the next dependent launch's "
                "wait would not cover that kernel\n", name);
        g_errors++;
    }
    if (g_errors != before) {
        fprintf(stderr, "[emu] kernel %s (grid %u,%u,%u block %u,%u,%u cluster %u): %ld emulation errors (see the notes "
                "above)\n", name, grid.x, grid.y, grid.z, block.x, block.y, block.z, cluster_x, g_errors - before);
        g_sticky = cudaErrorLaunchFailure;
    }
}

}  // namespace emu

// ------------------------------------------------------------------------------------------- errors, device
extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorInvalidClusterSize: return "cudaErrorInvalidClusterSize";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorIllegalState: return "operation not permitted when stream is capturing";
    case cudaErrorLaunchFailure: return "unspecified launch failure (emulated kernel misbehaved)";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorInvalidClusterSize: return "invalid cluster size";
    case cudaErrorNotReady: return "device not ready";
    default: return "unknown error";
    }
}

cudaError_t cudaGetLastError(void) {
    if (g_sticky) return g_sticky;
    cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return g_sticky ? g_sticky : g_last; }

cudaError_t cudaGetDeviceCount(int *count) {
    const char *d = getenv("ARGEN_EMU_DEVICES");
    *count = d ? atoi(d) : 1;
    return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}

cudaError_t cudaSetDevice(int device) {
    int n;
    cudaGetDeviceCount(&n);
    return device >= 0 && device < n ? cudaSuccess : fail(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CPU-emulated H100 (scripts/cuda_emu)");
    p->major = 9, p->minor = 0;
    p->multiProcessorCount = 132;
    p->totalGlobalMem = kTotalMem;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = kSmemOptin;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsPerMultiProcessor = 2048;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024, p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->l2CacheSize = 50 << 20;
    p->memoryBusWidth = 5120;
    p->unifiedAddressing = 1;
    return cudaSuccess;
}

cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, const void *func) {
    if (!func) return fail(cudaErrorInvalidDeviceFunction);
    memset(a, 0, sizeof *a);
    a->maxThreadsPerBlock = 1024;
    a->numRegs = 32;
    a->binaryVersion = a->ptxVersion = 90;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *, cudaFuncAttribute attr, int value) {
    return emu::set_smem_limit("(unnamed)", attr, value);
}

// ----------------------------------------------------------------------------------------------- memory
cudaError_t cudaMalloc(void **p, size_t n) {
    *p = nullptr;
    if (g_sticky) return g_sticky;
    if (g_active_capture) return emu::capture_violation(nullptr, "cudaMalloc");
    if (n > kTotalMem - g_dev_used) return fail(cudaErrorMemoryAllocation);
    // 256-byte aligned as cudaMalloc's, and exactly n bytes long, so that under ASan (backend/run.sh asan) a kernel
    // or library call reading or writing past its buffer is reported at the first byte, as compute-sanitizer would
    void *q = nullptr;
    if (posix_memalign(&q, 256, n ? n : 1) != 0) return fail(cudaErrorMemoryAllocation);
    memset(q, 0xFF, n);  // NaN as float: reads of memory nobody wrote show
    g_dev[(uintptr_t)q] = n;
    g_dev_used += n;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    if (g_active_capture) return emu::capture_violation(nullptr, "cudaFree");
    run_all_streams();  // cudaFree synchronises the device: queued work may still use the memory
    auto it = g_dev.find((uintptr_t)p);
    if (it == g_dev.end()) {
        fprintf(stderr, "[emu] cudaFree(%p): not a live device allocation\n", p);
        return fail(cudaErrorInvalidValue);
    }
    g_dev_used -= it->second;
    g_dev.erase(it);
    free(p);
    return g_sticky;
}

cudaError_t cudaMallocHost(void **p, size_t n) {
    if (g_active_capture) return emu::capture_violation(nullptr, "cudaMallocHost");
    *p = malloc(n ? n : 1);
    if (!*p) return fail(cudaErrorMemoryAllocation);
    g_pinned.insert(*p);
    return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
    if (!p) return cudaSuccess;
    if (!g_pinned.count(p)) return fail(cudaErrorInvalidValue);
    run_all_streams();  // cudaFreeHost synchronises the device: queued copies may still use the buffer
    g_pinned.erase(p);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total) {
    *free_b = kTotalMem - g_dev_used;
    *total = kTotalMem;
    return g_sticky;
}

static bool pinned(const void *p) {
    auto it = g_pinned.upper_bound(p);
    return it != g_pinned.begin() && *--it == p;  // (the backend copies to the start of its pinned buffers)
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t stream) {
    if (g_sticky) return g_sticky;
    if (n == 0) return cudaSuccess;
    bool dd = is_device(dst), sd = is_device(src);
    bool ok = kind == cudaMemcpyHostToDevice   ? dd && !sd
              : kind == cudaMemcpyDeviceToHost ? !dd && sd
              : kind == cudaMemcpyDeviceToDevice ? dd && sd
              : kind == cudaMemcpyDefault;
    if (!ok) {
        fprintf(stderr, "[emu] cudaMemcpyAsync kind %d: dst %s, src %s\n", (int)kind, dd ? "device" : "host",
                sd ? "device" : "host");
        return fail(cudaErrorInvalidValue);
    }
    if ((dd && !emu::device_range(dst, n, "cudaMemcpyAsync dst")) ||
        (sd && !emu::device_range(src, n, "cudaMemcpyAsync src")))
        return fail(cudaErrorInvalidValue);
    if (S(stream)->capturing && ((!dd && !pinned(dst)) || (!sd && !pinned(src))))
        return emu::capture_violation(stream, "cudaMemcpyAsync with pageable host memory");
    return emu::stream_work(stream, [=] { memmove(dst, src, n); }, "cudaMemcpyAsync");
}

// `height` rows of `width` bytes, rows `dpitch` / `spitch` bytes apart.
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
    if (g_sticky) return g_sticky;
    if (width == 0 || height == 0) return cudaSuccess;
    if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
    if (kind != cudaMemcpyDeviceToDevice) return fail(cudaErrorInvalidValue);  // the only kind the backend uses
    size_t dn = dpitch * (height - 1) + width, sn = spitch * (height - 1) + width;
    if (!emu::device_range(dst, dn, "cudaMemcpy2DAsync dst") || !emu::device_range(src, sn, "cudaMemcpy2DAsync src"))
        return fail(cudaErrorInvalidValue);
    return emu::stream_work(stream, [=] {
        for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    }, "cudaMemcpy2DAsync");
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t stream) {
    if (g_sticky) return g_sticky;
    if (n == 0) return cudaSuccess;
    if (!emu::device_range(p, n, "cudaMemsetAsync")) return fail(cudaErrorInvalidValue);
    return emu::stream_work(stream, [=] { memset(p, v, n); }, "cudaMemsetAsync");
}

// ------------------------------------------------------------------------------------- streams and graphs
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int) {
    *s = new CUstream_st();
    (*s)->id = g_next_stream_id++;
    // mixed: the 1st, 3rd, ... stream created run their work at once, the others queue it (a backend's main stream
    // is created first, its side stream after it)
    (*s)->lazy = g_streams_mode == LAZY || (g_streams_mode == MIXED && (*s)->id % 2 == 0);
    g_streams[(*s)->id] = *s;
    return g_sticky;
}

// The GPU finishes a destroyed stream's work; here it runs now, before the stream goes.
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) return fail(cudaErrorIllegalState);
    run_until(s, s->issued);
    g_streams.erase(s->id);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (g_active_capture) return emu::capture_violation(s, "cudaStreamSynchronize");
    run_until(S(s), S(s)->issued);
    return g_sticky;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
    if (g_sticky) return g_sticky;
    if (!stream) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
    if (stream->capturing || g_active_capture) return fail(cudaErrorIllegalState);
    stream->capturing = true;
    stream->invalidated = false;
    stream->graph = new CUgraph_st();
    g_active_capture = stream;
    g_counts.captures++;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = nullptr;
    if (!stream || !stream->capturing) return fail(cudaErrorIllegalState);
    stream->capturing = false;
    g_active_capture = nullptr;
    if (stream->invalidated) {
        g_counts.invalidated++;
        delete stream->graph;
        stream->graph = nullptr;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = stream->graph;
    stream->graph = nullptr;
    return g_sticky;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
    *exec = nullptr;
    if (!graph) return fail(cudaErrorInvalidValue);
    *exec = new CUgraphExec_st{std::make_shared<const std::vector<Node>>(graph->nodes)};
    return g_sticky;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return fail(cudaErrorInvalidValue);
    std::shared_ptr<const std::vector<Node>> nodes = exec->nodes;
    g_counts.graph_launches++;
    return emu::stream_work(stream, [nodes] {
        for (const Node &n : *nodes) {
            g_counts.replayed++;
            if (g_sticky) return;
            n.work();
        }
    }, "cudaGraphLaunch");
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------ events
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st();
    return g_sticky;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
    (void)flags;  // timing or not: the host clock either way
    *e = new CUevent_st();
    return g_sticky;
}

// The GPU destroys an event whose record is still queued once it ran; here the record runs first (it writes the
// event).
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    run_stream_id(e->stream_id, e->upto);
    delete e;
    return cudaSuccess;
}

// The waiting stream's later work runs after the event's record: a lazy stream queues a node that, when the stream
// reaches it, runs the recording stream up to the record (the event's last record at the time of this call, as on
// the GPU); a stream that runs its work at once runs it now. Joining another stream's event into a capture
// (cross-stream capture) is not modelled: refused as a capture violation.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t e, unsigned int flags) {
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    if (flags != 0) return fail(cudaErrorInvalidValue);
    if ((stream && stream->capturing) || g_active_capture) return emu::capture_violation(stream, "cudaStreamWaitEvent");
    uint64_t id = e->stream_id, upto = e->upto;
    if (!id) return g_sticky;  // never recorded, or recorded on a stream that runs at once: complete
    return emu::stream_work(stream, [id, upto] { run_stream_id(id, upto); }, "cudaStreamWaitEvent");
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    CUstream_st *s = S(stream);
    cudaError_t r = emu::stream_work(stream, [e] { e->t = now_s(), e->recorded = true; }, "cudaEventRecord");
    if (!s->capturing && s->lazy) {
        e->recorded = false;  // until the queued record runs (cudaEventElapsedTime: not ready)
        e->stream_id = s->id, e->upto = s->issued;  // done once the queue ran past the record
    } else if (!s->capturing) {
        e->stream_id = 0, e->upto = 0;
    }
    return r;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    if (!e) return fail(cudaErrorInvalidResourceHandle);
    if (g_active_capture) return emu::capture_violation(nullptr, "cudaEventSynchronize");
    run_stream_id(e->stream_id, e->upto);
    return g_sticky;
}

cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b) return fail(cudaErrorInvalidResourceHandle);
    if (!a->recorded || !b->recorded)  // queued, not run: not ready (not an error cudaGetLastError keeps)
        return a->stream_id || b->stream_id ? cudaErrorNotReady : fail(cudaErrorInvalidResourceHandle);
    *ms = (float)((b->t - a->t) * 1e3);
    return g_sticky;
}

}  // extern "C"
