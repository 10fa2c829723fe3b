// ZipAR schedule: a step-by-step simulation of the released code's row bookkeeping (row_token_num,
// ongoing_row_list, the auxiliary token and the completion feed), recorded as (token cell, position, output cell).
// ref: ThisisBillhe/ZipAR generate_zipar.py decode_n_tokens_zipar; spec: decoding.md §2.2-2.3
// Dims: g grid side, s window, T class-token positions, r row, c column, cnt[r] tokens sampled in row r.
#include "zipar.h"

#include <stddef.h>

const char *smp_zipar_check(int g, int s) {
    if (g < 3 || g > SMP_ZIPAR_MAX_GRID) return "ZipAR needs a token grid of 3 to 256 rows";
    if (s < 2 || s > g - 1) return "the ZipAR window must be in [2, grid - 1]";
    return NULL;
}

typedef struct {
    int32_t *first;
    SmpZiparFeed *feeds;
    int nf, ne, max_feeds, cur;
} Rec;

static void begin_forward(Rec *rc) {
    if (rc->first) rc->first[rc->nf] = rc->ne;
    rc->nf++;
    rc->cur = 0;
}

static void feed(Rec *rc, int32_t tok, int32_t pos, int32_t out) {
    if (rc->feeds) rc->feeds[rc->ne] = (SmpZiparFeed){tok, pos, out};
    rc->ne++;
    if (++rc->cur > rc->max_feeds) rc->max_feeds = rc->cur;
}

static void simulate(int g, int s, int T, Rec *rc) {
    int cnt[SMP_ZIPAR_MAX_GRID] = {0}, active[SMP_ZIPAR_MAX_GRID], aux[SMP_ZIPAR_MAX_GRID];
    int n_active = 0, completed = -1;
    // phase A: the prefill samples (0, 0), then row 0 one token per forward
    begin_forward(rc);
    feed(rc, -1, T - 1, 0);
    for (int c = 1; c < g; c++) {
        begin_forward(rc);
        feed(rc, c - 1, T + c - 1, c);
    }
    cnt[0] = g;
    active[n_active++] = 1;
    // phase B
    while (cnt[g - 1] < g) {
        begin_forward(rc);
        if (completed >= 0) {  // the completed row's last cell at its own slot; the output is not used
            int cell = completed * g + g - 1;
            feed(rc, cell, T + cell, -1);
            completed = -1;
        }
        int n_now = n_active;
        for (int i = 0; i < n_now; i++) {
            int r = active[i];
            if (cnt[r] > 0) feed(rc, r * g + cnt[r] - 1, T + r * g + cnt[r] - 1, r * g + cnt[r]);
            else if (r == 1) feed(rc, g - 1, T + g - 1, g);              // the real (0, g-1)
            else feed(rc, aux[r], T + r * g - 1, r * g);                  // auxiliary token in (r-1, g-1)'s slot
        }
        // sampling order = the rows' order; a row reaching s tokens starts the next one, whose auxiliary token is the
        // newest token of the row above the row that triggered it
        for (int i = 0; i < n_now; i++) {
            int r = active[i];
            cnt[r]++;
            if (cnt[r] == s && r < g - 1) {  // happens once per row
                aux[r + 1] = (r - 1) * g + cnt[r - 1] - 1;
                active[n_active++] = r + 1;
            }
            if (cnt[r] == g) completed = r;
        }
        int k = 0;
        for (int i = 0; i < n_active; i++)
            if (cnt[active[i]] < g) active[k++] = active[i];
        n_active = k;
    }
}

void smp_zipar_info(int g, int s, SmpZiparInfo *info) {
    Rec rc = {0};
    simulate(g, s, 1, &rc);
    info->n_forwards = rc.nf;
    info->n_feeds = rc.ne;
    info->max_feeds = rc.max_feeds;
    info->phase_b = g;
}

void smp_zipar_plan(int g, int s, int T, int32_t *first, SmpZiparFeed *feeds) {
    Rec rc = {.first = first, .feeds = feeds};
    simulate(g, s, T, &rc);
    first[rc.nf] = rc.ne;
}
