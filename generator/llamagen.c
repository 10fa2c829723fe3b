// LlamaGen GPT forward: embeddings, pre-norm blocks (RMSNorm, 2D-RoPE attention over the positional KV cache,
// SwiGLU), the head; the workspace; the teacher-forced pass.
// ref: LlamaGen autoregressive/models/gpt.py Transformer.forward, TransformerBlock.forward, Attention.forward,
//      FeedForward.forward, RMSNorm; spec: shared/spec/raster.md §3-5
// Dims: B2 rows, T tokens per row, R = B2*T, D width, NH heads, HS head size, F SwiGLU hidden, V vocabulary,
//       Lc cache rows, P sequence positions, N image tokens.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "llamagen.h"

// ------------------------------------------------------------------------------------------------- workspace
// hdt: dtype of the GEMM inputs hn, att, g (the layers' weight dtype).
static KtStatus ws_carve(LlamaWorkspace *ws, KtArena *a, const LlamaConfig *c, KtDType hdt, int64_t B, int64_t tmax) {
    int64_t rows = 2 * B, R = rows * tmax, D = c->D;
#define F32(t, n, what) KT_TRY(kt_arena_tensor(a, (t), KT_F32, 1, (int64_t[]){(n)}, (what)))
#define I32(t, n, what) KT_TRY(kt_arena_tensor(a, (t), KT_I32, 1, (int64_t[]){(n)}, (what)))
#define GEMM_IN(t, n, what) KT_TRY(kt_arena_tensor(a, (t), hdt, 1, (int64_t[]){(n)}, (what)))
    F32(&ws->x, R * D, "x");
    F32(&ws->h, R * D, "h");
    GEMM_IN(&ws->hn, R * D, "normed x");
    F32(&ws->qkv, R * 3 * D, "qkv");
    F32(&ws->q, R * D, "q");
    GEMM_IN(&ws->att, R * D, "att");
    F32(&ws->a13, R * 2 * c->F, "ffn w1|w3 out");
    GEMM_IN(&ws->g, R * c->F, "ffn gate");
    F32(&ws->logits, R * c->V, "logits");
    F32(&ws->logits_cfg, B * tmax * c->V, "cfg logits");
    for (int i = 0; i < c->n_layer; i++) {  // in the GEMM dtype: bf16/fp16 on CUDA with 16-bit weights (half the
                                             // bytes the decode step's attention reads), float32 on the CPU
        int64_t shape[4] = {rows, c->n_heads, c->cache_len, c->head_size};
        KT_TRY(kt_arena_tensor(a, &ws->kcache[i], hdt, 4, shape, "k cache"));
        KT_TRY(kt_arena_tensor(a, &ws->vcache[i], hdt, 4, shape, "v cache"));
    }
    I32(&ws->in_tok, R, "input tokens");
    I32(&ws->in_pos, R, "input positions");
    I32(&ws->smp_pos, B * tmax, "sample positions");
    KT_TRY(kt_arena_tensor(a, &ws->image_ids, KT_I64, 1, (int64_t[]){B}, "image ids"));
    KT_TRY(kt_arena_tensor(a, &ws->seq, KT_I32, 2, (int64_t[]){c->N, B}, "sampled tokens"));
    KT_TRY(kt_arena_tensor(a, &ws->plan, KT_I32, 2, (int64_t[]){2 * c->N, 3}, "ZipAR plan"));
    I32(&ws->out_tok, B * tmax, "step tokens");
    I32(&ws->step, 1, "step counter");
#undef F32
#undef I32
#undef GEMM_IN
    return KT_OK;
}

KtStatus llamagen_workspace_init(LlamaWorkspace *ws, const LlamaModel *m, int max_batch, int64_t tmax) {
    memset(ws, 0, sizeof *ws);
    const LlamaConfig *c = &m->config;
    if (max_batch < 1 || tmax < 1 || tmax > c->P)
        return KT_FAIL(KT_ERR_ARG, "LlamaGen workspace: batch %d / %lld tokens per forward out of range", max_batch,
                       (long long)tmax);
    ws->max_batch = max_batch;
    ws->rows = 2 * (int64_t)max_batch;
    ws->tmax = tmax;
    KtArena sizing;
    kt_arena_measure(&sizing);
    KtDType hdt = m->layers[0].wqkv.dtype;
    KtStatus st = ws_carve(ws, &sizing, c, hdt, max_batch, tmax);
    if (st == KT_OK) st = kt_arena_init(&ws->arena, m->be, sizing.used);
    if (st == KT_OK) st = ws_carve(ws, &ws->arena, c, hdt, max_batch, tmax);
    // host_probs (max_batch * tmax * V floats), then host_i32 (seq is downloaded through it too: N x max_batch)
    size_t nprob = (size_t)max_batch * (size_t)tmax * (size_t)c->V;
    size_t ni32 = (size_t)(3 * ws->rows * tmax + c->N * max_batch);
    if (st == KT_OK) st = kt_host_buffer_alloc(m->be, &ws->host, nprob * sizeof(float) + ni32 * sizeof(int32_t));
    if (st == KT_OK) {
        ws->host_probs = ws->host.data;
        ws->host_i32 = (int32_t *)(ws->host_probs + nprob);
    }
    if (st != KT_OK) llamagen_workspace_free(ws);
    return st;
}

void llamagen_workspace_free(LlamaWorkspace *ws) {
    if (!ws) return;
    kt_graph_free(&ws->step_graph[0]);  // graphs hold the arena's addresses
    kt_graph_free(&ws->step_graph[1]);
    for (int i = 0; i < ws->n_fwd_graphs; i++) kt_graph_free(&ws->fwd_graph[i].graph);
    kt_arena_free(&ws->arena);
    kt_buffer_free(&ws->host);
    memset(ws, 0, sizeof *ws);
}

KtStatus llamagen_workspace_reserve(LlamaWorkspace *ws, const LlamaModel *m, int64_t tmax) {
    if (tmax <= ws->tmax) return KT_OK;
    int max_batch = ws->max_batch;
    llamagen_workspace_free(ws);
    return llamagen_workspace_init(ws, m, max_batch, tmax);
}

KtStatus llamagen_cache_clear(LlamaModel *m, LlamaWorkspace *ws, int64_t B2) {
    for (int i = 0; i < m->config.n_layer; i++) {
        KtTensor k = kt_slice0(&ws->kcache[i], 0, B2), v = kt_slice0(&ws->vcache[i], 0, B2);
        KT_TRY(kt_zero(m->be, &k));
        KT_TRY(kt_zero(m->be, &v));
    }
    return KT_OK;
}

KtStatus llamagen_check_labels(const LlamaConfig *c, int B, const int32_t *labels) {
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= c->num_classes)
            return KT_FAIL(KT_ERR_ARG, "--class: class %d is outside [0, %d) (the model has %d classes)", labels[b],
                           c->num_classes, c->num_classes);
    return KT_OK;
}

// ----------------------------------------------------------------------------------------------------- forward
// x (B2, T, D) += Attn(RMSNorm(x)); x += FFN(RMSNorm(x)) for layer i. pos: (B2, T) sequence positions.
// Five ops: the norms ride on the GEMMs after them and the residual adds on the GEMMs before them (a backend may run
// each as one kernel at small batch; the CPU runs the compositions).
static KtStatus layer_forward(LlamaModel *m, LlamaWorkspace *ws, int i, int64_t B2, int64_t T, const KtTensor *pos) {
    KtBackend *be = m->be;
    const LlamaConfig *c = &m->config;
    const LlamaLayer *l = &m->layers[i];
    int64_t D = c->D, NH = c->n_heads, HS = c->head_size;
    float eps = c->norm_eps;
    KtTensor x = kt_reshape3(&ws->x, B2, T, D);                // (B2, T, D) residual stream
    KtTensor h = kt_reshape3(&ws->h, B2, T, D);                // (B2, T, D) scratch: sub-block output
    KtTensor hn = kt_reshape3(&ws->hn, B2, T, D);              // (B2, T, D) scratch: normed x (matmul dtype)
    KtTensor qkv = kt_reshape3(&ws->qkv, B2, T, 3 * D);        // (B2, T, 3D)
    KtTensor q = kt_reshape4(&ws->q, B2, NH, T, HS);           // (B2, NH, T, HS)
    KtTensor att = kt_reshape3(&ws->att, B2, T, D);            // (B2, T, D) GEMM input (matmul dtype)
    KtTensor a13 = kt_reshape3(&ws->a13, B2, T, 2 * c->F);     // (B2, T, 2F) scratch: w1 x | w3 x
    KtTensor g = kt_reshape3(&ws->g, B2, T, c->F);             // (B2, T, F) GEMM input (matmul dtype)
    KtTensor kc = kt_slice0(&ws->kcache[i], 0, B2), vc = kt_slice0(&ws->vcache[i], 0, B2);  // (B2, NH, Lc, HS)

    // x += wo(attention(rope(q), rope(k) -> cache, v -> cache)), q | k | v = wqkv RMSNorm(x)
    KT_TRY(kt_rmsnorm_linear(be, &qkv, &hn, &x, &l->attention_norm, &l->wqkv, eps));
    KT_TRY(kt_llama_attention(be, &att, &q, &kc, &vc, &qkv, &m->rope, pos, (float)(1.0 / sqrt((double)HS))));
    KT_TRY(kt_linear_residual(be, &x, &h, &att, &l->wo));
    // x += w2(silu(w1 RMSNorm(x)) * w3 RMSNorm(x))
    KT_TRY(kt_rmsnorm_linear_swiglu(be, &g, &a13, &hn, &x, &l->ffn_norm, &l->w13, eps));
    return kt_linear_residual(be, &x, &h, &g, &l->w2);
}

// Layers and head on ws->x (B2, T, D): logits (B2, T, V).
// The layers, then the head: logits (B2, T, V), or with cfg_t the guided (B2 / 2, T, V) in ws->logits_cfg.
static KtStatus layers_head(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, const KtTensor *pos,
                            const float *cfg_t, KtTensor *logits) {
    const LlamaConfig *c = &m->config;
    for (int i = 0; i < c->n_layer; i++) KT_TRY(layer_forward(m, ws, i, B2, T, pos));
    KtTensor x = kt_reshape3(&ws->x, B2, T, c->D), hn = kt_reshape3(&ws->hn, B2, T, c->D);
    KtTensor full = kt_reshape3(&ws->logits, B2, T, c->V);  // (B2, T, V)
    if (!cfg_t) {
        *logits = full;
        return kt_rmsnorm_linear(m->be, logits, &hn, &x, &m->norm, &m->output, c->norm_eps);
    }
    *logits = kt_reshape3(&ws->logits_cfg, B2 / 2, T, c->V);  // (B, T, V)
    return kt_rmsnorm_linear_cfg(m->be, logits, &full, &hn, &x, &m->norm, &m->output, c->norm_eps, *cfg_t);
}

static KtStatus forward(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, bool class_tokens,
                        const float *cfg_t, KtTensor *logits) {
    const LlamaConfig *c = &m->config;
    if (B2 < 1 || B2 > ws->rows || T < 1 || T > ws->tmax)
        return KT_FAIL(KT_ERR_ARG, "LlamaGen forward: %lld rows x %lld tokens exceed the workspace (%lld x %lld)",
                       (long long)B2, (long long)T, (long long)ws->rows, (long long)ws->tmax);
    KtTensor x = kt_reshape2(&ws->x, B2 * T, c->D), tok = kt_slice0(&ws->in_tok, 0, B2 * T);  // (R, D), (R)
    KT_TRY(kt_embedding(m->be, &x, class_tokens ? &m->cls_embedding : &m->tok_embeddings, &tok));
    KtTensor pos = kt_slice0(&ws->in_pos, 0, B2 * T);
    pos = kt_reshape2(&pos, B2, T);  // (B2, T)
    return layers_head(m, ws, B2, T, &pos, cfg_t, logits);
}

KtStatus llamagen_forward(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, bool class_tokens,
                          KtTensor *logits) {
    return forward(m, ws, B2, T, class_tokens, NULL, logits);
}

KtStatus llamagen_forward_cfg(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, float t, KtTensor *lc) {
    if (B2 % 2) return KT_FAIL(KT_ERR_ARG, "LlamaGen forward with CFG: %lld rows, expected 2B", (long long)B2);
    return forward(m, ws, B2, T, false, &t, lc);
}

// ------------------------------------------------------------------------------------------ teacher forcing
KtStatus llamagen_forward_teacher(LlamaModel *m, int B, const int32_t *labels, const int32_t *tokens, float *out) {
    const LlamaConfig *c = &m->config;
    int64_t N = c->N, D = c->D;
    for (int b = 0; b < B; b++)  // the null class (num_classes) is allowed: CFG's unconditional rows
        if (labels[b] < 0 || labels[b] > c->num_classes)
            return KT_FAIL(KT_ERR_ARG, "label %d is outside [0, %d]", labels[b], c->num_classes);
    for (int64_t i = 0; i < (int64_t)B * N; i++)
        if (tokens[i] < 0 || tokens[i] >= c->V)
            return KT_FAIL(KT_ERR_ARG, "token %d at %lld is outside [0, %d)", tokens[i], (long long)i, c->V);
    LlamaWorkspace ws;
    KT_TRY(llamagen_workspace_init(&ws, m, B, N));
    int32_t *tok = ws.host_i32, *pos = ws.host_i32 + (int64_t)B * N;
    // inputs: [class, t_0 .. t_{N-2}] at positions 0 .. N-1 (the class slot gets token 0, replaced below)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < N; t++) {
            tok[b * N + t] = t ? tokens[b * N + t - 1] : 0;
            pos[b * N + t] = (int32_t)t;
        }
    KtTensor in_tok = kt_slice0(&ws.in_tok, 0, B * N), in_pos = kt_slice0(&ws.in_pos, 0, B * N);
    KtTensor lab = kt_slice0(&ws.out_tok, 0, B), x = kt_reshape3(&ws.x, B, N, D), logits;
    KtStatus st = kt_upload(m->be, &in_tok, tok);
    if (st == KT_OK) st = kt_upload(m->be, &in_pos, pos);
    if (st == KT_OK) st = kt_upload(m->be, &lab, labels);
    if (st == KT_OK) st = llamagen_cache_clear(m, &ws, B);
    KtTensor x2 = kt_reshape2(&ws.x, B * N, D);
    if (st == KT_OK) st = kt_embedding(m->be, &x2, &m->tok_embeddings, &in_tok);
    for (int64_t b = 0; b < B && st == KT_OK; b++) {  // the class token embedding at position 0 of each row
        KtTensor xb = kt_index0(&x, b), x0 = kt_slice0(&xb, 0, 1), lb = kt_slice0(&lab, b, 1);  // (1, D), (1)
        st = kt_embedding(m->be, &x0, &m->cls_embedding, &lb);
    }
    KtTensor pos2 = kt_reshape2(&in_pos, B, N);
    if (st == KT_OK) st = layers_head(m, &ws, B, N, &pos2, NULL, &logits);
    if (st == KT_OK) st = kt_download(m->be, out, &logits);
    llamagen_workspace_free(&ws);
    return st;
}
