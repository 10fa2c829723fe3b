// CPU reference backend: host memory (64-byte aligned malloc with a size header for accounting), the grow-only
// scratch shared by the ops, and the vtable wiring the per-family implementations (dense.c, norm.c, ...).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_ops.h"

#define CPU_ALIGN 64  // also the size of the header that records each allocation's size

typedef struct {
    void *scratch;  // owned: grow-only op scratch (see cpu_scratch)
    size_t scratch_cap;
    char name[128];
} CpuState;

// ------------------------------------------------------------------------------------------------------- memory
static KtStatus cpu_alloc(KtBackend *be, void **ptr, size_t nbytes) {
    void *p = NULL;
    *ptr = NULL;
    if (nbytes > SIZE_MAX - CPU_ALIGN || posix_memalign(&p, CPU_ALIGN, nbytes + CPU_ALIGN) != 0)
        return KT_FAIL(KT_ERR_OOM, "cpu backend: could not allocate %zu bytes (%zu already in use)", nbytes,
                       be->bytes_in_use);
    memcpy(p, &nbytes, sizeof nbytes);
    be->n_allocs++;
    be->bytes_in_use += nbytes;
    if (be->bytes_in_use > be->peak_bytes) be->peak_bytes = be->bytes_in_use;
    *ptr = (char *)p + CPU_ALIGN;
    return KT_OK;
}

static void cpu_release(KtBackend *be, void *ptr) {
    if (!ptr) return;
    char *base = (char *)ptr - CPU_ALIGN;
    size_t nbytes;
    memcpy(&nbytes, base, sizeof nbytes);
    be->bytes_in_use -= nbytes;
    free(base);
}

static KtStatus cpu_copy_bytes(KtBackend *be, void *dst, const void *src, size_t nbytes) {
    (void)be;
    if (nbytes && dst != src) memmove(dst, src, nbytes);
    return KT_OK;
}

static KtStatus cpu_zero(KtBackend *be, void *dst, size_t nbytes) {
    (void)be;
    if (nbytes) memset(dst, 0, nbytes);
    return KT_OK;
}

static KtStatus cpu_sync(KtBackend *be) {
    (void)be;
    return KT_OK;
}

KtStatus cpu_scratch(KtBackend *be, size_t nbytes, void **out) {
    CpuState *st = be->impl;
    if (nbytes > st->scratch_cap) {
        cpu_release(be, st->scratch);
        st->scratch = NULL;
        st->scratch_cap = 0;
        KT_TRY(cpu_alloc(be, &st->scratch, nbytes));
        st->scratch_cap = nbytes;
    }
    *out = st->scratch;
    return KT_OK;
}

static void cpu_destroy(KtBackend *be) {
    CpuState *st = be->impl;
    if (!st) return;
    cpu_release(be, st->scratch);
    free(st);
    be->impl = NULL;
}

// --------------------------------------------------------------------------------------------------------- init
static const KtBackendOps cpu_ops = {
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy_bytes,
    .download = cpu_copy_bytes,
    .copy = cpu_copy_bytes,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .linear = cpu_linear,
    .linear_gelu_tanh = cpu_linear_gelu_tanh,
    .layernorm = cpu_layernorm,
    .adaln_modulate = cpu_adaln_modulate,
    .layernorm_adaln = cpu_layernorm_adaln,
    .gated_residual = cpu_gated_residual,
    .gated_residual_layernorm_adaln = cpu_gated_residual_layernorm_adaln,
    .gelu_tanh = cpu_gelu_tanh,
    .silu = cpu_silu,
    .add = cpu_add,
    .axpby = cpu_axpby,
    .softmax = cpu_softmax,
    .embedding = cpu_embedding,
    .split_chunks = cpu_split_chunks,
    .conv2d = cpu_conv2d,
    .conv2d_bias_relu = cpu_conv2d_bias_relu,
    .group_norm = cpu_group_norm,
    .group_norm_silu = cpu_group_norm_silu,
    .upsample_nearest2x = cpu_upsample_nearest2x,
    .resize_bicubic = cpu_resize_bicubic,
    .resize_area = cpu_resize_area,
    .codebook_argmin = cpu_codebook_argmin,
    .split_qkv_heads = cpu_split_qkv_heads,
    .var_attn_prep = cpu_var_attn_prep,
    .attention = cpu_attention,
    .var_attention = cpu_var_attention,
    .cfg_combine = cpu_cfg_combine,
    .sample_top_k_top_p = cpu_sample_top_k_top_p,
    .smooth_embed = cpu_smooth_embed,
    .image_to_u8 = cpu_image_to_u8,
    .count_nonfinite = cpu_count_nonfinite,
    .convert = cpu_convert,
    .rmsnorm = cpu_rmsnorm,
    .add_rmsnorm = cpu_add_rmsnorm,
    .swiglu = cpu_swiglu,
    .llama_attn_prep = cpu_llama_attn_prep,
    .attention_pos = cpu_attention_pos,
    .l2_normalize = cpu_l2_normalize,
    .sample_llama = cpu_sample_llama,
    .probs_llama = cpu_probs_llama,
    .raster_step_inputs = cpu_raster_step_inputs,
    .raster_step_commit = cpu_raster_step_commit,
    .raster_window_inputs = cpu_raster_window_inputs,
    .raster_window_commit = cpu_raster_window_commit,
    .fid_preprocess = cpu_fid_preprocess,
    .channel_affine_relu = cpu_channel_affine_relu,
    .max_pool2d = cpu_max_pool2d,
    .avg_pool2d = cpu_avg_pool2d,
    .spatial_mean = cpu_spatial_mean,
    .copy_channels = cpu_copy_channels,
};

// "OpenBLAS 0.3.21" from openblas_get_config()'s "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." (first two words).
static void blas_version(char *buf, size_t cap) {
    const char *cfg = openblas_get_config();
    size_t n = 0;
    int words = 0;
    if (!cfg) cfg = "OpenBLAS";
    for (; cfg[n] && n + 1 < cap; n++) {
        if (cfg[n] == ' ' && ++words == 2) break;
        buf[n] = cfg[n];
    }
    buf[n] = 0;
}

void kt_backend_cpu_set_threads(KtBackend *be, int threads) {
    if (be->device != KT_CPU || threads < 1) return;
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    CpuState *st = be->impl;
    char ver[64];
    blas_version(ver, sizeof ver);
    int n = cpu_max_threads();
    snprintf(st->name, sizeof st->name, "cpu (%s, %d thread%s)", ver, n, n == 1 ? "" : "s");
}

KtStatus kt_backend_cpu_init(KtBackend *be, int threads) {
    memset(be, 0, sizeof *be);
    CpuState *st = calloc(1, sizeof *st);
    if (!st) return KT_FAIL(KT_ERR_OOM, "cpu backend: out of memory");
    // OpenBLAS stays serial: argen parallelises GEMMs itself over shape-determined tiles (cpu_sgemm), which keeps
    // results independent of the thread count and avoids two thread pools competing for the cores.
    openblas_set_num_threads(1);
#ifdef _OPENMP
    // threads <= 0: the process's initial default (OMP_NUM_THREADS or the cores), also after an earlier backend
    // lowered it (kt_backend_cpu_set_threads for a small model)
    static int initial_threads;
    if (!initial_threads) initial_threads = omp_get_max_threads();
    omp_set_num_threads(threads > 0 ? threads : initial_threads);
#endif
    char ver[64];
    blas_version(ver, sizeof ver);
    int n = cpu_max_threads();
    snprintf(st->name, sizeof st->name, "cpu (%s, %d thread%s)", ver, n, n == 1 ? "" : "s");
    be->ops = &cpu_ops;
    be->device = KT_CPU;
    be->name = st->name;
    be->matmul_dtype = be->map_dtype = KT_F32;
    be->impl = st;
    return KT_OK;
}
