// The argen command line with --arch llamagen on the llamagen_tiny fixture: greedy sampling reproduces the official
// tokens (sequential, and SJD / ZipAR against theirs) and image, --stats reports the forward passes, and bad input
// (wrong checkpoint kind, bad --decode, bad windows, options of the other architecture) gets a clear message with
// exit code 1 (runtime) or 2 (usage).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/image_io.h"
#include "testutil.h"

static char g_err[16384];
static char vq[1024], gpt[1024], var[1024], vae[1024];

static int cli(const char *const *args) { return run_cli(args, g_err, sizeof g_err); }

static void paths(void) {
    snprintf(vq, sizeof vq, "%s", fixture_path("llamagen_tiny/vq.pt"));
    snprintf(gpt, sizeof gpt, "%s", fixture_path("llamagen_tiny/gpt.pt"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
}

#define LL "sample", "--arch", "llamagen", "--vq", vq, "--ckpt", gpt, "--image-size", "64", "--heads", "4", \
           "--class", "2,9", "--device", "cpu"

Test(cli_llamagen, greedy_tokens_and_image_vs_official) {
    paths();
    const char *dir = test_tmpdir();
    char tok[1100];
    snprintf(tok, sizeof tok, "%s/tokens.json", dir);
    int rc = cli((const char *[]){LL, "--cfg", "2", "--top-k", "1", "--out", dir, "--tokens-out", tok, "-q", NULL});
    cr_assert_eq(rc, 0, "%s", g_err);
    int64_t got[32], *ref = read_i64(fixture_path("llamagen_tiny/ref.safetensors"), "greedy_tokens", NULL);
    read_tokens_json(tok, got, 32);
    expect_equal_i64("tokens.json", got, ref, 32);
    // greedy_image is the decoder output in [-1, 1]; the PNG holds floor(127.5 * clamp(x) + 128)
    float *img = read_f32(fixture_path("llamagen_tiny/ref.safetensors"), "greedy_image", NULL, NULL, NULL);
    const char *names[2] = {"000000_c2.png", "000001_c9.png"};
    for (int b = 0; b < 2; b++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, names[b]);
        uint8_t *rgb = NULL;
        int w = 0, h = 0;
        cr_assert(read_image_rgb8(path, &rgb, &w, &h) == KT_OK, "%s", kt_last_error());
        cr_assert(w == 64 && h == 64);
        int worst = 0;
        for (int i = 0; i < 64 * 64; i++)
            for (int c = 0; c < 3; c++) {
                float x = img[(b * 3 + c) * 64 * 64 + i];
                int want = (int)floorf(127.5f * fminf(fmaxf(x, -1.0f), 1.0f) + 128.0f);
                want = want > 255 ? 255 : want;
                int d = abs(want - rgb[i * 3 + c]);
                if (d > worst) worst = d;
            }
        cr_expect(worst <= 1, "%s differs from the official greedy_image by %d levels", names[b], worst);
        free(rgb);
    }
    free(ref);
    free(img);
}

Test(cli_llamagen, sjd_and_zipar_greedy_with_stats) {
    paths();
    const char *dir = test_tmpdir();
    char tok[1100], out[1100];
    snprintf(tok, sizeof tok, "%s/sjd.json", dir);
    snprintf(out, sizeof out, "%s/sjd", dir);
    int rc = cli((const char *[]){LL, "--cfg", "2", "--top-k", "1", "--decode", "sjd", "--sjd-window", "5",
                                  "--sjd-init", "repeat-horizon", "--stats", "-q", "--batch", "2", "--out", out,
                                  "--tokens-out", tok, NULL});
    cr_assert_eq(rc, 0, "%s", g_err);
    cr_expect(strstr(g_err, "stats: sjd decoding, 2 images of 16 tokens") != NULL, "%s", g_err);
    int64_t got[32], *ref = read_i64(fixture_path("llamagen_tiny/ref.safetensors"), "greedy_tokens", NULL);
    read_tokens_json(tok, got, 32);
    expect_equal_i64("SJD tokens.json", got, ref, 32);
    free(ref);
    snprintf(tok, sizeof tok, "%s/zipar.json", dir);
    snprintf(out, sizeof out, "%s/zipar", dir);
    rc = cli((const char *[]){LL, "--cfg", "2", "--top-k", "1", "--decode", "zipar", "--zipar-window", "2", "--stats",
                              "-q", "--batch", "2", "--out", out, "--tokens-out", tok, NULL});
    cr_assert_eq(rc, 0, "%s", g_err);
    // 2g + (g - 2)s = 12 forward passes for the 4 x 4 grid, window 2; 16 / 12 tokens per forward
    cr_expect(strstr(g_err, "12 forward passes (12.00 per image, sequential 16), 1.33 tokens accepted per forward") != NULL,
              "%s", g_err);
    static const int64_t want[32] = {59, 11, 47, 12, 63, 109, 21, 4, 63, 109, 21, 4, 84, 126, 7, 117,
                                     47, 101, 82, 19, 90, 101, 82, 14, 90, 101, 82, 17, 30, 104, 7, 117};
    read_tokens_json(tok, got, 32);
    expect_equal_i64("ZipAR tokens.json (scripts/zipar_reference.py)", got, want, 32);
}

static void expect_fail(int want_rc, const char *needle, const char *const *args) {
    int rc = cli(args);
    cr_expect_eq(rc, want_rc, "exit %d (want %d): %s", rc, want_rc, g_err);
    cr_expect(strstr(g_err, "argen: ") != NULL, "no 'argen:' prefix: %s", g_err);
    cr_expect(strstr(g_err, needle) != NULL, "message lacks '%s': %s", needle, g_err);
}

Test(cli_llamagen, bad_input_gets_a_clear_error_and_exit_code) {
    paths();
    char out[600];
    snprintf(out, sizeof out, "%s/out", test_tmpdir());
    // wrong checkpoint kinds (runtime errors: the file's contents)
    expect_fail(1, "use --arch var", (const char *[]){"sample", "--arch", "llamagen", "--vq", vq, "--ckpt", var,
                                                      "--class", "1", "--image-size", "64", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "pass it with --vq", (const char *[]){"sample", "--arch", "llamagen", "--vq", vq, "--ckpt", vq,
                                                         "--class", "1", "--image-size", "64", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "LlamaGen GPT", (const char *[]){"sample", "--arch", "llamagen", "--vq", gpt, "--ckpt", gpt,
                                                    "--class", "1", "--image-size", "64", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "use --arch llamagen", (const char *[]){"sample", "--vae", vae, "--ckpt", gpt, "--patch-nums", "1,2,3,4",
                                                           "--class", "1", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "use --arch llamagen --vq", (const char *[]){"sample", "--vae", vq, "--ckpt", var, "--patch-nums",
                                                                "1,2,3,4", "--class", "1", "--device", "cpu", "--out", out, NULL});
    // usage errors
    expect_fail(2, "--decode", (const char *[]){LL, "--decode", "jacobi", "--out", out, NULL});
    expect_fail(2, "sequential decoding only", (const char *[]){"sample", "--vae", vae, "--ckpt", var, "--patch-nums",
                                                                "1,2,3,4", "--class", "1", "--decode", "sjd", "--out", out, NULL});
    expect_fail(2, "--zipar-window", (const char *[]){LL, "--decode", "zipar", "--zipar-window", "1", "--out", out, NULL});
    expect_fail(2, "expected 2 to 3 for this 4x4 token grid",
                (const char *[]){LL, "--decode", "zipar", "--zipar-window", "4", "--out", out, NULL});
    expect_fail(2, "--sjd-window", (const char *[]){LL, "--decode", "sjd", "--sjd-window", "0", "--out", out, NULL});
    expect_fail(2, "--sjd-init", (const char *[]){LL, "--decode", "sjd", "--sjd-init", "left", "--out", out, NULL});
    expect_fail(2, "--ckpt given without --vq", (const char *[]){"sample", "--arch", "llamagen", "--ckpt", gpt,
                                                                    "--class", "1", "--out", out, NULL});
    expect_fail(2, "--patch-nums applies to --arch var", (const char *[]){LL, "--patch-nums", "1,2", "--out", out, NULL});
    expect_fail(2, "--temperature applies to --arch llamagen",
                (const char *[]){"sample", "--vae", vae, "--ckpt", var, "--class", "1", "--temperature", "2", "--out", out, NULL});
    expect_fail(2, "class 10", (const char *[]){LL, "--class", "10", "--out", out, NULL});
    expect_fail(1, "--heads", (const char *[]){"sample", "--arch", "llamagen", "--vq", vq, "--ckpt", gpt, "--image-size",
                                               "64", "--heads", "3", "--class", "1", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "--image-size", (const char *[]){"sample", "--arch", "llamagen", "--vq", vq, "--ckpt", gpt,
                                                    "--image-size", "72", "--class", "1", "--device", "cpu", "--out", out, NULL});
}

// stdout of `argen <args>` into buf.
static void capture(const char *args, char *buf, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", ARGEN_CLI_PATH, args);
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    size_t n = fread(buf, 1, cap - 1, p);
    buf[n] = 0;
    cr_expect_eq(pclose(p), 0, "%s: %s", args, buf);
}

Test(cli_llamagen, help_info_and_bench) {
    paths();
    static char buf[65536];
    capture("sample --help", buf, sizeof buf);
    cr_expect(strstr(buf, "VAR supports sequential only") != NULL && strstr(buf, "LlamaGen supports") != NULL &&
              strstr(buf, "sequential|sjd|zipar") != NULL, "%s", buf);
    char args[3000];
    snprintf(args, sizeof args, "info '%s'", gpt);
    capture(args, buf, sizeof buf);
    cr_expect(strstr(buf, "model: LlamaGen c2i GPT") != NULL && strstr(buf, "2 layers, width 128") != NULL, "%s", buf);
    snprintf(args, sizeof args, "info '%s'", vq);
    capture(args, buf, sizeof buf);
    cr_expect(strstr(buf, "model: LlamaGen VQ tokenizer") != NULL && strstr(buf, "codebook 128 x 8") != NULL, "%s", buf);
    snprintf(args, sizeof args, "bench --arch llamagen --vq '%s' --ckpt '%s' --image-size 64 --heads 4 --decode zipar "
             "--zipar-window 3 --reps 1 --warmup 0 --device cpu --batch 1,2", vq, gpt);
    capture(args, buf, sizeof buf);
    cr_expect(strstr(buf, "|    14.0 |   1.14 |") != NULL, "ZipAR window 3 on a 4x4 grid: 14 forwards per image:\n%s", buf);
}
