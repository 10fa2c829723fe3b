// Stand-in for kernels/cuda/cuda_common.cuh: the emulation layer, the project's C API, the CudaImpl fields the
// extracted launchers read (sm_count, stream), then the extracted text (gen_llama.inc) inside namespace emu_k.
#pragma once
#include "emu_cuda.h"
extern "C" {
#include "kernels/ops.h"
}
namespace emu_k {

struct CudaImpl {
    int sm_count;
    cudaStream_t stream;
};
static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }
#define KT_CUDA_LAUNCHED() (void)0
#define KT_CUDA_TRY(call) KT_TRY((call) == cudaSuccess ? KT_OK : KT_FAIL(KT_ERR_CUDA, "%s failed", #call))
// Programmatic dependent launch (cuda_common.cuh): launches run one after another here, which the attribute allows.
static inline void pdl_wait() {}
static inline void pdl_launch_dependents() {}
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_pdl(KtBackend *, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                          A... args) {
    emu::launch(grid, block, smem, [&] { kernel(args...); });
    return cudaSuccess;
}
#ifndef GEN_INC
#define GEN_INC "gen_llama.inc"
#endif
#include GEN_INC
}  // namespace emu_k
