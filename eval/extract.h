// Feature extraction for evaluation: uint8 image batches -> Inception features -> statistics (FID pool3, sFID
// spatial, IS logits), one forward per batch of up to max_batch images. Used by `argen fid` (PNG directories, sample
// .npz files) and `argen render --fid-ref` (straight from generation, no files in between).
#pragma once

#include "inception.h"
#include "stats.h"

typedef struct {
    Inception net;
    KtFidResize mode;
    float *pool3, *logits, *spatial;  // host staging, (max_batch, D) each
} EvExtractor;

// Loads the Inception weights from `inception_path` (SHA-256 tag checked) onto `be`; NULL path = random weights
// (benchmarks only).
KtStatus ev_extractor_init(EvExtractor *e, KtBackend *be, const char *inception_path, int max_batch,
                           KtFidResize mode);
void ev_extractor_free(EvExtractor *e);
// images: (B, H, W, 3) uint8 host, samples first_index .. first_index + B - 1 of the set (their IS split).
// Adds them to `stats`; copies pool3 features (B, 2048) to features_out when not NULL.
KtStatus ev_extractor_add(EvExtractor *e, EvFeatureStats *stats, const uint8_t *images, int B, int H, int W,
                          int64_t first_index, float *features_out);
