// .npz reader and writer: the numpy-written fixtures (stored, deflated, ZIP64, data descriptors, big-endian, v1/v2/v3
// and hand-made headers, rejected dtypes and orders), the FID reference batches against ref.safetensors, streaming
// in odd batches and seeking, writer round trips read back by us and by numpy, the atomic write, and corrupt inputs
// built in C from valid archives (every truncation, flipped bytes, bad headers, sizes that disagree).
// Fixtures: npz/ from scripts/make_npz_fixtures.py (every value is a closed-form function of its flat index,
// mirrored by want_value below) and fid/ from the shared fid_fixture.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "eval/npz.h"
#include "kernels/checkpoint/zip.h"
#include "testutil.h"

// ------------------------------------------------------------------------------------------------------- helpers

typedef struct {
    const char *key;
    const char *descr;  // as numpy reports it, for the --check of scripts/make_npz_fixtures.py
    KtDType dtype;
    bool big_endian;
    int ndim;
    int64_t shape[4];
} Want;

// scripts/make_npz_fixtures.py STANDARD, SMALL, BIG_ENDIAN and the members of headers.npz
static const Want k_standard[] = {
    {"arr_0", "|u1", KT_U8, false, 4, {61, 32, 32, 3}}, {"f8", "<f8", KT_F64, false, 2, {5, 7}},
    {"f4", "<f4", KT_F32, false, 1, {11}},             {"i64", "<i8", KT_I64, false, 2, {3, 4}},
    {"i32", "<i4", KT_I32, false, 3, {2, 3, 5}},       {"scalar", "<f8", KT_F64, false, 0, {0}},
    {"empty", "<f4", KT_F32, false, 2, {0, 3}}};
static const Want k_small[] = {
    {"arr_0", "|u1", KT_U8, false, 4, {5, 4, 4, 3}}, {"f8", "<f8", KT_F64, false, 2, {5, 7}},
    {"f4", "<f4", KT_F32, false, 1, {11}},          {"i64", "<i8", KT_I64, false, 2, {3, 4}},
    {"i32", "<i4", KT_I32, false, 3, {2, 3, 5}},    {"scalar", "<f8", KT_F64, false, 0, {0}},
    {"empty", "<f4", KT_F32, false, 2, {0, 3}}};
static const Want k_big_endian[] = {
    {"arr_0", "|u1", KT_U8, false, 2, {2, 3}},  {"f8", ">f8", KT_F64, true, 2, {5, 7}},
    {"f4", ">f4", KT_F32, true, 1, {11}},      {"i64", ">i8", KT_I64, true, 2, {3, 4}},
    {"i32", ">i4", KT_I32, true, 3, {2, 3, 5}}};
static const Want k_headers[] = {
    {"v1", "<i8", KT_I64, false, 2, {3, 4}},     {"v2", "<f8", KT_F64, false, 2, {5, 7}},
    {"v3", "<f4", KT_F32, false, 1, {11}},       {"native", "<f8", KT_F64, false, 2, {5, 7}},
    {"py2", "<i8", KT_I64, false, 2, {3, 4}},    {"dq", "<i4", KT_I32, false, 3, {2, 3, 5}}};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

// values(descr, shape) of scripts/make_npz_fixtures.py, element i
static double want_value(KtDType t, int64_t i) {
    switch (t) {
    case KT_U8: return (double)((i * 7 + i / 311) % 256);
    case KT_I32: return (double)((i - 10) * 100003);
    case KT_I64: return (double)((i - 6) * 1099511627791LL);
    case KT_F32: return (double)(i - 5) * 0.25;
    default: return (double)(i - 7) * 0.125 + 1048576.0;  // KT_F64
    }
}

static int64_t want_numel(const Want *w) {
    int64_t n = 1;
    for (int d = 0; d < w->ndim; d++) n *= w->shape[d];
    return n;
}

// The array in native byte order (malloc'd, *bytes long).
static uint8_t *want_raw(const Want *w, size_t *bytes) {
    int64_t n = want_numel(w);
    size_t item = kt_dtype_size(w->dtype);
    uint8_t *p = malloc((size_t)n * item + 1);
    for (int64_t i = 0; i < n; i++) {
        double v = want_value(w->dtype, i);
        uint8_t u8 = (uint8_t)v;
        float f = (float)v;
        int32_t i32 = (int32_t)v;
        int64_t i64 = (int64_t)v;
        const void *src = w->dtype == KT_U8 ? (const void *)&u8 : w->dtype == KT_F32 ? (const void *)&f
                        : w->dtype == KT_I32 ? (const void *)&i32 : w->dtype == KT_I64 ? (const void *)&i64
                                                                                       : (const void *)&v;
        memcpy(p + (size_t)i * item, src, item);
    }
    *bytes = (size_t)n * item;
    return p;
}

static bool file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static EvNpz *open_ok(const char *path) {
    EvNpz *z = NULL;
    cr_assert(ev_npz_open(&z, path) == KT_OK, "%s: %s", path, kt_last_error());
    return z;
}

static int64_t rows_of(const EvNpyHeader *h) { return h->ndim ? h->shape[0] : 1; }
static size_t row_bytes_of(const EvNpyHeader *h) {
    return rows_of(h) ? (size_t)(h->data_bytes / (uint64_t)rows_of(h)) : 0;
}

// Streams member `key` in batches of `batch` rows into one buffer (malloc'd, *bytes long).
static uint8_t *stream_all(const EvNpz *z, const char *key, int64_t batch, size_t *bytes) {
    EvNpyStream *s;
    EvNpyHeader h;
    cr_assert(ev_npy_stream_open(&s, z, key, &h) == KT_OK, "'%s': %s", key, kt_last_error());
    size_t rb = row_bytes_of(&h);
    uint8_t *buf = malloc((size_t)h.data_bytes + 1);
    int64_t at = 0, got;
    do {
        cr_assert(ev_npy_stream_read(s, buf + (size_t)at * rb, batch, &got) == KT_OK, "'%s' at row %lld: %s", key,
                  (long long)at, kt_last_error());
        cr_assert(got >= 0 && got <= batch && at + got <= rows_of(&h));
        at += got;
    } while (got > 0);
    cr_expect(at == rows_of(&h), "'%s': streamed %lld of %lld rows", key, (long long)at, (long long)rows_of(&h));
    ev_npy_stream_close(s);
    *bytes = (size_t)h.data_bytes;
    return buf;
}

// Header, values through ev_npz_read_f64 (exact) and the raw bytes through a stream.
static void expect_member(const EvNpz *z, const char *file, const Want *w) {
    double *v;
    EvNpyHeader h;
    cr_assert(ev_npz_read_f64(z, w->key, &v, &h) == KT_OK, "%s '%s': %s", file, w->key, kt_last_error());
    cr_expect(h.dtype == w->dtype && h.big_endian == w->big_endian && h.ndim == w->ndim, "%s '%s': %s%s %d-d",
              file, w->key, h.big_endian ? "big-endian " : "", kt_dtype_name(h.dtype), h.ndim);
    for (int d = 0; d < w->ndim; d++) cr_expect(h.shape[d] == w->shape[d], "%s '%s': dim %d", file, w->key, d);
    size_t nb;
    uint8_t *raw = want_raw(w, &nb);
    cr_expect(h.data_bytes == nb, "%s '%s': %llu data bytes", file, w->key, (unsigned long long)h.data_bytes);
    int64_t bad = -1;
    for (int64_t i = 0; i < want_numel(w) && bad < 0; i++)
        if (v[i] != want_value(w->dtype, i)) bad = i;
    cr_expect(bad < 0, "%s '%s': [%lld] is %.17g, expected %.17g", file, w->key, (long long)bad,
              bad >= 0 ? v[bad] : 0.0, bad >= 0 ? want_value(w->dtype, bad) : 0.0);
    size_t sb;
    uint8_t *st = stream_all(z, w->key, 1000, &sb);
    cr_expect(sb == nb && !memcmp(st, raw, nb), "%s '%s': streamed bytes differ", file, w->key);
    free(st), free(raw), free(v);
}

static void expect_file(const char *rel, const Want *w, int n) {
    const char *path = fixture_path(rel);
    EvNpz *z = open_ok(path);
    cr_expect(ev_npz_count(z) == n, "%s: %d arrays, expected %d", rel, ev_npz_count(z), n);
    for (int i = 0; i < n && i < ev_npz_count(z); i++) {
        cr_expect(!strcmp(ev_npz_key(z, i), w[i].key), "%s: key %d is '%s', expected '%s'", rel, i,
                  ev_npz_key(z, i), w[i].key);
        cr_expect(ev_npz_has(z, w[i].key));
        expect_member(z, rel, &w[i]);
    }
    cr_expect(ev_npz_key(z, n) == NULL && ev_npz_key(z, -1) == NULL && !ev_npz_has(z, "nope"));
    ev_npz_close(z);
}

// Reads every member whole and streamed (3 rows at a time); the first failure, or KT_OK.
static KtStatus read_all(const EvNpz *z) {
    for (int i = 0; i < ev_npz_count(z); i++) {
        const char *key = ev_npz_key(z, i);
        double *v = NULL;
        EvNpyHeader h;
        KtStatus s = ev_npz_read_f64(z, key, &v, &h);
        free(v);
        EvNpyStream *st;
        if (s == KT_OK) s = ev_npy_stream_open(&st, z, key, &h);
        if (s != KT_OK) return s;
        uint8_t *buf = malloc(3 * row_bytes_of(&h) + 1);
        int64_t got = 0;
        do s = ev_npy_stream_read(st, buf, 3, &got);
        while (s == KT_OK && got > 0);
        free(buf);
        ev_npy_stream_close(st);
        if (s != KT_OK) return s;
    }
    return KT_OK;
}

// Opens an exactly sized copy (so ASan sees any read past the end) and reads everything: the first failure.
static KtStatus open_read_mem(const uint8_t *d, size_t n, const char *name) {
    void *copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    EvNpz *z;
    KtStatus s = ev_npz_open_memory(&z, copy, n, name);
    if (s == KT_OK) {
        s = read_all(z);
        ev_npz_close(z);
    }
    free(copy);
    return s;
}

// Offset of member `name`'s first byte (its .npy magic) in a zip held in memory.
static size_t member_offset(const uint8_t *d, size_t n, const char *name) {
    KtZip z;
    cr_assert(kt_zip_open(&z, d, n, "buf.npz") == KT_OK, "%s", kt_last_error());
    const KtZipEntry *e = kt_zip_find(&z, name);
    cr_assert(e != NULL, "no member %s", name);
    size_t off = (size_t)e->data_offset;
    kt_zip_free(&z);
    return off;
}

// Overwrites the dict text of the v1.0 .npy header at d + off (its length field stays), padded like numpy.
static void set_header_text(uint8_t *d, size_t off, const char *text) {
    size_t hl = d[off + 8] | (size_t)d[off + 9] << 8, tl = strlen(text);
    cr_assert(tl + 1 <= hl, "header text '%s' does not fit %zu bytes", text, hl);
    memcpy(d + off + 10, text, tl);
    memset(d + off + 10 + tl, ' ', hl - tl - 1);
    d[off + 10 + hl - 1] = '\n';
}

// ---------------------------------------------------------------------------------------- numpy-written files

Test(npz, stored) { expect_file("npz/stored.npz", k_standard, N_OF(k_standard)); }
Test(npz, deflated) { expect_file("npz/deflated.npz", k_standard, N_OF(k_standard)); }
Test(npz, zip64_stored_and_deflated) { expect_file("npz/zip64.npz", k_small, N_OF(k_small)); }
Test(npz, data_descriptors) {
    expect_file("npz/unseekable.npz", k_small, N_OF(k_small));
    expect_file("npz/unseekable_deflated.npz", k_small, N_OF(k_small));
}
Test(npz, big_endian) { expect_file("npz/big_endian.npz", k_big_endian, N_OF(k_big_endian)); }

Test(npz, header_versions_and_hand_made_headers) {
    expect_file("npz/headers.npz", k_headers, N_OF(k_headers));
    EvNpz *z = open_ok(fixture_path("npz/headers.npz"));
    const char *keys[] = {"v1", "v2", "v3", "native"};
    const uint64_t aligned[] = {64, 64, 64, 16};  // numpy pads to 64; the hand-made '=f8' one to 16 like numpy < 1.9
    for (int i = 0; i < 4; i++) {
        EvNpyStream *s;
        EvNpyHeader h;
        cr_assert(ev_npy_stream_open(&s, z, keys[i], &h) == KT_OK, "%s", kt_last_error());
        cr_expect(h.header_bytes % aligned[i] == 0, "'%s': header of %llu bytes", keys[i],
                  (unsigned long long)h.header_bytes);
        ev_npy_stream_close(s);
    }
    ev_npz_close(z);
}

Test(npz, fortran_order_rejected) {
    const char *path = fixture_path("npz/fortran.npz");
    EvNpz *z = open_ok(path);
    double *v;
    EvNpyStream *s;
    expect_error(ev_npz_read_f64(z, "f", &v, NULL), KT_ERR_UNSUPPORTED, path, "fortran_order=True");
    expect_error(ev_npy_stream_open(&s, z, "f", NULL), KT_ERR_UNSUPPORTED, "'f.npy'", "(3, 4)");
    ev_npz_close(z);
}

Test(npz, unsupported_dtypes_named) {
    const char *path = fixture_path("npz/unsupported.npz");
    EvNpz *z = open_ok(path);
    const char *keys[] = {"h", "b", "c", "u2", "rec"}, *descr[] = {"'<f2'", "'|b1'", "'<c8'", "'<u2'", "structured"};
    for (int i = 0; i < 5; i++) {
        double *v;
        EvNpyStream *s;
        expect_error(ev_npz_read_f64(z, keys[i], &v, NULL), KT_ERR_UNSUPPORTED, path, descr[i]);
        expect_error(ev_npy_stream_open(&s, z, keys[i], NULL), KT_ERR_UNSUPPORTED, path, descr[i]);
    }
    ev_npz_close(z);
}

// ------------------------------------------------------------------------------- the FID reference batches

// A float64 tensor of ref.safetensors, bit for bit.
static double *ref_f64(const char *name, int64_t *n) {
    KtCheckpoint ck;
    cr_assert(kt_ckpt_open(&ck, fixture_path("fid/ref.safetensors")) == KT_OK, "%s", kt_last_error());
    const KtCkptTensor *t = kt_ckpt_find(&ck, name);
    cr_assert(t && t->dtype == KT_F64, "ref.safetensors: no float64 '%s'", name);
    *n = kt_ckpt_numel(t);
    double *v = malloc((size_t)*n * sizeof *v);
    memcpy(v, t->storage + t->storage_offset * 8, (size_t)*n * sizeof *v);
    kt_ckpt_close(&ck);
    return v;
}

static void expect_stats(const char *rel, const char *mu_name, const char *sigma_name) {
    EvNpz *z = open_ok(fixture_path(rel));
    const char *keys[] = {"mu", "sigma"}, *refs[] = {mu_name, sigma_name};
    for (int k = 0; k < 2; k++) {
        double *v;
        EvNpyHeader h;
        int64_t n;
        cr_assert(ev_npz_read_f64(z, keys[k], &v, &h) == KT_OK, "%s: %s", rel, kt_last_error());
        double *r = ref_f64(refs[k], &n);
        cr_expect(h.dtype == KT_F64 && h.ndim == k + 1 && h.shape[0] == 256 && (k == 0 || h.shape[1] == 256));
        cr_expect(h.data_bytes == (uint64_t)n * 8 && !memcmp(v, r, (size_t)n * 8), "%s '%s' differs from %s", rel,
                  keys[k], refs[k]);
        free(v), free(r);
    }
    ev_npz_close(z);
}

Test(npz, fid_reference_batches) {
    expect_stats("fid/ref_batch_stored.npz", "fd_mu1", "fd_sigma1");
    expect_stats("fid/ref_batch_deflated.npz", "fd_mu2", "fd_sigma2");
    EvNpz *a = open_ok(fixture_path("fid/ref_batch_stored.npz"));
    EvNpz *b = open_ok(fixture_path("fid/ref_batch_deflated.npz"));
    EvNpyStream *s;
    EvNpyHeader h;
    cr_assert(ev_npy_stream_open(&s, a, "arr_0", &h) == KT_OK);
    cr_expect(h.dtype == KT_U8 && h.ndim == 4 && h.shape[0] == 8 && h.shape[1] == 64 && h.shape[3] == 3);
    ev_npy_stream_close(s);
    size_t na, nb;
    uint8_t *x = stream_all(a, "arr_0", 8, &na), *y = stream_all(b, "arr_0", 8, &nb);
    cr_expect(na == 8 * 64 * 64 * 3 && na == nb && !memcmp(x, y, na), "stored and deflated arr_0 differ");
    free(x), free(y);
    ev_npz_close(a), ev_npz_close(b);
}

// ------------------------------------------------------------------------------------------ streaming, seeking

static void expect_batches_equal(const char *rel) {
    EvNpz *z = open_ok(fixture_path(rel));
    size_t n0, n;
    uint8_t *whole = stream_all(z, "arr_0", 1 << 20, &n0);
    for (int64_t batch = 1; batch <= 5; batch += 2) {
        uint8_t *b = stream_all(z, "arr_0", batch, &n);
        cr_expect(n == n0 && !memcmp(b, whole, n), "%s: batches of %lld differ from the whole read", rel,
                  (long long)batch);
        free(b);
    }
    free(whole);
    ev_npz_close(z);
}

Test(npz, odd_batches_equal_whole_read) {
    expect_batches_equal("npz/stored.npz");
    expect_batches_equal("npz/deflated.npz");
    expect_batches_equal("fid/ref_batch_stored.npz");
    expect_batches_equal("fid/ref_batch_deflated.npz");
}

static void expect_seeks(const char *rel) {
    EvNpz *z = open_ok(fixture_path(rel));
    size_t nb, rb = 32 * 32 * 3;
    uint8_t *want = want_raw(&k_standard[0], &nb), *buf = malloc(nb);
    EvNpyStream *s;
    cr_assert(ev_npy_stream_open(&s, z, "arr_0", NULL) == KT_OK);
    int64_t got, at[] = {17, 18, 3, 60, 0, 29, 1};  // forward, backward (a deflate restart), last row, first
    for (int i = 0; i < N_OF(at); i++) {
        cr_assert(ev_npy_stream_seek(s, at[i]) == KT_OK, "%s seek %lld: %s", rel, (long long)at[i], kt_last_error());
        cr_assert(ev_npy_stream_read(s, buf, 5, &got) == KT_OK, "%s: %s", rel, kt_last_error());
        int64_t k = at[i] + 5 <= 61 ? 5 : 61 - at[i];
        cr_expect(got == k && !memcmp(buf, want + (size_t)at[i] * rb, (size_t)k * rb), "%s: rows at %lld differ", rel,
                  (long long)at[i]);
    }
    cr_expect(ev_npy_stream_seek(s, 61) == KT_OK && ev_npy_stream_read(s, buf, 5, &got) == KT_OK && got == 0);
    expect_error(ev_npy_stream_seek(s, 62), KT_ERR_ARG, rel, "expected 0..61");
    expect_error(ev_npy_stream_seek(s, -1), KT_ERR_ARG, rel, NULL);
    expect_error(ev_npy_stream_read(s, buf, -1, &got), KT_ERR_ARG, rel, NULL);
    cr_assert(ev_npy_stream_seek(s, 0) == KT_OK && ev_npy_stream_read(s, buf, 100, &got) == KT_OK);
    cr_expect(got == 61 && !memcmp(buf, want, nb), "%s: full read after seeks differs", rel);
    ev_npy_stream_close(s);
    free(want), free(buf);
    ev_npz_close(z);
}

Test(npz, seek) {
    expect_seeks("npz/stored.npz");
    expect_seeks("npz/deflated.npz");
}

// --------------------------------------------------------------------------------------------------- the writer

// "<one scratch dir per test>/<name>"; four rotating buffers, so a test can hold a few paths at once.
static const char *tmp_path(const char *name) {
    static _Thread_local char dir[256], path[4][512];
    static _Thread_local int k;
    if (!dir[0]) snprintf(dir, sizeof dir, "%s", test_tmpdir());
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

static void write_standard(const char *path, bool force_zip64) {
    EvNpzWriter *w;
    cr_assert(ev_npz_writer_open(&w, path) == KT_OK, "%s", kt_last_error());
    ev_npz_writer_force_zip64(w, force_zip64);
    for (int i = 0; i < N_OF(k_standard); i++) {
        const Want *m = &k_standard[i];
        size_t nb;
        uint8_t *raw = want_raw(m, &nb);
        if (i == 0) {  // streamed, in odd splits that straddle rows and the writer's buffer
            const size_t split[] = {1, 7, 1000, 3, 70001, 2, 4099};
            cr_assert(ev_npz_writer_begin(w, m->key, m->dtype, m->ndim, m->shape) == KT_OK, "%s", kt_last_error());
            for (size_t at = 0, j = 0; at < nb; j++) {
                size_t k = split[j % 7] < nb - at ? split[j % 7] : nb - at;
                cr_assert(ev_npz_writer_write(w, raw + at, k) == KT_OK, "%s", kt_last_error());
                at += k;
            }
            cr_assert(ev_npz_writer_end(w) == KT_OK, "%s", kt_last_error());
        } else {
            cr_assert(ev_npz_writer_add(w, m->key, m->dtype, m->ndim, m->shape, raw) == KT_OK, "%s",
                      kt_last_error());
        }
        free(raw);
    }
    cr_assert(ev_npz_writer_close(w) == KT_OK, "%s", kt_last_error());
}

static void expect_written(const char *path) {
    EvNpz *z = open_ok(path);
    cr_assert(ev_npz_count(z) == N_OF(k_standard));
    for (int i = 0; i < N_OF(k_standard); i++) {
        cr_expect(!strcmp(ev_npz_key(z, i), k_standard[i].key));
        expect_member(z, path, &k_standard[i]);
    }
    ev_npz_close(z);
}

static bool have_numpy(void) {
    return access("/usr/bin/python3", X_OK) == 0 &&
           system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0;
}
static void need_numpy(void) {
    if (!have_numpy()) cr_skip_test("no /usr/bin/python3 with numpy");
}

// numpy (np.load, plus zipfile's CRC check of every member) reads exactly k_standard from `path`.
static void expect_numpy_reads(const char *path) {
    char cmd[4096];
    size_t m = (size_t)snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/scripts/make_npz_fixtures.py --check '%s'",
                                ARGEN_SOURCE_DIR, path);
    for (int i = 0; i < N_OF(k_standard); i++) {
        const Want *w = &k_standard[i];
        m += (size_t)snprintf(cmd + m, sizeof cmd - m, " '%s:%s:", w->key, w->descr);
        for (int d = 0; d < w->ndim; d++) m += (size_t)snprintf(cmd + m, sizeof cmd - m, "%s%lld", d ? "x" : "",
                                                                (long long)w->shape[d]);
        m += (size_t)snprintf(cmd + m, sizeof cmd - m, "'");
    }
    snprintf(cmd + m, sizeof cmd - m, " 2>&1");
    FILE *p = popen(cmd, "r");
    cr_assert(p != NULL);
    char out[4096] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "numpy does not read %s:\n%s", path, out);
}

Test(npz_writer, round_trip) { write_standard(tmp_path("rt.npz"), false), expect_written(tmp_path("rt.npz")); }

Test(npz_writer, round_trip_read_by_numpy, .init = need_numpy) {
    const char *path = tmp_path("rt.npz");
    write_standard(path, false);
    expect_numpy_reads(path);
}

Test(npz_writer, layout_like_np_savez) {
    const char *path = tmp_path("layout.npz");
    write_standard(path, false);
    size_t n;
    uint8_t *d = read_file(path, &n);
    cr_expect(!memcmp(d, "PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x21\x00", 14), "local header: version 20, "
              "stored, 1980-01-01");
    size_t off = member_offset(d, n, "arr_0.npy");
    cr_expect(off == 30 + 9, "no extra field in a small member's local header");
    cr_expect(!memcmp(d + off, "\x93NUMPY\x01\x00", 8) && (10 + (d[off + 8] | d[off + 9] << 8)) % 64 == 0);
    cr_expect(!memcmp(d + n - 22, "PK\x05\x06", 4) && d[n - 22 + 10] == 7, "plain EOCD with 7 entries");
    free(d);
}

Test(npz_writer, force_zip64) {
    const char *path = tmp_path("z64.npz");
    write_standard(path, true);
    size_t n;
    uint8_t *d = read_file(path, &n);
    const uint8_t *eocd = d + n - 22, *loc = eocd - 20;
    cr_expect(!memcmp(eocd, "PK\x05\x06", 4) && !memcmp(eocd + 8, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
                                                         12), "EOCD fields saturated");
    cr_expect(!memcmp(loc, "PK\x06\x07", 4), "ZIP64 locator");
    cr_expect(!memcmp(d, "PK\x03\x04\x2d\x00", 6) && d[28] == 20, "local header: version 45, ZIP64 extra");
    free(d);
    expect_written(path);
}

Test(npz_writer, force_zip64_read_by_numpy, .init = need_numpy) {
    const char *path = tmp_path("z64.npz");
    write_standard(path, true);
    expect_numpy_reads(path);
}

Test(npz_writer, header_format) {
    uint8_t buf[512];
    size_t len;
    cr_assert(ev_npy_format_header(buf, sizeof buf, &len, KT_F64, 1, (int64_t[]){2048}) == KT_OK);
    const char *text = "{'descr': '<f8', 'fortran_order': False, 'shape': (2048,), }";
    cr_expect(len == 128 && !memcmp(buf, "\x93NUMPY\x01\x00\x76\x00", 10) && !memcmp(buf + 10, text, strlen(text)));
    cr_expect(buf[127] == '\n' && buf[126] == ' ');
    const KtDType types[] = {KT_U8, KT_F32, KT_F64, KT_I32, KT_I64};
    int64_t shape[EV_NPY_MAX_DIMS] = {3, 1, 0, 99999999999LL, 5, 6, 7, 8};
    for (int t = 0; t < 5; t++)
        for (int nd = 0; nd <= EV_NPY_MAX_DIMS; nd++) {
            size_t cap = 256 + 24 * (size_t)nd;
            cr_assert(ev_npy_format_header(buf, cap, &len, types[t], nd, shape) == KT_OK, "%s", kt_last_error());
            EvNpyHeader h;
            cr_assert(ev_npy_parse_header(&h, buf, len, "fmt") == KT_OK, "%s", kt_last_error());
            cr_expect(len % 64 == 0 && len <= cap && h.header_bytes == len && h.dtype == types[t] && h.ndim == nd &&
                      !h.big_endian && !memcmp(h.shape, shape, (size_t)nd * 8), "dtype %d, %d dims", t, nd);
        }
    cr_expect(ev_npy_format_header(buf, sizeof buf, &len, KT_F16, 1, shape) == KT_ERR_UNSUPPORTED);
    cr_expect(ev_npy_format_header(buf, 200, &len, KT_F32, 8, shape) == KT_ERR_ARG);
    cr_expect(ev_npy_format_header(buf, sizeof buf, &len, KT_F32, 9, shape) == KT_ERR_ARG);
    cr_expect(ev_npy_format_header(buf, sizeof buf, &len, KT_F32, 1, (int64_t[]){-1}) == KT_ERR_ARG);
}

Test(npz_writer, atomic_write) {
    const char *path = tmp_path("out.npz");
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    double v[3] = {1, 2, 3};
    EvNpzWriter *w;
    // nothing at the path until close
    cr_assert(ev_npz_writer_open(&w, path) == KT_OK);
    cr_assert(ev_npz_writer_add(w, "v", KT_F64, 1, (int64_t[]){3}, v) == KT_OK);
    cr_expect(!file_exists(path) && file_exists(tmp));
    cr_assert(ev_npz_writer_close(w) == KT_OK, "%s", kt_last_error());
    cr_expect(file_exists(path) && !file_exists(tmp));
    size_t n0;
    uint8_t *before = read_file(path, &n0);
    // an abort, and a close with an unfinished member, leave the existing file alone and no temporary behind
    for (int k = 0; k < 2; k++) {
        cr_assert(ev_npz_writer_open(&w, path) == KT_OK);
        cr_assert(ev_npz_writer_add(w, "other", KT_F64, 1, (int64_t[]){2}, v) == KT_OK);
        cr_assert(ev_npz_writer_begin(w, "x", KT_F64, 1, (int64_t[]){3}) == KT_OK);
        cr_assert(ev_npz_writer_write(w, v, 8) == KT_OK);
        if (k == 0) ev_npz_writer_abort(w);
        else expect_error(ev_npz_writer_close(w), KT_ERR_ARG, path, "begun but not ended");
        size_t n1;
        uint8_t *after = read_file(path, &n1);
        cr_expect(n1 == n0 && !memcmp(before, after, n0) && !file_exists(tmp), "pass %d changed %s", k, path);
        free(after);
    }
    free(before);
    // abort with no file at the path leaves nothing
    const char *fresh = tmp_path("never.npz");
    cr_assert(ev_npz_writer_open(&w, fresh) == KT_OK);
    cr_assert(ev_npz_writer_add(w, "v", KT_F64, 1, (int64_t[]){3}, v) == KT_OK);
    ev_npz_writer_abort(w);
    ev_npz_writer_abort(NULL);
    cr_expect(!file_exists(fresh));
    expect_error(ev_npz_writer_open(&w, "/nonexistent/dir/stats.npz"), KT_ERR_IO, "/nonexistent/dir/stats.npz",
                 "temporary file");
}

Test(npz_writer, misuse_is_an_error_and_harmless) {
    const char *path = tmp_path("misuse.npz");
    EvNpzWriter *w;
    double v[6] = {1, 2, 3, 4, 5, 6};
    int64_t two = 2;
    cr_assert(ev_npz_writer_open(&w, path) == KT_OK);
    cr_assert(ev_npz_writer_add(w, "a", KT_F64, 1, &two, v) == KT_OK);
    expect_error(ev_npz_writer_add(w, "a", KT_F64, 1, &two, v), KT_ERR_ARG, path, "already written");
    expect_error(ev_npz_writer_add(w, "", KT_F64, 1, &two, v), KT_ERR_ARG, path, "invalid array key");
    expect_error(ev_npz_writer_add(w, "b\n", KT_F64, 1, &two, v), KT_ERR_ARG, path, "invalid array key");
    expect_error(ev_npz_writer_add(w, "h", KT_F16, 1, &two, v), KT_ERR_UNSUPPORTED, path, "float16");
    expect_error(ev_npz_writer_add(w, "n", KT_F64, 1, (int64_t[]){-2}, v), KT_ERR_ARG, path, "dim 0");
    expect_error(ev_npz_writer_add(w, "n", KT_F64, 1, &two, NULL), KT_ERR_ARG, path, "NULL data");
    expect_error(ev_npz_writer_write(w, v, 8), KT_ERR_ARG, path, "no array is open");
    expect_error(ev_npz_writer_end(w), KT_ERR_ARG, path, "no array is open");
    cr_assert(ev_npz_writer_begin(w, "s", KT_F64, 2, (int64_t[]){2, 3}) == KT_OK);
    expect_error(ev_npz_writer_begin(w, "t", KT_F64, 1, &two), KT_ERR_ARG, path, "still being written");
    cr_assert(ev_npz_writer_write(w, v, 40) == KT_OK);
    expect_error(ev_npz_writer_write(w, v, 16), KT_ERR_ARG, path, "exceeds its declared 48 data bytes");
    expect_error(ev_npz_writer_end(w), KT_ERR_ARG, path, "40 data bytes written, its shape needs 48");
    cr_assert(ev_npz_writer_write(w, v + 5, 8) == KT_OK && ev_npz_writer_end(w) == KT_OK);
    cr_assert(ev_npz_writer_add(w, "n", KT_I64, 0, NULL, &(int64_t){50000}) == KT_OK);  // 0-d, as eval/stats.c
    cr_assert(ev_npz_writer_close(w) == KT_OK, "%s", kt_last_error());
    EvNpz *z = open_ok(path);
    double *got;
    EvNpyHeader h;
    cr_assert(ev_npz_count(z) == 3 && ev_npz_read_f64(z, "s", &got, &h) == KT_OK, "%s", kt_last_error());
    cr_expect(h.ndim == 2 && h.shape[1] == 3 && !memcmp(got, v, sizeof v));
    free(got);
    cr_assert(ev_npz_read_f64(z, "n", &got, &h) == KT_OK, "%s", kt_last_error());
    cr_expect(h.ndim == 0 && h.dtype == KT_I64 && got[0] == 50000);
    free(got);
    ev_npz_close(z);
}

// ----------------------------------------------------------------------------------------------- corrupt input

Test(npz_corrupt, truncated_everywhere) {
    const char *files[] = {"npz/zip64.npz", "npz/unseekable_deflated.npz", "npz/headers.npz", "npz/deflated.npz"};
    for (int f = 0; f < 4; f++) {
        size_t n;
        uint8_t *d = read_file(fixture_path(files[f]), &n);
        cr_assert(open_read_mem(d, n, "whole.npz") == KT_OK, "%s: %s", files[f], kt_last_error());
        for (size_t cut = 0; cut < n; cut++)
            expect_error(open_read_mem(d, cut, "cut.npz"), KT_ERR_FORMAT, "cut.npz", NULL);
        free(d);
    }
    EvNpz *z;
    expect_error(ev_npz_open(&z, tmp_path("missing.npz")), KT_ERR_IO, "missing.npz", "cannot open");
    expect_error(ev_npz_open(&z, test_tmpdir()), KT_ERR_IO, "argen-test-", "directory");
    const char *empty = tmp_path("empty.npz");
    FILE *e = fopen(empty, "wb");
    fclose(e);
    expect_error(ev_npz_open(&z, empty), KT_ERR_FORMAT, "empty.npz", "truncated");
}

Test(npz_corrupt, flipped_data_bytes_fail_the_crc) {
    size_t n, nb;
    uint8_t *d = read_file(fixture_path("npz/stored.npz"), &n);
    size_t off = member_offset(d, n, "arr_0.npy");
    off += 10 + (d[off + 8] | (size_t)d[off + 9] << 8);  // the first data byte
    uint8_t *buf = want_raw(&k_standard[0], &nb);
    for (size_t at = off; at < off + nb; at += 9973) {
        d[at] ^= 0x10;
        EvNpz *z;
        cr_assert(ev_npz_open_memory(&z, d, n, "flip.npz") == KT_OK);
        EvNpyStream *s;
        int64_t got, rows = 0;
        KtStatus st;
        cr_assert(ev_npy_stream_open(&s, z, "arr_0", NULL) == KT_OK);
        while ((st = ev_npy_stream_read(s, buf, 5, &got)) == KT_OK && got > 0) rows += got;
        expect_error(st, KT_ERR_FORMAT, "flip.npz", "fails its CRC-32 check");
        cr_expect(rows == 60, "the error comes with the last batch (after %lld rows)", (long long)rows);
        // a pass entered by a seek cannot check the CRC; one from row 0 does again
        cr_expect(ev_npy_stream_seek(s, 0) == KT_ERR_FORMAT, "a failed stream stays failed");
        ev_npy_stream_close(s);
        cr_assert(ev_npy_stream_open(&s, z, "arr_0", NULL) == KT_OK && ev_npy_stream_seek(s, 1) == KT_OK);
        cr_expect(ev_npy_stream_read(s, buf, 100, &got) == KT_OK && got == 60);
        cr_assert(ev_npy_stream_seek(s, 0) == KT_OK);
        expect_error(ev_npy_stream_read(s, buf, 100, &got), KT_ERR_FORMAT, "flip.npz", "arr_0.npy");
        ev_npy_stream_close(s);
        double *v;
        expect_error(ev_npz_read_f64(z, "arr_0", &v, NULL), KT_ERR_FORMAT, "flip.npz", "CRC-32");
        cr_expect(ev_npz_read_f64(z, "f8", &v, NULL) == KT_OK, "the other members still read");
        free(v);
        ev_npz_close(z);
        d[at] ^= 0x10;
    }
    // deflated: every flipped byte of the compressed data is caught (bad deflate data, size or CRC) or harmless
    free(d);
    d = read_file(fixture_path("npz/zip64.npz"), &n);
    KtZip zip;
    cr_assert(kt_zip_open(&zip, d, n, "z") == KT_OK);
    const KtZipEntry *e = kt_zip_find(&zip, "f8.npy");
    cr_assert(e && e->method == 8);
    int caught = 0;
    for (uint64_t at = e->data_offset; at < e->data_offset + e->comp_size; at++) {
        d[at] ^= 0x01;
        EvNpz *z;
        double *v = NULL;
        cr_assert(ev_npz_open_memory(&z, d, n, "flip.npz") == KT_OK);
        KtStatus st = ev_npz_read_f64(z, "f8", &v, NULL);
        if (st != KT_OK) {  // a flip that lands in the header's text can also make it an unsupported dtype
            expect_error(st, st == KT_ERR_UNSUPPORTED ? KT_ERR_UNSUPPORTED : KT_ERR_FORMAT, "flip.npz", "f8.npy");
            caught++;
        }
        free(v);
        ev_npz_close(z);
        d[at] ^= 0x01;
    }
    cr_expect(caught >= (int)e->comp_size - 2, "%d of %llu flips caught", caught, (unsigned long long)e->comp_size);
    kt_zip_free(&zip);
    free(d), free(buf);
}

// Reads member `key` whole and then streamed (2 rows at a time); both must fail alike. The stream's status.
static KtStatus open_read_key(const uint8_t *d, size_t n, const char *key) {
    EvNpz *z;
    KT_TRY(ev_npz_open_memory(&z, d, n, "bad.npz"));
    double *v = NULL;
    KtStatus s = ev_npz_read_f64(z, key, &v, NULL), s2;
    free(v);
    EvNpyStream *st;
    EvNpyHeader h;
    if ((s2 = ev_npy_stream_open(&st, z, key, &h)) == KT_OK) {
        uint8_t *buf = malloc(2 * row_bytes_of(&h) + 1);
        int64_t got;
        while ((s2 = ev_npy_stream_read(st, buf, 2, &got)) == KT_OK && got > 0) continue;
        free(buf);
        ev_npy_stream_close(st);
    }
    cr_expect(s2 == s, "'%s': read whole gives %s, streamed %s", key, kt_status_name(s), kt_status_name(s2));
    ev_npz_close(z);
    return s2;
}

Test(npz_corrupt, bad_headers) {
    size_t n;
    uint8_t *d = read_file(fixture_path("npz/stored.npz"), &n);
    size_t off = member_offset(d, n, "arr_0.npy");
    size_t f8 = member_offset(d, n, "f8.npy");  // 408 bytes
    uint8_t *c = malloc(n);
    memcpy(c, d, n), c[off + 1] = 'n';
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz: member 'arr_0.npy'", "magic");
    memcpy(c, d, n), c[f8 + 8] = 0x90, c[f8 + 9] = 0x01;
    expect_error(open_read_key(c, n, "f8"), KT_ERR_FORMAT, "bad.npz", "header claims 410 bytes, the member has 408");
    memcpy(c, d, n), c[off + 6] = 4;
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_UNSUPPORTED, "bad.npz", "version 4.0");
    memcpy(c, d, n);
    set_header_text(c, off, "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }");
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz", "overflows");
    set_header_text(c, off, "{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,), }");
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz", "overflows");
    set_header_text(c, off, "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999,), }");
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz", "dimension larger than 2^63");
    set_header_text(c, off, "{'descr': '|u1', 'fortran_order': False, 'shape': (61, 32, 32, 2), }");
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz", "header declares 124928 data bytes");
    set_header_text(c, off, "{'descr': '|u1', 'fortran_order': False, 'shape': (61, 32, 32, 3), 'x': 1}");
    expect_error(open_read_key(c, n, "arr_0"), KT_ERR_FORMAT, "bad.npz", "unknown key");
    expect_error(open_read_key(d, n, "nope"), KT_ERR_FORMAT, "bad.npz", "no array 'nope' (the file has: arr_0, f8");
    free(c), free(d);
}

Test(npz_corrupt, header_parser) {
    static const struct {
        const char *text;
        KtStatus want;
        const char *needle;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", KT_OK, NULL},
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (6,), }", KT_OK, NULL},  // 1-d: same bytes either way
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (), }", KT_OK, NULL},
        {"{'descr': '>u1', 'fortran_order': False, 'shape': (), }", KT_OK, NULL},
        {"{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", KT_ERR_UNSUPPORTED, "fortran_order=True"},
        {"{'descr': '<f8', 'shape': (2, 3), }", KT_ERR_FORMAT, "lacks the 'fortran_order' key"},
        {"{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", KT_ERR_FORMAT, "repeated key"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3), }", KT_ERR_FORMAT, "trailing comma"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }", KT_ERR_FORMAT, "non-negative integer"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3 4), }", KT_ERR_FORMAT, "expected ',' or ')'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (,), }", KT_ERR_FORMAT, "dimension"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': [3], }", KT_ERR_FORMAT, "expected '('"},
        {"{'descr': '<f8', 'fortran_order': 0, 'shape': (3,), }", KT_ERR_FORMAT, "True or False"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), } x", KT_ERR_FORMAT, "after the closing"},
        {"{'descr': '<f8, 'fortran_order': False, 'shape': (3,), }", KT_ERR_FORMAT, "after a value"},
        {"{'descr' '<f8', 'fortran_order': False, 'shape': (3,), }", KT_ERR_FORMAT, "expected ':'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3,)", KT_ERR_FORMAT, "expected ',' or '}'"},
        {"['descr', '<f8']", KT_ERR_FORMAT, "expected '{'"},
        {"{'descr': '|f8', 'fortran_order': False, 'shape': (3,), }", KT_ERR_UNSUPPORTED, "'|f8'"},
        {"{'descr': '<U3', 'fortran_order': False, 'shape': (3,), }", KT_ERR_UNSUPPORTED, "'<U3'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", KT_ERR_UNSUPPORTED,
         "more than 8 dimensions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[256] = "\x93NUMPY\x01\x00";
        size_t tl = strlen(cases[i].text);
        buf[8] = (uint8_t)(tl + 1);
        memcpy(buf + 10, cases[i].text, tl);
        buf[10 + tl] = '\n';
        EvNpyHeader h;
        KtStatus s = ev_npy_parse_header(&h, buf, 11 + tl, "hdr.npy");
        if (cases[i].want == KT_OK) cr_expect(s == KT_OK, "'%s': %s", cases[i].text, kt_last_error());
        else expect_error(s, cases[i].want, "hdr.npy", cases[i].needle);
    }
    EvNpyHeader h;
    expect_error(ev_npy_parse_header(&h, (const uint8_t *)"\x93NUMPY\x02\x00\x10\x00", 10, "v2.npy"), KT_ERR_FORMAT,
                 "v2.npy", "expected at least 12");
    expect_error(ev_npy_parse_header(&h, (const uint8_t *)"PK\x03\x04", 4, "x.npy"), KT_ERR_FORMAT, "x.npy",
                 "found 50 4b 03 04");
}

static void put16(uint8_t **p, unsigned v) { (*p)[0] = (uint8_t)v, (*p)[1] = (uint8_t)(v >> 8), *p += 2; }
static void put32(uint8_t **p, uint32_t v) { put16(p, v & 0xFFFF), put16(p, v >> 16); }

// A one-member zip ("a.npy", raw deflate of body[0, n) minus its last `cut` compressed bytes) whose directory
// declares `size` uncompressed bytes and `crc`.
static uint8_t *zip_deflated(const uint8_t *body, size_t n, uint32_t size, uint32_t crc, size_t cut, size_t *out_n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n);
    uint8_t *z = malloc(cap + 200), *p = z;
    zs.next_in = (Bytef *)(uintptr_t)body, zs.avail_in = (uInt)n;
    zs.next_out = z + 35, zs.avail_out = (uInt)cap;
    cr_assert(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    uint32_t cs = (uint32_t)(zs.total_out - cut);
    deflateEnd(&zs);
    put32(&p, 0x04034b50), put16(&p, 20), put16(&p, 0), put16(&p, 8), put16(&p, 0), put16(&p, 0x21);
    put32(&p, crc), put32(&p, cs), put32(&p, size), put16(&p, 5), put16(&p, 0);
    memcpy(p, "a.npy", 5), p += 5 + cs;
    uint32_t cd = (uint32_t)(p - z);
    put32(&p, 0x02014b50), put16(&p, 20), put16(&p, 20), put16(&p, 0), put16(&p, 8), put16(&p, 0), put16(&p, 0x21);
    put32(&p, crc), put32(&p, cs), put32(&p, size), put16(&p, 5), put16(&p, 0), put16(&p, 0), put16(&p, 0);
    put16(&p, 0), put32(&p, 0), put32(&p, 0);
    memcpy(p, "a.npy", 5), p += 5;
    put32(&p, 0x06054b50), put16(&p, 0), put16(&p, 0), put16(&p, 1), put16(&p, 1), put32(&p, 51), put32(&p, cd);
    put16(&p, 0);
    *out_n = (size_t)(p - z);
    return z;
}

Test(npz_corrupt, inflated_size_disagrees) {
    uint8_t hdr[512];
    size_t hl, nb;
    const Want *w = &k_standard[1];  // f8 (5, 7)
    uint8_t *raw = want_raw(w, &nb);
    cr_assert(ev_npy_format_header(hdr, sizeof hdr, &hl, w->dtype, w->ndim, w->shape) == KT_OK);
    uint8_t *npy = malloc(hl + nb + 16);
    memcpy(npy, hdr, hl), memcpy(npy + hl, raw, nb), memset(npy + hl + nb, 0x5a, 16);
    size_t n;
    uint32_t crc = (uint32_t)crc32(0, npy, (uInt)(hl + nb));
    uint32_t size = (uint32_t)(hl + nb);
    uint8_t *z = zip_deflated(npy, size, size, crc, 0, &n);  // valid
    cr_expect(open_read_key(z, n, "a") == KT_OK, "%s", kt_last_error());
    free(z);
    z = zip_deflated(npy, size + 16, size, crc, 0, &n);  // 16 more bytes than declared
    expect_error(open_read_key(z, n, "a"), KT_ERR_FORMAT, "bad.npz", "inflates to more than its declared 408 bytes");
    free(z);
    z = zip_deflated(npy, size - 8, size, crc, 0, &n);  // one value short
    expect_error(open_read_key(z, n, "a"), KT_ERR_FORMAT, "bad.npz", "inflates to only 400 bytes");
    free(z);
    z = zip_deflated(npy, size, size, crc ^ 1, 0, &n);
    expect_error(open_read_key(z, n, "a"), KT_ERR_FORMAT, "bad.npz", "fails its CRC-32 check");
    free(z);
    z = zip_deflated(npy, size, size, crc, 6, &n);  // the compressed data cut short
    expect_error(open_read_key(z, n, "a"), KT_ERR_FORMAT, "bad.npz", "'a.npy'");
    free(z);
    free(npy), free(raw);
}

// A standalone .npy (argen fid FEATURES.npy): the data in place, its length checked against the header's shape.
Test(npz_corrupt, standalone_npy_length) {
    uint8_t file[512 + 48];
    size_t hl;
    OK(ev_npy_format_header(file, 512, &hl, KT_F32, 2, (int64_t[]){3, 4}));
    for (int i = 0; i < 48; i++) file[hl + i] = (uint8_t)i;
    EvNpyHeader h;
    const uint8_t *data;
    OK(ev_npy_view(&h, &data, file, hl + 48, "f.npy"));
    cr_expect(data == file + hl && h.data_bytes == 48 && h.shape[0] == 3 && h.shape[1] == 4);
    expect_error(ev_npy_view(&h, &data, file, hl + 47, "f.npy"), KT_ERR_FORMAT, "f.npy", "truncated");
    cr_expect(data == NULL);
    expect_error(ev_npy_view(&h, &data, file, hl + 44, "f.npy"), KT_ERR_FORMAT, "f.npy", "needs 48 bytes");
    uint8_t more[512 + 52] = {0};
    memcpy(more, file, hl + 48);
    expect_error(ev_npy_view(&h, &data, more, hl + 52, "f.npy"), KT_ERR_FORMAT, "f.npy", "trailing bytes");
    expect_error(ev_npy_view(&h, &data, file, 5, "f.npy"), KT_ERR_FORMAT, "f.npy", "not a .npy");
}

Test(npz_corrupt, not_an_npz) {
    size_t n;
    uint8_t *d = read_file(fixture_path("npz/stored.npz"), &n);
    size_t off = member_offset(d, n, "f8.npy");
    expect_error(open_read_mem(d + off, 128 + 280, "mu.npy"), KT_ERR_FORMAT, "mu.npy", "single .npy array");
    expect_error(open_read_mem((const uint8_t *)"GIF89a", 6, "x.npz"), KT_ERR_FORMAT, "x.npz", "zip directory");
    free(d);
}
