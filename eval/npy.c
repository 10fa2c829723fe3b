// .npy headers (spec/fid.md 3.4): parsing the Python dict literal of every numpy format version (1.0, 2.0, 3.0;
// keys in any order, Python-2 'L' suffixes, either quote) and writing numpy's own v1.0 layout.
// ref: numpy/lib/format.py (read_magic, _read_array_header, _write_array_header)
#include "eval/npz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/input_file.h"

#define NPY_MAGIC "\x93NUMPY"

static const struct {
    char kind[3];
    KtDType dtype;
} k_kinds[] = {{"u1", KT_U8}, {"f4", KT_F32}, {"f8", KT_F64}, {"i4", KT_I32}, {"i8", KT_I64}};

static bool host_big_endian(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 0;
}

// Header text for messages: printable ASCII only, cut at cap - 4 bytes.
static const char *shown(char *buf, size_t cap, const char *s, size_t n) {
    size_t m = 0, i = 0;
    for (; i < n && m + 4 < cap; i++) buf[m++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    if (i < n) memcpy(buf + m, "...", 3), m += 3;
    buf[m] = 0;
    return buf;
}

static const char *shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t m = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && m < cap; d++)
        m += (size_t)snprintf(buf + m, cap - m, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (m < cap) snprintf(buf + m, cap - m, ndim == 1 ? ",)" : ")");
    return buf;
}

KtStatus ev_npy_header_size(const uint8_t *data, size_t size, uint64_t member_size, uint64_t *header_bytes,
                            const char *name) {
    *header_bytes = 0;
    if (size < 6 || memcmp(data, NPY_MAGIC, 6) != 0) {
        char hex[40] = "";
        for (size_t i = 0, m = 0; i < size && i < 8; i++)
            m += (size_t)snprintf(hex + m, sizeof hex - m, " %02x", data[i]);
        return KT_FAIL(KT_ERR_FORMAT, "%s: not a .npy array: expected the magic 93 4e 55 4d 50 59 (\\x93NUMPY), "
                       "found%s", name, size ? hex : " nothing (empty member)");
    }
    if (size < 10)
        return KT_FAIL(KT_ERR_FORMAT, "%s: truncated .npy header (%zu bytes, expected at least 10)", name, size);
    unsigned major = data[6], minor = data[7];
    if (major < 1 || major > 3 || minor != 0)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: .npy format version %u.%u is not supported (expected 1.0, 2.0 or "
                       "3.0)", name, major, minor);
    uint64_t total;
    if (major == 1) {
        total = 10 + (uint64_t)(data[8] | data[9] << 8);
    } else {
        if (size < 12)
            return KT_FAIL(KT_ERR_FORMAT, "%s: truncated .npy v%u.0 header (%zu bytes, expected at least 12)", name,
                           major, size);
        total = 12 + ((uint64_t)data[8] | (uint64_t)data[9] << 8 | (uint64_t)data[10] << 16 |
                      (uint64_t)data[11] << 24);
    }
    if (total > member_size)
        return KT_FAIL(KT_ERR_FORMAT, "%s: .npy header length runs past the end: the header claims %llu bytes, the "
                       "member has %llu", name, (unsigned long long)total, (unsigned long long)member_size);
    *header_bytes = total;
    return KT_OK;
}

// ------------------------------------------------------------------------------------ the header's dict literal

typedef struct {
    const char *s;     // header text, not NUL-terminated
    size_t n, i;
    const char *name;  // for messages
} Lex;

static void skip_ws(Lex *lx) {
    while (lx->i < lx->n && (lx->s[lx->i] == ' ' || lx->s[lx->i] == '\t' || lx->s[lx->i] == '\n' ||
                             lx->s[lx->i] == '\r'))
        lx->i++;
}

static int peek(Lex *lx) {
    skip_ws(lx);
    return lx->i < lx->n ? (unsigned char)lx->s[lx->i] : -1;
}

static KtStatus bad(const Lex *lx, const char *what) {
    char buf[160];
    return KT_FAIL(KT_ERR_FORMAT, "%s: malformed .npy header: %s at byte %zu of \"%s\"", lx->name, what, lx->i,
                   shown(buf, sizeof buf, lx->s, lx->n));
}

static KtStatus expect(Lex *lx, char c, const char *what) {
    if (peek(lx) != (unsigned char)c) return bad(lx, what);
    lx->i++;
    return KT_OK;
}

// A Python string literal without escapes, '...' or "...", into out[cap].
static KtStatus parse_str(Lex *lx, char *out, size_t cap) {
    int q = peek(lx);
    if (q != '\'' && q != '"') return bad(lx, "expected a quoted string");
    size_t start = ++lx->i;
    while (lx->i < lx->n && lx->s[lx->i] != q) {
        if (lx->s[lx->i] == '\\' || (unsigned char)lx->s[lx->i] < 0x20) return bad(lx, "unsupported string character");
        lx->i++;
    }
    if (lx->i >= lx->n) return bad(lx, "unterminated string");
    size_t len = lx->i - start;
    if (len >= cap) return bad(lx, "string too long");
    memcpy(out, lx->s + start, len);
    out[len] = 0;
    lx->i++;
    return KT_OK;
}

static KtStatus parse_bool(Lex *lx, bool *v) {
    peek(lx);
    if (lx->n - lx->i >= 4 && !memcmp(lx->s + lx->i, "True", 4)) *v = true, lx->i += 4;
    else if (lx->n - lx->i >= 5 && !memcmp(lx->s + lx->i, "False", 5)) *v = false, lx->i += 5;
    else return bad(lx, "expected True or False");
    return KT_OK;
}

// A tuple of non-negative integers: (), (5,), (3, 4), (3L, 4L).
static KtStatus parse_shape(Lex *lx, EvNpyHeader *h) {
    KT_TRY(expect(lx, '(', "expected '(' starting the shape tuple"));
    int n = 0;
    bool comma = false;
    for (;;) {
        int c = peek(lx);
        if (c == ')') break;
        if (n > 0 && !comma) return bad(lx, "expected ',' or ')' in the shape");
        if (c < '0' || c > '9') return bad(lx, "expected a dimension (a non-negative integer) in the shape");
        int64_t v = 0;
        for (; lx->i < lx->n && lx->s[lx->i] >= '0' && lx->s[lx->i] <= '9'; lx->i++) {
            int d = lx->s[lx->i] - '0';
            if (v > (INT64_MAX - d) / 10) return bad(lx, "dimension larger than 2^63");
            v = v * 10 + d;
        }
        if (lx->i < lx->n && (lx->s[lx->i] == 'L' || lx->s[lx->i] == 'l')) lx->i++;  // Python 2 long
        if (n == EV_NPY_MAX_DIMS)
            return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: .npy arrays with more than %d dimensions are not supported",
                           lx->name, EV_NPY_MAX_DIMS);
        h->shape[n++] = v;
        comma = peek(lx) == ',';
        if (comma) lx->i++;
    }
    lx->i++;
    if (n == 1 && !comma) return bad(lx, "a one-element shape needs a trailing comma, as in (5,)");
    h->ndim = n;
    return KT_OK;
}

static KtStatus parse_dict(Lex *lx, EvNpyHeader *h, char *descr, size_t cap, bool *fortran) {
    bool seen[3] = {false, false, false};
    static const char *const keys[3] = {"descr", "fortran_order", "shape"};
    KT_TRY(expect(lx, '{', "expected '{'"));
    while (peek(lx) != '}') {
        char key[32];
        KT_TRY(parse_str(lx, key, sizeof key));
        int k = 0;
        while (k < 3 && strcmp(key, keys[k])) k++;
        if (k == 3 || seen[k])
            return bad(lx, k == 3 ? "unknown key (expected descr, fortran_order, shape)" : "repeated key");
        seen[k] = true;
        KT_TRY(expect(lx, ':', "expected ':' after a key"));
        if (k == 0 && (peek(lx) == '[' || peek(lx) == '{'))
            return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: structured dtypes (a descr list or dict) are not supported "
                           "(expected one of |u1 <f4 <f8 <i4 <i8)", lx->name);
        KT_TRY(k == 0 ? parse_str(lx, descr, cap) : k == 1 ? parse_bool(lx, fortran) : parse_shape(lx, h));
        if (peek(lx) == ',') lx->i++;
        else if (peek(lx) != '}') return bad(lx, "expected ',' or '}' after a value");
    }
    lx->i++;
    if (peek(lx) != -1) return bad(lx, "unexpected text after the closing '}'");
    for (int k = 0; k < 3; k++)
        if (!seen[k]) return KT_FAIL(KT_ERR_FORMAT, "%s: .npy header lacks the '%s' key", lx->name, keys[k]);
    return KT_OK;
}

// descr -> dtype and byte order: '|u1' (any order mark), '<f4' '<f8' '<i4' '<i8', '>' big-endian, '=' native.
static KtStatus resolve_dtype(EvNpyHeader *h, const char *descr, const char *name) {
    size_t len = strlen(descr);
    for (size_t k = 0; len == 3 && k < sizeof k_kinds / sizeof k_kinds[0]; k++) {
        char order = descr[0];
        if (strcmp(descr + 1, k_kinds[k].kind) || !strchr("<>=|", order)) continue;
        if (order == '|' && k_kinds[k].dtype != KT_U8) break;  // a multi-byte type needs a byte order
        h->dtype = k_kinds[k].dtype;
        h->big_endian = k_kinds[k].dtype != KT_U8 && (order == '>' || (order == '=' && host_big_endian()));
        return KT_OK;
    }
    char buf[40];
    return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: dtype '%s' is not supported (expected one of |u1 <f4 <f8 <i4 <i8, with "
                   "'>' or '=' byte order also accepted)", name, shown(buf, sizeof buf, descr, len));
}

KtStatus ev_npy_parse_header(EvNpyHeader *h, const uint8_t *data, size_t size, const char *name) {
    memset(h, 0, sizeof *h);
    uint64_t total;
    KT_TRY(ev_npy_header_size(data, size, size, &total, name));
    size_t off = data[6] == 1 ? 10 : 12;
    Lex lx = {(const char *)data + off, (size_t)total - off, 0, name};
    char descr[32];
    bool fortran = false;
    KT_TRY(parse_dict(&lx, h, descr, sizeof descr, &fortran));
    KT_TRY(resolve_dtype(h, descr, name));
    char sb[200];
    if (fortran && h->ndim >= 2)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: fortran_order=True (column-major) arrays are not supported (shape "
                       "%s); save a C-ordered copy, e.g. np.ascontiguousarray(a)", name,
                       shape_str(sb, sizeof sb, h->ndim, h->shape));
    // prod(shape) * itemsize must fit in int64 (zero dims aside), so every row/byte offset does too
    uint64_t bytes = kt_dtype_size(h->dtype);
    bool empty = false;
    for (int d = 0; d < h->ndim; d++) {
        uint64_t n = (uint64_t)h->shape[d];
        if (n == 0) empty = true;
        else if (bytes > (uint64_t)INT64_MAX / n)
            return KT_FAIL(KT_ERR_FORMAT, "%s: .npy shape %s %s overflows: the shape product is more than 2^63 bytes "
                           "(corrupt header)", name, shape_str(sb, sizeof sb, h->ndim, h->shape), descr);
        else bytes *= n;
    }
    h->header_bytes = total;
    h->data_bytes = empty ? 0 : bytes;
    return KT_OK;
}

// --------------------------------------------------------------------------------------- standalone files
KtStatus ev_npy_view(EvNpyHeader *h, const uint8_t **data, const uint8_t *bytes, size_t size, const char *name) {
    *data = NULL;
    KT_TRY(ev_npy_parse_header(h, bytes, size, name));
    uint64_t have = (uint64_t)size - h->header_bytes;
    if (have != h->data_bytes)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the header's shape needs %llu bytes of data, the file has %llu after its "
                       "header (%s)", name, (unsigned long long)h->data_bytes, (unsigned long long)have,
                       have < h->data_bytes ? "truncated" : "trailing bytes");
    *data = bytes + h->header_bytes;
    return KT_OK;
}

KtStatus ev_npy_file_open(EvNpyFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd;
    struct stat sb;
    KT_TRY(kt_open_input(path, &fd, &sb));
    KtStatus st = KT_OK;
    if (sb.st_size == 0) st = KT_FAIL(KT_ERR_FORMAT, "%s: empty file, expected a .npy array", path);
    if (st == KT_OK) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            st = KT_FAIL(KT_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size, strerror(errno));
        else f->map = m, f->map_size = (size_t)sb.st_size;
    }
    close(fd);
    if (st == KT_OK) st = ev_npy_view(&f->h, &f->data, f->map, f->map_size, path);
    if (st != KT_OK) ev_npy_file_close(f);
    return st;
}

void ev_npy_file_close(EvNpyFile *f) {
    if (f->map) munmap(f->map, f->map_size);
    memset(f, 0, sizeof *f);
}

// ------------------------------------------------------------------------------------------------------ writing

static const char *descr_of(KtDType t) {
    switch (t) {
    case KT_U8: return "|u1";
    case KT_F32: return "<f4";
    case KT_F64: return "<f8";
    case KT_I32: return "<i4";
    case KT_I64: return "<i8";
    default: return NULL;
    }
}

KtStatus ev_npy_format_header(uint8_t *buf, size_t cap, size_t *len, KtDType dtype, int ndim, const int64_t *shape) {
    *len = 0;
    const char *descr = descr_of(dtype);
    if (!descr)
        return KT_FAIL(KT_ERR_UNSUPPORTED, ".npy writer: dtype %s is not supported (uint8, float32, float64, int32, "
                       "int64 are)", kt_dtype_name(dtype));
    if (ndim < 0 || ndim > EV_NPY_MAX_DIMS || (ndim > 0 && !shape))
        return KT_FAIL(KT_ERR_ARG, ".npy writer: ndim %d (expected 0..%d with a shape)", ndim, EV_NPY_MAX_DIMS);
    if (cap < 256 + 24 * (size_t)ndim)
        return KT_FAIL(KT_ERR_ARG, ".npy writer: header buffer of %zu bytes, expected at least %zu", cap,
                       256 + 24 * (size_t)ndim);
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) return KT_FAIL(KT_ERR_ARG, ".npy writer: dim %d is %lld", d, (long long)shape[d]);
    char sb[EV_NPY_MAX_DIMS * 24 + 8];
    char text[EV_NPY_MAX_DIMS * 24 + 80];
    int tl = snprintf(text, sizeof text, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr,
                      shape_str(sb, sizeof sb, ndim, shape));
    // numpy's rule: pad with spaces and end with '\n' so that the data starts at a multiple of 64; version 2.0
    // (32-bit length) only when the text would not fit a 16-bit length, which 8 dims never reach
    size_t pre = 10, hlen = (size_t)tl + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    if (hlen > 65535) {
        pre = 12;
        hlen = (size_t)tl + 1 + (64 - (pre + (size_t)tl + 1) % 64) % 64;
    }
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = pre == 10 ? 1 : 2;
    buf[7] = 0;
    for (size_t k = 0; k < pre - 8; k++) buf[8 + k] = (uint8_t)(hlen >> (8 * k));
    memcpy(buf + pre, text, (size_t)tl);
    memset(buf + pre + tl, ' ', hlen - (size_t)tl - 1);
    buf[pre + hlen - 1] = '\n';
    *len = pre + hlen;
    return KT_OK;
}
