// The public C API (generator/argen.h) as an outside program uses it: load, info, greedy sample, encode/decode,
// errors as status + message.
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "argen.h"

#define FIX(rel) ARGEN_FIXTURE_DIR "/" rel

Test(api, load_info_sample_encode_decode) {
    static const int pns[] = {1, 2, 3, 4};
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.vae_path = FIX("var_tiny/vae.safetensors");
    lp.ckpt_path = FIX("var_tiny/var.safetensors");
    lp.patch_nums = pns;
    lp.n_patch_nums = 4;
    lp.device = "cpu";
    lp.max_batch = 2;
    ArgenModel *m = NULL;
    cr_assert_eq(argen_load(&m, &lp), ARGEN_OK, "%s", argen_last_error());
    ArgenInfo info;
    cr_assert_eq(argen_info(m, &info), ARGEN_OK);
    cr_expect(info.image_size == 64 && info.num_tokens == 30 && info.num_classes == 10 && info.depth == 2);
    ArgenSampleParams sp;
    argen_sample_params_init(&sp);
    sp.cfg = 2.5f;
    sp.top_k = 1;
    int cls[3] = {3, 7, 3};
    int64_t ids[3] = {0, 1, 2};
    uint8_t *px = malloc(3 * 64 * 64 * 3);
    int32_t tok[90], tok2[90];
    cr_assert_eq(argen_sample(m, &sp, 3, cls, ids, px, tok), ARGEN_OK, "%s", argen_last_error());  // 2 batches
    cr_expect(memcmp(tok, tok + 60, 30 * sizeof *tok) == 0, "greedy: same class, same tokens");
    static const int greedy3[5] = {13, 66, 37, 52, 37};  // official greedy tokens of class 3 (fixture)
    cr_expect(memcmp(tok, greedy3, sizeof greedy3) == 0);
    cr_assert_eq(argen_encode(m, 1, px, tok2), ARGEN_OK, "%s", argen_last_error());
    cr_assert_eq(argen_decode(m, 1, tok2, px), ARGEN_OK, "%s", argen_last_error());
    int bad_cls = 10;
    cr_expect_eq(argen_sample(m, &sp, 1, &bad_cls, ids, px, NULL), ARGEN_ERR_ARG);
    cr_expect(strstr(argen_last_error(), "class 10") != NULL, "%s", argen_last_error());
    free(px);
    argen_free(m);
    argen_free(NULL);
}

Test(api, load_errors_are_statuses_with_messages) {
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.vae_path = FIX("no_such_vae.pth");
    lp.device = "cpu";
    ArgenModel *m = (ArgenModel *)1;
    cr_expect_eq(argen_load(&m, &lp), ARGEN_ERR_IO);
    cr_expect_null(m);
    cr_expect(strstr(argen_last_error(), "no_such_vae.pth") != NULL, "%s", argen_last_error());
    lp.vae_path = FIX("var_tiny/vae.pth");
    lp.device = "tpu";
    cr_expect_eq(argen_load(&m, &lp), ARGEN_ERR_ARG);
    cr_expect(strstr(argen_last_error(), "--device") != NULL, "%s", argen_last_error());
}

// LlamaGen through the same API: arch selector, greedy sampling with each decoding strategy, encode -> tokens of the
// official encoder, decode, stats; VAR refuses the raster strategies.
Test(api, llamagen_load_sample_encode_decode_stats) {
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.arch = ARGEN_ARCH_LLAMAGEN;
    lp.vae_path = FIX("llamagen_tiny/vq.pt");
    lp.ckpt_path = FIX("llamagen_tiny/gpt.safetensors");
    lp.image_size = 64;
    lp.heads = 4;
    lp.device = "cpu";
    lp.max_batch = 2;
    ArgenModel *m = NULL;
    cr_assert_eq(argen_load(&m, &lp), ARGEN_OK, "%s", argen_last_error());
    ArgenInfo info;
    argen_info(m, &info);
    cr_expect(info.arch == ARGEN_ARCH_LLAMAGEN && info.image_size == 64 && info.grid == 4 && info.num_tokens == 16 &&
              info.num_classes == 10 && info.depth == 2 && info.heads == 4 && info.vocab_size == 128);
    ArgenSampleParams sp;
    argen_sample_params_init_for(&sp, m);
    cr_expect(sp.cfg == 4.0f && sp.top_k == 2000 && sp.top_p == 1.0f);
    sp.cfg = 2.0f;
    sp.top_k = 1;
    int cls[2] = {2, 9};
    int64_t ids[2] = {0, 1};
    uint8_t *px = malloc(2 * 64 * 64 * 3);
    int32_t tok[32], tok2[32];
    static const int32_t greedy2[4] = {59, 11, 47, 12};  // official greedy tokens of class 2 (fixture)
    for (int d = 0; d < 3; d++) {
        sp.decode = (ArgenDecode)d;
        sp.zipar_window = 2;
        cr_assert_eq(argen_sample(m, &sp, 2, cls, ids, px, tok), ARGEN_OK, "%s", argen_last_error());
        cr_expect(memcmp(tok, greedy2, sizeof greedy2) == 0, "decode %d", d);  // row 0 is plain AR for all three
    }
    ArgenStats st;
    argen_stats(m, &st);
    cr_expect(st.images == 6 && st.tokens == 96 && st.forwards == 16 + 16 + 12 && st.seconds > 0,
              "%lld images, %lld forwards", (long long)st.images, (long long)st.forwards);
    argen_stats_reset(m);
    argen_stats(m, &st);
    cr_expect(st.images == 0);
    cr_assert_eq(argen_encode(m, 2, px, tok2), ARGEN_OK, "%s", argen_last_error());
    cr_assert_eq(argen_decode(m, 2, tok2, px), ARGEN_OK, "%s", argen_last_error());
    tok2[3] = 128;
    cr_expect_eq(argen_decode(m, 1, tok2, px), ARGEN_ERR_ARG);
    cr_expect(strstr(argen_last_error(), "token 128") != NULL, "%s", argen_last_error());
    free(px);
    argen_free(m);

    // output_size: the float image resized with PyTorch's bicubic before the 8-bit conversion. Halving puts every
    // output pixel at t = 0.5 between input pixels 2o and 2o+1: taps 2o-1..2o+2 with weights (-3, 19, 19, -3) / 32.
    uint8_t *full = malloc(64 * 64 * 3), *half = malloc(32 * 32 * 3);
    cr_assert_eq(argen_load(&m, &lp), ARGEN_OK, "%s", argen_last_error());
    cr_assert_eq(argen_decode(m, 1, tok, full), ARGEN_OK, "%s", argen_last_error());
    argen_free(m);
    lp.output_size = 32;
    cr_assert_eq(argen_load(&m, &lp), ARGEN_OK, "%s", argen_last_error());
    argen_info(m, &info);
    cr_expect(info.image_size == 64 && info.output_size == 32);
    cr_assert_eq(argen_decode(m, 1, tok, half), ARGEN_OK, "%s", argen_last_error());
    argen_free(m);
    static const double w4[4] = {-3 / 32.0, 19 / 32.0, 19 / 32.0, -3 / 32.0};
    int worst = 0, compared = 0;
    for (int oy = 0; oy < 32; oy++)
        for (int ox = 0; ox < 32; ox++)
            for (int c = 0; c < 3; c++) {
                double v = 0;
                bool clipped = false;  // the float image behind a 0 or 255 is unknown (random weights go far beyond)
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) {
                        int y = 2 * oy - 1 + i, x = 2 * ox - 1 + j;
                        y = y < 0 ? 0 : y > 63 ? 63 : y;
                        x = x < 0 ? 0 : x > 63 ? 63 : x;
                        uint8_t f = full[(y * 64 + x) * 3 + c];
                        clipped |= f == 0 || f == 255;
                        v += w4[i] * w4[j] * ((f + 0.5 - 128.0) / 127.5);  // the float image, to half a level
                    }
                if (clipped) continue;
                double u = 127.5 * v + 128.0;
                int ref = u < 0 ? 0 : u > 255 ? 255 : (int)u, d = abs(ref - (int)half[(oy * 32 + ox) * 3 + c]);
                if (d > worst) worst = d;
                compared++;
            }
    cr_expect(compared > 200 && worst <= 2, "resized pixels vs a bicubic of the full-size 8-bit image: %d levels apart "
              "(%d pixels away from the clamp)", worst, compared);
    free(full);
    free(half);

    argen_load_params_init(&lp);
    lp.vae_path = FIX("var_tiny/vae.pth");
    lp.ckpt_path = FIX("var_tiny/var.pth");
    static const int pns[] = {1, 2, 3, 4};
    lp.patch_nums = pns;
    lp.n_patch_nums = 4;
    lp.device = "cpu";
    cr_assert_eq(argen_load(&m, &lp), ARGEN_OK, "%s", argen_last_error());
    argen_sample_params_init_for(&sp, m);
    cr_expect(sp.cfg == 1.5f && sp.top_k == 900);
    sp.decode = ARGEN_DECODE_ZIPAR;
    uint8_t img[64 * 64 * 3];
    int c3 = 3;
    cr_expect_eq(argen_sample(m, &sp, 1, &c3, ids, img, NULL), ARGEN_ERR_ARG);
    cr_expect(strstr(argen_last_error(), "sequential decoding only") != NULL, "%s", argen_last_error());
    argen_free(m);
    lp.output_size = 32;  // VAR writes its native size only
    cr_expect_eq(argen_load(&m, &lp), ARGEN_ERR_ARG);
    cr_expect(strstr(argen_last_error(), "--eval-size 32") != NULL, "%s", argen_last_error());
}
