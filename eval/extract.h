// Feature extraction for evaluation: uint8 image batches -> Inception features -> statistics (FID pool3, sFID
// spatial, IS logits), one forward per batch of up to max_batch images. Used by `argen fid` (PNG directories, sample
// .npz files) and `argen render --fid-ref` (straight from generation, no files in between).
// On a GPU backend a batch is pipelined: its upload runs on the side queue while the previous batch's forward runs
// (inception_submit), ev_extractor_add returns with its forward in flight, and the next call (or ev_extractor_sync)
// collects it; the statistics of a collected batch (double-precision moments on the host, ~half the time per batch
// on an H100) are accumulated by a worker thread while the next batches run on the device. Call ev_extractor_sync
// before reading or freeing the statistics. Batches still enter the statistics one after the other, in order, so
// the results are the same as without the overlap.
#pragma once

#include <pthread.h>

#include "inception.h"
#include "stats.h"

#define EV_INPUT_SLOTS 2  // input buffers: a producer fills one while the other's batch is evaluated

#define EV_SETS 3  // host staging sets: the forward in flight, the batch being collected, the worker's batch

typedef struct {
    float *pool3, *logits, *spatial;  // (max_batch, D) each
} EvFeatures;

// A batch whose forward is in flight (submitted, not yet collected).
typedef struct {
    bool on;
    int set, b, fence;
    int64_t first;
    EvFeatureStats *stats;
} EvInflight;

typedef struct {
    Inception net;
    KtFidResize mode;
    bool overlap;                     // accumulate on the worker thread (default: the backend is not the CPU)
    KtBuffer staging;                 // the EV_SETS staging sets, page-locked on a GPU
    KtBuffer input[EV_INPUT_SLOTS];   // ev_extractor_input's image buffers (page-locked on a GPU)
    EvFeatures set[EV_SETS];
    int next_set, slot;               // the next forward's staging set and device input slot
    EvInflight inflight;
    // the worker's batch: its staging set, target, size and status
    int w_set;
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
// Adds them to `stats` (on a GPU: the last forward's part once the next call or ev_extractor_sync collects it);
// copies pool3 features (B, 2048) to features_out when not NULL (then this call waits for its forward: no
// pipelining). The images are no longer needed when it returns. A failure of the previous batch (its forward or its
// accumulation) is reported here.
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
