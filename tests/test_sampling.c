// Samplers: Philox4x32-10 known answers, the uniform helpers, VAR's top-k/top-p masking against torch
// (fixtures from scripts/make_op_fixtures.py), argmax at top_k=1, the categorical draw's distribution (chi-square),
// and the sampling ops' independence from batch position (CPU and CUDA twins).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "samplers/philox.h"
#include "samplers/sampling.h"
#include "testutil.h"

#define FX "ops/ops.safetensors"

// --------------------------------------------------------------------------------------------------- Philox
// Random123 tests/kat_vectors, philox4x32 10 (counter, key, output).
Test(philox, known_answers) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d, 0x41c83b0e, 0xa20bc7c6,
         0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09, 0x94fdcceb, 0x5001e420,
         0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        SmpPhilox4 c = {{kat[i][0], kat[i][1], kat[i][2], kat[i][3]}};
        SmpPhilox4 r = smp_philox4x32_10(c, kat[i][4], kat[i][5]);
        for (int j = 0; j < 4; j++)
            cr_expect_eq(r.v[j], kat[i][6 + j], "vector %d word %d: %08x, expected %08x", i, j, r.v[j], kat[i][6 + j]);
    }
    // the stream layout: (seed, image, position, stream) -> key (seed lo, hi), counter (image lo, hi, pos, stream)
    SmpPhilox4 a = smp_rng_block(0x299f31d0a4093822ull, 0x85a308d3243f6a88ull, 0x13198a2e, 0x03707344);
    cr_expect_eq(a.v[0], 0xd16cfe09);
    cr_expect_eq(a.v[3], 0x24126ea1);
}

Test(philox, uniforms) {
    cr_expect(smp_u53(0, 0) == 0.0);
    cr_expect(smp_u53(0xffffffff, 0xffffffff) < 1.0);
    cr_expect(smp_u24_open(0) > 0.0f);
    cr_expect(smp_u24_open(0xffffffff) < 1.0f, "u = %.9g", smp_u24_open(0xffffffff));
    cr_expect(isfinite(-logf(-logf(smp_u24_open(0xffffffff)))));
    cr_expect(isfinite(-logf(-logf(smp_u24_open(0)))));
}

// ------------------------------------------------------------------------------------------------- masking
Test(masking, params_default) {
    SmpParams p = smp_params_default();
    cr_expect(p.seed == 0 && p.top_k == 0 && p.top_p == 0.0f && p.temperature == 1.0f);
}

Test(masking, top_k_keeps_ties) {
    float l[8] = {1, 3, 2, 3, -INFINITY, 2, 0, 2}, s[8];
    smp_top_k_mask(l, 8, 3, s);  // third largest is 2: both 3s and all three 2s survive
    float want[8] = {-INFINITY, 3, 2, 3, -INFINITY, 2, -INFINITY, 2};
    cr_expect_arr_eq(l, want, sizeof want);
    float m[5] = {-INFINITY, -INFINITY, 1, -INFINITY, -INFINITY};
    smp_top_k_mask(m, 5, 3, s);  // fewer finite entries than k: nothing changes
    cr_expect(m[2] == 1 && m[0] == -INFINITY);
}

// VAR's sample_with_top_k_top_p_ masking (torch) on the fixture rows: identical -inf positions, others untouched.
Test(masking, top_k_top_p_vs_torch) {
    static const char *cases[] = {"p90", "k10_p80", "p50_premasked", "k7_ties", "k1", "k900_p96"};
    for (int c = 0; c < 6; c++) {
        char n[3][96];
        snprintf(n[0], sizeof n[0], "sampling.%s.logits", cases[c]);
        snprintf(n[1], sizeof n[1], "sampling.%s.expected", cases[c]);
        int64_t cnt, shape[KT_MAX_DIMS];
        int nd;
        float *x = read_f32(fixture_path(FX), n[0], &cnt, shape, &nd);
        float *want = read_f32(fixture_path(FX), n[1], NULL, NULL, NULL);
        snprintf(n[2], sizeof n[2], "sampling.%s.top_k", cases[c]);
        float *k = read_f32(fixture_path(FX), n[2], NULL, NULL, NULL);
        snprintf(n[2], sizeof n[2], "sampling.%s.top_p", cases[c]);
        float *p = read_f32(fixture_path(FX), n[2], NULL, NULL, NULL);
        int64_t R = shape[0], V = shape[1];
        float *sv = malloc(sizeof(float) * V);
        int32_t *si = malloc(sizeof(int32_t) * V);
        for (int64_t r = 0; r < R; r++) {
            smp_top_k_mask(x + r * V, V, (int)k[0], sv);
            smp_top_p_mask(x + r * V, V, p[0], sv, si);
        }
        int64_t bad = 0, first = -1;
        for (int64_t i = 0; i < cnt; i++)
            if (!(x[i] == want[i])) bad++, first = first < 0 ? i : first;
        cr_expect_eq(bad, 0, "%s: %lld entries differ from torch (first [%lld]: %g vs %g)", cases[c], (long long)bad,
                     (long long)first, first >= 0 ? x[first] : 0.0, first >= 0 ? want[first] : 0.0);
        free(x), free(want), free(k), free(p), free(sv), free(si);
    }
}

// Exactly tied survivors: the cumulative probability is an exact fraction (9/18 = 0.5 <= 1 - 0.5, so 9 entries go),
// as in the CUDA sampler's scan. (A running sum of rounded 1/18 terms reaches 0.5000000000000001 and kept one more.)
Test(masking, top_p_exact_ties) {
    enum { V = 20 };
    float l[V], sv[V];
    int32_t si[V];
    for (int i = 0; i < V; i++) l[i] = i < 18 ? 1.5f : -INFINITY;
    smp_top_p_mask(l, V, 0.5f, sv, si);
    int masked = 0;
    for (int i = 0; i < 18; i++) masked += l[i] == -INFINITY;
    cr_expect_eq(masked, 9, "%d of 18 tied entries masked", masked);
}

Test(masking, top_k_1_is_argmax) {
    enum { V = 300 };
    float l[V], sv[V];
    int32_t si[V];
    uint64_t s = 11;
    for (int trial = 0; trial < 200; trial++) {
        int32_t best = 0;
        for (int i = 0; i < V; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            l[i] = (float)(s >> 40) / 65536.0f;
            if (l[i] > l[best]) best = i;
        }
        SmpParams p = smp_params_default();
        p.top_k = 1, p.seed = (uint64_t)trial, p.temperature = 0.7f;
        cr_assert_eq(smp_sample_row(l, V, p, 3, (uint32_t)trial, sv, si), best);
    }
}

Test(masking, categorical_edges) {
    float none[3] = {-INFINITY, -INFINITY, NAN};
    cr_expect_eq(smp_categorical(none, 3, 0.5), -1);
    float l[5] = {-INFINITY, 0, -INFINITY, 0, -INFINITY};
    cr_expect_eq(smp_categorical(l, 5, 0.0), 1);
    cr_expect_eq(smp_categorical(l, 5, 0.49), 1);
    cr_expect_eq(smp_categorical(l, 5, 0.51), 3);
    cr_expect_eq(smp_categorical(l, 5, 0.9999999999999999), 3);
}

// --------------------------------------------------------------------------------------------- distribution
typedef int32_t (*Sampler)(float *logits, int64_t V, SmpParams p, uint64_t image, uint32_t pos, float *sv,
                           int32_t *si);

// A deliberately wrong sampler: draws from softmax(logits / 1.25) instead of softmax(logits).
static int32_t wrong_sampler(float *logits, int64_t V, SmpParams p, uint64_t image, uint32_t pos, float *sv,
                             int32_t *si) {
    (void)sv, (void)si;
    float t[16];
    for (int64_t i = 0; i < V; i++) t[i] = logits[i] / 1.25f;
    SmpPhilox4 r = smp_rng_block(p.seed, image, pos, SMP_STREAM_TOKEN);
    return smp_categorical(t, V, smp_u53(r.v[0], r.v[1]));
}

// Pearson chi-square of 10^5 draws (positions 0..N-1 of image 0, fixed seed) against softmax(logits).
static double chi_square(Sampler f) {
    enum { V = 10, N = 100000 };
    const float logits[V] = {0.3f, -1.2f, 2.0f, 0.0f, 1.1f, -0.4f, 0.9f, -2.5f, 1.7f, 0.6f};
    double p[V], z = 0, chi = 0;
    int64_t counts[V] = {0};
    for (int i = 0; i < V; i++) z += p[i] = exp(logits[i]);
    SmpParams sp = smp_params_default();
    sp.seed = 1234;
    float row[V], sv[V];
    int32_t si[V];
    for (uint32_t n = 0; n < N; n++) {
        memcpy(row, logits, sizeof row);
        int32_t t = f(row, V, sp, 0, n, sv, si);
        cr_assert(t >= 0 && t < V);
        counts[t]++;
    }
    for (int i = 0; i < V; i++) {
        double e = N * p[i] / z;
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

#define CHI2_DF9_P001 27.877  // chi-square critical value, 9 degrees of freedom, p = 0.001

Test(distribution, categorical_chi_square) {
    double chi = chi_square(smp_sample_row);
    cr_expect(chi < CHI2_DF9_P001, "chi-square %.2f >= %.3f: draws do not follow softmax(logits)", chi, CHI2_DF9_P001);
}

Test(distribution, chi_square_catches_wrong_sampler) {
    double chi = chi_square(wrong_sampler);
    cr_expect(chi > 10 * CHI2_DF9_P001, "chi-square %.2f: the test cannot tell a wrong temperature apart", chi);
}

// ----------------------------------------------------------------------------------- ops: batch independence
// Runs kt_sample_top_k_top_p and kt_smooth_embed on `nb` rows (image ids `ids`) of T tokens each, with logits that
// depend only on (image, position); returns tokens (nb*T) and latents (nb*T*D).
enum { SV = 97, ST = 5, SD = 8 };
static void run_ops(KtDevice dev, const int64_t *ids, int nb, int32_t *tokens, float *h) {
    KtBackend be;
    test_backend_init(&be, dev);
    static float logits[4 * ST * SV], cb[SV * SD];
    for (int b = 0; b < nb; b++)
        for (int t = 0; t < ST; t++)
            for (int v = 0; v < SV; v++)
                logits[(b * ST + t) * SV + v] = (float)sin(0.37 * v + 1.3 * (double)ids[b] + 0.11 * t) * 3.0f;
    for (int i = 0; i < SV * SD; i++) cb[i] = (float)cos(0.05 * i);
    KtBuffer bl = {0}, bt = {0}, bi = {0}, bc = {0}, bh = {0};
    KtTensor l = kt_tensor3(NULL, KT_F32, dev, nb, ST, SV), tok = kt_tensor2(NULL, KT_I32, dev, nb, ST);
    KtTensor id = kt_tensor1(NULL, KT_I64, dev, nb), c = kt_tensor2(NULL, KT_F32, dev, SV, SD);
    KtTensor ht = kt_tensor3(NULL, KT_F32, dev, nb, ST, SD);
    KtBuffer *bufs[5] = {&bl, &bt, &bi, &bc, &bh};
    KtTensor *ts[5] = {&l, &tok, &id, &c, &ht};
    for (int i = 0; i < 5; i++) {
        cr_assert(kt_buffer_alloc(&be, bufs[i], kt_nbytes(ts[i])) == KT_OK);
        ts[i]->data = bufs[i]->data;
    }
    cr_assert(kt_upload(&be, &l, logits) == KT_OK && kt_upload(&be, &id, ids) == KT_OK);
    cr_assert(kt_upload(&be, &c, cb) == KT_OK);
    SmpParams p = smp_params_default();
    p.seed = 99, p.top_k = 40, p.top_p = 0.9f, p.temperature = 1.3f;
    cr_assert(kt_sample_top_k_top_p(&be, &tok, &l, &id, 17, p) == KT_OK, "%s", kt_last_error());
    cr_assert(kt_smooth_embed(&be, &ht, &l, &c, 0.4f, &id, 17, 99) == KT_OK, "%s", kt_last_error());
    cr_assert(kt_download(&be, tokens, &tok) == KT_OK && kt_download(&be, h, &ht) == KT_OK);
    for (int i = 0; i < 5; i++) kt_buffer_free(bufs[i]);
    kt_backend_free(&be);
}

static void batch_independence(KtDevice dev) {
    const int64_t ids_a[3] = {10, 11, 12}, ids_b[4] = {12, 5, 10, 11}, ids_c[1] = {11};
    int32_t ta[3 * ST], tb[4 * ST], tc[ST];
    float ha[3 * ST * SD], hb[4 * ST * SD], hc[ST * SD];
    run_ops(dev, ids_a, 3, ta, ha);
    run_ops(dev, ids_b, 4, tb, hb);
    run_ops(dev, ids_c, 1, tc, hc);
    const int map_b[3] = {2, 3, 0};  // image 10 -> row 2 of b, 11 -> 3, 12 -> 0
    for (int r = 0; r < 3; r++) {
        cr_expect_arr_eq(ta + r * ST, tb + map_b[r] * ST, sizeof(int32_t) * ST, "image %d tokens moved", 10 + r);
        cr_expect_arr_eq(ha + r * ST * SD, hb + map_b[r] * ST * SD, sizeof(float) * ST * SD);
    }
    cr_expect_arr_eq(ta + ST, tc, sizeof tc);
    cr_expect_arr_eq(ha + ST * SD, hc, sizeof hc);
    for (int i = 0; i < 3 * ST; i++) cr_expect(ta[i] >= 0 && ta[i] < SV);
}
// The same seed gives the same tokens on the CPU and on CUDA (samplers/sampling.h is the written spec of both).
Test(ops, cpu_and_cuda_draw_the_same_tokens) {
    if (!kt_cuda_available()) cr_skip_test("no CUDA device");
    const int64_t ids[3] = {10, 11, 12};
    int32_t tc[3 * ST], tg[3 * ST];
    float hc[3 * ST * SD], hg[3 * ST * SD];
    run_ops(KT_CPU, ids, 3, tc, hc);
    run_ops(KT_CUDA, ids, 3, tg, hg);
    cr_expect_arr_eq(tc, tg, sizeof tc, "CPU and CUDA tokens differ");
    expect_close("smooth_embed cpu vs cuda", hg, hc, 3 * ST * SD, TOL_REDUCE_F32);
}

Test(ops, batch_position_independence_cpu) { batch_independence(KT_CPU); }
Test(ops, batch_position_independence_cuda) { batch_independence(KT_CUDA); }

// more_smooth: masked entries carry no weight, h is a convex combination of codebook rows.
Test(ops, smooth_embed_row_masking) {
    enum { V = 64, D = 4 };
    float l[V], cb[V * D], h[D], w[V];
    for (int v = 0; v < V; v++) {
        l[v] = v % 3 ? (float)(v % 7) * 0.3f : -INFINITY;
        for (int d = 0; d < D; d++) cb[v * D + d] = v % 3 ? 1.0f + (float)d : 1e6f;
    }
    for (uint32_t pos = 0; pos < 50; pos++) {
        smp_smooth_embed_row(h, l, cb, V, D, 0.3f, 5, 1, pos, w);
        for (int d = 0; d < D; d++) cr_assert(fabsf(h[d] - (1.0f + (float)d)) < 1e-4f, "h[%d] = %g", d, h[d]);
    }
}

Test(ops, all_masked_row_is_an_error) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    float l[2 * 3] = {0, 1, 2, -INFINITY, NAN, -INFINITY};
    int32_t tok[2];
    int64_t ids[2] = {0, 1};
    KtTensor lt = kt_tensor3(l, KT_F32, KT_CPU, 2, 1, 3), tt = kt_tensor2(tok, KT_I32, KT_CPU, 2, 1);
    KtTensor it = kt_tensor1(ids, KT_I64, KT_CPU, 2);
    KtStatus s = kt_sample_top_k_top_p(&be, &tt, &lt, &it, 0, smp_params_default());
    cr_expect_eq(s, KT_ERR_NUMERIC, "%s", kt_last_error());
    cr_expect(strstr(kt_last_error(), "batch 1") != NULL, "%s", kt_last_error());
    kt_backend_free(&be);
}
