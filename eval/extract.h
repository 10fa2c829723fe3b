// Feature extraction for evaluation: uint8 image batches -> Inception features -> statistics (FID pool3, sFID
// spatial, IS logits), one forward per batch of up to max_batch images. Used by `argen fid` (PNG directories, sample
// .npz files) and `argen render --fid-ref` (straight from generation, no files in between).
// On a GPU backend the statistics of a batch (double-precision moments on the host, ~half the time per batch on an
// H100) are accumulated by a worker thread while the next batch runs on the device: call ev_extractor_sync before
// reading or freeing the statistics. Batches still enter the statistics one after the other, in order, so the
// results are the same as without the overlap.
#pragma once

#include <pthread.h>

#include "inception.h"
#include "stats.h"

#define EV_INPUT_SLOTS 2  // input buffers: a producer fills one while the other's batch is evaluated

typedef struct {
    Inception net;
    KtFidResize mode;
    bool overlap;                     // accumulate on the worker thread (default: the backend is not the CPU)
    KtBuffer staging;                 // the six (max_batch, D) arrays below, page-locked on a GPU
    KtBuffer input[EV_INPUT_SLOTS];   // ev_extractor_input's image buffers (page-locked on a GPU)
    float *pool3, *logits, *spatial;  // host staging of the forward, (max_batch, D) each
    // the worker's batch: its own staging (swapped with the forward's), target, size and status
    float *w_pool3, *w_logits, *w_spatial;
    EvFeatureStats *w_stats;
    int w_b;
    int64_t w_first;
    bool pending;
    pthread_t worker;
    KtStatus w_status;
    char w_error[512];
} EvExtractor;

// Loads the Inception weights from `inception_path` (SHA-256 tag checked) onto `be`; NULL path = random weights
// (benchmarks only).
KtStatus ev_extractor_init(EvExtractor *e, KtBackend *be, const char *inception_path, int max_batch,
                           KtFidResize mode);
// Waits for a pending worker first (its status is dropped).
void ev_extractor_free(EvExtractor *e);
// images: (B, H, W, 3) uint8 host, samples first_index .. first_index + B - 1 of the set (their IS split).
// Adds them to `stats` (with overlap: the last forward's part once ev_extractor_sync returns); copies pool3
// features (B, 2048) to features_out when not NULL. The images are no longer needed when it returns. A failure of
// the previous batch's accumulation is reported here.
KtStatus ev_extractor_add(EvExtractor *e, EvFeatureStats *stats, const uint8_t *images, int B, int H, int W,
                          int64_t first_index, float *features_out);
// Host buffer `slot` (0 .. EV_INPUT_SLOTS - 1) of at least nbytes for the images of an ev_extractor_add, owned by
// the extractor: on a GPU page-locked, so the images' upload is one DMA at full speed when the producer writes them
// straight into it (a sample .npz's stream, a generator's download) instead of into pageable memory. With two slots
// a producer fills one while ev_extractor_add reads the other. Valid until the next call for that slot with a larger
// size or ev_extractor_free.
KtStatus ev_extractor_input(EvExtractor *e, int slot, size_t nbytes, uint8_t **buf);
// Waits until every added batch is in its statistics. Returns `st` when it is an error already (the worker's
// failure, if any, is then dropped), else the worker's status.
KtStatus ev_extractor_sync(EvExtractor *e, KtStatus st);
