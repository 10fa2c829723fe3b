// argen bench: times sampling (VQVAE decode included) or the VQVAE decode alone, for an official architecture
// (VAR-dN, LlamaGen GPT-B/L/XL/XXL/3B with any --decode strategy) with random weights or for given checkpoints;
// the FID Inception network (--arch inception); single ops at VAR-d16's shapes (--arch ops, bench_ops.c); or SJD's
// host-side work per forward (--arch sjd-host); or the PNG files around the GPU (--arch png, bench_files.c).
// Warm-up runs are excluded; the median of --reps runs is reported (ops: the best).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_files.h"
#include "bench_ops.h"
#include "bench_pr.h"
#include "commands.h"
#include "eval/extract.h"
#include "kernels/profile.h"
#include "samplers/philox.h"
#include "samplers/sjd.h"

static struct {
    const char *arch, *vae, *ckpt, *device, *dtype;
    CliIntList batch, patch_nums;
    bool random_init, decode_only, profile;
    int reps, warmup, top_k;
    float cfg, top_p;
    const char *vq, *decode;  // LlamaGen
    const char *inception, *resize;  // FID Inception
    const char *ops;                 // --arch ops
    int image_size, heads, sjd_window, zipar_window;
} g;

static const CliOption k_opts[] = {
    {"arch", 0, CLI_STRING, NULL, "ARCH", "var-dN (var-d16 .. var-d30), llamagen-b|l|xl|xxl|3b (official GPTs), llamagen with --vq/--ckpt, inception (FID features), ops (single ops at VAR-d16 and GPT-B shapes), sjd-host (SJD's host work per forward, no model), png (PNG encoding and decoding on 1 and all cores; --batch N images, default 128), or pr (FID precision/recall on synthetic features; --batch SAMPLES,REFERENCE, default 50000,10000; --reps default 1)", &g.arch, .required = false},
    {"ops", 0, CLI_STRING, "all", "LIST", "--arch ops: families to time, comma-separated: linear, attention, sample, decoder, norm, var_attention, llamagen (or all)", &g.ops, .required = false},
    {"inception", 0, CLI_STRING, NULL, "FILE", "--arch inception: the weights (default: random, --random-init)", &g.inception, .required = false},
    {"resize", 0, CLI_STRING, "adm", NULL, "--arch inception: preprocessing of the 256x256 inputs", &g.resize, .choices = "adm|pytorch-fid"},
    {"random-init", 0, CLI_FLAG, NULL, NULL, "random weights for --arch (no checkpoint needed)", &g.random_init, .required = false},
    {"vae", 0, CLI_STRING, NULL, "FILE", "VQVAE checkpoint (instead of --arch)", &g.vae, .required = false},
    {"ckpt", 0, CLI_STRING, NULL, "FILE", "VAR checkpoint (instead of --arch), or the LlamaGen GPT with --arch llamagen", &g.ckpt, .required = false},
    {"vq", 0, CLI_STRING, NULL, "FILE", "LlamaGen VQ tokenizer (with --arch llamagen)", &g.vq, .required = false},
    {"image-size", 0, CLI_INT, "256", NULL, "LlamaGen: image side (token grid = image-size/16)", &g.image_size, .has_min = true, .min = 16, .has_max = true, .max = 4096},
    {"heads", 0, CLI_INT, "0", NULL, "LlamaGen: attention heads (0: official)", &g.heads, .has_min = true, .min = 0, .has_max = true, .max = 1024},
    {"decode", 0, CLI_STRING, "sequential", NULL, "decoding strategy (sjd, zipar: LlamaGen only)", &g.decode, .choices = "sequential|sjd|zipar"},
    {"sjd-window", 0, CLI_INT, "16", NULL, "SJD tokens per forward", &g.sjd_window, .has_min = true, .min = 1, .has_max = true, .max = 1024},
    {"zipar-window", 0, CLI_INT, "8", NULL, "ZipAR window", &g.zipar_window, .has_min = true, .min = 2, .has_max = true, .max = 255},
    {"patch-nums", 0, CLI_INT_LIST, "1,2,3,4,5,6,8,10,13,16", "N,...", "patch schedule", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"batch", 'b', CLI_INT_LIST, "1", "N,...", "batch sizes to time", &g.batch, .has_min = true, .min = 1, .has_max = true, .max = 4096, .max_items = 16},
    {"decode-only", 0, CLI_FLAG, NULL, NULL, "time only the VQVAE decode (tokens -> pixels)", &g.decode_only, .required = false},
    {"profile", 0, CLI_FLAG, NULL, NULL, "after the timed runs, one more per batch size with per-op timing (eager: graphs off), printed as a table", &g.profile, .required = false},
    {"reps", 0, CLI_INT, "3", NULL, "timed runs per batch size (median reported; --arch ops: the best per op)", &g.reps, .has_min = true, .min = 1, .has_max = true, .max = 1000},
    {"warmup", 0, CLI_INT, "1", NULL, "untimed runs first", &g.warmup, .has_min = true, .min = 0, .has_max = true, .max = 100},
    {"cfg", 0, CLI_FLOAT, "4", NULL, "guidance (official demo setting)", &g.cfg, .has_min = true, .min = 0},
    {"top-k", 0, CLI_INT, NULL, "N", "top-k (official demo setting: VAR 900, LlamaGen 2000)", &g.top_k, .has_min = true, .min = 0},
    {"top-p", 0, CLI_FLOAT, NULL, "X", "top-p (official demo setting: VAR 0.95, LlamaGen 1.0 = off)", &g.top_p, .has_min = true, .min = 0, .has_max = true, .max = 1},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "GEMM/conv precision (bf16/fp16: CUDA only)", &g.dtype, .choices = "fp32|bf16|fp16"},
};

static const CliCommand k_cmd = {
    "argen bench",
    "Times sampling (all scales / tokens + VQ decode) per batch size: latency per batch and images per second;\n"
    "for LlamaGen also forward passes per image and tokens per forward (--decode sequential|sjd|zipar).\n"
    "The model is loaded once for the largest batch; peak MiB is the device memory allocated so far.",
    k_opts, CLI_COUNT(k_opts), NULL, 0, 0,
    "examples:\n  argen bench --arch var-d16 --random-init --batch 1,8,32,64 --device cuda --dtype bf16\n"
    "  argen bench --arch var-d16 --random-init --decode-only --batch 32\n"
    "  argen bench --arch var-d16 --random-init --decode-only --batch 1 --profile   (time per op)\n"
    "  argen bench --arch llamagen-b --random-init --decode sjd --batch 1 --device cuda --dtype bf16\n"
    "  argen bench --arch inception --random-init --batch 200 --device cuda   (FID features of 256x256 images)\n"
    "  argen bench --arch ops --device cuda --dtype bf16 --reps 5   (op table; --ops linear,attention to narrow it)\n"
    "  argen bench --arch sjd-host --sjd-window 16   (SJD's acceptance tests and draws per forward, on the host)\n"
    "  argen bench --arch png   (PNG files as argen render writes them and argen fid reads them, 1 vs all cores)\n"
    "  argen bench --arch pr --device cuda   (precision/recall of 50,000 samples against 10,000 reference images)",
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Runs one timed call of the workload for batch B.
static bool g_llamagen;

static ArgenStatus run_once(ArgenModel *m, const ArgenSampleParams *sp, int B, int *cls, int64_t *ids, uint8_t *px,
                            int32_t *tok) {
    if (g.decode_only) return argen_decode(m, B, tok, px);
    return argen_sample(m, sp, B, cls, ids, px, tok);
}

// Times batch size B on a model loaded once for the largest batch of the list; profile: instead one eager run with
// every op timed, printed as a table.
static int bench_batch(ArgenModel *m, int B, bool profile) {
    ArgenInfo info;
    argen_info(m, &info);
    size_t S = (size_t)info.image_size;
    uint8_t *px = malloc((size_t)B * S * S * 3);
    int32_t *tok = calloc((size_t)B * (size_t)info.num_tokens, sizeof *tok);
    int *cls = malloc((size_t)B * sizeof *cls);
    int64_t *ids = malloc((size_t)B * sizeof *ids);
    double *times = malloc((size_t)g.reps * sizeof *times);
    int rc = px && tok && cls && ids && times ? 0 : (fprintf(stderr, "argen: out of memory\n"), 1);
    ArgenSampleParams sp;
    argen_sample_params_init_for(&sp, m);
    sp.cfg = g.cfg;
    sp.top_k = g.top_k;
    sp.top_p = g.top_p;
    sp.decode = !strcmp(g.decode, "sjd") ? ARGEN_DECODE_SJD : !strcmp(g.decode, "zipar") ? ARGEN_DECODE_ZIPAR
                                                                                      : ARGEN_DECODE_SEQUENTIAL;
    sp.sjd_window = g.sjd_window;
    sp.zipar_window = g.zipar_window;
    for (int i = 0; rc == 0 && i < B; i++) {
        cls[i] = info.num_classes ? (i * 97 + 1) % info.num_classes : 0;
        ids[i] = i;
        for (int t = 0; t < info.num_tokens; t++) tok[(size_t)i * (size_t)info.num_tokens + (size_t)t] = (i * 31 + t * 7) % info.vocab_size;
    }
    for (int r = 0; rc == 0 && !profile && r < g.warmup + g.reps; r++) {
        if (r == g.warmup) argen_stats_reset(m);
        double t0 = cli_now();
        if (run_once(m, &sp, B, cls, ids, px, tok) != ARGEN_OK) rc = cli_fail();
        if (r >= g.warmup) times[r - g.warmup] = cli_now() - t0;
    }
    if (rc == 0 && !profile) {
        qsort(times, (size_t)g.reps, sizeof *times, cmp_double);
        double med = times[g.reps / 2];
        argen_info(m, &info);
        ArgenStats st;
        argen_stats(m, &st);
        double nfe = st.images ? (double)st.image_forwards / (double)st.images : 0;
        if (g_llamagen && !g.decode_only)
            printf("| %-5d | %10.2f | %10.2f | %9.1f | %7.1f | %6.2f | %s |\n", B, 1e3 * med, B / med,
                   (double)info.device_bytes_peak / (1 << 20), nfe, nfe > 0 ? info.num_tokens / nfe : 0, info.device);
        else
            printf("| %-5d | %10.2f | %10.2f | %9.1f | %s |\n", B, 1e3 * med, B / med,
                   (double)info.device_bytes_peak / (1 << 20), info.device);
        fflush(stdout);
    }
    if (rc == 0 && profile) {  // one eager run, each op timed
        double t0 = cli_now();
        if (argen_profile(m, true) != ARGEN_OK || run_once(m, &sp, B, cls, ids, px, tok) != ARGEN_OK ||
            argen_profile(m, false) != ARGEN_OK)
            rc = cli_fail();
        if (rc == 0) {
            printf("\nprofile: batch %d, one eager run (%.2f ms wall with the per-op marks):\n\n", B,
                   1e3 * (cli_now() - t0));
            argen_profile_report(m, stdout);
            fflush(stdout);
        }
    }
    free(px);
    free(tok);
    free(cls);
    free(ids);
    free(times);
    return rc;
}

// FID feature extraction (pool3 + logits + sFID features into the statistics) of 256x256 uint8 images per batch size.
static int bench_inception(void) {
    if (!g.inception && !g.random_init) {
        fprintf(stderr, "argen: --arch inception needs --inception FILE or --random-init\n");
        return 2;
    }
    int max_b = 1;
    for (int i = 0; i < g.batch.n; i++) max_b = g.batch.v[i] > max_b ? g.batch.v[i] : max_b;
    KtBackend be = {0};
    EvExtractor ex = {0};
    EvFeatureStats st = {0};
    uint8_t *img = NULL;  // the extractor's input buffer, as `argen fid` (a sample .npz) and `argen render` fill it
    int warm = g.warmup < 2 ? 2 : g.warmup;  // on a GPU the second batch of a size captures the network's graph
    KtStatus s = cli_eval_backend(&be, g.device, g.dtype);
    if (s == KT_OK)
        s = ev_extractor_init(&ex, &be, g.inception, max_b, !strcmp(g.resize, "adm") ? KT_FID_RESIZE_ADM : KT_FID_RESIZE_PYTORCH);
    if (s == KT_OK) s = ev_extractor_input(&ex, 0, (size_t)max_b * 256 * 256 * 3, &img);
    for (size_t i = 0; img && i < (size_t)max_b * 256 * 256 * 3; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    if (s == KT_OK) {
        printf("argen bench: FID Inception-v3 (pool3 + logits + sFID features, statistics included), 256x256 -> 299, "
               "%s resize, %s, %d warm-up + mean of %d batches back to back (on a GPU pipelined as argen fid runs "
               "them: a batch uploads beside the previous forward, its statistics accumulate on the host beside the "
               "next)\n| batch | ms / batch |    img / s | peak MiB  | device |\n"
               "|---|---|---|---|---|\n", g.resize, g.dtype, warm, g.reps);
    }
    for (int i = 0; s == KT_OK && i < g.batch.n; i++) {
        int B = g.batch.v[i];
        ev_stats_free(&st);  // one accumulator for all the batches of a size, as in an evaluation run
        s = ev_stats_init(&st, INC_POOL3, INC_SPATIAL, (int64_t)B * (warm + g.reps), INC_CLASSES);
        for (int r = 0; s == KT_OK && r < warm; r++) s = ev_extractor_add(&ex, &st, img, B, 256, 256, 0, NULL);
        s = ev_extractor_sync(&ex, s);
        double t0 = cli_now();
        for (int r = 0; s == KT_OK && r < g.reps; r++) s = ev_extractor_add(&ex, &st, img, B, 256, 256, 0, NULL);
        s = ev_extractor_sync(&ex, s);
        double per = (cli_now() - t0) / g.reps;
        if (s != KT_OK) break;
        printf("| %-5d | %10.2f | %10.1f | %9.1f | %s |\n", B, 1e3 * per, B / per, (double)be.peak_bytes / (1 << 20),
               be.name);
        fflush(stdout);
    }
    for (int i = 0; s == KT_OK && g.profile && i < g.batch.n; i++) {  // one eager batch per size, each op timed
        int B = g.batch.v[i];
        ev_stats_free(&st);
        s = ev_stats_init(&st, INC_POOL3, INC_SPATIAL, B, INC_CLASSES);
        if (s == KT_OK) s = kt_profile_start(&be);
        if (s == KT_OK) s = ev_extractor_add(&ex, &st, img, B, 256, 256, 0, NULL);
        s = ev_extractor_sync(&ex, s);
        if (s == KT_OK) s = kt_profile_stop(&be);
        if (s == KT_OK) {
            printf("\nprofile: batch %d, one eager batch:\n\n", B);
            s = kt_profile_report(&be, stdout);
        }
    }
    s = ev_extractor_sync(&ex, s);  // nothing may still write to st
    int rc = s == KT_OK ? 0 : cli_fail();
    ev_stats_free(&st);
    ev_extractor_free(&ex);
    if (be.ops) kt_backend_free(&be);
    return rc;
}

// Single ops at VAR-d16's shapes on --device with --dtype (bench_ops.c).
static int bench_op_table(void) {
    bool on[BENCH_OPS_FAMILIES];
    if (!bench_ops_parse(g.ops, on)) {
        fprintf(stderr, "argen: --ops: expected all or a comma-separated list of linear, attention, sample, decoder, "
                        "norm, var_attention, llamagen; got '%s'\n", g.ops);
        return 2;
    }
    KtBackend be = {0};
    KtStatus s = cli_eval_backend(&be, g.device, g.dtype);
    if (s == KT_OK) s = bench_ops_run(&be, on, g.reps);
    int rc = s == KT_OK ? 0 : cli_fail();
    if (rc == 0 && be.notes[0]) printf("notes (slower paths taken): %s\n", be.notes);
    if (be.ops) kt_backend_free(&be);
    return rc;
}

// SJD's host-side work per forward (smp_sjd_step: the acceptance tests, the residual draw, the recycled drafts' draws
// and their q rows) on synthetic distributions shaped like GPT-B's at top-k 2000: 16,384 entries, top-k of them
// non-zero at random indices. No model runs, so drafts are rarely accepted: close to the most draws per step.
static int bench_sjd_host(void) {
    enum { V = 16384, N = 256 };
    int L = g.sjd_window, K = g.top_k > 0 && g.top_k < V ? g.top_k : 2000;
    float *rows = calloc((size_t)L * V, sizeof *rows), *fbuf = malloc((size_t)L * V * sizeof *fbuf);
    int32_t *tokens = malloc(N * sizeof *tokens), *draft = malloc((size_t)L * sizeof *draft);
    int32_t *in = malloc((size_t)L * sizeof *in);
    uint8_t *onehot = malloc((size_t)L);
    if (!rows || !fbuf || !tokens || !draft || !in || !onehot) {
        fprintf(stderr, "argen: bench: out of memory\n");
        free(rows), free(fbuf), free(tokens), free(draft), free(in), free(onehot);
        return 1;
    }
    for (int j = 0; j < L; j++) {  // K entries exp(4u) at Philox-chosen indices, normalised
        float *p = rows + (size_t)j * V;
        double z = 0;
        for (int c = 0; c < K; c++) {
            SmpPhilox4 r = smp_rng_block(7, (uint64_t)j, (uint32_t)c, 0);
            p[r.v[0] % V] = expf(4.0f * (float)smp_u53(r.v[1], r.v[2]));
        }
        for (int v = 0; v < V; v++) z += p[v];
        for (int v = 0; v < V; v++) p[v] = (float)(p[v] / z);
    }
    SmpSjdParams sp = {.window = L < N ? L : N, .V = V, .N = N, .grid_w = 16, .seed = 1};
    printf("argen bench: SJD host work per forward (smp_sjd_step), window %d, vocabulary %d, %d non-zero entries per "
           "row (synthetic, drafts rarely accepted), %d warm-up + median of %d images of %d tokens\n"
           "| window | steps per image | tokens per step | µs per step |\n|---|---|---|---|\n",
           sp.window, V, K, g.warmup, g.reps, N);
    double *per = malloc((size_t)g.reps * sizeof *per);
    int64_t steps = 0;
    for (int rep = 0; per && rep < g.warmup + g.reps; rep++) {
        SmpSjd st;
        smp_sjd_start(&st, &sp, (uint64_t)rep, rows, tokens, fbuf, draft, onehot);
        double t = 0;
        int64_t n = 0;
        while (smp_sjd_window(&st, in)) {
            double t0 = cli_now();
            smp_sjd_step(&st, rows);
            t += cli_now() - t0;
            n++;
        }
        if (rep >= g.warmup) per[rep - g.warmup] = t / (double)n, steps = n;
    }
    if (per) {
        qsort(per, (size_t)g.reps, sizeof *per, cmp_double);
        printf("| %d | %lld | %.2f | %.1f |\n", sp.window, (long long)steps, (double)(N - 1) / (double)steps,
               1e6 * per[g.reps / 2]);
    }
    free(per), free(rows), free(fbuf), free(tokens), free(draft), free(in), free(onehot);
    return per ? 0 : 1;
}

int cmd_bench(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    if (g.arch && !strcmp(g.arch, "png")) {
        int n = 128;  // images; --batch N for another count
        for (int i = 0; cli_opt_given(&k_cmd, &parsed, "batch") && i < g.batch.n; i++)
            n = i == 0 || g.batch.v[i] > n ? g.batch.v[i] : n;
        rc = bench_png(n, g.reps) == KT_OK ? 0 : cli_fail();
        cli_parsed_free(&parsed);
        return rc;
    }
    if (g.arch && !strcmp(g.arch, "pr")) {
        bool given = cli_opt_given(&k_cmd, &parsed, "batch");
        int64_t ns = given ? g.batch.v[0] : 50000, nr = given && g.batch.n > 1 ? g.batch.v[1] : given ? ns : 10000;
        KtBackend be = {0};
        KtStatus s = cli_eval_backend(&be, g.device, "fp32");
        if (s == KT_OK) s = bench_precision_recall(&be, ns, nr, cli_opt_given(&k_cmd, &parsed, "reps") ? g.reps : 1);
        rc = s == KT_OK ? 0 : cli_fail();
        if (be.ops) kt_backend_free(&be);
        cli_parsed_free(&parsed);
        return rc;
    }
    if (g.arch && (!strcmp(g.arch, "inception") || !strcmp(g.arch, "ops") || !strcmp(g.arch, "sjd-host"))) {
        rc = !strcmp(g.arch, "ops") ? bench_op_table() : !strcmp(g.arch, "sjd-host") ? bench_sjd_host() : bench_inception();
        cli_parsed_free(&parsed);
        return rc;
    }
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.device = g.device;
    lp.dtype = g.dtype;
    lp.patch_nums = g.patch_nums.v;
    lp.n_patch_nums = g.patch_nums.n;
    rc = 2;
    g_llamagen = g.arch && !strncmp(g.arch, "llamagen", 8);
    if (!cli_opt_given(&k_cmd, &parsed, "top-k")) g.top_k = g_llamagen ? 2000 : 900;
    if (!cli_opt_given(&k_cmd, &parsed, "top-p")) g.top_p = g_llamagen ? 1.0f : 0.95f;
    if (!g_llamagen && strcmp(g.decode, "sequential")) {
        fprintf(stderr, "argen: --decode %s: VAR (next-scale) models support sequential decoding only\n", g.decode);
        goto done;
    }
    if (g_llamagen) {
        lp.arch = ARGEN_ARCH_LLAMAGEN;
        lp.image_size = g.image_size;
        lp.heads = g.heads;
        if (!strcmp(g.arch, "llamagen")) {
            if (!g.vq || (!g.ckpt && !g.decode_only)) {
                fprintf(stderr, "argen: --arch llamagen needs --vq and --ckpt (or --arch llamagen-b ... --random-init)\n");
                goto done;
            }
            lp.vae_path = g.vq;
            lp.ckpt_path = g.decode_only ? NULL : g.ckpt;
        } else if (g.arch[8] != '-' || !g.random_init) {
            fprintf(stderr, "argen: --arch %s: expected llamagen-b|l|xl|xxl|3b with --random-init, or llamagen with "
                    "--vq/--ckpt\n", g.arch);
            goto done;
        } else {
            lp.random_arch = g.arch + 9;
        }
    } else if (g.arch) {
        int depth = 0;
        char tail;
        if (sscanf(g.arch, "var-d%d%c", &depth, &tail) != 1 || depth < 1 || depth > 64) {
            fprintf(stderr, "argen: --arch: expected var-dN (e.g. var-d16), llamagen-b|l|xl|xxl|3b, llamagen (with "
                    "--vq/--ckpt), inception, ops, sjd-host, png or pr, got '%s'\n", g.arch);
            goto done;
        }
        if (!g.random_init) {
            fprintf(stderr, "argen: --arch %s needs --random-init (or pass --vae/--ckpt instead)\n", g.arch);
            goto done;
        }
        lp.random_depth = depth;
    } else if (!g.vae || (!g.ckpt && !g.decode_only)) {
        fprintf(stderr, "argen: bench needs --arch var-dN --random-init, or --vae and --ckpt\n");
        goto done;
    } else {
        lp.vae_path = g.vae;
        lp.ckpt_path = g.decode_only ? NULL : g.ckpt;
    }
    for (int i = 0; i < g.batch.n; i++) lp.max_batch = g.batch.v[i] > lp.max_batch ? g.batch.v[i] : lp.max_batch;
    ArgenModel *m = NULL;
    double t0 = cli_now();
    if (argen_load(&m, &lp) != ARGEN_OK) {  // before the table header: an error leaves no empty table behind
        rc = cli_fail();
        goto done;
    }
    printf("argen bench: %s, %s, %s, cfg %g, top-k %d, top-p %g, %d warm-up + median of %d\n",
           g.arch ? g.arch : g.ckpt ? g.ckpt : g.vae, g.decode_only ? "VQVAE decode only" : "sampling + VQVAE decode",
           g.dtype, (double)g.cfg, g.top_k, (double)g.top_p, g.warmup, g.reps);
    if (g_llamagen && !g.decode_only) {
        printf("decode %s (sjd window %d, zipar window %d), image %d\n", g.decode, g.sjd_window, g.zipar_window, g.image_size);
        printf("| batch | ms / batch |    img / s | peak MiB  | NFE/img | tok/NFE | device |\n|---|---|---|---|---|---|---|\n");
    } else {
        printf("| batch | ms / batch |    img / s | peak MiB  | device |\n|---|---|---|---|---|\n");
    }
    fprintf(stderr, "bench: model ready in %.1f s (max batch %d)\n", cli_now() - t0, lp.max_batch);
    rc = 0;
    for (int i = 0; rc == 0 && i < g.batch.n; i++) rc = bench_batch(m, g.batch.v[i], false);
    for (int i = 0; rc == 0 && g.profile && i < g.batch.n; i++) rc = bench_batch(m, g.batch.v[i], true);
    ArgenInfo fin;
    argen_info(m, &fin);
    if (fin.notes && *fin.notes) printf("notes (slower paths taken): %s\n", fin.notes);
    argen_free(m);
done:
    cli_parsed_free(&parsed);
    return rc;
}
