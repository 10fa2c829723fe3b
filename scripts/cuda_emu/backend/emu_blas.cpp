// cuBLAS and cuBLASLt on the CPU, for the emulated CUDA backend (see emu_backend.h and ../README.md): exactly the
// functions kernels/cuda/*.cu call, with the real headers' prototypes, plus a few getters. Device memory is host
// memory, so operands are read and written directly; the work itself goes through emu::stream_work, so a call
// issued while its stream is captured runs at each replay of the graph, with the arguments of the call (pointers,
// sizes, host alpha/beta, descriptor attributes, all copied now) and the buffer contents of the replay.
//
// Arithmetic: column-major GEMM as in the cuBLAS documentation, D (m x n) = epilogue(alpha * op(A) op(B) + beta * C
// [+ bias]), op(A) m x k, op(B) k x n. Every input is widened to float (exact for fp32/fp16/bf16, after the
// compute type's input rounding: TF32 / bf16 / fp16 for the FAST_* types), products and sums are in double, alpha
// and beta are the scale type (float), and the result is rounded once to the output type (round to nearest even).
// beta == 0 never reads C; alpha == 0 never reads A or B (reference BLAS). Anything not implemented (attribute,
// attribute value, epilogue, type combination) answers CUBLAS_STATUS_NOT_SUPPORTED where it is set or used; it is
// never computed some other way. Bad arguments (ld < rows, shapes that do not chain, operands outside device
// memory, misaligned pointers) answer CUBLAS_STATUS_INVALID_VALUE with a line on stderr.
#include "emu_backend.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

// ============================================================================================ objects and registry
// The real headers declare cublasContext / cublasLtContext as incomplete structs: these are their definitions.
struct cublasContext {
    cudaStream_t stream = nullptr;  // set by cublasSetStream; work of later calls goes there
    void *workspace = nullptr;      // cublasSetWorkspace (recorded and checked; the emulation needs none)
    size_t workspace_size = 0;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};
struct cublasLtContext {
    int unused = 0;
};

namespace {

// The descriptors are pointers to the headers' opaque structs; we allocate our own structs instead and cast (the
// caller never dereferences them). Each holds every attribute the project can set, with the headers' defaults.
struct LtDesc {
    int32_t compute;                               // cublasComputeType_t
    int32_t scale;                                 // cudaDataType of alpha and beta
    int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
    int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N, transc = CUBLAS_OP_N;
    int32_t fill_mode = CUBLAS_FILL_MODE_FULL;
    uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    const void *bias = nullptr;                    // BIAS_POINTER
    int64_t bias_batch_stride = 0;                 // elements
    int32_t bias_type = -1;                        // -1: D's type
    int32_t sm_count_target = 0;                   // a scheduling hint: recorded, no effect
};
struct LtLayout {
    uint32_t type;                                 // cudaDataType
    int32_t order = CUBLASLT_ORDER_COL;
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch = 1;
    int64_t batch_stride = 0;                      // elements
    int64_t plane_offset = 0;
    uint32_t batch_mode = CUBLASLT_BATCH_MODE_STRIDED;
};
struct LtPref {
    uint32_t search_mode = CUBLASLT_SEARCH_BEST_FIT;
    uint64_t max_workspace = 0;
    uint32_t align[4] = {256, 256, 256, 256};      // guaranteed alignment of A, B, C, D (bytes)
    float max_waves = 0.f;                         // 0: no limit
};

// Live objects, so that a destroyed or foreign handle/descriptor is an error instead of a wild read.
enum class Kind { Blas, Lt, Desc, Layout, Pref };
std::mutex g_mu;
std::map<const void *, Kind> g_live;

void reg(const void *p, Kind k) {
    std::lock_guard<std::mutex> l(g_mu);
    g_live[p] = k;
}
void unreg(const void *p) {
    std::lock_guard<std::mutex> l(g_mu);
    g_live.erase(p);
}
bool live(const void *p, Kind k) {
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_live.find(p);
    return p && it != g_live.end() && it->second == k;
}

LtDesc *desc_of(cublasLtMatmulDesc_t d) { return live(d, Kind::Desc) ? reinterpret_cast<LtDesc *>(d) : nullptr; }
LtLayout *layout_of(cublasLtMatrixLayout_t l) {
    return live(l, Kind::Layout) ? reinterpret_cast<LtLayout *>(l) : nullptr;
}
LtPref *pref_of(cublasLtMatmulPreference_t p) { return live(p, Kind::Pref) ? reinterpret_cast<LtPref *>(p) : nullptr; }

cublasStatus_t fail(cublasStatus_t st, const char *fn, const char *why) {
    fprintf(stderr, "emu %s: %s (%s)\n", fn, why,
            st == CUBLAS_STATUS_NOT_SUPPORTED ? "CUBLAS_STATUS_NOT_SUPPORTED" : "CUBLAS_STATUS_INVALID_VALUE");
    return st;
}

// =============================================================================================== types and values
// Bytes per element of the data types we implement; 0 for any other.
size_t type_size(int32_t t) {
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    default: return 0;
    }
}

// How a compute type rounds fp32 inputs before the products (the FAST_* types may down-convert; we always do, the
// worst case the GPU may produce).
enum class InRound { None, TF32, BF16, F16 };

// float -> TF32 (10 explicit mantissa bits), round to nearest with ties away from zero (cvt.rna.tf32.f32).
float round_tf32(float x) {
    if (!std::isfinite(x)) return x;
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x1000u) & ~0x1fffu;
    memcpy(&x, &u, 4);
    return x;
}

float round_input(float x, InRound r) {
    switch (r) {
    case InRound::TF32: return round_tf32(x);
    case InRound::BF16: return __bfloat162float(__float2bfloat16_rn(x));
    case InRound::F16: return __half2float(__float2half_rn(x));
    default: return x;
    }
}

float load(const void *base, int32_t t, int64_t i) {
    switch (t) {
    case CUDA_R_32F: return static_cast<const float *>(base)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half *>(base)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16 *>(base)[i]);
    }
}

// The one rounding of a result: double -> the output type, to nearest even.
void store(void *base, int32_t t, int64_t i, double v) {
    switch (t) {
    case CUDA_R_32F: static_cast<float *>(base)[i] = (float)v; break;
    case CUDA_R_16F: static_cast<__half *>(base)[i] = __double2half(v); break;
    default: static_cast<__nv_bfloat16 *>(base)[i] = __double2bfloat16(v); break;
    }
}

// Compute types we implement: the fp32 family. Sets the input rounding.
bool compute_ok(int32_t ct, InRound *r) {
    switch (ct) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC: *r = InRound::None; return true;
    case CUBLAS_COMPUTE_32F_FAST_TF32: *r = InRound::TF32; return true;
    case CUBLAS_COMPUTE_32F_FAST_16BF: *r = InRound::BF16; return true;
    case CUBLAS_COMPUTE_32F_FAST_16F: *r = InRound::F16; return true;
    default: return false;
    }
}

// The (A = B, C) type combinations of the cuBLAS/cuBLASLt tables for the fp32 compute types with a float scale:
// fp32 -> fp32; fp16 -> fp16 or fp32; bf16 -> bf16 or fp32. The FAST_* types take fp32 operands only.
bool types_ok(int32_t ct, int32_t at, int32_t bt, int32_t cty) {
    if (at != bt || !type_size(at) || !type_size(cty)) return false;
    bool fast = ct != CUBLAS_COMPUTE_32F && ct != CUBLAS_COMPUTE_32F_PEDANTIC;
    if (at == CUDA_R_32F) return cty == CUDA_R_32F;
    return !fast && (cty == at || cty == CUDA_R_32F);
}

bool op_ok(int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; }

// Elements spanned by a column-major rows x cols matrix with leading dimension ld, `batch` times `stride` apart:
// [lo, hi) relative to the pointer. Empty when there is nothing to read.
void extent(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride, int64_t *lo, int64_t *hi) {
    *lo = *hi = 0;
    if (rows <= 0 || cols <= 0 || batch <= 0) return;
    int64_t one = ld * (cols - 1) + rows;
    int64_t last = stride * (batch - 1);
    *lo = std::min<int64_t>(0, last);
    *hi = std::max<int64_t>(0, last) + one;
}

// Checks one operand's whole extent against the live device allocations.
bool in_device(const void *p, int32_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride,
               const char *what) {
    int64_t lo, hi;
    extent(rows, cols, ld, batch, stride, &lo, &hi);
    if (hi == lo) return true;
    if (!p) {
        fprintf(stderr, "emu %s: NULL pointer\n", what);
        return false;
    }
    size_t es = type_size(t);
    return emu::device_range(static_cast<const char *>(p) + lo * (int64_t)es, (size_t)(hi - lo) * es, what);
}

// ================================================================================================ the GEMM itself
struct Mat {
    const void *p;
    int32_t type;
    int64_t ld, stride;  // elements
};

// Everything one GEMM needs, copied by value into the stream work.
struct Gemm {
    int64_t m, n, k, batch;
    bool ta, tb;                              // op(A) = A^T, op(B) = B^T
    Mat A, B, C;
    void *D;
    int32_t dtype;
    int64_t ldd, stride_d;
    InRound round;
    bool scalars_on_device;                   // alpha/beta: host values below, or float pointers read at run time
    float alpha, beta;
    const float *alpha_dev, *beta_dev;
    bool bias, relu, gelu;                    // epilogue: bias (per row of D), then ReLU or GELU (tanh)
    const void *bias_p;
    int32_t bias_type;
    int64_t bias_stride;
};

double gelu_tanh(double x) {
    const double c = 0.7978845608028654;  // sqrt(2 / pi)
    return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

// Dot product of two packed rows of k floats: products are exact in double; four partial sums for speed.
double dot(const float *a, const float *b, int64_t k) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t l = 0;
    for (; l + 4 <= k; l += 4) {
        s0 += (double)a[l] * b[l];
        s1 += (double)a[l + 1] * b[l + 1];
        s2 += (double)a[l + 2] * b[l + 2];
        s3 += (double)a[l + 3] * b[l + 3];
    }
    for (; l < k; l++) s0 += (double)a[l] * b[l];
    return (s0 + s1) + (s2 + s3);
}

void gemm_run(const Gemm &g) {
    // Device pointer mode: the scalars are read now, at execution (as the GPU reads them).
    const double alpha = g.scalars_on_device ? *g.alpha_dev : g.alpha;
    const double beta = g.scalars_on_device ? *g.beta_dev : g.beta;
    const bool products = alpha != 0.0 && g.k > 0;
    const int64_t m = g.m, n = g.n, k = g.k;
    const size_t dsz = type_size(g.dtype);
    std::vector<float> a, bt;  // op(A) as m rows of k; op(B)^T as n rows of k
    if (products) {
        a.resize((size_t)(m * k));
        bt.resize((size_t)(n * k));
    }
    for (int64_t b = 0; b < g.batch; b++) {
        if (products) {
            const char *A = static_cast<const char *>(g.A.p) + b * g.A.stride * (int64_t)type_size(g.A.type);
            const char *B = static_cast<const char *>(g.B.p) + b * g.B.stride * (int64_t)type_size(g.B.type);
            for (int64_t i = 0; i < m; i++)  // op(A)(i, l) = A(i, l) or A(l, i)
                for (int64_t l = 0; l < k; l++)
                    a[(size_t)(i * k + l)] =
                        round_input(load(A, g.A.type, g.ta ? l + i * g.A.ld : i + l * g.A.ld), g.round);
            for (int64_t j = 0; j < n; j++)  // op(B)(l, j) = B(l, j) or B(j, l)
                for (int64_t l = 0; l < k; l++)
                    bt[(size_t)(j * k + l)] =
                        round_input(load(B, g.B.type, g.tb ? j + l * g.B.ld : l + j * g.B.ld), g.round);
        }
        const char *C = static_cast<const char *>(g.C.p) + b * g.C.stride * (int64_t)type_size(g.C.type);
        char *D = static_cast<char *>(g.D) + b * g.stride_d * (int64_t)dsz;
        const void *bias =
            g.bias ? static_cast<const char *>(g.bias_p) + b * g.bias_stride * (int64_t)type_size(g.bias_type)
                   : nullptr;
        // Columns [j0, j1) of D. Each element reads its C element before writing D, so C == D is fine.
        auto columns = [&](int64_t j0, int64_t j1) {
            for (int64_t j = j0; j < j1; j++)
                for (int64_t i = 0; i < m; i++) {
                    double v = products ? alpha * dot(&a[(size_t)(i * k)], &bt[(size_t)(j * k)], k) : 0.0;
                    if (beta != 0.0) v += beta * (double)load(C, g.C.type, i + j * g.C.ld);
                    if (bias) v += (double)load(bias, g.bias_type, i);
                    if (g.relu) v = v > 0.0 ? v : 0.0;
                    if (g.gelu) v = gelu_tanh(v);
                    store(D, g.dtype, i + j * g.ldd, v);
                }
        };
        // Large problems: columns split over the host's cores (each thread writes its own columns).
        unsigned nt = std::min(16u, std::max(1u, std::thread::hardware_concurrency()));
        if (nt > 1 && n >= 2 && (double)m * n * std::max<int64_t>(k, 1) >= (double)(1 << 22)) {
            nt = (unsigned)std::min<int64_t>(nt, n);
            std::vector<std::thread> th;
            for (unsigned t = 0; t < nt; t++) th.emplace_back(columns, n * t / nt, n * (t + 1) / nt);
            for (auto &t : th) t.join();
        } else {
            columns(0, n);
        }
    }
}

// Queues the GEMM on `stream` (now, or into the graph being captured).
cublasStatus_t gemm_submit(cudaStream_t stream, const Gemm &g, const char *what) {
    if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
    cudaError_t e = emu::stream_work(stream, [g] { gemm_run(g); }, what);
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

// ========================================================================================= attribute get/set helpers
// Attribute values travel as bytes: sizeInBytes must be the attribute's size.
template <typename T> cublasStatus_t attr_read(T *v, const void *buf, size_t n) {
    if (!buf || n != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(v, buf, sizeof(T));
    return CUBLAS_STATUS_SUCCESS;
}
// The headers' GetAttribute contract: sizeInBytes 0 asks for the size (in *sizeWritten).
template <typename T> cublasStatus_t attr_write(const T &v, void *buf, size_t n, size_t *written) {
    if (n == 0) {
        if (!written) return CUBLAS_STATUS_INVALID_VALUE;
        *written = sizeof(T);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (!buf || n != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(buf, &v, sizeof(T));
    if (written) *written = sizeof(T);
    return CUBLAS_STATUS_SUCCESS;
}
#define ATTR_SET(field, check)                                                                                        \
    do {                                                                                                              \
        std::remove_reference_t<decltype(field)> v;                                                                   \
        cublasStatus_t st_ = attr_read(&v, buf, sizeInBytes);                                                         \
        if (st_ != CUBLAS_STATUS_SUCCESS) return st_;                                                                 \
        cublasStatus_t ck_ = (check);                                                                                 \
        if (ck_ != CUBLAS_STATUS_SUCCESS) return ck_;                                                                 \
        field = v;                                                                                                    \
        return CUBLAS_STATUS_SUCCESS;                                                                                 \
    } while (0)
constexpr cublasStatus_t OK = CUBLAS_STATUS_SUCCESS, NOTSUP = CUBLAS_STATUS_NOT_SUPPORTED,
                         INVAL = CUBLAS_STATUS_INVALID_VALUE;

bool epilogue_ok(uint32_t e) {
    switch (e) {
    case CUBLASLT_EPILOGUE_DEFAULT:
    case CUBLASLT_EPILOGUE_RELU:
    case CUBLASLT_EPILOGUE_BIAS:
    case CUBLASLT_EPILOGUE_RELU_BIAS:
    case CUBLASLT_EPILOGUE_GELU:
    case CUBLASLT_EPILOGUE_GELU_BIAS: return true;
    default: return false;  // the AUX, gradient and BGRAD forms are not implemented
    }
}

// ================================================================================== cuBLASLt problem resolution
// Algorithms handed out by the heuristic: a marker plus the alignments it was promised (capped at 16 bytes, the
// most a GPU kernel's vector loads need), which cublasLtMatmul then requires of the pointers.
constexpr uint64_t ALGO_MAGIC = 0x454d55414c474f31ull;  // "EMUALGO1"

// The GEMM a (descriptor, layouts) set describes, without the pointers and scalars; st = why not.
struct Problem {
    Gemm g{};
    cublasStatus_t st = OK;
    const char *why = "";
};

Problem resolve(const LtDesc &d, const LtLayout &A, const LtLayout &B, const LtLayout &C, const LtLayout &D) {
    Problem p;
    auto bad = [&](cublasStatus_t st, const char *why) {
        p.st = st;
        p.why = why;
        return p;
    };
    InRound r;
    if (!compute_ok(d.compute, &r) || d.scale != CUDA_R_32F) return bad(NOTSUP, "compute/scale type");
    if (!types_ok(d.compute, (int32_t)A.type, (int32_t)B.type, (int32_t)C.type))
        return bad(NOTSUP, "A/B/C type combination");
    if (C.type != D.type) return bad(NOTSUP, "C and D types differ");
    bool ta = d.transa != CUBLAS_OP_N, tb = d.transb != CUBLAS_OP_N;
    // D: m x n; op(A): m x k; op(B): k x n; C: m x n.
    int64_t m = (int64_t)D.rows, n = (int64_t)D.cols, k = (int64_t)(ta ? A.rows : A.cols);
    if ((int64_t)(ta ? A.cols : A.rows) != m || (int64_t)(tb ? B.cols : B.rows) != k ||
        (int64_t)(tb ? B.rows : B.cols) != n || C.rows != D.rows || C.cols != D.cols)
        return bad(INVAL, "matrix shapes do not chain (op(A) m x k, op(B) k x n, C and D m x n)");
    for (const LtLayout *l : {&A, &B, &C, &D})
        if (l->ld < std::max<int64_t>(1, (int64_t)l->rows)) return bad(INVAL, "leading dimension < rows");
    if (A.batch != D.batch || B.batch != D.batch || C.batch != D.batch)
        return bad(INVAL, "layouts' batch counts differ");
    bool bias = d.epilogue & CUBLASLT_EPILOGUE_BIAS;
    int32_t bias_type = d.bias_type == -1 ? (int32_t)D.type : d.bias_type;
    if (bias && bias_type != (int32_t)D.type) return bad(NOTSUP, "bias type other than D's");
    Gemm &g = p.g;
    g.m = m, g.n = n, g.k = k, g.batch = D.batch, g.ta = ta, g.tb = tb;
    g.A = {nullptr, (int32_t)A.type, A.ld, A.batch_stride};
    g.B = {nullptr, (int32_t)B.type, B.ld, B.batch_stride};
    g.C = {nullptr, (int32_t)C.type, C.ld, C.batch_stride};
    g.dtype = (int32_t)D.type, g.ldd = D.ld, g.stride_d = D.batch_stride;
    g.round = r;
    g.bias = bias;
    g.relu = d.epilogue == CUBLASLT_EPILOGUE_RELU || d.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
    g.gelu = d.epilogue == CUBLASLT_EPILOGUE_GELU || d.epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
    g.bias_p = d.bias, g.bias_type = bias_type, g.bias_stride = d.bias_batch_stride;
    return p;
}

uint32_t align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t c = 16;
    while (c > 1 && a % c) c /= 2;
    return c;
}

}  // namespace

// ==================================================================================================== cuBLAS API
extern "C" {

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new cublasContext;
    reg(*handle, Kind::Blas);
    return CUBLAS_STATUS_SUCCESS;
}

// cublasDestroy synchronises the device (cuBLAS documentation), which a capturing stream forbids.
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (emu::stream_capturing(handle->stream)) {
        emu::capture_violation(handle->stream, "cublasDestroy (synchronises the device)");
        st = CUBLAS_STATUS_INTERNAL_ERROR;
    }
    unreg(handle);
    delete handle;
    return st;
}

// As documented, setting the stream also drops a user workspace (back to the library's default pool).
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = streamId;
    handle->workspace = nullptr;
    handle->workspace_size = 0;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *streamId) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!streamId) return CUBLAS_STATUS_INVALID_VALUE;
    *streamId = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

// A workspace must be device memory aligned to 256 bytes (cuBLAS documentation); size 0: no workspace.
cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t workspaceSizeInBytes) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (workspaceSizeInBytes) {
        if (!workspace) return fail(INVAL, "cublasSetWorkspace", "NULL workspace with a nonzero size");
        if ((uintptr_t)workspace % 256) return fail(INVAL, "cublasSetWorkspace", "workspace not 256-byte aligned");
        if (!emu::device_range(workspace, workspaceSizeInBytes, "cublasSetWorkspace workspace"))
            return fail(INVAL, "cublasSetWorkspace", "workspace is not device memory");
    }
    handle->workspace = workspace;
    handle->workspace_size = workspaceSizeInBytes;
    return CUBLAS_STATUS_SUCCESS;
}

// Math modes: DEFAULT, PEDANTIC and TF32_TENSOR_OP (TF32 rounding of fp32 inputs under CUBLAS_COMPUTE_32F), each
// optionally with DISALLOW_REDUCED_PRECISION_REDUCTION (no effect: we always reduce in double).
cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    unsigned base = (unsigned)mode & ~(unsigned)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_PEDANTIC_MATH && base != CUBLAS_TF32_TENSOR_OP_MATH)
        return fail(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetMathMode", "math mode not implemented");
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasGetMathMode(cublasHandle_t handle, cublasMath_t *mode) {
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode) return CUBLAS_STATUS_INVALID_VALUE;
    *mode = handle->math;
    return CUBLAS_STATUS_SUCCESS;
}

const char *CUBLASWINAPI cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}
// The real library returns a sentence; the name is more useful in the tests' messages.
const char *CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

// C (m x n) = alpha op(A) op(B) + beta C for each of batchCount matrices `stride*` elements apart. Host pointer mode
// (the only one implemented; the handle's default): alpha and beta are floats read now.
cublasStatus_t CUBLASWINAPI cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                                       cublasOperation_t transb, int m, int n, int k,
                                                       const void *alpha, const void *A, cudaDataType Atype, int lda,
                                                       long long int strideA, const void *B, cudaDataType Btype,
                                                       int ldb, long long int strideB, const void *beta, void *C,
                                                       cudaDataType Ctype, int ldc, long long int strideC,
                                                       int batchCount, cublasComputeType_t computeType,
                                                       cublasGemmAlgo_t algo) {
    const char *fn = "cublasGemmStridedBatchedEx";
    if (!live(handle, Kind::Blas)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!op_ok(transa) || !op_ok(transb)) return fail(INVAL, fn, "transa/transb not N, T or C");
    if (m < 0 || n < 0 || k < 0 || batchCount < 0) return fail(INVAL, fn, "negative size or batch count");
    bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    // A: m x k (N) or k x m (T); B: k x n (N) or n x k (T); C: m x n.
    int64_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    if (lda < std::max<int64_t>(1, ar) || ldb < std::max<int64_t>(1, br) || ldc < std::max(1, m))
        return fail(INVAL, fn, "leading dimension < rows");
    InRound r;
    if (!compute_ok(computeType, &r)) return fail(NOTSUP, fn, "compute type not implemented");
    if (!types_ok(computeType, Atype, Btype, Ctype)) return fail(NOTSUP, fn, "A/B/C type combination");
    if (!(algo == CUBLAS_GEMM_DEFAULT || (algo >= CUBLAS_GEMM_ALGO0 && algo <= CUBLAS_GEMM_ALGO23) ||
          (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP)))
        return fail(NOTSUP, fn, "algorithm not implemented");
    // The TF32 math mode lets CUBLAS_COMPUTE_32F round fp32 inputs to TF32.
    if (computeType == CUBLAS_COMPUTE_32F && Atype == CUDA_R_32F &&
        ((unsigned)handle->math & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH)
        r = InRound::TF32;
    if (m == 0 || n == 0 || batchCount == 0) return CUBLAS_STATUS_SUCCESS;
    if (!alpha || !beta) return fail(INVAL, fn, "NULL alpha or beta");
    Gemm g{};
    g.m = m, g.n = n, g.k = k, g.batch = batchCount, g.ta = ta, g.tb = tb;
    g.A = {A, Atype, lda, strideA};
    g.B = {B, Btype, ldb, strideB};
    g.C = {C, Ctype, ldc, strideC};
    g.D = C, g.dtype = Ctype, g.ldd = ldc, g.stride_d = strideC;
    g.round = r;
    g.alpha = *static_cast<const float *>(alpha);
    g.beta = *static_cast<const float *>(beta);
    if (g.alpha != 0.f && k > 0 &&
        (!in_device(A, Atype, ar, ac, lda, batchCount, strideA, "cublasGemmStridedBatchedEx A") ||
         !in_device(B, Btype, br, bc, ldb, batchCount, strideB, "cublasGemmStridedBatchedEx B")))
        return fail(INVAL, fn, "A or B outside device memory");
    if (!in_device(C, Ctype, m, n, ldc, batchCount, strideC, "cublasGemmStridedBatchedEx C"))
        return fail(INVAL, fn, "C outside device memory");
    return gemm_submit(handle->stream, g, fn);
}

// =================================================================================================== cuBLASLt API
cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
    *lightHandle = new cublasLtContext;
    reg(*lightHandle, Kind::Lt);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    if (!live(lightHandle, Kind::Lt)) return CUBLAS_STATUS_NOT_INITIALIZED;
    unreg(lightHandle);
    delete lightHandle;
    return CUBLAS_STATUS_SUCCESS;
}

const char *CUBLASWINAPI cublasLtGetStatusName(cublasStatus_t status) { return cublasGetStatusName(status); }
const char *CUBLASWINAPI cublasLtGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

// ------------------------------------------------------------------------------------------- matmul descriptor
cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc,
                                                     cublasComputeType_t computeType, cudaDataType_t scaleType) {
    if (!matmulDesc) return CUBLAS_STATUS_INVALID_VALUE;
    InRound r;
    if (!compute_ok(computeType, &r) || scaleType != CUDA_R_32F)
        return fail(NOTSUP, "cublasLtMatmulDescCreate", "compute/scale type not implemented (fp32 family only)");
    LtDesc *d = new LtDesc;
    d->compute = computeType;
    d->scale = scaleType;
    *matmulDesc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
    reg(d, Kind::Desc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    LtDesc *d = desc_of(matmulDesc);
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    unreg(d);
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr, const void *buf,
                                                           size_t sizeInBytes) {
    LtDesc *d = desc_of(matmulDesc);
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    InRound r;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: ATTR_SET(d->compute, compute_ok(v, &r) ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: ATTR_SET(d->scale, v == CUDA_R_32F ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
        ATTR_SET(d->pointer_mode, v == CUBLASLT_POINTER_MODE_HOST || v == CUBLASLT_POINTER_MODE_DEVICE ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_TRANSA: ATTR_SET(d->transa, op_ok(v) ? OK : INVAL);
    case CUBLASLT_MATMUL_DESC_TRANSB: ATTR_SET(d->transb, op_ok(v) ? OK : INVAL);
    case CUBLASLT_MATMUL_DESC_TRANSC: ATTR_SET(d->transc, v == CUBLAS_OP_N ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_FILL_MODE: ATTR_SET(d->fill_mode, v == CUBLAS_FILL_MODE_FULL ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: ATTR_SET(d->epilogue, epilogue_ok(v) ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: ATTR_SET(d->bias, OK);
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: ATTR_SET(d->bias_batch_stride, OK);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: ATTR_SET(d->bias_type, v == -1 || type_size(v) ? OK : NOTSUP);
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: ATTR_SET(d->sm_count_target, v >= 0 ? OK : INVAL);
    default: return fail(NOTSUP, "cublasLtMatmulDescSetAttribute", "attribute not implemented");
    }
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t matmulDesc,
                                                           cublasLtMatmulDescAttributes_t attr, void *buf,
                                                           size_t sizeInBytes, size_t *sizeWritten) {
    LtDesc *d = desc_of(matmulDesc);
    if (!d) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return attr_write(d->compute, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return attr_write(d->scale, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return attr_write(d->pointer_mode, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_TRANSA: return attr_write(d->transa, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_TRANSB: return attr_write(d->transb, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_TRANSC: return attr_write(d->transc, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_FILL_MODE: return attr_write(d->fill_mode, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return attr_write(d->epilogue, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return attr_write(d->bias, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return attr_write(d->bias_batch_stride, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return attr_write(d->bias_type, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: return attr_write(d->sm_count_target, buf, sizeInBytes, sizeWritten);
    default: return fail(NOTSUP, "cublasLtMatmulDescGetAttribute", "attribute not implemented");
    }
}

// ----------------------------------------------------------------------------------------------- matrix layout
cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout, cudaDataType type,
                                                       uint64_t rows, uint64_t cols, int64_t ld) {
    if (!matLayout) return CUBLAS_STATUS_INVALID_VALUE;
    if (!type_size(type)) return fail(NOTSUP, "cublasLtMatrixLayoutCreate", "data type not implemented");
    if (ld < 0) return fail(INVAL, "cublasLtMatrixLayoutCreate", "negative leading dimension");
    LtLayout *l = new LtLayout;
    l->type = (uint32_t)type;
    l->rows = rows, l->cols = cols, l->ld = ld;
    *matLayout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
    reg(l, Kind::Layout);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    LtLayout *l = layout_of(matLayout);
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    unreg(l);
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr, const void *buf,
                                                             size_t sizeInBytes) {
    LtLayout *l = layout_of(matLayout);
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: ATTR_SET(l->type, type_size((int32_t)v) ? OK : NOTSUP);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: ATTR_SET(l->order, v == CUBLASLT_ORDER_COL ? OK : NOTSUP);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: ATTR_SET(l->rows, OK);
    case CUBLASLT_MATRIX_LAYOUT_COLS: ATTR_SET(l->cols, OK);
    case CUBLASLT_MATRIX_LAYOUT_LD: ATTR_SET(l->ld, v >= 0 ? OK : INVAL);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: ATTR_SET(l->batch, v >= 1 ? OK : INVAL);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: ATTR_SET(l->batch_stride, OK);
    case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: ATTR_SET(l->plane_offset, v == 0 ? OK : NOTSUP);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: ATTR_SET(l->batch_mode, v == CUBLASLT_BATCH_MODE_STRIDED ? OK : NOTSUP);
    default: return fail(NOTSUP, "cublasLtMatrixLayoutSetAttribute", "attribute not implemented");
    }
}

cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t matLayout,
                                                             cublasLtMatrixLayoutAttribute_t attr, void *buf,
                                                             size_t sizeInBytes, size_t *sizeWritten) {
    LtLayout *l = layout_of(matLayout);
    if (!l) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return attr_write(l->type, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return attr_write(l->order, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return attr_write(l->rows, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return attr_write(l->cols, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_LD: return attr_write(l->ld, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return attr_write(l->batch, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return attr_write(l->batch_stride, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return attr_write(l->plane_offset, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return attr_write(l->batch_mode, buf, sizeInBytes, sizeWritten);
    default: return fail(NOTSUP, "cublasLtMatrixLayoutGetAttribute", "attribute not implemented");
    }
}

// ----------------------------------------------------------------------------------------- search preferences
cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    LtPref *p = new LtPref;
    *pref = reinterpret_cast<cublasLtMatmulPreference_t>(p);
    reg(p, Kind::Pref);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    LtPref *p = pref_of(pref);
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    unreg(p);
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}

// The reduction-scheme and implementation masks filter algorithms we do not model: not implemented.
cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                                 cublasLtMatmulPreferenceAttributes_t attr,
                                                                 const void *buf, size_t sizeInBytes) {
    LtPref *p = pref_of(pref);
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: ATTR_SET(p->search_mode, v == CUBLASLT_SEARCH_BEST_FIT ? OK : NOTSUP);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: ATTR_SET(p->max_workspace, OK);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: ATTR_SET(p->align[0], OK);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: ATTR_SET(p->align[1], OK);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: ATTR_SET(p->align[2], OK);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: ATTR_SET(p->align[3], OK);
    case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: ATTR_SET(p->max_waves, v >= 0.f ? OK : INVAL);
    default: return fail(NOTSUP, "cublasLtMatmulPreferenceSetAttribute", "attribute not implemented");
    }
}

cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref,
                                                                 cublasLtMatmulPreferenceAttributes_t attr, void *buf,
                                                                 size_t sizeInBytes, size_t *sizeWritten) {
    LtPref *p = pref_of(pref);
    if (!p) return CUBLAS_STATUS_INVALID_VALUE;
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return attr_write(p->search_mode, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return attr_write(p->max_workspace, buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return attr_write(p->align[0], buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return attr_write(p->align[1], buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return attr_write(p->align[2], buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return attr_write(p->align[3], buf, sizeInBytes, sizeWritten);
    case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: return attr_write(p->max_waves, buf, sizeInBytes, sizeWritten);
    default: return fail(NOTSUP, "cublasLtMatmulPreferenceGetAttribute", "attribute not implemented");
    }
}

// ------------------------------------------------------------------------------------------------- heuristic
// One algorithm (workspace 0, 1 wave) when the problem is implemented and the promised alignments suffice for
// its element types; otherwise no algorithm: *returnAlgoCount = 0 and NOT_SUPPORTED (INVALID_VALUE for a
// malformed problem), which dense.cu takes as "use the fallback kernel".
cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle,
                                                           cublasLtMatmulDesc_t operationDesc,
                                                           cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                           cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                           cublasLtMatmulPreference_t preference,
                                                           int requestedAlgoCount,
                                                           cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                           int *returnAlgoCount) {
    if (!live(lightHandle, Kind::Lt)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!returnAlgoCount || !heuristicResultsArray || requestedAlgoCount <= 0) return CUBLAS_STATUS_INVALID_VALUE;
    *returnAlgoCount = 0;
    LtDesc *d = desc_of(operationDesc);
    LtLayout *la = layout_of(Adesc), *lb = layout_of(Bdesc), *lc = layout_of(Cdesc), *ld = layout_of(Ddesc);
    if (!d || !la || !lb || !lc || !ld || (preference && !pref_of(preference))) return CUBLAS_STATUS_INVALID_VALUE;
    LtPref dflt, &p = preference ? *pref_of(preference) : dflt;
    Problem pr = resolve(*d, *la, *lb, *lc, *ld);
    if (pr.st != OK) return pr.st;
    // Guaranteed alignments must be whole elements; the bias pointer's own alignment counts (headers).
    const uint32_t es[4] = {la->type, lb->type, lc->type, ld->type};
    for (int i = 0; i < 4; i++)
        if (p.align[i] == 0 || p.align[i] % type_size((int32_t)es[i])) return NOTSUP;
    uint32_t bias_align = (uint32_t)type_size(pr.g.bias_type);
    if (pr.g.bias && d->bias) {
        if ((uintptr_t)d->bias % bias_align) return NOTSUP;
        bias_align = align_of(d->bias);
    }
    if (p.max_waves != 0.f && p.max_waves < 1.f) return NOTSUP;
    cublasLtMatmulHeuristicResult_t &res = heuristicResultsArray[0];
    memset(&res, 0, sizeof res);
    res.algo.data[0] = ALGO_MAGIC;
    for (int i = 0; i < 4; i++) res.algo.data[1 + i] = std::min<uint32_t>(p.align[i], 16);
    res.algo.data[5] = bias_align;
    res.workspaceSize = 0;
    res.state = CUBLAS_STATUS_SUCCESS;
    res.wavesCount = 1.f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

// -------------------------------------------------------------------------------------------------- the matmul
// D = epilogue(alpha op(A) op(B) + beta C [+ bias]); D may be C (then Cdesc and Ddesc must describe the same
// matrix). algo: one from cublasLtMatmulAlgoGetHeuristic (its promised alignments are checked) or NULL.
cublasStatus_t CUBLASWINAPI cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                                           const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                                           const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                                           const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                                           cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                                           void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
    const char *fn = "cublasLtMatmul";
    if (!live(lightHandle, Kind::Lt)) return CUBLAS_STATUS_NOT_INITIALIZED;
    LtDesc *d = desc_of(computeDesc);
    LtLayout *la = layout_of(Adesc), *lb = layout_of(Bdesc), *lc = layout_of(Cdesc), *ld = layout_of(Ddesc);
    if (!d || !la || !lb || !lc || !ld) return fail(INVAL, fn, "descriptor NULL or destroyed");
    Problem pr = resolve(*d, *la, *lb, *lc, *ld);
    if (pr.st != OK) return fail(pr.st, fn, pr.why);
    Gemm g = pr.g;
    if (!alpha || !beta) return fail(INVAL, fn, "NULL alpha or beta");
    g.scalars_on_device = d->pointer_mode == CUBLASLT_POINTER_MODE_DEVICE;
    if (g.scalars_on_device) {  // float scalars in device memory, read when the work runs
        if (!emu::device_range(alpha, 4, "cublasLtMatmul alpha") || !emu::device_range(beta, 4, "cublasLtMatmul beta"))
            return fail(INVAL, fn, "device-mode alpha/beta not in device memory");
        g.alpha_dev = static_cast<const float *>(alpha);
        g.beta_dev = static_cast<const float *>(beta);
    } else {
        g.alpha = *static_cast<const float *>(alpha);
        g.beta = *static_cast<const float *>(beta);
    }
    g.A.p = A, g.B.p = B, g.C.p = C, g.D = D;
    // Alignment: whole elements always; with a heuristic's algorithm, what its preference promised.
    const void *ptr[4] = {A, B, C, D};
    const LtLayout *lay[4] = {la, lb, lc, ld};
    for (int i = 0; i < 4; i++)
        if ((uintptr_t)ptr[i] % type_size((int32_t)lay[i]->type)) return fail(INVAL, fn, "operand misaligned");
    if (algo) {
        if (algo->data[0] != ALGO_MAGIC) return fail(INVAL, fn, "algorithm not from cublasLtMatmulAlgoGetHeuristic");
        for (int i = 0; i < 4; i++)
            if ((uintptr_t)ptr[i] % algo->data[1 + i])
                return fail(INVAL, fn, "operand less aligned than the heuristic's preference promised");
        if (g.bias && (uintptr_t)g.bias_p % algo->data[5])
            return fail(INVAL, fn, "bias pointer less aligned than the one the heuristic saw");
    }
    // Operands: A/B are read only when alpha may be nonzero, C only when beta may be nonzero.
    bool reads_ab = g.k > 0 && (g.scalars_on_device || g.alpha != 0.f);
    bool reads_c = g.scalars_on_device || g.beta != 0.f;
    int64_t b = g.batch;
    if (reads_ab && (!in_device(A, g.A.type, (int64_t)la->rows, (int64_t)la->cols, la->ld, b, la->batch_stride,
                                "cublasLtMatmul A") ||
                     !in_device(B, g.B.type, (int64_t)lb->rows, (int64_t)lb->cols, lb->ld, b, lb->batch_stride,
                                "cublasLtMatmul B")))
        return fail(INVAL, fn, "A or B outside device memory");
    if (reads_c && !in_device(C, g.C.type, g.m, g.n, lc->ld, b, lc->batch_stride, "cublasLtMatmul C"))
        return fail(INVAL, fn, "C outside device memory");
    if (!in_device(D, g.dtype, g.m, g.n, ld->ld, b, ld->batch_stride, "cublasLtMatmul D"))
        return fail(INVAL, fn, "D outside device memory");
    if (C == D && (lc->ld != ld->ld || lc->batch_stride != ld->batch_stride))
        return fail(INVAL, fn, "in place (C == D) with different C and D layouts");
    if (reads_c && C != D && g.m > 0 && g.n > 0) {  // out of place: C and D must not overlap
        int64_t clo, chi, dlo, dhi;
        extent(g.m, g.n, lc->ld, b, lc->batch_stride, &clo, &chi);
        extent(g.m, g.n, ld->ld, b, ld->batch_stride, &dlo, &dhi);
        size_t es = type_size(g.dtype);
        uintptr_t c0 = (uintptr_t)C + clo * es, c1 = (uintptr_t)C + chi * es;
        uintptr_t d0 = (uintptr_t)D + dlo * es, d1 = (uintptr_t)D + dhi * es;
        if (c0 < d1 && d0 < c1) return fail(INVAL, fn, "C and D overlap without being the same matrix");
    }
    if (g.bias && g.m > 0 &&
        !in_device(g.bias_p, g.bias_type, g.m, 1, g.m, b, g.bias_stride, "cublasLtMatmul bias"))
        return fail(INVAL, fn, "bias (m elements per batch) NULL or outside device memory");
    if (workspace && workspaceSizeInBytes &&
        !emu::device_range(workspace, workspaceSizeInBytes, "cublasLtMatmul workspace"))
        return fail(INVAL, fn, "workspace outside device memory");
    return gemm_submit(stream, g, fn);
}

}  // extern "C"
