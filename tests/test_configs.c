// Seeded property test over many small random configurations of all four models: VAR's VQVAE, LlamaGen's VQ-16, the
// VAR transformer and the LlamaGen GPT. The fixtures pin one official-shaped configuration each; workspaces, however,
// are sized from the configuration (widths that widen or narrow by level, a single level, odd latent sides, heads of
// any size, tiny widths next to wide latents), and a sizing slip only shows for some shapes: as an ASan report, a
// non-finite or never-written value, or an image whose result depends on the other images of its batch (an
// undersized buffer spills into the next image's rows). For every configuration, on the CPU:
//   - tokenizers: encode and decode a batch of 2 and each image alone; tokens equal exactly, float results within
//     BATCH_ATOL, all finite (outputs start as NaN, so an unwritten value shows);
//   - transformers: greedy sampling (top-k 1) of a batch of 2 and each image alone gives the same tokens (LlamaGen:
//     sequential, SJD and ZipAR decoding; greedy SJD also equals greedy sequential), the sampling loop allocates
//     nothing, and the KV-cached sampling agrees with the teacher-forced pass, whose logits are finite.
// Configurations come from fixed seeds (deterministic) and are tiny, so the file runs in seconds even under ASan. A
// configuration refused by a config check (KT_ERR_ARG / KT_ERR_UNSUPPORTED with a message) is counted and skipped;
// most must be accepted. The last tests pin configurations these properties found failing.
// Dims: B batch, S image side, Hl latent side, Cv latent channels, V codebook / vocabulary, L tokens of all scales
// (VAR), g token grid side and N = g*g tokens (LlamaGen), C / D widths.
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generator/llamagen.h"
#include "generator/var.h"
#include "testutil.h"
#include "tokenizer/var_vqvae.h"
#include "tokenizer/vq16.h"

// Image b in a batch of two vs alone: OpenBLAS blocks GEMMs by matrix size, so the same dot products are summed in
// another order (measured here: at most 1e-5; test_var_vqvae's undersized ping-pong buffer gave 1.4).
#define BATCH_ATOL 1e-4
// A greedy token must be the argmax of the teacher-forced (CFG-mixed) logits up to fp32 reduction rounding of
// logits of magnitude ~1-10 (the KV cache one token at a time vs all positions at once).
#define ARGMAX_ATOL 1e-3

#define CONFIGS_PER_FAMILY 40

// ------------------------------------------------------------------------------------------ drawing configs
typedef struct {
    uint64_t s;
} Draw;

// splitmix64: a fixed, portable stream (never rand()).
static uint64_t draw_u64(Draw *d) {
    uint64_t z = (d->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

// Uniform in [lo, hi].
static int draw_int(Draw *d, int lo, int hi) { return lo + (int)(draw_u64(d) % (uint64_t)(hi - lo + 1)); }

static int draw_pick(Draw *d, const int *v, int n) { return v[draw_int(d, 0, n - 1)]; }

// x (n) uniform in [-1, 1).
static void draw_fill(Draw *d, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((double)(draw_u64(d) >> 40) / 8388608.0 - 1.0);
}

// An increasing patch schedule of 2..5 scales from 1 to hl (>= 2), the sides between drawn from (1, hl) by selection
// sampling. It starts at one token as VAR's schedules do (a first scale of several tokens: see the last tests).
static int draw_schedule(Draw *d, int hl, int *pns) {
    int n = draw_int(d, 2, hl < 5 ? hl : 5), k = 0;
    pns[k++] = 1;
    for (int v = 2, need = n - 2, left = hl - 2; v < hl; v++, left--)
        if (draw_int(d, 1, left) <= need) pns[k++] = v, need--;
    pns[k] = hl;
    return n;
}

// The VQGAN body both tokenizers share: ch = groups * k so every width ch * mult splits into the GroupNorm groups;
// multipliers in any order (widening, narrowing, flat); 1..3 res blocks (the decoder has one more per level).
static void draw_body(Draw *d, int *ch, int *mult, int n_levels, int *res, int *groups) {
    static const int group_counts[] = {1, 2, 4};
    *groups = draw_pick(d, group_counts, 3);
    *ch = *groups * draw_int(d, 1, 4);
    for (int i = 0; i < n_levels; i++) mult[i] = draw_int(d, 1, 4);
    *res = draw_int(d, 1, VQ_MAX_RES - 1);
}

// --------------------------------------------------------------------------------------- describing configs
typedef struct {
    char buf[320];
    size_t n;
} Str;

static void str_add(Str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_add(Str *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(s->buf + s->n, sizeof s->buf - s->n, fmt, ap);
    va_end(ap);
    if (k > 0) s->n = s->n + (size_t)k < sizeof s->buf ? s->n + (size_t)k : sizeof s->buf - 1;
}

static void str_ints(Str *s, const int *v, int n) {
    for (int i = 0; i < n; i++) str_add(s, i ? ",%d" : "(%d", v[i]);
    str_add(s, ")");
}

static void str_body(Str *s, int ch, const int *mult, int n_levels, int res, int groups) {
    str_add(s, "ch %d x ", ch);
    str_ints(s, mult, n_levels);
    str_add(s, " groups %d res %d", groups, res);
}

static void str_var_vq(Str *s, const VarVqConfig *c) {
    str_body(s, c->ch, c->ch_mult, c->n_levels, c->num_res_blocks, c->norm_groups);
    str_add(s, " Cv %d V %d phi %d S %d pns ", c->Cvae, c->V, c->n_phi, c->image_size);
    str_ints(s, c->patch_nums, c->n_scales);
}

// -------------------------------------------------------------------------------------------------- checking
typedef struct {
    int drawn, accepted, refused;
    double worst;  // largest batch-vs-alone difference seen
} Tally;

// A refusal by a config check is counted and skipped; any other failure is a finding.
static bool accepted(KtStatus st, const char *what, const char *call, Tally *t) {
    if (st == KT_OK) return true;
    if ((st == KT_ERR_ARG || st == KT_ERR_UNSUPPORTED) && kt_last_error()[0]) {
        t->refused++;
        cr_log_info("%s: refused by %s: %s", what, call, kt_last_error());
        return false;
    }
    cr_expect_fail("%s: %s -> %s: %s", what, call, kt_status_name(st), kt_last_error());
    return false;
}

// On an accepted configuration every call must succeed; a failure is recorded and the rest of the case skipped.
#define CHECK_OK(what, e, label)                                                                           \
    do {                                                                                                   \
        KtStatus s_ = (e);                                                                                 \
        if (s_ != KT_OK) {                                                                                 \
            cr_expect_fail("%s: %s -> %s: %s", (what), #e, kt_status_name(s_), kt_last_error());           \
            goto label;                                                                                    \
        }                                                                                                  \
    } while (0)

// Output buffers start as NaN: a value the code under test never writes then fails the finiteness checks.
static float *nan_alloc(int64_t n) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    for (int64_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

// Image b's values in the batch vs the same image alone (n each): within BATCH_ATOL, every value finite.
static void expect_as_alone(const char *what, const char *quantity, int b, const float *batch, const float *alone,
                            int64_t n, Tally *t) {
    double worst = 0;
    int64_t at = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(batch[i]) || !isfinite(alone[i])) {
            bad++;
            continue;
        }
        double e = fabs((double)batch[i] - alone[i]);
        if (e > worst) worst = e, at = i;
    }
    if (worst > t->worst) t->worst = worst;
    cr_expect(bad == 0, "%s: %s of image %d: %lld of %lld values non-finite (or never written)", what, quantity, b,
              (long long)bad, (long long)n);
    cr_expect(worst <= BATCH_ATOL, "%s: %s of image %d depends on the batch: max |batch - alone| %.3g at %lld "
              "(%.6g vs %.6g)", what, quantity, b, worst, (long long)at, batch[at], alone[at]);
}

static void expect_same_i64(const char *what, const char *quantity, int b, const int64_t *batch, const int64_t *alone,
                            int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (batch[i] != alone[i]) {
            cr_expect_fail("%s: %s of image %d depend on the batch: first difference at %lld: %lld vs %lld alone",
                           what, quantity, b, (long long)i, (long long)batch[i], (long long)alone[i]);
            return;
        }
}

static void expect_same_i32(const char *what, const char *quantity, const int32_t *a, const int32_t *r, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (a[i] != r[i]) {
            cr_expect_fail("%s: %s: first difference at %lld: %d vs %d", what, quantity, (long long)i, a[i], r[i]);
            return;
        }
}

static void expect_finite(const char *what, const char *quantity, const float *x, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    cr_expect(bad == 0, "%s: %s: %lld of %lld values non-finite", what, quantity, (long long)bad, (long long)n);
}

static void log_tally(const char *family, const Tally *t) {
    cr_log_info("%s: %d configurations, %d accepted, %d refused; worst batch-vs-alone difference %.3g", family,
                t->drawn, t->accepted, t->refused, t->worst);
    cr_expect(t->accepted >= t->drawn * 3 / 4, "%s: only %d of %d configurations accepted", family, t->accepted,
              t->drawn);
}

static void cpu_backend(KtBackend *be) { cr_assert(kt_backend_cpu_init(be, 1) == KT_OK, "%s", kt_last_error()); }

// ------------------------------------------------------------------------------------------------ VAR VQVAE
// Latent side 2..6, 1..5 levels (image side <= 48), Cv 1..16, V 2..64, 1..4 Phi convs.
static void draw_var_vq(Draw *d, VarVqConfig *c) {
    int pns[VQ_MAX_SCALES], hl = draw_int(d, 2, 6), n_levels = draw_int(d, 1, 5);
    while (n_levels > 1 && hl << (n_levels - 1) > 48) n_levels--;
    int n = draw_schedule(d, hl, pns);
    cr_assert(vq_var_config_default(c, pns, n) == KT_OK, "%s", kt_last_error());
    c->n_levels = n_levels;
    draw_body(d, &c->ch, c->ch_mult, n_levels, &c->num_res_blocks, &c->norm_groups);
    c->Cvae = draw_int(d, 1, 16), c->V = draw_int(d, 2, 64), c->n_phi = draw_int(d, 1, 4);
    cr_assert(vq_var_config_set_schedule(c, pns, n) == KT_OK, "%s", kt_last_error());
}

// Encode (latent f and the tokens of every scale), decode random tokens, and the teacher-forcing inputs: batch of 2
// vs each image alone.
static void run_var_vqvae(KtBackend *be, Draw *d, const VarVqConfig *c, uint64_t seed, Tally *t) {
    Str what = {.n = 0};
    str_add(&what, "VQVAE ");
    str_var_vq(&what, c);
    VarVqvae m;
    if (!accepted(vq_var_init(&m, be, c, NULL, seed, 2), what.buf, "vq_var_init", t)) return;
    t->accepted++;
    const char *w = what.buf;
    int64_t S = c->image_size, hl = c->latent_size, L = vq_var_num_tokens(c), npx = S * S * 3, nf = hl * hl * c->Cvae;
    int64_t nvi = (L - 1) * c->Cvae;
    float *img = nan_alloc(2 * npx), *out2 = nan_alloc(2 * npx), *out1 = nan_alloc(npx);
    float *f2 = nan_alloc(2 * nf), *f1 = nan_alloc(nf), *vi2 = nan_alloc(2 * nvi), *vi1 = nan_alloc(nvi);
    int64_t *tok2 = malloc((size_t)(2 * L) * sizeof *tok2), *tok1 = malloc((size_t)L * sizeof *tok1);
    draw_fill(d, img, 2 * npx);

    // encode: f = quant_conv(encoder(img)) (B, Hl, Hl, Cv) and the tokens of every scale (B, L)
    KtTensor x2 = kt_tensor4(img, KT_F32, KT_CPU, 2, S, S, 3), ft2 = kt_tensor4(f2, KT_F32, KT_CPU, 2, hl, hl, c->Cvae);
    CHECK_OK(w, vq_var_encode_f(&m, &ft2, &x2), done);
    CHECK_OK(w, vq_var_img_to_tokens(&m, tok2, &x2), done);
    for (int b = 0; b < 2; b++) {
        KtTensor x1 = kt_tensor4(img + b * npx, KT_F32, KT_CPU, 1, S, S, 3);
        KtTensor ft1 = kt_tensor4(f1, KT_F32, KT_CPU, 1, hl, hl, c->Cvae);
        CHECK_OK(w, vq_var_encode_f(&m, &ft1, &x1), done);
        expect_as_alone(w, "encoder latent", b, f2 + b * nf, f1, nf, t);
        CHECK_OK(w, vq_var_img_to_tokens(&m, tok1, &x1), done);
        expect_same_i64(w, "encoded tokens", b, tok2 + b * L, tok1, L);
    }
    // decode random tokens (B, L) -> f_hat -> (B, S, S, 3); teacher-forcing inputs (B, L-1, Cv)
    for (int64_t i = 0; i < 2 * L; i++) tok2[i] = draw_int(d, 0, c->V - 1);
    KtTensor o2 = kt_tensor4(out2, KT_F32, KT_CPU, 2, S, S, 3), o1 = kt_tensor4(out1, KT_F32, KT_CPU, 1, S, S, 3);
    CHECK_OK(w, vq_var_tokens_to_image(&m, &o2, tok2, 2), done);
    CHECK_OK(w, vq_var_tokens_to_var_input(&m, vi2, tok2, 2), done);
    for (int b = 0; b < 2; b++) {
        CHECK_OK(w, vq_var_tokens_to_image(&m, &o1, tok2 + b * L, 1), done);
        expect_as_alone(w, "decoded image", b, out2 + b * npx, out1, npx, t);
        CHECK_OK(w, vq_var_tokens_to_var_input(&m, vi1, tok2 + b * L, 1), done);
        expect_as_alone(w, "var_input", b, vi2 + b * nvi, vi1, nvi, t);
    }
done:
    free(img), free(out2), free(out1), free(f2), free(f1), free(vi2), free(vi1), free(tok2), free(tok1);
    vq_var_free(&m);
}

Test(configs, var_vqvae_random_configurations) {
    KtBackend be;
    cpu_backend(&be);
    Draw d = {0x5eed0001};
    Tally t = {0};
    for (int i = 0; i < CONFIGS_PER_FAMILY; i++, t.drawn++) {
        VarVqConfig c;
        draw_var_vq(&d, &c);
        run_var_vqvae(&be, &d, &c, 100 + (uint64_t)i, &t);
    }
    log_tally("VAR VQVAE", &t);
    kt_backend_free(&be);
}

// -------------------------------------------------------------------------------------------------- VQ-16
// Grid 1..4, 1..5 levels (image side <= 48), Z 1..16, D 1..8, V 2..64.
static void draw_vq16(Draw *d, Vq16Config *c) {
    int g = draw_int(d, 1, 4), n_levels = draw_int(d, 1, 5);
    while (n_levels > 1 && g << (n_levels - 1) > 48) n_levels--;
    cr_assert(vq16_config_default(c, 256) == KT_OK, "%s", kt_last_error());
    c->n_levels = n_levels;
    draw_body(d, &c->ch, c->ch_mult, n_levels, &c->num_res_blocks, &c->norm_groups);
    c->Z = draw_int(d, 1, 16), c->D = draw_int(d, 1, 8), c->V = draw_int(d, 2, 64);
    cr_assert(vq16_config_set_image_size(c, g << (n_levels - 1)) == KT_OK, "%s", kt_last_error());
}

// Encode and decode_code of random tokens: batch of 2 vs each image alone.
static void run_vq16(KtBackend *be, Draw *d, const Vq16Config *c, uint64_t seed, Tally *t) {
    Str what = {.n = 0};
    str_add(&what, "VQ-16 ");
    str_body(&what, c->ch, c->ch_mult, c->n_levels, c->num_res_blocks, c->norm_groups);
    str_add(&what, " Z %d D %d V %d S %d grid %d", c->Z, c->D, c->V, c->image_size, c->grid);
    Vq16 m;
    if (!accepted(vq16_init(&m, be, c, NULL, seed, 2), what.buf, "vq16_init", t)) return;
    t->accepted++;
    const char *w = what.buf;
    int64_t S = c->image_size, N = (int64_t)c->grid * c->grid, npx = S * S * 3;
    float *img = nan_alloc(2 * npx), *out2 = nan_alloc(2 * npx), *out1 = nan_alloc(npx);
    int32_t *tok2 = malloc((size_t)(2 * N) * sizeof *tok2), *tok1 = malloc((size_t)N * sizeof *tok1);
    int64_t *w2 = malloc((size_t)(2 * N) * sizeof *w2), *w1 = malloc((size_t)N * sizeof *w1);
    draw_fill(d, img, 2 * npx);

    // encode: img (B, S, S, 3) -> tokens (B*N), raster order
    KtTensor x2 = kt_tensor4(img, KT_F32, KT_CPU, 2, S, S, 3), tok;
    CHECK_OK(w, vq16_encode(&m, &tok, &x2), done);
    CHECK_OK(w, kt_download(be, tok2, &tok), done);
    for (int64_t i = 0; i < 2 * N; i++) w2[i] = tok2[i];
    for (int b = 0; b < 2; b++) {
        KtTensor x1 = kt_tensor4(img + b * npx, KT_F32, KT_CPU, 1, S, S, 3);
        CHECK_OK(w, vq16_encode(&m, &tok, &x1), done);
        CHECK_OK(w, kt_download(be, tok1, &tok), done);
        for (int64_t i = 0; i < N; i++) w1[i] = tok1[i];
        expect_same_i64(w, "encoded tokens", b, w2 + b * N, w1, N);
    }
    // decode_code of random tokens: (B*N) -> (B, S, S, 3)
    for (int64_t i = 0; i < 2 * N; i++) tok2[i] = draw_int(d, 0, c->V - 1);
    KtTensor idx2 = kt_slice0(&m.idx, 0, 2 * N), idx1 = kt_slice0(&m.idx, 0, N);
    KtTensor o2 = kt_tensor4(out2, KT_F32, KT_CPU, 2, S, S, 3), o1 = kt_tensor4(out1, KT_F32, KT_CPU, 1, S, S, 3);
    CHECK_OK(w, kt_upload(be, &idx2, tok2), done);
    CHECK_OK(w, vq16_decode_code(&m, &o2, &idx2, 2), done);
    for (int b = 0; b < 2; b++) {
        CHECK_OK(w, kt_upload(be, &idx1, tok2 + b * N), done);
        CHECK_OK(w, vq16_decode_code(&m, &o1, &idx1, 1), done);
        expect_as_alone(w, "decoded image", b, out2 + b * npx, out1, npx, t);
    }
done:
    free(img), free(out2), free(out1), free(tok2), free(tok1), free(w2), free(w1);
    vq16_free(&m);
}

Test(configs, vq16_random_configurations) {
    KtBackend be;
    cpu_backend(&be);
    Draw d = {0x5eed0002};
    Tally t = {0};
    for (int i = 0; i < CONFIGS_PER_FAMILY; i++, t.drawn++) {
        Vq16Config c;
        draw_vq16(&d, &c);
        run_vq16(&be, &d, &c, 200 + (uint64_t)i, &t);
    }
    log_tally("VQ-16", &t);
    kt_backend_free(&be);
}

// ---------------------------------------------------------------------------------------- VAR transformer
// Depth 1..3, 1..3 heads of size 1..16 (odd included), FFN 1..4C, 1..10 classes; the VQVAE it decodes with is small
// (1..2 levels, one res block) but shares V (2..64), Cv (1..32) and the schedule (latent side 2..6).
static void draw_var(Draw *d, VarConfig *c, VarVqConfig *qc) {
    static const int head_sizes[] = {1, 2, 3, 4, 6, 8, 12, 16};
    int pns[VQ_MAX_SCALES], hl = draw_int(d, 2, 6), n = draw_schedule(d, hl, pns);
    cr_assert(vq_var_config_default(qc, pns, n) == KT_OK, "%s", kt_last_error());
    qc->n_levels = draw_int(d, 1, 2);
    draw_body(d, &qc->ch, qc->ch_mult, qc->n_levels, &qc->num_res_blocks, &qc->norm_groups);
    qc->num_res_blocks = 1;
    qc->Cvae = draw_int(d, 1, 32), qc->V = draw_int(d, 2, 64), qc->n_phi = draw_int(d, 1, 4);
    cr_assert(vq_var_config_set_schedule(qc, pns, n) == KT_OK, "%s", kt_last_error());
    cr_assert(var_config_official(c, draw_int(d, 1, 3), pns, n) == KT_OK, "%s", kt_last_error());
    c->n_heads = draw_int(d, 1, 3), c->head_size = draw_pick(d, head_sizes, 8);
    c->C = c->n_heads * c->head_size;
    c->mlp_hidden = draw_int(d, 1, 4 * c->C);
    c->V = qc->V, c->Cvae = qc->Cvae, c->num_classes = draw_int(d, 1, 10);
}

typedef struct {
    int32_t *tokens;  // (B, L)
    float *logits;    // (B, L, V)
    float *image;     // (B, S, S, 3)
} VarOut;

static void var_out_alloc(VarOut *o, int B, int64_t L, int64_t V, int64_t S) {
    o->tokens = malloc((size_t)(B * L) * sizeof(int32_t));
    o->logits = nan_alloc(B * L * V);
    o->image = nan_alloc(B * S * S * 3);
}

static void var_out_free(VarOut *o) { free(o->tokens), free(o->logits), free(o->image); }

static KtStatus var_sample(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int B,
                           const int32_t *labels, const int64_t *ids, VarOut *o) {
    VarOutputs out = {.tokens = o->tokens, .logits = o->logits, .image = o->image};
    return var_generate(m, vq, ws, p, B, labels, ids, &out);
}

// Greedy CFG sampling of 2 images vs each alone (tokens, CFG logits, decoded image), no allocation in the loop; then
// cfg 0: the KV-cached step logits equal the teacher-forced logits of the sampled tokens (block-causal mask).
static void run_var(KtBackend *be, Draw *d, const VarConfig *c, const VarVqConfig *qc, uint64_t seed, Tally *t) {
    Str what = {.n = 0};
    str_add(&what, "VAR depth %d C %d = %d x %d FFN %d V %d Cv %d classes %d (VQVAE ", c->depth, c->C, c->n_heads,
            c->head_size, c->mlp_hidden, c->V, c->Cvae, c->num_classes);
    str_var_vq(&what, qc);
    str_add(&what, ")");
    const char *w = what.buf;
    VarVqvae vq = {0};
    VarModel var = {0};
    VarWorkspace ws = {0};
    if (!accepted(vq_var_init(&vq, be, qc, NULL, seed, 2), w, "vq_var_init", t)) return;
    if (!accepted(var_init(&var, be, c, NULL, seed + 1), w, "var_init", t)) goto free_vq;
    if (!accepted(var_workspace_init(&ws, &var, &vq, 2), w, "var_workspace_init", t)) goto free_var;
    t->accepted++;
    int64_t L = c->L, V = c->V, npx = (int64_t)qc->image_size * qc->image_size * 3, nvi = 2 * (L - 1) * c->Cvae;
    int32_t labels[2] = {draw_int(d, 0, c->num_classes - 1), draw_int(d, 0, c->num_classes - 1)};
    int64_t ids[2] = {0, 1}, *tok64 = malloc((size_t)(2 * L) * sizeof *tok64);
    float *vi = nan_alloc(nvi), *teacher = nan_alloc(2 * L * V);
    VarOut all, one;
    var_out_alloc(&all, 2, L, V, qc->image_size);
    var_out_alloc(&one, 1, L, V, qc->image_size);

    VarSampleParams p = {.cfg = 1.5f, .smp = smp_params_default()};
    p.smp.top_k = 1, p.smp.seed = 7;
    CHECK_OK(w, var_sample(&var, &vq, &ws, &p, 2, labels, ids, &all), done);
    int64_t allocs = be->n_allocs;
    for (int b = 0; b < 2; b++) {
        CHECK_OK(w, var_sample(&var, &vq, &ws, &p, 1, labels + b, ids + b, &one), done);
        char q[64];
        snprintf(q, sizeof q, "greedy tokens of image %d alone vs in the batch", b);
        expect_same_i32(w, q, one.tokens, all.tokens + b * L, L);
        expect_as_alone(w, "CFG logits", b, all.logits + b * L * V, one.logits, L * V, t);
        expect_as_alone(w, "decoded image", b, all.image + b * npx, one.image, npx, t);
    }
    cr_expect(be->n_allocs == allocs, "%s: the sampling loop allocated %lld times", w,
              (long long)(be->n_allocs - allocs));

    p.cfg = 0.0f;
    CHECK_OK(w, var_sample(&var, &vq, &ws, &p, 2, labels, ids, &all), done);
    for (int64_t i = 0; i < 2 * L; i++) tok64[i] = all.tokens[i];
    CHECK_OK(w, vq_var_tokens_to_var_input(&vq, vi, tok64, 2), done);
    expect_finite(w, "var_input of the sampled tokens", vi, nvi);
    CHECK_OK(w, var_forward_teacher(&var, 2, labels, vi, teacher), done);
    expect_finite(w, "teacher-forced logits", teacher, 2 * L * V);
    Str msg = {.n = 0};
    str_add(&msg, "%s: KV-cached vs teacher-forced logits", w);
    expect_close(msg.buf, all.logits, teacher, 2 * L * V, TOL_REDUCE_F32);
done:
    var_out_free(&all), var_out_free(&one);
    free(tok64), free(vi), free(teacher);
    var_workspace_free(&ws);
free_var:
    var_free(&var);
free_vq:
    vq_var_free(&vq);
}

Test(configs, var_random_configurations) {
    KtBackend be;
    cpu_backend(&be);
    Draw d = {0x5eed0003};
    Tally t = {0};
    for (int i = 0; i < CONFIGS_PER_FAMILY; i++, t.drawn++) {
        VarConfig c;
        VarVqConfig qc;
        draw_var(&d, &c, &qc);
        run_var(&be, &d, &c, &qc, 300 + 2 * (uint64_t)i, &t);
    }
    log_tally("VAR transformer", &t);
    kt_backend_free(&be);
}

// --------------------------------------------------------------------------------------------- LlamaGen GPT
// 1..3 layers, 1..3 heads of size 4..16 (a multiple of 4: a quarter of each head rotates per axis), FFN 1..3D,
// V 2..64, 1..8 classes, grid 1..5; CFG on (2.5) or off (1).
static void draw_llamagen(Draw *d, LlamaConfig *c, float *cfg) {
    cr_assert(llamagen_config_official(c, "B", draw_int(d, 1, 5)) == KT_OK, "%s", kt_last_error());
    c->n_layer = draw_int(d, 1, 3), c->n_heads = draw_int(d, 1, 3), c->head_size = 4 * draw_int(d, 1, 4);
    c->D = c->n_heads * c->head_size;
    c->F = draw_int(d, 1, 3 * c->D), c->V = draw_int(d, 2, 64), c->num_classes = draw_int(d, 1, 8);
    *cfg = draw_int(d, 0, 1) ? 2.5f : 1.0f;
}

// Greedy tokens (B, N) under p: batch of 2 vs each alone; the loop allocates nothing once the workspace fits.
static bool llamagen_batch_vs_alone(LlamaModel *m, LlamaWorkspace *ws, const LlamaSampleParams *p,
                                    const int32_t *labels, int32_t *all, const char *what, const char *strategy) {
    int64_t N = m->config.N, ids[2] = {0, 1};
    int32_t *one = malloc((size_t)N * sizeof *one);
    bool ok = false;
    CHECK_OK(what, llamagen_generate(m, ws, p, 2, labels, ids, all, NULL), done);
    int64_t allocs = m->be->n_allocs;
    for (int b = 0; b < 2; b++) {
        CHECK_OK(what, llamagen_generate(m, ws, p, 1, labels + b, ids + b, one, NULL), done);
        char q[128];
        snprintf(q, sizeof q, "%s greedy tokens of image %d alone vs in the batch", strategy, b);
        expect_same_i32(what, q, one, all + b * N, N);
    }
    cr_expect(m->be->n_allocs == allocs, "%s: %s: the sampling loop allocated %lld times", what, strategy,
              (long long)(m->be->n_allocs - allocs));
    ok = true;
done:
    free(one);
    return ok;
}

// Each greedy token must be an argmax of the teacher-forced logits of its prefix, CFG-mixed as the sampler mixes
// them (u + (c - u) * cfg, u from the null class) when cfg > 1.
static void expect_greedy_is_teacher_argmax(LlamaModel *m, const int32_t *labels, const int32_t *tok, float cfg,
                                            const char *what) {
    const LlamaConfig *c = &m->config;
    int64_t N = c->N, V = c->V;
    int32_t lab4[4] = {labels[0], labels[1], c->num_classes, c->num_classes};  // conditional rows, then null class
    int32_t *tok4 = malloc((size_t)(4 * N) * sizeof *tok4);
    float *lg = nan_alloc(4 * N * V);
    memcpy(tok4, tok, (size_t)(2 * N) * sizeof *tok4);
    memcpy(tok4 + 2 * N, tok, (size_t)(2 * N) * sizeof *tok4);
    CHECK_OK(what, llamagen_forward_teacher(m, 4, lab4, tok4, lg), done);
    expect_finite(what, "teacher-forced logits", lg, 4 * N * V);
    for (int64_t b = 0; b < 2; b++)
        for (int64_t n = 0; n < N; n++) {
            const float *cr = lg + (b * N + n) * V, *ur = lg + ((2 + b) * N + n) * V;
            float best = -INFINITY, got = 0;
            for (int64_t v = 0; v < V; v++) {
                float x = cfg > 1.0f ? ur[v] + (cr[v] - ur[v]) * cfg : cr[v];
                best = fmaxf(best, x);
                if (v == tok[b * N + n]) got = x;
            }
            if (got < best - ARGMAX_ATOL) {
                cr_expect_fail("%s: greedy token %lld of image %lld is %d with teacher logit %.6g, the max is %.6g",
                               what, (long long)n, (long long)b, tok[b * N + n], got, best);
                goto done;
            }
        }
done:
    free(tok4);
    free(lg);
}

static void run_llamagen(KtBackend *be, Draw *d, const LlamaConfig *c, float cfg, uint64_t seed, Tally *t) {
    Str what = {.n = 0};
    str_add(&what, "LlamaGen layers %d D %d = %d x %d F %d V %d classes %d grid %d cfg %g", c->n_layer, c->D,
            c->n_heads, c->head_size, c->F, c->V, c->num_classes, c->grid, (double)cfg);
    const char *w = what.buf;
    LlamaModel m = {0};
    LlamaWorkspace ws = {0};
    if (!accepted(llamagen_init(&m, be, c, NULL, seed), w, "llamagen_init", t)) return;
    if (!accepted(llamagen_workspace_init(&ws, &m, 2, 1), w, "llamagen_workspace_init", t)) goto free_m;
    t->accepted++;
    int64_t N = c->N;
    int32_t labels[2] = {draw_int(d, 0, c->num_classes - 1), draw_int(d, 0, c->num_classes - 1)};
    int32_t *seq = malloc((size_t)(2 * N) * sizeof *seq), *other = malloc((size_t)(2 * N) * sizeof *other);
    LlamaSampleParams p;
    llamagen_sample_params_default(&p);
    p.cfg = cfg, p.smp.top_k = 1, p.smp.seed = 3;

    if (!llamagen_batch_vs_alone(&m, &ws, &p, labels, seq, w, "sequential")) goto done;
    expect_greedy_is_teacher_argmax(&m, labels, seq, cfg, w);

    // SJD: with one-hot distributions every draft window, initialisation and schedule gives the sequential tokens
    p.decode = LLAMA_DECODE_SJD;
    p.sjd_window = draw_int(d, 1, (int)N + 1);
    p.sjd_init = (SmpSjdInit)draw_int(d, 0, 2), p.sjd_schedule = (SmpSjdSchedule)draw_int(d, 0, 1);
    char sjd[64], q[128];
    snprintf(sjd, sizeof sjd, "SJD (window %d, init %d, schedule %d)", p.sjd_window, p.sjd_init, p.sjd_schedule);
    if (!llamagen_batch_vs_alone(&m, &ws, &p, labels, other, w, sjd)) goto done;
    snprintf(q, sizeof q, "greedy %s vs greedy sequential tokens", sjd);
    expect_same_i32(w, q, other, seq, 2 * N);

    // ZipAR (grids of 3 rows or more): its own dependency order, so only batch invariance
    if (c->grid >= 3) {
        p.decode = LLAMA_DECODE_ZIPAR;
        p.zipar_window = draw_int(d, 2, c->grid - 1);
        char zip[32];
        snprintf(zip, sizeof zip, "ZipAR (window %d)", p.zipar_window);
        llamagen_batch_vs_alone(&m, &ws, &p, labels, other, w, zip);
    }
done:
    free(seq), free(other);
    llamagen_workspace_free(&ws);
free_m:
    llamagen_free(&m);
}

Test(configs, llamagen_random_configurations) {
    KtBackend be;
    cpu_backend(&be);
    Draw d = {0x5eed0004};
    Tally t = {0};
    for (int i = 0; i < CONFIGS_PER_FAMILY; i++, t.drawn++) {
        LlamaConfig c;
        float cfg;
        draw_llamagen(&d, &c, &cfg);
        run_llamagen(&be, &d, &c, cfg, 500 + (uint64_t)i, &t);
    }
    log_tally("LlamaGen GPT", &t);
    kt_backend_free(&be);
}

// ----------------------------------------------------------------------------- configurations found failing
// (each failed here before its fix; kept as regression tests)
// A VAR transformer much narrower than its latent: var_forward_teacher staged var_input (B, L-1, Cv) in ws.qkv, carved
// for (B*L, 3C) floats, so any Cv > 3C L/(L-1) wrote past it. Usually into arena tensors not in use yet (no visible
// effect); here (C 1, FFN 1, V 2, Cv 32: the staging is ~10x qkv) it overwrote the AdaLN modulation of block 0 and of
// the head, computed just before, and the teacher-forced logits no longer matched the KV-cached ones; with Cv 64 it
// ran past the arena (an ASan heap-buffer-overflow in kt_upload). var_input now has a buffer of its own.
Test(configs, var_teacher_forcing_with_a_latent_wider_than_3c) {
    KtBackend be;
    cpu_backend(&be);
    static const int pns[] = {1, 2, 3};
    Draw d = {0x5eed0005};
    Tally t = {0};
    VarVqConfig qc;
    VarConfig c;
    cr_assert(vq_var_config_default(&qc, pns, 3) == KT_OK, "%s", kt_last_error());
    qc.ch = 4, qc.n_levels = 1, qc.ch_mult[0] = 1, qc.num_res_blocks = 1, qc.norm_groups = 1;
    qc.Cvae = 32, qc.V = 2, qc.n_phi = 1;
    cr_assert(vq_var_config_set_schedule(&qc, pns, 3) == KT_OK, "%s", kt_last_error());
    cr_assert(var_config_official(&c, 1, pns, 3) == KT_OK, "%s", kt_last_error());
    c.C = 1, c.n_heads = 1, c.head_size = 1, c.mlp_hidden = 1, c.V = 2, c.Cvae = 32, c.num_classes = 2;
    run_var(&be, &d, &c, &qc, 9, &t);
    cr_expect(t.accepted + t.refused == 1, "the configuration neither ran nor was refused");
    kt_backend_free(&be);
}

// VAR's official code allows a first scale of several tokens (first_l = patch_nums[0]^2: pos_start (1, first_l, C),
// idxBl_to_var_input gives (B, L - first_l, Cv)); argen assumes one, as every released model: pos_start (1, 1, C),
// first_tokens writes one row per image, var_input starts at token 1. Both schedule checks (vq_var_config_set_schedule,
// var_load.c set_schedule) accepted patch_nums (2, 3, 4), and the results then depended on the batch or were never
// written. Both now refuse it with a message naming --patch-nums; should they accept it again, everything documented
// must hold: var_input fully written, sampling batch-invariant and finite.
Test(configs, var_first_scale_of_several_tokens_is_refused_or_works) {
    KtBackend be;
    cpu_backend(&be);
    static const int pns[] = {2, 3, 4};
    Draw d = {0x5eed0006};
    Tally t = {0};
    VarVqConfig qc;
    VarConfig c;
    cr_assert(vq_var_config_default(&qc, (const int[]){1, 2}, 2) == KT_OK, "%s", kt_last_error());
    qc.ch = 4, qc.n_levels = 2, qc.ch_mult[0] = 1, qc.ch_mult[1] = 2, qc.num_res_blocks = 1, qc.norm_groups = 2;
    qc.Cvae = 4, qc.V = 16, qc.n_phi = 2;
    VarVqConfig probe = qc;
    cr_expect(vq_var_config_set_schedule(&probe, pns, 3) == KT_ERR_ARG && strstr(kt_last_error(), "--patch-nums") &&
              strstr(kt_last_error(), "first scale"), "%s", kt_last_error());
    VarConfig cprobe;
    cr_expect(var_config_official(&cprobe, 2, pns, 3) == KT_ERR_ARG && strstr(kt_last_error(), "first scale"), "%s",
              kt_last_error());
    if (accepted(vq_var_config_set_schedule(&qc, pns, 3), "VQVAE, patch_nums (2,3,4)", "vq_var_config_set_schedule",
                 &t)) {
        run_var_vqvae(&be, &d, &qc, 11, &t);
        if (accepted(var_config_official(&c, 2, pns, 3), "VAR, patch_nums (2,3,4)", "var_config_official", &t)) {
            c.C = 32, c.n_heads = 2, c.head_size = 16, c.mlp_hidden = 64, c.V = 16, c.Cvae = 4, c.num_classes = 3;
            run_var(&be, &d, &c, &qc, 12, &t);
        }
    }
    kt_backend_free(&be);
}

// llamagen_config_official / _from_ckpt refuse a head size that is not a multiple of 4 (the 2D RoPE rotates a quarter
// of each head per axis); llamagen_init did not: with HS 6, llamagen_rope_table computes Q = 1 frequency per axis but
// read f[j - Q] for j up to HS/2 - 1 = 2, i.e. f[1] of its uninitialised stack array, so the column rotation of the
// last pair depended on stale stack contents. (The official precompute_freqs_cis_2d cannot build such a table
// either.) llamagen_init now checks the configuration it is given.
Test(configs, llamagen_head_size_not_a_multiple_of_4_is_refused) {
    KtBackend be;
    cpu_backend(&be);
    LlamaConfig c;
    cr_assert(llamagen_config_official(&c, "B", 2) == KT_OK, "%s", kt_last_error());
    c.n_layer = 1, c.n_heads = 1, c.head_size = 6, c.D = 6, c.F = 8, c.V = 4, c.num_classes = 2;
    LlamaModel m;
    KtStatus st = llamagen_init(&m, &be, &c, NULL, 1);
    cr_expect(st == KT_ERR_ARG, "head size 6: llamagen_init -> %s (%s), expected KT_ERR_ARG", kt_status_name(st),
              st == KT_OK ? "accepted" : kt_last_error());
    if (st == KT_OK) llamagen_free(&m);
    kt_backend_free(&be);
}
