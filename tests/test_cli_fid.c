// argen fid / fid-merge / render end to end on the fixtures: FID of two statistics files against pytorch-fid's value,
// pool3 features of a PNG directory against pytorch-fid, 4 shards merged = one run, render output (PNG dir and npz)
// identical across resumes, streaming statistics = statistics of the rendered files, and clear errors for bad input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/npz.h"
#include "eval/precision_recall.h"
#include "eval/stats.h"
#include "cli/image_io.h"
#include "testutil.h"

static char g_err[16384];

static char *tmp(const char *name) {
    static char buf[8][4200];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", test_tmpdir(), name);
    return b;
}

// The value of "key": <number> in a JSON line.
static double json_num(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    cr_assert(p, "no %s in %s", key, json);
    return strtod(p + strlen(pat), NULL);
}

#define INCEPTION fixture_path("fid/inception_random.pth")

// 8 64x64 images: the fixture's two, plus flipped and channel-rotated variants.
static uint8_t *eight_images(void) {
    int64_t n;
    float *unused = NULL;
    (void)unused;
    KtCheckpoint ck;
    OK(kt_ckpt_open(&ck, fixture_path("fid/ref.safetensors")));
    const KtCkptTensor *t = kt_ckpt_find(&ck, "images64_u8");
    cr_assert(t);
    n = kt_ckpt_numel(t);
    const uint8_t *x = t->storage + t->storage_offset;  // (2, 3, 64, 64)
    uint8_t *y = malloc(8 * 64 * 64 * 3);
    for (int v = 0; v < 8; v++)
        for (int h = 0; h < 64; h++)
            for (int w = 0; w < 64; w++)
                for (int c = 0; c < 3; c++) {
                    int src = v % 2, hh = v & 2 ? 63 - h : h, ww = v & 4 ? 63 - w : w, cc = (c + v / 2) % 3;
                    y[(((size_t)v * 64 + h) * 64 + w) * 3 + c] = x[(((size_t)src * 3 + cc) * 64 + hh) * 64 + ww];
                }
    (void)n;
    kt_ckpt_close(&ck);
    return y;
}

static void write_samples_npz(const char *path, const uint8_t *img, int n) {
    EvNpzWriter *w;
    OK(ev_npz_writer_open(&w, path));
    OK(ev_npz_writer_add(w, "arr_0", KT_U8, 4, (int64_t[]){n, 64, 64, 3}, img));
    OK(ev_npz_writer_close(w));
}

Test(cli_fid, fid_of_two_statistics_files_matches_pytorch_fid) {
    const char *out = tmp("fid.json");
    char a[4200], b[4200];  // fixture_path returns a static buffer
    snprintf(a, sizeof a, "%s", fixture_path("fid/ref_batch_stored.npz"));
    snprintf(b, sizeof b, "%s", fixture_path("fid/ref_batch_deflated.npz"));
    const char *args[] = {"fid", a, b, "--json", NULL};
    cr_assert_eq(run_cli_stdout(args, out, g_err, sizeof g_err), 0, "%s", g_err);
    char *json = read_file(out, NULL);
    double fid = json_num(json, "fid");
    cr_assert(fabs(fid - 130.26287816353067) < 1e-6 * 130.26, "FID %.15g (pytorch-fid 130.26287816353067)", fid);
    cr_assert(strstr(json, "\"n_a\": null"), "%s", json);
    free(json);
}

Test(cli_fid, png_directory_features_match_pytorch_fid) {
    const char *dir = tmp("pngs");
    cr_assert(ensure_dir(dir) == KT_OK);
    uint8_t *img = eight_images();
    char p[4200];
    for (int i = 0; i < 2; i++) {  // images 0 and 1 are the fixture's images64_u8
        snprintf(p, sizeof p, "%s/img%d.png", dir, i);
        OK(write_png_rgb8(p, img + (size_t)i * 64 * 64 * 3, 64, 64, NULL, NULL, 0));
    }
    snprintf(p, sizeof p, "%s/notes.txt", dir);  // other files are ignored
    fclose(fopen(p, "w"));
    const char *feats = tmp("feats.npy");
    // --batch 1: the second PNG is decoded while the first is evaluated; the features still come in name order
    const char *args[] = {"fid", dir, "--inception", INCEPTION, "--resize", "pytorch-fid", "--features-out", feats,
                          "--device", "cpu", "--batch", "1", "-q", NULL};
    cr_assert_eq(run_cli(args, g_err, sizeof g_err), 0, "%s", g_err);
    size_t n;
    char *raw = read_file(feats, &n);
    EvNpyHeader h;
    OK(ev_npy_parse_header(&h, (const uint8_t *)raw, n, feats));
    cr_assert(h.dtype == KT_F32 && h.ndim == 2 && h.shape[0] == 2 && h.shape[1] == 2048);
    cr_assert_eq(n, h.header_bytes + h.data_bytes);
    int64_t m;
    float *ref = read_f32(fixture_path("fid/ref.safetensors"), "pool3_64", &m, NULL, NULL);
    expect_close("pool3 via argen fid", (const float *)(raw + h.header_bytes), ref, m, TOL_INCEPTION_F32);
    free(ref);
    free(raw);
    free(img);
}

Test(cli_fid, four_shards_merged_equal_one_run) {
    uint8_t *img = eight_images();
    const char *samples = tmp("samples.npz"), *all = tmp("all.npz"), *merged = tmp("merged.npz");
    write_samples_npz(samples, img, 8);
    free(img);
    const char *args[] = {"fid", samples, "--inception", INCEPTION, "--save-stats", all, "--device", "cpu", "-q",
                          "--batch", "3", NULL, NULL, NULL};
    cr_assert_eq(run_cli(args, g_err, sizeof g_err), 0, "%s", g_err);
    char part[4][4200], shard[16];
    for (int k = 0; k < 4; k++) {
        snprintf(part[k], sizeof part[k], "%s/part%d.npz", test_tmpdir(), k);
        snprintf(shard, sizeof shard, "%d/4", k);
        args[5] = part[k];
        args[11] = "--shard";
        args[12] = shard;
        cr_assert_eq(run_cli(args, g_err, sizeof g_err), 0, "shard %d: %s", k, g_err);
    }
    const char *margs[] = {"fid-merge", part[3], part[1], part[0], part[2], "-o", merged, "-q", NULL};
    cr_assert_eq(run_cli(margs, g_err, sizeof g_err), 0, "%s", g_err);
    EvFeatureStats a, b;
    OK(ev_stats_load(&a, all));
    OK(ev_stats_load(&b, merged));
    cr_assert(a.fixed && b.fixed && a.n_fixed == 8 && b.n_fixed == 8 && a.D_s == 2023 && b.D_s == 2023);
    for (int i = 0; i < 2048; i++) cr_assert(fabs(a.mu[i] - b.mu[i]) <= 1e-12 * (fabs(a.mu[i]) + 1e-6), "mu[%d]", i);
    for (int i = 0; i < 2048 * 2048; i++)
        cr_assert(fabs(a.sigma[i] - b.sigma[i]) <= 1e-9 * (fabs(a.sigma[i]) + 1e-6), "sigma[%d]: %.17g vs %.17g", i,
                  a.sigma[i], b.sigma[i]);
    double m1, s1, m2, s2;
    OK(ev_is_score(&a.is, &m1, &s1));
    OK(ev_is_score(&b.is, &m2, &s2));
    cr_assert(fabs(m1 - m2) < 1e-12 * m1, "IS %.17g vs %.17g", m1, m2);
    ev_stats_free(&a);
    ev_stats_free(&b);
    // FID between the set and its own merged statistics is 0 (up to the square root of rounding noise in the null
    // space of these 8-sample, rank-7 covariances: ~1e-8 per null eigenvalue)
    const char *out = tmp("self.json");
    const char *fargs[] = {"fid", all, merged, "--json", NULL};
    cr_assert_eq(run_cli_stdout(fargs, out, g_err, sizeof g_err), 0, "%s", g_err);
    char *json = read_file(out, NULL);
    cr_assert(fabs(json_num(json, "fid")) < 1e-3, "%s", json);
    free(json);
    // a mu/sigma-only file cannot be merged exactly
    const char *bad[] = {"fid-merge", part[0], all, "-o", tmp("x.npz"), NULL};
    cr_assert_eq(run_cli(bad, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "all.npz") && strstr(g_err, "sums"), "%s", g_err);
}

// pool3 features from a --features-out file (n, 2048), malloc'd
static float *read_features(const char *path, int64_t *n) {
    size_t bytes;
    char *raw = read_file(path, &bytes);
    EvNpyHeader h;
    OK(ev_npy_parse_header(&h, (const uint8_t *)raw, bytes, path));
    cr_assert(h.dtype == KT_F32 && h.ndim == 2 && h.shape[1] == 2048);
    *n = h.shape[0];
    float *x = malloc((size_t)h.data_bytes);
    memcpy(x, raw + h.header_bytes, (size_t)h.data_bytes);
    free(raw);
    return x;
}

// fid-merge of .npy features: the shards' --features-out files joined in order equal one run's (row for row: at
// --batch 1 every image goes through the same computation in either run); mixed or malformed parts are refused.
Test(cli_fid, sharded_features_joined_equal_one_run) {
    uint8_t *img = eight_images();
    char samples[4200], one[4200], joined[4200], part[3][4200], stats[3][4200], narrow[4200], shard[16];
    snprintf(samples, sizeof samples, "%s/jf_samples.npz", test_tmpdir());
    snprintf(one, sizeof one, "%s/jf_one.npy", test_tmpdir());
    snprintf(joined, sizeof joined, "%s/jf_joined.npy", test_tmpdir());
    snprintf(narrow, sizeof narrow, "%s/jf_narrow.npy", test_tmpdir());
    write_samples_npz(samples, img, 8);
    free(img);
    const char *a[] = {"fid", samples, "--inception", INCEPTION, "--features-out", one, "--batch", "1", "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    for (int k = 0; k < 3; k++) {  // shards of 2, 3 and 3 images
        snprintf(part[k], sizeof part[k], "%s/jf_part%d.npy", test_tmpdir(), k);
        snprintf(stats[k], sizeof stats[k], "%s/jf_part%d.npz", test_tmpdir(), k);
        snprintf(shard, sizeof shard, "%d/3", k);
        const char *b[] = {"fid", samples, "--inception", INCEPTION, "--features-out", part[k], "--shard", shard,
                           "--batch", "1", "-q", k < 2 ? "--save-stats" : NULL, stats[k], NULL};  // features only
        cr_assert_eq(run_cli(b, g_err, sizeof g_err), 0, "shard %d: %s", k, g_err);
    }
    const char *m[] = {"fid-merge", part[0], part[1], part[2], "-o", joined, "-q", NULL};
    cr_assert_eq(run_cli(m, g_err, sizeof g_err), 0, "%s", g_err);
    int64_t n1, n2, np;
    float *x1 = read_features(one, &n1), *x2 = read_features(joined, &n2), *xp = read_features(part[1], &np);
    cr_assert(n1 == 8 && n2 == 8 && np == 3, "%lld %lld %lld", (long long)n1, (long long)n2, (long long)np);
    cr_expect(!memcmp(x1, x2, 8 * 2048 * sizeof *x1), "joined features differ from one run's");
    cr_expect(memcmp(x1, x1 + 2048, 2048 * sizeof *x1), "images 0 and 1 have equal features: order is untested");
    free(x1), free(x2), free(xp);
    // refused: .npy and .npz parts mixed, .npy parts into an .npz, --partial, a part of another width
    const char *e1[] = {"fid-merge", part[0], stats[1], "-o", joined, NULL};
    cr_assert_eq(run_cli(e1, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, ".npy") && strstr(g_err, "found 1 .npy of 2"), "%s", g_err);
    const char *e2[] = {"fid-merge", part[0], part[1], "-o", stats[0], NULL};
    cr_assert_eq(run_cli(e2, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "-o FILE.npy"), "%s", g_err);
    const char *e5[] = {"fid", samples, "--shard", "0/3", "--inception", INCEPTION, NULL};  // nothing to keep
    cr_assert_eq(run_cli(e5, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--shard") && strstr(g_err, "--features-out"), "%s", g_err);
    const char *e6[] = {"fid", samples, one, "--pr-distances", "fp16", NULL};
    cr_assert_eq(run_cli(e6, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--pr-distances") && strstr(g_err, "--pr"), "%s", g_err);
    const char *e3[] = {"fid-merge", part[0], part[1], "-o", joined, "--partial", NULL};
    cr_assert_eq(run_cli(e3, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--partial"), "%s", g_err);
    uint8_t hdr[512], file[1024] = {0};
    size_t hl;
    OK(ev_npy_format_header(hdr, sizeof hdr, &hl, KT_F32, 2, (int64_t[]){2, 10}));
    memcpy(file, hdr, hl);
    write_file(narrow, file, hl + 2 * 10 * 4);
    const char *e4[] = {"fid-merge", part[0], narrow, "-o", joined, NULL};
    cr_assert_eq(run_cli(e4, g_err, sizeof g_err), 1);
    cr_expect(strstr(g_err, "jf_narrow.npy") && strstr(g_err, "10 columns"), "%s", g_err);
}

// Checks that the "precision" and "recall" of a JSON line are the library's on these features; returns them.
static EvPrResult expect_library_pr(const char *json, const float *samples, int64_t ns, const float *ref, int64_t nr) {
    KtBackend be;
    test_backend_init(&be, KT_CPU);
    EvPrParams p = ev_pr_params_default();
    EvPrResult want;
    OK(ev_precision_recall(&be, ref, nr, samples, ns, 2048, &p, &want));
    kt_backend_free(&be);
    cr_expect_eq(json_num(json, "precision"), want.precision, "%s: library %g", json, want.precision);
    cr_expect_eq(json_num(json, "recall"), want.recall, "%s: library %g", json, want.recall);
    return want;
}

// An ADM-layout reference batch `ref`: the n images (also in the sample npz `imgs_npz`) as arr_0 beside their
// statistics mu, sigma, mu_s, sigma_s (computed by `argen fid --save-stats stats`, pool3 features to `feats`).
static void write_adm_reference(const char *ref, const char *imgs_npz, const uint8_t *img, int n, const char *stats,
                                const char *feats) {
    const char *s0[] = {"fid", imgs_npz, "--inception", INCEPTION, "--save-stats", stats, "--features-out", feats, "-q",
                        NULL};
    cr_assert_eq(run_cli(s0, g_err, sizeof g_err), 0, "%s", g_err);
    EvFeatureStats st;
    OK(ev_stats_load(&st, stats));
    cr_assert(st.fixed && st.mu_s);
    EvNpzWriter *w;
    OK(ev_npz_writer_open(&w, ref));
    OK(ev_npz_writer_add(w, "arr_0", KT_U8, 4, (int64_t[]){n, 64, 64, 3}, img));
    OK(ev_npz_writer_add(w, "mu", KT_F64, 1, (int64_t[]){2048}, st.mu));
    OK(ev_npz_writer_add(w, "sigma", KT_F64, 2, (int64_t[]){2048, 2048}, st.sigma));
    OK(ev_npz_writer_add(w, "mu_s", KT_F64, 1, (int64_t[]){2023}, st.mu_s));
    OK(ev_npz_writer_add(w, "sigma_s", KT_F64, 2, (int64_t[]){2023, 2023}, st.sigma_s));
    OK(ev_npz_writer_close(w));
    ev_stats_free(&st);
}

// --pr against an ADM-style reference batch (arr_0 images beside mu/sigma/mu_s/sigma_s): the FID is the one of the
// file's statistics (as without --pr), precision and recall are those of the library on the two sets' features;
// then the same from the saved features (.npy inputs).
Test(cli_fid, precision_recall_against_a_reference_batch) {
    uint8_t *img = eight_images();
    const char *a = tmp("a.npz"), *b_imgs = tmp("b_imgs.npz"), *b_stats = tmp("b_stats.npz"), *ref = tmp("ref.npz");
    const char *fa = tmp("fa.npy"), *fb = tmp("fb.npy"), *o1 = tmp("pr1.json"), *o2 = tmp("pr2.json");
    write_samples_npz(a, img, 6);  // samples: images 0-5
    // reference: images 4-7 and two of stripes, away from every sample (so precision and recall differ, and a
    // swap of A and B would show)
    uint8_t *rimg = malloc(6 * 64 * 64 * 3);
    memcpy(rimg, img + 4 * 64 * 64 * 3, 4 * 64 * 64 * 3);
    for (size_t i = 0; i < 2 * 64 * 64 * 3; i++) rimg[4 * 64 * 64 * 3 + i] = (uint8_t)(i / 3 % 64 < 32 ? 20 : 235);
    memcpy(img + 2 * 64 * 64 * 3, rimg, 6 * 64 * 64 * 3);  // img[2..7] now holds the reference set
    free(rimg);
    write_samples_npz(b_imgs, img + 2 * 64 * 64 * 3, 6);
    write_adm_reference(ref, b_imgs, img + 2 * 64 * 64 * 3, 6, b_stats, fb);
    const char *r1[] = {"fid", a, ref, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r1, o1, g_err, sizeof g_err), 0, "%s", g_err);
    const char *r2[] = {"fid", a, ref, "--inception", INCEPTION, "--json", "-q", "--pr", "--features-out", fa, NULL};
    cr_assert_eq(run_cli_stdout(r2, o2, g_err, sizeof g_err), 0, "%s", g_err);
    char *j1 = read_file(o1, NULL), *j2 = read_file(o2, NULL);
    cr_assert(strstr(j1, "\"precision\": null"), "%s", j1);
    cr_assert_eq(json_num(j1, "fid"), json_num(j2, "fid"), "%s vs %s", j1, j2);
    int64_t na, nb;
    float *xa = read_features(fa, &na), *xb = read_features(fb, &nb);
    cr_assert(na == 6 && nb == 6);
    EvPrResult want = expect_library_pr(j2, xa, na, xb, nb);
    cr_expect(want.precision != want.recall, "precision %g = recall %g: the test cannot tell A from B",
              want.precision, want.recall);
    // the same from the saved features (.npy inputs: no network runs, so no weights are given): the same precision
    // and recall, and the FID of the same features up to the order of the moment sums
    char o3[4200], bad_npy[4200];  // tmp() keeps 8 names: these would take a's and b_stats's
    snprintf(o3, sizeof o3, "%s/pr3.json", test_tmpdir());
    snprintf(bad_npy, sizeof bad_npy, "%s/narrow.npy", test_tmpdir());
    const char *r3[] = {"fid", fa, fb, "--json", "-q", "--pr", NULL};
    cr_assert_eq(run_cli_stdout(r3, o3, g_err, sizeof g_err), 0, "%s", g_err);
    char *j3 = read_file(o3, NULL);
    cr_expect_eq(json_num(j3, "precision"), want.precision, "%s", j3);
    cr_expect_eq(json_num(j3, "recall"), want.recall, "%s", j3);
    cr_expect(fabs(json_num(j3, "fid") - json_num(j2, "fid")) <= 1e-6 * json_num(j2, "fid"), "%s vs %s", j3, j2);
    cr_expect(strstr(j3, "\"sfid\": null") && strstr(j3, "\"is_mean\": null") && strstr(j3, "\"n_a\": 6"), "%s", j3);
    free(j3);
    free(xa), free(xb), free(j1), free(j2), free(img);
    // a features file of another width is refused, naming it
    uint8_t hdr[512];
    size_t hl;
    OK(ev_npy_format_header(hdr, sizeof hdr, &hl, KT_F32, 2, (int64_t[]){2, 10}));
    uint8_t file[1024] = {0};
    memcpy(file, hdr, hl);
    write_file(bad_npy, file, hl + 2 * 10 * 4);
    const char *e0[] = {"fid", bad_npy, NULL};
    cr_assert_eq(run_cli(e0, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "narrow.npy") && strstr(g_err, "10 columns"), "%s", g_err);
    // statistics without images, and one input, are refused
    const char *e1[] = {"fid", a, b_stats, "--inception", INCEPTION, "--pr", "-q", NULL};
    cr_assert_eq(run_cli(e1, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "b_stats.npz") && strstr(g_err, "statistics only"), "%s", g_err);
    const char *e2[] = {"fid", a, "--inception", INCEPTION, "--pr", NULL};
    cr_assert_eq(run_cli(e2, g_err, sizeof g_err), 2);
    cr_assert(strstr(g_err, "--pr"), "%s", g_err);
}

// ---------------------------------------------------------------------------------------------------- render
#define VAR_ARGS "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4", "--classes", "2,5,7", "--per-class", "2"

Test(cli_fid, render_resumes_to_identical_outputs) {
    char vae[4200], var[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *dir1 = tmp("r1"), *dir2 = tmp("r2"), *npz1 = tmp("r1.npz"), *npz2 = tmp("r2.npz");
    // windows of 4 images ([0, 4), [4, 6)): the interrupted run stops inside the first, the resumed run generates
    // that window whole again and writes its missing images (the same batch as the uninterrupted run's)
    const char *a1[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir1, "-q", NULL};
    cr_assert_eq(run_cli(a1, g_err, sizeof g_err), 0, "%s", g_err);
    // an interrupted run (stopped after 2 new images) resumed later gives the same bytes
    setenv("ARGEN_RENDER_MAX_IMAGES", "2", 1);
    const char *a2[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir2, "-q", NULL};
    cr_assert_eq(run_cli(a2, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "stopped after 2"), "%s", g_err);
    const char *n2[] = {"render", VAR_ARGS, "--batch", "4", "--out", npz2, "-q", NULL};
    cr_assert_eq(run_cli(n2, g_err, sizeof g_err), 1);
    unsetenv("ARGEN_RENDER_MAX_IMAGES");
    char p[4300];
    snprintf(p, sizeof p, "%s.partial", npz2);
    cr_assert(file_exists(p) && !file_exists(npz2), "an interrupted npz render keeps its work file only");
    cr_assert_eq(run_cli(a2, g_err, sizeof g_err), 0, "%s", g_err);
    cr_assert_eq(run_cli(n2, g_err, sizeof g_err), 0, "%s", g_err);
    cr_assert(!file_exists(p), "work files are removed when the npz is complete");
    const char *a3[] = {"render", VAR_ARGS, "--batch", "4", "--out", npz1, "-q", NULL};
    cr_assert_eq(run_cli(a3, g_err, sizeof g_err), 0, "%s", g_err);
    static const int cls[3] = {2, 5, 7};
    EvNpz *z1, *z2;
    OK(ev_npz_open(&z1, npz1));
    OK(ev_npz_open(&z2, npz2));
    EvNpyStream *s1, *s2;
    EvNpyHeader h1, h2;
    OK(ev_npy_stream_open(&s1, z1, "arr_0", &h1));
    OK(ev_npy_stream_open(&s2, z2, "arr_0", &h2));
    cr_assert(h1.dtype == KT_U8 && h1.ndim == 4 && h1.shape[0] == 6 && h1.shape[1] == 64 && h1.shape[3] == 3);
    uint8_t *x1 = malloc(6 * 64 * 64 * 3), *x2 = malloc(6 * 64 * 64 * 3);
    int64_t got;
    OK(ev_npy_stream_read(s1, x1, 6, &got));
    OK(ev_npy_stream_read(s2, x2, 6, &got));
    cr_assert(!memcmp(x1, x2, 6 * 64 * 64 * 3), "resumed npz differs");
    for (int k = 0; k < 6; k++) {  // the PNGs of both directories hold the same pixels as the npz rows
        for (int d = 0; d < 2; d++) {
            snprintf(p, sizeof p, "%s/%06d_c%d.png", d ? dir2 : dir1, k, cls[k / 2]);
            uint8_t *rgb;
            int w, h;
            OK(read_image_rgb8(p, &rgb, &w, &h));
            cr_assert(w == 64 && h == 64 && !memcmp(rgb, x1 + (size_t)k * 64 * 64 * 3, 64 * 64 * 3), "%s", p);
            free(rgb);
        }
    }
    free(x1), free(x2);
    ev_npy_stream_close(s1), ev_npy_stream_close(s2);
    ev_npz_close(z1), ev_npz_close(z2);
    // a finished npz is not overwritten; other settings into the same output are refused
    cr_assert_eq(run_cli(a3, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "exists already"), "%s", g_err);
    const char *a4[] = {"render", VAR_ARGS, "--cfg", "3", "--out", dir1, "-q", NULL};
    cr_assert_eq(run_cli(a4, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "other settings"), "%s", g_err);
}

// Files are written on other threads while the next batch is generated: a file that cannot be written (a directory
// in its place) still fails the run, naming it, and the run resumes once it is out of the way.
Test(cli_fid, render_reports_a_file_it_cannot_write) {
    char vae[4200], var[4200], blocked[4300];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *dir = tmp("blocked");
    cr_assert(ensure_dir(dir) == KT_OK);
    snprintf(blocked, sizeof blocked, "%s/000001_c2.png", dir);  // image 1 of the first batch of 2
    cr_assert(ensure_dir(blocked) == KT_OK);
    const char *a[] = {"render", VAR_ARGS, "--batch", "2", "--out", dir, "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "000001_c2.png"), "%s", g_err);
    rmdir(blocked);
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    for (int k = 0; k < 6; k++) {
        char p[4300];
        snprintf(p, sizeof p, "%s/%06d_c%d.png", dir, k, (int[]){2, 5, 7}[k / 2]);
        cr_assert(file_exists(p), "%s", p);
    }
}

Test(cli_fid, render_streaming_statistics_equal_those_of_its_files) {
    char vae[4200], var[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *npz = tmp("s.npz"), *ref = tmp("ref_stats.npz"), *o1 = tmp("o1.json"), *o2 = tmp("o2.json");
    // reference statistics: 8 other images
    uint8_t *img = eight_images();
    const char *ref_samples = tmp("ref_samples.npz");
    write_samples_npz(ref_samples, img, 8);
    free(img);
    const char *r0[] = {"fid", ref_samples, "--inception", INCEPTION, "--save-stats", ref, "-q", NULL};
    cr_assert_eq(run_cli(r0, g_err, sizeof g_err), 0, "%s", g_err);
    const char *r1[] = {"render", VAR_ARGS, "--out", npz, "--fid-ref", ref, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r1, o1, g_err, sizeof g_err), 0, "%s", g_err);
    const char *r2[] = {"fid", npz, ref, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r2, o2, g_err, sizeof g_err), 0, "%s", g_err);
    char *j1 = read_file(o1, NULL), *j2 = read_file(o2, NULL);
    cr_assert(fabs(json_num(j1, "fid") - json_num(j2, "fid")) < 1e-9 * json_num(j2, "fid"), "%s vs %s", j1, j2);
    cr_assert(fabs(json_num(j1, "sfid") - json_num(j2, "sfid")) < 1e-9 * json_num(j2, "sfid"), "%s vs %s", j1, j2);
    cr_assert(json_num(j1, "fid") > 0);
    cr_assert(strstr(j1, "\"n_a\": 6") && strstr(j1, "\"n_b\": 8"), "%s", j1);
    // a PNG render interrupted after 3 images, resumed with statistics: the earlier run's files are read back (on
    // several threads) beside the new ones, so the statistics are those of its files
    const char *dir = tmp("resumed_pngs"), *o3 = tmp("o3.json");
    setenv("ARGEN_RENDER_MAX_IMAGES", "3", 1);
    const char *r3[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir, "-q", NULL};
    cr_assert_eq(run_cli(r3, g_err, sizeof g_err), 1);
    unsetenv("ARGEN_RENDER_MAX_IMAGES");
    const char *r4[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir, "--fid-ref", ref, "--inception", INCEPTION,
                        "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r4, o3, g_err, sizeof g_err), 0, "%s", g_err);
    const char *o4 = tmp("o4.json"), *r5[] = {"fid", dir, ref, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r5, o4, g_err, sizeof g_err), 0, "%s", g_err);
    char *j3 = read_file(o3, NULL), *j4 = read_file(o4, NULL);
    cr_assert(fabs(json_num(j3, "fid") - json_num(j4, "fid")) < 1e-9 * json_num(j4, "fid"), "%s vs %s", j3, j4);
    cr_assert(strstr(j3, "\"n_a\": 6"), "%s", j3);
    free(j1), free(j2), free(j3), free(j4);
}

// render --pr and --features-out: one pass gives what a render to a file and a second pass of `argen fid` give (the
// same precision and recall, the same pool3 features up to the GEMM's batch-size rounding), also on a resumed run
// whose earlier images are read back; --save-stats works without --fid-ref; bad uses are refused before any image.
Test(cli_fid, render_precision_recall_and_features_equal_a_second_pass) {
    char vae[4200], var[4200], p[16][4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *names[] = {"ref_imgs.npz", "ref_stats.npz", "ref_feats.npy", "ref.npz", "s.npz", "f_render.npy",
                           "f_fid.npy", "o1.json", "o2.json", "dir", "f_resumed.npy", "st_resumed.npz", "o3.json"};
    for (int i = 0; i < 13; i++) snprintf(p[i], sizeof p[i], "%s/rpr_%s", test_tmpdir(), names[i]);
    const char *ref_imgs = p[0], *ref_stats = p[1], *ref_feats = p[2], *ref = p[3], *npz = p[4], *f1 = p[5];
    const char *f2 = p[6], *o1 = p[7], *o2 = p[8], *dir = p[9], *f3 = p[10], *st3 = p[11], *o3 = p[12];
    // the reference: the render's first three images and five others, so that precision and recall differ (a swap
    // of samples and reference would show) and the recall is neither 0 nor 1
    const char *r0[] = {"render", VAR_ARGS, "--batch", "4", "--out", npz, "-q", NULL};
    cr_assert_eq(run_cli(r0, g_err, sizeof g_err), 0, "%s", g_err);
    uint8_t *img = eight_images();
    EvNpz *z;
    EvNpyStream *rs;
    EvNpyHeader h;
    int64_t got;
    OK(ev_npz_open(&z, npz));
    OK(ev_npy_stream_open(&rs, z, "arr_0", &h));
    cr_assert(h.ndim == 4 && h.shape[0] == 6 && h.shape[1] == 64 && h.shape[2] == 64 && h.shape[3] == 3);
    OK(ev_npy_stream_read(rs, img, 3, &got));
    cr_assert_eq(got, 3);
    ev_npy_stream_close(rs);
    ev_npz_close(z);
    remove(npz);
    write_samples_npz(ref_imgs, img, 8);
    write_adm_reference(ref, ref_imgs, img, 8, ref_stats, ref_feats);
    free(img);
    const char *r1[] = {"render", VAR_ARGS, "--batch", "4", "--out", npz, "--fid-ref", ref, "--pr", "--features-out",
                        f1, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r1, o1, g_err, sizeof g_err), 0, "%s", g_err);
    const char *r2[] = {"fid", npz, ref, "--pr", "--features-out", f2, "--inception", INCEPTION, "--json", "-q", NULL};
    cr_assert_eq(run_cli_stdout(r2, o2, g_err, sizeof g_err), 0, "%s", g_err);
    char *j1 = read_file(o1, NULL), *j2 = read_file(o2, NULL);
    int64_t n1, n2, nr;
    float *x1 = read_features(f1, &n1), *x2 = read_features(f2, &n2), *xr = read_features(ref_feats, &nr);
    cr_assert(n1 == 6 && n2 == 6 && nr == 8, "%lld %lld %lld", (long long)n1, (long long)n2, (long long)nr);
    double worst = 0;
    for (int64_t i = 0; i < 6 * 2048; i++) {
        double d = fabs((double)x1[i] - x2[i]) / (fabs((double)x2[i]) + 1e-3);
        if (d > worst) worst = d;
    }
    cr_expect(worst < 1e-4, "render's features differ from fid's by %g (relative)", worst);
    EvPrResult want = expect_library_pr(j1, x1, n1, xr, nr);
    cr_expect_eq(json_num(j1, "precision"), json_num(j2, "precision"), "%s vs %s", j1, j2);
    cr_expect_eq(json_num(j1, "recall"), json_num(j2, "recall"), "%s vs %s", j1, j2);
    cr_expect(fabs(json_num(j1, "fid") - json_num(j2, "fid")) < 1e-7 * json_num(j2, "fid"), "%s vs %s", j1, j2);
    cr_expect(want.precision > 0 && want.recall > 0 && want.precision != want.recall && want.recall < 1,
              "precision %g, recall %g: the test cannot tell samples from reference", want.precision, want.recall);
    cr_expect(strstr(j1, "\"n_a\": 6"), "%s", j1);
    // interrupted after 3 images, resumed with --features-out and --save-stats (no --fid-ref): the earlier images
    // are read back, so the features cover the whole set in image order
    setenv("ARGEN_RENDER_MAX_IMAGES", "3", 1);
    const char *r3[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir, "-q", NULL};
    cr_assert_eq(run_cli(r3, g_err, sizeof g_err), 1);
    unsetenv("ARGEN_RENDER_MAX_IMAGES");
    const char *r4[] = {"render", VAR_ARGS, "--batch", "4", "--out", dir, "--features-out", f3, "--save-stats", st3,
                        "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(r4, g_err, sizeof g_err), 0, "%s", g_err);
    int64_t n3;
    float *x3 = read_features(f3, &n3);
    cr_assert_eq(n3, 6);
    cr_expect(!memcmp(x3, x1, 6 * 2048 * sizeof *x1), "resumed render's features differ from the uninterrupted one's");
    // features alone (no --out, no statistics): the same rows
    char f4[4200];
    snprintf(f4, sizeof f4, "%s/rpr_f_only.npy", test_tmpdir());
    const char *r6[] = {"render", VAR_ARGS, "--batch", "4", "--features-out", f4, "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(r6, g_err, sizeof g_err), 0, "%s", g_err);
    int64_t n4;
    float *x4 = read_features(f4, &n4);
    cr_expect(n4 == 6 && !memcmp(x4, x1, 6 * 2048 * sizeof *x1), "features-only render differs");
    free(x4);
    const char *r5[] = {"fid", st3, ref, "--json", "-q", NULL};  // its statistics: the same FID
    cr_assert_eq(run_cli_stdout(r5, o3, g_err, sizeof g_err), 0, "%s", g_err);
    char *j3 = read_file(o3, NULL);
    cr_expect(fabs(json_num(j3, "fid") - json_num(j1, "fid")) < 1e-7 * json_num(j1, "fid"), "%s vs %s", j3, j1);
    free(j1), free(j2), free(j3), free(x1), free(x2), free(x3), free(xr);
    // refused: --pr without --fid-ref or with --shard (usage), and against statistics without images (before
    // rendering: no output appears)
    char out[4200];
    snprintf(out, sizeof out, "%s/rpr_never", test_tmpdir());
    const char *e1[] = {"render", VAR_ARGS, "--out", out, "--pr", "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(e1, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--pr") && strstr(g_err, "--fid-ref"), "%s", g_err);
    const char *e2[] = {"render", VAR_ARGS, "--out", out, "--fid-ref", ref, "--pr", "--shard", "0/2", "--save-stats",
                        st3, "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(e2, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--pr") && strstr(g_err, "--shard") && strstr(g_err, "fid-merge"), "%s", g_err);
    const char *e4[] = {"render", VAR_ARGS, NULL};  // nothing would be kept
    cr_assert_eq(run_cli(e4, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "nothing to keep") && strstr(g_err, "--features-out"), "%s", g_err);
    const char *e3[] = {"render", VAR_ARGS, "--out", out, "--fid-ref", ref_stats, "--pr", "--inception", INCEPTION,
                        "-q", NULL};
    cr_assert_eq(run_cli(e3, g_err, sizeof g_err), 1);
    cr_expect(strstr(g_err, "rpr_ref_stats.npz") && strstr(g_err, "arr_0"), "%s", g_err);
    cr_expect(!file_exists(out), "%s was created by a refused run", out);
}

Test(cli_fid, protocol_fixes_its_settings) {
    char vae[4200], var[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *a[] = {"render", "--protocol", "var-d16", "--cfg", "4", "--vae", vae, "--ckpt", var, "--out",
                       tmp("p"), NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 2);
    cr_assert(strstr(g_err, "--cfg") && strstr(g_err, "var-d16"), "%s", g_err);
    // the tiny model has 10 classes; the protocol renders 0-999
    const char *b[] = {"render", "--protocol", "var-d16", "--vae", vae, "--ckpt", var, "--patch-nums", "1,2,3,4",
                       "--out", tmp("p"), NULL};
    cr_assert_eq(run_cli(b, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "class 10"), "%s", g_err);
}

// --random-init ARCH: timing runs without checkpoints (the official architecture with random weights), recorded in
// the run's settings; it replaces --vae/--ckpt, and a render without it needs --ckpt.
Test(cli_fid, render_with_random_weights) {
    const char *dir = tmp("rnd");
    const char *a[] = {"render", "--random-init", "var-d2", "--patch-nums", "1,2", "--classes", "0,1", "--per-class",
                       "1", "--out", dir, "--device", "cpu", "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    char p[4400];
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%06d_c%d.png", dir, k, k);
        cr_expect(file_exists(p), "%s missing", p);
    }
    snprintf(p, sizeof p, "%s/argen_run.json", dir);
    char *j = read_file(p, NULL);
    cr_expect(j && strstr(j, "\"random_init\": \"var-d2\""), "%s", j ? j : "(no argen_run.json)");
    free(j);
    char vae[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    const char *b[] = {"render", "--random-init", "var-d2", "--vae", vae, "--out", tmp("rnd2"), NULL};
    cr_assert_eq(run_cli(b, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--random-init") && strstr(g_err, "--ckpt"), "%s", g_err);
    const char *c[] = {"render", "--random-init", "llamagen-b", "--out", tmp("rnd3"), NULL};  // --arch is var
    cr_assert_eq(run_cli(c, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--random-init") && strstr(g_err, "var-dN") && strstr(g_err, "llamagen-b"), "%s", g_err);
    const char *d[] = {"render", "--vae", vae, "--out", tmp("rnd4"), NULL};
    cr_assert_eq(run_cli(d, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--ckpt"), "%s", g_err);
}

// LlamaGen's 384px protocol renders at the model's size and stores images resized to the evaluation size.
Test(cli_fid, render_llamagen_at_an_evaluation_size) {
    char vq[4200], gpt[4200];
    snprintf(vq, sizeof vq, "%s", fixture_path("llamagen_tiny/vq.pt"));
    snprintf(gpt, sizeof gpt, "%s", fixture_path("llamagen_tiny/gpt.pt"));
    const char *npz = tmp("ll32.npz"), *dir = tmp("ll32");
    const char *a[] = {"render", "--arch", "llamagen", "--vq", vq, "--ckpt", gpt, "--image-size", "64", "--heads", "4",
                       "--eval-size", "32", "--classes", "1,4", "--per-class", "2", "--out", npz, "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    EvNpz *z;
    OK(ev_npz_open(&z, npz));
    EvNpyStream *st;
    EvNpyHeader h;
    OK(ev_npy_stream_open(&st, z, "arr_0", &h));
    cr_assert(h.ndim == 4 && h.shape[0] == 4 && h.shape[1] == 32 && h.shape[2] == 32 && h.shape[3] == 3,
              "%lld x %lld x %lld", (long long)h.shape[0], (long long)h.shape[1], (long long)h.shape[2]);
    uint8_t *x = malloc(4 * 32 * 32 * 3);
    int64_t got;
    OK(ev_npy_stream_read(st, x, 4, &got));
    ev_npy_stream_close(st), ev_npz_close(z);
    a[18] = dir;  // the PNG directory holds the same 32x32 images, and its manifest the size
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    char p[4300];
    snprintf(p, sizeof p, "%s/%06d_c%d.png", dir, 3, 4);
    uint8_t *rgb;
    int w, hh;
    OK(read_image_rgb8(p, &rgb, &w, &hh));
    cr_assert(w == 32 && hh == 32 && !memcmp(rgb, x + 3 * 32 * 32 * 3, 32 * 32 * 3), "%s: %dx%d", p, w, hh);
    free(rgb), free(x);
    snprintf(p, sizeof p, "%s/argen_run.json", dir);
    char *manifest = read_file(p, NULL);
    cr_assert(strstr(manifest, "\"image_size\": 64, \"eval_size\": 32"), "%s", manifest);
    free(manifest);
    // the 384px protocols fix the evaluation size; VAR has none to change
    const char *b[] = {"render", "--protocol", "llamagen-xl", "--vq", vq, "--ckpt", gpt, "--eval-size", "128",
                       "--out", tmp("x"), NULL};
    cr_assert_eq(run_cli(b, g_err, sizeof g_err), 2);
    cr_assert(strstr(g_err, "--eval-size") && strstr(g_err, "llamagen-xl"), "%s", g_err);
    char vae[4200], var[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *c[] = {"render", VAR_ARGS, "--eval-size", "32", "--out", tmp("v"), "-q", NULL};
    cr_assert_eq(run_cli(c, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "--eval-size 32"), "%s", g_err);
}

// render --decode: SJD at top-k 1 renders exactly the sequential greedy set (its tokens are the greedy ones), ZipAR
// reports fewer forward passes than tokens, the strategy is recorded in the manifest (a resume with another one is
// refused), and the strategies' options are refused where they do not apply.
Test(cli_fid, render_llamagen_with_a_decoding_strategy) {
    char vq[4200], gpt[4200], seq[4200], sjd[4200], zip[4200];
    snprintf(vq, sizeof vq, "%s", fixture_path("llamagen_tiny/vq.pt"));
    snprintf(gpt, sizeof gpt, "%s", fixture_path("llamagen_tiny/gpt.pt"));
    snprintf(seq, sizeof seq, "%s/dec_seq.npz", test_tmpdir());
    snprintf(sjd, sizeof sjd, "%s/dec_sjd.npz", test_tmpdir());
    snprintf(zip, sizeof zip, "%s/dec_zipar", test_tmpdir());
#define LL_ARGS "render", "--arch", "llamagen", "--vq", vq, "--ckpt", gpt, "--image-size", "64", "--heads", "4", \
                "--classes", "1,4", "--per-class", "2", "--top-k", "1", "--batch", "2"
    const char *a[] = {LL_ARGS, "--out", seq, "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 0, "%s", g_err);
    const char *b[] = {LL_ARGS, "--out", sjd, "--decode", "sjd", "--sjd-window", "4", NULL};
    cr_assert_eq(run_cli(b, g_err, sizeof g_err), 0, "%s", g_err);
    cr_expect(strstr(g_err, "sjd decoding:") && strstr(g_err, "(sequential: 16)"), "%s", g_err);
    size_t n1, n2;
    char *x1 = read_file(seq, &n1), *x2 = read_file(sjd, &n2);
    EvNpz *z1, *z2;
    OK(ev_npz_open_memory(&z1, x1, n1, seq));
    OK(ev_npz_open_memory(&z2, x2, n2, sjd));
    uint8_t *i1 = malloc(4 * 64 * 64 * 3), *i2 = malloc(4 * 64 * 64 * 3);
    EvNpyStream *s1, *s2;
    EvNpyHeader h;
    int64_t got;
    OK(ev_npy_stream_open(&s1, z1, "arr_0", &h));
    OK(ev_npy_stream_read(s1, i1, 4, &got));
    cr_assert_eq(got, 4);
    OK(ev_npy_stream_open(&s2, z2, "arr_0", &h));
    OK(ev_npy_stream_read(s2, i2, 4, &got));
    cr_assert_eq(got, 4);
    cr_expect(!memcmp(i1, i2, 4 * 64 * 64 * 3), "greedy SJD rendered other images than greedy sequential decoding");
    ev_npy_stream_close(s1), ev_npy_stream_close(s2), ev_npz_close(z1), ev_npz_close(z2);
    free(i1), free(i2), free(x1), free(x2);
    char manifest[4300];
    snprintf(manifest, sizeof manifest, "%s.json", sjd);
    char *m = read_file(manifest, NULL);
    cr_expect(m && strstr(m, "\"decode\": \"sjd\", \"sjd_window\": 4, \"sjd_init\": \"random\""), "%s", m);
    free(m);
    const char *c[] = {LL_ARGS, "--out", zip, "--decode", "zipar", "--zipar-window", "2", NULL};
    cr_assert_eq(run_cli(c, g_err, sizeof g_err), 0, "%s", g_err);
    const char *fw = strstr(g_err, "zipar decoding: ");
    cr_assert(fw, "%s", g_err);
    double per = strtod(fw + strlen("zipar decoding: "), NULL);
    cr_expect(per > 1 && per < 16, "ZipAR: %g forward passes per image for 16 tokens", per);
    // a resume with another strategy is refused; options of other strategies and of VAR are refused
    const char *d[] = {LL_ARGS, "--out", zip, "-q", NULL};
    cr_assert_eq(run_cli(d, g_err, sizeof g_err), 1);
    cr_expect(strstr(g_err, "other settings") && strstr(g_err, "zipar"), "%s", g_err);
    const char *e[] = {LL_ARGS, "--out", zip, "--zipar-window", "3", NULL};
    cr_assert_eq(run_cli(e, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--zipar-window") && strstr(g_err, "--decode zipar"), "%s", g_err);
    const char *f[] = {LL_ARGS, "--out", zip, "--decode", "zipar", "--zipar-window", "4", NULL};
    cr_assert_eq(run_cli(f, g_err, sizeof g_err), 1);
    cr_expect(strstr(g_err, "--zipar-window 4") && strstr(g_err, "2 to 3"), "%s", g_err);
#undef LL_ARGS
    char vae[4200], var[4200];
    snprintf(vae, sizeof vae, "%s", fixture_path("var_tiny/vae.pth"));
    snprintf(var, sizeof var, "%s", fixture_path("var_tiny/var.pth"));
    const char *v[] = {"render", VAR_ARGS, "--decode", "sjd", "--out", tmp("v"), NULL};
    cr_assert_eq(run_cli(v, g_err, sizeof g_err), 2);
    cr_expect(strstr(g_err, "--decode sjd") && strstr(g_err, "sequential"), "%s", g_err);
}

// ---------------------------------------------------------------------------------------------- bad inputs
Test(cli_fid, bad_inputs_give_clear_errors) {
    // truncated sample npz
    uint8_t *img = eight_images();
    const char *good = tmp("good.npz"), *cut = tmp("cut.npz");
    write_samples_npz(good, img, 8);
    size_t n;
    char *raw = read_file(good, &n);
    FILE *f = fopen(cut, "wb");
    fwrite(raw, 1, n / 2, f);
    fclose(f);
    free(raw);
    const char *a[] = {"fid", cut, "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "cut.npz"), "%s", g_err);
    // a directory with only JPEGs
    const char *dir = tmp("jpegs");
    cr_assert(ensure_dir(dir) == KT_OK);
    char p[4300];
    snprintf(p, sizeof p, "%s/a.jpg", dir);
    OK(write_jpeg_rgb8(p, img, 64, 64, 90));
    a[1] = dir;
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "no .png files") && strstr(g_err, "JPEG"), "%s", g_err);
    // a 16-bit PNG among 8-bit ones
    snprintf(p, sizeof p, "%s/b.png", dir);
    static const uint8_t png16[] = {  // 1x1 16-bit grayscale PNG (made with Python's zlib)
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x10, 0x00, 0x00, 0x00, 0x00, 0x6a, 0xee, 0x47, 0x16, 0x00, 0x00, 0x00,
        0x0b, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x10, 0x32, 0x01, 0x00, 0x00, 0x5b, 0x00, 0x47, 0x96, 0xfb,
        0x1b, 0x65, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    f = fopen(p, "wb");
    fwrite(png16, 1, sizeof png16, f);
    fclose(f);
    cr_assert_eq(run_cli(a, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "b.png") && strstr(g_err, "16-bit"), "%s", g_err);
    // no Inception weights anywhere
    setenv("HOME", test_tmpdir(), 1);
    unsetenv("ARGEN_INCEPTION");
    const char *c[] = {"fid", good, "-q", NULL};
    cr_assert_eq(run_cli(c, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "pt_inception-2015-12-05-6726825d.pth") && strstr(g_err, "--inception"), "%s", g_err);
    // an npz that is neither samples nor statistics
    const char *d[] = {"fid", fixture_path("fid/ref.safetensors"), "-q", NULL};
    cr_assert_eq(run_cli(d, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "ref.safetensors"), "%s", g_err);
    // output files in a missing directory: refused before any image is read
    const char *e[] = {"fid", good, "--inception", INCEPTION, "--save-stats", tmp("no/such/dir/s.npz"), "-q", NULL};
    cr_assert_eq(run_cli(e, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "--save-stats") && strstr(g_err, "no/such/dir"), "%s", g_err);
    const char *e2[] = {"fid", good, "--inception", INCEPTION, "--features-out", tmp("no/f.npy"), "-q", NULL};
    cr_assert_eq(run_cli(e2, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "--features-out"), "%s", g_err);
    // FIFOs as inputs (a sample set, the weights, a PNG in a directory) are refused at once, not waited on
    char fifo[4200], fifo_dir[4200], fifo_png[4300];
    snprintf(fifo, sizeof fifo, "%s/pipe.npz", test_tmpdir());
    snprintf(fifo_dir, sizeof fifo_dir, "%s/fifo_pngs", test_tmpdir());
    snprintf(fifo_png, sizeof fifo_png, "%s/a.png", fifo_dir);
    cr_assert(ensure_dir(fifo_dir) == KT_OK);
    cr_assert(mkfifo(fifo, 0600) == 0 && mkfifo(fifo_png, 0600) == 0);
    const char *f1[] = {"fid", fifo, "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(f1, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "pipe.npz") && strstr(g_err, "FIFO"), "%s", g_err);
    const char *f2[] = {"fid", good, "--inception", fifo, "-q", NULL};
    cr_assert_eq(run_cli(f2, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "pipe.npz") && strstr(g_err, "FIFO"), "%s", g_err);
    const char *f3[] = {"fid", fifo_dir, "--inception", INCEPTION, "-q", NULL};
    cr_assert_eq(run_cli(f3, g_err, sizeof g_err), 1);
    cr_assert(strstr(g_err, "a.png") && strstr(g_err, "FIFO"), "%s", g_err);
    remove(fifo), remove(fifo_png);
    free(img);
}
