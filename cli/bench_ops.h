// argen bench --arch ops (bench_ops.c): kernels-API ops timed one by one at VAR-d16's shapes and GPT-B's step.
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"

// The op families, in --ops order: linear, attention, sample, decoder, norm, var_attention, llamagen.
#define BENCH_OPS_FAMILIES 7

// "all" or a comma-separated list of family names -> on[]; false on an unknown name.
bool bench_ops_parse(const char *list, bool on[BENCH_OPS_FAMILIES]);
// Prints one markdown table row per case to stdout (cases too large for the CPU are listed as skipped there).
KtStatus bench_ops_run(KtBackend *be, const bool on[BENCH_OPS_FAMILIES], int reps);
