// LlamaGen's VQ-16 tokenizer against the llamagen_tiny fixture made by the official code: encode tokens exact,
// decode_code image within 1e-4, the configuration derived from shapes, .pt and .safetensors giving the same
// weights, clear errors for other checkpoints. CPU and (when present) CUDA.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "tokenizer/vq16.h"

#define REF "llamagen_tiny/ref.safetensors"

static void load(KtBackend *be, Vq16 *vq, KtDevice dev, const char *file, int max_batch) {
    test_backend_init(be, dev);
    KtCheckpoint ck = {0};
    cr_assert(kt_ckpt_open(&ck, fixture_path(file)) == KT_OK, "%s", kt_last_error());
    Vq16Config c;
    cr_assert(vq16_config_from_ckpt(&c, &ck, 64) == KT_OK, "%s", kt_last_error());
    cr_expect(c.ch == 32 && c.n_levels == 5 && c.num_res_blocks == 2 && c.Z == 32 && c.D == 8 && c.V == 128);
    cr_expect(c.ch_mult[0] == 1 && c.ch_mult[2] == 2 && c.ch_mult[4] == 4 && c.grid == 4);
    cr_assert(vq16_init(vq, be, &c, &ck, 0, max_batch) == KT_OK, "%s", kt_last_error());
    kt_ckpt_close(&ck);
}

static void check_encode_decode(KtDevice dev, const char *file) {
    KtBackend be;
    Vq16 vq;
    load(&be, &vq, dev, file, 2);
    float *in = read_f32(fixture_path(REF), "input_image", NULL, NULL, NULL), *img = to_nhwc(in, 2, 3, 64, 64);
    KtBuffer buf = {0};
    cr_assert(kt_buffer_alloc(&be, &buf, 2 * 64 * 64 * 3 * 4) == KT_OK);
    KtTensor t = kt_tensor4(buf.data, KT_F32, be.device, 2, 64, 64, 3), tok;
    cr_assert(kt_upload(&be, &t, img) == KT_OK);
    cr_assert(vq16_encode(&vq, &tok, &t) == KT_OK, "%s", kt_last_error());
    int32_t got[32];
    int64_t got64[32], *ref = read_i64(fixture_path(REF), "encode_tokens", NULL);
    cr_assert(kt_download(&be, got, &tok) == KT_OK);
    for (int i = 0; i < 32; i++) got64[i] = got[i];
    expect_equal_i64("encode_tokens", got64, ref, 32);

    int32_t r32[32];
    for (int i = 0; i < 32; i++) r32[i] = (int32_t)ref[i];
    KtTensor idx = kt_slice0(&vq.idx, 0, 32);
    cr_assert(kt_upload(&be, &idx, r32) == KT_OK);
    cr_assert(vq16_decode_code(&vq, &t, &idx, 2) == KT_OK, "%s", kt_last_error());
    float *out = malloc(2 * 64 * 64 * 3 * 4), *rd = read_f32(fixture_path(REF), "decode_image", NULL, NULL, NULL);
    cr_assert(kt_download(&be, out, &t) == KT_OK);
    float *rdn = to_nhwc(rd, 2, 3, 64, 64);
    expect_close("decode_image", out, rdn, 2 * 64 * 64 * 3, TOL_MODEL_F32);
    free(in);
    free(img);
    free(ref);
    free(out);
    free(rd);
    free(rdn);
    kt_buffer_free(&buf);
    vq16_free(&vq);
    kt_backend_free(&be);
}

Test(vq16, cpu_encode_decode_vs_official_pt) { check_encode_decode(KT_CPU, "llamagen_tiny/vq.pt"); }
Test(vq16, cpu_encode_decode_vs_official_safetensors) { check_encode_decode(KT_CPU, "llamagen_tiny/vq.safetensors"); }
Test(vq16, cuda_encode_decode_vs_official) { check_encode_decode(KT_CUDA, "llamagen_tiny/vq.pt"); }

// The 8-bit conversion of sample_c2i_ddp.py, on torch's own bicubic output (exact) and on argen's resize of the same
// input (within one level: the resize matches torch to ~1 ulp, which can move a value across an integer).
Test(vq16, image_to_u8_as_the_official_sampler) {
    int64_t n, nu, nx, shape[KT_MAX_DIMS];
    int ndim;
    const char *fx = fixture_path("ops/ops.safetensors");
    float *x = read_f32(fx, "eval_resize.x", &nx, shape, &ndim);
    float *y = read_f32(fx, "eval_resize_48_32.y", &n, NULL, NULL);
    int64_t *ref = read_i64(fx, "eval_resize_48_32.u8", &nu);
    cr_assert(nu == n && ndim == 4 && shape[1] == 48);
    uint8_t *px = malloc((size_t)n);
    int64_t *got = malloc((size_t)n * sizeof *got), clamped = 0;
    cr_expect(vq16_image_to_u8(px, y, n) == 0);
    for (int64_t i = 0; i < n; i++) {
        got[i] = px[i];
        clamped += px[i] == 0 || px[i] == 255;
    }
    expect_equal_i64("u8 of torch's resize", got, ref, n);
    cr_expect(clamped > 0, "the fixture reaches the clamp");
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    KtTensor xt = kt_tensor4(x, KT_F32, KT_CPU, 2, 48, 48, 3), yt = kt_tensor4(y, KT_F32, KT_CPU, 2, 32, 32, 3);
    cr_assert(kt_resize_bicubic(&be, &yt, &xt) == KT_OK);
    vq16_image_to_u8(px, y, n);
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert(abs((int)px[i] - (int)ref[i]) <= 1, "pixel %lld: %d vs %lld", (long long)i, px[i], (long long)ref[i]);
        off += px[i] != ref[i];
    }
    cr_expect(off <= n / 1000, "%lld of %lld pixels one level off", (long long)off, (long long)n);
    float bad[3] = {NAN, INFINITY, 0.0f};
    cr_expect(vq16_image_to_u8(px, bad, 3) == 2 && px[0] == 0 && px[1] == 0 && px[2] == 128);
    kt_backend_free(&be);
    free(x), free(y), free(ref), free(px), free(got);
}

Test(vq16, codebook_rows_are_normalised_at_load) {
    KtBackend be;
    Vq16 vq;
    load(&be, &vq, KT_CPU, "llamagen_tiny/vq.pt", 1);
    const float *cb = vq.codebook_n.data;
    for (int v = 0; v < 128; v++) {
        double s = 0;
        for (int d = 0; d < 8; d++) s += (double)cb[v * 8 + d] * cb[v * 8 + d];
        cr_expect(fabs(s - 1.0) < 1e-6, "row %d has squared norm %g", v, s);
    }
    vq16_free(&vq);
    kt_backend_free(&be);
}

Test(vq16, other_checkpoints_and_sizes_give_clear_errors) {
    KtCheckpoint ck = {0};
    Vq16Config c;
    cr_assert(kt_ckpt_open(&ck, fixture_path("llamagen_tiny/gpt.pt")) == KT_OK);
    cr_expect(vq16_config_from_ckpt(&c, &ck, 64) == KT_ERR_FORMAT);
    cr_expect(strstr(kt_last_error(), "LlamaGen GPT: pass it with --ckpt") != NULL, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    cr_assert(kt_ckpt_open(&ck, fixture_path("var_tiny/vae.pth")) == KT_OK);
    cr_expect(vq16_config_from_ckpt(&c, &ck, 64) == KT_ERR_FORMAT);
    cr_expect(strstr(kt_last_error(), "VAR VQVAE") != NULL, "%s", kt_last_error());
    kt_ckpt_close(&ck);
    cr_assert(kt_ckpt_open(&ck, fixture_path("llamagen_tiny/vq.pt")) == KT_OK);
    cr_expect(vq16_config_from_ckpt(&c, &ck, 60) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "--image-size") != NULL, "%s", kt_last_error());
    kt_ckpt_close(&ck);
}
