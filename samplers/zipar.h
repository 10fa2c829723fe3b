// ZipAR next-set decoding for raster models: the data-independent schedule of which (token, position) pairs each
// forward feeds and which grid cell each output row samples. Row r+1 starts once row r holds `s` tokens (the
// window); afterwards every active row advances one column per forward. Pure: no allocation, no globals.
// ref: ThisisBillhe/ZipAR LlamaGen-ZipAR/autoregressive/models/generate_zipar.py (generate, decode_n_tokens_zipar);
//      spec: shared/spec/decoding.md §2
// Dims: g grid side, N = g*g tokens (raster index = row*g + col), s window, T class-token positions.
//
// Schedule (the released code's bookkeeping, simulated): forward 0 is the class-token prefill sampling cell 0;
// forwards 1..g-1 feed (0, c-1) and sample (0, c) (row 0 is plain AR). Each later forward feeds, in ascending
// position order: the just-completed row's last cell (output discarded: it overwrites the auxiliary K/V), then for
// each active row its frontier cell, or for a row that just started either the real (0, g-1) (row 1) or an auxiliary
// copy of row m-2's newest token placed in the slot of (m-1, g-1) (row m >= 2). Forwards: 2g + (g-2)s.
#pragma once

#include <stdint.h>

#define SMP_ZIPAR_MAX_GRID 256

typedef struct {
    int32_t token_cell;  // raster index whose (already sampled) token is fed; -1: the class-token prefill
    int32_t pos;         // sequence position of the fed token (T + the cell it is fed at; T-1 for the prefill)
    int32_t out_cell;    // raster index sampled from this row's output; -1: output discarded
} SmpZiparFeed;

typedef struct {
    int n_forwards;      // number of forwards (NFE, the prefill included)
    int n_feeds;         // feed entries over all forwards
    int max_feeds;       // most entries in one forward
    int phase_b;         // index of the first ZipAR forward (= g)
} SmpZiparInfo;

// NULL when (g, s) is a valid schedule (2 <= s <= g-1, 2 <= g <= SMP_ZIPAR_MAX_GRID), else a static message.
const char *smp_zipar_check(int g, int s);
// The schedule's sizes (g, s must pass smp_zipar_check).
void smp_zipar_info(int g, int s, SmpZiparInfo *info);
// The schedule: forward f feeds feeds[first[f] .. first[f+1]). first: n_forwards + 1 entries; feeds: n_feeds.
void smp_zipar_plan(int g, int s, int T, int32_t *first, SmpZiparFeed *feeds);
