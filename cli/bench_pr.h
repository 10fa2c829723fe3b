// argen bench --arch pr (bench_pr.c): improved precision/recall (eval/precision_recall.h) at evaluation scale.
#pragma once

#include "kernels/backend.h"

// Times ev_precision_recall of n_smp samples against n_ref reference points of synthetic pool3-like features
// (2048 non-negative values each), with float32 and with the ADM evaluator's float16 distances: the median of `reps`
// runs each, printed as a markdown table.
KtStatus bench_precision_recall(KtBackend *be, int64_t n_smp, int64_t n_ref, int reps);
