// Programmatic dependent launch and cluster launch stand-ins (cuda_common.cuh's pdl_wait, pdl_launch_dependents,
// cuda_launch_pdl, cuda_launch_cluster) for the kernel suites' shims: launches run one after another here, which the
// PDL attribute allows. Included inside namespace emu_k, after the shim's cuda_impl, so `emu::launch` and
// `emu::launch_cluster` are the shim's where it has them (emu_shim_maps.h records launches).
#pragma once

static inline void pdl_wait() {}
static inline void pdl_launch_dependents() {}
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_pdl(KtBackend *, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                          A... args) {
    emu::launch(grid, block, smem, [&] { kernel(args...); });
    return cudaSuccess;
}
// grid.x / cluster_x clusters of cluster_x blocks (a bad configuration is an emulator error, nothing runs)
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_cluster(KtBackend *, unsigned cluster_x, void (*kernel)(P...), dim3 grid,
                                              dim3 block, size_t smem, A... args) {
    emu::launch_cluster(grid, block, smem, cluster_x, [&] { kernel(args...); });
    return cudaSuccess;
}
