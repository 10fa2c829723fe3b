// Per-op timing: while a backend profiles, every op of ops.h is timed by name (CUDA: an event pair on the stream
// around the op, read back in batches; CPU: the host clock), and kt_profile_report prints calls, total and mean
// time per op. Graph capture is off while profiling (kt_graphs_on), so the times are those of eager runs: on CUDA
// the stream time from an op's start mark to its end mark. When the GPU outpaces the host (small batches), the
// stream reaches the start mark at once and the span also holds the op's host-side work (plan lookups, launches of
// its several kernels): launch-bound time, not kernel time (ncu gives per-kernel durations).
// Used by `argen bench --profile`.
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "backend.h"

#define KT_PROFILE_MAX_OPS 96    // distinct op names
#define KT_PROFILE_PENDING 2048  // op spans queued on the device before a read-back

typedef struct {
    const char *name;  // a string literal (the op's name in ops.c)
    long long calls;
    double ms;
} KtProfileRow;

struct KtProfile {
    bool active;       // between kt_profile_start and kt_profile_stop
    KtProfileRow rows[KT_PROFILE_MAX_OPS];
    int n_rows;
    struct {
        const char *name;
        int mark;  // device marks mark (start) and mark + 1 (end)
    } pending[KT_PROFILE_PENDING];
    int n_pending;
    const char *open;  // the op between kt_profile_enter and kt_profile_leave, or NULL
    int depth;         // ops entered inside it (not timed on their own)
    bool unmarked;     // its start mark failed: it goes uncounted
    double t_open;     // its start on the host clock (seconds; backends without device marks)
};

// Starts (or restarts, clearing the table) profiling on be; graphs are off until kt_profile_stop.
KtStatus kt_profile_start(KtBackend *be);
// Reads back what is pending and stops profiling; the table stays readable until the next start.
KtStatus kt_profile_stop(KtBackend *be);
// Prints the table, largest total first: op, calls, total ms, mean us, share. Reads back what is pending first.
KtStatus kt_profile_report(KtBackend *be, FILE *f);
// False while be profiles: callers replay or capture graphs only when this is true.
bool kt_graphs_on(const KtBackend *be);

// ops.c's dispatch: enter before the op, leave with its status (returned unchanged).
void kt_profile_enter(KtBackend *be, const char *name);
KtStatus kt_profile_leave(KtBackend *be, KtStatus st);
