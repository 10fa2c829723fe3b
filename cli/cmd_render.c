// argen render: an evaluation set (e.g. 50 images for each of the 1000 ImageNet classes) into a PNG directory or
// an ADM-layout sample .npz, resumable, shardable, optionally with Inception statistics computed on the fly
// (--fid-ref) so that FID needs no second pass. --protocol fills in the official FID-50k recipe of a model.
// Image k of the set has class classes[k / per_class] and the random stream (seed, k): any image can be made
// alone, on any machine, in any batch, and a re-run only makes what is missing.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "eval/frechet.h"
#include "eval/npz.h"
#include "eval_features.h"
#include "image_io.h"
#include "render_output.h"

// ------------------------------------------------------------------------------------------------- protocols
typedef struct {
    const char *name, *arch, *ckpt, *tokenizer;
    float cfg, top_p, temperature;
    int top_k, image_size, eval_size;  // eval_size: the side the images are resized to before 8-bit (0: none)
    const char *published;  // the published numbers, with their source
} Protocol;

// VAR: README "FID evaluation" settings; LlamaGen: GETTING_STARTED sample_c2i_ddp settings (top-k 0, top-p 1); its
// 384px models are evaluated at 256 (--image-size 384 --image-size-eval 256: a bicubic resize of the float image
// before the 8-bit conversion). spec/var.md, spec/raster.md section 7.
#define LLAMAGEN_LABELS "; the official script draws labels uniformly at random, argen renders 50 per class"
static const Protocol k_protocols[] = {
    {"var-d16", "var", "var_d16.pth", "vae_ch160v4096z32.pth", 1.5f, 0.96f, 1.0f, 900, 256, 0,
     "FID 3.55 (VAR README); paper Table 1: FID 3.30, IS 274.4 (not verified here)"},
    {"var-d20", "var", "var_d20.pth", "vae_ch160v4096z32.pth", 1.5f, 0.96f, 1.0f, 900, 256, 0,
     "FID 2.95 (VAR README); paper Table 1: FID 2.57, IS 302.6 (not verified here)"},
    {"var-d24", "var", "var_d24.pth", "vae_ch160v4096z32.pth", 1.5f, 0.96f, 1.0f, 900, 256, 0,
     "FID 2.33 (VAR README); paper Table 1: FID 2.09, IS 312.9 (not verified here)"},
    {"var-d30", "var", "var_d30.pth", "vae_ch160v4096z32.pth", 1.5f, 0.96f, 1.0f, 900, 256, 0,
     "FID 1.97 (VAR README); paper Table 1: FID 1.92, IS 323.1 (not verified here)"},
    {"llamagen-b", "llamagen", "c2i_B_256.pt", "vq_ds16_c2i.pt", 2.0f, 1.0f, 1.0f, 0, 256, 0,
     "FID 5.46 (LlamaGen README, cfg 2.0); IS 193.6 (paper, not verified here)" LLAMAGEN_LABELS},
    {"llamagen-l", "llamagen", "c2i_L_256.pt", "vq_ds16_c2i.pt", 2.0f, 1.0f, 1.0f, 0, 256, 0,
     "FID 3.80 (LlamaGen README, cfg 2.0); IS 248.3 (paper, not verified here)" LLAMAGEN_LABELS},
    {"llamagen-b-384", "llamagen", "c2i_B_384.pt", "vq_ds16_c2i.pt", 2.0f, 1.0f, 1.0f, 0, 384, 256,
     "FID 6.09 (LlamaGen README, cfg 2.0, 384px evaluated at 256)" LLAMAGEN_LABELS},
    {"llamagen-l-384", "llamagen", "c2i_L_384.pt", "vq_ds16_c2i.pt", 2.0f, 1.0f, 1.0f, 0, 384, 256,
     "FID 3.07 (LlamaGen README, cfg 2.0, 384px evaluated at 256); IS 256.1 (paper, not verified here)" LLAMAGEN_LABELS},
    {"llamagen-xl", "llamagen", "c2i_XL_384.pt", "vq_ds16_c2i.pt", 1.75f, 1.0f, 1.0f, 0, 384, 256,
     "FID 2.62 (LlamaGen README, cfg 1.75, 384px evaluated at 256); IS 244.1 (paper, not verified here)" LLAMAGEN_LABELS},
    {"llamagen-xxl", "llamagen", "c2i_XXL_384.pt", "vq_ds16_c2i.pt", 1.75f, 1.0f, 1.0f, 0, 384, 256,
     "FID 2.34 (LlamaGen README, cfg 1.75, 384px evaluated at 256); IS 253.9 (paper, not verified here)" LLAMAGEN_LABELS},
    {"llamagen-3b", "llamagen", "c2i_3B_384.pt", "vq_ds16_c2i.pt", 1.65f, 1.0f, 1.0f, 0, 384, 256,
     "FID 2.18 (LlamaGen README, cfg 1.65, 384px evaluated at 256); IS 263.3 (paper, not verified here)" LLAMAGEN_LABELS},
};

// ---------------------------------------------------------------------------------------------------- options
typedef struct {
    const char *arch, *vae, *vq, *ckpt, *out, *protocol, *shard, *fid_ref, *save_stats, *inception, *resize, *random_init;
    const char *device, *dtype, *features_out, *pr_distances, *decode, *sjd_init;
    CliIntList classes, patch_nums;
    int per_class, top_k, batch, image_size, eval_size, heads, sjd_window, zipar_window;
    float cfg, top_p, temperature;
    int64_t seed;
    bool no_spatial, json, quiet, verbose, pr;
} RenderArgs;

static RenderArgs g;

static const CliOption k_opts[] = {
    {"protocol", 0, CLI_STRING, NULL, NULL, "the official FID-50k recipe of a model (fixes arch, cfg, top-k/p, image and evaluation size, classes, per-class, seed)", &g.protocol, .choices = "var-d16|var-d20|var-d24|var-d30|llamagen-b|llamagen-l|llamagen-b-384|llamagen-l-384|llamagen-xl|llamagen-xxl|llamagen-3b"},
    {"arch", 0, CLI_STRING, "var", NULL, "model family", &g.arch, .choices = "var|llamagen"},
    {"vae", 0, CLI_STRING, NULL, "FILE", "VAR: VQVAE checkpoint (vae_ch160v4096z32.pth)", &g.vae, .required = false},
    {"vq", 0, CLI_STRING, NULL, "FILE", "LlamaGen: VQ tokenizer checkpoint (vq_ds16_c2i.pt)", &g.vq, .required = false},
    {"ckpt", 0, CLI_STRING, NULL, "FILE", "transformer checkpoint (var_d16.pth, c2i_B_256.pt, ...) (required unless --random-init)", &g.ckpt, .required = false},
    {"random-init", 0, CLI_STRING, NULL, "ARCH", "timing runs without checkpoints: the official ARCH (var-dN, or llamagen-b|l|xl|xxl|3b with --arch llamagen) with random weights instead of --vae/--vq/--ckpt; images and FID are meaningless, the time is real", &g.random_init, .required = false},
    {"patch-nums", 0, CLI_INT_LIST, "1,2,3,4,5,6,8,10,13,16", "N,...", "VAR: token-map side of each scale", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"image-size", 0, CLI_INT, "256", NULL, "LlamaGen: image side", &g.image_size, .has_min = true, .min = 16, .has_max = true, .max = 4096},
    {"eval-size", 0, CLI_INT, "0", NULL, "LlamaGen: resize each image (float values, bicubic) to this side before the 8-bit conversion (0: keep the image size; the 384px models' FID protocol: 256)", &g.eval_size, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"heads", 0, CLI_INT, "0", NULL, "LlamaGen: attention heads (0: official for the width)", &g.heads, .has_min = true, .min = 0, .has_max = true, .max = 1024},
    {"classes", 0, CLI_INT_LIST, "0-999", "C,...", "classes of the set, e.g. 0-999", &g.classes, .has_min = true, .min = 0},
    {"per-class", 0, CLI_INT, "50", NULL, "images per class", &g.per_class, .has_min = true, .min = 1, .has_max = true, .max = 1000000},
    {"cfg", 0, CLI_FLOAT, NULL, "X", "guidance (default: var 1.5, llamagen 2.0)", &g.cfg, .has_min = true, .min = 0},
    {"top-k", 'k', CLI_INT, NULL, "N", "top-k (default: var 900, llamagen 0 = off)", &g.top_k, .has_min = true, .min = 0},
    {"top-p", 'p', CLI_FLOAT, NULL, "X", "top-p (default: var 0.96, llamagen 1.0 = off)", &g.top_p, .has_min = true, .min = 0, .has_max = true, .max = 1},
    {"temperature", 't', CLI_FLOAT, "1", NULL, "LlamaGen: temperature", &g.temperature, .has_min = true, .min = 1e-5, .has_max = true, .max = 100},
    {"seed", 's', CLI_INT64, "0", NULL, "random seed (image k uses stream (seed, k))", &g.seed, .has_min = true, .min = 0},
    {"decode", 0, CLI_STRING, "sequential", NULL, "LlamaGen: decoding strategy (sjd, zipar: their image quality under a protocol's recipe; see argen sample --help)", &g.decode, .choices = "sequential|sjd|zipar"},
    {"sjd-window", 0, CLI_INT, "16", NULL, "SJD: tokens per forward (the accepted one + drafts)", &g.sjd_window, .has_min = true, .min = 1, .has_max = true, .max = 1024},
    {"sjd-init", 0, CLI_STRING, "random", NULL, "SJD: draft initialisation", &g.sjd_init, .choices = "random|repeat-horizon|sample-horizon"},
    {"zipar-window", 0, CLI_INT, "8", NULL, "ZipAR: tokens of a row before the next row starts (2 .. grid-1)", &g.zipar_window, .has_min = true, .min = 2, .has_max = true, .max = 255},
    {"out", 'o', CLI_STRING, NULL, "DIR|FILE.npz", "PNG directory, or an ADM sample batch .npz (arr_0 uint8 N x S x S x 3)", &g.out, .required = false},
    {"shard", 0, CLI_STRING, NULL, "K/N", "render only the K-th of N equal contiguous parts (a .npz output becomes FILE.shardKofN.npz)", &g.shard, .required = false},
    {"fid-ref", 0, CLI_STRING, NULL, "REF.npz", "compute Inception statistics while rendering and print FID/sFID/IS against these reference statistics", &g.fid_ref, .required = false},
    {"save-stats", 0, CLI_STRING, NULL, "FILE.npz", "save the set's Inception statistics (partial sums with --shard, for fid-merge)", &g.save_stats, .required = false},
    {"features-out", 0, CLI_STRING, NULL, "FILE.npy", "write the pool3 features of the rendered images (float32, N x 2048 in image order; with --shard the shard's), for `argen fid FILE.npy REF.npz [--pr]` later", &g.features_out, .required = false},
    {"pr", 0, CLI_FLAG, NULL, NULL, "with --fid-ref: also improved precision and recall against the reference batch's images (its arr_0, as in the ADM reference batches); keeps the pool3 features in memory (8 KiB per image)", &g.pr, .required = false},
    {"pr-distances", 0, CLI_STRING, "fp32", NULL, "--pr: float32 distances, or fp16 as the ADM evaluator computes them", &g.pr_distances, .choices = "fp32|fp16"},
    {"inception", 0, CLI_STRING, NULL, "FILE", "FID Inception weights (see argen fid --help)", &g.inception, .required = false},
    {"resize", 0, CLI_STRING, "adm", NULL, "FID preprocessing", &g.resize, .choices = "adm|pytorch-fid"},
    {"no-sfid", 0, CLI_FLAG, NULL, NULL, "skip the sFID statistics", &g.no_spatial, .required = false},
    {"json", 0, CLI_FLAG, NULL, NULL, "print the results as one JSON object", &g.json, .required = false},
    {"batch", 'b', CLI_INT, "0", NULL, "images per forward pass (0: 1 on the CPU, 32 on CUDA)", &g.batch, .has_min = true, .min = 0, .has_max = true, .max = 4096},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "generator GEMM precision (the Inception network runs in fp32)", &g.dtype, .choices = "fp32|bf16|fp16"},
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "no progress line", &g.quiet, .required = false},
    {"verbose", 'v', CLI_FLAG, NULL, NULL, "print the configuration and the device", &g.verbose, .required = false},
};

static const CliCommand k_cmd = {
    "argen render",
    "Renders an evaluation set: per-class images of the given classes, image k with class classes[k / per-class] and\n"
    "random stream (seed, k). Output: a PNG directory (files <k>_c<class>.png plus argen_run.json) or a sample .npz\n"
    "(ADM layout, for `argen fid` or the ADM evaluator; built from a resumable FILE.npz.partial). Interrupted runs\n"
    "resume: finished images are kept (and, with --fid-ref, --save-stats, --features-out or --pr, read back for the\n"
    "Inception features).",
    k_opts, CLI_COUNT(k_opts), NULL, 0, 0,
    "examples:\n  argen render --protocol var-d16 --vae vae_ch160v4096z32.pth --ckpt var_d16.pth --out var_d16_50k.npz\n"
    "  argen fid var_d16_50k.npz VIRTUAL_imagenet256_labeled.npz\n"
    "  argen render --protocol var-d16 --vae ... --ckpt ... --fid-ref VIRTUAL_imagenet256_labeled.npz   (no files)\n"
    "  argen render --protocol var-d16 --vae ... --ckpt ... --fid-ref VIRTUAL_imagenet256_labeled.npz --pr\n"
    "  argen render ... --shard 3/8 --fid-ref REF.npz --save-stats part3.npz   (scripts/slurm_fid50k.sh)\n"
    "  argen render --protocol llamagen-xl --vq vq_ds16_c2i.pt --ckpt c2i_XL_384.pt --out xl_50k.npz   (384 -> 256)\n"
    "  argen render --protocol llamagen-b --vq ... --ckpt c2i_B_256.pt --decode sjd --fid-ref REF.npz   (SJD's FID)\n"
    "  argen render --protocol var-d16 --random-init var-d16 --fid-ref REF.npz   (the time of a FID-50k run, no checkpoints)",
};

static bool llamagen(void) { return !strcmp(g.arch, "llamagen"); }

// Applies --protocol (rejecting options it fixes) and the per-architecture defaults.
static const Protocol *apply_protocol(const CliParsed *p) {
    const Protocol *pr = NULL;
    for (int i = 0; g.protocol && i < CLI_COUNT(k_protocols); i++)
        if (!strcmp(g.protocol, k_protocols[i].name)) pr = &k_protocols[i];
    if (pr) {
        static const char *fixed[] = {"arch", "cfg", "top-k", "top-p", "temperature", "classes", "per-class", "seed",
                                      "image-size", "eval-size"};
        for (int i = 0; i < CLI_COUNT(fixed); i++)
            if (cli_opt_given(&k_cmd, p, fixed[i])) {
                fprintf(stderr, "argen: --%s: --protocol %s fixes it; drop one of the two\n", fixed[i], pr->name);
                return (const Protocol *)-1;
            }
        g.arch = pr->arch;
        g.cfg = pr->cfg, g.top_k = pr->top_k, g.top_p = pr->top_p, g.temperature = pr->temperature;
        g.image_size = pr->image_size;
        g.eval_size = pr->eval_size;
        g.seed = 0, g.per_class = 50;
        g.classes.n = 1000;
        for (int i = 0; i < 1000; i++) g.classes.v[i] = i;
        return pr;
    }
    if (!cli_opt_given(&k_cmd, p, "cfg")) g.cfg = llamagen() ? 2.0f : 1.5f;
    if (!cli_opt_given(&k_cmd, p, "top-k")) g.top_k = llamagen() ? 0 : 900;
    if (!cli_opt_given(&k_cmd, p, "top-p")) g.top_p = llamagen() ? 1.0f : 0.96f;
    return NULL;
}

// ---------------------------------------------------------------------------------------------- settings
static char *settings_json(const Protocol *pr, int64_t total) {
    size_t cap = 16384, m = 0;
    char *b = malloc(cap), s1[1024], s2[1024], s3[1024];
    if (!b) return NULL;
    m += (size_t)snprintf(b + m, cap - m, "{\"protocol\": %s, \"arch\": \"%s\", \"tokenizer\": %s, \"ckpt\": %s, ",
                          pr ? cli_json_str(s1, sizeof s1, pr->name) : "null", g.arch,
                          cli_json_str(s2, sizeof s2, llamagen() ? g.vq : g.vae), cli_json_str(s3, sizeof s3, g.ckpt));
    if (g.random_init) m += (size_t)snprintf(b + m, cap - m, "\"random_init\": %s, ", cli_json_str(s1, sizeof s1, g.random_init));
    if (llamagen())
        m += (size_t)snprintf(b + m, cap - m, "\"image_size\": %d, \"eval_size\": %d, \"heads\": %d, \"temperature\": %g, ",
                              g.image_size, g.eval_size ? g.eval_size : g.image_size, g.heads, (double)g.temperature);
    if (!strcmp(g.decode, "sjd"))  // sequential adds nothing (the settings of runs made before --decode existed)
        m += (size_t)snprintf(b + m, cap - m, "\"decode\": \"sjd\", \"sjd_window\": %d, \"sjd_init\": \"%s\", ",
                              g.sjd_window, g.sjd_init);
    else if (!strcmp(g.decode, "zipar"))
        m += (size_t)snprintf(b + m, cap - m, "\"decode\": \"zipar\", \"zipar_window\": %d, ", g.zipar_window);
    else {
        m += (size_t)snprintf(b + m, cap - m, "\"patch_nums\": [");
        for (int i = 0; i < g.patch_nums.n; i++) m += (size_t)snprintf(b + m, cap - m, i ? ", %d" : "%d", g.patch_nums.v[i]);
        m += (size_t)snprintf(b + m, cap - m, "], \"more_smooth\": false, ");
    }
    m += (size_t)snprintf(b + m, cap - m, "\"cfg\": %g, \"top_k\": %d, \"top_p\": %g, \"seed\": %lld, "
                          "\"seed_rule\": \"image k: class classes[k / per_class], Philox stream (seed, k)\", "
                          "\"per_class\": %d, \"n_classes\": %d, \"total\": %lld, \"dtype\": \"%s\", \"classes\": [",
                          (double)g.cfg, g.top_k, (double)g.top_p, (long long)g.seed, g.per_class, g.classes.n,
                          (long long)total, g.dtype);
    for (int i = 0; i < g.classes.n && m + 16 < cap; i++) m += (size_t)snprintf(b + m, cap - m, i ? ",%d" : "%d", g.classes.v[i]);
    snprintf(b + m, cap - m, "], \"published\": %s}", pr ? cli_json_str(s1, sizeof s1, pr->published) : "null");
    return b;
}

// ---------------------------------------------------------------------------------------------------- run
typedef struct {
    ArgenModel *model;
    ArgenSampleParams sp;
    ArgenInfo info;
    Output out;
    bool has_out;
    EvExtractor ex;
    EvFeatureStats stats;
    bool has_stats;       // Inception features are computed (--fid-ref, --save-stats, --features-out or --pr)
    float *feats;         // (max_batch, 2048): a batch's pool3 features back on the host (--features-out, --pr)
    NpyOut feats_out;     // --features-out
    PoolFeatures pool;    // --pr: the rendered images' pool3 features
    FidSource ref_src;    // --pr: the reference batch's images
    KtBackend eval_be;
    const char *settings;  // borrowed: the run's settings JSON (PNG metadata)
    double t_generate, t_features, t_io;  // seconds spent generating, in Inception + statistics, reading/writing
} Render;

// argen_* errors as a KtStatus (copying the message out of the shared error buffer first).
static KtStatus from_argen(void) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", argen_last_error());
    return KT_FAIL(KT_ERR_ARG, "%s", msg);
}

static void progress(int64_t done, int64_t total, int64_t made, double t0) {
    if (g.quiet) return;
    double dt = cli_now() - t0, rate = dt > 0 ? (double)made / dt : 0;
    bool tty = isatty(2);
    fprintf(stderr, "%srender: %lld/%lld images, %.2f img/s, ETA %.0fs%s", tty ? "\r" : "", (long long)done,
            (long long)total, rate, rate > 0 ? (double)(total - done) / rate : 0, tty && done < total ? "" : "\n");
    fflush(stderr);
}

// Renders images [lo, hi) in index order, in fixed windows of B images ([lo, lo + B), [lo + B, lo + 2B), ...): a
// window with a missing image is generated whole and only its missing images are written, so every image is made
// in the same batch, at the same row, on a resumed run as on an uninterrupted one (a GPU's GEMMs may round
// differently at another batch size; with the same batch the bytes are the same). Finished images are read back
// when statistics are wanted (their files count, whatever device wrote them). Two pixel buffers: a batch's files
// are written on another thread while the next batch is generated into the other one.
static KtStatus render_range(Render *r, int64_t lo, int64_t hi, int64_t total) {
    int S = r->info.output_size, B = r->info.max_batch;
    size_t img = (size_t)S * S * 3;
    // with statistics the images go straight into the extractor's input buffers (page-locked on a GPU: the
    // generator's download and the Inception upload are then single DMAs)
    uint8_t *pxs[2] = {NULL, NULL};
    KtStatus st = KT_OK;
    for (int k = 0; k < 2 && st == KT_OK; k++)
        st = r->has_stats ? ev_extractor_input(&r->ex, k, (size_t)B * img, &pxs[k])
                          : (pxs[k] = malloc((size_t)B * img)) ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    int *cls = malloc((size_t)B * sizeof *cls);
    int64_t *ids = malloc((size_t)B * sizeof *ids);
    if (st == KT_OK && !(cls && ids)) st = KT_FAIL(KT_ERR_OOM, "out of memory");
    int64_t n_done = 0, made = 0, generated = 0;  // made: new images (written, or counted without output)
    for (int64_t i = 0; r->has_out && i < hi - lo; i++) n_done += r->out.is_done[i];
    if (n_done && !g.quiet)
        fprintf(stderr, "render: %lld of %lld images already rendered, %s\n", (long long)n_done, (long long)(hi - lo),
                r->has_stats ? "reading them back for the statistics" : "skipping them");
    // testing hook: stop after writing this many new images, like a run interrupted mid-batch (resume tests)
    const char *stop_env = getenv("ARGEN_RENDER_MAX_IMAGES");
    int64_t stop_after = stop_env ? atoll(stop_env) : -1;
    OutputWrite wr = {.o = &r->out, .S = S, .settings = r->settings};
    double t0 = cli_now(), last = 0;
    for (int64_t i = lo, cur = 0; st == KT_OK && i < hi; cur ^= 1) {
        uint8_t *px = pxs[cur];  // the other buffer may still be written out
        int b = hi - i < B ? (int)(hi - i) : B, missing = 0;
        const uint8_t *done = r->has_out ? r->out.is_done + (i - lo) : NULL;
        for (int j = 0; j < b; j++) missing += !(done && done[j]);
        if (missing && stop_after >= 0 && made >= stop_after) {
            st = KT_FAIL(KT_ERR_IO, "render: stopped after %lld new images (ARGEN_RENDER_MAX_IMAGES)", (long long)made);
            break;
        }
        if (missing) {
            for (int j = 0; j < b; j++) ids[j] = i + j, cls[j] = g.classes.v[(i + j) / g.per_class];
            double t = cli_now();
            if (argen_sample(r->model, &r->sp, b, cls, ids, px, NULL) != ARGEN_OK) st = from_argen();
            r->t_generate += cli_now() - t;
        }
        double t = cli_now();
        if (st == KT_OK && r->has_stats && done && missing < b)  // an earlier run's images count for the statistics
            st = output_read_back(&r->out, i - lo, b, done, px, S);
        st = output_write_wait(&wr, st);  // the previous batch's files: its buffer is the next batch's
        int quota = stop_after >= 0 && missing > stop_after - made ? (int)(stop_after - made) : missing;
        if (st == KT_OK && r->has_out && quota > 0) st = output_write_start(&wr, i - lo, b, quota, done, px);
        r->t_io += cli_now() - t;
        made += quota;
        if (st == KT_OK && quota < missing) {
            st = output_write_wait(&wr, st);
            if (st == KT_OK)
                st = KT_FAIL(KT_ERR_IO, "render: stopped after %lld new images (ARGEN_RENDER_MAX_IMAGES)",
                             (long long)made);
            break;
        }
        t = cli_now();
        if (st == KT_OK && r->has_stats) st = ev_extractor_add(&r->ex, &r->stats, px, b, S, S, i, r->feats);
        if (st == KT_OK && g.features_out) st = npy_out_write(&r->feats_out, r->feats, b);
        if (st == KT_OK && g.pr) st = pool_features_append(&r->pool, r->feats, b, "render");
        r->t_features += cli_now() - t;
        i += b;
        generated += missing ? b : 0;
        if (cli_now() - last > 0.5 || i == hi) progress(i - lo, hi - lo, generated, t0), last = cli_now();
    }
    (void)total;
    double t = cli_now();
    st = output_write_wait(&wr, st);  // the last batch's files
    r->t_io += cli_now() - t;
    if (r->has_stats) {  // the last batch's statistics
        t = cli_now();
        st = ev_extractor_sync(&r->ex, st);
        r->t_features += cli_now() - t;
    }
    for (int k = 0; k < 2 && !r->has_stats; k++) free(pxs[k]);
    free(cls);
    free(ids);
    return st;
}

// Precision and recall of the rendered images against the reference batch's images (--pr).
static KtStatus precision_recall(Render *r, int eval_batch, EvPrResult *out) {
    PoolFeatures ref = {0};
    EvFeatureStats scratch = {0};  // the reference's statistics stay its file's mu/sigma
    KtStatus st = ev_stats_init(&scratch, INC_POOL3, 0, r->ref_src.n, INC_CLASSES);
    if (st == KT_OK)
        st = eval_source_images(&r->ref_src, &r->ex, &scratch, eval_batch, 0, r->ref_src.n, NULL, &ref, "render",
                                g.quiet);
    if (st == KT_OK)
        st = eval_precision_recall(&r->eval_be, &r->pool, &ref, !strcmp(g.pr_distances, "fp16"), "render", g.quiet,
                                   out);
    ev_stats_free(&scratch);
    pool_features_free(&ref);
    return st;
}

static KtStatus report_fid(Render *r, int64_t n, const EvPrResult *pr) {
    EvFeatureStats ref;
    KT_TRY(ev_stats_load(&ref, g.fid_ref));
    double *mu1 = NULL, *s1 = NULL, *mu2 = NULL, *s2 = NULL, fid = 0, sfid = 0, ism = 0, iss = 0;
    bool has_sfid = r->stats.D_s && ref.D_s && (!ref.fixed || ref.mu_s);
    KtStatus st = ev_stats_mu_sigma(&r->stats, false, &mu1, &s1);
    if (st == KT_OK) st = ev_stats_mu_sigma(&ref, false, &mu2, &s2);
    if (st == KT_OK && ref.D != r->stats.D) st = KT_FAIL(KT_ERR_SHAPE, "%s: %d-d statistics, expected %d", g.fid_ref, ref.D, r->stats.D);
    if (st == KT_OK) st = ev_frechet_distance(mu1, s1, mu2, s2, r->stats.D, &fid);
    free(mu1), free(s1), free(mu2), free(s2);
    mu1 = s1 = mu2 = s2 = NULL;
    if (st == KT_OK && has_sfid) {
        st = ev_stats_mu_sigma(&r->stats, true, &mu1, &s1);
        if (st == KT_OK) st = ev_stats_mu_sigma(&ref, true, &mu2, &s2);
        if (st == KT_OK && ref.D_s == r->stats.D_s) st = ev_frechet_distance(mu1, s1, mu2, s2, ref.D_s, &sfid);
        else has_sfid = false;
        free(mu1), free(s1), free(mu2), free(s2);
    }
    if (st == KT_OK) st = ev_is_score(&r->stats.is, &ism, &iss);
    int64_t n_ref = ev_stats_count(&ref);
    ev_stats_free(&ref);
    if (st != KT_OK) return st;
    if (n < INC_POOL3 && !g.quiet)
        fprintf(stderr, "warning: %lld samples < %d: the covariance is rank-deficient; compare FIDs only at equal "
                "sample counts (published: 50,000)\n", (long long)n, INC_POOL3);
    char sf[64] = "null", nb[32] = "null", pp[64] = "null", rr[64] = "null";
    if (has_sfid) snprintf(sf, sizeof sf, "%.17g", sfid);
    if (n_ref >= 0) snprintf(nb, sizeof nb, "%lld", (long long)n_ref);
    if (pr) snprintf(pp, sizeof pp, "%.17g", pr->precision), snprintf(rr, sizeof rr, "%.17g", pr->recall);
    if (g.json) {
        printf("{\"fid\": %.17g, \"sfid\": %s, \"is_mean\": %.17g, \"is_std\": %.17g, \"precision\": %s, "
               "\"recall\": %s, \"n_a\": %lld, \"n_b\": %s}\n", fid, sf, ism, iss, pp, rr, (long long)n, nb);
        return KT_OK;
    }
    printf("FID: %.4f\n", fid);
    if (has_sfid) printf("sFID: %.4f\n", sfid);
    printf("Inception Score: %.4f +- %.4f (%lld samples, %d splits)\n", ism, iss, (long long)n, EV_IS_SPLITS);
    if (pr) printf("Precision: %.4f\nRecall: %.4f\n", pr->precision, pr->recall);
    return KT_OK;
}

static int run(const CliParsed *parsed) {
    const Protocol *pr = apply_protocol(parsed);
    if (pr == (const Protocol *)-1) return 2;
    int shard_k, shard_n;
    if (cli_parse_shard(g.shard, &shard_k, &shard_n) != KT_OK) return fprintf(stderr, "argen: %s\n", kt_last_error()), 2;
    if (!g.out && !g.fid_ref && !g.save_stats && !g.features_out)
        return fprintf(stderr, "argen: nothing to keep: give --out DIR|FILE.npz, --fid-ref REF.npz, --save-stats "
                       "FILE.npz or --features-out FILE.npy (any of them together)\n"), 2;
    if (!g.pr && cli_opt_given(&k_cmd, parsed, "pr-distances"))
        return fprintf(stderr, "argen: --pr-distances applies with --pr only\n"), 2;
    if (g.pr && !g.fid_ref)
        return fprintf(stderr, "argen: --pr needs --fid-ref REF.npz (a reference batch with its images, arr_0)\n"), 2;
    if (g.pr && g.shard)
        return fprintf(stderr, "argen: --pr needs the whole set: drop --shard, or write --features-out PART.npy per "
                       "shard, join them with `argen fid-merge PART*.npy -o ALL.npy` and run `argen fid ALL.npy "
                       "REF.npz --pr`\n"), 2;
    if (g.shard && g.fid_ref && !g.save_stats)
        return fprintf(stderr, "argen: --shard with --fid-ref: add --save-stats PART.npz (FID needs all shards: fid-merge them)\n"), 2;
    if (llamagen() && !g.vq) g.vq = g.vae;
    if (!llamagen() && strcmp(g.decode, "sequential"))
        return fprintf(stderr, "argen: --decode %s: VAR (next-scale) models support sequential decoding only; sjd and "
                       "zipar are raster-model strategies (--arch llamagen)\n", g.decode), 2;
    static const struct { const char *option, *decode; } knobs[] = {  // a strategy's own options
        {"sjd-window", "sjd"}, {"sjd-init", "sjd"}, {"zipar-window", "zipar"}};
    for (int i = 0; i < CLI_COUNT(knobs); i++)
        if (cli_opt_given(&k_cmd, parsed, knobs[i].option) && strcmp(g.decode, knobs[i].decode))
            return fprintf(stderr, "argen: --%s applies to --decode %s only\n", knobs[i].option, knobs[i].decode), 2;
    int random_depth = 0;
    char random_arch[8] = "";
    if (g.random_init) {  // var-dN, or llamagen-<size>[-...] (a protocol name works too)
        char tail;
        bool ok = llamagen() ? sscanf(g.random_init, "llamagen-%7[a-z0-9]", random_arch) == 1
                             : sscanf(g.random_init, "var-d%d%c", &random_depth, &tail) == 1 && random_depth >= 1 &&
                                   random_depth <= 64;
        if (!ok)
            return fprintf(stderr, "argen: --random-init: expected %s for --arch %s, got '%s'\n",
                           llamagen() ? "llamagen-b|l|xl|xxl|3b" : "var-dN (e.g. var-d16)", g.arch, g.random_init), 2;
        if (g.ckpt || g.vae || g.vq)
            return fprintf(stderr, "argen: --random-init replaces --vae/--vq/--ckpt: give one or the other\n"), 2;
    } else if (!g.ckpt) {
        return fprintf(stderr, "argen: missing --ckpt FILE (the transformer checkpoint; --random-init ARCH for timing "
                       "runs without one)\n"), 2;
    } else if (!(llamagen() ? g.vq : g.vae)) {
        return fprintf(stderr, "argen: missing %s\n", llamagen() ? "--vq (e.g. vq_ds16_c2i.pt)" : "--vae (e.g. vae_ch160v4096z32.pth)"), 2;
    }
    int64_t total = (int64_t)g.classes.n * g.per_class, lo = total * shard_k / shard_n, hi = total * (shard_k + 1) / shard_n;
    Render r;
    memset(&r, 0, sizeof r);
    r.out.fd_partial = r.out.fd_done = -1;
    char *settings = settings_json(pr, total);
    r.settings = settings;
    KtStatus st = settings ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    if (st == KT_OK && g.save_stats) st = check_output_file("--save-stats", g.save_stats);
    if (st == KT_OK && g.features_out) st = check_output_file("--features-out", g.features_out);
    if (st == KT_OK && g.fid_ref) {
        bool yes = false;
        st = ev_stats_is_stats_file(g.fid_ref, &yes);
        if (st == KT_OK && !yes)
            st = KT_FAIL(KT_ERR_FORMAT, "--fid-ref: %s holds no statistics (mu/sigma); compute them first with "
                         "`argen fid %s --save-stats REF_stats.npz`", g.fid_ref, g.fid_ref);
    }
    if (st == KT_OK && g.pr) {  // a reference without images fails now, not after the set
        EvNpz *z = NULL;
        bool images = ev_npz_open(&z, g.fid_ref) == KT_OK && ev_npz_has(z, "arr_0");
        ev_npz_close(z);
        st = images ? fid_source_open(&r.ref_src, g.fid_ref)
                    : KT_FAIL(KT_ERR_ARG, "--pr: %s holds statistics only (no arr_0 images); precision and recall "
                              "need the reference images (the ADM reference batches such as "
                              "VIRTUAL_imagenet256_labeled.npz hold them)", g.fid_ref);
    }
    bool want_features = g.fid_ref || g.save_stats || g.features_out || g.pr;  // Inception runs
    char ipath[4200];
    if (st == KT_OK && want_features) st = cli_inception_path(g.inception, ipath, sizeof ipath);
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.arch = llamagen() ? ARGEN_ARCH_LLAMAGEN : ARGEN_ARCH_VAR;
    lp.image_size = g.image_size;
    lp.output_size = g.eval_size;
    lp.heads = g.heads;
    lp.vae_path = llamagen() ? g.vq : g.vae;
    lp.ckpt_path = g.ckpt;
    lp.patch_nums = g.patch_nums.v;
    lp.n_patch_nums = g.patch_nums.n;
    lp.device = g.device;
    lp.dtype = g.dtype;
    lp.random_depth = random_depth;
    lp.random_arch = random_arch[0] ? random_arch : NULL;
    bool cuda = !strcmp(g.device, "cuda") || (!strcmp(g.device, "auto") && argen_cuda_available());
    lp.max_batch = g.batch ? g.batch : cuda ? 32 : 1;
    if (lp.max_batch > hi - lo) lp.max_batch = (int)(hi - lo > 0 ? hi - lo : 1);
    if (st == KT_OK && argen_load(&r.model, &lp) != ARGEN_OK) st = from_argen();
    if (st == KT_OK) {
        argen_info(r.model, &r.info);
        for (int i = 0; i < g.classes.n && st == KT_OK; i++)
            if (g.classes.v[i] >= r.info.num_classes)
                st = KT_FAIL(KT_ERR_ARG, "--classes: class %d is outside the model's [0, %d)", g.classes.v[i],
                             r.info.num_classes);
        argen_sample_params_init_for(&r.sp, r.model);
        r.sp.cfg = g.cfg, r.sp.top_k = g.top_k, r.sp.top_p = g.top_p, r.sp.temperature = g.temperature;
        r.sp.seed = (uint64_t)g.seed;
        r.sp.decode = !strcmp(g.decode, "sjd") ? ARGEN_DECODE_SJD : !strcmp(g.decode, "zipar") ? ARGEN_DECODE_ZIPAR
                                                                                              : ARGEN_DECODE_SEQUENTIAL;
        r.sp.sjd_window = g.sjd_window;
        r.sp.sjd_init = !strcmp(g.sjd_init, "repeat-horizon")   ? ARGEN_SJD_INIT_REPEAT_HORIZON
                        : !strcmp(g.sjd_init, "sample-horizon") ? ARGEN_SJD_INIT_SAMPLE_HORIZON
                                                                : ARGEN_SJD_INIT_RANDOM;
        r.sp.zipar_window = g.zipar_window;
        if (st == KT_OK && r.sp.decode == ARGEN_DECODE_ZIPAR && g.zipar_window > r.info.grid - 1)
            st = KT_FAIL(KT_ERR_ARG, "--zipar-window %d: expected 2 to %d for this %dx%d token grid (a window >= the "
                         "grid is plain sequential decoding: use --decode sequential)", g.zipar_window,
                         r.info.grid - 1, r.info.grid, r.info.grid);
        if (g.verbose) fprintf(stderr, "device: %s\n", r.info.device);
    }
    if (st == KT_OK && g.out) {
        st = output_open(&r.out, g.out, shard_k, shard_n, lo, hi - lo, r.info.output_size, settings, g.classes.v,
                             g.per_class);
        r.has_out = st == KT_OK;
    }
    // the reference's images (--pr) go through the network in larger batches than the generator's
    int eval_batch = r.info.max_batch;
    if (g.pr && eval_batch < (cuda ? 200 : 8)) eval_batch = cuda ? 200 : 8;
    if (st == KT_OK && want_features) {
        st = cli_eval_backend(&r.eval_be, g.device, "fp32");
        if (st == KT_OK)
            st = ev_extractor_init(&r.ex, &r.eval_be, ipath, eval_batch,
                                   !strcmp(g.resize, "adm") ? KT_FID_RESIZE_ADM : KT_FID_RESIZE_PYTORCH);
        if (st == KT_OK) st = ev_stats_init(&r.stats, INC_POOL3, g.no_spatial ? 0 : INC_SPATIAL, total, INC_CLASSES);
        r.has_stats = st == KT_OK;
    }
    if (st == KT_OK && (g.features_out || g.pr) &&
        !(r.feats = malloc((size_t)r.info.max_batch * INC_POOL3 * sizeof *r.feats)))
        st = KT_FAIL(KT_ERR_OOM, "out of memory");
    if (st == KT_OK && g.features_out) st = npy_out_open(&r.feats_out, g.features_out, hi - lo);
    double t0 = cli_now();
    if (st == KT_OK) st = render_range(&r, lo, hi, total);
    if (st == KT_OK && r.has_out) st = output_finish(&r.out, r.info.output_size);
    if (g.features_out) {
        KtStatus c = npy_out_close(&r.feats_out, st == KT_OK);
        if (st == KT_OK) st = c;
        if (st == KT_OK && !g.quiet) fprintf(stderr, "render: wrote the pool3 features to %s\n", g.features_out);
    }
    if (st == KT_OK && !g.quiet)
        fprintf(stderr, "render: %lld images (%lld-%lld of %lld) in %.1f s (generate %.1f s, features %.1f s, files "
                "%.1f s)%s%s\n", (long long)(hi - lo), (long long)lo, (long long)hi - 1, (long long)total, cli_now() - t0,
                r.t_generate, r.t_features, r.t_io, r.has_out ? " -> " : "", r.has_out ? r.out.path : "");
    if (st == KT_OK && g.save_stats) st = ev_stats_save(&r.stats, g.save_stats, g.shard != NULL);
    double t_fd = cli_now();
    EvPrResult pr_result = {0};
    if (st == KT_OK && g.pr) st = precision_recall(&r, eval_batch, &pr_result);
    if (st == KT_OK && g.fid_ref && !g.shard) st = report_fid(&r, hi - lo, g.pr ? &pr_result : NULL);
    if (st == KT_OK && g.fid_ref && !g.shard && !g.quiet)
        fprintf(stderr, "render: statistics and Frechet distance%s in %.1f s; end to end %.1f s\n",
                g.pr ? ", precision and recall" : "", cli_now() - t_fd, cli_now() - t0);
    if (st == KT_OK && !g.quiet && llamagen() && r.sp.decode != ARGEN_DECODE_SEQUENTIAL) {
        ArgenStats as;  // the strategy's forward passes (the images generated by this run; read-back ones not)
        argen_stats(r.model, &as);
        int L = r.info.grid * r.info.grid;
        double per = as.images ? (double)as.image_forwards / (double)as.images : 0;
        fprintf(stderr, "render: %s decoding: %.2f forward passes per image (sequential: %d), %.2f tokens accepted per "
                "forward, over %lld generated images\n", g.decode, per, L, per > 0 ? L / per : 0, (long long)as.images);
    }
    if (!g.quiet && r.model) {  // fallbacks taken (e.g. --device auto without a GPU, graph capture off)
        ArgenInfo fin;
        argen_info(r.model, &fin);
        if (fin.notes && *fin.notes) fprintf(stderr, "notes: %s\n", fin.notes);
    }
    int rc = st == KT_OK ? 0 : cli_fail();
    output_close(&r.out);
    npy_out_close(&r.feats_out, false);
    free(r.feats);
    pool_features_free(&r.pool);
    fid_source_close(&r.ref_src);
    ev_stats_free(&r.stats);
    ev_extractor_free(&r.ex);
    if (r.eval_be.ops) kt_backend_free(&r.eval_be);
    argen_free(r.model);
    free(settings);
    return rc;
}

int cmd_render(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    if (g.verbose) cli_opts_echo(stderr, &k_cmd, &parsed);
    rc = run(&parsed);
    cli_parsed_free(&parsed);
    return rc;
}
