// The op-test harness (see optest.h).
#include "optest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctx_open(Ctx *c, KtDevice dev, const char *fixture) {
    memset(c, 0, sizeof *c);
    c->fixture = fixture;
    test_backend_init(&c->be, dev);
}

void ctx_close(Ctx *c) {
    for (int i = 0; i < c->nbuf; i++) kt_buffer_free(&c->buf[i]);
    for (int i = 0; i < c->nhost; i++) free(c->host[i]);
    kt_backend_free(&c->be);
}

void *ctx_keep(Ctx *c, void *p) {
    cr_assert(c->nhost < CTX_MAX && p);
    return c->host[c->nhost++] = p;
}

KtTensor dev_new(Ctx *c, KtDType dt, int ndim, const int64_t *shape, const void *host) {
    cr_assert(c->nbuf < CTX_MAX);
    KtTensor t = kt_tensor(NULL, dt, c->be.device, ndim, shape);
    KtBuffer *b = &c->buf[c->nbuf++];
    OK(kt_buffer_alloc(&c->be, b, kt_nbytes(&t)));
    t.data = b->data;
    if (!host) {
        void *fill = ctx_keep(c, malloc(kt_nbytes(&t) + 1));
        memset(fill, 0xff, kt_nbytes(&t));
        host = fill;
    }
    OK(kt_upload(&c->be, &t, host));
    return t;
}

float *fx_read(Ctx *c, const char *name, int64_t *n, int64_t shape[KT_MAX_DIMS], int *ndim) {
    return ctx_keep(c, read_f32(fixture_path(c->fixture), name, n, shape, ndim));
}

KtTensor fx_tensor(Ctx *c, const char *name, KtDType dt, bool upload) {
    int64_t n, shape[KT_MAX_DIMS];
    int ndim;
    float *v = fx_read(c, name, &n, shape, &ndim);
    if (!upload) return dev_new(c, dt, ndim, shape, NULL);
    if (dt == KT_F32) return dev_new(c, dt, ndim, shape, v);
    void *h = ctx_keep(c, malloc((size_t)(n ? n : 1) * 8));
    for (int64_t i = 0; i < n; i++) {
        if (dt == KT_I32) ((int32_t *)h)[i] = (int32_t)v[i];
        else if (dt == KT_I64) ((int64_t *)h)[i] = (int64_t)v[i];
        else ((uint8_t *)h)[i] = (uint8_t)v[i];
    }
    return dev_new(c, dt, ndim, shape, h);
}

double fx_scalar(const Ctx *c, const char *name) {
    float *v = read_f32(fixture_path(c->fixture), name, NULL, NULL, NULL);
    double r = v[0];
    free(v);
    return r;
}

float *download_f32(Ctx *c, const KtTensor *t) {
    float *h = ctx_keep(c, malloc(kt_nbytes(t) + 1));
    OK(kt_download(&c->be, h, t));
    return h;
}

void expect_fx(Ctx *c, const KtTensor *t, const char *ref, double atol, double rtol) {
    int64_t n;
    float *r = fx_read(c, ref, &n, NULL, NULL);
    cr_assert_eq(n, kt_numel(t), "%s: %lld values, op output has %lld", ref, (long long)n, (long long)kt_numel(t));
    char what[160];
    snprintf(what, sizeof what, "%s (%s)", ref, kt_device_name(c->be.device));
    expect_close(what, download_f32(c, t), r, n, atol, rtol);
}

void expect_fx_int(Ctx *c, const KtTensor *t, const char *ref) {
    int64_t n, nt = kt_numel(t);
    int64_t *r = ctx_keep(c, read_i64(fixture_path(c->fixture), ref, &n));
    cr_assert_eq(n, nt, "%s: size mismatch", ref);
    void *h = download_f32(c, t);
    int64_t *g = ctx_keep(c, malloc((size_t)(n ? n : 1) * 8));
    for (int64_t i = 0; i < n; i++) g[i] = t->dtype == KT_I32 ? ((int32_t *)h)[i] : ((uint8_t *)h)[i];
    expect_equal_i64(ref, g, r, n);
}
