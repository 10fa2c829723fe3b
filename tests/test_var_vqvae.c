// VAR VQVAE against the var_tiny fixture made by the official code: encode tokens (exact), var_input and the
// decoded image (1e-4), the Phi schedule rule; CPU and (when present) CUDA.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/var_vqvae.h"

static const int k_tiny_pns[] = {1, 2, 3, 4};
#define REF "var_tiny/ref.safetensors"

Test(var_vqvae, phi_schedule_rule) {
    int idx[16];
    static const int want10[] = {0, 0, 1, 1, 1, 2, 2, 3, 3, 3}, want4[] = {0, 1, 2, 3}, want6[] = {0, 0, 1, 2, 3, 3};
    vq_var_phi_indices(4, 10, idx);
    for (int i = 0; i < 10; i++) cr_expect_eq(idx[i], want10[i], "SN=10 scale %d: Phi %d, expected %d", i, idx[i], want10[i]);
    vq_var_phi_indices(4, 4, idx);
    for (int i = 0; i < 4; i++) cr_expect_eq(idx[i], want4[i]);
    vq_var_phi_indices(4, 6, idx);
    for (int i = 0; i < 6; i++) cr_expect_eq(idx[i], want6[i]);
}

static void load_tiny(VarVqvae *vq, KtBackend *be, const char *file) {
    KtCheckpoint ck = {0};
    cr_assert(kt_ckpt_open(&ck, fixture_path(file)) == KT_OK, "%s", kt_last_error());
    VarVqConfig c;
    cr_assert(vq_var_config_from_ckpt(&c, &ck, k_tiny_pns, 4) == KT_OK, "%s", kt_last_error());
    cr_expect_eq(c.ch, 32);
    cr_expect_eq(c.V, 128);
    cr_expect_eq(c.Cvae, 8);
    cr_expect_eq(c.n_levels, 5);
    cr_expect_eq(c.image_size, 64);
    cr_assert(vq_var_init(vq, be, &c, &ck, 0, 2) == KT_OK, "%s", kt_last_error());
    kt_ckpt_close(&ck);
}

static void check_encode_decode(KtDevice dev) {
    KtBackend be;
    test_backend_init(&be, dev);
    VarVqvae vq;
    load_tiny(&vq, &be, "var_tiny/vae.pth");
    int64_t n_img, n_tok, shape[KT_MAX_DIMS];
    float *img_nchw = read_f32(fixture_path(REF), "input_image", &n_img, shape, NULL);
    int64_t *ref_tok = read_i64(fixture_path(REF), "encode_tokens", &n_tok);
    cr_assert_eq(n_tok, 60);
    float *img = to_nhwc(img_nchw, 2, 3, 64, 64);

    // encode: img_to_idxBl
    KtBuffer buf;
    cr_assert(kt_buffer_alloc(&be, &buf, (size_t)n_img * 4) == KT_OK);
    KtTensor t = kt_tensor4(buf.data, KT_F32, be.device, 2, 64, 64, 3);
    cr_assert(kt_upload(&be, &t, img) == KT_OK);
    int64_t tok[60];
    cr_assert(vq_var_img_to_tokens(&vq, tok, &t) == KT_OK, "%s", kt_last_error());
    expect_equal_i64("encode_tokens", tok, ref_tok, 60);

    // idxBl_to_var_input
    float var_input[2 * 29 * 8];
    float *ref_vi = read_f32(fixture_path(REF), "var_input", NULL, NULL, NULL);
    cr_assert(vq_var_tokens_to_var_input(&vq, var_input, ref_tok, 2) == KT_OK, "%s", kt_last_error());
    expect_close("var_input", var_input, ref_vi, 2 * 29 * 8, TOL_MODEL_F32);

    // idxBl_to_img(last_one) = clamp(decoder(...), -1, 1)
    cr_assert(vq_var_tokens_to_image(&vq, &t, ref_tok, 2) == KT_OK, "%s", kt_last_error());
    float *out = malloc((size_t)n_img * sizeof *out);
    cr_assert(kt_download(&be, out, &t) == KT_OK);
    for (int64_t i = 0; i < n_img; i++) out[i] = fminf(fmaxf(out[i], -1.0f), 1.0f);
    float *ref_dec_nchw = read_f32(fixture_path(REF), "decode_image", NULL, NULL, NULL);
    float *ref_dec = to_nhwc(ref_dec_nchw, 2, 3, 64, 64);
    expect_close("decode_image", out, ref_dec, n_img, TOL_MODEL_F32);

    free(out);
    free(ref_dec);
    free(ref_dec_nchw);
    free(ref_vi);
    free(img);
    free(img_nchw);
    free(ref_tok);
    kt_buffer_free(&buf);
    vq_var_free(&vq);
    kt_backend_free(&be);
}

Test(var_vqvae, cpu_encode_decode_vs_official) { check_encode_decode(KT_CPU); }
Test(var_vqvae, cuda_encode_decode_vs_official) { check_encode_decode(KT_CUDA); }

Test(var_vqvae, safetensors_and_legacy_give_identical_weights) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    VarVqvae a, b, c;
    load_tiny(&a, &be, "var_tiny/vae.pth");
    load_tiny(&b, &be, "var_tiny/vae.safetensors");
    load_tiny(&c, &be, "legacy/vae_legacy.pth");
    cr_assert_eq(a.weights.nbytes, b.weights.nbytes);
    cr_assert_eq(a.weights.nbytes, c.weights.nbytes);
    cr_expect(memcmp(a.weights.data, b.weights.data, a.weights.nbytes) == 0, "zip .pth vs .safetensors differ");
    cr_expect(memcmp(a.weights.data, c.weights.data, a.weights.nbytes) == 0, "zip .pth vs legacy .pth differ");
    vq_var_free(&a);
    vq_var_free(&b);
    vq_var_free(&c);
    kt_backend_free(&be);
}

Test(var_vqvae, transformer_checkpoint_is_rejected_with_a_hint) {
    KtCheckpoint ck = {0};
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/var.pth")) == KT_OK);
    VarVqConfig c;
    KtStatus st = vq_var_config_from_ckpt(&c, &ck, k_tiny_pns, 4);
    cr_expect_eq(st, KT_ERR_FORMAT);
    cr_expect(strstr(kt_last_error(), "not a VAR VQVAE") && strstr(kt_last_error(), "--ckpt"), "%s", kt_last_error());
    kt_ckpt_close(&ck);
}

// A checkpoint of another configuration: the loader lists every mis-shaped tensor in one error (not the first).
Test(var_vqvae, loader_reports_all_mismatches_at_once) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    KtCheckpoint ck = {0};
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/vae.pth")) == KT_OK);
    VarVqConfig c;
    cr_assert(vq_var_config_from_ckpt(&c, &ck, k_tiny_pns, 4) == KT_OK);
    c.V = 256;     // codebook rows
    c.Cvae = 16;   // latent channels: quant_conv, post_quant_conv, conv_out, conv_in, Phi convs
    VarVqvae vq;
    KtStatus st = vq_var_init(&vq, &be, &c, &ck, 0, 1);
    cr_expect_eq(st, KT_ERR_SHAPE);
    const char *msg = kt_last_error();
    cr_expect(strstr(msg, "'quantize.embedding.weight' is (128, 8), expected (256, 16)"), "%s", msg);
    cr_expect(strstr(msg, "'quant_conv.weight'") && strstr(msg, "'post_quant_conv.weight'") &&
              strstr(msg, "'decoder.conv_in.weight'") && strstr(msg, "'encoder.conv_out.weight'"), "%s", msg);
    cr_expect(strstr(msg, "mis-shaped") && strstr(msg, "vae.pth"), "%s", msg);
    kt_ckpt_close(&ck);
    kt_backend_free(&be);
}

// Widths that grow toward the latent (ch_mult 1, 2, 4: the decoder's upsampled map at a level is wider than the
// level itself): every feature map must fit the workspace, so image 0 of a batch of two decodes as alone, up to
// GEMM rounding (OpenBLAS blocks by matrix size: measured 6e-6; an undersized ping-pong buffer spilling into the next
// image's rows gave 1.4). Also 3 res blocks per level (4 in the decoder).
Test(var_vqvae, widening_levels_fit_the_workspace) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 1) == KT_OK);
    static const int pns[] = {1, 2, 4};
    VarVqConfig c;
    cr_assert(vq_var_config_default(&c, pns, 3) == KT_OK, "%s", kt_last_error());
    c.ch = 8, c.n_levels = 3, c.num_res_blocks = 3, c.Cvae = 4, c.V = 16, c.norm_groups = 4;
    c.ch_mult[0] = 1, c.ch_mult[1] = 2, c.ch_mult[2] = 4;
    cr_assert(vq_var_config_set_schedule(&c, pns, 3) == KT_OK, "%s", kt_last_error());
    cr_assert_eq(c.image_size, 16);
    VarVqvae m;
    cr_assert(vq_var_init(&m, &be, &c, NULL, 5, 2) == KT_OK, "%s", kt_last_error());
    int64_t nf = 2 * 4 * 4 * 4, S = 16;
    float *f = malloc((size_t)nf * sizeof *f), *img2 = malloc((size_t)(2 * S * S * 3) * sizeof(float));
    float *img1 = malloc((size_t)(S * S * 3) * sizeof(float));
    for (int64_t i = 0; i < nf; i++) f[i] = (float)((i * 37) % 17) / 8.0f - 1.0f;
    KtTensor ft = kt_tensor4(f, KT_F32, KT_CPU, 2, 4, 4, 4), it = kt_tensor4(img2, KT_F32, KT_CPU, 2, S, S, 3);
    cr_assert(vq_var_decode(&m, &it, &ft) == KT_OK, "%s", kt_last_error());
    KtTensor f1 = kt_tensor4(f, KT_F32, KT_CPU, 1, 4, 4, 4), i1 = kt_tensor4(img1, KT_F32, KT_CPU, 1, S, S, 3);
    cr_assert(vq_var_decode(&m, &i1, &f1) == KT_OK, "%s", kt_last_error());
    double worst = 0;
    for (int64_t i = 0; i < S * S * 3; i++) worst = fmax(worst, fabs((double)img1[i] - img2[i]));
    cr_expect(worst < 1e-4, "image 0 depends on the batch: %g", worst);
    vq_var_free(&m);
    kt_backend_free(&be);
    free(f), free(img1), free(img2);
}
