// Improved precision and recall (eval/precision_recall.h) against points worked out by hand (the <= at a radius,
// the radius counting the point itself as its nearest neighbour) and against a brute force in double precision on
// clustered random points (every block size, float32 and the ADM evaluator's float16 distances, the float16 overflow
// fallback, the CUDA backend), plus bad input.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/precision_recall.h"
#include "testutil.h"

static EvPrResult pr_on(KtDevice dev, const float *ref, int64_t nr, const float *smp, int64_t ns, int D, int k,
                        EvPrDistances dist, int64_t block) {
    KtBackend be;
    test_backend_init(&be, dev);
    EvPrParams p = ev_pr_params_default();
    p.k = k, p.dist = dist, p.block = block;
    EvPrResult r;
    OK(ev_precision_recall(&be, ref, nr, smp, ns, D, &p, &r));
    kt_backend_free(&be);
    return r;
}

// ------------------------------------------------------------------------------------------------ by hand
// One dimension, k = 1 (a radius is the squared distance to the nearest other point of the same set):
//   reference 0, 2, 9, 10: radii 4, 4, 1, 1          samples 1, 4, 30, 31: radii 9, 9, 1, 1
//   sample 1 lies in the ball of 0 (d = 1 <= 4); sample 4 only on the boundary of 2's (d = 4 <= 4); 30 and 31 in
//   none: precision 2/4. Reference 0 and 2 lie in sample 1's ball (d = 1 <= 9); 9 and 10 in none (d(9, 4) = 25 > 9):
//   recall 2/4.
static const float k_line_ref[] = {0, 2, 9, 10}, k_line_smp[] = {1, 4, 30, 31};

Test(pr, hand_computed_points_on_a_line) {
    for (int dist = 0; dist < 2; dist++) {  // small integers: float16 is exact, so both give the same
        EvPrResult r = pr_on(KT_CPU, k_line_ref, 4, k_line_smp, 4, 1, 1, (EvPrDistances)dist, 0);
        cr_expect_eq(r.precision, 0.5, "%s precision %g (0.25: the radius test is < instead of <=)",
                     dist ? "fp16" : "fp32", r.precision);
        cr_expect_eq(r.recall, 0.5, "%s recall %g", dist ? "fp16" : "fp32", r.recall);
        cr_expect_eq(r.fp16_fallbacks, 0);
        // the roles swapped: precision and recall swap, and the boundary case is now a reference point (4) on a
        // sample's ball (2's)
        r = pr_on(KT_CPU, k_line_smp, 4, k_line_ref, 4, 1, 1, (EvPrDistances)dist, 0);
        cr_expect_eq(r.precision, 0.5, "swapped: precision %g", r.precision);
        cr_expect_eq(r.recall, 0.5, "swapped: recall %g (0.25: the radius test is < instead of <=)", r.recall);
    }
    // k = 3 with four points a set: a radius reaches the farthest point of its set, so every point of the other
    // set within that reach counts: reference radii 100, 64, 81, 100 cover samples 1, 4 (d(0, 4) = 16 <= 100) but
    // not 30 (d(10, 30) = 400 > 100); sample radii 900, 729, 841, 900 cover every reference point.
    EvPrResult r = pr_on(KT_CPU, k_line_ref, 4, k_line_smp, 4, 1, 3, EV_PR_DIST_FP32, 0);
    cr_expect_eq(r.precision, 0.5, "k = 3 precision %g", r.precision);
    cr_expect_eq(r.recall, 1.0, "k = 3 recall %g", r.recall);
}

// ---------------------------------------------------------------------------------------- brute force
// Points around four of five centres (the two sets share three: balls cover the other set in part), deterministic.
static float *clustered(int64_t n, int D, unsigned seed, float spread, int shift) {
    float *x = malloc((size_t)n * D * sizeof *x);
    cr_assert(x);
    srand(seed);
    for (int64_t i = 0; i < n; i++) {
        int c = rand() % 4 + shift;
        for (int d = 0; d < D; d++) {
            float u = (float)rand() / (float)RAND_MAX - 0.5f;
            x[i * D + d] = (float)(c * ((d % 3) + 1)) + spread * u;
        }
    }
    return x;
}

static double dist2(const float *a, const float *b, int D) {
    double s = 0;
    for (int d = 0; d < D; d++) s += ((double)a[d] - b[d]) * ((double)a[d] - b[d]);
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// radius of each point of x: the (k+1)-th smallest exact distance in its own set
static double *radii_exact(const float *x, int64_t n, int D, int k) {
    double *r = malloc((size_t)n * sizeof *r), *row = malloc((size_t)n * sizeof *row);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) row[j] = dist2(x + i * D, x + j * D, D);
        qsort(row, (size_t)n, sizeof *row, cmp_double);
        r[i] = row[k];
    }
    free(row);
    return r;
}

// Exact precision and recall; *margin = the smallest |d - r| / r over the comparisons made, so that a float32
// computation is known to decide every comparison the same way when the margin is well above its rounding.
static void pr_exact(const float *ref, int64_t nr, const float *smp, int64_t ns, int D, int k, double *prec,
                     double *rec, double *margin) {
    double *rr = radii_exact(ref, nr, D, k), *rs = radii_exact(smp, ns, D, k);
    int64_t ps = 0, pr = 0;
    *margin = INFINITY;
    for (int64_t s = 0; s < ns; s++) {
        bool in = false;
        for (int64_t f = 0; f < nr; f++) {
            double d = dist2(ref + f * D, smp + s * D, D);
            in |= d <= rr[f];
            *margin = fmin(*margin, fabs(d - rr[f]) / rr[f]);
        }
        ps += in;
    }
    for (int64_t f = 0; f < nr; f++) {
        bool in = false;
        for (int64_t s = 0; s < ns; s++) {
            double d = dist2(ref + f * D, smp + s * D, D);
            in |= d <= rs[s];
            *margin = fmin(*margin, fabs(d - rs[s]) / rs[s]);
        }
        pr += in;
    }
    *prec = (double)ps / (double)ns, *rec = (double)pr / (double)nr;
    free(rr), free(rs);
}

enum { NR = 41, NS = 57, DIM = 24 };

static void check_brute_force(KtDevice dev) {
    if (dev == KT_CUDA && !kt_cuda_available()) cr_skip_test("no CUDA device");
    float *ref = clustered(NR, DIM, 17, 2.5f, 0), *smp = clustered(NS, DIM, 1703, 3.0f, 1);
    double p, r, margin;
    pr_exact(ref, NR, smp, NS, DIM, 3, &p, &r, &margin);
    cr_assert(margin > 1e-3, "the test points have a near tie (margin %g): pick other seeds", margin);
    cr_log_info("exact precision %g recall %g, margin %g", p, r, margin);
    cr_assert(p > 0.1 && p < 0.95 && r > 0.1 && r < 0.95, "uninformative points: precision %g recall %g", p, r);
    // one block, blocks that do not divide the sets, single rows (the first three on CUDA: every block is a GEMM
    // call, slow in the CI's emulated cuBLAS)
    const int64_t blocks[] = {0, 16, 41, 1, 5, 1000};
    for (size_t i = 0; i < (dev == KT_CUDA ? 3 : sizeof blocks / sizeof *blocks); i++) {
        EvPrResult got = pr_on(dev, ref, NR, smp, NS, DIM, 3, EV_PR_DIST_FP32, blocks[i]);
        cr_expect_eq(got.precision, p, "block %lld: precision %g, exact %g", (long long)blocks[i], got.precision, p);
        cr_expect_eq(got.recall, r, "block %lld: recall %g, exact %g", (long long)blocks[i], got.recall, r);
        cr_expect_eq(got.n_ref, NR);
        cr_expect_eq(got.n_smp, NS);
    }
    // ADM's float16 distances: near the float32 result (a few points may cross a radius), and without fallback
    EvPrResult h = pr_on(dev, ref, NR, smp, NS, DIM, 3, EV_PR_DIST_FP16, 16);
    cr_expect(fabs(h.precision - p) <= 3.0 / NS && fabs(h.recall - r) <= 3.0 / NR,
              "float16 distances: precision %g recall %g, float32 %g %g", h.precision, h.recall, p, r);
    cr_expect_eq(h.fp16_fallbacks, 0);
    free(ref), free(smp);
}

// The evaluator's float16 graph, step by step (tf.cast to float16; reduce_sum(square(U)) with float accumulation,
// rounded; matmul with float accumulation, rounded; norm_u - 2 * mm, then + norm_v, each rounded; maximum(., 0)),
// on every pair: the library's float16 mode must decide every comparison the same way.
static float h16(float x) { return kt_f16_to_f32(kt_f32_to_f16(x)); }

static double *dist16_all(const float *a, int64_t na, const float *b, int64_t nb, int D) {
    double *d = malloc((size_t)(na * nb) * sizeof *d);
    for (int64_t i = 0; i < na; i++)
        for (int64_t j = 0; j < nb; j++) {
            float nu = 0.f, nv = 0.f;
            double dot = 0;
            for (int k = 0; k < D; k++) {
                float u = h16(a[i * D + k]), v = h16(b[j * D + k]);
                nu += h16(u * u), nv += h16(v * v);
                dot += (double)u * v;
            }
            float mm = h16((float)dot), t = h16(h16(nu) - h16(2.f * mm)), x = h16(t + h16(nv));
            d[i * nb + j] = x < 0.f ? 0.f : x;
        }
    return d;
}

static double kth(const double *row, int64_t n, int k) {
    double *c = malloc((size_t)n * sizeof *c);
    memcpy(c, row, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double r = c[k];
    free(c);
    return r;
}

Test(pr, float16_mode_is_the_evaluators_graph) {
    float *ref = clustered(NR, DIM, 17, 2.5f, 0), *smp = clustered(NS, DIM, 1703, 3.0f, 1);
    double *rr_d = dist16_all(ref, NR, ref, NR, DIM), *ss_d = dist16_all(smp, NS, smp, NS, DIM);
    double *rs = dist16_all(ref, NR, smp, NS, DIM), rr[NR], rsm[NS];
    for (int i = 0; i < NR; i++) rr[i] = kth(rr_d + i * NR, NR, 3);
    for (int j = 0; j < NS; j++) rsm[j] = kth(ss_d + j * NS, NS, 3);
    int64_t ps = 0, pr = 0;
    for (int j = 0; j < NS; j++) {
        bool in = false;
        for (int i = 0; i < NR; i++) in |= rs[i * NS + j] <= rr[i];
        ps += in;
    }
    for (int i = 0; i < NR; i++) {
        bool in = false;
        for (int j = 0; j < NS; j++) in |= rs[i * NS + j] <= rsm[j];
        pr += in;
    }
    // every distance as the graph makes it
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    float *d = malloc(NR * NS * sizeof *d);
    int64_t fb = -1;
    OK(ev_pr_distances(&be, ref, NR, smp, NS, DIM, EV_PR_DIST_FP16, d, &fb));
    cr_expect_eq(fb, 0);
    int64_t off = 0;
    for (int i = 0; i < NR * NS; i++) off += d[i] != (float)rs[i];
    cr_expect_eq(off, 0, "%lld of %d float16 distances differ from the graph's", (long long)off, NR * NS);
    OK(ev_pr_distances(&be, ref, NR, smp, NS, DIM, EV_PR_DIST_FP32, d, NULL));  // and float32 near the exact ones
    for (int i = 0; i < NR; i++)
        for (int j = 0; j < NS; j++) {
            double e = dist2(ref + i * DIM, smp + j * DIM, DIM);
            cr_assert(fabs(d[i * NS + j] - e) <= 1e-5 * e + 1e-3, "d(%d, %d) = %g, exact %g", i, j, d[i * NS + j], e);
        }
    free(d);
    kt_backend_free(&be);
    EvPrResult got = pr_on(KT_CPU, ref, NR, smp, NS, DIM, 3, EV_PR_DIST_FP16, 0);
    cr_expect_eq(got.precision, (double)ps / NS, "precision %g, the graph %g", got.precision, (double)ps / NS);
    cr_expect_eq(got.recall, (double)pr / NR, "recall %g, the graph %g", got.recall, (double)pr / NR);
    EvPrResult f32 = pr_on(KT_CPU, ref, NR, smp, NS, DIM, 3, EV_PR_DIST_FP32, 0);
    cr_log_info("float16: precision %g recall %g; float32 %g %g", got.precision, got.recall, f32.precision, f32.recall);
    free(rr_d), free(ss_d), free(rs), free(ref), free(smp);
}

Test(pr, equals_brute_force_at_every_block_size) { check_brute_force(KT_CPU); }
Test(pr, cuda_equals_brute_force_at_every_block_size) { check_brute_force(KT_CUDA); }

// Norms beyond float16's range (65,504) make that block's distances infinite: the evaluator redoes the block in
// float32, so the result is the float32 one and the fallback is counted once per such block.
Test(pr, float16_overflow_falls_back_to_float32_per_block) {
    float ref[8], smp[8];
    for (int i = 0; i < 8; i++) ref[i] = 10.f * (float)i, smp[i] = 10.f * (float)i + 3.f;
    ref[7] = smp[7] = 400.f;  // 400^2 = 160,000: the blocks holding point 7 overflow
    EvPrResult f32 = pr_on(KT_CPU, ref, 8, smp, 8, 1, 3, EV_PR_DIST_FP32, 4);
    EvPrResult f16 = pr_on(KT_CPU, ref, 8, smp, 8, 1, 3, EV_PR_DIST_FP16, 4);
    cr_expect_eq(f16.precision, f32.precision, "precision %g vs %g", f16.precision, f32.precision);
    cr_expect_eq(f16.recall, f32.recall, "recall %g vs %g", f16.recall, f32.recall);
    // blocks of 4: radii of each set (2 x 2 blocks, 3 with point 7) and the cross blocks (3 of 4): 3 + 3 + 3
    cr_expect_eq(f16.fp16_fallbacks, 9, "fallbacks %lld", (long long)f16.fp16_fallbacks);
}

// ------------------------------------------------------------------------------------------------ bad input
Test(pr, bad_input_is_a_clear_error) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    EvPrParams p = ev_pr_params_default();
    EvPrResult r;
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    expect_error(ev_precision_recall(&be, x, 3, x, 8, 1, &p, &r), KT_ERR_ARG, "precision/recall", "at least");
    x[5] = NAN;
    expect_error(ev_precision_recall(&be, x, 4, x, 8, 1, &p, &r), KT_ERR_ARG, "sample feature 5", "non-finite");
    p.k = 0;
    expect_error(ev_precision_recall(&be, x, 4, x, 4, 1, &p, &r), KT_ERR_ARG, "precision/recall", "k = 0");
    kt_backend_free(&be);
}
