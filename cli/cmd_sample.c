// argen sample: class-conditional images into a directory, one file per image, resumable.
// Image k of a run has class classes[k / n] and the random stream k (samplers/philox.h), so any image can be
// regenerated alone (--index k) and a re-run skips files that already exist.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "image_io.h"

typedef struct {
    const char *vae, *ckpt, *out, *tokens_out, *device, *dtype, *format;
    CliIntList patch_nums, classes;
    int n, top_k, batch, quality;
    float cfg, top_p;
    bool more_smooth, overwrite, verbose, quiet;
    int64_t seed, index;
} SampleArgs;

static SampleArgs g;  // the option table points into it; one command per process

static const CliOption k_opts[] = {
    {"vae", 0, CLI_STRING, NULL, "FILE", "VQVAE checkpoint (.pth/.safetensors), e.g. vae_ch160v4096z32.pth", &g.vae, .required = true},
    {"ckpt", 0, CLI_STRING, NULL, "FILE", "VAR transformer checkpoint, e.g. var_d16.pth", &g.ckpt, .required = true},
    {"patch-nums", 0, CLI_INT_LIST, "1,2,3,4,5,6,8,10,13,16", "N,...", "token-map side of each scale (the model's schedule)", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"class", 'c', CLI_INT_LIST, NULL, "C,...", "class labels, e.g. 3,7 or 0-9", &g.classes, .required = true, .has_min = true, .min = 0},
    {"n", 'n', CLI_INT, "1", NULL, "images per class", &g.n, .has_min = true, .min = 1, .has_max = true, .max = 1000000},
    {"cfg", 0, CLI_FLOAT, "1.5", NULL, "classifier-free guidance at the last scale (ramps up from 0)", &g.cfg, .has_min = true, .min = 0},
    {"top-k", 'k', CLI_INT, "900", NULL, "keep the k most likely tokens (0: off; 1: greedy)", &g.top_k, .has_min = true, .min = 0},
    {"top-p", 'p', CLI_FLOAT, "0.96", NULL, "nucleus filter (0: off)", &g.top_p, .has_min = true, .min = 0, .has_max = true, .max = 1},
    {"more-smooth", 0, CLI_FLAG, NULL, NULL, "Gumbel-softmax latents (smoother pictures, not for FID)", &g.more_smooth, .required = false},
    {"seed", 's', CLI_INT64, "0", NULL, "random seed (image k uses stream (seed, k))", &g.seed, .has_min = true, .min = 0},
    {"index", 0, CLI_INT64, "-1", "K", "generate only image K of the run (-1: all)", &g.index, .has_min = true, .min = -1},
    {"batch", 'b', CLI_INT, "0", NULL, "images per forward pass (0: 1 on the CPU, 32 on CUDA)", &g.batch, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"out", 'o', CLI_STRING, NULL, "DIR", "output directory (created if missing)", &g.out, .required = true},
    {"format", 0, CLI_STRING, "png", NULL, "image file format", &g.format, .choices = "png|jpg"},
    {"quality", 0, CLI_INT, "95", NULL, "JPEG quality", &g.quality, .has_min = true, .min = 1, .has_max = true, .max = 100},
    {"tokens-out", 0, CLI_STRING, NULL, "FILE", "also write {\"tokens\": [[...], ...]} (implies regenerating every image)", &g.tokens_out, .required = false},
    {"overwrite", 0, CLI_FLAG, NULL, NULL, "regenerate existing files, even with other settings", &g.overwrite, .required = false},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "GEMM/conv precision (bf16/fp16: CUDA only)", &g.dtype, .choices = "fp32|bf16|fp16"},
    {"verbose", 'v', CLI_FLAG, NULL, NULL, "print the configuration and the kernel path", &g.verbose, .required = false},
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "no progress line", &g.quiet, .required = false},
};

static const CliCommand k_cmd = {
    "argen sample",
    "Samples class-conditional images with a VAR next-scale model (official autoregressive_infer_cfg).\n"
    "Files are named <index>_c<class>.<format>; a re-run with the same settings skips existing files.",
    k_opts, CLI_COUNT(k_opts), NULL, 0, 0,
    "example:\n  argen sample --vae vae_ch160v4096z32.pth --ckpt var_d16.pth --class 207,980 --n 4 --cfg 4 "
    "--top-p 0.95 --out samples/",
};

// ------------------------------------------------------------------------------------------------ run manifest
// DIR/argen_run.json records the settings that determine the pixels; a re-run into DIR must agree with it.
static char *settings_json(void) {
    size_t cap = 8192, m = 0;
    char *buf = malloc(cap), vae[1024], ckpt[1024];
    if (!buf) return NULL;
    m += (size_t)snprintf(buf + m, cap - m, "{\"vae\": %s, \"ckpt\": %s, \"patch_nums\": [",
                          cli_json_str(vae, sizeof vae, g.vae), cli_json_str(ckpt, sizeof ckpt, g.ckpt));
    for (int i = 0; i < g.patch_nums.n; i++) m += (size_t)snprintf(buf + m, cap - m, i ? ", %d" : "%d", g.patch_nums.v[i]);
    snprintf(buf + m, cap - m, "], \"cfg\": %g, \"top_k\": %d, \"top_p\": %g, \"more_smooth\": %s, \"seed\": %lld, "
             "\"dtype\": \"%s\"}", (double)g.cfg, g.top_k, (double)g.top_p, g.more_smooth ? "true" : "false",
             (long long)g.seed, g.dtype);
    return buf;
}

static KtStatus write_text_atomic(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return KT_FAIL(KT_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    ok = (fflush(f) == 0) && ok;
    ok = (fsync(fileno(f)) == 0) && ok;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return KT_FAIL(KT_ERR_IO, "%s: cannot write file: %s", path, strerror(e));
    }
    return KT_OK;
}

// Reads DIR/argen_run.json into old (trailing newlines dropped); false when there is none.
static bool read_manifest(const char *path, char *old, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(old, 1, cap - 1, f);
    fclose(f);
    while (n && old[n - 1] == '\n') n--;
    old[n] = 0;
    return true;
}

// With write = false only compares (before the model loads); with write = true records the settings unless the
// directory already agrees (called once the run is known to start, so a failed start leaves nothing behind).
static KtStatus check_manifest(const char *settings, bool write) {
    char path[4200], old[4096];
    snprintf(path, sizeof path, "%s/argen_run.json", g.out);
    bool exists = read_manifest(path, old, sizeof old);
    if (!write) {
        if (exists && !g.overwrite && strcmp(old, settings))
            return KT_FAIL(KT_ERR_ARG, "%s: holds images made with other settings:\n  was: %s\n  now: %s\n"
                           "use another --out directory, or --overwrite to regenerate", g.out, old, settings);
        return KT_OK;
    }
    if (exists && !strcmp(old, settings)) return KT_OK;
    char text[4200];
    snprintf(text, sizeof text, "%s\n", settings);
    return write_text_atomic(path, text);
}

// ---------------------------------------------------------------------------------------------------- output
static void image_path(char *buf, size_t cap, int64_t index, int cls) {
    snprintf(buf, cap, "%s/%06lld_c%d.%s", g.out, (long long)index, cls, g.format);
}

static KtStatus save_image(const uint8_t *px, int S, int64_t index, int cls, const char *settings) {
    char path[4200];
    image_path(path, sizeof path, index, cls);
    if (!strcmp(g.format, "jpg")) return write_jpeg_rgb8(path, px, S, S, g.quality);
    char meta[4608];
    snprintf(meta, sizeof meta, "{\"index\": %lld, \"class\": %d, \"settings\": %s}", (long long)index, cls, settings);
    const char *keys[] = {"Software", "argen"}, *values[] = {"argen", meta};
    return write_png_rgb8(path, px, S, S, keys, values, 2);
}

static KtStatus write_tokens(const int32_t *tokens, int64_t n, int L) {
    size_t cap = (size_t)n * (size_t)L * 7 + 64, m = 0;
    char *buf = malloc(cap);
    if (!buf) return KT_FAIL(KT_ERR_OOM, "out of memory");
    m += (size_t)snprintf(buf + m, cap - m, "{\"tokens\": [");
    for (int64_t i = 0; i < n; i++) {
        m += (size_t)snprintf(buf + m, cap - m, i ? ",\n  [" : "\n  [");
        for (int t = 0; t < L; t++) m += (size_t)snprintf(buf + m, cap - m, t ? ", %d" : "%d", tokens[i * L + t]);
        m += (size_t)snprintf(buf + m, cap - m, "]");
    }
    snprintf(buf + m, cap - m, "\n]}\n");
    KtStatus st = write_text_atomic(g.tokens_out, buf);
    free(buf);
    return st;
}

static void progress(int64_t done, int64_t total, double t0) {
    if (g.quiet) return;
    double dt = cli_now() - t0, rate = dt > 0 ? (double)done / dt : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    bool tty = isatty(2);
    fprintf(stderr, "%ssample: %lld/%lld images, %.2f img/s, ETA %.0fs%s", tty ? "\r" : "", (long long)done,
            (long long)total, rate, eta, tty && done < total ? "" : "\n");
    fflush(stderr);
}

// --------------------------------------------------------------------------------------------------------- run
static int run(ArgenModel *model, const char *settings) {
    ArgenInfo info;
    argen_info(model, &info);
    for (int i = 0; i < g.classes.n; i++)
        if (g.classes.v[i] >= info.num_classes) {
            fprintf(stderr, "argen: --class: class %d is outside [0, %d) (the model has %d classes)\n", g.classes.v[i],
                    info.num_classes, info.num_classes);
            return 2;
        }
    int64_t total = (int64_t)g.classes.n * g.n;
    if (g.index >= total) {
        fprintf(stderr, "argen: --index: %lld is outside the run's %lld images\n", (long long)g.index, (long long)total);
        return 2;
    }
    // the images to make: all (or --index), minus existing files unless tokens are requested or --overwrite
    if (check_manifest(settings, true) != KT_OK) return cli_fail();
    int64_t *todo = malloc((size_t)total * sizeof *todo), n_todo = 0;
    if (!todo) return fprintf(stderr, "argen: out of memory\n"), 1;
    for (int64_t k = g.index >= 0 ? g.index : 0; k < (g.index >= 0 ? g.index + 1 : total); k++) {
        char path[4200];
        image_path(path, sizeof path, k, g.classes.v[k / g.n]);
        if (g.tokens_out || g.overwrite || !file_exists(path)) todo[n_todo++] = k;
    }
    int S = info.image_size, L = info.num_tokens, B = info.max_batch;
    if (n_todo < (g.index >= 0 ? 1 : total) && !g.quiet)
        fprintf(stderr, "sample: %lld of %lld images already in %s, skipping them\n",
                (long long)((g.index >= 0 ? 1 : total) - n_todo), (long long)(g.index >= 0 ? 1 : total), g.out);
    uint8_t *px = malloc((size_t)B * (size_t)S * (size_t)S * 3);
    int32_t *tokens = g.tokens_out ? malloc((size_t)(n_todo ? n_todo : 1) * (size_t)L * sizeof *tokens) : NULL;
    int *cls = malloc((size_t)B * sizeof *cls);
    ArgenSampleParams sp;
    argen_sample_params_init(&sp);
    sp.cfg = g.cfg;
    sp.top_k = g.top_k;
    sp.top_p = g.top_p;
    sp.more_smooth = g.more_smooth;
    sp.seed = (uint64_t)g.seed;
    int rc = (px && cls && (tokens || !g.tokens_out)) ? 0 : (fprintf(stderr, "argen: out of memory\n"), 1);
    double t0 = cli_now();
    for (int64_t i = 0; rc == 0 && i < n_todo; i += B) {
        int b = n_todo - i < B ? (int)(n_todo - i) : B;
        for (int j = 0; j < b; j++) cls[j] = g.classes.v[todo[i + j] / g.n];
        if (argen_sample(model, &sp, b, cls, todo + i, px, tokens ? tokens + i * L : NULL) != ARGEN_OK) {
            rc = cli_fail();
            break;
        }
        for (int j = 0; j < b && rc == 0; j++)
            if (save_image(px + (size_t)j * (size_t)S * (size_t)S * 3, S, todo[i + j], cls[j], settings) != KT_OK)
                rc = cli_fail();
        progress(i + b, n_todo, t0);
    }
    if (rc == 0 && g.tokens_out && write_tokens(tokens, n_todo, L) != KT_OK) rc = cli_fail();
    if (rc == 0 && !g.quiet)
        fprintf(stderr, "sample: wrote %lld images to %s%s%s\n", (long long)n_todo, g.out, g.tokens_out ? ", tokens to " : "",
                g.tokens_out ? g.tokens_out : "");
    free(todo);
    free(px);
    free(tokens);
    free(cls);
    return rc;
}

int cmd_sample(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    rc = 1;
    ArgenModel *model = NULL;
    char *settings = settings_json();
    if (!settings) goto cleanup;
    if (ensure_dir(g.out) != KT_OK || check_manifest(settings, false) != KT_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.vae_path = g.vae;
    lp.ckpt_path = g.ckpt;
    lp.patch_nums = g.patch_nums.v;
    lp.n_patch_nums = g.patch_nums.n;
    lp.device = g.device;
    lp.dtype = g.dtype;
    bool cuda = !strcmp(g.device, "cuda") || (!strcmp(g.device, "auto") && argen_cuda_available());
    int64_t total = g.index >= 0 ? 1 : (int64_t)g.classes.n * g.n;
    lp.max_batch = g.batch ? g.batch : (cuda ? 32 : 1);
    if (lp.max_batch > total) lp.max_batch = (int)total;
    if (g.verbose) cli_opts_echo(stderr, &k_cmd, &parsed);
    if (argen_load(&model, &lp) != ARGEN_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    if (g.verbose) {
        ArgenInfo info;
        argen_info(model, &info);
        fprintf(stderr, "device: %s\nmodel: VAR depth %d, width %d, %d heads, %d classes; %dx%d images, %d tokens\n",
                info.device, info.depth, info.width, info.heads, info.num_classes, info.image_size, info.image_size,
                info.num_tokens);
    }
    rc = run(model, settings);
cleanup:
    argen_free(model);
    free(settings);
    cli_parsed_free(&parsed);
    return rc;
}
