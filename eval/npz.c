// NumPy .npz reading and writing (see npz.h). Navigation is kernels/checkpoint/zip.c (central directory, ZIP64,
// local header lengths); member bytes come from its KtZipReader (stored: straight from the mapping; deflated: a
// 64 KiB inflate window), headers from npy.c. The writer emits np.savez's layout: stored members with v1.0 headers
// and CRC-32, ZIP64 records where sizes or offsets need them, into "<path>.tmp.<pid>", renamed into place on close.
// ref: numpy/lib/npyio.py (savez, NpzFile), cpython Lib/zipfile.py, PKWARE APPNOTE.TXT 6.3.x
#include "eval/npz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "kernels/checkpoint/zip.h"
#include "kernels/input_file.h"

#define CHUNK (64u << 10)  // bounce buffer of ev_npz_read_f64

struct EvNpz {
    KtZip zip;     // zip.name is the path used in messages
    void *map;     // the mapped file, or borrowed memory when !map_is_mmap
    size_t map_size;
    bool map_is_mmap;
    int n_keys;
    char **keys;   // owned: names of the "*.npy" members without the suffix, in directory order
};

struct EvNpyStream {
    KtZipReader *r;
    EvNpyHeader h;
    char *what;            // owned: "<path>: member '<key>.npy'", for messages
    int64_t rows, row;     // of the outermost dim; a 0-d array is one row
    uint64_t row_bytes;
    bool swap;             // the data's byte order is not the host's
};

static bool host_big_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 0;
}

static void swap_bytes(uint8_t *p, size_t n, size_t width) {
    for (size_t i = 0; i < n; i++, p += width)
        for (size_t a = 0, b = width - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

// ------------------------------------------------------------------------------------------------ the archive

static KtStatus npz_index(EvNpz *z) {
    const KtZip *zip = &z->zip;
    for (int i = 1; i < zip->n_entries; i++)  // by_name is sorted: duplicates are neighbours
        if (!strcmp(zip->by_name[i - 1]->name, zip->by_name[i]->name))
            return KT_FAIL(KT_ERR_FORMAT, "%s: member '%s' appears twice in the zip directory (corrupt file)",
                           zip->name, zip->by_name[i]->name);
    z->keys = calloc(zip->n_entries ? (size_t)zip->n_entries : 1, sizeof *z->keys);
    if (!z->keys) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", zip->name);
    for (int i = 0; i < zip->n_entries; i++) {  // members that are not arrays (no ".npy") are not listed
        const char *name = zip->entries[i].name;
        size_t len = strlen(name);
        if (len <= 4 || strcmp(name + len - 4, ".npy")) continue;
        if (!(z->keys[z->n_keys] = strndup(name, len - 4))) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", zip->name);
        z->n_keys++;
    }
    return KT_OK;
}

static KtStatus npz_open_bytes(EvNpz *z, const char *name) {
    if (z->map_size >= 6 && !memcmp(z->map, "\x93NUMPY", 6))
        return KT_FAIL(KT_ERR_FORMAT, "%s: this is a single .npy array, not an .npz archive", name);
    KT_TRY(kt_zip_open(&z->zip, z->map, z->map_size, name));
    return npz_index(z);
}

KtStatus ev_npz_open(EvNpz **out, const char *path) {
    *out = NULL;
    if (!path) return KT_FAIL(KT_ERR_ARG, "ev_npz_open: path is NULL");
    EvNpz *z = calloc(1, sizeof *z);
    if (!z) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
    KtStatus s = KT_OK;
    struct stat sb;
    int fd;
    s = kt_open_input(path, &fd, &sb);
    if (s == KT_OK && sb.st_size > 0) {  // a 10 GB sample batch is mapped, never read into memory
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) s = KT_FAIL(KT_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size,
                                         strerror(errno));
        else z->map = m, z->map_size = (size_t)sb.st_size, z->map_is_mmap = true;
    }
    if (fd >= 0) close(fd);
    if (s == KT_OK) s = npz_open_bytes(z, path);
    if (s != KT_OK) ev_npz_close(z);
    else *out = z;
    return s;
}

KtStatus ev_npz_open_memory(EvNpz **out, const void *data, size_t size, const char *name) {
    *out = NULL;
    if (!data && size) return KT_FAIL(KT_ERR_ARG, "ev_npz_open_memory: data is NULL");
    EvNpz *z = calloc(1, sizeof *z);
    if (!z) return KT_FAIL(KT_ERR_OOM, "out of memory opening an .npz archive");
    z->map = (void *)(uintptr_t)data;  // borrowed, never written
    z->map_size = size;
    KtStatus s = npz_open_bytes(z, name ? name : "<memory>");
    if (s != KT_OK) ev_npz_close(z);
    else *out = z;
    return s;
}

void ev_npz_close(EvNpz *z) {
    if (!z) return;
    for (int i = 0; i < z->n_keys; i++) free(z->keys[i]);
    free(z->keys);
    kt_zip_free(&z->zip);
    if (z->map_is_mmap && z->map) munmap(z->map, z->map_size);
    free(z);
}

static const KtZipEntry *find_member(const EvNpz *z, const char *key) {
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%s.npy", key) >= sizeof name) return NULL;
    return kt_zip_find(&z->zip, name);
}

bool ev_npz_has(const EvNpz *z, const char *key) { return find_member(z, key) != NULL; }
int ev_npz_count(const EvNpz *z) { return z->n_keys; }
const char *ev_npz_key(const EvNpz *z, int i) { return i >= 0 && i < z->n_keys ? z->keys[i] : NULL; }

// ----------------------------------------------------------------------------------------------- reading arrays

void ev_npy_stream_close(EvNpyStream *s) {
    if (!s) return;
    kt_zip_reader_free(s->r);
    free(s->what);
    free(s);
}

static KtStatus missing_key(const EvNpz *z, const char *key) {
    char list[256] = "";
    size_t m = 0;
    for (int i = 0; i < z->n_keys && m < sizeof list; i++)
        m += (size_t)snprintf(list + m, sizeof list - m, "%s%s", i ? ", " : "", z->keys[i]);
    return KT_FAIL(KT_ERR_FORMAT, "%s: no array '%s' (the file has: %s)", z->zip.name, key,
                   z->n_keys ? list : "no arrays");
}

// Reads and checks the header: the reader is left at the first data byte.
static KtStatus stream_header(EvNpyStream *s, const KtZipEntry *e) {
    uint8_t pre[12];
    size_t n0 = e->size < sizeof pre ? (size_t)e->size : sizeof pre;
    uint64_t hb;
    KT_TRY(kt_zip_reader_read(s->r, pre, n0));
    KT_TRY(ev_npy_header_size(pre, n0, e->size, &hb, s->what));
    if (hb > EV_NPY_MAX_HEADER)
        return KT_FAIL(KT_ERR_FORMAT, "%s: .npy header of %llu bytes is implausibly long (at most %u accepted)",
                       s->what, (unsigned long long)hb, EV_NPY_MAX_HEADER);
    uint8_t *hdr = malloc(hb > n0 ? (size_t)hb : n0);
    if (!hdr) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", s->what);
    memcpy(hdr, pre, n0);
    KtStatus st = hb > n0 ? kt_zip_reader_read(s->r, hdr + n0, hb - n0) : KT_OK;
    if (st == KT_OK) st = ev_npy_parse_header(&s->h, hdr, (size_t)hb, s->what);  // hb < 12 never parses
    free(hdr);
    KT_TRY(st);
    if (e->size - hb != s->h.data_bytes)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the .npy header declares %llu data bytes (%s, %d dims), but the member "
                       "holds %llu after its %llu-byte header", s->what, (unsigned long long)s->h.data_bytes,
                       kt_dtype_name(s->h.dtype), s->h.ndim, (unsigned long long)(e->size - hb),
                       (unsigned long long)hb);
    return KT_OK;
}

static KtStatus stream_open(EvNpyStream **out, const EvNpz *z, const char *key) {
    *out = NULL;
    const KtZipEntry *e = find_member(z, key);
    if (!e) return missing_key(z, key);
    EvNpyStream *s = calloc(1, sizeof *s);
    size_t wl = strlen(z->zip.name) + strlen(e->name) + 16;
    if (!s || !(s->what = malloc(wl))) {
        free(s);
        return KT_FAIL(KT_ERR_OOM, "%s: out of memory", z->zip.name);
    }
    snprintf(s->what, wl, "%s: member '%s'", z->zip.name, e->name);
    KtStatus st = kt_zip_reader_open(&s->r, &z->zip, e);
    if (st == KT_OK) st = stream_header(s, e);
    if (st != KT_OK) {
        ev_npy_stream_close(s);
        return st;
    }
    const EvNpyHeader *h = &s->h;
    s->rows = h->ndim ? h->shape[0] : 1;
    s->row_bytes = kt_dtype_size(h->dtype);
    for (int d = 1; d < h->ndim; d++) s->row_bytes *= (uint64_t)h->shape[d];  // <= data_bytes unless rows == 0
    if (s->rows == 0) s->row_bytes = 0;  // the inner dims may be anything then; no byte is ever read
    s->swap = h->big_endian != host_big_endian() && s->row_bytes != 0;
    *out = s;
    return KT_OK;
}

KtStatus ev_npy_stream_open(EvNpyStream **s, const EvNpz *npz, const char *key, EvNpyHeader *h) {
    KT_TRY(stream_open(s, npz, key));
    if (h) *h = (*s)->h;
    return KT_OK;
}

KtStatus ev_npy_stream_read(EvNpyStream *s, void *dst, int64_t n, int64_t *got) {
    *got = 0;
    if (n < 0) return KT_FAIL(KT_ERR_ARG, "%s: read of %lld rows", s->what, (long long)n);
    int64_t k = s->rows - s->row < n ? s->rows - s->row : n;
    uint64_t bytes = (uint64_t)k * s->row_bytes;
    if (!dst && bytes) return KT_FAIL(KT_ERR_ARG, "%s: read into a NULL buffer", s->what);
    KT_TRY(kt_zip_reader_read(s->r, dst, bytes));  // at the end: checks the inflated size and the CRC-32
    size_t item = kt_dtype_size(s->h.dtype);
    if (s->swap) swap_bytes(dst, (size_t)bytes / item, item);
    s->row += k;
    *got = k;
    return KT_OK;
}

KtStatus ev_npy_stream_seek(EvNpyStream *s, int64_t row) {
    if (row < 0 || row > s->rows)
        return KT_FAIL(KT_ERR_ARG, "%s: seek to row %lld, expected 0..%lld", s->what, (long long)row,
                       (long long)s->rows);
    if (row == 0 && s->row != 0) {  // from the member's first byte, so that this pass is CRC-checked again
        KT_TRY(kt_zip_reader_seek(s->r, 0));
        KT_TRY(kt_zip_reader_read(s->r, NULL, s->h.header_bytes));
    } else {
        KT_TRY(kt_zip_reader_seek(s->r, s->h.header_bytes + (uint64_t)row * s->row_bytes));
    }
    s->row = row;
    return KT_OK;
}

static void to_f64(double *dst, const uint8_t *src, KtDType t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float f;
        int32_t i32;
        int64_t i64;
        switch (t) {
        case KT_U8: dst[i] = src[i]; break;
        case KT_F32: memcpy(&f, src + 4 * i, 4), dst[i] = f; break;
        case KT_I32: memcpy(&i32, src + 4 * i, 4), dst[i] = i32; break;
        case KT_I64: memcpy(&i64, src + 8 * i, 8), dst[i] = (double)i64; break;  // exact up to 2^53
        default: memcpy(&dst[i], src + 8 * i, 8); break;                          // KT_F64
        }
    }
}

KtStatus ev_npz_read_f64(const EvNpz *npz, const char *key, double **data, EvNpyHeader *h) {
    *data = NULL;
    EvNpyStream *s;
    KT_TRY(stream_open(&s, npz, key));
    size_t item = kt_dtype_size(s->h.dtype);
    uint64_t numel = s->h.data_bytes / item;
    KtStatus st = KT_OK;
    double *out = numel <= SIZE_MAX / sizeof *out ? malloc(numel ? (size_t)numel * sizeof *out : 1) : NULL;
    uint8_t *tmp = malloc(CHUNK);
    if (!out || !tmp)
        st = KT_FAIL(KT_ERR_OOM, "%s: out of memory reading %llu values", s->what, (unsigned long long)numel);
    for (uint64_t i = 0; i < numel && st == KT_OK;) {
        size_t k = numel - i < CHUNK / item ? (size_t)(numel - i) : CHUNK / item;
        st = kt_zip_reader_read(s->r, tmp, k * item);  // the last chunk checks the CRC-32
        if (st != KT_OK) break;
        if (s->swap) swap_bytes(tmp, k, item);
        to_f64(out + i, tmp, s->h.dtype, k);
        i += k;
    }
    if (st == KT_OK && h) *h = s->h;
    free(tmp);
    ev_npy_stream_close(s);
    if (st != KT_OK) free(out);
    else *data = out;
    return st;
}

// ------------------------------------------------------------------------------------------------------ writing

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define DOS_DATE 0x0021u           // 1980-01-01 (time 00:00): the earliest date zip can hold, so output is reproducible
#define MADE_BY_UNIX 0x0300u       // so that external attributes are read as Unix permissions
#define MAX_KEY 250
#define LOCAL_HEADER_MAX (30 + MAX_KEY + 4 + 20)

typedef struct {
    char *name;       // owned: "<key>.npy"
    uint64_t offset;  // of the local header
    uint64_t size;    // header + data bytes
    uint32_t crc;
    bool zip64;       // the local header carries the ZIP64 sizes
} WEntry;

struct EvNpzWriter {
    char *path, *tmp;
    FILE *f;
    uint64_t off;          // bytes written so far
    WEntry *entries;
    int n, cap;
    bool force_zip64;
    bool failed;           // a write failed: close fails and removes the temporary file
    bool in_member;        // entries[n - 1] is begun but not ended
    uint64_t want, got;    // its data bytes: declared, written
};

static void put16(uint8_t **p, unsigned v) { (*p)[0] = (uint8_t)v, (*p)[1] = (uint8_t)(v >> 8), *p += 2; }
static void put32(uint8_t **p, uint32_t v) { put16(p, v & 0xFFFF), put16(p, v >> 16); }
static void put64(uint8_t **p, uint64_t v) { put32(p, (uint32_t)v), put32(p, (uint32_t)(v >> 32)); }
static uint32_t sat32(uint64_t v, bool force) { return force || v >= 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)v; }

static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint64_t n) {
    for (uint64_t k; n; p += k, n -= k) {
        k = n > (1u << 30) ? (1u << 30) : n;
        crc = (uint32_t)crc32(crc, p, (uInt)k);
    }
    return crc;
}

static KtStatus wr(EvNpzWriter *w, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->failed = true;
        return KT_FAIL(KT_ERR_IO, "%s: writing the temporary file %s failed: %s", w->path, w->tmp, strerror(errno));
    }
    w->off += n;
    return KT_OK;
}

// Local header: sizes and CRC are final only once the member has ended (it is then rewritten in place).
static size_t local_header(uint8_t *buf, const WEntry *e) {
    uint8_t *p = buf;
    size_t nl = strlen(e->name);
    put32(&p, SIG_LOCAL), put16(&p, e->zip64 ? 45 : 20), put16(&p, 0), put16(&p, 0);  // flags, stored
    put16(&p, 0), put16(&p, DOS_DATE), put32(&p, e->crc);
    put32(&p, sat32(e->size, e->zip64)), put32(&p, sat32(e->size, e->zip64));
    put16(&p, (unsigned)nl), put16(&p, e->zip64 ? 20 : 0);
    memcpy(p, e->name, nl), p += nl;
    if (e->zip64) put16(&p, 1), put16(&p, 16), put64(&p, e->size), put64(&p, e->size);  // usize, csize
    return (size_t)(p - buf);
}

KtStatus ev_npz_writer_open(EvNpzWriter **out, const char *path) {
    *out = NULL;
    if (!path || !path[0]) return KT_FAIL(KT_ERR_ARG, "ev_npz_writer_open: empty path");
    EvNpzWriter *w = calloc(1, sizeof *w);
    size_t tl = strlen(path) + 32;
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(tl))) {
        if (w) free(w->path);
        free(w);
        return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
    }
    snprintf(w->tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        KtStatus s = KT_FAIL(KT_ERR_IO, "%s: cannot create the temporary file %s: %s%s", path, w->tmp,
                             strerror(errno), errno == EEXIST ? " (left by a crashed run? remove it)" : "");
        if (fd >= 0) close(fd), unlink(w->tmp);
        free(w->tmp), free(w->path), free(w);
        return s;
    }
    setvbuf(w->f, NULL, _IOFBF, 1u << 20);
    *out = w;
    return KT_OK;
}

void ev_npz_writer_force_zip64(EvNpzWriter *w, bool on) {
    if (w) w->force_zip64 = on;
}

static KtStatus check_member(const EvNpzWriter *w, const char *key, KtDType dtype, int ndim, const int64_t *shape,
                             uint64_t *bytes) {
    if (w->failed) return KT_FAIL(KT_ERR_IO, "%s: an earlier write failed; abort the writer", w->path);
    if (w->in_member)
        return KT_FAIL(KT_ERR_ARG, "%s: array '%s' is still being written (call ev_npz_writer_end first)", w->path,
                       w->entries[w->n - 1].name);
    size_t kl = key ? strlen(key) : 0;
    bool ok = kl > 0 && kl <= MAX_KEY;
    for (size_t i = 0; ok && i < kl; i++) ok = key[i] >= 0x20 && key[i] < 0x7f;
    if (!ok)
        return KT_FAIL(KT_ERR_ARG, "%s: invalid array key (expected 1..%d printable ASCII characters)", w->path,
                       MAX_KEY);
    for (int i = 0; i < w->n; i++)
        if (!strncmp(w->entries[i].name, key, kl) && !strcmp(w->entries[i].name + kl, ".npy"))
            return KT_FAIL(KT_ERR_ARG, "%s: array '%s' was already written", w->path, key);
    if (ndim < 0 || ndim > EV_NPY_MAX_DIMS || (ndim > 0 && !shape))
        return KT_FAIL(KT_ERR_ARG, "%s: array '%s': ndim %d, expected 0..%d with a shape", w->path, key, ndim,
                       EV_NPY_MAX_DIMS);
    uint64_t b = kt_dtype_size(dtype);
    bool empty = false;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || (shape[d] > 0 && b > (uint64_t)INT64_MAX / (uint64_t)shape[d]))
            return KT_FAIL(KT_ERR_ARG, "%s: array '%s': dim %d is %lld (negative, or the size overflows)", w->path,
                           key, d, (long long)shape[d]);
        if (shape[d] == 0) empty = true;
        else b *= (uint64_t)shape[d];
    }
    *bytes = empty ? 0 : b;
    return KT_OK;
}

KtStatus ev_npz_writer_begin(EvNpzWriter *w, const char *key, KtDType dtype, int ndim, const int64_t *shape) {
    uint64_t bytes;
    KT_TRY(check_member(w, key, dtype, ndim, shape, &bytes));
    uint8_t hdr[512], loc[LOCAL_HEADER_MAX];
    size_t hl;
    KtStatus s = ev_npy_format_header(hdr, sizeof hdr, &hl, dtype, ndim, shape);
    if (s != KT_OK) {
        kt_error_prefix("%s: array '%s'", w->path, key);
        return s;
    }
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 8;
        WEntry *e = realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", w->path);
        w->entries = e, w->cap = cap;
    }
    WEntry *e = &w->entries[w->n];
    size_t nl = strlen(key) + 5;
    if (!(e->name = malloc(nl))) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", w->path);
    snprintf(e->name, nl, "%s.npy", key);
    e->offset = w->off;
    e->size = hl + bytes;
    e->zip64 = w->force_zip64 || e->size >= 0xFFFFFFFFu;
    e->crc = 0;  // placeholder until ev_npz_writer_end
    w->n++;
    KT_TRY(wr(w, loc, local_header(loc, e)));
    KT_TRY(wr(w, hdr, hl));
    e->crc = crc_update(0, hdr, hl);
    w->in_member = true;
    w->want = bytes;
    w->got = 0;
    return KT_OK;
}

KtStatus ev_npz_writer_write(EvNpzWriter *w, const void *bytes, size_t n) {
    if (!w->in_member) return KT_FAIL(KT_ERR_ARG, "%s: no array is open (call ev_npz_writer_begin)", w->path);
    WEntry *e = &w->entries[w->n - 1];
    if (n > w->want - w->got)
        return KT_FAIL(KT_ERR_ARG, "%s: array '%s': writing %zu bytes after %llu exceeds its declared %llu data "
                       "bytes", w->path, e->name, n, (unsigned long long)w->got, (unsigned long long)w->want);
    if (n && !bytes) return KT_FAIL(KT_ERR_ARG, "%s: array '%s': NULL data", w->path, e->name);
    KT_TRY(wr(w, bytes, n));
    e->crc = crc_update(e->crc, bytes, n);
    w->got += n;
    return KT_OK;
}

KtStatus ev_npz_writer_end(EvNpzWriter *w) {
    if (!w->in_member) return KT_FAIL(KT_ERR_ARG, "%s: no array is open (call ev_npz_writer_begin)", w->path);
    WEntry *e = &w->entries[w->n - 1];
    if (w->got != w->want)
        return KT_FAIL(KT_ERR_ARG, "%s: array '%s': %llu data bytes written, its shape needs %llu", w->path, e->name,
                       (unsigned long long)w->got, (unsigned long long)w->want);
    if (w->failed) return KT_FAIL(KT_ERR_IO, "%s: an earlier write failed; abort the writer", w->path);
    uint8_t loc[LOCAL_HEADER_MAX];
    size_t n = local_header(loc, e);  // now with the CRC
    if (fflush(w->f) != 0 || pwrite(fileno(w->f), loc, n, (off_t)e->offset) != (ssize_t)n) {
        w->failed = true;
        return KT_FAIL(KT_ERR_IO, "%s: patching the header of '%s' in %s failed: %s", w->path, e->name, w->tmp,
                       strerror(errno));
    }
    w->in_member = false;
    return KT_OK;
}

KtStatus ev_npz_writer_add(EvNpzWriter *w, const char *key, KtDType dtype, int ndim, const int64_t *shape,
                           const void *data) {
    uint64_t bytes;
    KT_TRY(check_member(w, key, dtype, ndim, shape, &bytes));
    if (bytes && !data) return KT_FAIL(KT_ERR_ARG, "%s: array '%s': NULL data", w->path, key);
    if (bytes > SIZE_MAX) return KT_FAIL(KT_ERR_ARG, "%s: array '%s' is too large", w->path, key);
    KT_TRY(ev_npz_writer_begin(w, key, dtype, ndim, shape));
    KT_TRY(ev_npz_writer_write(w, data, (size_t)bytes));
    return ev_npz_writer_end(w);
}

// Central directory, ZIP64 end records when needed (or forced), end-of-central-directory record.
static KtStatus write_directory(EvNpzWriter *w) {
    bool force = w->force_zip64;
    uint64_t cd_off = w->off;
    for (int i = 0; i < w->n; i++) {
        const WEntry *e = &w->entries[i];
        uint8_t buf[46 + MAX_KEY + 4 + 28], *p = buf;
        bool sz64 = force || e->size >= 0xFFFFFFFFu, off64 = force || e->offset >= 0xFFFFFFFFu;
        unsigned need = e->zip64 || sz64 || off64 ? 45 : 20, xl = (sz64 || off64) ? 4 + 16 * sz64 + 8 * off64 : 0;
        size_t nl = strlen(e->name);
        put32(&p, SIG_CENTRAL), put16(&p, MADE_BY_UNIX | need), put16(&p, need), put16(&p, 0), put16(&p, 0);
        put16(&p, 0), put16(&p, DOS_DATE), put32(&p, e->crc);
        put32(&p, sat32(e->size, sz64)), put32(&p, sat32(e->size, sz64));
        put16(&p, (unsigned)nl), put16(&p, xl), put16(&p, 0), put16(&p, 0), put16(&p, 0);  // comment, disk, attr
        put32(&p, 0644u << 16), put32(&p, sat32(e->offset, off64));
        memcpy(p, e->name, nl), p += nl;
        if (xl) {  // only the saturated fields, in the order usize, csize, offset
            put16(&p, 1), put16(&p, xl - 4);
            if (sz64) put64(&p, e->size), put64(&p, e->size);
            if (off64) put64(&p, e->offset);
        }
        KT_TRY(wr(w, buf, (size_t)(p - buf)));
    }
    uint64_t cd_size = w->off - cd_off, n = (uint64_t)w->n;
    uint8_t buf[56 + 20 + 22], *p = buf;
    if (force || n >= 0xFFFF || cd_size >= 0xFFFFFFFFu || cd_off >= 0xFFFFFFFFu) {
        uint64_t rec = w->off;
        put32(&p, SIG_EOCD64), put64(&p, 44), put16(&p, MADE_BY_UNIX | 45), put16(&p, 45), put32(&p, 0);
        put32(&p, 0), put64(&p, n), put64(&p, n), put64(&p, cd_size), put64(&p, cd_off);
        put32(&p, SIG_EOCD64_LOC), put32(&p, 0), put64(&p, rec), put32(&p, 1);
    }
    unsigned n16 = force || n >= 0xFFFF ? 0xFFFF : (unsigned)n;
    put32(&p, SIG_EOCD), put16(&p, 0), put16(&p, 0), put16(&p, n16), put16(&p, n16);
    put32(&p, sat32(cd_size, force)), put32(&p, sat32(cd_off, force)), put16(&p, 0);
    return wr(w, buf, (size_t)(p - buf));
}

// Best effort: makes the rename durable; some filesystems refuse to fsync a directory.
static void fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) fsync(fd), close(fd);
    free(dir);
}

static void writer_free(EvNpzWriter *w) {
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    free(w->entries);
    free(w->tmp);
    free(w->path);
    free(w);
}

KtStatus ev_npz_writer_close(EvNpzWriter *w) {
    if (!w) return KT_FAIL(KT_ERR_ARG, "ev_npz_writer_close: NULL writer");
    KtStatus s = KT_OK;
    if (w->failed) s = KT_FAIL(KT_ERR_IO, "%s: an earlier write failed; nothing was written", w->path);
    else if (w->in_member)
        s = KT_FAIL(KT_ERR_ARG, "%s: array '%s' was begun but not ended; nothing was written", w->path,
                    w->entries[w->n - 1].name);
    if (s == KT_OK) s = write_directory(w);
    if (s == KT_OK && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        s = KT_FAIL(KT_ERR_IO, "%s: flushing %s failed: %s", w->path, w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && s == KT_OK)
        s = KT_FAIL(KT_ERR_IO, "%s: closing %s failed: %s", w->path, w->tmp, strerror(errno));
    if (s == KT_OK && rename(w->tmp, w->path) != 0)
        s = KT_FAIL(KT_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(errno));
    if (s == KT_OK) fsync_dir(w->path);
    else unlink(w->tmp);
    writer_free(w);
    return s;
}

void ev_npz_writer_abort(EvNpzWriter *w) {
    if (!w) return;
    fclose(w->f);
    unlink(w->tmp);
    writer_free(w);
}
