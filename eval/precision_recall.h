// Improved precision and recall (Kynkaanniemi et al. 2019) of a sample set against a reference set, as the ADM
// evaluator computes them on pool3 features (guided-diffusion evaluations/evaluator.py: ManifoldEstimator with
// nhood_sizes (3,), DistanceBlock; spec/fid.md section 3.2):
//   d(u, v)   = max(|u|^2 - 2 u.v + |v|^2, 0)    squared Euclidean distance (no square root anywhere)
//   r(u)      = the (k+1)-th smallest d(u, w) over w in u's own set, u itself included: its k-th nearest neighbour
//   precision = the fraction of samples s with d(f, s) <= r(f) for at least one reference point f
//   recall    = the fraction of reference points f with d(f, s) <= r(s) for at least one sample s
// The dot products run through the backend's float32 GEMM (kt_linear) a block of rows by a block of columns at a
// time; the distances, the radii and the comparisons run on the host (OpenMP over rows).
#pragma once

#include <stdint.h>

#include "kernels/backend.h"

typedef enum {
    EV_PR_DIST_FP32 = 0,  // float32 distances (the default: the spec's advice)
    EV_PR_DIST_FP16 = 1,  // the ADM evaluator's: features, norms, dot products and each step of the distance formula
                          // rounded to float16; a block holding a non-finite distance is redone in float32
} EvPrDistances;

typedef struct {
    int k;               // neighbourhood size (the ADM evaluator: 3)
    EvPrDistances dist;
    int64_t block;       // rows (and columns) per distance block; 0: 4096 in float32, 10,000 in float16 (the
                         // evaluator's blocks, which its float32 fallback is per)
} EvPrParams;

typedef struct {
    double precision, recall;
    int64_t n_ref, n_smp;
    int64_t fp16_fallbacks;  // EV_PR_DIST_FP16: blocks redone in float32 (a distance beyond float16's range)
} EvPrResult;

// ADM's settings: k = 3, float32 distances, default blocks.
EvPrParams ev_pr_params_default(void);

// The pairwise distances d (na, nb) between the points of a (na, D) and b (nb, D) as the computation above makes
// them (one block: for small sets, tests and inspection); *fallbacks (may be NULL): 1 if float16 fell back.
KtStatus ev_pr_distances(KtBackend *be, const float *a, int64_t na, const float *b, int64_t nb, int D,
                         EvPrDistances dist, float *d, int64_t *fallbacks);

// ref (n_ref, D) and smp (n_smp, D): row-major float32 on the host; each set needs at least k + 1 points.
KtStatus ev_precision_recall(KtBackend *be, const float *ref, int64_t n_ref, const float *smp, int64_t n_smp, int D,
                             const EvPrParams *p, EvPrResult *out);
