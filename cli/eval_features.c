// Pool3 features of image sets for `argen fid` and `argen render`: in memory, in a .npy file, from a sample set.
#include "eval_features.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "eval/npz.h"

// ------------------------------------------------------------------------------------------------ in memory
KtStatus pool_features_append(PoolFeatures *f, const float *x, int64_t rows, const char *path) {
    if (f->n + rows > f->cap) {
        int64_t cap = f->cap ? 2 * f->cap : 1024;
        while (cap < f->n + rows) cap *= 2;
        float *nx = realloc(f->x, (size_t)cap * INC_POOL3 * sizeof *nx);
        if (!nx)
            return KT_FAIL(KT_ERR_OOM, "%s: out of memory keeping the pool3 features of %lld images for --pr", path,
                           (long long)cap);
        f->x = nx, f->cap = cap;
    }
    memcpy(f->x + f->n * INC_POOL3, x, (size_t)rows * INC_POOL3 * sizeof *x);
    f->n += rows;
    return KT_OK;
}

void pool_features_free(PoolFeatures *f) {
    free(f->x);
    memset(f, 0, sizeof *f);
}

// ------------------------------------------------------------------------------------------------ .npy file
KtStatus npy_out_open(NpyOut *o, const char *path, int64_t n) {
    memset(o, 0, sizeof *o);
    o->path = path;
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", path, (int)getpid());
    uint8_t hdr[512];
    size_t len;
    KT_TRY(ev_npy_format_header(hdr, sizeof hdr, &len, KT_F32, 2, (int64_t[]){n, INC_POOL3}));
    if (!(o->f = fopen(o->tmp, "wb"))) return KT_FAIL(KT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (fwrite(hdr, 1, len, o->f) != len) return KT_FAIL(KT_ERR_IO, "%s: write error: %s", path, strerror(errno));
    return KT_OK;
}

KtStatus npy_out_write(NpyOut *o, const void *x, int64_t rows) {
    size_t n = (size_t)rows * INC_POOL3;
    if (fwrite(x, sizeof(float), n, o->f) != n)
        return KT_FAIL(KT_ERR_IO, "%s: write error: %s", o->path, strerror(errno));
    return KT_OK;
}

KtStatus npy_out_close(NpyOut *o, bool keep) {
    if (!o->f) return KT_OK;
    bool ok = fflush(o->f) == 0 && fsync(fileno(o->f)) == 0;
    ok = fclose(o->f) == 0 && ok;
    o->f = NULL;
    if (keep && ok && rename(o->tmp, o->path) == 0) return KT_OK;
    int e = errno;
    remove(o->tmp);
    return keep ? KT_FAIL(KT_ERR_IO, "%s: cannot write: %s", o->path, strerror(e)) : KT_OK;
}

KtStatus features_file_open(EvNpyFile *f, const char *path) {
    KT_TRY(ev_npy_file_open(f, path));
    const EvNpyHeader *h = &f->h;
    if (h->dtype == KT_F32 && !h->big_endian && h->ndim == 2 && h->shape[0] >= 1 && h->shape[1] == INC_POOL3)
        return KT_OK;
    KtStatus st = KT_FAIL(KT_ERR_FORMAT, "%s: expected pool3 features as `argen fid --features-out` writes them, "
                          "little-endian float32 (N, %d) with N >= 1; found %s%s, %d dims, %lld columns", path,
                          INC_POOL3, h->big_endian ? "big-endian " : "", kt_dtype_name(h->dtype), h->ndim,
                          h->ndim >= 2 ? (long long)h->shape[1] : -1ll);
    ev_npy_file_close(f);
    return st;
}

// -------------------------------------------------------------------------------------------- a sample set
// One batch read from a sample set into one of two buffers, on a thread of its own while the previous batch is
// evaluated.
typedef struct {
    FidSource *src;
    int64_t first;
    int want;
    uint8_t *buf;
    size_t cap;
    bool own;  // buf is ours (PNGs: grown as needed) rather than the extractor's input slot (a .npz: fixed)
    int got, H, W;
    KtStatus st;
    char msg[512];
} BatchRead;

static void *read_batch(void *arg) {
    BatchRead *r = arg;
    r->st = fid_source_read(r->src, r->first, r->want, &r->buf, &r->cap, r->own, &r->got, &r->H, &r->W);
    if (r->st != KT_OK) snprintf(r->msg, sizeof r->msg, "%s", kt_last_error());
    return NULL;
}

static void progress(const char *who, const char *path, int64_t done, int64_t total, double t0) {
    double dt = cli_now() - t0, rate = dt > 0 ? (double)done / dt : 0;
    bool tty = isatty(2);
    fprintf(stderr, "%s%s: %s: %lld/%lld images, %.1f img/s, ETA %.0fs%s", tty ? "\r" : "", who, path, (long long)done,
            (long long)total, rate, rate > 0 ? (double)(total - done) / rate : 0, tty && done < total ? "" : "\n");
    fflush(stderr);
}

KtStatus eval_source_images(FidSource *src, EvExtractor *ex, EvFeatureStats *stats, int batch, int64_t lo,
                            int64_t hi, NpyOut *fo, PoolFeatures *keep, const char *who, bool quiet) {
    // a sample .npz streams straight into the extractor's (page-locked) input slots; PNGs are decoded into growing
    // buffers of our own (their size is known only once read, and decoding, not the upload, bounds them)
    BatchRead rd[2] = {{.src = src, .own = src->is_dir}, {.src = src, .own = src->is_dir}};
    KtStatus st = KT_OK;
    for (int k = 0; k < 2 && !src->is_dir && st == KT_OK; k++) {
        rd[k].cap = (size_t)batch * (size_t)src->H * (size_t)src->W * 3;
        st = ev_extractor_input(ex, k, rd[k].cap, &rd[k].buf);
    }
    bool want = fo || keep;  // this batch's features back on the host (the extractor then waits for the batch)
    float *feats = want ? malloc((size_t)batch * INC_POOL3 * sizeof *feats) : NULL;
    if (st == KT_OK && want && !feats) st = KT_FAIL(KT_ERR_OOM, "out of memory");
    double t0 = cli_now(), last = 0;
    int cur = 0;
    if (st == KT_OK && lo < hi) {
        rd[0].first = lo, rd[0].want = hi - lo < batch ? (int)(hi - lo) : batch;
        read_batch(&rd[0]);
        st = rd[0].st != KT_OK ? KT_FAIL(rd[0].st, "%s", rd[0].msg) : KT_OK;
    }
    for (int64_t i = lo; st == KT_OK && i < hi; cur ^= 1) {
        BatchRead *now = &rd[cur], *next = &rd[cur ^ 1];
        int64_t n = i + now->got;  // the next batch's first image
        pthread_t reader;
        bool ahead = false;
        if (n < hi) {
            next->first = n, next->want = hi - n < batch ? (int)(hi - n) : batch;
            ahead = pthread_create(&reader, NULL, read_batch, next) == 0;
        }
        st = ev_extractor_add(ex, stats, now->buf, now->got, now->H, now->W, i, feats);
        if (ahead) pthread_join(reader, NULL);
        else if (n < hi) read_batch(next);  // no thread to be had: in turn
        if (st == KT_OK && fo) st = npy_out_write(fo, feats, now->got);
        if (st == KT_OK && keep) st = pool_features_append(keep, feats, now->got, src->path);
        if (st == KT_OK && n < hi && next->st != KT_OK) st = KT_FAIL(next->st, "%s", next->msg);
        i = n;
        if (!quiet && (cli_now() - last > 0.5 || i == hi)) progress(who, src->path, i - lo, hi - lo, t0), last = cli_now();
    }
    st = ev_extractor_sync(ex, st);  // the last batch's statistics
    for (int k = 0; k < 2; k++)
        if (rd[k].own) free(rd[k].buf);
    free(feats);
    return st;
}

// ---------------------------------------------------------------------------------- precision and recall
KtStatus eval_precision_recall(KtBackend *be, const PoolFeatures *samples, const PoolFeatures *ref, bool fp16,
                               const char *who, bool quiet, EvPrResult *out) {
    EvPrParams p = ev_pr_params_default();
    p.dist = fp16 ? EV_PR_DIST_FP16 : EV_PR_DIST_FP32;
    double t0 = cli_now();
    if (!quiet)
        fprintf(stderr, "%s: precision/recall over %lld samples and %lld reference images (%s distances)...\n", who,
                (long long)samples->n, (long long)ref->n, fp16 ? "fp16" : "fp32");
    KT_TRY(ev_precision_recall(be, ref->x, ref->n, samples->x, samples->n, INC_POOL3, &p, out));
    if (!quiet)
        fprintf(stderr, "%s: precision/recall in %.1f s%s\n", who, cli_now() - t0,
                out->fp16_fallbacks ? " (some float16 blocks overflowed and were redone in float32)" : "");
    return KT_OK;
}
