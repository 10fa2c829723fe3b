// PNG directories and sample .npz files as image sets for `argen fid`. A directory's PNGs are decoded by a pool of
// threads (decoding, ~1.2 ms per 256x256 image on one core, would otherwise bound a GPU evaluation ~10x).
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fid_source.h"
#include "image_io.h"
#include "parallel.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    return n > e && !strcasecmp(name + n - e, ext);
}

static KtStatus open_dir(FidSource *s, const char *path) {
    DIR *d = opendir(path);
    if (!d) return KT_FAIL(KT_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
    int64_t cap = 0, n_other = 0;
    KtStatus st = KT_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!has_ext(e->d_name, ".png")) {
            n_other += has_ext(e->d_name, ".jpg") || has_ext(e->d_name, ".jpeg");
            continue;
        }
        if (s->n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **f = realloc(s->files, (size_t)cap * sizeof *f);
            if (!f) {
                st = KT_FAIL(KT_ERR_OOM, "%s: out of memory listing files", path);
                break;
            }
            s->files = f;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        if (!(s->files[s->n] = malloc(len))) {
            st = KT_FAIL(KT_ERR_OOM, "%s: out of memory listing files", path);
            break;
        }
        snprintf(s->files[s->n++], len, "%s/%s", path, e->d_name);
    }
    closedir(d);
    if (st != KT_OK) return st;
    if (!s->n)
        return KT_FAIL(KT_ERR_FORMAT, "%s: no .png files in the directory%s", path,
                       n_other ? " (JPEG files are not used for evaluation: their artefacts change FID)" : "");
    qsort(s->files, (size_t)s->n, sizeof *s->files, cmp_str);
    return KT_OK;
}

static KtStatus open_npz(FidSource *s, const char *path) {
    KT_TRY(ev_npz_open(&s->npz, path));
    if (!ev_npz_has(s->npz, "arr_0"))
        return KT_FAIL(KT_ERR_FORMAT, "%s: no 'arr_0' member: expected a sample batch (np.savez(path, arr_0=images), "
                       "uint8 (N, H, W, 3)) or a statistics file (mu, sigma)", path);
    EvNpyHeader h;
    KT_TRY(ev_npy_stream_open(&s->stream, s->npz, "arr_0", &h));
    if (h.dtype != KT_U8 || h.ndim != 4 || h.shape[3] != 3 || h.shape[1] < 1 || h.shape[2] < 1 ||
        h.shape[1] > 16384 || h.shape[2] > 16384)
        return KT_FAIL(KT_ERR_FORMAT, "%s: 'arr_0' is %s with %d dims, expected uint8 (N, H, W, 3) RGB images", path,
                       kt_dtype_name(h.dtype), h.ndim);
    if (h.shape[0] < 1) return KT_FAIL(KT_ERR_FORMAT, "%s: 'arr_0' holds no images", path);
    s->n = h.shape[0];
    s->H = (int)h.shape[1];
    s->W = (int)h.shape[2];
    return KT_OK;
}

KtStatus fid_source_open(FidSource *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    struct stat st;
    if (stat(path, &st) != 0) return KT_FAIL(KT_ERR_IO, "%s: %s", path, strerror(errno));
    s->is_dir = S_ISDIR(st.st_mode);
    s->threads = cli_cores();
    KtStatus r = s->is_dir ? open_dir(s, path) : open_npz(s, path);
    if (r != KT_OK) fid_source_close(s);
    return r;
}

void fid_source_close(FidSource *s) {
    if (!s) return;
    for (int64_t i = 0; s->files && i < s->n; i++) free(s->files[i]);
    free(s->files);
    ev_npy_stream_close(s->stream);
    ev_npz_close(s->npz);
    memset(s, 0, sizeof *s);
}

static KtStatus reserve(uint8_t **buf, size_t *cap, size_t need, bool grow) {
    if (need <= *cap) return KT_OK;
    if (!grow)
        return KT_FAIL(KT_ERR_ARG, "an image batch of %zu bytes does not fit the caller's %zu-byte buffer", need, *cap);
    uint8_t *b = realloc(*buf, need);
    if (!b) return KT_FAIL(KT_ERR_OOM, "out of memory for an image batch of %zu bytes", need);
    *buf = b;
    *cap = need;
    return KT_OK;
}

// ------------------------------------------------------------------------------------ PNG directories
// One batch of a directory: images first .. first + n - 1 into buf, all of image `first`'s size (H, W). Workers claim
// images in increasing order; the batch ends at the lowest image that fails or has another size.
typedef struct {
    const FidSource *s;
    int64_t first, n;
    uint8_t *buf;
    int H, W;
    atomic_llong next;  // the next image to claim, relative to first
    pthread_mutex_t mu;
    int64_t end;        // the lowest image (relative) that ends the batch, n when none does; under mu
    KtStatus err;       // its failure, KT_OK for a size change
    char msg[512];      // its message (the worker's kt_last_error is its own)
} DirRead;

static void *decode_pngs(void *arg) {
    DirRead *r = arg;
    size_t img = (size_t)r->H * r->W * 3;
    for (;;) {
        int64_t i = atomic_fetch_add(&r->next, 1);
        pthread_mutex_lock(&r->mu);
        bool past = i >= r->end;
        pthread_mutex_unlock(&r->mu);
        if (past) return NULL;
        uint8_t *rgb;
        int w, h;
        KtStatus st = read_png_eval(r->s->files[r->first + i], &rgb, &w, &h);
        bool fits = st == KT_OK && w == r->W && h == r->H;
        if (fits) memcpy(r->buf + (size_t)i * img, rgb, img);
        free(rgb);
        if (fits) continue;
        pthread_mutex_lock(&r->mu);
        if (i < r->end) {
            r->end = i, r->err = st;
            if (st != KT_OK) snprintf(r->msg, sizeof r->msg, "%s", kt_last_error());
        }
        pthread_mutex_unlock(&r->mu);
    }
}

// PNGs first .. first + n - 1 until the size changes: the first one here, the rest by up to s->threads threads (this
// one included).
static KtStatus read_dir(FidSource *s, int64_t first, int64_t n, uint8_t **buf, size_t *cap, bool grow, int *got,
                         int *H, int *W) {
    uint8_t *rgb;
    KT_TRY(read_png_eval(s->files[first], &rgb, W, H));
    size_t img = (size_t)*W * *H * 3;
    KtStatus st = reserve(buf, cap, (size_t)n * img, grow);
    if (st == KT_OK) memcpy(*buf, rgb, img);
    free(rgb);
    KT_TRY(st);
    DirRead r = {.s = s, .first = first + 1, .n = n - 1, .buf = *buf + img, .H = *H, .W = *W, .end = n - 1};
    atomic_init(&r.next, 0);
    pthread_mutex_init(&r.mu, NULL);
    pthread_t tid[CLI_MAX_THREADS];
    int threads = s->threads < 1 ? 1 : s->threads > CLI_MAX_THREADS ? CLI_MAX_THREADS : s->threads;
    int helpers = 0, want = (int)(r.n < threads ? r.n : threads) - 1;
    while (helpers < want && pthread_create(&tid[helpers], NULL, decode_pngs, &r) == 0) helpers++;
    decode_pngs(&r);  // this thread too (alone when no thread could be started)
    for (int i = 0; i < helpers; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&r.mu);
    if (r.err != KT_OK) return KT_FAIL(r.err, "%s", r.msg);
    *got = (int)(1 + r.end);
    return KT_OK;
}

KtStatus fid_source_read(FidSource *s, int64_t first, int max_n, uint8_t **buf, size_t *cap, bool grow, int *got,
                         int *H, int *W) {
    *got = 0;
    if (first < 0 || first >= s->n || max_n < 1)
        return KT_FAIL(KT_ERR_ARG, "%s: read of image %lld outside [0, %lld)", s->path, (long long)first, (long long)s->n);
    int64_t n = s->n - first < max_n ? s->n - first : max_n;
    if (!s->is_dir) {
        size_t img = (size_t)s->H * s->W * 3;
        KT_TRY(reserve(buf, cap, (size_t)n * img, grow));
        if (s->pos != first) KT_TRY(ev_npy_stream_seek(s->stream, first));
        int64_t r;
        KT_TRY(ev_npy_stream_read(s->stream, *buf, n, &r));
        if (r != n) return KT_FAIL(KT_ERR_FORMAT, "%s: 'arr_0' ended after %lld images", s->path, (long long)(first + r));
        s->pos = first + n;
        *got = (int)n, *H = s->H, *W = s->W;
        return KT_OK;
    }
    return read_dir(s, first, n, buf, cap, grow, got, H, W);
}
