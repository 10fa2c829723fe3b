// The LlamaGen side of the public API (argen.h): load the VQ-16 tokenizer and the c2i GPT, sample in batches with
// the chosen decoding strategy, decode tokens to 8-bit pixels, encode images, describe checkpoints.
// ref: LlamaGen autoregressive/sample/sample_c2i.py (the demo), sample_c2i_ddp.py (pixel conversion)
// Dims: n images, B a batch (<= max_batch), S image side, g grid, N = g*g tokens.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "argen_internal.h"

KtStatus argen_llamagen_load(ArgenModel *m, const ArgenLoadParams *p) {
    int S = p->image_size > 0 ? p->image_size : 256;
    Vq16Config qc;
    LlamaConfig gc;
    KtCheckpoint ck = {0};
    KtStatus st = KT_OK;
    if (p->random_arch) {
        KT_TRY(vq16_config_default(&qc, S));
        KT_TRY(llamagen_config_official(&gc, p->random_arch, qc.grid));
        if (p->heads > 0) {  // an explicit head count overrides the official one
            LlamaConfig tmp = gc;
            if (gc.D % p->heads || (gc.D / p->heads) % 4)
                return KT_FAIL(KT_ERR_ARG, "--heads %d: width %d does not split into heads of a multiple of 4", p->heads, gc.D);
            tmp.n_heads = p->heads;
            tmp.head_size = gc.D / p->heads;
            gc = tmp;
        }
        KT_TRY(vq16_init(&m->vq16, &m->be, &qc, NULL, p->random_seed + 1, m->max_batch));
        KT_TRY(llamagen_init(&m->llama, &m->be, &gc, NULL, p->random_seed));
    } else {
        if (!p->vae_path) return KT_FAIL(KT_ERR_ARG, "--vq: a LlamaGen VQ tokenizer checkpoint is required (vq_ds16_c2i.pt)");
        KtCheckpoint gpt = {0};
        KT_TRY(argen_ckpt_open(&ck, p->vae_path));
        if (p->ckpt_path) st = argen_ckpt_open(&gpt, p->ckpt_path);
        // image side and head count: the caller's, else the GPT's (then the tokenizer's) metadata, else 256 / the
        // official rule (checkpoints do not record them; the embedded digits model does)
        int heads = p->heads;
        bool found = false;
        if (st == KT_OK && p->image_size <= 0 && p->ckpt_path) st = kt_ckpt_meta_int(&gpt, "image_size", 16, 16384, &S, &found);
        if (st == KT_OK && p->image_size <= 0 && !found) st = kt_ckpt_meta_int(&ck, "image_size", 16, 16384, &S, &found);
        if (st == KT_OK && heads <= 0 && p->ckpt_path) st = kt_ckpt_meta_int(&gpt, "heads", 1, 4096, &heads, &found);
        if (st == KT_OK) st = vq16_config_from_ckpt(&qc, &ck, S);
        if (st == KT_OK) st = vq16_init(&m->vq16, &m->be, &qc, &ck, 0, m->max_batch);
        if (st == KT_OK && p->ckpt_path) {
            st = llamagen_config_from_ckpt(&gc, &gpt, heads, qc.grid);
            if (st == KT_OK && gc.V != qc.V)
                st = KT_FAIL(KT_ERR_SHAPE, "%s: the GPT's vocabulary (%d) does not match the VQ codebook (%d entries): "
                             "use the tokenizer the model was trained with", p->ckpt_path, gc.V, qc.V);
            if (st == KT_OK) st = llamagen_init(&m->llama, &m->be, &gc, &gpt, 0);
            if (st == KT_OK) st = argen_read_sample_defaults(m, &gpt);
        }
        kt_ckpt_close(&ck);
        kt_ckpt_close(&gpt);
        KT_TRY(st);
    }
    int S0 = m->vq16.config.image_size;
    if (p->output_size < 0 || p->output_size > 16384)
        return KT_FAIL(KT_ERR_ARG, "--eval-size: expected 1 to 16384 pixels, got %d", p->output_size);
    m->output_size = p->output_size > 0 ? p->output_size : S0;
    if (!p->ckpt_path && !p->random_arch) return KT_OK;  // tokenizer only (encode / decode)
    // ZipAR: 8 tokens ahead on the official 16x16 grid, at most half a row on smaller grids (8x8 digits: 4)
    int half = m->vq16.config.grid / 2;
    m->sample_defaults.zipar_window = half < 8 ? (half < 2 ? 2 : half) : 8;
    m->has_llama = true;
    return llamagen_workspace_init(&m->lws, &m->llama, m->max_batch, 1);
}

void argen_llamagen_free(ArgenModel *m) {
    llamagen_workspace_free(&m->lws);
    llamagen_free(&m->llama);
    vq16_free(&m->vq16);
    kt_buffer_free(&m->img_buf);
    kt_buffer_free(&m->out_buf);
    m->has_llama = false;
}

void argen_llamagen_info(const ArgenModel *m, ArgenInfo *info) {
    const Vq16Config *q = &m->vq16.config;
    info->image_size = q->image_size;
    info->grid = q->grid;
    info->output_size = m->output_size;
    info->num_tokens = q->grid * q->grid;
    info->vocab_size = q->V;
    info->max_batch = m->max_batch;
    info->n_params_tokenizer = m->vq16.table.n_params;
    if (m->has_llama) {
        const LlamaConfig *c = &m->llama.config;
        info->num_classes = c->num_classes;
        info->depth = c->n_layer;
        info->width = c->D;
        info->heads = c->n_heads;
        info->n_params_generator = m->llama.table.n_params;
    }
    info->device = m->be.name;
    info->notes = m->be.notes;
    info->device_bytes_peak = m->be.peak_bytes;
}

// The decoded-image buffer (max_batch, S, S, 3), allocated on first use.
static KtStatus image_buffer(ArgenModel *m, int B, KtTensor *img) {
    int64_t S = m->vq16.config.image_size;
    *img = kt_tensor4(NULL, KT_F32, m->be.device, B, S, S, 3);
    if (!m->img_buf.data) KT_TRY(kt_buffer_alloc(&m->be, &m->img_buf, (size_t)m->max_batch * (size_t)(S * S * 3) * 4));
    img->data = m->img_buf.data;
    return KT_OK;
}

// Host tokens (B, N) -> decoder -> [bicubic resize to the output size] -> 8-bit pixels (vq16_image_to_u8), as
// sample_c2i_ddp.py. The float image comes back to the host for the conversion.
static KtStatus decode_batch(ArgenModel *m, int B, const int32_t *tokens, uint8_t *pixels) {
    const Vq16Config *q = &m->vq16.config;
    int64_t O = m->output_size, N = (int64_t)q->grid * q->grid, n = (int64_t)B * O * O * 3;
    for (int64_t i = 0; i < B * N; i++)
        if (tokens[i] < 0 || tokens[i] >= q->V)
            return KT_FAIL(KT_ERR_ARG, "token %d (image %lld, position %lld) is outside the codebook [0, %d)", tokens[i],
                           (long long)(i / N), (long long)(i % N), q->V);
    KtTensor img, idx = kt_slice0(&m->vq16.idx, 0, B * N);
    KT_TRY(image_buffer(m, B, &img));
    KT_TRY(kt_upload(&m->be, &idx, tokens));
    KT_TRY(vq16_decode_code(&m->vq16, &img, &idx, B));
    if (O != q->image_size) {  // F.interpolate(samples, size=(O, O), mode='bicubic') on the float image
        KtTensor out = kt_tensor4(NULL, KT_F32, m->be.device, B, O, O, 3);
        if (!m->out_buf.data) KT_TRY(kt_buffer_alloc(&m->be, &m->out_buf, (size_t)m->max_batch * (size_t)(O * O * 3) * 4));
        out.data = m->out_buf.data;
        KT_TRY(kt_resize_bicubic(&m->be, &out, &img));
        img = out;
    }
    float *host = malloc((size_t)n * sizeof *host);
    if (!host) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = kt_download(&m->be, host, &img);
    int64_t bad = st == KT_OK ? vq16_image_to_u8(pixels, host, n) : 0;
    free(host);
    if (st == KT_OK && bad) st = KT_FAIL(KT_ERR_NUMERIC, "VQ decoder: %lld non-finite pixel values", (long long)bad);
    return st;
}

static LlamaDecode decode_of(ArgenDecode d) {
    return d == ARGEN_DECODE_SJD ? LLAMA_DECODE_SJD : d == ARGEN_DECODE_ZIPAR ? LLAMA_DECODE_ZIPAR : LLAMA_DECODE_SEQUENTIAL;
}

KtStatus argen_llamagen_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                               const int64_t *image_ids, uint8_t *pixels, int32_t *tokens) {
    if (!m->has_llama) return KT_FAIL(KT_ERR_ARG, "sampling needs a GPT checkpoint (--ckpt)");
    if (n < 0 || !classes || !image_ids || !pixels) return KT_FAIL(KT_ERR_ARG, "argen_sample: bad arguments");
    if ((unsigned)p->sjd_init > ARGEN_SJD_INIT_SAMPLE_HORIZON)
        return KT_FAIL(KT_ERR_ARG, "--sjd-init: unknown draft initialisation %d", (int)p->sjd_init);
    const LlamaConfig *c = &m->llama.config;
    LlamaSampleParams sp;
    llamagen_sample_params_default(&sp);
    sp.cfg = p->cfg;
    sp.cfg_interval = p->cfg_interval;
    sp.smp.seed = p->seed;
    sp.smp.top_k = p->top_k;
    sp.smp.top_p = p->top_p;
    sp.smp.temperature = p->temperature;
    sp.decode = decode_of(p->decode);
    sp.sjd_window = p->sjd_window;
    sp.sjd_init = (SmpSjdInit)p->sjd_init;
    sp.zipar_window = p->zipar_window;
    KT_TRY(llamagen_check_params(c, &sp));
    int64_t N = c->N, px = (int64_t)m->output_size * m->output_size * 3;
    int32_t *lab = malloc((size_t)m->max_batch * sizeof *lab);
    int32_t *tok = tokens ? NULL : malloc((size_t)(m->max_batch * N) * sizeof *tok);
    if (!lab || (!tokens && !tok)) {
        free(lab);
        free(tok);
        return KT_FAIL(KT_ERR_OOM, "out of memory");
    }
    KtStatus st = KT_OK;
    LlamaStats stats = {0};
    for (int i = 0; st == KT_OK && i < n; i += m->max_batch) {
        int b = n - i < m->max_batch ? n - i : m->max_batch;
        int32_t *t = tokens ? tokens + (int64_t)i * N : tok;
        for (int j = 0; j < b; j++) lab[j] = classes[i + j];
        st = llamagen_generate(&m->llama, &m->lws, &sp, b, lab, image_ids + i, t, &stats);
        if (st == KT_OK) st = decode_batch(m, b, t, pixels + (int64_t)i * px);
    }
    m->stats.forwards += stats.forwards;
    m->stats.image_forwards += stats.image_forwards;
    m->stats.images += stats.images;
    m->stats.tokens += stats.tokens;
    m->stats.draft_accepted += stats.draft_accepted;
    free(lab);
    free(tok);
    return st;
}

KtStatus argen_llamagen_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels) {
    int64_t N = (int64_t)m->vq16.config.grid * m->vq16.config.grid, px = (int64_t)m->output_size * m->output_size * 3;
    for (int i = 0; i < n; i += m->max_batch) {
        int b = n - i < m->max_batch ? n - i : m->max_batch;
        KT_TRY(decode_batch(m, b, tokens + (int64_t)i * N, pixels + (int64_t)i * px));
    }
    return KT_OK;
}

// u8 RGB -> [-1, 1] as the official transform: ToTensor (x / 255), Normalize(mean 0.5, std 0.5).
KtStatus argen_llamagen_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens) {
    int64_t S = m->vq16.config.image_size, N = (int64_t)m->vq16.config.grid * m->vq16.config.grid, per = S * S * 3;
    float *host = malloc((size_t)(m->max_batch * per) * sizeof *host);
    if (!host) return KT_FAIL(KT_ERR_OOM, "out of memory");
    KtStatus st = KT_OK;
    for (int i = 0; st == KT_OK && i < n; i += m->max_batch) {
        int b = n - i < m->max_batch ? n - i : m->max_batch;
        KtTensor img, idx;
        for (int64_t j = 0; j < b * per; j++) host[j] = ((float)pixels[i * per + j] / 255.0f - 0.5f) / 0.5f;
        if ((st = image_buffer(m, b, &img)) != KT_OK) break;
        if ((st = kt_upload(&m->be, &img, host)) != KT_OK) break;
        if ((st = vq16_encode(&m->vq16, &idx, &img)) != KT_OK) break;
        st = kt_download(&m->be, tokens + (int64_t)i * N, &idx);
    }
    free(host);
    return st;
}

// ------------------------------------------------------------------------------------------------------ describe
bool argen_llamagen_describe(const KtCheckpoint *ck, FILE *out) {
    if (vq16_ckpt_is_vq16(ck)) {
        Vq16Config c;
        if (vq16_config_from_ckpt(&c, ck, 256) != KT_OK) {
            fprintf(out, "model: LlamaGen VQ tokenizer\nconfig: %s\n", kt_last_error());
            return true;
        }
        fprintf(out, "model: LlamaGen VQ tokenizer\nconfig: ch %d, ch_mult (", c.ch);
        for (int i = 0; i < c.n_levels; i++) fprintf(out, i ? ",%d" : "%d", c.ch_mult[i]);
        fprintf(out, "), res blocks %d, z_channels %d, codebook %d x %d (L2-normalised), downsampling %d\n",
                c.num_res_blocks, c.Z, c.V, c.D, 1 << (c.n_levels - 1));
        return true;
    }
    if (!llamagen_ckpt_is_gpt(ck)) return false;
    LlamaConfig c;
    if (llamagen_config_from_ckpt(&c, ck, 0, 16) != KT_OK) {
        fprintf(out, "model: LlamaGen c2i GPT\nconfig: %s\n", kt_last_error());
        return true;
    }
    fprintf(out, "model: LlamaGen c2i GPT\nconfig: %d layers, width %d, %d heads (head size %d; official count for the "
            "width, else head size 64: --heads overrides), SwiGLU %d, vocabulary %d, classes %d\n", c.n_layer, c.D,
            c.n_heads, c.head_size, c.F, c.V, c.num_classes);
    fprintf(out, "with --image-size 256: 16 x 16 tokens; with 384: 24 x 24 (the checkpoint does not record which)\n");
    return true;
}
