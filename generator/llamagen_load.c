// LlamaGen GPT: official configurations, configuration from checkpoint shapes, the state-dict name table and the
// 2D rotary table.
// ref: LlamaGen autoregressive/models/gpt.py (ModelArgs, GPT_models, FeedForward hidden width, Transformer.__init__,
//      precompute_freqs_cis_2d); spec: shared/spec/raster.md §1, §2, §4
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernels/ops.h"
#include "llamagen.h"

// FeedForward: hidden = int(2 * 4D / 3) rounded up to a multiple of 256 (multiple_of, ffn_dim_multiplier None).
static int ffn_hidden(int D) {
    int h = (int)(2.0 * (4.0 * D) / 3.0);
    return (h + 255) / 256 * 256;
}

static KtStatus set_grid(LlamaConfig *c, int grid) {
    if (grid < 1 || grid > 256)
        return KT_FAIL(KT_ERR_ARG, "--image-size: a token grid of %d x %d is outside [1, 256]", grid, grid);
    c->grid = grid;
    c->N = grid * grid;
    c->P = 1 + c->N;
    c->cache_len = (c->P + 7) / 8 * 8;
    return KT_OK;
}

static KtStatus finish(LlamaConfig *c, int heads, int grid) {
    static const struct { int D, heads; } official[] = {{768, 12}, {1024, 16}, {1280, 20}, {1536, 24}, {3200, 32},
                                                         {4096, 32}};
    c->norm_eps = 1e-5f;
    c->rope_base = 10000.0f;
    c->n_heads = heads;
    for (size_t i = 0; !heads && i < sizeof official / sizeof *official; i++)
        if (official[i].D == c->D) c->n_heads = official[i].heads;
    if (!c->n_heads) c->n_heads = c->D % 64 ? 0 : c->D / 64;
    if (c->n_heads < 1 || c->D % c->n_heads)
        return KT_FAIL(KT_ERR_ARG, "--heads: width %d has no official head count and is not a multiple of 64 (or does "
                       "not split into %d heads): pass the model's head count with --heads", c->D, c->n_heads);
    c->head_size = c->D / c->n_heads;
    if (c->head_size % 4)
        return KT_FAIL(KT_ERR_ARG, "--heads %d: head size %d is not a multiple of 4 (2D rotary embedding: a quarter of "
                       "each head per axis)", c->n_heads, c->head_size);
    return set_grid(c, grid);
}

KtStatus llamagen_config_official(LlamaConfig *c, const char *name, int grid) {
    static const struct { const char *name; int layers, heads, D; } gpt[] = {
        {"B", 12, 12, 768}, {"L", 24, 16, 1024}, {"XL", 36, 20, 1280}, {"XXL", 48, 24, 1536}, {"XXXL", 48, 40, 2560},
        {"1B", 22, 32, 2048}, {"3B", 24, 32, 3200}, {"7B", 32, 32, 4096}};
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < sizeof gpt / sizeof *gpt; i++) {
        if (strcasecmp(name, gpt[i].name)) continue;
        c->n_layer = gpt[i].layers;
        c->D = gpt[i].D;
        c->F = ffn_hidden(c->D);
        c->V = 16384;
        c->num_classes = 1000;
        return finish(c, gpt[i].heads, grid);
    }
    return KT_FAIL(KT_ERR_ARG, "--arch: no official LlamaGen GPT '%s' (expected B, L, XL, XXL, XXXL, 1B, 3B or 7B)", name);
}

bool llamagen_ckpt_is_gpt(const KtCheckpoint *ck) {
    return kt_ckpt_find(ck, "tok_embeddings.weight") && kt_ckpt_find(ck, "cls_embedding.embedding_table.weight");
}

static const KtCkptTensor *findi(const KtCheckpoint *ck, const char *fmt, int i) {
    char name[160];
    snprintf(name, sizeof name, fmt, i);
    return kt_ckpt_find(ck, name);
}

KtStatus llamagen_config_from_ckpt(LlamaConfig *c, const KtCheckpoint *ck, int heads, int grid) {
    memset(c, 0, sizeof *c);
    const KtCkptTensor *tok = kt_ckpt_find(ck, "tok_embeddings.weight");
    const KtCkptTensor *cls = kt_ckpt_find(ck, "cls_embedding.embedding_table.weight");
    const KtCkptTensor *w1 = kt_ckpt_find(ck, "layers.0.feed_forward.w1.weight");
    if (!tok || !cls || !w1 || tok->ndim != 2 || cls->ndim != 2 || w1->ndim != 2) {
        const char *hint = kt_ckpt_find(ck, "word_embed.weight") ? " (this is a VAR transformer: use --arch var)"
                           : kt_ckpt_find(ck, "quantize.embedding.weight") ? " (this is a VQ tokenizer: pass it with --vq)"
                           : kt_ckpt_find(ck, "cls_embedding.cap_proj.fc1.weight") ? " (a text-to-image GPT: argen runs c2i)"
                           : "";
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a LlamaGen c2i GPT checkpoint: expected 'tok_embeddings.weight', "
                       "'cls_embedding.embedding_table.weight' and 'layers.0.*'%s", ck->path, hint);
    }
    c->D = (int)tok->shape[1];
    c->V = (int)tok->shape[0];
    c->num_classes = (int)cls->shape[0] - 1;
    c->F = (int)w1->shape[0];
    while (c->n_layer < LLAMA_MAX_LAYERS && findi(ck, "layers.%d.attention.wqkv.weight", c->n_layer)) c->n_layer++;
    if (c->D < 1 || c->V < 1 || c->num_classes < 1 || c->n_layer < 1 || cls->shape[1] != c->D)
        return KT_FAIL(KT_ERR_FORMAT, "%s: inconsistent LlamaGen shapes: width %d, vocabulary %d, %d classes, %d layers",
                       ck->path, c->D, c->V, c->num_classes, c->n_layer);
    return finish(c, heads, grid);
}

void llamagen_rope_table(float *out, int grid, int head_size, float base) {
    int half = head_size / 2, Q = half / 2;
    memset(out, 0, (size_t)half * 2 * sizeof *out);  // the class position: cos = sin = 0 (its q and k vanish)
    for (int r = 0; r < grid; r++)
        for (int cc = 0; cc < grid; cc++) {
            float *row = out + ((size_t)(1 + r * grid + cc) * half) * 2;
            for (int j = 0; j < half; j++) {
                int k = j < Q ? j : j - Q;  // first half: the row (y), then the column
                float f = 1.0f / powf(base, (float)(2 * k) / (float)half);  // float32 as torch
                float a = (float)(j < Q ? r : cc) * f;
                row[2 * j] = (float)cos((double)a);
                row[2 * j + 1] = (float)sin((double)a);
            }
        }
}

// ------------------------------------------------------------------------------------------------- name table
static KtStatus build_table(LlamaModel *m) {
    const LlamaConfig *c = &m->config;
    KtWeightTable *t = &m->table;
    int64_t D = c->D, F = c->F;
    kt_wtab_init(t);
    KT_TRY(kt_wtab_add(t, &m->cls_embedding, KT_W_PLAIN, 2, (int64_t[]){c->num_classes + 1, D},
                       "cls_embedding.embedding_table.weight"));
    KT_TRY(kt_wtab_add(t, &m->tok_embeddings, KT_W_PLAIN, 2, (int64_t[]){c->V, D}, "tok_embeddings.weight"));
    for (int i = 0; i < c->n_layer; i++) {
        LlamaLayer *l = &m->layers[i];
        KT_TRY(kt_wtab_add(t, &l->attention_norm, KT_W_PLAIN, 1, (int64_t[]){D}, "layers.%d.attention_norm.weight", i));
        KT_TRY(kt_wtab_add(t, &l->wqkv, KT_W_MATMUL, 2, (int64_t[]){3 * D, D}, "layers.%d.attention.wqkv.weight", i));
        KT_TRY(kt_wtab_add(t, &l->wo, KT_W_MATMUL, 2, (int64_t[]){D, D}, "layers.%d.attention.wo.weight", i));
        KT_TRY(kt_wtab_add(t, &l->ffn_norm, KT_W_PLAIN, 1, (int64_t[]){D}, "layers.%d.ffn_norm.weight", i));
        KT_TRY(kt_wtab_add(t, &l->w1, KT_W_MATMUL, 2, (int64_t[]){F, D}, "layers.%d.feed_forward.w1.weight", i));
        KT_TRY(kt_wtab_add(t, &l->w3, KT_W_MATMUL, 2, (int64_t[]){F, D}, "layers.%d.feed_forward.w3.weight", i));
        kt_wtab_last_follows(t);  // w1 | w3: one (2F, D) GEMM weight
        KT_TRY(kt_wtab_add(t, &l->w2, KT_W_MATMUL, 2, (int64_t[]){D, F}, "layers.%d.feed_forward.w2.weight", i));
    }
    KT_TRY(kt_wtab_add(t, &m->norm, KT_W_PLAIN, 1, (int64_t[]){D}, "norm.weight"));
    KT_TRY(kt_wtab_add(t, &m->output, KT_W_MATMUL, 2, (int64_t[]){c->V, D}, "output.weight"));
    KT_TRY(kt_wtab_ignore(t, "freqs_cis"));  // stale in some checkpoints; recomputed from the grid (raster.md §2)
    return kt_wtab_ignore(t, "causal_mask");
}

static KtStatus build_derived(LlamaModel *m) {
    const LlamaConfig *c = &m->config;
    for (int i = 0; i < c->n_layer; i++) {
        LlamaLayer *l = &m->layers[i];
        l->w13 = kt_tensor2(l->w1.data, l->w1.dtype, l->w1.device, 2 * (int64_t)c->F, c->D);
    }
    int64_t half = c->head_size / 2;
    m->rope = kt_tensor3(NULL, KT_F32, m->be->device, c->P, half, 2);
    KT_TRY(kt_buffer_alloc(m->be, &m->derived, kt_nbytes(&m->rope)));
    m->rope.data = m->derived.data;
    float *host = malloc(kt_nbytes(&m->rope));
    if (!host) return KT_FAIL(KT_ERR_OOM, "out of memory");
    llamagen_rope_table(host, c->grid, c->head_size, c->rope_base);
    KtStatus st = kt_upload(m->be, &m->rope, host);
    free(host);
    return st;
}

KtStatus llamagen_init(LlamaModel *m, KtBackend *be, const LlamaConfig *c, const KtCheckpoint *ck, uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (c->n_layer < 1 || c->n_layer > LLAMA_MAX_LAYERS)
        return KT_FAIL(KT_ERR_ARG, "LlamaGen: %d layers outside [1, %d]", c->n_layer, LLAMA_MAX_LAYERS);
    // configurations edited after llamagen_config_*: the same rules (the rotary table needs head size % 4 == 0)
    if (c->n_heads < 1 || c->head_size < 4 || c->head_size % 4 || (int64_t)c->n_heads * c->head_size != c->D)
        return KT_FAIL(KT_ERR_ARG, "LlamaGen: %d heads of size %d for width %d (the head size must be a multiple of 4: "
                       "2D rotary embedding, a quarter of each head per axis)", c->n_heads, c->head_size, c->D);
    if (c->F < 1 || c->V < 1 || c->num_classes < 1 || c->grid < 1 || c->N != c->grid * c->grid || c->P != c->N + 1 ||
        c->cache_len < c->P)
        return KT_FAIL(KT_ERR_ARG, "LlamaGen: inconsistent configuration (F %d, V %d, classes %d, grid %d, N %d, P %d, "
                       "cache %d)", c->F, c->V, c->num_classes, c->grid, c->N, c->P, c->cache_len);
    m->config = *c;
    m->be = be;
    KtStatus st = build_table(m);
    if (st == KT_OK)
        st = ck ? kt_wtab_load(&m->table, be, &m->weights, ck, "LlamaGen GPT",
                               "LlamaGen checkpoints carry no head count: check --heads")
                : kt_wtab_init_random(&m->table, be, &m->weights, seed);
    if (st == KT_OK) st = build_derived(m);
    if (st != KT_OK) llamagen_free(m);
    return st;
}

void llamagen_free(LlamaModel *m) {
    if (!m) return;
    kt_wtab_free(&m->table);
    kt_buffer_free(&m->weights);
    kt_buffer_free(&m->derived);
    memset(m, 0, sizeof *m);
}
