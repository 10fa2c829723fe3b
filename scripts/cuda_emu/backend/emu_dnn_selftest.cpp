// Self-test of emu_dnn.cpp (the emulated cuDNN) on its own, without the emulated runtime: a test-local emu:: layer
// (a registry of "device" buffers, a stream that runs work at once or records it while a flag says it is
// capturing) and a naive reference convolution written from the definition.
// Build (from the repository root): g++ -std=gnu++17 -O1 -g -Wall -Wextra -fsanitize=address,undefined
//   -I/usr/local/cuda/include -I. scripts/cuda_emu/backend/emu_dnn.cpp scripts/cuda_emu/backend/emu_dnn_selftest.cpp
//   -o /tmp/emu_dnn_selftest && /tmp/emu_dnn_selftest
// The "emu cuDNN:" lines on stderr are the refusals the test provokes; the last stdout line is the verdict.
#include "scripts/cuda_emu/backend/emu_backend.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

// ------------------------------------------------------------------------------------------ test-local emu layer
namespace {
std::map<uintptr_t, size_t> g_allocs;               // "device" buffers: start -> size
bool g_capturing = false;                           // the one stream is capturing
std::vector<std::function<void()>> g_recorded;      // work recorded during capture
int g_violations = 0;                               // capture_violation calls
bool g_quiet_range = false;                         // expected device_range failures: no report

void *dev_alloc(size_t n) {
    void *p = malloc(n ? n : 1);
    g_allocs[(uintptr_t)p] = n;
    return p;
}
void dev_free(void *p) {
    g_allocs.erase((uintptr_t)p);
    free(p);
}
void replay() {
    for (auto &f : g_recorded) f();
}
}  // namespace

namespace emu {
cudaError_t stream_work(cudaStream_t, std::function<void()> work, const char *) {
    if (g_capturing) g_recorded.push_back(std::move(work));
    else work();
    return cudaSuccess;
}
bool stream_capturing(cudaStream_t) { return g_capturing; }
cudaError_t capture_violation(cudaStream_t, const char *) {
    g_violations++;
    return cudaErrorStreamCaptureUnsupported;
}
bool device_range(const void *p, size_t nbytes, const char *what) {
    auto it = g_allocs.upper_bound((uintptr_t)p);
    if (it != g_allocs.begin()) {
        --it;
        if ((uintptr_t)p >= it->first && (uintptr_t)p + nbytes <= it->first + it->second) return true;
    }
    if (!g_quiet_range) fprintf(stderr, "(expected) device_range: %s: %p + %zu is not device memory\n", what, p, nbytes);
    return false;
}
}  // namespace emu

// ------------------------------------------------------------------------------------------------ test helpers
namespace {
int g_checks = 0, g_fails = 0;
#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        g_checks++;                                                                    \
        if (!(cond)) {                                                                 \
            g_fails++;                                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

size_t esz(cudnnDataType_t dt) { return dt == CUDNN_DATA_FLOAT ? 4 : 2; }
double ld(cudnnDataType_t dt, const void *b, int64_t i) {
    if (dt == CUDNN_DATA_HALF) return __half2float(((const __half *)b)[i]);
    if (dt == CUDNN_DATA_BFLOAT16) return __bfloat162float(((const __nv_bfloat16 *)b)[i]);
    return ((const float *)b)[i];
}
void st(cudnnDataType_t dt, void *b, int64_t i, double v) {
    if (dt == CUDNN_DATA_HALF) ((__half *)b)[i] = __double2half(v);
    else if (dt == CUDNN_DATA_BFLOAT16) ((__nv_bfloat16 *)b)[i] = __double2bfloat16(v);
    else ((float *)b)[i] = (float)v;
}
// Half an ulp of the dtype at v: the error of one correct rounding (the double sums differ by far less).
double half_ulp(cudnnDataType_t dt, double v) {
    int digits = dt == CUDNN_DATA_FLOAT ? 24 : dt == CUDNN_DATA_HALF ? 11 : 8;  // significand bits
    double sub = dt == CUDNN_DATA_HALF ? 0x1p-24 : 0x1p-149;                   // ulp of the subnormals
    int e;
    frexp(v, &e);  // v = m 2^e, 0.5 <= |m| < 1
    return 0.5 * std::max(ldexp(1.0, e - digits), sub);
}
const char *dname(cudnnDataType_t dt) { return dt == CUDNN_DATA_FLOAT ? "f32" : dt == CUDNN_DATA_HALF ? "f16" : "bf16"; }

std::mt19937 g_rng(1234);
double urand() { return std::uniform_real_distribution<double>(-1, 1)(g_rng); }

// A layout: element strides of (n, c, h, w).
struct L4 {
    int64_t s[4];
};
L4 nchw(int, int c, int h, int w) { return {{(int64_t)c * h * w, (int64_t)h * w, w, 1}}; }
L4 nhwc(int, int c, int h, int w) { return {{(int64_t)h * w * c, 1, (int64_t)w * c, c}}; }

struct Case {
    const char *name;
    cudnnDataType_t dt;
    cudnnTensorFormat_t xf, wf, yf;  // x, filter, y formats
    int N, C, H, W, K, R, S, pad_h, pad_w, u, v, dh, dw, G;
    cudnnConvolutionMode_t mode;
    int xcpad;                       // > 0: x described with Ex, channel stride padded by this many elements (NHWC)
};

// Naive reference from the definition: y[n,k,ho,wo] = sum_{c in k's group, r, s} x[n, c, hi, wi] * w[k, c, r', s'].
std::vector<double> reference(const Case &t, int Ho, int Wo, const std::vector<double> &xv, const L4 &xl,
                              const std::vector<double> &wv, const L4 &wl) {
    std::vector<double> out((size_t)t.N * t.K * Ho * Wo);
    int Cg = t.C / t.G, Kg = t.K / t.G;
    for (int n = 0; n < t.N; n++)
        for (int k = 0; k < t.K; k++)
            for (int ho = 0; ho < Ho; ho++)
                for (int wo = 0; wo < Wo; wo++) {
                    double acc = 0;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < t.R; r++)
                            for (int s = 0; s < t.S; s++) {
                                int hi = ho * t.u - t.pad_h + r * t.dh, wi = wo * t.v - t.pad_w + s * t.dw;
                                if (hi < 0 || hi >= t.H || wi < 0 || wi >= t.W) continue;
                                int rf = t.mode == CUDNN_CONVOLUTION ? t.R - 1 - r : r;
                                int sf = t.mode == CUDNN_CONVOLUTION ? t.S - 1 - s : s;
                                int cx = (k / Kg) * Cg + c;
                                acc += xv[n * xl.s[0] + cx * xl.s[1] + hi * xl.s[2] + wi * xl.s[3]] *
                                       wv[k * wl.s[0] + c * wl.s[1] + rf * wl.s[2] + sf * wl.s[3]];
                            }
                    out[(((size_t)n * t.K + k) * Ho + ho) * Wo + wo] = acc;
                }
    return out;
}

// The descriptors of a case.
struct Descs {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t c = nullptr;
    void destroy() {
        cudnnDestroyTensorDescriptor(x);
        cudnnDestroyTensorDescriptor(y);
        cudnnDestroyFilterDescriptor(w);
        cudnnDestroyConvolutionDescriptor(c);
        x = y = nullptr, w = nullptr, c = nullptr;
    }
};

Descs make_descs(const Case &t, int Ho, int Wo, const L4 &xl) {
    Descs d;
    CHECK(cudnnCreateTensorDescriptor(&d.x) == CUDNN_STATUS_SUCCESS, "create");
    CHECK(cudnnCreateTensorDescriptor(&d.y) == CUDNN_STATUS_SUCCESS, "create");
    CHECK(cudnnCreateFilterDescriptor(&d.w) == CUDNN_STATUS_SUCCESS, "create");
    CHECK(cudnnCreateConvolutionDescriptor(&d.c) == CUDNN_STATUS_SUCCESS, "create");
    if (t.xcpad)
        CHECK(cudnnSetTensor4dDescriptorEx(d.x, t.dt, t.N, t.C, t.H, t.W, (int)xl.s[0], (int)xl.s[1], (int)xl.s[2],
                                           (int)xl.s[3]) == CUDNN_STATUS_SUCCESS, "x Ex");
    else
        CHECK(cudnnSetTensor4dDescriptor(d.x, t.xf, t.dt, t.N, t.C, t.H, t.W) == CUDNN_STATUS_SUCCESS, "x");
    CHECK(cudnnSetFilter4dDescriptor(d.w, t.dt, t.wf, t.K, t.C / t.G, t.R, t.S) == CUDNN_STATUS_SUCCESS, "w");
    CHECK(cudnnSetConvolution2dDescriptor(d.c, t.pad_h, t.pad_w, t.u, t.v, t.dh, t.dw, t.mode, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_SUCCESS, "conv");
    if (t.G > 1) CHECK(cudnnSetConvolutionGroupCount(d.c, t.G) == CUDNN_STATUS_SUCCESS, "groups");
    CHECK(cudnnSetTensor4dDescriptor(d.y, t.yf, t.dt, t.N, t.K, Ho, Wo) == CUDNN_STATUS_SUCCESS, "y");
    return d;
}

// Compares y (layout yl) with alpha * ref + beta * yold rounded once to the dtype (half an ulp; the summation order
// differs only in the last bits of the double sums).
int compare(const Case &t, const char *what, const void *y, const L4 &yl, int Ho, int Wo,
            const std::vector<double> &ref, double alpha, double beta, const std::vector<double> &yold) {
    int bad = 0;
    for (int n = 0; n < t.N; n++)
        for (int k = 0; k < t.K; k++)
            for (int ho = 0; ho < Ho; ho++)
                for (int wo = 0; wo < Wo; wo++) {
                    int64_t yi = n * yl.s[0] + k * yl.s[1] + ho * yl.s[2] + wo * yl.s[3];
                    double want = alpha * ref[(((size_t)n * t.K + k) * Ho + ho) * Wo + wo] + (beta != 0 ? beta * yold[yi] : 0);
                    double got = ld(t.dt, y, yi);
                    double tol = half_ulp(t.dt, want) * (1 + 1e-9);  // round to nearest: at most half an ulp
                    if (!(fabs(got - want) <= tol) && bad++ < 3)
                        fprintf(stderr, "  %s %s: y[%d,%d,%d,%d] = %.9g, want %.9g\n", t.name, what, n, k, ho, wo, got, want);
                }
    return bad;
}

// Fills a device buffer of `count` elements with dtype-exact random values (returned as doubles, indexed like it).
std::vector<double> fill(cudnnDataType_t dt, void *b, size_t count) {
    std::vector<double> v(count);
    for (size_t i = 0; i < count; i++) {
        st(dt, b, i, urand());
        v[i] = ld(dt, b, i);
    }
    return v;
}
void fill_nan(cudnnDataType_t dt, void *b, size_t count) {
    for (size_t i = 0; i < count; i++) st(dt, b, i, NAN);
}

// ------------------------------------------------------------------------------------------------ a full case
void run_case(cudnnHandle_t h, const Case &t) {
    int Ho = 1 + (t.H + 2 * t.pad_h - ((t.R - 1) * t.dh + 1)) / t.u;
    int Wo = 1 + (t.W + 2 * t.pad_w - ((t.S - 1) * t.dw + 1)) / t.v;
    int Cg = t.C / t.G;
    L4 xl = t.xf == CUDNN_TENSOR_NHWC ? nhwc(t.N, t.C, t.H, t.W) : nchw(t.N, t.C, t.H, t.W);
    if (t.xcpad) {  // NHWC rows of C + xcpad elements (a channel-padded buffer), described with Ex
        int cs = t.C + t.xcpad;
        xl = {{(int64_t)t.H * t.W * cs, 1, (int64_t)t.W * cs, cs}};
    }
    L4 wl = t.wf == CUDNN_TENSOR_NHWC ? L4{{(int64_t)t.R * t.S * Cg, 1, (int64_t)t.S * Cg, Cg}}
                                      : L4{{(int64_t)Cg * t.R * t.S, (int64_t)t.R * t.S, t.S, 1}};
    L4 yl = t.yf == CUDNN_TENSOR_NHWC ? nhwc(t.N, t.K, Ho, Wo) : nchw(t.N, t.K, Ho, Wo);
    size_t nx = (size_t)xl.s[0] * t.N, nw = (size_t)t.K * Cg * t.R * t.S, ny = (size_t)t.N * t.K * Ho * Wo;
    void *x = dev_alloc(nx * esz(t.dt)), *w = dev_alloc(nw * esz(t.dt)), *y = dev_alloc(ny * esz(t.dt));
    std::vector<double> xv = fill(t.dt, x, nx), wv = fill(t.dt, w, nw);
    std::vector<double> ref = reference(t, Ho, Wo, xv, xl, wv, wl);
    Descs d = make_descs(t, Ho, Wo, xl);

    int on, oc, oh, ow;
    CHECK(cudnnGetConvolution2dForwardOutputDim(d.c, d.x, d.w, &on, &oc, &oh, &ow) == CUDNN_STATUS_SUCCESS, "%s", t.name);
    CHECK(on == t.N && oc == t.K && oh == Ho && ow == Wo, "%s: out dim %d %d %d %d", t.name, on, oc, oh, ow);

    // Every algorithm the heuristic lists as working: beta 0 into NaN (y must not be read), then beta 1 / alpha 0.5.
    CHECK(cudnnSetConvolutionMathType(d.c, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS, "%s", t.name);
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0, ran = 0;
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf) ==
          CUDNN_STATUS_SUCCESS, "%s", t.name);
    CHECK(n == CUDNN_CONVOLUTION_FWD_ALGO_COUNT, "%s: %d algos", t.name, n);
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
        CHECK(perf[i].mathType == CUDNN_TENSOR_OP_MATH && perf[i].determinism == CUDNN_DETERMINISTIC, "%s", t.name);
        size_t wsn = 1;
        CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, perf[i].algo, &wsn) ==
              CUDNN_STATUS_SUCCESS && wsn == perf[i].memory, "%s algo %d: ws %zu vs %zu", t.name, perf[i].algo, wsn,
              perf[i].memory);
        void *ws = wsn ? dev_alloc(wsn) : nullptr;
        float one = 1, zero = 0, half_ = 0.5f;
        fill_nan(t.dt, y, ny);
        CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, perf[i].algo, ws, wsn, &zero, d.y, y) ==
              CUDNN_STATUS_SUCCESS, "%s algo %d", t.name, perf[i].algo);
        std::string what = std::string("algo ") + std::to_string(perf[i].algo);
        CHECK(compare(t, (what + " beta 0").c_str(), y, yl, Ho, Wo, ref, 1, 0, {}) == 0, "%s %s beta 0", t.name, what.c_str());
        std::vector<double> yold = fill(t.dt, y, ny);
        CHECK(cudnnConvolutionForward(h, &half_, d.x, x, d.w, w, d.c, perf[i].algo, ws, wsn, &one, d.y, y) ==
              CUDNN_STATUS_SUCCESS, "%s algo %d", t.name, perf[i].algo);
        CHECK(compare(t, (what + " beta 1").c_str(), y, yl, Ho, Wo, ref, 0.5, 1, yold) == 0, "%s %s beta 1", t.name,
              what.c_str());
        if (wsn) {  // one byte short of the workspace: refused, y untouched
            fill_nan(t.dt, y, ny);
            CHECK(cudnnConvolutionForward(h, &one, d.x, x, d.w, w, d.c, perf[i].algo, ws, wsn - 1, &zero, d.y, y) ==
                  CUDNN_STATUS_BAD_PARAM, "%s algo %d short workspace", t.name, perf[i].algo);
            CHECK(std::isnan(ld(t.dt, y, 0)), "%s: y written by a refused call", t.name);
            dev_free(ws);
        }
        ran++;
    }
    CHECK(ran >= 3, "%s: only %d algorithms work", t.name, ran);

    // The timed search on a generous workspace: y = conv(x, w), results by time, all successes first.
    size_t big = 8 << 20;
    void *ws = dev_alloc(big);
    fill_nan(t.dt, y, ny);
    CHECK(cudnnSetConvolutionMathType(d.c, CUDNN_FMA_MATH) == CUDNN_STATUS_SUCCESS, "%s", t.name);
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.c, d.y, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n,
                                                 perf, ws, big) == CUDNN_STATUS_SUCCESS, "%s find", t.name);
    CHECK(compare(t, "find", y, yl, Ho, Wo, ref, 1, 0, {}) == 0, "%s find output", t.name);
    for (int i = 0; i < n; i++) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
        CHECK(i == 0 || (perf[i - 1].status == CUDNN_STATUS_SUCCESS && perf[i - 1].time <= perf[i].time),
              "%s: find order at %d", t.name, i);
        CHECK(perf[i].time > 0 && perf[i].mathType == CUDNN_FMA_MATH, "%s: find entry %d", t.name, i);
    }
    dev_free(ws);

    d.destroy();
    dev_free(x), dev_free(w), dev_free(y);
}

// --------------------------------------------------------------------------------------------- specific checks
// The sequence of kernels/cuda/conv.cu: plan (heuristic, math type, workspace size), the tuning search, then a
// forward captured into a graph whose descriptors are destroyed (and alpha/beta gone) before the replay.
void test_capture_and_project_flow(cudnnHandle_t h) {
    Case t = {"capture", CUDNN_DATA_HALF, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC,
              2, 16, 12, 12, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 0};
    int Ho = 12, Wo = 12;
    L4 xl = nhwc(2, 16, 12, 12), yl = nhwc(2, 8, Ho, Wo), wl = {{9 * 16, 1, 3 * 16, 16}};
    size_t nx = 2 * 16 * 144, nw = 8 * 9 * 16, ny = 2 * 8 * 144;
    void *x = dev_alloc(nx * 2), *w = dev_alloc(nw * 2), *y = dev_alloc(ny * 2);
    std::vector<double> xv = fill(t.dt, x, nx), wv = fill(t.dt, w, nw), ref = reference(t, Ho, Wo, xv, xl, wv, wl);
    Descs d = make_descs(t, Ho, Wo, xl);
    // plan_build
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    CHECK(cudnnSetConvolutionMathType(d.c, CUDNN_TENSOR_OP_MATH) == CUDNN_STATUS_SUCCESS, "math");
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf) ==
          CUDNN_STATUS_SUCCESS && n > 0 && perf[0].status == CUDNN_STATUS_SUCCESS, "v7");
    CHECK(perf[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED && perf[0].time == -1.f,
          "3x3 s1: winograd first, untimed (got algo %d time %g)", perf[0].algo, perf[0].time);
    // conv_tune: the search with a workspace too small for the fastest one (ALLOC_FAILED, listed after successes)
    size_t small_ws = perf[1].memory;  // fits PRECOMP (second), not WINOGRAD_NONFUSED
    void *ws = dev_alloc(small_ws);
    int n2 = 0;
    cudnnConvolutionFwdAlgoPerf_t two[2];
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.c, d.y, y, 2, &n2, two, ws, small_ws) ==
          CUDNN_STATUS_SUCCESS && n2 == 2, "find 2: n %d", n2);
    CHECK(two[0].status == CUDNN_STATUS_SUCCESS && two[0].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
          "find: precomp first (algo %d)", two[0].algo);
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.c, d.y, y, 8, &n2, perf, ws, small_ws) ==
          CUDNN_STATUS_SUCCESS && n2 == 8, "find 8");
    bool alloc_failed = false;
    for (int i = 0; i < n2; i++)
        if (perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED)
            alloc_failed = perf[i].status == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
    CHECK(alloc_failed, "winograd with a short workspace: ALLOC_FAILED");
    cudnnConvolutionFwdAlgo_t algo = two[0].algo;
    size_t wsn = two[0].memory;
    CHECK(cudnnSetConvolutionMathType(d.c, two[0].mathType) == CUDNN_STATUS_SUCCESS, "math");

    // The search is illegal during capture: violation reported, an error returned, nothing recorded, y untouched.
    g_capturing = true;
    fill_nan(t.dt, y, ny);
    CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x, x, d.w, w, d.c, d.y, y, 8, &n2, perf, ws, small_ws) !=
          CUDNN_STATUS_SUCCESS, "find under capture must fail");
    CHECK(g_violations == 1 && g_recorded.empty() && std::isnan(ld(t.dt, y, 0)), "violation %d, recorded %zu",
          g_violations, g_recorded.size());
    // A captured forward: recorded, not run; the descriptors die and alpha/beta change before the replay.
    float alpha = 1, beta = 0;
    CHECK(cudnnConvolutionForward(h, &alpha, d.x, x, d.w, w, d.c, algo, ws, wsn, &beta, d.y, y) == CUDNN_STATUS_SUCCESS,
          "captured forward");
    g_capturing = false;
    CHECK(g_recorded.size() == 1 && std::isnan(ld(t.dt, y, 0)), "recorded %zu, y must be untouched", g_recorded.size());
    d.destroy();
    alpha = 7, beta = 3;
    Descs junk = make_descs({"junk", CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NCHW, CUDNN_TENSOR_NCHW, 1, 1,
                             5, 5, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, CUDNN_CONVOLUTION, 0}, 5, 5, nchw(1, 1, 5, 5));
    replay();
    CHECK(compare(t, "replay", y, yl, Ho, Wo, ref, 1, 0, {}) == 0, "replay after destroy");
    fill_nan(t.dt, y, ny);
    replay();  // a graph replays as often as launched
    CHECK(compare(t, "replay 2", y, yl, Ho, Wo, ref, 1, 0, {}) == 0, "second replay");
    g_recorded.clear();
    junk.destroy();
    dev_free(ws), dev_free(x), dev_free(w), dev_free(y);
}

// Refusals: bad parameters and unsupported configurations, each leaving y untouched.
void test_errors(cudnnHandle_t h) {
    Case t = {"errors", CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC,
              1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 0};
    L4 xl = nhwc(1, 4, 6, 6);
    void *x = dev_alloc(144 * 4), *w = dev_alloc(144 * 4), *y = dev_alloc(144 * 4);
    fill(t.dt, x, 144), fill(t.dt, w, 144);
    fill_nan(t.dt, y, 144);
    Descs d = make_descs(t, 6, 6, xl);
    float one = 1, zero = 0;
    auto fwd = [&](cudnnConvolutionFwdAlgo_t a, const void *xp, void *yp, cudnnTensorDescriptor_t yd, void *ws,
                   size_t wsn) { return cudnnConvolutionForward(h, &one, d.x, xp, d.w, w, d.c, a, ws, wsn, &zero, yd, yp); };
    const cudnnConvolutionFwdAlgo_t IG = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;

    // y's dims do not match the output (5x5 instead of 6x6), and the other way round for the query.
    cudnnTensorDescriptor_t bad;
    cudnnCreateTensorDescriptor(&bad);
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 4, 5, 5);
    CHECK(fwd(IG, x, y, bad, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "y dims");
    size_t wsn;
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, bad, IG, &wsn) == CUDNN_STATUS_BAD_PARAM, "ws y dims");
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 4, 5, 6);  // only h wrong
    CHECK(fwd(IG, x, y, bad, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "y h");
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 5, 6, 6);  // only c wrong
    CHECK(fwd(IG, x, y, bad, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "y c");
    // y of another dtype.
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_HALF, 1, 4, 6, 6);
    CHECK(fwd(IG, x, y, bad, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "y dtype");
    // x with 3 channels for a 4-channel filter; a misaligned y.
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, 3, 6, 6);
    CHECK(cudnnConvolutionForward(h, &one, bad, x, d.w, w, d.c, IG, nullptr, 0, &zero, d.y, y) ==
          CUDNN_STATUS_BAD_PARAM, "x channels");
    void *ybig = dev_alloc(145 * 4);
    CHECK(fwd(IG, x, (char *)ybig + 2, d.y, nullptr, 0) == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER, "misaligned y");
    dev_free(ybig);
    cudnnDestroyTensorDescriptor(bad);
    // Host memory (not a registered buffer), an overrun, in place.
    std::vector<float> host(144);
    g_quiet_range = true;
    CHECK(fwd(IG, host.data(), y, d.y, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "host x");
    void *small = dev_alloc(100 * 4);
    CHECK(fwd(IG, x, small, d.y, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "short y");
    g_quiet_range = false;
    CHECK(fwd(IG, x, x, d.y, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "in place");
    // Workspace: needed but null; overlapping x.
    const cudnnConvolutionFwdAlgo_t PG = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, PG, &wsn) == CUDNN_STATUS_SUCCESS && wsn > 0,
          "precomp ws %zu", wsn);
    CHECK(fwd(PG, x, y, d.y, nullptr, wsn) == CUDNN_STATUS_BAD_PARAM, "null workspace");
    CHECK(fwd(PG, x, y, d.y, x, wsn) == CUDNN_STATUS_BAD_PARAM, "workspace over x");
    // Unsupported algorithms (FFT), an out-of-range one.
    CHECK(fwd(CUDNN_CONVOLUTION_FWD_ALGO_FFT, x, y, d.y, nullptr, 0) == CUDNN_STATUS_NOT_SUPPORTED, "fft");
    CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, &wsn) ==
          CUDNN_STATUS_NOT_SUPPORTED, "direct ws");
    CHECK(fwd((cudnnConvolutionFwdAlgo_t)42, x, y, d.y, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "algo 42");
    // TRUE_HALF_CONFIG (fp16 accumulation) and double data are not computed here.
    {
        Case th = t;
        th.dt = CUDNN_DATA_HALF;
        Descs e = make_descs(th, 6, 6, xl);
        cudnnSetConvolution2dDescriptor(e.c, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_HALF);
        CHECK(cudnnConvolutionForward(h, &one, e.x, x, e.w, w, e.c, IG, nullptr, 0, &zero, e.y, y) ==
              CUDNN_STATUS_NOT_SUPPORTED, "true half");
        int n = 0;
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, e.x, e.w, e.c, e.y, 8, &n, perf) == CUDNN_STATUS_SUCCESS &&
              n == 8, "v7 unsupported");
        for (int i = 0; i < n; i++) CHECK(perf[i].status == CUDNN_STATUS_NOT_SUPPORTED, "entry %d", i);
        e.destroy();
        cudnnTensorDescriptor_t dx, dy;
        cudnnFilterDescriptor_t dw;
        cudnnCreateTensorDescriptor(&dx), cudnnCreateTensorDescriptor(&dy), cudnnCreateFilterDescriptor(&dw);
        cudnnSetTensor4dDescriptor(dx, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, 1, 4, 6, 6);
        cudnnSetTensor4dDescriptor(dy, CUDNN_TENSOR_NCHW, CUDNN_DATA_DOUBLE, 1, 4, 6, 6);
        cudnnSetFilter4dDescriptor(dw, CUDNN_DATA_DOUBLE, CUDNN_TENSOR_NCHW, 4, 4, 3, 3);
        double done = 1, dzero = 0;
        CHECK(cudnnConvolutionForward(h, &done, dx, x, dw, w, d.c, IG, nullptr, 0, &dzero, dy, y) ==
              CUDNN_STATUS_NOT_SUPPORTED, "double");
        cudnnDestroyTensorDescriptor(dx), cudnnDestroyTensorDescriptor(dy), cudnnDestroyFilterDescriptor(dw);
    }
    CHECK(std::isnan(ld(t.dt, y, 0)) && std::isnan(ld(t.dt, y, 143)), "a refused call wrote y");
    // Descriptor-level refusals.
    cudnnTensorDescriptor_t td;
    cudnnCreateTensorDescriptor(&td);
    CHECK(cudnnSetTensor4dDescriptor(td, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 0, 4, 4) == CUDNN_STATUS_BAD_PARAM, "c 0");
    CHECK(cudnnSetTensor4dDescriptor(td, CUDNN_TENSOR_NCHW_VECT_C, CUDNN_DATA_FLOAT, 1, 4, 4, 4) ==
          CUDNN_STATUS_NOT_SUPPORTED, "vect_c");
    CHECK(cudnnSetConvolution2dDescriptor(d.c, 0, 0, 0, 1, 1, 1, CUDNN_CONVOLUTION, CUDNN_DATA_FLOAT) ==
          CUDNN_STATUS_BAD_PARAM, "stride 0");
    cudnnDestroyTensorDescriptor(td);
    // An unset descriptor.
    cudnnCreateTensorDescriptor(&td);
    CHECK(fwd(IG, x, y, td, nullptr, 0) == CUDNN_STATUS_BAD_PARAM, "unset y");
    cudnnDestroyTensorDescriptor(td);
    // Error strings: the enum names.
    CHECK(!strcmp(cudnnGetErrorString(CUDNN_STATUS_SUCCESS), "CUDNN_STATUS_SUCCESS"), "str");
    CHECK(!strcmp(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM"), "str");
    CHECK(!strcmp(cudnnGetErrorString(CUDNN_STATUS_NOT_SUPPORTED), "CUDNN_STATUS_NOT_SUPPORTED"), "str");
    CHECK(!strcmp(cudnnGetErrorString(CUDNN_STATUS_EXECUTION_FAILED_CUDART), "CUDNN_STATUS_EXECUTION_FAILED_CUDART"), "str");
    d.destroy();
    dev_free(small), dev_free(x), dev_free(w), dev_free(y);
}
// cudnnConvolutionBiasActivationForward: y = act(alpha1 * conv + alpha2 * z + bias) rounded once, against the naive
// reference; the refusals cuDNN documents (IDENTITY only with IMPLICIT_PRECOMP_GEMM, the bias in y's dtype and
// (1, K, 1, 1), z like y).
void test_fused(cudnnHandle_t h) {
    const Case t = {"fused bf16 3x3", CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC, CUDNN_TENSOR_NHWC,
                    2, 8, 6, 5, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, 0};
    int Ho = 6, Wo = 5;
    L4 xl = nhwc(t.N, t.C, t.H, t.W), wl = {{(int64_t)t.R * t.S * t.C, 1, (int64_t)t.S * t.C, t.C}};
    L4 yl = nhwc(t.N, t.K, Ho, Wo);
    size_t nx = (size_t)t.N * t.H * t.W * t.C, nw = (size_t)t.K * t.C * 9, ny = (size_t)t.N * t.K * Ho * Wo;
    void *x = dev_alloc(nx * 2), *w = dev_alloc(nw * 2), *y = dev_alloc(ny * 2), *z = dev_alloc(ny * 2);
    void *b = dev_alloc(t.K * 2), *b32 = dev_alloc(t.K * 4);
    std::vector<double> xv = fill(t.dt, x, nx), wv = fill(t.dt, w, nw), zv = fill(t.dt, z, ny), bv = fill(t.dt, b, t.K);
    std::vector<double> ref = reference(t, Ho, Wo, xv, xl, wv, wl);
    Descs d = make_descs(t, Ho, Wo, xl);
    cudnnTensorDescriptor_t bd, bad;
    cudnnActivationDescriptor_t relu, ident;
    cudnnCreateTensorDescriptor(&bd), cudnnCreateTensorDescriptor(&bad);
    cudnnSetTensor4dDescriptor(bd, CUDNN_TENSOR_NHWC, t.dt, 1, t.K, 1, 1);
    CHECK(cudnnCreateActivationDescriptor(&relu) == CUDNN_STATUS_SUCCESS &&
          cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0) == CUDNN_STATUS_SUCCESS,
          "relu descriptor");
    cudnnCreateActivationDescriptor(&ident);
    cudnnSetActivationDescriptor(ident, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0);
    const cudnnConvolutionFwdAlgo_t IG = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                    PG = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    size_t wsn = 0;
    cudnnGetConvolutionForwardWorkspaceSize(h, d.x, d.w, d.c, d.y, PG, &wsn);
    void *ws = dev_alloc(wsn);
    auto run = [&](cudnnConvolutionFwdAlgo_t a, float a1, float a2, const void *zp, cudnnTensorDescriptor_t bdesc,
                   const void *bp, cudnnActivationDescriptor_t act) {
        return cudnnConvolutionBiasActivationForward(h, &a1, d.x, x, d.w, w, d.c, a, ws, wsn, &a2, d.y, zp, bdesc, bp,
                                                     act, d.y, y);
    };
    // ReLU, alpha2 = 0 (z = y, not read), then alpha2 = 0.5 with a separate z; identity with PRECOMP.
    for (int pass = 0; pass < 3; pass++) {
        float a1 = pass == 1 ? 2.f : 1.f, a2 = pass == 1 ? 0.5f : 0.f;
        bool relu_on = pass < 2;
        fill_nan(t.dt, y, ny);
        CHECK(run(pass == 2 ? PG : IG, a1, a2, pass == 1 ? z : y, bd, b, relu_on ? relu : ident) ==
              CUDNN_STATUS_SUCCESS, "fused pass %d", pass);
        int bad_n = 0, clipped = 0;
        for (int n = 0; n < t.N; n++)
            for (int k = 0; k < t.K; k++)
                for (int ho = 0; ho < Ho; ho++)
                    for (int wo = 0; wo < Wo; wo++) {
                        int64_t yi = n * yl.s[0] + k * yl.s[1] + ho * yl.s[2] + wo * yl.s[3];
                        double want = a1 * ref[(((size_t)n * t.K + k) * Ho + ho) * Wo + wo] + a2 * zv[yi] + bv[k];
                        if (relu_on && want < 0) want = 0, clipped++;
                        double got = ld(t.dt, y, yi);
                        if (!(fabs(got - want) <= half_ulp(t.dt, want) * (1 + 1e-9)) && bad_n++ < 3)
                            fprintf(stderr, "  fused pass %d: y[%d,%d,%d,%d] = %.9g, want %.9g\n", pass, n, k, ho, wo,
                                    got, want);
                    }
        CHECK(bad_n == 0, "fused pass %d: %d outputs off", pass, bad_n);
        CHECK(!relu_on || (clipped > 20 && clipped < (int)ny - 20), "pass %d: %d clipped", pass, clipped);
    }
    // NaN in x propagates through the ReLU with CUDNN_PROPAGATE_NAN.
    st(t.dt, x, 0, NAN);
    CHECK(run(IG, 1.f, 0.f, y, bd, b, relu) == CUDNN_STATUS_SUCCESS && std::isnan(ld(t.dt, y, 0)), "NaN kept");
    // Refusals: IDENTITY without PRECOMP, a float32 bias for bf16 data, a bias of the wrong shape, z unlike y.
    CHECK(run(IG, 1.f, 0.f, y, bd, b, ident) == CUDNN_STATUS_NOT_SUPPORTED, "identity needs precomp");
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, t.K, 1, 1);
    CHECK(run(IG, 1.f, 0.f, y, bad, b32, relu) == CUDNN_STATUS_NOT_SUPPORTED, "fp32 bias");
    cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NHWC, t.dt, 1, t.K - 1, 1, 1);
    CHECK(run(IG, 1.f, 0.f, y, bad, b, relu) == CUDNN_STATUS_BAD_PARAM, "bias shape");
    cudnnActivationDescriptor_t unset;
    cudnnCreateActivationDescriptor(&unset);
    CHECK(run(IG, 1.f, 0.f, y, bd, b, unset) == CUDNN_STATUS_BAD_PARAM, "unset activation");
    cudnnDestroyActivationDescriptor(unset);
    cudnnActivationDescriptor_t tanh_d;
    cudnnCreateActivationDescriptor(&tanh_d);
    cudnnSetActivationDescriptor(tanh_d, CUDNN_ACTIVATION_TANH, CUDNN_PROPAGATE_NAN, 0.0);
    CHECK(run(IG, 1.f, 0.f, y, bd, b, tanh_d) == CUDNN_STATUS_NOT_SUPPORTED, "tanh");
    cudnnDestroyActivationDescriptor(tanh_d);
    cudnnDestroyActivationDescriptor(relu), cudnnDestroyActivationDescriptor(ident);
    cudnnDestroyTensorDescriptor(bd), cudnnDestroyTensorDescriptor(bad);
    d.destroy();
    dev_free(x), dev_free(w), dev_free(y), dev_free(z), dev_free(b), dev_free(b32), dev_free(ws);
}
}  // namespace

int main() {
    cudnnHandle_t h;
    CHECK(cudnnCreate(&h) == CUDNN_STATUS_SUCCESS, "create");
    cudaStream_t s = (cudaStream_t)0x1234, got = nullptr;
    CHECK(cudnnSetStream(h, s) == CUDNN_STATUS_SUCCESS && cudnnGetStream(h, &got) == CUDNN_STATUS_SUCCESS && got == s,
          "stream");
    const cudnnTensorFormat_t NHWC = CUDNN_TENSOR_NHWC, NCHW = CUDNN_TENSOR_NCHW;
    const cudnnConvolutionMode_t XC = CUDNN_CROSS_CORRELATION, CV = CUDNN_CONVOLUTION;
    const Case cases[] = {
        // name               dtype               x     w     y     N  C   H   W  K  R  S  ph pw u  v  dh dw G  mode xcpad
        {"nhwc f32 3x3 p1",   CUDNN_DATA_FLOAT,    NHWC, NHWC, NHWC, 2, 5,  9,  8, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, XC, 0},
        {"nchw f16 3x3 s2",   CUDNN_DATA_HALF,     NCHW, NCHW, NCHW, 2, 6,  9, 10, 4, 3, 3, 1, 1, 2, 2, 1, 1, 1, XC, 0},
        {"nhwc bf16 1x1",     CUDNN_DATA_BFLOAT16, NHWC, NHWC, NHWC, 2, 16, 7,  5, 9, 1, 1, 0, 0, 1, 1, 1, 1, 1, XC, 0},
        {"nhwc f16 1x1 s2",   CUDNN_DATA_HALF,     NHWC, NHWC, NHWC, 2, 8,  8,  9, 8, 1, 1, 0, 0, 2, 2, 1, 1, 1, XC, 0},
        {"nchw f32 3x3 dil2", CUDNN_DATA_FLOAT,    NCHW, NCHW, NCHW, 2, 3, 11, 10, 5, 3, 3, 0, 2, 1, 1, 2, 2, 1, XC, 0},
        {"nhwc bf16 conv s2", CUDNN_DATA_BFLOAT16, NHWC, NHWC, NHWC, 2, 8, 10, 10, 8, 3, 3, 1, 1, 2, 2, 1, 1, 1, CV, 0},
        {"nhwc f16 4x2 p0",   CUDNN_DATA_HALF,     NHWC, NHWC, NHWC, 2, 24, 8,  7, 3, 4, 2, 0, 0, 1, 1, 1, 1, 1, XC, 0},
        {"mixed layouts",     CUDNN_DATA_FLOAT,    NHWC, NCHW, NCHW, 2, 6,  7,  7, 5, 3, 3, 1, 1, 1, 2, 1, 1, 1, XC, 0},
        {"groups 2 nchw",     CUDNN_DATA_FLOAT,    NCHW, NCHW, NHWC, 2, 8,  6,  6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, XC, 0},
        {"ex padded c f16",   CUDNN_DATA_HALF,     NHWC, NHWC, NHWC, 2, 5,  6,  6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, XC, 3},
        {"vae-like f16 64ch", CUDNN_DATA_HALF,     NHWC, NHWC, NHWC, 2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, XC, 0},
    };
    for (const Case &t : cases) run_case(h, t);
    test_capture_and_project_flow(h);
    test_errors(h);
    test_fused(h);
    CHECK(cudnnDestroy(h) == CUDNN_STATUS_SUCCESS, "destroy");
    CHECK(g_allocs.empty(), "%zu buffers leaked by the test", g_allocs.size());
    printf("emu_dnn_selftest: %d checks, %d failures: %s\n", g_checks, g_fails, g_fails ? "FAIL" : "PASS");
    return g_fails != 0;
}
