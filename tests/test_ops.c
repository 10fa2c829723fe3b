// Every op of kernels/ops.h against torch (tests/fixtures/ops.tar.xz, made by scripts/make_op_fixtures.py), on the CPU
// backend and, with the same fixture and helpers, on CUDA (skipped without a GPU). Also: shape validation messages,
// no allocation after warm-up, results independent of the thread count, im2col chunking against a direct conv.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "optest.h"

#define FX "ops/ops.safetensors"

// ------------------------------------------------------------------------------------------------ dense ops
TWIN(dense, linear) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("linear.x"), w = IN("linear.w"), b = IN("linear.b"), y = OUT("linear.y");
    OK(kt_linear(&c.be, &y, &x, &w, &b));
    expect_fx(&c, &y, "linear.y", TOL_REDUCE_F32);
    OK(kt_linear(&c.be, &y, &x, &w, NULL));
    expect_fx(&c, &y, "linear_nobias.y", TOL_REDUCE_F32);
    KtTensor x1 = IN("linear_t1.x"), y1 = OUT("linear_t1.y");
    OK(kt_linear(&c.be, &y1, &x1, &w, &b));
    expect_fx(&c, &y1, "linear_t1.y", TOL_REDUCE_F32);
    ctx_close(&c);
}

TWIN(dense, embedding) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor t = IN("embedding.table"), idx = fx_tensor(&c, "embedding.idx", KT_I32, true), y = OUT("embedding.y");
    OK(kt_embedding(&c.be, &y, &t, &idx));
    expect_fx(&c, &y, "embedding.y", 0, 0);
    int32_t bad[2] = {3, 37};
    KtTensor bi = dev_new(&c, KT_I32, 1, (int64_t[]){2}, bad), yb = kt_slice0(&y, 0, 2);
    cr_expect_eq(kt_embedding(&c.be, &yb, &t, &bi), KT_ERR_ARG, "index 37 of a 37-row table must be rejected");
    ctx_close(&c);
}

TWIN(dense, split_chunks_and_cfg) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("split_chunks.x"), y = OUT("split_chunks.y");
    OK(kt_split_chunks(&c.be, &y, &x));
    expect_fx(&c, &y, "split_chunks.y", 0, 0);
    KtTensor l = IN("cfg_combine.logits"), yc = OUT("cfg_combine.y");
    OK(kt_cfg_combine(&c.be, &yc, &l, (float)fx_scalar(&c, "cfg_combine.t")));
    expect_fx(&c, &yc, "cfg_combine.y", TOL_ELEMWISE_F32);
    ctx_close(&c);
}

TWIN(dense, codebook_argmin) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor z = IN("codebook_argmin.z"), cb = IN("codebook_argmin.codebook");
    KtTensor idx = fx_tensor(&c, "codebook_argmin.idx", KT_I32, false);
    OK(kt_codebook_argmin(&c.be, &idx, &z, &cb));
    expect_fx_int(&c, &idx, "codebook_argmin.idx");
    float tcb[6] = {0, 1, 1, 0, 0, 1}, tz[2] = {0.1f, 1};  // rows 0 and 2 are equally near: the first wins
    int32_t got = -1;
    KtTensor cbt = dev_new(&c, KT_F32, 2, (int64_t[]){3, 2}, tcb), zt = dev_new(&c, KT_F32, 2, (int64_t[]){1, 2}, tz);
    KtTensor it = dev_new(&c, KT_I32, 1, (int64_t[]){1}, NULL);
    OK(kt_codebook_argmin(&c.be, &it, &zt, &cbt));
    OK(kt_download(&c.be, &got, &it));
    cr_expect_eq(got, 0, "tie broken towards index %d", got);
    ctx_close(&c);
}

// ------------------------------------------------------------------------------------------------------ norms
TWIN(norm, layernorm) {
    Ctx c;
    ctx_open(&c, dev, FX);
    static const char *names[2][2] = {{"layernorm.x", "layernorm.y"}, {"layernorm_t1.x", "layernorm_t1.y"}};
    for (int i = 0; i < 2; i++) {
        KtTensor x = IN(names[i][0]), y = OUT(names[i][1]);
        OK(kt_layernorm(&c.be, &y, &x, 1e-6f));
        expect_fx(&c, &y, names[i][1], TOL_REDUCE_F32);
        OK(kt_layernorm(&c.be, &x, &x, 1e-6f));  // in place
        expect_fx(&c, &x, names[i][1], TOL_REDUCE_F32);
    }
    ctx_close(&c);
}

TWIN(norm, adaln) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("adaln.x"), h = IN("adaln.h"), sc = IN("adaln.scale"), sh = IN("adaln.shift");
    KtTensor g = IN("adaln.gate"), y = OUT("adaln_modulate.y");
    OK(kt_adaln_modulate(&c.be, &y, &x, &sc, &sh));
    expect_fx(&c, &y, "adaln_modulate.y", TOL_ELEMWISE_F32);
    OK(kt_layernorm_adaln(&c.be, &y, &x, &sc, &sh, 1e-6f));
    expect_fx(&c, &y, "layernorm_adaln.y", TOL_REDUCE_F32);
    OK(kt_gated_residual(&c.be, &x, &h, &g));
    expect_fx(&c, &x, "gated_residual.y", TOL_ELEMWISE_F32);
    ctx_close(&c);
}

static void expect_same_bytes(Ctx *c, const char *what, const KtTensor *a, const KtTensor *b) {
    size_t n = kt_nbytes(a);
    const unsigned char *ha = (const unsigned char *)download_f32(c, a);
    const unsigned char *hb = (const unsigned char *)download_f32(c, b);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += ha[i] != hb[i];
    cr_expect(bad == 0, "%s (%s): %zu of %zu bytes differ from the composition", what, kt_device_name(c->be.device),
              bad, n);
}

// The fused op equals kt_gated_residual followed by kt_layernorm_adaln bit for bit (x and y).
TWIN(norm, gated_residual_layernorm_adaln) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x1 = IN("adaln.x"), x2 = IN("adaln.x"), h = IN("adaln.h"), sc = IN("adaln.scale"), sh = IN("adaln.shift");
    KtTensor g = IN("adaln.gate"), y1 = OUT("layernorm_adaln.y"), y2 = OUT("layernorm_adaln.y");
    OK(kt_gated_residual(&c.be, &x1, &h, &g));
    OK(kt_layernorm_adaln(&c.be, &y1, &x1, &sc, &sh, 1e-6f));
    OK(kt_gated_residual_layernorm_adaln(&c.be, &y2, &x2, &h, &g, &sc, &sh, 1e-6f));
    expect_fx(&c, &x2, "gated_residual.y", TOL_ELEMWISE_F32);
    expect_same_bytes(&c, "gated_residual_layernorm_adaln x", &x2, &x1);
    expect_same_bytes(&c, "gated_residual_layernorm_adaln y", &y2, &y1);
    ctx_close(&c);
}

TWIN(norm, group_norm) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("group_norm.x"), w = IN("group_norm.w"), b = IN("group_norm.b"), y = OUT("group_norm.y");
    OK(kt_group_norm(&c.be, &y, &x, &w, &b, 32, 1e-6f));
    expect_fx(&c, &y, "group_norm.y", TOL_REDUCE_F32);
    OK(kt_group_norm_silu(&c.be, &y, &x, &w, &b, 32, 1e-6f));
    expect_fx(&c, &y, "group_norm_silu.y", TOL_REDUCE_F32);
    ctx_close(&c);
}

// ----------------------------------------------------------------------------------------------- elementwise
TWIN(elementwise, activations) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("act.x"), y = OUT("gelu_tanh.y");
    OK(kt_gelu_tanh(&c.be, &y, &x));
    expect_fx(&c, &y, "gelu_tanh.y", TOL_ELEMWISE_F32);
    OK(kt_silu(&c.be, &y, &x));
    expect_fx(&c, &y, "silu.y", TOL_ELEMWISE_F32);
    OK(kt_silu(&c.be, &x, &x));
    expect_fx(&c, &x, "silu.y", TOL_ELEMWISE_F32);
    ctx_close(&c);
}

TWIN(elementwise, add_axpby) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor a = IN("add.a"), b2 = IN("add.b2"), b1 = IN("add.b1"), bb = IN("axpby.b"), y = OUT("add.y2");
    OK(kt_add(&c.be, &y, &a, &b2));
    expect_fx(&c, &y, "add.y2", TOL_ELEMWISE_F32);
    OK(kt_add(&c.be, &y, &a, &b1));
    expect_fx(&c, &y, "add.y1", TOL_ELEMWISE_F32);
    OK(kt_axpby(&c.be, &y, (float)fx_scalar(&c, "axpby.alpha"), &a, (float)fx_scalar(&c, "axpby.beta"), &bb));
    expect_fx(&c, &y, "axpby.y", TOL_ELEMWISE_F32);
    ctx_close(&c);
}

TWIN(elementwise, softmax) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("softmax.x"), y = OUT("softmax.y");
    OK(kt_softmax(&c.be, &y, &x));
    expect_fx(&c, &y, "softmax.y", TOL_REDUCE_F32);
    // fully masked rows (softmax row, attention query) give zeros, not NaN
    float r[6] = {-INFINITY, -INFINITY, -INFINITY, 1, 2, 3}, got[8];
    KtTensor xr = dev_new(&c, KT_F32, 2, (int64_t[]){2, 3}, r);
    OK(kt_softmax(&c.be, &xr, &xr));
    OK(kt_download(&c.be, got, &xr));
    cr_expect(got[0] == 0 && got[1] == 0 && got[2] == 0 && fabsf(got[3] + got[4] + got[5] - 1) < 1e-6f);
    float qk[12] = {1, 0, 0, 1, 0, 1, 1, 0, 0.5f, 0.5f, 1, 1};
    float bias[6] = {-INFINITY, -INFINITY, -INFINITY, 0, -INFINITY, 0};  // query 0 sees no key
    KtTensor q = dev_new(&c, KT_F32, 4, (int64_t[]){1, 1, 2, 4}, qk);
    KtTensor k = dev_new(&c, KT_F32, 4, (int64_t[]){1, 1, 3, 4}, qk);
    KtTensor bt = dev_new(&c, KT_F32, 2, (int64_t[]){2, 3}, bias);
    KtTensor o = dev_new(&c, KT_F32, 3, (int64_t[]){1, 2, 4}, NULL);
    OK(kt_attention(&c.be, &o, &q, &k, &k, 3, &bt, 1.0f));
    OK(kt_download(&c.be, got, &o));
    for (int i = 0; i < 8; i++) cr_expect(i < 4 ? got[i] == 0 : isfinite(got[i]), "attention out[%d] = %g", i, got[i]);
    ctx_close(&c);
}

TWIN(elementwise, image_to_u8) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("image_to_u8.x"), y = fx_tensor(&c, "image_to_u8.y", KT_U8, false);
    int64_t bad = -1, zero = 0;
    KtTensor counter = dev_new(&c, KT_I64, 1, (int64_t[]){1}, &zero);
    OK(kt_image_to_u8(&c.be, &y, &x, &counter));
    expect_fx_int(&c, &y, "image_to_u8.y");
    OK(kt_download(&c.be, &bad, &counter));
    cr_expect_eq(bad, 0);
    OK(kt_zero(&c.be, &y));  // again from zeros: the 0xff fill cannot show an unwritten 255
    OK(kt_image_to_u8(&c.be, &y, &x, NULL));
    expect_fx_int(&c, &y, "image_to_u8.y");
    float v[6] = {NAN, INFINITY, -INFINITY, 0.999f, -2.0f, 2.0f};
    uint8_t got[6];
    KtTensor xs = dev_new(&c, KT_F32, 4, (int64_t[]){1, 1, 2, 3}, v), ys = dev_new(&c, KT_U8, 4, xs.shape, NULL);
    OK(kt_image_to_u8(&c.be, &ys, &xs, &counter));
    OK(kt_download(&c.be, got, &ys));
    OK(kt_download(&c.be, &bad, &counter));
    cr_expect_eq(bad, 3);
    uint8_t want[6] = {0, 0, 0, 254, 0, 255};
    cr_expect_arr_eq(got, want, 6);
    int64_t cnt = -1;
    OK(kt_count_nonfinite(&c.be, &counter, &xs));  // accumulates: 3 + 3
    OK(kt_download(&c.be, &cnt, &counter));
    cr_expect_eq(cnt, 6);
    ctx_close(&c);
}

// ------------------------------------------------------------------------------------------------------ convs
TWIN(conv, conv2d) {
    static const char *cases[] = {"conv_s1", "conv_s2", "conv_1x1", "conv_in", "conv_k13"};
    Ctx c;
    ctx_open(&c, dev, FX);
    for (int i = 0; i < 5; i++) {
        char n[4][64];
        const char *suf[4] = {"x", "w", "b", "y"};
        for (int j = 0; j < 4; j++) snprintf(n[j], sizeof n[j], "%s.%s", cases[i], suf[j]);
        KtTensor x = IN(n[0]), w = IN(n[1]), y = OUT(n[3]), b = {0};
        if (strcmp(cases[i], "conv_in")) b = IN(n[2]);
        char pn[64];
        snprintf(pn, sizeof pn, "%s.pad", cases[i]);
        float *pv = fx_read(&c, pn, NULL, NULL, NULL);
        int pad[4] = {(int)pv[0], (int)pv[1], (int)pv[2], (int)pv[3]};
        snprintf(pn, sizeof pn, "%s.stride", cases[i]);
        OK(kt_conv2d(&c.be, &y, &x, &w, b.data ? &b : NULL, (int)fx_scalar(&c, pn), pad));
        expect_fx(&c, &y, n[3], TOL_CONV_F32);
    }
    ctx_close(&c);
}

static float lcg_uniform(uint64_t *s) {  // deterministic test data in [-1, 1)
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

// ref (B, Ho, Wo, Co) = a direct 3x3 conv with padding 1 and stride `stride` of x (B, H, W, Ci) by w (Co, 3, 3, Ci)
// plus bias, summed in float64 (ReLU'd when relu); returns how many sums were negative.
static int64_t conv3x3_ref(float *ref, const float *x, const float *w, const float *bias, int64_t B, int64_t H,
                           int64_t W, int64_t Ci, int64_t Co, int stride, bool relu) {
    int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1, negative = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++)
                for (int64_t co = 0; co < Co; co++) {
                    double acc = bias[co];
                    for (int64_t ky = 0; ky < 3; ky++)
                        for (int64_t kx = 0; kx < 3; kx++) {
                            int64_t iy = stride * oy + ky - 1, ix = stride * ox + kx - 1;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            for (int64_t ci = 0; ci < Ci; ci++)
                                acc += (double)x[((b * H + iy) * W + ix) * Ci + ci] *
                                       w[((co * 3 + ky) * 3 + kx) * Ci + ci];
                        }
                    negative += acc < 0;
                    ref[((b * Ho + oy) * Wo + ox) * Co + co] = relu && acc < 0 ? 0.0f : (float)acc;
                }
    return negative;
}

// A 3x3 conv large enough that im2col runs in several chunks, against a direct float64 conv.
TWIN(conv, conv2d_chunked) {
    const int64_t B = 1, H = 48, W = 70, Ci = 160, Co = 24, K = 3 * 3 * Ci;
    Ctx c;
    ctx_open(&c, dev, FX);
    float *x = ctx_keep(&c, malloc(sizeof(float) * B * H * W * Ci)), *w = ctx_keep(&c, malloc(sizeof(float) * Co * K));
    float *ref = ctx_keep(&c, malloc(sizeof(float) * B * H * W * Co)), bias[24];
    uint64_t s = 42;
    for (int64_t i = 0; i < B * H * W * Ci; i++) x[i] = lcg_uniform(&s);
    for (int64_t i = 0; i < Co * K; i++) w[i] = lcg_uniform(&s) * 0.03f;
    for (int64_t i = 0; i < Co; i++) bias[i] = lcg_uniform(&s);
    conv3x3_ref(ref, x, w, bias, B, H, W, Ci, Co, 1, false);
    KtTensor xt = dev_new(&c, KT_F32, 4, (int64_t[]){B, H, W, Ci}, x);
    KtTensor wt = dev_new(&c, KT_F32, 4, (int64_t[]){Co, 3, 3, Ci}, w);
    KtTensor bt = dev_new(&c, KT_F32, 1, (int64_t[]){Co}, bias);
    KtTensor yt = dev_new(&c, KT_F32, 4, (int64_t[]){B, H, W, Co}, NULL);
    OK(kt_conv2d(&c.be, &yt, &xt, &wt, &bt, 1, (int[]){1, 1, 1, 1}));
    expect_close("conv2d_chunked", download_f32(&c, &yt), ref, B * H * W * Co, TOL_CONV_F32);
    ctx_close(&c);
}

// kt_conv2d_bias_relu = ReLU(kt_conv2d with the bias), against a direct float64 conv; the bias is required.
TWIN(conv, conv2d_bias_relu) {
    const int64_t B = 2, H = 9, W = 7, Ci = 16, Co = 24;
    Ctx c;
    ctx_open(&c, dev, FX);
    float x[2 * 9 * 7 * 16], w[24 * 3 * 3 * 16], bias[24], ref[2 * 5 * 4 * 24];  // stride 2, pad 1: 5 x 4
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++) w[i] = lcg_uniform(&s) * 0.1f;
    for (int64_t i = 0; i < Co; i++) bias[i] = lcg_uniform(&s);
    int64_t Ho = 5, Wo = 4, clipped = conv3x3_ref(ref, x, w, bias, B, H, W, Ci, Co, 2, true);
    cr_assert(clipped > 100 && clipped < 2 * 5 * 4 * 24 - 100, "%lld outputs clipped: the ReLU is not tested",
              (long long)clipped);
    KtTensor xt = dev_new(&c, KT_F32, 4, (int64_t[]){B, H, W, Ci}, x);
    KtTensor wt = dev_new(&c, KT_F32, 4, (int64_t[]){Co, 3, 3, Ci}, w);
    KtTensor bt = dev_new(&c, KT_F32, 1, (int64_t[]){Co}, bias);
    KtTensor yt = dev_new(&c, KT_F32, 4, (int64_t[]){B, Ho, Wo, Co}, NULL);
    OK(kt_conv2d_bias_relu(&c.be, &yt, &xt, &wt, &bt, 2, (int[]){1, 1, 1, 1}));
    expect_close("conv2d_bias_relu", download_f32(&c, &yt), ref, B * Ho * Wo * Co, TOL_CONV_F32);
    cr_expect_eq(kt_conv2d_bias_relu(&c.be, &yt, &xt, &wt, NULL, 2, (int[]){1, 1, 1, 1}), KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "kt_conv2d_bias_relu") && strstr(kt_last_error(), "bias"), "%s",
              kt_last_error());
    KtTensor bad = dev_new(&c, KT_F32, 4, (int64_t[]){B, Ho, Wo, Co + 1}, NULL);
    cr_expect_eq(kt_conv2d_bias_relu(&c.be, &bad, &xt, &wt, &bt, 2, (int[]){1, 1, 1, 1}), KT_ERR_SHAPE);
    cr_expect(strstr(kt_last_error(), "kt_conv2d_bias_relu: 'y'"), "%s", kt_last_error());
    ctx_close(&c);
}

// --------------------------------------------------------------------------------------------------- resample
TWIN(resample, upsample_nearest2x) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("upsample_nearest2x.x"), y = OUT("upsample_nearest2x.y");
    OK(kt_upsample_nearest2x(&c.be, &y, &x));
    expect_fx(&c, &y, "upsample_nearest2x.y", 0, 0);
    ctx_close(&c);
}

// Every 16 -> pn and pn -> 16 of VAR's schedule plus odd non-square sizes, bicubic and area.
TWIN(resample, resize) {
    static const int pns[] = {1, 2, 3, 4, 5, 6, 8, 10, 13};
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x16 = IN("resize.x16"), xo = IN("resize.x7x11");
    for (int i = 0; i < 11; i++) {
        for (int dir = 0; dir < 2; dir++) {
            char xn[64], tag[32], yn[2][64];
            KtTensor x = x16;
            if (i < 9 && dir == 1) {
                snprintf(xn, sizeof xn, "resize.x%d", pns[i]);
                x = IN(xn);
                snprintf(tag, sizeof tag, "%d_16", pns[i]);
            } else if (i < 9) {
                snprintf(tag, sizeof tag, "16_%d", pns[i]);
            } else if (dir == 0) {
                x = xo;
                snprintf(tag, sizeof tag, i == 9 ? "7x11_13x5" : "7x11_4x6");
            } else {
                continue;
            }
            snprintf(yn[0], sizeof yn[0], "bicubic_%s.y", tag);
            snprintf(yn[1], sizeof yn[1], "area_%s.y", tag);
            KtTensor yb = OUT(yn[0]), ya = OUT(yn[1]);
            OK(kt_resize_bicubic(&c.be, &yb, &x));
            expect_fx(&c, &yb, yn[0], TOL_CONV_F32);
            OK(kt_resize_area(&c.be, &ya, &x));
            expect_fx(&c, &ya, yn[1], TOL_CONV_F32);
        }
    }
    ctx_close(&c);
}

// LlamaGen's evaluation downsample (384 -> 256 in the official FID protocol; here 48 -> 32, the same ratio, and 48 ->
// 20) on a float image a little beyond [-1, 1].
TWIN(resample, eval_downsample) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("eval_resize.x");
    static const char *names[] = {"eval_resize_48_32.y", "eval_resize_48_20.y"};
    for (int i = 0; i < 2; i++) {
        KtTensor y = OUT(names[i]);
        OK(kt_resize_bicubic(&c.be, &y, &x));
        expect_fx(&c, &y, names[i], TOL_CONV_F32);
    }
    ctx_close(&c);
}

// --------------------------------------------------------------------------------------- FID Inception ops
TWIN(fid, pools_vs_torch) {
    static const struct { const char *y; bool avg; int k, stride, pad; } cases[] = {
        {"max_pool_k3s2p0.y", false, 3, 2, 0}, {"max_pool_k3s1p1.y", false, 3, 1, 1},
        {"avg_pool_k3s1p1.y", true, 3, 1, 1},  {"avg_pool_k3s2p1.y", true, 3, 2, 1}};
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = IN("pool.x");
    for (int i = 0; i < 4; i++) {
        KtTensor y = OUT(cases[i].y);
        if (cases[i].avg) OK(kt_avg_pool2d(&c.be, &y, &x, cases[i].k, cases[i].stride, cases[i].pad));
        else OK(kt_max_pool2d(&c.be, &y, &x, cases[i].k, cases[i].stride, cases[i].pad));
        if (cases[i].avg) expect_fx(&c, &y, cases[i].y, TOL_POOL_F32);
        else expect_fx(&c, &y, cases[i].y, 0, 0);
    }
    ctx_close(&c);
}

TWIN(fid, spatial_mean_and_affine_relu_vs_torch) {
    Ctx c;
    ctx_open(&c, dev, FX);
    static const char *names[2][2] = {{"spatial_mean.x", "spatial_mean.y"},
                                      {"spatial_mean_8x8.x", "spatial_mean_8x8.y"}};
    for (int i = 0; i < 2; i++) {
        KtTensor x = IN(names[i][0]), y = OUT(names[i][1]);
        OK(kt_spatial_mean(&c.be, &y, &x));
        expect_fx(&c, &y, names[i][1], TOL_REDUCE_F32);
    }
    KtTensor x = IN("channel_affine_relu.x"), sc = IN("channel_affine_relu.scale");
    KtTensor sh = IN("channel_affine_relu.shift"), y = OUT("channel_affine_relu.y");
    OK(kt_channel_affine_relu(&c.be, &y, &x, &sc, &sh));
    expect_fx(&c, &y, "channel_affine_relu.y", TOL_ELEMWISE_F32);
    OK(kt_channel_affine_relu(&c.be, &x, &x, &sc, &sh));  // in place
    expect_fx(&c, &x, "channel_affine_relu.y", TOL_ELEMWISE_F32);
    ctx_close(&c);
}

// pytorch-fid (torch's bilinear) and ADM (numpy's TF1 legacy grid) on upsampling, downsampling and one axis kept.
TWIN(fid, preprocess_vs_reference) {
    static const char *cases[] = {"up", "down", "mixed"};
    Ctx c;
    ctx_open(&c, dev, FX);
    for (int i = 0; i < 3; i++) {
        char xn[64], yn[2][64];
        snprintf(xn, sizeof xn, "fid_%s.x", cases[i]);
        snprintf(yn[0], sizeof yn[0], "fid_pytorch_%s.y", cases[i]);
        snprintf(yn[1], sizeof yn[1], "fid_adm_%s.y", cases[i]);
        KtTensor x = fx_tensor(&c, xn, KT_U8, true);
        for (int m = 0; m < 2; m++) {
            KtTensor y = OUT(yn[m]);
            OK(kt_fid_preprocess(&c.be, &y, &x, m ? KT_FID_RESIZE_ADM : KT_FID_RESIZE_PYTORCH));
            expect_fx(&c, &y, yn[m], TOL_FID_PREPROCESS_F32);
        }
    }
    ctx_close(&c);
}

// spec/fid.md section 6: a 2x2 ramp to 3x3. ADM's legacy grid samples s = 0, 2/3, 4/3 (the last clamps to the edge
// row/column); pytorch-fid's half-pixel grid samples s = max(-1/6, 0), 1/2, 7/6.
TWIN(fid, preprocess_ramp) {
    uint8_t ramp[2 * 2 * 3];
    for (int i = 0; i < 4; i++)
        for (int ch = 0; ch < 3; ch++) ramp[i * 3 + ch] = (uint8_t)(30 * i * (ch + 1) / 3);  // TL, TR, BL, BR
    static const float adm[9] = {0, 20, 30, 40, 60, 70, 60, 80, 90}, pt[9] = {0, 15, 30, 30, 45, 60, 60, 75, 90};
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = dev_new(&c, KT_U8, 4, (int64_t[]){1, 2, 2, 3}, ramp);
    KtTensor y = dev_new(&c, KT_F32, 4, (int64_t[]){1, 3, 3, 3}, NULL);
    for (int m = 0; m < 2; m++) {
        OK(kt_fid_preprocess(&c.be, &y, &x, m ? KT_FID_RESIZE_ADM : KT_FID_RESIZE_PYTORCH));
        float *got = download_f32(&c, &y), want[27];
        for (int p = 0; p < 9; p++)  // channel ch holds the ramp scaled by (ch + 1) / 3 (the last one is the ramp)
            for (int ch = 0; ch < 3; ch++) {
                float u = (m ? adm[p] : pt[p]) * (float)(ch + 1) / 3;
                want[p * 3 + ch] = m ? (u - 128) / 128 : u / 255 * 2 - 1;
            }
        expect_close(m ? "adm ramp" : "pytorch-fid ramp", got, want, 27, 1e-6, 1e-6);
    }
    ctx_close(&c);
}

// 3x3 pools by hand on two channels (powers of two, and their negatives): the average divides by 4 in a corner,
// 6 on an edge and 9 in the centre; padded max taps never win, even over negative values; NaN wins its windows.
TWIN(fid, pools_by_hand) {
    float v[18];
    for (int i = 0; i < 9; i++) v[2 * i] = (float)(1 << i), v[2 * i + 1] = -(float)(1 << i);
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor x = dev_new(&c, KT_F32, 4, (int64_t[]){1, 3, 3, 2}, v), y = dev_new(&c, KT_F32, 4, x.shape, NULL);
    KtTensor y1 = dev_new(&c, KT_F32, 4, (int64_t[]){1, 1, 1, 2}, NULL);
    // window sums of 1..256 (row-major 3x3), divided by the in-bounds tap count
    static const float sum[9] = {27, 63, 54, 219, 511, 438, 216, 504, 432}, cnt[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    static const float mx[9] = {16, 32, 32, 128, 256, 256, 128, 256, 256};
    static const float mn[9] = {-1, -1, -2, -1, -1, -2, -8, -8, -16};
    float want[18], *got;
    OK(kt_avg_pool2d(&c.be, &y, &x, 3, 1, 1));
    for (int i = 0; i < 9; i++) want[2 * i] = sum[i] / cnt[i], want[2 * i + 1] = -sum[i] / cnt[i];
    expect_close("avg_pool 3x3 by hand", download_f32(&c, &y), want, 18, 0, 0);
    OK(kt_max_pool2d(&c.be, &y, &x, 3, 1, 1));
    for (int i = 0; i < 9; i++) want[2 * i] = mx[i], want[2 * i + 1] = mn[i];
    expect_close("max_pool 3x3 by hand", download_f32(&c, &y), want, 18, 0, 0);
    OK(kt_max_pool2d(&c.be, &y1, &x, 3, 2, 0));
    got = download_f32(&c, &y1);
    cr_expect(got[0] == 256 && got[1] == -1, "max_pool k3 s2 on 3x3: (%g, %g)", got[0], got[1]);
    v[0] = NAN;  // top-left of channel 0: the four windows that hold it become NaN, the others keep their max
    KtTensor xn = dev_new(&c, KT_F32, 4, x.shape, v);
    OK(kt_max_pool2d(&c.be, &y, &xn, 3, 1, 1));
    got = download_f32(&c, &y);
    for (int i = 0; i < 9; i++)
        cr_expect(i % 3 < 2 && i < 6 ? isnan(got[2 * i]) : got[2 * i] == mx[i], "NaN max_pool [%d] = %g", i,
                  got[2 * i]);
    ctx_close(&c);
}

TWIN(fid, copy_channels_and_affine_by_hand) {
    float a[2 * 2 * 2], b[2 * 2 * 3], got[2 * 2 * 5];
    for (int i = 0; i < 8; i++) a[i] = (float)i;
    for (int i = 0; i < 12; i++) b[i] = 100.0f + (float)i;
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor at = dev_new(&c, KT_F32, 4, (int64_t[]){1, 2, 2, 2}, a);
    KtTensor bt = dev_new(&c, KT_F32, 4, (int64_t[]){1, 2, 2, 3}, b);
    KtTensor cat = dev_new(&c, KT_F32, 4, (int64_t[]){1, 2, 2, 5}, NULL), mid = dev_new(&c, KT_F32, 4, at.shape, NULL);
    OK(kt_copy_channels(&c.be, &cat, 0, &at, 0, 2));  // concatenation [a, b] along C
    OK(kt_copy_channels(&c.be, &cat, 2, &bt, 0, 3));
    OK(kt_download(&c.be, got, &cat));
    for (int p = 0; p < 4; p++)
        for (int ch = 0; ch < 5; ch++)
            cr_expect_eq(got[p * 5 + ch], ch < 2 ? a[p * 2 + ch] : b[p * 3 + ch - 2], "concat pixel %d channel %d", p,
                         ch);
    OK(kt_copy_channels(&c.be, &mid, 0, &cat, 1, 2));  // slice: channels 1..2 = (a[1], b[0])
    OK(kt_download(&c.be, got, &mid));
    for (int p = 0; p < 4; p++)
        cr_expect(got[2 * p] == a[2 * p + 1] && got[2 * p + 1] == b[3 * p], "slice pixel %d: (%g, %g)", p, got[2 * p],
                  got[2 * p + 1]);
    // folded BN + ReLU: (x * scale + shift) per channel, negatives to 0, NaN kept
    float xv[6] = {1, -2, 3, 0.5f, NAN, -4}, sc[3] = {2, 0.5f, -1}, shv[3] = {-1, 0.25f, 2};
    float want[6] = {1, 0, 0, 0, NAN, 6};
    KtTensor xt = dev_new(&c, KT_F32, 2, (int64_t[]){2, 3}, xv), yt = dev_new(&c, KT_F32, 2, (int64_t[]){2, 3}, NULL);
    KtTensor st = dev_new(&c, KT_F32, 1, (int64_t[]){3}, sc), ht = dev_new(&c, KT_F32, 1, (int64_t[]){3}, shv);
    OK(kt_channel_affine_relu(&c.be, &yt, &xt, &st, &ht));
    expect_close("channel_affine_relu by hand", download_f32(&c, &yt), want, 6, 0, 0);
    // into channels 1..3 of a (2, 5) map whose other channels keep their values: the branch concatenation
    float zv[10] = {-1, -1, -1, -1, -1, -2, -2, -2, -2, -2};
    float wantz[10] = {-1, 1, 0, 0, -1, -2, 0, NAN, 6, -2};
    KtTensor zt = dev_new(&c, KT_F32, 2, (int64_t[]){2, 5}, zv);
    OK(kt_channel_affine_relu_into(&c.be, &zt, 1, &xt, &st, &ht));
    expect_close("channel_affine_relu_into by hand", download_f32(&c, &zt), wantz, 10, 0, 0);
    OK(kt_channel_affine_relu_into(&c.be, &xt, 0, &xt, &st, &ht));  // in place
    expect_close("channel_affine_relu_into in place", download_f32(&c, &xt), want, 6, 0, 0);
    ctx_close(&c);
}

// The map-op variants on CUDA with 16-bit maps (bf16, fp16) against the CPU on the same rounded values: max pool and
// copies move values (exact), averages and the affine map round their float32 result once, the mean is float32.
static void fid_maps16(KtDType dt) {
    const int64_t B = 2, H = 9, W = 11, C = 40, n = B * H * W * C;
    Ctx g, c;
    ctx_open(&g, KT_CUDA, FX);
    ctx_open(&c, KT_CPU, FX);
    OK(kt_backend_set_matmul_dtype(&g.be, dt));
    cr_assert_eq(g.be.map_dtype, dt);
    uint16_t *h16 = ctx_keep(&c, malloc(sizeof(uint16_t) * n));
    float *h32 = ctx_keep(&c, malloc(sizeof(float) * n)), sc[40], sh[40];
    uint64_t s = 11;
    for (int64_t i = 0; i < n; i++) {
        float f = 4 * lcg_uniform(&s);
        h16[i] = dt == KT_BF16 ? kt_f32_to_bf16(f) : kt_f32_to_f16(f);
        h32[i] = dt == KT_BF16 ? kt_bf16_to_f32(h16[i]) : kt_f16_to_f32(h16[i]);
    }
    for (int i = 0; i < 40; i++) sc[i] = 1 + lcg_uniform(&s), sh[i] = lcg_uniform(&s);
    int64_t xs[4] = {B, H, W, C}, ps[4] = {B, 4, 5, C}, cs[4] = {B, H, W, 16}, ms[2] = {B, C};
    int64_t ws[4] = {B, H, W, 56}, us[4] = {B, H, W, 45};  // affine into channels 8.. (16-byte packs) / 3.. (not)
    KtTensor xg = dev_new(&g, dt, 4, xs, h16), xc = dev_new(&c, KT_F32, 4, xs, h32);
    KtTensor scg = dev_new(&g, KT_F32, 1, (int64_t[]){C}, sc), scc = dev_new(&c, KT_F32, 1, (int64_t[]){C}, sc);
    KtTensor shg = dev_new(&g, KT_F32, 1, (int64_t[]){C}, sh), shc = dev_new(&c, KT_F32, 1, (int64_t[]){C}, sh);
    // y's channels outside the written slice must keep this value: 7, exact in either 16-bit type
    int64_t nw = B * H * W * 56;
    uint16_t *fill16 = ctx_keep(&c, malloc(sizeof(uint16_t) * nw));
    float *fill32 = ctx_keep(&c, malloc(sizeof(float) * nw));
    for (int64_t i = 0; i < nw; i++) fill16[i] = dt == KT_BF16 ? kt_f32_to_bf16(7) : kt_f32_to_f16(7), fill32[i] = 7;
    for (int op = 0; op < 8; op++) {
        const int64_t *shape = op == 1 ? ps : op == 4 ? cs : op == 6 ? ws : op == 7 ? us : xs;
        bool filled = op >= 6;
        KtTensor yg = op == 5 ? dev_new(&g, KT_F32, 2, ms, NULL) : dev_new(&g, dt, 4, shape, filled ? fill16 : NULL);
        KtTensor yc = dev_new(&c, KT_F32, op == 5 ? 2 : 4, op == 5 ? ms : shape, filled ? fill32 : NULL);
        static const char *names[8] = {"max_pool k3 s1 p1", "max_pool k3 s2 p0", "avg_pool k3 s1 p1",
                                       "channel_affine_relu", "copy_channels", "spatial_mean",
                                       "channel_affine_relu_into packs", "channel_affine_relu_into"};
        for (int d = 0; d < 2; d++) {
            KtBackend *be = d ? &c.be : &g.be;
            KtTensor *y = d ? &yc : &yg, *x = d ? &xc : &xg, *scale = d ? &scc : &scg, *shift = d ? &shc : &shg;
            if (op == 0) OK(kt_max_pool2d(be, y, x, 3, 1, 1));
            if (op == 1) OK(kt_max_pool2d(be, y, x, 3, 2, 0));
            if (op == 2) OK(kt_avg_pool2d(be, y, x, 3, 1, 1));
            if (op == 3) OK(kt_channel_affine_relu(be, y, x, scale, shift));
            if (op == 4) OK(kt_copy_channels(be, y, 0, x, 7, 16));
            if (op == 5) OK(kt_spatial_mean(be, y, x));
            if (op == 6) OK(kt_channel_affine_relu_into(be, y, 8, x, scale, shift));
            if (op == 7) OK(kt_channel_affine_relu_into(be, y, 3, x, scale, shift));
        }
        int64_t m = kt_numel(&yg);
        float *got = ctx_keep(&c, malloc(sizeof(float) * m)), *want = download_f32(&c, &yc);
        if (op == 5) {
            OK(kt_download(&g.be, got, &yg));
        } else {
            uint16_t *raw = ctx_keep(&c, malloc(sizeof(uint16_t) * m));
            OK(kt_download(&g.be, raw, &yg));
            for (int64_t i = 0; i < m; i++) got[i] = dt == KT_BF16 ? kt_bf16_to_f32(raw[i]) : kt_f16_to_f32(raw[i]);
        }
        char what[64];
        snprintf(what, sizeof what, "%s (%s maps)", names[op], kt_dtype_name(dt));
        if (op >= 6)  // the slice as the CPU's, the other channels untouched
            for (int64_t i = 0, cy = shape[3], y0 = op == 6 ? 8 : 3; i < m; i++) {
                bool in = i % cy >= y0 && i % cy < y0 + C;
                cr_expect(in ? fabsf(got[i] - want[i]) <= 1e-2f * fabsf(want[i]) : got[i] == 7, "%s [%lld]: %g vs %g",
                          what, (long long)i, got[i], want[i]);
            }
        if (op == 2 || op == 3 || op >= 6) expect_close(what, got, want, m, TOL_OUT_BF16);
        else if (op == 5) expect_close(what, got, want, m, TOL_ELEMWISE_F32);
        else expect_close(what, got, want, m, 0, 0);
    }
    ctx_close(&g);
    ctx_close(&c);
}
Test(fid, maps16_cuda_bf16) { fid_maps16(KT_BF16); }
Test(fid, maps16_cuda_fp16) { fid_maps16(KT_F16); }

// -------------------------------------------------------------------------------------------------- attention
TWIN(attention, split_and_prep) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor qkv = IN("qkv.qkv"), hsl = IN("qkv.head_scale_log");
    KtTensor q = OUT("split_qkv_heads.q"), k = OUT("split_qkv_heads.k"), v = OUT("split_qkv_heads.v");
    OK(kt_split_qkv_heads(&c.be, &q, &k, &v, &qkv));
    expect_fx(&c, &q, "split_qkv_heads.q", 0, 0);
    expect_fx(&c, &k, "split_qkv_heads.k", 0, 0);
    expect_fx(&c, &v, "split_qkv_heads.v", 0, 0);
    int64_t B = q.shape[0], NH = q.shape[1], T = q.shape[2], HS = q.shape[3];
    int64_t t0 = (int64_t)fx_scalar(&c, "qkv.t0"), cap = (int64_t)fx_scalar(&c, "qkv.tcap"), n = B * NH * cap * HS;
    float *sentinel = ctx_keep(&c, malloc(sizeof(float) * n));
    for (int64_t i = 0; i < n; i++) sentinel[i] = 7.0f;
    int64_t cs[4] = {B, NH, cap, HS};
    KtTensor kc = dev_new(&c, KT_F32, 4, cs, sentinel), vc = dev_new(&c, KT_F32, 4, cs, sentinel);
    OK(kt_var_attn_prep(&c.be, &q, &kc, &vc, &qkv, &hsl, t0));
    expect_fx(&c, &q, "var_attn_prep.q", TOL_ELEMWISE_F32);
    float *kh = download_f32(&c, &kc), *vh = download_f32(&c, &vc), *vref = download_f32(&c, &v);
    float *kref = fx_read(&c, "var_attn_prep.k", NULL, NULL, NULL);
    float *kw = ctx_keep(&c, malloc(sizeof(float) * B * NH * T * HS));  // cache positions [t0, t0 + T)
    float *vw = ctx_keep(&c, malloc(sizeof(float) * B * NH * T * HS));
    int64_t untouched_bad = 0;
    for (int64_t bh = 0; bh < B * NH; bh++)
        for (int64_t t = 0; t < cap; t++)
            for (int64_t d = 0; d < HS; d++) {
                int64_t ci = (bh * cap + t) * HS + d;
                if (t >= t0 && t < t0 + T) {
                    kw[(bh * T + t - t0) * HS + d] = kh[ci];
                    vw[(bh * T + t - t0) * HS + d] = vh[ci];
                } else {
                    untouched_bad += kh[ci] != 7.0f || vh[ci] != 7.0f;
                }
            }
    expect_close("var_attn_prep.k (cache)", kw, kref, B * NH * T * HS, TOL_ELEMWISE_F32);
    expect_close("var_attn_prep.v (cache)", vw, vref, B * NH * T * HS, 0, 0);
    cr_expect_eq(untouched_bad, 0, "kt_var_attn_prep wrote outside [t0, t0 + T)");
    ctx_close(&c);
}

// kt_var_attention equals kt_var_attn_prep + kt_attention(scale 1) bit for bit (out, q, both caches), with and
// without a bias, on a cache whose first t0 rows hold earlier keys.
TWIN(attention, var_attention_composition) {
    Ctx c;
    ctx_open(&c, dev, FX);
    KtTensor qkv = IN("qkv.qkv"), hsl = IN("qkv.head_scale_log");
    int64_t B = qkv.shape[0], T = qkv.shape[1], NH = hsl.shape[0], HS = qkv.shape[2] / (3 * NH);
    int64_t t0 = (int64_t)fx_scalar(&c, "qkv.t0"), cap = (int64_t)fx_scalar(&c, "qkv.tcap"), n = B * NH * cap * HS;
    float *prev = ctx_keep(&c, malloc(sizeof(float) * n)), *bias = ctx_keep(&c, malloc(sizeof(float) * T * (t0 + T)));
    for (int64_t i = 0; i < n; i++) prev[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;
    for (int64_t i = 0; i < T * (t0 + T); i++) bias[i] = i % 3 ? 0.0f : -INFINITY;
    int64_t cs[4] = {B, NH, cap, HS}, qs[4] = {B, NH, T, HS}, os[3] = {B, T, NH * HS};
    KtTensor bt = dev_new(&c, KT_F32, 2, (int64_t[]){T, t0 + T}, bias);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const KtTensor *bp = with_bias ? &bt : NULL;
        KtTensor kc1 = dev_new(&c, KT_F32, 4, cs, prev), vc1 = dev_new(&c, KT_F32, 4, cs, prev);
        KtTensor kc2 = dev_new(&c, KT_F32, 4, cs, prev), vc2 = dev_new(&c, KT_F32, 4, cs, prev);
        KtTensor q1 = dev_new(&c, KT_F32, 4, qs, NULL), q2 = dev_new(&c, KT_F32, 4, qs, NULL);
        KtTensor o1 = dev_new(&c, KT_F32, 3, os, NULL), o2 = dev_new(&c, KT_F32, 3, os, NULL);
        OK(kt_var_attn_prep(&c.be, &q1, &kc1, &vc1, &qkv, &hsl, t0));
        OK(kt_attention(&c.be, &o1, &q1, &kc1, &vc1, t0 + T, bp, 1.0f));
        OK(kt_var_attention(&c.be, &o2, &q2, &kc2, &vc2, &qkv, &hsl, t0, bp));
        expect_same_bytes(&c, "var_attention out", &o2, &o1);
        expect_same_bytes(&c, "var_attention q", &q2, &q1);
        expect_same_bytes(&c, "var_attention kcache", &kc2, &kc1);
        expect_same_bytes(&c, "var_attention vcache", &vc2, &vc1);
    }
    ctx_close(&c);
}

TWIN(attention, attention) {
    static const char *cases[] = {"attention", "attention_t1", "attention_1head"};
    Ctx c;
    ctx_open(&c, dev, FX);
    for (int i = 0; i < 3; i++) {
        char n[6][64];
        const char *suf[6] = {"q", "k", "v", "bias", "out", "kv_len"};
        for (int j = 0; j < 6; j++) snprintf(n[j], sizeof n[j], "%s.%s", cases[i], suf[j]);
        KtTensor q = IN(n[0]), k = IN(n[1]), v = IN(n[2]), out = OUT(n[4]), bias = {0};
        if (i == 0) bias = IN(n[3]);
        char sn[64];
        snprintf(sn, sizeof sn, "%s.scale", cases[i]);
        OK(kt_attention(&c.be, &out, &q, &k, &v, (int64_t)fx_scalar(&c, n[5]), i == 0 ? &bias : NULL,
                        (float)fx_scalar(&c, sn)));
        expect_fx(&c, &out, n[4], TOL_REDUCE_F32);
    }
    ctx_close(&c);
}

// -------------------------------------------------------------------------------------------- shape checks
static float g_host[4096];
static KtTensor host_t(int ndim, const int64_t *shape) { return kt_tensor(g_host, KT_F32, KT_CPU, ndim, shape); }

static void expect_shape_err(KtStatus s, KtStatus want, const char *op, const char *arg) {
    const char *msg = kt_last_error();
    cr_expect_eq(s, want, "%s: expected %s, got %s (%s)", op, kt_status_name(want), kt_status_name(s), msg);
    cr_expect(strstr(msg, op) != NULL, "message does not name the op %s: '%s'", op, msg);
    cr_expect(strstr(msg, arg) != NULL, "message does not name the argument %s: '%s'", arg, msg);
}

Test(validation, wrong_shapes) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    KtTensor x = host_t(2, (int64_t[]){3, 64}), w = host_t(2, (int64_t[]){33, 65}), y = host_t(2, (int64_t[]){3, 33});
    expect_shape_err(kt_linear(&be, &y, &x, &w, NULL), KT_ERR_SHAPE, "kt_linear", "'x'");
    KtTensor x4 = host_t(4, (int64_t[]){1, 8, 10, 4}), w4 = host_t(4, (int64_t[]){5, 3, 3, 4});
    KtTensor y4 = host_t(4, (int64_t[]){1, 8, 10, 5});
    expect_shape_err(kt_conv2d(&be, &y4, &x4, &w4, NULL, 2, (int[]){0, 1, 0, 1}), KT_ERR_SHAPE, "kt_conv2d", "'y'");
    KtTensor q = host_t(4, (int64_t[]){1, 2, 3, 8}), k = host_t(4, (int64_t[]){1, 2, 6, 8});
    KtTensor out = host_t(3, (int64_t[]){1, 3, 16}), bias = host_t(2, (int64_t[]){3, 6});
    expect_shape_err(kt_attention(&be, &out, &q, &k, &k, 5, &bias, 1.0f), KT_ERR_SHAPE, "kt_attention", "'bias'");
    KtTensor g = host_t(4, (int64_t[]){1, 2, 2, 48}), gw = host_t(1, (int64_t[]){48});
    expect_shape_err(kt_group_norm(&be, &g, &g, &gw, &gw, 32, 1e-6f), KT_ERR_SHAPE, "kt_group_norm", "groups");
    KtTensor xi = kt_tensor(g_host, KT_I32, KT_CPU, 2, (int64_t[]){3, 64});
    expect_shape_err(kt_layernorm(&be, &xi, &xi, 1e-6f), KT_ERR_SHAPE, "kt_layernorm", "'y'");
    KtTensor a = host_t(3, (int64_t[]){2, 5, 65}), bb = host_t(1, (int64_t[]){5});
    expect_shape_err(kt_add(&be, &a, &a, &bb), KT_ERR_SHAPE, "kt_add", "'b'");
    KtTensor qkv = host_t(3, (int64_t[]){1, 3, 48}), kc = host_t(4, (int64_t[]){1, 2, 4, 8});
    KtTensor hs = host_t(1, (int64_t[]){2});
    expect_shape_err(kt_var_attn_prep(&be, &q, &kc, &kc, &qkv, &hs, 2), KT_ERR_ARG, "kt_var_attn_prep", "capacity");
    KtTensor ys = host_t(4, (int64_t[]){1, 4, 5, 3}), xs = host_t(4, (int64_t[]){1, 4, 5, 4});
    expect_shape_err(kt_resize_area(&be, &ys, &xs), KT_ERR_SHAPE, "kt_resize", "'y'");
    // the CPU's map dtype is float32: 16-bit feature maps are refused; kt_convert float32 -> float32 copies
    cr_expect_eq(be.map_dtype, KT_F32);
    KtTensor x16 = kt_tensor(g_host, KT_BF16, KT_CPU, 4, (int64_t[]){1, 8, 10, 4});
    expect_shape_err(kt_conv2d(&be, &y4, &x16, &w4, NULL, 1, (int[]){1, 1, 1, 1}), KT_ERR_SHAPE, "kt_conv2d", "'x'");
    expect_shape_err(kt_upsample_nearest2x(&be, &y4, &x16), KT_ERR_SHAPE, "kt_upsample_nearest2x", "'x'");
    static float src[6] = {1.5f, -2, 3, NAN, 0, 7}, dst[6];
    KtTensor cs = kt_tensor2(src, KT_F32, KT_CPU, 2, 3), cd = kt_tensor2(dst, KT_F32, KT_CPU, 2, 3);
    cr_expect_eq(kt_convert(&be, &cd, &cs), KT_OK, "%s", kt_last_error());
    cr_expect(memcmp(src, dst, sizeof dst) == 0, "kt_convert float32 -> float32 is not a copy");
    // kt_linear_gelu_tanh is kt_linear followed by kt_gelu_tanh, bit for bit
    static float lx[2 * 8], lw[5 * 8], lb[5], ly1[2 * 5], ly2[2 * 5];
    for (int i = 0; i < 16; i++) lx[i] = (float)(i % 7) * 0.4f - 1.1f;
    for (int i = 0; i < 40; i++) lw[i] = (float)(i % 5) * 0.3f - 0.5f;
    for (int i = 0; i < 5; i++) lb[i] = 0.1f * (float)i - 0.2f;
    KtTensor tx = kt_tensor2(lx, KT_F32, KT_CPU, 2, 8), tw = kt_tensor2(lw, KT_F32, KT_CPU, 5, 8);
    KtTensor tb = kt_tensor1(lb, KT_F32, KT_CPU, 5), ty1 = kt_tensor2(ly1, KT_F32, KT_CPU, 2, 5);
    KtTensor ty2 = kt_tensor2(ly2, KT_F32, KT_CPU, 2, 5);
    cr_expect_eq(kt_linear_gelu_tanh(&be, &ty1, &tx, &tw, &tb), KT_OK, "%s", kt_last_error());
    cr_expect_eq(kt_linear(&be, &ty2, &tx, &tw, &tb), KT_OK);
    cr_expect_eq(kt_gelu_tanh(&be, &ty2, &ty2), KT_OK);
    cr_expect(memcmp(ly1, ly2, sizeof ly1) == 0, "kt_linear_gelu_tanh != kt_linear + kt_gelu_tanh");
    expect_shape_err(kt_linear_gelu_tanh(&be, &y, &x, &w, NULL), KT_ERR_SHAPE, "kt_linear_gelu_tanh", "'x'");
    // empty contraction (in = 0): y = bias, and BLAS is not handed lda = 0
    float b3[3] = {1, 2, 3}, y6[6] = {0};
    KtTensor x0 = host_t(2, (int64_t[]){2, 0}), w0 = host_t(2, (int64_t[]){3, 0});
    KtTensor bt = kt_tensor1(b3, KT_F32, KT_CPU, 3), yt = kt_tensor2(y6, KT_F32, KT_CPU, 2, 3);
    cr_expect_eq(kt_linear(&be, &yt, &x0, &w0, &bt), KT_OK, "%s", kt_last_error());
    cr_expect(y6[0] == 1 && y6[2] == 3 && y6[3] == 1 && y6[5] == 3);
    kt_backend_free(&be);
}

Test(validation, fid_ops) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    static float buf[4096];
    KtTensor x = host_t(4, (int64_t[]){1, 9, 11, 4}), y = kt_tensor4(buf, KT_F32, KT_CPU, 1, 4, 5, 4);
    cr_expect_eq(kt_max_pool2d(&be, &y, &x, 3, 2, 0), KT_OK, "%s", kt_last_error());
    expect_shape_err(kt_max_pool2d(&be, &y, &x, 0, 2, 0), KT_ERR_ARG, "kt_max_pool2d", "kernel size");
    expect_shape_err(kt_max_pool2d(&be, &y, &x, 3, 0, 0), KT_ERR_ARG, "kt_max_pool2d", "stride");
    expect_shape_err(kt_avg_pool2d(&be, &y, &x, 3, 2, 3), KT_ERR_ARG, "kt_avg_pool2d", "padding 3");
    expect_shape_err(kt_avg_pool2d(&be, &y, &x, 3, 2, -1), KT_ERR_ARG, "kt_avg_pool2d", "padding -1");
    expect_shape_err(kt_max_pool2d(&be, &y, &x, 3, 1, 0), KT_ERR_SHAPE, "kt_max_pool2d", "'y'");  // (1, 7, 9, 4)
    KtTensor xs = host_t(4, (int64_t[]){1, 1, 11, 4});
    expect_shape_err(kt_max_pool2d(&be, &y, &xs, 3, 2, 0), KT_ERR_SHAPE, "kt_max_pool2d", "'x'");  // 1 row < k
    KtTensor same = kt_tensor4(g_host, KT_F32, KT_CPU, 1, 9, 11, 4);
    expect_shape_err(kt_avg_pool2d(&be, &same, &x, 3, 1, 1), KT_ERR_ARG, "kt_avg_pool2d", "alias");
    KtTensor x16 = kt_tensor(g_host, KT_BF16, KT_CPU, 4, (int64_t[]){1, 9, 11, 4});
    expect_shape_err(kt_max_pool2d(&be, &y, &x16, 3, 2, 0), KT_ERR_SHAPE, "kt_max_pool2d", "'x'");
    // channel copies: ranges inside both tensors, same B, H, W
    KtTensor cy = kt_tensor4(buf, KT_F32, KT_CPU, 1, 9, 11, 6);
    cr_expect_eq(kt_copy_channels(&be, &cy, 2, &x, 0, 4), KT_OK, "%s", kt_last_error());
    expect_shape_err(kt_copy_channels(&be, &cy, 3, &x, 0, 4), KT_ERR_ARG, "kt_copy_channels", "y channels");
    expect_shape_err(kt_copy_channels(&be, &cy, -1, &x, 0, 2), KT_ERR_ARG, "kt_copy_channels", "y channels");
    expect_shape_err(kt_copy_channels(&be, &cy, 0, &x, 2, 3), KT_ERR_ARG, "kt_copy_channels", "x channels");
    expect_shape_err(kt_copy_channels(&be, &cy, 0, &x, 0, -1), KT_ERR_ARG, "kt_copy_channels", "x channels");
    KtTensor cy2 = kt_tensor4(buf, KT_F32, KT_CPU, 1, 9, 10, 6);
    expect_shape_err(kt_copy_channels(&be, &cy2, 0, &x, 0, 4), KT_ERR_SHAPE, "kt_copy_channels", "'y'");
    expect_shape_err(kt_copy_channels(&be, &same, 0, &x, 0, 4), KT_ERR_ARG, "kt_copy_channels", "alias");
    // folded BN + ReLU into a channel slice: y's leading dims as x's, the slice inside y, no overlap unless in place
    KtTensor sc4 = host_t(1, (int64_t[]){4}), sh4 = host_t(1, (int64_t[]){4}), sh5 = host_t(1, (int64_t[]){5});
    cr_expect_eq(kt_channel_affine_relu_into(&be, &cy, 2, &x, &sc4, &sh4), KT_OK, "%s", kt_last_error());
    expect_shape_err(kt_channel_affine_relu_into(&be, &cy, 3, &x, &sc4, &sh4), KT_ERR_ARG,
                     "kt_channel_affine_relu_into", "y channels [3, 3 + 4) outside [0, 6)");
    expect_shape_err(kt_channel_affine_relu_into(&be, &cy, -1, &x, &sc4, &sh4), KT_ERR_ARG,
                     "kt_channel_affine_relu_into", "y channels");
    expect_shape_err(kt_channel_affine_relu_into(&be, &cy2, 0, &x, &sc4, &sh4), KT_ERR_SHAPE,
                     "kt_channel_affine_relu_into", "'y'");
    expect_shape_err(kt_channel_affine_relu_into(&be, &cy, 0, &x, &sh5, &sh4), KT_ERR_SHAPE,
                     "kt_channel_affine_relu_into", "'scale'");
    KtTensor shifted = kt_tensor4(g_host + 4, KT_F32, KT_CPU, 1, 9, 11, 4);  // overlaps x, not in place
    expect_shape_err(kt_channel_affine_relu_into(&be, &shifted, 0, &x, &sc4, &sh4), KT_ERR_ARG,
                     "kt_channel_affine_relu_into", "overlaps");
    KtTensor wide = kt_tensor4(g_host, KT_F32, KT_CPU, 1, 9, 11, 6);  // same pointer, but a slice: not in place
    expect_shape_err(kt_channel_affine_relu_into(&be, &wide, 0, &x, &sc4, &sh4), KT_ERR_ARG,
                     "kt_channel_affine_relu_into", "overlaps");
    cr_expect_eq(kt_channel_affine_relu_into(&be, &same, 0, &x, &sc4, &sh4), KT_OK, "in place: %s", kt_last_error());
    // folded BN + ReLU, spatial mean
    KtTensor s3 = host_t(1, (int64_t[]){3}), s4 = host_t(1, (int64_t[]){4});
    expect_shape_err(kt_channel_affine_relu(&be, &x, &x, &s3, &s4), KT_ERR_SHAPE, "kt_channel_affine_relu", "'scale'");
    KtTensor m = kt_tensor2(buf, KT_F32, KT_CPU, 1, 5);
    expect_shape_err(kt_spatial_mean(&be, &m, &x), KT_ERR_SHAPE, "kt_spatial_mean", "'y'");
    // preprocessing: 8-bit RGB in, float32 out, a known mode
    KtTensor img = kt_tensor(g_host, KT_U8, KT_CPU, 4, (int64_t[]){2, 8, 8, 3});
    KtTensor out = kt_tensor4(buf, KT_F32, KT_CPU, 2, 5, 7, 3);
    cr_expect_eq(kt_fid_preprocess(&be, &out, &img, KT_FID_RESIZE_ADM), KT_OK, "%s", kt_last_error());
    expect_shape_err(kt_fid_preprocess(&be, &out, &img, (KtFidResize)7), KT_ERR_ARG, "kt_fid_preprocess", "mode");
    KtTensor imgf = host_t(4, (int64_t[]){2, 8, 8, 3});
    expect_shape_err(kt_fid_preprocess(&be, &out, &imgf, KT_FID_RESIZE_ADM), KT_ERR_SHAPE, "kt_fid_preprocess", "'x'");
    KtTensor img4 = kt_tensor(g_host, KT_U8, KT_CPU, 4, (int64_t[]){2, 8, 8, 4});
    expect_shape_err(kt_fid_preprocess(&be, &out, &img4, KT_FID_RESIZE_ADM), KT_ERR_SHAPE, "kt_fid_preprocess", "'x'");
    KtTensor out1 = kt_tensor4(buf, KT_F32, KT_CPU, 1, 5, 7, 3);
    expect_shape_err(kt_fid_preprocess(&be, &out1, &img, KT_FID_RESIZE_PYTORCH), KT_ERR_SHAPE, "kt_fid_preprocess",
                     "'y'");
    kt_backend_free(&be);
}

// ------------------------------------------------------------------------- allocation and thread invariance
// Runs the scratch-using ops on the CPU backend with deterministic data; outputs appended to `out` (if non-NULL).
#define SUITE_FLOATS (64 * 40 * 48 + 300 * 256 + 2 * 2 * 64 * 64 + 16 * 16 * 32 * 2 + 64)
static void run_suite(KtBackend *be, float *out) {
    static float x[2 * 32 * 40 * 64], w[64 * 9 * 64], wl[256 * 384], xl[300 * 384], q[2 * 2 * 64 * 64];
    static float kv[2 * 2 * 100 * 64], gn_w[64], gn_b[64], cb[512 * 32], logits[2 * 3 * 512];
    static float y[2 * 32 * 40 * 64], yl[300 * 256], att[2 * 64 * 128], h[2 * 3 * 32], r16[2 * 16 * 16 * 32];
    static int32_t idx[300], tok[6];
    uint64_t s = 7;
    for (size_t i = 0; i < sizeof x / 4; i++) x[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof w / 4; i++) w[i] = lcg_uniform(&s) * 0.05f;
    for (size_t i = 0; i < sizeof wl / 4; i++) wl[i] = lcg_uniform(&s) * 0.05f;
    for (size_t i = 0; i < sizeof xl / 4; i++) xl[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof q / 4; i++) q[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof kv / 4; i++) kv[i] = lcg_uniform(&s);
    for (int i = 0; i < 64; i++) gn_w[i] = 1 + lcg_uniform(&s), gn_b[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof cb / 4; i++) cb[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof logits / 4; i++) logits[i] = 3 * lcg_uniform(&s);
    int64_t ids[2] = {4, 9};
    KtTensor xt = kt_tensor4(x, KT_F32, KT_CPU, 2, 32, 40, 64), yt = kt_tensor4(y, KT_F32, KT_CPU, 2, 32, 40, 64);
    KtTensor wt = kt_tensor4(w, KT_F32, KT_CPU, 64, 3, 3, 64), gw = kt_tensor1(gn_w, KT_F32, KT_CPU, 64);
    KtTensor gb = kt_tensor1(gn_b, KT_F32, KT_CPU, 64);
    KtTensor xlt = kt_tensor2(xl, KT_F32, KT_CPU, 300, 384), wlt = kt_tensor2(wl, KT_F32, KT_CPU, 256, 384);
    KtTensor ylt = kt_tensor2(yl, KT_F32, KT_CPU, 300, 256);
    KtTensor qt = kt_tensor4(q, KT_F32, KT_CPU, 2, 2, 64, 64), kt = kt_tensor4(kv, KT_F32, KT_CPU, 2, 2, 100, 64);
    KtTensor at = kt_tensor3(att, KT_F32, KT_CPU, 2, 64, 128), r16t = kt_tensor4(r16, KT_F32, KT_CPU, 2, 16, 16, 32);
    KtTensor zt = kt_tensor2(xl, KT_F32, KT_CPU, 300, 32), cbt = kt_tensor2(cb, KT_F32, KT_CPU, 512, 32);
    KtTensor it = kt_tensor1(idx, KT_I32, KT_CPU, 300), lt = kt_tensor3(logits, KT_F32, KT_CPU, 2, 3, 512);
    KtTensor tt = kt_tensor2(tok, KT_I32, KT_CPU, 2, 3), idt = kt_tensor1(ids, KT_I64, KT_CPU, 2);
    KtTensor ht = kt_tensor3(h, KT_F32, KT_CPU, 2, 3, 32);
    KtTensor x13 = kt_tensor4(x, KT_F32, KT_CPU, 2, 13, 13, 32);
    SmpParams sp = smp_params_default();
    sp.seed = 3, sp.top_k = 100, sp.top_p = 0.9f;
    OK(kt_conv2d(be, &yt, &xt, &wt, &gb, 1, (int[]){1, 1, 1, 1}));
    OK(kt_group_norm_silu(be, &xt, &yt, &gw, &gb, 32, 1e-6f));
    OK(kt_linear(be, &ylt, &xlt, &wlt, NULL));
    OK(kt_attention(be, &at, &qt, &kt, &kt, 77, NULL, 0.125f));
    OK(kt_resize_bicubic(be, &r16t, &x13));
    OK(kt_codebook_argmin(be, &it, &zt, &cbt));
    OK(kt_smooth_embed(be, &ht, &lt, &cbt, 0.5f, &idt, 10, 5));
    OK(kt_sample_top_k_top_p(be, &tt, &lt, &idt, 10, sp));
    if (!out) return;
    size_t n = 0;
#define APPEND(p, cnt) (memcpy(out + n, (p), (size_t)(cnt) * 4), n += (size_t)(cnt))
    APPEND(x, 64 * 40 * 48);  // a slice of the group-norm output
    APPEND(yl, 300 * 256);
    APPEND(att, 2 * 64 * 128);
    APPEND(r16, 16 * 16 * 32 * 2);
    APPEND(idx, 32), APPEND(tok, 6), APPEND(h, 26);
    cr_assert(n <= SUITE_FLOATS);
}

Test(backend, no_allocation_after_warmup) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    run_suite(&be, NULL);
    int64_t n = be.n_allocs;
    size_t bytes = be.bytes_in_use;
    for (int i = 0; i < 3; i++) run_suite(&be, NULL);
    cr_expect_eq(be.n_allocs, n, "steady-state calls allocated (%lld -> %lld)", (long long)n, (long long)be.n_allocs);
    cr_expect_eq(be.bytes_in_use, bytes);
    kt_backend_free(&be);
}

// The FID ops on a Mixed_5b-sized map (35 x 35) and a 299 x 299 input, with 1 and 2 threads: identical bytes.
static void run_fid_ops(int threads, float *out) {
    enum { B = 2, S = 35, C = 48, NX = B * S * S * C, NP = B * 17 * 17 * C, NI = B * 299 * 299 * 3 };
    static float x[NX], sc[C], sh[C];
    static uint8_t img[B * 64 * 48 * 3];
    uint64_t s = 5;
    for (int i = 0; i < NX; i++) x[i] = lcg_uniform(&s);
    for (int i = 0; i < C; i++) sc[i] = lcg_uniform(&s), sh[i] = lcg_uniform(&s);
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(lcg_uniform(&s) * 127.5f + 128);
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, threads) == KT_OK);
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    KtTensor xt = kt_tensor4(x, KT_F32, KT_CPU, B, S, S, C), scale = kt_tensor1(sc, KT_F32, KT_CPU, C);
    KtTensor shift = kt_tensor1(sh, KT_F32, KT_CPU, C), it = kt_tensor4(img, KT_U8, KT_CPU, B, 64, 48, 3);
    KtTensor ya = kt_tensor4(out, KT_F32, KT_CPU, B, S, S, C), ym = kt_tensor4(out + NX, KT_F32, KT_CPU, B, 17, 17, C);
    KtTensor yr = kt_tensor4(out + NX + NP, KT_F32, KT_CPU, B, S, S, C);
    KtTensor yc = kt_tensor4(out + 2 * NX + NP, KT_F32, KT_CPU, B, S, S, 2 * C);
    KtTensor yp = kt_tensor4(out + 4 * NX + NP, KT_F32, KT_CPU, B, 299, 299, 3);
    KtTensor yq = kt_tensor4(out + 4 * NX + NP + NI, KT_F32, KT_CPU, B, 299, 299, 3);
    KtTensor ys = kt_tensor2(out + 4 * NX + NP + 2 * NI, KT_F32, KT_CPU, B, C);
    OK(kt_avg_pool2d(&be, &ya, &xt, 3, 1, 1));
    OK(kt_max_pool2d(&be, &ym, &xt, 3, 2, 0));
    OK(kt_channel_affine_relu(&be, &yr, &ya, &scale, &shift));
    OK(kt_copy_channels(&be, &yc, 0, &ya, 0, C));
    OK(kt_copy_channels(&be, &yc, C, &yr, 0, C));
    OK(kt_fid_preprocess(&be, &yp, &it, KT_FID_RESIZE_PYTORCH));
    OK(kt_fid_preprocess(&be, &yq, &it, KT_FID_RESIZE_ADM));
    OK(kt_spatial_mean(&be, &ys, &yr));
    kt_backend_free(&be);
}

Test(backend, fid_ops_thread_count_invariance) {
    enum { N = 4 * 2 * 35 * 35 * 48 + 2 * 17 * 17 * 48 + 2 * 2 * 299 * 299 * 3 + 2 * 48 };
    float *a = malloc(sizeof(float) * N), *b = malloc(sizeof(float) * N);
    cr_assert(a && b);
    run_fid_ops(1, a);
    run_fid_ops(2, b);
    cr_expect(memcmp(a, b, sizeof(float) * N) == 0, "FID ops differ between 1 and 2 threads");
    free(a);
    free(b);
}

Test(backend, thread_count_invariance) {
    static float a[SUITE_FLOATS], b[SUITE_FLOATS];
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 1) == KT_OK);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    run_suite(&be, a);
    kt_backend_free(&be);
    cr_assert(kt_backend_cpu_init(&be, 2) == KT_OK);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    run_suite(&be, b);
    kt_backend_free(&be);
    static const char *parts[] = {"group_norm_silu(conv2d)", "linear", "attention", "resize_bicubic",
                                  "codebook_argmin", "sample_top_k_top_p", "smooth_embed"};
    static const size_t ends[] = {64 * 40 * 48, 64 * 40 * 48 + 300 * 256, 64 * 40 * 48 + 300 * 256 + 16384,
                                  64 * 40 * 48 + 300 * 256 + 2 * 16384, 64 * 40 * 48 + 300 * 256 + 2 * 16384 + 32,
                                  64 * 40 * 48 + 300 * 256 + 2 * 16384 + 38, SUITE_FLOATS};
    for (size_t i = 0, s = 0; i < 7; s = ends[i++])
        cr_expect(memcmp(a + s, b + s, (ends[i] - s) * sizeof(float)) == 0, "%s differs between 1 and 2 threads",
                  parts[i]);
}
