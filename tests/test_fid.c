// The FID pipeline against pytorch-fid (tests/fixtures/fid_fixture.tar.xz, made by the official code with random
// Inception weights): pool3 features and fc logits of 256x256 and 64x64 images, the Frechet distance, feature
// statistics, stats files; plus analytic checks of the Frechet distance, the Inception Score and exact shard merges.
// The CUDA twin of the network test skips itself without a GPU.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/extract.h"
#include "eval/frechet.h"
#include "eval/inception.h"
#include "eval/sha256.h"
#include "eval/stats.h"
#include "testutil.h"

#define FX(f) fixture_path("fid/" f)

// (B, 3, H, W) uint8 NCHW (the fixture's layout) -> (B, H, W, 3) NHWC.
static uint8_t *nchw_to_nhwc(const uint8_t *x, int B, int H, int W) {
    uint8_t *y = malloc((size_t)B * H * W * 3);
    cr_assert(y);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < H * W; i++) y[((size_t)b * H * W + i) * 3 + c] = x[((size_t)b * 3 + c) * H * W + i];
    return y;
}

static uint8_t *read_u8_images(const char *name, int64_t *n) {
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, FX("ref.safetensors")));
    const KtCkptTensor *t = kt_ckpt_find(&ck, name);
    cr_assert(t && t->dtype == KT_U8, "%s missing or not uint8", name);
    *n = kt_ckpt_numel(t);
    uint8_t *x = malloc((size_t)*n);
    memcpy(x, t->storage + t->storage_offset, (size_t)*n);
    kt_ckpt_close(&ck);
    return x;
}

static double *read_f64(const char *name, int64_t *n) {
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, FX("ref.safetensors")));
    const KtCkptTensor *t = kt_ckpt_find(&ck, name);
    cr_assert(t && t->dtype == KT_F64, "%s missing or not float64", name);
    *n = kt_ckpt_numel(t);
    double *x = malloc((size_t)*n * sizeof *x);
    memcpy(x, t->storage + t->storage_offset * 8, (size_t)*n * sizeof *x);
    kt_ckpt_close(&ck);
    return x;
}

// ---------------------------------------------------------------------------------------------- the network
static void check_network(KtDevice dev) {
    KtBackend be;
    test_backend_init(&be, dev);
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, FX("inception_random.pth")));
    Inception net;
    OK(inception_init(&net, &be, &ck, 0, 4));
    kt_ckpt_close(&ck);
    cr_expect_eq(net.table.n_params, 23850960 + 34432, "parameters incl. BN running stats: %zu", net.table.n_params);
    int64_t n;
    uint8_t *raw = read_u8_images("images_u8", &n);
    cr_assert_eq(n, 4 * 3 * 256 * 256);
    uint8_t *img = nchw_to_nhwc(raw, 4, 256, 256);
    float pool3[4 * INC_POOL3], logits_b[4 * INC_CLASSES], logits[4 * INC_CLASSES], spatial[4 * INC_SPATIAL];
    IncOutputs out = {.pool3 = pool3, .logits = logits, .logits_biased = logits_b, .spatial = spatial};
    OK(inception_forward(&net, img, 4, 256, 256, KT_FID_RESIZE_PYTORCH, &out));
    float *ref = read_f32(FX("ref.safetensors"), "pool3", &n, NULL, NULL);
    expect_close("pool3 (256x256)", pool3, ref, n, TOL_INCEPTION_F32);
    free(ref);
    ref = read_f32(FX("ref.safetensors"), "logits_fc", &n, NULL, NULL);
    expect_close("fc(pool3) logits", logits_b, ref, n, TOL_INCEPTION_F32);
    free(ref);
    // the IS logits leave out fc.bias: they differ from fc(pool3) by exactly the bias (checked on the host)
    float *bias = read_f32(FX("inception_random.pth"), "fc.bias", &n, NULL, NULL);
    for (int b = 0; b < 4; b++)
        for (int c = 0; c < INC_CLASSES; c++)
            cr_assert_float_eq(logits[b * INC_CLASSES + c] + bias[c], logits_b[b * INC_CLASSES + c], 1e-4);
    free(bias);
    for (int i = 0; i < 4 * INC_SPATIAL; i++) cr_assert(spatial[i] >= 0 && isfinite(spatial[i]), "sFID tap is post-ReLU");
    // a batch of one gives the same features as the batch of four: bit for bit on the CPU (images run one by one),
    // within rounding on CUDA (cuDNN may pick other algorithms per batch size)
    float one[INC_POOL3];
    IncOutputs o1 = {.pool3 = one};
    OK(inception_forward(&net, img + 2 * 256 * 256 * 3, 1, 256, 256, KT_FID_RESIZE_PYTORCH, &o1));
    if (dev == KT_CPU)
        cr_assert(!memcmp(one, pool3 + 2 * INC_POOL3, sizeof one), "CPU features depend on the batch");
    else  // cuDNN may pick another algorithm (e.g. Winograd/FFT) per batch size: the fixture tolerance
        expect_close("pool3, image 2 alone", one, pool3 + 2 * INC_POOL3, INC_POOL3, TOL_INCEPTION_F32);
    free(raw);
    free(img);
    // 64x64 inputs (the upsampling path of the resize)
    raw = read_u8_images("images64_u8", &n);
    img = nchw_to_nhwc(raw, 2, 64, 64);
    OK(inception_forward(&net, img, 2, 64, 64, KT_FID_RESIZE_PYTORCH, &(IncOutputs){.pool3 = pool3}));
    ref = read_f32(FX("ref.safetensors"), "pool3_64", &n, NULL, NULL);
    expect_close("pool3 (64x64)", pool3, ref, n, TOL_INCEPTION_F32);
    free(ref);
    // ADM preprocessing runs the same network on a slightly different input: close to, but not equal to, pytorch-fid
    OK(inception_forward(&net, img, 2, 64, 64, KT_FID_RESIZE_ADM, &(IncOutputs){.pool3 = pool3}));
    for (int i = 0; i < 2 * INC_POOL3; i++) cr_assert(isfinite(pool3[i]));
    free(raw);
    free(img);
    inception_free(&net);
    kt_backend_free(&be);
}

Test(inception, pool3_and_logits_match_pytorch_fid_cpu) { check_network(KT_CPU); }
Test(inception, pool3_and_logits_match_pytorch_fid_cuda) { check_network(KT_CUDA); }

static double rel_l2(const float *got, const float *ref, int64_t n) {
    double e = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(e / (r > 0 ? r : 1));
}

// CUDA with 16-bit weights and feature maps (argen fid --dtype bf16|fp16) against the official fp32 features: every
// output finite, pool3 and logits within a relative L2 error of `tol` (printed, for the record), and a batch of 200
// (the CLI's CUDA default; the 4 fixture images repeated) giving the batch of 4's features.
// The fixture's network on CUDA with 16-bit weights, forwards of up to max_batch images (skips without a GPU).
static void open_net_16bit(KtBackend *be, Inception *net, KtDType dt, int max_batch) {
    test_backend_init(be, KT_CUDA);
    OK(kt_backend_set_matmul_dtype(be, dt));
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, FX("inception_random.pth")));
    OK(inception_init(net, be, &ck, 0, max_batch));
    kt_ckpt_close(&ck);
}

static void check_network_16bit(KtDType dt, double tol) {
    KtBackend be;
    Inception net;
    enum { BIG = 200 };
    open_net_16bit(&be, &net, dt, BIG);
    int64_t n;
    uint8_t *raw = read_u8_images("images_u8", &n);
    uint8_t *img = nchw_to_nhwc(raw, 4, 256, 256);
    float *pool3 = malloc(sizeof(float) * BIG * INC_POOL3), *logits = malloc(sizeof(float) * BIG * INC_CLASSES);
    float *spatial = malloc(sizeof(float) * BIG * INC_SPATIAL);
    cr_assert(pool3 && logits && spatial);
    IncOutputs out = {.pool3 = pool3, .logits_biased = logits, .spatial = spatial};
    OK(inception_forward(&net, img, 4, 256, 256, KT_FID_RESIZE_PYTORCH, &out));
    for (int i = 0; i < 4 * INC_POOL3; i++) cr_assert(isfinite(pool3[i]), "pool3[%d] = %g", i, pool3[i]);
    for (int i = 0; i < 4 * INC_CLASSES; i++) cr_assert(isfinite(logits[i]), "logits[%d] = %g", i, logits[i]);
    for (int i = 0; i < 4 * INC_SPATIAL; i++) cr_assert(spatial[i] >= 0 && isfinite(spatial[i]), "spatial[%d]", i);
    const char *name = dt == KT_BF16 ? "bf16" : "fp16";
    float *ref = read_f32(FX("ref.safetensors"), "pool3", &n, NULL, NULL);
    double e_pool = rel_l2(pool3, ref, n);
    free(ref);
    ref = read_f32(FX("ref.safetensors"), "logits_fc", &n, NULL, NULL);
    double e_logits = rel_l2(logits, ref, n);
    free(ref);
    cr_log_info("inception %s vs official fp32: pool3 rel L2 %.3g, logits rel L2 %.3g", name, e_pool, e_logits);
    fprintf(stderr, "inception %s vs official fp32: pool3 rel L2 %.3g, logits rel L2 %.3g\n", name, e_pool, e_logits);
    cr_expect(e_pool < tol, "%s pool3: relative L2 error %.3g >= %.3g", name, e_pool, tol);
    cr_expect(e_logits < tol, "%s logits: relative L2 error %.3g >= %.3g", name, e_logits, tol);
    // batch 200: the same 4 images repeated 50 times
    uint8_t *big = malloc((size_t)BIG * 256 * 256 * 3);
    cr_assert(big);
    for (int b = 0; b < BIG; b++) memcpy(big + (size_t)b * 256 * 256 * 3, img + (size_t)(b % 4) * 256 * 256 * 3, 256 * 256 * 3);
    float *pool4 = malloc(sizeof(float) * 4 * INC_POOL3);
    cr_assert(pool4);
    memcpy(pool4, pool3, sizeof(float) * 4 * INC_POOL3);
    OK(inception_forward(&net, big, BIG, 256, 256, KT_FID_RESIZE_PYTORCH, &(IncOutputs){.pool3 = pool3}));
    for (int b = 0; b < BIG; b++) {
        double e = rel_l2(pool3 + (size_t)b * INC_POOL3, pool4 + (size_t)(b % 4) * INC_POOL3, INC_POOL3);
        cr_assert(e < tol / 4, "%s: image %d of a batch of 200 differs from the batch of 4 (rel L2 %.3g)", name, b, e);
    }
    free(big);
    free(pool4);
    free(pool3);
    free(logits);
    free(spatial);
    free(raw);
    free(img);
    inception_free(&net);
    kt_backend_free(&be);
}

Test(inception, bf16_cuda_close_to_fp32) { check_network_16bit(KT_BF16, 5e-2); }
Test(inception, fp16_cuda_close_to_fp32) { check_network_16bit(KT_F16, 2e-2); }

// The 16-bit network folds BatchNorm's scale into its conv weights (from the file's float32 values, rounded once)
// and runs each unit as one kt_conv2d_bias_relu: one image against the official fp32 features at the tolerances
// above, the folded weights (w * scale, recomputed here from the file) bit for bit. One image per forward, so the
// emulated backend's quick run takes it (tests/CMakeLists.txt: fid_cuda_quick).
static void check_folded_one_image(KtDType dt, double tol) {
    KtBackend be;
    Inception net;
    open_net_16bit(&be, &net, dt, 1);
    cr_assert(net.fold, "16-bit weights fold BatchNorm");
    // Mixed_6c.branch7x7dbl_3 (1x7, 160 -> 160): folded weights against w * gamma / sqrt(var + 1e-3) from the file
    const IncConv *c = NULL;
    for (int i = 0; i < INC_N_CONVS; i++)
        if (!strcmp(net.conv[i].d.name, "Mixed_6c.branch7x7dbl_3")) c = &net.conv[i];
    cr_assert(c && c->w.dtype == dt && c->w.shape[0] == 160 && c->w.shape[1] == 1 && c->w.shape[2] == 7 &&
              c->w.shape[3] == 160);
    int64_t n, nb;
    float *w = read_f32(FX("inception_random.pth"), "Mixed_6c.branch7x7dbl_3.conv.weight", &n, NULL, NULL);
    float *g = read_f32(FX("inception_random.pth"), "Mixed_6c.branch7x7dbl_3.bn.weight", &nb, NULL, NULL);
    float *v = read_f32(FX("inception_random.pth"), "Mixed_6c.branch7x7dbl_3.bn.running_var", &nb, NULL, NULL);
    uint16_t *got = malloc((size_t)n * 2);
    cr_assert(got && n == 160 * 160 * 7);
    OK(kt_download(&be, got, &c->w));
    int64_t bad = 0;
    for (int64_t o = 0; o < 160; o++)
        for (int64_t k = 0; k < 7; k++)
            for (int64_t ci = 0; ci < 160; ci++) {
                float scale = (float)((double)g[o] / sqrt((double)v[o] + 1e-3));
                float want = (float)((double)w[(o * 160 + ci) * 7 + k] * scale);  // file: (co, ci, 1, 7)
                uint16_t h = dt == KT_BF16 ? kt_f32_to_bf16(want) : kt_f32_to_f16(want);
                bad += got[(o * 7 + k) * 160 + ci] != h;
            }
    cr_expect_eq(bad, 0, "%lld of %lld folded weights differ from w * scale", (long long)bad, (long long)n);
    free(w);
    free(g);
    free(v);
    free(got);
    uint8_t *raw = read_u8_images("images_u8", &n);
    uint8_t *img = nchw_to_nhwc(raw, 4, 256, 256);
    static float pool3[INC_POOL3], logits[INC_CLASSES];
    OK(inception_forward(&net, img, 1, 256, 256, KT_FID_RESIZE_PYTORCH,
                         &(IncOutputs){.pool3 = pool3, .logits_biased = logits}));
    float *ref = read_f32(FX("ref.safetensors"), "pool3", &n, NULL, NULL);
    double e_pool = rel_l2(pool3, ref, INC_POOL3);  // image 0
    free(ref);
    ref = read_f32(FX("ref.safetensors"), "logits_fc", &n, NULL, NULL);
    double e_logits = rel_l2(logits, ref, INC_CLASSES);
    free(ref);
    fprintf(stderr, "inception %s folded, image 0 vs official fp32: pool3 rel L2 %.3g, logits rel L2 %.3g\n",
            kt_dtype_name(dt), e_pool, e_logits);
    cr_expect(e_pool < tol && e_logits < tol, "pool3 %.3g, logits %.3g: relative L2 error >= %.3g", e_pool, e_logits,
              tol);
    free(raw);
    free(img);
    inception_free(&net);
    kt_backend_free(&be);
}

Test(inception, cuda_folded_bf16_one_image, .timeout = 900) { check_folded_one_image(KT_BF16, 5e-2); }

Test(inception, rejects_a_mismatched_checkpoint) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, fixture_path("var_tiny/vae.safetensors")));
    Inception net;
    KtStatus st = inception_init(&net, &be, &ck, 0, 1);
    cr_assert_eq(st, KT_ERR_SHAPE);
    cr_assert(strstr(kt_last_error(), "472 missing") && strstr(kt_last_error(), "'Conv2d_1a_3x3.conv.weight'"), "%s",
              kt_last_error());
    cr_assert(strstr(kt_last_error(), "pt_inception-2015-12-05"), "%s", kt_last_error());
    kt_ckpt_close(&ck);
    kt_backend_free(&be);
}

Test(inception, hash_tag_in_the_name_is_checked) {
    char path[4200], hex[65];
    snprintf(path, sizeof path, "%s/w-0123abcd.pth", test_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    OK(sha256_file_hex(path, hex));
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2 "abc"
    KtStatus st = inception_check_hash(path);
    cr_assert_eq(st, KT_ERR_FORMAT);
    cr_assert(strstr(kt_last_error(), "ba7816bf") && strstr(kt_last_error(), "0123abcd"), "%s", kt_last_error());
    char good[4200];
    snprintf(good, sizeof good, "%s/w-ba7816bf.pth", test_tmpdir());
    rename(path, good);
    OK(inception_check_hash(good));
    snprintf(path, sizeof path, "%s/untagged.pth", test_tmpdir());
    rename(good, path);
    OK(inception_check_hash(path));
}

// ---------------------------------------------------------------------------------------- Frechet distance
Test(frechet, matches_pytorch_fid_on_the_fixture) {
    int64_t n;
    double *mu1 = read_f64("fd_mu1", &n), *s1 = read_f64("fd_sigma1", &n), *mu2 = read_f64("fd_mu2", &n);
    double *s2 = read_f64("fd_sigma2", &n), *ref = read_f64("fd_value", &n), fd, fd21;
    OK(ev_frechet_distance(mu1, s1, mu2, s2, 256, &fd));
    cr_assert(fabs(fd - ref[0]) <= TOL_FRECHET_REL * fabs(ref[0]), "FD %.15g vs pytorch-fid %.15g", fd, ref[0]);
    OK(ev_frechet_distance(mu2, s2, mu1, s1, 256, &fd21));
    cr_assert(fabs(fd - fd21) <= 1e-9 * fabs(fd), "not symmetric: %.15g vs %.15g", fd, fd21);
    OK(ev_frechet_distance(mu1, s1, mu1, s1, 256, &fd));
    cr_assert(fabs(fd) < 1e-9, "identical statistics: %g", fd);
    free(mu1), free(s1), free(mu2), free(s2), free(ref);
}

Test(frechet, analytic_cases) {
    enum { D = 2048 };
    double *mu1 = calloc(D, sizeof(double)), *mu2 = malloc(D * sizeof(double));
    double *s1 = calloc((size_t)D * D, sizeof(double)), *s2 = calloc((size_t)D * D, sizeof(double)), fd;
    for (int i = 0; i < D; i++) mu2[i] = 1, s1[(size_t)i * D + i] = s2[(size_t)i * D + i] = 1;
    OK(ev_frechet_distance(mu1, s1, mu2, s2, D, &fd));  // pytorch-fid's own test: mu 0 vs 1, S = I
    cr_assert(fabs(fd - D) < 1e-9 * D, "%.15g", fd);
    free(mu1), free(mu2), free(s1), free(s2);
    // diagonal covariances: |dmu|^2 + sum (sqrt a - sqrt b)^2
    enum { d = 64 };
    double m1[d] = {0}, m2[d], a[d * d] = {0}, b[d * d] = {0}, expect = 0;
    for (int i = 0; i < d; i++) {
        m2[i] = 0.1 * i;
        a[i * d + i] = 0.5 + i;
        b[i * d + i] = 2.0 + 0.25 * i;
        expect += m2[i] * m2[i] + pow(sqrt(a[i * d + i]) - sqrt(b[i * d + i]), 2);
    }
    OK(ev_frechet_distance(m1, a, m2, b, d, &fd));
    cr_assert(fabs(fd - expect) < 1e-10 * expect, "%.15g vs %.15g", fd, expect);
}

Test(frechet, rank_deficient_covariances_stay_finite) {
    // 10 samples of 64-d features: covariances of rank 9
    enum { N = 10, D = 64 };
    float x[N * D], y[N * D];
    for (int i = 0; i < N * D; i++) x[i] = sinf(0.37f * i), y[i] = cosf(0.11f * i * i);
    EvMoments a, b;
    OK(ev_moments_init(&a, D));
    OK(ev_moments_init(&b, D));
    OK(ev_moments_add(&a, x, N));
    OK(ev_moments_add(&b, y, N));
    double mu1[D], mu2[D], *s1 = malloc(D * D * 8), *s2 = malloc(D * D * 8), fd;
    OK(ev_moments_finish(&a, mu1, s1));
    OK(ev_moments_finish(&b, mu2, s2));
    OK(ev_frechet_distance(mu1, s1, mu2, s2, D, &fd));
    cr_assert(isfinite(fd) && fd > 0, "%g", fd);
    OK(ev_frechet_distance(mu1, s1, mu1, s1, D, &fd));
    // zero up to the square root of rounding noise: eigenvalues ~1e-16 |S| of the null space become ~1e-8 |S|^(1/2)
    double tr = 0;
    for (int i = 0; i < D; i++) tr += s1[i * D + i];
    cr_assert(fabs(fd) < 1e-6 * tr, "identical rank-deficient statistics: %g (trace %g)", fd, tr);
    free(s1), free(s2);
    ev_moments_free(&a);
    ev_moments_free(&b);
}

// -------------------------------------------------------------------------------------------------- moments
Test(stats, mean_and_unbiased_covariance_match_numpy) {
    int64_t n;
    double *feats = read_f64("feats", &n), *mu_ref = read_f64("feats_mu", &n), *sig_ref = read_f64("feats_sigma", &n);
    enum { N = 500, D = 64 };
    float *x = malloc(N * D * sizeof(float));
    for (int i = 0; i < N * D; i++) x[i] = (float)feats[i];
    EvMoments m;
    OK(ev_moments_init(&m, D));
    OK(ev_moments_add(&m, x, 123));  // batches of different sizes
    OK(ev_moments_add(&m, x + 123 * D, N - 123));
    double mu[D], sigma[D * D];
    OK(ev_moments_finish(&m, mu, sigma));
    // the fixture's features are float64; ours are their float32 roundings (relative 6e-8)
    for (int i = 0; i < D; i++) cr_assert(fabs(mu[i] - mu_ref[i]) < 1e-6 * (1 + fabs(mu_ref[i])), "mu[%d]", i);
    for (int i = 0; i < D * D; i++)
        cr_assert(fabs(sigma[i] - sig_ref[i]) < 1e-6 * (1 + fabs(sig_ref[i])), "sigma[%d]: %g vs %g", i, sigma[i],
                  sig_ref[i]);
    ev_moments_free(&m);
    free(x), free(feats), free(mu_ref), free(sig_ref);
}

static void add_range(EvFeatureStats *s, const float *x, const float *lg, int D, int C, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; i += 7) {  // batches of 7 like an extractor would feed them
        int64_t b = hi - i < 7 ? hi - i : 7;
        OK(ev_moments_add(&s->pool3, x + i * D, b));
        OK(ev_is_add(&s->is, lg + i * C, b, i));
    }
}

Test(stats, four_shards_merged_equal_one_run) {
    enum { N = 1003, D = 96, C = 16 };
    float *x = malloc(N * D * sizeof(float)), *lg = malloc(N * C * sizeof(float));
    for (int i = 0; i < N * D; i++) x[i] = (float)(fmod(i * 0.6180339887, 1.0) * 3 + 0.5);
    for (int i = 0; i < N * C; i++) lg[i] = (float)(4 * sin(i * 0.731));
    EvFeatureStats one, all;
    OK(ev_stats_init(&one, D, 0, N, C));
    add_range(&one, x, lg, D, C, 0, N);
    char path[4200];
    for (int k = 0; k < 4; k++) {  // each shard saved as a partial file and loaded back, as fid-merge does
        EvFeatureStats part, loaded;
        OK(ev_stats_init(&part, D, 0, N, C));
        add_range(&part, x, lg, D, C, (int64_t)N * k / 4, (int64_t)N * (k + 1) / 4);
        snprintf(path, sizeof path, "%s/part%d.npz", test_tmpdir(), k);
        OK(ev_stats_save(&part, path, true));
        ev_stats_free(&part);
        OK(ev_stats_load(&loaded, path));
        cr_assert(!loaded.fixed);
        if (k == 0)
            all = loaded;
        else {
            OK(ev_stats_merge(&all, &loaded, path));
            ev_stats_free(&loaded);
        }
    }
    cr_assert_eq(ev_stats_count(&all), N);
    double *mu1, *s1, *mu2, *s2;
    OK(ev_stats_mu_sigma(&one, false, &mu1, &s1));
    OK(ev_stats_mu_sigma(&all, false, &mu2, &s2));
    for (int i = 0; i < D; i++) cr_assert(fabs(mu1[i] - mu2[i]) <= 1e-13 * fabs(mu1[i]), "mu[%d]", i);
    for (int i = 0; i < D * D; i++)
        cr_assert(fabs(s1[i] - s2[i]) <= 1e-10 * (fabs(s1[i]) + 1e-3), "sigma[%d]: %.17g vs %.17g", i, s1[i], s2[i]);
    double m1, sd1, m2, sd2;
    OK(ev_is_score(&one.is, &m1, &sd1));
    OK(ev_is_score(&all.is, &m2, &sd2));
    cr_assert(fabs(m1 - m2) < 1e-12 * m1 && fabs(sd1 - sd2) < 1e-9, "IS %.15g +- %g vs %.15g +- %g", m1, sd1, m2, sd2);
    // a full stats file (mu/sigma) loads as fixed statistics and cannot be merged
    snprintf(path, sizeof path, "%s/full.npz", test_tmpdir());
    OK(ev_stats_save(&one, path, false));
    EvFeatureStats full;
    OK(ev_stats_load(&full, path));
    cr_assert(full.fixed && full.n_fixed == N && full.is.C == C);
    for (int i = 0; i < D * D; i++) cr_assert(full.sigma[i] == s1[i]);
    cr_assert_eq(ev_stats_merge(&all, &full, path), KT_ERR_ARG);
    cr_assert(strstr(kt_last_error(), "--shard"), "%s", kt_last_error());
    free(mu1), free(s1), free(mu2), free(s2);
    ev_stats_free(&full);
    ev_stats_free(&one);
    ev_stats_free(&all);
    free(x), free(lg);
}

Test(stats, reads_adm_style_reference_batches) {
    int64_t n;
    double *mu1 = read_f64("fd_mu1", &n), *s1 = read_f64("fd_sigma1", &n);
    double *mu2 = read_f64("fd_mu2", &n), *s2 = read_f64("fd_sigma2", &n);
    const char *files[2] = {"ref_batch_stored.npz", "ref_batch_deflated.npz"};
    for (int f = 0; f < 2; f++) {
        EvFeatureStats s;
        OK(ev_stats_load(&s, fixture_path(f ? "fid/ref_batch_deflated.npz" : "fid/ref_batch_stored.npz")));
        cr_assert(s.fixed && s.D == 256 && s.n_fixed == -1, "%s", files[f]);
        cr_assert(!memcmp(s.mu, f ? mu2 : mu1, 256 * 8), "%s: mu", files[f]);
        cr_assert(!memcmp(s.sigma, f ? s2 : s1, 256 * 256 * 8), "%s: sigma", files[f]);
        ev_stats_free(&s);
    }
    free(mu1), free(s1), free(mu2), free(s2);
    EvFeatureStats s;
    cr_assert_eq(ev_stats_load(&s, fixture_path("var_tiny/vae.pth")), KT_ERR_FORMAT);
    cr_assert(strstr(kt_last_error(), "vae.pth"), "%s", kt_last_error());
}

// ------------------------------------------------------------------------------------------ Inception Score
Test(inception_score, uniform_is_one_and_k_one_hot_classes_is_k) {
    enum { N = 200, C = 1008 };
    float *lg = calloc((size_t)N * C, sizeof(float));
    EvIsAcc a;
    OK(ev_is_init(&a, N, C));
    OK(ev_is_add(&a, lg, N, 0));  // all logits 0: p uniform
    double m, sd;
    OK(ev_is_score(&a, &m, &sd));
    cr_assert(fabs(m - 1) < 1e-12 && sd < 1e-12, "%.15g +- %g", m, sd);
    ev_is_free(&a);
    // each split holds 20 samples spread evenly over K = 5 classes, predicted with certainty (logit 1e4 vs 0)
    for (int i = 0; i < N; i++) lg[(size_t)i * C + i % 5] = 1e4f;
    OK(ev_is_init(&a, N, C));
    OK(ev_is_add(&a, lg, 150, 0));
    OK(ev_is_add(&a, lg + 150 * C, N - 150, 150));
    OK(ev_is_score(&a, &m, &sd));
    cr_assert(fabs(m - 5) < 1e-9 && sd < 1e-9, "%.15g +- %g", m, sd);
    cr_assert_eq(ev_is_add(&a, lg, 1, N), KT_ERR_ARG);  // outside the set
    ev_is_free(&a);
    free(lg);
}

// The statistics of a batch accumulated by the worker thread beside the next forward (the GPU default, forced here
// on the CPU) are the in-line statistics bit for bit, features_out included; the worker's failure (here an IS index
// outside the set) is reported by the sync, in the calling thread.
static void extract_all(bool overlap, const uint8_t *img, int n, EvFeatureStats *st, float *feats) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    EvExtractor ex;
    OK(ev_extractor_init(&ex, &be, NULL, 2, KT_FID_RESIZE_PYTORCH));  // random weights, forwards of 2
    ex.overlap = overlap;
    OK(ev_stats_init(st, INC_POOL3, INC_SPATIAL, n, INC_CLASSES));
    KtStatus s = KT_OK;
    for (int i = 0; s == KT_OK && i < n; i += 3)  // calls of 3 images (a forward of 2 and one of 1), then 1
        s = ev_extractor_add(&ex, st, img + (size_t)i * 32 * 32 * 3, n - i < 3 ? n - i : 3, 32, 32, i,
                             feats + (size_t)i * INC_POOL3);
    OK(ev_extractor_sync(&ex, s));
    ev_extractor_free(&ex);
    kt_backend_free(&be);
}

Test(stats, overlapped_accumulation_equals_in_line, .timeout = 600) {
    enum { N = 4 };
    uint8_t *img = malloc((size_t)N * 32 * 32 * 3);
    for (size_t i = 0; i < (size_t)N * 32 * 32 * 3; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    float *f1 = malloc((size_t)N * INC_POOL3 * sizeof(float)), *f2 = malloc((size_t)N * INC_POOL3 * sizeof(float));
    EvFeatureStats a, b;
    extract_all(false, img, N, &a, f1);
    extract_all(true, img, N, &b, f2);
    cr_assert_eq(ev_stats_count(&a), N);
    cr_assert_eq(ev_stats_count(&b), N);
    cr_expect(!memcmp(f1, f2, (size_t)N * INC_POOL3 * sizeof(float)), "features_out differ");
    cr_expect(!memcmp(a.pool3.sum, b.pool3.sum, INC_POOL3 * sizeof(double)), "pool3 sums differ");
    cr_expect(!memcmp(a.pool3.outer, b.pool3.outer, (size_t)INC_POOL3 * INC_POOL3 * sizeof(double)), "pool3 outer");
    cr_expect(!memcmp(a.spatial.outer, b.spatial.outer, (size_t)INC_SPATIAL * INC_SPATIAL * sizeof(double)),
              "spatial outer products differ");
    double m1, s1, m2, s2;
    OK(ev_is_score(&a.is, &m1, &s1));
    OK(ev_is_score(&b.is, &m2, &s2));
    cr_expect(m1 == m2 && s1 == s2, "IS %.17g +- %g vs %.17g +- %g", m1, s1, m2, s2);
    ev_stats_free(&a);
    ev_stats_free(&b);

    // the worker's failure (IS index 5 of a set of 4) surfaces at the sync, with its message, in this thread
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    EvExtractor ex;
    OK(ev_extractor_init(&ex, &be, NULL, 2, KT_FID_RESIZE_PYTORCH));
    ex.overlap = true;
    OK(ev_stats_init(&a, INC_POOL3, 0, 4, INC_CLASSES));
    OK(ev_extractor_add(&ex, &a, img, 1, 32, 32, 4, NULL));  // index 4: accepted now, failing on the worker
    KtStatus s = ev_extractor_sync(&ex, KT_OK);
    cr_expect_eq(s, KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "sample index 4 outside the set of 4"), "%s", kt_last_error());
    cr_expect_eq(ev_extractor_sync(&ex, KT_OK), KT_OK, "a second sync has nothing left to report");
    ev_stats_free(&a);
    ev_extractor_free(&ex);
    kt_backend_free(&be);
    free(img), free(f1), free(f2);
}

// On a GPU the extractor's input buffer and its staging are page-locked (allocated through the backend), and images
// read from that buffer give the features of the same images in ordinary memory, bit for bit.
Test(stats, cuda_page_locked_input_gives_the_same_features, .timeout = 900) {
    enum { N = 2, IMG = 32 * 32 * 3 };
    KtBackend be;
    test_backend_init(&be, KT_CUDA);  // skips without a GPU
    uint8_t *img = malloc((size_t)N * IMG), *in;
    for (size_t i = 0; i < (size_t)N * IMG; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    float *f1 = malloc((size_t)N * INC_POOL3 * sizeof(float)), *f2 = malloc((size_t)N * INC_POOL3 * sizeof(float));
    EvExtractor ex;
    OK(ev_extractor_init(&ex, &be, NULL, N, KT_FID_RESIZE_PYTORCH));
    cr_expect(ex.staging.host && ex.staging.owner == &be, "staging page-locked: %s", be.notes);
    OK(ev_extractor_input(&ex, 0, (size_t)N * IMG, &in));
    cr_expect(ex.input[0].host && ex.input[0].owner == &be && ex.input[0].nbytes >= (size_t)N * IMG);
    memcpy(in, img, (size_t)N * IMG);
    EvFeatureStats a, b;
    OK(ev_stats_init(&a, INC_POOL3, 0, N, 0));
    OK(ev_stats_init(&b, INC_POOL3, 0, N, 0));
    OK(ev_extractor_add(&ex, &a, img, N, 32, 32, 0, f1));
    OK(ev_extractor_add(&ex, &b, in, N, 32, 32, 0, f2));
    OK(ev_extractor_sync(&ex, KT_OK));
    cr_expect(!memcmp(f1, f2, (size_t)N * INC_POOL3 * sizeof(float)), "features differ");
    cr_expect(!memcmp(a.pool3.sum, b.pool3.sum, INC_POOL3 * sizeof(double)), "pool3 sums differ");
    ev_stats_free(&a);
    ev_stats_free(&b);
    ev_extractor_free(&ex);
    kt_backend_free(&be);
    free(img), free(f1), free(f2);
}

// On a GPU the extractor pipelines its batches (inception_submit: batch i+1 uploads on the side queue into the other
// device slot while batch i runs; each add returns with its forward in flight, the next one collects it): three
// one-image batches through both slots (the third reuses the first's slot and, captured by then, its graph) give the
// statistics of the same images run one by one with inception_forward, bit for bit.
Test(inception, cuda_pipelined_extractor_equals_one_by_one, .timeout = 900) {
    enum { N = 3, IMG = 32 * 32 * 3 };
    KtBackend be;
    test_backend_init(&be, KT_CUDA);  // skips without a GPU
    OK(kt_backend_set_matmul_dtype(&be, KT_BF16));
    uint8_t *img = malloc((size_t)N * IMG), *in[2];
    for (size_t i = 0; i < (size_t)N * IMG; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    EvExtractor ex;
    OK(ev_extractor_init(&ex, &be, NULL, 1, KT_FID_RESIZE_ADM));
    OK(ev_extractor_input(&ex, 0, IMG, &in[0]));
    OK(ev_extractor_input(&ex, 1, IMG, &in[1]));
    EvFeatureStats a, b;
    OK(ev_stats_init(&a, INC_POOL3, INC_SPATIAL, N, INC_CLASSES));
    OK(ev_stats_init(&b, INC_POOL3, INC_SPATIAL, N, INC_CLASSES));
    for (int i = 0; i < N; i++) {  // as argen fid: the producer fills the other input slot meanwhile
        memcpy(in[i % 2], img + (size_t)i * IMG, IMG);
        OK(ev_extractor_add(&ex, &a, in[i % 2], 1, 32, 32, i, NULL));
        if (i > 0) cr_expect(ex.inflight.on, "add %d returned with its forward in flight", i);
    }
    OK(ev_extractor_sync(&ex, KT_OK));
    cr_expect(!ex.inflight.on && !ex.pending);
    cr_expect_eq(ev_stats_count(&a), N);
    static float pool3[N][INC_POOL3], logits[N][INC_CLASSES], spatial[N][INC_SPATIAL];
    for (int i = 0; i < N; i++) {
        IncOutputs o = {.pool3 = pool3[i], .logits = logits[i], .spatial = spatial[i]};
        OK(inception_forward(&ex.net, img + (size_t)i * IMG, 1, 32, 32, KT_FID_RESIZE_ADM, &o));
        OK(ev_moments_add(&b.pool3, pool3[i], 1));
        OK(ev_moments_add(&b.spatial, spatial[i], 1));
        OK(ev_is_add(&b.is, logits[i], 1, i));
    }
    cr_expect(memcmp(pool3[0], pool3[1], sizeof pool3[0]), "other images, other features");
    cr_expect(!memcmp(a.pool3.sum, b.pool3.sum, INC_POOL3 * sizeof(double)), "pool3 sums differ");
    cr_expect(!memcmp(a.pool3.outer, b.pool3.outer, (size_t)INC_POOL3 * INC_POOL3 * sizeof(double)), "pool3 outer");
    cr_expect(!memcmp(a.spatial.sum, b.spatial.sum, INC_SPATIAL * sizeof(double)), "spatial sums differ");
    double m1, s1, m2, s2;
    OK(ev_is_score(&a.is, &m1, &s1));
    OK(ev_is_score(&b.is, &m2, &s2));
    cr_expect(m1 == m2 && s1 == s2, "IS %.17g +- %g vs %.17g +- %g", m1, s1, m2, s2);
    cr_expect(ex.net.graph[0].handle && ex.net.graph[1].handle, "both slots' graphs captured (notes: %s)", be.notes);
    ev_stats_free(&a);
    ev_stats_free(&b);
    ev_extractor_free(&ex);
    kt_backend_free(&be);
    free(img);
}

// On a GPU the network's device work is captured as a graph when a shape comes twice in a row and replayed after:
// the replay reads the newly uploaded images and gives the eager run's features bit for bit.
Test(inception, cuda_graph_replay_equals_eager, .timeout = 900) {
    enum { IMG = 32 * 32 * 3 };
    KtBackend be;
    test_backend_init(&be, KT_CUDA);  // skips without a GPU
    OK(kt_backend_set_matmul_dtype(&be, KT_BF16));
    Inception net;
    OK(inception_init(&net, &be, NULL, 7, 1));
    uint8_t a[IMG], b[IMG];
    for (int i = 0; i < IMG; i++) a[i] = (uint8_t)((i * 2654435761u) >> 24), b[i] = (uint8_t)(255 - i % 251);
    static float fa[INC_POOL3], fb[INC_POOL3], fr[INC_POOL3], sa[INC_SPATIAL], sr[INC_SPATIAL];
    OK(inception_forward(&net, a, 1, 32, 32, KT_FID_RESIZE_ADM, &(IncOutputs){.pool3 = fa, .spatial = sa}));  // eager
    cr_assert_null(net.graph[0].handle, "one forward of a shape is not captured");
    OK(inception_forward(&net, b, 1, 32, 32, KT_FID_RESIZE_ADM, &(IncOutputs){.pool3 = fb}));  // eager, captured
    cr_assert_not_null(net.graph[0].handle, "a shape seen twice in a row is captured (notes: %s)", be.notes);
    OK(inception_forward(&net, a, 1, 32, 32, KT_FID_RESIZE_ADM, &(IncOutputs){.pool3 = fr, .spatial = sr}));  // replay
    cr_expect(!memcmp(fa, fr, sizeof fa) && !memcmp(sa, sr, sizeof sa), "the replay differs from the eager run");
    cr_expect(memcmp(fa, fb, sizeof fa), "other images, other features");
    cr_expect(!strstr(be.notes, "graphs off"), "%s", be.notes);
    inception_free(&net);
    kt_backend_free(&be);
}
