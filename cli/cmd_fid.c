// argen fid: Inception statistics of image sets and the Frechet distance between two of them (plus sFID and the
// Inception Score); argen fid-merge: exact merge of partial statistics computed on shards.
// Inputs are PNG directories, sample .npz batches (arr_0) or statistics .npz files (mu/sigma of pytorch-fid or the
// ADM evaluator, or argen's own). spec: shared/spec/fid.md
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "eval/extract.h"
#include "eval/frechet.h"
#include "eval_features.h"
#include "image_io.h"

#define INCEPTION_FILE "pt_inception-2015-12-05-6726825d.pth"
#define INCEPTION_URL "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" INCEPTION_FILE

// --------------------------------------------------------------------------------------- shared with render
KtStatus cli_inception_path(const char *given, char *buf, size_t cap) {
    if (given) {
        snprintf(buf, cap, "%s", given);
        return KT_OK;
    }
    const char *env = getenv("ARGEN_INCEPTION"), *home = getenv("HOME");
    if (env && env[0]) {
        snprintf(buf, cap, "%s", env);
        return KT_OK;
    }
    const char *dirs[] = {".cache/argen", ".cache/torch/hub/checkpoints"};
    for (int i = 0; home && i < 2; i++) {
        snprintf(buf, cap, "%s/%s/%s", home, dirs[i], INCEPTION_FILE);
        if (access(buf, R_OK) == 0) return KT_OK;
    }
    return KT_FAIL(KT_ERR_IO, "--inception: no FID Inception weights found: looked for $ARGEN_INCEPTION, "
                   "~/.cache/argen/%s and ~/.cache/torch/hub/checkpoints/%s.\n  Download them once with\n"
                   "    mkdir -p ~/.cache/argen && curl -L -o ~/.cache/argen/%s %s\n  or pass --inception PATH",
                   INCEPTION_FILE, INCEPTION_FILE, INCEPTION_FILE, INCEPTION_URL);
}

KtStatus cli_parse_shard(const char *s, int *k, int *n) {
    *k = 0, *n = 1;
    if (!s) return KT_OK;
    char tail;
    if (sscanf(s, "%d/%d%c", k, n, &tail) != 2 || *n < 1 || *k < 0 || *k >= *n)
        return KT_FAIL(KT_ERR_ARG, "--shard: expected K/N with 0 <= K < N (e.g. 3/8), got '%s'", s);
    return KT_OK;
}

KtStatus cli_eval_backend(KtBackend *be, const char *device, const char *dtype) {
    KtDType dt = !strcmp(dtype, "bf16") ? KT_BF16 : !strcmp(dtype, "fp16") ? KT_F16 : KT_F32;
    return kt_backend_init_for(be, device, dt);
}

// ------------------------------------------------------------------------------------------------- options
typedef struct {
    const char *save_stats, *features_out, *inception, *resize, *device, *dtype, *shard, *pr_distances;
    int batch;
    bool json, quiet, verbose, no_spatial, pr;
} FidArgs;

static FidArgs g;

static const CliOption k_opts[] = {
    {"save-stats", 0, CLI_STRING, NULL, "FILE.npz", "save the statistics of the (single) input: mu, sigma, mu_s, sigma_s, IS sums; with --shard the exact partial sums for fid-merge", &g.save_stats, .required = false},
    {"features-out", 0, CLI_STRING, NULL, "FILE.npy", "write the pool3 features of the first input (float32, N x 2048, PNGs in sorted name order)", &g.features_out, .required = false},
    {"json", 0, CLI_FLAG, NULL, NULL, "print the results as one JSON object (fid, sfid, is_mean, is_std, precision, recall, n_a, n_b)", &g.json, .required = false},
    {"pr", 0, CLI_FLAG, NULL, NULL, "also improved precision and recall (k = 3, as the ADM evaluator: A the samples, B the reference); needs the images of both (a reference batch's arr_0 beside its mu/sigma is read for them) and keeps their pool3 features in memory (8 KiB per image)", &g.pr, .required = false},
    {"pr-distances", 0, CLI_STRING, "fp32", NULL, "--pr: float32 distances, or fp16 as the ADM evaluator computes them (its published numbers; a block with an overflow redone in float32)", &g.pr_distances, .choices = "fp32|fp16"},
    {"inception", 0, CLI_STRING, NULL, "FILE", "FID Inception weights (default: $ARGEN_INCEPTION, ~/.cache/argen/ or torch.hub's cache, " INCEPTION_FILE ")", &g.inception, .required = false},
    {"resize", 0, CLI_STRING, "adm", NULL, "preprocessing: adm (the ADM/TF evaluator's resize and (x-128)/128; published VAR/LlamaGen numbers) or pytorch-fid", &g.resize, .choices = "adm|pytorch-fid"},
    {"shard", 0, CLI_STRING, NULL, "K/N", "process only the K-th of N equal contiguous parts of the input (use with --save-stats, then fid-merge)", &g.shard, .required = false},
    {"no-sfid", 0, CLI_FLAG, NULL, NULL, "skip the spatial (sFID) statistics (saves time and half the stats file)", &g.no_spatial, .required = false},
    {"batch", 'b', CLI_INT, "0", NULL, "images per Inception forward (0: 8 on the CPU, 200 on CUDA)", &g.batch, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "conv precision (bf16/fp16: CUDA only; fp32 is the reference)", &g.dtype, .choices = "fp32|bf16|fp16"},
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "no progress line", &g.quiet, .required = false},
    {"verbose", 'v', CLI_FLAG, NULL, NULL, "print the configuration and the device", &g.verbose, .required = false},
};

static const CliCommand k_cmd = {
    "argen fid",
    "Computes Inception statistics of A (and B) and, given two inputs, the FID between them (plus sFID when both\n"
    "have spatial statistics and the Inception Score of each sample set). Each input is a directory of PNG files, a\n"
    "sample batch .npz (arr_0: uint8 N x H x W x 3, e.g. from argen render), a statistics .npz (mu/sigma from\n"
    "pytorch-fid, the ADM evaluator's reference batches such as VIRTUAL_imagenet256_labeled.npz, or argen), or a\n"
    "FEATURES.npy of pool3 features written by --features-out (FID and --pr without the network; no sFID, no IS).\n"
    "FID uses pool3 features of pytorch-fid's Inception-v3 (the TF 2015-12-05 weights), statistics in double\n"
    "precision and an eigendecomposition-based Frechet distance. IS: 10 contiguous splits in file order.",
    k_opts, CLI_COUNT(k_opts), "A [B]", 1, 2,
    "examples:\n  argen fid samples.npz VIRTUAL_imagenet256_labeled.npz\n"
    "  argen fid samples.npz VIRTUAL_imagenet256_labeled.npz --pr   (precision and recall too)\n"
    "  argen fid samples/ --save-stats samples_stats.npz\n"
    "  argen fid samples.npz --features-out s.npy; argen fid s.npy ref_feats.npy --pr   (from saved features)\n"
    "  argen fid samples.npz --shard 2/4 --save-stats part2.npz   (then: argen fid-merge part*.npz -o all.npz)",
};

// ----------------------------------------------------------------------------------------------- one input
typedef struct {
    const char *path;
    bool stats_file;
    bool features_file;  // a .npy of pool3 features (--features-out): FID statistics only
    EvFeatureStats stats;
    bool is_samples;   // images were evaluated (IS available)
    PoolFeatures pool;  // --pr: the images' pool3 features
} FidInput;

// Evaluates images [lo, hi) of a sample set into in->stats (eval_source_images: features to `fo`, kept in `keep`).
static KtStatus eval_images(FidInput *in, FidSource *src, EvExtractor *ex, int batch, int64_t lo, int64_t hi,
                            NpyOut *fo, PoolFeatures *keep) {
    KT_TRY(ev_stats_init(&in->stats, INC_POOL3, g.no_spatial ? 0 : INC_SPATIAL, src->n, INC_CLASSES));
    in->is_samples = true;
    return eval_source_images(src, ex, &in->stats, batch, lo, hi, fo, keep, "fid", g.quiet);
}

// A .npy of pool3 features (N, 2048) as --features-out writes them: the FID statistics (no sFID, no IS: those need
// the images) and, with --pr, the features themselves. Read a chunk of rows at a time from the mapped file.
static KtStatus load_features(FidInput *in, PoolFeatures *keep) {
    EvNpyFile f;
    KT_TRY(features_file_open(&f, in->path));
    const EvNpyHeader *h = &f.h;
    KtStatus st = ev_stats_init(&in->stats, INC_POOL3, 0, 0, 0);
    enum { CHUNK = 1024 };
    float *buf = st == KT_OK ? malloc((size_t)CHUNK * INC_POOL3 * sizeof *buf) : NULL;
    if (st == KT_OK && !buf) st = KT_FAIL(KT_ERR_OOM, "%s: out of memory", in->path);
    for (int64_t r = 0; st == KT_OK && r < h->shape[0]; r += CHUNK) {
        int64_t k = h->shape[0] - r < CHUNK ? h->shape[0] - r : CHUNK;
        memcpy(buf, f.data + (size_t)r * INC_POOL3 * sizeof *buf, (size_t)k * INC_POOL3 * sizeof *buf);  // the data may sit at any offset
        st = ev_moments_add(&in->stats.pool3, buf, k);
        if (st == KT_OK && keep) st = pool_features_append(keep, buf, k, in->path);
    }
    free(buf);
    ev_npy_file_close(&f);
    return st;
}

static bool is_npy_path(const char *path) {
    size_t n = strlen(path);
    return n > 4 && !strcasecmp(path + n - 4, ".npy");
}

// ------------------------------------------------------------------------------------------------- results
static void print_results(FidInput *in, int n_in, const double *fid, const double *sfid, const EvPrResult *pr) {
    double is_m[2] = {0}, is_s[2] = {0};
    bool has_is[2] = {false, false};
    for (int i = 0; i < n_in; i++)
        if (in[i].stats.is.C && ev_is_score(&in[i].stats.is, &is_m[i], &is_s[i]) == KT_OK) has_is[i] = true;
    if (g.json) {
        char a[64] = "null", b[64] = "null", m[64] = "null", s[64] = "null", na[32] = "null", nb[32] = "null";
        char pp[64] = "null", rr[64] = "null";
        if (pr) snprintf(pp, sizeof pp, "%.17g", pr->precision), snprintf(rr, sizeof rr, "%.17g", pr->recall);
        if (fid) snprintf(a, sizeof a, "%.17g", *fid);
        if (sfid) snprintf(b, sizeof b, "%.17g", *sfid);
        if (has_is[0]) snprintf(m, sizeof m, "%.17g", is_m[0]), snprintf(s, sizeof s, "%.17g", is_s[0]);
        if (ev_stats_count(&in[0].stats) >= 0) snprintf(na, sizeof na, "%lld", (long long)ev_stats_count(&in[0].stats));
        if (n_in > 1 && ev_stats_count(&in[1].stats) >= 0)
            snprintf(nb, sizeof nb, "%lld", (long long)ev_stats_count(&in[1].stats));
        printf("{\"fid\": %s, \"sfid\": %s, \"is_mean\": %s, \"is_std\": %s, \"precision\": %s, \"recall\": %s, "
               "\"n_a\": %s, \"n_b\": %s}\n", a, b, m, s, pp, rr, na, nb);
        return;
    }
    for (int i = 0; i < n_in; i++) {
        int64_t n = ev_stats_count(&in[i].stats);
        printf("%s: %s", i ? "B" : "A", in[i].path);
        if (n >= 0)
            printf(" (%lld %s)", (long long)n, in[i].stats_file      ? "samples in its statistics"
                                               : in[i].features_file ? "feature vectors"
                                                                     : "images");
        printf("\n");
        if (has_is[i]) printf("  Inception Score: %.4f +- %.4f (%d splits)\n", is_m[i], is_s[i], EV_IS_SPLITS);
    }
    if (fid) printf("FID: %.4f\n", *fid);
    if (sfid) printf("sFID: %.4f\n", *sfid);
    if (pr) printf("Precision: %.4f\nRecall: %.4f\n", pr->precision, pr->recall);
}

static KtStatus frechet_of(FidInput *in, bool spatial, double *out) {
    double *mu1 = NULL, *s1 = NULL, *mu2 = NULL, *s2 = NULL;
    KtStatus st = ev_stats_mu_sigma(&in[0].stats, spatial, &mu1, &s1);
    if (st == KT_OK) st = ev_stats_mu_sigma(&in[1].stats, spatial, &mu2, &s2);
    int D = spatial ? in[0].stats.D_s : in[0].stats.D;
    if (st == KT_OK && D != (spatial ? in[1].stats.D_s : in[1].stats.D))
        st = KT_FAIL(KT_ERR_SHAPE, "%s and %s have statistics of different dimension (%d vs %d)", in[0].path,
                     in[1].path, D, spatial ? in[1].stats.D_s : in[1].stats.D);
    if (st == KT_OK) st = ev_frechet_distance(mu1, s1, mu2, s2, D, out);
    free(mu1), free(s1), free(mu2), free(s2);
    return st;
}

static void warn_small(const FidInput *in) {
    int64_t n = ev_stats_count(&in->stats);
    if (n >= 0 && n < INC_POOL3 && !g.quiet)
        fprintf(stderr, "warning: %s: %lld samples < %d feature dimensions: the covariance is rank-deficient and FID "
                "is strongly biased upward; compare FIDs only at equal sample counts (published numbers use 50,000)\n",
                in->path, (long long)n, INC_POOL3);
}

// ----------------------------------------------------------------------------------------------------- run
static int run(const CliParsed *parsed) {
    int shard_k, shard_n, n_in = parsed->n_pos, rc = 1;
    if (cli_parse_shard(g.shard, &shard_k, &shard_n) != KT_OK) return fprintf(stderr, "argen: %s\n", kt_last_error()), 2;
    if (g.shard && (n_in != 1 || !(g.save_stats || g.features_out))) {
        fprintf(stderr, "argen: --shard: give one input and --save-stats PART.npz and/or --features-out PART.npy "
                "(join the parts with fid-merge)\n");
        return 2;
    }
    if (!g.pr && cli_opt_given(&k_cmd, parsed, "pr-distances")) {
        fprintf(stderr, "argen: --pr-distances applies with --pr only\n");
        return 2;
    }
    if (g.save_stats && n_in != 1) {
        fprintf(stderr, "argen: --save-stats saves the statistics of one input: give only A\n");
        return 2;
    }
    if (g.pr && n_in != 2) {
        fprintf(stderr, "argen: --pr compares two image sets: give A (the samples) and B (the reference)\n");
        return 2;
    }
    FidInput in[2];
    memset(in, 0, sizeof in);
    FidSource src[2];
    memset(src, 0, sizeof src);
    KtBackend be = {0};
    EvExtractor ex = {0};
    NpyOut fo = {0};
    bool need_net = false;
    KtStatus st = KT_OK;
    if (g.save_stats) st = check_output_file("--save-stats", g.save_stats);
    if (st == KT_OK && g.features_out) st = check_output_file("--features-out", g.features_out);
    for (int i = 0; i < n_in && st == KT_OK; i++) {
        in[i].path = parsed->pos[i];
        if (access(in[i].path, R_OK) != 0) {
            st = KT_FAIL(KT_ERR_IO, "%s: %s", in[i].path, strerror(errno));
            break;
        }
        // a statistics npz (mu/sigma or sums: ADM reference batches also hold arr_0, which their mu/sigma
        // supersede), else a sample npz or a PNG directory
        struct stat sb;
        bool yes = false, file = stat(in[i].path, &sb) == 0 && S_ISREG(sb.st_mode);
        if (file && is_npy_path(in[i].path)) {  // pool3 features: no network needed
            in[i].features_file = true;
            st = load_features(&in[i], g.pr ? &in[i].pool : NULL);
        } else if (file && ev_stats_is_stats_file(in[i].path, &yes) == KT_OK && yes) {
            in[i].stats_file = true;
            st = ev_stats_load(&in[i].stats, in[i].path);
            if (st == KT_OK && g.pr) {  // its images too (an ADM reference batch: arr_0 beside mu/sigma)
                EvNpz *z = NULL;
                bool images = ev_npz_open(&z, in[i].path) == KT_OK && ev_npz_has(z, "arr_0");
                ev_npz_close(z);
                st = images ? fid_source_open(&src[i], in[i].path)
                            : KT_FAIL(KT_ERR_ARG, "--pr: %s holds statistics only (no arr_0 images); precision and "
                                      "recall need the images of both sets (the ADM reference batches such as "
                                      "VIRTUAL_imagenet256_labeled.npz hold them)", in[i].path);
                need_net = true;
            }
        } else {
            st = fid_source_open(&src[i], in[i].path);
            need_net = true;
        }
    }
    if (st == KT_OK && g.features_out && (in[0].stats_file || in[0].features_file))
        st = KT_FAIL(KT_ERR_ARG, "--features-out: %s is a %s file; features are written from images", in[0].path,
                     in[0].stats_file ? "statistics" : "features");
    if (st == KT_OK && g.shard && (in[0].stats_file || in[0].features_file))
        st = KT_FAIL(KT_ERR_ARG, "--shard: %s is a %s file; shards split image sets", in[0].path,
                     in[0].stats_file ? "statistics" : "features");
    if (st == KT_OK && need_net) {
        char ipath[4200];
        st = cli_inception_path(g.inception, ipath, sizeof ipath);
        if (st == KT_OK) st = cli_eval_backend(&be, g.device, g.dtype);
        int batch = g.batch ? g.batch : be.device == KT_CUDA ? 200 : 8;
        if (st == KT_OK && g.verbose) fprintf(stderr, "device: %s\ninception: %s\n", be.name, ipath);
        if (st == KT_OK)
            st = ev_extractor_init(&ex, &be, ipath, batch,
                                   !strcmp(g.resize, "adm") ? KT_FID_RESIZE_ADM : KT_FID_RESIZE_PYTORCH);
        if (st == KT_OK && g.verbose && ex.net.gamma_all_one)
            fprintf(stderr, "inception: every BatchNorm gamma is 1.0 (as the TF graph implies)\n");
        for (int i = 0; i < n_in && st == KT_OK; i++) {
            if (in[i].features_file) continue;  // loaded above
            PoolFeatures *keep = g.pr ? &in[i].pool : NULL;
            if (in[i].stats_file) {  // --pr only: the features of its images; its statistics stay the file's
                if (!keep) continue;
                FidInput scratch = {.path = in[i].path};
                st = eval_images(&scratch, &src[i], &ex, batch, 0, src[i].n, NULL, keep);
                ev_stats_free(&scratch.stats);
                continue;
            }
            int64_t lo = src[i].n * shard_k / shard_n, hi = src[i].n * (shard_k + 1) / shard_n;
            if (i == 0 && g.features_out) st = npy_out_open(&fo, g.features_out, hi - lo);
            if (st == KT_OK)
                st = eval_images(&in[i], &src[i], &ex, batch, lo, hi, i == 0 && g.features_out ? &fo : NULL, keep);
            if (i == 0 && g.features_out) {
                KtStatus c = npy_out_close(&fo, st == KT_OK);
                if (st == KT_OK) st = c;
            }
        }
    }
    if (st == KT_OK && g.save_stats) {
        st = ev_stats_save(&in[0].stats, g.save_stats, g.shard != NULL);
        if (st == KT_OK && !g.quiet)
            fprintf(stderr, "fid: wrote %s statistics of %lld %s to %s\n", g.shard ? "partial" : "the",
                    (long long)ev_stats_count(&in[0].stats), in[0].features_file ? "feature vectors" : "images",
                    g.save_stats);
    }
    double fid = 0, sfid = 0;
    bool has_sfid = false;
    if (st == KT_OK && n_in == 2) {
        warn_small(&in[0]);
        warn_small(&in[1]);
        st = frechet_of(in, false, &fid);
        has_sfid = in[0].stats.D_s && in[1].stats.D_s && (!in[0].stats.fixed || in[0].stats.mu_s) &&
                   (!in[1].stats.fixed || in[1].stats.mu_s);
        if (st == KT_OK && has_sfid) st = frechet_of(in, true, &sfid);
    }
    EvPrResult pr = {0};
    if (st == KT_OK && g.pr && !be.ops) st = cli_eval_backend(&be, g.device, "fp32");  // two feature files
    if (st == KT_OK && g.pr)
        st = eval_precision_recall(&be, &in[0].pool, &in[1].pool, !strcmp(g.pr_distances, "fp16"), "fid", g.quiet, &pr);
    if (st == KT_OK && !g.shard)
        print_results(in, n_in, n_in == 2 ? &fid : NULL, has_sfid ? &sfid : NULL, g.pr ? &pr : NULL);
    rc = st == KT_OK ? 0 : cli_fail();
    npy_out_close(&fo, false);
    for (int i = 0; i < 2; i++) {
        ev_stats_free(&in[i].stats);
        pool_features_free(&in[i].pool);
        fid_source_close(&src[i]);
    }
    ev_extractor_free(&ex);
    if (be.ops) kt_backend_free(&be);
    return rc;
}

int cmd_fid(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    if (g.verbose) cli_opts_echo(stderr, &k_cmd, &parsed);
    rc = run(&parsed);
    cli_parsed_free(&parsed);
    return rc;
}

// ------------------------------------------------------------------------------------------------ fid-merge
typedef struct {
    const char *out;
    bool partial, quiet;
} MergeArgs;

static MergeArgs gm;

static const CliOption k_merge_opts[] = {
    {"out", 'o', CLI_STRING, NULL, "FILE.npz|FILE.npy", "merged statistics (mu, sigma, mu_s, sigma_s, n, IS sums), or the parts' pool3 features one after the other", &gm.out, .required = true},
    {"partial", 0, CLI_FLAG, NULL, NULL, "statistics: write exact sums again (a part for a further merge) instead of mu/sigma", &gm.partial, .required = false},
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "print nothing on success", &gm.quiet, .required = false},
};

static const CliCommand k_merge_cmd = {
    "argen fid-merge",
    "Merges partial statistics written by `argen fid --shard K/N --save-stats PART.npz` (or `argen render --shard\n"
    "K/N --fid-ref ... --save-stats PART.npz`) exactly: sample counts, feature sums and outer-product sums add up,\n"
    "so the result equals one run over the whole set (up to the order of floating-point additions).\n"
    "Pool3 features (.npy parts from `--shard K/N --features-out PART.npy`) are joined in the order given: give the\n"
    "shards in order and the rows are those of one run.",
    k_merge_opts, CLI_COUNT(k_merge_opts), "PART.npz...|PART.npy...", 1, -1,
    "example:\n  argen fid-merge part0.npz part1.npz part2.npz part3.npz -o samples_stats.npz\n"
    "  argen fid samples_stats.npz VIRTUAL_imagenet256_labeled.npz\n"
    "  argen fid-merge feat0.npy feat1.npy feat2.npy feat3.npy -o feats.npy\n"
    "  argen fid feats.npy VIRTUAL_imagenet256_labeled.npz --pr   (precision and recall of the sharded set)",
};

// Joins .npy pool3 feature files in the order given into `out` (written atomically).
static KtStatus merge_features(const CliParsed *parsed, const char *out) {
    int64_t total = 0;
    for (int i = 0; i < parsed->n_pos; i++) {
        EvNpyFile f;
        KT_TRY(features_file_open(&f, parsed->pos[i]));
        total += f.h.shape[0];
        ev_npy_file_close(&f);
    }
    KT_TRY(check_output_file("--out", out));
    NpyOut o;
    KtStatus st = npy_out_open(&o, out, total);
    for (int i = 0; i < parsed->n_pos && st == KT_OK; i++) {
        EvNpyFile f;
        st = features_file_open(&f, parsed->pos[i]);
        if (st == KT_OK) st = npy_out_write(&o, f.data, f.h.shape[0]);
        if (st == KT_OK) ev_npy_file_close(&f);
    }
    KtStatus c = npy_out_close(&o, st == KT_OK);
    return st == KT_OK ? c : st;
}

int cmd_fid_merge(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_merge_cmd, argc, argv, &parsed, &rc)) return rc;
    int n_npy = 0;
    for (int i = 0; i < parsed.n_pos; i++) n_npy += is_npy_path(parsed.pos[i]);
    if (n_npy) {  // pool3 features
        rc = 2;
        if (n_npy != parsed.n_pos || !is_npy_path(gm.out))
            fprintf(stderr, "argen: fid-merge: give only .npy feature files and -o FILE.npy, or only .npz statistics "
                    "and -o FILE.npz (found %d .npy of %d inputs, -o %s)\n", n_npy, parsed.n_pos, gm.out);
        else if (gm.partial)
            fprintf(stderr, "argen: --partial: applies to statistics; joined features are complete as they are\n");
        else if (merge_features(&parsed, gm.out) != KT_OK)
            rc = cli_fail();
        else {
            rc = 0;
            if (!gm.quiet) printf("joined %d feature files -> %s\n", parsed.n_pos, gm.out);
        }
        cli_parsed_free(&parsed);
        return rc;
    }
    EvFeatureStats all = {0}, part = {0};
    KtStatus st = ev_stats_load(&all, parsed.pos[0]);
    if (st == KT_OK && all.fixed)
        st = ev_stats_merge(&all, &all, parsed.pos[0]);  // reports that mu/sigma-only files cannot be merged
    for (int i = 1; i < parsed.n_pos && st == KT_OK; i++) {
        st = ev_stats_load(&part, parsed.pos[i]);
        if (st == KT_OK) st = ev_stats_merge(&all, &part, parsed.pos[i]);
        ev_stats_free(&part);
    }
    if (st == KT_OK) st = ev_stats_save(&all, gm.out, gm.partial);
    if (st == KT_OK && !gm.quiet) {
        int64_t n_is = 0;
        for (int s = 0; s < EV_IS_SPLITS; s++) n_is += all.is.count[s];
        printf("merged %d parts: %lld samples -> %s\n", parsed.n_pos, (long long)ev_stats_count(&all), gm.out);
        double m, sd;
        if (all.is.C && n_is == all.is.total && ev_is_score(&all.is, &m, &sd) == KT_OK)
            printf("  Inception Score: %.4f +- %.4f (%d splits)\n", m, sd, EV_IS_SPLITS);
        else if (all.is.C)
            printf("  Inception Score: not reported (the parts cover %lld of the set's %lld samples)\n",
                   (long long)n_is, (long long)all.is.total);
    }
    rc = st == KT_OK ? 0 : cli_fail();
    ev_stats_free(&all);
    cli_parsed_free(&parsed);
    return rc;
}
