// Weight tables: validation of a model's tensor list against a checkpoint, and loading into one buffer.
#include "weights.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../samplers/philox.h"

void kt_wtab_init(KtWeightTable *t) { memset(t, 0, sizeof *t); }

void kt_wtab_free(KtWeightTable *t) {
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->specs[i].name);
    for (int i = 0; i < t->n_ignore; i++) free(t->ignore[i]);
    free(t->specs);
    free(t->ignore);
    memset(t, 0, sizeof *t);
}

KtStatus kt_wtab_add(KtWeightTable *t, KtTensor *dst, KtWeightKind kind, int ndim, const int64_t *shape,
                     const char *fmt, ...) {
    if (ndim < 1 || ndim > KT_MAX_DIMS) return KT_FAIL(KT_ERR_ARG, "kt_wtab_add: bad ndim %d", ndim);
    if ((kind == KT_W_CONV || kind == KT_W_CONV_F32 || kind == KT_W_CONV1X1_LINEAR) && ndim != 4)
        return KT_FAIL(KT_ERR_ARG, "kt_wtab_add: conv weights have 4 dims");
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 64;
        KtWeightSpec *s = realloc(t->specs, (size_t)cap * sizeof *s);
        if (!s) return KT_FAIL(KT_ERR_OOM, "weight table: out of memory");
        t->specs = s;
        t->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    KtWeightSpec *s = &t->specs[t->n];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    if (!s->name) return KT_FAIL(KT_ERR_OOM, "weight table: out of memory");
    s->kind = kind;
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++) s->shape[i] = shape[i];
    s->dst = dst;
    memset(dst, 0, sizeof *dst);
    t->n++;
    return KT_OK;
}

void kt_wtab_last_optional(KtWeightTable *t) {
    if (t->n) t->specs[t->n - 1].optional = true;
}

void kt_wtab_last_follows(KtWeightTable *t) {
    if (t->n > 1) t->specs[t->n - 1].follows = true;
}

KtStatus kt_wtab_ignore(KtWeightTable *t, const char *pattern) {
    char **ig = realloc(t->ignore, (size_t)(t->n_ignore + 1) * sizeof *ig);
    if (!ig) return KT_FAIL(KT_ERR_OOM, "weight table: out of memory");
    t->ignore = ig;
    if (!(t->ignore[t->n_ignore] = strdup(pattern))) return KT_FAIL(KT_ERR_OOM, "weight table: out of memory");
    t->n_ignore++;
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------ shapes, views
static bool ignored(const KtWeightTable *t, const char *name) {
    for (int i = 0; i < t->n_ignore; i++) {
        const char *p = t->ignore[i];
        size_t n = strlen(p);
        if (n && p[n - 1] == '*' ? !strncmp(name, p, n - 1) : !strcmp(name, p)) return true;
    }
    return false;
}

// The view's shape and dtype for a spec.
static KtTensor spec_view(const KtWeightSpec *s, KtBackend *be) {
    const int64_t *f = s->shape;
    KtDType dt = s->kind == KT_W_PLAIN || s->kind == KT_W_CONV_F32 ? KT_F32 : be->matmul_dtype;
    switch (s->kind) {
    case KT_W_CONV:
    case KT_W_CONV_F32: return kt_tensor4(NULL, dt, be->device, f[0], f[2], f[3], f[1]);
    case KT_W_CONV1X1_LINEAR: return kt_tensor2(NULL, dt, be->device, f[0], f[1]);
    default: return kt_tensor(NULL, dt, be->device, s->ndim, f);
    }
}

static int64_t spec_numel(const KtWeightSpec *s) {
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) n *= s->shape[i];
    return n;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    KtTensor t = kt_tensor(NULL, KT_F32, KT_CPU, ndim, shape);
    kt_shape_str(&t, buf, cap);
}

// Appends one line to a growing message; keeps the first `max_lines` and counts the rest.
typedef struct {
    char text[8192];
    size_t len;
    int lines, dropped;
} Report;

static void report_add(Report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report_add(Report *r, const char *fmt, ...) {
    if (r->lines >= 24 || r->len + 200 > sizeof r->text) {
        r->dropped++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    r->len += (size_t)vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
    va_end(ap);
    r->lines++;
}

static KtStatus check_table(KtWeightTable *t, const KtCheckpoint *ck, const char *what, const char *hint) {
    Report r = {.len = 0};
    int n_missing = 0, n_shape = 0, n_unexpected = 0;
    for (int i = 0; i < t->n; i++) {
        const KtWeightSpec *s = &t->specs[i];
        const KtCkptTensor *c = kt_ckpt_find(ck, s->name);
        char want[96], got[96];
        shape_str(want, sizeof want, s->ndim, s->shape);
        if (!c) {
            if (!s->optional) {
                report_add(&r, "\n  missing:    '%s' %s", s->name, want);
                n_missing++;
            }
            continue;
        }
        bool ok = c->ndim == s->ndim;
        for (int d = 0; ok && d < s->ndim; d++) ok = c->shape[d] == s->shape[d];
        if (!ok) {
            shape_str(got, sizeof got, c->ndim, c->shape);
            report_add(&r, "\n  mis-shaped: '%s' is %s, expected %s", s->name, got, want);
            n_shape++;
        } else if (c->dtype != KT_F32 && c->dtype != KT_F16 && c->dtype != KT_BF16 && c->dtype != KT_F64) {
            report_add(&r, "\n  wrong type: '%s' is %s, expected a floating-point tensor", s->name,
                       kt_dtype_name(c->dtype));
            n_shape++;
        }
    }
    for (int i = 0; i < ck->n_tensors; i++) {
        const char *name = ck->tensors[i].name;
        bool listed = ignored(t, name);
        for (int j = 0; !listed && j < t->n; j++) listed = !strcmp(t->specs[j].name, name);
        if (!listed) {
            report_add(&r, "\n  unexpected: '%s'", name);
            n_unexpected++;
        }
    }
    if (!n_missing && !n_shape && !n_unexpected) return KT_OK;
    if (r.dropped) report_add(&r, "\n  ... and %d more", r.dropped);
    return KT_FAIL(KT_ERR_SHAPE, "%s: not a %s checkpoint of this configuration (%d missing, %d mis-shaped, "
                   "%d unexpected tensors):%s%s%s", ck->path, what, n_missing, n_shape, n_unexpected, r.text,
                   hint && hint[0] ? "\n  hint: " : "", hint ? hint : "");
}

// ----------------------------------------------------------------------------------------------------- loading
// Converts one float32 tensor in checkpoint layout to its view layout/dtype in `out`.
static void convert(const KtWeightSpec *s, const KtTensor *view, const float *src, void *out, float *tmp) {
    int64_t n = spec_numel(s);
    const float *v = src;
    if (s->kind == KT_W_CONV || s->kind == KT_W_CONV_F32) {  // (Co, Ci, kh, kw) -> (Co, kh, kw, Ci)
        int64_t Co = s->shape[0], Ci = s->shape[1], KH = s->shape[2], KW = s->shape[3];
        for (int64_t o = 0; o < Co; o++)
            for (int64_t c = 0; c < Ci; c++)
                for (int64_t y = 0; y < KH; y++)
                    for (int64_t x = 0; x < KW; x++)
                        tmp[((o * KH + y) * KW + x) * Ci + c] = src[((o * Ci + c) * KH + y) * KW + x];
        v = tmp;
    }
    if (view->dtype == KT_F32) {
        memcpy(out, v, (size_t)n * sizeof(float));
    } else {
        uint16_t *o16 = out;
        for (int64_t i = 0; i < n; i++) o16[i] = view->dtype == KT_BF16 ? kt_f32_to_bf16(v[i]) : kt_f32_to_f16(v[i]);
    }
}

typedef KtStatus (*FillFn)(void *ctx, const KtWeightSpec *s, float *dst);

// Sizes the buffer, allocates it on the backend, and fills every present tensor through `fill` (one tensor at a
// time through host staging, so a multi-GB checkpoint never needs a second full copy in host memory).
static KtStatus bind_all(KtWeightTable *t, KtBackend *be, KtBuffer *buf, const KtCheckpoint *ck, FillFn fill,
                         void *ctx) {
    size_t total = 0, max_elems = 0;
    t->n_params = 0;
    bool prev_bound = false;
    for (int i = 0; i < t->n; i++) {
        const KtWeightSpec *s = &t->specs[i];
        bool bound = ck ? kt_ckpt_find(ck, s->name) != NULL : !s->optional;  // random init leaves optional ones out
        if (s->follows && !(bound && prev_bound))
            return KT_FAIL(KT_ERR_ARG, "weights: '%s' must follow a tensor present in the buffer", s->name);
        prev_bound = bound;
        if (!bound) continue;
        KtTensor v = spec_view(s, be);
        total = (s->follows ? total : kt_arena_size(total)) + kt_nbytes(&v);
        size_t n = (size_t)spec_numel(s);
        if (n > max_elems) max_elems = n;
    }
    total = kt_arena_size(total);
    KT_TRY(kt_buffer_alloc(be, buf, total));
    float *stage = malloc((max_elems ? max_elems : 1) * sizeof(float) * 2);
    void *packed = malloc((max_elems ? max_elems : 1) * sizeof(float));
    KtStatus st = KT_OK;
    if (!stage || !packed) {
        st = KT_FAIL(KT_ERR_OOM, "weights: out of host memory staging %zu floats", max_elems);
        goto cleanup;
    }
    size_t off = 0;
    for (int i = 0; i < t->n; i++) {
        KtWeightSpec *s = &t->specs[i];
        if (ck ? !kt_ckpt_find(ck, s->name) : s->optional) continue;  // random init leaves optional buffers out
        KtTensor v = spec_view(s, be);
        if (!s->follows) off = kt_arena_size(off);  // aligned, unless it continues the tensor before it
        v.data = (char *)buf->data + off;
        off += kt_nbytes(&v);
        if ((st = fill(ctx, s, stage)) != KT_OK) goto cleanup;
        convert(s, &v, stage, packed, stage + max_elems);
        if ((st = kt_upload(be, &v, packed)) != KT_OK) goto cleanup;
        *s->dst = v;
        t->n_params += (size_t)spec_numel(s);
    }
cleanup:
    free(stage);
    free(packed);
    if (st != KT_OK) kt_buffer_free(buf);
    return st;
}

static KtStatus fill_from_ckpt(void *ctx, const KtWeightSpec *s, float *dst) {
    const KtCheckpoint *ck = ctx;
    KtStatus st = kt_ckpt_read_f32(ck, kt_ckpt_find(ck, s->name), dst);
    if (st != KT_OK) kt_error_prefix("reading '%s'", s->name);
    return st;
}

KtStatus kt_wtab_load(KtWeightTable *t, KtBackend *be, KtBuffer *buf, const KtCheckpoint *ck, const char *what,
                      const char *hint) {
    KT_TRY(check_table(t, ck, what, hint));
    return bind_all(t, be, buf, ck, fill_from_ckpt, (void *)ck);
}

typedef struct {
    uint64_t seed;
    int index;
} RandomCtx;

static KtStatus fill_random(void *ctx, const KtWeightSpec *s, float *dst) {
    RandomCtx *rc = ctx;
    int64_t n = spec_numel(s);
    float a = 0.02f;
    if (s->kind != KT_W_PLAIN && n > 0) a = 1.0f / sqrtf((float)(n / s->shape[0]));  // U(+-1/sqrt(fan_in))
    size_t len = strlen(s->name);
    bool gn_weight = s->ndim == 1 && strstr(s->name, "norm") && len > 7 && !strcmp(s->name + len - 7, ".weight");
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += 4) {
        SmpPhilox4 r = smp_rng_block(rc->seed, (uint64_t)rc->index, (uint32_t)(i / 4), 0x7fffffffu);
        for (int j = 0; j < 4 && i + j < n; j++)
            dst[i + j] = gn_weight ? 1.0f : a * (2.0f * smp_u24_open(r.v[j]) - 1.0f);
    }
    rc->index++;
    return KT_OK;
}

KtStatus kt_wtab_init_random(KtWeightTable *t, KtBackend *be, KtBuffer *buf, uint64_t seed) {
    RandomCtx rc = {seed, 0};
    return bind_all(t, be, buf, NULL, fill_random, &rc);
}
