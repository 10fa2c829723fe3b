// The embedded default models (assets/, trained on handwritten digits by scripts/train/): they are built in and
// load with the configuration their metadata names, `argen sample` with no model flags uses them, a seeded CPU
// sample is byte-for-byte repeatable, greedy tokens agree between the CPU and CUDA fp32 backends, and the CPU
// takes under 2 s per image.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "argen.h"
#include "assets/embedded.h"
#include "testutil.h"

#define VAR_VAE "embedded:var_digits_vae.safetensors"
#define VAR_CKPT "embedded:var_digits.safetensors"
#define LL_VQ "embedded:llamagen_digits_vq.safetensors"
#define LL_CKPT "embedded:llamagen_digits.safetensors"

static char g_err[16384];

static ArgenModel *load(ArgenArch arch, const char *device, int max_batch) {
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.arch = arch;
    lp.vae_path = arch == ARGEN_ARCH_VAR ? VAR_VAE : LL_VQ;
    lp.ckpt_path = arch == ARGEN_ARCH_VAR ? VAR_CKPT : LL_CKPT;
    lp.device = device;
    lp.max_batch = max_batch;
    ArgenModel *m = NULL;
    cr_assert(argen_load(&m, &lp) == ARGEN_OK, "loading the embedded %s model: %s",
              arch == ARGEN_ARCH_VAR ? "VAR" : "LlamaGen", argen_last_error());
    return m;
}

// The recommended sampling settings a file's metadata names must be what argen_sample_params_init_for returns.
static void expect_metadata_defaults(const ArgenModel *m, const char *ckpt) {
    KtCheckpoint ck = {0};
    cr_assert(argen_ckpt_open(&ck, ckpt) == KT_OK, "%s", kt_last_error());
    ArgenSampleParams sp;
    argen_sample_params_init_for(&sp, m);
    float cfg = -1;
    bool found = false;
    cr_assert(kt_ckpt_meta_float(&ck, "cfg", &cfg, &found) == KT_OK && found, "%s names no cfg", ckpt);
    cr_expect(sp.cfg == cfg, "%s: default cfg %g, metadata %g", ckpt, (double)sp.cfg, (double)cfg);
    int k = -1;
    if (kt_ckpt_meta_int(&ck, "top_k", 0, 1 << 30, &k, &found) == KT_OK && found) cr_expect_eq(sp.top_k, k);
    kt_ckpt_close(&ck);
}

Test(default_models, built_in_and_load_with_their_metadata) {
    int n = 0;
    const ArgenAsset *a = argen_assets(&n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        cr_expect(a[i].data && a[i].size > 1024, "assets/%s is not built in", a[i].name);
        total += a[i].size;
    }
    cr_expect(total <= 32u << 20, "embedded assets take %zu bytes (budget 32 MiB)", total);

    ArgenModel *m = load(ARGEN_ARCH_VAR, "cpu", 1);
    ArgenInfo info;
    argen_info(m, &info);
    cr_expect(info.num_classes == 10 && info.image_size == 128, "VAR digits: %d classes, %d px", info.num_classes,
              info.image_size);
    cr_expect(info.n_scales >= 2 && info.patch_nums[info.n_scales - 1] == 8, "VAR digits: last scale %d",
              info.patch_nums[info.n_scales - 1]);
    expect_metadata_defaults(m, VAR_CKPT);
    argen_free(m);

    m = load(ARGEN_ARCH_LLAMAGEN, "cpu", 1);
    argen_info(m, &info);
    cr_expect(info.num_classes == 10 && info.image_size == 128 && info.grid == 8, "LlamaGen digits: %d classes, %d px, "
              "grid %d", info.num_classes, info.image_size, info.grid);
    expect_metadata_defaults(m, LL_CKPT);
    argen_free(m);

    // a name that is not embedded: a clear error listing what is
    KtCheckpoint ck = {0};
    cr_expect(argen_ckpt_open(&ck, "embedded:nope.safetensors") == KT_ERR_IO);
    cr_expect(strstr(kt_last_error(), "embedded:nope.safetensors") && strstr(kt_last_error(), "var_digits.safetensors"),
              "%s", kt_last_error());
}

// `argen sample` with no model flags (the embedded model of arch), 2 classes x 1 image, into dir.
static void sample_default(const char *arch, const char *decode, const char *seed, const char *dir) {
    const char *args[] = {"sample", "--arch", arch, "--decode", decode, "--class", "3,7", "--seed", seed,
                          "--device", "cpu", "-q", "--out", dir, NULL};
    int rc = run_cli(args, g_err, sizeof g_err);
    cr_assert_eq(rc, 0, "argen sample --arch %s (embedded model) failed (%d): %s", arch, rc, g_err);
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *da = read_file(a, &na), *db = read_file(b, &nb);
    bool same = na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return same;
}

static void expect_deterministic(const char *arch, const char *decode) {
    char d1[700], d2[700], d3[700], f1[800], f2[800], f3[800];
    snprintf(d1, sizeof d1, "%s/%s_%s_a", test_tmpdir(), arch, decode);
    snprintf(d2, sizeof d2, "%s/%s_%s_b", test_tmpdir(), arch, decode);
    snprintf(d3, sizeof d3, "%s/%s_%s_c", test_tmpdir(), arch, decode);
    sample_default(arch, decode, "11", d1);
    sample_default(arch, decode, "11", d2);
    sample_default(arch, decode, "12", d3);
    const char *names[] = {"000000_c3.png", "000001_c7.png"};
    for (int i = 0; i < 2; i++) {
        snprintf(f1, sizeof f1, "%s/%s", d1, names[i]);
        snprintf(f2, sizeof f2, "%s/%s", d2, names[i]);
        snprintf(f3, sizeof f3, "%s/%s", d3, names[i]);
        cr_expect(same_file(f1, f2), "%s %s: seed 11 gave different bytes in two runs (%s)", arch, decode, names[i]);
        cr_expect(!same_file(f1, f3), "%s %s: seeds 11 and 12 gave the same image (%s)", arch, decode, names[i]);
    }
}

Test(default_models, seeded_cpu_sample_is_deterministic) {
    expect_deterministic("var", "sequential");
    expect_deterministic("llamagen", "sequential");
    expect_deterministic("llamagen", "sjd");
    expect_deterministic("llamagen", "zipar");
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The budget for the embedded models on the CPU, the whole command (load included) over 10 images.
// Sanitizer builds run several times slower by design: there the test only checks that sampling works.
Test(default_models, cpu_sample_takes_under_2s_per_image, .timeout = 600) {
    const char *arch[] = {"var", "llamagen"};
    for (int i = 0; i < 2; i++) {
        char dir[700];
        snprintf(dir, sizeof dir, "%s/time_%s", test_tmpdir(), arch[i]);
        const char *args[] = {"sample", "--arch", arch[i], "--class", "0-9", "--device", "cpu", "-q", "--out", dir, NULL};
        double t0 = now_s();
        int rc = run_cli(args, g_err, sizeof g_err);
        double per = (now_s() - t0) / 10;
        cr_assert_eq(rc, 0, "%s", g_err);
#if defined(__SANITIZE_ADDRESS__) || defined(ARGEN_SANITIZED)
        (void)per;
#else
        cr_expect(per < 2.0, "argen sample --arch %s (embedded): %.2f s per image on the CPU (budget 2 s)", arch[i], per);
        cr_log_info("argen sample --arch %s (embedded): %.3f s per image on the CPU", arch[i], per);
#endif
    }
}

// Greedy (top-k 1) sampling picks the arg-max token at every step, so the CPU and CUDA fp32 backends must choose
// the same tokens (a near-tie could flip one; the models are small and fp32 differences ~1e-6); pixels within 1 level.
static void expect_cpu_cuda_greedy(ArgenArch arch) {
    ArgenModel *cpu = load(arch, "cpu", 4), *gpu = load(arch, "cuda", 4);
    ArgenInfo info;
    argen_info(cpu, &info);
    ArgenSampleParams sp;
    argen_sample_params_init_for(&sp, cpu);
    sp.top_k = 1;
    int classes[4] = {0, 3, 7, 9};
    int64_t ids[4] = {0, 1, 2, 3};
    size_t npx = (size_t)4 * info.output_size * info.output_size * 3;
    uint8_t *pc = malloc(npx), *pg = malloc(npx);
    int32_t *tc = malloc(4 * sizeof(int32_t) * (size_t)info.num_tokens), *tg = malloc(4 * sizeof(int32_t) * (size_t)info.num_tokens);
    cr_assert(argen_sample(cpu, &sp, 4, classes, ids, pc, tc) == ARGEN_OK, "%s", argen_last_error());
    cr_assert(argen_sample(gpu, &sp, 4, classes, ids, pg, tg) == ARGEN_OK, "%s", argen_last_error());
    int diff_tok = 0, worst = 0;
    for (int i = 0; i < 4 * info.num_tokens; i++) diff_tok += tc[i] != tg[i];
    for (size_t i = 0; i < npx; i++) {
        int d = abs((int)pc[i] - (int)pg[i]);
        if (d > worst) worst = d;
    }
    cr_expect_eq(diff_tok, 0, "%s: %d greedy tokens differ between CPU and CUDA fp32", arch ? "LlamaGen" : "VAR",
                 diff_tok);
    cr_expect(worst <= 1, "%s: greedy pixels differ by %d levels between CPU and CUDA fp32", arch ? "LlamaGen" : "VAR",
              worst);
    // Later calls replay the graphs the first one captured (VAR: the whole loop; LlamaGen: the step graph, captured
    // before the first VQ decode grew the scratch buffer it addresses): the same tokens and pixels, graphs still on.
    uint8_t *pr = malloc(npx);
    int32_t *tr = malloc(4 * sizeof(int32_t) * (size_t)info.num_tokens);
    for (int rep = 0; rep < 2; rep++) {
        cr_assert(argen_sample(gpu, &sp, 4, classes, ids, pr, tr) == ARGEN_OK, "%s", argen_last_error());
        cr_expect(!memcmp(tr, tg, 4 * sizeof(int32_t) * (size_t)info.num_tokens), "call %d: other tokens", rep + 2);
        cr_expect(!memcmp(pr, pg, npx), "call %d: other pixels", rep + 2);
    }
    argen_info(gpu, &info);
    cr_expect(!strstr(info.notes, "graphs off"), "notes: %s", info.notes);
    free(pr), free(tr);
    free(pc), free(pg), free(tc), free(tg);
    argen_free(cpu);
    argen_free(gpu);
}

Test(default_models, greedy_tokens_agree_between_cpu_and_cuda_fp32) {
    if (!argen_cuda_available()) cr_skip_test("no CUDA device");
    expect_cpu_cuda_greedy(ARGEN_ARCH_VAR);
    expect_cpu_cuda_greedy(ARGEN_ARCH_LLAMAGEN);
}
