// Pool3 features of an image set, shared by `argen fid` and `argen render`: kept in memory (precision/recall),
// streamed to a .npy file (--features-out), extracted from a PNG directory or a sample .npz with read-ahead.
#pragma once

#include <stdio.h>

#include "eval/extract.h"
#include "eval/precision_recall.h"
#include "fid_source.h"

// Pool3 features (n, INC_POOL3) float32 in memory, grown as batches come.
typedef struct {
    float *x;
    int64_t n, cap;
} PoolFeatures;

// Appends rows (rows, INC_POOL3); `path` names the set in an out-of-memory error.
KtStatus pool_features_append(PoolFeatures *f, const float *x, int64_t rows, const char *path);
void pool_features_free(PoolFeatures *f);

// Pool3 features (n, INC_POOL3) float32 streamed into a .npy file written atomically (a temporary file renamed on
// npy_out_close(.., true)); n is fixed by the header, so exactly n rows must be written.
typedef struct {
    FILE *f;
    char tmp[4200];
    const char *path;  // borrowed
} NpyOut;

KtStatus npy_out_open(NpyOut *o, const char *path, int64_t n);
KtStatus npy_out_write(NpyOut *o, const void *x, int64_t rows);  // x: rows x INC_POOL3 float32 (any alignment)
// keep: rename into place (an error when anything failed); else remove the temporary file. Safe to call twice.
KtStatus npy_out_close(NpyOut *o, bool keep);

// Opens a .npy of pool3 features as --features-out writes them: little-endian float32 (N, INC_POOL3), N >= 1, its
// length matching its header; anything else is KT_ERR_FORMAT naming the file and what it holds.
KtStatus features_file_open(EvNpyFile *f, const char *path);

// Evaluates images [lo, hi) of `src` into `stats` (initialised by the caller) in batches of `batch`: pool3 features
// also to `fo` and kept in `keep` when those are not NULL. The next batch is read (PNGs decoded, a .npz streamed)
// on another thread while the current one is evaluated. Progress on stderr as "<who>: <path>: i/n images" unless
// quiet.
KtStatus eval_source_images(FidSource *src, EvExtractor *ex, EvFeatureStats *stats, int batch, int64_t lo,
                            int64_t hi, NpyOut *fo, PoolFeatures *keep, const char *who, bool quiet);

// Improved precision and recall of `samples` against `ref` (k = 3, the ADM evaluator's), float32 or (fp16) the
// evaluator's float16 distances; timing on stderr unless quiet.
KtStatus eval_precision_recall(KtBackend *be, const PoolFeatures *samples, const PoolFeatures *ref, bool fp16,
                               const char *who, bool quiet, EvPrResult *out);
