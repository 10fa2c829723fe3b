// Token samplers: pure functions from logits (+ explicit random numbers) to tokens. No allocation, no globals;
// scratch space is passed in. The random draws are derived from the Philox stream in philox.h so the CPU backend
// and the CUDA kernels agree (see philox.h for the stream layout).
// ref: VAR models/helpers.py sample_with_top_k_top_p_ (top-k keeps ties at the k-th value; top-p on the ascending
//      sorted, top-k-masked distribution removes cumulative mass <= 1-p and always keeps the largest entry).
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    uint64_t seed;
    int top_k;          // <= 0 or >= V: off
    float top_p;        // <= 0 or >= 1: off
    float temperature;  // logits are divided by it before filtering; 1 = off
} SmpParams;

SmpParams smp_params_default(void);  // seed 0, top_k 0, top_p 0, temperature 1

// Masks (sets to -INFINITY) every logit strictly below the k-th largest. `scratch` holds V floats.
void smp_top_k_mask(float *logits, int64_t V, int k, float *scratch);
// VAR-style nucleus filter on (possibly already masked) logits, in place. `scratch_v` holds V floats and
// `scratch_i` V int32 indices.
void smp_top_p_mask(float *logits, int64_t V, float top_p, float *scratch_v, int32_t *scratch_i);
// Inverse-CDF categorical draw from softmax(logits) with the uniform u in [0,1): the first index whose cumulative
// weight (exp(l - max), summed in double in index order) exceeds u * total. Entries at -INFINITY are never drawn.
// Returns -1 when no entry is finite.
int32_t smp_categorical(const float *logits, int64_t V, double u);
// The complete per-row pipeline used by the backends: temperature, top-k, top-p, then the draw for
// (params.seed, image, position). `logits` is masked in place (VAR's more_smooth reads the masked values).
int32_t smp_sample_row(float *logits, int64_t V, SmpParams params, uint64_t image, uint32_t position,
                       float *scratch_v, int32_t *scratch_i);

// VAR's more_smooth latent: w = softmax((logits * (1 + ratio) + g) / tau) with Gumbel noise g from the Philox
// stream, tau = max(0.27 * (1 - 0.95 * ratio), 0.005); h = w @ codebook. logits (V), codebook (V, D), h (D);
// `w` holds V floats of scratch.
void smp_smooth_embed_row(float *h, const float *logits, const float *codebook, int64_t V, int64_t D,
                          float ratio, uint64_t seed, uint64_t image, uint32_t position, float *w);

// ---- LlamaGen's sampler (sampling_hf.c): HuggingFace-style filters, as LlamaGen's generate.py
// ref: LlamaGen autoregressive/models/generate.py sample, logits_to_probs, top_k_top_p_filtering
// Differences from the VAR filters above: top-p works on the descending order and keeps an entry while the
// probability mass *before* it is <= top_p (HF's shifted mask), so the entry that crosses the threshold survives;
// top_p >= 1 is off and top_p = 0 keeps only the top entry. Ties in the sort are broken by ascending index.

// In place: logits /= max(temperature, 1e-5) (when temperature != 1), top-k (top_k > 0: keep >= the k-th largest,
// ties survive), top-p (top_p < 1). `scratch_v` holds V floats, `scratch_i` V int32.
void smp_hf_filter_row(float *logits, int64_t V, SmpParams params, float *scratch_v, int32_t *scratch_i);
// probs = softmax(filtered logits) (filtered entries 0; an all-masked row gives all zeros). `logits` is filtered in
// place; probs may alias logits.
void smp_hf_probs_row(float *probs, float *logits, int64_t V, SmpParams params, float *scratch_v, int32_t *scratch_i);
// Filter, then the inverse-CDF draw (smp_categorical) with the uniform of (params.seed, image, position,
// SMP_STREAM_TOKEN). Returns -1 when no entry is finite.
int32_t smp_sample_hf_row(float *logits, int64_t V, SmpParams params, uint64_t image, uint32_t position,
                          float *scratch_v, int32_t *scratch_i);
// Inverse-CDF draw from probabilities (any non-negative weights): the first index whose cumulative weight (double,
// index order) exceeds u * total. Zero weights are never drawn. Returns -1 when all weights are zero.
int32_t smp_draw_probs(const float *probs, int64_t V, double u);
