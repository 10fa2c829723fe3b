// Standalone self-test of emu_blas.cpp (the emulated cuBLAS / cuBLASLt) against naive loops. It brings its own
// trivial emu:: runtime: device memory is a registry of aligned host blocks, a stream runs work at once unless the
// test "captures" it, then the work is recorded and replayed by the test.
//   g++ -std=gnu++17 -O1 -g -Wall -Wextra -fsanitize=address,undefined -I/usr/local/cuda/include -I/work/main
//       scripts/cuda_emu/backend/emu_blas.cpp scripts/cuda_emu/backend/emu_blas_selftest.cpp -o /tmp/emu_blas_selftest
// Inputs are multiples of 1/8 (exact in every type, so the double reference sums are exact) except in the random
// cases; the expected results are rounded to the output type by this file's own round-to-nearest-even.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "scripts/cuda_emu/backend/emu_backend.h"

// ================================================================================== the test's emu:: runtime
namespace {
struct Alloc {
    char *p;
    size_t n;
};
std::vector<Alloc> g_allocs;
bool g_capturing = false;
cudaStream_t g_cap_stream = nullptr;
std::vector<std::function<void()>> g_graph;  // work recorded while capturing
int g_violations = 0, g_range_failures = 0;
}  // namespace

namespace emu {
cudaError_t stream_work(cudaStream_t stream, std::function<void()> work, const char *) {
    if (g_capturing && stream == g_cap_stream)
        g_graph.push_back(std::move(work));
    else
        work();
    return cudaSuccess;
}
bool stream_capturing(cudaStream_t stream) { return g_capturing && stream == g_cap_stream; }
cudaError_t capture_violation(cudaStream_t, const char *) {
    g_violations++;
    return cudaErrorStreamCaptureUnsupported;
}
bool device_range(const void *p, size_t nbytes, const char *) {
    const char *c = static_cast<const char *>(p);
    for (const Alloc &a : g_allocs)
        if (c >= a.p && c + nbytes <= a.p + a.n) return true;
    g_range_failures++;
    return false;
}
}  // namespace emu

namespace {
// "cudaMalloc": 256-byte aligned; the registered extent is exactly n bytes (so an overrun is caught).
void *dev_alloc(size_t n) {
    char *p = static_cast<char *>(aligned_alloc(256, (n + 255) / 256 * 256 + 256));
    g_allocs.push_back({p, n});
    return p;
}
void dev_free_all() {
    for (Alloc &a : g_allocs) free(a.p);
    g_allocs.clear();
}
void replay() {
    for (auto &w : g_graph) w();
}

// ======================================================================================== types and rounding
enum DT { F32, F16, BF16 };
const char *dt_name[] = {"f32", "f16", "bf16"};
cudaDataType cuda_t(DT t) { return t == F32 ? CUDA_R_32F : t == F16 ? CUDA_R_16F : CUDA_R_16BF; }
size_t dt_size(DT t) { return t == F32 ? 4 : 2; }

// Round to nearest even with p significant bits and minimum normal exponent emin (independent of cuda_bf16.h).
double round_bits(double x, int p, int emin) {
    if (x == 0 || !std::isfinite(x)) return x;
    int e;
    std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
    double q = std::ldexp(1.0, std::max(e - 1, emin) - (p - 1));
    return std::nearbyint(x / q) * q;  // default rounding mode: to nearest even
}
double round_to(DT t, double x) {
    return t == F32 ? (double)(float)x : t == F16 ? round_bits(x, 11, -14) : round_bits(x, 8, -126);
}
// One unit in the last place of type t at x.
double ulp(DT t, double x) {
    int e;
    std::frexp(x == 0 ? 1e-30 : x, &e);
    int p = t == F32 ? 24 : t == F16 ? 11 : 8, emin = t == F32 ? -126 : t == F16 ? -14 : -126;
    return std::ldexp(1.0, std::max(e - 1, emin) - (p - 1));
}

// Values exactly representable in t are stored exactly.
void put(void *base, DT t, size_t i, double v) {
    if (t == F32)
        static_cast<float *>(base)[i] = (float)v;
    else if (t == F16)
        static_cast<__half *>(base)[i] = __float2half((float)v);
    else
        static_cast<__nv_bfloat16 *>(base)[i] = __float2bfloat16((float)v);
}
double get(const void *base, DT t, size_t i) {
    if (t == F32) return static_cast<const float *>(base)[i];
    if (t == F16) return __half2float(static_cast<const __half *>(base)[i]);
    return __bfloat162float(static_cast<const __nv_bfloat16 *>(base)[i]);
}

std::mt19937 g_rng(12345);
double eighths() { return (double)((int)(g_rng() % 33) - 16) / 8.0; }  // -2 .. 2 in steps of 1/8
double randf() { return std::uniform_real_distribution<double>(-1.0, 1.0)(g_rng); }

// A device buffer of `n` elements of t, filled with f().
void *dev_fill(DT t, size_t n, const std::function<double()> &f) {
    void *p = dev_alloc(n * dt_size(t) + 1);  // +1: never zero bytes
    for (size_t i = 0; i < n; i++) put(p, t, i, f());
    return p;
}

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }

int g_checks = 0, g_failures = 0;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        g_checks++;                                                                                                    \
        if (!(cond)) {                                                                                                 \
            g_failures++;                                                                                              \
            if (g_failures <= 30) {                                                                                    \
                fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                        \
                fprintf(stderr, __VA_ARGS__);                                                                          \
                fprintf(stderr, "\n");                                                                                 \
            }                                                                                                          \
        }                                                                                                              \
    } while (0)
#define CHECK_ST(call, want)                                                                                           \
    do {                                                                                                               \
        cublasStatus_t st_ = (call);                                                                                   \
        CHECK(st_ == (want), "got %s", cublasGetStatusString(st_));                                                    \
    } while (0)

// ===================================================================================== the reference GEMM
// Column-major: D(i, j) = epi(alpha sum_l op(A)(i, l) op(B)(l, j) + beta C(i, j) + bias(i)) for each batch.
struct Ref {
    DT ab, cd;
    bool ta, tb;
    int m, n, k, batch;
    int64_t lda, ldb, ldc, ldd, sa, sb, sc, sd, sbias;
    double alpha, beta;
    bool bias, relu, gelu;
    int tf32 = 0;  // 1: round fp32 inputs to TF32 first
};
double tf32(double x) {  // round to nearest, ties away, 10 mantissa bits
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x1000u) & ~0x1fffu;
    memcpy(&f, &u, 4);
    return f;
}
// Checks D against the reference; C is read from a host copy taken before the call. Also checks D's padding
// (rows m..ldd-1, gaps between batches) still holds `pad_val` when D is not C. Returns the failures.
int check_ref(const Ref &r, const void *A, const void *B, const std::vector<double> &C0, const void *bias,
              const void *D, const std::vector<double> &D0, int exact_ulps, const char *what) {
    int bad = 0;
    for (int b = 0; b < r.batch; b++)
        for (int j = 0; j < r.n; j++)
            for (int i = 0; i < r.m; i++) {
                double s = 0;
                for (int l = 0; l < r.k; l++) {
                    double a = get(A, r.ab, b * r.sa + (r.ta ? l + i * r.lda : i + l * r.lda));
                    double bb = get(B, r.ab, b * r.sb + (r.tb ? j + l * r.ldb : l + j * r.ldb));
                    if (r.tf32) a = tf32(a), bb = tf32(bb);
                    s += a * bb;
                }
                double v = (r.alpha == 0 ? 0.0 : r.alpha * s);
                if (r.beta != 0) v += r.beta * C0[b * r.sc + i + j * r.ldc];
                if (r.bias) v += get(bias, r.cd, b * r.sbias + i);
                if (r.relu) v = v > 0 ? v : 0;
                if (r.gelu) v = gelu_ref(v);
                double want = round_to(r.cd, v);
                double got = get(D, r.cd, b * r.sd + i + j * r.ldd);
                bool ok = std::fabs(got - want) <= exact_ulps * ulp(r.cd, want) || (got == want);
                if (!ok && ++bad <= 3)
                    fprintf(stderr, "  %s: batch %d D(%d,%d) = %.9g, want %.9g\n", what, b, i, j, got, want);
            }
    // Untouched padding.
    for (size_t e = 0; e < D0.size(); e++) {
        int64_t b = (int64_t)e / r.sd, off = (int64_t)e % r.sd, i = off % r.ldd, j = off / r.ldd;
        bool inside = b < r.batch && i < r.m && j < r.n;
        if (!inside) {
            double got = get(D, r.cd, e);
            if (!(got == D0[e] || (std::isnan(got) && std::isnan(D0[e])))) {
                if (++bad <= 3) fprintf(stderr, "  %s: padding element %zu changed\n", what, e);
            }
        }
    }
    return bad;
}

std::vector<double> host_copy(const void *p, DT t, size_t n) {
    std::vector<double> v(n);
    for (size_t i = 0; i < n; i++) v[i] = get(p, t, i);
    return v;
}

// =========================================================================================== cuBLASLt cases
cublasLtHandle_t g_lt;
cudaStream_t g_stream = reinterpret_cast<cudaStream_t>(0x5157);  // a stream value; our stream_work ignores it

cublasLtMatrixLayout_t layout(DT t, int64_t rows, int64_t cols, int64_t ld, int batch, int64_t stride) {
    cublasLtMatrixLayout_t l = nullptr;
    CHECK_ST(cublasLtMatrixLayoutCreate(&l, cuda_t(t), (uint64_t)rows, (uint64_t)cols, ld), CUBLAS_STATUS_SUCCESS);
    if (batch > 1) {
        int32_t bc = batch;
        CHECK_ST(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc),
                 CUBLAS_STATUS_SUCCESS);
        CHECK_ST(
            cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride),
            CUBLAS_STATUS_SUCCESS);
    }
    return l;
}

struct LtCase {
    DT ab, cd;
    bool ta, tb;
    int m, n, k, pad, batch;
    uint32_t epi;
    double alpha, beta;
    bool inplace, random, explicit_bias_type;
};

// Builds, plans (heuristic) and runs one cuBLASLt matmul; compares with the reference.
void lt_case(const LtCase &c) {
    Ref r{};
    r.ab = c.ab, r.cd = c.cd, r.ta = c.ta, r.tb = c.tb, r.m = c.m, r.n = c.n, r.k = c.k, r.batch = c.batch;
    int64_t ar = c.ta ? c.k : c.m, ac = c.ta ? c.m : c.k, br = c.tb ? c.n : c.k, bc = c.tb ? c.k : c.n;
    r.lda = ar + c.pad, r.ldb = br + c.pad, r.ldc = c.m + c.pad, r.ldd = r.ldc;
    r.sa = r.lda * ac + 3, r.sb = r.ldb * bc + 1, r.sc = r.ldc * c.n + 2, r.sd = r.sc, r.sbias = c.m + 1;
    r.alpha = c.alpha, r.beta = c.beta;
    r.bias = c.epi & CUBLASLT_EPILOGUE_BIAS;
    r.relu = c.epi == CUBLASLT_EPILOGUE_RELU || c.epi == CUBLASLT_EPILOGUE_RELU_BIAS;
    r.gelu = c.epi == CUBLASLT_EPILOGUE_GELU || c.epi == CUBLASLT_EPILOGUE_GELU_BIAS;
    auto val = [&] { return c.random ? randf() : eighths(); };
    auto nan = [] { return std::nan(""); };
    void *A = dev_fill(c.ab, (size_t)(r.sa * c.batch), val);
    void *B = dev_fill(c.ab, (size_t)(r.sb * c.batch), val);
    void *C = dev_fill(c.cd, (size_t)(r.sc * c.batch), c.beta == 0 ? std::function<double()>(nan) : val);
    void *D = c.inplace ? C : dev_fill(c.cd, (size_t)(r.sd * c.batch), [] { return 99.0; });
    void *bias = dev_fill(c.cd, (size_t)(r.sbias * c.batch), val);
    std::vector<double> C0 = host_copy(C, c.cd, (size_t)(r.sc * c.batch)),
                        D0 = host_copy(D, c.cd, (size_t)(r.sd * c.batch));

    cublasLtMatmulDesc_t desc;
    CHECK_ST(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    cublasOperation_t ta = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), CUBLAS_STATUS_SUCCESS);
    cublasLtEpilogue_t ep = (cublasLtEpilogue_t)c.epi;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep),
             CUBLAS_STATUS_SUCCESS);
    if (r.bias) {
        if (c.explicit_bias_type) {
            cudaDataType bt = cuda_t(c.cd);
            CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt),
                     CUBLAS_STATUS_SUCCESS);
        }
        CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
                 CUBLAS_STATUS_SUCCESS);
        if (c.batch > 1)
            CHECK_ST(
                cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &r.sbias, sizeof r.sbias),
                CUBLAS_STATUS_SUCCESS);
    }
    cublasLtMatrixLayout_t la = layout(c.ab, ar, ac, r.lda, c.batch, r.sa),
                           lb = layout(c.ab, br, bc, r.ldb, c.batch, r.sb),
                           lc = layout(c.cd, c.m, c.n, r.ldc, c.batch, r.sc),
                           ld = layout(c.cd, c.m, c.n, r.ldd, c.batch, r.sd);
    cublasLtMatmulPreference_t pref;
    CHECK_ST(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t res;
    int cnt = -1;
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, lc, ld, pref, 1, &res, &cnt), CUBLAS_STATUS_SUCCESS);
    CHECK(cnt == 1 && res.state == CUBLAS_STATUS_SUCCESS && res.workspaceSize == 0, "heuristic count %d", cnt);
    float alpha = (float)c.alpha, beta = (float)c.beta;
    char what[160];
    snprintf(what, sizeof what, "lt %s->%s %c%c m%d n%d k%d pad%d batch%d epi%u alpha%g beta%g %s%s", dt_name[c.ab],
             dt_name[c.cd], c.ta ? 'T' : 'N', c.tb ? 'T' : 'N', c.m, c.n, c.k, c.pad, c.batch, c.epi, c.alpha, c.beta,
             c.inplace ? "inplace" : "D!=C", c.random ? " random" : "");
    cublasStatus_t st =
        cublasLtMatmul(g_lt, desc, &alpha, A, la, B, lb, &beta, C, lc, D, ld, &res.algo, nullptr, 0, g_stream);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "%s: %s", what, cublasGetStatusString(st));
    // Exact inputs: exact result then one rounding (1 ulp of slack for GELU's tanh and the random cases).
    int tol = (r.gelu || c.random) ? 1 : 0;
    CHECK(check_ref(r, A, B, C0, bias, D, c.inplace ? std::vector<double>() : D0, tol, what) == 0, "%s", what);
    if (c.inplace) {  // C's padding must be untouched too
        std::vector<double> C1 = host_copy(C, c.cd, C0.size());
        int changed = 0;
        for (size_t e = 0; e < C0.size(); e++) {
            int64_t b = (int64_t)e / r.sc, off = (int64_t)e % r.sc, i = off % r.ldc, j = off / r.ldc;
            if (!(b < c.batch && i < c.m && j < c.n) && !(C1[e] == C0[e] || (std::isnan(C1[e]) && std::isnan(C0[e]))))
                changed++;
        }
        CHECK(changed == 0, "%s: padding changed", what);
    }
    cublasLtMatmulPreferenceDestroy(pref);
    for (auto l : {la, lb, lc, ld}) cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulDescDestroy(desc);
}

void lt_sweep() {
    const DT combos[][2] = {{F32, F32}, {F16, F16}, {F16, F32}, {BF16, BF16}, {BF16, F32}};
    const int sizes[][3] = {{1, 1, 1}, {3, 17, 5}, {17, 3, 64}, {64, 17, 17}, {1, 64, 3}};
    const uint32_t epis[] = {CUBLASLT_EPILOGUE_DEFAULT,   CUBLASLT_EPILOGUE_BIAS, CUBLASLT_EPILOGUE_GELU,
                             CUBLASLT_EPILOGUE_GELU_BIAS, CUBLASLT_EPILOGUE_RELU, CUBLASLT_EPILOGUE_RELU_BIAS};
    int idx = 0;
    for (auto &dt : combos)
        for (int t = 0; t < 4; t++)
            for (auto &s : sizes)
                for (uint32_t e : epis) {
                    // The rest cycles with the case index so that each combination meets every value.
                    LtCase c{};
                    c.ab = dt[0], c.cd = dt[1], c.ta = t & 1, c.tb = t & 2;
                    c.m = s[0], c.n = s[1], c.k = s[2];
                    c.pad = (idx % 3 == 0) ? 0 : 3;
                    c.epi = e;
                    c.beta = (idx % 4 == 0) ? 0.0 : (idx % 4 == 1) ? 1.0 : (idx % 4 == 2) ? 0.0 : -0.5;
                    c.alpha = (idx % 5 == 4) ? 1.5 : 1.0;
                    c.inplace = idx % 7 < 3;
                    c.batch = idx % 11 == 0 ? 3 : 1;
                    c.explicit_bias_type = idx % 2;
                    lt_case(c);
                    idx++;
                }
    // A few random-valued cases (non-exact sums), larger.
    for (auto &dt : combos) {
        LtCase c{dt[0], dt[1], true,  false, 96,   40, 200, 1, 2, CUBLASLT_EPILOGUE_GELU_BIAS,
                 1.0,   0.0,   false, true,  false};
        lt_case(c);
        c.beta = 0.75, c.ta = false, c.tb = true, c.epi = CUBLASLT_EPILOGUE_DEFAULT, c.batch = 1;
        lt_case(c);
    }
    printf("cuBLASLt sweep: %d cases\n", idx + 10);
}

// ================================================================================ cublasGemmStridedBatchedEx
cublasHandle_t g_blas;

struct ExCase {
    DT ab, c;
    int ta, tb;  // 0 N, 1 T, 2 C
    int m, n, k, pad, batch;
    bool a_broadcast;  // strideA = 0
    double alpha, beta;
    cublasComputeType_t ct;
};
void ex_case(const ExCase &x) {
    Ref r{};
    r.ab = x.ab, r.cd = x.c, r.ta = x.ta != 0, r.tb = x.tb != 0, r.m = x.m, r.n = x.n, r.k = x.k, r.batch = x.batch;
    int64_t ar = r.ta ? x.k : x.m, ac = r.ta ? x.m : x.k, br = r.tb ? x.n : x.k, bc = r.tb ? x.k : x.n;
    r.lda = std::max<int64_t>(1, ar) + x.pad, r.ldb = std::max<int64_t>(1, br) + 2 * x.pad, r.ldc = x.m + x.pad;
    r.ldd = r.ldc;
    r.sa = x.a_broadcast ? 0 : r.lda * ac + 1, r.sb = r.ldb * bc, r.sc = r.ldc * x.n + 4, r.sd = r.sc;
    r.alpha = x.alpha, r.beta = x.beta;
    r.tf32 = x.ct == CUBLAS_COMPUTE_32F_FAST_TF32;
    bool rnd = r.tf32;  // TF32 cases use full-precision inputs (so the rounding shows)
    auto val = [&] { return rnd ? randf() : eighths(); };
    void *A = dev_fill(x.ab, (size_t)(x.a_broadcast ? r.lda * ac : r.sa * x.batch), val);
    void *B = dev_fill(x.ab, (size_t)(r.sb * x.batch), val);
    void *C =
        dev_fill(x.c, (size_t)(r.sc * x.batch),
                 x.beta == 0 ? std::function<double()>([] { return std::nan(""); }) : std::function<double()>(val));
    std::vector<double> C0 = host_copy(C, x.c, (size_t)(r.sc * x.batch));
    float alpha = (float)x.alpha, beta = (float)x.beta;
    const cublasOperation_t ops[] = {CUBLAS_OP_N, CUBLAS_OP_T, CUBLAS_OP_C};
    char what[160];
    snprintf(what, sizeof what, "ex %s->%s op%d%d m%d n%d k%d pad%d batch%d%s alpha%g beta%g ct%d", dt_name[x.ab],
             dt_name[x.c], x.ta, x.tb, x.m, x.n, x.k, x.pad, x.batch, x.a_broadcast ? " A-bcast" : "", x.alpha, x.beta,
             (int)x.ct);
    cublasStatus_t st = cublasGemmStridedBatchedEx(g_blas, ops[x.ta], ops[x.tb], x.m, x.n, x.k, &alpha, A, cuda_t(x.ab),
                                                   (int)r.lda, r.sa, B, cuda_t(x.ab), (int)r.ldb, r.sb, &beta, C,
                                                   cuda_t(x.c), (int)r.ldc, r.sc, x.batch, x.ct, CUBLAS_GEMM_DEFAULT);
    CHECK(st == CUBLAS_STATUS_SUCCESS, "%s: %s", what, cublasGetStatusString(st));
    // C is also D here: padding is checked against C's original contents.
    CHECK(check_ref(r, A, B, C0, nullptr, C, C0, rnd ? 1 : 0, what) == 0, "%s", what);
}

void ex_sweep() {
    const DT combos[][2] = {{F32, F32}, {F16, F16}, {F16, F32}, {BF16, BF16}, {BF16, F32}};
    const int sizes[][3] = {{1, 1, 1}, {3, 17, 5}, {17, 3, 64}, {64, 17, 17}, {5, 1, 0}};
    int idx = 0;
    for (auto &dt : combos)
        for (int ta = 0; ta < 3; ta++)
            for (int tb = 0; tb < 3; tb++)
                for (auto &s : sizes) {
                    ExCase x{dt[0],
                             dt[1],
                             ta,
                             tb,
                             s[0],
                             s[1],
                             s[2],
                             idx % 3 ? 2 : 0,
                             1 + idx % 3,
                             idx % 4 == 3,
                             idx % 5 == 1 ? 0.0
                             : idx % 2    ? 1.0
                                          : -1.5,
                             idx % 3 == 0   ? 0.0
                             : idx % 3 == 1 ? 1.0
                                            : 0.5,
                             idx % 2 ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC};
                    ex_case(x);
                    idx++;
                }
    // TF32: fp32 inputs rounded to 10 mantissa bits before the products.
    ExCase t{F32, F32, 1, 0, 33, 9, 70, 1, 2, false, 1.0, 0.0, CUBLAS_COMPUTE_32F_FAST_TF32};
    ex_case(t);
    t.ta = 0, t.tb = 1, t.beta = 1.0;
    ex_case(t);
    printf("cublasGemmStridedBatchedEx sweep: %d cases\n", idx + 2);
}

// ====================================================================== the dense.cu sequence (kt_linear)
// y (M, N) row-major = x (M, K) . w^T (w: (N, K)) + b, then GELU, exactly as plan_build / lt_matmul do it.
void dense_like(DT wdt, DT ydt, int M, int N, int K) {
    void *w = dev_fill(wdt, (size_t)N * K, eighths), *x = dev_fill(wdt, (size_t)M * K, eighths);
    void *y = dev_fill(ydt, (size_t)M * N, [] { return std::nan(""); }), *b = dev_fill(ydt, (size_t)N, eighths);
    size_t ws_size = 1 << 20;
    void *ws = dev_alloc(ws_size);
    cublasLtMatmulDesc_t desc;
    CHECK_ST(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    cublasOperation_t tA = CUBLAS_OP_T, tB = CUBLAS_OP_N;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &tA, sizeof tA);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tB, sizeof tB);
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_GELU_BIAS;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep),
             CUBLAS_STATUS_SUCCESS);
    cudaDataType bt = cuda_t(ydt);
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt),
             CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b),
             CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, cuda_t(wdt), (uint64_t)K, (uint64_t)N, K);  // w: K x N col
    cublasLtMatrixLayoutCreate(&lb, cuda_t(wdt), (uint64_t)K, (uint64_t)M, K);  // x: K x M col
    cublasLtMatrixLayoutCreate(&lc, cuda_t(ydt), (uint64_t)N, (uint64_t)M, N);  // y: N x M col
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsz = ws_size;
    uint32_t al[4] = {256, 256, 256, 256};
    CHECK_ST(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsz, sizeof wsz),
             CUBLAS_STATUS_SUCCESS);
    for (int i = 0; i < 4; i++)
        CHECK_ST(cublasLtMatmulPreferenceSetAttribute(
                     pref, (cublasLtMatmulPreferenceAttributes_t)(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES + i),
                     &al[i], 4),
                 CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulHeuristicResult_t res;
    int n = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, lc, lc, pref, 1, &res, &n);
    CHECK(st == CUBLAS_STATUS_SUCCESS && n == 1 && res.state == CUBLAS_STATUS_SUCCESS, "dense heuristic");
    float one = 1.f, zero = 0.f;
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, w, la, x, lb, &zero, y, lc, y, lc, &res.algo, ws, ws_size, g_stream),
             CUBLAS_STATUS_SUCCESS);
    int bad = 0;
    for (int m = 0; m < M; m++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += get(x, wdt, (size_t)m * K + k) * get(w, wdt, (size_t)j * K + k);
            double want = round_to(ydt, gelu_ref(s + get(b, ydt, j))), got = get(y, ydt, (size_t)m * N + j);
            if (std::fabs(got - want) > ulp(ydt, want)) bad++;
        }
    CHECK(bad == 0, "dense-like %s->%s M%d N%d K%d: %d wrong", dt_name[wdt], dt_name[ydt], M, N, K, bad);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
}

// ============================================================================================ error paths
void errors() {
    printf("error paths (the 'emu cublas...' lines on stderr are the expected reports):\n");
    fflush(stdout);
    void *A = dev_fill(F32, 64, eighths), *B = dev_fill(F32, 64, eighths), *C = dev_fill(F32, 64, eighths);
    float one = 1.f, zero = 0.f;
    // cuBLAS: ld < rows, negative sizes, unsupported types/compute, host operands.
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_32F, 3, 0, B, CUDA_R_32F,
                                   4, 0, &zero, C, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_INVALID_VALUE);
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_T, CUBLAS_OP_N, 8, 4, 2, &one, A, CUDA_R_32F, 1, 0, B, CUDA_R_32F,
                                   2, 0, &zero, C, CUDA_R_32F, 8, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_INVALID_VALUE);  // op(A) = A^T: A is k x m = 2 x 8, lda 1 < 2
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, A, CUDA_R_32F, 4, 0, B, CUDA_R_32F,
                                   4, 0, &zero, C, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_INVALID_VALUE);
    CHECK_ST(cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_16BF, 4, 0, B,
                                        CUDA_R_16BF, 4, 0, &zero, C, CUDA_R_16BF, 4, 0, 1, CUBLAS_COMPUTE_32F_FAST_TF32,
                                        CUBLAS_GEMM_DEFAULT),
             CUBLAS_STATUS_NOT_SUPPORTED);  // the FAST types take fp32 only
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_32F, 4, 0, B, CUDA_R_32F,
                                   4, 0, &zero, C, CUDA_R_16F, 4, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_NOT_SUPPORTED);  // fp32 inputs, fp16 output: not in the table
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_32F, 4, 0, B, CUDA_R_32F,
                                   4, 0, &zero, C, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_NOT_SUPPORTED);
    alignas(256) float host[16];
    int rf = g_range_failures;
    CHECK_ST(cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, host, CUDA_R_32F, 4, 0, B,
                                        CUDA_R_32F, 4, 0, &zero, C, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT),
             CUBLAS_STATUS_INVALID_VALUE);  // host A
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, A, CUDA_R_32F, 4, 16, B, CUDA_R_32F,
                                   4, 0, &zero, C, CUDA_R_32F, 4, 0, 5, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_INVALID_VALUE);  // 5 batches of A 16 apart overrun its 64 floats; C stride 0 is fine
    CHECK(g_range_failures == rf + 2, "device_range failures %d", g_range_failures - rf);
    // Workspace: device memory, 256-aligned.
    CHECK_ST(cublasSetWorkspace(g_blas, host, sizeof host), CUBLAS_STATUS_INVALID_VALUE);
    CHECK_ST(cublasSetWorkspace(g_blas, (char *)A + 4, 64), CUBLAS_STATUS_INVALID_VALUE);
    void *ws = dev_alloc(4096);
    CHECK_ST(cublasSetWorkspace(g_blas, ws, 4096), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasSetMathMode(g_blas, CUBLAS_TENSOR_OP_MATH), CUBLAS_STATUS_NOT_SUPPORTED);
    cublasMath_t mm;
    CHECK(cublasGetMathMode(g_blas, &mm) == CUBLAS_STATUS_SUCCESS && mm == CUBLAS_DEFAULT_MATH, "math mode");

    // cuBLASLt: descriptors and attributes.
    cublasLtMatmulDesc_t desc;
    CHECK_ST(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_16F, CUDA_R_16F), CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK_ST(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep),
             CUBLAS_STATUS_NOT_SUPPORTED);
    int64_t big = 0;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &big, sizeof big),
             CUBLAS_STATUS_INVALID_VALUE);  // wrong size
    const void *p = nullptr;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_AMAX_D_POINTER, &p, sizeof p),
             CUBLAS_STATUS_NOT_SUPPORTED);
    int32_t pm = CUBLASLT_POINTER_MODE_DEVICE_VECTOR;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm),
             CUBLAS_STATUS_NOT_SUPPORTED);
    uint32_t epv = 0;
    size_t wr = 0;
    CHECK_ST(cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, nullptr, 0, &wr),
             CUBLAS_STATUS_SUCCESS);
    CHECK(wr == 4, "size query %zu", wr);
    CHECK(cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epv, 4, &wr) == CUBLAS_STATUS_SUCCESS &&
              epv == CUBLASLT_EPILOGUE_DEFAULT,
          "epilogue default");
    cublasLtMatrixLayout_t bad;
    CHECK_ST(cublasLtMatrixLayoutCreate(&bad, CUDA_R_8I, 4, 4, 4), CUBLAS_STATUS_NOT_SUPPORTED);
    cublasLtMatrixLayout_t l4, l4x3, lld;
    cublasLtMatrixLayoutCreate(&l4, CUDA_R_32F, 4, 4, 4);
    cublasLtMatrixLayoutCreate(&l4x3, CUDA_R_32F, 4, 3, 4);
    cublasLtMatrixLayoutCreate(&lld, CUDA_R_32F, 4, 4, 3);  // ld < rows
    int32_t order = CUBLASLT_ORDER_ROW;
    CHECK_ST(cublasLtMatrixLayoutSetAttribute(l4, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order),
             CUBLAS_STATUS_NOT_SUPPORTED);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    uint32_t mask = 1;
    CHECK_ST(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &mask, sizeof mask),
             CUBLAS_STATUS_NOT_SUPPORTED);
    cublasLtMatmulHeuristicResult_t res;
    int n = 5;
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, lld, l4, l4, l4, pref, 1, &res, &n),
             CUBLAS_STATUS_INVALID_VALUE);
    CHECK(n == 0, "count %d", n);
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, l4, l4x3, l4, l4, pref, 1, &res, &n),
             CUBLAS_STATUS_INVALID_VALUE);  // B 4x3 but D 4x4
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, lld, B, l4, &zero, C, l4, C, l4, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    // Bias type other than D's: no algorithm, and the matmul refuses it.
    cublasLtEpilogue_t eb = CUBLASLT_EPILOGUE_BIAS;
    cudaDataType bt16 = CUDA_R_16BF;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &eb, sizeof eb);
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt16, sizeof bt16),
             CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &C, sizeof C),
             CUBLAS_STATUS_SUCCESS);
    n = 5;
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, l4, l4, l4, l4, pref, 1, &res, &n),
             CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(n == 0, "count %d", n);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, l4, B, l4, &zero, C, l4, C, l4, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_NOT_SUPPORTED);
    int32_t btd = -1;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &btd, sizeof btd);
    // Bias epilogue with a NULL bias: the heuristic can plan it, the matmul cannot run it.
    const void *nul = nullptr;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &nul, sizeof nul);
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, l4, l4, l4, l4, pref, 1, &res, &n), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, l4, B, l4, &zero, C, l4, C, l4, &res.algo, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    eb = CUBLASLT_EPILOGUE_DEFAULT;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &eb, sizeof eb);
    // Host operand; C and D overlapping without being equal.
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, host, l4, B, l4, &zero, C, l4, C, l4, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    CHECK_ST(
        cublasLtMatmul(g_lt, desc, &one, A, l4, B, l4, &one, C, l4, (float *)C + 1, l4, nullptr, nullptr, 0, g_stream),
        CUBLAS_STATUS_INVALID_VALUE);
    // A foreign algorithm.
    cublasLtMatmulAlgo_t junk{};
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, l4, B, l4, &zero, C, l4, C, l4, &junk, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    // Destroyed descriptors and handles.
    cublasLtMatrixLayout_t gone;
    cublasLtMatrixLayoutCreate(&gone, CUDA_R_32F, 4, 4, 4);
    cublasLtMatrixLayoutDestroy(gone);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, gone, B, l4, &zero, C, l4, C, l4, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    cublasHandle_t h2;
    cublasCreate(&h2);
    cublasDestroy(h2);
    CHECK_ST(cublasSetStream(h2, g_stream), CUBLAS_STATUS_NOT_INITIALIZED);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(l4), cublasLtMatrixLayoutDestroy(l4x3), cublasLtMatrixLayoutDestroy(lld);
    cublasLtMatmulDescDestroy(desc);
    CHECK(!strcmp(cublasGetStatusString(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED"), "status name");
}

// Alignment promised to the heuristic: too small for the type means no algorithm; a pointer less aligned than
// promised is refused by the matmul; with a smaller promise it runs.
void alignment() {
    int m = 8, n = 4, k = 8;
    char *buf = static_cast<char *>(dev_fill(BF16, 256, eighths));
    void *A = buf + 2, *B = dev_fill(BF16, 64, eighths), *D = dev_fill(BF16, 32, [] { return 0.0; });
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, m, k, m);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, k, n, k);
    cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, m);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulHeuristicResult_t r16, r2;
    int cnt;
    uint32_t a1 = 1, a2 = 2;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a1, 4);
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &r16, &cnt),
             CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(cnt == 0, "count %d", cnt);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a2, 4);
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &r2, &cnt), CUBLAS_STATUS_SUCCESS);
    uint32_t a16 = 16;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &a16, 4);
    CHECK_ST(cublasLtMatmulAlgoGetHeuristic(g_lt, desc, la, lb, ld, ld, pref, 1, &r16, &cnt), CUBLAS_STATUS_SUCCESS);
    float one = 1.f, zero = 0.f;
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, la, B, lb, &zero, D, ld, D, ld, &r16.algo, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, A, la, B, lb, &zero, D, ld, D, ld, &r2.algo, nullptr, 0, g_stream),
             CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &one, buf + 1, la, B, lb, &zero, D, ld, D, ld, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);  // not even element-aligned
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
}

// ===================================================================================== capture and replay
// Work recorded during capture must use the call's arguments (alpha/beta values, pointers, descriptor attributes)
// and the buffers' contents at replay.
void capture() {
    int m = 5, n = 3, k = 7;
    void *A = dev_fill(F32, (size_t)m * k, eighths), *B = dev_fill(F32, (size_t)k * n, eighths);
    void *C = dev_fill(F32, (size_t)m * n, eighths), *D = dev_fill(F32, (size_t)m * n, [] { return 99.0; });
    void *bias1 = dev_fill(F32, (size_t)m, eighths), *bias2 = dev_fill(F32, (size_t)m, [] { return 1000.0; });
    cublasLtMatmulDesc_t desc;
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias1, sizeof bias1);
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, m, k, m);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m);

    g_graph.clear();
    g_capturing = true, g_cap_stream = g_stream;
    float alpha = 2.f, beta = 0.5f;
    CHECK_ST(cublasLtMatmul(g_lt, desc, &alpha, A, la, B, lb, &beta, C, lc, D, lc, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_SUCCESS);
    // A GEMM on the cuBLAS handle's stream is captured too: C2 = 1 * A . B (beta 0).
    void *C2 = dev_fill(F32, (size_t)m * n, [] { return std::nan(""); });
    float one = 1.f, zero = 0.f;
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &one, A, CUDA_R_32F, m, 0, B, CUDA_R_32F,
                                   k, 0, &zero, C2, CUDA_R_32F, m, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_SUCCESS);
    // A handle destroyed during capture synchronises: a capture violation.
    cublasHandle_t h2;
    cublasCreate(&h2);
    cublasSetStream(h2, g_stream);
    int v0 = g_violations;
    CHECK_ST(cublasDestroy(h2), CUBLAS_STATUS_INTERNAL_ERROR);
    CHECK(g_violations == v0 + 1, "capture violation not reported");
    g_capturing = false;
    CHECK(g_graph.size() == 2 && get(D, F32, 0) == 99.0 && std::isnan(get(C2, F32, 0)), "work ran during capture");
    // After the call: the caller's alpha, the descriptor's bias pointer and A's contents change.
    alpha = 5.f, beta = 7.f;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias2, sizeof bias2);
    for (int rep = 0; rep < 2; rep++) {
        for (int i = 0; i < m * k; i++) put(A, F32, i, eighths());
        replay();
        Ref r{};
        r.ab = r.cd = F32, r.m = m, r.n = n, r.k = k, r.batch = 1, r.lda = m, r.ldb = k, r.ldc = r.ldd = m;
        r.sa = r.sb = r.sc = r.sd = r.sbias = 1 << 20;
        r.alpha = 2.0, r.beta = 0.5, r.bias = true;
        std::vector<double> C0 = host_copy(C, F32, (size_t)m * n);
        CHECK(check_ref(r, A, B, C0, bias1, D, {}, 0, "captured cublasLtMatmul") == 0, "captured Lt replay %d", rep);
        r.alpha = 1.0, r.beta = 0.0, r.bias = false;
        CHECK(check_ref(r, A, B, C0, nullptr, C2, {}, 0, "captured GemmStridedBatchedEx") == 0, "captured Ex %d", rep);
    }
    // Device pointer mode: alpha and beta are read at replay.
    int32_t pm = CUBLASLT_POINTER_MODE_DEVICE;
    CHECK_ST(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm),
             CUBLAS_STATUS_SUCCESS);
    ep = CUBLASLT_EPILOGUE_DEFAULT;
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep);
    float *dab = static_cast<float *>(dev_alloc(8));
    dab[0] = 1.f, dab[1] = 0.f;
    g_graph.clear();
    g_capturing = true;
    CHECK_ST(cublasLtMatmul(g_lt, desc, &dab[0], A, la, B, lb, &dab[1], C, lc, D, lc, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtMatmul(g_lt, desc, &alpha, A, la, B, lb, &beta, C, lc, D, lc, nullptr, nullptr, 0, g_stream),
             CUBLAS_STATUS_INVALID_VALUE);  // host scalars in device mode
    g_capturing = false;
    dab[0] = -0.5f, dab[1] = 2.f;
    replay();
    Ref r{};
    r.ab = r.cd = F32, r.m = m, r.n = n, r.k = k, r.batch = 1, r.lda = m, r.ldb = k, r.ldc = r.ldd = m;
    r.sa = r.sb = r.sc = r.sd = r.sbias = 1 << 20;
    r.alpha = -0.5, r.beta = 2.0;
    CHECK(check_ref(r, A, B, host_copy(C, F32, (size_t)m * n), nullptr, D, {}, 0, "device-mode replay") == 0,
          "device pointer mode");
    g_graph.clear();
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(desc);
}

// alpha == 0 reads neither A nor B (reference BLAS): NaN there does not reach C.
void alpha_zero() {
    void *A = dev_fill(F32, 16, [] { return std::nan(""); }), *B = dev_fill(F32, 16, [] { return std::nan(""); });
    void *C = dev_fill(F32, 16, [] { return 2.0; });
    float zero = 0.f, half = 0.5f;
    CHECK_ST(
        cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &zero, A, CUDA_R_32F, 4, 0, B, CUDA_R_32F,
                                   4, 0, &half, C, CUDA_R_32F, 4, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        CUBLAS_STATUS_SUCCESS);
    CHECK(get(C, F32, 5) == 1.0, "alpha 0: C = %g", get(C, F32, 5));
}
// The result is rounded once, from the exact sum: 1 + 2^-8 + 2^-30 is bf16 1 + 2^-7, though via float it would be
// 1 + 2^-8 and then the tie to even, 1. The same for fp16 with 1 + 2^-11 + 2^-24.
void single_rounding() {
    for (DT t : {BF16, F16}) {
        double tiny = t == BF16 ? std::ldexp(1.0, -15) : std::ldexp(1.0, -12), half = t == BF16 ? 0x1p-8 : 0x1p-11;
        void *A = dev_alloc(6), *B = dev_alloc(6), *C = dev_alloc(2);
        const double av[3] = {1.0, half, tiny}, bv[3] = {1.0, 1.0, tiny};
        for (int i = 0; i < 3; i++) put(A, t, i, av[i]), put(B, t, i, bv[i]);
        float one = 1.f, zero = 0.f;
        CHECK_ST(cublasGemmStridedBatchedEx(g_blas, CUBLAS_OP_T, CUBLAS_OP_N, 1, 1, 3, &one, A, cuda_t(t), 3, 0, B,
                                            cuda_t(t), 3, 0, &zero, C, cuda_t(t), 1, 0, 1, CUBLAS_COMPUTE_32F,
                                            CUBLAS_GEMM_DEFAULT),
                 CUBLAS_STATUS_SUCCESS);
        CHECK(get(C, t, 0) == 1.0 + 2 * half, "%s single rounding: %.9g", dt_name[t], get(C, t, 0));
    }
}
}  // namespace

int main() {
    CHECK_ST(cublasCreate(&g_blas), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasSetStream(g_blas, g_stream), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasLtCreate(&g_lt), CUBLAS_STATUS_SUCCESS);
    cudaStream_t s;
    CHECK(cublasGetStream(g_blas, &s) == CUBLAS_STATUS_SUCCESS && s == g_stream, "stream");

    lt_sweep();
    ex_sweep();
    for (DT w : {F32, F16, BF16}) {
        dense_like(w, w, 37, 24, 40);
        if (w != F32) dense_like(w, F32, 9, 130, 33);
    }
    errors();
    alignment();
    capture();
    alpha_zero();
    single_rounding();
    dev_free_all();  // before the next cases, so a stale pointer would be reported as host memory
    {
        // A bigger problem, to go through the threaded path.
        LtCase c{BF16, BF16, true,  false, 160, 140, 256, 0, 1, CUBLASLT_EPILOGUE_GELU_BIAS,
                 1.0,  0.0,  false, true,  true};
        lt_case(c);
        ExCase x{F32, F32, 1, 1, 150, 170, 190, 1, 1, false, 1.0, 0.5, CUBLAS_COMPUTE_32F};
        ex_case(x);
    }
    CHECK_ST(cublasLtDestroy(g_lt), CUBLAS_STATUS_SUCCESS);
    CHECK_ST(cublasDestroy(g_blas), CUBLAS_STATUS_SUCCESS);
    dev_free_all();
    printf("emu_blas selftest: %d checks, %d failures: %s\n", g_checks, g_failures, g_failures ? "FAIL" : "PASS");
    return g_failures ? 1 : 0;
}
