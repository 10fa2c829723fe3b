// FID Inception-v3: the conv table (in forward order), the state-dict name table, BatchNorm folding and the
// workspace. ref: pytorch-fid inception.py fid_inception_v3; spec: shared/spec/fid.md 1.2-1.6
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inception.h"
#include "sha256.h"

#define BN_EPS 1e-3  // TF's BatchNormWithGlobalNormalization epsilon (not PyTorch's 1e-5)

// ------------------------------------------------------------------------------------------------- conv table
typedef struct {
    Inception *net;
    int n;
} Table;

static void conv(Table *t, const char *block, const char *branch, int ci, int co, int kh, int kw, int stride) {
    IncConvDesc *d = &t->net->conv[t->n++].d;
    *d = (IncConvDesc){.ci = ci, .co = co, .kh = kh, .kw = kw, .stride = stride, .ph = stride == 1 ? kh / 2 : 0,
                       .pw = stride == 1 ? kw / 2 : 0};
    snprintf(d->name, sizeof d->name, "%s%s%s", block, branch[0] ? "." : "", branch);
}

// The stem convs pad only Conv2d_2b_3x3; inside the mixed blocks every stride-1 conv is "same" padded.
static void stem(Table *t) {
    conv(t, "Conv2d_1a_3x3", "", 3, 32, 3, 3, 2);
    conv(t, "Conv2d_2a_3x3", "", 32, 32, 3, 3, 1);
    t->net->conv[t->n - 1].d.ph = t->net->conv[t->n - 1].d.pw = 0;
    conv(t, "Conv2d_2b_3x3", "", 32, 64, 3, 3, 1);
    conv(t, "Conv2d_3b_1x1", "", 64, 80, 1, 1, 1);
    conv(t, "Conv2d_4a_3x3", "", 80, 192, 3, 3, 1);
    t->net->conv[t->n - 1].d.ph = t->net->conv[t->n - 1].d.pw = 0;
}

static void mixed_a(Table *t, const char *b, int in, int pf) {
    conv(t, b, "branch1x1", in, 64, 1, 1, 1);
    conv(t, b, "branch5x5_1", in, 48, 1, 1, 1);
    conv(t, b, "branch5x5_2", 48, 64, 5, 5, 1);
    conv(t, b, "branch3x3dbl_1", in, 64, 1, 1, 1);
    conv(t, b, "branch3x3dbl_2", 64, 96, 3, 3, 1);
    conv(t, b, "branch3x3dbl_3", 96, 96, 3, 3, 1);
    conv(t, b, "branch_pool", in, pf, 1, 1, 1);
}

static void mixed_b(Table *t, const char *b, int in) {
    conv(t, b, "branch3x3", in, 384, 3, 3, 2);
    conv(t, b, "branch3x3dbl_1", in, 64, 1, 1, 1);
    conv(t, b, "branch3x3dbl_2", 64, 96, 3, 3, 1);
    conv(t, b, "branch3x3dbl_3", 96, 96, 3, 3, 2);
}

static void mixed_c(Table *t, const char *b, int c7) {
    conv(t, b, "branch1x1", 768, 192, 1, 1, 1);
    conv(t, b, "branch7x7_1", 768, c7, 1, 1, 1);
    conv(t, b, "branch7x7_2", c7, c7, 1, 7, 1);
    conv(t, b, "branch7x7_3", c7, 192, 7, 1, 1);
    conv(t, b, "branch7x7dbl_1", 768, c7, 1, 1, 1);
    conv(t, b, "branch7x7dbl_2", c7, c7, 7, 1, 1);
    conv(t, b, "branch7x7dbl_3", c7, c7, 1, 7, 1);
    conv(t, b, "branch7x7dbl_4", c7, c7, 7, 1, 1);
    conv(t, b, "branch7x7dbl_5", c7, 192, 1, 7, 1);
    conv(t, b, "branch_pool", 768, 192, 1, 1, 1);
}

static void mixed_d(Table *t, const char *b) {
    conv(t, b, "branch3x3_1", 768, 192, 1, 1, 1);
    conv(t, b, "branch3x3_2", 192, 320, 3, 3, 2);
    conv(t, b, "branch7x7x3_1", 768, 192, 1, 1, 1);
    conv(t, b, "branch7x7x3_2", 192, 192, 1, 7, 1);
    conv(t, b, "branch7x7x3_3", 192, 192, 7, 1, 1);
    conv(t, b, "branch7x7x3_4", 192, 192, 3, 3, 2);
}

static void mixed_e(Table *t, const char *b, int in) {
    conv(t, b, "branch1x1", in, 320, 1, 1, 1);
    conv(t, b, "branch3x3_1", in, 384, 1, 1, 1);
    conv(t, b, "branch3x3_2a", 384, 384, 1, 3, 1);
    conv(t, b, "branch3x3_2b", 384, 384, 3, 1, 1);
    conv(t, b, "branch3x3dbl_1", in, 448, 1, 1, 1);
    conv(t, b, "branch3x3dbl_2", 448, 384, 3, 3, 1);
    conv(t, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1);
    conv(t, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1);
    conv(t, b, "branch_pool", in, 192, 1, 1, 1);
}

// All 94 conv units in the order inception.c's forward pass uses them.
static void build_convs(Inception *net) {
    Table t = {.net = net};
    stem(&t);
    mixed_a(&t, "Mixed_5b", 192, 32);
    mixed_a(&t, "Mixed_5c", 256, 64);
    mixed_a(&t, "Mixed_5d", 288, 64);
    mixed_b(&t, "Mixed_6a", 288);
    mixed_c(&t, "Mixed_6b", 128);
    mixed_c(&t, "Mixed_6c", 160);
    mixed_c(&t, "Mixed_6d", 160);
    mixed_c(&t, "Mixed_6e", 192);
    mixed_d(&t, "Mixed_7a");
    mixed_e(&t, "Mixed_7b", 1280);
    mixed_e(&t, "Mixed_7c", 2048);
}

// ------------------------------------------------------------------------------------------------- name table
static KtStatus build_table(Inception *net) {
    KtWeightTable *t = &net->table;
    kt_wtab_init(t);
    for (int i = 0; i < INC_N_CONVS; i++) {
        IncConv *c = &net->conv[i];
        const IncConvDesc *d = &c->d;
        KtWeightKind kind = net->fold ? KT_W_CONV_F32 : KT_W_CONV;  // folded: float32 until fold_weights
        KT_TRY(kt_wtab_add(t, &c->w, kind, 4, (int64_t[]){d->co, d->ci, d->kh, d->kw}, "%s.conv.weight", d->name));
        KtTensor *bn[4] = {&c->bn_w, &c->bn_b, &c->bn_mean, &c->bn_var};
        static const char *bn_names[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int k = 0; k < 4; k++)
            KT_TRY(kt_wtab_add(t, bn[k], KT_W_PLAIN, 1, (int64_t[]){d->co}, "%s.bn.%s", d->name, bn_names[k]));
        char name[80];
        snprintf(name, sizeof name, "%s.bn.num_batches_tracked", d->name);  // a training counter
        KT_TRY(kt_wtab_ignore(t, name));
    }
    KT_TRY(kt_wtab_add(t, &net->fc_w, KT_W_MATMUL, 2, (int64_t[]){INC_CLASSES, INC_POOL3}, "fc.weight"));
    return kt_wtab_add(t, &net->fc_b, KT_W_PLAIN, 1, (int64_t[]){INC_CLASSES}, "fc.bias");
}

// Random weights for benchmarks: the table's default init, then BatchNorm statistics that keep activations O(1)
// (variance 1, mean 0) so that speed runs see realistic (non-denormal, non-overflowing) numbers.
static KtStatus randomize_bn(Inception *net) {
    float *v = NULL;
    KtStatus st = KT_OK;
    for (int i = 0; i < INC_N_CONVS && st == KT_OK; i++) {
        IncConv *c = &net->conv[i];
        int co = c->d.co;
        float *nv = realloc(v, (size_t)co * sizeof *v);
        if (!nv) {
            st = KT_FAIL(KT_ERR_OOM, "inception: out of memory");
            break;
        }
        v = nv;
        for (int k = 0; k < co; k++) v[k] = 1.0f;
        st = kt_upload(net->be, &c->bn_w, v);
        if (st == KT_OK) st = kt_upload(net->be, &c->bn_var, v);
        for (int k = 0; k < co; k++) v[k] = 0.0f;
        if (st == KT_OK) st = kt_upload(net->be, &c->bn_mean, v);
    }
    free(v);
    return st;
}

#define INC_MAX_CO 448  // the widest unit (Mixed_7b/c.branch3x3dbl_1)

// The folded path's conv weights: w (float32, (co, kh, kw, ci)) * scale[o] per output channel in double, rounded
// once to the matmul dtype into `dst` (device), c->w re-pointed there.
static KtStatus fold_weights(Inception *net, IncConv *c, const float *scale, void *dst) {
    KtBackend *be = net->be;
    int64_t n = kt_numel(&c->w), per = n / c->d.co;
    float *w = malloc((size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * sizeof(uint16_t));
    KtStatus st = w && h ? kt_download(be, w, &c->w) : KT_FAIL(KT_ERR_OOM, "inception: out of memory");
    for (int64_t i = 0; st == KT_OK && i < n; i++) {
        float v = (float)((double)w[i] * scale[i / per]);
        h[i] = be->matmul_dtype == KT_BF16 ? kt_f32_to_bf16(v) : kt_f32_to_f16(v);
    }
    KtTensor f = c->w;
    f.data = dst;
    f.dtype = be->matmul_dtype;
    if (st == KT_OK) st = kt_upload(be, &f, h);
    if (st == KT_OK) c->w = f;
    free(w);
    free(h);
    return st;
}

// scale = gamma / sqrt(var + 1e-3), shift = beta - mean * scale, in double, rounded once to float32 (spec 1.2); with
// net->fold the scale also goes into 16-bit copies of the conv weights (fold_weights).
static KtStatus fold_batchnorm(Inception *net) {
    size_t total = INC_MAX_CO, wbytes = 0;
    for (int i = 0; i < INC_N_CONVS; i++) total += 2 * (size_t)net->conv[i].d.co;
    for (int i = 0; net->fold && i < INC_N_CONVS; i++) wbytes += kt_arena_size(kt_numel(&net->conv[i].w) * 2);
    KT_TRY(kt_buffer_alloc(net->be, &net->derived, total * sizeof(float)));
    if (wbytes) KT_TRY(kt_buffer_alloc(net->be, &net->folded, wbytes));
    float *host = malloc(6 * INC_MAX_CO * sizeof(float));  // 4 inputs + 2 outputs of the widest unit
    if (!host) return KT_FAIL(KT_ERR_OOM, "inception: out of memory");
    KtStatus st = KT_OK;
    char *wdst = net->folded.data;
    net->gamma_all_one = true;
    float *dst = net->derived.data;
    for (int i = 0; i < INC_N_CONVS && st == KT_OK; i++) {
        IncConv *c = &net->conv[i];
        int co = c->d.co;
        float *g = host, *b = g + co, *m = b + co, *v = m + co, *scale = v + co, *shift = scale + co;
        st = kt_download(net->be, g, &c->bn_w);
        if (st == KT_OK) st = kt_download(net->be, b, &c->bn_b);
        if (st == KT_OK) st = kt_download(net->be, m, &c->bn_mean);
        if (st == KT_OK) st = kt_download(net->be, v, &c->bn_var);
        for (int k = 0; st == KT_OK && k < co; k++) {
            if (!(v[k] >= 0.0f) || !isfinite(v[k]) || !isfinite(g[k]) || !isfinite(b[k]) || !isfinite(m[k]))
                st = KT_FAIL(KT_ERR_FORMAT, "inception: %s.bn channel %d has a non-finite or negative statistic "
                             "(var %g, mean %g, weight %g, bias %g)", c->d.name, k, v[k], m[k], g[k], b[k]);
            double s = (double)g[k] / sqrt((double)v[k] + BN_EPS);
            scale[k] = (float)s;
            shift[k] = (float)((double)b[k] - (double)m[k] * s);
            if (g[k] != 1.0f) net->gamma_all_one = false;
        }
        c->scale = kt_tensor1(dst, KT_F32, net->be->device, co);
        c->shift = kt_tensor1(dst + co, KT_F32, net->be->device, co);
        dst += 2 * co;
        if (st == KT_OK) st = kt_upload(net->be, &c->scale, scale);
        if (st == KT_OK) st = kt_upload(net->be, &c->shift, shift);
        if (st == KT_OK && net->fold) {
            st = fold_weights(net, c, scale, wdst);
            wdst += kt_arena_size(kt_numel(&c->w) * 2);
        }
    }
    net->ones = kt_tensor1(dst, KT_F32, net->be->device, INC_MAX_CO);
    for (int k = 0; k < INC_MAX_CO; k++) host[k] = 1.0f;
    if (st == KT_OK) st = kt_upload(net->be, &net->ones, host);
    free(host);
    return st;
}

// ------------------------------------------------------------------------------------------------- workspace
// Per image: the largest map is Conv2d_2b's 147x147x64; the largest branch scratch is the 3x3 pool of Mixed_5d's
// 35x35x288 input.
#define MAP_ELEMS ((int64_t)147 * 147 * 64)
#define TMP_ELEMS ((int64_t)35 * 35 * 288)

static KtStatus carve(Inception *net, KtArena *a, int64_t B) {
    KtDType mdt = net->be->map_dtype;
    KT_TRY(kt_arena_tensor(a, &net->x, KT_F32, 4, (int64_t[]){B, INC_SIZE, INC_SIZE, 3}, "inception input"));
    if (mdt != KT_F32)
        KT_TRY(kt_arena_tensor(a, &net->xm, mdt, 4, (int64_t[]){B, INC_SIZE, INC_SIZE, 3}, "inception input"));
    for (int i = 0; i < 2; i++)
        KT_TRY(kt_arena_tensor(a, &net->map[i], mdt, 4, (int64_t[]){B, MAP_ELEMS, 1, 1}, "inception maps"));
    for (int i = 0; i < 4; i++)
        KT_TRY(kt_arena_tensor(a, &net->tmp[i], mdt, 4, (int64_t[]){B, TMP_ELEMS, 1, 1}, "inception branches"));
    KT_TRY(kt_arena_tensor(a, &net->spatial, mdt, 4, (int64_t[]){B, 17, 17, 7}, "inception sFID tap"));
    net->spatial_f32 = net->spatial;
    if (mdt != KT_F32)
        KT_TRY(kt_arena_tensor(a, &net->spatial_f32, KT_F32, 4, (int64_t[]){B, 17, 17, 7}, "inception sFID tap"));
    KT_TRY(kt_arena_tensor(a, &net->pool3, KT_F32, 2, (int64_t[]){B, INC_POOL3}, "inception pool3"));
    return kt_arena_tensor(a, &net->logits, KT_F32, 2, (int64_t[]){B, INC_CLASSES}, "inception logits");
}

KtStatus inception_init(Inception *net, KtBackend *be, const KtCheckpoint *ck, uint64_t seed, int max_batch) {
    memset(net, 0, sizeof *net);
    net->be = be;
    net->max_batch = max_batch < 1 ? 1 : max_batch;
    net->fold = be->matmul_dtype != KT_F32;
    build_convs(net);
    KtStatus st = build_table(net);
    if (st == KT_OK)
        st = ck ? kt_wtab_load(&net->table, be, &net->weights, ck, "FID Inception-v3 (pt_inception-2015-12-05)",
                               "expected pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
                : kt_wtab_init_random(&net->table, be, &net->weights, seed);
    if (st == KT_OK && !ck) st = randomize_bn(net);
    if (st == KT_OK) st = fold_batchnorm(net);
    if (st == KT_OK) {
        KtArena sizing;
        kt_arena_measure(&sizing);
        st = carve(net, &sizing, net->max_batch);
        if (st == KT_OK) st = kt_arena_init(&net->arena, be, sizing.used);
        if (st == KT_OK) st = carve(net, &net->arena, net->max_batch);
    }
    if (st != KT_OK) inception_free(net);
    return st;
}

void inception_free(Inception *net) {
    if (!net) return;
    for (int i = 0; i < INC_SLOTS; i++) kt_graph_free(&net->graph[i]);  // they address the buffers below
    kt_wtab_free(&net->table);
    kt_buffer_free(&net->weights);
    kt_buffer_free(&net->derived);
    kt_buffer_free(&net->folded);
    for (int i = 0; i < INC_SLOTS; i++) kt_buffer_free(&net->input[i]);
    kt_arena_free(&net->arena);
    memset(net, 0, sizeof *net);
}

// ------------------------------------------------------------------------------------------------ hash check
// torch.hub names weight files "<stem>-<first 8 hex digits of the SHA-256>.<ext>".
static bool name_tag(const char *path, char tag[9]) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot - base < 10 || dot[-9] != '-') return false;
    for (int i = 0; i < 8; i++) {
        char ch = dot[-8 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
        tag[i] = ch;
    }
    tag[8] = 0;
    return true;
}

KtStatus inception_check_hash(const char *path) {
    char tag[9], hex[65];
    if (!name_tag(path, tag)) return KT_OK;
    KT_TRY(sha256_file_hex(path, hex));
    if (strncmp(hex, tag, 8))
        return KT_FAIL(KT_ERR_FORMAT, "%s: SHA-256 is %s..., but the name says %s...: the file is damaged or not "
                       "the original (download it again, or rename it if it is a deliberately different file)",
                       path, (hex[8] = 0, hex), tag);
    return KT_OK;
}
