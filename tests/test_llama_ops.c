// The raster-model (LlamaGen) ops of kernels/ops.h against torch (tests/fixtures/llama_ops.tar.xz, made by
// scripts/make_llama_op_fixtures.py from LlamaGen's own functions), on the CPU backend and, with the same fixture,
// on CUDA (skipped without a GPU); CPU-vs-CUDA on model-sized random shapes; the sampler's draw against its
// probabilities; validation messages.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optest.h"
#include "samplers/philox.h"

#define FX "llama_ops/llama_ops.safetensors"

// ------------------------------------------------------------------------------------------------- elementwise
TWIN(llama_ops, rmsnorm) {
    Ctx c;
    ctx_open(&c, dev, FX);
    static const char *cases[] = {"rmsnorm", "rmsnorm_t1"};
    for (int i = 0; i < 2; i++) {
        char n[64];
        snprintf(n, sizeof n, "%s.x", cases[i]);
        KtTensor x = IN(n);
        snprintf(n, sizeof n, "%s.w", cases[i]);
        KtTensor w = IN(n);
        snprintf(n, sizeof n, "%s.y", cases[i]);
        KtTensor y = OUT(n);
        OK(kt_rmsnorm(&c.be, &y, &x, &w, 1e-5f));
        expect_fx(&c, &y, n, TOL_REDUCE_F32);
        OK(kt_rmsnorm(&c.be, &x, &x, &w, 1e-5f));  // in place
        expect_fx(&c, &x, n, TOL_REDUCE_F32);
    }
    ctx_close(&c);
}

// x += h then RMSNorm: with h = 0 the fixture's RMSNorm (x unchanged); with a random h bit-identical to kt_add then
// kt_rmsnorm on the same backend.
TWIN(llama_ops, add_rmsnorm) {
    Ctx c;
    ctx_open(&c, dev, FX);
    int64_t n, shape[KT_MAX_DIMS];
    int nd;
    float *xh = fx_read(&c, "rmsnorm.x", &n, shape, &nd);
    float *hh = ctx_keep(&c, calloc((size_t)n, sizeof(float)));
    KtTensor x = IN("rmsnorm.x"), w = IN("rmsnorm.w"), y = OUT("rmsnorm.y"), h = dev_new(&c, KT_F32, nd, shape, hh);
    OK(kt_add_rmsnorm(&c.be, &y, &x, &h, &w, 1e-5f));
    expect_fx(&c, &y, "rmsnorm.y", TOL_REDUCE_F32);
    expect_fx(&c, &x, "rmsnorm.x", 0, 0);
    for (int64_t i = 0; i < n; i++) hh[i] = (float)((i * 37 % 101) - 50) / 16.f;
    KtTensor x2 = dev_new(&c, KT_F32, nd, shape, xh), y2 = OUT("rmsnorm.y");
    OK(kt_upload(&c.be, &h, hh));
    OK(kt_add_rmsnorm(&c.be, &y, &x, &h, &w, 1e-5f));
    OK(kt_add(&c.be, &x2, &x2, &h));
    OK(kt_rmsnorm(&c.be, &y2, &x2, &w, 1e-5f));
    float *got = download_f32(&c, &y), *want = download_f32(&c, &y2);
    float *gx = download_f32(&c, &x), *wx = download_f32(&c, &x2);
    cr_expect(memcmp(got, want, (size_t)n * sizeof(float)) == 0, "add_rmsnorm differs from add + rmsnorm");
    cr_expect(memcmp(gx, wx, (size_t)n * sizeof(float)) == 0, "add_rmsnorm's residual differs from kt_add");
    cr_expect(kt_add_rmsnorm(&c.be, &x, &x, &h, &w, 1e-5f) == KT_ERR_ARG);  // y aliasing x
    ctx_close(&c);
}

// The SwiGLU gate on the joint w1 | w3 output: the fixture's silu(a) * b from a | b (rows concatenated).
TWIN(llama_ops, swiglu_and_l2_normalize) {
    Ctx c;
    ctx_open(&c, dev, FX);
    int64_t n, shape[KT_MAX_DIMS];
    int nd;
    float *ah = fx_read(&c, "silu_mul.a", &n, shape, &nd), *bh = fx_read(&c, "silu_mul.b", &n, shape, &nd);
    int64_t F = shape[nd - 1], rows = n / F;
    float *ab = ctx_keep(&c, malloc((size_t)(2 * n) * sizeof(float)));
    for (int64_t r = 0; r < rows; r++) {
        memcpy(ab + r * 2 * F, ah + r * F, (size_t)F * sizeof(float));
        memcpy(ab + r * 2 * F + F, bh + r * F, (size_t)F * sizeof(float));
    }
    int64_t shape2[KT_MAX_DIMS];
    memcpy(shape2, shape, sizeof shape2);
    shape2[nd - 1] = 2 * F;
    KtTensor a = dev_new(&c, KT_F32, nd, shape2, ab), y = OUT("silu_mul.y");
    OK(kt_swiglu(&c.be, &y, &a));
    expect_fx(&c, &y, "silu_mul.y", TOL_ELEMWISE_F32);
    cr_expect(kt_swiglu(&c.be, &a, &a) == KT_ERR_SHAPE);  // y must have half of a's last dim
    KtTensor x = IN("l2_normalize.x"), z = OUT("l2_normalize.y");
    OK(kt_l2_normalize(&c.be, &z, &x));
    expect_fx(&c, &z, "l2_normalize.y", TOL_REDUCE_F32);  // includes an all-zero row (stays zero)
    ctx_close(&c);
}

// ------------------------------------------------------------------------------------------------- attention
static void check_prep(KtDevice dev, const char *name) {
    Ctx c;
    ctx_open(&c, dev, FX);
    char n[96];
#define FXN(suffix) (snprintf(n, sizeof n, "%s.%s", name, suffix), n)
    KtTensor qkv = IN(FXN("qkv")), rope = IN(FXN("rope")), pos = fx_tensor(&c, FXN("positions"), KT_I32, true);
    KtTensor kc = IN(FXN("kcache0")), vc = IN(FXN("vcache0")), q = OUT(FXN("q"));
    OK(kt_llama_attn_prep(&c.be, &q, &kc, &vc, &qkv, &rope, &pos));
    expect_fx(&c, &q, FXN("q"), TOL_ELEMWISE_F32);
    expect_fx(&c, &kc, FXN("kcache"), TOL_ELEMWISE_F32);  // rows not written keep their values
    expect_fx(&c, &vc, FXN("vcache"), 0, 0);
#undef FXN
    ctx_close(&c);
}
TWIN(llama_ops, attn_prep_rope_and_cache_scatter) {
    check_prep(dev, "attn_prep");
    check_prep(dev, "attn_prep_t1");  // one token, head size 100 (GPT-3B)
}

static void check_attention(KtDevice dev, const char *name) {
    Ctx c;
    ctx_open(&c, dev, FX);
    char n[96];
#define FXN(suffix) (snprintf(n, sizeof n, "%s.%s", name, suffix), n)
    KtTensor q = IN(FXN("q")), k = IN(FXN("k")), v = IN(FXN("v")), pos = fx_tensor(&c, FXN("positions"), KT_I32, true);
    KtTensor out = OUT(FXN("out"));
    OK(kt_attention_pos(&c.be, &out, &q, &k, &v, &pos, (float)fx_scalar(&c, FXN("scale"))));
    expect_fx(&c, &out, FXN("out"), TOL_REDUCE_F32);
#undef FXN
    ctx_close(&c);
}
TWIN(llama_ops, attention_causal_by_position) {
    check_attention(dev, "attention_pos");        // scattered positions, a never-written (zero) slot
    check_attention(dev, "attention_pos_hs100");  // Tq = 1, head size 100
    check_attention(dev, "attention_pos_long");   // more than one block of queries
}

// ----------------------------------------------------------------------------------- sequential step counter
// The device-side counter of sequential decoding: commit writes seq[n] and advances, inputs feeds seq[n-1] to both
// CFG halves at position n; a counter outside the sequence is an error on the CPU and a no-op on CUDA.
TWIN(llama_ops, raster_step_counter) {
    Ctx c;
    ctx_open(&c, dev, FX);
    static const int32_t zero[1] = {0}, s0[2] = {7, 8}, s1[2] = {9, 10};
    int32_t seqh[12];
    for (int i = 0; i < 12; i++) seqh[i] = -1 - i;
    KtTensor seq = dev_new(&c, KT_I32, 2, (int64_t[]){4, 3}, seqh), step = dev_new(&c, KT_I32, 1, (int64_t[]){1}, zero);
    KtTensor a = dev_new(&c, KT_I32, 1, (int64_t[]){2}, s0), b = dev_new(&c, KT_I32, 1, (int64_t[]){2}, s1);
    KtTensor tok = dev_new(&c, KT_I32, 1, (int64_t[]){4}, NULL), pos = dev_new(&c, KT_I32, 1, (int64_t[]){4}, NULL);
    int32_t t[4], p[4], n, sq[12];
    OK(kt_raster_step_commit(&c.be, &seq, &a, &step));  // token 0
    OK(kt_raster_step_inputs(&c.be, &tok, &pos, &seq, &step, 2));
    OK(kt_download(&c.be, t, &tok));
    OK(kt_download(&c.be, p, &pos));
    cr_expect(t[0] == 7 && t[1] == 8 && t[2] == 7 && t[3] == 8 && p[0] == 1 && p[3] == 1, "%d %d %d %d / %d",
              t[0], t[1], t[2], t[3], p[0]);
    OK(kt_raster_step_commit(&c.be, &seq, &b, &step));  // token 1
    OK(kt_raster_step_inputs(&c.be, &tok, &pos, &seq, &step, 2));
    OK(kt_download(&c.be, t, &tok));
    OK(kt_download(&c.be, p, &pos));
    OK(kt_download(&c.be, &n, &step));
    OK(kt_download(&c.be, sq, &seq));
    cr_expect(n == 2 && t[0] == 9 && t[3] == 10 && p[2] == 2, "step %d, tok %d %d, pos %d", n, t[0], t[3], p[2]);
    cr_expect(sq[0] == 7 && sq[1] == 8 && sq[2] == -3 && sq[3] == 9 && sq[4] == 10 && sq[5] == -6 && sq[6] == -7);
    // a batch that does not divide the rows, or more images than sequence columns
    cr_expect(kt_raster_step_inputs(&c.be, &tok, &pos, &seq, &step, 3) == KT_ERR_ARG);
    KtTensor wide = dev_new(&c, KT_I32, 1, (int64_t[]){4}, NULL);
    cr_expect(kt_raster_step_commit(&c.be, &seq, &wide, &step) == KT_ERR_SHAPE);
    // past the end: the CPU says so, CUDA writes nothing
    static const int32_t four[1] = {4};
    OK(kt_upload(&c.be, &step, four));
    KtStatus st = kt_raster_step_commit(&c.be, &seq, &a, &step);
    if (dev == KT_CPU) cr_expect(st == KT_ERR_ARG && strstr(kt_last_error(), "step 4"), "%s", kt_last_error());
    else OK(st);
    OK(kt_download(&c.be, sq, &seq));
    OK(kt_download(&c.be, &n, &step));
    cr_expect(n == 4 && sq[9] == -10 && sq[11] == -12);
    ctx_close(&c);
}

// ZipAR's plan on the device: a window's inputs gathered from seq (both CFG halves; a cell of -1 feeds 0), the
// sampler's positions, then its samples scattered back (output cell -1: dropped); a cell outside [-1, N) is an error
// on the CPU and skipped on CUDA.
TWIN(llama_ops, raster_window_plan) {
    Ctx c;
    ctx_open(&c, dev, FX);
    int32_t seqh[12];  // (N 4, S 3)
    for (int i = 0; i < 12; i++) seqh[i] = 100 + i;
    static const int32_t fh[9] = {2, 17, 3, -1, 16, 0, 1, 18, -1};  // (T 3, 3): (token cell, position, output cell)
    static const int32_t smp[6] = {7, 8, 9, 10, 11, 12};             // (B 2, T 3)
    KtTensor seq = dev_new(&c, KT_I32, 2, (int64_t[]){4, 3}, seqh), fe = dev_new(&c, KT_I32, 2, (int64_t[]){3, 3}, fh);
    KtTensor tok = dev_new(&c, KT_I32, 2, (int64_t[]){4, 3}, NULL), pos = dev_new(&c, KT_I32, 2, (int64_t[]){4, 3}, NULL);
    KtTensor sp = dev_new(&c, KT_I32, 2, (int64_t[]){2, 3}, NULL), sm = dev_new(&c, KT_I32, 2, (int64_t[]){2, 3}, smp);
    OK(kt_raster_window_inputs(&c.be, &tok, &pos, &sp, &fe, &seq));
    int32_t t[12], p[12], s[6], sq[12];
    OK(kt_download(&c.be, t, &tok));
    OK(kt_download(&c.be, p, &pos));
    OK(kt_download(&c.be, s, &sp));
    for (int r = 0; r < 4; r++) {  // rows 2, 3: the null-class half repeats images 0, 1
        int b = r % 2;
        cr_expect(t[r * 3] == 100 + 2 * 3 + b && t[r * 3 + 1] == 0 && t[r * 3 + 2] == 100 + 1 * 3 + b,
                  "row %d: %d %d %d", r, t[r * 3], t[r * 3 + 1], t[r * 3 + 2]);
        cr_expect(p[r * 3] == 17 && p[r * 3 + 1] == 16 && p[r * 3 + 2] == 18, "row %d positions", r);
    }
    cr_expect(s[0] == 3 && s[1] == 0 && s[2] == -1 && s[3] == 3 && s[5] == -1, "sampler positions %d %d %d", s[0],
              s[1], s[2]);
    OK(kt_raster_window_commit(&c.be, &seq, &sm, &fe));
    OK(kt_download(&c.be, sq, &seq));
    cr_expect(sq[0] == 8 && sq[1] == 11 && sq[2] == 102 && sq[9] == 7 && sq[10] == 10 && sq[11] == 111 &&
                  sq[3] == 103 && sq[6] == 106,
              "seq %d %d %d / %d %d %d", sq[0], sq[1], sq[2], sq[9], sq[10], sq[11]);
    // a batch that does not divide the rows; a cell past the sequence (CPU: error, CUDA: skipped)
    KtTensor sp3 = dev_new(&c, KT_I32, 2, (int64_t[]){3, 3}, NULL);
    cr_expect(kt_raster_window_inputs(&c.be, &tok, &pos, &sp3, &fe, &seq) == KT_ERR_ARG);
    static const int32_t bad[9] = {2, 17, 4, -1, 16, 0, 1, 18, -1};
    OK(kt_upload(&c.be, &fe, bad));
    KtStatus st = kt_raster_window_commit(&c.be, &seq, &sm, &fe);
    if (dev == KT_CPU) cr_expect(st == KT_ERR_ARG && strstr(kt_last_error(), "cell 4"), "%s", kt_last_error());
    else OK(st);
    OK(kt_download(&c.be, sq, &seq));
    cr_expect(sq[0] == 8 && sq[9] == 7, "the bad plan changed seq on the CPU");
    ctx_close(&c);
}

// -------------------------------------------------------------------------------------------------- sampling
static const char *k_hf_cases[] = {"plain", "k5", "k7_ties", "p80", "p0", "k10_p90_t07", "k1", "t15_premasked",
                                   "k2000"};

static SmpParams hf_params(const Ctx *c, const char *name) {
    char n[96];
    SmpParams p = smp_params_default();
    snprintf(n, sizeof n, "hf.%s.top_k", name);
    p.top_k = (int)fx_scalar(c, n);
    snprintf(n, sizeof n, "hf.%s.top_p", name);
    p.top_p = (float)fx_scalar(c, n);
    snprintf(n, sizeof n, "hf.%s.temperature", name);
    p.temperature = (float)fx_scalar(c, n);
    return p;
}

TWIN(llama_ops, probs_match_llamagen_logits_to_probs) {
    for (size_t i = 0; i < sizeof k_hf_cases / sizeof *k_hf_cases; i++) {
        Ctx c;
        ctx_open(&c, dev, FX);
        char n[96];
        snprintf(n, sizeof n, "hf.%s.logits", k_hf_cases[i]);
        KtTensor l2 = IN(n);
        KtTensor l = kt_reshape3(&l2, 1, l2.shape[0], l2.shape[1]);
        KtTensor pbuf = dev_new(&c, KT_F32, 3, l.shape, NULL);
        OK(kt_probs_llama(&c.be, &pbuf, &l, hf_params(&c, k_hf_cases[i])));
        snprintf(n, sizeof n, "hf.%s.probs", k_hf_cases[i]);
        expect_fx(&c, &pbuf, n, TOL_REDUCE_F32);
        ctx_close(&c);
    }
}

// The draw of kt_sample_llama over many image ids: only entries with probability > 0, with the right frequencies
// (chi-square over the kept entries), and greedy (top_k 1) picks the argmax; negative positions are skipped.
TWIN(llama_ops, sample_draws_from_the_filtered_distribution) {
    Ctx c;
    ctx_open(&c, dev, FX);
    const char *name = "k10_p90_t07";
    char n[96];
    snprintf(n, sizeof n, "hf.%s.logits", name);
    int64_t nl, shape[KT_MAX_DIMS];
    float *logits = fx_read(&c, n, &nl, shape, NULL);
    snprintf(n, sizeof n, "hf.%s.probs", name);
    float *probs = fx_read(&c, n, NULL, NULL, NULL);
    int64_t V = shape[1], R = 4000;
    float *rows = ctx_keep(&c, malloc((size_t)(R * V) * sizeof(float)));
    int64_t *ids = ctx_keep(&c, malloc((size_t)R * sizeof(int64_t)));
    int32_t *pos = ctx_keep(&c, malloc((size_t)R * sizeof(int32_t)));
    int32_t *tok = ctx_keep(&c, malloc((size_t)R * sizeof(int32_t)));
    for (int64_t r = 0; r < R; r++) {
        memcpy(rows + r * V, logits, (size_t)V * sizeof(float));  // row 0 of the case
        ids[r] = r;
        pos[r] = r % 7 == 3 ? -1 : 5;
        tok[r] = -7;
    }
    KtTensor L = dev_new(&c, KT_F32, 3, (int64_t[]){R, 1, V}, rows), I = dev_new(&c, KT_I64, 1, (int64_t[]){R}, ids);
    KtTensor P = dev_new(&c, KT_I32, 2, (int64_t[]){R, 1}, pos), T = dev_new(&c, KT_I32, 2, (int64_t[]){R, 1}, tok);
    SmpParams sp = hf_params(&c, name);
    sp.seed = 42;
    OK(kt_sample_llama(&c.be, &T, &L, &I, &P, sp));
    OK(kt_download(&c.be, tok, &T));
    int64_t count[4096] = {0}, drawn = 0;
    for (int64_t r = 0; r < R; r++) {
        if (pos[r] < 0) {
            cr_expect_eq(tok[r], -7, "row %lld has a negative position but was sampled", (long long)r);
            continue;
        }
        cr_assert(tok[r] >= 0 && tok[r] < V && probs[tok[r]] > 0, "row %lld drew %d (p = 0)", (long long)r, tok[r]);
        count[tok[r]]++;
        drawn++;
    }
    double chi2 = 0;
    int dof = -1;
    for (int64_t v = 0; v < V; v++)
        if (probs[v] > 0) {
            double e = drawn * (double)probs[v];
            chi2 += (count[v] - e) * (count[v] - e) / e;
            dof++;
        }
    cr_expect(chi2 < dof + 6 * sqrt(2.0 * dof), "chi2 %.1f over %d dof", chi2, dof);
    // greedy
    for (int64_t r = 0; r < R; r++) memcpy(rows + r * V, logits, (size_t)V * sizeof(float));
    OK(kt_upload(&c.be, &L, rows));
    sp.top_k = 1;
    sp.top_p = 1.0f;
    OK(kt_sample_llama(&c.be, &T, &L, &I, &P, sp));
    OK(kt_download(&c.be, tok, &T));
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    for (int64_t r = 0; r < R; r++)
        if (pos[r] >= 0) cr_expect_eq(tok[r], best, "greedy row %lld: %d, argmax %lld", (long long)r, tok[r], (long long)best);
    ctx_close(&c);
}

// -------------------------------------------------------------------------------------------------- validation
Test(llama_ops, validation_messages) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    static float buf[4096];
    static int32_t ib[64];
    KtTensor q = kt_tensor4(buf, KT_F32, KT_CPU, 1, 2, 3, 8), kc = kt_tensor4(buf, KT_F32, KT_CPU, 1, 2, 5, 8);
    KtTensor qkv = kt_tensor3(buf, KT_F32, KT_CPU, 1, 3, 48), rope = kt_tensor3(buf, KT_F32, KT_CPU, 6, 4, 2);
    KtTensor pos = kt_tensor2(ib, KT_I32, KT_CPU, 1, 3);
    KtTensor bad_rope = kt_tensor3(buf, KT_F32, KT_CPU, 6, 8, 2);
    cr_expect(kt_llama_attn_prep(&be, &q, &kc, &kc, &qkv, &bad_rope, &pos) == KT_ERR_SHAPE);
    cr_expect(strstr(kt_last_error(), "rope") != NULL, "%s", kt_last_error());
    ib[1] = 5;  // beyond the cache (5 rows)
    cr_expect(kt_llama_attn_prep(&be, &q, &kc, &kc, &qkv, &rope, &pos) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "position 5") != NULL, "%s", kt_last_error());
    KtTensor out = kt_tensor3(buf, KT_F32, KT_CPU, 1, 3, 16);
    cr_expect(kt_attention_pos(&be, &out, &q, &kc, &kc, &pos, 1.0f) == KT_ERR_ARG);
    ib[1] = 1;
    cr_expect(kt_attention_pos(&be, &out, &q, &kc, &kc, &pos, 1.0f) == KT_OK, "%s", kt_last_error());
    KtTensor w = kt_tensor1(buf, KT_F32, KT_CPU, 7);
    cr_expect(kt_rmsnorm(&be, &out, &out, &w, 1e-5f) == KT_ERR_SHAPE);
    KtTensor kc16 = kt_tensor4(buf, KT_BF16, KT_CPU, 1, 2, 5, 8);  // 16-bit caches: CUDA only
    cr_expect(kt_llama_attn_prep(&be, &q, &kc16, &kc16, &qkv, &rope, &pos) == KT_ERR_SHAPE);
    cr_expect(strstr(kt_last_error(), "kcache") != NULL, "%s", kt_last_error());
    // the head with CFG: (2B, T, C) rows in, (B, T, N) out; its buffers distinct; on the CPU the composition exactly
    static float xb[4 * 8], hb[4 * 8], wb[5 * 8], nwb[8], lgb[4 * 5], lcb[2 * 5], lg2[4 * 5], lc2[2 * 5];
    for (int i = 0; i < 32; i++) xb[i] = (float)((i * 7) % 11) - 5.0f;
    for (int i = 0; i < 40; i++) wb[i] = (float)((i * 5) % 9) * 0.25f - 1.0f;
    for (int i = 0; i < 8; i++) nwb[i] = 1.0f + 0.125f * (float)i;
    KtTensor x3 = kt_tensor3(xb, KT_F32, KT_CPU, 4, 1, 8), hn3 = kt_tensor3(hb, KT_F32, KT_CPU, 4, 1, 8);
    KtTensor nw = kt_tensor1(nwb, KT_F32, KT_CPU, 8), w5 = kt_tensor2(wb, KT_F32, KT_CPU, 5, 8);
    KtTensor lg = kt_tensor3(lgb, KT_F32, KT_CPU, 4, 1, 5), lc = kt_tensor3(lcb, KT_F32, KT_CPU, 2, 1, 5);
    KtTensor lgr = kt_tensor3(lg2, KT_F32, KT_CPU, 4, 1, 5), lcr = kt_tensor3(lc2, KT_F32, KT_CPU, 2, 1, 5);
    cr_expect(kt_rmsnorm_linear_cfg(&be, &lc, &lg, &hn3, &x3, &nw, &w5, 1e-5f, 3.0f) == KT_OK, "%s", kt_last_error());
    cr_expect(kt_rmsnorm_linear(&be, &lgr, &hn3, &x3, &nw, &w5, 1e-5f) == KT_OK);
    cr_expect(kt_cfg_combine(&be, &lcr, &lgr, 3.0f) == KT_OK);
    cr_expect(!memcmp(lcb, lc2, sizeof lcb), "kt_rmsnorm_linear_cfg differs from its composition on the CPU");
    cr_expect(kt_rmsnorm_linear_cfg(&be, &lc, &lc, &hn3, &x3, &nw, &w5, 1e-5f, 3.0f) == KT_ERR_SHAPE);  // (2, 1, 5)
    KtTensor lc_alias = kt_tensor3(lgb, KT_F32, KT_CPU, 2, 1, 5);
    cr_expect(kt_rmsnorm_linear_cfg(&be, &lc_alias, &lg, &hn3, &x3, &nw, &w5, 1e-5f, 3.0f) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "distinct") != NULL, "%s", kt_last_error());
    KtTensor lc_wide = kt_tensor3(lcb, KT_F32, KT_CPU, 2, 1, 4);
    cr_expect(kt_rmsnorm_linear_cfg(&be, &lc_wide, &lg, &hn3, &x3, &nw, &w5, 1e-5f, 3.0f) == KT_ERR_SHAPE);
    cr_expect(strstr(kt_last_error(), "'logits'") != NULL, "%s", kt_last_error());
    kt_backend_free(&be);
}

// ----------------------------------------------------------------------------------- CPU vs CUDA (model shapes)
static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

// Same inputs on both backends: GPT-B-sized attention over a 264-row cache (SJD-like 16-token windows, a decode step,
// a batch of 24 x 2 tokens: the split-key kernel) and a 32-row one (one warp per query), and the sampler at V = 16384.
Test(llama_ops, cpu_vs_cuda_model_shapes) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    static const int64_t shapes[4][3] = {{2, 16, 264}, {2, 1, 264}, {24, 2, 264}, {24, 2, 32}};  // (B, Tq, Tcap)
    int64_t NH = 12, HS = 64, V = 16384;
    uint64_t seed = 7;
    Ctx *cs[2] = {&cc, &gc};
    for (int sh = 0; sh < 4; sh++) {
        int64_t B = shapes[sh][0], Tq = shapes[sh][1], Tcap = shapes[sh][2];
        size_t nq = (size_t)(B * NH * Tq * HS), nk = (size_t)(B * NH * Tcap * HS);
        float *q = ctx_keep(&cc, malloc(nq * 4)), *k = ctx_keep(&cc, malloc(nk * 4));
        float *v = ctx_keep(&cc, malloc(nk * 4));
        int32_t *pos = ctx_keep(&cc, malloc((size_t)(B * Tq) * 4));
        for (size_t i = 0; i < nq; i++) q[i] = frand(&seed);
        for (size_t i = 0; i < nk; i++) k[i] = frand(&seed), v[i] = frand(&seed);
        for (int64_t i = 0; i < B * Tq; i++) pos[i] = (int32_t)((100 + 9 * i % 160) % Tcap);
        if (Tq == 1) pos[0] = 0, pos[1] = 256;  // the first step (one key) and the last of a 16x16 grid
        float *res[2];
        for (int d = 0; d < 2; d++) {
            Ctx *c = cs[d];
            KtTensor Q = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tq, HS}, q);
            KtTensor K = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, k);
            KtTensor Vv = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, v);
            KtTensor P = dev_new(c, KT_I32, 2, (int64_t[]){B, Tq}, pos);
            KtTensor O = dev_new(c, KT_F32, 3, (int64_t[]){B, Tq, NH * HS}, NULL);
            OK(kt_attention_pos(&c->be, &O, &Q, &K, &Vv, &P, 0.125f));
            res[d] = download_f32(c, &O);
        }
        char what[96];
        snprintf(what, sizeof what, "attention_pos cuda vs cpu, B %lld, Tq %lld, Tcap %lld", (long long)B,
                 (long long)Tq, (long long)Tcap);
        expect_close(what, res[1], res[0], B * Tq * NH * HS, TOL_REDUCE_F32);
    }

    int64_t R = 64;
    float *lg = ctx_keep(&cc, malloc((size_t)(R * V) * 4));
    int64_t *ids = ctx_keep(&cc, malloc((size_t)R * 8));
    int32_t *sp = ctx_keep(&cc, malloc((size_t)R * 4)), *tk[2];
    for (int64_t i = 0; i < R * V; i++) lg[i] = 4.0f * frand(&seed);
    for (int64_t r = 0; r < R; r++) ids[r] = 1000 + r, sp[r] = (int32_t)r;
    for (int variant = 0; variant < 2; variant++) {  // top-k + top-p (sorted), top-k alone (radix select on CUDA)
        SmpParams p = smp_params_default();
        p.seed = 3;
        p.top_k = 2000;
        p.top_p = variant ? 1.0f : 0.9f;
        p.temperature = 1.2f;
        // variant 1: the ~400 entries of a row in [2.92, 3.12) tied at 3.0, ranks ~1800-2210 of U(-4, 4) x 16384:
        // the 2000th largest is a tie, HF keeps all of them (more than k), the threshold must be exactly 3.0 / 1.2
        for (int64_t i = 0; variant && i < R * V; i++) lg[i] = lg[i] >= 2.92f && lg[i] < 3.12f ? 3.0f : lg[i];
        float *pr[2];
        for (int d = 0; d < 2; d++) {
            Ctx *c = cs[d];
            KtTensor L = dev_new(c, KT_F32, 3, (int64_t[]){R, 1, V}, lg);
            KtTensor I = dev_new(c, KT_I64, 1, (int64_t[]){R}, ids), P = dev_new(c, KT_I32, 2, (int64_t[]){R, 1}, sp);
            KtTensor T = dev_new(c, KT_I32, 2, (int64_t[]){R, 1}, NULL);
            OK(kt_sample_llama(&c->be, &T, &L, &I, &P, p));
            tk[d] = ctx_keep(c, malloc((size_t)R * 4));
            OK(kt_download(&c->be, tk[d], &T));
            KtTensor L2 = dev_new(c, KT_F32, 3, (int64_t[]){R, 1, V}, lg);
            KtTensor PR = dev_new(c, KT_F32, 3, (int64_t[]){R, 1, V}, NULL);
            OK(kt_probs_llama(&c->be, &PR, &L2, p));
            pr[d] = download_f32(c, &PR);
        }
        int64_t diff = 0;
        for (int64_t r = 0; r < R; r++) diff += tk[0][r] != tk[1][r];
        cr_expect(diff == 0, "top-p %g: %lld of %lld sampled tokens differ between CPU and CUDA", (double)p.top_p,
                  (long long)diff, (long long)R);
        expect_close(variant ? "probs_llama cuda vs cpu, top-k alone" : "probs_llama cuda vs cpu", pr[1], pr[0], R * V,
                     TOL_REDUCE_F32);
    }
    ctx_close(&gc);
    ctx_close(&cc);
}

// The GEMM inputs that the CUDA backend writes in bf16 (RMSNorm alone and after the residual, the SwiGLU gate, the
// attention output on both kernels) against the CPU's float32 within one bf16 rounding.
static float *bf16_host(Ctx *c, const KtTensor *t) {
    int64_t n = kt_numel(t);
    const uint16_t *h = (const uint16_t *)download_f32(c, t);
    float *f = ctx_keep(c, malloc((size_t)(n ? n : 1) * sizeof(float)));
    for (int64_t i = 0; i < n; i++) f[i] = kt_bf16_to_f32(h[i]);
    return f;
}

Test(llama_ops, cuda_bf16_gemm_inputs) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    OK(kt_backend_set_matmul_dtype(&gc.be, KT_BF16));
    Ctx *cs[2] = {&cc, &gc};
    uint64_t seed = 11;
    int64_t R = 6, C = 768, F = 2048;
    float *xh = ctx_keep(&cc, malloc((size_t)(R * C) * 4)), *hh = ctx_keep(&cc, malloc((size_t)(R * C) * 4));
    float *wh = ctx_keep(&cc, malloc((size_t)C * 4)), *ah = ctx_keep(&cc, malloc((size_t)(R * 2 * F) * 4));
    for (int64_t i = 0; i < R * C; i++) xh[i] = 2 * frand(&seed), hh[i] = frand(&seed);
    for (int64_t i = 0; i < C; i++) wh[i] = 1 + 0.5f * frand(&seed);
    for (int64_t i = 0; i < R * 2 * F; i++) ah[i] = 4 * frand(&seed);
    float *res[2][3] = {{0}};
    for (int d = 0; d < 2; d++) {
        Ctx *c = cs[d];
        KtDType odt = d ? KT_BF16 : KT_F32;
        KtTensor x = dev_new(c, KT_F32, 2, (int64_t[]){R, C}, xh), h = dev_new(c, KT_F32, 2, (int64_t[]){R, C}, hh);
        KtTensor w = dev_new(c, KT_F32, 1, (int64_t[]){C}, wh), a = dev_new(c, KT_F32, 2, (int64_t[]){R, 2 * F}, ah);
        KtTensor y1 = dev_new(c, odt, 2, (int64_t[]){R, C}, NULL), y2 = dev_new(c, odt, 2, (int64_t[]){R, C}, NULL);
        KtTensor g = dev_new(c, odt, 2, (int64_t[]){R, F}, NULL);
        OK(kt_rmsnorm(&c->be, &y1, &x, &w, 1e-5f));
        OK(kt_add_rmsnorm(&c->be, &y2, &x, &h, &w, 1e-5f));
        OK(kt_swiglu(&c->be, &g, &a));
        res[d][0] = d ? bf16_host(c, &y1) : download_f32(c, &y1);
        res[d][1] = d ? bf16_host(c, &y2) : download_f32(c, &y2);
        res[d][2] = d ? bf16_host(c, &g) : download_f32(c, &g);
    }
    expect_close("rmsnorm bf16 out", res[1][0], res[0][0], R * C, TOL_OUT_BF16);
    expect_close("add_rmsnorm bf16 out", res[1][1], res[0][1], R * C, TOL_OUT_BF16);
    expect_close("swiglu bf16 out", res[1][2], res[0][2], R * F, TOL_OUT_BF16);

    static const int64_t shapes[2][2] = {{2, 1}, {24, 2}};  // (B, Tq): split-key kernel
    int64_t NH = 12, HS = 64, Tcap = 264;
    for (int sh = 0; sh < 2; sh++) {
        int64_t B = shapes[sh][0], Tq = shapes[sh][1];
        size_t nq = (size_t)(B * NH * Tq * HS), nk = (size_t)(B * NH * Tcap * HS);
        float *q = ctx_keep(&cc, malloc(nq * 4)), *k = ctx_keep(&cc, malloc(nk * 4)), *v = ctx_keep(&cc, malloc(nk * 4));
        int32_t *pos = ctx_keep(&cc, malloc((size_t)(B * Tq) * 4));
        for (size_t i = 0; i < nq; i++) q[i] = frand(&seed);
        for (size_t i = 0; i < nk; i++) k[i] = frand(&seed), v[i] = frand(&seed);
        for (int64_t i = 0; i < B * Tq; i++) pos[i] = (int32_t)(30 + 7 * i % 200);
        float *out[2] = {0};
        for (int d = 0; d < 2; d++) {
            Ctx *c = cs[d];
            KtTensor Q = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tq, HS}, q);
            KtTensor K = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, k);
            KtTensor Vv = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, v);
            KtTensor P = dev_new(c, KT_I32, 2, (int64_t[]){B, Tq}, pos);
            KtTensor O = dev_new(c, d ? KT_BF16 : KT_F32, 3, (int64_t[]){B, Tq, NH * HS}, NULL);
            OK(kt_attention_pos(&c->be, &O, &Q, &K, &Vv, &P, 0.125f));
            out[d] = d ? bf16_host(c, &O) : download_f32(c, &O);
        }
        char what[96];
        snprintf(what, sizeof what, "attention_pos bf16 out, B %lld, Tq %lld", (long long)B, (long long)Tq);
        expect_close(what, out[1], out[0], B * Tq * NH * HS, 1e-5, 8e-3);  // averages of +-1: tiny values exist
    }
    ctx_close(&gc);
    ctx_close(&cc);
}

// kt_llama_attention against kt_llama_attn_prep + kt_attention_pos on the same backend: out, q and both caches. On
// CUDA a single-token step of a small batch takes the fused kernel (prep inside the split-key attention), Tq = 3
// the two kernels.
TWIN(llama_ops, llama_attention_equals_prep_then_attention) {
    Ctx c;
    ctx_open(&c, dev, FX);
    uint64_t seed = 5;
    int64_t NH = 3, HS = 64, Tcap = 48, P = 41, C = NH * HS;
    static const int64_t shapes[2][2] = {{2, 1}, {2, 3}};  // (B, Tq)
    float *rope = ctx_keep(&c, malloc((size_t)(P * HS) * 4));
    for (int64_t i = 0; i < P * HS; i++) rope[i] = frand(&seed);
    KtTensor R = dev_new(&c, KT_F32, 3, (int64_t[]){P, HS / 2, 2}, rope);
    for (int sh = 0; sh < 2; sh++) {
        int64_t B = shapes[sh][0], Tq = shapes[sh][1], nc = B * NH * Tcap * HS;
        float *qkv = ctx_keep(&c, malloc((size_t)(B * Tq * 3 * C) * 4)), *kc = ctx_keep(&c, malloc((size_t)nc * 4));
        float *vc = ctx_keep(&c, malloc((size_t)nc * 4));
        for (int64_t i = 0; i < B * Tq * 3 * C; i++) qkv[i] = frand(&seed);
        for (int64_t i = 0; i < nc; i++) kc[i] = frand(&seed), vc[i] = frand(&seed);
        int32_t pos[6] = {5, 40, 0, 17, 18, 19};  // row 0 at 5 (and 40, 0), row 1 at 17.. (Tq = 1: 5 and 40)
        if (Tq == 1) pos[1] = 40;
        KtTensor QKV = dev_new(&c, KT_F32, 3, (int64_t[]){B, Tq, 3 * C}, qkv), Pp = dev_new(&c, KT_I32, 2, (int64_t[]){B, Tq}, pos);
        float *res[2][4];
        for (int fused = 0; fused < 2; fused++) {
            KtTensor K = dev_new(&c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, kc);
            KtTensor V = dev_new(&c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, vc);
            KtTensor Q = dev_new(&c, KT_F32, 4, (int64_t[]){B, NH, Tq, HS}, NULL);
            KtTensor O = dev_new(&c, KT_F32, 3, (int64_t[]){B, Tq, C}, NULL);
            if (fused) {
                OK(kt_llama_attention(&c.be, &O, &Q, &K, &V, &QKV, &R, &Pp, 0.125f));
            } else {
                OK(kt_llama_attn_prep(&c.be, &Q, &K, &V, &QKV, &R, &Pp));
                OK(kt_attention_pos(&c.be, &O, &Q, &K, &V, &Pp, 0.125f));
            }
            res[fused][0] = download_f32(&c, &O), res[fused][1] = download_f32(&c, &Q);
            res[fused][2] = download_f32(&c, &K), res[fused][3] = download_f32(&c, &V);
        }
        static const char *what[4] = {"out", "q", "kcache", "vcache"};
        int64_t n[4] = {B * Tq * C, B * Tq * C, nc, nc};
        for (int i = 0; i < 4; i++) {
            char msg[96];
            snprintf(msg, sizeof msg, "llama_attention %s, Tq %lld", what[i], (long long)Tq);
            expect_close(msg, res[1][i], res[0][i], n[i], 1e-6, 1e-6);  // the same arithmetic
        }
    }
    ctx_close(&c);
}

// The fused CUDA prep + attention (single-token steps over caches longer than 32 rows) against the CPU's two ops at
// GPT-3B's head size 100, with the first and last valid positions; then a NaN key: the CPU's softmax makes that
// query's row NaN, and CUDA must not hide it as zeros (rows without a NaN stay equal).
Test(llama_ops, cuda_llama_attention_vs_cpu_head_size_100_and_nan) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    Ctx *cs[2] = {&cc, &gc};
    uint64_t seed = 13;
    int64_t B = 3, NH = 2, HS = 100, Tcap = 48, P = 41, C = NH * HS, nc = B * NH * Tcap * HS;
    float *rope = ctx_keep(&cc, malloc((size_t)(P * HS) * 4)), *qkv = ctx_keep(&cc, malloc((size_t)(B * 3 * C) * 4));
    float *kc = ctx_keep(&cc, malloc((size_t)nc * 4)), *vc = ctx_keep(&cc, malloc((size_t)nc * 4));
    for (int64_t i = 0; i < P * HS; i++) rope[i] = frand(&seed);
    for (int64_t i = 0; i < B * 3 * C; i++) qkv[i] = frand(&seed);
    for (int64_t i = 0; i < nc; i++) kc[i] = frand(&seed), vc[i] = frand(&seed);
    int32_t pos[3] = {0, 40, 23};
    for (int nan_case = 0; nan_case < 2; nan_case++) {
        if (nan_case) kc[((2 * NH + 1) * Tcap + 7) * HS + 3] = NAN;  // image 2, head 1, row 7 (< 23): row 2 is NaN
        float *res[2][4];
        for (int d = 0; d < 2; d++) {
            Ctx *c = cs[d];
            KtTensor R = dev_new(c, KT_F32, 3, (int64_t[]){P, HS / 2, 2}, rope);
            KtTensor QKV = dev_new(c, KT_F32, 3, (int64_t[]){B, 1, 3 * C}, qkv);
            KtTensor Pp = dev_new(c, KT_I32, 2, (int64_t[]){B, 1}, pos);
            KtTensor K = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, kc);
            KtTensor V = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, vc);
            KtTensor Q = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, 1, HS}, NULL);
            KtTensor O = dev_new(c, KT_F32, 3, (int64_t[]){B, 1, C}, NULL);
            OK(kt_llama_attention(&c->be, &O, &Q, &K, &V, &QKV, &R, &Pp, 0.1f));
            res[d][0] = download_f32(c, &O), res[d][1] = download_f32(c, &Q);
            res[d][2] = download_f32(c, &K), res[d][3] = download_f32(c, &V);
        }
        static const char *what[4] = {"out", "q", "kcache", "vcache"};
        int64_t n[4] = {B * C, B * C, nc, nc};
        for (int i = 1; i < 4; i++) expect_close(what[i], res[1][i], res[0][i], n[i], TOL_REDUCE_F32);
        if (!nan_case) {
            expect_close("fused attention out, head size 100", res[1][0], res[0][0], n[0], TOL_REDUCE_F32);
            continue;
        }
        float *co = res[0][0], *go = res[1][0];
        for (int64_t i = 2 * C + HS; i < 3 * C; i++)
            cr_assert(isnan(co[i]) && isnan(go[i]), "NaN key: out[%lld] cpu %g cuda %g", (long long)i, co[i], go[i]);
        expect_close("attention out beside the NaN head", go, co, 2 * C + HS, TOL_REDUCE_F32);
    }
    ctx_close(&gc);
    ctx_close(&cc);
}

// A window's prep + attention (SJD: Tq tokens at consecutive positions; a short window repeats its last entry, same
// token and position: identical qkv rows) against the CPU's two ops: Tq = 16 (SJD's default window: clusters of 16
// blocks, a non-portable size) and 5 from positions 0 and 200, then the same with cluster launches refused (the
// backend emulator's ARGEN_EMU_REFUSE_CLUSTERS): prep and attention as two kernels, noted.
static void window_attention_case(Ctx *cc, Ctx *gc, int64_t Tq, int64_t p0, int64_t repeat_from, uint64_t seed) {
    int64_t B = 2, NH = 3, HS = 64, Tcap = 264, P = 300, C = NH * HS, nc = B * NH * Tcap * HS;
    float *rope = ctx_keep(cc, malloc((size_t)(P * HS) * 4)), *qkv = ctx_keep(cc, malloc((size_t)(B * Tq * 3 * C) * 4));
    float *kc = ctx_keep(cc, malloc((size_t)nc * 4)), *vc = ctx_keep(cc, malloc((size_t)nc * 4));
    int32_t *pos = ctx_keep(cc, malloc((size_t)(B * Tq) * 4));
    for (int64_t i = 0; i < P * HS; i++) rope[i] = frand(&seed);
    for (int64_t i = 0; i < nc; i++) kc[i] = frand(&seed), vc[i] = frand(&seed);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Tq; t++) {
            int64_t src = t < repeat_from ? t : repeat_from - 1;  // the repeated entry: row, token and position
            pos[b * Tq + t] = (int32_t)(p0 + b + src);
            for (int64_t i = 0; i < 3 * C; i++)
                qkv[(b * Tq + t) * 3 * C + i] = t == src ? frand(&seed) : qkv[(b * Tq + src) * 3 * C + i];
        }
    float *res[2][4];
    Ctx *cs[2] = {cc, gc};
    for (int d = 0; d < 2; d++) {
        Ctx *c = cs[d];
        KtTensor R = dev_new(c, KT_F32, 3, (int64_t[]){P, HS / 2, 2}, rope);
        KtTensor QKV = dev_new(c, KT_F32, 3, (int64_t[]){B, Tq, 3 * C}, qkv);
        KtTensor Pp = dev_new(c, KT_I32, 2, (int64_t[]){B, Tq}, pos);
        KtTensor K = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, kc);
        KtTensor V = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tcap, HS}, vc);
        KtTensor Q = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tq, HS}, NULL);
        KtTensor O = dev_new(c, KT_F32, 3, (int64_t[]){B, Tq, C}, NULL);
        OK(kt_llama_attention(&c->be, &O, &Q, &K, &V, &QKV, &R, &Pp, 0.125f));
        res[d][0] = download_f32(c, &O), res[d][1] = download_f32(c, &Q);
        res[d][2] = download_f32(c, &K), res[d][3] = download_f32(c, &V);
    }
    static const char *what[4] = {"window attention out", "q", "kcache", "vcache"};
    int64_t n[4] = {B * Tq * C, B * Tq * C, nc, nc};
    for (int i = 0; i < 4; i++) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s, Tq %lld from %lld", what[i], (long long)Tq, (long long)p0);
        expect_close(msg, res[1][i], res[0][i], n[i], TOL_REDUCE_F32);
    }
}

Test(llama_ops, cuda_window_attention_on_clusters_and_refused) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    for (int refuse = 0; refuse < 2; refuse++) {
        if (refuse) setenv("ARGEN_EMU_REFUSE_CLUSTERS", "1", 1);
        Ctx cc, gc;
        ctx_open(&cc, KT_CPU, FX);
        ctx_open(&gc, KT_CUDA, FX);
        window_attention_case(&cc, &gc, 16, 200, 13, 31);
        window_attention_case(&cc, &gc, 5, 0, 5, 32);
        window_attention_case(&cc, &gc, 16, 0, 16, 33);
        unsetenv("ARGEN_EMU_REFUSE_CLUSTERS");
        if (strstr(gc.be.name, "emulated"))
            cr_expect(!strstr(gc.be.notes, "attention: cluster launch refused") == !refuse, "refused %d, notes: \"%s\"",
                      refuse, gc.be.notes);
        ctx_close(&gc);
        ctx_close(&cc);
    }
}

// kt_probs_llama in place (logits == probs, as SJD's verification calls it) equals the CPU's, on every sampler path:
// top-k alone on a thread-block cluster per row (5 rows, sm_90) and on one block per row (70 rows: more than the
// backend's cluster_rows), top-k + top-p on the block sort.
Test(llama_ops, cuda_probs_llama_in_place) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    Ctx *cs[2] = {&cc, &gc};
    uint64_t seed = 17;
    int64_t V = 16384;
    float *lg = ctx_keep(&cc, malloc((size_t)(70 * V) * 4));
    for (int64_t i = 0; i < 70 * V; i++) lg[i] = 3.0f * frand(&seed);
    for (int variant = 0; variant < 3; variant++) {
        int64_t R = variant == 2 ? 70 : 5;
        SmpParams p = smp_params_default();
        p.top_k = 1000;
        p.top_p = variant == 1 ? 0.8f : 1.0f;
        p.temperature = 0.9f;
        float *pr[2];
        for (int d = 0; d < 2; d++) {
            KtTensor L = dev_new(cs[d], KT_F32, 3, (int64_t[]){R, 1, V}, lg);
            OK(kt_probs_llama(&cs[d]->be, &L, &L, p));
            pr[d] = download_f32(cs[d], &L);
        }
        const char *what[3] = {"probs in place, top-k, 5 rows", "probs in place, top-k + top-p",
                               "probs in place, top-k, 70 rows"};
        expect_close(what[variant], pr[1], pr[0], R * V, TOL_REDUCE_F32);
    }
    ctx_close(&gc);
    ctx_close(&cc);
}

// LlamaGen's sampler captured into a graph (as the sequential step graph holds it) and replayed: on a CUDA sm_90
// device the cluster kernel (2 rows of 16,384, top-k 2000), a launch with the cluster and dependent-launch
// attributes. The capture must succeed (no "graphs off" note), and each replay must draw the CPU's tokens from the
// logits uploaded before it.
typedef struct {
    KtBackend *be;
    KtTensor *T, *L, *I, *P;
    SmpParams p;
} SampleRec;
static KtStatus record_sample(void *ctx) {
    SampleRec *s = ctx;
    return kt_sample_llama(s->be, s->T, s->L, s->I, s->P, s->p);
}
Test(llama_ops, cuda_sampler_graph_replay_equals_eager) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    enum { R = 2, V = 16384, ROUNDS = 3 };
    uint64_t seed = 23;
    float *lg = ctx_keep(&cc, malloc((size_t)ROUNDS * R * V * 4));
    for (int64_t i = 0; i < (int64_t)ROUNDS * R * V; i++) lg[i] = 4.0f * frand(&seed);
    int64_t ids[R] = {7, 1ll << 35};
    int32_t pos[R] = {3, 250};
    SmpParams p = smp_params_default();
    p.seed = 11;
    p.top_k = 2000;
    p.top_p = 1.0f;
    int32_t want[ROUNDS][R], got[ROUNDS][R];
    for (int k = 0; k < ROUNDS; k++) {  // the CPU's draws, round k from the logits lg[k]
        KtTensor L = dev_new(&cc, KT_F32, 3, (int64_t[]){R, 1, V}, lg + (size_t)k * R * V);
        KtTensor I = dev_new(&cc, KT_I64, 1, (int64_t[]){R}, ids), P = dev_new(&cc, KT_I32, 2, (int64_t[]){R, 1}, pos);
        KtTensor T = dev_new(&cc, KT_I32, 2, (int64_t[]){R, 1}, NULL);
        OK(kt_sample_llama(&cc.be, &T, &L, &I, &P, p));
        OK(kt_download(&cc.be, want[k], &T));
    }
    KtTensor L = dev_new(&gc, KT_F32, 3, (int64_t[]){R, 1, V}, lg);
    KtTensor I = dev_new(&gc, KT_I64, 1, (int64_t[]){R}, ids), P = dev_new(&gc, KT_I32, 2, (int64_t[]){R, 1}, pos);
    KtTensor T = dev_new(&gc, KT_I32, 2, (int64_t[]){R, 1}, NULL);
    OK(kt_sample_llama(&gc.be, &T, &L, &I, &P, p));  // eager (round 0)
    OK(kt_download(&gc.be, got[0], &T));
    SampleRec rec = {&gc.be, &T, &L, &I, &P, p};
    KtGraph g = {0};
    bool off = false;
    OK(kt_graph_record(&gc.be, &g, record_sample, &rec, &off));
    cr_assert(g.handle && !off, "the sampler's capture failed: notes \"%s\"", gc.be.notes);
    for (int k = 1; k < ROUNDS; k++) {  // replays, each after new logits are uploaded
        OK(kt_upload(&gc.be, &L, lg + (size_t)k * R * V));
        OK(kt_graph_launch(&gc.be, &g));
        OK(kt_download(&gc.be, got[k], &T));
    }
    kt_graph_free(&g);
    for (int k = 0; k < ROUNDS; k++)
        for (int r = 0; r < R; r++)
            cr_expect(got[k][r] == want[k][r], "%s %d, row %d: CUDA token %d, CPU %d", k ? "replay" : "eager round", k,
                      r, got[k][r], want[k][r]);
    cr_expect(!strstr(gc.be.notes, "graphs off"), "notes: %s", gc.be.notes);
    ctx_close(&gc);
    ctx_close(&cc);
}

// A device that refuses the cluster launch: the sampler notes it and draws the same tokens on one block per row, then
// and on later calls. The backend emulator refuses cluster launches under ARGEN_EMU_REFUSE_CLUSTERS; a GPU ignores
// the variable (clusters launch, no note).
Test(llama_ops, cuda_sampler_falls_back_when_clusters_are_refused) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    setenv("ARGEN_EMU_REFUSE_CLUSTERS", "1", 1);
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    Ctx *cs[2] = {&cc, &gc};
    enum { R = 2, V = 16384 };
    uint64_t seed = 29;
    float *lg = ctx_keep(&cc, malloc((size_t)R * V * 4));
    for (int64_t i = 0; i < (int64_t)R * V; i++) lg[i] = 4.0f * frand(&seed);
    int64_t ids[R] = {5, 6};
    int32_t pos[R] = {0, 9}, tok[2][2][R];
    SmpParams p = smp_params_default();
    p.seed = 13;
    p.top_k = 2000;
    p.top_p = 1.0f;
    for (int d = 0; d < 2; d++)
        for (int call = 0; call < 2; call++) {
            KtTensor L = dev_new(cs[d], KT_F32, 3, (int64_t[]){R, 1, V}, lg);
            KtTensor I = dev_new(cs[d], KT_I64, 1, (int64_t[]){R}, ids);
            KtTensor P = dev_new(cs[d], KT_I32, 2, (int64_t[]){R, 1}, pos);
            KtTensor T = dev_new(cs[d], KT_I32, 2, (int64_t[]){R, 1}, NULL);
            OK(kt_sample_llama(&cs[d]->be, &T, &L, &I, &P, p));
            OK(kt_download(&cs[d]->be, tok[d][call], &T));
        }
    unsetenv("ARGEN_EMU_REFUSE_CLUSTERS");
    for (int call = 0; call < 2; call++)
        for (int r = 0; r < R; r++)
            cr_expect(tok[1][call][r] == tok[0][call][r], "call %d, row %d: CUDA token %d, CPU %d", call, r,
                      tok[1][call][r], tok[0][call][r]);
    if (strstr(gc.be.name, "emulated"))
        cr_expect(strstr(gc.be.notes, "cluster launch refused"), "notes: \"%s\"", gc.be.notes);
    ctx_close(&gc);
    ctx_close(&cc);
}

// ------------------------------------------------------------------- fused small-batch GEMMs (llama_gemv.cu)
// kt_rmsnorm_linear, kt_rmsnorm_linear_swiglu, kt_linear_residual and (even rows) kt_rmsnorm_linear_cfg on a CUDA
// backend that fuses them (rows <= 64)
// against one that runs the compositions (ARGEN_CUDA_FUSED_ROWS=0): the same 16-bit rounding of the GEMM input, only
// the order of the float sums differs. Shapes: GPT-B's (K 768 / 2048, the split-K grids), K = 64 (two 32-blocks of
// k), K = 40 and 1032 (a last 32-block with one valid lane group), N not a multiple of 8 (the last unit's tail); rows
// 1..8, 12, 16 (one row tile), 24 and 32 (two), 33 and 64 (four), 48 rows of K = 2048 (too wide for shared memory:
// the composition on both) and 65 (likewise); bf16 and fp16. The composition's residual (cuBLASLt with beta = 1) is
// checked against kt_linear + kt_add in the cases over 32 rows.
static void fused_case(Ctx *fc, Ctx *pc, KtDType wdt, int64_t R, int64_t K, int64_t N, uint64_t seed) {
    int64_t F = N;  // the SwiGLU width: w13 is (2F, K)
    float *xh = ctx_keep(fc, malloc((size_t)(R * K) * 4)), *nwh = ctx_keep(fc, malloc((size_t)K * 4));
    float *rh = ctx_keep(fc, malloc((size_t)(R * N) * 4));
    uint16_t *wh = ctx_keep(fc, malloc((size_t)(N * K) * 2)), *w13h = ctx_keep(fc, malloc((size_t)(2 * F * K) * 2));
    uint16_t *inh = ctx_keep(fc, malloc((size_t)(R * K) * 2)), *w2h = ctx_keep(fc, malloc((size_t)(N * K) * 2));
    uint16_t (*cvt)(float) = wdt == KT_BF16 ? kt_f32_to_bf16 : kt_f32_to_f16;
    float (*back)(uint16_t) = wdt == KT_BF16 ? kt_bf16_to_f32 : kt_f16_to_f32;
    float ws = 1.0f / sqrtf((float)K);
    for (int64_t i = 0; i < R * K; i++) xh[i] = 3 * frand(&seed), inh[i] = cvt(frand(&seed));
    for (int64_t i = 0; i < K; i++) nwh[i] = 1 + 0.5f * frand(&seed);
    for (int64_t i = 0; i < R * N; i++) rh[i] = frand(&seed);
    for (int64_t i = 0; i < N * K; i++) wh[i] = cvt(ws * frand(&seed)), w2h[i] = cvt(ws * frand(&seed));
    for (int64_t i = 0; i < 2 * F * K; i++) w13h[i] = cvt(2 * ws * frand(&seed));
    float *res[2][4], *res_cfg[2] = {NULL, NULL};
    Ctx *cs[2] = {fc, pc};
    for (int d = 0; d < 2; d++) {
        Ctx *c = cs[d];
        KtTensor x = dev_new(c, KT_F32, 2, (int64_t[]){R, K}, xh), nw = dev_new(c, KT_F32, 1, (int64_t[]){K}, nwh);
        KtTensor hn = dev_new(c, wdt, 2, (int64_t[]){R, K}, NULL), in = dev_new(c, wdt, 2, (int64_t[]){R, K}, inh);
        KtTensor w = dev_new(c, wdt, 2, (int64_t[]){N, K}, wh), w13 = dev_new(c, wdt, 2, (int64_t[]){2 * F, K}, w13h);
        KtTensor w2 = dev_new(c, wdt, 2, (int64_t[]){N, K}, w2h);
        KtTensor y = dev_new(c, KT_F32, 2, (int64_t[]){R, N}, NULL), a = dev_new(c, KT_F32, 2, (int64_t[]){R, 2 * F}, NULL);
        KtTensor g = dev_new(c, wdt, 2, (int64_t[]){R, F}, NULL);
        KtTensor r = dev_new(c, KT_F32, 2, (int64_t[]){R, N}, rh), h = dev_new(c, KT_F32, 2, (int64_t[]){R, N}, NULL);
        OK(kt_rmsnorm_linear(&c->be, &y, &hn, &x, &nw, &w, 1e-5f));
        OK(kt_rmsnorm_linear_swiglu(&c->be, &g, &a, &hn, &x, &nw, &w13, 1e-5f));
        OK(kt_linear_residual(&c->be, &r, &h, &in, &w2));
        res[d][0] = download_f32(c, &y), res[d][2] = download_f32(c, &r), res[d][3] = download_f32(c, &x);
        const uint16_t *gh = (const uint16_t *)download_f32(c, &g);
        res[d][1] = ctx_keep(c, malloc((size_t)(R * F) * 4));
        for (int64_t i = 0; i < R * F; i++) res[d][1][i] = back(gh[i]);
        if (R % 2 == 0) {  // the head with CFG (t = 3): fused, it equals this backend's own head + kt_cfg_combine
            int64_t B = R / 2;
            KtTensor x3 = kt_reshape3(&x, R, 1, K), hn3 = kt_reshape3(&hn, R, 1, K);
            KtTensor lc = dev_new(c, KT_F32, 3, (int64_t[]){B, 1, N}, NULL);
            KtTensor lg = dev_new(c, KT_F32, 3, (int64_t[]){R, 1, N}, NULL);
            KtTensor ref = dev_new(c, KT_F32, 3, (int64_t[]){B, 1, N}, NULL);
            OK(kt_rmsnorm_linear_cfg(&c->be, &lc, &lg, &hn3, &x3, &nw, &w, 1e-5f, 3.0f));
            res_cfg[d] = download_f32(c, &lc);
            OK(kt_rmsnorm_linear(&c->be, &lg, &hn3, &x3, &nw, &w, 1e-5f));
            OK(kt_cfg_combine(&c->be, &ref, &lg, 3.0f));
            char msg[128];
            snprintf(msg, sizeof msg, "rmsnorm_linear_cfg vs rmsnorm_linear + cfg_combine (%s), %s R %lld K %lld N %lld",
                     d ? "composition" : "fused", kt_dtype_name(wdt), (long long)R, (long long)K, (long long)N);
            expect_close(msg, res_cfg[d], download_f32(c, &ref), B * N, 0, 0);  // bit for bit on one backend
        }
        if (d == 1 && R > 32) {  // the composition's residual (cuBLASLt's beta = 1) by hand: kt_linear, kt_add
            KtTensor r2 = dev_new(c, KT_F32, 2, (int64_t[]){R, N}, rh);
            OK(kt_linear(&c->be, &h, &in, &w2, NULL));
            OK(kt_add(&c->be, &r2, &r2, &h));
            char msg[128];
            snprintf(msg, sizeof msg, "linear_residual (cuBLASLt beta = 1) vs linear + add, %s R %lld K %lld N %lld",
                     kt_dtype_name(wdt), (long long)R, (long long)K, (long long)N);
            expect_close(msg, res[d][2], download_f32(c, &r2), R * N, 1e-5, 1e-4);
        }
    }
    static const char *what[4] = {"rmsnorm_linear", "rmsnorm_linear_swiglu", "linear_residual", "x unchanged"};
    int64_t n[4] = {R * N, R * F, R * N, R * K};
    for (int i = 0; i < 4; i++) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s fused vs composition, %s R %lld K %lld N %lld", what[i], kt_dtype_name(wdt),
                 (long long)R, (long long)K, (long long)N);
        if (i == 1) expect_close(msg, res[0][i], res[1][i], n[i], 1e-6, 8e-3);  // one 16-bit rounding apart at most
        else if (i == 3) expect_close(msg, res[0][i], res[1][i], n[i], 0, 0);
        else expect_close(msg, res[0][i], res[1][i], n[i], 1e-5, 1e-4);
    }
    if (R % 2 == 0) {  // (1 + t) c - t u with t = 3 scales the sums' differences by up to 7
        char msg[128];
        snprintf(msg, sizeof msg, "rmsnorm_linear_cfg fused vs composition, %s R %lld K %lld N %lld",
                 kt_dtype_name(wdt), (long long)R, (long long)K, (long long)N);
        expect_close(msg, res_cfg[0], res_cfg[1], R / 2 * N, 1e-4, 1e-3);
    }
}

Test(llama_ops, cuda_fused_gemv_vs_composition, .timeout = 1800) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    static const int64_t cases[][4] = {  // (bf16 0 / fp16 1, R, K, N)
        {0, 2, 768, 2304}, {0, 2, 2048, 768}, {0, 1, 64, 771},    {0, 3, 1032, 129}, {0, 5, 768, 333},
        {0, 8, 256, 512},  {0, 7, 40, 17},    {0, 12, 1032, 129}, {0, 16, 768, 200}, {0, 24, 2048, 96},
        {0, 33, 768, 96},  {0, 64, 768, 520}, {0, 65, 256, 96},   {1, 2, 768, 384},  {1, 8, 2048, 200},
        {1, 32, 256, 333}, {1, 48, 2048, 96},
    };
    uint64_t seed = 21;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {  // fresh contexts per case (their buffer tables)
        Ctx fc, pc;
        ctx_open(&fc, KT_CUDA, FX);
        setenv("ARGEN_CUDA_FUSED_ROWS", "0", 1);
        ctx_open(&pc, KT_CUDA, FX);
        unsetenv("ARGEN_CUDA_FUSED_ROWS");
        KtDType wdt = cases[i][0] ? KT_F16 : KT_BF16;
        OK(kt_backend_set_matmul_dtype(&fc.be, wdt));
        OK(kt_backend_set_matmul_dtype(&pc.be, wdt));
        fused_case(&fc, &pc, wdt, cases[i][1], cases[i][2], cases[i][3], seed + i);
        ctx_close(&pc);
        ctx_close(&fc);
    }
}

// A 16-bit KV cache (CUDA with 16-bit weights) against the CPU's float32 one: the cache rows within one rounding, the
// attention output within the fp16 attention tolerance, on the three kernels: prep + split-key (Tq = 3), the fused
// prep + split-key step (Tq = 1) and the one-warp kernel (a 24-row cache).
Test(llama_ops, cuda_16bit_kv_cache_vs_cpu) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    Ctx cc, gc;
    ctx_open(&cc, KT_CPU, FX);
    ctx_open(&gc, KT_CUDA, FX);
    uint64_t seed = 9;
    int64_t NH = 4, HS = 64, P = 300, C = NH * HS;
    static const int64_t shapes[][3] = {{2, 3, 264}, {2, 1, 264}, {3, 1, 24}, {2, 2, 24}};  // (B, Tq, Tcap)
    float *rope = ctx_keep(&cc, malloc((size_t)(P * HS) * 4));
    for (int64_t i = 0; i < P * HS / 2; i++) {
        double a = 0.37 * (double)i;
        rope[2 * i] = (float)cos(a), rope[2 * i + 1] = (float)sin(a);
    }
    Ctx *cs[2] = {&cc, &gc};
    for (int dt = 0; dt < 2; dt++) {
        KtDType cdt = dt ? KT_F16 : KT_BF16;
        OK(kt_backend_set_matmul_dtype(&gc.be, cdt));
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
            int64_t B = shapes[sh][0], Tq = shapes[sh][1], Tcap = shapes[sh][2], nc = B * NH * Tcap * HS;
            float *qkv = ctx_keep(&cc, malloc((size_t)(B * Tq * 3 * C) * 4)), *kc = ctx_keep(&cc, malloc((size_t)nc * 4));
            float *vc = ctx_keep(&cc, malloc((size_t)nc * 4));
            uint16_t *kc16 = ctx_keep(&cc, malloc((size_t)nc * 2)), *vc16 = ctx_keep(&cc, malloc((size_t)nc * 2));
            for (int64_t i = 0; i < B * Tq * 3 * C; i++) qkv[i] = frand(&seed);
            for (int64_t i = 0; i < nc; i++) {  // the CPU starts from the 16-bit values, so only new rows differ
                float k = frand(&seed), v = frand(&seed);
                kc16[i] = dt ? kt_f32_to_f16(k) : kt_f32_to_bf16(k), vc16[i] = dt ? kt_f32_to_f16(v) : kt_f32_to_bf16(v);
                kc[i] = dt ? kt_f16_to_f32(kc16[i]) : kt_bf16_to_f32(kc16[i]);
                vc[i] = dt ? kt_f16_to_f32(vc16[i]) : kt_bf16_to_f32(vc16[i]);
            }
            int32_t pos[6];
            for (int64_t i = 0; i < B * Tq; i++) pos[i] = (int32_t)((i * 97 + 5) % Tcap);
            pos[B * Tq - 1] = (int32_t)Tcap - 1;
            float *res[2][3];
            for (int d = 0; d < 2; d++) {
                Ctx *c = cs[d];
                KtDType kdt = d ? cdt : KT_F32;
                KtTensor QKV = dev_new(c, KT_F32, 3, (int64_t[]){B, Tq, 3 * C}, qkv);
                KtTensor Pp = dev_new(c, KT_I32, 2, (int64_t[]){B, Tq}, pos);
                KtTensor R = dev_new(c, KT_F32, 3, (int64_t[]){P, HS / 2, 2}, rope);
                KtTensor K = dev_new(c, kdt, 4, (int64_t[]){B, NH, Tcap, HS}, d ? (void *)kc16 : (void *)kc);
                KtTensor V = dev_new(c, kdt, 4, (int64_t[]){B, NH, Tcap, HS}, d ? (void *)vc16 : (void *)vc);
                KtTensor Q = dev_new(c, KT_F32, 4, (int64_t[]){B, NH, Tq, HS}, NULL);
                KtTensor O = dev_new(c, KT_F32, 3, (int64_t[]){B, Tq, C}, NULL);
                OK(kt_llama_attention(&c->be, &O, &Q, &K, &V, &QKV, &R, &Pp, 0.125f));
                res[d][0] = download_f32(c, &O);
                if (d) {
                    const uint16_t *k16 = (const uint16_t *)download_f32(c, &K), *v16 = (const uint16_t *)download_f32(c, &V);
                    res[d][1] = ctx_keep(c, malloc((size_t)nc * 4)), res[d][2] = ctx_keep(c, malloc((size_t)nc * 4));
                    for (int64_t i = 0; i < nc; i++) {
                        res[d][1][i] = dt ? kt_f16_to_f32(k16[i]) : kt_bf16_to_f32(k16[i]);
                        res[d][2][i] = dt ? kt_f16_to_f32(v16[i]) : kt_bf16_to_f32(v16[i]);
                    }
                } else {
                    res[d][1] = download_f32(c, &K), res[d][2] = download_f32(c, &V);
                }
            }
            char msg[128];
            snprintf(msg, sizeof msg, "%s cache: out, B %lld Tq %lld Tcap %lld", kt_dtype_name(cdt), (long long)B,
                     (long long)Tq, (long long)Tcap);
            expect_close(msg, res[1][0], res[0][0], B * Tq * C, TOL_ATTN_F16);
            snprintf(msg, sizeof msg, "%s cache: kcache, Tq %lld Tcap %lld", kt_dtype_name(cdt), (long long)Tq, (long long)Tcap);
            expect_close(msg, res[1][1], res[0][1], nc, dt ? 1e-6 : 1e-6, dt ? 1e-3 : 8e-3);
            snprintf(msg, sizeof msg, "%s cache: vcache, Tq %lld Tcap %lld", kt_dtype_name(cdt), (long long)Tq, (long long)Tcap);
            expect_close(msg, res[1][2], res[0][2], nc, dt ? 1e-6 : 1e-6, dt ? 1e-3 : 8e-3);
        }
    }
    ctx_close(&gc);
    ctx_close(&cc);
}
