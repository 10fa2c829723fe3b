// Improved precision and recall as the ADM evaluator computes them (see precision_recall.h).
// ref: guided-diffusion evaluations/evaluator.py ManifoldEstimator.manifold_radii / evaluate_pr,
//      DistanceBlock / _batch_pairwise_distances; spec/fid.md section 3.2
// Dims: D features per point; a block is up to `block` rows of one set by up to `block` rows of the other.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PR_X86 1
#endif

#include "kernels/ops.h"
#include "precision_recall.h"

EvPrParams ev_pr_params_default(void) { return (EvPrParams){.k = 3, .dist = EV_PR_DIST_FP32, .block = 0}; }

static float round16(float x) { return kt_f16_to_f32(kt_f32_to_f16(x)); }

// x[i] = round16(x[i]) for a row: 8 at a time with the F16C conversions where the CPU has them (the same
// round-to-nearest-even, overflow to infinity and subnormals as the software conversion), else one by one.
#ifdef PR_X86
__attribute__((target("avx,f16c"))) static int64_t round16_f16c(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    return i;
}
#endif

static void round16_row(float *x, int64_t n) {
    int64_t i = 0;
#ifdef PR_X86
    if (__builtin_cpu_supports("f16c")) i = round16_f16c(x, n);
#endif
    for (; i < n; i++) x[i] = round16(x[i]);
}

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ------------------------------------------------------------------------------------------------- one set
typedef struct {
    const float *x;  // (n, D)
    int64_t n;
    float *norm;     // (n) |x|^2: summed in double, rounded once to float32
    float *norm16;   // (n) float16 mode: float16(the float32 sum of float16(x16 * x16)), x16 = float16(x)
} PrSet;

static KtStatus set_init(PrSet *s, const float *x, int64_t n, int D, bool fp16, const char *what) {
    memset(s, 0, sizeof *s);
    s->x = x, s->n = n;
    s->norm = malloc((size_t)n * sizeof *s->norm);
    s->norm16 = fp16 ? malloc((size_t)n * sizeof *s->norm16) : NULL;
    if (!s->norm || (fp16 && !s->norm16))
        return KT_FAIL(KT_ERR_OOM, "precision/recall: out of memory for %lld %s norms", (long long)n, what);
    float *sq = fp16 ? malloc((size_t)D * sizeof *sq) : NULL;  // a row's float16 squares
    if (fp16 && !sq) return KT_FAIL(KT_ERR_OOM, "precision/recall: out of memory");
    KtStatus st = KT_OK;
    for (int64_t i = 0; i < n && st == KT_OK; i++) {
        const float *r = x + i * D;
        double sum = 0;
        for (int d = 0; d < D; d++) {
            if (!isfinite(r[d])) {
                st = KT_FAIL(KT_ERR_ARG, "precision/recall: %s feature %lld has a non-finite value (%g) at %d", what,
                             (long long)i, (double)r[d], d);
                break;
            }
            sum += (double)r[d] * r[d];
        }
        s->norm[i] = (float)sum;
        if (!fp16 || st != KT_OK) continue;
        memcpy(sq, r, (size_t)D * sizeof *sq);
        round16_row(sq, D);  // x16
        for (int d = 0; d < D; d++) sq[d] *= sq[d];
        round16_row(sq, D);  // square(x16)
        float sum16 = 0.f;
        for (int d = 0; d < D; d++) sum16 += sq[d];
        s->norm16[i] = round16(sum16);
    }
    free(sq);
    return st;
}

static void set_free(PrSet *s) {
    free(s->norm);
    free(s->norm16);
}

// ---------------------------------------------------------------------------------------- distance blocks
typedef struct {
    KtBackend *be;
    int D;
    int64_t block;
    bool fp16;
    KtArena arena;
    KtTensor rows, cols, dots;  // backend: (block, D), (block, D), (block * block)
    float *stage;               // host (block, D): a block rounded to float16 (float16 mode)
    float *d;                   // host (block, block): the current block's distances, row-major
    int64_t fallbacks;
} PrBlocks;

static KtStatus blocks_carve(PrBlocks *b, KtArena *a) {
    KT_TRY(kt_arena_tensor(a, &b->rows, KT_F32, 2, (int64_t[]){b->block, b->D}, "precision/recall row block"));
    KT_TRY(kt_arena_tensor(a, &b->cols, KT_F32, 2, (int64_t[]){b->block, b->D}, "precision/recall column block"));
    return kt_arena_tensor(a, &b->dots, KT_F32, 1, (int64_t[]){b->block * b->block}, "precision/recall distances");
}

static KtStatus blocks_init(PrBlocks *b, KtBackend *be, int D, int64_t block, bool fp16) {
    memset(b, 0, sizeof *b);
    b->be = be, b->D = D, b->block = block, b->fp16 = fp16;
    KtArena sizing;
    kt_arena_measure(&sizing);
    KT_TRY(blocks_carve(b, &sizing));
    KT_TRY(kt_arena_init(&b->arena, be, sizing.used));
    KT_TRY(blocks_carve(b, &b->arena));
    b->d = malloc((size_t)(block * block) * sizeof *b->d);
    b->stage = fp16 ? malloc((size_t)block * (size_t)D * sizeof *b->stage) : NULL;
    if (!b->d || (fp16 && !b->stage))
        return KT_FAIL(KT_ERR_OOM, "precision/recall: out of memory for %lld x %lld distance blocks",
                       (long long)block, (long long)block);
    return KT_OK;
}

static void blocks_free(PrBlocks *b) {
    kt_arena_free(&b->arena);
    free(b->d);
    free(b->stage);
}

// Uploads points [first, first + n) of s into t (rounded to float16 first when half).
static KtStatus upload_points(PrBlocks *b, KtTensor *t, const PrSet *s, int64_t first, int64_t n, bool half) {
    KtTensor v = kt_slice0(t, 0, n);
    const float *src = s->x + first * b->D;
    if (half) {
        memcpy(b->stage, src, (size_t)(n * b->D) * sizeof *src);
        round16_row(b->stage, n * b->D);
        src = b->stage;
    }
    return kt_upload(b->be, &v, src);
}

// b->d (na, nb) = the dot products of points [a0, a0 + na) of A with points [b0, b0 + nb) of B.
static KtStatus dots(PrBlocks *b, const PrSet *A, int64_t a0, int64_t na, const PrSet *B, int64_t b0, int64_t nb,
                     bool half) {
    KT_TRY(upload_points(b, &b->rows, A, a0, na, half));
    KT_TRY(upload_points(b, &b->cols, B, b0, nb, half));
    KtTensor x = kt_slice0(&b->rows, 0, na), w = kt_slice0(&b->cols, 0, nb);
    KtTensor flat = kt_slice0(&b->dots, 0, na * nb), y = kt_reshape2(&flat, na, nb);
    KT_TRY(kt_linear(b->be, &y, &x, &w, NULL));
    return kt_download(b->be, b->d, &y);
}

// b->d (na, nb): squared distances between the two blocks, max((|a|^2 - 2 a.b) + |b|^2, 0) in the evaluator's order
// of operations, in float32 or with every step rounded to float16 (then a block with a non-finite distance is done
// again in float32, as the evaluator's tf.cond does).
static KtStatus distances(PrBlocks *b, const PrSet *A, int64_t a0, int64_t na, const PrSet *B, int64_t b0,
                          int64_t nb) {
    bool half = b->fp16;
    if (half) {
        KT_TRY(dots(b, A, a0, na, B, b0, nb, true));
        int finite = 1;
#pragma omp parallel for schedule(static) reduction(&& : finite)
        for (int64_t i = 0; i < na; i++) {  // each step over the row, then the row rounded
            float *row = b->d + i * nb, ni = A->norm16[a0 + i];
            const float *nj = B->norm16 + b0;
            round16_row(row, nb);  // mm
            for (int64_t j = 0; j < nb; j++) row[j] *= 2.f;
            round16_row(row, nb);  // 2 * mm (may overflow to infinity)
            for (int64_t j = 0; j < nb; j++) row[j] = ni - row[j];
            round16_row(row, nb);  // norm_u - 2 * mm
            for (int64_t j = 0; j < nb; j++) row[j] += nj[j];
            round16_row(row, nb);  // + norm_v
            for (int64_t j = 0; j < nb; j++) {
                row[j] = row[j] < 0.f ? 0.f : row[j];  // tf.maximum(x, 0): a NaN stays NaN (and fails the check)
                finite = finite && isfinite(row[j]);
            }
        }
        if (finite) return KT_OK;
        b->fallbacks++;
        half = false;
    }
    KT_TRY(dots(b, A, a0, na, B, b0, nb, false));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < na; i++) {
        float *row = b->d + i * nb, ni = A->norm[a0 + i];
        for (int64_t j = 0; j < nb; j++) {
            float dist = (ni - 2.f * row[j]) + B->norm[b0 + j];
            row[j] = dist < 0.f ? 0.f : dist;
        }
    }
    return KT_OK;
}

// -------------------------------------------------------------------------------------------------- radii
// r[i] = the (k+1)-th smallest distance from point i of s to the points of s (itself included): each row keeps its
// k + 1 smallest distances so far, sorted, over the column blocks.
static KtStatus radii(PrBlocks *b, const PrSet *s, int k, float *r) {
    int K = k + 1;
    float *best = malloc((size_t)s->n * (size_t)K * sizeof *best);
    if (!best) return KT_FAIL(KT_ERR_OOM, "precision/recall: out of memory for the radii of %lld points", (long long)s->n);
    for (int64_t i = 0; i < s->n * K; i++) best[i] = INFINITY;
    KtStatus st = KT_OK;
    for (int64_t a0 = 0; a0 < s->n && st == KT_OK; a0 += b->block) {
        int64_t na = s->n - a0 < b->block ? s->n - a0 : b->block;
        for (int64_t b0 = 0; b0 < s->n && st == KT_OK; b0 += b->block) {
            int64_t nb = s->n - b0 < b->block ? s->n - b0 : b->block;
            if ((st = distances(b, s, a0, na, s, b0, nb)) != KT_OK) break;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < na; i++) {
                float *kept = best + (a0 + i) * K;
                const float *row = b->d + i * nb;
                for (int64_t j = 0; j < nb; j++) {
                    float v = row[j];
                    if (!(v < kept[K - 1])) continue;
                    int p = K - 1;
                    for (; p > 0 && kept[p - 1] > v; p--) kept[p] = kept[p - 1];
                    kept[p] = v;
                }
            }
        }
    }
    for (int64_t i = 0; i < s->n; i++) r[i] = best[i * K + k];
    free(best);
    return st;
}

// ------------------------------------------------------------------------------------- precision and recall
// ref_in[f] |= d(f, s) <= r_smp[s] for some sample s of the block; smp_in[s] |= d(f, s) <= r_ref[f] for some f.
// Rows (reference points) are split over the threads; each thread marks samples in its own flags (`mine`, one
// block's worth per thread), ORed in afterwards.
static void mark_block(const float *d, int64_t a0, int64_t na, int64_t b0, int64_t nb, const float *r_ref,
                       const float *r_smp, uint8_t *ref_in, uint8_t *smp_in, uint8_t *mine_all) {
#pragma omp parallel
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        uint8_t *mine = mine_all + (size_t)t * (size_t)nb;
        memset(mine, 0, (size_t)nb);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < na; i++) {
            const float *row = d + i * nb;
            float rf = r_ref[a0 + i];
            bool in = false;
            for (int64_t j = 0; j < nb; j++) {
                in |= row[j] <= r_smp[b0 + j];
                mine[j] |= row[j] <= rf;
            }
            if (in) ref_in[a0 + i] = 1;
        }
#pragma omp critical
        for (int64_t j = 0; j < nb; j++) smp_in[b0 + j] |= mine[j];
    }
}

static double fraction(const uint8_t *flags, int64_t n) {
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++) c += flags[i] != 0;
    return (double)c / (double)n;
}

KtStatus ev_pr_distances(KtBackend *be, const float *a, int64_t na, const float *b, int64_t nb, int D,
                         EvPrDistances dist, float *d, int64_t *fallbacks) {
    if (na < 1 || nb < 1 || D < 1)
        return KT_FAIL(KT_ERR_ARG, "pairwise distances: %lld x %lld points of %d features", (long long)na,
                       (long long)nb, D);
    bool fp16 = dist == EV_PR_DIST_FP16;
    PrSet A = {0}, B = {0};
    PrBlocks blk = {0};
    KtStatus st = set_init(&A, a, na, D, fp16, "first set's");
    if (st == KT_OK) st = set_init(&B, b, nb, D, fp16, "second set's");
    if (st == KT_OK) st = blocks_init(&blk, be, D, na > nb ? na : nb, fp16);
    if (st == KT_OK) st = distances(&blk, &A, 0, na, &B, 0, nb);
    if (st == KT_OK) {
        memcpy(d, blk.d, (size_t)(na * nb) * sizeof *d);
        if (fallbacks) *fallbacks = blk.fallbacks;
    }
    blocks_free(&blk);
    set_free(&A);
    set_free(&B);
    return st;
}

KtStatus ev_precision_recall(KtBackend *be, const float *ref, int64_t n_ref, const float *smp, int64_t n_smp, int D,
                             const EvPrParams *p, EvPrResult *out) {
    memset(out, 0, sizeof *out);
    if (p->k < 1) return KT_FAIL(KT_ERR_ARG, "precision/recall: neighbourhood size k = %d, expected >= 1", p->k);
    if (D < 1) return KT_FAIL(KT_ERR_ARG, "precision/recall: %d features per point", D);
    if (n_ref < p->k + 1 || n_smp < p->k + 1)
        return KT_FAIL(KT_ERR_ARG, "precision/recall: %lld reference and %lld sample points; each set needs at least "
                       "k + 1 = %d (a point's radius is the distance to its k-th nearest neighbour)",
                       (long long)n_ref, (long long)n_smp, p->k + 1);
    bool fp16 = p->dist == EV_PR_DIST_FP16;
    int64_t block = p->block > 0 ? p->block : fp16 ? 10000 : 4096;
    int64_t n_max = n_ref > n_smp ? n_ref : n_smp;
    if (block > n_max) block = n_max;  // the same blocks, less memory
    PrSet R = {0}, S = {0};
    PrBlocks b = {0};
    float *r_ref = malloc((size_t)n_ref * sizeof *r_ref), *r_smp = malloc((size_t)n_smp * sizeof *r_smp);
    uint8_t *ref_in = calloc((size_t)n_ref, 1), *smp_in = calloc((size_t)n_smp, 1);
    uint8_t *mine = malloc((size_t)max_threads() * (size_t)block);
    KtStatus st = set_init(&R, ref, n_ref, D, fp16, "reference");
    if (st == KT_OK) st = set_init(&S, smp, n_smp, D, fp16, "sample");
    if (st == KT_OK && (!r_ref || !r_smp || !ref_in || !smp_in || !mine))
        st = KT_FAIL(KT_ERR_OOM, "precision/recall: out of memory for %lld + %lld points", (long long)n_ref,
                     (long long)n_smp);
    if (st == KT_OK) st = blocks_init(&b, be, D, block, fp16);
    if (st == KT_OK) st = radii(&b, &R, p->k, r_ref);
    if (st == KT_OK) st = radii(&b, &S, p->k, r_smp);
    for (int64_t a0 = 0; a0 < n_ref && st == KT_OK; a0 += block) {
        int64_t na = n_ref - a0 < block ? n_ref - a0 : block;
        for (int64_t b0 = 0; b0 < n_smp && st == KT_OK; b0 += block) {
            int64_t nb = n_smp - b0 < block ? n_smp - b0 : block;
            st = distances(&b, &R, a0, na, &S, b0, nb);
            if (st == KT_OK) mark_block(b.d, a0, na, b0, nb, r_ref, r_smp, ref_in, smp_in, mine);
        }
    }
    if (st == KT_OK) {
        out->precision = fraction(smp_in, n_smp);
        out->recall = fraction(ref_in, n_ref);
        out->n_ref = n_ref, out->n_smp = n_smp;
        out->fp16_fallbacks = b.fallbacks;
    }
    blocks_free(&b);
    set_free(&R);
    set_free(&S);
    free(r_ref), free(r_smp), free(ref_in), free(smp_in), free(mine);
    return st;
}
