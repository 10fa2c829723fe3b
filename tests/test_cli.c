// The argen command line end to end on the var_tiny fixture: greedy sampling reproduces the official tokens and
// image, runs resume and regenerate single images, and bad input gets a clear message and a non-zero exit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/image_io.h"
#include "testutil.h"

static char g_err[16384];

static int cli(const char *const *args) { return run_cli(args, g_err, sizeof g_err); }

static char vae[1024], var[1024];
static void paths(void) {
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
}

static void sample_greedy(const char *dir, const char *extra) {
    char tok[1100];
    snprintf(tok, sizeof tok, "%s/tokens.json", dir);
    const char *args[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "3,7",
                          "--cfg", "2.5", "--top-k", "1", "--out", dir, "--tokens-out", tok, "--device", "cpu", "-q",
                          extra, NULL};
    int rc = cli(args);
    cr_assert_eq(rc, 0, "argen sample failed (%d): %s", rc, g_err);
}

Test(cli, greedy_sample_reproduces_official_tokens_and_image) {
    paths();
    const char *dir = test_tmpdir();
    sample_greedy(dir, NULL);
    float *ref = read_f32(fixture_path("var_tiny/ref.safetensors"), "greedy_image", NULL, NULL, NULL);
    int64_t *ref_tok = read_i64(fixture_path("var_tiny/ref.safetensors"), "greedy_tokens", NULL);
    const char *names[2] = {"000000_c3.png", "000001_c7.png"};
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
                int want = (int)(ref[(b * 3 + c) * 64 * 64 + i] * 255.0f), d = abs(want - rgb[i * 3 + c]);
                if (d > worst) worst = d;
            }
        cr_expect(worst <= 1, "%s differs from the official greedy_image by %d levels", names[b], worst);
        free(rgb);
    }
    // tokens.json: {"tokens": [[30 ids], [30 ids]]}
    char path[1100];
    snprintf(path, sizeof path, "%s/tokens.json", dir);
    int64_t got[60];
    read_tokens_json(path, got, 60);
    expect_equal_i64("tokens.json", got, ref_tok, 60);
    free(ref);
    free(ref_tok);
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(cli, rerun_skips_existing_index_regenerates_and_settings_are_guarded) {
    paths();
    const char *d = test_tmpdir();
    char dir[512];
    snprintf(dir, sizeof dir, "%s", d);
    const char *args[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "1,2",
                          "--n", "2", "--seed", "9", "--out", dir, "--device", "cpu", NULL};
    cr_assert_eq(cli(args), 0, "%s", g_err);
    char p1[1100], p2[1100];
    snprintf(p1, sizeof p1, "%s/000003_c2.png", dir);
    cr_assert(file_size(p1) > 0);
    FILE *f = fopen(p1, "rb");
    static unsigned char a[1 << 16], b[1 << 16];
    size_t na = fread(a, 1, sizeof a, f);
    fclose(f);
    remove(p1);
    cr_assert_eq(cli(args), 0, "%s", g_err);  // resumes: only the missing image is made
    cr_expect(strstr(g_err, "3 of 4 images already"), "%s", g_err);
    f = fopen(p1, "rb");
    size_t nb = fread(b, 1, sizeof b, f);
    fclose(f);
    cr_expect(na == nb && memcmp(a, b, na) == 0, "the regenerated image differs");

    // --index 3 alone into another directory gives the same file
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/single", dir);
    const char *one[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "1,2", "--n", "2",
                         "--seed", "9", "--index", "3", "--out", dir2, "--device", "cpu", NULL};
    cr_assert_eq(cli(one), 0, "%s", g_err);
    snprintf(p2, sizeof p2, "%s/000003_c2.png", dir2);
    f = fopen(p2, "rb");
    cr_assert(f != NULL);
    nb = fread(b, 1, sizeof b, f);
    fclose(f);
    cr_expect(na == nb && memcmp(a, b, na) == 0, "--index 3 differs from image 3 of the full run");

    // with --batch 3 images come in windows [0, 3), [3, 4): --index 1 is made in its window, the batch a full run
    // at --batch 3 makes it in (on a GPU another batch size may round differently)
    char dir3[600];
    snprintf(dir3, sizeof dir3, "%s/window", dir);
    const char *win[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "1,2", "--n",
                         "2", "--seed", "9", "--index", "1", "--batch", "3", "--stats", "--out", dir3, "--device",
                         "cpu", NULL};
    cr_assert_eq(cli(win), 0, "%s", g_err);
    cr_expect(strstr(g_err, "3 images of 30 tokens"), "%s", g_err);

    // other settings into the same directory are refused
    const char *other[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "1,2",
                           "--n", "2", "--seed", "10", "--out", dir, "--device", "cpu", NULL};
    cr_expect_eq(cli(other), 1);
    cr_expect(strstr(g_err, "other settings"), "%s", g_err);
}

static void expect_fail(int want_rc, const char *needle, const char *const *args) {
    int rc = cli(args);
    cr_expect_eq(rc, want_rc, "exit %d (want %d) for %s ...: %s", rc, want_rc, args[0], g_err);
    cr_expect(strstr(g_err, "argen: ") != NULL, "no 'argen:' prefix: %s", g_err);
    cr_expect(strstr(g_err, needle) != NULL, "message lacks '%s': %s", needle, g_err);
}

Test(cli, bad_input_gets_a_clear_error_and_nonzero_exit) {
    paths();
    const char *d = test_tmpdir();
    char dir[512], out[600], trunc[600], html[600], lfs[600], file[600], blocked[700];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(out, sizeof out, "%s/out", dir);
    // a truncated copy of var.pth
    FILE *f = fopen(var, "rb");
    cr_assert(f != NULL);
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(trunc, sizeof trunc, "%s/var_truncated.pth", dir);
    write_file(trunc, buf, n / 2);
    snprintf(html, sizeof html, "%s/var_html.pth", dir);
    const char *page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>...</body></html>\n";
    write_file(html, page, strlen(page));
    snprintf(lfs, sizeof lfs, "%s/var_lfs.pth", dir);
    const char *ptr = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2143\nsize 1234567\n";
    write_file(lfs, ptr, strlen(ptr));
    snprintf(file, sizeof file, "%s/plainfile", dir);
    write_file(file, "x", 1);
    snprintf(blocked, sizeof blocked, "%s/sub", file);  // a directory below a regular file cannot exist

#define BASE "sample", "--vae", vae, "--patch-nums", "1,2,3,4", "--class", "3", "--device", "cpu"
    expect_fail(1, "var_truncated.pth", (const char *[]){BASE, "--ckpt", trunc, "--out", out, NULL});
    expect_fail(1, "HTML", (const char *[]){BASE, "--ckpt", html, "--out", out, NULL});
    expect_fail(1, "LFS", (const char *[]){BASE, "--ckpt", lfs, "--out", out, NULL});
    expect_fail(1, "--vae", (const char *[]){BASE, "--ckpt", vae, "--out", out, NULL});  // a VQVAE as transformer
    expect_fail(1, "--patch-nums", (const char *[]){"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,5",
                                                    "--class", "3", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "no_such_file.pth", (const char *[]){BASE, "--ckpt", "no_such_file.pth", "--out", out, NULL});
    expect_fail(2, "class 12", (const char *[]){"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4",
                                                "--class", "12", "--device", "cpu", "--out", out, NULL});
    expect_fail(1, "plainfile", (const char *[]){BASE, "--ckpt", var, "--out", blocked, NULL});
    expect_fail(2, "--out", (const char *[]){BASE, "--ckpt", var, NULL});
    expect_fail(2, "--top-kk", (const char *[]){BASE, "--ckpt", var, "--out", out, "--top-kk", "3", NULL});
    expect_fail(2, "--cfg", (const char *[]){BASE, "--ckpt", var, "--out", out, "--cfg", "lots", NULL});
    expect_fail(2, "unknown command", (const char *[]){"smaple", NULL});
    // a FIFO named as an input is refused at once (opening it would wait for a writer forever)
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/pipe.pth", dir);
    remove(fifo);
    cr_assert(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    expect_fail(1, "pipe.pth: not a regular file (a FIFO)", (const char *[]){BASE, "--ckpt", fifo, "--out", out, NULL});
    expect_fail(1, "pipe.pth: not a regular file (a FIFO)", (const char *[]){"info", fifo, NULL});
    expect_fail(1, "pipe.pth: not a regular file (a FIFO)", (const char *[]){"recon", "--vae", vae, "--device", "cpu",
                                                                              fifo, out, NULL});
    remove(fifo);
    // output files that cannot be written fail before the model loads: nothing is generated
    char tok[700], out2[600], first[700];
    snprintf(tok, sizeof tok, "%s/missing/t.json", dir);
    snprintf(out2, sizeof out2, "%s/out2", dir);
    expect_fail(1, "--tokens-out", (const char *[]){BASE, "--ckpt", var, "--out", out2, "--tokens-out", tok, NULL});
    cr_expect(strstr(g_err, "missing"), "%s", g_err);
    expect_fail(1, "is a directory", (const char *[]){BASE, "--ckpt", var, "--out", out2, "--grid", dir, NULL});
    snprintf(first, sizeof first, "%s/000000_c3.png", out2);
    cr_expect(access(first, F_OK) != 0, "an image was generated before the output check");
#undef BASE
}

Test(cli, help_info_and_recon) {
    paths();
    const char *cmds[] = {"sample", "recon", "info", "bench"};
    for (int i = 0; i < 4; i++) cr_expect_eq(cli((const char *[]){cmds[i], "--help", NULL}), 0, "%s --help", cmds[i]);
    cr_expect_eq(cli((const char *[]){"--help", NULL}), 0);
    cr_expect_eq(cli((const char *[]){"info", var, "--patch-nums", "1,2,3,4", NULL}), 0, "%s", g_err);
    // recon of the fixture's input image, written as a PNG first
    float *img = read_f32(fixture_path("var_tiny/ref.safetensors"), "input_image", NULL, NULL, NULL);
    uint8_t rgb[64 * 64 * 3];
    for (int i = 0; i < 64 * 64; i++)
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = (uint8_t)((img[c * 64 * 64 + i] + 1.0f) * 127.5f);
    const char *d = test_tmpdir();
    char in[600], out[600];
    snprintf(in, sizeof in, "%s/in.png", d);
    snprintf(out, sizeof out, "%s/out.png", d);
    cr_assert(write_png_rgb8(in, rgb, 64, 64, NULL, NULL, 0) == KT_OK, "%s", kt_last_error());
    int rc = cli((const char *[]){"recon", "--vae", vae, "--patch-nums", "1,2,3,4", "--device", "cpu", in, out, NULL});
    cr_expect_eq(rc, 0, "%s", g_err);
    cr_expect(file_exists(out));
    free(img);
}

// --grid: one PNG with a row per class and a column per image, each cell byte-identical to the image's own file.
Test(cli, grid_png_holds_every_image_in_class_rows) {
    paths();
    char dir[700], grid[800];
    snprintf(dir, sizeof dir, "%s/g", test_tmpdir());
    snprintf(grid, sizeof grid, "%s/grid.png", test_tmpdir());
    const char *args[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "3,7,1", "--n",
                          "2", "--device", "cpu", "-q", "--out", dir, "--grid", grid, NULL};
    int rc = cli(args);
    cr_assert_eq(rc, 0, "%s", g_err);
    uint8_t *g = NULL;
    int gw = 0, gh = 0;
    cr_assert(read_image_rgb8(grid, &g, &gw, &gh) == KT_OK, "%s", kt_last_error());
    cr_assert(gw == 2 * 64 && gh == 3 * 64, "grid is %dx%d, want 128x192 (2 columns, 3 class rows)", gw, gh);
    const int cls[3] = {3, 7, 1};
    for (int k = 0; k < 6; k++) {
        char path[900];
        snprintf(path, sizeof path, "%s/%06d_c%d.png", dir, k, cls[k / 2]);
        uint8_t *im = NULL;
        int w = 0, h = 0;
        cr_assert(read_image_rgb8(path, &im, &w, &h) == KT_OK, "%s", kt_last_error());
        for (int y = 0; y < 64; y++)
            cr_assert(!memcmp(g + (((size_t)(k / 2) * 64 + y) * gw + (size_t)(k % 2) * 64) * 3, im + (size_t)y * 64 * 3,
                              64 * 3), "grid cell (%d, %d) row %d differs from %s", k / 2, k % 2, y, path);
        free(im);
    }
    free(g);
}

// --dtype is a GPU setting: --device auto on a machine without a usable GPU samples in float32 and says so (the
// same images as --device cpu); --device cpu --dtype bf16 stays an error naming the flag.
Test(cli, device_auto_without_gpu_runs_float32) {
    paths();
    const char *dir = test_tmpdir();
    char d1[1100], d2[1100], p1[1200], p2[1200];
    snprintf(d1, sizeof d1, "%s/auto", dir);
    snprintf(d2, sizeof d2, "%s/cpu", dir);
    const char *bad[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "3", "--device",
                         "cpu", "--dtype", "bf16", "--out", d2, NULL};
    cr_expect_eq(cli(bad), 1);
    cr_expect(strstr(g_err, "--dtype") && strstr(g_err, "float32"), "%s", g_err);
    if (kt_cuda_available()) return;  // auto takes the GPU there
    const char *a1[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "3", "--seed", "4",
                        "--device", "auto", "--dtype", "bf16", "--out", d1, NULL};
    cr_assert_eq(cli(a1), 0, "%s", g_err);
    cr_expect(strstr(g_err, "notes:") && strstr(g_err, "--dtype bf16: the CPU computes in float32"), "%s", g_err);
    const char *a2[] = {"sample", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--class", "3", "--seed", "4",
                        "--device", "cpu", "--out", d2, NULL};
    cr_assert_eq(cli(a2), 0, "%s", g_err);
    snprintf(p1, sizeof p1, "%s/000000_c3.png", d1);
    snprintf(p2, sizeof p2, "%s/000000_c3.png", d2);
    uint8_t *r1 = NULL, *r2 = NULL;
    int w1, h1, w2, h2;
    cr_assert(read_image_rgb8(p1, &r1, &w1, &h1) == KT_OK && read_image_rgb8(p2, &r2, &w2, &h2) == KT_OK);
    cr_expect(w1 == w2 && h1 == h2 && memcmp(r1, r2, (size_t)w1 * h1 * 3) == 0, "auto (fp32) differs from cpu");
    free(r1);
    free(r2);
}

// argen bench --arch ops: the op table (one row per case, the CPU's too-large cases listed as skipped), and a
// clear usage error for an unknown family.
Test(cli, bench_op_table) {
    char out[1100];
    snprintf(out, sizeof out, "%s/bench_ops.md", test_tmpdir());
    const char *args[] = {"bench", "--arch", "ops", "--ops", "norm,attention,llamagen", "--reps", "1", "--device", "cpu",
                          NULL};
    cr_assert_eq(run_cli_stdout(args, out, g_err, sizeof g_err), 0, "%s", g_err);
    size_t n = 0;
    char *text = read_file(out, &n);
    cr_assert(text);
    cr_expect(strstr(text, "| layernorm_adaln | (2,256,1024) | float32 out | ") &&
              strstr(text, "| gated_residual_layernorm_adaln | (2,256,1024) | float32 out | ") &&
              strstr(text, "| attention | B=2 Tq=256 kv=680 | float32 | ") &&
              strstr(text, "| attention | B=128 Tq=256 kv=680 | float32 | - | skipped on the CPU (91 GFLOP per call) |") &&
              strstr(text, "| llama_attention (rope, cache rows, attention) | GPT-B step, batch 32 (rows 64) | ") &&
              strstr(text, "| step: the rows above, 12 layers + head | GPT-B step, batch 1 (rows 2) | ") &&
              strstr(text, "| step: the rows above, 12 layers + head | GPT-B step, batch 16 (rows 32) | ") &&
              strstr(text, "x 256 tokens: "),
              "%s", text);
    cr_expect(!strstr(text, "| linear |") && !strstr(text, "| conv3x3 |"), "families not asked for ran:\n%s", text);
    free(text);
    const char *bad[] = {"bench", "--arch", "ops", "--ops", "norm,gemm", "--device", "cpu", NULL};
    expect_fail(2, "--ops: expected all or a comma-separated list", bad);
}

// argen bench --arch sjd-host: one row for the window, the step count of an image (at most 255 forwards after the
// prefill, at least 255 / 8 with a window of 8) and a time.
Test(cli, bench_sjd_host) {
    char out[1100];
    snprintf(out, sizeof out, "%s/bench_sjd.md", test_tmpdir());
    const char *args[] = {"bench", "--arch", "sjd-host", "--sjd-window", "8", "--reps", "1", "--warmup", "0", NULL};
    cr_assert_eq(run_cli_stdout(args, out, g_err, sizeof g_err), 0, "%s", g_err);
    size_t n = 0;
    char *text = read_file(out, &n);
    cr_assert(text);
    const char *row = strstr(text, "\n| 8 | ");
    long steps = 0;
    double tps = 0, us = -1;
    cr_assert(row && sscanf(row, "\n| 8 | %ld | %lf | %lf |", &steps, &tps, &us) == 3, "%s", text);
    cr_expect(steps >= 32 && steps <= 255 && tps >= 1.0 && us > 0, "%s", text);
    free(text);
}

// argen bench --arch png: a row per thread count with positive rates, and the temporary directory removed.
Test(cli, bench_png) {
    char out[1100], tmpdir[1100];
    snprintf(out, sizeof out, "%s/bench_png.md", test_tmpdir());
    snprintf(tmpdir, sizeof tmpdir, "%s/png_tmp", test_tmpdir());
    cr_assert_eq(mkdir(tmpdir, 0777), 0);
    setenv("TMPDIR", tmpdir, 1);
    const char *args[] = {"bench", "--arch", "png", "--batch", "6", "--reps", "1", NULL};
    int rc = run_cli_stdout(args, out, g_err, sizeof g_err);
    unsetenv("TMPDIR");
    cr_assert_eq(rc, 0, "%s", g_err);
    char *text = read_file(out, NULL);
    cr_assert(text && strstr(text, "PNG files of 6 synthetic 256x256 images"), "%s", text);
    const char *row = strstr(text, "\n|       1 |");
    double ms = 0, enc = 0, dec = 0;
    cr_assert(row && sscanf(row, "\n|       1 | %lf | %lf | %lf |", &ms, &enc, &dec) == 3, "%s", text);
    cr_expect(ms > 0 && enc > 0 && dec > 0, "%s", text);
    free(text);
    cr_expect_eq(rmdir(tmpdir), 0, "the benchmark's directory inside %s was not removed", tmpdir);
}

// argen bench --arch pr: a row per distance kind, each with a time and fractions in [0, 1].
Test(cli, bench_precision_recall) {
    char out[1100];
    snprintf(out, sizeof out, "%s/bench_pr.md", test_tmpdir());
    const char *args[] = {"bench", "--arch", "pr", "--batch", "300,200", "--device", "cpu", NULL};
    cr_assert_eq(run_cli_stdout(args, out, g_err, sizeof g_err), 0, "%s", g_err);
    char *text = read_file(out, NULL);
    cr_assert(text && strstr(text, "of 300 samples against 200 reference points"), "%s", text);
    const char *rows[2] = {"\n| fp32 | ", "\n| fp16 (ADM) | "};
    for (int i = 0; i < 2; i++) {
        const char *row = strstr(text, rows[i]);
        double s = -1, p = -1, r = -1;
        cr_assert(row && sscanf(row + strlen(rows[i]), "%lf | %lf | %lf |", &s, &p, &r) == 3, "%s", text);
        cr_expect(s >= 0 && p > 0 && p < 1 && r > 0 && r < 1, "%s", text);
    }
    free(text);
}

// argen bench: the batch table, then with --profile one eager run per batch size timed op by op.
Test(cli, bench_profile_table) {
    paths();
    char out[1100];
    snprintf(out, sizeof out, "%s/bench.md", test_tmpdir());
    const char *args[] = {"bench", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--batch", "1,2", "--reps", "1",
                          "--warmup", "0", "--device", "cpu", "--profile", NULL};
    cr_assert_eq(run_cli_stdout(args, out, g_err, sizeof g_err), 0, "%s", g_err);
    size_t n = 0;
    char *text = read_file(out, &n);
    cr_assert(text);
    cr_expect(strstr(text, "| 1     |") && strstr(text, "| 2     |"), "%s", text);
    cr_expect(strstr(text, "profile: batch 2, one eager run") && strstr(text, "| conv2d | ") &&
              strstr(text, "| var_attention | ") && strstr(text, "| all ops |"), "%s", text);
    free(text);
}
