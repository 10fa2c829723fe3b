// Private interface of the CPU reference backend: the per-family op implementations wired into the vtable by
// backend_cpu.c, and the shared helpers (grow-only scratch, thread count, GEMM size checks).
// Ops here assume their arguments were validated by kernels/ops.c.
// Determinism rule: every output element is computed by one thread in a fixed order, so results never depend on the
// number of OpenMP threads. OpenBLAS runs single-threaded (its threaded driver splits K differently from its serial
// one); GEMMs are parallelised here over a tile grid that depends only on the problem shape (cpu_sgemm).
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// Largest scratch chunk a single op asks for when it can work in pieces (conv im2col, codebook distances).
#define CPU_CHUNK_BYTES ((size_t)8 << 20)

// Grow-only scratch owned by the backend: returns at least `nbytes`, 64-byte aligned. Contents are not preserved
// across calls. Grows with one allocation to the new high-water mark (counted in be->n_allocs).
KtStatus cpu_scratch(KtBackend *be, size_t nbytes, void **out);

static inline int cpu_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static inline int cpu_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// OpenBLAS takes int dimensions.
static inline KtStatus cpu_blas_dims(const char *op, int64_t a, int64_t b, int64_t c) {
    if (a > INT_MAX || b > INT_MAX || c > INT_MAX)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: dimension exceeds the BLAS int range (%lld, %lld, %lld)", op,
                       (long long)a, (long long)b, (long long)c);
    return KT_OK;
}

// dense.c
// C (M, N) = alpha * A (M, K) @ op(B) + beta * C, op(B) = B^T for B (N, K) when trans_b, else B (K, N); lda/ldb/ldc
// are row strides. Tiles of C run in parallel, one serial OpenBLAS call each. Must not be called inside a parallel
// region. Dimensions must pass cpu_blas_dims.
void cpu_sgemm(bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
KtStatus cpu_linear(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
KtStatus cpu_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
KtStatus cpu_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx);
KtStatus cpu_split_chunks(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_cfg_combine(KtBackend *be, KtTensor *y, const KtTensor *logits, float t);
KtStatus cpu_codebook_argmin(KtBackend *be, KtTensor *idx, const KtTensor *z, const KtTensor *codebook);

// norm.c
KtStatus cpu_layernorm(KtBackend *be, KtTensor *y, const KtTensor *x, float eps);
KtStatus cpu_adaln_modulate(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift);
KtStatus cpu_layernorm_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                             const KtTensor *shift, float eps);
KtStatus cpu_gated_residual(KtBackend *be, KtTensor *x, const KtTensor *h, const KtTensor *gate);
KtStatus cpu_gated_residual_layernorm_adaln(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h,
                                            const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                            float eps);
KtStatus cpu_group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                        int groups, float eps);
KtStatus cpu_group_norm_silu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int groups, float eps);

// elementwise.c
KtStatus cpu_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_silu(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_add(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b);
KtStatus cpu_axpby(KtBackend *be, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b);
KtStatus cpu_softmax(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_image_to_u8(KtBackend *be, KtTensor *y, const KtTensor *x, KtTensor *nonfinite);
KtStatus cpu_count_nonfinite(KtBackend *be, KtTensor *count, const KtTensor *x);
KtStatus cpu_convert(KtBackend *be, KtTensor *y, const KtTensor *x);
// Softmax of one row in place (max subtracted; an all -inf row becomes all zeros). Shared with attention.c.
void cpu_softmax_row(float *row, int64_t n);

// conv.c
KtStatus cpu_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b, int stride,
                    const int pad[4]);
KtStatus cpu_conv2d_bias_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                              int stride, const int pad[4]);

// resample.c
KtStatus cpu_upsample_nearest2x(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_resize_bicubic(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_resize_area(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_fid_preprocess(KtBackend *be, KtTensor *y, const KtTensor *x, KtFidResize mode);

// pool.c (FID Inception-v3)
KtStatus cpu_channel_affine_relu(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                 const KtTensor *shift);
KtStatus cpu_max_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
KtStatus cpu_avg_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
KtStatus cpu_spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_copy_channels(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n);

// attention.c
KtStatus cpu_split_qkv_heads(KtBackend *be, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv);
KtStatus cpu_var_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                           const KtTensor *head_scale_log, int64_t t0);
KtStatus cpu_attention(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                       int64_t kv_len, const KtTensor *bias, float scale);
KtStatus cpu_var_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                           const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias);

// sample.c
KtStatus cpu_sample_top_k_top_p(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                                int64_t pos0, SmpParams params);
KtStatus cpu_smooth_embed(KtBackend *be, KtTensor *h, const KtTensor *logits, const KtTensor *codebook, float ratio,
                          const KtTensor *image_ids, int64_t pos0, uint64_t seed);

// llama.c (raster models)
KtStatus cpu_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps);
KtStatus cpu_add_rmsnorm(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps);
KtStatus cpu_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a);
KtStatus cpu_llama_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                             const KtTensor *rope, const KtTensor *positions);
KtStatus cpu_attention_pos(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                           const KtTensor *positions, float scale);
KtStatus cpu_l2_normalize(KtBackend *be, KtTensor *y, const KtTensor *x);
KtStatus cpu_sample_llama(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                          const KtTensor *positions, SmpParams params);
KtStatus cpu_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params);
KtStatus cpu_raster_step_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                                int64_t B);
KtStatus cpu_raster_step_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, KtTensor *step);
KtStatus cpu_raster_window_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                  const KtTensor *seq);
KtStatus cpu_raster_window_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds);
