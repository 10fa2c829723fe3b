// Private declarations shared by the checkpoint readers (kernels/checkpoint/*.c). Not part of the public API.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "kernels/checkpoint.h"

// Appends a tensor named name[0, len) (copied; a name with a control byte, NUL included, is rejected) and returns
// it zeroed except for the name, for the caller to fill.
KtStatus ckpt_add_tensor(KtCheckpoint *ck, const uint8_t *name, size_t len, KtCkptTensor **out);

// Checks a filled tensor: ndim, shape >= 0, stride >= 0, storage_offset >= 0, and that every element it can reach
// lies inside its storage (storage_offset + sum((shape-1)*stride) < storage_numel), without integer overflow.
KtStatus ckpt_check_tensor(const KtCheckpoint *ck, const KtCkptTensor *t);

// Takes ownership of a malloc'd block (freed by kt_ckpt_close). On failure frees `p`.
KtStatus ckpt_keep(KtCheckpoint *ck, void *p);

// "(3, 4)" into buf.
const char *ckpt_dims_str(const int64_t *d, int n, char *buf, size_t cap);

// The format readers: each fills ck->tensors (ck->path is set, the bytes are data[0, size)).
KtStatus ckpt_read_safetensors(KtCheckpoint *ck, const uint8_t *data, size_t size);
KtStatus ckpt_read_torch_zip(KtCheckpoint *ck, const uint8_t *data, size_t size, const KtCkptOpenParams *params);
KtStatus ckpt_read_torch_legacy(KtCheckpoint *ck, const uint8_t *data, size_t size, const KtCkptOpenParams *params);
