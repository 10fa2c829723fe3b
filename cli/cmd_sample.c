// argen sample: class-conditional images into a directory, one file per image, resumable, for VAR (next-scale) and
// LlamaGen (raster, with sequential / speculative Jacobi / ZipAR decoding) models.
// Image k of a run has class classes[k / n] and the random stream k (samplers/philox.h), so any image can be
// regenerated alone (--index k) and a re-run skips files that already exist.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "image_io.h"
#include "kernels/input_file.h"
#include "parallel.h"

typedef struct {
    const char *vae, *ckpt, *out, *tokens_out, *grid, *device, *dtype, *format;
    CliIntList patch_nums, classes;
    int n, top_k, batch, quality;
    float cfg, top_p;
    bool more_smooth, overwrite, verbose, quiet;
    int64_t seed, index;
    // LlamaGen
    const char *arch, *vq, *decode, *sjd_init;
    int image_size, heads, sjd_window, zipar_window;
    float cfg_interval, temperature;
    bool stats;
} SampleArgs;

static SampleArgs g;  // the option table points into it; one command per process

static const CliOption k_opts[] = {
    {"arch", 0, CLI_STRING, "var", NULL, "model family: var (next-scale) or llamagen (raster)", &g.arch, .choices = "var|llamagen"},
    {"vae", 0, CLI_STRING, NULL, "FILE", "VAR: VQVAE checkpoint (.pth/.safetensors), e.g. vae_ch160v4096z32.pth (default: the embedded digits model)", &g.vae, .required = false},
    {"vq", 0, CLI_STRING, NULL, "FILE", "LlamaGen: VQ tokenizer checkpoint, e.g. vq_ds16_c2i.pt (default: the embedded digits model)", &g.vq, .required = false},
    {"ckpt", 0, CLI_STRING, NULL, "FILE", "transformer checkpoint, e.g. var_d16.pth or c2i_B_256.pt (default: the embedded digits model)", &g.ckpt, .required = false},
    {"patch-nums", 0, CLI_INT_LIST, NULL, "N,...", "VAR: token-map side of each scale (default: the checkpoint's metadata, else 1,2,3,4,5,6,8,10,13,16)", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"image-size", 0, CLI_INT, "0", NULL, "LlamaGen: image side, token grid image-size/16 (0: the checkpoint's metadata, else 256; 384 models need 384)", &g.image_size, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"heads", 0, CLI_INT, "0", NULL, "LlamaGen: attention heads (0: the checkpoint's metadata, else the official count for the width, else head size 64)", &g.heads, .has_min = true, .min = 0, .has_max = true, .max = 1024},
    {"class", 'c', CLI_INT_LIST, NULL, "C,...", "class labels, e.g. 3,7 or 0-9", &g.classes, .required = true, .has_min = true, .min = 0},
    {"n", 'n', CLI_INT, "1", NULL, "images per class", &g.n, .has_min = true, .min = 1, .has_max = true, .max = 1000000},
    {"cfg", 0, CLI_FLOAT, NULL, "X", "classifier-free guidance (default: the model's metadata, else var 1.5 at the last scale, ramped up from 0; llamagen 4.0)", &g.cfg, .has_min = true, .min = 0},
    {"cfg-interval", 0, CLI_FLOAT, "-1", NULL, "LlamaGen: decode steps after this one use the conditional logits only (-1: all)", &g.cfg_interval, .has_min = true, .min = -1},
    {"top-k", 'k', CLI_INT, NULL, "N", "keep the k most likely tokens (0: off; 1: greedy; default: the model's metadata, else var 900, llamagen 2000)", &g.top_k, .has_min = true, .min = 0},
    {"top-p", 'p', CLI_FLOAT, NULL, "X", "nucleus filter (default: the model's metadata, else var 0.96, 0 = off; llamagen 1.0 = off)", &g.top_p, .has_min = true, .min = 0, .has_max = true, .max = 1},
    {"temperature", 't', CLI_FLOAT, NULL, "X", "LlamaGen: logits are divided by it before filtering (default: the model's metadata, else 1)", &g.temperature, .has_min = true, .min = 1e-5, .has_max = true, .max = 100},
    {"decode", 0, CLI_STRING, "sequential", NULL, "decoding strategy: sequential (var, llamagen), sjd, zipar (llamagen only)", &g.decode, .choices = "sequential|sjd|zipar"},
    {"sjd-window", 0, CLI_INT, "16", NULL, "SJD: tokens per forward (the accepted one + drafts)", &g.sjd_window, .has_min = true, .min = 1, .has_max = true, .max = 1024},
    {"sjd-init", 0, CLI_STRING, "random", NULL, "SJD: draft initialisation", &g.sjd_init, .choices = "random|repeat-horizon|sample-horizon"},
    {"zipar-window", 0, CLI_INT, NULL, "N", "ZipAR: tokens of a row before the next row starts (2 .. grid-1; default: 8, at most half the grid)", &g.zipar_window, .has_min = true, .min = 2, .has_max = true, .max = 255},
    {"stats", 0, CLI_FLAG, NULL, NULL, "print forward passes, tokens accepted per forward and wall time", &g.stats, .required = false},
    {"more-smooth", 0, CLI_FLAG, NULL, NULL, "VAR: Gumbel-softmax latents (smoother pictures, not for FID)", &g.more_smooth, .required = false},
    {"seed", 's', CLI_INT64, "0", NULL, "random seed (image k uses stream (seed, k))", &g.seed, .has_min = true, .min = 0},
    {"index", 0, CLI_INT64, "-1", "K", "generate only image K of the run (-1: all)", &g.index, .has_min = true, .min = -1},
    {"batch", 'b', CLI_INT, "0", NULL, "images per forward pass (0: 1 on the CPU, 32 on CUDA)", &g.batch, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"out", 'o', CLI_STRING, NULL, "DIR", "output directory (created if missing)", &g.out, .required = true},
    {"format", 0, CLI_STRING, "png", NULL, "image file format", &g.format, .choices = "png|jpg"},
    {"quality", 0, CLI_INT, "95", NULL, "JPEG quality", &g.quality, .has_min = true, .min = 1, .has_max = true, .max = 100},
    {"tokens-out", 0, CLI_STRING, NULL, "FILE", "also write {\"tokens\": [[...], ...]} (implies regenerating every image)", &g.tokens_out, .required = false},
    {"grid", 0, CLI_STRING, NULL, "FILE.png", "also write all images as one PNG, a row per class (implies regenerating every image)", &g.grid, .required = false},
    {"overwrite", 0, CLI_FLAG, NULL, NULL, "regenerate existing files, even with other settings", &g.overwrite, .required = false},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "GEMM/conv precision (bf16/fp16: CUDA only)", &g.dtype, .choices = "fp32|bf16|fp16"},
    {"verbose", 'v', CLI_FLAG, NULL, NULL, "print the configuration and the kernel path", &g.verbose, .required = false},
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "no progress line", &g.quiet, .required = false},
};

static const CliCommand k_cmd = {
    "argen sample",
    "Samples class-conditional images with a VAR next-scale model (official autoregressive_infer_cfg, --arch var) or a\n"
    "LlamaGen raster model (official generate, --arch llamagen).\n"
    "Decoding strategies (--decode): VAR supports sequential only (its scale-by-scale loop); LlamaGen supports\n"
    "sequential (one token per forward), sjd (speculative Jacobi decoding: the same distribution, fewer forwards) and\n"
    "zipar (the next row starts --zipar-window tokens behind the current one).\n"
    "Files are named <index>_c<class>.<format>; a re-run with the same settings skips existing files.\n"
    "With no --vae/--vq/--ckpt, the embedded digits models are used (classes 0-9, 128x128): --arch var (default)\n"
    "embedded:var_digits_vae.safetensors + embedded:var_digits.safetensors, --arch llamagen\n"
    "embedded:llamagen_digits_vq.safetensors + embedded:llamagen_digits.safetensors.",
    k_opts, CLI_COUNT(k_opts), NULL, 0, 0,
    "examples:\n  argen sample --class 0-9 --n 4 --grid digits.png --out samples/       (embedded digits model)\n"
    "  argen sample --arch llamagen --class 7 --decode sjd --stats --out samples/\n"
    "  argen sample --vae vae_ch160v4096z32.pth --ckpt var_d16.pth --class 207,980 --n 4 --cfg 4 "
    "--top-p 0.95 --out samples/\n"
    "  argen sample --arch llamagen --vq vq_ds16_c2i.pt --ckpt c2i_B_256.pt --class 207,360 --decode sjd --stats "
    "--out samples/",
};

static bool llamagen(void) { return !strcmp(g.arch, "llamagen"); }

static ArgenDecode decode_of(const char *s) {
    return !strcmp(s, "sjd") ? ARGEN_DECODE_SJD : !strcmp(s, "zipar") ? ARGEN_DECODE_ZIPAR : ARGEN_DECODE_SEQUENTIAL;
}

static ArgenSjdInit sjd_init_of(const char *s) {
    return !strcmp(s, "repeat-horizon") ? ARGEN_SJD_INIT_REPEAT_HORIZON
           : !strcmp(s, "sample-horizon") ? ARGEN_SJD_INIT_SAMPLE_HORIZON : ARGEN_SJD_INIT_RANDOM;
}

// Options that belong to the other architecture, and the model files (the embedded digits model when none given).
static bool check_arch(const CliParsed *parsed) {
    bool ll = llamagen();
    static const char *var_only[] = {"patch-nums", "more-smooth"};
    static const char *ll_only[] = {"vq", "image-size", "heads", "cfg-interval", "temperature", "sjd-window",
                                    "sjd-init", "zipar-window"};
    const char **other = ll ? var_only : ll_only;
    int n_other = ll ? 2 : 8;
    for (int i = 0; i < n_other; i++)
        if (cli_opt_given(&k_cmd, parsed, other[i])) {
            fprintf(stderr, "argen: --%s applies to --arch %s models only\n", other[i], ll ? "var" : "llamagen");
            return false;
        }
    if (!ll && strcmp(g.decode, "sequential")) {
        fprintf(stderr, "argen: --decode %s: VAR (next-scale) models support sequential decoding only; sjd and zipar "
                "are raster-model strategies (--arch llamagen)\n", g.decode);
        return false;
    }
    if (ll && !g.vq) g.vq = g.vae;  // --vae is accepted for the tokenizer too
    const char **tok = ll ? &g.vq : &g.vae;
    if (!*tok && !g.ckpt) {  // the embedded default model of the architecture
        *tok = ll ? "embedded:llamagen_digits_vq.safetensors" : "embedded:var_digits_vae.safetensors";
        g.ckpt = ll ? "embedded:llamagen_digits.safetensors" : "embedded:var_digits.safetensors";
        return true;
    }
    if (!*tok || !g.ckpt) {
        fprintf(stderr, "argen: %s given without %s: pass both (or neither, for the embedded digits model)\n"
                "(see argen sample --help)\n", g.ckpt ? "--ckpt" : (ll ? "--vq" : "--vae"),
                g.ckpt ? (ll ? "--vq (the LlamaGen VQ tokenizer, e.g. vq_ds16_c2i.pt)" : "--vae (the VAR VQVAE, e.g. "
                "vae_ch160v4096z32.pth)") : "--ckpt (the transformer)");
        return false;
    }
    return true;
}

// The sampling settings: the model's defaults (architecture, then checkpoint metadata), then the options given.
static void sample_params(ArgenSampleParams *sp, const ArgenModel *model, const CliParsed *parsed) {
    argen_sample_params_init_for(sp, model);
    if (cli_opt_given(&k_cmd, parsed, "cfg")) sp->cfg = g.cfg;
    if (cli_opt_given(&k_cmd, parsed, "top-k")) sp->top_k = g.top_k;
    if (cli_opt_given(&k_cmd, parsed, "top-p")) sp->top_p = g.top_p;
    if (cli_opt_given(&k_cmd, parsed, "temperature")) sp->temperature = g.temperature;
    sp->more_smooth = g.more_smooth;
    sp->seed = (uint64_t)g.seed;
    sp->cfg_interval = g.cfg_interval;
    sp->decode = decode_of(g.decode);
    sp->sjd_window = g.sjd_window;
    sp->sjd_init = sjd_init_of(g.sjd_init);
    if (cli_opt_given(&k_cmd, parsed, "zipar-window")) sp->zipar_window = g.zipar_window;
}

// ------------------------------------------------------------------------------------------------ run manifest
// DIR/argen_run.json records the settings that determine the pixels; a re-run into DIR must agree with it.
static char *settings_json(const ArgenSampleParams *sp, const ArgenInfo *info) {
    size_t cap = 8192, m = 0;
    char *buf = malloc(cap), vae[1024], ckpt[1024];
    if (!buf) return NULL;
    if (llamagen()) {  // everything that changes the pixels (the decoding strategy changes the random draws)
        snprintf(buf, cap, "{\"arch\": \"llamagen\", \"vq\": %s, \"ckpt\": %s, \"image_size\": %d, \"heads\": %d, "
                 "\"cfg\": %g, \"cfg_interval\": %g, \"top_k\": %d, \"top_p\": %g, \"temperature\": %g, \"decode\": \"%s\", "
                 "\"sjd_window\": %d, \"sjd_init\": \"%s\", \"zipar_window\": %d, \"seed\": %lld, \"dtype\": \"%s\"}",
                 cli_json_str(vae, sizeof vae, g.vq), cli_json_str(ckpt, sizeof ckpt, g.ckpt), info->image_size,
                 info->heads, (double)sp->cfg, (double)sp->cfg_interval, sp->top_k, (double)sp->top_p,
                 (double)sp->temperature, g.decode, strcmp(g.decode, "sjd") ? 0 : g.sjd_window,
                 strcmp(g.decode, "sjd") ? "" : g.sjd_init, strcmp(g.decode, "zipar") ? 0 : sp->zipar_window,
                 (long long)g.seed, g.dtype);
        return buf;
    }
    m += (size_t)snprintf(buf + m, cap - m, "{\"vae\": %s, \"ckpt\": %s, \"patch_nums\": [",
                          cli_json_str(vae, sizeof vae, g.vae), cli_json_str(ckpt, sizeof ckpt, g.ckpt));
    for (int i = 0; i < info->n_scales; i++) m += (size_t)snprintf(buf + m, cap - m, i ? ", %d" : "%d", info->patch_nums[i]);
    snprintf(buf + m, cap - m, "], \"cfg\": %g, \"top_k\": %d, \"top_p\": %g, \"more_smooth\": %s, \"seed\": %lld, "
             "\"dtype\": \"%s\"}", (double)sp->cfg, sp->top_k, (double)sp->top_p, sp->more_smooth ? "true" : "false",
             (long long)g.seed, g.dtype);
    return buf;
}

// Reads DIR/argen_run.json into old (trailing newlines dropped); false when there is none.
static bool read_manifest(const char *path, char *old, size_t cap) {
    FILE *f;
    if (kt_fopen_input(path, &f) != KT_OK) return false;  // none yet (anything but a regular file is replaced)
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

// Images todo[0 ..] of a window starting at image w0 (pixels and classes by row in the window), one per call.
typedef struct {
    const uint8_t *px;
    int S;
    const int64_t *todo;
    int64_t w0;
    const int *cls;
    const char *settings;
} SaveBatch;

static KtStatus save_one(void *ctx, int64_t u) {
    const SaveBatch *sb = ctx;
    int j = (int)(sb->todo[u] - sb->w0);
    return save_image(sb->px + (size_t)j * (size_t)sb->S * (size_t)sb->S * 3, sb->S, sb->todo[u], sb->cls[j],
                      sb->settings);
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
static int run(ArgenModel *model, const ArgenSampleParams *sp_in, const char *settings) {
    int zipar_window = sp_in->zipar_window;
    ArgenInfo info;
    argen_info(model, &info);
    for (int i = 0; i < g.classes.n; i++)
        if (g.classes.v[i] >= info.num_classes) {
            fprintf(stderr, "argen: --class: class %d is outside [0, %d) (the model has %d classes)\n", g.classes.v[i],
                    info.num_classes, info.num_classes);
            return 2;
        }
    int64_t total = (int64_t)g.classes.n * g.n;
    if (llamagen() && !strcmp(g.decode, "zipar") && zipar_window > info.grid - 1) {
        fprintf(stderr, "argen: --zipar-window %d: expected 2 to %d for this %dx%d token grid (a window >= the grid is "
                "plain sequential decoding: use --decode sequential)\n", zipar_window, info.grid - 1, info.grid, info.grid);
        return 2;
    }
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
        if (g.tokens_out || g.grid || g.overwrite || !file_exists(path)) todo[n_todo++] = k;
    }
    int S = info.image_size, L = info.num_tokens, B = info.max_batch;
    if (n_todo < (g.index >= 0 ? 1 : total) && !g.quiet)
        fprintf(stderr, "sample: %lld of %lld images already in %s, skipping them\n",
                (long long)((g.index >= 0 ? 1 : total) - n_todo), (long long)(g.index >= 0 ? 1 : total), g.out);
    uint8_t *px = malloc((size_t)B * (size_t)S * (size_t)S * 3);
    int32_t *tokens = g.tokens_out ? malloc((size_t)(n_todo ? n_todo : 1) * (size_t)L * sizeof *tokens) : NULL;
    int *cls = malloc((size_t)B * sizeof *cls);
    // --grid: a row per class, a column per image of the class (every image of the run is generated)
    int grid_cols = g.index >= 0 ? 1 : g.n, grid_rows = g.index >= 0 ? 1 : g.classes.n;
    uint8_t *grid = g.grid ? calloc((size_t)grid_rows * grid_cols * (size_t)S * S * 3, 1) : NULL;
    ArgenSampleParams sp = *sp_in;
    argen_stats_reset(model);
    int rc = (px && cls && (tokens || !g.tokens_out) && (grid || !g.grid)) ? 0
                                                                           : (fprintf(stderr, "argen: out of memory\n"), 1);
    double t0 = cli_now();
    // Images are made in fixed windows of B ([0, B), [B, 2B), ...): a window holding an image to make is generated
    // whole and only those images are kept, so image k comes from the same batch, at the same row, whether the run
    // is whole, resumed or --index k alone (a GPU's GEMMs may round differently at another batch size).
    int32_t *wtok = g.tokens_out ? malloc((size_t)B * (size_t)L * sizeof *wtok) : NULL;
    int64_t *ids = malloc((size_t)B * sizeof *ids);
    if (rc == 0 && (!ids || (g.tokens_out && !wtok))) rc = (fprintf(stderr, "argen: out of memory\n"), 1);
    for (int64_t u = 0; rc == 0 && u < n_todo;) {
        int64_t w0 = todo[u] / B * B;  // the window of the next image to make
        int b = total - w0 < B ? (int)(total - w0) : B;
        for (int j = 0; j < b; j++) ids[j] = w0 + j, cls[j] = g.classes.v[(w0 + j) / g.n];
        if (argen_sample(model, &sp, b, cls, ids, px, wtok) != ARGEN_OK) {
            rc = cli_fail();
            break;
        }
        int64_t u_end = u;  // todo[u .. u_end): this window's images, encoded and written by a thread per core
        while (u_end < n_todo && todo[u_end] < w0 + b) u_end++;
        SaveBatch sb = {.px = px, .S = S, .todo = todo + u, .w0 = w0, .cls = cls, .settings = settings};
        if (cli_parallel_for(u_end - u, 0, save_one, &sb) != KT_OK) rc = cli_fail();
        for (; u < u_end && rc == 0; u++) {
            int j = (int)(todo[u] - w0);
            const uint8_t *im = px + (size_t)j * (size_t)S * (size_t)S * 3;
            if (tokens) memcpy(tokens + u * L, wtok + (size_t)j * L, (size_t)L * sizeof *tokens);
            int64_t cell = g.index >= 0 ? 0 : todo[u];  // image k: row k / n, column k % n
            for (int y = 0; grid && y < S; y++)
                memcpy(grid + (((size_t)(cell / grid_cols) * S + y) * grid_cols * S + (size_t)(cell % grid_cols) * S) * 3,
                       im + (size_t)y * S * 3, (size_t)S * 3);
        }
        progress(u, n_todo, t0);
    }
    free(wtok);
    free(ids);
    if (rc == 0 && g.tokens_out && write_tokens(tokens, n_todo, L) != KT_OK) rc = cli_fail();
    if (rc == 0 && g.grid) {
        const char *keys[] = {"Software", "argen"}, *values[] = {"argen", settings};
        if (write_png_rgb8(g.grid, grid, grid_cols * S, grid_rows * S, keys, values, 2) != KT_OK) rc = cli_fail();
        else if (!g.quiet)
            fprintf(stderr, "sample: wrote the %dx%d grid %s\n", grid_rows, grid_cols, g.grid);
    }
    if (rc == 0 && !g.quiet)
        fprintf(stderr, "sample: wrote %lld images to %s%s%s\n", (long long)n_todo, g.out, g.tokens_out ? ", tokens to " : "",
                g.tokens_out ? g.tokens_out : "");
    if (rc == 0 && g.stats) {
        ArgenStats st;
        argen_stats(model, &st);
        double per = st.images ? (double)st.image_forwards / (double)st.images : 0;
        fprintf(stderr, "stats: %s decoding, %lld images of %d tokens: %lld forward passes (%.2f per image, sequential "
                "%d), %.2f tokens accepted per forward, %.3f s wall (%.1f ms per image)\n", g.decode,
                (long long)st.images, L, (long long)st.forwards, per, llamagen() ? L : info.n_scales,
                per > 0 ? (llamagen() ? L : info.n_scales) / per : 0, st.seconds,
                st.images ? 1e3 * st.seconds / (double)st.images : 0);
    }
    if (rc == 0 && !g.quiet) {  // fallbacks taken (e.g. --device auto without a GPU, graph capture off)
        ArgenInfo fin;
        argen_info(model, &fin);
        if (fin.notes && *fin.notes) fprintf(stderr, "notes: %s\n", fin.notes);
    }
    free(todo);
    free(px);
    free(tokens);
    free(cls);
    free(grid);
    return rc;
}

int cmd_sample(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    ArgenModel *model = NULL;
    char *settings = NULL;
    if (!check_arch(&parsed)) {
        rc = 2;
        goto cleanup;
    }
    rc = 1;
    if (ensure_dir(g.out) != KT_OK || (g.tokens_out && check_output_file("--tokens-out", g.tokens_out) != KT_OK) ||
        (g.grid && check_output_file("--grid", g.grid) != KT_OK)) {
        rc = cli_fail();
        goto cleanup;
    }
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.arch = llamagen() ? ARGEN_ARCH_LLAMAGEN : ARGEN_ARCH_VAR;
    lp.image_size = g.image_size;
    lp.heads = g.heads;
    lp.vae_path = llamagen() ? g.vq : g.vae;
    lp.ckpt_path = g.ckpt;
    lp.patch_nums = g.patch_nums.n ? g.patch_nums.v : NULL;  // NULL: the checkpoint's metadata, else official
    lp.n_patch_nums = g.patch_nums.n;
    lp.device = g.device;
    lp.dtype = g.dtype;
    bool cuda = !strcmp(g.device, "cuda") || (!strcmp(g.device, "auto") && argen_cuda_available());
    int64_t total = (int64_t)g.classes.n * g.n;  // (with --index too: its image is made in its run's batch)
    lp.max_batch = g.batch ? g.batch : (cuda ? 32 : 1);
    if (lp.max_batch > total) lp.max_batch = (int)total;
    if (g.verbose) cli_opts_echo(stderr, &k_cmd, &parsed);
    if (argen_load(&model, &lp) != ARGEN_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    ArgenInfo info;
    argen_info(model, &info);
    ArgenSampleParams sp;
    sample_params(&sp, model, &parsed);
    if (g.verbose)
        fprintf(stderr, "device: %s\nmodel: %s depth %d, width %d, %d heads, %d classes; %dx%d images, %d tokens\n"
                "sampling: cfg %g, top-k %d, top-p %g, temperature %g\n", info.device, llamagen() ? "LlamaGen" : "VAR",
                info.depth, info.width, info.heads, info.num_classes, info.image_size, info.image_size, info.num_tokens,
                (double)sp.cfg, sp.top_k, (double)sp.top_p, (double)sp.temperature);
    settings = settings_json(&sp, &info);
    if (!settings) goto cleanup;
    if (check_manifest(settings, false) != KT_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    rc = run(model, &sp, settings);
cleanup:
    argen_free(model);
    free(settings);
    cli_parsed_free(&parsed);
    return rc;
}
