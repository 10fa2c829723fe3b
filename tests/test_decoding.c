// The decoding strategies as pure samplers: LlamaGen's HF-style filters; speculative Jacobi decoding on a synthetic
// model whose exact joint law is enumerable (chi-square against it, and a deliberately wrong acceptance rule that the
// same test rejects), its greedy and schedule behaviour (the reference schedule's trace from decoding.md §1.4); the
// ZipAR schedule (forward counts = 2g + (g-2)s for every valid window, the spec's table and worked example, every
// cell sampled exactly once and only fed after it was sampled).
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "samplers/philox.h"
#include "samplers/sampling.h"
#include "samplers/sjd.h"
#include "samplers/zipar.h"
#include "testutil.h"

// ------------------------------------------------------------------------------------------------- HF filters
Test(hf_filter, top_p_keeps_the_crossing_token_and_top_k_ties) {
    float sv[8];
    int32_t si[8];
    SmpParams p = smp_params_default();
    p.top_p = 0.5f;
    float l[4] = {logf(0.4f), logf(0.3f), logf(0.2f), logf(0.1f)}, pr[4];
    smp_hf_probs_row(pr, l, 4, p, sv, si);  // mass before: 0, 0.4, 0.7, 0.9 -> keep 0 and 1 (0.4 <= 0.5)
    cr_expect(pr[0] > 0 && pr[1] > 0 && pr[2] == 0 && pr[3] == 0, "%g %g %g %g", pr[0], pr[1], pr[2], pr[3]);
    cr_expect(fabsf(pr[0] - 4.0f / 7) < 1e-6f && fabsf(pr[1] - 3.0f / 7) < 1e-6f);
    p.top_p = 0.0f;  // only the top entry
    float l0[4] = {0.1f, 2.0f, 1.0f, -1.0f};
    smp_hf_probs_row(pr, l0, 4, p, sv, si);
    cr_expect(pr[1] == 1.0f && pr[0] == 0 && pr[2] == 0 && pr[3] == 0);
    p.top_p = 1.0f;
    p.top_k = 2;
    float lk[5] = {1.0f, 3.0f, 2.0f, 2.0f, 0.5f};  // the 2nd largest is 2 (tied): three survive
    smp_hf_filter_row(lk, 5, p, sv, si);
    cr_expect(lk[0] == -INFINITY && lk[1] == 3.0f && lk[2] == 2.0f && lk[3] == 2.0f && lk[4] == -INFINITY);
    p.top_k = 0;
    p.temperature = 0.5f;
    float lt[2] = {1.0f, -1.0f};
    smp_hf_filter_row(lt, 2, p, sv, si);
    cr_expect(lt[0] == 2.0f && lt[1] == -2.0f);
    float none[3] = {-INFINITY, -INFINITY, -INFINITY};
    smp_hf_probs_row(pr, none, 3, p, sv, si);
    cr_expect(pr[0] == 0 && pr[1] == 0 && pr[2] == 0);
    cr_expect(smp_draw_probs(pr, 3, 0.5) == -1);
    float w[4] = {0, 0.25f, 0, 0.75f};
    cr_expect(smp_draw_probs(w, 4, 0.0) == 1 && smp_draw_probs(w, 4, 0.2499) == 1 && smp_draw_probs(w, 4, 0.25) == 3);
    cr_expect(smp_draw_probs(w, 4, 0.999999) == 3);
}

// ------------------------------------------------------------------------------------------ inverse-CDF draws
// The draws add only the entries a bit mask marks (samplers/bitmask.h); these are the plain scans they must equal.
static int32_t plain_draw(const float *p, int64_t V, double u) {
    double total = 0, cum = 0;
    for (int64_t i = 0; i < V; i++)
        if (p[i] > 0) total += p[i];
    if (!(total > 0)) return -1;
    int64_t last = -1;
    for (int64_t i = 0; i < V; i++) {
        if (!(p[i] > 0)) continue;
        cum += p[i];
        last = i;
        if (cum > u * total) return (int32_t)i;
    }
    return (int32_t)last;
}

static int32_t plain_residual(const float *p, const float *q, int32_t u, int64_t V, double r) {
#define D(i) ((double)p[i] - (q ? (double)q[i] : ((i) == u ? 1.0 : 0.0)))
    double total = 0, cum = 0;
    for (int64_t i = 0; i < V; i++)
        if (D(i) > 0) total += D(i);
    if (!(total > 0)) return plain_draw(p, V, r);
    int32_t last = -1;
    for (int64_t i = 0; i < V; i++) {
        if (!(D(i) > 0)) continue;
        cum += D(i);
        last = (int32_t)i;
        if (cum > r * total) return last;
    }
    return last;
#undef D
}

// A row of V weights: mostly zeros (as after top-k), some -0, negatives, NaN, denormals, an occasional entry > 1.
static void odd_row(float *p, int64_t V, uint64_t key, double density) {
    for (int64_t i = 0; i < V; i++) {
        SmpPhilox4 r = smp_rng_block(key, (uint64_t)i, 0, 91);
        double a = smp_u53(r.v[0], r.v[1]), b = smp_u53(r.v[2], r.v[3]);
        p[i] = a < density ? (float)(b / 64) : 0.0f;
        if (a > 0.99) p[i] = b < 0.25 ? -0.0f : b < 0.5 ? -(float)b : b < 0.7 ? NAN : b < 0.9 ? 1e-42f : 1.5f;
    }
}

Test(draws, masked_scans_equal_plain_scans_bit_for_bit) {
    static const int64_t sizes[] = {1, 3, 63, 64, 65, 127, 200, 4099, 65600};  // the last: past the block-sum table
    static float p[65600], q[65600];
    int64_t checked = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t V = sizes[si];
        for (int row = 0; row < 12; row++) {
            double density = row % 4 == 0 ? 1.0 : row % 4 == 1 ? 0.12 : row % 4 == 2 ? 0.01 : 0.0;
            odd_row(p, V, 1000u * (uint64_t)si + (uint64_t)row, density);
            odd_row(q, V, 7777u + 1000u * (uint64_t)si + (uint64_t)row, 0.3);
            // uniforms: random, the ends, and each prefix sum's exact ratio (the boundaries where order matters)
            double us[40], total = 0, cum = 0;
            int nu = 0;
            us[nu++] = 0.0;
            us[nu++] = 0.9999999999999999;
            for (int64_t i = 0; i < V; i++)
                if (p[i] > 0) total += p[i];
            int64_t npos = 0, seen = 0;
            for (int64_t i = 0; i < V; i++) npos += p[i] > 0;
            for (int64_t i = 0; i < V && nu < 30; i++)  // spread over the row: block boundaries of every kind
                if (p[i] > 0 && (cum += p[i], seen++ % (npos / 28 + 1) == 0)) us[nu++] = cum / total;
            for (int k = 0; nu < 40; k++) {
                SmpPhilox4 r = smp_rng_block((uint64_t)V, (uint64_t)row, (uint32_t)k, 92);
                us[nu++] = smp_u53(r.v[0], r.v[1]);
            }
            for (int k = 0; k < nu; k++) {
                int32_t u = (int32_t)((uint64_t)(k * 7919) % (uint64_t)V);
                cr_assert_eq(smp_draw_probs(p, V, us[k]), plain_draw(p, V, us[k]), "V %lld row %d u %.17g",
                             (long long)V, row, us[k]);
                cr_assert_eq(smp_sjd_draw_residual(p, q, u, V, us[k]), plain_residual(p, q, u, V, us[k]),
                             "residual, V %lld row %d u %.17g", (long long)V, row, us[k]);
                cr_assert_eq(smp_sjd_draw_residual(p, NULL, u, V, us[k]), plain_residual(p, NULL, u, V, us[k]),
                             "one-hot residual on %d, V %lld row %d u %.17g", u, (long long)V, row, us[k]);
                checked += 3;
            }
        }
    }
    cr_expect(checked > 2000);
}

// -------------------------------------------------------------------------------------- synthetic raster model
// p(. | prefix) over V tokens: softmax of pseudo-random logits in [-SCALE, SCALE] keyed by the whole prefix, so
// every draft's q (computed from another prefix) differs from the current p.
#define SV 3
#define SN 5
#define SCALE 1.2

static void model_probs(const int32_t *prefix, int len, float *p) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++) h = (h ^ (uint64_t)(prefix[i] + 1)) * 1099511628211ull;
    double e[SV], z = 0;
    for (int v = 0; v < SV; v++) {
        SmpPhilox4 r = smp_rng_block(h, (uint64_t)len, (uint32_t)v, 77);
        e[v] = exp(SCALE * (2 * smp_u53(r.v[0], r.v[1]) - 1));
        z += e[v];
    }
    for (int v = 0; v < SV; v++) p[v] = (float)(e[v] / z);
}

// Runs SJD for one image on the synthetic model; tokens (SN).
static int64_t run_sjd(const SmpSjdParams *sp, uint64_t image, int32_t *tokens) {
    float fbuf[16 * SV], probs[16 * SV], p0[SV];
    int32_t draft[16], in[16], prefix[64];
    uint8_t onehot[16];
    SmpSjd s;
    model_probs(NULL, 0, p0);
    smp_sjd_start(&s, sp, image, p0, tokens, fbuf, draft, onehot);
    int W;
    while ((W = smp_sjd_window(&s, in)) > 0) {
        // row j: the distribution of raster index n+j given a_0..a_{n-1} (a_{n-1} = in[0]) and drafts in[1..j]
        memcpy(prefix, tokens, (size_t)(s.n - 1) * sizeof *prefix);
        for (int j = 0; j < W; j++) {
            prefix[s.n - 1 + j] = in[j];
            model_probs(prefix, (int)s.n + j, probs + j * SV);
        }
        smp_sjd_step(&s, probs);
    }
    return s.forwards;
}

static double exact_p(const int32_t *seq) {
    double pr = 1;
    float p[SV];
    for (int i = 0; i < SN; i++) {
        model_probs(seq, i, p);
        pr *= p[seq[i]];
    }
    return pr;
}

// Chi-square of M runs against the exact law (cells with expected count < 5 pooled); *dof gets the degrees of freedom.
static double sjd_chi2(SmpSjdParams sp, int M, int *dof, double *mean_nfe) {
    enum { CELLS = SV * SV * SV * SV * SV };
    static int64_t count[CELLS];
    memset(count, 0, sizeof count);
    int32_t tok[SN];
    int64_t nfe = 0;
    for (int m = 0; m < M; m++) {
        nfe += run_sjd(&sp, (uint64_t)m, tok);
        int idx = 0;
        for (int i = 0; i < SN; i++) idx = idx * SV + tok[i];
        count[idx]++;
    }
    double chi2 = 0, pool_e = 0, pool_o = 0;
    *dof = -1;
    for (int c = 0; c < CELLS; c++) {
        int32_t seq[SN];
        for (int i = SN - 1, x = c; i >= 0; i--, x /= SV) seq[i] = x % SV;
        double e = M * exact_p(seq);
        if (e < 5) {
            pool_e += e;
            pool_o += (double)count[c];
            continue;
        }
        chi2 += (count[c] - e) * (count[c] - e) / e;
        (*dof)++;
    }
    if (pool_e > 0) {
        chi2 += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        (*dof)++;
    }
    *mean_nfe = (double)nfe / M;
    return chi2;
}

static SmpSjdParams synth_params(int L, SmpSjdInit init, SmpSjdSchedule sched, SmpSjdRule rule) {
    SmpSjdParams sp = {.window = L, .V = SV, .N = SN, .grid_w = 2, .init = init, .schedule = sched, .rule = rule,
                       .seed = 2024};
    return sp;
}

// SJD samples from the AR law for every window, initialisation and schedule; the broken residual rule (resample
// from p instead of max(0, p - q) after a rejection) is caught by the same statistic.
Test(sjd, distribution_equals_the_exact_ar_law_and_a_wrong_rule_fails) {
    const int M = 60000;
    struct { int L, init, sched; } ok[] = {{2, 0, 0}, {4, 0, 0}, {5, 1, 0}, {5, 2, 0}, {3, 0, 1}};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int dof;
        double nfe, chi2 = sjd_chi2(synth_params(ok[i].L, ok[i].init, ok[i].sched, SMP_SJD_RULE_EXACT), M, &dof, &nfe);
        double bound = dof + 5 * sqrt(2.0 * dof);
        cr_log_info("SJD L=%d init %d schedule %d: chi2 %.1f over %d dof, %.2f forwards per image", ok[i].L, ok[i].init,
                    ok[i].sched, chi2, dof, nfe);
        cr_expect(chi2 < bound, "SJD L=%d init %d schedule %d: chi2 %.1f over %d dof (bound %.1f)", ok[i].L,
                  ok[i].init, ok[i].sched, chi2, dof, bound);
        cr_expect(nfe <= SN, "SJD never needs more forwards than AR: %.2f", nfe);
    }
    int dof;
    double nfe, bad = sjd_chi2(synth_params(4, 0, 0, SMP_SJD_RULE_BROKEN_RESIDUAL), M, &dof, &nfe);
    cr_log_info("broken residual rule: chi2 %.1f over %d dof", bad, dof);
    cr_expect(bad > dof + 10 * sqrt(2.0 * dof), "the broken residual rule went unnoticed: chi2 %.1f over %d dof", bad, dof);
}

// One-hot distributions (greedy): SJD's tokens are the greedy path for any window.
static void greedy_probs(const int32_t *prefix, int len, float *p) {
    float q[SV];
    model_probs(prefix, len, q);
    int best = 0;
    for (int v = 1; v < SV; v++)
        if (q[v] > q[best]) best = v;
    for (int v = 0; v < SV; v++) p[v] = v == best ? 1.0f : 0.0f;
}

Test(sjd, greedy_distributions_give_the_greedy_tokens) {
    int32_t want[SN], prefix[SN];
    float p[SV];
    for (int i = 0; i < SN; i++) {
        greedy_probs(want, i, p);
        for (int v = 0; v < SV; v++)
            if (p[v] == 1.0f) want[i] = v;
    }
    for (int L = 1; L <= 8; L++) {
        SmpSjdParams sp = synth_params(L, (SmpSjdInit)(L % 3), (SmpSjdSchedule)(L % 2), SMP_SJD_RULE_EXACT);
        float fbuf[16 * SV], probs[16 * SV], p0[SV];
        int32_t draft[16], in[16], tok[SN];
        uint8_t onehot[16];
        SmpSjd s;
        greedy_probs(NULL, 0, p0);
        smp_sjd_start(&s, &sp, 3, p0, tok, fbuf, draft, onehot);
        int W;
        while ((W = smp_sjd_window(&s, in)) > 0) {
            memcpy(prefix, tok, (size_t)(s.n - 1) * sizeof *prefix);
            for (int j = 0; j < W; j++) {
                prefix[s.n - 1 + j] = in[j];
                greedy_probs(prefix, (int)s.n + j, probs + j * SV);
            }
            smp_sjd_step(&s, probs);
        }
        cr_expect(memcmp(tok, want, sizeof want) == 0, "window %d", L);
    }
}

// The recycled drafts' draws run on several threads (OpenMP) when a forward leaves 4 or more: on a 48-token image
// over 64 tokens with window 16 (drafts mostly rejected, ~14 recycled per forward) the tokens are the same at any
// thread count.
enum { PV = 64, PN = 48, PL = 16 };

static void wide_probs(const int32_t *prefix, int len, float *p) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < len; i++) h = (h ^ (uint64_t)(prefix[i] + 1)) * 1099511628211ull;
    double e[PV], z = 0;
    for (int v = 0; v < PV; v++) {
        SmpPhilox4 r = smp_rng_block(h, (uint64_t)len, (uint32_t)v, 78);
        z += e[v] = exp(3 * smp_u53(r.v[0], r.v[1]));
    }
    for (int v = 0; v < PV; v++) p[v] = (float)(e[v] / z);
}

static int64_t run_wide(uint64_t image, int32_t *tokens, int64_t *recycled) {
    SmpSjdParams sp = {.window = PL, .V = PV, .N = PN, .grid_w = 8, .seed = 5};
    static float fbuf[PL * PV], probs[PL * PV];
    float p0[PV];
    int32_t draft[PL], in[PL], prefix[PN + PL];
    uint8_t onehot[PL];
    SmpSjd s;
    wide_probs(NULL, 0, p0);
    smp_sjd_start(&s, &sp, image, p0, tokens, fbuf, draft, onehot);
    int W;
    while ((W = smp_sjd_window(&s, in)) > 0) {
        memcpy(prefix, tokens, (size_t)(s.n - 1) * sizeof *prefix);
        for (int j = 0; j < W; j++) {
            prefix[s.n - 1 + j] = in[j];
            wide_probs(prefix, (int)s.n + j, probs + j * PV);
        }
        int k = smp_sjd_step(&s, probs);
        *recycled += W - k >= 4 ? W - k : 0;
    }
    return s.forwards;
}

Test(sjd, same_tokens_at_any_thread_count) {
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    int64_t recycled = 0;
    for (uint64_t image = 0; image < 4; image++) {
        int32_t one[PN], many[PN];
        omp_set_num_threads(1);
        int64_t f1 = run_wide(image, one, &recycled);
        omp_set_num_threads(4);
        int64_t f4 = run_wide(image, many, &recycled);
        cr_expect(f1 == f4 && !memcmp(one, many, sizeof one), "image %llu: 1 vs 4 threads", (unsigned long long)image);
    }
    omp_set_num_threads(saved);
    cr_expect(recycled > 100, "the threaded path ran: %lld drafts recycled in steps with >= 4", (long long)recycled);
#else
    cr_skip_test("built without OpenMP");
#endif
}

// decoding.md §1.4: N = 16, L = 4, every draft accepted (V = 1): the reference schedule's (n, W, k) trace is
// (1,1,1) (2,1,1) (3,4,4) (7,4,4) (11,4,4) (15,1,1); the simplified one needs 1 + 4 forwards.
Test(sjd, window_schedules) {
    const int exp_n[] = {1, 2, 3, 7, 11, 15}, exp_w[] = {1, 1, 4, 4, 4, 1};
    for (int sched = 0; sched < 2; sched++) {
        SmpSjdParams sp = {.window = 4, .V = 1, .N = 16, .grid_w = 4, .schedule = (SmpSjdSchedule)sched};
        float fbuf[4], probs[4] = {1, 1, 1, 1}, p0[1] = {1};
        int32_t draft[4], in[4], tok[16];
        uint8_t onehot[4];
        SmpSjd s;
        smp_sjd_start(&s, &sp, 0, p0, tok, fbuf, draft, onehot);
        int it = 0, W;
        while ((W = smp_sjd_window(&s, in)) > 0) {
            int64_t n = s.n;
            int k = smp_sjd_step(&s, probs);
            if (sched == 1 && it < 6)
                cr_expect(n == exp_n[it] && W == exp_w[it] && k == W, "iteration %d: (n, W, k) = (%lld, %d, %d)", it,
                          (long long)n, W, k);
            it++;
        }
        cr_expect(s.n == 16 && s.forwards == (sched ? 7 : 5), "schedule %d: %lld forwards", sched, (long long)s.forwards);
    }
    SmpSjdParams bad = {.window = 0, .V = 3, .N = 4};
    cr_expect(smp_sjd_check(&bad) != NULL);
}

// ----------------------------------------------------------------------------------------------------- ZipAR
Test(zipar, forward_count_formula_and_the_spec_table) {
    for (int g = 3; g <= 40; g++)
        for (int s = 2; s <= g - 1; s++) {
            cr_assert(smp_zipar_check(g, s) == NULL);
            SmpZiparInfo info;
            smp_zipar_info(g, s, &info);
            cr_expect(info.n_forwards == 2 * g + (g - 2) * s, "g %d s %d: %d forwards", g, s, info.n_forwards);
        }
    static const int s24[] = {2, 3, 4, 6, 8, 12, 16}, n24[] = {92, 114, 136, 180, 224, 312, 400};
    static const int s16[] = {2, 3, 4, 6, 8, 12}, n16[] = {60, 74, 88, 116, 144, 200};
    for (int i = 0; i < 7; i++) {
        SmpZiparInfo info;
        smp_zipar_info(24, s24[i], &info);
        cr_expect(info.n_forwards == n24[i]);
    }
    for (int i = 0; i < 6; i++) {
        SmpZiparInfo info;
        smp_zipar_info(16, s16[i], &info);
        cr_expect(info.n_forwards == n16[i]);
    }
    static const int sm[] = {8, 4, 2, 12, 16}, mx[] = {4, 7, 13, 3, 2};  // most tokens fed per forward, g = 24
    for (int i = 0; i < 5; i++) {
        SmpZiparInfo info;
        smp_zipar_info(24, sm[i], &info);
        cr_expect(info.max_feeds == mx[i], "s %d: %d feeds, spec %d", sm[i], info.max_feeds, mx[i]);
    }
    cr_expect(smp_zipar_check(24, 1) != NULL && smp_zipar_check(24, 24) != NULL && smp_zipar_check(2, 1) != NULL);
}

// Every cell is sampled exactly once, a fed token was sampled by an earlier forward, positions ascend within a
// forward, and only the completion feed is discarded.
Test(zipar, plans_are_causal_and_complete) {
    for (int g = 3; g <= 24; g++)
        for (int s = 2; s <= g - 1; s++) {
            SmpZiparInfo info;
            smp_zipar_info(g, s, &info);
            int32_t *first = malloc((size_t)(info.n_forwards + 1) * sizeof *first), *when = malloc((size_t)(g * g) * sizeof *when);
            SmpZiparFeed *f = malloc((size_t)info.n_feeds * sizeof *f);
            smp_zipar_plan(g, s, 1, first, f);
            for (int i = 0; i < g * g; i++) when[i] = -1;
            bool ok = first[0] == 0 && first[info.n_forwards] == info.n_feeds;
            for (int k = 0; ok && k < info.n_forwards; k++)
                for (int e = first[k]; ok && e < first[k + 1]; e++) {
                    ok = e == first[k] || f[e].pos > f[e - 1].pos;
                    if (ok && f[e].token_cell >= 0) ok = when[f[e].token_cell] >= 0 && when[f[e].token_cell] < k;
                    if (ok && f[e].out_cell >= 0) {
                        ok = when[f[e].out_cell] < 0;
                        when[f[e].out_cell] = k;
                    }
                }
            for (int i = 0; ok && i < g * g; i++) ok = when[i] >= 0;
            cr_expect(ok, "g %d s %d: the plan is not causal or not complete", g, s);
            free(first);
            free(when);
            free(f);
        }
}

// decoding.md §2.3 worked example (g = 24, s = 8, T = 1); ZipAR iteration t is forward g - 1 + t.
Test(zipar, worked_example) {
    enum { g = 24, s = 8 };
    SmpZiparInfo info;
    smp_zipar_info(g, s, &info);
    int32_t *first = malloc((size_t)(info.n_forwards + 1) * sizeof *first);
    SmpZiparFeed *f = malloc((size_t)info.n_feeds * sizeof *f);
    smp_zipar_plan(g, s, 1, first, f);
#define CELL(r, c) ((r) * g + (c))
    const struct { int t, n; SmpZiparFeed e[4]; } it[] = {
        {1, 1, {{CELL(0, 23), 24, CELL(1, 0)}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}}},
        {9, 2, {{CELL(1, 7), 32, CELL(1, 8)}, {CELL(0, 23), 48, CELL(2, 0)}, {0, 0, 0}, {0, 0, 0}}},
        {17, 3, {{CELL(1, 15), 40, CELL(1, 16)}, {CELL(2, 7), 56, CELL(2, 8)}, {CELL(1, 15), 72, CELL(3, 0)}, {0, 0, 0}}},
        {25, 4, {{CELL(1, 23), 48, -1}, {CELL(2, 15), 64, CELL(2, 16)}, {CELL(3, 7), 80, CELL(3, 8)},
                 {CELL(2, 15), 96, CELL(4, 0)}}},
        {200, 1, {{CELL(23, 22), 575, CELL(23, 23)}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}}},
    };
    for (int i = 0; i < 5; i++) {
        int k = g - 1 + it[i].t;
        cr_assert_eq(first[k + 1] - first[k], it[i].n, "iteration %d feeds %d tokens", it[i].t, first[k + 1] - first[k]);
        for (int j = 0; j < it[i].n; j++) {
            SmpZiparFeed a = f[first[k] + j], b = it[i].e[j];
            cr_expect(a.token_cell == b.token_cell && a.pos == b.pos && a.out_cell == b.out_cell,
                      "iteration %d entry %d: (%d, %d, %d), spec (%d, %d, %d)", it[i].t, j, a.token_cell, a.pos,
                      a.out_cell, b.token_cell, b.pos, b.out_cell);
        }
    }
    cr_expect(info.n_forwards == g - 1 + 200 + 1);
    free(first);
    free(f);
}
