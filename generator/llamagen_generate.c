// LlamaGen sampling loops: sequential (the official generate: one token per forward, sampled on the device),
// speculative Jacobi decoding (windows of drafts verified on the host by samplers/sjd.c, any number of images with
// ragged windows in one forward) and ZipAR (the samplers/zipar.c schedule: spatially adjacent rows in flight).
// ref: LlamaGen autoregressive/models/generate.py (generate, prefill, decode_n_tokens); SJD: Accelerating-T2I-AR-
//      with-SJD jacobi_iteration_lumina_mgpt.py; ZipAR: LlamaGen-ZipAR generate_zipar.py.
//      spec: shared/spec/raster.md §5-6, shared/spec/decoding.md §1-3
// Dims: B images, B2 rows (2B with CFG), T tokens per forward, V vocabulary, N image tokens, g grid side,
//       L SJD window, s ZipAR window. Image token n sits at sequence position 1 + n (the class token at 0).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "kernels/profile.h"
#include "llamagen.h"
#include "samplers/zipar.h"

void llamagen_sample_params_default(LlamaSampleParams *p) {
    memset(p, 0, sizeof *p);
    p->cfg = 4.0f;
    p->cfg_interval = -1.0f;
    p->smp = smp_params_default();
    p->smp.top_k = 2000;
    p->smp.top_p = 1.0f;
    p->decode = LLAMA_DECODE_SEQUENTIAL;
    p->sjd_window = 16;
    p->zipar_window = 8;
}

KtStatus llamagen_check_params(const LlamaConfig *c, const LlamaSampleParams *p) {
    if (!(p->cfg >= 0) || p->cfg > 1e4f) return KT_FAIL(KT_ERR_ARG, "--cfg: expected a number >= 0, got %g", p->cfg);
    if (!isfinite(p->cfg_interval)) return KT_FAIL(KT_ERR_ARG, "--cfg-interval: expected a number");
    if (p->smp.top_k < 0) return KT_FAIL(KT_ERR_ARG, "--top-k: expected >= 0, got %d", p->smp.top_k);
    if (!(p->smp.top_p >= 0 && p->smp.top_p <= 1))
        return KT_FAIL(KT_ERR_ARG, "--top-p: expected 0 to 1, got %g", p->smp.top_p);
    if (!(p->smp.temperature > 0) || !isfinite(p->smp.temperature))
        return KT_FAIL(KT_ERR_ARG, "--temperature: expected a number > 0, got %g", p->smp.temperature);
    if (p->decode == LLAMA_DECODE_SJD && (p->sjd_window < 1 || p->sjd_window > 1024))
        return KT_FAIL(KT_ERR_ARG, "--sjd-window: expected 1 to 1024 tokens per forward, got %d", p->sjd_window);
    if (p->decode == LLAMA_DECODE_ZIPAR) {
        const char *why = smp_zipar_check(c->grid, p->zipar_window);
        if (why)
            return KT_FAIL(KT_ERR_ARG, "--zipar-window %d: %s (the token grid is %d x %d%s)", p->zipar_window, why,
                           c->grid, c->grid, p->zipar_window >= c->grid ? "; a window >= the grid is plain "
                           "sequential decoding: use --decode sequential" : "");
    }
    if ((unsigned)p->decode > LLAMA_DECODE_ZIPAR) return KT_FAIL(KT_ERR_ARG, "--decode: unknown strategy %d", p->decode);
    return KT_OK;
}

// Whether image token n (>= 1) is sampled with CFG (decode_n_tokens: step i = n - 1 drops it once i > cfg_interval).
static bool cfg_on_token(const LlamaSampleParams *p, int64_t n) { return !(p->cfg_interval > -1 && n - 1 > p->cfg_interval); }

typedef struct {
    LlamaModel *m;
    LlamaWorkspace *ws;
    const LlamaSampleParams *p;
    int B;
    int64_t B2;
    bool cfg;           // CFG rows present (cfg > 1)
    const int32_t *labels;
} Run;

// ws->in_tok, ws->in_pos rows [0, B2) x T from host (B, T) arrays; the null-class half repeats the first. Queued
// through ws->host_i32 (its first 2 x rows x tmax entries), which is next written after a download: every SJD
// forward ends with one; the sequential and ZipAR loops' only one is the tokens' at the end (through host_i32
// too), which the stream orders after the copies.
static KtStatus upload_inputs(Run *r, int64_t T, const int32_t *tok, const int32_t *pos) {
    int32_t *h = r->ws->host_i32;
    int64_t n = (int64_t)r->B * T;
    for (int half = 0; half < (r->cfg ? 2 : 1); half++) {
        memcpy(h + half * n, tok, (size_t)n * sizeof *h);
        memcpy(h + (r->B2 * T) + half * n, pos, (size_t)n * sizeof *h);
    }
    KtTensor it = kt_slice0(&r->ws->in_tok, 0, r->B2 * T), ip = kt_slice0(&r->ws->in_pos, 0, r->B2 * T);
    KT_TRY(kt_upload_queued(r->m->be, &it, h));
    return kt_upload_queued(r->m->be, &ip, h + r->B2 * T);
}

// The class-token prefill: labels (and the null class) at position 0. logits: (B2, 1, V).
static KtStatus prefill(Run *r, KtTensor *logits) {
    int32_t *h = r->ws->host_i32;
    for (int b = 0; b < r->B; b++) {
        h[b] = r->labels[b];
        if (r->cfg) h[r->B + b] = r->m->config.num_classes;  // the null class
    }
    KtTensor it = kt_slice0(&r->ws->in_tok, 0, r->B2), ip = kt_slice0(&r->ws->in_pos, 0, r->B2);
    KT_TRY(kt_upload_queued(r->m->be, &it, h));  // as upload_inputs
    KT_TRY(kt_zero(r->m->be, &ip));
    return llamagen_forward(r->m, r->ws, r->B2, 1, true, logits);
}

// CFG-combined logits (B, T, V): uncond + (cond - uncond) * cfg, or the conditional rows where plain[b*T + t]
// (NULL: none) or for every row when !all_cfg.
static KtStatus guide(Run *r, const KtTensor *logits, int64_t T, bool all_cfg, const bool *plain, KtTensor *lc) {
    int64_t B = r->B, V = r->m->config.V;
    if (!r->cfg) {
        *lc = kt_reshape3(logits, B, T, V);  // no null-class rows
        return KT_OK;
    }
    *lc = kt_reshape3(&r->ws->logits_cfg, B, T, V);
    KtTensor cond = kt_slice0(logits, 0, B);  // (B, T, V)
    if (!all_cfg) return kt_copy(r->m->be, lc, &cond);
    KT_TRY(kt_cfg_combine(r->m->be, lc, logits, r->p->cfg - 1.0f));  // (1 + t) c - t u with t = cfg - 1
    for (int64_t i = 0; plain && i < B * T; i++) {
        if (!plain[i]) continue;
        KtTensor l2 = kt_reshape2(lc, B * T, V), c2 = kt_reshape2(&cond, B * T, V);
        KtTensor dst = kt_slice0(&l2, i, 1), src = kt_slice0(&c2, i, 1);
        KT_TRY(kt_copy(r->m->be, &dst, &src));
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------ sequential
// Every step on the device: the sampled tokens (seq, position-major) feed the next step without a host round trip,
// and a counter on the device (ws->step) says which token a step is at, so one captured step replays for all.

// Samples token n = step from the guided logits lc (B, 1, V) (in_pos rows [0, B) hold n: the RNG position) into
// seq[n], step++.
static KtStatus sample_guided(Run *r, KtTensor *lc) {
    KtBackend *be = r->m->be;
    LlamaWorkspace *ws = r->ws;
    int64_t B = r->B;
    KtTensor ids = kt_slice0(&ws->image_ids, 0, B), out = kt_slice0(&ws->out_tok, 0, B);  // (B), (B)
    KtTensor pos = kt_slice0(&ws->in_pos, 0, B), out2 = kt_reshape2(&out, B, 1), pos2 = kt_reshape2(&pos, B, 1);
    KT_TRY(kt_sample_llama(be, &out2, lc, &ids, &pos2, r->p->smp));
    return kt_raster_step_commit(be, &ws->seq, &out, &ws->step);
}

// The same from the forward's logits (B2, 1, V), guided here.
static KtStatus sample_commit(Run *r, const KtTensor *logits, bool cfg_on) {
    KtTensor lc;
    KT_TRY(guide(r, logits, 1, cfg_on, NULL, &lc));
    return sample_guided(r, &lc);
}

// One token n = step >= 1: feed token n-1 at position n (both CFG halves), forward, sample token n. With CFG on the
// head applies it (llamagen_forward_cfg: one kernel for the head and the combination where the backend fuses them).
static KtStatus seq_step(Run *r, bool cfg_on) {
    LlamaWorkspace *ws = r->ws;
    KtTensor it = kt_slice0(&ws->in_tok, 0, r->B2), ip = kt_slice0(&ws->in_pos, 0, r->B2), logits;
    KT_TRY(kt_raster_step_inputs(r->m->be, &it, &ip, &ws->seq, &ws->step, r->B));
    if (r->cfg && cfg_on) {
        KT_TRY(llamagen_forward_cfg(r->m, ws, r->B2, 1, r->p->cfg - 1.0f, &logits));  // t = cfg - 1, as guide()
        return sample_guided(r, &logits);
    }
    KT_TRY(llamagen_forward(r->m, ws, r->B2, 1, false, &logits));
    return sample_commit(r, &logits, cfg_on);
}

// What kt_graph_record captures: a sequential step (cfg_on) or a window forward of T tokens.
typedef struct {
    Run *r;
    bool cfg_on;
    int64_t T;
} Recorded;

static KtStatus record_seq_step(void *ctx) {
    Recorded *c = ctx;
    return seq_step(c->r, c->cfg_on);
}

static KtStatus record_forward(void *ctx) {
    Recorded *c = ctx;
    KtTensor logits;
    return llamagen_forward(c->r->m, c->r->ws, c->r->B2, c->T, false, &logits);
}

static bool same_step_key(const LlamaWorkspace *ws, const Run *r) {
    const SmpParams *a = &ws->step_key.smp, *b = &r->p->smp;
    return ws->step_key.B == r->B && ws->step_key.cfg == r->p->cfg && a->seed == b->seed && a->top_k == b->top_k &&
           a->top_p == b->top_p && a->temperature == b->temperature;
}

// seq_step replayed from its captured graph when there is one for these settings; otherwise run eagerly (which sizes
// every scratch buffer) and captured for the next tokens. Backends without graphs always run eagerly.
static KtStatus seq_step_graphed(Run *r, bool cfg_on) {
    KtBackend *be = r->m->be;
    LlamaWorkspace *ws = r->ws;
    if (!same_step_key(ws, r)) {
        kt_graph_free(&ws->step_graph[0]);
        kt_graph_free(&ws->step_graph[1]);
        ws->step_key.B = r->B;
        ws->step_key.cfg = r->p->cfg;
        ws->step_key.smp = r->p->smp;
    }
    KtGraph *g = &ws->step_graph[cfg_on];
    if (g->handle && kt_graphs_on(be)) return kt_graph_launch(be, g);
    KT_TRY(seq_step(r, cfg_on));
    if (ws->graphs_unsupported) return KT_OK;
    Recorded rec = {r, cfg_on, 1};  // recorded, not run: the counter has moved on by one step already
    return kt_graph_record(be, g, record_seq_step, &rec, &ws->graphs_unsupported);
}

static KtStatus run_sequential(Run *r, int32_t *tokens, LlamaStats *stats) {
    KtBackend *be = r->m->be;
    LlamaWorkspace *ws = r->ws;
    const LlamaConfig *c = &r->m->config;
    int64_t B = r->B, N = c->N;
    KtTensor logits;
    KT_TRY(kt_zero(be, &ws->step));
    KT_TRY(prefill(r, &logits));  // the class token at position 0 predicts token 0 (RNG position 0)
    KT_TRY(sample_commit(r, &logits, true));
    for (int64_t n = 1; n < N; n++) KT_TRY(seq_step_graphed(r, cfg_on_token(r->p, n)));
    int32_t *h = ws->host_i32;  // (N, max_batch) -> (B, N)
    KT_TRY(kt_download(be, h, &ws->seq));
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++) tokens[b * N + n] = h[n * ws->max_batch + b];
    stats->forwards += N;
    stats->image_forwards += B * N;
    return KT_OK;
}

// ------------------------------------------------------------------------------------- window forwards (SJD, ZipAR)
// llamagen_forward of B2 rows x T tokens over the inputs already in ws->in_tok / in_pos, replayed from a captured
// graph from the second forward of that shape on (the first runs eagerly, which sizes every scratch buffer; the
// capture then records without running). logits: (B2, T, V).
static KtStatus forward_graphed(Run *r, int64_t T, KtTensor *logits) {
    KtBackend *be = r->m->be;
    LlamaWorkspace *ws = r->ws;
    int i = 0;
    while (i < ws->n_fwd_graphs && !(ws->fwd_graph[i].B2 == r->B2 && ws->fwd_graph[i].T == T)) i++;
    if (i == ws->n_fwd_graphs && i < LLAMA_FWD_GRAPHS) {
        ws->fwd_graph[i].B2 = r->B2, ws->fwd_graph[i].T = T, ws->fwd_graph[i].uses = 0;
        ws->n_fwd_graphs++;
    }
    if (i < ws->n_fwd_graphs && ws->fwd_graph[i].graph.handle && kt_graphs_on(be)) {
        *logits = kt_reshape3(&ws->logits, r->B2, T, r->m->config.V);
        return kt_graph_launch(be, &ws->fwd_graph[i].graph);
    }
    KT_TRY(llamagen_forward(r->m, ws, r->B2, T, false, logits));
    if (i == ws->n_fwd_graphs || ++ws->fwd_graph[i].uses < 2 || ws->graphs_unsupported) return KT_OK;
    Recorded rec = {r, false, T};
    return kt_graph_record(be, &ws->fwd_graph[i].graph, record_forward, &rec, &ws->graphs_unsupported);
}

// ------------------------------------------------------------------------------------------------------- SJD
// Processed distributions of a forward on the host: probs (B, T, V) = softmax(filter(guided logits)).
static KtStatus host_probs(Run *r, const KtTensor *logits, int64_t T, const bool *plain, float *out) {
    KtTensor lc;
    KT_TRY(guide(r, logits, T, true, plain, &lc));
    KT_TRY(kt_probs_llama(r->m->be, &lc, &lc, r->p->smp));
    KT_TRY(kt_download(r->m->be, out, &lc));
    int64_t V = r->m->config.V, rows = (int64_t)r->B * T, bad = INT64_MAX;  // bad: the first row without mass
    // rows spread over the cores from 8 rows (64 KB each at V = 16,384; batch 1 at window 16: 1 MB per forward, ~30 us
    // on one core, while the GPU waits for the host's step)
#pragma omp parallel for schedule(static) reduction(min : bad) if (rows >= 8)
    for (int64_t i = 0; i < rows; i++) {
        // the row's mass (1 unless no logit was finite): 8 float partial sums, independent so the compiler can keep
        // them in vector lanes (one double chain over 16 x 16,384 values was ~0.3 ms of each SJD forward's host time)
        float part[8] = {0};
        const float *row = out + i * V;
        int64_t v = 0;
        for (; v + 8 <= V; v += 8)
            for (int k = 0; k < 8; k++) part[k] += row[v + k];
        double s = 0;
        for (int k = 0; k < 8; k++) s += part[k];
        for (; v < V; v++) s += row[v];
        if (!(s > 0.5 && s < 1.5) && i < bad) bad = i;
    }
    if (bad != INT64_MAX)
        return KT_FAIL(KT_ERR_NUMERIC, "sampling: row %lld of image %lld has no finite logit (non-finite model "
                       "output?)", (long long)(bad % T), (long long)(bad / T));
    return KT_OK;
}

static KtStatus run_sjd(Run *r, int32_t *tokens, LlamaStats *stats) {
    const LlamaConfig *c = &r->m->config;
    const LlamaSampleParams *p = r->p;
    int64_t B = r->B, N = c->N, V = c->V, L = p->sjd_window < N ? p->sjd_window : N;
    SmpSjdParams sp = {.window = (int)L, .V = V, .N = N, .grid_w = c->grid, .init = p->sjd_init,
                       .schedule = p->sjd_schedule, .rule = p->sjd_rule, .seed = p->smp.seed};
    const char *why = smp_sjd_check(&sp);
    if (why) return KT_FAIL(KT_ERR_ARG, "SJD: %s", why);
    KT_TRY(llamagen_workspace_reserve(r->ws, r->m, L));
    LlamaWorkspace *ws = r->ws;
    SmpSjd *st = calloc((size_t)B, sizeof *st);
    float *fbuf = malloc((size_t)(B * smp_sjd_floats(&sp)) * sizeof *fbuf);
    int32_t *draft = malloc((size_t)(B * L) * sizeof *draft), *in = malloc((size_t)(B * L) * sizeof *in);
    int32_t *tok = malloc((size_t)(2 * B * L) * sizeof *tok), *pos = tok + B * L;
    uint8_t *onehot = malloc((size_t)(B * L));
    bool *plain = malloc((size_t)(B * L) * sizeof *plain);
    int *W = malloc((size_t)B * sizeof *W);
    int64_t *ids = malloc((size_t)B * sizeof *ids);
    KtStatus s = st && fbuf && draft && in && tok && onehot && plain && W && ids ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    KtTensor logits, idt = kt_slice0(&ws->image_ids, 0, B);
    if (s == KT_OK) s = kt_download(r->m->be, ids, &idt);
    if (s == KT_OK) s = prefill(r, &logits);
    if (s == KT_OK) s = host_probs(r, &logits, 1, NULL, ws->host_probs);
    for (int64_t b = 0; s == KT_OK && b < B; b++)
        smp_sjd_start(&st[b], &sp, (uint64_t)ids[b], ws->host_probs + b * V, tokens + b * N,
                      fbuf + b * smp_sjd_floats(&sp), draft + b * L, onehot + b * L);
    stats->forwards += 1;
    while (s == KT_OK) {
        int64_t T = 0;
        for (int64_t b = 0; b < B; b++) {
            W[b] = smp_sjd_window(&st[b], in + b * L);
            if (W[b] > T) T = W[b];
        }
        if (T == 0) break;
        // (B, T) inputs: window j of image b is raster index n-1+j at position n+j; short windows repeat their last
        // entry (same token, same slot: identical K/V), finished images re-feed their last token at position N
        for (int64_t b = 0; b < B; b++)
            for (int64_t j = 0; j < T; j++) {
                int64_t jj = W[b] ? (j < W[b] ? j : W[b] - 1) : 0, n = st[b].n;
                tok[b * T + j] = W[b] ? in[b * L + jj] : tokens[b * N + N - 1];
                pos[b * T + j] = (int32_t)(W[b] ? n + jj : N);
                plain[b * T + j] = W[b] && !cfg_on_token(p, n + jj);  // row j predicts raster index n + j
            }
        if ((s = upload_inputs(r, T, tok, pos)) != KT_OK) break;
        if ((s = forward_graphed(r, T, &logits)) != KT_OK) break;
        if ((s = host_probs(r, &logits, T, plain, ws->host_probs)) != KT_OK) break;
        // the images' states are independent: one image per thread (at batch 1 the step spreads its own draws)
#pragma omp parallel for schedule(dynamic) if (B > 1)
        for (int64_t b = 0; b < B; b++)
            if (W[b]) smp_sjd_step(&st[b], ws->host_probs + b * T * V);
        stats->forwards++;
    }
    for (int64_t b = 0; s == KT_OK && b < B; b++) {
        stats->image_forwards += st[b].forwards;
        stats->draft_accepted += st[b].accepted_drafts;
    }
    free(st);
    free(fbuf);
    free(draft);
    free(in);
    free(tok);
    free(onehot);
    free(plain);
    free(W);
    free(ids);
    return s;
}

// ----------------------------------------------------------------------------------------------------- ZipAR
// The plan (feeds) and the sampled tokens stay on the device (ws->plan, ws->seq): each forward gathers its inputs and
// scatters its samples there, so the loop runs without a host round trip; the tokens come back once at the end.
static KtStatus run_zipar(Run *r, int32_t *tokens, LlamaStats *stats) {
    const LlamaConfig *c = &r->m->config;
    const LlamaSampleParams *p = r->p;
    KtBackend *be = r->m->be;
    int64_t B = r->B, N = c->N, g = c->grid;
    SmpZiparInfo info;
    smp_zipar_info((int)g, p->zipar_window, &info);
    KT_TRY(llamagen_workspace_reserve(r->ws, r->m, info.max_feeds));
    LlamaWorkspace *ws = r->ws;
    if (info.n_feeds > ws->plan.shape[0])
        return KT_FAIL(KT_ERR_ARG, "ZipAR: %d feeds exceed the workspace's %lld", info.n_feeds,
                       (long long)ws->plan.shape[0]);
    int32_t *first = malloc((size_t)(info.n_forwards + 1) * sizeof *first);
    SmpZiparFeed *feeds = malloc((size_t)info.n_feeds * sizeof *feeds);  // 3 int32 each: the (n_feeds, 3) plan
    KtStatus s = first && feeds ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    if (s == KT_OK) smp_zipar_plan((int)g, p->zipar_window, 1, first, feeds);
    KtTensor plan = kt_slice0(&ws->plan, 0, info.n_feeds);
    if (s == KT_OK) s = kt_upload(be, &plan, feeds);
    KtTensor ids = kt_slice0(&ws->image_ids, 0, B), logits, lc;
    int64_t generated_b = 0;  // tokens sampled by the ZipAR loop (phase B) so far: its cfg_interval counter
    for (int f = 0; s == KT_OK && f < info.n_forwards; f++) {
        int64_t T = first[f + 1] - first[f];
        KtTensor fe = kt_slice0(&plan, first[f], T);  // (T, 3)
        KtTensor it = kt_slice0(&ws->in_tok, 0, r->B2 * T), ip = kt_slice0(&ws->in_pos, 0, r->B2 * T);
        KtTensor sp = kt_slice0(&ws->smp_pos, 0, B * T), out = kt_slice0(&ws->out_tok, 0, B * T);
        KtTensor it2 = kt_reshape2(&it, r->B2, T), ip2 = kt_reshape2(&ip, r->B2, T);
        KtTensor sp2 = kt_reshape2(&sp, B, T), out2 = kt_reshape2(&out, B, T);
        // inputs and the sampler's positions (-1: the completion feed's output is not sampled); the prefill then
        // puts the class labels in place of forward 0's tokens
        if ((s = kt_raster_window_inputs(be, &it2, &ip2, &sp2, &fe, &ws->seq)) != KT_OK) break;
        s = f == 0 ? prefill(r, &logits) : forward_graphed(r, T, &logits);
        if (s != KT_OK) break;
        // CFG flag as the reference: row 0 by decode step (f - 1), the ZipAR loop by its generated-token count
        bool on = f == 0 || (f < info.phase_b ? cfg_on_token(p, f) : !(p->cfg_interval > -1 && generated_b > p->cfg_interval));
        if ((s = guide(r, &logits, T, on, NULL, &lc)) != KT_OK) break;
        if ((s = kt_sample_llama(be, &out2, &lc, &ids, &sp2, p->smp)) != KT_OK) break;
        if ((s = kt_raster_window_commit(be, &ws->seq, &out2, &fe)) != KT_OK) break;
        for (int64_t j = 0; f >= info.phase_b && j < T; j++) generated_b += feeds[first[f] + j].out_cell >= 0;
        stats->forwards++;
        stats->image_forwards += B;
    }
    int32_t *h = ws->host_i32;  // (N, max_batch) -> (B, N)
    if (s == KT_OK) s = kt_download(be, h, &ws->seq);
    for (int64_t b = 0; s == KT_OK && b < B; b++)
        for (int64_t n = 0; n < N; n++) tokens[b * N + n] = h[n * ws->max_batch + b];
    free(first);
    free(feeds);
    return s;
}

// ---------------------------------------------------------------------------------------------------- entry
KtStatus llamagen_generate(LlamaModel *m, LlamaWorkspace *ws, const LlamaSampleParams *p, int B, const int32_t *labels,
                           const int64_t *image_ids, int32_t *tokens, LlamaStats *stats) {
    const LlamaConfig *c = &m->config;
    if (B < 1 || B > ws->max_batch)
        return KT_FAIL(KT_ERR_ARG, "batch %d outside [1, %d] (the workspace size)", B, ws->max_batch);
    KT_TRY(llamagen_check_labels(c, B, labels));
    KT_TRY(llamagen_check_params(c, p));
    LlamaStats local = {0};
    if (!stats) stats = &local;
    Run r = {.m = m, .ws = ws, .p = p, .B = B, .cfg = p->cfg > 1.0f, .labels = labels};
    r.B2 = r.cfg ? 2 * B : B;
    if (p->decode == LLAMA_DECODE_SJD) {  // the workspace may be re-carved for the window: reserve first
        int64_t L = p->sjd_window < c->N ? p->sjd_window : c->N;
        KT_TRY(llamagen_workspace_reserve(ws, m, L));
    } else if (p->decode == LLAMA_DECODE_ZIPAR) {
        SmpZiparInfo info;
        smp_zipar_info(c->grid, p->zipar_window, &info);
        KT_TRY(llamagen_workspace_reserve(ws, m, info.max_feeds));
    }
    KtTensor ids = kt_slice0(&ws->image_ids, 0, B);
    KT_TRY(kt_upload(m->be, &ids, image_ids));
    KT_TRY(llamagen_cache_clear(m, ws, r.B2));  // setup_caches: zero K/V on every call (ZipAR reads unwritten slots)
    KtStatus s = p->decode == LLAMA_DECODE_SJD     ? run_sjd(&r, tokens, stats)
                 : p->decode == LLAMA_DECODE_ZIPAR ? run_zipar(&r, tokens, stats)
                                                   : run_sequential(&r, tokens, stats);
    if (s == KT_OK) {
        stats->images += B;
        stats->tokens += (int64_t)B * c->N;
    }
    return s;
}
