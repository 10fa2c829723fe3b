// argen bench --arch pr: precision and recall over synthetic pool3 features (no Inception network runs).
// The features imitate pool3's: averages of ReLU outputs, non-negative, mostly small, a few large.
#include <stdio.h>
#include <stdlib.h>

#include "bench_pr.h"
#include "commands.h"
#include "eval/precision_recall.h"
#include "samplers/philox.h"

enum { FEATURES = 2048 };

static float *synthetic_features(int64_t n, uint64_t seed) {
    float *x = malloc((size_t)n * FEATURES * sizeof *x);
    if (!x) return NULL;
    for (int64_t i = 0; i < n; i++)
        for (int d = 0; d < FEATURES; d += 4) {
            SmpPhilox4 r = smp_rng_block(seed, (uint64_t)i, (uint32_t)d, 0);
            for (int j = 0; j < 4; j++) {
                float u = (float)r.v[j] / 4294967296.0f;
                x[i * FEATURES + d + j] = u * u * u * 2.0f;  // in [0, 2), most mass near 0
            }
        }
    return x;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

KtStatus bench_precision_recall(KtBackend *be, int64_t n_smp, int64_t n_ref, int reps) {
    float *smp = synthetic_features(n_smp, 1), *ref = synthetic_features(n_ref, 2);
    double *t = malloc((size_t)reps * sizeof *t);
    KtStatus st = smp && ref && t ? KT_OK : KT_FAIL(KT_ERR_OOM, "bench: out of memory for %lld + %lld features",
                                                    (long long)n_smp, (long long)n_ref);
    if (st == KT_OK)
        printf("argen bench: precision/recall (k = 3) of %lld samples against %lld reference points, %d features, "
               "median of %d; %s\n| distances | seconds | precision | recall |\n|---|---|---|---|\n",
               (long long)n_smp, (long long)n_ref, FEATURES, reps, be->name);
    for (int mode = 0; mode < 2 && st == KT_OK; mode++) {
        EvPrParams p = ev_pr_params_default();
        p.dist = mode ? EV_PR_DIST_FP16 : EV_PR_DIST_FP32;
        EvPrResult r = {0};
        for (int i = 0; i < reps && st == KT_OK; i++) {
            double t0 = cli_now();
            st = ev_precision_recall(be, ref, n_ref, smp, n_smp, FEATURES, &p, &r);
            t[i] = cli_now() - t0;
        }
        if (st != KT_OK) break;
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        printf("| %s | %.2f | %.4f | %.4f |\n", mode ? "fp16 (ADM)" : "fp32", t[reps / 2], r.precision, r.recall);
        fflush(stdout);
    }
    free(smp), free(ref), free(t);
    return st;
}
