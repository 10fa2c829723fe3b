// The CUDA backend against the CPU reference backend on random inputs with odd shapes, op by op; the sampler's
// tokens (identical on both backends for the same seed); attention with a bias and kv_len < capacity on every
// kernel path; graph capture + replay equal to eager runs; no allocation after a warm-up pass; the 16-bit matmul
// modes with loose tolerances. Every test skips itself without a GPU (nothing touches CUDA in the runner process).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

// ------------------------------------------------------------------------------------------------ harness
#define MAXT 512
typedef struct {
    KtBackend cpu, gpu;
    KtBuffer buf[2 * MAXT];
    void *host[MAXT];
    int nbuf, nhost;
    uint64_t rng;
} Pair;

typedef struct {
    KtTensor c, g;  // the same values on the CPU and the GPU backend
} Twin;

static void pair_open(Pair *p, uint64_t seed) {
    memset(p, 0, sizeof *p);
    test_backend_init(&p->gpu, KT_CUDA);  // skips without a GPU
    test_backend_init(&p->cpu, KT_CPU);
    p->rng = seed * 0x9E3779B97F4A7C15ull + 1;
}

static void pair_close(Pair *p) {
    for (int i = 0; i < p->nbuf; i++) kt_buffer_free(&p->buf[i]);
    for (int i = 0; i < p->nhost; i++) free(p->host[i]);
    kt_backend_free(&p->gpu);
    kt_backend_free(&p->cpu);
}

static void *keep(Pair *p, void *h) {
    cr_assert(h && p->nhost < MAXT);
    return p->host[p->nhost++] = h;
}

static float frand(Pair *p) {  // uniform [-1, 1)
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return (float)((p->rng >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static float *rnd(Pair *p, int64_t n, float scale) {
    float *h = keep(p, malloc((size_t)(n ? n : 1) * sizeof(float)));
    for (int64_t i = 0; i < n; i++) h[i] = scale * frand(p);
    return h;
}

// Twin tensors filled from `host` (NULL: 0xff bytes, NaN floats, so unwritten outputs show).
static Twin twin(Pair *p, KtDType dt, int ndim, const int64_t *shape, const void *host) {
    Twin t;
    KtBackend *be[2] = {&p->cpu, &p->gpu};
    KtTensor *dst[2] = {&t.c, &t.g};
    for (int i = 0; i < 2; i++) {
        cr_assert(p->nbuf < 2 * MAXT);
        *dst[i] = kt_tensor(NULL, dt, be[i]->device, ndim, shape);
        KtBuffer *b = &p->buf[p->nbuf++];
        OK(kt_buffer_alloc(be[i], b, kt_nbytes(dst[i])));
        dst[i]->data = b->data;
        const void *src = host;
        if (!src) {
            void *fill = keep(p, malloc(kt_nbytes(dst[i]) + 1));
            memset(fill, 0xff, kt_nbytes(dst[i]));
            src = fill;
        }
        OK(kt_upload(be[i], dst[i], src));
    }
    return t;
}
#define TW(host, ...) twin(p, KT_F32, sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (const int64_t[]){__VA_ARGS__}, host)
#define TWT(dt, host, ...) twin(p, dt, sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t), (const int64_t[]){__VA_ARGS__}, host)

static void *gpu_host(Pair *p, const KtTensor *g) {
    void *h = keep(p, malloc(kt_nbytes(g) + 1));
    OK(kt_download(&p->gpu, h, g));
    return h;
}

static void expect_twin(Pair *p, const char *what, const Twin *t, double atol, double rtol) {
    expect_close(what, gpu_host(p, &t->g), t->c.data, kt_numel(&t->c), atol, rtol);
}

static void expect_twin_exact(Pair *p, const char *what, const Twin *t) {
    size_t n = kt_nbytes(&t->c);
    const unsigned char *g = gpu_host(p, &t->g), *c = t->c.data;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (g[i] != c[i] && !bad++) first = i;
    cr_expect(bad == 0, "%s: %zu of %zu bytes differ (first at byte %zu)", what, bad, n, first);
}

// The GPU half of `t` holds 16-bit values (dt); compares them, widened, with the float32 CPU half.
static void expect_twin16(Pair *p, const char *what, const KtTensor *g, KtDType dt, const KtTensor *cpu, double atol,
                          double rtol) {
    int64_t n = kt_numel(cpu);
    const uint16_t *h = gpu_host(p, g);
    float *f = keep(p, malloc((size_t)(n ? n : 1) * sizeof(float)));
    for (int64_t i = 0; i < n; i++) f[i] = dt == KT_BF16 ? kt_bf16_to_f32(h[i]) : kt_f16_to_f32(h[i]);
    expect_close(what, f, cpu->data, n, atol, rtol);
}

// A GPU-only tensor of dtype dt (contents 0xff).
static KtTensor gpu_only(Pair *p, KtDType dt, int ndim, const int64_t *shape) {
    KtTensor t = kt_tensor(NULL, dt, KT_CUDA, ndim, shape);
    cr_assert(p->nbuf < 2 * MAXT);
    OK(kt_buffer_alloc(&p->gpu, &p->buf[p->nbuf], kt_nbytes(&t)));
    t.data = p->buf[p->nbuf++].data;
    void *fill = keep(p, malloc(kt_nbytes(&t) + 1));
    memset(fill, 0xff, kt_nbytes(&t));
    OK(kt_upload(&p->gpu, &t, fill));
    return t;
}

// Runs `call` on both backends: CALL(op, args...) with args written with C(x) / G(x) picking a twin's half.
#define BOTH(fn, ...)                                                                                              \
    do {                                                                                                           \
        KtBackend *be_ = &p->cpu;                                                                                  \
        int side_ = 0;                                                                                             \
        OK(fn(be_, __VA_ARGS__));                                                                                  \
        be_ = &p->gpu;                                                                                             \
        side_ = 1;                                                                                                 \
        OK(fn(be_, __VA_ARGS__));                                                                                  \
        (void)side_;                                                                                               \
    } while (0)
#define S(t) (side_ ? &(t).g : &(t).c)

// ------------------------------------------------------------------------------------------------ dense
static void check_linear(Pair *p, int64_t M, int64_t K, int64_t N, bool bias) {
    Twin x = TW(rnd(p, M * K, 1.f), M, K), w = TW(rnd(p, N * K, 0.5f), N, K), b = TW(rnd(p, N, 1.f), N);
    Twin y = TW(NULL, M, N);
    BOTH(kt_linear, S(y), S(x), S(w), bias ? S(b) : NULL);
    char what[96];
    snprintf(what, sizeof what, "linear M=%lld K=%lld N=%lld bias=%d", (long long)M, (long long)K, (long long)N, bias);
    expect_twin(p, what, &y, TOL_REDUCE_F32);
}

Test(cuda_dense, linear) {
    Pair pp, *p = &pp;
    pair_open(p, 1);
    int64_t shapes[][3] = {{1, 64, 96}, {2, 1024, 40}, {3, 40, 33}, {8, 16, 7}, {5, 33, 17}, {37, 64, 130},
                           {300, 256, 96}, {9, 3, 5}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_linear(p, shapes[i][0], shapes[i][1], shapes[i][2], true);
        check_linear(p, shapes[i][0], shapes[i][1], shapes[i][2], false);
    }
    Twin x = TW(rnd(p, 2 * 5 * 64, 1.f), 2, 5, 64), w = TW(rnd(p, 48 * 64, 1.f), 48, 64), y = TW(NULL, 2, 5, 48);
    BOTH(kt_linear, S(y), S(x), S(w), NULL);
    expect_twin(p, "linear 3-d", &y, TOL_REDUCE_F32);
    pair_close(p);
}

Test(cuda_dense, embedding_split_chunks_cfg) {
    Pair pp, *p = &pp;
    pair_open(p, 2);
    int32_t idx[7] = {3, 0, 19, 19, 7, 1, 12};
    Twin table = TW(rnd(p, 20 * 33, 1.f), 20, 33), id = TWT(KT_I32, idx, 7), y = TW(NULL, 7, 33);
    BOTH(kt_embedding, S(y), S(table), S(id));
    expect_twin_exact(p, "embedding", &y);
    int32_t bad[2] = {1, 20};
    Twin idb = TWT(KT_I32, bad, 2), yb = TW(NULL, 2, 33);
    cr_expect_eq(kt_embedding(&p->gpu, &yb.g, &table.g, &idb.g), KT_ERR_ARG, "out-of-range index not reported");
    OK(kt_sync(&p->gpu));  // the flag was consumed by the failing call
    Twin x = TW(rnd(p, 3 * 4 * 5, 1.f), 3, 20), ch = TW(NULL, 4, 3, 5);
    BOTH(kt_split_chunks, S(ch), S(x));
    expect_twin_exact(p, "split_chunks", &ch);
    Twin lg = TW(rnd(p, 2 * 2 * 3 * 50, 5.f), 4, 3, 50), cfg = TW(NULL, 2, 3, 50);
    BOTH(kt_cfg_combine, S(cfg), S(lg), 2.7f);
    expect_twin_exact(p, "cfg_combine", &cfg);
    pair_close(p);
}

Test(cuda_dense, codebook_argmin) {
    Pair pp, *p = &pp;
    pair_open(p, 3);
    int64_t N = 70, D = 32, V = 300;
    float *cb = rnd(p, V * D, 1.f), *z = keep(p, malloc((size_t)(N * D) * sizeof(float)));
    for (int64_t i = 0; i < N; i++)  // near a codeword with a clear margin
        for (int64_t d = 0; d < D; d++) z[i * D + d] = cb[((i * 37) % V) * D + d] + 0.05f * frand(p);
    Twin zt = TW(z, N, D), ct = TW(cb, V, D), idx = TWT(KT_I32, NULL, N);
    BOTH(kt_codebook_argmin, S(idx), S(zt), S(ct));
    expect_twin_exact(p, "codebook_argmin", &idx);
    pair_close(p);
}

// ------------------------------------------------------------------------------------------------ norms
Test(cuda_norm, layernorm_adaln) {
    Pair pp, *p = &pp;
    pair_open(p, 4);
    int64_t cols[] = {65, 1024, 3000};
    for (int i = 0; i < 3; i++) {
        int64_t B = 2, T = 3, C = cols[i];
        float *xh = rnd(p, B * T * C, 2.f);
        for (int64_t j = 0; j < B * T * C; j++) xh[j] += 0.5f;
        Twin x = TW(xh, B, T, C), sc = TW(rnd(p, B * C, 1.f), B, C), sh = TW(rnd(p, B * C, 1.f), B, C);
        Twin y = TW(NULL, B, T, C), y2 = TW(NULL, B, T, C), y3 = TW(NULL, B, T, C);
        BOTH(kt_layernorm, S(y), S(x), 1e-6f);
        expect_twin(p, "layernorm", &y, TOL_ELEMWISE_F32);
        BOTH(kt_layernorm_adaln, S(y2), S(x), S(sc), S(sh), 1e-6f);
        expect_twin(p, "layernorm_adaln", &y2, TOL_ELEMWISE_F32);
        BOTH(kt_adaln_modulate, S(y3), S(x), S(sc), S(sh));
        expect_twin_exact(p, "adaln_modulate", &y3);
        BOTH(kt_layernorm, S(x), S(x), 1e-5f);  // in place
        expect_twin(p, "layernorm in place", &x, TOL_ELEMWISE_F32);
    }
    pair_close(p);
}

// The fused residual + LayerNorm + AdaLN: float32 y matches the CPU (x exactly); a bf16 y within its rounding.
Test(cuda_norm, gated_residual_layernorm_adaln) {
    Pair pp, *p = &pp;
    pair_open(p, 18);
    int64_t cols[] = {65, 1024, 3000};
    for (int i = 0; i < 3; i++) {
        int64_t B = 2, T = 5, C = cols[i];
        float *xh = rnd(p, B * T * C, 2.f);
        Twin x = TW(xh, B, T, C), x2 = TW(xh, B, T, C), h = TW(rnd(p, B * T * C, 1.f), B, T, C);
        Twin g = TW(rnd(p, B * C, 1.f), B, C), sc = TW(rnd(p, B * C, 1.f), B, C), sh = TW(rnd(p, B * C, 1.f), B, C);
        Twin y = TW(NULL, B, T, C), y2 = TW(NULL, B, T, C);
        BOTH(kt_gated_residual_layernorm_adaln, S(y), S(x), S(h), S(g), S(sc), S(sh), 1e-6f);
        expect_twin_exact(p, "gated_residual_layernorm_adaln x", &x);
        expect_twin(p, "gated_residual_layernorm_adaln y", &y, TOL_ELEMWISE_F32);
        OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));
        KtTensor y16 = gpu_only(p, KT_BF16, 3, (int64_t[]){B, T, C});
        OK(kt_gated_residual_layernorm_adaln(&p->cpu, &y2.c, &x2.c, &h.c, &g.c, &sc.c, &sh.c, 1e-6f));
        OK(kt_gated_residual_layernorm_adaln(&p->gpu, &y16, &x2.g, &h.g, &g.g, &sc.g, &sh.g, 1e-6f));
        expect_twin_exact(p, "gated_residual_layernorm_adaln x (bf16 y)", &x2);
        expect_twin16(p, "gated_residual_layernorm_adaln y bf16", &y16, KT_BF16, &y2.c, TOL_OUT_BF16);
        OK(kt_backend_set_matmul_dtype(&p->gpu, KT_F32));
    }
    pair_close(p);
}

Test(cuda_norm, group_norm) {
    Pair pp, *p = &pp;
    pair_open(p, 5);
    // the last: many row chunks per group (the partial sums of ~500 blocks per group reduced in pass 2)
    int64_t cfg[][5] = {{2, 5, 3, 12, 4}, {1, 16, 16, 160, 32}, {2, 7, 9, 10, 5}, {1, 3, 4, 1280, 32},
                        {1, 64, 64, 256, 32}};
    for (int i = 0; i < 5; i++) {
        int64_t B = cfg[i][0], H = cfg[i][1], W = cfg[i][2], C = cfg[i][3];
        int G = (int)cfg[i][4];
        float *xh = rnd(p, B * H * W * C, 3.f);
        for (int64_t j = 0; j < B * H * W * C; j++) xh[j] += 1.f;
        Twin x = TW(xh, B, H, W, C), w = TW(rnd(p, C, 1.f), C), b = TW(rnd(p, C, 1.f), C);
        Twin y = TW(NULL, B, H, W, C), y2 = TW(NULL, B, H, W, C);
        BOTH(kt_group_norm, S(y), S(x), S(w), S(b), G, 1e-6f);
        expect_twin(p, "group_norm", &y, TOL_ELEMWISE_F32);
        BOTH(kt_group_norm_silu, S(y2), S(x), S(w), S(b), G, 1e-6f);
        expect_twin(p, "group_norm_silu", &y2, TOL_ELEMWISE_F32);
        // a rerun gives the same bits: the statistics are reduced in a fixed order (no atomics)
        KtTensor y3 = gpu_only(p, KT_F32, 4, (int64_t[]){B, H, W, C});
        OK(kt_group_norm(&p->gpu, &y3, &x.g, &w.g, &b.g, G, 1e-6f));
        cr_expect(memcmp(gpu_host(p, &y3), gpu_host(p, &y.g), kt_nbytes(&y3)) == 0,
                  "group_norm (%lld,%lld,%lld,%lld): a rerun differs", (long long)B, (long long)H, (long long)W,
                  (long long)C);
    }
    pair_close(p);
}

Test(cuda_norm, softmax) {
    Pair pp, *p = &pp;
    pair_open(p, 6);
    float *xh = rnd(p, 6 * 33, 8.f);
    for (int j = 0; j < 33; j++) xh[4 * 33 + j] = -INFINITY;  // an all-masked row gives zeros
    xh[5] = xh[40] = -INFINITY;
    Twin x = TW(xh, 2, 3, 33), y = TW(NULL, 2, 3, 33);
    BOTH(kt_softmax, S(y), S(x));
    expect_twin(p, "softmax", &y, TOL_ELEMWISE_F32);
    Twin x2 = TW(rnd(p, 3 * 5000, 10.f), 3, 5000), y2 = TW(NULL, 3, 5000);
    BOTH(kt_softmax, S(y2), S(x2));
    expect_twin(p, "softmax wide", &y2, TOL_ELEMWISE_F32);
    pair_close(p);
}

// ------------------------------------------------------------------------------------------- elementwise
Test(cuda_elementwise, all) {
    Pair pp, *p = &pp;
    pair_open(p, 7);
    Twin x = TW(rnd(p, 2 * 3 * 33, 1.f), 2, 3, 33), h = TW(rnd(p, 2 * 3 * 33, 1.f), 2, 3, 33);
    Twin g = TW(rnd(p, 2 * 33, 1.f), 2, 33);
    BOTH(kt_gated_residual, S(x), S(h), S(g));
    expect_twin_exact(p, "gated_residual", &x);
    Twin a = TW(rnd(p, 1001, 6.f), 7, 11, 13), y = TW(NULL, 7, 11, 13), y2 = TW(NULL, 7, 11, 13);
    BOTH(kt_gelu_tanh, S(y), S(a));
    expect_twin(p, "gelu_tanh", &y, TOL_ELEMWISE_F32);
    BOTH(kt_silu, S(y2), S(a));
    expect_twin(p, "silu", &y2, TOL_ELEMWISE_F32);
    Twin b1 = TW(rnd(p, 11 * 13, 1.f), 11, 13), b2 = TW(rnd(p, 13, 1.f), 13), s1 = TW(NULL, 7, 11, 13);
    BOTH(kt_add, S(s1), S(a), S(b1));
    expect_twin_exact(p, "add (T, C)", &s1);
    BOTH(kt_add, S(s1), S(s1), S(b2));
    expect_twin_exact(p, "add (C) in place", &s1);
    Twin a4 = TW(rnd(p, 2 * 8 * 8 * 16, 1.f), 2, 8, 8, 16), b4 = TW(rnd(p, 2 * 8 * 8 * 16, 1.f), 2, 8, 8, 16);
    Twin s4 = TW(NULL, 2, 8, 8, 16);
    BOTH(kt_add, S(s4), S(a4), S(b4));
    expect_twin_exact(p, "add same shape", &s4);
    BOTH(kt_axpby, S(s4), 0.3f, S(a4), -1.7f, S(b4));
    expect_twin_exact(p, "axpby", &s4);
    float *im = rnd(p, 2 * 5 * 7 * 3, 1.3f);
    im[3] = NAN, im[10] = INFINITY, im[11] = -INFINITY, im[12] = 1.f, im[13] = -1.f;
    Twin xi = TW(im, 2, 5, 7, 3), u8 = TWT(KT_U8, NULL, 2, 5, 7, 3);
    int64_t nc = -1, ng = -2, zero = 0;
    Twin cnt = TWT(KT_I64, &zero, 1);
    OK(kt_image_to_u8(&p->cpu, &u8.c, &xi.c, &cnt.c));
    OK(kt_image_to_u8(&p->gpu, &u8.g, &xi.g, &cnt.g));
    expect_twin_exact(p, "image_to_u8", &u8);
    OK(kt_download(&p->cpu, &nc, &cnt.c));
    OK(kt_download(&p->gpu, &ng, &cnt.g));
    cr_expect(nc == 3 && ng == 3, "image_to_u8 non-finite count: cpu %lld, cuda %lld", (long long)nc, (long long)ng);
    OK(kt_zero(&p->gpu, &u8.g));  // again from zeros: the 0xff fill cannot show an unwritten 255
    OK(kt_image_to_u8(&p->gpu, &u8.g, &xi.g, NULL));
    expect_twin_exact(p, "image_to_u8 (zero-filled output)", &u8);
    OK(kt_count_nonfinite(&p->cpu, &cnt.c, &xi.c));
    OK(kt_count_nonfinite(&p->gpu, &cnt.g, &xi.g));
    OK(kt_download(&p->cpu, &nc, &cnt.c));
    OK(kt_download(&p->gpu, &ng, &cnt.g));
    cr_expect(nc == 6 && ng == 6, "count_nonfinite (accumulating): cpu %lld, cuda %lld", (long long)nc, (long long)ng);
    pair_close(p);
}

// ------------------------------------------------------------------------------------------ conv, resample
static void check_conv(Pair *p, int64_t B, int64_t H, int64_t W, int64_t Ci, int64_t Co, int64_t k, int stride,
                       const int pad[4], bool bias) {
    int64_t Ho = (H + pad[0] + pad[1] - k) / stride + 1, Wo = (W + pad[2] + pad[3] - k) / stride + 1;
    Twin x = TW(rnd(p, B * H * W * Ci, 1.f), B, H, W, Ci), w = TW(rnd(p, Co * k * k * Ci, 0.3f), Co, k, k, Ci);
    Twin b = TW(rnd(p, Co, 1.f), Co), y = TW(NULL, B, Ho, Wo, Co);
    BOTH(kt_conv2d, S(y), S(x), S(w), bias ? S(b) : NULL, stride, pad);
    char what[128];
    snprintf(what, sizeof what, "conv2d %lldx%lldx%lldx%lld -> %lld k%lld s%d pad %d,%d,%d,%d", (long long)B,
             (long long)H, (long long)W, (long long)Ci, (long long)Co, (long long)k, stride, pad[0], pad[1], pad[2],
             pad[3]);
    expect_twin(p, what, &y, TOL_CONV_F32);
}

Test(cuda_image, conv2d) {
    Pair pp, *p = &pp;
    pair_open(p, 8);
    const int p1[4] = {1, 1, 1, 1}, p0[4] = {0, 0, 0, 0}, down[4] = {0, 1, 0, 1}, odd[4] = {2, 0, 1, 3};
    check_conv(p, 2, 9, 7, 5, 6, 3, 1, p1, true);
    check_conv(p, 1, 16, 16, 32, 32, 3, 1, p1, true);
    check_conv(p, 2, 8, 10, 8, 8, 3, 2, down, true);  // Co <= 8: the small-Co kernel
    check_conv(p, 2, 9, 11, 256, 8, 3, 2, down, true); // its weights above 48 KiB of shared memory (opt-in)
    check_conv(p, 2, 8, 10, 8, 8, 3, 2, down, true);   // a smaller one after it
    check_conv(p, 2, 8, 10, 16, 16, 3, 2, down, true); // cuDNN on an explicitly padded copy
    check_conv(p, 1, 12, 10, 160, 3, 3, 1, p1, true);  // the decoder's conv_out shape
    check_conv(p, 1, 6, 6, 16, 12, 1, 1, p0, true);
    check_conv(p, 1, 5, 9, 3, 7, 3, 1, p1, false);
    check_conv(p, 1, 7, 6, 4, 5, 3, 2, odd, true);
    pair_close(p);
}

Test(cuda_image, resample) {
    Pair pp, *p = &pp;
    pair_open(p, 9);
    int64_t sizes[][4] = {{1, 1, 16, 16}, {3, 3, 16, 16}, {13, 13, 16, 16}, {16, 16, 3, 3}, {16, 16, 13, 13},
                          {16, 16, 10, 10}, {5, 7, 16, 9}, {16, 16, 1, 1}};
    for (int i = 0; i < 8; i++) {
        int64_t H = sizes[i][0], W = sizes[i][1], Ho = sizes[i][2], Wo = sizes[i][3], B = 2, C = 5;
        Twin x = TW(rnd(p, B * H * W * C, 1.f), B, H, W, C), y = TW(NULL, B, Ho, Wo, C), y2 = TW(NULL, B, Ho, Wo, C);
        BOTH(kt_resize_bicubic, S(y), S(x));
        expect_twin_exact(p, "resize_bicubic", &y);
        BOTH(kt_resize_area, S(y2), S(x));
        expect_twin_exact(p, "resize_area", &y2);
    }
    Twin x = TW(rnd(p, 2 * 3 * 5 * 12, 1.f), 2, 3, 5, 12), u = TW(NULL, 2, 6, 10, 12);
    BOTH(kt_upsample_nearest2x, S(u), S(x));
    expect_twin_exact(p, "upsample_nearest2x", &u);
    Twin x3 = TW(rnd(p, 3 * 2 * 3, 1.f), 1, 3, 2, 3), u3 = TW(NULL, 1, 6, 4, 3);
    BOTH(kt_upsample_nearest2x, S(u3), S(x3));
    expect_twin_exact(p, "upsample_nearest2x C=3", &u3);
    pair_close(p);
}

// ------------------------------------------------------------------------------------------------ attention
static void check_attention(Pair *p, int64_t B, int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv,
                            bool bias, double atol, double rtol) {
    float *bh = NULL;
    if (bias) {
        bh = rnd(p, Tq * kv, 2.f);
        for (int64_t i = 0; i < Tq; i++)
            for (int64_t j = 0; j < kv; j++)
                if ((i * 7 + j * 3) % 5 == 0 || i == Tq / 2) bh[i * kv + j] = -INFINITY;  // row Tq/2 fully masked
    }
    Twin q = TW(rnd(p, B * NH * Tq * HS, 1.f), B, NH, Tq, HS), k = TW(rnd(p, B * NH * Tcap * HS, 1.f), B, NH, Tcap, HS);
    Twin v = TW(rnd(p, B * NH * Tcap * HS, 2.f), B, NH, Tcap, HS), o = TW(NULL, B, Tq, NH * HS);
    Twin bt = bias ? TW(bh, Tq, kv) : (Twin){{0}, {0}};
    float scale = 1.f / sqrtf((float)HS) * 3.f;
    BOTH(kt_attention, S(o), S(q), S(k), S(v), kv, bias ? S(bt) : NULL, scale);
    char what[128];
    snprintf(what, sizeof what, "attention B=%lld NH=%lld Tq=%lld kv=%lld/%lld HS=%lld bias=%d (%s)", (long long)B,
             (long long)NH, (long long)Tq, (long long)kv, (long long)Tcap, (long long)HS, bias,
             kt_dtype_name(p->gpu.matmul_dtype));
    expect_twin(p, what, &o, atol, rtol);
}

static void attention_shapes(Pair *p, double atol, double rtol) {
    int64_t s[][6] = {{2, 3, 37, 100, 64, 70}, {1, 2, 5, 20, 64, 20}, {2, 2, 70, 80, 128, 77}, {1, 3, 33, 40, 32, 17},
                      {2, 2, 9, 30, 40, 25}, {2, 1, 20, 24, 80, 24}, {1, 2, 11, 13, 48, 13}, {1, 1, 1, 1, 64, 1},
                      {2, 132, 130, 150, 64, 140}};  // the last: enough 128-query tiles for 8-warp blocks
    for (int i = 0; i < 9; i++)
        for (int bias = 0; bias < 2; bias++) check_attention(p, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], bias, atol, rtol);
}

Test(cuda_attention, fp32) {
    Pair pp, *p = &pp;
    pair_open(p, 10);
    attention_shapes(p, TOL_REDUCE_F32);
    pair_close(p);
}

// A NaN key makes every query row of its (batch, head) NaN, as the CPU's softmax does (the kernels used to write
// zeros there: a diverging model would have looked finite); the other heads are unaffected. fp32 and fp16 kernels.
Test(cuda_attention, nan_key_gives_nan_rows) {
    for (int half = 0; half < 2; half++) {
        Pair pp, *p = &pp;
        pair_open(p, 12);
        if (half) OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));
        int64_t B = 2, NH = 2, Tq = 5, Tcap = 20, HS = 64, kv = 20;
        float *kh = rnd(p, B * NH * Tcap * HS, 1.f);
        kh[(0 * Tcap + 3) * HS + 7] = NAN;  // batch 0, head 0, key 3
        Twin q = TW(rnd(p, B * NH * Tq * HS, 1.f), B, NH, Tq, HS), k = TW(kh, B, NH, Tcap, HS);
        Twin v = TW(rnd(p, B * NH * Tcap * HS, 1.f), B, NH, Tcap, HS), o = TW(NULL, B, Tq, NH * HS);
        BOTH(kt_attention, S(o), S(q), S(k), S(v), kv, NULL, 0.125f);
        float *c = o.c.data, *g = gpu_host(p, &o.g);
        for (int64_t t = 0; t < B * Tq; t++)
            for (int64_t j = 0; j < NH * HS; j++) {
                int64_t i = t * NH * HS + j;
                bool nan_row = t < Tq && j < HS;
                cr_assert(isnan(c[i]) == nan_row, "cpu out[%lld] = %g", (long long)i, c[i]);
                cr_assert(isnan(g[i]) == nan_row, "cuda (%s) out[%lld] = %g", half ? "fp16" : "fp32", (long long)i,
                          g[i]);
            }
        pair_close(p);
    }
}

Test(cuda_attention, fp16_tensor_cores) {
    Pair pp, *p = &pp;
    pair_open(p, 11);
    OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));
    attention_shapes(p, TOL_ATTN_F16);
    pair_close(p);
}

// kt_var_attention on the fused fp16 kernel (HS 64/128) and on its fallbacks (HS 32, 40: prep + the fp32 kernel or
// the GEMM path with a 16-bit out), float32 and bf16 outputs: out, q and the caches against the CPU composition.
// clamp: head 1's temperature is clamped at ln 100 (scores up to 100, beyond fp16's resolution for the output
// tolerance): then only q and the caches are compared.
static void check_var_attention(Pair *p, int64_t B, int64_t NH, int64_t T, int64_t t0, int64_t Tcap, int64_t HS,
                                bool bias, KtDType odt, bool clamp) {
    int64_t C = NH * HS, kv = t0 + T;
    // head scales exp(hsl) <= 4.5 (scores of a few units), one per head: the 8 values repeat. (This used to be an
    // 8-float array read as NH floats: the NH = 132 shape took 124 scales from the stack, which made the test fail
    // now and then with the stack's contents.)
    static const float hsl8[8] = {0.3f, 1.5f, -1.2f, 1.0f, 0.5f, 0.0f, 1.2f, -0.5f};
    float *hsl = keep(p, malloc((size_t)NH * sizeof(float)));
    for (int64_t h = 0; h < NH; h++) hsl[h] = hsl8[h % 8];
    if (clamp) hsl[1] = 5.0f;
    float *bh = NULL;
    if (bias) {
        bh = rnd(p, T * kv, 2.f);
        for (int64_t i = 0; i < T; i++)
            for (int64_t j = 0; j < kv; j++)
                if ((i * 7 + j * 3) % 5 == 0 || i == T / 2) bh[i * kv + j] = -INFINITY;  // row T/2 fully masked
    }
    Twin qkv = TW(rnd(p, B * T * 3 * C, 2.f), B, T, 3 * C), hs = TW(hsl, NH), q = TW(NULL, B, NH, T, HS);
    float *prev = rnd(p, B * NH * Tcap * HS, 0.25f);  // rows [0, t0) act as earlier (near unit-norm) keys
    Twin kc = TW(prev, B, NH, Tcap, HS), vc = TW(rnd(p, B * NH * Tcap * HS, 1.f), B, NH, Tcap, HS);
    Twin o = TW(NULL, B, T, C), bt = bias ? TW(bh, T, kv) : (Twin){{0}, {0}};
    KtTensor o16 = odt != KT_F32 ? gpu_only(p, odt, 3, (int64_t[]){B, T, C}) : o.g;
    OK(kt_var_attention(&p->cpu, &o.c, &q.c, &kc.c, &vc.c, &qkv.c, &hs.c, t0, bias ? &bt.c : NULL));
    OK(kt_var_attention(&p->gpu, &o16, &q.g, &kc.g, &vc.g, &qkv.g, &hs.g, t0, bias ? &bt.g : NULL));
    char what[160];
    snprintf(what, sizeof what, "var_attention B=%lld NH=%lld T=%lld t0=%lld HS=%lld bias=%d out %s", (long long)B,
             (long long)NH, (long long)T, (long long)t0, (long long)HS, bias, kt_dtype_name(odt));
    if (!clamp && odt != KT_F32) expect_twin16(p, what, &o16, odt, &o.c, TOL_ATTN_F16);
    else if (!clamp) expect_twin(p, what, &o, TOL_ATTN_F16);
    expect_twin(p, "var_attention q", &q, TOL_ELEMWISE_F32);
    expect_twin(p, "var_attention kcache", &kc, TOL_ELEMWISE_F32);
    expect_twin_exact(p, "var_attention vcache", &vc);
}

Test(cuda_attention, var_attention_fused) {
    // B, NH, T, t0, Tcap, HS: first scales (1-warp blocks, fused), keys straddling tiles, query tiles on a small
    // grid (prep + attention) and on a large one (fused: 8-warp blocks; 4-warp blocks), HS 128, teacher-style
    // (t0 = 0, all keys new), the fallbacks (HS 32: fp32 kernel or GEMM; HS 40: GEMM)
    int64_t s[][6] = {{2, 3, 1, 0, 10, 64},      {2, 3, 4, 1, 10, 64},    {2, 2, 9, 5, 30, 64},
                      {1, 3, 37, 70, 120, 64},   {2, 2, 150, 60, 256, 64}, {2, 132, 130, 20, 150, 64},
                      {2, 2, 20, 30, 64, 128},   {1, 2, 45, 0, 45, 64},    {2, 2, 7, 5, 12, 32},
                      {1, 2, 6, 3, 9, 40},       {2, 132, 40, 10, 64, 64}};
    Pair pp, *p = &pp;
    for (int i = 0; i < 11; i++) {  // a pair per shape keeps the host allocations under MAXT
        pair_open(p, 19 + (uint64_t)i);
        OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));
        for (int bias = 0; bias < 2; bias++) {
            check_var_attention(p, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], bias, KT_BF16, false);
            check_var_attention(p, s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], bias, KT_F32, false);
        }
        pair_close(p);
    }
    pair_open(p, 30);
    OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));
    check_var_attention(p, 2, 3, 37, 70, 120, 64, false, KT_BF16, true);
    OK(kt_backend_set_matmul_dtype(&p->gpu, KT_F16));
    check_var_attention(p, 2, 3, 9, 5, 20, 64, true, KT_F16, false);
    pair_close(p);
}

Test(cuda_attention, var_prep_split) {
    Pair pp, *p = &pp;
    pair_open(p, 12);
    int64_t B = 2, T = 5, NH = 3, HS = 64, C = NH * HS, Tcap = 12, t0 = 4;
    float hsl[3] = {0.3f, 5.0f, -1.2f};  // the middle one is clamped at ln 100
    Twin qkv = TW(rnd(p, B * T * 3 * C, 2.f), B, T, 3 * C), hs = TW(hsl, NH), q = TW(NULL, B, NH, T, HS);
    Twin kc = TW(rnd(p, B * NH * Tcap * HS, 1.f), B, NH, Tcap, HS), vc = TW(rnd(p, B * NH * Tcap * HS, 1.f), B, NH, Tcap, HS);
    BOTH(kt_var_attn_prep, S(q), S(kc), S(vc), S(qkv), S(hs), t0);
    expect_twin(p, "var_attn_prep q", &q, TOL_ELEMWISE_F32);
    expect_twin(p, "var_attn_prep kcache", &kc, TOL_ELEMWISE_F32);
    expect_twin_exact(p, "var_attn_prep vcache", &vc);
    Twin q2 = TW(NULL, B, NH, T, HS), k2 = TW(NULL, B, NH, T, HS), v2 = TW(NULL, B, NH, T, HS);
    BOTH(kt_split_qkv_heads, S(q2), S(k2), S(v2), S(qkv));
    expect_twin_exact(p, "split_qkv q", &q2);
    expect_twin_exact(p, "split_qkv k", &k2);
    expect_twin_exact(p, "split_qkv v", &v2);
    pair_close(p);
}

// ------------------------------------------------------------------------------------------------- sampling
// tied: every logit equal (top-p boundaries at exact fractions of the row)
static void check_sampling_rows(Pair *p, int64_t B, int64_t T, int64_t V, SmpParams sp, int64_t pos0, bool tied) {
    float *lh = rnd(p, B * T * V, tied ? 0.f : 4.f);
    for (int64_t i = 0; i < B * T * V; i += 97) lh[i] = lh[(i * 31) % (B * T * V)];  // some exact ties
    int64_t ids[4] = {7, 123456789012ll, 0, 42};
    Twin lg = TW(lh, B, T, V), id = TWT(KT_I64, ids, B), tok = TWT(KT_I32, NULL, B, T);
    BOTH(kt_sample_top_k_top_p, S(tok), S(lg), S(id), pos0, sp);
    char what[128];
    snprintf(what, sizeof what, "tokens V=%lld top_k=%d top_p=%g temp=%g", (long long)V, sp.top_k, sp.top_p,
             sp.temperature);
    expect_twin_exact(p, what, &tok);
    snprintf(what, sizeof what, "masked logits V=%lld top_k=%d top_p=%g", (long long)V, sp.top_k, sp.top_p);
    expect_twin_exact(p, what, &lg);
    Twin cb = TW(rnd(p, V * 8, 1.f), V, 8), h = TW(NULL, B, T, 8);
    BOTH(kt_smooth_embed, S(h), S(lg), S(cb), 0.4f, S(id), pos0, sp.seed);
    expect_twin(p, "smooth_embed", &h, TOL_SMOOTH_F32);
}

static void check_sampling(Pair *p, int64_t B, int64_t T, int64_t V, SmpParams sp, int64_t pos0) {
    check_sampling_rows(p, B, T, V, sp, pos0, false);
}

Test(cuda_sampling, tokens_match_cpu) {
    Pair pp, *p = &pp;
    pair_open(p, 13);
    SmpParams sp = smp_params_default();
    sp.seed = 2024;
    sp.top_k = 900, sp.top_p = 0.95f;
    check_sampling(p, 3, 60, 4096, sp, 424);
    sp.top_k = 0, sp.top_p = 0.8f, sp.temperature = 0.7f;
    check_sampling(p, 2, 40, 1000, sp, 0);
    sp.top_k = 5, sp.top_p = 0, sp.temperature = 1.3f;
    check_sampling(p, 4, 30, 37, sp, 9);
    sp.top_k = 0, sp.top_p = 0, sp.temperature = 1;
    check_sampling(p, 2, 50, 4096, sp, 100);
    sp.top_k = 2000, sp.top_p = 0.9f;
    check_sampling(p, 1, 20, 16384, sp, 5);
    sp.top_k = 0, sp.top_p = 0.5f;  // 18 tied entries: the CPU's cumulative sum must give exact fractions too
    check_sampling_rows(p, 2, 3, 18, sp, 0, true);
    sp.top_p = 0.75f;
    check_sampling_rows(p, 2, 3, 36, sp, 0, true);
    pair_close(p);
}

// -------------------------------------------------------------------------------- 16-bit matmul dtypes
static uint16_t *to16(Pair *p, const float *f, int64_t n, KtDType dt, float *rounded) {
    uint16_t *h = keep(p, malloc((size_t)(n ? n : 1) * 2));
    for (int64_t i = 0; i < n; i++) {
        h[i] = dt == KT_BF16 ? kt_f32_to_bf16(f[i]) : kt_f32_to_f16(f[i]);
        rounded[i] = dt == KT_BF16 ? kt_bf16_to_f32(h[i]) : kt_f16_to_f32(h[i]);
    }
    return h;
}

static void check_16bit(KtDType dt) {
    Pair pp, *p = &pp;
    pair_open(p, 14);
    OK(kt_backend_set_matmul_dtype(&p->gpu, dt));
    int64_t shapes[][3] = {{2, 1024, 96}, {7, 64, 33}, {100, 256, 160}, {9, 20, 12}};
    for (int i = 0; i < 4; i++) {
        int64_t M = shapes[i][0], K = shapes[i][1], N = shapes[i][2];
        float *wr = keep(p, malloc((size_t)(N * K) * 4));
        uint16_t *w16 = to16(p, rnd(p, N * K, 0.5f), N * K, dt, wr);
        Twin x = TW(rnd(p, M * K, 1.f), M, K), b = TW(rnd(p, N, 1.f), N), y = TW(NULL, M, N);
        Twin w = TW(wr, N, K);
        KtTensor wg = kt_tensor2(NULL, dt, KT_CUDA, N, K);
        cr_assert(p->nbuf < 2 * MAXT);
        OK(kt_buffer_alloc(&p->gpu, &p->buf[p->nbuf], kt_nbytes(&wg)));
        wg.data = p->buf[p->nbuf++].data;
        OK(kt_upload(&p->gpu, &wg, w16));
        OK(kt_linear(&p->cpu, &y.c, &x.c, &w.c, &b.c));
        OK(kt_linear(&p->gpu, &y.g, &x.g, &wg, &b.g));
        expect_twin(p, dt == KT_BF16 ? "linear bf16" : "linear fp16", &y, TOL_GEMM_BF16);
    }
    // cuDNN; cuDNN with input channels padded to 8; cuDNN on an explicitly padded copy with Co padded to 16; small Co
    int64_t cc[][4] = {{16, 16, 32, 32}, {9, 8, 3, 160}, {8, 8, 64, 12}, {10, 9, 160, 3}};
    const int p1[4] = {1, 1, 1, 1}, down[4] = {0, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        int64_t H = cc[i][0], W = cc[i][1], Ci = cc[i][2], Co = cc[i][3], B = 2;
        const int *pad = i == 2 ? down : p1;
        int stride = i == 2 ? 2 : 1;
        int64_t Ho = (H + pad[0] + pad[1] - 3) / stride + 1, Wo = (W + pad[2] + pad[3] - 3) / stride + 1;
        float *wr = keep(p, malloc((size_t)(Co * 9 * Ci) * 4));
        uint16_t *w16 = to16(p, rnd(p, Co * 9 * Ci, 0.2f), Co * 9 * Ci, dt, wr);
        Twin x = TW(rnd(p, B * H * W * Ci, 1.f), B, H, W, Ci), b = TW(rnd(p, Co, 1.f), Co), w = TW(wr, Co, 3, 3, Ci);
        Twin y = TW(NULL, B, Ho, Wo, Co);
        KtTensor wg = kt_tensor4(NULL, dt, KT_CUDA, Co, 3, 3, Ci);
        cr_assert(p->nbuf < 2 * MAXT);
        OK(kt_buffer_alloc(&p->gpu, &p->buf[p->nbuf], kt_nbytes(&wg)));
        wg.data = p->buf[p->nbuf++].data;
        OK(kt_upload(&p->gpu, &wg, w16));
        OK(kt_conv2d(&p->cpu, &y.c, &x.c, &w.c, &b.c, stride, pad));
        OK(kt_conv2d(&p->gpu, &y.g, &x.g, &wg, &b.g, stride, pad));
        expect_twin(p, dt == KT_BF16 ? "conv2d bf16" : "conv2d fp16", &y, TOL_GEMM_BF16);
    }
    pair_close(p);
}

// 16-bit GEMM inputs and outputs (bias in the output dtype), with and without the fused GELU: the streaming kernel
// (M <= 2), cuBLASLt, and cuBLASLt's GELU epilogue, against the CPU on the same rounded values.
static void check_16bit_io(KtDType dt) {
    // M <= 2 with 16-bit x: the streaming kernel up to 1024x1024 weights ({2, 1024, 1024} included), cuBLASLt above
    int64_t shapes[][3] = {{1, 64, 96},   {2, 1024, 96},   {2, 256, 40},    {37, 64, 130},
                           {300, 256, 96}, {2, 1024, 1024}, {1, 1024, 1032}, {2, 1024, 3072}};
    for (int i = 0; i < (int)(sizeof shapes / sizeof *shapes); i++) {
        Pair pp, *p = &pp;
        pair_open(p, 20 + (uint64_t)i);
        OK(kt_backend_set_matmul_dtype(&p->gpu, dt));
        for (int mode = 0; mode < 4; mode++) {  // bit 0: 16-bit x; bit 1: 16-bit y (bias too)
            for (int gelu = 0; gelu < 2; gelu++) {
                int64_t M = shapes[i][0], K = shapes[i][1], N = shapes[i][2];
                bool x16 = mode & 1, y16 = mode & 2;
                float *wr = keep(p, malloc((size_t)(N * K) * 4)), *xr = keep(p, malloc((size_t)(M * K) * 4));
                float *br = keep(p, malloc((size_t)N * 4));
                uint16_t *w16 = to16(p, rnd(p, N * K, 0.5f), N * K, dt, wr);
                uint16_t *xh16 = to16(p, rnd(p, M * K, 1.f), M * K, dt, xr);
                uint16_t *bh16 = to16(p, rnd(p, N, 1.f), N, dt, br);
                Twin x = TW(xr, M, K), b = TW(br, N), y = TW(NULL, M, N), w = TW(wr, N, K);
                KtTensor wg = gpu_only(p, dt, 2, (int64_t[]){N, K});
                OK(kt_upload(&p->gpu, &wg, w16));
                KtTensor xg = x.g, bg = b.g, yg = y.g;
                if (x16) {
                    xg = gpu_only(p, dt, 2, (int64_t[]){M, K});
                    OK(kt_upload(&p->gpu, &xg, xh16));
                }
                if (y16) {
                    bg = gpu_only(p, dt, 1, (int64_t[]){N});
                    OK(kt_upload(&p->gpu, &bg, bh16));
                    yg = gpu_only(p, dt, 2, (int64_t[]){M, N});
                }
                KtStatus (*fn)(KtBackend *, KtTensor *, const KtTensor *, const KtTensor *, const KtTensor *) =
                    gelu ? kt_linear_gelu_tanh : kt_linear;
                OK(fn(&p->cpu, &y.c, &x.c, &w.c, &b.c));
                OK(fn(&p->gpu, &yg, &xg, &wg, &bg));
                char what[128];
                snprintf(what, sizeof what, "linear%s %s M=%lld K=%lld N=%lld x16=%d y16=%d", gelu ? "+gelu" : "",
                         kt_dtype_name(dt), (long long)M, (long long)K, (long long)N, x16, y16);
                if (y16) expect_twin16(p, what, &yg, dt, &y.c, TOL_GEMM_BF16);
                else expect_twin(p, what, &y, TOL_GEMM_BF16);
            }
        }
        pair_close(p);
    }
}

Test(cuda_matmul16, bf16) { check_16bit(KT_BF16); }
Test(cuda_matmul16, bf16_inputs_outputs) { check_16bit_io(KT_BF16); }
Test(cuda_matmul16, fp16_inputs_outputs) { check_16bit_io(KT_F16); }
Test(cuda_matmul16, fp16) { check_16bit(KT_F16); }

// ------------------------------------------------------------------------------------ graphs, allocation
// A transformer-ish step: linear -> layernorm_adaln -> prep -> attention -> linear -> sample (2 rows x 16 tokens).
typedef struct {
    Twin x, w1, qkv, sc, sh, hsl, q, kc, vc, att, wo, lg, ids, tok, ln;
} Step;

static void step_init(Pair *p, Step *s) {
    int64_t B = 2, T = 16, C = 128, NH = 2, HS = 64, V = 500;
    s->x = TW(rnd(p, B * T * C, 1.f), B, T, C);
    s->w1 = TW(rnd(p, 3 * C * C, 0.2f), 3 * C, C);
    s->qkv = TW(NULL, B, T, 3 * C);
    s->ln = TW(NULL, B, T, C);
    s->sc = TW(rnd(p, B * C, 0.5f), B, C), s->sh = TW(rnd(p, B * C, 0.5f), B, C);
    float hs[2] = {1.f, 2.f};
    s->hsl = TW(hs, NH);
    s->q = TW(NULL, B, NH, T, HS);
    s->kc = TW(rnd(p, B * NH * 40 * HS, 1.f), B, NH, 40, HS), s->vc = TW(rnd(p, B * NH * 40 * HS, 1.f), B, NH, 40, HS);
    s->att = TW(NULL, B, T, C);
    s->wo = TW(rnd(p, V * C, 0.3f), V, C);
    s->lg = TW(NULL, B, T, V);
    int64_t ids[2] = {5, 6};
    s->ids = TWT(KT_I64, ids, B);
    s->tok = TWT(KT_I32, NULL, B, T);
}

static void step_run(KtBackend *be, Step *s, int side_) {
    SmpParams sp = smp_params_default();
    sp.seed = 77, sp.top_k = 100, sp.top_p = 0.9f;
    OK(kt_layernorm_adaln(be, S(s->ln), S(s->x), S(s->sc), S(s->sh), 1e-6f));
    OK(kt_linear(be, S(s->qkv), S(s->ln), S(s->w1), NULL));
    OK(kt_var_attn_prep(be, S(s->q), S(s->kc), S(s->vc), S(s->qkv), S(s->hsl), 20));
    OK(kt_attention(be, S(s->att), S(s->q), S(s->kc), S(s->vc), 36, NULL, 1.f));
    OK(kt_linear(be, S(s->lg), S(s->att), S(s->wo), NULL));
    OK(kt_sample_top_k_top_p(be, S(s->tok), S(s->lg), S(s->ids), 100, sp));
}

Test(cuda_graph, capture_replay_matches_eager) {
    Pair pp, *p = &pp;
    pair_open(p, 15);
    Step s;
    step_init(p, &s);
    step_run(&p->cpu, &s, 0);
    step_run(&p->gpu, &s, 1);  // warm-up: scratch and plans reach their final size
    expect_twin_exact(p, "eager tokens vs cpu", &s.tok);
    int64_t n_allocs = p->gpu.n_allocs;
    OK(kt_zero(&p->gpu, &s.tok.g));
    OK(kt_zero(&p->gpu, &s.lg.g));
    KtGraph g;
    OK(kt_graph_begin(&p->gpu));
    step_run(&p->gpu, &s, 1);
    OK(kt_graph_end(&p->gpu, &g));
    OK(kt_graph_launch(&p->gpu, &g));
    OK(kt_graph_launch(&p->gpu, &g));
    OK(kt_sync(&p->gpu));
    expect_twin_exact(p, "graph tokens vs cpu", &s.tok);
    expect_twin(p, "graph logits vs cpu", &s.lg, TOL_REDUCE_F32);
    float *eager = gpu_host(p, &s.lg.g);
    float *x2 = rnd(p, kt_numel(&s.x.c), 1.f);  // new inputs in place: the replay must see them
    OK(kt_upload(&p->gpu, &s.x.g, x2));
    memcpy(s.x.c.data, x2, kt_nbytes(&s.x.c));
    step_run(&p->cpu, &s, 0);
    OK(kt_graph_launch(&p->gpu, &g));
    OK(kt_sync(&p->gpu));
    expect_twin_exact(p, "replay on new inputs: tokens", &s.tok);
    cr_expect(memcmp(eager, gpu_host(p, &s.lg.g), kt_nbytes(&s.lg.c)) != 0, "replay ignored the new input");
    cr_expect_eq(p->gpu.n_allocs, n_allocs, "allocations during capture/replay: %lld -> %lld", (long long)n_allocs,
                 (long long)p->gpu.n_allocs);
    kt_graph_free(&g);
    pair_close(p);
}

// Inside a replayed graph the embedding range check cannot sync: its flag is reported at the next sync or download,
// once (then cleared). kt_discard_errors, which the API calls after a failed call, drops a pending flag instead.
Test(cuda_graph, deferred_error_flag_reported_once_or_discarded) {
    Pair pp, *p = &pp;
    pair_open(p, 18);
    Twin table = TW(rnd(p, 20 * 33, 1.f), 20, 33), y = TW(NULL, 2, 33);
    int32_t bad[2] = {1, 20};
    Twin idx = TWT(KT_I32, bad, 2);
    KtGraph g;
    OK(kt_graph_begin(&p->gpu));
    OK(kt_embedding(&p->gpu, &y.g, &table.g, &idx.g));  // no check while capturing
    OK(kt_graph_end(&p->gpu, &g));
    OK(kt_graph_launch(&p->gpu, &g));
    cr_expect_eq(kt_sync(&p->gpu), KT_ERR_ARG, "the replayed out-of-range index was not reported");
    OK(kt_sync(&p->gpu));  // reported once
    OK(kt_graph_launch(&p->gpu, &g));
    float host[2 * 33];
    cr_expect_eq(kt_download(&p->gpu, host, &y.g), KT_ERR_ARG, "a download did not report the pending flag");
    OK(kt_graph_launch(&p->gpu, &g));
    kt_clear_error();
    kt_discard_errors(&p->gpu);
    cr_expect_str_eq(kt_last_error(), "", "kt_discard_errors changed the error message");
    OK(kt_download(&p->gpu, host, &y.g));
    OK(kt_sync(&p->gpu));
    kt_graph_free(&g);
    pair_close(p);
}

Test(cuda_graph, no_allocation_after_warmup) {
    Pair pp, *p = &pp;
    pair_open(p, 16);
    OK(kt_backend_set_matmul_dtype(&p->gpu, KT_BF16));  // exercises the conversion scratch too
    Step s;
    step_init(p, &s);
    step_run(&p->gpu, &s, 1);
    int64_t n = p->gpu.n_allocs;
    size_t bytes = p->gpu.bytes_in_use;
    for (int i = 0; i < 3; i++) step_run(&p->gpu, &s, 1);
    OK(kt_sync(&p->gpu));
    cr_expect_eq(p->gpu.n_allocs, n, "steady-state steps allocated (%lld -> %lld)", (long long)n, (long long)p->gpu.n_allocs);
    cr_expect_eq(p->gpu.bytes_in_use, bytes);
    cr_expect(p->gpu.peak_bytes >= bytes);
    pair_close(p);
}

// Page-locked host buffers: allocated through the CUDA backend and released through it; a round trip through one.
Test(cuda_backend, host_buffer_round_trip) {
    Pair pp, *p = &pp;
    pair_open(p, 18);
    KtBuffer h, d;
    OK(kt_host_buffer_alloc(&p->gpu, &h, 4096 * sizeof(float)));
    cr_expect(h.owner == &p->gpu && h.host && h.device == KT_CPU, "page-locked: %s", p->gpu.notes);
    OK(kt_buffer_alloc(&p->gpu, &d, 4096 * sizeof(float)));
    KtTensor t = kt_tensor1(d.data, KT_F32, KT_CUDA, 4096);
    float *x = h.data;
    for (int i = 0; i < 4096; i++) x[i] = (float)i * 0.5f;
    OK(kt_upload(&p->gpu, &t, x));
    memset(x, 0, 4096 * sizeof(float));
    OK(kt_download(&p->gpu, x, &t));
    for (int i = 0; i < 4096; i++) cr_assert_eq(x[i], (float)i * 0.5f, "element %d", i);
    kt_buffer_free(&d);
    kt_buffer_free(&h);
    pair_close(p);
}

// Queued uploads (kt_upload_queued): several from one page-locked buffer, then device work that reads them and a
// download behind it; on the CPU backend the same calls copy at once.
Test(cuda_backend, queued_uploads_reach_the_work_after_them) {
    Pair pp, *p = &pp;
    pair_open(p, 19);
    KtBackend *bes[2] = {&p->gpu, &p->cpu};
    for (int k = 0; k < 2; k++) {
        KtBackend *be = bes[k];
        KtBuffer h, d;
        OK(kt_host_buffer_alloc(be, &h, 3 * 1000 * sizeof(int32_t)));
        OK(kt_buffer_alloc(be, &d, 3 * 1000 * sizeof(int32_t)));
        int32_t *x = h.data;
        for (int i = 0; i < 2000; i++) x[i] = 7 * i - 3000;
        int32_t *dd = d.data;
        KtTensor a = kt_tensor1(dd, KT_I32, be->device, 1000), b = kt_tensor1(dd + 1000, KT_I32, be->device, 1000);
        KtTensor c = kt_tensor1(dd + 2000, KT_I32, be->device, 1000);
        OK(kt_upload_queued(be, &a, x));
        OK(kt_upload_queued(be, &b, x + 1000));
        OK(kt_copy(be, &c, &b));  // device work queued behind the copies
        OK(kt_download(be, x + 2000, &c));
        for (int i = 0; i < 1000; i++) cr_assert_eq(x[2000 + i], 7 * (1000 + i) - 3000, "%s: element %d", be->name, i);
        OK(kt_download(be, x + 2000, &a));
        for (int i = 0; i < 1000; i++) cr_assert_eq(x[2000 + i], 7 * i - 3000, "%s: element %d", be->name, i);
        KtTensor wrong = kt_tensor1(x, KT_I32, k ? KT_CUDA : KT_CPU, 1000);
        cr_expect_eq(kt_upload_queued(be, &wrong, x), KT_ERR_ARG, "a tensor on the other device is refused");
        kt_buffer_free(&d);
        kt_buffer_free(&h);
    }
    pair_close(p);
}

// The pipelining ops (backend.h): an upload on the side queue, joined into the main queue before device work reads
// it; a queued download whose host buffer holds the data once its fence is waited for. The CPU backend's calls copy
// at once. The emulated GPU (ARGEN_CUDA=EMU) runs each queue as late as the program allows (scripts/cuda_emu/backend,
// "Streams"), so there the same calls without the join, or a read before the fence wait, see the old bytes: the
// emulator shows a missing wait, which on the GPU would be a race that may pass.
Test(cuda_backend, side_uploads_and_fences_order_the_work) {
    Pair pp, *p = &pp;
    pair_open(p, 20);
    KtBackend *bes[2] = {&p->gpu, &p->cpu};
    enum { N = 1000 };
    for (int k = 0; k < 2; k++) {
        KtBackend *be = bes[k];
        KtBuffer h, d;
        OK(kt_host_buffer_alloc(be, &h, 3 * N * sizeof(int32_t)));
        OK(kt_buffer_alloc(be, &d, 2 * N * sizeof(int32_t)));
        int32_t *x = h.data, *got = x + N, *zeros = x + 2 * N;
        memset(zeros, 0, N * sizeof(int32_t));
        KtTensor a = kt_tensor1(d.data, KT_I32, be->device, N), c = kt_tensor1((int32_t *)d.data + N, KT_I32,
                                                                                 be->device, N);
        OK(kt_upload(be, &a, zeros));
        for (int i = 0; i < N; i++) x[i] = 5 * i + 1;
        OK(kt_upload_side(be, &a, x));
        OK(kt_side_join(be));
        OK(kt_copy(be, &c, &a));  // main-queue work behind the join
        memset(got, 0xff, N * sizeof(int32_t));
        OK(kt_download_queued(be, got, &c));
        OK(kt_fence(be, 1));
        OK(kt_fence_wait(be, 1));  // (before the side wait: the join alone orders the upload and the copy)
        OK(kt_side_wait(be));
        for (int i = 0; i < N; i++) cr_assert_eq(got[i], 5 * i + 1, "%s: element %d", be->name, i);
#ifdef ARGEN_CUDA_EMU
        const char *model = getenv("ARGEN_EMU_STREAMS");
        if (k == 0 && (!model || !strcmp(model, "lazy"))) {
            OK(kt_upload(be, &a, zeros));
            OK(kt_upload(be, &c, zeros));
            OK(kt_upload_side(be, &a, x));  // no join: the copy may run before the upload
            OK(kt_copy(be, &c, &a));
            OK(kt_download_queued(be, got, &c));
            OK(kt_fence(be, 2));
            cr_expect_eq(got[N - 1], 5 * (N - 1) + 1, "the host buffer is unchanged before the fence wait");
            OK(kt_fence_wait(be, 2));
            OK(kt_side_wait(be));
            cr_expect_eq(got[N - 1], 0, "emulated lazy queues: without kt_side_join the copy read the old bytes");
        }
#endif
        kt_buffer_free(&d);
        kt_buffer_free(&h);
    }
    pair_close(p);
}

Test(cuda_backend, name_and_dtype) {
    Pair pp, *p = &pp;
    pair_open(p, 17);
    cr_expect(strstr(p->gpu.name, "cuda (") == p->gpu.name, "name: %s", p->gpu.name);
    cr_expect_eq(kt_backend_set_matmul_dtype(&p->gpu, KT_I32), KT_ERR_UNSUPPORTED);
    OK(kt_backend_set_matmul_dtype(&p->gpu, KT_F16));
    cr_expect(strstr(p->gpu.name, "fp16") != NULL, "name: %s", p->gpu.name);
    pair_close(p);
}
