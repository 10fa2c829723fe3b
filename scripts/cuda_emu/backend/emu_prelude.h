// Force-included (g++ -include) before every kernels/cuda/*.cu file that gen_backend.py turned into C++: the real
// CUDA / cuBLAS / cuDNN headers for the types and host prototypes (the functions themselves come from
// emu_runtime.cpp, emu_blas.cpp and emu_dnn.cpp), then the execution-model emulation (emu_cuda.h: threads as
// fibers, barriers, warp exchanges; emu_mma.h: the PTX tensor-core helpers; emu_cub.h: CUB's block primitives), and
// emu::launch_on, which every `kernel<<<grid, block, smem, stream>>>(args)` becomes.
#pragma once
#include "emu_backend.h"

#include "emu_cuda.h"
#include "emu_cub.h"
#include "emu_mma.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <tuple>
#include <type_traits>
#include <utility>

// emu_cuda.h's alignas form cannot follow `static` (what __shared__ becomes); the GNU attribute can.
#undef __align__
#define __align__(n) __attribute__((aligned(n)))

// Host forms of what nvcc provides for device code and the C++ API of cuda_runtime.h that is nvcc-only.
inline float __double2float_rn(double x) { return (float)x; }
template <typename T> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, T *kernel) {
    return cudaFuncGetAttributes(attr, (const void *)kernel);
}

namespace emu {

// Checks a launch's configuration as the GPU would (block size, grid size, cluster size: 8 blocks, 16 with the
// kernel's cudaFuncAttributeNonPortableClusterSizeAllowed; dynamic shared memory against the kernel's
// cudaFuncSetAttribute limit); a bad one sets the error cudaGetLastError returns, as on the GPU. The
// limit is kept per kernel name, not per instantiation (a launch cannot always name its instantiation: the arguments
// choose it), so a launcher that raises the limit of one instantiation and launches another is not caught.
bool launch_config_ok(const char *name, dim3 grid, dim3 block, size_t smem, unsigned cluster_x = 1);
cudaError_t set_smem_limit(const char *name, cudaFuncAttribute attr, int value);
// Kernel names by function pointer, for launches that pass a pointer (cudaLaunchKernelEx): a kernel's name is the
// one its cudaFuncSetAttribute call gave it (the limit's key), else "(cudaLaunchKernelEx)".
inline std::map<const void *, const char *> &fn_names() {
    static std::map<const void *, const char *> m;
    return m;
}
template <typename T> inline cudaError_t func_set_attribute(const char *name, T *fn, cudaFuncAttribute attr, int value) {
    fn_names()[(const void *)fn] = name;
    return set_smem_limit(name, attr, value);
}
// Runs one launch now (blocks, or clusters of cluster_x blocks, in the schedule's order, see emu_cuda.h) and turns
// what the emulator detected (a deadlock, a shuffle outside its mask, cp.async copies left pending; for a dependent
// launch, `pdl`, no thread that reached pdl_wait) into a sticky launch failure.
void run_launch(const char *name, dim3 grid, dim3 block, size_t smem, unsigned cluster_x, bool pdl,
                const std::function<void()> &body);
// cuda_common.cuh's pdl_wait() in the emulated backend: notes that the running launch waited for the work before it.
// A dependent launch (programmatic stream serialization) none of whose threads waits could finish before the kernel
// it overlaps, and the next dependent launch's wait would then not cover that kernel: the chain's transitivity, which
// the backend's dependent launches rely on (cuda_common.cuh), needs every one of them to wait.
void pdl_waited();

// kernel<<<grid, block, smem, stream>>>(args...) becomes launch_on(stream, grid, block, smem, "kernel",
// [](auto... a) { kernel(a...); }, args...): the arguments are copied now (as the GPU copies them at
// launch), so a launch recorded into a graph replays with the values of its launch; the call converts them to the
// kernel's parameter types (and deduces a template kernel's arguments) as the original call did. launch_cluster_on:
// the same as a launch of clusters of cluster_x blocks.
// launch_ex_on: either, as a dependent launch when `pdl`.
template <typename F, typename... A>
inline void launch_ex_on(cudaStream_t stream, unsigned cluster_x, bool pdl, dim3 grid, dim3 block, size_t smem,
                         const char *name, F call, A &&...args) {
    if (!launch_config_ok(name, grid, block, smem, cluster_x)) return;
    std::tuple<std::decay_t<A>...> copied(std::forward<A>(args)...);
    stream_work(stream,
                [=] { run_launch(name, grid, block, smem, cluster_x, pdl, [&] { std::apply(call, copied); }); }, name);
}
template <typename F, typename... A>
inline void launch_cluster_on(cudaStream_t stream, unsigned cluster_x, dim3 grid, dim3 block, size_t smem,
                              const char *name, F call, A &&...args) {
    launch_ex_on(stream, cluster_x, false, grid, block, smem, name, call, std::forward<A>(args)...);
}
template <typename F, typename... A>
inline void launch_on(cudaStream_t stream, dim3 grid, dim3 block, size_t smem, const char *name, F call,
                      A &&...args) {
    launch_ex_on(stream, 1, false, grid, block, smem, name, call, std::forward<A>(args)...);
}

// cudaLaunchKernelEx(config, kernel, args...) (the C++ template of cuda_runtime.h, renamed below): launch_on with the
// configuration's grid, block, shared memory and stream. The attributes are checked to be ones the backend sets:
// programmatic stream serialization (the kernel may start before the previous one ends; here every launch runs
// after the previous one, which that attribute allows, and run_launch checks that the kernel waited: pdl_waited) and
// the cluster dimension (x only: the launch runs as
// clusters, emu_cuda.h). It returns the launch error, as the GPU's call does.
template <typename... P, typename... A>
inline cudaError_t launch_kernel_ex(const cudaLaunchConfig_t *cfg, void (*kernel)(P...), A &&...args) {
    unsigned cluster_x = 1;
    bool pdl = false;
    for (unsigned i = 0; i < cfg->numAttrs; i++) {
        const cudaLaunchAttribute &a = cfg->attrs[i];
        if (a.id == cudaLaunchAttributeProgrammaticStreamSerialization) {
            pdl = a.val.programmaticStreamSerializationAllowed != 0;
            continue;
        }
        if (a.id == cudaLaunchAttributeClusterDimension) {
            if (a.val.clusterDim.y != 1 || a.val.clusterDim.z != 1) {
                fprintf(stderr, "[emu] cudaLaunchKernelEx: cluster dimension (%u,%u,%u): only x is emulated\n",
                        a.val.clusterDim.x, a.val.clusterDim.y, a.val.clusterDim.z);
                abort();
            }
            cluster_x = a.val.clusterDim.x;
            continue;
        }
        fprintf(stderr, "[emu] cudaLaunchKernelEx: launch attribute %d is not emulated\n", (int)a.id);
        abort();
    }
    // ARGEN_EMU_REFUSE_CLUSTERS=1: a cluster launch fails, as on a device that refuses it (the launcher's fallback)
    if (cluster_x > 1 && getenv("ARGEN_EMU_REFUSE_CLUSTERS")) return cudaErrorNotSupported;
    auto it = fn_names().find((const void *)kernel);
    const char *name = it == fn_names().end() ? "(cudaLaunchKernelEx)" : it->second;
    launch_ex_on(cfg->stream, cluster_x, pdl, cfg->gridDim, cfg->blockDim, cfg->dynamicSmemBytes, name,
                 [kernel](auto... a) { kernel(a...); }, std::forward<A>(args)...);
    return cudaGetLastError();
}

}  // namespace emu
#define cudaLaunchKernelEx emu::launch_kernel_ex
