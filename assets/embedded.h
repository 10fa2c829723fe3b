// The default models built into the argen binary: small VAR and LlamaGen models trained on handwritten digits by
// scripts/train/ (model cards: assets/*.md). Each file is linked in byte for byte (.incbin) and opened in place as
// a checkpoint named "embedded:<file>", so `argen sample --class 7` works with no download.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/checkpoint.h"

#define ARGEN_EMBEDDED_PREFIX "embedded:"

typedef struct {
    const char *name;     // file name under assets/, e.g. "var_digits.safetensors"
    const uint8_t *data;  // NULL when the build did not find the file (see CMakeLists.txt)
    size_t size;
} ArgenAsset;

// All known assets (built in or not): *n entries.
const ArgenAsset *argen_assets(int *n);

// true when `path` names an embedded asset ("embedded:<file>").
bool argen_is_embedded_path(const char *path);

// Opens a checkpoint file, or an embedded asset when `path` is "embedded:<file>".
KtStatus argen_ckpt_open(KtCheckpoint *ck, const char *path);
