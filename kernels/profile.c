// Per-op timing (see profile.h): rows by op name; device spans queued as mark pairs and read back in batches.
#include "profile.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double host_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// The row of `name` (names are string literals: compared by address, then by text), added when new; NULL when the
// table is full (that op goes uncounted).
static KtProfileRow *row(KtProfile *p, const char *name) {
    for (int i = 0; i < p->n_rows; i++)
        if (p->rows[i].name == name || !strcmp(p->rows[i].name, name)) return &p->rows[i];
    if (p->n_rows == KT_PROFILE_MAX_OPS) return NULL;
    KtProfileRow *r = &p->rows[p->n_rows++];
    r->name = name, r->calls = 0, r->ms = 0;
    return r;
}

static void count(KtProfile *p, const char *name, double ms) {
    KtProfileRow *r = row(p, name);
    if (r) r->calls++, r->ms += ms;
}

// Reads back the queued device spans (waits for them); on a failure the rest are dropped.
static KtStatus drain(KtBackend *be) {
    KtProfile *p = be->prof;
    KtStatus st = KT_OK;
    for (int i = 0; st == KT_OK && i < p->n_pending; i++) {
        float ms = 0;
        st = be->ops->prof_elapsed(be, p->pending[i].mark, p->pending[i].mark + 1, &ms);
        if (st == KT_OK) count(p, p->pending[i].name, ms);
    }
    p->n_pending = 0;
    return st;
}

KtStatus kt_profile_start(KtBackend *be) {
    if (!be->prof && !(be->prof = calloc(1, sizeof *be->prof))) return KT_FAIL(KT_ERR_OOM, "profile: out of memory");
    memset(be->prof, 0, sizeof *be->prof);
    be->prof->active = true;
    return KT_OK;
}

KtStatus kt_profile_stop(KtBackend *be) {
    if (!be->prof) return KT_OK;
    KtStatus st = drain(be);
    be->prof->active = false;
    return st;
}

static int by_time(const void *a, const void *b) {
    double x = ((const KtProfileRow *)a)->ms, y = ((const KtProfileRow *)b)->ms;
    return (x < y) - (x > y);
}

KtStatus kt_profile_report(KtBackend *be, FILE *f) {
    KtProfile *p = be->prof;
    if (!p) return KT_OK;
    KT_TRY(drain(be));
    KtProfileRow rows[KT_PROFILE_MAX_OPS];
    memcpy(rows, p->rows, sizeof rows);
    qsort(rows, (size_t)p->n_rows, sizeof *rows, by_time);
    double total = 0;
    for (int i = 0; i < p->n_rows; i++) total += rows[i].ms;
    fprintf(f, "| op | calls | total ms | mean us | share |\n|---|---|---|---|---|\n");
    for (int i = 0; i < p->n_rows; i++)
        fprintf(f, "| %s | %lld | %.3f | %.1f | %.1f%% |\n", rows[i].name, rows[i].calls, rows[i].ms,
                rows[i].calls ? 1e3 * rows[i].ms / (double)rows[i].calls : 0.0,
                total > 0 ? 100.0 * rows[i].ms / total : 0.0);
    fprintf(f, "| all ops | | %.3f | | |\n", total);
    return KT_OK;
}

bool kt_graphs_on(const KtBackend *be) { return !(be->prof && be->prof->active); }

void kt_profile_enter(KtBackend *be, const char *name) {
    KtProfile *p = be->prof;
    if (!p || !p->active) return;
    if (p->open) {  // an op inside an op: only the outer one is timed
        p->depth++;
        return;
    }
    p->open = name;
    p->unmarked = false;
    if (!be->ops->prof_mark) {
        p->t_open = host_seconds();
        return;
    }
    // A failing read-back or start mark (before the op runs) leaves this op uncounted and no error behind: the op's
    // own status is what the caller sees.
    if ((p->n_pending == KT_PROFILE_PENDING && drain(be) != KT_OK) || be->ops->prof_mark(be, 2 * p->n_pending) != KT_OK) {
        kt_clear_error();
        p->unmarked = true;
    }
}

KtStatus kt_profile_leave(KtBackend *be, KtStatus st) {
    KtProfile *p = be->prof;
    if (!p || !p->active || !p->open) return st;
    if (p->depth) {
        p->depth--;
        return st;
    }
    if (st != KT_OK || p->unmarked) {  // uncounted (a failed op keeps its own error message as the last one)
    } else if (!be->ops->prof_mark) {
        count(p, p->open, 1e3 * (host_seconds() - p->t_open));
    } else if (be->ops->prof_mark(be, 2 * p->n_pending + 1) == KT_OK) {
        int i = p->n_pending++;
        p->pending[i].name = p->open;
        p->pending[i].mark = 2 * i;
    } else {
        kt_clear_error();
    }
    p->open = NULL;
    return st;
}
