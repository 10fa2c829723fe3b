// Stand-in for kernels/cuda/cuda_common.cuh for test_maps.cpp (the norm / elementwise / resample / dense / conv
// kernels): the emulation layer, the project's C API, the CudaImpl fields the extracted launchers read, host versions
// of the few CUDA runtime calls they make, and fakes for what cannot run here:
// - cuDNN (conv.cu): plan_get is a stub (the test chooses whether cuDNN "accepts" a shape) and
//   cudnnConvolutionForward a host reference convolution (double accumulation, rounded to the plan's dtype) on the
//   buffers run_conv prepared, so that run_conv's own kernels (input copy / padding, weight padding, the bias /
//   un-padding epilogue) run with their real launcher around it; the fused conv-bias-activation is never reached
//   (the plans have no bias/activation descriptors);
// - cuBLASLt (dense.cu): lt_matmul reports "no algorithm" (*done = false), so linear_impl takes its own kernels.
// Then the extracted text (gen_maps.inc) inside namespace emu_k.
#pragma once
#include "emu_cuda.h"

#include <sys/mman.h>

// emu_cuda.h's alignas form cannot follow `static` (what __shared__ becomes); the GNU attribute can.
#undef __align__
#define __align__(n) __attribute__((aligned(n)))

#include <map>
extern "C" {
#include "kernels/ops.h"
}

// ----------------------------------------------------------------------------- CUDA runtime calls, on host memory
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) {
    memset(p, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind, cudaStream_t) {
    memmove(d, s, n);
    return cudaSuccess;
}
// conv.cu's conv_tune times cuDNN's algorithms with events (never reached here: plan_get's plans are tuned); these
// let the suite link against a CPU-only build/libargen.a, which brings no CUDA runtime
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = nullptr;
    return cudaErrorNotSupported;
}
cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaErrorNotSupported; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaErrorNotSupported; }
cudaError_t cudaEventElapsedTime(float *, cudaEvent_t, cudaEvent_t) { return cudaErrorNotSupported; }
cudaError_t cudaGetLastError() { return cudaSuccess; }

namespace emu_k {
using std::isfinite;

// ---------------------------------------------------------------------------------------------------- launches
// Every launch of the extracted launchers goes through here (extract.py writes `emu::launch(...)`, which inside
// emu_k finds this namespace first; so do emu_pdl.h's cuda_launch_pdl and cuda_launch_cluster). Records the launch;
// in sparse mode runs only blocks 0 and grid-1 (each as a one-block grid whose body restores the real gridDim /
// blockIdx), for the index checks at sizes that cannot run.
struct LaunchRec {
    dim3 grid, block;
    size_t smem;
};
inline std::vector<LaunchRec> g_launches;
inline bool g_sparse = false;
namespace emu {
using namespace ::emu;
inline void launch(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    g_launches.push_back({grid, block, smem});
    if (!g_sparse) {
        ::emu::launch(grid, block, smem, body);
        return;
    }
    long nb = (long)grid.x * grid.y * grid.z;
    for (long bi : {0L, nb - 1}) {
        uint3 bid{(unsigned)(bi % grid.x), (unsigned)(bi / grid.x % grid.y), (unsigned)(bi / ((long)grid.x * grid.y))};
        std::function<void()> one = [&] {
            gridDim = grid, blockIdx = bid;
            body();
        };
        ::emu::launch(dim3(1), block, smem, one);
        if (nb == 1) break;
    }
}
inline void launch_cluster(dim3 grid, dim3 block, size_t smem, unsigned cluster_x, const std::function<void()> &body) {
    g_launches.push_back({grid, block, smem});
    if (g_sparse) {  // a cluster's blocks run together: not cut down to single blocks
        ::emu::note("sparse mode: a cluster launch is not emulated");
        ::emu::g_errors++;
        return;
    }
    ::emu::launch_cluster(grid, block, smem, cluster_x, body);
}
}  // namespace emu

// --------------------------------------------------------------------------------------------- backend state
struct FakeDnn;
typedef FakeDnn *cudnnHandle_t;
struct CudaImpl {
    int sm_count;
    cudaStream_t stream;
    size_t smem_optin;
    int small_m_max;
    void *dev_small;  // 256 bytes: counters and flags
    bool capturing;
    cudnnHandle_t dnn;
    int conv_fuse;
};
static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }
enum { CUDA_SMALL_COUNT = 0, CUDA_SMALL_FLAG = 64 };

#define KT_CUDA_TRY(call) KT_TRY(emu_k::emu_check((call), #call))
#define KT_CUDA_LAUNCHED() (void)0
#include "emu_pdl.h"  // programmatic dependent launch stand-ins

// Private scratch: one host buffer, grown on demand (256-byte aligned), refilled with 0xFF bytes (NaN) on every
// request so that reads of scratch nobody wrote show. In sparse mode: a MAP_NORESERVE mapping (untouched pages read 0).
inline char *g_scratch = nullptr;
inline size_t g_scratch_cap = 0;
inline bool g_scratch_mapped = false;
inline size_t g_scratch_asked = 0;
static inline KtStatus cuda_scratch(KtBackend *, size_t nbytes, void **ptr) {
    g_scratch_asked = nbytes;
    if (g_sparse) {
        if (g_scratch && !g_scratch_mapped) free(g_scratch), g_scratch = nullptr, g_scratch_cap = 0;
        if (nbytes > g_scratch_cap) {
            if (g_scratch) munmap(g_scratch, g_scratch_cap);
            void *p = mmap(nullptr, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) return KT_FAIL(KT_ERR_OOM, "emu scratch: mmap of %zu bytes failed", nbytes);
            g_scratch = (char *)p, g_scratch_cap = nbytes, g_scratch_mapped = true;
        }
        *ptr = g_scratch;
        return KT_OK;
    }
    if (g_scratch_mapped) munmap(g_scratch, g_scratch_cap), g_scratch = nullptr, g_scratch_cap = 0, g_scratch_mapped = false;
    if (nbytes > g_scratch_cap) {
        free(g_scratch);
        g_scratch_cap = (nbytes + 255) / 256 * 256;
        g_scratch = (char *)aligned_alloc(256, g_scratch_cap);
    }
    memset(g_scratch, 0xFF, nbytes);
    *ptr = g_scratch;
    return KT_OK;
}

// ----------------------------------------------------------------------------------------------- fake cuDNN
typedef enum { CUDNN_STATUS_SUCCESS = 0, CUDNN_STATUS_NOT_SUPPORTED = 9 } cudnnStatus_t;
typedef enum { CUDNN_DEFAULT_MATH = 0, CUDNN_TENSOR_OP_MATH = 1, CUDNN_FMA_MATH = 3 } cudnnMathType_t;
typedef enum {
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
    CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8
} cudnnConvolutionFwdAlgo_t;
struct FakeDesc;
typedef FakeDesc *cudnnTensorDescriptor_t, *cudnnFilterDescriptor_t, *cudnnConvolutionDescriptor_t;
struct FakeAct;
typedef FakeAct *cudnnActivationDescriptor_t;
typedef struct {
    cudnnConvolutionFwdAlgo_t algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
    int determinism;
    cudnnMathType_t mathType;
} cudnnConvolutionFwdAlgoPerf_t;

static inline KtStatus emu_check(cudaError_t e, const char *expr) {
    return e == cudaSuccess ? KT_OK : KT_FAIL(KT_ERR_CUDA, "%s failed (%d)", expr, (int)e);
}
static inline KtStatus emu_check(cudnnStatus_t e, const char *expr) {
    return e == CUDNN_STATUS_SUCCESS ? KT_OK : KT_FAIL(KT_ERR_CUDA, "%s failed: cuDNN %d", expr, (int)e);
}

// cudaFuncSetAttribute (cuda_runtime.h's template form): records the largest dynamic shared memory size per kernel.
inline std::map<const void *, int> g_smem_attr;
template <typename F> inline cudaError_t cudaFuncSetAttribute(F *f, cudaFuncAttribute attr, int v) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) g_smem_attr[(const void *)f] = v;
    return cudaSuccess;
}

struct CudaConvPlan;
// conv.cu's plan cache (cuDNN descriptors + algorithm) is not extracted: this stub returns a plan for the key with
// ok = g_dnn_accepts (cuDNN has an algorithm) and tuned = true (no cudnnFind timing).
static KtStatus plan_get(KtBackend *be, CudaConvPlan **out, const CudaConvPlan *key);
// dense.cu's cuBLASLt call: "no algorithm" (the caller then takes its fallback kernels).
static KtStatus lt_matmul(KtBackend *, bool *done, void *, KtDType, const void *, const void *, const void *, int64_t,
                          int64_t, int64_t, KtDType, bool, float = 0.f) {
    *done = false;
    return KT_OK;
}
inline bool g_dnn_accepts = true;   // plan_get: cuDNN has an algorithm for the shape
inline bool g_dnn_fails_run = false;  // cudnnConvolutionForward refuses (run_conv then reports `refused`)
inline long g_dnn_calls = 0;
inline const CudaConvPlan *g_cur_plan = nullptr;
static cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t, cudnnMathType_t) {
    return CUDNN_STATUS_SUCCESS;
}
static cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t, cudnnTensorDescriptor_t, const void *,
                                                            cudnnFilterDescriptor_t, const void *,
                                                            cudnnConvolutionDescriptor_t, cudnnTensorDescriptor_t,
                                                            void *, int, int *n, cudnnConvolutionFwdAlgoPerf_t *,
                                                            void *, size_t) {
    *n = 0;
    return CUDNN_STATUS_NOT_SUPPORTED;
}
static cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *x,
                                             cudnnFilterDescriptor_t, const void *w, cudnnConvolutionDescriptor_t,
                                             cudnnConvolutionFwdAlgo_t, void *, size_t, const void *,
                                             cudnnTensorDescriptor_t, void *y);
// The fused conv-bias-activation: never reached here (plan_get's plans have no bias/activation descriptors, so
// run_conv takes the conv and its finishing pass, the kernels under test). The backend emulator runs the fused call.
static cudnnStatus_t cudnnConvolutionBiasActivationForward(cudnnHandle_t, const void *, cudnnTensorDescriptor_t,
                                                           const void *, cudnnFilterDescriptor_t, const void *,
                                                           cudnnConvolutionDescriptor_t, cudnnConvolutionFwdAlgo_t,
                                                           void *, size_t, const void *, cudnnTensorDescriptor_t,
                                                           const void *, cudnnTensorDescriptor_t, const void *,
                                                           cudnnActivationDescriptor_t, cudnnTensorDescriptor_t,
                                                           void *) {
    return CUDNN_STATUS_NOT_SUPPORTED;
}
static const char *cudnnGetErrorString(cudnnStatus_t) { return "CUDNN_STATUS_NOT_SUPPORTED (fake cuDNN)"; }

#ifndef GEN_INC
#define GEN_INC "gen_maps.inc"
#endif
#include GEN_INC

// ------------------------------------------------------------------------------------- stubs needing the plan type
static KtStatus plan_get(KtBackend *, CudaConvPlan **out, const CudaConvPlan *key) {
    static std::vector<CudaConvPlan *> plans;  // leaked on purpose: a handful per run
    CudaConvPlan *p = new CudaConvPlan(*key);
    plans.push_back(p);
    p->ok = g_dnn_accepts;
    p->tuned = true;
    p->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    p->ws = 0;
    g_cur_plan = p;
    *out = p;
    return KT_OK;
}

template <typename T> static float ld_f(const void *p, int64_t i) { return to_f32(((const T *)p)[i]); }
// y (B, Ho, Wo, Cop) = x (B, Hp, Wp, Cip) (*) w (Cop, kh, kw, Cip), NHWC, cuDNN's symmetric padding (0 when the plan
// pads explicitly), in the plan's dtype; double accumulation, one rounding. In sparse mode: nothing (sizes too big).
static cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t, const void *, cudnnTensorDescriptor_t, const void *x,
                                             cudnnFilterDescriptor_t, const void *w, cudnnConvolutionDescriptor_t,
                                             cudnnConvolutionFwdAlgo_t, void *, size_t, const void *,
                                             cudnnTensorDescriptor_t, void *y) {
    g_dnn_calls++;
    if (g_dnn_fails_run) return CUDNN_STATUS_NOT_SUPPORTED;
    const CudaConvPlan &p = *g_cur_plan;
    if (g_sparse) {  // sizes too big to compute: a pattern in the first and last 2^20 outputs (sparse_pattern)
        int64_t ny = p.B * p.Ho * p.Wo * p.Cop, R = (int64_t)1 << 20;
        for (int64_t i = 0; i < ny; i = (i == R - 1 && ny - R > i + 1) ? ny - R : i + 1) {
            float v = (float)(i % 251 - 125);
            if (p.dt == KT_BF16) ((__nv_bfloat16 *)y)[i] = __float2bfloat16_rn(v);
            else if (p.dt == KT_F16) ((__half *)y)[i] = __float2half_rn(v);
            else ((float *)y)[i] = v;
        }
        return CUDNN_STATUS_SUCCESS;
    }
    int ph = p.explicit_pad ? 0 : p.pad[0], pw = p.explicit_pad ? 0 : p.pad[2];
    float (*ld)(const void *, int64_t) = p.dt == KT_BF16 ? ld_f<__nv_bfloat16> : p.dt == KT_F16 ? ld_f<__half> : ld_f<float>;
    for (int64_t b = 0; b < p.B; b++)
        for (int64_t oy = 0; oy < p.Ho; oy++)
            for (int64_t ox = 0; ox < p.Wo; ox++)
                for (int64_t o = 0; o < p.Cop; o++) {
                    double acc = 0;
                    for (int64_t ky = 0; ky < p.kh; ky++)
                        for (int64_t kx = 0; kx < p.kw; kx++) {
                            int64_t iy = oy * p.stride - ph + ky, ix = ox * p.stride - pw + kx;
                            if (iy < 0 || iy >= p.Hp || ix < 0 || ix >= p.Wp) continue;
                            for (int64_t c = 0; c < p.Cip; c++)
                                acc += (double)ld(x, ((b * p.Hp + iy) * p.Wp + ix) * p.Cip + c) *
                                       ld(w, ((o * p.kh + ky) * p.kw + kx) * p.Cip + c);
                        }
                    int64_t i = ((b * p.Ho + oy) * p.Wo + ox) * p.Cop + o;
                    if (p.dt == KT_BF16) ((__nv_bfloat16 *)y)[i] = __float2bfloat16_rn((float)acc);
                    else if (p.dt == KT_F16) ((__half *)y)[i] = __float2half_rn((float)acc);
                    else ((float *)y)[i] = (float)acc;
                }
    return CUDNN_STATUS_SUCCESS;
}

}  // namespace emu_k
