// VAR next-scale sampling with classifier-free guidance: autoregressive_infer_cfg.
// ref: VAR models/var.py VAR.autoregressive_infer_cfg (spec: shared/spec/var.md §3)
// Dims: B images, B2 = 2B rows (conditional rows first, then the null class), T tokens of the scale (pn*pn),
//       L all tokens, C width, V vocabulary, Cv latent channels, Hl latent side, S image side.
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "kernels/profile.h"
#include "var.h"
#include "var_internal.h"

static int64_t max_tokens_per_scale(const VarConfig *c) {
    int64_t best = 0;
    for (int i = 0; i < c->n_scales; i++)
        if ((int64_t)c->patch_nums[i] * c->patch_nums[i] > best) best = (int64_t)c->patch_nums[i] * c->patch_nums[i];
    return best;
}

static KtStatus check_pair(const VarModel *m, const VarVqvae *vq) {
    const VarConfig *c = &m->config;
    const VarVqConfig *q = &vq->config;
    if (c->V != q->V || c->Cvae != q->Cvae)
        return KT_FAIL(KT_ERR_SHAPE, "the VAR transformer (vocabulary %d, %d latent channels) does not match the "
                       "VQVAE (codebook %d x %d): use the VQVAE the model was trained with", c->V, c->Cvae, q->V, q->Cvae);
    if (c->n_scales != q->n_scales || memcmp(c->patch_nums, q->patch_nums, (size_t)c->n_scales * sizeof(int)))
        return KT_FAIL(KT_ERR_ARG, "transformer and VQVAE were set up with different patch schedules");
    return KT_OK;
}

KtStatus var_workspace_init(VarWorkspace *ws, const VarModel *m, const VarVqvae *vq, int max_batch) {
    memset(ws, 0, sizeof *ws);
    KT_TRY(check_pair(m, vq));
    if (max_batch < 1 || max_batch > vq->max_batch)
        return KT_FAIL(KT_ERR_ARG, "--batch %d: expected 1 to %d (the VQVAE workspace)", max_batch, vq->max_batch);
    KtStatus st = var_ws_alloc(ws, m, vq, 2 * (int64_t)max_batch, max_tokens_per_scale(&m->config), max_batch);
    if (st != KT_OK) var_workspace_free(ws);
    return st;
}

// Step-0 tokens: x[r] = class_emb[label_r] + pos_start + lvl_pos[0] for all B2 rows.
static KtStatus first_tokens(VarModel *m, VarWorkspace *ws, int64_t B2) {
    int64_t C = m->config.C;
    KtTensor x = kt_reshape2(&ws->x, B2, C), cond = kt_reshape2(&ws->cond, B2, C);  // (B2, C)
    KtTensor pos0 = kt_reshape1(&m->pos_start, C), lvl0 = kt_slice0(&m->lvl_pos, 0, 1);  // (C), (1, C)
    KtTensor lvl0v = kt_reshape1(&lvl0, C);
    KT_TRY(kt_add(m->be, &x, &cond, &pos0));
    return kt_add(m->be, &x, &x, &lvl0v);
}

// Next scale's tokens from the cumulative latent: word_embed(AREA(f_hat -> pn')) + lvl_pos, duplicated for the
// null-class rows.
static KtStatus next_tokens(VarModel *m, VarVqvae *vq, VarWorkspace *ws, int64_t B, int si) {
    const VarConfig *c = &m->config;
    int64_t pn = c->patch_nums[si + 1], T = pn * pn, C = c->C;
    KtTensor nx = kt_reshape4(&ws->next_in, B, pn, pn, c->Cvae);  // (B, pn', pn', Cv)
    KtTensor f_hat = kt_slice0(&ws->f_hat, 0, B);
    KT_TRY(kt_resize_area(m->be, &nx, &f_hat));
    KtTensor x = kt_reshape3(&ws->x, 2 * B, T, C);  // (B2, T', C)
    KtTensor xc = kt_slice0(&x, 0, B), xu = kt_slice0(&x, B, B);
    KtTensor nx3 = kt_reshape3(&nx, B, T, c->Cvae);
    KtTensor lvl = kt_slice0(&m->lvl_pos, c->begin[si + 1], T);  // (T', C)
    KT_TRY(kt_linear(m->be, &xc, &nx3, &m->word_embed_w, &m->word_embed_b));
    KT_TRY(kt_add(m->be, &xc, &xc, &lvl));
    (void)vq;
    return kt_copy(m->be, &xu, &xc);
}

// Non-finite counters: slot si*(D+1)+i counts block i's output at scale si (only when diagnosing), slot
// si*(D+1)+D the CFG logits of scale si, the last slot the decoded pixels.
static KtTensor check_slot(VarWorkspace *ws, const VarConfig *c, int si, int i) {
    int64_t idx = si < 0 ? (int64_t)c->n_scales * (c->depth + 1) : (int64_t)si * (c->depth + 1) + i;
    return kt_slice0(&ws->nonfinite, idx, 1);
}

// Host copy of the CFG logits of one scale into logits_out (B, L, V).
static KtStatus save_logits(VarModel *m, const KtTensor *lc, int64_t B, int si, float *out) {
    const VarConfig *c = &m->config;
    int64_t T = lc->shape[1], V = c->V;
    float *tmp = malloc((size_t)kt_numel(lc) * sizeof *tmp);
    if (!tmp) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = kt_download(m->be, tmp, lc);
    for (int64_t b = 0; st == KT_OK && b < B; b++)
        memcpy(out + (b * c->L + c->begin[si]) * V, tmp + b * T * V, (size_t)(T * V) * sizeof *tmp);
    free(tmp);
    return st;
}

static KtStatus download_tokens(VarModel *m, VarWorkspace *ws, int64_t B, int32_t *out) {
    const VarConfig *c = &m->config;
    int32_t *tmp = malloc((size_t)(c->L * B) * sizeof *tmp);
    if (!tmp) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtTensor all = kt_slice0(&ws->tokens, 0, c->L * B);
    KtStatus st = kt_download(m->be, tmp, &all);
    for (int si = 0; st == KT_OK && si < c->n_scales; si++) {  // scale-major (B*begin offsets) -> (B, L)
        int64_t T = c->begin[si + 1] - c->begin[si];
        for (int64_t b = 0; b < B; b++)
            memcpy(out + b * c->L + c->begin[si], tmp + B * c->begin[si] + b * T, (size_t)T * sizeof *tmp);
    }
    free(tmp);
    return st;
}

// One scale: blocks over the new tokens, head, CFG mix, sampling, and the latent update.
static KtStatus run_scale(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int64_t B, int si,
                          float *logits_out) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    int64_t pn = c->patch_nums[si], T = pn * pn, t0 = c->begin[si], B2 = 2 * B;
    float ratio = (float)si / (float)(c->n_scales - 1);
    KtTensor x = kt_reshape3(&ws->x, B2, T, c->C), h = kt_reshape3(&ws->h, B2, T, c->C);
    for (int i = 0; i < c->depth; i++) {
        KT_TRY(var_block_forward(m, ws, i, B2, T, t0, NULL));
        if (ws->diagnose) {  // block i's output is x + gamma2 * h (the residual is added by the next LayerNorm)
            KtTensor slot = check_slot(ws, c, si, i);
            KT_TRY(kt_count_nonfinite(be, &slot, &x));
            KT_TRY(kt_count_nonfinite(be, &slot, &h));
        }
    }
    KtTensor logits, lc = kt_reshape3(&ws->logits_cfg, B, T, c->V);  // (B2, T, V) -> (B, T, V)
    KT_TRY(var_head_forward(m, ws, B2, T, &logits));
    KT_TRY(kt_cfg_combine(be, &lc, &logits, p->cfg * ratio));
    KtTensor slot = check_slot(ws, c, si, c->depth);
    KT_TRY(kt_count_nonfinite(be, &slot, &lc));
    if (logits_out) KT_TRY(save_logits(m, &lc, B, si, logits_out));

    KtTensor tok = kt_reshape2(&ws->tokens, B, T), ids = kt_slice0(&ws->image_ids, 0, B);
    tok.data = (int32_t *)ws->tokens.data + B * t0;  // scale-major token storage
    KT_TRY(kt_sample_top_k_top_p(be, &tok, &lc, &ids, t0, p->smp));
    KtTensor f_hat = kt_slice0(&ws->f_hat, 0, B);
    if (p->more_smooth) {  // Gumbel-softmax latents from the masked logits; the sampled tokens are not used
        KtTensor hs = kt_reshape3(&ws->h_smooth, B, T, c->Cvae);
        KT_TRY(kt_smooth_embed(be, &hs, &lc, &vq->codebook, ratio, &ids, t0, p->smp.seed));
        KtTensor h4 = kt_reshape4(&hs, B, pn, pn, c->Cvae);
        KT_TRY(vq_var_add_scale_latent(vq, &f_hat, &h4, si));
    } else {
        KtTensor idx = kt_reshape1(&tok, B * T);
        KT_TRY(vq_var_add_scale(vq, &f_hat, &idx, si, (int)B));
    }
    return si + 1 < c->n_scales ? next_tokens(m, vq, ws, B, si) : KT_OK;
}

// Everything between the uploads and the downloads: device work only, so it can be captured as one graph.
static KtStatus run_all(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int64_t B,
                        float *logits_out) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    KT_TRY(kt_zero(be, &ws->nonfinite));
    KT_TRY(var_cond_prepare(m, ws, 2 * B));
    KT_TRY(first_tokens(m, ws, 2 * B));
    KtTensor f_hat = kt_slice0(&ws->f_hat, 0, B);
    KT_TRY(kt_zero(be, &f_hat));
    for (int si = 0; si < c->n_scales; si++) KT_TRY(run_scale(m, vq, ws, p, B, si, logits_out));
    KtTensor img = kt_slice0(&ws->img, 0, B), px = kt_slice0(&ws->pixels, 0, B), slot = check_slot(ws, c, -1, 0);
    KT_TRY(vq_var_decode(vq, &img, &f_hat));
    return kt_image_to_u8(be, &px, &img, &slot);
}

static bool same_params(const VarSampleParams *a, const VarSampleParams *b) {
    return a->cfg == b->cfg && a->more_smooth == b->more_smooth && a->smp.seed == b->smp.seed &&
           a->smp.top_k == b->smp.top_k && a->smp.top_p == b->smp.top_p && a->smp.temperature == b->smp.temperature;
}

typedef struct {
    VarModel *m;
    VarVqvae *vq;
    VarWorkspace *ws;
    const VarSampleParams *p;
    int64_t B;
} RunAll;

static KtStatus record_run_all(void *ctx) {
    RunAll *a = ctx;
    return run_all(a->m, a->vq, a->ws, a->p, a->B, NULL);
}

// Replays the captured graph when batch and settings match; otherwise runs eagerly (which also sizes every scratch
// buffer) and captures the graph for the next call. Backends without graphs always run eagerly.
static KtStatus run_graphed(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int64_t B) {
    KtBackend *be = m->be;
    if (ws->graph.handle && ws->graph_batch == B && same_params(&ws->graph_params, p) && kt_graphs_on(be))
        return kt_graph_launch(be, &ws->graph);
    kt_graph_free(&ws->graph);
    KT_TRY(run_all(m, vq, ws, p, B, NULL));
    if (ws->graphs_unsupported) return KT_OK;
    RunAll a = {m, vq, ws, p, B};
    KT_TRY(kt_graph_record(be, &ws->graph, record_run_all, &a, &ws->graphs_unsupported));
    ws->graph_batch = (int)B;
    ws->graph_params = *p;
    return KT_OK;
}

// Downloads the counters. A sampler that met a row without finite logits reports KT_ERR_NUMERIC at its next sync
// point (CUDA) or on return (CPU); the counters then say where the values broke, so read past that report once.
static KtStatus read_counters(VarModel *m, VarWorkspace *ws, int64_t *cnt) {
    KtStatus st = kt_download(m->be, cnt, &ws->nonfinite);
    return st == KT_ERR_NUMERIC ? kt_download(m->be, cnt, &ws->nonfinite) : st;
}

// Reads the non-finite counters; on trouble re-runs eagerly with per-block checks to name the first bad layer.
static KtStatus check_counters(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int64_t B) {
    const VarConfig *c = &m->config;
    int64_t n = kt_numel(&ws->nonfinite), *cnt = malloc((size_t)n * sizeof *cnt), first = -1;
    if (!cnt) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = read_counters(m, ws, cnt);
    for (int64_t i = 0; st == KT_OK && i < n && first < 0; i++)
        if (cnt[i]) first = i;
    if (st == KT_OK && first >= 0) {  // find the layer: same inputs, per-block counters
        ws->diagnose = true;
        st = run_all(m, vq, ws, p, B, NULL);
        ws->diagnose = false;
        if (st == KT_OK || st == KT_ERR_NUMERIC) st = read_counters(m, ws, cnt);
        for (int64_t i = 0; st == KT_OK && i < n; i++)
            if (cnt[i]) {
                first = i;
                break;
            }
    }
    if (st == KT_OK && first >= 0) {
        int64_t per = c->depth + 1, si = first / per, i = first % per;
        const char *hint = "broken weights, or a reduced-precision overflow: try --dtype fp32";
        if (first == n - 1)
            st = KT_FAIL(KT_ERR_NUMERIC, "VQVAE decoder: %lld non-finite pixel values (%s)", (long long)cnt[first], hint);
        else if (i == c->depth)
            st = KT_FAIL(KT_ERR_NUMERIC, "scale %lld: %lld non-finite logits (%s)", (long long)si, (long long)cnt[first], hint);
        else
            st = KT_FAIL(KT_ERR_NUMERIC, "scale %lld, block %lld: %lld non-finite activations (%s)", (long long)si,
                         (long long)i, (long long)cnt[first], hint);
    }
    free(cnt);
    return st;
}

KtStatus var_generate(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int B,
                      const int32_t *labels, const int64_t *image_ids, const VarOutputs *out) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    if (B < 1 || B > ws->max_batch)
        return KT_FAIL(KT_ERR_ARG, "batch %d outside [1, %d] (the workspace size)", B, ws->max_batch);
    KT_TRY(var_check_labels(c, B, labels));
    int32_t *lab2 = malloc((size_t)(2 * B) * sizeof *lab2);
    if (!lab2) return KT_FAIL(KT_ERR_OOM, "out of memory");
    for (int b = 0; b < B; b++) {
        lab2[b] = labels[b];
        lab2[B + b] = c->num_classes;  // the null class row of CFG
    }
    KtTensor lab = kt_slice0(&ws->labels, 0, 2 * (int64_t)B), ids = kt_slice0(&ws->image_ids, 0, B);
    KtStatus st = kt_upload(be, &lab, lab2);
    free(lab2);
    KT_TRY(st);
    KT_TRY(kt_upload(be, &ids, image_ids));
    // host copies of the logits per scale need the eager path; otherwise replay (or capture) the graph
    st = out && out->logits ? run_all(m, vq, ws, p, B, out->logits) : run_graphed(m, vq, ws, p, B);
    if (st != KT_OK && st != KT_ERR_NUMERIC) return st;
    KT_TRY(check_counters(m, vq, ws, p, B));  // names the scale and block when values went non-finite
    KT_TRY(st);
    KtTensor img = kt_slice0(&ws->img, 0, B), px = kt_slice0(&ws->pixels, 0, B);
    if (out && out->pixels) KT_TRY(kt_download(be, out->pixels, &px));
    if (out && out->image) KT_TRY(kt_download(be, out->image, &img));
    if (out && out->tokens) KT_TRY(download_tokens(m, ws, B, out->tokens));
    return KT_OK;
}
