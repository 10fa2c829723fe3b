// Feature statistics for FID / sFID / IS, accumulated in double precision as exact sums so that partial results
// (shards, batches) merge exactly: n, the column sums and the sums of outer products (spec/fid.md section 2), plus
// per-split softmax sums for the Inception Score (section 4). mu and the unbiased covariance are derived from the
// sums in double; stats files are .npz with mu/sigma (and mu_s/sigma_s: what pytorch-fid and the ADM evaluator read).
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kernels/status.h"

#define EV_IS_SPLITS 10

// Moments of a set of D-dimensional feature vectors.
typedef struct {
    int D;
    int64_t n;
    double *sum;    // (D)
    double *outer;  // (D, D) sum of x x^T (both triangles kept equal)
} EvMoments;

KtStatus ev_moments_init(EvMoments *m, int D);
void ev_moments_free(EvMoments *m);
// Adds B rows of float32 features x (B, D). Products of float32 values are exact in double; only the sums round.
KtStatus ev_moments_add(EvMoments *m, const float *x, int64_t B);
// m += o (same D).
KtStatus ev_moments_merge(EvMoments *m, const EvMoments *o);
// mu (D) and the unbiased covariance sigma (D, D) = (outer - n mu mu^T) / (n - 1); needs n >= 2.
KtStatus ev_moments_finish(const EvMoments *m, double *mu, double *sigma);

// Inception Score accumulator over `total` samples in file order: sample i belongs to split
// floor(i * EV_IS_SPLITS / total) (contiguous equal chunks; 5,000 per split for 50,000 samples, as ADM's evaluator).
typedef struct {
    int64_t total;
    int C;                            // classes (1008)
    int64_t count[EV_IS_SPLITS];
    double plogp[EV_IS_SPLITS];       // sum_i sum_c p_ic log p_ic
    double *psum;                     // (EV_IS_SPLITS, C) sum_i p_ic
} EvIsAcc;

KtStatus ev_is_init(EvIsAcc *a, int64_t total, int C);
void ev_is_free(EvIsAcc *a);
// Adds the logits (B, C) of samples first_index .. first_index + B - 1 (p = softmax in double; 0 log 0 = 0).
KtStatus ev_is_add(EvIsAcc *a, const float *logits, int64_t B, int64_t first_index);
KtStatus ev_is_merge(EvIsAcc *a, const EvIsAcc *o);
// Mean and (population) standard deviation of exp(mean_i KL(p_i || q)) over the non-empty splits.
KtStatus ev_is_score(const EvIsAcc *a, double *mean, double *std);

// Everything `argen fid` gathers about one sample set.
typedef struct {
    EvMoments pool3;      // D = 2048 (FID)
    EvMoments spatial;    // D = 2023 (sFID); D = 0 when absent
    EvIsAcc is;           // C = 0 when absent (e.g. reference statistics)
    // reference statistics read from a file that holds only mu/sigma (no sums): used for FID, never merged
    bool fixed;
    double *mu, *sigma, *mu_s, *sigma_s;  // owned; mu_s/sigma_s may be NULL
    int D, D_s;
    int64_t n_fixed;      // n from the file, or -1 when unknown
} EvFeatureStats;

KtStatus ev_stats_init(EvFeatureStats *s, int D, int D_s, int64_t is_total, int is_classes);
void ev_stats_free(EvFeatureStats *s);
int64_t ev_stats_count(const EvFeatureStats *s);
// mu/sigma (and mu_s/sigma_s when present) in malloc'd arrays; from the sums or the fixed arrays.
KtStatus ev_stats_mu_sigma(const EvFeatureStats *s, bool spatial, double **mu, double **sigma);

// Saves to .npz (atomic). partial: the exact sums (n, sum, outer, sum_s, outer_s, is_*) for ev_stats_merge /
// `argen fid-merge`; otherwise mu, sigma, mu_s, sigma_s (float64), n, and the small is_* arrays.
KtStatus ev_stats_save(const EvFeatureStats *s, const char *path, bool partial);
// Loads a stats .npz: our partial files (sums), our full files, pytorch-fid's (mu, sigma) and ADM reference
// batches (mu, sigma, mu_s, sigma_s; arr_0 is ignored). Files without sums load as `fixed`.
KtStatus ev_stats_load(EvFeatureStats *s, const char *path);
// True when the file is a stats file (has mu or sum), not a sample batch.
KtStatus ev_stats_is_stats_file(const char *path, bool *yes);
// s += o. Both must carry sums (partial files or freshly computed sets); IS accumulators must share `total`.
KtStatus ev_stats_merge(EvFeatureStats *s, const EvFeatureStats *o, const char *what);
