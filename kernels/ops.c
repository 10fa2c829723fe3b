// Validating wrappers of the op interface (ops.h): check dtype, device and shape, then dispatch to the backend.
#include "ops.h"

#include <math.h>
#include <stdio.h>

#include "profile.h"

// ------------------------------------------------------------------------------------------------ check helpers
static KtStatus need(KtBackend *be, const char *op, const char *arg, const KtTensor *t, KtDType dt, int ndim) {
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
static KtStatus need_weight(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim) {
    KtDType dt = (t && t->dtype == be->matmul_dtype) ? be->matmul_dtype : KT_F32;
    return need(be, op, arg, t, dt, ndim);
}
// Feature maps of the map ops may be float32 or the backend's map dtype.
static KtStatus need_map(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim) {
    KtDType dt = (t && t->dtype == be->map_dtype) ? be->map_dtype : KT_F32;
    return need(be, op, arg, t, dt, ndim);
}
// Same as need_map, and with the dtype of `like`.
static KtStatus need_map_as(KtBackend *be, const char *op, const char *arg, const KtTensor *t, int ndim,
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

static KtStatus shape_err(const char *op, const char *arg, const KtTensor *t, const char *expected) {
    char buf[96];
    return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' is %s, expected %s", op, arg, kt_shape_str(t, buf, sizeof buf), expected);
}

static KtStatus same(const char *op, const char *an, const KtTensor *a, const char *bn, const KtTensor *b) {
    if (kt_same_shape(a, b)) return KT_OK;
    char sa[96], sb[96];
    return KT_FAIL(KT_ERR_SHAPE, "%s: '%s' %s and '%s' %s must have the same shape", op, an,
                   kt_shape_str(a, sa, sizeof sa), bn, kt_shape_str(b, sb, sizeof sb));
}
#define SAME(a, b) KT_TRY(same(__func__, #a, (a), #b, (b)))

// t must be exactly (d0[, d1[, d2[, d3]]]) with `n` dims.
static KtStatus dims(const char *op, const char *arg, const KtTensor *t, int n, int64_t d0, int64_t d1, int64_t d2,
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

// ----------------------------------------------------------------------------------------------------- dense ops
static KtStatus check_linear(KtBackend *be, const char *op, KtTensor *y, const KtTensor *x, const KtTensor *w,
                             const KtTensor *b) {
    KT_TRY(need_weight(be, op, "w", w, 2));
    // 16-bit GEMM inputs and outputs only together with weights of their dtype; the bias follows y
    KtDType w16 = w->dtype != KT_F32 ? w->dtype : KT_F32;
    KT_TRY(need(be, op, "y", y, y && y->dtype == w16 ? w16 : KT_F32, -1));
    KT_TRY(need(be, op, "x", x, x && x->dtype == w16 ? w16 : KT_F32, -1));
    int64_t out = w->shape[0], in = w->shape[1];
    if (kt_cols(x) != in) return shape_err(op, "x", x, "(..., in) with in = w.shape[1]");
    if (b) {
        KT_TRY(need(be, op, "b", b, y->dtype, 1));
        KT_TRY(dims(op, "b", b, 1, out, 0, 0, 0));
    }
    bool lead_ok = y->ndim == x->ndim && kt_cols(y) == out;
    for (int i = 0; lead_ok && i < x->ndim - 1; i++) lead_ok = y->shape[i] == x->shape[i];
    if (!lead_ok) return shape_err(op, "y", y, "x's leading dims and out = w.shape[0]");
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "%s: y must not alias x", op);
    return KT_OK;
}

KtStatus kt_linear(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    KT_TRY(check_linear(be, __func__, y, x, w, b));
    return RUN(linear, y, x, w, b);
}

KtStatus kt_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    KT_TRY(check_linear(be, __func__, y, x, w, b));
    return RUN(linear_gelu_tanh, y, x, w, b);
}

KtStatus kt_layernorm(KtBackend *be, KtTensor *y, const KtTensor *x, float eps) {
    NEED_F32(y, -1);
    NEED_F32(x, -1);
    SAME(y, x);
    return RUN(layernorm, y, x, eps);
}

static KtStatus check_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift, KtDType ydt) {
    NEED(y, ydt, 3);
    NEED_F32(x, 3);
    NEED_F32(scale, 2);
    NEED_F32(shift, 2);
    SAME(y, x);
    DIMS2(scale, x->shape[0], x->shape[2]);
    DIMS2(shift, x->shape[0], x->shape[2]);
    return KT_OK;
}

KtStatus kt_adaln_modulate(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                           const KtTensor *shift) {
    KT_TRY(check_adaln(be, y, x, scale, shift, KT_F32));
    return RUN(adaln_modulate, y, x, scale, shift);
}

KtStatus kt_layernorm_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift, float eps) {
    KT_TRY(check_adaln(be, y, x, scale, shift, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32));
    if (y->dtype != KT_F32 && y->data == x->data)
        return KT_FAIL(KT_ERR_ARG, "kt_layernorm_adaln: a 16-bit y must not alias x");
    return RUN(layernorm_adaln, y, x, scale, shift, eps);
}

KtStatus kt_gated_residual(KtBackend *be, KtTensor *x, const KtTensor *h, const KtTensor *gate) {
    NEED_F32(x, 3);
    NEED_F32(h, 3);
    NEED_F32(gate, 2);
    SAME(x, h);
    DIMS2(gate, x->shape[0], x->shape[2]);
    return RUN(gated_residual, x, h, gate);
}

KtStatus kt_gated_residual_layernorm_adaln(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h,
                                           const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                           float eps) {
    KT_TRY(check_adaln(be, y, x, scale, shift, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32));
    NEED_F32(h, 3);
    NEED_F32(gate, 2);
    SAME(x, h);
    DIMS2(gate, x->shape[0], x->shape[2]);
    if (y->data == x->data || y->data == h->data)
        return KT_FAIL(KT_ERR_ARG, "kt_gated_residual_layernorm_adaln: y must not alias x or h");
    return RUN(gated_residual_layernorm_adaln, y, x, h, gate, scale, shift, eps);
}

KtStatus kt_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, -1);
    NEED_F32(x, -1);
    SAME(y, x);
    return RUN(gelu_tanh, y, x);
}

KtStatus kt_silu(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, -1);
    NEED_F32(x, -1);
    SAME(y, x);
    return RUN(silu, y, x);
}

KtStatus kt_add(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b) {
    NEED_MAP(a, -1);
    NEED_MAP_AS(y, -1, a);
    NEED_MAP_AS(b, -1, a);
    SAME(y, a);
    bool ok = b->ndim <= a->ndim;
    for (int i = 0; ok && i < b->ndim; i++) ok = b->shape[b->ndim - 1 - i] == a->shape[a->ndim - 1 - i];
    if (!ok) return shape_err(__func__, "b", b, "a trailing part of a's shape");
    return RUN(add, y, a, b);
}

KtStatus kt_axpby(KtBackend *be, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b) {
    NEED_F32(y, -1);
    NEED_F32(a, -1);
    NEED_F32(b, -1);
    SAME(y, a);
    SAME(y, b);
    return RUN(axpby, y, alpha, a, beta, b);
}

KtStatus kt_softmax(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, -1);
    NEED_F32(x, -1);
    SAME(y, x);
    return RUN(softmax, y, x);
}

KtStatus kt_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx) {
    NEED_F32(y, 2);
    NEED_F32(table, 2);
    NEED(idx, KT_I32, 1);
    DIMS2(y, idx->shape[0], table->shape[1]);
    return RUN(embedding, y, table, idx);
}

KtStatus kt_split_chunks(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, 3);
    NEED_F32(x, 2);
    DIMS2(x, y->shape[1], y->shape[0] * y->shape[2]);
    return RUN(split_chunks, y, x);
}

// -------------------------------------------------------------------------------------------------- image ops
KtStatus kt_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                   int stride, const int pad[4]) {
    NEED_MAP(y, 4);
    NEED_MAP(x, 4);
    KT_TRY(need_weight(be, __func__, "w", w, 4));
    if (stride < 1) return KT_FAIL(KT_ERR_ARG, "kt_conv2d: stride %d < 1", stride);
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0) return KT_FAIL(KT_ERR_ARG, "kt_conv2d: negative padding");
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], Ci = x->shape[3];
    int64_t Co = w->shape[0], kh = w->shape[1], kw = w->shape[2];
    if (w->shape[3] != Ci) return shape_err(__func__, "w", w, "(Co, kh, kw, Ci) with Ci = x.shape[3]");
    if ((x->dtype != KT_F32 || y->dtype != KT_F32) && w->dtype != be->map_dtype)
        return KT_FAIL(KT_ERR_SHAPE, "kt_conv2d: %s feature maps need %s weights, got %s", kt_dtype_name(be->map_dtype),
                       kt_dtype_name(be->map_dtype), kt_dtype_name(w->dtype));
    if (b) {
        NEED_F32(b, 1);
        DIMS1(b, Co);
    }
    int64_t Hp = H + pad[0] + pad[1], Wp = W + pad[2] + pad[3];
    if (Hp < kh || Wp < kw) return shape_err(__func__, "x", x, "a padded size at least the kernel size");
    DIMS4(y, B, (Hp - kh) / stride + 1, (Wp - kw) / stride + 1, Co);
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "kt_conv2d: y must not alias x");
    return RUN(conv2d, y, x, w, b, stride, pad);
}

static KtStatus check_gn(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                         int groups) {
    NEED_MAP(x, 4);
    NEED_MAP_AS(y, 4, x);
    NEED_F32(w, 1);
    NEED_F32(b, 1);
    SAME(y, x);
    int64_t C = x->shape[3];
    DIMS1(w, C);
    DIMS1(b, C);
    if (groups < 1 || C % groups)
        return KT_FAIL(KT_ERR_SHAPE, "kt_group_norm: %lld channels do not split into %d groups", (long long)C, groups);
    return KT_OK;
}

KtStatus kt_group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                       int groups, float eps) {
    KT_TRY(check_gn(be, y, x, w, b, groups));
    return RUN(group_norm, y, x, w, b, groups, eps);
}

KtStatus kt_group_norm_silu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w,
                            const KtTensor *b, int groups, float eps) {
    KT_TRY(check_gn(be, y, x, w, b, groups));
    return RUN(group_norm_silu, y, x, w, b, groups, eps);
}

KtStatus kt_upsample_nearest2x(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_MAP(x, 4);
    NEED_MAP_AS(y, 4, x);
    DIMS4(y, x->shape[0], 2 * x->shape[1], 2 * x->shape[2], x->shape[3]);
    return RUN(upsample_nearest2x, y, x);
}

static KtStatus check_resize(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, 4);
    NEED_F32(x, 4);
    if (y->shape[0] != x->shape[0] || y->shape[3] != x->shape[3])
        return shape_err("kt_resize", "y", y, "x's batch and channel dims");
    if (x->shape[1] < 1 || x->shape[2] < 1 || y->shape[1] < 1 || y->shape[2] < 1)
        return shape_err("kt_resize", "x", x, "non-empty spatial dims");
    return KT_OK;
}

KtStatus kt_resize_bicubic(KtBackend *be, KtTensor *y, const KtTensor *x) {
    KT_TRY(check_resize(be, y, x));
    return RUN(resize_bicubic, y, x);
}

KtStatus kt_resize_area(KtBackend *be, KtTensor *y, const KtTensor *x) {
    KT_TRY(check_resize(be, y, x));
    return RUN(resize_area, y, x);
}

KtStatus kt_codebook_argmin(KtBackend *be, KtTensor *idx, const KtTensor *z, const KtTensor *codebook) {
    NEED(idx, KT_I32, 1);
    NEED_F32(z, 2);
    NEED_F32(codebook, 2);
    DIMS1(idx, z->shape[0]);
    if (codebook->shape[1] != z->shape[1]) return shape_err(__func__, "codebook", codebook, "(V, D) with D = z.shape[1]");
    return RUN(codebook_argmin, idx, z, codebook);
}

// ---------------------------------------------------------------------------------------------------- attention
KtStatus kt_split_qkv_heads(KtBackend *be, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv) {
    NEED_F32(q, 4);
    NEED_F32(k, 4);
    NEED_F32(v, 4);
    NEED_F32(qkv, 3);
    SAME(q, k);
    SAME(q, v);
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3];
    DIMS3(qkv, B, T, 3 * NH * HS);
    return RUN(split_qkv_heads, q, k, v, qkv);
}

static KtStatus check_var_attn_prep(KtBackend *be, const char *op, KtTensor *q, KtTensor *kcache,
                                    KtTensor *vcache, const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0) {
    KT_TRY(need(be, op, "q", q, KT_F32, 4));
    KT_TRY(need(be, op, "kcache", kcache, KT_F32, 4));
    KT_TRY(need(be, op, "vcache", vcache, KT_F32, 4));
    KT_TRY(need(be, op, "qkv", qkv, KT_F32, 3));
    KT_TRY(need(be, op, "head_scale_log", head_scale_log, KT_F32, 1));
    KT_TRY(same(op, "kcache", kcache, "vcache", vcache));
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3];
    KT_TRY(dims(op, "qkv", qkv, 3, B, T, 3 * NH * HS, 0));
    KT_TRY(dims(op, "head_scale_log", head_scale_log, 1, NH, 0, 0, 0));
    if (kcache->shape[0] != B || kcache->shape[1] != NH || kcache->shape[3] != HS)
        return shape_err(op, "kcache", kcache, "(B, NH, Tcap, HS) matching q");
    if (t0 < 0 || t0 + T > kcache->shape[2])
        return KT_FAIL(KT_ERR_ARG, "%s: positions [%lld, %lld) exceed the cache capacity %lld", op,
                       (long long)t0, (long long)(t0 + T), (long long)kcache->shape[2]);
    return KT_OK;
}

KtStatus kt_var_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                          const KtTensor *head_scale_log, int64_t t0) {
    KT_TRY(check_var_attn_prep(be, __func__, q, kcache, vcache, qkv, head_scale_log, t0));
    return RUN(var_attn_prep, q, kcache, vcache, qkv, head_scale_log, t0);
}

static KtStatus check_attention(KtBackend *be, const char *op, const KtTensor *out, const KtTensor *q,
                                const KtTensor *k, const KtTensor *v, int64_t kv_len, const KtTensor *bias) {
    KT_TRY(need(be, op, "out", out, out && out->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, 3));
    KT_TRY(need(be, op, "q", q, KT_F32, 4));
    KT_TRY(need(be, op, "k", k, KT_F32, 4));
    KT_TRY(need(be, op, "v", v, KT_F32, 4));
    KT_TRY(same(op, "k", k, "v", v));
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3];
    if (k->shape[0] != B || k->shape[1] != NH || k->shape[3] != HS)
        return shape_err(op, "k", k, "(B, NH, Tcap, HS) matching q");
    if (kv_len < 1 || kv_len > k->shape[2])
        return KT_FAIL(KT_ERR_ARG, "%s: kv_len %lld outside [1, %lld]", op, (long long)kv_len,
                       (long long)k->shape[2]);
    KT_TRY(dims(op, "out", out, 3, B, Tq, NH * HS, 0));
    if (bias) {
        KT_TRY(need(be, op, "bias", bias, KT_F32, 2));
        KT_TRY(dims(op, "bias", bias, 2, Tq, kv_len, 0, 0));
    }
    return KT_OK;
}

KtStatus kt_attention(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                      int64_t kv_len, const KtTensor *bias, float scale) {
    KT_TRY(check_attention(be, __func__, out, q, k, v, kv_len, bias));
    return RUN(attention, out, q, k, v, kv_len, bias, scale);
}

KtStatus kt_var_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                          const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias) {
    KT_TRY(check_var_attn_prep(be, __func__, q, kcache, vcache, qkv, head_scale_log, t0));
    KT_TRY(check_attention(be, __func__, out, q, kcache, vcache, t0 + q->shape[2], bias));
    if (out->data == qkv->data || out->data == q->data)
        return KT_FAIL(KT_ERR_ARG, "kt_var_attention: out must not alias qkv or q");
    return RUN(var_attention, out, q, kcache, vcache, qkv, head_scale_log, t0, bias);
}

// ----------------------------------------------------------------------------------------------------- sampling
KtStatus kt_cfg_combine(KtBackend *be, KtTensor *y, const KtTensor *logits, float t) {
    NEED_F32(y, 3);
    NEED_F32(logits, 3);
    DIMS3(logits, 2 * y->shape[0], y->shape[1], y->shape[2]);
    return RUN(cfg_combine, y, logits, t);
}

KtStatus kt_sample_top_k_top_p(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                               int64_t pos0, SmpParams params) {
    NEED(tokens, KT_I32, 2);
    NEED_F32(logits, 3);
    NEED(image_ids, KT_I64, 1);
    DIMS2(tokens, logits->shape[0], logits->shape[1]);
    DIMS1(image_ids, logits->shape[0]);
    if (!(params.temperature > 0) || !isfinite(params.temperature))
        return KT_FAIL(KT_ERR_ARG, "sampling: temperature must be a positive number, got %g", params.temperature);
    if (pos0 < 0 || pos0 + logits->shape[1] > UINT32_MAX)
        return KT_FAIL(KT_ERR_ARG, "sampling: token positions out of range");
    return RUN(sample_top_k_top_p, tokens, logits, image_ids, pos0, params);
}

KtStatus kt_smooth_embed(KtBackend *be, KtTensor *h, const KtTensor *logits, const KtTensor *codebook,
                         float ratio, const KtTensor *image_ids, int64_t pos0, uint64_t seed) {
    NEED_F32(h, 3);
    NEED_F32(logits, 3);
    NEED_F32(codebook, 2);
    NEED(image_ids, KT_I64, 1);
    DIMS2(codebook, logits->shape[2], h->shape[2]);
    DIMS3(h, logits->shape[0], logits->shape[1], codebook->shape[1]);
    DIMS1(image_ids, logits->shape[0]);
    return RUN(smooth_embed, h, logits, codebook, ratio, image_ids, pos0, seed);
}

KtStatus kt_image_to_u8(KtBackend *be, KtTensor *y, const KtTensor *x, KtTensor *nonfinite) {
    NEED(y, KT_U8, 4);
    NEED_F32(x, 4);
    SAME(y, x);
    if (nonfinite) {
        NEED(nonfinite, KT_I64, 1);
        DIMS1(nonfinite, 1);
    }
    return RUN(image_to_u8, y, x, nonfinite);
}

KtStatus kt_count_nonfinite(KtBackend *be, KtTensor *count, const KtTensor *x) {
    NEED(count, KT_I64, 1);
    DIMS1(count, 1);
    NEED_F32(x, -1);
    return RUN(count_nonfinite, count, x);
}

KtStatus kt_convert(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_MAP(y, -1);
    NEED_MAP(x, -1);
    SAME(y, x);
    if (y->data == x->data && y->dtype != x->dtype)
        return KT_FAIL(KT_ERR_ARG, "kt_convert: y must not alias x when the dtypes differ");
    return RUN(convert, y, x);
}

// --------------------------------------------------------------------------------------- raster (LlamaGen) ops
// Backends that predate these ops leave their slots NULL.
#define HAVE_OP(slot)                                                                                            \
    do {                                                                                                         \
        if (!be->ops->slot) return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: not implemented by the %s backend", __func__, \
                                           be->name ? be->name : "current");                                     \
    } while (0)

KtStatus kt_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps) {
    NEED_F32(x, -1);
    NEED(y, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, -1);
    NEED_F32(w, 1);
    SAME(y, x);
    DIMS1(w, kt_cols(x));
    if (y->dtype != KT_F32 && y->data == x->data)
        return KT_FAIL(KT_ERR_ARG, "kt_rmsnorm: a 16-bit y must not alias x");
    HAVE_OP(rmsnorm);
    return RUN(rmsnorm, y, x, w, eps);
}

KtStatus kt_add_rmsnorm(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps) {
    NEED_F32(x, -1);
    NEED(y, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, -1);
    NEED_F32(h, -1);
    NEED_F32(w, 1);
    SAME(y, x);
    SAME(h, x);
    DIMS1(w, kt_cols(x));
    if (y->data == x->data || y->data == h->data)
        return KT_FAIL(KT_ERR_ARG, "kt_add_rmsnorm: y must not alias x or h");
    HAVE_OP(add_rmsnorm);
    return RUN(add_rmsnorm, y, x, h, w, eps);
}

KtStatus kt_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a) {
    NEED_F32(a, -1);
    NEED(y, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, a->ndim);
    bool ok = kt_cols(a) == 2 * kt_cols(y) && kt_rows(a) == kt_rows(y);
    for (int i = 0; ok && i < a->ndim - 1; i++) ok = a->shape[i] == y->shape[i];
    if (!ok) return shape_err(__func__, "y", y, "a's shape with the last dim halved");
    HAVE_OP(swiglu);
    return RUN(swiglu, y, a);
}

// The checks of kt_llama_attn_prep and kt_attention_pos, under the name of the op that makes them.
static KtStatus check_llama_prep(KtBackend *be, const char *op, const KtTensor *q, const KtTensor *kcache,
                                 const KtTensor *vcache, const KtTensor *qkv, const KtTensor *rope,
                                 const KtTensor *positions) {
    KT_TRY(need(be, op, "q", q, KT_F32, 4));
    KT_TRY(need(be, op, "kcache", kcache, KT_F32, 4));
    KT_TRY(need(be, op, "vcache", vcache, KT_F32, 4));
    KT_TRY(need(be, op, "qkv", qkv, KT_F32, 3));
    KT_TRY(need(be, op, "rope", rope, KT_F32, 3));
    KT_TRY(need(be, op, "positions", positions, KT_I32, 2));
    KT_TRY(same(op, "kcache", kcache, "vcache", vcache));
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3];
    if (HS % 2) return shape_err(op, "q", q, "an even head size (rotation pairs)");
    KT_TRY(dims(op, "qkv", qkv, 3, B, T, 3 * NH * HS, 0));
    if (rope->shape[1] != HS / 2 || rope->shape[2] != 2)
        return shape_err(op, "rope", rope, "(P, HS/2, 2) with HS = q.shape[3]");
    if (kcache->shape[0] != B || kcache->shape[1] != NH || kcache->shape[3] != HS)
        return shape_err(op, "kcache", kcache, "(B, NH, Tcap, HS) matching q");
    return dims(op, "positions", positions, 2, B, T, 0, 0);
}

static KtStatus check_attention_pos(KtBackend *be, const char *op, const KtTensor *out, const KtTensor *q,
                                    const KtTensor *k, const KtTensor *v, const KtTensor *positions) {
    KT_TRY(need(be, op, "out", out, out && out->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, 3));
    KT_TRY(need(be, op, "q", q, KT_F32, 4));
    KT_TRY(need(be, op, "k", k, KT_F32, 4));
    KT_TRY(need(be, op, "v", v, KT_F32, 4));
    KT_TRY(need(be, op, "positions", positions, KT_I32, 2));
    KT_TRY(same(op, "k", k, "v", v));
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3];
    if (k->shape[0] != B || k->shape[1] != NH || k->shape[3] != HS)
        return shape_err(op, "k", k, "(B, NH, Tcap, HS) matching q");
    if (k->shape[2] < 1) return shape_err(op, "k", k, "a cache with at least one row");
    KT_TRY(dims(op, "out", out, 3, B, Tq, NH * HS, 0));
    return dims(op, "positions", positions, 2, B, Tq, 0, 0);
}

KtStatus kt_llama_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                            const KtTensor *rope, const KtTensor *positions) {
    KT_TRY(check_llama_prep(be, __func__, q, kcache, vcache, qkv, rope, positions));
    HAVE_OP(llama_attn_prep);
    return RUN(llama_attn_prep, q, kcache, vcache, qkv, rope, positions);
}

KtStatus kt_attention_pos(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                          const KtTensor *positions, float scale) {
    KT_TRY(check_attention_pos(be, __func__, out, q, k, v, positions));
    HAVE_OP(attention_pos);
    return RUN(attention_pos, out, q, k, v, positions, scale);
}

KtStatus kt_llama_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                            const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions, float scale) {
    KT_TRY(check_llama_prep(be, __func__, q, kcache, vcache, qkv, rope, positions));
    KT_TRY(check_attention_pos(be, __func__, out, q, kcache, vcache, positions));
    if (!be->ops->llama_attention) {  // the composition
        HAVE_OP(llama_attn_prep);
        HAVE_OP(attention_pos);
        KT_TRY(RUN(llama_attn_prep, q, kcache, vcache, qkv, rope, positions));
        return RUN(attention_pos, out, q, kcache, vcache, positions, scale);
    }
    return RUN(llama_attention, out, q, kcache, vcache, qkv, rope, positions, scale);
}

KtStatus kt_l2_normalize(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, -1);
    NEED_F32(x, -1);
    SAME(y, x);
    HAVE_OP(l2_normalize);
    return RUN(l2_normalize, y, x);
}

static KtStatus check_llama_params(SmpParams params) {
    if (!(params.temperature > 0) || !isfinite(params.temperature))
        return KT_FAIL(KT_ERR_ARG, "sampling: temperature must be a positive number, got %g", params.temperature);
    if (!(params.top_p >= 0) || !isfinite(params.top_p))
        return KT_FAIL(KT_ERR_ARG, "sampling: top-p must be a number >= 0, got %g", params.top_p);
    return KT_OK;
}

KtStatus kt_sample_llama(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                         const KtTensor *positions, SmpParams params) {
    NEED(tokens, KT_I32, 2);
    NEED_F32(logits, 3);
    NEED(image_ids, KT_I64, 1);
    NEED(positions, KT_I32, 2);
    DIMS2(tokens, logits->shape[0], logits->shape[1]);
    DIMS2(positions, logits->shape[0], logits->shape[1]);
    DIMS1(image_ids, logits->shape[0]);
    KT_TRY(check_llama_params(params));
    HAVE_OP(sample_llama);
    return RUN(sample_llama, tokens, logits, image_ids, positions, params);
}

KtStatus kt_raster_step_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                               int64_t B) {
    NEED(tok, KT_I32, 1);
    NEED(pos, KT_I32, 1);
    NEED(seq, KT_I32, 2);
    NEED(step, KT_I32, 1);
    DIMS1(step, 1);
    DIMS1(pos, tok->shape[0]);
    if (B < 1 || B > seq->shape[1] || tok->shape[0] % B)
        return KT_FAIL(KT_ERR_ARG, "%s: %lld images do not fit %lld rows / %lld sequence columns", __func__,
                       (long long)B, (long long)tok->shape[0], (long long)seq->shape[1]);
    HAVE_OP(raster_step_inputs);
    return RUN(raster_step_inputs, tok, pos, seq, step, B);
}

KtStatus kt_raster_step_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, KtTensor *step) {
    NEED(seq, KT_I32, 2);
    NEED(sampled, KT_I32, 1);
    NEED(step, KT_I32, 1);
    DIMS1(step, 1);
    if (sampled->shape[0] > seq->shape[1]) return shape_err(__func__, "sampled", sampled, "at most seq.shape[1] images");
    HAVE_OP(raster_step_commit);
    return RUN(raster_step_commit, seq, sampled, step);
}

KtStatus kt_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params) {
    NEED_F32(probs, 3);
    NEED_F32(logits, 3);
    SAME(probs, logits);
    KT_TRY(check_llama_params(params));
    HAVE_OP(probs_llama);
    return RUN(probs_llama, probs, logits, params);
}

// ------------------------------------------------------------------------------------ FID Inception-v3 ops (eval/)
KtStatus kt_fid_preprocess(KtBackend *be, KtTensor *y, const KtTensor *x, KtFidResize mode) {
    NEED_F32(y, 4);
    NEED(x, KT_U8, 4);
    if (mode != KT_FID_RESIZE_PYTORCH && mode != KT_FID_RESIZE_ADM)
        return KT_FAIL(KT_ERR_ARG, "kt_fid_preprocess: unknown resize mode %d (KT_FID_RESIZE_PYTORCH or _ADM)",
                       (int)mode);
    if (x->shape[3] != 3) return shape_err(__func__, "x", x, "(B, H, W, 3) RGB images");
    if (x->shape[1] < 1 || x->shape[2] < 1) return shape_err(__func__, "x", x, "non-empty spatial dims");
    if (y->shape[0] != x->shape[0] || y->shape[3] != 3 || y->shape[1] < 1 || y->shape[2] < 1)
        return shape_err(__func__, "y", y, "(B, Ho, Wo, 3) with x's batch and Ho, Wo >= 1");
    HAVE_OP(fid_preprocess);
    return RUN(fid_preprocess, y, x, mode);
}

KtStatus kt_channel_affine_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                                const KtTensor *shift) {
    NEED_MAP(x, -1);
    NEED_MAP_AS(y, -1, x);
    NEED_F32(scale, 1);
    NEED_F32(shift, 1);
    SAME(y, x);
    DIMS1(scale, kt_cols(x));
    DIMS1(shift, kt_cols(x));
    HAVE_OP(channel_affine_relu);
    return RUN(channel_affine_relu, y, x, scale, shift);
}

// Pool arguments: k, stride >= 1, 0 <= pad < k (so every window holds an in-bounds tap), an output of at least one
// pixel, y of the floor-mode output size and not aliasing x.
static KtStatus check_pool(KtBackend *be, const char *op, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    KT_TRY(need_map(be, op, "x", x, 4));
    KT_TRY(need_map_as(be, op, "y", y, 4, x));
    if (k < 1) return KT_FAIL(KT_ERR_ARG, "%s: kernel size %d < 1", op, k);
    if (stride < 1) return KT_FAIL(KT_ERR_ARG, "%s: stride %d < 1", op, stride);
    if (pad < 0 || pad >= k)
        return KT_FAIL(KT_ERR_ARG, "%s: padding %d outside [0, k) = [0, %d): a window could hold padding only", op,
                       pad, k);
    int64_t Hp = x->shape[1] + 2 * (int64_t)pad, Wp = x->shape[2] + 2 * (int64_t)pad;
    if (Hp < k || Wp < k) {
        char exp[96];
        snprintf(exp, sizeof exp, "H, W with H + 2*pad >= k = %d (padding %d)", k, pad);
        return shape_err(op, "x", x, exp);
    }
    KT_TRY(dims(op, "y", y, 4, x->shape[0], (Hp - k) / stride + 1, (Wp - k) / stride + 1, x->shape[3]));
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "%s: y must not alias x", op);
    return KT_OK;
}

KtStatus kt_max_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    KT_TRY(check_pool(be, __func__, y, x, k, stride, pad));
    HAVE_OP(max_pool2d);
    return RUN(max_pool2d, y, x, k, stride, pad);
}

KtStatus kt_avg_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad) {
    KT_TRY(check_pool(be, __func__, y, x, k, stride, pad));
    HAVE_OP(avg_pool2d);
    return RUN(avg_pool2d, y, x, k, stride, pad);
}

KtStatus kt_spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x) {
    NEED_F32(y, 2);
    NEED_MAP(x, 4);
    if (x->shape[1] < 1 || x->shape[2] < 1) return shape_err(__func__, "x", x, "non-empty spatial dims");
    DIMS2(y, x->shape[0], x->shape[3]);
    HAVE_OP(spatial_mean);
    return RUN(spatial_mean, y, x);
}

KtStatus kt_copy_channels(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n) {
    NEED_MAP(x, 4);
    NEED_MAP_AS(y, 4, x);
    if (y->shape[0] != x->shape[0] || y->shape[1] != x->shape[1] || y->shape[2] != x->shape[2])
        return shape_err(__func__, "y", y, "(B, H, W, Cy) with x's B, H, W");
    int64_t Cx = x->shape[3], Cy = y->shape[3];
    if (n < 0 || xc0 < 0 || xc0 > Cx - n)
        return KT_FAIL(KT_ERR_ARG, "kt_copy_channels: x channels [%lld, %lld + %lld) outside [0, %lld)",
                       (long long)xc0, (long long)xc0, (long long)n, (long long)Cx);
    if (yc0 < 0 || yc0 > Cy - n)
        return KT_FAIL(KT_ERR_ARG, "kt_copy_channels: y channels [%lld, %lld + %lld) outside [0, %lld)",
                       (long long)yc0, (long long)yc0, (long long)n, (long long)Cy);
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "kt_copy_channels: y must not alias x");
    HAVE_OP(copy_channels);
    return RUN(copy_channels, y, yc0, x, xc0, n);
}
