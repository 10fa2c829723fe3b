// Internal pieces shared by var.c (forward, teacher forcing) and var_generate.c (the sampling loop).
#pragma once

#include "var.h"

// Carves a workspace for B2 rows of up to Tmax tokens and max_batch images (vq NULL: no image buffers).
KtStatus var_ws_alloc(VarWorkspace *ws, const VarModel *m, const VarVqvae *vq, int64_t B2, int64_t Tmax, int max_batch);
// cond = class_emb[labels] for the first B2 entries of ws->labels; AdaLN modulation of every block and the head.
KtStatus var_cond_prepare(VarModel *m, VarWorkspace *ws, int64_t B2);
// One block on ws->x (B2, T, C) at cache positions [t0, t0+T); bias (T, t0+T) or NULL.
KtStatus var_block_forward(VarModel *m, VarWorkspace *ws, int i, int64_t B2, int64_t T, int64_t t0,
                           const KtTensor *bias);
// logits (B2, T, V), a view of ws->logits.
KtStatus var_head_forward(VarModel *m, VarWorkspace *ws, int64_t B2, int64_t T, KtTensor *logits);
// KT_ERR_ARG naming the first label outside [0, num_classes).
KtStatus var_check_labels(const VarConfig *c, int B, const int32_t *labels);
