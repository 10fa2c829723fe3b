// LlamaGen c2i GPT against the llamagen_tiny fixture made by the official code (teacher-forced logits, greedy CFG
// tokens with the KV cache, the greedy image), the 2D rotary table against precompute_freqs_cis_2d, and the decoding
// strategies on the real model: SJD with top-k 1 gives the sequential greedy tokens for every window, draft
// initialisation, schedule and batch; SJD and sequential sampling draw the first tokens from the exact AR law
// (chi-square); greedy ZipAR matches a transcription of the released ZipAR code (scripts/zipar_reference.py) with
// the schedule's forward count; batch invariance; no allocation in the sampling loop. CPU and (when present) CUDA.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generator/llamagen.h"
#include "samplers/sampling.h"
#include "testutil.h"
#include "tokenizer/vq16.h"

#define REF "llamagen_tiny/ref.safetensors"

typedef struct {
    KtBackend be;
    LlamaModel m;
    LlamaWorkspace ws;
} Tiny;

static void tiny_load(Tiny *t, KtDevice dev, const char *file, int max_batch) {
    test_backend_init(&t->be, dev);
    KtCheckpoint ck = {0};
    OK(kt_ckpt_open(&ck, fixture_path(file)));
    LlamaConfig c;
    OK(llamagen_config_from_ckpt(&c, &ck, 4, 4));  // the fixture has 4 heads (width 128 has no official count)
    cr_expect(c.n_layer == 2 && c.D == 128 && c.n_heads == 4 && c.head_size == 32 && c.F == 512 && c.V == 128);
    cr_expect(c.num_classes == 10 && c.N == 16 && c.P == 17 && c.cache_len == 24);
    OK(llamagen_init(&t->m, &t->be, &c, &ck, 0));
    kt_ckpt_close(&ck);
    OK(llamagen_workspace_init(&t->ws, &t->m, max_batch, 1));
}

static void tiny_free(Tiny *t) {
    llamagen_workspace_free(&t->ws);
    llamagen_free(&t->m);
    kt_backend_free(&t->be);
}

static const int32_t k_labels[2] = {2, 9};

static LlamaSampleParams greedy_params(LlamaDecode d) {
    LlamaSampleParams p;
    llamagen_sample_params_default(&p);
    p.cfg = 2.0f;
    p.smp.top_k = 1;
    p.decode = d;
    return p;
}

// ------------------------------------------------------------------------------------------------ config, RoPE
Test(llamagen, config_from_shapes_and_official_heads) {
    KtCheckpoint ck = {0};
    LlamaConfig c;
    OK(kt_ckpt_open(&ck, fixture_path("llamagen_tiny/gpt.pt")));
    OK(llamagen_config_from_ckpt(&c, &ck, 0, 16));
    cr_expect(c.n_heads == 2 && c.head_size == 64, "width 128 without --heads: head size 64 (%d heads)", c.n_heads);
    cr_expect(c.grid == 16 && c.P == 257 && c.cache_len == 264);
    cr_expect(llamagen_config_from_ckpt(&c, &ck, 3, 16) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "--heads") != NULL, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    OK(kt_ckpt_open(&ck, fixture_path("var_tiny/var.pth")));
    cr_expect(llamagen_config_from_ckpt(&c, &ck, 0, 16) == KT_ERR_FORMAT);
    cr_expect(strstr(kt_last_error(), "VAR transformer: use --arch var") != NULL, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    static const struct { const char *name; int layers, heads, D, F; } gpt[] = {
        {"B", 12, 12, 768, 2048}, {"L", 24, 16, 1024, 2816}, {"XL", 36, 20, 1280, 3584}, {"XXL", 48, 24, 1536, 4096},
        {"3B", 24, 32, 3200, 8704}};
    for (int i = 0; i < 5; i++) {
        OK(llamagen_config_official(&c, gpt[i].name, 24));
        cr_expect(c.n_layer == gpt[i].layers && c.n_heads == gpt[i].heads && c.D == gpt[i].D && c.F == gpt[i].F,
                  "GPT-%s: %d layers, %d heads, width %d, FFN %d", gpt[i].name, c.n_layer, c.n_heads, c.D, c.F);
    }
    cr_expect(c.head_size == 100 && c.P == 577 && c.cache_len == 584);
}

Test(llamagen, rope_table_matches_precompute_freqs_cis_2d) {
    static const struct { int g, hd; const char *name; } cases[] = {
        {4, 32, "rope.g4_hd32"}, {16, 64, "rope.g16_hd64"}, {3, 100, "rope.g3_hd100"}};
    for (int i = 0; i < 3; i++) {
        int64_t n;
        float *ref = read_f32(fixture_path("llama_ops/llama_ops.safetensors"), cases[i].name, &n, NULL, NULL);
        cr_assert_eq(n, (int64_t)(1 + cases[i].g * cases[i].g) * cases[i].hd);
        float *got = malloc((size_t)n * sizeof *got);
        llamagen_rope_table(got, cases[i].g, cases[i].hd, 10000.0f);
        expect_close(cases[i].name, got, ref, n, TOL_ELEMWISE_F32);  // float32 cos/sin of float32 angles
        free(got);
        free(ref);
    }
    // a head of 3200 (e.g. GPT-3B with --heads 1): 800 frequencies per axis (the table once kept 512 in a stack
    // array); the last pair of position (row 1, column 1) against the formula
    int g = 2, hd = 3200, half = hd / 2, Q = half / 2;
    float *big = malloc((size_t)(1 + g * g) * (size_t)hd * sizeof *big);
    llamagen_rope_table(big, g, hd, 10000.0f);
    float f = 1.0f / powf(10000.0f, (float)(2 * (Q - 1)) / (float)half);
    const float *last = big + ((size_t)(1 + 1 * g + 1) * half + (half - 1)) * 2;
    cr_expect(last[0] == (float)cos((double)f) && last[1] == (float)sin((double)f), "%g %g", last[0], last[1]);
    free(big);
}

// ------------------------------------------------------------------------------------------- vs the official code
static void check_teacher(KtDevice dev, const char *file) {
    Tiny t;
    tiny_load(&t, dev, file, 2);
    int64_t *tok64 = read_i64(fixture_path(REF), "encode_tokens", NULL);
    int32_t tok[32];
    for (int i = 0; i < 32; i++) tok[i] = (int32_t)tok64[i];
    float *logits = malloc(2 * 16 * 128 * sizeof *logits), *ref = read_f32(fixture_path(REF), "teacher_logits", NULL, NULL, NULL);
    OK(llamagen_forward_teacher(&t.m, 2, k_labels, tok, logits));
    expect_close("teacher_logits", logits, ref, 2 * 16 * 128, TOL_MODEL_F32);
    free(tok64);
    free(logits);
    free(ref);
    tiny_free(&t);
}
Test(llamagen, cpu_teacher_logits_vs_official) { check_teacher(KT_CPU, "llamagen_tiny/gpt.pt"); }
Test(llamagen, cpu_teacher_logits_safetensors_and_legacy) {
    check_teacher(KT_CPU, "llamagen_tiny/gpt.safetensors");
    check_teacher(KT_CPU, "legacy/gpt_legacy.pt");
}
Test(llamagen, cuda_teacher_logits_vs_official) { check_teacher(KT_CUDA, "llamagen_tiny/gpt.pt"); }

// The same logits one token per forward through the KV cache (the decode step's shapes: 2 rows, so on CUDA with
// 16-bit weights the fused small-batch kernels and dependent launches of llama_gemv.cu): float32 within the model
// tolerance; bf16 and fp16 weights within TOL_BF16_MODEL_L2 relative L2 of the official fp32 logits.
static double rel_l2(const float *a, const float *r, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) num += ((double)a[i] - r[i]) * ((double)a[i] - r[i]), den += (double)r[i] * r[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_stepwise_teacher(KtDevice dev, KtDType dt) {
    Tiny t;
    test_backend_init(&t.be, dev);
    OK(kt_backend_set_matmul_dtype(&t.be, dt));
    KtCheckpoint ck = {0};
    OK(kt_ckpt_open(&ck, fixture_path("llamagen_tiny/gpt.pt")));
    LlamaConfig c;
    OK(llamagen_config_from_ckpt(&c, &ck, 4, 4));
    OK(llamagen_init(&t.m, &t.be, &c, &ck, 0));
    kt_ckpt_close(&ck);
    OK(llamagen_workspace_init(&t.ws, &t.m, 2, 1));
    int64_t *tok64 = read_i64(fixture_path(REF), "encode_tokens", NULL);
    float *ref = read_f32(fixture_path(REF), "teacher_logits", NULL, NULL, NULL);
    float *got = malloc(2 * 16 * 128 * sizeof *got), step[2 * 128];
    OK(llamagen_cache_clear(&t.m, &t.ws, 2));
    for (int n = 0; n < 16; n++) {  // position n: the class token, then image token n - 1
        int32_t tok[2], pos[2] = {n, n};
        for (int b = 0; b < 2; b++) tok[b] = n ? (int32_t)tok64[b * 16 + n - 1] : k_labels[b];
        KtTensor in_tok = kt_slice0(&t.ws.in_tok, 0, 2), in_pos = kt_slice0(&t.ws.in_pos, 0, 2), logits;
        OK(kt_upload(&t.be, &in_tok, tok));
        OK(kt_upload(&t.be, &in_pos, pos));
        OK(llamagen_forward(&t.m, &t.ws, 2, 1, n == 0, &logits));
        OK(kt_download(&t.be, step, &logits));
        for (int b = 0; b < 2; b++) memcpy(got + (b * 16 + n) * 128, step + b * 128, 128 * sizeof(float));
    }
    if (dt == KT_F32) {
        expect_close("step-wise teacher_logits", got, ref, 2 * 16 * 128, TOL_MODEL_F32);
    } else {
        double e = rel_l2(got, ref, 2 * 16 * 128);
        cr_expect(e < TOL_BF16_MODEL_L2, "%s step-wise teacher logits: relative L2 error %.3g", kt_dtype_name(dt), e);
        cr_log_info("%s step-wise teacher logits: relative L2 error %.3g", kt_dtype_name(dt), e);
    }
    free(tok64);
    free(ref);
    free(got);
    tiny_free(&t);
}
Test(llamagen, cpu_stepwise_teacher_logits) { check_stepwise_teacher(KT_CPU, KT_F32); }
Test(llamagen, cuda_stepwise_teacher_logits) { check_stepwise_teacher(KT_CUDA, KT_F32); }
Test(llamagen, cuda_stepwise_teacher_logits_bf16) { check_stepwise_teacher(KT_CUDA, KT_BF16); }
Test(llamagen, cuda_stepwise_teacher_logits_fp16) { check_stepwise_teacher(KT_CUDA, KT_F16); }

// A model whose head gives NaN logits: SJD's host-side check of each distribution's mass fails the call with a
// clear error instead of drawing from an empty row.
Test(llamagen, cpu_sjd_reports_rows_without_finite_logits) {
    Tiny t;
    tiny_load(&t, KT_CPU, "llamagen_tiny/gpt.pt", 2);
    float *w = t.m.output.data;
    for (int64_t i = 0; i < kt_numel(&t.m.output); i++) w[i] = NAN;
    LlamaSampleParams p = greedy_params(LLAMA_DECODE_SJD);
    int32_t tok[32];
    int64_t ids[2] = {0, 1};
    LlamaStats st = {0};
    cr_expect(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, tok, &st) == KT_ERR_NUMERIC);
    cr_expect(strstr(kt_last_error(), "no finite logit") != NULL, "%s", kt_last_error());
    tiny_free(&t);
}

static void expect_greedy_tokens(const char *what, const int32_t *tok) {
    int64_t *ref = read_i64(fixture_path(REF), "greedy_tokens", NULL), got[32];
    for (int i = 0; i < 32; i++) got[i] = tok[i];
    expect_equal_i64(what, got, ref, 32);
    free(ref);
}

static void check_greedy(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "llamagen_tiny/gpt.pt", 2);
    LlamaSampleParams p = greedy_params(LLAMA_DECODE_SEQUENTIAL);
    int32_t tok[32];
    int64_t ids[2] = {0, 1};
    LlamaStats st = {0};
    OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, tok, &st));
    expect_greedy_tokens("greedy_tokens (sequential)", tok);
    cr_expect(st.forwards == 16 && st.image_forwards == 32 && st.images == 2 && st.tokens == 32);
    // the image those tokens decode to
    Vq16 vq;
    KtCheckpoint ck = {0};
    Vq16Config qc;
    OK(kt_ckpt_open(&ck, fixture_path("llamagen_tiny/vq.pt")));
    OK(vq16_config_from_ckpt(&qc, &ck, 64));
    OK(vq16_init(&vq, &t.be, &qc, &ck, 0, 2));
    kt_ckpt_close(&ck);
    KtBuffer buf = {0};
    OK(kt_buffer_alloc(&t.be, &buf, 2 * 64 * 64 * 3 * 4));
    KtTensor img = kt_tensor4(buf.data, KT_F32, t.be.device, 2, 64, 64, 3), idx = kt_slice0(&vq.idx, 0, 32);
    OK(kt_upload(&t.be, &idx, tok));
    OK(vq16_decode_code(&vq, &img, &idx, 2));
    float *got = malloc(2 * 64 * 64 * 3 * 4), *ref = read_f32(fixture_path(REF), "greedy_image", NULL, NULL, NULL);
    float *refn = to_nhwc(ref, 2, 3, 64, 64);
    OK(kt_download(&t.be, got, &img));
    expect_close("greedy_image", got, refn, 2 * 64 * 64 * 3, TOL_MODEL_F32);
    free(got);
    free(ref);
    free(refn);
    kt_buffer_free(&buf);
    vq16_free(&vq);
    tiny_free(&t);
}
Test(llamagen, cpu_greedy_cfg_tokens_and_image_vs_official) { check_greedy(KT_CPU); }
Test(llamagen, cuda_greedy_cfg_tokens_and_image_vs_official) { check_greedy(KT_CUDA); }

// ------------------------------------------------------------------------------------------------------- SJD
// With top-k 1 every distribution is one-hot: SJD must reproduce the sequential greedy tokens exactly, whatever the
// window, the draft initialisation, the schedule or the batch (ragged windows share a forward).
static void check_sjd_greedy(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "llamagen_tiny/gpt.pt", 3);
    static const int windows[] = {1, 2, 3, 4, 7, 16, 40};
    int32_t tok[48], lab3[3] = {2, 9, 2};
    int64_t ids[3] = {0, 1, 2};
    for (size_t w = 0; w < sizeof windows / sizeof *windows; w++)
        for (int init = 0; init < 3; init++)
            for (int sched = 0; sched < 2; sched++) {
                if (windows[w] != 4 && (init != (int)w % 3 || sched != (int)w % 2)) continue;  // every pair at window 4
                LlamaSampleParams p = greedy_params(LLAMA_DECODE_SJD);
                p.sjd_window = windows[w];
                p.sjd_init = (SmpSjdInit)init;
                p.sjd_schedule = (SmpSjdSchedule)sched;
                p.smp.seed = 11 + (uint64_t)w;
                LlamaStats st = {0};
                OK(llamagen_generate(&t.m, &t.ws, &p, 3, lab3, ids, tok, &st));
                char what[96];
                snprintf(what, sizeof what, "SJD window %d init %d schedule %d", windows[w], init, sched);
                expect_greedy_tokens(what, tok);
                cr_expect(memcmp(tok, tok + 32, 16 * sizeof *tok) == 0, "%s: image 2 (class 2) differs from image 0", what);
                cr_expect(st.image_forwards <= 3 * 16 && st.image_forwards >= 3 * 2, "%s: NFE %lld", what,
                          (long long)st.image_forwards);
            }
    tiny_free(&t);
}
Test(llamagen, cpu_sjd_greedy_equals_sequential_greedy) { check_sjd_greedy(KT_CPU); }
Test(llamagen, cuda_sjd_greedy_equals_sequential_greedy) { check_sjd_greedy(KT_CUDA); }

// Exact law of the first K image tokens under CFG 2 and top-k 2 (each step keeps 2 tokens: 2^K sequences), from
// teacher-forced forwards of every prefix; law[index of the sequence in base 2 over the kept pairs].
#define LAW_K 4
typedef struct {
    int32_t seq[1 << LAW_K][LAW_K];
    double p[1 << LAW_K];
} Law;

static void exact_law(Tiny *t, int32_t label, Law *law) {
    const int V = 128;
    float *lc = malloc(2 * 16 * V * sizeof *lc), row[128], sv[128];
    int32_t si[128], toks[2 * 16] = {0}, labs[2] = {label, 10};
    int n = 1;
    law->p[0] = 1.0;
    for (int k = 0; k < LAW_K; k++) {
        for (int i = n - 1; i >= 0; i--) {  // expand sequence i (prefix of length k) into 2i, 2i+1
            for (int j = 0; j < k; j++) toks[j] = toks[16 + j] = law->seq[i][j];
            OK(llamagen_forward_teacher(&t->m, 2, labs, toks, lc));
            for (int v = 0; v < V; v++) {
                float c = lc[k * V + v], u = lc[(16 + k) * V + v];
                row[v] = u + (c - u) * 2.0f;
            }
            SmpParams sp = smp_params_default();
            sp.top_k = 2;
            sp.top_p = 1.0f;
            float pr[128];
            smp_hf_probs_row(pr, row, V, sp, sv, si);
            int kept[2], nk = 0;
            for (int v = 0; v < V && nk < 2; v++)
                if (pr[v] > 0) kept[nk++] = v;
            cr_assert(nk == 2, "prefix %d: %d tokens kept", i, nk);
            double pi = law->p[i];
            for (int h = 0; h < 2; h++) {
                memcpy(law->seq[2 * i + h], law->seq[i], sizeof law->seq[i]);
                law->seq[2 * i + h][k] = kept[h];
                law->p[2 * i + h] = pi * pr[kept[h]];
            }
        }
        n *= 2;
    }
    free(lc);
}

// Chi-square of M sampled images' first LAW_K tokens against the law (all draws must be inside its support).
static double chi2_vs_law(Tiny *t, const Law *law, LlamaSampleParams p, int M, int32_t label) {
    int B = t->ws.max_batch;
    int64_t count[1 << LAW_K] = {0};
    int32_t *tok = malloc((size_t)B * 16 * sizeof *tok), *lab = malloc((size_t)B * sizeof *lab);
    int64_t *ids = malloc((size_t)B * sizeof *ids);
    for (int done = 0; done < M; done += B) {
        for (int b = 0; b < B; b++) lab[b] = label, ids[b] = done + b;
        OK(llamagen_generate(&t->m, &t->ws, &p, B, lab, ids, tok, NULL));
        for (int b = 0; b < B; b++) {
            int found = -1;
            for (int s = 0; s < (1 << LAW_K) && found < 0; s++)
                if (!memcmp(law->seq[s], tok + b * 16, sizeof law->seq[s])) found = s;
            cr_assert(found >= 0, "image %d drew a sequence outside the top-2 support", done + b);
            count[found]++;
        }
    }
    double chi2 = 0, total = (double)((M + B - 1) / B * B);
    for (int s = 0; s < (1 << LAW_K); s++) {
        double e = total * law->p[s];
        chi2 += (count[s] - e) * (count[s] - e) / e;
    }
    free(tok);
    free(lab);
    free(ids);
    return chi2;
}

// SJD and sequential sampling both draw the first 4 tokens from the exact AR law (chi-square, 15 dof: mean 15,
// sd 5.5; bound mean + 5 sd). SJD runs with recycled drafts (window 4) so the p/q acceptance test and the residual
// draw are exercised, and in batches of 64 with ragged windows.
Test(llamagen, sjd_and_sequential_sample_the_same_distribution) {
    Tiny t;
    tiny_load(&t, KT_CPU, "llamagen_tiny/gpt.pt", 64);
    Law law;
    exact_law(&t, 9, &law);
    double pmin = 1;
    for (int s = 0; s < (1 << LAW_K); s++) pmin = law.p[s] < pmin ? law.p[s] : pmin;
    cr_log_info("exact law of the first %d tokens: smallest sequence probability %.4f", LAW_K, pmin);
    LlamaSampleParams p;
    llamagen_sample_params_default(&p);
    p.cfg = 2.0f;
    p.smp.top_k = 2;
    p.smp.seed = 1234;
    double bound = 15 + 5 * sqrt(30.0);
    p.decode = LLAMA_DECODE_SEQUENTIAL;
    double seq = chi2_vs_law(&t, &law, p, 1536, 9);
    p.decode = LLAMA_DECODE_SJD;
    p.sjd_window = 4;
    double sjd = chi2_vs_law(&t, &law, p, 1536, 9);
    p.sjd_init = SMP_SJD_INIT_REPEAT_HORIZON;
    p.sjd_window = 16;
    double sjd_rep = chi2_vs_law(&t, &law, p, 1536, 9);
    cr_log_info("chi2 (15 dof): sequential %.1f, SJD window 4 %.1f, SJD window 16 repeat-horizon %.1f", seq, sjd, sjd_rep);
    cr_expect(seq < bound, "sequential: chi2 %.1f (15 dof)", seq);
    cr_expect(sjd < bound, "SJD window 4: chi2 %.1f (15 dof)", sjd);
    cr_expect(sjd_rep < bound, "SJD window 16, repeat-horizon drafts: chi2 %.1f (15 dof)", sjd_rep);
    tiny_free(&t);
}

// ------------------------------------------------------------------------------------------------------- ZipAR
// Greedy ZipAR tokens and forward counts from scripts/zipar_reference.py (float64 numpy, the released bookkeeping).
static const int32_t k_zipar_s2[32] = {59, 11, 47, 12, 63, 109, 21, 4, 63, 109, 21, 4, 84, 126, 7, 117,
                                       47, 101, 82, 19, 90, 101, 82, 14, 90, 101, 82, 17, 30, 104, 7, 117};
static const int32_t k_zipar_s3[32] = {59, 11, 47, 12, 63, 109, 21, 4, 63, 13, 6, 62, 11, 47, 73, 81,
                                       47, 101, 82, 19, 90, 101, 82, 14, 29, 27, 55, 108, 30, 104, 18, 80};

static void check_zipar(KtDevice dev) {
    Tiny t;
    tiny_load(&t, dev, "llamagen_tiny/gpt.pt", 2);
    int64_t ids[2] = {0, 1};
    for (int s = 2; s <= 3; s++) {
        LlamaSampleParams p = greedy_params(LLAMA_DECODE_ZIPAR);
        p.zipar_window = s;
        int32_t tok[32];
        LlamaStats st = {0};
        OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, tok, &st));
        int64_t got[32], want[32];
        for (int i = 0; i < 32; i++) got[i] = tok[i], want[i] = s == 2 ? k_zipar_s2[i] : k_zipar_s3[i];
        char what[64];
        snprintf(what, sizeof what, "greedy ZipAR window %d", s);
        expect_equal_i64(what, got, want, 32);
        cr_expect(st.forwards == 2 * 4 + (4 - 2) * s, "ZipAR window %d: %lld forwards, formula 2g + (g-2)s = %d", s,
                  (long long)st.forwards, 2 * 4 + (4 - 2) * s);
    }
    LlamaSampleParams p = greedy_params(LLAMA_DECODE_ZIPAR);
    p.zipar_window = 4;
    cr_expect(llamagen_check_params(&t.m.config, &p) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "--decode sequential") != NULL, "%s", kt_last_error());
    p.zipar_window = 1;
    cr_expect(llamagen_check_params(&t.m.config, &p) == KT_ERR_ARG);
    tiny_free(&t);
}
Test(llamagen, cpu_zipar_greedy_matches_released_code) { check_zipar(KT_CPU); }
Test(llamagen, cuda_zipar_greedy_matches_released_code) { check_zipar(KT_CUDA); }

// ------------------------------------------------------------------------------------- batch, cfg, allocation
// Image k's tokens depend only on (seed, k): the same at batch 1 and inside a batch, for every strategy.
Test(llamagen, batch_invariance_and_no_allocation_in_the_loop) {
    Tiny t;
    tiny_load(&t, KT_CPU, "llamagen_tiny/gpt.pt", 3);
    int32_t lab[3] = {4, 7, 1}, all[48], one[16];
    int64_t ids[3] = {5, 6, 7};
    for (int d = 0; d < 3; d++) {
        LlamaSampleParams p;
        llamagen_sample_params_default(&p);
        p.decode = (LlamaDecode)d;
        p.smp.top_k = 0;
        p.smp.top_p = 0.9f;
        p.smp.temperature = 1.3f;
        p.smp.seed = 99;
        p.sjd_window = 5;
        p.zipar_window = 2;
        OK(llamagen_generate(&t.m, &t.ws, &p, 3, lab, ids, all, NULL));
        OK(llamagen_generate(&t.m, &t.ws, &p, 1, lab + 1, ids + 1, one, NULL));
        cr_expect(memcmp(one, all + 16, sizeof one) == 0, "decode %d: image 6 differs between batch 3 and batch 1", d);
        int64_t allocs = t.be.n_allocs;
        OK(llamagen_generate(&t.m, &t.ws, &p, 3, lab, ids, all + 0, NULL));
        cr_expect(t.be.n_allocs == allocs, "decode %d: %lld backend allocations in a repeated run", d,
                  (long long)(t.be.n_allocs - allocs));
    }
    tiny_free(&t);
}

// cfg_interval: -1 and an interval beyond the last step change nothing; 0 drops CFG after the first decode step.
Test(llamagen, cfg_interval) {
    Tiny t;
    tiny_load(&t, KT_CPU, "llamagen_tiny/gpt.pt", 2);
    int64_t ids[2] = {0, 1};
    int32_t a[32], b[32], c[32], d[32];
    LlamaSampleParams p = greedy_params(LLAMA_DECODE_SEQUENTIAL);
    OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, a, NULL));
    p.cfg_interval = 100;
    OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, b, NULL));
    p.cfg_interval = 0;
    OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, c, NULL));
    cr_expect(memcmp(a, b, sizeof a) == 0);
    cr_expect(memcmp(a, c, sizeof a) != 0, "cfg_interval 0 changed no token");
    p.decode = LLAMA_DECODE_SJD;  // SJD applies the same per-token rule
    OK(llamagen_generate(&t.m, &t.ws, &p, 2, k_labels, ids, d, NULL));
    cr_expect(memcmp(c, d, sizeof c) == 0, "SJD with cfg_interval 0 differs from sequential");
    tiny_free(&t);
}
