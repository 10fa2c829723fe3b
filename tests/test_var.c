// VAR transformer against the var_tiny fixture made by the official code: teacher-forced logits, greedy CFG
// sampling (tokens exact, step logits and image within 1e-4), plus properties that must hold for any
// configuration: KV-cached sampling logits == teacher-forced logits, batch invariance, determinism, no allocation
// in the sampling loop. CPU and (when present) CUDA.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generator/var.h"
#include "testutil.h"

static const int k_tiny_pns[] = {1, 2, 3, 4};
#define REF "var_tiny/ref.safetensors"

typedef struct {
    KtBackend be;
    VarVqvae vq;
    VarModel var;
    VarWorkspace ws;
} Tiny;

static void tiny_load_dtype(Tiny *t, KtDevice dev, KtDType dt, const char *var_file, int max_batch) {
    test_backend_init(&t->be, dev);
    cr_assert(kt_backend_set_matmul_dtype(&t->be, dt) == KT_OK, "%s", kt_last_error());
    KtCheckpoint ck = {0};
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/vae.safetensors")) == KT_OK, "%s", kt_last_error());
    VarVqConfig qc;
    cr_assert(vq_var_config_from_ckpt(&qc, &ck, k_tiny_pns, 4) == KT_OK, "%s", kt_last_error());
    cr_assert(vq_var_init(&t->vq, &t->be, &qc, &ck, 0, max_batch) == KT_OK, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    cr_assert(kt_ckpt_open(&ck, fixture_path(var_file)) == KT_OK, "%s", kt_last_error());
    VarConfig c;
    cr_assert(var_config_from_ckpt(&c, &ck, k_tiny_pns, 4) == KT_OK, "%s", kt_last_error());
    cr_expect_eq(c.depth, 2);
    cr_expect_eq(c.C, 128);
    cr_expect_eq(c.n_heads, 2);
    cr_expect_eq(c.V, 128);
    cr_expect_eq(c.num_classes, 10);
    cr_expect_eq(c.L, 30);
    cr_assert(var_init(&t->var, &t->be, &c, &ck, 0) == KT_OK, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    cr_assert(var_workspace_init(&t->ws, &t->var, &t->vq, max_batch) == KT_OK, "%s", kt_last_error());
}

static void tiny_load(Tiny *t, KtDevice dev, const char *var_file, int max_batch) {
    tiny_load_dtype(t, dev, KT_F32, var_file, max_batch);
}

static void tiny_free(Tiny *t) {
    var_workspace_free(&t->ws);
    var_free(&t->var);
    vq_var_free(&t->vq);
    kt_backend_free(&t->be);
}

static void check_teacher(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "var_tiny/var.pth", 2);
    float *vi = read_f32(fixture_path(REF), "var_input", NULL, NULL, NULL);
    float *ref = read_f32(fixture_path(REF), "teacher_logits", NULL, NULL, NULL);
    int32_t labels[2] = {3, 7};
    float *logits = malloc(2 * 30 * 128 * sizeof *logits);
    cr_assert(var_forward_teacher(&t.var, 2, labels, vi, logits) == KT_OK, "%s", kt_last_error());
    expect_close("teacher_logits", logits, ref, 2 * 30 * 128, TOL_MODEL_F32);
    free(vi);
    free(ref);
    free(logits);
    tiny_free(&t);
}

Test(var, cpu_teacher_logits_vs_official) { check_teacher(KT_CPU); }
Test(var, cuda_teacher_logits_vs_official) { check_teacher(KT_CUDA); }

static void check_greedy(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "var_tiny/var.pth", 2);
    VarSampleParams p = {.cfg = 2.5f, .smp = smp_params_default()};
    p.smp.top_k = 1;
    int32_t labels[2] = {3, 7}, tokens[60];
    int64_t ids[2] = {0, 1};
    float *logits = malloc(2 * 30 * 128 * sizeof *logits), *image = malloc(2 * 64 * 64 * 3 * sizeof *image);
    uint8_t *px = malloc(2 * 64 * 64 * 3);
    VarOutputs out = {.pixels = px, .tokens = tokens, .logits = logits, .image = image};
    cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 2, labels, ids, &out) == KT_OK, "%s", kt_last_error());

    int64_t *ref_tok = read_i64(fixture_path(REF), "greedy_tokens", NULL), tok64[60];
    for (int i = 0; i < 60; i++) tok64[i] = tokens[i];
    expect_equal_i64("greedy_tokens", tok64, ref_tok, 60);
    float *ref_logits = read_f32(fixture_path(REF), "greedy_step_logits", NULL, NULL, NULL);
    expect_close("greedy_step_logits", logits, ref_logits, 2 * 30 * 128, TOL_MODEL_F32);

    // greedy_image = (clamp(img, -1, 1) + 1) / 2, NCHW
    float *ref_img = read_f32(fixture_path(REF), "greedy_image", NULL, NULL, NULL), *img = malloc(2 * 3 * 64 * 64 * 4);
    int max_level_diff = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 64 * 64; i++)
            for (int c = 0; c < 3; c++) {
                float v = image[(b * 64 * 64 + i) * 3 + c];
                v = (fminf(fmaxf(v, -1.0f), 1.0f) + 1.0f) * 0.5f;
                img[(b * 3 + c) * 64 * 64 + i] = v;
                int level = (int)(ref_img[(b * 3 + c) * 64 * 64 + i] * 255.0f);
                int d = abs(level - (int)px[(b * 64 * 64 + i) * 3 + c]);
                if (d > max_level_diff) max_level_diff = d;
            }
    expect_close("greedy_image", img, ref_img, 2 * 3 * 64 * 64, TOL_MODEL_F32);
    cr_expect(max_level_diff <= 1, "8-bit pixels differ from the reference by up to %d levels", max_level_diff);
    free(ref_tok);
    free(ref_logits);
    free(ref_img);
    free(img);
    free(logits);
    free(image);
    free(px);
    tiny_free(&t);
}

Test(var, cpu_greedy_cfg_sampling_vs_official) { check_greedy(KT_CPU); }
Test(var, cuda_greedy_cfg_sampling_vs_official) { check_greedy(KT_CUDA); }

Test(var, zip_legacy_and_safetensors_give_identical_weights) {
    Tiny a, b, c;
    tiny_load(&a, KT_CPU, "var_tiny/var.pth", 1);
    tiny_load(&b, KT_CPU, "var_tiny/var.safetensors", 1);
    tiny_load(&c, KT_CPU, "legacy/var_legacy.pth", 1);
    cr_assert_eq(a.var.weights.nbytes, b.var.weights.nbytes);
    cr_assert_eq(a.var.weights.nbytes, c.var.weights.nbytes);
    cr_expect(memcmp(a.var.weights.data, b.var.weights.data, a.var.weights.nbytes) == 0, "zip .pth vs .safetensors");
    cr_expect(memcmp(a.var.weights.data, c.var.weights.data, a.var.weights.nbytes) == 0, "zip .pth vs legacy .pth");
    tiny_free(&a);
    tiny_free(&b);
    tiny_free(&c);
}

// Sampling with top-k/top-p: image k's tokens do not depend on its batch or position in it; same seed, same
// tokens; the sampling loop allocates nothing once the workspace exists.
// Batch invariance, determinism and no allocation in the loop, on both backends. On CUDA the later calls replay the
// graph captured by the previous call with the same batch and settings (the last call is a replay after a capture
// for another seed): tokens and pixels equal the eager call's, graphs stay on, and fp32 tokens equal the CPU's.
static void check_batch_invariant(KtDevice dev, int32_t all[90]) {
    enum { PX = 64 * 64 * 3 };
    Tiny t;
    tiny_load(&t, dev, "var_tiny/var.pth", 3);
    VarSampleParams p = {.cfg = 1.5f, .smp = smp_params_default()};
    p.smp.seed = 42;
    p.smp.top_k = 50;
    p.smp.top_p = 0.9f;
    int32_t labels[3] = {1, 4, 9}, one[30], again[90];
    int64_t ids[3] = {10, 11, 12};
    static uint8_t px[3 * PX], px_again[3 * PX];
    VarOutputs out = {.tokens = all, .pixels = px};
    cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 3, labels, ids, &out) == KT_OK, "%s", kt_last_error());
    out = (VarOutputs){.tokens = one};
    cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 1, labels + 1, ids + 1, &out) == KT_OK, "%s", kt_last_error());
    int64_t allocs = t.be.n_allocs;  // both batch sizes seen (CUDA: per-size conv plans may grow scratch once)
    cr_expect(memcmp(one, all + 30, sizeof one) == 0, "image 11 changed when sampled alone");
    out = (VarOutputs){.tokens = again};
    cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 3, labels, ids, &out) == KT_OK);
    cr_expect(memcmp(again, all, sizeof again) == 0, "same seed gave different tokens");
    cr_expect_eq(t.be.n_allocs, allocs, "sampling allocated %lld times", (long long)(t.be.n_allocs - allocs));
    bool differs = false;
    p.smp.seed = 43;
    cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 3, labels, ids, &out) == KT_OK);
    for (int i = 0; i < 90; i++) differs |= again[i] != all[i];
    cr_expect(differs, "seed 43 gave the same tokens as seed 42");
    p.smp.seed = 42;
    for (int rep = 0; rep < 2; rep++) {  // eager + capture, then a replay
        out = (VarOutputs){.tokens = again, .pixels = px_again};
        cr_assert(var_generate(&t.var, &t.vq, &t.ws, &p, 3, labels, ids, &out) == KT_OK, "%s", kt_last_error());
        cr_expect(memcmp(again, all, sizeof again) == 0, "run %d: tokens differ from the first call's", rep);
        cr_expect(memcmp(px_again, px, sizeof px) == 0, "run %d: pixels differ from the first call's", rep);
    }
    cr_expect(!strstr(t.be.notes, "graphs off"), "notes: %s", t.be.notes);
    tiny_free(&t);
}

Test(var, sampling_is_batch_invariant_deterministic_and_allocation_free) {
    int32_t all[90];
    check_batch_invariant(KT_CPU, all);
}

Test(var, cuda_sampling_graph_replay_equals_eager_and_cpu_tokens) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    int32_t cpu[90], gpu[90];
    check_batch_invariant(KT_CPU, cpu);
    check_batch_invariant(KT_CUDA, gpu);
    cr_expect(memcmp(cpu, gpu, sizeof cpu) == 0, "fp32 CUDA tokens differ from the CPU's for the same seed");
}

Test(var, bad_inputs_give_clear_errors) {
    Tiny t;
    tiny_load(&t, KT_CPU, "var_tiny/var.pth", 1);
    VarSampleParams p = {.cfg = 1.5f, .smp = smp_params_default()};
    int32_t bad_label = 10;
    int64_t id = 0;
    cr_expect_eq(var_generate(&t.var, &t.vq, &t.ws, &p, 1, &bad_label, &id, NULL), KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "class 10 is outside [0, 10)"), "%s", kt_last_error());
    tiny_free(&t);

    KtCheckpoint ck = {0};
    VarConfig c;
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/var.pth")) == KT_OK);
    static const int wrong[] = {1, 2, 3, 5};
    cr_expect_eq(var_config_from_ckpt(&c, &ck, wrong, 4), KT_ERR_SHAPE);
    cr_expect(strstr(kt_last_error(), "--patch-nums"), "%s", kt_last_error());
    static const int decreasing[] = {1, 3, 2};
    cr_expect_eq(var_config_from_ckpt(&c, &ck, decreasing, 3), KT_ERR_ARG);
    kt_ckpt_close(&ck);
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/vae.pth")) == KT_OK);
    cr_expect_eq(var_config_from_ckpt(&c, &ck, k_tiny_pns, 4), KT_ERR_FORMAT);
    cr_expect(strstr(kt_last_error(), "--vae"), "%s", kt_last_error());
    kt_ckpt_close(&ck);
}

// A configuration unlike the fixture's (depth 3, head size 32, 3 heads, vocabulary 64, 4 latent channels,
// 5 scales ending at 6, two VQVAE levels): random weights, and the cfg=0 sampling logits (KV cache, one scale at
// a time) must equal the teacher-forced logits (block-causal mask, all at once) for the sampled tokens.
static void check_other_config(KtDevice dev) {
    KtBackend be;
    test_backend_init(&be, dev);
    static const int pns[] = {1, 2, 3, 5, 6};
    VarVqConfig qc;
    cr_assert(vq_var_config_default(&qc, pns, 5) == KT_OK);
    qc.ch = 32;
    qc.n_levels = 2;
    qc.ch_mult[0] = 1;
    qc.ch_mult[1] = 2;
    qc.V = 64;
    qc.Cvae = 4;
    qc.n_phi = 4;
    cr_assert(vq_var_config_set_schedule(&qc, pns, 5) == KT_OK);
    cr_expect_eq(qc.image_size, 12);
    VarConfig c;
    cr_assert(var_config_official(&c, 3, pns, 5) == KT_OK);
    c.C = 96;
    c.n_heads = 3;
    c.head_size = 32;
    c.mlp_hidden = 4 * 96;
    c.V = 64;
    c.Cvae = 4;
    c.num_classes = 5;
    VarVqvae vq;
    VarModel var;
    VarWorkspace ws;
    cr_assert(vq_var_init(&vq, &be, &qc, NULL, 7, 2) == KT_OK, "%s", kt_last_error());
    cr_assert(var_init(&var, &be, &c, NULL, 8) == KT_OK, "%s", kt_last_error());
    cr_assert(var_workspace_init(&ws, &var, &vq, 2) == KT_OK, "%s", kt_last_error());
    VarSampleParams p = {.cfg = 0.0f, .smp = smp_params_default()};
    p.smp.seed = 5;
    int32_t labels[2] = {0, 4}, tokens[2 * 75];
    int64_t ids[2] = {0, 1}, tok64[2 * 75];
    float *logits = malloc(2 * 75 * 64 * sizeof *logits), *teacher = malloc(2 * 75 * 64 * sizeof *teacher);
    float *vi = malloc(2 * 74 * 4 * sizeof *vi);
    uint8_t px[2 * 12 * 12 * 3];
    VarOutputs out = {.pixels = px, .tokens = tokens, .logits = logits};
    cr_assert(var_generate(&var, &vq, &ws, &p, 2, labels, ids, &out) == KT_OK, "%s", kt_last_error());
    for (int i = 0; i < 150; i++) {
        cr_assert(tokens[i] >= 0 && tokens[i] < 64);
        tok64[i] = tokens[i];
    }
    cr_assert(vq_var_tokens_to_var_input(&vq, vi, tok64, 2) == KT_OK, "%s", kt_last_error());
    cr_assert(var_forward_teacher(&var, 2, labels, vi, teacher) == KT_OK, "%s", kt_last_error());
    expect_close("KV-cached vs teacher-forced logits", logits, teacher, 2 * 75 * 64, TOL_REDUCE_F32);
    free(logits);
    free(teacher);
    free(vi);
    var_workspace_free(&ws);
    var_free(&var);
    vq_var_free(&vq);
    kt_backend_free(&be);
}

Test(var, cpu_other_configuration_cache_matches_teacher) { check_other_config(KT_CPU); }
Test(var, cuda_other_configuration_cache_matches_teacher) { check_other_config(KT_CUDA); }

// A NaN in one block's weights is reported with the scale and block where it first appears, never as a PNG.
static void check_nonfinite(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "var_tiny/var.pth", 1);
    float bias[128];
    cr_assert(kt_download(&t.be, bias, &t.var.blocks[1].fc2_b) == KT_OK);
    bias[5] = NAN;
    cr_assert(kt_upload(&t.be, &t.var.blocks[1].fc2_b, bias) == KT_OK);
    VarSampleParams p = {.cfg = 1.5f, .smp = smp_params_default()};
    int32_t label = 3;
    int64_t id = 0;
    uint8_t px[64 * 64 * 3];
    VarOutputs out = {.pixels = px};
    cr_expect_eq(var_generate(&t.var, &t.vq, &t.ws, &p, 1, &label, &id, &out), KT_ERR_NUMERIC);
    cr_expect(strstr(kt_last_error(), "scale 0, block 1"), "%s", kt_last_error());
    tiny_free(&t);
}

Test(var, cpu_nonfinite_values_name_scale_and_block) { check_nonfinite(KT_CPU); }
Test(var, cuda_nonfinite_values_name_scale_and_block) { check_nonfinite(KT_CUDA); }

// bf16 weights (CUDA): teacher-forced logits agree with the official fp32 ones within a relative L2 error of
// TOL_BF16_MODEL_L2, and the greedy image decoded with bf16 weights and feature maps stays within a few 8-bit levels.
static double rel_l2(const float *a, const float *r, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - r[i]) * ((double)a[i] - r[i]);
        den += (double)r[i] * r[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

Test(var, cuda_bf16_logits_and_image_close_to_fp32) {
    Tiny t;
    tiny_load_dtype(&t, KT_CUDA, KT_BF16, "var_tiny/var.pth", 2);
    float *vi = read_f32(fixture_path(REF), "var_input", NULL, NULL, NULL);
    float *ref = read_f32(fixture_path(REF), "teacher_logits", NULL, NULL, NULL);
    int32_t labels[2] = {3, 7};
    float *logits = malloc(2 * 30 * 128 * sizeof *logits);
    cr_assert(var_forward_teacher(&t.var, 2, labels, vi, logits) == KT_OK, "%s", kt_last_error());
    double e = rel_l2(logits, ref, 2 * 30 * 128);
    cr_expect(e < TOL_BF16_MODEL_L2, "bf16 teacher logits: relative L2 error %.3g", e);

    // the official greedy tokens decoded with bf16 weights and maps vs the official fp32 image, in 8-bit levels
    int64_t *tok = read_i64(fixture_path(REF), "greedy_tokens", NULL);
    float *ref_img = read_f32(fixture_path(REF), "greedy_image", NULL, NULL, NULL);
    KtBuffer buf;
    cr_assert(kt_buffer_alloc(&t.be, &buf, 2 * 64 * 64 * 3 * 4) == KT_OK);
    KtTensor img = kt_tensor4(buf.data, KT_F32, t.be.device, 2, 64, 64, 3);
    cr_assert(vq_var_tokens_to_image(&t.vq, &img, tok, 2) == KT_OK, "%s", kt_last_error());
    float *got = malloc(2 * 64 * 64 * 3 * sizeof *got);
    cr_assert(kt_download(&t.be, got, &img) == KT_OK);
    int worst = 0;
    double sum = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 64 * 64; i++)
            for (int c = 0; c < 3; c++) {
                float v = (fminf(fmaxf(got[(b * 64 * 64 + i) * 3 + c], -1.0f), 1.0f) + 1.0f) * 0.5f;
                int d = abs((int)(v * 255.0f) - (int)(ref_img[(b * 3 + c) * 64 * 64 + i] * 255.0f));
                worst = d > worst ? d : worst;
                sum += d;
            }
    double mean = sum / (2 * 64 * 64 * 3);
    cr_expect(mean <= TOL_BF16_IMAGE_MEAN_LEVELS && worst <= TOL_BF16_IMAGE_MAX_LEVELS,
              "bf16 image vs official fp32: mean %.2f levels, max %d levels", mean, worst);
    cr_log_info("bf16: teacher logits rel L2 %.3g; image mean %.2f, max %d levels", e, mean, worst);
    kt_buffer_free(&buf);
    free(got);
    free(ref_img);
    free(tok);
    free(vi);
    free(ref);
    free(logits);
    tiny_free(&t);
}
