// Stand-in for kernels/cuda/cuda_common.cuh: the emulation layer, the project's C API, the CudaImpl fields the
// extracted launchers read (sm_count, stream, window_cluster_tq), what the window attention's cluster launcher calls
// (cudaFuncSetAttribute: accepted; cudaGetLastError, cudaGetErrorString for its refusal path, never taken here:
// emu_pdl.h's cuda_launch_cluster succeeds), then the extracted text (gen_llama.inc) inside namespace emu_k.
#pragma once
#include "emu_cuda.h"
extern "C" {
#include "kernels/ops.h"
}
// the runtime's declarations (cuda_runtime_api.h, extern "C"), defined here: the suite links no CUDA library
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char *cudaGetErrorString(cudaError_t) { return "(emulated)"; }
namespace emu_k {

struct CudaImpl {
    int sm_count;
    cudaStream_t stream;
    int window_cluster_tq;  // windows of up to this many tokens: prep + attention as one cluster launch
};
template <typename F> inline cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) { return cudaSuccess; }
static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }
#define KT_CUDA_LAUNCHED() (void)0
#define KT_CUDA_TRY(call) KT_TRY((call) == cudaSuccess ? KT_OK : KT_FAIL(KT_ERR_CUDA, "%s failed", #call))
#include "emu_pdl.h"  // programmatic dependent launch stand-ins
#ifndef GEN_INC
#define GEN_INC "gen_llama.inc"
#endif
#include GEN_INC
}  // namespace emu_k
