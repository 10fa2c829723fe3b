// LlamaGen's token sampler: temperature, HuggingFace-style top-k / top-p filtering, softmax and the draw. Pure
// functions (see sampling.h); the only randomness is the Philox block of (seed, image, position, stream).
// ref: LlamaGen autoregressive/models/generate.py sample, logits_to_probs, top_k_top_p_filtering (from HF
//      transformers 3.2 generation_utils); spec: shared/spec/raster.md §6.3-6.4
// Dims: V vocabulary.
#include <math.h>

#include "bitmask.h"
#include "philox.h"
#include "sampling.h"

// Descending by value, ascending by index on ties.
static int before(const float *v, const int32_t *ix, int64_t a, int64_t b) {
    return v[a] > v[b] || (v[a] == v[b] && ix[a] < ix[b]);
}

static void swap_pair(float *v, int32_t *ix, int64_t a, int64_t b) {
    float t = v[a];
    v[a] = v[b];
    v[b] = t;
    int32_t u = ix[a];
    ix[a] = ix[b];
    ix[b] = u;
}

// Heap whose root is the entry that sorts last, so repeatedly moving the root to the end sorts in `before` order.
static void sift(float *v, int32_t *ix, int64_t root, int64_t n) {
    for (;;) {
        int64_t c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && before(v, ix, c, c + 1)) c++;
        if (!before(v, ix, root, c)) return;
        swap_pair(v, ix, root, c);
        root = c;
    }
}

static void sort_desc(float *v, int32_t *ix, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift(v, ix, i, n);
    for (int64_t end = n - 1; end > 0; end--) {
        swap_pair(v, ix, 0, end);
        sift(v, ix, 0, end);
    }
}

// HF top-p on the finite entries: softmax over them in descending order (max subtracted, double), then entry r >= 1
// is masked when the mass of entries 0..r-1 exceeds top_p. Masked (-inf) entries carry no mass and stay masked.
static void hf_top_p(float *logits, int64_t V, float top_p, float *sv, int32_t *si) {
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++)
        if (isfinite(logits[i])) {
            sv[n] = logits[i];
            si[n++] = (int32_t)i;
        }
    if (n < 2) return;
    sort_desc(sv, si, n);
    double m = sv[0], z = 0;
    for (int64_t r = 0; r < n; r++) z += exp((double)sv[r] - m);
    double cum = 0;
    for (int64_t r = 0; r < n; r++) {
        if (r > 0 && cum / z > (double)top_p) logits[si[r]] = -INFINITY;
        cum += exp((double)sv[r] - m);
    }
}

void smp_hf_filter_row(float *logits, int64_t V, SmpParams params, float *scratch_v, int32_t *scratch_i) {
    if (params.temperature != 1.0f) {
        float t = params.temperature > 1e-5f ? params.temperature : 1e-5f;
        for (int64_t i = 0; i < V; i++) logits[i] /= t;
    }
    if (params.top_k > 0) smp_top_k_mask(logits, V, params.top_k, scratch_v);  // k >= V keeps everything
    if (params.top_p < 1.0f) hf_top_p(logits, V, params.top_p, scratch_v, scratch_i);
}

void smp_hf_probs_row(float *probs, float *logits, int64_t V, SmpParams params, float *scratch_v, int32_t *scratch_i) {
    smp_hf_filter_row(logits, V, params, scratch_v, scratch_i);
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        if (logits[i] > m) m = logits[i];
    if (m == -INFINITY) {
        for (int64_t i = 0; i < V; i++) probs[i] = 0.0f;
        return;
    }
    double z = 0;
    for (int64_t i = 0; i < V; i++) {
        float l = logits[i];
        double e = (isnan(l) || l == -INFINITY) ? 0.0 : l == m ? 1.0 : exp((double)l - (double)m);
        probs[i] = (float)e;
        z += e;
    }
    float inv = (float)(1.0 / z);
    for (int64_t i = 0; i < V; i++) probs[i] *= inv;
}

int32_t smp_sample_hf_row(float *logits, int64_t V, SmpParams params, uint64_t image, uint32_t position,
                          float *scratch_v, int32_t *scratch_i) {
    smp_hf_filter_row(logits, V, params, scratch_v, scratch_i);
    SmpPhilox4 r = smp_rng_block(params.seed, image, position, SMP_STREAM_TOKEN);
    return smp_categorical(logits, V, smp_u53(r.v[0], r.v[1]));
}

int32_t smp_draw_probs(const float *probs, int64_t V, double u) {
    // The positive entries in index order, 64 at a time (bitmask.h): the same double additions as a plain scan.
    // The running total after each block is kept (rows up to MAXB blocks): running sums only grow, so the draw lies
    // in the first block whose total passes the target, and the second pass starts there with the same sum.
    enum { MAXB = 1024 };
    double ends[MAXB];
    double total = 0;
    int64_t last = -1, nb = (V + 63) / 64;
    for (int64_t b = 0; b < nb; b++) {
        for (uint64_t m = smp_bits_positive(probs + b * 64, V - b * 64 < 64 ? V - b * 64 : 64); m; m &= m - 1) {
            last = b * 64 + smp_lowest_bit(m);
            total += probs[last];
        }
        if (b < MAXB) ends[b] = total;
    }
    if (!(total > 0)) return -1;
    double target = u * total, cum = 0;
    int64_t b = 0;
    if (nb <= MAXB) {
        while (b < nb && !(ends[b] > target)) b++;
        if (b == nb) return (int32_t)last;  // rounding at the top (or a NaN target): the last weighted entry
        cum = b ? ends[b - 1] : 0;
    }
    for (; b < nb; b++)
        for (uint64_t m = smp_bits_positive(probs + b * 64, V - b * 64 < 64 ? V - b * 64 : 64); m; m &= m - 1) {
            int64_t i = b * 64 + smp_lowest_bit(m);
            cum += probs[i];
            if (cum > target) return (int32_t)i;
        }
    return (int32_t)last;
}
