// VAR VQVAE: configuration from checkpoint shapes, the state-dict name table, and workspace sizing.
// ref: VAR models/vqvae.py VQVAE.__init__, basic_vae.py Encoder/Decoder, quant.py PhiPartiallyShared
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tok_config.h"
#include "var_vqvae.h"

// ----------------------------------------------------------------------------------------------------- config
void vq_var_phi_indices(int K, int SN, int *out) {
    // PhiPartiallyShared: ticks = np.linspace(1/3/K, 1-1/3/K, K) if K == 4 else np.linspace(1/2/K, 1-1/2/K, K);
    // scale si uses argmin |ticks - si/(SN-1)| (first on ties). numpy's linspace is start + i*step with the last
    // entry set to stop; emulated in double so the two exact ties of SN=10 round like numpy does.
    double start = K == 4 ? 1.0 / 3 / K : 1.0 / 2 / K, stop = K == 4 ? 1 - 1.0 / 3 / K : 1 - 1.0 / 2 / K;
    double ticks[VQ_MAX_PHI];
    double step = K > 1 ? (stop - start) / (K - 1) : 0;
    for (int i = 0; i < K; i++) ticks[i] = i * step + start;
    if (K > 1) ticks[K - 1] = stop;
    for (int si = 0; si < SN; si++) {
        double at = SN > 1 ? (double)si / (SN - 1) : 0;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (fabs(ticks[k] - at) < fabs(ticks[best] - at)) best = k;
        out[si] = best;
    }
}

KtStatus vq_var_config_set_schedule(VarVqConfig *c, const int *patch_nums, int n_scales) {
    if (n_scales < 2 || n_scales > VQ_MAX_SCALES)
        return KT_FAIL(KT_ERR_ARG, "--patch-nums: expected 2 to %d scales, got %d", VQ_MAX_SCALES, n_scales);
    if (patch_nums[0] != 1)  // pos_start, the start token and var_input all hold one first-scale token
        return KT_FAIL(KT_ERR_ARG, "--patch-nums: the first scale must be 1 (a single token, as in every released VAR "
                       "model), got %d", patch_nums[0]);
    for (int i = 0; i < n_scales; i++) {
        if (patch_nums[i] < 1 || (i && patch_nums[i] <= patch_nums[i - 1]))
            return KT_FAIL(KT_ERR_ARG, "--patch-nums: expected increasing positive sides, got %d after %d",
                           patch_nums[i], i ? patch_nums[i - 1] : 0);
        c->patch_nums[i] = patch_nums[i];
    }
    c->n_scales = n_scales;
    c->latent_size = patch_nums[n_scales - 1];
    c->image_size = c->latent_size << (c->n_levels - 1);
    vq_var_phi_indices(c->n_phi, n_scales, c->phi_index);
    return KT_OK;
}

KtStatus vq_var_config_default(VarVqConfig *c, const int *patch_nums, int n_scales) {
    memset(c, 0, sizeof *c);
    static const int mult[] = {1, 1, 2, 2, 4};
    c->ch = 160;
    c->n_levels = 5;
    memcpy(c->ch_mult, mult, sizeof mult);
    c->num_res_blocks = 2;
    c->Cvae = 32;
    c->V = 4096;
    c->n_phi = 4;
    c->norm_groups = 32;
    return vq_var_config_set_schedule(c, patch_nums, n_scales);
}

static const KtCkptTensor *findf(const KtCheckpoint *ck, const char *fmt, int a, int b) {
    char name[160];
    snprintf(name, sizeof name, fmt, a, b);
    return kt_ckpt_find(ck, name);
}

KtStatus vq_var_config_from_ckpt(VarVqConfig *c, const KtCheckpoint *ck, const int *patch_nums, int n_scales) {
    memset(c, 0, sizeof *c);
    const KtCkptTensor *conv_in = kt_ckpt_find(ck, "encoder.conv_in.weight");
    const KtCkptTensor *qconv = kt_ckpt_find(ck, "quant_conv.weight");
    const KtCkptTensor *emb = kt_ckpt_find(ck, "quantize.embedding.weight");
    if (!conv_in || !qconv || !emb || conv_in->ndim != 4 || qconv->ndim != 4 || emb->ndim != 2) {
        const char *what = kt_ckpt_find(ck, "word_embed.weight") ? " (this is a VAR transformer: pass it with --ckpt)" : "";
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a VAR VQVAE checkpoint: expected 'encoder.conv_in.weight' (ch, 3, 3, 3), "
                       "'quant_conv.weight' and 'quantize.embedding.weight'%s", ck->path, what);
    }
    c->ch = (int)conv_in->shape[0];
    c->Cvae = (int)qconv->shape[0];
    c->V = (int)emb->shape[0];
    while (c->n_levels < VQ_MAX_LEVELS && findf(ck, "encoder.down.%d.block.%d.conv1.weight", c->n_levels, 0))
        c->n_levels++;
    while (c->num_res_blocks < VQ_MAX_RES && findf(ck, "encoder.down.%d.block.%d.conv1.weight", 0, c->num_res_blocks))
        c->num_res_blocks++;
    if (c->num_res_blocks > VQ_MAX_RES - 1)  // the decoder has one more per level
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: %d or more res blocks per level; argen supports up to %d", ck->path,
                       c->num_res_blocks, VQ_MAX_RES - 1);
    while (c->n_phi < VQ_MAX_PHI && findf(ck, "quantize.quant_resi.qresi_ls.%d.weight", c->n_phi, 0)) c->n_phi++;
    if (c->n_levels < 1 || c->num_res_blocks < 1 || c->n_phi < 1 || c->ch < 1)
        return KT_FAIL(KT_ERR_FORMAT, "%s: VAR VQVAE with no encoder levels, res blocks or Phi convs", ck->path);
    for (int i = 0; i < c->n_levels; i++) {
        const KtCkptTensor *w = findf(ck, "encoder.down.%d.block.%d.conv2.weight", i, 0);
        if (!w || w->ndim != 4 || w->shape[0] % c->ch)
            return KT_FAIL(KT_ERR_FORMAT, "%s: encoder.down.%d.block.0.conv2.weight is missing or not a multiple of "
                           "ch=%d channels", ck->path, i, c->ch);
        c->ch_mult[i] = (int)(w->shape[0] / c->ch);
    }
    if (emb->shape[1] != c->Cvae)
        return KT_FAIL(KT_ERR_FORMAT, "%s: codebook is (%lld, %lld) but quant_conv has %d channels", ck->path,
                       (long long)emb->shape[0], (long long)emb->shape[1], c->Cvae);
    KT_TRY(tok_norm_groups(ck, c->ch, c->ch_mult, c->n_levels, &c->norm_groups));
    return vq_var_config_set_schedule(c, patch_nums, n_scales);
}

int vq_var_num_tokens(const VarVqConfig *c) {
    int n = 0;
    for (int i = 0; i < c->n_scales; i++) n += c->patch_nums[i] * c->patch_nums[i];
    return n;
}

// ------------------------------------------------------------------------------------------------- name table
static const VqLayout k_layout = {
    .res = "block", .mid = {"mid.block_1", "mid.attn_1", "mid.block_2"}, .fused_qkv = true, .scale_f32 = true};

// Encoder: level i (down.i) maps ch*in_mult[i] -> ch*mult[i] (in_mult = (1,) + mult); attention only at the last
// level; a downsampler after every level but the last.
static KtStatus add_encoder(KtWeightTable *t, VqCoder *e, const VarVqConfig *c) {
    char p[96];
    int cin = c->ch, last = c->n_levels - 1;
    KT_TRY(vq_conv_add(t, &e->conv_in_w, &e->conv_in_b, c->ch, 3, 3, "encoder.conv_in"));
    for (int i = 0; i < c->n_levels; i++) {
        int cout = c->ch * c->ch_mult[i], n = c->num_res_blocks;
        snprintf(p, sizeof p, "encoder.down.%d", i);
        KT_TRY(vq_level_add(t, &k_layout, &e->level[i], p, cin, cout, n, i == last ? n : 0,
                            i != last ? "downsample" : NULL));
        cin = cout;
    }
    KT_TRY(vq_mid_add(t, &k_layout, e, cin, "encoder"));
    return vq_head_add(t, e, cin, c->Cvae, "encoder");
}

// Decoder: level i (up.i, registered from the last level down) maps to ch*mult[i] with num_res_blocks + 1 blocks;
// attention only at the last level; an upsampler after every level but level 0.
static KtStatus add_decoder(KtWeightTable *t, VqCoder *d, const VarVqConfig *c) {
    char p[96];
    int last = c->n_levels - 1, cin = c->ch * c->ch_mult[last];
    KT_TRY(vq_conv_add(t, &d->conv_in_w, &d->conv_in_b, cin, c->Cvae, 3, "decoder.conv_in"));
    KT_TRY(vq_mid_add(t, &k_layout, d, cin, "decoder"));
    for (int i = last; i >= 0; i--) {
        int cout = c->ch * c->ch_mult[i], n = c->num_res_blocks + 1;
        snprintf(p, sizeof p, "decoder.up.%d", i);
        KT_TRY(vq_level_add(t, &k_layout, &d->level[i], p, cin, cout, n, i == last ? n : 0,
                            i != 0 ? "upsample" : NULL));
        cin = cout;
    }
    return vq_head_add(t, d, cin, 3, "decoder");
}

static KtStatus build_table(VarVqvae *m) {
    const VarVqConfig *c = &m->config;
    KtWeightTable *t = &m->table;
    kt_wtab_init(t);
    KT_TRY(add_encoder(t, &m->enc, c));
    KT_TRY(add_decoder(t, &m->dec, c));
    KT_TRY(vq_conv_add(t, &m->quant_conv_w, &m->quant_conv_b, c->Cvae, c->Cvae, 3, "quant_conv"));
    KT_TRY(vq_conv_add(t, &m->post_quant_conv_w, &m->post_quant_conv_b, c->Cvae, c->Cvae, 3, "post_quant_conv"));
    KT_TRY(kt_wtab_add(t, &m->codebook, KT_W_PLAIN, 2, (int64_t[]){c->V, c->Cvae}, "quantize.embedding.weight"));
    for (int k = 0; k < c->n_phi; k++) {
        char p[64];
        snprintf(p, sizeof p, "quantize.quant_resi.qresi_ls.%d", k);
        KT_TRY(vq_conv_add(t, &m->phi_w[k], &m->phi_b[k], c->Cvae, c->Cvae, 3, p));
    }
    return kt_wtab_ignore(t, "quantize.ema_vocab_hit_SV");
}

// ------------------------------------------------------------------------------------------------- workspace
// Largest H*W*C feature map per image: at resolution S/2^i the encoder holds ch*in_mult[i] and ch*mult[i]
// channels, the decoder ch*mult[i] and (just upsampled from level i+1) ch*mult[i+1].
static int64_t max_map(const VarVqConfig *c) {
    int64_t best = (int64_t)c->image_size * c->image_size * 3;  // the input image (conv_in reads it)
    for (int i = 0; i < c->n_levels; i++) {
        int64_t s = c->image_size >> i, chans = (int64_t)c->ch * (i ? c->ch_mult[i - 1] : 1);
        if ((int64_t)c->ch * c->ch_mult[i] > chans) chans = (int64_t)c->ch * c->ch_mult[i];
        if (i + 1 < c->n_levels && (int64_t)c->ch * c->ch_mult[i + 1] > chans) chans = (int64_t)c->ch * c->ch_mult[i + 1];
        if (s * s * chans > best) best = s * s * chans;
    }
    return best;
}

static KtStatus carve_workspace(VarVqvae *m, KtArena *a, int64_t B) {
    const VarVqConfig *c = &m->config;
    int64_t map = max_map(c), hl = c->latent_size, hw = hl * hl;
    int64_t ca = (int64_t)c->ch * c->ch_mult[c->n_levels - 1];  // attention channels (lowest resolution)
    KtDType mdt = m->be->map_dtype;  // feature maps: float32 on the CPU, the 16-bit matmul dtype on CUDA
    for (int i = 0; i < 4; i++) KT_TRY(kt_arena_tensor(a, &m->act[i], mdt, 2, (int64_t[]){B, map}, "vq act"));
    if (mdt != KT_F32) {
        KT_TRY(kt_arena_tensor(a, &m->attn_x, KT_F32, 3, (int64_t[]){B, hw, ca}, "vq attn x"));
        KT_TRY(kt_arena_tensor(a, &m->attn_t, KT_F32, 3, (int64_t[]){B, hw, ca}, "vq attn t"));
    }
    KT_TRY(kt_arena_tensor(a, &m->qkv, KT_F32, 3, (int64_t[]){B, hw, 3 * ca}, "vq qkv"));
    KT_TRY(kt_arena_tensor(a, &m->q, KT_F32, 4, (int64_t[]){B, 1, hw, ca}, "vq q"));
    KT_TRY(kt_arena_tensor(a, &m->k, KT_F32, 4, (int64_t[]){B, 1, hw, ca}, "vq k"));
    KT_TRY(kt_arena_tensor(a, &m->v, KT_F32, 4, (int64_t[]){B, 1, hw, ca}, "vq v"));
    KT_TRY(kt_arena_tensor(a, &m->att, KT_F32, 3, (int64_t[]){B, hw, ca}, "vq att"));
    for (int i = 0; i < 6; i++)
        KT_TRY(kt_arena_tensor(a, &m->lat[i], KT_F32, 4, (int64_t[]){B, hl, hl, c->Cvae}, "vq latent"));
    return kt_arena_tensor(a, &m->idx, KT_I32, 1, (int64_t[]){B * hw}, "vq idx");
}

static KtStatus alloc_workspace(VarVqvae *m, int max_batch) {
    KtArena sizing;
    kt_arena_measure(&sizing);
    KT_TRY(carve_workspace(m, &sizing, max_batch));
    KT_TRY(kt_arena_init(&m->arena, m->be, sizing.used));
    m->max_batch = max_batch;
    return carve_workspace(m, &m->arena, max_batch);
}

KtStatus vq_var_init(VarVqvae *m, KtBackend *be, const VarVqConfig *c, const KtCheckpoint *ck, uint64_t seed,
                     int max_batch) {
    memset(m, 0, sizeof *m);
    m->config = *c;
    m->be = be;
    KtStatus st = build_table(m);
    if (st == KT_OK)
        st = ck ? kt_wtab_load(&m->table, be, &m->weights, ck, "VAR VQVAE", NULL)
                : kt_wtab_init_random(&m->table, be, &m->weights, seed);
    if (st == KT_OK) st = alloc_workspace(m, max_batch < 1 ? 1 : max_batch);
    if (st != KT_OK) vq_var_free(m);
    return st;
}

void vq_var_free(VarVqvae *m) {
    if (!m) return;
    kt_wtab_free(&m->table);
    kt_buffer_free(&m->weights);
    kt_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}
