// Configuration shared by the two tokenizers (VAR's VQVAE and LlamaGen's VQ-16): what the checkpoint's shapes cannot
// say and its safetensors metadata may.
#pragma once

#include "kernels/checkpoint.h"

// GroupNorm group count: metadata "norm_groups" (small models such as the embedded digits tokenizers, whose widths
// are below the official 32 groups), else 32. Every level's width ch * ch_mult[i] must split into the groups.
KtStatus tok_norm_groups(const KtCheckpoint *ck, int ch, const int *ch_mult, int n_levels, int *groups);
