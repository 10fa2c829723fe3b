// Bounds-checked ZIP reader (see zip.h). ZIP64 matters: official VAR checkpoints (var_d30.pth) are ~8 GB, so
// member offsets and sizes beyond 4 GiB come from ZIP64 extra fields and the ZIP64 end-of-central-directory record.
// ref: PKWARE APPNOTE.TXT 6.3.x
#include "zip.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOC 0x07064b50u
#define EOCD_SIZE 22
#define EOCD64_SIZE 56
#define EOCD64_LOC_SIZE 20
#define CENTRAL_SIZE 46
#define LOCAL_SIZE 30
// deflate cannot expand data by more than ~1032:1; a larger claimed ratio is a hostile or corrupt header
#define MAX_INFLATE_RATIO 1032u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

// true when [off, off+len) lies inside [0, size)
static bool in_range(uint64_t off, uint64_t len, size_t size) { return off <= size && len <= size - off; }

bool kt_zip_sniff(const uint8_t *data, size_t size) {
    return size >= 4 && (rd32(data) == SIG_LOCAL || (rd32(data) == SIG_EOCD && size >= EOCD_SIZE));
}

// Finds the end-of-central-directory record: the last signature whose comment ends inside the file.
static KtStatus find_eocd(const KtZip *z, uint64_t *eocd) {
    if (z->size < EOCD_SIZE)
        return KT_FAIL(KT_ERR_FORMAT, "%s: truncated: the zip directory is missing (%zu bytes is too short for a zip)",
                       z->name, z->size);
    size_t lo = z->size > EOCD_SIZE + 0xFFFF ? z->size - EOCD_SIZE - 0xFFFF : 0;
    for (size_t i = z->size - EOCD_SIZE + 1; i-- > lo;) {
        const uint8_t *p = z->data + i;
        if (rd32(p) == SIG_EOCD && in_range(i + EOCD_SIZE, rd16(p + 20), z->size)) {
            *eocd = i;
            return KT_OK;
        }
    }
    return KT_FAIL(KT_ERR_FORMAT, "%s: truncated: the zip directory is missing (no end-of-central-directory record "
                   "in the last 64 KiB); an interrupted download or copy? fetch the file again", z->name);
}

// Directory location and entry count, from the EOCD record or, when it says so, the ZIP64 one.
static KtStatus read_directory_location(const KtZip *z, uint64_t eocd, uint64_t *cd_off, uint64_t *cd_size,
                                        uint64_t *count) {
    const uint8_t *p = z->data + eocd;
    *count = rd16(p + 10);
    *cd_size = rd32(p + 12);
    *cd_off = rd32(p + 16);
    bool need64 = *count == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu;
    bool has_loc = eocd >= EOCD64_LOC_SIZE && rd32(z->data + eocd - EOCD64_LOC_SIZE) == SIG_EOCD64_LOC;
    if (need64 && !has_loc)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the zip directory needs a ZIP64 record, but its locator is missing "
                       "(truncated or corrupt file)", z->name);
    if (has_loc) {
        uint64_t off64 = rd64(z->data + eocd - EOCD64_LOC_SIZE + 8);
        if (!in_range(off64, EOCD64_SIZE, z->size) || off64 > eocd - EOCD64_LOC_SIZE)
            return KT_FAIL(KT_ERR_FORMAT, "%s: ZIP64 end-of-directory record at offset %llu lies outside the file "
                           "(%zu bytes; truncated?)", z->name, (unsigned long long)off64, z->size);
        const uint8_t *q = z->data + off64;
        if (rd32(q) != SIG_EOCD64)
            return KT_FAIL(KT_ERR_FORMAT, "%s: ZIP64 end-of-directory record at offset %llu has a bad signature "
                           "0x%08x (expected 0x%08x)", z->name, (unsigned long long)off64, rd32(q), SIG_EOCD64);
        *count = rd64(q + 32);
        *cd_size = rd64(q + 40);
        *cd_off = rd64(q + 48);
    }
    if (!in_range(*cd_off, *cd_size, z->size))
        return KT_FAIL(KT_ERR_FORMAT, "%s: truncated: the zip directory (%llu bytes at offset %llu) extends past the "
                       "end of the file (%zu bytes)", z->name, (unsigned long long)*cd_size,
                       (unsigned long long)*cd_off, z->size);
    if (*count > *cd_size / CENTRAL_SIZE || *count > INT_MAX)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip directory claims %llu entries but has room for at most %llu",
                       z->name, (unsigned long long)*count, (unsigned long long)(*cd_size / CENTRAL_SIZE));
    return KT_OK;
}

// Replaces 0xFFFFFFFF sizes/offset with the values of the ZIP64 extended-information extra field (id 0x0001),
// whose fields appear only for the header fields that are saturated, in this order.
static KtStatus apply_zip64_extra(const KtZip *z, const uint8_t *extra, size_t len, uint32_t raw_size,
                                  uint32_t raw_comp, uint32_t raw_off, KtZipEntry *e, uint64_t *local_off) {
    size_t i = 0;
    while (len - i >= 4) {
        uint16_t id = rd16(extra + i), n = rd16(extra + i + 2);
        if (n > len - i - 4) break;  // a malformed trailing field; the sizes below are checked anyway
        if (id == 0x0001) {
            const uint8_t *f = extra + i + 4;
            size_t left = n;
            uint64_t *dst[3] = {&e->size, &e->comp_size, local_off};
            uint32_t raw[3] = {raw_size, raw_comp, raw_off};
            for (int k = 0; k < 3; k++) {
                if (raw[k] != 0xFFFFFFFFu) continue;
                if (left < 8)
                    return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s': ZIP64 extra field is too short (%u bytes)",
                                   z->name, e->name, (unsigned)n);
                *dst[k] = rd64(f);
                f += 8;
                left -= 8;
            }
            return KT_OK;
        }
        i += 4 + (size_t)n;
    }
    if (raw_size == 0xFFFFFFFFu || raw_comp == 0xFFFFFFFFu || raw_off == 0xFFFFFFFFu)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' needs a ZIP64 extra field, but it is missing", z->name,
                       e->name);
    return KT_OK;
}

// Parses one central-directory entry at *pos (advancing it) and validates its local header.
static KtStatus read_entry(const KtZip *z, uint64_t *pos, uint64_t cd_end, KtZipEntry *e) {
    if (!in_range(*pos, CENTRAL_SIZE, cd_end) || rd32(z->data + *pos) != SIG_CENTRAL)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip directory entry at offset %llu is corrupt (bad signature or cut "
                       "short)", z->name, (unsigned long long)*pos);
    const uint8_t *p = z->data + *pos;
    uint16_t flags = rd16(p + 8), name_len = rd16(p + 28), extra_len = rd16(p + 30), comment_len = rd16(p + 32);
    uint64_t total = (uint64_t)CENTRAL_SIZE + name_len + extra_len + comment_len;
    if (!in_range(*pos, total, cd_end))
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip directory entry at offset %llu runs past the directory", z->name,
                       (unsigned long long)*pos);
    const uint8_t *nm = p + CENTRAL_SIZE;
    for (size_t i = 0; i < name_len; i++)  // names end up in messages: no terminal control bytes
        if (nm[i] < 0x20 || nm[i] == 0x7f)
            return KT_FAIL(KT_ERR_FORMAT, "%s: zip member name at offset %llu contains control byte 0x%02x",
                           z->name, (unsigned long long)*pos, nm[i]);
    e->name = malloc((size_t)name_len + 1);
    if (!e->name) return KT_FAIL(KT_ERR_OOM, "%s: out of memory reading the zip directory", z->name);
    memcpy(e->name, nm, name_len);
    e->name[name_len] = 0;
    e->method = rd16(p + 10);
    e->crc32 = rd32(p + 16);
    uint32_t raw_comp = rd32(p + 20), raw_size = rd32(p + 24), raw_off = rd32(p + 42);
    e->comp_size = raw_comp;
    e->size = raw_size;
    uint64_t local = raw_off;
    KT_TRY(apply_zip64_extra(z, nm + name_len, extra_len, raw_size, raw_comp, raw_off, e, &local));
    *pos += total;
    if (flags & 1)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' is encrypted", z->name, e->name);
    if (!in_range(local, LOCAL_SIZE, z->size) || rd32(z->data + local) != SIG_LOCAL)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s': local header at offset %llu is %s", z->name, e->name,
                       (unsigned long long)local, in_range(local, LOCAL_SIZE, z->size) ? "corrupt (bad signature)"
                                                                                       : "past the end of the file");
    const uint8_t *l = z->data + local;
    e->data_offset = local + LOCAL_SIZE + rd16(l + 26) + rd16(l + 28);
    if (!in_range(e->data_offset, e->comp_size, z->size))
        return KT_FAIL(KT_ERR_FORMAT, "%s: truncated: zip member '%s' needs %llu bytes at offset %llu, file has %zu",
                       z->name, e->name, (unsigned long long)e->comp_size, (unsigned long long)e->data_offset,
                       z->size);
    if (e->method == 0 && e->comp_size != e->size)
        return KT_FAIL(KT_ERR_FORMAT, "%s: stored zip member '%s' has size %llu but compressed size %llu", z->name,
                       e->name, (unsigned long long)e->size, (unsigned long long)e->comp_size);
    return KT_OK;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp((*(const KtZipEntry *const *)a)->name, (*(const KtZipEntry *const *)b)->name);
}

KtStatus kt_zip_open(KtZip *z, const uint8_t *data, size_t size, const char *name) {
    memset(z, 0, sizeof *z);
    z->data = data;
    z->size = size;
    z->name = strdup(name ? name : "<zip>");
    if (!z->name) return KT_FAIL(KT_ERR_OOM, "out of memory opening a zip archive");
    KtStatus s;
    uint64_t eocd = 0, cd_off = 0, cd_size = 0, count = 0;
    if ((s = find_eocd(z, &eocd)) != KT_OK) goto fail;
    if ((s = read_directory_location(z, eocd, &cd_off, &cd_size, &count)) != KT_OK) goto fail;
    z->entries = calloc(count ? count : 1, sizeof *z->entries);
    z->by_name = calloc(count ? count : 1, sizeof *z->by_name);
    if (!z->entries || !z->by_name) {
        s = KT_FAIL(KT_ERR_OOM, "%s: out of memory reading %llu zip entries", z->name, (unsigned long long)count);
        goto fail;
    }
    uint64_t pos = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        z->n_entries = (int)i + 1;  // so kt_zip_free releases the name of a half-read entry
        if ((s = read_entry(z, &pos, cd_off + cd_size, &z->entries[i])) != KT_OK) goto fail;
        z->by_name[i] = &z->entries[i];
    }
    z->n_entries = (int)count;
    qsort(z->by_name, count, sizeof *z->by_name, cmp_entry_name);
    return KT_OK;
fail:
    kt_zip_free(z);
    return s;
}

void kt_zip_free(KtZip *z) {
    if (!z) return;
    if (z->entries)
        for (int i = 0; i < z->n_entries; i++) free(z->entries[i].name);
    free(z->entries);
    free(z->by_name);
    free(z->name);
    memset(z, 0, sizeof *z);
}

const KtZipEntry *kt_zip_find(const KtZip *z, const char *name) {
    size_t lo = 0, hi = (size_t)(z->n_entries > 0 ? z->n_entries : 0);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->by_name[mid]->name, name);
        if (c == 0) return z->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static uint32_t crc32_big(const uint8_t *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt chunk = n > UINT_MAX ? UINT_MAX : (uInt)n;
        c = crc32(c, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)c;
}

// Raw-deflate decode of exactly e->size bytes (zlib's counters are 32-bit, so feed it in chunks).
static KtStatus inflate_member(const KtZip *z, const KtZipEntry *e, uint8_t *out) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK)
        return KT_FAIL(KT_ERR_OOM, "%s: zlib could not start inflating '%s'", z->name, e->name);
    const uint8_t *in = z->data + e->data_offset;
    uint64_t in_left = e->comp_size, out_left = e->size;
    zs.next_out = out;  // zlib rejects a NULL next_out even when avail_out is 0 (empty members)
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (zs.avail_in == 0 && in_left) {
            zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            zs.next_in = (Bytef *)(uintptr_t)in;  // zlib does not write through next_in
            in += zs.avail_in;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
            zs.next_out = out;
            out += zs.avail_out;
            out_left -= zs.avail_out;
        }
        uInt before_in = zs.avail_in, before_out = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR || (rc == Z_OK && before_in == zs.avail_in && before_out == zs.avail_out)) break;
    }
    uint64_t produced = e->size - out_left - zs.avail_out;  // zs.total_out may be 32-bit
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || produced != e->size)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' does not inflate to its declared %llu bytes (%s after "
                       "%llu bytes)", z->name, e->name, (unsigned long long)e->size,
                       rc == Z_STREAM_END ? "stream ended" : rc == Z_DATA_ERROR ? "corrupt deflate data"
                                                                               : "compressed data ran out",
                       (unsigned long long)produced);
    return KT_OK;
}

KtStatus kt_zip_member_data(const KtZip *z, const KtZipEntry *e, const uint8_t **data, size_t *size, void **owned) {
    *data = NULL;
    *size = 0;
    *owned = NULL;
    if (e->method == 0) {
        *data = z->data + e->data_offset;
        *size = (size_t)e->size;
        return KT_OK;
    }
    if (e->method != 8)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' uses compression method %u; only stored (0) and deflate "
                       "(8) are supported", z->name, e->name, (unsigned)e->method);
    if (e->size > (uint64_t)e->comp_size * MAX_INFLATE_RATIO + 1024 || e->size > SIZE_MAX / 2)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' claims %llu bytes from %llu compressed bytes, more than "
                       "deflate can produce (corrupt directory)", z->name, e->name, (unsigned long long)e->size,
                       (unsigned long long)e->comp_size);
    uint8_t *buf = malloc(e->size ? (size_t)e->size : 1);
    if (!buf)
        return KT_FAIL(KT_ERR_OOM, "%s: out of memory inflating zip member '%s' (%llu bytes)", z->name, e->name,
                       (unsigned long long)e->size);
    KtStatus s = inflate_member(z, e, buf);
    if (s == KT_OK && crc32_big(buf, (size_t)e->size) != e->crc32)
        s = KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' fails its CRC-32 check (corrupt file)", z->name, e->name);
    if (s != KT_OK) {
        free(buf);
        return s;
    }
    *data = buf;
    *size = (size_t)e->size;
    *owned = buf;
    return KT_OK;
}

// ------------------------------------------------------------------------------------------- streaming reader

#define READER_WINDOW (64u << 10)  // inflated bytes held at once: bounds the memory of a deflated stream

struct KtZipReader {
    const KtZip *z;          // borrowed
    const KtZipEntry *e;     // borrowed: an entry of z
    uint64_t pos;            // uncompressed bytes delivered or skipped
    uint32_t crc;            // of bytes [0, pos) while crc_on
    bool crc_on;             // false once a stored member was entered by a seek past bytes never read
    bool finished;           // the end was reached and checked
    bool broken;             // an earlier error: no further reads
    z_stream zs;             // deflate only, from here on
    bool zs_live, ended;     // inflateInit2 done; inflate returned Z_STREAM_END
    uint64_t in_used;        // compressed bytes handed to zlib
    uint64_t produced;       // uncompressed bytes zlib returned
    uint8_t *buf;            // READER_WINDOW bytes; [buf_pos, buf_len) inflated but not yet delivered
    size_t buf_pos, buf_len;
};

KtStatus kt_zip_reader_open(KtZipReader **out, const KtZip *z, const KtZipEntry *e) {
    *out = NULL;
    if (e->method != 0 && e->method != 8)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' uses compression method %u; only stored (0) and deflate "
                       "(8) are supported", z->name, e->name, (unsigned)e->method);
    if (e->method == 8 && e->size > (uint64_t)e->comp_size * MAX_INFLATE_RATIO + 1024)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' claims %llu bytes from %llu compressed bytes, more than "
                       "deflate can produce (corrupt directory)", z->name, e->name, (unsigned long long)e->size,
                       (unsigned long long)e->comp_size);
    KtZipReader *r = calloc(1, sizeof *r);
    if (!r) return KT_FAIL(KT_ERR_OOM, "%s: out of memory opening zip member '%s'", z->name, e->name);
    r->z = z;
    r->e = e;
    r->crc_on = true;
    if (e->method == 8) {
        r->buf = malloc(READER_WINDOW);
        if (!r->buf || inflateInit2(&r->zs, -MAX_WBITS) != Z_OK) {
            kt_zip_reader_free(r);
            return KT_FAIL(KT_ERR_OOM, "%s: zlib could not start inflating '%s'", z->name, e->name);
        }
        r->zs_live = true;
    }
    *out = r;
    return KT_OK;
}

void kt_zip_reader_free(KtZipReader *r) {
    if (!r) return;
    if (r->zs_live) inflateEnd(&r->zs);
    free(r->buf);
    free(r);
}

// Refills the window with the next inflated bytes; buf_len is 0 only when the deflate stream has ended.
static KtStatus reader_inflate(KtZipReader *r) {
    const KtZip *z = r->z;
    const KtZipEntry *e = r->e;
    r->zs.next_out = r->buf;
    r->zs.avail_out = READER_WINDOW;
    while (r->zs.avail_out == READER_WINDOW && !r->ended) {
        if (r->zs.avail_in == 0 && r->in_used < e->comp_size) {
            uint64_t left = e->comp_size - r->in_used;
            r->zs.avail_in = left > (1u << 30) ? (1u << 30) : (uInt)left;  // zlib's counters are 32-bit
            r->zs.next_in = (Bytef *)(uintptr_t)(z->data + e->data_offset + r->in_used);  // never written
            r->in_used += r->zs.avail_in;
        }
        int rc = inflate(&r->zs, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) r->ended = true;
        else if (rc == Z_MEM_ERROR)
            return KT_FAIL(KT_ERR_OOM, "%s: zlib ran out of memory inflating '%s'", z->name, e->name);
        else if (rc == Z_BUF_ERROR)  // no progress possible: every compressed byte has been consumed
            return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' is cut short: its %llu compressed bytes end after "
                           "%llu of the declared %llu bytes", z->name, e->name, (unsigned long long)e->comp_size,
                           (unsigned long long)(r->produced + READER_WINDOW - r->zs.avail_out),
                           (unsigned long long)e->size);
        else if (rc != Z_OK)
            return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' has corrupt deflate data near uncompressed byte %llu "
                           "(zlib: %s)", z->name, e->name, (unsigned long long)r->produced,
                           r->zs.msg ? r->zs.msg : "error");
    }
    r->buf_pos = 0;
    r->buf_len = READER_WINDOW - r->zs.avail_out;
    r->produced += r->buf_len;
    if (r->produced > e->size)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' inflates to more than its declared %llu bytes (corrupt "
                       "directory)", z->name, e->name, (unsigned long long)e->size);
    return KT_OK;
}

// At the end: a deflate stream must end exactly here, and the CRC-32 must match the directory's.
static KtStatus reader_finish(KtZipReader *r) {
    while (r->zs_live && !r->ended) KT_TRY(reader_inflate(r));  // any further output fails produced <= size
    if (r->crc_on && r->crc != r->e->crc32)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' fails its CRC-32 check: computed 0x%08x, the directory "
                       "says 0x%08x (corrupt file)", r->z->name, r->e->name, r->crc, r->e->crc32);
    r->finished = true;
    return KT_OK;
}

static KtStatus reader_read(KtZipReader *r, uint8_t *dst, uint64_t n) {
    const KtZipEntry *e = r->e;
    while (n) {
        const uint8_t *src;
        size_t k;
        if (e->method == 0) {
            src = r->z->data + e->data_offset + r->pos;
            k = n > (1u << 30) ? (1u << 30) : (size_t)n;
        } else {
            if (r->buf_pos == r->buf_len) {
                if (r->ended)
                    return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s' inflates to only %llu bytes, the directory "
                                   "says %llu (corrupt file)", r->z->name, e->name, (unsigned long long)r->produced,
                                   (unsigned long long)e->size);
                KT_TRY(reader_inflate(r));
                continue;
            }
            src = r->buf + r->buf_pos;
            k = r->buf_len - r->buf_pos < n ? r->buf_len - r->buf_pos : (size_t)n;
            r->buf_pos += k;
        }
        if (r->crc_on) r->crc = (uint32_t)crc32(r->crc, src, (uInt)k);
        if (dst) {
            memcpy(dst, src, k);
            dst += k;
        }
        r->pos += k;
        n -= k;
    }
    return r->pos == e->size && !r->finished ? reader_finish(r) : KT_OK;
}

KtStatus kt_zip_reader_read(KtZipReader *r, void *dst, uint64_t n) {
    if (r->broken)
        return KT_FAIL(KT_ERR_FORMAT, "%s: zip member '%s': reading stopped at an earlier error", r->z->name,
                       r->e->name);
    if (n > r->e->size - r->pos)
        return KT_FAIL(KT_ERR_ARG, "%s: zip member '%s': read of %llu bytes at offset %llu runs past its %llu bytes",
                       r->z->name, r->e->name, (unsigned long long)n, (unsigned long long)r->pos,
                       (unsigned long long)r->e->size);
    KtStatus s = reader_read(r, dst, n);
    if (s != KT_OK) r->broken = true;
    return s;
}

KtStatus kt_zip_reader_seek(KtZipReader *r, uint64_t pos) {
    if (pos > r->e->size)
        return KT_FAIL(KT_ERR_ARG, "%s: zip member '%s': seek to %llu is past its %llu bytes", r->z->name,
                       r->e->name, (unsigned long long)pos, (unsigned long long)r->e->size);
    if (pos == r->pos) return KT_OK;
    r->finished = false;
    if (r->e->method == 0) {  // O(1); the skipped bytes are never read, so only a pass from 0 is CRC-checked
        r->pos = pos;
        r->crc = 0;
        r->crc_on = pos == 0;
        return KT_OK;
    }
    if (pos < r->pos) {  // deflate cannot go back: restart from the first compressed byte
        if (inflateReset(&r->zs) != Z_OK)
            return KT_FAIL(KT_ERR_OOM, "%s: zlib could not restart inflating '%s'", r->z->name, r->e->name);
        r->zs.avail_in = 0;
        r->in_used = r->produced = r->pos = 0;
        r->buf_pos = r->buf_len = 0;
        r->ended = r->broken = false;
        r->crc = 0;
        r->crc_on = true;
    }
    return kt_zip_reader_read(r, NULL, pos - r->pos);
}
