// A parallel loop for the CLI's file work (PNG encoding and decoding: ~1-10 ms per 256x256 image on one core, which
// would otherwise bound a GPU's render or evaluation many times over).
#pragma once

#include <stdint.h>

#include "kernels/status.h"

#define CLI_MAX_THREADS 64

// The online cores, 1 .. CLI_MAX_THREADS.
int cli_cores(void);

// Runs fn(ctx, i) for every i in [0, n) on up to `threads` threads (this one included; fewer when threads cannot be
// started, 0 = cli_cores()). Items are claimed in increasing order. Returns KT_OK, or the failure of the lowest i
// that failed, its message re-raised in this thread (items after it may have run). fn must be safe to call from
// several threads at once for different i.
KtStatus cli_parallel_for(int64_t n, int threads, KtStatus (*fn)(void *ctx, int64_t i), void *ctx);
