// LlamaGen VQ-16: configuration from checkpoint shapes, the state-dict name table, the normalised codebook and the
// workspace.
// ref: LlamaGen tokenizer/tokenizer_image/vq_model.py VQModel.__init__, Encoder/Decoder.__init__, VQ_16;
//      spec: shared/spec/raster.md §8.4
#include <stdio.h>
#include <string.h>

#include "kernels/ops.h"
#include "tok_config.h"
#include "vq16.h"

// ----------------------------------------------------------------------------------------------------- config
KtStatus vq16_config_set_image_size(Vq16Config *c, int image_size) {
    int f = 1 << (c->n_levels - 1);
    if (image_size < f || image_size % f || image_size > 16384)
        return KT_FAIL(KT_ERR_ARG, "--image-size: %d is not a positive multiple of the tokenizer's downsampling "
                       "factor %d (LlamaGen: 256 or 384)", image_size, f);
    c->image_size = image_size;
    c->grid = image_size / f;
    return KT_OK;
}

KtStatus vq16_config_default(Vq16Config *c, int image_size) {
    memset(c, 0, sizeof *c);
    static const int mult[] = {1, 1, 2, 2, 4};
    c->ch = 128;
    c->n_levels = 5;
    memcpy(c->ch_mult, mult, sizeof mult);
    c->num_res_blocks = 2;
    c->Z = 256;
    c->D = 8;
    c->V = 16384;
    c->norm_groups = 32;
    return vq16_config_set_image_size(c, image_size);
}

static const KtCkptTensor *findf(const KtCheckpoint *ck, const char *fmt, int a, int b) {
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    return kt_ckpt_find(ck, name);
}

bool vq16_ckpt_is_vq16(const KtCheckpoint *ck) {
    return kt_ckpt_find(ck, "encoder.conv_blocks.0.res.0.conv1.weight") && kt_ckpt_find(ck, "quantize.embedding.weight");
}

KtStatus vq16_config_from_ckpt(Vq16Config *c, const KtCheckpoint *ck, int image_size) {
    memset(c, 0, sizeof *c);
    const KtCkptTensor *conv_in = kt_ckpt_find(ck, "encoder.conv_in.weight");
    const KtCkptTensor *conv_out = kt_ckpt_find(ck, "encoder.conv_out.weight");
    const KtCkptTensor *qconv = kt_ckpt_find(ck, "quant_conv.weight");
    const KtCkptTensor *emb = kt_ckpt_find(ck, "quantize.embedding.weight");
    if (!conv_in || !conv_out || !qconv || !emb || !vq16_ckpt_is_vq16(ck) || conv_in->ndim != 4 ||
        conv_out->ndim != 4 || qconv->ndim != 4 || emb->ndim != 2) {
        const char *hint = kt_ckpt_find(ck, "tok_embeddings.weight") ? " (this is a LlamaGen GPT: pass it with --ckpt)"
                           : kt_ckpt_find(ck, "encoder.down.0.block.0.conv1.weight") ? " (this is a VAR VQVAE: use --arch var --vae)"
                           : kt_ckpt_find(ck, "word_embed.weight") ? " (this is a VAR transformer)" : "";
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a LlamaGen VQ tokenizer checkpoint: expected 'encoder.conv_in.weight', "
                       "'encoder.conv_blocks.0.res.0.*', 'quant_conv.weight' and 'quantize.embedding.weight'%s",
                       ck->path, hint);
    }
    c->ch = (int)conv_in->shape[0];
    c->Z = (int)conv_out->shape[0];
    c->D = (int)qconv->shape[0];
    c->V = (int)emb->shape[0];
    while (c->n_levels < VQ_MAX_LEVELS && findf(ck, "encoder.conv_blocks.%d.res.%d.conv1.weight", c->n_levels, 0))
        c->n_levels++;
    while (c->num_res_blocks < VQ_MAX_RES && findf(ck, "encoder.conv_blocks.%d.res.%d.conv1.weight", 0, c->num_res_blocks))
        c->num_res_blocks++;
    if (c->num_res_blocks > VQ_MAX_RES - 1)  // the decoder has one more per level
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: %d or more res blocks per level; argen supports up to %d", ck->path,
                       c->num_res_blocks, VQ_MAX_RES - 1);
    for (int i = 0; i < c->n_levels; i++) {
        const KtCkptTensor *w = findf(ck, "encoder.conv_blocks.%d.res.%d.conv2.weight", i, 0);
        if (!w || w->ndim != 4 || c->ch < 1 || w->shape[0] % c->ch)
            return KT_FAIL(KT_ERR_FORMAT, "%s: encoder.conv_blocks.%d.res.0.conv2.weight is missing or not a multiple "
                           "of ch=%d channels", ck->path, i, c->ch);
        c->ch_mult[i] = (int)(w->shape[0] / c->ch);
    }
    if (emb->shape[1] != c->D)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the codebook is (%lld, %lld) but quant_conv has %d output channels",
                       ck->path, (long long)emb->shape[0], (long long)emb->shape[1], c->D);
    KT_TRY(tok_norm_groups(ck, c->ch, c->ch_mult, c->n_levels, &c->norm_groups));
    return vq16_config_set_image_size(c, image_size);
}

// ------------------------------------------------------------------------------------------------- name table
static const VqLayout k_layout = {
    .res = "res", .mid = {"mid.0", "mid.1", "mid.2"}, .fused_qkv = false, .scale_f32 = false};

// Encoder: level i maps ch*in_mult[i] -> ch*mult[i] (in_mult = (1,) + mult); attention only at the last level;
// a downsampler after every level but the last.
static KtStatus add_encoder(KtWeightTable *t, VqCoder *e, const Vq16Config *c) {
    char p[96];
    int last = c->n_levels - 1, cin = c->ch;
    KT_TRY(vq_conv_add(t, &e->conv_in_w, &e->conv_in_b, c->ch, 3, 3, "encoder.conv_in"));
    for (int i = 0; i < c->n_levels; i++) {
        int cout = c->ch * c->ch_mult[i], n = c->num_res_blocks;
        snprintf(p, sizeof p, "encoder.conv_blocks.%d", i);
        KT_TRY(vq_level_add(t, &k_layout, &e->level[i], p, cin, cout, n, i == last ? n : 0,
                            i != last ? "downsample" : NULL));
        cin = cout;
    }
    KT_TRY(vq_mid_add(t, &k_layout, e, cin, "encoder"));
    return vq_head_add(t, e, cin, c->Z, "encoder");
}

// Decoder: level i (0 = lowest resolution) maps to ch*mult[L-1-i] with num_res_blocks + 1 blocks; attention only
// at level 0; an upsampler after every level but the last.
static KtStatus add_decoder(KtWeightTable *t, VqCoder *d, const Vq16Config *c) {
    char p[96];
    int L = c->n_levels, cin = c->ch * c->ch_mult[L - 1];
    KT_TRY(vq_conv_add(t, &d->conv_in_w, &d->conv_in_b, cin, c->Z, 3, "decoder.conv_in"));
    KT_TRY(vq_mid_add(t, &k_layout, d, cin, "decoder"));
    for (int i = 0; i < L; i++) {
        int cout = c->ch * c->ch_mult[L - 1 - i], n = c->num_res_blocks + 1;
        snprintf(p, sizeof p, "decoder.conv_blocks.%d", i);
        KT_TRY(vq_level_add(t, &k_layout, &d->level[i], p, cin, cout, n, i == 0 ? n : 0,
                            i != L - 1 ? "upsample" : NULL));
        cin = cout;
    }
    return vq_head_add(t, d, cin, 3, "decoder");
}

static KtStatus build_table(Vq16 *m) {
    const Vq16Config *c = &m->config;
    KtWeightTable *t = &m->table;
    kt_wtab_init(t);
    KT_TRY(add_encoder(t, &m->enc, c));
    KT_TRY(add_decoder(t, &m->dec, c));
    KT_TRY(vq_1x1_add(t, &m->quant_conv_w, &m->quant_conv_b, c->D, c->Z, "quant_conv"));
    KT_TRY(vq_1x1_add(t, &m->post_quant_conv_w, &m->post_quant_conv_b, c->Z, c->D, "post_quant_conv"));
    KT_TRY(kt_wtab_add(t, &m->codebook, KT_W_PLAIN, 2, (int64_t[]){c->V, c->D}, "quantize.embedding.weight"));
    return kt_wtab_ignore(t, "quantize.codebook_used");  // a training statistic
}

// ------------------------------------------------------------------------------------------------- workspace
// Largest H*W*C feature map per image: at resolution S/2^i the encoder holds ch*in_mult[i] and ch*mult[i]
// channels, the decoder ch*mult[i] and (just upsampled) ch*mult[i+1].
static int64_t max_map(const Vq16Config *c) {
    int64_t most = (int64_t)c->image_size * c->image_size * 3;  // the input image (conv_in reads it)
    for (int i = 0; i < c->n_levels; i++) {
        int64_t ch = (int64_t)c->ch * (i ? c->ch_mult[i - 1] : 1), s = c->image_size >> i;
        if ((int64_t)c->ch * c->ch_mult[i] > ch) ch = (int64_t)c->ch * c->ch_mult[i];
        if (i + 1 < c->n_levels && (int64_t)c->ch * c->ch_mult[i + 1] > ch) ch = (int64_t)c->ch * c->ch_mult[i + 1];
        if (s * s * ch > most) most = s * s * ch;
    }
    return most;
}

static KtStatus carve(Vq16 *m, KtArena *a, int64_t B) {
    const Vq16Config *c = &m->config;
    int64_t g = c->grid, n = g * g, ca = (int64_t)c->ch * c->ch_mult[c->n_levels - 1];
    KtDType mdt = m->be->map_dtype;
    for (int i = 0; i < 4; i++) KT_TRY(kt_arena_tensor(a, &m->act[i], mdt, 2, (int64_t[]){B, max_map(c)}, "vq act"));
    if (mdt != KT_F32) KT_TRY(kt_arena_tensor(a, &m->attn_x, KT_F32, 3, (int64_t[]){B, n, ca}, "vq attn x"));
    KtTensor *att[] = {&m->q, &m->k, &m->v, &m->att, &m->t};
    for (int i = 0; i < 5; i++) KT_TRY(kt_arena_tensor(a, att[i], KT_F32, 3, (int64_t[]){B, n, ca}, "vq attention"));
    KT_TRY(kt_arena_tensor(a, &m->z, KT_F32, 4, (int64_t[]){B, g, g, c->Z}, "vq latent"));
    KT_TRY(kt_arena_tensor(a, &m->e, KT_F32, 4, (int64_t[]){B, g, g, c->D}, "vq codes"));
    return kt_arena_tensor(a, &m->idx, KT_I32, 1, (int64_t[]){B * n}, "vq tokens");
}

// codebook_n = the stored codebook with L2-normalised rows (VectorQuantizer with l2_norm=True does this on every
// call; the stored rows are not unit vectors).
static KtStatus build_derived(Vq16 *m) {
    KT_TRY(kt_buffer_alloc(m->be, &m->derived, kt_nbytes(&m->codebook)));
    m->codebook_n = m->codebook;
    m->codebook_n.data = m->derived.data;
    return kt_l2_normalize(m->be, &m->codebook_n, &m->codebook);
}

KtStatus vq16_init(Vq16 *m, KtBackend *be, const Vq16Config *c, const KtCheckpoint *ck, uint64_t seed, int max_batch) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->be = be;
    m->max_batch = max_batch < 1 ? 1 : max_batch;
    KtStatus st = build_table(m);
    if (st == KT_OK)
        st = ck ? kt_wtab_load(&m->table, be, &m->weights, ck, "LlamaGen VQ tokenizer", NULL)
                : kt_wtab_init_random(&m->table, be, &m->weights, seed);
    if (st == KT_OK) st = build_derived(m);
    if (st == KT_OK) {
        KtArena sizing;
        kt_arena_measure(&sizing);
        st = carve(m, &sizing, m->max_batch);
        if (st == KT_OK) st = kt_arena_init(&m->arena, be, sizing.used);
        if (st == KT_OK) st = carve(m, &m->arena, m->max_batch);
    }
    if (st != KT_OK) vq16_free(m);
    return st;
}

void vq16_free(Vq16 *m) {
    if (!m) return;
    kt_wtab_free(&m->table);
    kt_buffer_free(&m->weights);
    kt_buffer_free(&m->derived);
    kt_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}
