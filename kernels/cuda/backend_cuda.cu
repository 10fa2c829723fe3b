// The CUDA backend: device selection, one stream, cuBLAS/cuBLASLt/cuDNN handles, memory accounting, private scratch
// that grows only on demand (so nothing allocates after a warm-up pass and graphs can be captured), graph capture,
// and the KtBackendOps table. The ops themselves live in dense/norm/elementwise/conv/resample/attention/sample.cu.
#include "cuda_common.cuh"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_BLAS_WORKSPACE (32u << 20)  // cuBLASLt wants >= 32 MiB on Hopper for its best kernels

// ----------------------------------------------------------------------------------------------------- memory
KtStatus cuda_alloc_raw(KtBackend *be, void **ptr, size_t nbytes) {
    CudaImpl *c = cuda_impl(be);
    *ptr = NULL;
    if (c->capturing)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "cuda: allocation of %zu bytes during graph capture (allocate buffers and "
                                           "warm up before kt_graph_begin)", nbytes);
    if (c->n_allocs == c->cap_allocs) {
        int cap = c->cap_allocs ? 2 * c->cap_allocs : 64;
        CudaAllocRec *r = (CudaAllocRec *)realloc(c->allocs, (size_t)cap * sizeof *r);
        if (!r) return KT_FAIL(KT_ERR_OOM, "cuda: out of host memory for the allocation table");
        c->allocs = r;
        c->cap_allocs = cap;
    }
    cudaError_t e = cudaMalloc(ptr, nbytes ? nbytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        *ptr = NULL;
        return KT_FAIL(KT_ERR_OOM, "cuda: cannot allocate %.1f MiB (%.1f of %.1f MiB free; %.1f MiB held by argen): "
                       "use a smaller batch", nbytes / 1048576.0, fr / 1048576.0, tot / 1048576.0,
                       be->bytes_in_use / 1048576.0);
    }
    KT_CUDA_TRY(e);
    c->allocs[c->n_allocs].ptr = *ptr;
    c->allocs[c->n_allocs].nbytes = nbytes;
    c->n_allocs++;
    be->n_allocs++;
    be->bytes_in_use += nbytes;
    if (be->bytes_in_use > be->peak_bytes) be->peak_bytes = be->bytes_in_use;
    return KT_OK;
}

void cuda_release_raw(KtBackend *be, void *ptr) {
    CudaImpl *c = cuda_impl(be);
    if (!ptr) return;
    for (int i = 0; i < c->n_allocs; i++) {
        if (c->allocs[i].ptr != ptr) continue;
        be->bytes_in_use -= c->allocs[i].nbytes;
        c->allocs[i] = c->allocs[--c->n_allocs];
        break;
    }
    cudaFree(ptr);
}

KtStatus cuda_scratch(KtBackend *be, size_t nbytes, void **ptr) {
    CudaImpl *c = cuda_impl(be);
    if (nbytes <= c->scratch_cap) {
        *ptr = c->scratch;
        return KT_OK;
    }
    if (c->capturing)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "cuda: an op needs %zu bytes of scratch but only %zu exist during graph "
                       "capture: run the same ops once eagerly before kt_graph_begin", nbytes, c->scratch_cap);
    KT_CUDA_TRY(cudaStreamSynchronize(c->stream));  // the old scratch may still be in use by queued work
    size_t grown = c->scratch_cap / 4 * 5;             // grow geometrically: shapes vary from call to call
    size_t want = nbytes > grown ? nbytes : grown;
    if (c->scratch && c->scratch_graphs > 0) {  // captured graphs address it: keep it until the last one goes
        if (c->n_retired == c->cap_retired) {
            int cap = c->cap_retired ? 2 * c->cap_retired : 8;
            CudaRetired *r = (CudaRetired *)realloc(c->retired, (size_t)cap * sizeof *r);
            if (!r) return KT_FAIL(KT_ERR_OOM, "cuda scratch: out of host memory");
            c->retired = r;
            c->cap_retired = cap;
        }
        c->retired[c->n_retired++] = (CudaRetired){c->scratch, c->scratch_graphs};
    } else {
        cuda_release_raw(be, c->scratch);
    }
    c->scratch_graphs = 0;
    c->scratch = NULL;
    c->scratch_cap = 0;
    want = (want + (2u << 20) - 1) / (2u << 20) * (2u << 20);
    KT_TRY(cuda_alloc_raw(be, &c->scratch, want));
    c->scratch_cap = want;
    *ptr = c->scratch;
    return KT_OK;
}

// The error flags device kernels raise on bad data: bit 0 an embedding index outside [0, V) (the row is zero), bit 1
// a sampled row without any finite logit (its token is 0). queue_flag_read queues their copy to host_small;
// flag_status, after a stream sync, reports (and clears) them.
static KtStatus queue_flag_read(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    KT_CUDA_TRY(cudaMemcpyAsync(c->host_small, (char *)c->dev_small + CUDA_SMALL_FLAG, 4, cudaMemcpyDeviceToHost,
                                c->stream));
    return KT_OK;
}

static KtStatus flag_status(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    int32_t flag;
    memcpy(&flag, c->host_small, 4);
    if (!flag) return KT_OK;
    KT_CUDA_TRY(cudaMemsetAsync((char *)c->dev_small + CUDA_SMALL_FLAG, 0, 4, c->stream));
    if (flag & 1) return KT_FAIL(KT_ERR_ARG, "kt_embedding: an index was outside [0, V) (its rows were set to zero)");
    return KT_FAIL(KT_ERR_NUMERIC, "sampling: a row had no finite logit (its token was set to 0)");
}

static KtStatus check_flag(KtBackend *be) {
    KT_TRY(queue_flag_read(be));
    KT_CUDA_TRY(cudaStreamSynchronize(cuda_stream(be)));
    return flag_status(be);
}

static KtStatus be_alloc(KtBackend *be, void **ptr, size_t nbytes) { return cuda_alloc_raw(be, ptr, nbytes); }
static void be_release(KtBackend *be, void *ptr) { cuda_release_raw(be, ptr); }
static KtStatus be_host_alloc(KtBackend *be, void **ptr, size_t nbytes) {
    if (cuda_impl(be)->capturing) return KT_FAIL(KT_ERR_UNSUPPORTED, "host allocation inside graph capture");
    cudaError_t e = cudaMallocHost(ptr, nbytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();  // not sticky: the caller falls back to pageable memory
        *ptr = NULL;
        return KT_FAIL(KT_ERR_OOM, "cudaMallocHost(%zu bytes): %s", nbytes, cudaGetErrorString(e));
    }
    return KT_OK;
}
static void be_host_release(KtBackend *be, void *ptr) {
    (void)be;
    cudaFreeHost(ptr);
}

static KtStatus be_upload(KtBackend *be, void *dst, const void *src, size_t n) {
    KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cuda_stream(be)));
    KT_CUDA_TRY(cudaStreamSynchronize(cuda_stream(be)));  // the host buffer may be reused on return
    return KT_OK;
}
// No wait: the caller keeps src unchanged until its next download or sync (kt_upload_queued).
static KtStatus be_upload_queued(KtBackend *be, void *dst, const void *src, size_t n) {
    if (cuda_impl(be)->capturing) return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_upload_queued inside graph capture");
    KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cuda_stream(be)));
    return KT_OK;
}
// A download is where results reach the host, so it also reports the error flags of the work before it (e.g. a
// sampled row without a finite logit inside a replayed graph), as the CPU backend reports them at the op.
static KtStatus be_download(KtBackend *be, void *dst, const void *src, size_t n) {
    KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cuda_stream(be)));
    KT_TRY(queue_flag_read(be));  // same sync
    KT_CUDA_TRY(cudaStreamSynchronize(cuda_stream(be)));
    return flag_status(be);
}
// The pipelining ops (backend.h, kt_upload_side .. kt_fence_wait): uploads on a second stream, joined to the main
// one by an event; fences are events on the main stream. None of them inside a capture.
static KtStatus no_capture(KtBackend *be, const char *what) {
    return cuda_impl(be)->capturing ? KT_FAIL(KT_ERR_UNSUPPORTED, "%s inside graph capture", what) : KT_OK;
}
static KtStatus be_upload_side(KtBackend *be, void *dst, const void *src, size_t n) {
    CudaImpl *c = cuda_impl(be);
    KT_TRY(no_capture(be, "kt_upload_side"));
    if (!c->side) {
        KT_CUDA_TRY(cudaStreamCreateWithFlags(&c->side, cudaStreamNonBlocking));
        KT_CUDA_TRY(cudaEventCreateWithFlags(&c->side_ev, cudaEventDisableTiming));
    }
    KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->side));
    KT_CUDA_TRY(cudaEventRecord(c->side_ev, c->side));
    return KT_OK;
}
static KtStatus be_side_join(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    KT_TRY(no_capture(be, "kt_side_join"));
    if (c->side_ev) KT_CUDA_TRY(cudaStreamWaitEvent(c->stream, c->side_ev, 0));
    return KT_OK;
}
static KtStatus be_side_wait(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    KT_TRY(no_capture(be, "kt_side_wait"));
    if (c->side_ev) KT_CUDA_TRY(cudaEventSynchronize(c->side_ev));
    return KT_OK;
}
static KtStatus be_download_queued(KtBackend *be, void *dst, const void *src, size_t n) {
    KT_TRY(no_capture(be, "kt_download_queued"));
    KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cuda_stream(be)));
    return KT_OK;
}
static KtStatus be_fence(KtBackend *be, int id) {
    CudaImpl *c = cuda_impl(be);
    KT_TRY(no_capture(be, "kt_fence"));
    if (!c->fence_ev[id]) KT_CUDA_TRY(cudaEventCreateWithFlags(&c->fence_ev[id], cudaEventDisableTiming));
    KT_CUDA_TRY(cudaEventRecord(c->fence_ev[id], c->stream));
    return KT_OK;
}
static KtStatus be_fence_wait(KtBackend *be, int id) {
    CudaImpl *c = cuda_impl(be);
    KT_TRY(no_capture(be, "kt_fence_wait"));
    if (c->fence_ev[id]) KT_CUDA_TRY(cudaEventSynchronize(c->fence_ev[id]));
    return KT_OK;
}

static KtStatus be_copy(KtBackend *be, void *dst, const void *src, size_t n) {
    if (n) KT_CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cuda_stream(be)));
    return KT_OK;
}
static KtStatus be_zero(KtBackend *be, void *dst, size_t n) {
    if (n) KT_CUDA_TRY(cudaMemsetAsync(dst, 0, n, cuda_stream(be)));
    return KT_OK;
}
static KtStatus be_sync(KtBackend *be) {
    if (cuda_impl(be)->capturing) return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_sync inside graph capture");
    KT_CUDA_TRY(cudaStreamSynchronize(cuda_stream(be)));
    return check_flag(be);
}

// A failed call may leave flags raised by its kernels before the failure: drop them without reporting (the call
// already failed with its own message). Nothing to do inside a capture (no kernel has run).
static void be_discard_errors(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    if (c->capturing) return;
    (void)cudaGetLastError();  // a launch error of the failed call is not the next call's
    if (cudaStreamSynchronize(c->stream) != cudaSuccess) return;  // a sticky error: every later call fails anyway
    (void)cudaMemsetAsync((char *)c->dev_small + CUDA_SMALL_FLAG, 0, 4, c->stream);
}

// Embedding with the synchronous range check (skipped while capturing: the flag is then reported at kt_sync).
static KtStatus be_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx) {
    KT_TRY(cuda_embedding(be, y, table, idx));
    if (cuda_impl(be)->capturing) return KT_OK;
    return check_flag(be);
}

// ------------------------------------------------------------------------------------------ dtype, name, graphs
static void set_name(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    cudaDeviceProp p;
    const char *dev = cudaGetDeviceProperties(&p, c->device) == cudaSuccess ? p.name : "?";
    const char *dt = be->matmul_dtype == KT_BF16 ? "bf16" : be->matmul_dtype == KT_F16 ? "fp16" : "fp32";
    snprintf(c->name, sizeof c->name,
             "cuda (%s, sm_%d%d; GEMM cublasLt %s + small-M kernel, conv cuDNN NHWC %s, attention fused %s)", dev,
             c->cc_major, c->cc_minor, dt, dt, be->matmul_dtype == KT_F32 ? "fp32" : "fp16 tensor-core");
    be->name = c->name;
}

static KtStatus be_set_matmul_dtype(KtBackend *be, KtDType dt) {
    if (dt != KT_F32 && dt != KT_BF16 && dt != KT_F16)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "--dtype %s: the CUDA backend supports float32, bfloat16 and float16",
                       kt_dtype_name(dt));
    be->matmul_dtype = be->map_dtype = dt;
    set_name(be);
    return KT_OK;
}

typedef struct {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    void *scratch;  // the scratch buffer when it was captured (kept alive while the graph lives)
} CudaGraph;

static KtStatus be_graph_begin(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    if (c->capturing) return KT_FAIL(KT_ERR_ARG, "kt_graph_begin: a capture is already in progress");
    KT_CUDA_TRY(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = true;
    return KT_OK;
}

static KtStatus be_graph_end(KtBackend *be, void **out) {
    CudaImpl *c = cuda_impl(be);
    *out = NULL;
    if (!c->capturing) return KT_FAIL(KT_ERR_ARG, "kt_graph_end without kt_graph_begin");
    c->capturing = false;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (g) cudaGraphDestroy(g);
        return KT_FAIL(KT_ERR_CUDA, "kt_graph_end: capture failed (%s): an op inside it synchronised, allocated or "
                       "failed", cudaGetErrorString(e));
    }
    CudaGraph *cg = (CudaGraph *)calloc(1, sizeof *cg);
    if (!cg) {
        cudaGraphDestroy(g);
        return KT_FAIL(KT_ERR_OOM, "kt_graph_end: out of host memory");
    }
    cg->graph = g;
    e = cudaGraphInstantiate(&cg->exec, g, 0);
    if (e != cudaSuccess) {
        cudaGetLastError();  // not left pending for the next launch check (the caller may go on eagerly)
        cudaGraphDestroy(g);
        free(cg);
        KT_CUDA_TRY(e);
    }
    *out = cg;
    cg->scratch = c->scratch;
    if (c->scratch) c->scratch_graphs++;
    return KT_OK;
}

// A graph that captured `scratch` is gone: an outgrown buffer no live graph addresses any more is freed.
static void scratch_graph_gone(KtBackend *be, void *scratch) {
    CudaImpl *c = cuda_impl(be);
    if (!c || !scratch) return;
    if (scratch == c->scratch) {
        c->scratch_graphs--;
        return;
    }
    for (int i = 0; i < c->n_retired; i++) {
        if (c->retired[i].ptr != scratch) continue;
        if (--c->retired[i].graphs == 0) {
            cuda_release_raw(be, scratch);  // (cudaFree waits for queued replays)
            c->retired[i] = c->retired[--c->n_retired];
        }
        return;
    }
}

static KtStatus be_graph_launch(KtBackend *be, void *graph) {
    CudaGraph *cg = (CudaGraph *)graph;
    KT_CUDA_TRY(cudaGraphLaunch(cg->exec, cuda_stream(be)));
    return KT_OK;
}

static void be_graph_free(KtBackend *be, void *graph) {
    CudaGraph *cg = (CudaGraph *)graph;
    if (!cg) return;
    if (cg->exec) cudaGraphExecDestroy(cg->exec);
    if (cg->graph) cudaGraphDestroy(cg->graph);
    void *scratch = cg->scratch;
    free(cg);
    scratch_graph_gone(be, scratch);
}

// ------------------------------------------------------------------------------------------------ profiling
static KtStatus be_prof_mark(KtBackend *be, int i) {
    CudaImpl *c = cuda_impl(be);
    if (i < 0 || i >= 2 * KT_PROFILE_PENDING) return KT_FAIL(KT_ERR_ARG, "profile: mark %d out of range", i);
    if (!c->prof_ev) {
        c->prof_ev = (cudaEvent_t *)calloc(2 * KT_PROFILE_PENDING, sizeof *c->prof_ev);
        if (!c->prof_ev) return KT_FAIL(KT_ERR_OOM, "profile: out of host memory");
    }
    if (!c->prof_ev[i]) KT_CUDA_TRY(cudaEventCreate(&c->prof_ev[i]));
    KT_CUDA_TRY(cudaEventRecord(c->prof_ev[i], c->stream));
    return KT_OK;
}

static KtStatus be_prof_elapsed(KtBackend *be, int a, int b, float *ms) {
    CudaImpl *c = cuda_impl(be);
    if (!c->prof_ev || !c->prof_ev[a] || !c->prof_ev[b]) return KT_FAIL(KT_ERR_ARG, "profile: unrecorded marks");
    KT_CUDA_TRY(cudaEventSynchronize(c->prof_ev[b]));
    KT_CUDA_TRY(cudaEventElapsedTime(ms, c->prof_ev[a], c->prof_ev[b]));
    return KT_OK;
}

// --------------------------------------------------------------------------------------------------- lifecycle
static void be_destroy(KtBackend *be) {
    CudaImpl *c = cuda_impl(be);
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    cuda_plans_free(c);
    cuda_convs_free(c);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->lt) cublasLtDestroy(c->lt);
    if (c->blas) cublasDestroy(c->blas);
    if (c->scratch) cuda_release_raw(be, c->scratch);
    for (int i = 0; i < c->n_retired; i++) cuda_release_raw(be, c->retired[i].ptr);
    free(c->retired);
    for (int i = 0; c->prof_ev && i < 2 * KT_PROFILE_PENDING; i++)
        if (c->prof_ev[i]) cudaEventDestroy(c->prof_ev[i]);
    free(c->prof_ev);
    if (c->blas_ws) cuda_release_raw(be, c->blas_ws);
    if (c->dev_small) cuda_release_raw(be, c->dev_small);
    if (c->host_small) cudaFreeHost(c->host_small);
    if (c->side) cudaStreamSynchronize(c->side);
    if (c->side_ev) cudaEventDestroy(c->side_ev);
    if (c->side) cudaStreamDestroy(c->side);
    for (int i = 0; i < KT_FENCES; i++)
        if (c->fence_ev[i]) cudaEventDestroy(c->fence_ev[i]);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c->allocs);
    free(c);
    be->impl = NULL;
}

static const KtBackendOps *cuda_ops(void) {
    static KtBackendOps o;
    static bool done = false;
    if (done) return &o;
    o.destroy = be_destroy;
    o.alloc = be_alloc;
    o.release = be_release;
    o.host_alloc = be_host_alloc;
    o.host_release = be_host_release;
    o.upload = be_upload;
    o.upload_queued = be_upload_queued;
    o.download = be_download;
    o.copy = be_copy;
    o.zero = be_zero;
    o.sync = be_sync;
    o.upload_side = be_upload_side;
    o.side_join = be_side_join;
    o.side_wait = be_side_wait;
    o.download_queued = be_download_queued;
    o.fence = be_fence;
    o.fence_wait = be_fence_wait;
    o.discard_errors = be_discard_errors;
    o.prof_mark = be_prof_mark;
    o.prof_elapsed = be_prof_elapsed;
    o.linear = cuda_linear;
    o.linear_gelu_tanh = cuda_linear_gelu_tanh;
    o.layernorm = cuda_layernorm;
    o.adaln_modulate = cuda_adaln_modulate;
    o.layernorm_adaln = cuda_layernorm_adaln;
    o.gated_residual = cuda_gated_residual;
    o.gated_residual_layernorm_adaln = cuda_gated_residual_layernorm_adaln;
    o.gelu_tanh = cuda_gelu_tanh;
    o.silu = cuda_silu;
    o.add = cuda_add;
    o.axpby = cuda_axpby;
    o.softmax = cuda_softmax;
    o.embedding = be_embedding;
    o.split_chunks = cuda_split_chunks;
    o.conv2d = cuda_conv2d;
    o.conv2d_bias_relu = cuda_conv2d_bias_relu;
    o.group_norm = cuda_group_norm;
    o.group_norm_silu = cuda_group_norm_silu;
    o.upsample_nearest2x = cuda_upsample_nearest2x;
    o.resize_bicubic = cuda_resize_bicubic;
    o.resize_area = cuda_resize_area;
    o.codebook_argmin = cuda_codebook_argmin;
    o.split_qkv_heads = cuda_split_qkv_heads;
    o.var_attn_prep = cuda_var_attn_prep;
    o.attention = cuda_attention;
    o.var_attention = cuda_var_attention;
    o.cfg_combine = cuda_cfg_combine;
    o.sample_top_k_top_p = cuda_sample_top_k_top_p;
    o.smooth_embed = cuda_smooth_embed;
    o.image_to_u8 = cuda_image_to_u8;
    o.count_nonfinite = cuda_count_nonfinite;
    o.convert = cuda_convert;
    o.set_matmul_dtype = be_set_matmul_dtype;
    o.graph_begin = be_graph_begin;
    o.graph_end = be_graph_end;
    o.graph_launch = be_graph_launch;
    o.graph_free = be_graph_free;
    o.rmsnorm = cuda_rmsnorm;
    o.add_rmsnorm = cuda_add_rmsnorm;
    o.swiglu = cuda_swiglu;
    o.llama_attn_prep = cuda_llama_attn_prep;
    o.attention_pos = cuda_attention_pos;
    o.llama_attention = cuda_llama_attention;
    o.rmsnorm_linear = cuda_rmsnorm_linear;
    o.rmsnorm_linear_cfg = cuda_rmsnorm_linear_cfg;
    o.rmsnorm_linear_swiglu = cuda_rmsnorm_linear_swiglu;
    o.linear_residual = cuda_linear_residual;
    o.l2_normalize = cuda_l2_normalize;
    o.sample_llama = cuda_sample_llama;
    o.probs_llama = cuda_probs_llama;
    o.raster_step_inputs = cuda_raster_step_inputs;
    o.raster_step_commit = cuda_raster_step_commit;
    o.raster_window_inputs = cuda_raster_window_inputs;
    o.raster_window_commit = cuda_raster_window_commit;
    o.fid_preprocess = cuda_fid_preprocess;
    o.channel_affine_relu = cuda_channel_affine_relu;
    o.max_pool2d = cuda_max_pool2d;
    o.avg_pool2d = cuda_avg_pool2d;
    o.spatial_mean = cuda_spatial_mean;
    o.copy_channels = cuda_copy_channels;
    done = true;
    return &o;
}

// A kernel the build may lack for the present GPU: cudaFuncGetAttributes fails when no image (SASS for this
// architecture or PTX it can JIT) fits device 0.
__global__ void probe_kernel() {}

static cudaError_t kernel_image_fits(void) {
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, probe_kernel);
}

extern "C" bool kt_cuda_device_present(void) {
    int n = 0;
    bool yes = cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
    cudaGetLastError();
    return yes;
}

extern "C" bool kt_cuda_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0 || kernel_image_fits() != cudaSuccess) {
        cudaGetLastError();  // clear the sticky-free error so later calls start clean
        return false;
    }
    return true;
}

extern "C" KtStatus kt_backend_cuda_init(KtBackend *be, int device_index) {
    memset(be, 0, sizeof *be);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return KT_FAIL(KT_ERR_CUDA, "--device cuda: no usable CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "none found");
    }
    if (device_index < 0 || device_index >= n)
        return KT_FAIL(KT_ERR_ARG, "--device cuda: device %d requested, %d present", device_index, n);
    CudaImpl *c = (CudaImpl *)calloc(1, sizeof *c);
    if (!c) return KT_FAIL(KT_ERR_OOM, "cuda: out of host memory");
    be->impl = c;
    be->ops = cuda_ops();
    be->device = KT_CUDA;
    be->matmul_dtype = be->map_dtype = KT_F32;
    c->device = device_index;
    c->small_m_max = 2;  // rows up to which streaming the weights beats cuBLASLt (dense.cu)
    const char *env = getenv("ARGEN_CUDA_SMALL_M");  // tuning knob for benchmarks: 0 disables the kernel
    if (env && env[0]) c->small_m_max = atoi(env) < 0 ? 0 : atoi(env) > 16 ? 16 : atoi(env);
    KtStatus s = KT_OK;
    cudaDeviceProp p;
#define INIT_TRY(call)                                                  \
    do {                                                                \
        s = kt_cuda_check((call), #call, __FILE__, __LINE__);           \
        if (s != KT_OK) goto cleanup;                                   \
    } while (0)
    INIT_TRY(cudaSetDevice(device_index));
    INIT_TRY(cudaGetDeviceProperties(&p, device_index));
    e = kernel_image_fits();  // also the first call that creates the context (a busy GPU fails here)
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction)
            s = KT_FAIL(KT_ERR_CUDA, "--device cuda: this argen build has no kernels for %s (sm_%d%d): rebuild with "
                        "-DCMAKE_CUDA_ARCHITECTURES=%d%d", p.name, p.major, p.minor, p.major, p.minor);
        else
            s = KT_FAIL(KT_ERR_CUDA, "--device cuda: %s (sm_%d%d) cannot run this build's kernels: %s", p.name,
                        p.major, p.minor, cudaGetErrorString(e));
        goto cleanup;
    }
    c->sm_count = p.multiProcessorCount;
    c->cc_major = p.major;
    c->cc_minor = p.minor;
    c->smem_optin = p.sharedMemPerBlockOptin;
    // tuning knobs for benchmarks: ARGEN_CUDA_FUSED_ROWS=0 runs LlamaGen's compositions, ARGEN_CUDA_PDL=0 plain launches,
    // ARGEN_CUDA_CLUSTER_ROWS=0 LlamaGen's sampler one block per row at every batch, ARGEN_CUDA_WINDOW_CLUSTER=0 a
    // window's attention as prep + attention kernels
    c->fused_rows = 64;
    c->conv_fuse = -1;
    env = getenv("ARGEN_CUDA_CONV_FUSE");  // 16-bit convs with a bias: 0 conv + pass, 1 fused wherever cuDNN runs it
    if (env && env[0]) c->conv_fuse = env[0] == '0' ? 0 : env[0] == '1' ? 1 : -1;
    env = getenv("ARGEN_CUDA_FUSED_ROWS");
    if (env && env[0]) c->fused_rows = atoi(env) < 0 ? 0 : atoi(env) > 64 ? 64 : atoi(env);
    env = getenv("ARGEN_CUDA_PDL");
    c->pdl = p.major >= 9 && !(env && env[0] == '0');
    c->cluster_rows = p.major >= 9 ? 64 : 0;
    env = getenv("ARGEN_CUDA_WINDOW_CLUSTER");
    c->window_cluster_tq = p.major >= 9 && !(env && env[0] == '0') ? 16 : 0;
    env = getenv("ARGEN_CUDA_CLUSTER_ROWS");
    if (env && env[0] && p.major >= 9) c->cluster_rows = atoi(env) < 0 ? 0 : atoi(env);
    INIT_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    INIT_TRY(cublasCreate(&c->blas));
    INIT_TRY(cublasSetStream(c->blas, c->stream));
    INIT_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));  // no TF32 unless a call asks for it
    INIT_TRY(cublasLtCreate(&c->lt));
    INIT_TRY(cudnnCreate(&c->dnn));
    INIT_TRY(cudnnSetStream(c->dnn, c->stream));
    s = cuda_alloc_raw(be, &c->blas_ws, CUDA_BLAS_WORKSPACE);
    if (s != KT_OK) goto cleanup;
    c->blas_ws_size = CUDA_BLAS_WORKSPACE;
    INIT_TRY(cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_size));
    s = cuda_alloc_raw(be, &c->dev_small, 256);
    if (s != KT_OK) goto cleanup;
    INIT_TRY(cudaMemsetAsync(c->dev_small, 0, 256, c->stream));
    INIT_TRY(cudaMallocHost(&c->host_small, 256));
    INIT_TRY(cudaStreamSynchronize(c->stream));
#undef INIT_TRY
    set_name(be);
    return KT_OK;
cleanup:
    be_destroy(be);
    memset(be, 0, sizeof *be);
    return s;
}
