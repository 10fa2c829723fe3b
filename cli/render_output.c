// argen render's outputs (render_output.h): PNG directories and resumable sample .npz files.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/npz.h"
#include "image_io.h"
#include "kernels/input_file.h"
#include "parallel.h"
#include "render_output.h"

static int output_class(const Output *o, int64_t k) { return o->classes[k / o->per_class]; }

// The manifest beside the output must agree with this run's settings (resuming with other settings would mix sets).
static KtStatus check_manifest(const char *path, const char *settings) {
    FILE *f = NULL;
    if (kt_fopen_input(path, &f) == KT_OK) {  // else there is none yet (a FIFO or such in its place: replaced)
        static char old[16384];
        size_t n = fread(old, 1, sizeof old - 1, f);
        fclose(f);
        while (n && old[n - 1] == '\n') n--;
        old[n] = 0;
        if (strcmp(old, settings))
            return KT_FAIL(KT_ERR_ARG, "%s: the output was started with other settings:\n  was: %s\n  now: %s\n"
                           "use another --out, or delete the old output", path, old, settings);
        return KT_OK;
    }
    char *text = malloc(strlen(settings) + 2);
    if (!text) return KT_FAIL(KT_ERR_OOM, "out of memory");
    sprintf(text, "%s\n", settings);
    KtStatus st = write_text_atomic(path, text);
    free(text);
    return st;
}

static void png_path(char *buf, size_t cap, const char *dir, int64_t k, int cls) {
    snprintf(buf, cap, "%s/%06lld_c%d.png", dir, (long long)k, cls);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

KtStatus output_open(Output *o, const char *out, int shard_k, int shard_n, int64_t lo, int64_t n, int S,
                     const char *settings, const int *classes, int per_class) {
    memset(o, 0, sizeof *o);
    o->classes = classes, o->per_class = per_class;
    o->fd_partial = o->fd_done = -1;
    o->lo = lo, o->n = n;
    o->img_bytes = (size_t)S * S * 3;
    o->npz = ends_with(out, ".npz");
    char manifest[4300];
    if (!o->npz) {
        snprintf(o->path, sizeof o->path, "%s", out);
        KT_TRY(ensure_dir(o->path));
        snprintf(manifest, sizeof manifest, "%s/argen_run.json", o->path);
        KT_TRY(check_manifest(manifest, settings));
        if (!(o->is_done = calloc((size_t)n, 1))) return KT_FAIL(KT_ERR_OOM, "out of memory");
        for (int64_t i = 0; i < n; i++) {
            char p[4200];
            png_path(p, sizeof p, o->path, lo + i, output_class(o, lo + i));
            o->is_done[i] = file_exists(p);
        }
        return KT_OK;
    }
    if (shard_n > 1)
        snprintf(o->path, sizeof o->path, "%.*s.shard%dof%d.npz", (int)(strlen(out) - 4), out, shard_k, shard_n);
    else
        snprintf(o->path, sizeof o->path, "%s", out);
    if (file_exists(o->path))
        return KT_FAIL(KT_ERR_ARG, "%s: exists already (a finished render); use another --out or delete it", o->path);
    snprintf(manifest, sizeof manifest, "%s.json", o->path);
    KT_TRY(check_manifest(manifest, settings));
    snprintf(o->partial, sizeof o->partial, "%s.partial", o->path);
    snprintf(o->done, sizeof o->done, "%s.done", o->path);
    o->fd_partial = open(o->partial, O_RDWR | O_CREAT, 0666);
    o->fd_done = open(o->done, O_RDWR | O_CREAT, 0666);
    if (o->fd_partial < 0 || o->fd_done < 0)
        return KT_FAIL(KT_ERR_IO, "%s: cannot create the resumable work files (%s, %s): %s", o->path, o->partial,
                       o->done, strerror(errno));
    if (!(o->is_done = calloc((size_t)n, 1))) return KT_FAIL(KT_ERR_OOM, "out of memory");
    ssize_t r = pread(o->fd_done, o->is_done, (size_t)n, 0);
    if (r < 0) return KT_FAIL(KT_ERR_IO, "%s: %s", o->done, strerror(errno));
    for (int64_t i = 0; i < n; i++) o->is_done[i] = o->is_done[i] == 1;
    return KT_OK;
}

// One PNG of output_write's batch (run by several threads at once).
typedef struct {
    const Output *o;
    int64_t i;  // the batch's first image (relative index)
    const uint8_t *px;
    int S;
    const char *settings;
} PngBatch;

static KtStatus write_one_png(void *ctx, int64_t j) {
    const PngBatch *w = ctx;
    int64_t k = w->o->lo + w->i + j;
    int cls = output_class(w->o, k);
    char p[4200], meta[16800];
    png_path(p, sizeof p, w->o->path, k, cls);
    snprintf(meta, sizeof meta, "{\"index\": %lld, \"class\": %d, \"settings\": %s}", (long long)k, cls,
             w->settings);
    const char *keys[] = {"Software", "argen"}, *values[] = {"argen", meta};
    return write_png_rgb8(p, w->px + (size_t)j * w->o->img_bytes, w->S, w->S, keys, values, 2);
}

// Images [i, i + b) of the output (relative indices) with their pixels; PNGs are encoded by a thread per core.
KtStatus output_write(Output *o, int64_t i, int b, const uint8_t *px, int S, const char *settings) {
    if (!o->npz) {
        PngBatch w = {.o = o, .i = i, .px = px, .S = S, .settings = settings};
        return cli_parallel_for(b, 0, write_one_png, &w);
    }
    size_t bytes = (size_t)b * o->img_bytes;
    if (pwrite(o->fd_partial, px, bytes, (off_t)((size_t)i * o->img_bytes)) != (ssize_t)bytes ||
        fdatasync(o->fd_partial) != 0)
        return KT_FAIL(KT_ERR_IO, "%s: write error: %s", o->partial, strerror(errno));
    uint8_t ones[4096];
    memset(ones, 1, sizeof ones);
    if (b > (int)sizeof ones || pwrite(o->fd_done, ones, (size_t)b, (off_t)i) != b)
        return KT_FAIL(KT_ERR_IO, "%s: write error: %s", o->done, strerror(errno));
    return KT_OK;
}

// Reads finished images back (resume with statistics).
static KtStatus output_read(Output *o, int64_t i, uint8_t *px, int S) {
    if (o->npz) {
        if (pread(o->fd_partial, px, o->img_bytes, (off_t)((size_t)i * o->img_bytes)) != (ssize_t)o->img_bytes)
            return KT_FAIL(KT_ERR_IO, "%s: cannot read image %lld back", o->partial, (long long)(o->lo + i));
        return KT_OK;
    }
    char p[4200];
    int64_t k = o->lo + i;
    png_path(p, sizeof p, o->path, k, output_class(o, k));
    uint8_t *rgb;
    int w, h;
    KT_TRY(read_png_eval(p, &rgb, &w, &h));
    if (w != S || h != S) {
        free(rgb);
        return KT_FAIL(KT_ERR_FORMAT, "%s: is %dx%d, expected %dx%d", p, w, h, S, S);
    }
    memcpy(px, rgb, o->img_bytes);
    free(rgb);
    return KT_OK;
}

// All images present: stream the partial file into the final npz, then remove the work files.
KtStatus output_finish(Output *o, int S) {
    if (!o->npz) return KT_OK;
    EvNpzWriter *w;
    KT_TRY(ev_npz_writer_open(&w, o->path));
    KtStatus st = ev_npz_writer_begin(w, "arr_0", KT_U8, 4, (int64_t[]){o->n, S, S, 3});
    size_t chunk = 64 * o->img_bytes, total = (size_t)o->n * o->img_bytes;
    uint8_t *buf = st == KT_OK ? malloc(chunk) : NULL;
    if (st == KT_OK && !buf) st = KT_FAIL(KT_ERR_OOM, "out of memory");
    for (size_t off = 0; st == KT_OK && off < total; off += chunk) {
        size_t n = total - off < chunk ? total - off : chunk;
        if (pread(o->fd_partial, buf, n, (off_t)off) != (ssize_t)n)
            st = KT_FAIL(KT_ERR_IO, "%s: read error: %s", o->partial, strerror(errno));
        else
            st = ev_npz_writer_write(w, buf, n);
    }
    free(buf);
    if (st == KT_OK) st = ev_npz_writer_end(w);
    if (st != KT_OK) {
        ev_npz_writer_abort(w);
        return st;
    }
    KT_TRY(ev_npz_writer_close(w));
    unlink(o->partial);
    unlink(o->done);
    return KT_OK;
}

void output_close(Output *o) {
    if (o->fd_partial >= 0) close(o->fd_partial);
    if (o->fd_done >= 0) close(o->fd_done);
    free(o->is_done);
    memset(o, 0, sizeof *o);
}

// ---------------------------------------------------------------------------------------- batches on threads
typedef struct {
    Output *o;
    int64_t i;
    const uint8_t *done;
    uint8_t *px;
    int S;
} ReadBack;

static KtStatus read_back_one(void *ctx, int64_t j) {
    const ReadBack *rb = ctx;
    if (!rb->done[j]) return KT_OK;
    return output_read(rb->o, rb->i + j, rb->px + (size_t)j * rb->S * rb->S * 3, rb->S);
}

KtStatus output_read_back(Output *o, int64_t i, int b, const uint8_t *done, uint8_t *px, int S) {
    ReadBack rb = {.o = o, .i = i, .done = done, .px = px, .S = S};
    return cli_parallel_for(b, 0, read_back_one, &rb);
}

static void *write_batch(void *arg) {
    OutputWrite *w = arg;
    size_t img = (size_t)w->S * w->S * 3;
    int left = w->quota;
    w->st = KT_OK;
    for (int j = 0; j < w->b && left > 0 && w->st == KT_OK;) {
        if (w->done && w->done[j]) {
            j++;
            continue;
        }
        int run = 1;  // consecutive missing images, written in one call
        while (j + run < w->b && run < left && !(w->done && w->done[j + run])) run++;
        w->st = output_write(w->o, w->i + j, run, w->px + (size_t)j * img, w->S, w->settings);
        left -= run;
        j += run;
    }
    if (w->st != KT_OK) snprintf(w->msg, sizeof w->msg, "%s", kt_last_error());
    return NULL;
}

KtStatus output_write_wait(OutputWrite *w, KtStatus st) {
    if (!w->pending) return st;
    pthread_join(w->thread, NULL);
    w->pending = false;
    return st != KT_OK || w->st == KT_OK ? st : KT_FAIL(w->st, "%s", w->msg);
}

KtStatus output_write_start(OutputWrite *w, int64_t i, int b, int quota, const uint8_t *done, const uint8_t *px) {
    KT_TRY(output_write_wait(w, KT_OK));
    w->i = i, w->b = b, w->quota = quota, w->done = done, w->px = px;
    w->pending = pthread_create(&w->thread, NULL, write_batch, w) == 0;
    if (w->pending) return KT_OK;
    write_batch(w);  // no thread to be had: in turn
    return w->st == KT_OK ? KT_OK : KT_FAIL(w->st, "%s", w->msg);
}
