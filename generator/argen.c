// The public API (argen.h) over the backend and the models: VAR (VQVAE + next-scale transformer) here, LlamaGen
// (VQ-16 + raster GPT) in argen_llamagen.c.
#include "argen.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "argen_internal.h"
#include "kernels/profile.h"

// Below this many parameters (tokenizer + generator) the CPU backend runs on one thread (argen_load).
#define ARGEN_SMALL_MODEL_PARAMS ((size_t)20000000)

static const int k_official_patch_nums[] = {1, 2, 3, 4, 5, 6, 8, 10, 13, 16};

void argen_load_params_init(ArgenLoadParams *p) {
    memset(p, 0, sizeof *p);
    p->device = "auto";
    p->dtype = "fp32";
    p->max_batch = 1;
}

void argen_sample_params_init(ArgenSampleParams *p) {
    memset(p, 0, sizeof *p);
    p->cfg = 1.5f;
    p->top_k = 900;
    p->top_p = 0.96f;
    p->cfg_interval = -1.0f;
    p->temperature = 1.0f;
    p->sjd_window = 16;
    p->zipar_window = 8;
}

void argen_sample_params_init_for(ArgenSampleParams *p, const ArgenModel *m) {
    if (m) *p = m->sample_defaults;  // set at load: the architecture's defaults, then the checkpoint's metadata
    else argen_sample_params_init(p);
}

ArgenStatus argen_stats(const ArgenModel *m, ArgenStats *s) {
    *s = m->stats;
    return ARGEN_OK;
}

void argen_stats_reset(ArgenModel *m) { memset(&m->stats, 0, sizeof m->stats); }

ArgenStatus argen_profile(ArgenModel *m, bool on) { return on ? kt_profile_start(&m->be) : kt_profile_stop(&m->be); }

ArgenStatus argen_profile_report(ArgenModel *m, FILE *f) { return kt_profile_report(&m->be, f); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *argen_last_error(void) { return kt_last_error(); }
const char *argen_status_name(ArgenStatus s) { return kt_status_name((KtStatus)s); }
const char *argen_version(void) { return "0.1.0"; }
bool argen_cuda_available(void) { return kt_cuda_available(); }

static KtStatus parse_dtype(const char *s, KtDType *dt) {
    if (!s || !strcmp(s, "fp32")) *dt = KT_F32;
    else if (!strcmp(s, "bf16")) *dt = KT_BF16;
    else if (!strcmp(s, "fp16")) *dt = KT_F16;
    else return KT_FAIL(KT_ERR_ARG, "--dtype: expected fp32, bf16 or fp16, got '%s'", s);
    return KT_OK;
}

// Sampling defaults a checkpoint recommends in its safetensors metadata ("cfg", "top_k", "top_p", "temperature";
// the embedded digits models carry them), over the architecture's official ones.
KtStatus argen_read_sample_defaults(ArgenModel *m, const KtCheckpoint *ck) {
    ArgenSampleParams *d = &m->sample_defaults;
    bool found;
    int k = 0;
    KT_TRY(kt_ckpt_meta_float(ck, "cfg", &d->cfg, &found));
    KT_TRY(kt_ckpt_meta_int(ck, "top_k", 0, 1 << 30, &k, &found));
    if (found) d->top_k = k;
    KT_TRY(kt_ckpt_meta_float(ck, "top_p", &d->top_p, &found));
    KT_TRY(kt_ckpt_meta_float(ck, "temperature", &d->temperature, &found));
    if (d->cfg < 0 || d->top_p < 0 || d->top_p > 1 || d->temperature <= 0)
        return KT_FAIL(KT_ERR_FORMAT, "%s: metadata sampling defaults out of range (cfg %g >= 0, top_p %g in [0, 1], "
                       "temperature %g > 0)", ck->path, (double)d->cfg, (double)d->top_p, (double)d->temperature);
    return KT_OK;
}

// The patch schedule: the caller's, else the one the VQVAE's (then the transformer's) metadata names, else the
// official 10-scale schedule.
static KtStatus resolve_patch_nums(const ArgenLoadParams *p, const KtCheckpoint *vae, const KtCheckpoint *var,
                                   int *pns, int *n_pns) {
    if (p->patch_nums) {
        if (p->n_patch_nums < 1 || p->n_patch_nums > VQ_MAX_SCALES)
            return KT_FAIL(KT_ERR_ARG, "--patch-nums: expected 1 to %d scales, got %d", VQ_MAX_SCALES, p->n_patch_nums);
        memcpy(pns, p->patch_nums, (size_t)p->n_patch_nums * sizeof *pns);
        *n_pns = p->n_patch_nums;
        return KT_OK;
    }
    bool found = false;
    const KtCheckpoint *cks[2] = {vae, var};
    for (int i = 0; i < 2 && !found; i++)
        if (cks[i]) KT_TRY(kt_ckpt_meta_ints(cks[i], "patch_nums", pns, VQ_MAX_SCALES, n_pns, &found));
    if (!found) {
        *n_pns = (int)(sizeof k_official_patch_nums / sizeof *k_official_patch_nums);
        memcpy(pns, k_official_patch_nums, sizeof k_official_patch_nums);
    }
    return KT_OK;
}

static KtStatus load_var_random(ArgenModel *m, const ArgenLoadParams *p) {
    int pns[VQ_MAX_SCALES], n_pns;
    KT_TRY(resolve_patch_nums(p, NULL, NULL, pns, &n_pns));
    VarVqConfig qc;
    VarConfig c;
    KT_TRY(vq_var_config_default(&qc, pns, n_pns));
    KT_TRY(vq_var_init(&m->vq, &m->be, &qc, NULL, p->random_seed + 1, m->max_batch));
    KT_TRY(var_config_official(&c, p->random_depth, pns, n_pns));
    KT_TRY(var_init(&m->var, &m->be, &c, NULL, p->random_seed));
    m->has_var = true;
    return var_workspace_init(&m->ws, &m->var, &m->vq, m->max_batch);
}

// Opens the VQVAE and (when given) the transformer, resolves the schedule, builds both.
static KtStatus load_var_files(ArgenModel *m, const ArgenLoadParams *p) {
    if (!p->vae_path) return KT_FAIL(KT_ERR_ARG, "--vae: a VQVAE checkpoint is required");
    KtCheckpoint vae = {0}, var = {0};
    KT_TRY(argen_ckpt_open(&vae, p->vae_path));
    KtStatus st = vq16_ckpt_is_vq16(&vae) ? KT_FAIL(KT_ERR_FORMAT, "%s: this is a LlamaGen VQ tokenizer, not a VAR "
                                                    "VQVAE: use --arch llamagen --vq", p->vae_path) : KT_OK;
    if (st == KT_OK && p->ckpt_path) {
        st = argen_ckpt_open(&var, p->ckpt_path);
        if (st == KT_OK && llamagen_ckpt_is_gpt(&var))
            st = KT_FAIL(KT_ERR_FORMAT, "%s: this is a LlamaGen GPT, not a VAR transformer: use --arch llamagen",
                         p->ckpt_path);
    }
    int pns[VQ_MAX_SCALES], n_pns = 0;
    if (st == KT_OK) st = resolve_patch_nums(p, &vae, p->ckpt_path ? &var : NULL, pns, &n_pns);
    VarVqConfig qc;
    if (st == KT_OK) st = vq_var_config_from_ckpt(&qc, &vae, pns, n_pns);
    if (st == KT_OK) st = vq_var_init(&m->vq, &m->be, &qc, &vae, 0, m->max_batch);
    VarConfig c;
    if (st == KT_OK && p->ckpt_path) st = var_config_from_ckpt(&c, &var, pns, n_pns);
    if (st == KT_OK && p->ckpt_path && c.V != qc.V)
        st = KT_FAIL(KT_ERR_SHAPE, "%s: the transformer's vocabulary (%d) does not match the VQVAE codebook (%d "
                     "entries): use the VQVAE the model was trained with", p->ckpt_path, c.V, qc.V);
    if (st == KT_OK && p->ckpt_path) st = var_init(&m->var, &m->be, &c, &var, 0);
    if (st == KT_OK && p->ckpt_path) st = argen_read_sample_defaults(m, &var);
    if (st == KT_OK && p->ckpt_path) {
        m->has_var = true;
        st = var_workspace_init(&m->ws, &m->var, &m->vq, m->max_batch);
    }
    kt_ckpt_close(&vae);
    kt_ckpt_close(&var);
    return st;
}

ArgenStatus argen_load(ArgenModel **out, const ArgenLoadParams *p) {
    *out = NULL;
    if (p->max_batch < 1 || p->max_batch > 4096)
        return KT_FAIL(KT_ERR_ARG, "--batch: expected 1 to 4096, got %d", p->max_batch);
    ArgenModel *m = calloc(1, sizeof *m);
    if (!m) return KT_FAIL(KT_ERR_OOM, "out of memory");
    m->max_batch = p->max_batch;
    m->arch = p->arch;
    argen_sample_params_init(&m->sample_defaults);
    if (p->arch == ARGEN_ARCH_LLAMAGEN) {  // LlamaGen's sample_c2i.py demo
        m->sample_defaults.cfg = 4.0f;
        m->sample_defaults.top_k = 2000;
        m->sample_defaults.top_p = 1.0f;
    }
    KtDType dt = KT_F32;
    KtStatus st = parse_dtype(p->dtype, &dt);
    if (st == KT_OK) st = kt_backend_init_for(&m->be, p->device, dt);
    if (p->arch == ARGEN_ARCH_LLAMAGEN) {
        if (st == KT_OK) st = argen_llamagen_load(m, p);
    } else if (p->arch != ARGEN_ARCH_VAR) {
        if (st == KT_OK) st = KT_FAIL(KT_ERR_ARG, "--arch: unknown architecture %d", (int)p->arch);
    } else if (st == KT_OK) {
        st = p->random_depth > 0 ? load_var_random(m, p) : load_var_files(m, p);
        m->output_size = m->vq.config.image_size;
        if (st == KT_OK && p->output_size && p->output_size != m->output_size)
            st = KT_FAIL(KT_ERR_ARG, "--eval-size %d: VAR models write their native %d x %d images (resizing for "
                         "evaluation is LlamaGen's 384px protocol)", p->output_size, m->output_size, m->output_size);
    }
    if (st != KT_OK) {
        argen_free(m);
        return st;
    }
    // Small models (the embedded digits ones) gain nothing from threads: their ops are microseconds long, and a
    // spinning OpenMP team only slows other processes (and itself) down when the cores are shared. OMP_NUM_THREADS
    // still decides when set.
    size_t params = m->vq.table.n_params + m->var.table.n_params + m->vq16.table.n_params + m->llama.table.n_params;
    if (m->be.device == KT_CPU && !getenv("OMP_NUM_THREADS") && params < ARGEN_SMALL_MODEL_PARAMS)
        kt_backend_cpu_set_threads(&m->be, 1);
    *out = m;
    return KT_OK;
}

void argen_free(ArgenModel *m) {
    if (!m) return;
    argen_llamagen_free(m);
    var_workspace_free(&m->ws);
    var_free(&m->var);
    vq_var_free(&m->vq);
    kt_backend_free(&m->be);
    free(m);
}

ArgenStatus argen_info(const ArgenModel *m, ArgenInfo *info) {
    memset(info, 0, sizeof *info);
    info->arch = m->arch;
    if (m->arch == ARGEN_ARCH_LLAMAGEN) {
        argen_llamagen_info(m, info);
        return KT_OK;
    }
    const VarVqConfig *q = &m->vq.config;
    info->image_size = info->output_size = q->image_size;
    info->num_tokens = vq_var_num_tokens(q);
    info->vocab_size = q->V;
    info->n_scales = q->n_scales;
    memcpy(info->patch_nums, q->patch_nums, sizeof info->patch_nums);
    info->max_batch = m->max_batch;
    info->n_params_tokenizer = m->vq.table.n_params;
    if (m->has_var) {
        const VarConfig *c = &m->var.config;
        info->num_classes = c->num_classes;
        info->depth = c->depth;
        info->width = c->C;
        info->heads = c->n_heads;
        info->n_params_generator = m->var.table.n_params;
    }
    info->device = m->be.name;
    info->notes = m->be.notes;
    info->device_bytes_peak = m->be.peak_bytes;
    return KT_OK;
}

static KtStatus var_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                           const int64_t *image_ids, uint8_t *pixels, int32_t *tokens);

ArgenStatus argen_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                         const int64_t *image_ids, uint8_t *pixels, int32_t *tokens) {
    if ((unsigned)p->decode > ARGEN_DECODE_ZIPAR)
        return KT_FAIL(KT_ERR_ARG, "--decode: unknown strategy %d (sequential, sjd or zipar)", (int)p->decode);
    if (m->arch != ARGEN_ARCH_LLAMAGEN && p->decode != ARGEN_DECODE_SEQUENTIAL)
        return KT_FAIL(KT_ERR_ARG, "--decode %s: VAR (next-scale) models support sequential decoding only; sjd and "
                       "zipar are raster-model strategies (--arch llamagen)", p->decode == ARGEN_DECODE_SJD ? "sjd" : "zipar");
    double t0 = now_s();
    KtStatus st = m->arch == ARGEN_ARCH_LLAMAGEN ? argen_llamagen_sample(m, p, n, classes, image_ids, pixels, tokens)
                                                 : var_sample(m, p, n, classes, image_ids, pixels, tokens);
    m->stats.seconds += now_s() - t0;
    if (st != KT_OK) kt_discard_errors(&m->be);
    return st;
}

static KtStatus var_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                           const int64_t *image_ids, uint8_t *pixels, int32_t *tokens) {
    if (!m->has_var) return KT_FAIL(KT_ERR_ARG, "sampling needs a transformer checkpoint (--ckpt)");
    if (n < 0 || !classes || !image_ids || !pixels) return KT_FAIL(KT_ERR_ARG, "argen_sample: bad arguments");
    if (!(p->cfg >= 0) || p->cfg > 1e4f) return KT_FAIL(KT_ERR_ARG, "--cfg: expected a number >= 0, got %g", p->cfg);
    if (p->top_k < 0) return KT_FAIL(KT_ERR_ARG, "--top-k: expected >= 0, got %d", p->top_k);
    if (!(p->top_p >= 0 && p->top_p <= 1)) return KT_FAIL(KT_ERR_ARG, "--top-p: expected 0 to 1, got %g", p->top_p);
    VarSampleParams sp = {.cfg = p->cfg, .more_smooth = p->more_smooth, .smp = smp_params_default()};
    sp.smp.seed = p->seed;
    sp.smp.top_k = p->top_k;
    sp.smp.top_p = p->top_p;
    int64_t S = m->vq.config.image_size, L = m->var.config.L;
    for (int i = 0; i < n; i += m->max_batch) {
        int b = n - i < m->max_batch ? n - i : m->max_batch;
        VarOutputs out = {.pixels = pixels + (size_t)i * (size_t)(S * S * 3), .tokens = tokens ? tokens + i * L : NULL};
        KT_TRY(var_generate(&m->var, &m->vq, &m->ws, &sp, b, classes + i, image_ids + i, &out));
        m->stats.forwards += m->var.config.n_scales;
        m->stats.image_forwards += (int64_t)b * m->var.config.n_scales;
        m->stats.images += b;
        m->stats.tokens += (int64_t)b * L;
    }
    return KT_OK;
}

// u8 RGB -> [-1, 1] float as the official pipeline: x/255, then 2x - 1.
static void pixels_to_unit(float *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v = (float)src[i] / 255.0f;
        dst[i] = v + v - 1.0f;
    }
}

static KtStatus var_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens);
static KtStatus var_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels);

ArgenStatus argen_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens) {
    KtStatus st = m->arch == ARGEN_ARCH_LLAMAGEN ? argen_llamagen_encode(m, n, pixels, tokens)
                                                 : var_encode(m, n, pixels, tokens);
    if (st != KT_OK) kt_discard_errors(&m->be);
    return st;
}

ArgenStatus argen_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels) {
    KtStatus st = m->arch == ARGEN_ARCH_LLAMAGEN ? argen_llamagen_decode(m, n, tokens, pixels)
                                                 : var_decode(m, n, tokens, pixels);
    if (st != KT_OK) kt_discard_errors(&m->be);
    return st;
}

static KtStatus var_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens) {
    int64_t S = m->vq.config.image_size, L = vq_var_num_tokens(&m->vq.config), per = S * S * 3;
    int bmax = m->vq.max_batch;
    KtBuffer buf = {0};
    float *host = malloc((size_t)(bmax * per) * sizeof *host);
    int64_t *tok = malloc((size_t)(bmax * L) * sizeof *tok);
    KtStatus st = host && tok ? kt_buffer_alloc(&m->be, &buf, (size_t)(bmax * per) * 4) : KT_FAIL(KT_ERR_OOM, "out of memory");
    for (int i = 0; st == KT_OK && i < n; i += bmax) {
        int b = n - i < bmax ? n - i : bmax;
        KtTensor img = kt_tensor4(buf.data, KT_F32, m->be.device, b, S, S, 3);
        pixels_to_unit(host, pixels + (size_t)(i * per), (size_t)(b * per));
        if ((st = kt_upload(&m->be, &img, host)) == KT_OK) st = vq_var_img_to_tokens(&m->vq, tok, &img);
        for (int64_t j = 0; st == KT_OK && j < b * L; j++) tokens[i * L + j] = (int32_t)tok[j];
    }
    kt_buffer_free(&buf);
    free(host);
    free(tok);
    return st;
}

static KtStatus var_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels) {
    int64_t S = m->vq.config.image_size, L = vq_var_num_tokens(&m->vq.config), per = S * S * 3;
    int bmax = m->vq.max_batch;
    KtBuffer fbuf = {0}, ubuf = {0};
    int64_t *tok = malloc((size_t)(bmax * L) * sizeof *tok);
    KtStatus st = tok ? kt_buffer_alloc(&m->be, &fbuf, (size_t)(bmax * per) * 4) : KT_FAIL(KT_ERR_OOM, "out of memory");
    if (st == KT_OK) st = kt_buffer_alloc(&m->be, &ubuf, kt_arena_size((size_t)(bmax * per)) + 8);  // pixels + counter
    for (int i = 0; st == KT_OK && i < n; i += bmax) {
        int b = n - i < bmax ? n - i : bmax;
        KtTensor img = kt_tensor4(fbuf.data, KT_F32, m->be.device, b, S, S, 3);
        KtTensor px = kt_tensor4(ubuf.data, KT_U8, m->be.device, b, S, S, 3);
        for (int64_t j = 0; j < b * L; j++) tok[j] = tokens[i * L + j];
        KtTensor counter = kt_tensor1((char *)ubuf.data + kt_arena_size((size_t)(bmax * per)), KT_I64, m->be.device, 1);
        int64_t bad = 0;
        if ((st = kt_zero(&m->be, &counter)) != KT_OK) break;
        if ((st = vq_var_tokens_to_image(&m->vq, &img, tok, b)) != KT_OK) break;
        if ((st = kt_image_to_u8(&m->be, &px, &img, &counter)) != KT_OK) break;
        if ((st = kt_download(&m->be, &bad, &counter)) != KT_OK) break;
        if (bad) st = KT_FAIL(KT_ERR_NUMERIC, "VQVAE decoder: %lld non-finite pixel values", (long long)bad);
        else st = kt_download(&m->be, pixels + (size_t)(i * per), &px);
    }
    kt_buffer_free(&fbuf);
    kt_buffer_free(&ubuf);
    free(tok);
    return st;
}
