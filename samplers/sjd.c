// Speculative Jacobi decoding: window proposal, acceptance test, residual draw, draft recycling (see sjd.h).
// ref: tyshiwo1/Accelerating-T2I-AR-with-SJD scheduler/jacobi_iteration_lumina_mgpt.py; spec: decoding.md §1.2-1.6
// Dims: N tokens, V vocabulary, L window, W the current window (<= L), n accepted tokens, k tokens committed by a
//       step, j a window row.
#include "sjd.h"

#include <string.h>

#include "bitmask.h"
#include "philox.h"
#include "sampling.h"

// Purposes within an iteration's stream (SMP_STREAM_DECODING + 4 * iteration + purpose).
enum { DRAW_Y = 0, DRAW_ACCEPT = 1, DRAW_RESIDUAL = 2, DRAW_INIT = 3 };

static double uniform(const SmpSjd *s, int64_t index, uint32_t iter, int purpose) {
    SmpPhilox4 r = smp_rng_block(s->p.seed, s->image, (uint32_t)index,
                                 (uint32_t)SMP_STREAM_DECODING + 4u * iter + (uint32_t)purpose);
    return smp_u53(r.v[0], r.v[1]);
}

int64_t smp_sjd_floats(const SmpSjdParams *p) { return (int64_t)p->window * p->V; }

const char *smp_sjd_check(const SmpSjdParams *p) {
    if (p->window < 1) return "the SJD window must be at least 1";
    if (p->V < 1 || p->N < 1) return "empty vocabulary or token grid";
    if (p->N > 0x3fffffff || p->V > 0x7fffffff) return "token grid or vocabulary too large";
    if ((p->init == SMP_SJD_INIT_REPEAT_HORIZON || p->init == SMP_SJD_INIT_SAMPLE_HORIZON) && p->grid_w < 1)
        return "horizontal draft initialisation needs the grid width";
    return 0;
}

void smp_sjd_start(SmpSjd *s, const SmpSjdParams *p, uint64_t image, const float *p0, int32_t *tokens, float *fbuf,
                   int32_t *draft, uint8_t *onehot) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->image = image;
    s->tokens = tokens;
    s->q = fbuf;
    s->last_p = fbuf + (int64_t)(p->window - 1) * p->V;
    s->draft = draft;
    s->onehot = onehot;
    SmpPhilox4 r = smp_rng_block(p->seed, image, 0, SMP_STREAM_TOKEN);
    int32_t t0 = smp_draw_probs(p0, p->V, smp_u53(r.v[0], r.v[1]));
    tokens[0] = t0 < 0 ? 0 : t0;
    memcpy(s->last_p, p0, (size_t)p->V * sizeof *p0);
    s->n = 1;
    s->prev_n = -1;
    s->forwards = 1;
}

// Window size for the next iteration (decoding.md §1.4).
static int window_size(const SmpSjd *s) {
    int64_t L = s->p.window, left = s->p.N - s->n, W = L;
    if (s->p.schedule == SMP_SJD_SCHEDULE_REFERENCE) {
        int64_t lo = 1 + 1, hi = 1 + (s->p.N - L - 2);  // c0 = 1 (token 0 came from the prefill), l = 1, r = N - L - 2
        W = (s->prev_n >= lo && s->prev_n < hi) ? (hi - s->prev_n < L ? hi - s->prev_n : L) : 1;
    }
    if (W > left) W = left;
    return W < 1 ? 1 : (int)W;
}

static int32_t argmax(const float *p, int64_t V) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (p[i] > p[best]) best = i;
    return (int32_t)best;
}

// A fresh draft for raster index m; `known` drafts (recycled ones) precede it.
static int32_t fresh_draft(const SmpSjd *s, int64_t m, int known) {
    bool horizontal = s->p.init != SMP_SJD_INIT_RANDOM && m % s->p.grid_w != 0;
    if (horizontal && s->p.init == SMP_SJD_INIT_REPEAT_HORIZON)
        return known ? s->draft[known - 1] : s->tokens[s->n - 1];
    if (horizontal)  // sample_horizon: the reference keeps only the top-1 logit, so its "sample" is the argmax
        return known ? (s->onehot[known - 1] ? s->draft[known - 1] : argmax(s->q + (int64_t)(known - 1) * s->p.V, s->p.V))
                     : argmax(s->last_p, s->p.V);
    int64_t t = (int64_t)(uniform(s, m, s->iter + 1, DRAW_INIT) * (double)s->p.V);
    return (int32_t)(t < s->p.V ? t : s->p.V - 1);
}

int smp_sjd_window(SmpSjd *s, int32_t *in) {
    if (s->n >= s->p.N) return s->W = 0;
    int W = window_size(s);
    if (s->n_drafts > W - 1) s->n_drafts = W - 1;
    int known = s->n_drafts;
    while (s->n_drafts < W - 1) {
        s->draft[s->n_drafts] = fresh_draft(s, s->n + s->n_drafts, known);
        s->onehot[s->n_drafts] = 1;
        s->n_drafts++;
    }
    in[0] = s->tokens[s->n - 1];
    for (int j = 1; j < W; j++) in[j] = s->draft[j - 1];
    return s->W = W;
}

// Bits of the entries b .. b+n-1 (n <= 64) where d = p - q > 0 (q one-hot on u when NULL): the entries the residual
// adds, so smp_sjd_draw_residual adds them in index order as a scan over all V would (bitmask.h).
static uint64_t residual_bits(const float *p, const float *q, int32_t u, int64_t b, int64_t n) {
    if (q) return smp_bits_greater(p + b, q + b, n);
    uint64_t m = smp_bits_positive(p + b, n);
    if (u >= b && u < b + n) {  // d(u) = p(u) - 1 > 0 only when p(u) > 1
        m &= ~((uint64_t)1 << (u - b));
        m |= (uint64_t)(p[u] > 1.0f) << (u - b);
    }
    return m;
}

int32_t smp_sjd_draw_residual(const float *p, const float *q, int32_t u, int64_t V, double r) {
#define RESIDUAL(i) ((double)p[i] - (q ? (double)q[i] : ((i) == u ? 1.0 : 0.0)))
    double total = 0;
    for (int64_t b = 0; b < V; b += 64)
        for (uint64_t m = residual_bits(p, q, u, b, V - b < 64 ? V - b : 64); m; m &= m - 1)
            total += RESIDUAL(b + smp_lowest_bit(m));
    if (!(total > 0)) return smp_draw_probs(p, V, r);  // p == q up to rounding
    double target = r * total, cum = 0;
    int32_t last = -1;
    for (int64_t b = 0; b < V; b += 64)
        for (uint64_t m = residual_bits(p, q, u, b, V - b < 64 ? V - b : 64); m; m &= m - 1) {
            int64_t i = b + smp_lowest_bit(m);
            cum += RESIDUAL(i);
            last = (int32_t)i;
            if (cum > target) return last;
        }
    return last;
#undef RESIDUAL
}

static int32_t draw_or_zero(const float *p, int64_t V, double r) {
    int32_t t = smp_draw_probs(p, V, r);
    return t < 0 ? 0 : t;  // a row without mass; the caller checks the logits for non-finite values
}

int smp_sjd_step(SmpSjd *s, const float *probs) {
    int64_t V = s->p.V, n = s->n;
    int W = s->W, k = W;
    uint32_t it = ++s->iter;
    s->forwards++;
    // Draft j-1 (input row j) is a candidate for raster index n+j-1 and is judged by output row j-1.
    for (int j = 1; j < W; j++) {
        const float *pj = probs + (int64_t)(j - 1) * V, *qj = s->onehot[j - 1] ? 0 : s->q + (int64_t)(j - 1) * V;
        int32_t u = s->draft[j - 1];
        double qu = qj ? qj[u] : 1.0, r = uniform(s, n + j - 1, it, DRAW_ACCEPT);
        if (r * qu < (double)pj[u]) {  // r < min(1, p(u) / q(u))
            s->tokens[n + j - 1] = u;
            s->accepted_drafts++;
            continue;
        }
        double rr = uniform(s, n + j - 1, it, DRAW_RESIDUAL);
        int32_t t = s->p.rule == SMP_SJD_RULE_BROKEN_RESIDUAL ? smp_draw_probs(pj, V, rr)
                                                              : smp_sjd_draw_residual(pj, qj, u, V, rr);
        s->tokens[n + j - 1] = t < 0 ? 0 : t;
        k = j;
        break;
    }
    if (k == W) s->tokens[n + W - 1] = draw_or_zero(probs + (int64_t)(W - 1) * V, V, uniform(s, n + W - 1, it, DRAW_Y));
    memcpy(s->last_p, probs + (int64_t)(k - 1) * V, (size_t)V * sizeof *probs);
    // Recycling: the current samples beyond the committed prefix become the next drafts, their q the current p.
    // Each is its own draw (its row, its Philox stream) into its own slots: spread over the cores when there are
    // several (up to 15 inverse-CDF draws over V entries per forward at window 16), the same tokens at any count.
    s->n_drafts = W - k;
#pragma omp parallel for schedule(static) if (W - k >= 4)
    for (int j = k; j < W; j++) {
        const float *pj = probs + (int64_t)j * V;
        s->draft[j - k] = draw_or_zero(pj, V, uniform(s, n + j, it, DRAW_Y));
        s->onehot[j - k] = 0;
        memcpy(s->q + (int64_t)(j - k) * V, pj, (size_t)V * sizeof *pj);
    }
    s->prev_n = n;
    s->n = n + k;
    s->W = 0;
    return k;
}
