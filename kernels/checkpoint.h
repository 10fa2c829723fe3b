// Checkpoint reading: one API over .safetensors and PyTorch .pth/.pt files (zip layout of torch >= 1.6 and the
// legacy pre-1.6 layout), giving a flat list of named tensors. Files are memory-mapped read-only; every header
// length, offset and size is bounds-checked against the file before use, and any malformed input returns
// KT_ERR_FORMAT with a message naming the file and what was wrong (never a crash).
//
// PyTorch files are read by a small unpickler that accepts only what state dicts use (dicts, OrderedDict, lists,
// tuples, strings, numbers, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, persistent storage ids), plus
// inert placeholders for the few objects training checkpoints keep next to the weights (argparse.Namespace, numpy
// scalars/dtypes/arrays, TorchVersion; never constructed, rejected inside the state dict itself); anything else is a
// clear error, never code execution. A top-level {"model": state_dict} (LlamaGen), {"state_dict": ...} or
// {"module": ...} is unwrapped; kt_ckpt_open_params selects another key.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef enum { KT_CKPT_SAFETENSORS = 0, KT_CKPT_TORCH_ZIP, KT_CKPT_TORCH_LEGACY } KtCkptFormat;

typedef struct {
    char *name;                      // owned: state-dict key, verbatim
    KtDType dtype;                   // F32, F16, BF16, F64, I64, I32, U8 (bool: U8 0/1; others: KT_ERR_UNSUPPORTED)
    int ndim;                        // 0..KT_MAX_DIMS
    int64_t shape[KT_MAX_DIMS];
    int64_t stride[KT_MAX_DIMS];     // in elements (safetensors: contiguous)
    const uint8_t *storage;          // borrowed: start of the backing storage (inside the mapping or `owned`)
    int64_t storage_offset;          // in elements
    int64_t storage_numel;           // elements available in the storage (bounds-checked against shape/stride)
} KtCkptTensor;

typedef struct {
    char *path;                      // owned copy
    KtCkptFormat format;
    KtCkptTensor *tensors;           // owned, in file order
    int n_tensors;
    char *metadata_json;             // owned: safetensors "__metadata__" object as JSON text, or NULL
    // private
    void *map;
    size_t map_size;
    int map_is_mmap;                 // 1: `map` is an mmap of the file (kt_ckpt_open); 0: borrowed (open_memory)
    void **owned;                    // inflated (deflate-compressed) zip members
    int n_owned;
} KtCheckpoint;

typedef struct {
    const char *unwrap_key;          // NULL: try "model", "state_dict", "module", else the top-level dict
} KtCkptOpenParams;

KtStatus kt_ckpt_open(KtCheckpoint *ck, const char *path);
KtStatus kt_ckpt_open_params(KtCheckpoint *ck, const char *path, const KtCkptOpenParams *params);
// Opens from memory (fuzzing, tests). `data` must outlive the checkpoint; `name` is used in messages.
KtStatus kt_ckpt_open_memory(KtCheckpoint *ck, const void *data, size_t size, const char *name);
void kt_ckpt_close(KtCheckpoint *ck);

// NULL when absent.
const KtCkptTensor *kt_ckpt_find(const KtCheckpoint *ck, const char *name);
int64_t kt_ckpt_numel(const KtCkptTensor *t);

// Copies the tensor, converted to float32 and made contiguous, into `dst` (numel floats).
// Integer tensors are converted too.
KtStatus kt_ckpt_read_f32(const KtCheckpoint *ck, const KtCkptTensor *t, float *dst);
// Same for integer tensors into int64.
KtStatus kt_ckpt_read_i64(const KtCheckpoint *ck, const KtCkptTensor *t, int64_t *dst);

const char *kt_ckpt_format_name(KtCkptFormat f);

// safetensors "__metadata__" entry `key` as a malloc'd string (*value; the caller frees), or *value = NULL when the
// file has no metadata or no such key. A present key whose value is not a JSON string is KT_ERR_FORMAT.
KtStatus kt_ckpt_meta_get(const KtCheckpoint *ck, const char *key, char **value);
// The entry parsed as an int / a list of ints ("1,2,3"): *found = false when absent; a malformed value or one
// outside [lo, hi] is KT_ERR_FORMAT naming the file and the key.
KtStatus kt_ckpt_meta_int(const KtCheckpoint *ck, const char *key, int lo, int hi, int *v, bool *found);
KtStatus kt_ckpt_meta_ints(const KtCheckpoint *ck, const char *key, int *v, int cap, int *n, bool *found);
// The entry parsed as a finite float (*found = false when absent).
KtStatus kt_ckpt_meta_float(const KtCheckpoint *ck, const char *key, float *v, bool *found);
