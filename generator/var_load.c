// VAR transformer: configuration from checkpoint shapes, the state-dict name table, derived tensors.
// ref: VAR models/var.py VAR.__init__, models/__init__.py build_vae_var
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "var.h"

static KtStatus set_schedule(VarConfig *c, const int *patch_nums, int n_scales) {
    if (n_scales < 2 || n_scales > VQ_MAX_SCALES)
        return KT_FAIL(KT_ERR_ARG, "--patch-nums: expected 2 to %d scales, got %d", VQ_MAX_SCALES, n_scales);
    if (patch_nums[0] != 1)  // pos_start, the start token and var_input all hold one first-scale token
        return KT_FAIL(KT_ERR_ARG, "--patch-nums: the first scale must be 1 (a single token, as in every released VAR "
                       "model), got %d", patch_nums[0]);
    c->n_scales = n_scales;
    c->L = 0;
    for (int i = 0; i < n_scales; i++) {
        if (patch_nums[i] < 1 || (i && patch_nums[i] <= patch_nums[i - 1]))
            return KT_FAIL(KT_ERR_ARG, "--patch-nums: expected increasing positive sides, got %d after %d",
                           patch_nums[i], i ? patch_nums[i - 1] : 0);
        c->patch_nums[i] = patch_nums[i];
        c->begin[i] = c->L;
        c->L += patch_nums[i] * patch_nums[i];
    }
    c->begin[n_scales] = c->L;
    return KT_OK;
}

KtStatus var_config_official(VarConfig *c, int depth, const int *patch_nums, int n_scales) {
    memset(c, 0, sizeof *c);
    if (depth < 1 || depth > VAR_MAX_DEPTH)
        return KT_FAIL(KT_ERR_ARG, "VAR depth %d outside [1, %d]", depth, VAR_MAX_DEPTH);
    c->depth = depth;
    c->C = 64 * depth;
    c->n_heads = depth;
    c->head_size = 64;
    c->mlp_hidden = 4 * c->C;
    c->V = 4096;
    c->Cvae = 32;
    c->num_classes = 1000;
    return set_schedule(c, patch_nums, n_scales);
}

static const KtCkptTensor *findi(const KtCheckpoint *ck, const char *fmt, int i) {
    char name[160];
    snprintf(name, sizeof name, fmt, i);
    return kt_ckpt_find(ck, name);
}

KtStatus var_config_from_ckpt(VarConfig *c, const KtCheckpoint *ck, const int *patch_nums, int n_scales) {
    memset(c, 0, sizeof *c);
    const KtCkptTensor *we = kt_ckpt_find(ck, "word_embed.weight"), *head = kt_ckpt_find(ck, "head.weight");
    const KtCkptTensor *cls = kt_ckpt_find(ck, "class_emb.weight");
    const KtCkptTensor *sm = kt_ckpt_find(ck, "blocks.0.attn.scale_mul_1H11");
    const KtCkptTensor *fc1 = kt_ckpt_find(ck, "blocks.0.ffn.fc1.weight");
    if (!we || !head || !cls || !sm || !fc1 || we->ndim != 2 || head->ndim != 2 || cls->ndim != 2 || sm->ndim != 4 ||
        fc1->ndim != 2) {
        const char *hint = kt_ckpt_find(ck, "encoder.conv_in.weight") ? " (this is a VQVAE: pass it with --vae)" : "";
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a VAR transformer checkpoint: expected 'word_embed.weight', "
                       "'class_emb.weight', 'head.weight' and 'blocks.0.attn.*'%s", ck->path, hint);
    }
    c->C = (int)we->shape[0];
    c->Cvae = (int)we->shape[1];
    c->V = (int)head->shape[0];
    c->num_classes = (int)cls->shape[0] - 1;
    c->n_heads = (int)sm->shape[1];
    c->mlp_hidden = (int)fc1->shape[0];
    while (c->depth < VAR_MAX_DEPTH && findi(ck, "blocks.%d.attn.mat_qkv.weight", c->depth)) c->depth++;
    if (c->n_heads < 1 || c->C % c->n_heads || c->num_classes < 1 || c->depth < 1)
        return KT_FAIL(KT_ERR_FORMAT, "%s: inconsistent VAR shapes: width %d, %d heads, %d classes, depth %d", ck->path,
                       c->C, c->n_heads, c->num_classes, c->depth);
    c->head_size = c->C / c->n_heads;
    KT_TRY(set_schedule(c, patch_nums, n_scales));
    const KtCkptTensor *pos = kt_ckpt_find(ck, "pos_1LC"), *lvl = kt_ckpt_find(ck, "lvl_embed.weight");
    if (pos && pos->ndim == 3 && pos->shape[1] != c->L)
        return KT_FAIL(KT_ERR_SHAPE, "%s: pos_1LC has %lld positions but --patch-nums gives %d tokens; pass the "
                       "patch schedule the model was trained with (--patch-nums)", ck->path, (long long)pos->shape[1], c->L);
    if (lvl && lvl->ndim == 2 && lvl->shape[0] != c->n_scales)
        return KT_FAIL(KT_ERR_SHAPE, "%s: lvl_embed has %lld scales but --patch-nums has %d; pass the patch schedule "
                       "the model was trained with (--patch-nums)", ck->path, (long long)lvl->shape[0], c->n_scales);
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------- name table
#define VEC(dst, n, ...) KT_TRY(kt_wtab_add(t, (dst), KT_W_PLAIN, 1, (int64_t[]){(n)}, __VA_ARGS__))
#define MAT(dst, o, i, ...) KT_TRY(kt_wtab_add(t, (dst), KT_W_MATMUL, 2, (int64_t[]){(o), (i)}, __VA_ARGS__))

static KtStatus build_table(VarModel *m) {
    const VarConfig *c = &m->config;
    KtWeightTable *t = &m->table;
    int64_t C = c->C, L = c->L;
    kt_wtab_init(t);
    MAT(&m->word_embed_w, C, c->Cvae, "word_embed.weight");
    VEC(&m->word_embed_b, C, "word_embed.bias");
    KT_TRY(kt_wtab_add(t, &m->class_emb, KT_W_PLAIN, 2, (int64_t[]){c->num_classes + 1, C}, "class_emb.weight"));
    KT_TRY(kt_wtab_add(t, &m->pos_start, KT_W_PLAIN, 3, (int64_t[]){1, 1, C}, "pos_start"));
    KT_TRY(kt_wtab_add(t, &m->pos_1LC, KT_W_PLAIN, 3, (int64_t[]){1, L, C}, "pos_1LC"));
    KT_TRY(kt_wtab_add(t, &m->lvl_embed, KT_W_PLAIN, 2, (int64_t[]){c->n_scales, C}, "lvl_embed.weight"));
    KT_TRY(kt_wtab_add(t, &m->attn_bias, KT_W_PLAIN, 4, (int64_t[]){1, 1, L, L}, "attn_bias_for_masking"));
    kt_wtab_last_optional(t);
    for (int i = 0; i < c->depth; i++) {
        VarBlock *b = &m->blocks[i];
        KT_TRY(kt_wtab_add(t, &b->scale_mul, KT_W_PLAIN, 4, (int64_t[]){1, c->n_heads, 1, 1},
                           "blocks.%d.attn.scale_mul_1H11", i));
        VEC(&b->q_bias, C, "blocks.%d.attn.q_bias", i);
        VEC(&b->v_bias, C, "blocks.%d.attn.v_bias", i);
        VEC(&b->k_bias, C, "blocks.%d.attn.zero_k_bias", i);
        kt_wtab_last_optional(t);  // a buffer: exports that drop buffers mean zeros
        MAT(&b->qkv_w, 3 * C, C, "blocks.%d.attn.mat_qkv.weight", i);
        MAT(&b->proj_w, C, C, "blocks.%d.attn.proj.weight", i);
        VEC(&b->proj_b, C, "blocks.%d.attn.proj.bias", i);
        MAT(&b->fc1_w, c->mlp_hidden, C, "blocks.%d.ffn.fc1.weight", i);
        VEC(&b->fc1_b, c->mlp_hidden, "blocks.%d.ffn.fc1.bias", i);
        MAT(&b->fc2_w, C, c->mlp_hidden, "blocks.%d.ffn.fc2.weight", i);
        VEC(&b->fc2_b, C, "blocks.%d.ffn.fc2.bias", i);
        MAT(&b->ada_w, 6 * C, C, "blocks.%d.ada_lin.1.weight", i);
        VEC(&b->ada_b, 6 * C, "blocks.%d.ada_lin.1.bias", i);
    }
    MAT(&m->head_ada_w, 2 * C, C, "head_nm.ada_lin.1.weight");
    VEC(&m->head_ada_b, 2 * C, "head_nm.ada_lin.1.bias");
    MAT(&m->head_w, c->V, C, "head.weight");
    VEC(&m->head_b, c->V, "head.bias");
    return kt_wtab_ignore(t, "lvl_1L");
}

// ------------------------------------------------------------------------------------------------ derived
// lvl_pos, the fused qkv biases and the teacher-forcing mask, in one extra buffer.
static KtStatus build_derived(VarModel *m) {
    KtBackend *be = m->be;
    const VarConfig *c = &m->config;
    int64_t C = c->C, L = c->L, D = c->depth, H4 = c->mlp_hidden;
    KtDType hdt = m->blocks[0].fc1_w.dtype;  // 16-bit: fc1 writes its output (and takes its bias) in this dtype
    size_t bytes = kt_arena_size((size_t)(L * C) * 4) + (size_t)D * kt_arena_size((size_t)(3 * C) * 4) +
                   kt_arena_size((size_t)(L * L) * 4) + kt_arena_size((size_t)L * 4) +
                   (hdt != KT_F32 ? (size_t)D * kt_arena_size((size_t)H4 * kt_dtype_size(hdt)) : 0);
    KtArena a = {0};
    KT_TRY(kt_arena_init(&a, be, bytes));
    m->derived = a.buf;  // the model owns the buffer; the arena is only a carving helper
    KT_TRY(kt_arena_tensor(&a, &m->lvl_pos, KT_F32, 2, (int64_t[]){L, C}, "lvl_pos"));
    for (int i = 0; i < D; i++) KT_TRY(kt_arena_tensor(&a, &m->qkv_bias[i], KT_F32, 1, (int64_t[]){3 * C}, "qkv bias"));
    KT_TRY(kt_arena_tensor(&a, &m->mask, KT_F32, 2, (int64_t[]){L, L}, "mask"));
    for (int i = 0; i < D && hdt != KT_F32; i++)
        KT_TRY(kt_arena_tensor(&a, &m->fc1_b16[i], hdt, 1, (int64_t[]){H4}, "fc1 bias (16-bit)"));
    KtTensor lvl_idx;
    KT_TRY(kt_arena_tensor(&a, &lvl_idx, KT_I32, 1, (int64_t[]){L}, "lvl idx"));

    // lvl_pos[l] = lvl_embed[scale(l)] + pos_1LC[l]; mask[i][j] = 0 if scale(j) <= scale(i) else -inf
    int32_t *lvl = malloc((size_t)L * sizeof *lvl);
    float *mask = malloc((size_t)(L * L) * sizeof *mask);
    KtStatus st = (lvl && mask) ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    for (int s = 0; st == KT_OK && s < c->n_scales; s++)
        for (int l = c->begin[s]; l < c->begin[s + 1]; l++) lvl[l] = s;
    for (int64_t i = 0; st == KT_OK && i < L; i++)
        for (int64_t j = 0; j < L; j++) mask[i * L + j] = lvl[j] <= lvl[i] ? 0.0f : -INFINITY;
    if (st == KT_OK) st = kt_upload(be, &lvl_idx, lvl);
    if (st == KT_OK && !m->attn_bias.data) st = kt_upload(be, &m->mask, mask);
    free(lvl);
    free(mask);
    KT_TRY(st);
    if (m->attn_bias.data) {  // the official teacher-forced forward adds the stored buffer as is
        KtTensor stored = kt_reshape2(&m->attn_bias, L, L);
        KT_TRY(kt_copy(be, &m->mask, &stored));
    }
    KT_TRY(kt_embedding(be, &m->lvl_pos, &m->lvl_embed, &lvl_idx));
    KtTensor pos = kt_reshape2(&m->pos_1LC, L, C);
    KT_TRY(kt_add(be, &m->lvl_pos, &m->lvl_pos, &pos));
    for (int i = 0; i < D; i++) {
        const VarBlock *b = &m->blocks[i];
        KtTensor q = kt_reshape2(&m->qkv_bias[i], 3, C);
        KtTensor part0 = kt_index0(&q, 0), part1 = kt_index0(&q, 1), part2 = kt_index0(&q, 2);
        KT_TRY(kt_copy(be, &part0, &b->q_bias));
        KT_TRY(b->k_bias.data ? kt_copy(be, &part1, &b->k_bias) : kt_zero(be, &part1));
        KT_TRY(kt_copy(be, &part2, &b->v_bias));
        if (hdt != KT_F32) KT_TRY(kt_convert(be, &m->fc1_b16[i], &b->fc1_b));
    }
    return kt_sync(be);
}

KtStatus var_init(VarModel *m, KtBackend *be, const VarConfig *c, const KtCheckpoint *ck, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->be = be;
    KtStatus st = build_table(m);
    if (st == KT_OK)
        st = ck ? kt_wtab_load(&m->table, be, &m->weights, ck, "VAR transformer",
                               "VAR checkpoints carry no config: check --patch-nums")
                : kt_wtab_init_random(&m->table, be, &m->weights, seed);
    if (st == KT_OK) st = build_derived(m);
    if (st != KT_OK) var_free(m);
    return st;
}

void var_free(VarModel *m) {
    if (!m) return;
    kt_wtab_free(&m->table);
    kt_buffer_free(&m->weights);
    kt_buffer_free(&m->derived);
    memset(m, 0, sizeof *m);
}
