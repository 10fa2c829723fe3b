// Weight tables: each model lists the state-dict tensors it needs as {name, checkpoint shape, kind, &view}; the
// loader checks the whole table against a checkpoint, reports every missing, mis-shaped and unexpected tensor in one
// error, then fills ONE backend buffer and points every view into it (llm.c's malloc-and-point).
#pragma once

#include <stdbool.h>

#include "backend.h"
#include "checkpoint.h"

typedef enum {
    KT_W_PLAIN = 0,      // stored as float32, same shape (biases, norms, embeddings, codebooks)
    KT_W_MATMUL,         // a Linear weight (out, in): stored in the backend's matmul dtype
    KT_W_CONV,           // a conv weight, OIHW in the file -> (Co, kh, kw, Ci) view, matmul dtype
    KT_W_CONV1X1_LINEAR, // a 1x1 conv weight (O, I, 1, 1) used as a Linear weight (O, I), matmul dtype
    KT_W_CONV_F32,       // a conv weight as KT_W_CONV but kept in float32 (a model that transforms it before rounding
                         // it to the matmul dtype: the Inception network folds BatchNorm into its 16-bit weights)
} KtWeightKind;

typedef struct {
    char *name;                     // owned
    KtWeightKind kind;
    int ndim;
    int64_t shape[KT_MAX_DIMS];     // as stored in the checkpoint (PyTorch order)
    KtTensor *dst;                  // borrowed: the model's view, filled by kt_wtab_load
    bool optional;                  // may be absent (dst->data stays NULL)
    bool follows;                   // stored right after the previous spec's tensor, without an alignment gap
} KtWeightSpec;

typedef struct {
    KtWeightSpec *specs;
    int n, cap;
    char **ignore;                  // owned: names (or prefixes ending in '*') the model reads but does not need
    int n_ignore;
    size_t n_params;                // filled by load: number of float parameters bound
} KtWeightTable;

void kt_wtab_init(KtWeightTable *t);
void kt_wtab_free(KtWeightTable *t);
// Adds a tensor. `shape` has `ndim` entries in checkpoint order. The name is printf-formatted.
KtStatus kt_wtab_add(KtWeightTable *t, KtTensor *dst, KtWeightKind kind, int ndim, const int64_t *shape,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
// Marks the last added tensor optional.
void kt_wtab_last_optional(KtWeightTable *t);
// Stores the last added tensor directly after the one added before it (same kind; neither optional), so the model
// can view the two as one tensor: e.g. LlamaGen's w1 (F, D) and w3 (F, D) as one (2F, D) GEMM weight.
void kt_wtab_last_follows(KtWeightTable *t);
KtStatus kt_wtab_ignore(KtWeightTable *t, const char *pattern);

// Checks the table against `ck` and loads it into `buf` (allocated here on `be`). `what` describes the model in
// messages ("VAR transformer", "VAR VQVAE"), `hint` is appended to shape errors (e.g. "set --patch-nums").
KtStatus kt_wtab_load(KtWeightTable *t, KtBackend *be, KtBuffer *buf, const KtCheckpoint *ck, const char *what,
                      const char *hint);
// Fills the table with deterministic random values instead (benchmarks without a checkpoint): matmul/conv weights
// U(-1/sqrt(fan_in), +1/sqrt(fan_in)), vectors U(-0.02, 0.02), GroupNorm weights 1; optional tensors stay absent.
KtStatus kt_wtab_init_random(KtWeightTable *t, KtBackend *be, KtBuffer *buf, uint64_t seed);
