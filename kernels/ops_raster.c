// Validating wrappers of the raster (LlamaGen) ops of ops.h: check dtype, device and shape, then dispatch to the
// backend (ops_check.h).
#include <math.h>

#include "ops_check.h"

// --------------------------------------------------------------------------------------- raster (LlamaGen) ops

// kt_rmsnorm's checks, under the name of the op that makes them.
static KtStatus check_rmsnorm(KtBackend *be, const char *op, const KtTensor *y, const KtTensor *x,
                              const KtTensor *w) {
    KT_TRY(need(be, op, "x", x, KT_F32, -1));
    KT_TRY(need(be, op, "y", y, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, -1));
    KT_TRY(need(be, op, "w", w, KT_F32, 1));
    KT_TRY(same(op, "y", y, "x", x));
    KT_TRY(dims(op, "w", w, 1, kt_cols(x), 0, 0, 0));
    if (y->dtype != KT_F32 && y->data == x->data) return KT_FAIL(KT_ERR_ARG, "%s: a 16-bit y must not alias x", op);
    return KT_OK;
}

KtStatus kt_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps) {
    KT_TRY(check_rmsnorm(be, __func__, y, x, w));
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

static KtStatus check_swiglu(KtBackend *be, const char *op, const KtTensor *y, const KtTensor *a) {
    KT_TRY(need(be, op, "a", a, KT_F32, -1));
    KT_TRY(need(be, op, "y", y, y && y->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, a->ndim));
    bool ok = kt_cols(a) == 2 * kt_cols(y) && kt_rows(a) == kt_rows(y);
    for (int i = 0; ok && i < a->ndim - 1; i++) ok = a->shape[i] == y->shape[i];
    if (!ok) return shape_err(op, "y", y, "a's shape with the last dim halved");
    return KT_OK;
}

KtStatus kt_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a) {
    KT_TRY(check_swiglu(be, __func__, y, a));
    HAVE_OP(swiglu);
    return RUN(swiglu, y, a);
}

// The fused ops below run their composition when the backend has no fused form (the CPU reference always does).
KtStatus kt_rmsnorm_linear(KtBackend *be, KtTensor *y, KtTensor *hn, const KtTensor *x, const KtTensor *nw,
                           const KtTensor *w, float eps) {
    KT_TRY(check_rmsnorm(be, __func__, hn, x, nw));
    KT_TRY(kt_check_linear(be, __func__, y, hn, w, NULL));
    if (y->dtype != KT_F32) return KT_FAIL(KT_ERR_SHAPE, "%s: 'y' has dtype %s, expected f32", __func__,
                                           kt_dtype_name(y->dtype));
    if (y->data == x->data) return KT_FAIL(KT_ERR_ARG, "%s: y must not alias x", __func__);
    if (!be->ops->rmsnorm_linear) {
        HAVE_OP(rmsnorm);
        HAVE_OP(linear);
        KT_TRY(RUN(rmsnorm, hn, x, nw, eps));
        return RUN(linear, y, hn, w, NULL);
    }
    return RUN(rmsnorm_linear, y, hn, x, nw, w, eps);
}

KtStatus kt_rmsnorm_linear_cfg(KtBackend *be, KtTensor *lc, KtTensor *logits, KtTensor *hn, const KtTensor *x,
                               const KtTensor *nw, const KtTensor *w, float eps, float t) {
    KT_TRY(check_rmsnorm(be, __func__, hn, x, nw));
    KT_TRY(kt_check_linear(be, __func__, logits, hn, w, NULL));
    NEED_F32(logits, 3);
    NEED_F32(lc, 3);
    DIMS3(logits, 2 * lc->shape[0], lc->shape[1], lc->shape[2]);
    if (lc->data == x->data || logits->data == x->data || lc->data == logits->data || lc->data == hn->data ||
        logits->data == hn->data)
        return KT_FAIL(KT_ERR_ARG, "%s: lc, logits, hn and x must be distinct buffers", __func__);
    if (!be->ops->rmsnorm_linear_cfg) {
        KT_TRY(kt_rmsnorm_linear(be, logits, hn, x, nw, w, eps));
        return kt_cfg_combine(be, lc, logits, t);
    }
    return RUN(rmsnorm_linear_cfg, lc, logits, hn, x, nw, w, eps, t);
}

KtStatus kt_rmsnorm_linear_swiglu(KtBackend *be, KtTensor *g, KtTensor *a, KtTensor *hn, const KtTensor *x,
                                  const KtTensor *nw, const KtTensor *w13, float eps) {
    KT_TRY(check_rmsnorm(be, __func__, hn, x, nw));
    KT_TRY(kt_check_linear(be, __func__, a, hn, w13, NULL));
    KT_TRY(check_swiglu(be, __func__, g, a));
    if (a->dtype != KT_F32) return KT_FAIL(KT_ERR_SHAPE, "%s: 'a' has dtype %s, expected f32", __func__,
                                           kt_dtype_name(a->dtype));
    if (a->data == x->data || g->data == x->data || g->data == a->data || g->data == hn->data)
        return KT_FAIL(KT_ERR_ARG, "%s: g, a, hn and x must be distinct buffers", __func__);
    if (!be->ops->rmsnorm_linear_swiglu) {
        HAVE_OP(rmsnorm);
        HAVE_OP(linear);
        HAVE_OP(swiglu);
        KT_TRY(RUN(rmsnorm, hn, x, nw, eps));
        KT_TRY(RUN(linear, a, hn, w13, NULL));
        return RUN(swiglu, g, a);
    }
    return RUN(rmsnorm_linear_swiglu, g, a, hn, x, nw, w13, eps);
}

KtStatus kt_linear_residual(KtBackend *be, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w) {
    KT_TRY(kt_check_linear(be, __func__, h, inp, w, NULL));
    KT_TRY(need(be, __func__, "h", h, KT_F32, -1));
    KT_TRY(need(be, __func__, "x", x, KT_F32, -1));
    KT_TRY(same(__func__, "x", x, "h", h));
    if (x->data == h->data || x->data == inp->data)
        return KT_FAIL(KT_ERR_ARG, "%s: x must not alias h or inp", __func__);
    if (!be->ops->linear_residual) {
        HAVE_OP(linear);
        HAVE_OP(add);
        KT_TRY(RUN(linear, h, inp, w, NULL));
        return RUN(add, x, x, h);
    }
    return RUN(linear_residual, x, h, inp, w);
}

// A KV cache: float32, or the backend's 16-bit matmul dtype (never on the CPU, whose matmul dtype is float32).
static KtStatus need_cache(KtBackend *be, const char *op, const char *arg, const KtTensor *t) {
    return need(be, op, arg, t, t && t->dtype == be->matmul_dtype ? be->matmul_dtype : KT_F32, 4);
}

// The checks of kt_llama_attn_prep and kt_attention_pos, under the name of the op that makes them.
static KtStatus check_llama_prep(KtBackend *be, const char *op, const KtTensor *q, const KtTensor *kcache,
                                 const KtTensor *vcache, const KtTensor *qkv, const KtTensor *rope,
                                 const KtTensor *positions) {
    KT_TRY(need(be, op, "q", q, KT_F32, 4));
    KT_TRY(need_cache(be, op, "kcache", kcache));
    KT_TRY(need(be, op, "vcache", vcache, kcache->dtype, 4));
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
    KT_TRY(need_cache(be, op, "k", k));
    KT_TRY(need(be, op, "v", v, k->dtype, 4));
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

KtStatus kt_raster_window_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                 const KtTensor *seq) {
    NEED(tok, KT_I32, 2);
    NEED(pos, KT_I32, 2);
    NEED(spos, KT_I32, 2);
    NEED(feeds, KT_I32, 2);
    NEED(seq, KT_I32, 2);
    int64_t T = tok->shape[1], B = spos->shape[0];
    DIMS2(pos, tok->shape[0], T);
    DIMS2(feeds, T, 3);
    DIMS2(spos, B, T);
    if (B < 1 || B > seq->shape[1] || tok->shape[0] % B)
        return KT_FAIL(KT_ERR_ARG, "%s: %lld images do not fit %lld rows / %lld sequence columns", __func__,
                       (long long)B, (long long)tok->shape[0], (long long)seq->shape[1]);
    HAVE_OP(raster_window_inputs);
    return RUN(raster_window_inputs, tok, pos, spos, feeds, seq);
}

KtStatus kt_raster_window_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds) {
    NEED(seq, KT_I32, 2);
    NEED(sampled, KT_I32, 2);
    NEED(feeds, KT_I32, 2);
    DIMS2(feeds, sampled->shape[1], 3);
    if (sampled->shape[0] > seq->shape[1]) return shape_err(__func__, "sampled", sampled, "at most seq.shape[1] images");
    HAVE_OP(raster_window_commit);
    return RUN(raster_window_commit, seq, sampled, feeds);
}

KtStatus kt_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params) {
    NEED_F32(probs, 3);
    NEED_F32(logits, 3);
    SAME(probs, logits);
    KT_TRY(check_llama_params(params));
    HAVE_OP(probs_llama);
    return RUN(probs_llama, probs, logits, params);
}
