// Validating wrappers of the op interface (ops.h): check dtype, device and shape, then dispatch to the backend
// (ops_check.h). The raster (LlamaGen) ops are in ops_raster.c, the FID Inception-v3 ops in ops_inception.c.
#include <math.h>

#include "ops_check.h"

// ----------------------------------------------------------------------------------------------------- dense ops
KtStatus kt_check_linear(KtBackend *be, const char *op, const KtTensor *y, const KtTensor *x, const KtTensor *w,
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
    KT_TRY(kt_check_linear(be, __func__, y, x, w, b));
    return RUN(linear, y, x, w, b);
}

KtStatus kt_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b) {
    KT_TRY(kt_check_linear(be, __func__, y, x, w, b));
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
// kt_conv2d's checks, under the name of the op that makes them (kt_conv2d, kt_conv2d_bias_relu).
static KtStatus check_conv2d(KtBackend *be, const char *op, const KtTensor *y, const KtTensor *x, const KtTensor *w,
                             const KtTensor *b, int stride, const int pad[4]) {
    KT_TRY(need_map(be, op, "y", y, 4));
    KT_TRY(need_map(be, op, "x", x, 4));
    KT_TRY(need_weight(be, op, "w", w, 4));
    if (stride < 1) return KT_FAIL(KT_ERR_ARG, "%s: stride %d < 1", op, stride);
    for (int i = 0; i < 4; i++)
        if (pad[i] < 0) return KT_FAIL(KT_ERR_ARG, "%s: negative padding", op);
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], Ci = x->shape[3];
    int64_t Co = w->shape[0], kh = w->shape[1], kw = w->shape[2];
    if (w->shape[3] != Ci) return shape_err(op, "w", w, "(Co, kh, kw, Ci) with Ci = x.shape[3]");
    if ((x->dtype != KT_F32 || y->dtype != KT_F32) && w->dtype != be->map_dtype)
        return KT_FAIL(KT_ERR_SHAPE, "%s: %s feature maps need %s weights, got %s", op, kt_dtype_name(be->map_dtype),
                       kt_dtype_name(be->map_dtype), kt_dtype_name(w->dtype));
    if (b) {
        KT_TRY(need(be, op, "b", b, KT_F32, 1));
        KT_TRY(dims(op, "b", b, 1, Co, 0, 0, 0));
    }
    int64_t Hp = H + pad[0] + pad[1], Wp = W + pad[2] + pad[3];
    if (Hp < kh || Wp < kw) return shape_err(op, "x", x, "a padded size at least the kernel size");
    KT_TRY(dims(op, "y", y, 4, B, (Hp - kh) / stride + 1, (Wp - kw) / stride + 1, Co));
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "%s: y must not alias x", op);
    return KT_OK;
}

KtStatus kt_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                   int stride, const int pad[4]) {
    KT_TRY(check_conv2d(be, __func__, y, x, w, b, stride, pad));
    return RUN(conv2d, y, x, w, b, stride, pad);
}

KtStatus kt_conv2d_bias_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int stride, const int pad[4]) {
    if (!b) return KT_FAIL(KT_ERR_ARG, "kt_conv2d_bias_relu: the bias b is required");
    KT_TRY(check_conv2d(be, __func__, y, x, w, b, stride, pad));
    HAVE_OP(conv2d_bias_relu);
    return RUN(conv2d_bias_relu, y, x, w, b, stride, pad);
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
