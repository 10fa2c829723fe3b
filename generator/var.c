// VAR transformer forward: AdaLN conditioning, one block, the head, the workspace, and the teacher-forced pass.
// ref: VAR models/basic_var.py AdaLNSelfAttn.forward, SelfAttention.forward, FFN.forward, AdaLNBeforeHead.forward;
//      models/var.py VAR.forward (teacher forcing), VAR.get_logits
// Dims: B2 rows (2B under CFG), T tokens of the pass, C width, NH heads, HS head size, V vocabulary, L all tokens.
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "var.h"
#include "var_internal.h"

#define LN_EPS 1e-6f
enum { GAMMA1 = 0, GAMMA2, SCALE1, SCALE2, SHIFT1, SHIFT2 };  // ada_lin chunk order (spec G4)

// ------------------------------------------------------------------------------------------------- workspace
// Carves every workspace tensor from `a` (a measuring arena only counts the bytes).
// hdt: dtype of the GEMM input hn (the blocks' weight dtype).
static KtStatus ws_carve(VarWorkspace *ws, KtArena *a, const VarConfig *c, const VarVqvae *vq, int64_t B2,
                         int64_t Tmax, int64_t B, KtDType hdt) {
    int64_t R = B2 * Tmax, C = c->C, L = c->L, D = c->depth;
#define F32(t, n, what) KT_TRY(kt_arena_tensor(a, (t), KT_F32, 1, (int64_t[]){(n)}, (what)))
    F32(&ws->x, R * C, "x");
    F32(&ws->h, R * C, "h");
    KT_TRY(kt_arena_tensor(a, &ws->hn, hdt, 1, (int64_t[]){R * C}, "normed h"));
    F32(&ws->qkv, R * 3 * C, "qkv");
    F32(&ws->q, R * C, "q");
    // attention output and FFN hidden state are GEMM inputs too: in the matmul dtype
    KT_TRY(kt_arena_tensor(a, &ws->att, hdt, 1, (int64_t[]){R * C}, "att"));
    KT_TRY(kt_arena_tensor(a, &ws->mlp, hdt, 1, (int64_t[]){R * c->mlp_hidden}, "mlp"));
    F32(&ws->logits, R * c->V, "logits");
    F32(&ws->logits_cfg, B * Tmax * c->V, "cfg logits");
    F32(&ws->cond, B2 * C, "cond");
    F32(&ws->cond_silu, B2 * C, "silu(cond)");
    F32(&ws->ada, B2 * 6 * C, "ada");
    for (int i = 0; i < D; i++) F32(&ws->ada_chunks[i], 6 * B2 * C, "ada chunks");
    F32(&ws->head_chunks, 2 * B2 * C, "head chunks");
    for (int i = 0; i < D; i++) {
        KT_TRY(kt_arena_tensor(a, &ws->kcache[i], KT_F32, 4, (int64_t[]){B2, c->n_heads, L, c->head_size}, "k cache"));
        KT_TRY(kt_arena_tensor(a, &ws->vcache[i], KT_F32, 4, (int64_t[]){B2, c->n_heads, L, c->head_size}, "v cache"));
    }
    KT_TRY(kt_arena_tensor(a, &ws->labels, KT_I32, 1, (int64_t[]){B2}, "labels"));
    KT_TRY(kt_arena_tensor(a, &ws->tokens, KT_I32, 1, (int64_t[]){L * B}, "tokens"));
    KT_TRY(kt_arena_tensor(a, &ws->image_ids, KT_I64, 1, (int64_t[]){B}, "image ids"));
    KT_TRY(kt_arena_tensor(a, &ws->nonfinite, KT_I64, 1, (int64_t[]){(int64_t)c->n_scales * (D + 1) + 1}, "checks"));
    if (vq) {
        int64_t S = vq->config.image_size, hl = vq->config.latent_size;
        KT_TRY(kt_arena_tensor(a, &ws->f_hat, KT_F32, 4, (int64_t[]){B, hl, hl, c->Cvae}, "f_hat"));
        F32(&ws->h_smooth, B * Tmax * c->Cvae, "smooth latents");
        F32(&ws->next_in, B * Tmax * c->Cvae, "next input");
        KT_TRY(kt_arena_tensor(a, &ws->img, KT_F32, 4, (int64_t[]){B, S, S, 3}, "image"));
        KT_TRY(kt_arena_tensor(a, &ws->pixels, KT_U8, 4, (int64_t[]){B, S, S, 3}, "pixels"));
    }
#undef F32
    return KT_OK;
}

KtStatus var_ws_alloc(VarWorkspace *ws, const VarModel *m, const VarVqvae *vq, int64_t B2, int64_t Tmax, int max_batch) {
    memset(ws, 0, sizeof *ws);
    ws->max_batch = max_batch;
    ws->rows_max = B2 * Tmax;
    KtArena sizing;
    kt_arena_measure(&sizing);
    KtDType hdt = m->blocks[0].qkv_w.dtype;  // the matmul dtype: LN+AdaLN writes the GEMM input directly
    KT_TRY(ws_carve(ws, &sizing, &m->config, vq, B2, Tmax, max_batch, hdt));
    KT_TRY(kt_arena_init(&ws->arena, m->be, sizing.used));
    return ws_carve(ws, &ws->arena, &m->config, vq, B2, Tmax, max_batch, hdt);
}

void var_workspace_free(VarWorkspace *ws) {
    if (!ws) return;
    kt_graph_free(&ws->graph);
    kt_arena_free(&ws->arena);
    memset(ws, 0, sizeof *ws);
}

// ----------------------------------------------------------------------------------------------- conditioning
KtStatus var_cond_prepare(VarModel *m, VarWorkspace *ws, int64_t B2) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    int64_t C = c->C;
    KtTensor labels = kt_slice0(&ws->labels, 0, B2);
    KtTensor cond = kt_reshape2(&ws->cond, B2, C), cs = kt_reshape2(&ws->cond_silu, B2, C);
    KT_TRY(kt_embedding(be, &cond, &m->class_emb, &labels));  // (B2, C)
    KT_TRY(kt_silu(be, &cs, &cond));                          // (B2, C)
    for (int i = 0; i < c->depth; i++) {
        KtTensor ada = kt_reshape2(&ws->ada, B2, 6 * C);            // (B2, 6C)
        KtTensor chunks = kt_reshape3(&ws->ada_chunks[i], 6, B2, C);  // (6, B2, C)
        KT_TRY(kt_linear(be, &ada, &cs, &m->blocks[i].ada_w, &m->blocks[i].ada_b));
        KT_TRY(kt_split_chunks(be, &chunks, &ada));
    }
    KtTensor ada = kt_reshape2(&ws->ada, B2, 2 * C);              // (B2, 2C)
    KtTensor chunks = kt_reshape3(&ws->head_chunks, 2, B2, C);    // (2, B2, C): scale, shift
    KT_TRY(kt_linear(be, &ada, &cs, &m->head_ada_w, &m->head_ada_b));
    return kt_split_chunks(be, &chunks, &ada);
}

// --------------------------------------------------------------------------------------------------- forward
// y (B2, T, C) = LN(x') * (1 + scale) + shift for the first LayerNorm of block i, or of the head when i == depth,
// where x' = x + gamma2[i-1] * h completes block i-1 (its FFN output waits in ws->h; none before block 0).
static KtStatus pending_residual_ln(VarModel *m, VarWorkspace *ws, int i, int64_t B2, int64_t T, KtTensor *y,
                                    const KtTensor *scale, const KtTensor *shift) {
    int64_t C = m->config.C;
    KtTensor x = kt_reshape3(&ws->x, B2, T, C), h = kt_reshape3(&ws->h, B2, T, C);  // (B2, T, C)
    if (i == 0) return kt_layernorm_adaln(m->be, y, &x, scale, shift, LN_EPS);
    KtTensor mod = kt_reshape3(&ws->ada_chunks[i - 1], 6, B2, C);
    KtTensor g2 = kt_index0(&mod, GAMMA2);  // (B2, C)
    return kt_gated_residual_layernorm_adaln(m->be, y, &x, &h, &g2, scale, shift, LN_EPS);
}

// One AdaLNSelfAttn block on ws->x (B2, T, C) whose tokens sit at positions [t0, t0+T) of the KV cache; keys
// [0, t0+T) are attended, with the additive `bias` (T, t0+T) or none. Blocks run in order from 0: block i first
// completes block i-1's residual, and leaves its own FFN output in ws->h for the next block (or the head) to add.
KtStatus var_block_forward(VarModel *m, VarWorkspace *ws, int i, int64_t B2, int64_t T, int64_t t0,
                           const KtTensor *bias) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    const VarBlock *b = &m->blocks[i];
    int64_t C = c->C, NH = c->n_heads, HS = c->head_size;
    KtTensor mod = kt_reshape3(&ws->ada_chunks[i], 6, B2, C);
    KtTensor g1 = kt_index0(&mod, GAMMA1);  // (B2, C); GAMMA2 is applied by pending_residual_ln
    KtTensor s1 = kt_index0(&mod, SCALE1), s2 = kt_index0(&mod, SCALE2);  // (B2, C) each
    KtTensor sh1 = kt_index0(&mod, SHIFT1), sh2 = kt_index0(&mod, SHIFT2);
    KtTensor x = kt_reshape3(&ws->x, B2, T, C);              // (B2, T, C)
    KtTensor h = kt_reshape3(&ws->h, B2, T, C);              // (B2, T, C)
    KtTensor hn = kt_reshape3(&ws->hn, B2, T, C);            // (B2, T, C) in the matmul dtype
    KtTensor qkv = kt_reshape3(&ws->qkv, B2, T, 3 * C);      // (B2, T, 3C)
    KtTensor q = kt_reshape4(&ws->q, B2, NH, T, HS);         // (B2, NH, T, HS)
    KtTensor att = kt_reshape3(&ws->att, B2, T, C);          // (B2, T, C) in the matmul dtype
    KtTensor mlp = kt_reshape3(&ws->mlp, B2, T, c->mlp_hidden);  // (B2, T, 4C) in the matmul dtype
    KtTensor kc = kt_slice0(&ws->kcache[i], 0, B2), vc = kt_slice0(&ws->vcache[i], 0, B2);  // (B2, NH, L, HS)
    const KtTensor *fc1_b = mlp.dtype == KT_F32 ? &b->fc1_b : &m->fc1_b16[i];  // the bias follows the output dtype

    // x = x + gamma1 * proj(attn(LN(x) * (1 + scale1) + shift1)), after block i-1's pending residual
    KT_TRY(pending_residual_ln(m, ws, i, B2, T, &hn, &s1, &sh1));
    KT_TRY(kt_linear(be, &qkv, &hn, &b->qkv_w, &m->qkv_bias[i]));
    KtTensor head_scale = kt_reshape(&b->scale_mul, 1, (int64_t[]){NH});  // (NH)
    KT_TRY(kt_var_attention(be, &att, &q, &kc, &vc, &qkv, &head_scale, t0, bias));
    KT_TRY(kt_linear(be, &h, &att, &b->proj_w, &b->proj_b));
    // x = x + gamma2 * fc2(gelu_tanh(fc1(LN(x) * (1 + scale2) + shift2))); the last residual waits for the next LN
    KT_TRY(kt_gated_residual_layernorm_adaln(be, &hn, &x, &h, &g1, &s2, &sh2, LN_EPS));
    KT_TRY(kt_linear_gelu_tanh(be, &mlp, &hn, &b->fc1_w, fc1_b));
    return kt_linear(be, &h, &mlp, &b->fc2_w, &b->fc2_b);
}

// logits (B2, T, V) = head(LN(x) * (1 + scale) + shift), after the last block's pending residual.
KtStatus var_head_forward(VarModel *m, VarWorkspace *ws, int64_t B2, int64_t T, KtTensor *logits) {
    const VarConfig *c = &m->config;
    int64_t C = c->C;
    KtTensor mod = kt_reshape3(&ws->head_chunks, 2, B2, C);
    KtTensor scale = kt_index0(&mod, 0), shift = kt_index0(&mod, 1);  // (B2, C)
    // the GEMM's input: hn when its dtype suits the head weights, else float32 in the (free) q buffer
    KtTensor hn = kt_reshape3(m->head_w.dtype == ws->hn.dtype ? &ws->hn : &ws->q, B2, T, C);
    *logits = kt_reshape3(&ws->logits, B2, T, c->V);  // (B2, T, V)
    KT_TRY(pending_residual_ln(m, ws, c->depth, B2, T, &hn, &scale, &shift));
    return kt_linear(m->be, logits, &hn, &m->head_w, &m->head_b);
}

KtStatus var_check_labels(const VarConfig *c, int B, const int32_t *labels) {
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= c->num_classes)
            return KT_FAIL(KT_ERR_ARG, "--class: class %d is outside [0, %d) (the model has %d classes)", labels[b],
                           c->num_classes, c->num_classes);
    return KT_OK;
}

// ------------------------------------------------------------------------------------------ teacher forcing
KtStatus var_forward_teacher(VarModel *m, int B, const int32_t *labels, const float *var_input, float *logits_out) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    int64_t L = c->L, C = c->C;
    KT_TRY(var_check_labels(c, B, labels));
    VarWorkspace ws;
    KtBuffer vbuf = {0};  // var_input (B, L-1, Cv): its own buffer (Cv may exceed 3C, the width of ws.qkv)
    KtStatus st = var_ws_alloc(&ws, m, NULL, B, L, B);
    if (st == KT_OK) st = kt_buffer_alloc(be, &vbuf, (size_t)B * (size_t)(L - 1) * (size_t)c->Cvae * sizeof(float));
    if (st != KT_OK) goto cleanup;
    KtTensor lab = kt_slice0(&ws.labels, 0, B);
    if ((st = kt_upload(be, &lab, labels)) != KT_OK) goto cleanup;
    if ((st = var_cond_prepare(m, &ws, B)) != KT_OK) goto cleanup;

    // x[:, 0] = class_emb + pos_start; x[:, 1:] = word_embed(var_input); then x += lvl_pos
    KtTensor vin = kt_tensor3(vbuf.data, KT_F32, be->device, B, L - 1, c->Cvae);  // (B, L-1, Cv)
    KtTensor we = kt_reshape3(&ws.h, B, L - 1, C);           // (B, L-1, C)
    KtTensor x = kt_reshape3(&ws.x, B, L, C);                // (B, L, C)
    KtTensor cond = kt_reshape2(&ws.cond, B, C), pos0 = kt_reshape1(&m->pos_start, C);
    if ((st = kt_upload(be, &vin, var_input)) != KT_OK) goto cleanup;
    if ((st = kt_linear(be, &we, &vin, &m->word_embed_w, &m->word_embed_b)) != KT_OK) goto cleanup;
    for (int64_t b = 0; b < B && st == KT_OK; b++) {
        KtTensor xb = kt_index0(&x, b), web = kt_index0(&we, b), cb = kt_index0(&cond, b);  // (L, C), (L-1, C), (C)
        KtTensor first = kt_slice0(&xb, 0, 1), rest = kt_slice0(&xb, 1, L - 1);
        KtTensor cb1 = kt_reshape2(&cb, 1, C);
        if ((st = kt_add(be, &first, &cb1, &pos0)) == KT_OK) st = kt_copy(be, &rest, &web);
    }
    if (st == KT_OK) st = kt_add(be, &x, &x, &m->lvl_pos);
    for (int i = 0; i < c->depth && st == KT_OK; i++) st = var_block_forward(m, &ws, i, B, L, 0, &m->mask);
    KtTensor logits;
    if (st == KT_OK) st = var_head_forward(m, &ws, B, L, &logits);
    if (st == KT_OK) st = kt_download(be, logits_out, &logits);
cleanup:
    kt_buffer_free(&vbuf);
    var_workspace_free(&ws);
    return st;
}
