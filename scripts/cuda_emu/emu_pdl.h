// Programmatic dependent launch stand-ins (cuda_common.cuh's pdl_wait, pdl_launch_dependents, cuda_launch_pdl) for
// the kernel suites' shims: launches run one after another here, which the attribute allows. Included inside
// namespace emu_k, after the shim's cuda_impl, so `emu::launch` is the shim's (emu_shim_maps.h records launches).
#pragma once

static inline void pdl_wait() {}
static inline void pdl_launch_dependents() {}
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_pdl(KtBackend *, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                          A... args) {
    emu::launch(grid, block, smem, [&] { kernel(args...); });
    return cudaSuccess;
}
