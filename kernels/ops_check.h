// Internal to kernels/ops*.c: the argument checks every validating op wrapper runs (dtype, device, shape) before it
// dispatches to the backend, and the dispatch macro that times ops by name while the backend profiles.
#pragma once

#include <stdio.h>

#include "ops.h"
#include "profile.h"

// t is set, has dtype dt, lives on the backend's device and has ndim dims (ndim < 0: any number >= 1).
static inline KtStatus need(KtBackend *be, const char *op, const char *arg, const KtTensor *t, KtDType dt, int ndim) {
    if (!t || !t->data)
        return KT_FAIL(KT_ERR_ARG, "%s: '%s' is NULL", op, arg);
    if (t->dtype != dt)
        return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' has dtype %s, expected %s", op, arg, kt_dtype_name(t->dtype),
                       kt_dtype_name(dt));
    if (t->device != be->device)
        return KT_FAIL(KT_ERR_ARG, "%s: '%s' lives on %s, the backend is %s", op, arg, kt_device_name(t->device),
                       kt_device_name(be->device));
    if (ndim >= 0 && t->ndim != ndim)
        return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' has %d dims, expected %d", op, arg, t->ndim, ndim);
    if (ndim < 0 && t->ndim < 1)
        return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' must have at least one dim", op, arg);
    return KT_OK;
}
// GEMM/conv weights may be float32 or the backend's matmul dtype.
static inline KtStatus need_weight(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim) {
    KtDType dt = (t && t->dtype == be->matmul_dtype) ? be->matmul_dtype : KT_F32;
    return need(be, op, arg, t, dt, ndim);
}
// Feature maps of the map ops may be float32 or the backend's map dtype.
static inline KtStatus need_map(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim) {
    KtDType dt = (t && t->dtype == be->map_dtype) ? be->map_dtype : KT_F32;
    return need(be, op, arg, t, dt, ndim);
}
// Same as need_map, and with the dtype of `like`.
static inline KtStatus need_map_as(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim,
                            const KtTensor *like) {
    KT_TRY(need_map(be, op, arg, t, ndim));
    if (t->dtype != like->dtype)
        return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' has dtype %s, expected %s like the other feature maps", op, arg,
                       kt_dtype_name(t->dtype), kt_dtype_name(like->dtype));
    return KT_OK;
}
// Every op's dispatch: be->ops->op(be, ...), timed by name while the backend profiles (profile.h).
#define RUN(op, ...)                                                                                              \
    (be->prof ? (kt_profile_enter(be, #op), kt_profile_leave(be, be->ops->op(be, __VA_ARGS__)))                  \
              : be->ops->op(be, __VA_ARGS__))

#define NEED(t, dt, nd) KT_TRY(need(be, __func__, #t, (t), (dt), (nd)))
#define NEED_MAP(t, nd) KT_TRY(need_map(be, __func__, #t, (t), (nd)))
#define NEED_MAP_AS(t, nd, like) KT_TRY(need_map_as(be, __func__, #t, (t), (nd), (like)))
#define NEED_F32(t, nd) NEED(t, KT_F32, nd)

static inline KtStatus shape_err(const char *op, const char *arg, const KtTensor *t, const char *expected) {
    char buf[96];
    return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' is %s, expected %s", op, arg, kt_shape_str(t, buf, sizeof buf), expected);
}

static inline KtStatus same(const char *op, const char *an, const KtTensor *a, const char *bn, const KtTensor *b) {
    if (kt_same_shape(a, b)) return KT_OK;
    char sa[96], sb[96];
    return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' %s and '%s' %s must have the same shape", op, an,
                   kt_shape_str(a, sa, sizeof sa), bn, kt_shape_str(b, sb, sizeof sb));
}
#define SAME(a, b) KT_TRY(same(__func__, #a, (a), #b, (b)))

// t must be exactly (d0[, d1[, d2[, d3]]]) with `n` dims.
static inline KtStatus dims(const char *op, const char *arg, const KtTensor *t, int n, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3) {
    int64_t want[4] = {d0, d1, d2, d3};
    bool ok = t->ndim == n;
    for (int i = 0; ok && i < n; i++) ok = t->shape[i] == want[i];
    if (ok) return KT_OK;
    char exp[128];
    int m = snprintf(exp, sizeof exp, "(");
    for (int i = 0; i < n; i++) m += snprintf(exp + m, sizeof exp - (size_t)m, i ? ", %lld" : "%lld", (long long)want[i]);
    snprintf(exp + m, sizeof exp - (size_t)m, ")");
    return shape_err(op, arg, t, exp);
}
#define DIMS1(t, a) KT_TRY(dims(__func__, #t, (t), 1, (a), 0, 0, 0))
#define DIMS2(t, a, b) KT_TRY(dims(__func__, #t, (t), 2, (a), (b), 0, 0))
#define DIMS3(t, a, b, c) KT_TRY(dims(__func__, #t, (t), 3, (a), (b), (c), 0))
#define DIMS4(t, a, b, c, d) KT_TRY(dims(__func__, #t, (t), 4, (a), (b), (c), (d)))

// kt_linear's checks (ops.c), under the name of the op that makes them.
KtStatus kt_check_linear(KtBackend *be, const char *op, const KtTensor *y, const KtTensor *x, const KtTensor *w,
                         const KtTensor *b);

// Backends that predate an op leave its slot NULL.
#define HAVE_OP(slot)                                                                                            \
    do {                                                                                                         \
        if (!be->ops->slot) return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: not implemented by the %s backend", __func__, \
                                           be->name ? be->name : "current");                                     \
    } while (0)
