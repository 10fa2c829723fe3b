// Shared state and helpers of the CUDA backend: the private backend struct (stream, cuBLAS/cuBLASLt/cuDNN handles,
// scratch, plan caches), the KT_CUDA_TRY error wrappers, and the op entry points each kernels/cuda/*.cu defines.
// Only kernels/cuda/ includes CUDA headers. Dims: B batch, T tokens, C channels, NH heads, HS head size, V vocab.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdint.h>

extern "C" {
#include "kernels/ops.h"
#include "kernels/profile.h"
}

// ------------------------------------------------------------------------------------------------------ errors
static inline KtStatus kt_cuda_check(cudaError_t e, const char *expr, const char *file, int line) {
    if (e == cudaSuccess) return KT_OK;
    return kt_fail(KT_ERR_CUDA, file, line, "%s:%d: %s failed: %s (%s)", file, line, expr, cudaGetErrorString(e),
                   cudaGetErrorName(e));
}
static inline KtStatus kt_cuda_check(cublasStatus_t e, const char *expr, const char *file, int line) {
    if (e == CUBLAS_STATUS_SUCCESS) return KT_OK;
    return kt_fail(KT_ERR_CUDA, file, line, "%s:%d: %s failed: cuBLAS %s", file, line, expr,
                   cublasGetStatusString(e));
}
static inline KtStatus kt_cuda_check(cudnnStatus_t e, const char *expr, const char *file, int line) {
    if (e == CUDNN_STATUS_SUCCESS) return KT_OK;
    return kt_fail(KT_ERR_CUDA, file, line, "%s:%d: %s failed: cuDNN %s", file, line, expr, cudnnGetErrorString(e));
}
// Every CUDA runtime / cuBLAS / cuDNN call goes through this; a failure becomes KT_ERR_CUDA with the call's text.
#define KT_CUDA_TRY(call) KT_TRY(kt_cuda_check((call), #call, __FILE__, __LINE__))
// After each kernel launch.
#define KT_CUDA_LAUNCHED() KT_CUDA_TRY(cudaGetLastError())

// ------------------------------------------------------------------------------------------------------- state
typedef struct CudaLtPlan CudaLtPlan;     // dense.cu: cached cublasLt descriptors + algorithm per GEMM shape
typedef struct CudaConvPlan CudaConvPlan; // conv.cu: cached cuDNN descriptors + algorithm per conv shape

typedef struct {
    void *ptr;
    size_t nbytes;
} CudaAllocRec;

typedef struct {
    void *ptr;   // an outgrown scratch buffer
    int graphs;  // live graphs that captured it
} CudaRetired;

typedef struct {
    int device;
    int sm_count;
    int cc_major, cc_minor;
    size_t smem_optin;          // max dynamic shared memory per block
    cudaStream_t stream;
    cudaStream_t side;          // kt_upload_side's copy stream and its last upload's event (made on first use)
    cudaEvent_t side_ev;
    cudaEvent_t fence_ev[KT_FENCES];  // kt_fence's events on `stream` (made on first use)
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cudnnHandle_t dnn;
    void *blas_ws;              // fixed cuBLAS/cuBLASLt workspace (graph capture needs a fixed one)
    size_t blas_ws_size;
    void *scratch;              // private scratch: grows on demand, never during graph capture
    size_t scratch_cap;
    cudaEvent_t *prof_ev;       // owned: 2 * KT_PROFILE_PENDING timing events for kt_profile_*, made on first use
    int scratch_graphs;         // live graphs captured while `scratch` was the scratch (they address it)
    CudaRetired *retired;       // outgrown scratch buffers that live graphs still address (freed with the last)
    int n_retired, cap_retired;
    void *dev_small;            // 256 bytes of device memory: counters and error flags
    void *host_small;           // 256 bytes of pinned host memory for their read-back
    bool capturing;
    int small_m_max;            // kt_linear rows up to which the weight-streaming kernel is used (<= 16)
    int conv_fuse;              // 16-bit convs with a bias (kt_conv2d, kt_conv2d_bias_relu) through cuDNN's fused
                                // conv-bias-activation: -1 where timed faster than the conv and its pass (default),
                                // 0 never, 1 wherever cuDNN runs it (ARGEN_CUDA_CONV_FUSE; conv.cu)
    int fused_rows;             // rows up to which LlamaGen's fused GEMV kernels run (llama_gemv.cu; <= 64, 0: never)
    bool pdl;                   // programmatic dependent launches (sm_90+; ARGEN_CUDA_PDL=0 turns them off)
    int cluster_rows;           // rows up to which LlamaGen's sampler shares a row over a thread-block cluster
                                // (llama_sample.cu)
    int window_cluster_tq;      // windows (SJD, ZipAR) of up to this many tokens run LlamaGen's attention prep and
                                // attention as one launch of clusters (llama.cu; 16 on sm_90, 0: two kernels)
                                // (sm_90+; ARGEN_CUDA_CLUSTER_ROWS, 0: never)
    CudaAllocRec *allocs;       // live allocations (for bytes_in_use on release)
    int n_allocs, cap_allocs;
    CudaLtPlan *plans;          // owned: GEMM plan cache
    int n_plans, cap_plans;
    CudaConvPlan *convs;        // owned: conv plan cache
    int n_convs, cap_convs;
    char name[512];
} CudaImpl;

static inline CudaImpl *cuda_impl(KtBackend *be) { return (CudaImpl *)be->impl; }
static inline cudaStream_t cuda_stream(KtBackend *be) { return cuda_impl(be)->stream; }

// Byte offsets inside dev_small.
enum { CUDA_SMALL_COUNT = 0, CUDA_SMALL_FLAG = 64 };

// backend_cuda.cu
KtStatus cuda_alloc_raw(KtBackend *be, void **ptr, size_t nbytes);
void cuda_release_raw(KtBackend *be, void *ptr);
// Returns at least `nbytes` of private scratch (256-byte aligned). Grows (synchronising first) when too small;
// fails with KT_ERR_UNSUPPORTED if it would have to grow during graph capture. An outgrown buffer that live graphs
// captured is kept (a graph replays with the addresses it captured) and freed with the last of them.
KtStatus cuda_scratch(KtBackend *be, size_t nbytes, void **ptr);
void cuda_plans_free(CudaImpl *c);   // dense.cu
void cuda_convs_free(CudaImpl *c);   // conv.cu

// Programmatic dependent launch (sm_90+). A kernel launched by cuda_launch_pdl may start before the previous kernel
// on the stream has finished: before pdl_wait() it may read only what no earlier kernel writes (weights); after it,
// it sees all earlier work (every kernel of such a chain waits, so completion is transitive). pdl_launch_dependents()
// lets the next kernel start its own prologue. Both are no-ops before sm_90 and in a plain launch.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#elif defined(ARGEN_CUDA_EMU)
    emu::pdl_waited();  // the emulated backend checks that every dependent launch waits (scripts/cuda_emu/backend)
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_pdl(KtBackend *be, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                                          A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = cuda_stream(be);
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = cuda_impl(be)->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

// A launch of grid.x / cluster_x thread-block clusters of cluster_x blocks each (sm_90+; grid.x a multiple of
// cluster_x, cluster_x <= 8), as a dependent launch when cuda_launch_pdl's would be.
template <typename... P, typename... A>
static inline cudaError_t cuda_launch_cluster(KtBackend *be, unsigned cluster_x, void (*kernel)(P...), dim3 grid,
                                              dim3 block, size_t smem, A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = cuda_stream(be);
    cudaLaunchAttribute attr[2];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = cluster_x;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[1].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = cuda_impl(be)->pdl ? 2 : 1;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

// Carves consecutive 256-byte-aligned pieces out of one scratch request.
typedef struct {
    size_t off;
} CudaCarve;
static inline size_t cuda_carve(CudaCarve *c, size_t nbytes) {
    size_t at = c->off;
    c->off += (nbytes + 255) / 256 * 256;
    return at;
}

// ----------------------------------------------------------------------------------------------------- helpers
static inline unsigned cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 0x7fffffff) b = 0x7fffffff;
    return (unsigned)b;
}
// Grid for a grid-stride loop: at most `cap` blocks.
static inline unsigned cuda_blocks_capped(int64_t n, int threads, int64_t cap) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > cap) b = cap;
    return (unsigned)b;
}
static inline bool cuda_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Block-wide sum; `sh` holds 32 floats. All threads get the result. blockDim.x must be a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.f;
    return warp_sum(v);
}
__device__ __forceinline__ double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(v);
}
__device__ __forceinline__ float block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

// Max that propagates NaN (a NaN anywhere in a softmax row makes the row NaN, as on the CPU).
__device__ __forceinline__ float nan_max(float a, float b) { return (b > a || b != b) ? b : a; }
__device__ __forceinline__ float warp_nan_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Loads of 16-bit or 32-bit floats as float.
__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
// Stores of float as 16-bit or 32-bit floats (round to nearest even).
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
// 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))) with the CPU reference's float operations in its order.
__device__ __forceinline__ float gelu_tanh_f(float v) {
    const float beta = 0.7978845608028654f, kappa = 0.044715f;
    float inner = __fmul_rn(beta, __fadd_rn(v, __fmul_rn(kappa, __fmul_rn(__fmul_rn(v, v), v))));
    return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.f, tanhf(inner)));
}
// N consecutive elements moved as one vector access (N * sizeof(T) bytes, that many aligned).
template <typename T, int N> struct alignas(N * sizeof(T)) CudaPack {
    T v[N];
};

// ------------------------------------------------------------------------------------------- op entry points
// dense.cu
KtStatus cuda_linear(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
KtStatus cuda_linear_gelu_tanh(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
KtStatus cuda_codebook_argmin(KtBackend *, KtTensor *idx, const KtTensor *z, const KtTensor *codebook);
KtStatus cuda_embedding(KtBackend *, KtTensor *y, const KtTensor *table, const KtTensor *idx);
KtStatus cuda_split_chunks(KtBackend *, KtTensor *y, const KtTensor *x);
// y (..., N) float32 += x . w^T through cuBLASLt (beta = 1, in place); *done = false when cuBLASLt does not take
// the shape (the caller then runs kt_linear and an add).
KtStatus cuda_linear_accumulate(KtBackend *be, bool *done, KtTensor *y, const KtTensor *x, const KtTensor *w);
// Converts n float32 values to `dt` (KT_BF16 / KT_F16) in dst.
KtStatus cuda_convert_f32(KtBackend *be, void *dst, KtDType dt, const float *src, int64_t n);
// Row-major fp32 batched GEMM on cuBLAS: C_i = alpha * A_i (M,K) . op(B_i) + beta * C_i, op(B) = B^T when
// b_trans (B_i (N,K)) else B (K,N). Leading dims lda/ldb/ldc are row strides. TF32 only when be->matmul_dtype != F32.
KtStatus cuda_gemm_f32_batched(KtBackend *be, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, int64_t sa, const float *Bm, int64_t ldb, int64_t sb, bool b_trans,
                               float beta, float *C, int64_t ldc, int64_t sc, int64_t batch);
// norm.cu
KtStatus cuda_layernorm(KtBackend *, KtTensor *y, const KtTensor *x, float eps);
KtStatus cuda_adaln_modulate(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                             const KtTensor *shift);
KtStatus cuda_layernorm_adaln(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                              const KtTensor *shift, float eps);
KtStatus cuda_gated_residual_layernorm_adaln(KtBackend *, KtTensor *y, KtTensor *x, const KtTensor *h,
                                             const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                             float eps);
KtStatus cuda_softmax(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_group_norm(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                         int groups, float eps);
KtStatus cuda_group_norm_silu(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                              int groups, float eps);
// Row softmax of rows (n_rows, n) in place with row stride `ld`, plus an optional additive bias (n_rows_bias, n)
// indexed by row % n_rows_bias (attention fallback).
KtStatus cuda_softmax_rows(KtBackend *be, float *x, int64_t n_rows, int64_t n, int64_t ld, const float *bias,
                           int64_t n_rows_bias);
// elementwise.cu
KtStatus cuda_gated_residual(KtBackend *, KtTensor *x, const KtTensor *h, const KtTensor *gate);
KtStatus cuda_gelu_tanh(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_silu(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_add(KtBackend *, KtTensor *y, const KtTensor *a, const KtTensor *b);
KtStatus cuda_axpby(KtBackend *, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b);
KtStatus cuda_cfg_combine(KtBackend *, KtTensor *y, const KtTensor *logits, float t);
KtStatus cuda_image_to_u8(KtBackend *, KtTensor *y, const KtTensor *x, KtTensor *nonfinite);
KtStatus cuda_count_nonfinite(KtBackend *, KtTensor *count, const KtTensor *x);
KtStatus cuda_convert(KtBackend *, KtTensor *y, const KtTensor *x);
// conv.cu
KtStatus cuda_conv2d(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                     const int pad[4]);
KtStatus cuda_conv2d_bias_relu(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                               int stride, const int pad[4]);
// resample.cu
KtStatus cuda_upsample_nearest2x(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_resize_bicubic(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_resize_area(KtBackend *, KtTensor *y, const KtTensor *x);
// attention.cu
KtStatus cuda_split_qkv_heads(KtBackend *, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv);
KtStatus cuda_var_attn_prep(KtBackend *, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                            const KtTensor *head_scale_log, int64_t t0);
KtStatus cuda_attention(KtBackend *, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                        int64_t kv_len, const KtTensor *bias, float scale);
KtStatus cuda_var_attention(KtBackend *, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                            const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias);
// attention_flash.cu: fused kernels; return KT_ERR_UNSUPPORTED (without a message) for shapes they do not cover.
KtStatus cuda_attention_flash_f32(KtBackend *be, float *out, const float *q, const float *k, const float *v,
                                  int64_t B, int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv_len,
                                  const float *bias, float scale);
// The fp16 tensor-core kernel. out: (B, Tq, NH*HS) in `odt` (float32, bf16 or fp16). With prep non-NULL it also does
// kt_var_attn_prep's work (VAR's step, softmax scale 1): q (B, NH, Tq, HS) is written from prep->qkv rather than
// read, and keys [t0, kv_len) come from prep->qkv (normalised in the kernel) and are written to k/v (the caches).
typedef struct {
    const float *qkv;  // (B, Tq, 3 NH HS)
    const float *head_scale_log;  // (NH)
    int64_t t0;        // first new position; kv_len = t0 + Tq
} CudaVarPrep;
KtStatus cuda_attention_flash_f16(KtBackend *be, void *out, KtDType odt, float *q, float *k, float *v, int64_t B,
                                  int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv_len, const float *bias,
                                  float scale, const CudaVarPrep *prep);
// sample.cu
KtStatus cuda_sample_top_k_top_p(KtBackend *, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                                 int64_t pos0, SmpParams params);
KtStatus cuda_smooth_embed(KtBackend *, KtTensor *h, const KtTensor *logits, const KtTensor *codebook, float ratio,
                           const KtTensor *image_ids, int64_t pos0, uint64_t seed);
// llama.cu (raster models)
KtStatus cuda_rmsnorm(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps);
KtStatus cuda_add_rmsnorm(KtBackend *, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps);
KtStatus cuda_swiglu(KtBackend *, KtTensor *y, const KtTensor *a);
KtStatus cuda_llama_attn_prep(KtBackend *, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                              const KtTensor *rope, const KtTensor *positions);
KtStatus cuda_attention_pos(KtBackend *, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                            const KtTensor *positions, float scale);
KtStatus cuda_llama_attention(KtBackend *, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                              const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions, float scale);
KtStatus cuda_l2_normalize(KtBackend *, KtTensor *y, const KtTensor *x);
// llama_sample.cu (raster models' sampler, step counter, window plan)
KtStatus cuda_sample_llama(KtBackend *, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                           const KtTensor *positions, SmpParams params);
KtStatus cuda_probs_llama(KtBackend *, KtTensor *probs, KtTensor *logits, SmpParams params);
KtStatus cuda_raster_step_inputs(KtBackend *, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                                 int64_t B);
KtStatus cuda_raster_step_commit(KtBackend *, KtTensor *seq, const KtTensor *sampled, KtTensor *step);
KtStatus cuda_raster_window_inputs(KtBackend *, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                   const KtTensor *seq);
KtStatus cuda_raster_window_commit(KtBackend *, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds);
// llama_gemv.cu (raster models at small batch; the compositions otherwise)
KtStatus cuda_rmsnorm_linear(KtBackend *, KtTensor *y, KtTensor *hn, const KtTensor *x, const KtTensor *nw,
                             const KtTensor *w, float eps);
KtStatus cuda_rmsnorm_linear_cfg(KtBackend *, KtTensor *lc, KtTensor *logits, KtTensor *hn, const KtTensor *x,
                                 const KtTensor *nw, const KtTensor *w, float eps, float t);
KtStatus cuda_rmsnorm_linear_swiglu(KtBackend *, KtTensor *g, KtTensor *a13, KtTensor *hn, const KtTensor *x,
                                    const KtTensor *nw, const KtTensor *w13, float eps);
KtStatus cuda_linear_residual(KtBackend *, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w);
// pool.cu (FID Inception-v3)
KtStatus cuda_fid_preprocess(KtBackend *, KtTensor *y, const KtTensor *x, KtFidResize mode);
KtStatus cuda_channel_affine_relu(KtBackend *, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                  const KtTensor *shift);
KtStatus cuda_max_pool2d(KtBackend *, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
KtStatus cuda_avg_pool2d(KtBackend *, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
KtStatus cuda_spatial_mean(KtBackend *, KtTensor *y, const KtTensor *x);
KtStatus cuda_copy_channels(KtBackend *, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n);
