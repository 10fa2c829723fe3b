// Stand-in for kernels/cuda/cuda_common.cuh for VAR's attention kernels (attention_flash.cu, attention.cu and norm.cu's
// row softmax): the emulation layer (emu_cuda.h, emu_mma.h for the PTX helpers), the project's C API, the CudaImpl
// fields the extracted launchers read (sm_count, smem_optin, stream), host stand-ins for the backend services the
// launchers call (cudaFuncSetAttribute, cuda_scratch, and cuBLAS's cuda_gemm_f32_batched: plain loops), then the
// extracted text (gen_var.inc, extract_var.py) inside namespace emu_k.
#pragma once
#include "emu_cuda.h"
#include "emu_mma.h"
extern "C" {
#include "kernels/ops.h"
}
#include <map>

namespace emu_k {

struct CudaImpl {
    int sm_count;
    size_t smem_optin;
    cudaStream_t stream;
};
static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }
static inline KtStatus emu_cuda_check(cudaError_t e, const char *expr) {
    return e == cudaSuccess ? KT_OK : KT_FAIL(KT_ERR_CUDA, "emu: %s failed (%d)", expr, (int)e);
}
#define KT_CUDA_TRY(call) KT_TRY(emu_k::emu_cuda_check((call), #call))
#define KT_CUDA_LAUNCHED() (void)0

// cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize, n): recorded per kernel (the test checks the launch's
// dynamic size against it and names the kernel that ran).
struct AttrCall {
    const void *fn;
    int value;
};
inline std::vector<AttrCall> g_attr;
template <typename F> cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
    if (value < 0 || value > 232448) return cudaErrorInvalidValue;  // H100/H200: 227 KiB opt-in
    g_attr.push_back(AttrCall{(const void *)fn, value});
    return cudaSuccess;
}

// Scratch: a host buffer (poisoned with NaN bytes on every request: reads before writes show).
inline std::vector<unsigned char> g_scratch;
static inline KtStatus cuda_scratch(KtBackend *, size_t nbytes, void **ptr) {
    g_scratch.assign(nbytes + 256, 0xFF);
    uintptr_t p = ((uintptr_t)g_scratch.data() + 255) / 256 * 256;
    *ptr = (void *)p;
    return KT_OK;
}

// cuBLAS stand-in (not the code under test): C_i = alpha A_i (M,K) . op(B_i) + beta C_i, row-major with row strides
// lda/ldb/ldc and batch strides sa/sb/sc; each dot product summed in double, rounded once (cuBLAS: fp32, or TF32
// when the matmul dtype is 16-bit).
inline long g_gemm_calls = 0;
static inline KtStatus cuda_gemm_f32_batched(KtBackend *, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                                             int64_t lda, int64_t sa, const float *Bm, int64_t ldb, int64_t sb,
                                             bool b_trans, float beta, float *C, int64_t ldc, int64_t sc,
                                             int64_t batch) {
    g_gemm_calls++;
    for (int64_t i = 0; i < batch; i++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)A[i * sa + m * lda + k] * (b_trans ? Bm[i * sb + n * ldb + k] : Bm[i * sb + k * ldb + n]);
                float *c = C + i * sc + m * ldc + n;
                *c = (float)(alpha * s + (beta != 0.f ? (double)beta * *c : 0.0));
            }
    return KT_OK;
}

#ifndef GEN_INC
#define GEN_INC "gen_var.inc"
#endif
#include GEN_INC
}  // namespace emu_k
