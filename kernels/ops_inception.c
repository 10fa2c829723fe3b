// Validating wrappers of the FID Inception-v3 ops of ops.h: check dtype, device and shape, then dispatch to the
// backend (ops_check.h).
#include "ops_check.h"

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
    return RUN(channel_affine_relu, y, 0, x, scale, shift);
}

// Whether the bytes of a and b overlap.
static bool overlap(const KtTensor *a, const KtTensor *b) {
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    return a0 < b0 + kt_nbytes(b) && b0 < a0 + kt_nbytes(a);
}

KtStatus kt_channel_affine_relu_into(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                     const KtTensor *shift) {
    NEED_MAP(x, -1);
    NEED_MAP_AS(y, x->ndim, x);
    NEED_F32(scale, 1);
    NEED_F32(shift, 1);
    for (int i = 0; i + 1 < x->ndim; i++)
        if (y->shape[i] != x->shape[i]) return shape_err(__func__, "y", y, "x's leading dims and any channel count");
    int64_t C = kt_cols(x), Cy = kt_cols(y);
    DIMS1(scale, C);
    DIMS1(shift, C);
    if (yc0 < 0 || yc0 > Cy - C)
        return KT_FAIL(KT_ERR_ARG, "%s: y channels [%lld, %lld + %lld) outside [0, %lld)", __func__, (long long)yc0,
                       (long long)yc0, (long long)C, (long long)Cy);
    bool in_place = y->data == x->data && yc0 == 0 && Cy == C;
    if (!in_place && kt_numel(x) > 0 && overlap(y, x))
        return KT_FAIL(KT_ERR_ARG, "%s: y overlaps x (in place only with yc0 = 0 and y's shape = x's)", __func__);
    HAVE_OP(channel_affine_relu);
    return RUN(channel_affine_relu, y, yc0, x, scale, shift);
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
