// Speculative Jacobi decoding (SJD) for raster models: a per-image state machine that proposes the next window of
// input tokens and consumes the model's next-token distributions for it, with the probabilistic acceptance test,
// residual resampling and draft recycling. The caller runs the model (batching any number of images, each with
// its own window) and turns logits into probabilities; this file only decides tokens. Pure: no allocation (the
// caller passes the buffers), no globals; every random number is a Philox draw keyed by
// (seed, image, raster index, SMP_STREAM_DECODING + 4 * iteration + purpose), so an image's tokens do not depend on
// the batch it ran in or the device.
// ref: tyshiwo1/Accelerating-T2I-AR-with-SJD scheduler/jacobi_iteration_lumina_mgpt.py (SpeculativeSampler,
//      JacobiSampler._sample); spec: shared/spec/decoding.md §1
// Dims: N tokens per image (raster order), V vocabulary, L window (inputs per forward: 1 accepted + L-1 drafts),
//       T class-token positions (the caller's offset between raster index and sequence position).
//
// Protocol per image: smp_sjd_start (draws token 0 from the class-token distribution), then repeat
//   W = smp_sjd_window(s, in)        -- 0 when all N tokens are accepted
//   forward in[0..W) at raster indices n-1 .. n+W-2 (sequence positions T+n-1 ..), where n = s->n before the call
//   smp_sjd_step(s, probs)           -- probs (W, V): row j is the distribution of raster index n + j
// The K/V written for rejected inputs need no clearing: the next window starts at the first unaccepted position and
// rewrites them before any query can see them (positional causal attention).
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SMP_SJD_INIT_RANDOM = 0,       // fresh drafts uniform over [0, V), one-hot q (the reference default)
    SMP_SJD_INIT_REPEAT_HORIZON,   // column > 0: the last known token; column 0: random
    SMP_SJD_INIT_SAMPLE_HORIZON,   // column > 0: argmax of the last known token's stored distribution; column 0: random
} SmpSjdInit;

typedef enum {
    SMP_SJD_SCHEDULE_SIMPLE = 0,   // W = min(L, N - n) after the prefill (decoding.md §1.4 "simplified")
    SMP_SJD_SCHEDULE_REFERENCE,    // the reference's Jacobi interval [c0 + 1, c0 + N - L - 2) with one-iteration lag
} SmpSjdSchedule;

typedef enum {
    SMP_SJD_RULE_EXACT = 0,        // speculative sampling: accept with min(1, p/q), else draw from max(0, p - q)
    SMP_SJD_RULE_BROKEN_RESIDUAL,  // TESTS ONLY: on rejection draw from p instead of the residual (biased); exists so
                                   // the distribution test can show that it detects a wrong rule
} SmpSjdRule;

typedef struct {
    int window;                    // L >= 1
    int64_t V;                     // vocabulary
    int64_t N;                     // tokens per image
    int grid_w;                    // tokens per row (horizontal draft initialisation)
    SmpSjdInit init;
    SmpSjdSchedule schedule;
    SmpSjdRule rule;
    uint64_t seed;
} SmpSjdParams;

typedef struct {
    SmpSjdParams p;
    uint64_t image;
    int32_t *tokens;     // borrowed (N): accepted tokens a_0 .. a_{n-1}
    float *q;            // borrowed (L - 1, V): q[i] = distribution draft i was sampled from (unused when one-hot)
    float *last_p;       // borrowed (V): the distribution the last accepted token was decided against
    int32_t *draft;      // borrowed (L): draft tokens for raster indices n, n+1, ...
    uint8_t *onehot;     // borrowed (L): 1 when draft i's q is one-hot on its token
    int64_t n;           // accepted tokens
    int n_drafts;
    int W;               // window of the pending forward (0: none)
    int64_t prev_n;      // accepted count at the start of the previous iteration (-1: none; reference schedule)
    uint32_t iter;       // iterations done (the window forwards)
    int64_t forwards;    // NFE of this image, the class-token prefill included
    int64_t accepted_drafts;  // drafts accepted by the test (statistics)
} SmpSjd;

// Floats / int32 / bytes of the buffers one image needs: q and last_p, draft, onehot.
int64_t smp_sjd_floats(const SmpSjdParams *p);
// Checks the parameters: 0 when valid, else a static message.
const char *smp_sjd_check(const SmpSjdParams *p);

// Starts an image: token 0 is drawn from p0 (the class-token position's distribution, V floats) with the uniform of
// (seed, image, 0, SMP_STREAM_TOKEN). tokens: N int32; fbuf: smp_sjd_floats(p) floats; draft: L int32; onehot: L.
void smp_sjd_start(SmpSjd *s, const SmpSjdParams *p, uint64_t image, const float *p0, int32_t *tokens, float *fbuf,
                   int32_t *draft, uint8_t *onehot);
// The next window: writes W input tokens into in[0..W) and returns W (0 when the image is complete).
int smp_sjd_window(SmpSjd *s, int32_t *in);
// Consumes the distributions of the pending window (probs: (W, V), row j for raster index n + j); commits
// k >= 1 tokens and returns k.
int smp_sjd_step(SmpSjd *s, const float *probs);
// The residual draw of a rejected draft u: the first index whose cumulative max(0, p - q) (double, index order)
// exceeds r * its total, q one-hot on u when NULL; a draw from p (smp_draw_probs) when the residual has no mass.
int32_t smp_sjd_draw_residual(const float *p, const float *q, int32_t u, int64_t V, double r);
