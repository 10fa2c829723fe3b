// argen bench --arch png: PNG encoding (argen render / sample) and decoding (argen fid on a directory) throughput.
// The images are synthetic but shaped like generated ones: smooth colour waves plus pixel noise (~150 KB as PNG).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_files.h"
#include "commands.h"
#include "fid_source.h"
#include "image_io.h"
#include "parallel.h"

#define SIDE 256

typedef struct {
    const char *dir;
    const uint8_t *px;  // n images (SIDE, SIDE, 3)
} PngSet;

static void png_name(char *buf, size_t cap, const char *dir, int64_t i) {
    snprintf(buf, cap, "%s/%06lld_c0.png", dir, (long long)i);
}

static KtStatus encode_one(void *ctx, int64_t i) {
    const PngSet *s = ctx;
    char p[4200], meta[256];
    png_name(p, sizeof p, s->dir, i);
    snprintf(meta, sizeof meta, "{\"index\": %lld, \"class\": 0, \"settings\": {}}", (long long)i);
    const char *keys[] = {"Software", "argen"}, *values[] = {"argen", meta};
    return write_png_rgb8(p, s->px + (size_t)i * SIDE * SIDE * 3, SIDE, SIDE, keys, values, 2);
}

// Image i: per channel a sum of two waves whose periods depend on i, plus noise of +-12 (an LCG).
static void synth(uint8_t *px, int n) {
    uint64_t s = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                for (int c = 0; c < 3; c++) {
                    float fx = (float)x / (float)(7 + i % 5), fy = (float)y / (float)(11 + i % 7);
                    float v = 128 + 60 * sinf(fx + (float)c) + 50 * cosf(fy - (float)c);
                    s = s * 6364136223846793005u + 1442695040888963407u;
                    v += (float)((s >> 40) % 25) - 12;
                    px[(((size_t)i * SIDE + y) * SIDE + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

// One round of decoding the whole directory in batches of n with `threads` threads.
static KtStatus decode_all(const char *dir, int n, int threads, uint8_t **buf, size_t *cap) {
    FidSource src;
    KT_TRY(fid_source_open(&src, dir));
    src.threads = threads;
    KtStatus st = KT_OK;
    int got, H, W;
    for (int64_t i = 0; st == KT_OK && i < src.n; i += got) st = fid_source_read(&src, i, n, buf, cap, true, &got, &H, &W);
    fid_source_close(&src);
    return st;
}

KtStatus bench_png(int n, int reps) {
    char dir[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/argen-bench-png-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) return KT_FAIL(KT_ERR_IO, "%s: cannot create a temporary directory", dir);
    uint8_t *px = malloc((size_t)n * SIDE * SIDE * 3), *buf = NULL;
    size_t cap = 0;
    double *t_enc = malloc(sizeof(double) * (size_t)reps), *t_dec = malloc(sizeof(double) * (size_t)reps);
    KtStatus st = px && t_enc && t_dec ? KT_OK : KT_FAIL(KT_ERR_OOM, "out of memory");
    if (st == KT_OK) synth(px, n);
    PngSet set = {.dir = dir, .px = px};
    int counts[2] = {1, cli_cores()};
    printf("argen bench: PNG files of %d synthetic %dx%d images (waves + noise), %s; median of %d rounds\n"
           "| threads | encode ms / img | encode img/s | decode img/s |\n|---|---|---|---|\n",
           n, SIDE, SIDE, dir, reps);
    for (int k = 0; k < 2 && st == KT_OK; k++) {
        if (k == 1 && counts[1] == 1) break;  // one core: one row
        for (int r = 0; r < reps && st == KT_OK; r++) {
            double t0 = cli_now();
            st = cli_parallel_for(n, counts[k], encode_one, &set);
            t_enc[r] = cli_now() - t0;
            t0 = cli_now();
            if (st == KT_OK) st = decode_all(dir, n, counts[k], &buf, &cap);
            t_dec[r] = cli_now() - t0;
        }
        if (st != KT_OK) break;
        double e = median(t_enc, reps), d = median(t_dec, reps);
        printf("| %7d | %15.2f | %12.0f | %12.0f |\n", counts[k], 1e3 * e / n, n / e, n / d);
        fflush(stdout);
    }
    for (int64_t i = 0; i < n; i++) {
        char p[4200];
        png_name(p, sizeof p, dir, i);
        unlink(p);
    }
    rmdir(dir);
    free(px), free(buf), free(t_enc), free(t_dec);
    return st;
}
