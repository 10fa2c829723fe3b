// Token samplers (see sampling.h): temperature, VAR's top-k / top-p masking, the inverse-CDF categorical draw and
// the more_smooth Gumbel-softmax latent. Pure functions: no allocation, no globals; the only randomness is the
// Philox block of (seed, image, position, stream) from philox.h.
// ref: VAR models/helpers.py sample_with_top_k_top_p_, gumbel_softmax_with_rng; models/var.py
//      autoregressive_infer_cfg (more_smooth branch)
// Dims: V vocabulary, D code dim.
#include "sampling.h"

#include <math.h>

#include "philox.h"

SmpParams smp_params_default(void) {
    SmpParams p = {.seed = 0, .top_k = 0, .top_p = 0.0f, .temperature = 1.0f};
    return p;
}

// ------------------------------------------------------------------------------------------------------- top-k
static void swapf(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

static float median3(float a, float b, float c) {
    if (a > b) swapf(&a, &b);
    if (b > c) swapf(&b, &c);
    if (a > b) swapf(&a, &b);
    return b;
}

// The k-th smallest (0-based) of a[0..n), reordering `a`. Three-way partitioning around a value taken from the
// range keeps the loop finite with any amount of duplicates (e.g. many -inf from earlier masking). NaN-free input.
static float select_kth(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float p = median3(a[lo], a[lo + (hi - lo) / 2], a[hi]);
        int64_t lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            if (a[i] < p)
                swapf(&a[lt++], &a[i++]);
            else if (a[i] > p)
                swapf(&a[i], &a[gt--]);
            else
                i++;
        }
        if (k < lt)
            hi = lt - 1;
        else if (k > gt)
            lo = gt + 1;
        else
            return p;
    }
    return a[lo];
}

// Keeps every logit >= the k-th largest (ties at the threshold survive, as torch's `logits < topk(...).amin()`).
// NaN counts as -inf for the threshold and is masked.
void smp_top_k_mask(float *logits, int64_t V, int k, float *scratch) {
    if (k <= 0 || (int64_t)k >= V) return;
    for (int64_t i = 0; i < V; i++) scratch[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    float th = select_kth(scratch, V, V - k);
    for (int64_t i = 0; i < V; i++)
        if (!(logits[i] >= th)) logits[i] = -INFINITY;
}

// ------------------------------------------------------------------------------------------------------- top-p
// Ascending by (value, index): ties keep index order, so the result never depends on a sort's stability.
static int pair_less(const float *v, const int32_t *ix, int64_t a, int64_t b) {
    return v[a] < v[b] || (v[a] == v[b] && ix[a] < ix[b]);
}

static void pair_swap(float *v, int32_t *ix, int64_t a, int64_t b) {
    swapf(&v[a], &v[b]);
    int32_t t = ix[a];
    ix[a] = ix[b];
    ix[b] = t;
}

static void sift_down(float *v, int32_t *ix, int64_t root, int64_t n) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && pair_less(v, ix, c, c + 1)) c++;
        if (!pair_less(v, ix, root, c)) return;
        pair_swap(v, ix, root, c);
        root = c;
    }
}

// In-place heapsort of (v, ix) pairs: O(n log n), no recursion, no allocation.
static void sort_pairs(float *v, int32_t *ix, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(v, ix, i, n);
    for (int64_t end = n - 1; end > 0; end--) {
        pair_swap(v, ix, 0, end);
        sift_down(v, ix, 0, end);
    }
}

// VAR's nucleus filter: the finite logits sorted ascending, softmax in that order (max subtracted, double), the
// cumulative probability (the running sum of exp terms, divided by the total: as the CUDA sampler's scan, so exactly
// tied logits give exact fractions on both); entries whose cumulative probability is <= 1 - top_p are masked, except
// the largest. Non-finite entries are left as they are (masked -inf entries carry no probability).
void smp_top_p_mask(float *logits, int64_t V, float top_p, float *scratch_v, int32_t *scratch_i) {
    if (!(top_p > 0.0f) || top_p >= 1.0f) return;
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++)
        if (isfinite(logits[i])) {
            scratch_v[n] = logits[i];
            scratch_i[n++] = (int32_t)i;
        }
    if (n < 2) return;
    sort_pairs(scratch_v, scratch_i, n);
    double m = scratch_v[n - 1], z = 0;
    for (int64_t j = 0; j < n; j++) z += exp((double)scratch_v[j] - m);
    double thr = 1.0 - (double)top_p, cum = 0;
    for (int64_t j = 0; j < n - 1; j++) {
        cum += exp((double)scratch_v[j] - m);
        if (cum / z > thr) break;  // the cumulative sum only grows
        logits[scratch_i[j]] = -INFINITY;
    }
}

// --------------------------------------------------------------------------------------------------- the draw
// exp(l - max) in double; the maximum itself weighs exactly 1 (also when it is +inf); NaN and -inf weigh 0.
static double cat_weight(float l, float m) {
    if (isnan(l) || l == -INFINITY) return 0.0;
    if (l == m) return 1.0;
    return exp((double)l - (double)m);
}

int32_t smp_categorical(const float *logits, int64_t V, double u) {
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (logits[i] > m) m = logits[i];
    if (m == -INFINITY) return -1;
    double total = 0;
    for (int64_t i = 0; i < V; i++) total += cat_weight(logits[i], m);
    double target = u * total, cum = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < V; i++) {
        double w = cat_weight(logits[i], m);
        if (w <= 0) continue;
        cum += w;
        last = i;
        if (cum > target) return (int32_t)i;
    }
    return (int32_t)last;  // rounding left u * total at or above the final sum: the last drawable entry
}

int32_t smp_sample_row(float *logits, int64_t V, SmpParams params, uint64_t image, uint32_t position,
                       float *scratch_v, int32_t *scratch_i) {
    if (params.temperature > 0.0f && params.temperature != 1.0f)
        for (int64_t i = 0; i < V; i++) logits[i] /= params.temperature;
    smp_top_k_mask(logits, V, params.top_k, scratch_v);
    smp_top_p_mask(logits, V, params.top_p, scratch_v, scratch_i);
    SmpPhilox4 r = smp_rng_block(params.seed, image, position, SMP_STREAM_TOKEN);
    return smp_categorical(logits, V, smp_u53(r.v[0], r.v[1]));
}

// ------------------------------------------------------------------------------------------------ more_smooth
// w = softmax((logits * (1 + ratio) + g) / tau) with g = -log(-log(u)), u from word v%4 of the Gumbel stream block
// v/4; masked (-inf or NaN) logits get weight 0 and consume no noise. h = w @ codebook, accumulated in double.
void smp_smooth_embed_row(float *h, const float *logits, const float *codebook, int64_t V, int64_t D, float ratio,
                          uint64_t seed, uint64_t image, uint32_t position, float *w) {
    float mul = (float)(1.0 + (double)ratio);
    double tau_d = 0.27 * (1.0 - 0.95 * (double)ratio);
    float tau = (float)(tau_d > 0.005 ? tau_d : 0.005);
    float m = -INFINITY;
    SmpPhilox4 blk = {{0, 0, 0, 0}};
    for (int64_t v = 0; v < V; v++) {
        if (v % 4 == 0) blk = smp_rng_block(seed, image, position, (uint32_t)(SMP_STREAM_GUMBEL + v / 4));
        float l = logits[v];
        if (isnan(l) || l == -INFINITY) {
            w[v] = -INFINITY;
            continue;
        }
        float g = -logf(-logf(smp_u24_open(blk.v[v % 4])));
        w[v] = (l * mul + g) / tau;
        if (w[v] > m) m = w[v];
    }
    for (int64_t d = 0; d < D; d++) h[d] = 0;
    if (m == -INFINITY) return;
    double z = 0;
    for (int64_t v = 0; v < V; v++) {
        double e = w[v] == -INFINITY ? 0.0 : w[v] == m ? 1.0 : exp((double)w[v] - (double)m);
        w[v] = (float)e;
        z += e;
    }
    double acc[64];
    for (int64_t d0 = 0; d0 < D; d0 += 64) {
        int64_t nd = D - d0 < 64 ? D - d0 : 64;
        for (int64_t d = 0; d < nd; d++) acc[d] = 0;
        for (int64_t v = 0; v < V; v++) {
            if (w[v] == 0.0f) continue;
            double p = (double)w[v] / z;
            const float *e = codebook + v * D + d0;
            for (int64_t d = 0; d < nd; d++) acc[d] += p * e[d];
        }
        for (int64_t d = 0; d < nd; d++) h[d0 + d] = (float)acc[d];
    }
}
