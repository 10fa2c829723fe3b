// KtBackend: the device an op runs on, chosen at run time and invisible to model code.
// A backend is a vtable of memory functions and ops (KtBackendOps) plus its private state. Model code calls the
// validated wrappers in ops.h (kt_linear, kt_attention, ...), which check shapes once and dispatch here.
// Backend implementations may assume their arguments were validated.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"
#include "../samplers/sampling.h"

typedef struct KtBackend KtBackend;
typedef struct KtProfile KtProfile;  // per-op timing (profile.h)

// Owned device (or host) memory. kt_buffer_free accepts a zeroed struct and is idempotent.
typedef struct {
    void *data;
    size_t nbytes;
    KtDevice device;
    KtBackend *owner;  // borrowed: the backend that allocated it
    bool host;         // host memory from kt_host_buffer_alloc (page-locked when the backend could give it)
} KtBuffer;

// Input pipeline of kt_fid_preprocess (ops.h), spec/fid.md section 1.1.
typedef enum {
    KT_FID_RESIZE_PYTORCH = 0,  // pytorch-fid: v = u8 / 255; bilinear, align_corners=False (half-pixel centres,
                                // source coordinate clamped below at 0); then 2v - 1
    KT_FID_RESIZE_ADM = 1,      // ADM / TF1 graph: v = (float)u8; bilinear with TF1's legacy grid (s = i * in/out,
                                // in/out computed in float32; x first, then y); then (v - 128) / 128
} KtFidResize;

typedef struct {
    void (*destroy)(KtBackend *be);  // frees the backend's private state (impl)
    // memory
    KtStatus (*alloc)(KtBackend *be, void **ptr, size_t nbytes);
    void (*release)(KtBackend *be, void *ptr);
    KtStatus (*upload)(KtBackend *be, void *dst, const void *src_host, size_t nbytes);
    // optional: upload that returns before the copy is done (see kt_upload_queued); NULL: upload
    KtStatus (*upload_queued)(KtBackend *be, void *dst, const void *src_host, size_t nbytes);
    KtStatus (*download)(KtBackend *be, void *dst_host, const void *src, size_t nbytes);
    KtStatus (*copy)(KtBackend *be, void *dst, const void *src, size_t nbytes);
    KtStatus (*zero)(KtBackend *be, void *dst, size_t nbytes);
    KtStatus (*sync)(KtBackend *be);
    void (*discard_errors)(KtBackend *be);  // optional: drops pending device error flags (see kt_discard_errors)
    KtStatus (*host_alloc)(KtBackend *be, void **ptr, size_t nbytes);  // optional: page-locked host memory
    void (*host_release)(KtBackend *be, void *ptr);
    // optional, together (see kt_upload_side .. kt_fence_wait); NULL: they copy at once / wait for everything
    KtStatus (*upload_side)(KtBackend *be, void *dst, const void *src_host, size_t nbytes);
    KtStatus (*side_join)(KtBackend *be);
    KtStatus (*side_wait)(KtBackend *be);
    KtStatus (*download_queued)(KtBackend *be, void *dst_host, const void *src, size_t nbytes);
    KtStatus (*fence)(KtBackend *be, int id);
    KtStatus (*fence_wait)(KtBackend *be, int id);

    // ops: see ops.h for shapes and semantics
    KtStatus (*linear)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
    KtStatus (*linear_gelu_tanh)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);
    KtStatus (*layernorm)(KtBackend *, KtTensor *y, const KtTensor *x, float eps);
    KtStatus (*adaln_modulate)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                               const KtTensor *shift);
    KtStatus (*layernorm_adaln)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                                const KtTensor *shift, float eps);
    KtStatus (*gated_residual)(KtBackend *, KtTensor *x, const KtTensor *h, const KtTensor *gate);
    KtStatus (*gated_residual_layernorm_adaln)(KtBackend *, KtTensor *y, KtTensor *x, const KtTensor *h,
                                               const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                               float eps);
    KtStatus (*gelu_tanh)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*silu)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*add)(KtBackend *, KtTensor *y, const KtTensor *a, const KtTensor *b);
    KtStatus (*axpby)(KtBackend *, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b);
    KtStatus (*softmax)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*embedding)(KtBackend *, KtTensor *y, const KtTensor *table, const KtTensor *idx);
    KtStatus (*split_chunks)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*conv2d)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                       int stride, const int pad[4]);
    KtStatus (*conv2d_bias_relu)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                                 int stride, const int pad[4]);
    KtStatus (*group_norm)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                           int groups, float eps);
    KtStatus (*group_norm_silu)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w,
                                const KtTensor *b, int groups, float eps);
    KtStatus (*upsample_nearest2x)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*resize_bicubic)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*resize_area)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*codebook_argmin)(KtBackend *, KtTensor *idx, const KtTensor *z, const KtTensor *codebook);
    KtStatus (*split_qkv_heads)(KtBackend *, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv);
    KtStatus (*var_attn_prep)(KtBackend *, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                              const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0);
    KtStatus (*attention)(KtBackend *, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                          int64_t kv_len, const KtTensor *bias, float scale);
    KtStatus (*var_attention)(KtBackend *, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                              const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias);
    KtStatus (*cfg_combine)(KtBackend *, KtTensor *y, const KtTensor *logits, float t);
    KtStatus (*sample_top_k_top_p)(KtBackend *, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                                   int64_t pos0, SmpParams params);
    KtStatus (*smooth_embed)(KtBackend *, KtTensor *h, const KtTensor *logits, const KtTensor *codebook,
                             float ratio, const KtTensor *image_ids, int64_t pos0, uint64_t seed);
    KtStatus (*image_to_u8)(KtBackend *, KtTensor *y, const KtTensor *x, KtTensor *nonfinite);
    KtStatus (*count_nonfinite)(KtBackend *, KtTensor *count, const KtTensor *x);
    KtStatus (*convert)(KtBackend *, KtTensor *y, const KtTensor *x);

    // optional (NULL on backends without them)
    KtStatus (*set_matmul_dtype)(KtBackend *, KtDType dt);
    KtStatus (*graph_begin)(KtBackend *);
    KtStatus (*graph_end)(KtBackend *, void **graph);
    KtStatus (*graph_launch)(KtBackend *, void *graph);
    void (*graph_free)(KtBackend *, void *graph);
    // per-op timing (optional; NULL: profile.c times ops on the host clock): mark i (0 <= i < 2 * KT_PROFILE_PENDING)
    // records the device's progress; elapsed waits for mark b and gives the milliseconds from mark a to mark b
    KtStatus (*prof_mark)(KtBackend *, int i);
    KtStatus (*prof_elapsed)(KtBackend *, int a, int b, float *ms);

    // raster (LlamaGen) ops: see ops.h
    KtStatus (*rmsnorm)(KtBackend *, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps);
    KtStatus (*add_rmsnorm)(KtBackend *, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps);
    KtStatus (*swiglu)(KtBackend *, KtTensor *y, const KtTensor *a);
    KtStatus (*llama_attn_prep)(KtBackend *, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                                const KtTensor *rope, const KtTensor *positions);
    KtStatus (*attention_pos)(KtBackend *, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                              const KtTensor *positions, float scale);
    KtStatus (*llama_attention)(KtBackend *, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                                const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions,
                                float scale);  // optional: NULL runs the composition
    KtStatus (*l2_normalize)(KtBackend *, KtTensor *y, const KtTensor *x);
    // optional fused forms (NULL runs the composition, see ops.h)
    KtStatus (*rmsnorm_linear)(KtBackend *, KtTensor *y, KtTensor *hn, const KtTensor *x, const KtTensor *nw,
                               const KtTensor *w, float eps);
    KtStatus (*rmsnorm_linear_cfg)(KtBackend *, KtTensor *lc, KtTensor *logits, KtTensor *hn, const KtTensor *x,
                                   const KtTensor *nw, const KtTensor *w, float eps, float t);  // optional
    KtStatus (*rmsnorm_linear_swiglu)(KtBackend *, KtTensor *g, KtTensor *a, KtTensor *hn, const KtTensor *x,
                                      const KtTensor *nw, const KtTensor *w13, float eps);
    KtStatus (*linear_residual)(KtBackend *, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w);
    KtStatus (*sample_llama)(KtBackend *, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                             const KtTensor *positions, SmpParams params);
    KtStatus (*probs_llama)(KtBackend *, KtTensor *probs, KtTensor *logits, SmpParams params);
    KtStatus (*raster_step_inputs)(KtBackend *, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                                   int64_t B);
    KtStatus (*raster_step_commit)(KtBackend *, KtTensor *seq, const KtTensor *sampled, KtTensor *step);
    KtStatus (*raster_window_inputs)(KtBackend *, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                     const KtTensor *seq);
    KtStatus (*raster_window_commit)(KtBackend *, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds);

    // FID Inception ops: see ops.h
    KtStatus (*fid_preprocess)(KtBackend *, KtTensor *y, const KtTensor *x, KtFidResize mode);
    KtStatus (*channel_affine_relu)(KtBackend *, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                    const KtTensor *shift);
    KtStatus (*max_pool2d)(KtBackend *, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
    KtStatus (*avg_pool2d)(KtBackend *, KtTensor *y, const KtTensor *x, int k, int stride, int pad);
    KtStatus (*spatial_mean)(KtBackend *, KtTensor *y, const KtTensor *x);
    KtStatus (*copy_channels)(KtBackend *, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n);
} KtBackendOps;

struct KtBackend {
    const KtBackendOps *ops;
    KtDevice device;
    const char *name;     // "cpu (OpenBLAS)", "cuda (NVIDIA H100 ...)"
    KtDType matmul_dtype; // storage dtype of GEMM/conv weights on this backend (F32 on the CPU; F32/BF16/F16 on
                          // CUDA per --dtype). Transformer activations stay float32 at the interface.
    KtDType map_dtype;    // storage dtype of VQVAE feature maps (ops.h "map ops"): F32 on the CPU; on CUDA the
                          // matmul dtype (set together by kt_backend_set_matmul_dtype)
    void *impl;           // owned: backend-private state
    int64_t n_allocs;     // number of alloc calls so far (tests check the sampling loop adds none)
    size_t bytes_in_use;  // bytes currently allocated through this backend (incl. private scratch)
    size_t peak_bytes;
    char notes[512];      // fallbacks taken at run time (kt_backend_note), "; "-separated, "" when none
    KtProfile *prof;      // owned: per-op timing (profile.h), NULL until kt_profile_start
};

// CPU backend: always available. threads <= 0 uses the OpenMP default (OMP_NUM_THREADS, else the cores). OpenBLAS is set to run
// serially: the backend parallelises GEMMs itself so results do not depend on the thread count.
KtStatus kt_backend_cpu_init(KtBackend *be, int threads);
// Changes a CPU backend's thread count (results do not depend on it: work is split by shape, not by thread).
// No-op for other backends.
void kt_backend_cpu_set_threads(KtBackend *be, int threads);
// CUDA backend: KT_ERR_UNSUPPORTED when this build has no CUDA, KT_ERR_CUDA when no device is usable.
KtStatus kt_backend_cuda_init(KtBackend *be, int device_index);
// True when this build has CUDA and a device is present that its kernels run on. Safe to call without initialising
// anything else.
bool kt_cuda_available(void);
// A CUDA device is there (usable or not: --device auto then tries it and says why it fell back to the CPU).
bool kt_cuda_device_present(void);
// Picks a backend by name: "cpu", "cuda", or "auto" (CUDA when a GPU this build can run on is present and
// initialises, else the CPU, with a note saying why when a GPU was there).
KtStatus kt_backend_init_by_name(KtBackend *be, const char *name);
// kt_backend_init_by_name + kt_backend_set_matmul_dtype (the backend is freed on failure). With "auto" on the CPU a
// 16-bit dtype becomes float32 with a note (an explicit --device cpu --dtype bf16 stays an error).
KtStatus kt_backend_init_for(KtBackend *be, const char *device, KtDType dt);
void kt_backend_free(KtBackend *be);

// Storage/compute dtype for GEMM and conv weights (KT_F32, KT_BF16, KT_F16). Call before loading weights.
// The CPU backend supports KT_F32 only (KT_ERR_UNSUPPORTED otherwise).
KtStatus kt_backend_set_matmul_dtype(KtBackend *be, KtDType dt);
// Records a run-time fallback (a slower path than the one the backend names, e.g. a shape cuDNN refused) in
// be->notes for -v output; a note already there is not repeated; notes past the buffer are dropped.
void kt_backend_note(KtBackend *be, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Graph capture: record the ops issued between begin and end once, replay them with launch (CUDA graphs).
// Backends without graphs return KT_ERR_UNSUPPORTED from kt_graph_begin; callers then run eagerly.
// Nothing may allocate between begin and end (warm up first so scratch buffers have their final size).
typedef struct {
    void *handle;
    KtBackend *owner;  // borrowed
} KtGraph;
KtStatus kt_graph_begin(KtBackend *be);
KtStatus kt_graph_end(KtBackend *be, KtGraph *g);
KtStatus kt_graph_launch(KtBackend *be, const KtGraph *g);
void kt_graph_free(KtGraph *g);
// Records record(ctx) into *g (begin, record, end: the ops are captured, not run; run them once eagerly before, so
// scratch buffers have their size). Returns KT_OK with g->handle set, or KT_OK without a graph and *off set when the
// backend has no graphs or the capture failed (the reason goes to be->notes: the caller keeps running eagerly).
KtStatus kt_graph_record(KtBackend *be, KtGraph *g, KtStatus (*record)(void *ctx), void *ctx, bool *off);

// Memory through the backend. All sizes in bytes.
KtStatus kt_buffer_alloc(KtBackend *be, KtBuffer *buf, size_t nbytes);
void kt_buffer_free(KtBuffer *buf);
// Host memory for the backend's uploads and downloads: page-locked on CUDA (a copy is then one DMA at full PCIe
// speed instead of staged through the driver's buffers), plain malloc on the CPU backend or when the driver has no
// page-locked memory left (noted in be->notes). buf->data is host memory; kt_buffer_free releases it.
KtStatus kt_host_buffer_alloc(KtBackend *be, KtBuffer *buf, size_t nbytes);
// Host <-> backend copies; `t` lives on the backend's device, host memory holds kt_nbytes(t) bytes.
KtStatus kt_upload(KtBackend *be, KtTensor *t, const void *host);
// kt_upload that may return before the copy is done: the copy is queued ahead of the work submitted after it, and
// `host` must stay unchanged until the next kt_download or kt_sync on be (a per-forward input upload then costs no
// wait for the device). Backends that copy at once (the CPU) do so. Not inside graph capture.
KtStatus kt_upload_queued(KtBackend *be, KtTensor *t, const void *host);
KtStatus kt_download(KtBackend *be, void *host, const KtTensor *t);
KtStatus kt_copy(KtBackend *be, KtTensor *dst, const KtTensor *src);
KtStatus kt_zero(KtBackend *be, KtTensor *t);
// Named sync point: waits for all queued work on the backend.
KtStatus kt_sync(KtBackend *be);
// Pipelining a batch's upload beside the previous batch's work (CUDA: a second stream for copies, events; backends
// without them, the CPU, copy at once and wait for everything, which is the same result). Not inside graph capture.
//   kt_upload_side      queues the upload on the side (copy) queue and returns; `host` stays unchanged until
//                       kt_side_wait returns
//   kt_side_join        the main queue's work submitted after it waits (on the device) for the side uploads so far
//   kt_side_wait        the host waits for the side uploads so far
//   kt_download_queued  queues a download on the main queue and returns; `host` holds the data once a later fence
//                       is waited for (page-locked host memory makes it asynchronous on CUDA)
//   kt_fence            marks the main queue's work so far as fence `id` (0 .. KT_FENCES - 1, reused freely)
//   kt_fence_wait       the host waits for the work before fence `id`; reports the device's errors there
#define KT_FENCES 4
KtStatus kt_upload_side(KtBackend *be, KtTensor *t, const void *host);
KtStatus kt_side_join(KtBackend *be);
KtStatus kt_side_wait(KtBackend *be);
KtStatus kt_download_queued(KtBackend *be, void *host, const KtTensor *t);
KtStatus kt_fence(KtBackend *be, int id);
KtStatus kt_fence_wait(KtBackend *be, int id);
// After a failed call: waits for the queued work and drops the error flags its kernels may have raised (CUDA
// reports them at the next download), so they are not blamed on the next call. Keeps the thread's error message.
void kt_discard_errors(KtBackend *be);

// Bump allocator over one KtBuffer: activations and caches are carved from it at init (64-byte aligned).
typedef struct {
    KtBuffer buf;
    size_t used;
    bool measuring;  // set by kt_arena_measure: carving only counts bytes (tensors get NULL data)
} KtArena;

// Sizing pass: carve everything once on a measuring arena, then kt_arena_init(a, be, a->used) and carve again.
void kt_arena_measure(KtArena *a);
KtStatus kt_arena_init(KtArena *a, KtBackend *be, size_t nbytes);
// Carves a tensor of the given shape; fails with KT_ERR_OOM naming `what` if the arena is too small.
KtStatus kt_arena_tensor(KtArena *a, KtTensor *t, KtDType dt, int ndim, const int64_t *shape, const char *what);
void kt_arena_free(KtArena *a);
// Bytes the arena needs for a tensor of `nbytes` (alignment padding included), for sizing passes.
size_t kt_arena_size(size_t nbytes);
