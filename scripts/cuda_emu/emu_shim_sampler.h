// Stand-in for what kernels/cuda/{sample.cu, llama.cu}'s samplers get from outside their extracted text (see
// extract_sampler.py): the emulation layer, CUB (emu_cub.h), samplers/philox.h, the project's C API, and the parts of
// cuda_common.cuh the launchers read: CudaImpl's sm_count / smem_optin / stream / dev_small, the dev_small offsets,
// KT_CUDA_TRY, and cudaFuncSetAttribute (recorded, checked against the device's opt-in limit). Then the extracted text
// (gen_sampler.inc, or a mutant's) inside namespace emu_k.
#pragma once
#include "emu_cuda.h"
#include "emu_cub.h"
extern "C" {
#include "kernels/ops.h"
}
#include "samplers/philox.h"

// the cluster launcher's refusal path (never taken here: emu_pdl.h's cuda_launch_cluster succeeds); these let the
// suite link against a CPU-only build/libargen.a, which brings no CUDA runtime
cudaError_t cudaGetLastError() { return cudaSuccess; }
const char *cudaGetErrorString(cudaError_t) { return "(emulated)"; }

namespace emu_k {

using std::isfinite;  // CUDA's math API has them unqualified in device code
using std::isinf;
using std::isnan;

struct CudaImpl {
    int sm_count;
    size_t smem_optin;  // max dynamic shared memory per block (H100: 227 KiB)
    cudaStream_t stream;
    void *dev_small;  // 256 bytes: counters and error flags
    bool pdl;
    int cluster_rows;  // LlamaGen's sampler on a thread-block cluster up to this many rows
};
static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }
enum { CUDA_SMALL_COUNT = 0, CUDA_SMALL_FLAG = 64 };

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): the last value set (any kernel)
// and the count of calls beyond the device limit (an error on the GPU).
struct FuncAttr {
    long calls = 0, over_limit = 0;
    int last = 0;
    size_t limit = 232448;
};
inline FuncAttr g_attr;
template <typename F> inline cudaError_t cudaFuncSetAttribute(F, int attr, int value) {
    g_attr.calls++;
    g_attr.last = value;
    if (attr == (int)cudaFuncAttributeMaxDynamicSharedMemorySize && (value < 0 || (size_t)value > g_attr.limit)) {
        g_attr.over_limit++;
        emu::note("cudaFuncSetAttribute: %d bytes of dynamic shared memory exceed the device's %zu", value,
                  g_attr.limit);
        emu::g_errors++;
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
template <typename F> inline cudaError_t cudaFuncSetAttribute(F f, cudaFuncAttribute attr, int value) {
    return cudaFuncSetAttribute(f, (int)attr, value);
}
#define KT_CUDA_TRY(call)                                                                          \
    do {                                                                                           \
        if ((call) != cudaSuccess) return KT_FAIL(KT_ERR_CUDA, "%s failed (emulated)", #call);     \
    } while (0)
#define KT_CUDA_LAUNCHED() (void)0
#include "emu_pdl.h"  // programmatic dependent launch stand-ins

#ifndef GEN_INC
#define GEN_INC "gen_sampler.inc"
#endif
#include GEN_INC
}  // namespace emu_k
