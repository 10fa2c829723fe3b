// safetensors reader: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {...}},
// then the data; offsets are relative to the end of the header. Every offset is checked against the file, every
// span against dtype size x numel, and spans may not overlap. A minimal JSON reader (no recursion beyond a depth cap)
// lives here because the header is the only JSON we parse.
// ref: https://github.com/huggingface/safetensors (README "Format")
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"

#define JSON_MAX_DEPTH 64

typedef struct {
    const KtCheckpoint *ck;
    const char *p, *end, *begin;
} Js;

static KtStatus js_bad(const Js *j, const char *what) {
    return KT_FAIL(KT_ERR_FORMAT, "%s: safetensors header byte %lld: %s (corrupt header)", j->ck->path,
                   (long long)(j->p - j->begin), what);
}

static void js_ws(Js *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static KtStatus js_expect(Js *j, char c) {
    js_ws(j);
    if (j->p >= j->end || *j->p != c) {
        char msg[32] = "expected ' '";
        msg[10] = c;
        return js_bad(j, msg);
    }
    j->p++;
    return KT_OK;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static KtStatus js_hex4(Js *j, unsigned *v) {
    if (j->end - j->p < 4) return js_bad(j, "truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0) return js_bad(j, "bad \\u escape");
        *v = *v << 4 | (unsigned)h;
    }
    j->p += 4;
    return KT_OK;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// A JSON string, decoded into a malloc'd buffer (*out, *len) unless out is NULL (skip).
static KtStatus js_string(Js *j, char **out, size_t *len) {
    KT_TRY(js_expect(j, '"'));
    const char *s = j->p;
    while (j->p < j->end && *j->p != '"') j->p += (*j->p == '\\' && j->end - j->p > 1) ? 2 : 1;
    if (j->p >= j->end) return js_bad(j, "unterminated string");
    const char *e = j->p++;
    if (!out) return KT_OK;
    // escapes never make the text longer (\uXXXX: 6 chars -> at most 3 bytes; a pair: 12 -> 4)
    char *o = malloc((size_t)(e - s) + 1);
    if (!o) return KT_FAIL(KT_ERR_OOM, "%s: out of memory reading the header", j->ck->path);
    size_t k = 0;
    Js sub = *j;
    sub.p = s;
    sub.end = e;
    KtStatus st = KT_OK;
    while (sub.p < e && st == KT_OK) {
        unsigned char c = (unsigned char)*sub.p++;
        if (c < 0x20) st = js_bad(&sub, "control character in a string");
        else if (c != '\\') o[k++] = (char)c;
        else {
            char x = *sub.p++;
            unsigned cp, lo;
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            const char *hit = x ? strchr(from, x) : NULL;
            if (hit) o[k++] = to[hit - from];
            else if (x != 'u') st = js_bad(&sub, "bad escape in a string");
            else if ((st = js_hex4(&sub, &cp)) == KT_OK) {
                if (cp >= 0xDC00 && cp < 0xE000) st = js_bad(&sub, "unpaired surrogate");
                else if (cp >= 0xD800 && cp < 0xDC00) {
                    if (e - sub.p < 6 || sub.p[0] != '\\' || sub.p[1] != 'u') st = js_bad(&sub, "unpaired surrogate");
                    else if ((sub.p += 2, st = js_hex4(&sub, &lo)) == KT_OK) {
                        if (lo < 0xDC00 || lo >= 0xE000) st = js_bad(&sub, "unpaired surrogate");
                        else cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                }
                if (st == KT_OK) k += utf8_put(o + k, cp);
            }
        }
    }
    if (st != KT_OK) {
        free(o);
        return st;
    }
    o[k] = 0;
    *out = o;
    *len = k;
    return KT_OK;
}

static KtStatus js_uint(Js *j, int64_t *v) {
    js_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return js_bad(j, "expected a non-negative integer");
    int64_t x = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (INT64_MAX - 9) / 10) return js_bad(j, "integer too large");
        x = x * 10 + (*j->p++ - '0');
    }
    *v = x;
    return KT_OK;
}

// Skips any JSON value (depth-capped).
static KtStatus js_skip(Js *j, int depth) {
    if (depth > JSON_MAX_DEPTH) return js_bad(j, "nested too deeply");
    js_ws(j);
    if (j->p >= j->end) return js_bad(j, "truncated value");
    char c = *j->p;
    if (c == '"') return js_string(j, NULL, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->end && *j->p == close) return j->p++, KT_OK;
        for (;;) {
            if (c == '{') {
                KT_TRY(js_string(j, NULL, NULL));
                KT_TRY(js_expect(j, ':'));
            }
            KT_TRY(js_skip(j, depth + 1));
            js_ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            return js_expect(j, close);
        }
    }
    const char *s = j->p;  // number, true, false, null
    while (j->p < j->end && *j->p && (strchr("+-.", *j->p) || isalnum((unsigned char)*j->p))) j->p++;
    return j->p > s ? KT_OK : js_bad(j, "unexpected character");
}

static KtStatus js_uint_array(Js *j, int64_t *v, int cap, int *n, const char *what) {
    KT_TRY(js_expect(j, '['));
    *n = 0;
    js_ws(j);
    if (j->p < j->end && *j->p == ']') return j->p++, KT_OK;
    for (;;) {
        if (*n == cap) return js_bad(j, what);
        KT_TRY(js_uint(j, &v[(*n)++]));
        js_ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        return js_expect(j, ']');
    }
}

static KtStatus dtype_from_name(const KtCheckpoint *ck, const char *tensor, const char *s, KtDType *dt) {
    static const struct { const char *name; KtDType dt; } map[] = {
        {"F32", KT_F32}, {"F16", KT_F16}, {"BF16", KT_BF16}, {"F64", KT_F64},
        {"I64", KT_I64}, {"I32", KT_I32}, {"U8", KT_U8}, {"BOOL", KT_U8},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i].name, s)) return *dt = map[i].dt, KT_OK;
    char shown[17];
    size_t k = 0;
    for (; s[k] && k < 16; k++) shown[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    shown[k] = 0;
    return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype '%s'; supported: F32, F16, BF16, F64, I64, I32, "
                   "U8, BOOL", ck->path, tensor, shown);
}

// One tensor entry {"dtype": .., "shape": [..], "data_offsets": [b, e]} (other fields are skipped).
static KtStatus read_entry(Js *j, KtCkptTensor *t, int64_t off[2]) {
    KT_TRY(js_expect(j, '{'));
    bool have_dt = false, have_shape = false, have_off = false;
    js_ws(j);
    if (j->p < j->end && *j->p == '}') return js_bad(j, "empty tensor entry");
    for (;;) {
        char *key = NULL;
        size_t klen = 0;
        KT_TRY(js_string(j, &key, &klen));
        KtStatus s = js_expect(j, ':');
        if (s == KT_OK && !strcmp(key, "dtype")) {
            char *dt = NULL;
            size_t n;
            if ((s = js_string(j, &dt, &n)) == KT_OK) s = dtype_from_name(j->ck, t->name, dt, &t->dtype);
            free(dt);
            have_dt = true;
        } else if (s == KT_OK && !strcmp(key, "shape")) {
            s = js_uint_array(j, t->shape, KT_MAX_DIMS, &t->ndim, "too many dims in a shape");
            have_shape = true;
        } else if (s == KT_OK && !strcmp(key, "data_offsets")) {
            int n = 0;
            s = js_uint_array(j, off, 2, &n, "data_offsets has more than 2 values");
            if (s == KT_OK && n != 2) s = js_bad(j, "data_offsets needs 2 values");
            have_off = true;
        } else if (s == KT_OK) {
            s = js_skip(j, 1);
        }
        free(key);
        KT_TRY(s);
        js_ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        KT_TRY(js_expect(j, '}'));
        break;
    }
    if (!have_dt || !have_shape || !have_off)
        return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' lacks %s in the safetensors header", j->ck->path, t->name,
                       !have_dt ? "\"dtype\"" : !have_shape ? "\"shape\"" : "\"data_offsets\"");
    return KT_OK;
}

static int cmp_by_begin(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1];
}

// Every span [b, e) lies in the data section, matches numel x dtype size, and no two overlap.
static KtStatus check_spans(KtCheckpoint *ck, int64_t (*off)[3], uint64_t data_size) {
    char sh[160];
    for (int i = 0; i < ck->n_tensors; i++) {
        KtCkptTensor *t = &ck->tensors[i];
        int64_t b = off[i][0], e = off[i][1], numel = 1;
        if (b > e || (uint64_t)e > data_size)
            return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' has data_offsets [%lld, %lld] but the data section has %llu "
                           "bytes (truncated file?)", ck->path, t->name, (long long)b, (long long)e,
                           (unsigned long long)data_size);
        bool ovf = false;
        for (int k = 0; k < t->ndim; k++) ovf |= __builtin_mul_overflow(numel, t->shape[k], &numel);
        int64_t need;
        if (ovf || __builtin_mul_overflow(numel, (int64_t)kt_dtype_size(t->dtype), &need) || need != e - b)
            return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' is %s %s (%s%lld bytes) but its data_offsets span %lld "
                           "bytes", ck->path, t->name, kt_dtype_name(t->dtype),
                           ckpt_dims_str(t->shape, t->ndim, sh, sizeof sh), ovf ? "> " : "",
                           ovf ? (long long)INT64_MAX : (long long)need, (long long)(e - b));
        t->storage += b;
        t->storage_numel = numel;
        int64_t st = 1;
        for (int k = t->ndim - 1; k >= 0; k--) t->stride[k] = st, st *= t->shape[k];
        off[i][2] = i;
    }
    if (ck->n_tensors) qsort(off, (size_t)ck->n_tensors, sizeof *off, cmp_by_begin);
    for (int i = 1; i < ck->n_tensors; i++)
        if (off[i][0] < off[i - 1][1])
            return KT_FAIL(KT_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section ([%lld, %lld] and "
                           "[%lld, %lld])", ck->path, ck->tensors[off[i - 1][2]].name, ck->tensors[off[i][2]].name,
                           (long long)off[i - 1][0], (long long)off[i - 1][1], (long long)off[i][0],
                           (long long)off[i][1]);
    return KT_OK;
}

static KtStatus read_header(KtCheckpoint *ck, Js *j, const uint8_t *data_start, int64_t (**offs)[3]) {
    int cap = 0;
    KT_TRY(js_expect(j, '{'));
    js_ws(j);
    if (j->p < j->end && *j->p == '}') return j->p++, KT_OK;
    for (;;) {
        char *name = NULL;
        size_t len = 0;
        KT_TRY(js_string(j, &name, &len));
        KtStatus s = js_expect(j, ':');
        if (s == KT_OK && !strcmp(name, "__metadata__")) {
            js_ws(j);
            const char *m0 = j->p;
            if ((s = js_skip(j, 1)) == KT_OK && !ck->metadata_json) {
                ck->metadata_json = malloc((size_t)(j->p - m0) + 1);
                if (!ck->metadata_json) s = KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
                else memcpy(ck->metadata_json, m0, (size_t)(j->p - m0)), ck->metadata_json[j->p - m0] = 0;
            }
        } else if (s == KT_OK) {
            KtCkptTensor *t = NULL;
            if (ck->n_tensors == cap) {
                cap = cap ? 2 * cap : 64;
                int64_t(*o)[3] = realloc(*offs, (size_t)cap * sizeof *o);
                if (!o) s = KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
                else *offs = o;
            }
            if (s == KT_OK) s = ckpt_add_tensor(ck, (const uint8_t *)name, len, &t);
            if (s == KT_OK) {
                t->storage = data_start;
                s = read_entry(j, t, (*offs)[ck->n_tensors - 1]);
            }
        }
        free(name);
        KT_TRY(s);
        js_ws(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        return js_expect(j, '}');
    }
}

KtStatus ckpt_read_safetensors(KtCheckpoint *ck, const uint8_t *data, size_t size) {
    if (size < 8) return KT_FAIL(KT_ERR_FORMAT, "%s: truncated: %zu bytes, too short for a safetensors header",
                                 ck->path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (hlen > size - 8)
        return KT_FAIL(KT_ERR_FORMAT, "%s: safetensors header length is %llu bytes, but only %zu bytes follow it "
                       "(truncated file, or not a safetensors file)", ck->path, (unsigned long long)hlen, size - 8);
    Js j = {ck, (const char *)data + 8, (const char *)data + 8 + hlen, (const char *)data + 8};
    int64_t(*offs)[3] = NULL;
    KtStatus s = read_header(ck, &j, data + 8 + hlen, &offs);
    if (s == KT_OK) {
        js_ws(&j);  // the writer pads the header with spaces
        if (j.p != j.end) s = js_bad(&j, "trailing bytes after the header object");
    }
    if (s == KT_OK) s = check_spans(ck, offs, size - 8 - hlen);
    free(offs);
    return s;
}

// ------------------------------------------------------------------------------------------------- metadata
KtStatus kt_ckpt_meta_get(const KtCheckpoint *ck, const char *key, char **value) {
    *value = NULL;
    if (!ck->metadata_json) return KT_OK;
    Js j = {ck, ck->metadata_json, ck->metadata_json + strlen(ck->metadata_json), ck->metadata_json};
    KT_TRY(js_expect(&j, '{'));
    js_ws(&j);
    if (j.p < j.end && *j.p == '}') return KT_OK;
    for (;;) {
        char *name = NULL;
        size_t len = 0;
        KT_TRY(js_string(&j, &name, &len));
        bool hit = !strcmp(name, key);
        free(name);
        KT_TRY(js_expect(&j, ':'));
        js_ws(&j);
        if (hit) {
            if (j.p >= j.end || *j.p != '"')
                return KT_FAIL(KT_ERR_FORMAT, "%s: metadata '%s' is not a string", ck->path, key);
            return js_string(&j, value, &len);
        }
        KT_TRY(js_skip(&j, 1));
        js_ws(&j);
        if (j.p < j.end && *j.p == ',') { j.p++; continue; }
        return js_expect(&j, '}');
    }
}

KtStatus kt_ckpt_meta_ints(const KtCheckpoint *ck, const char *key, int *v, int cap, int *n, bool *found) {
    char *s = NULL;
    *found = false;
    *n = 0;
    KT_TRY(kt_ckpt_meta_get(ck, key, &s));
    if (!s) return KT_OK;
    KtStatus st = KT_OK;
    const char *p = s;
    while (st == KT_OK) {
        char *e;
        long x = strtol(p, &e, 10);
        if (e == p || x < INT32_MIN || x > INT32_MAX || *n == cap)
            st = KT_FAIL(KT_ERR_FORMAT, "%s: metadata '%s' = '%.60s': expected at most %d comma-separated integers",
                         ck->path, key, s, cap);
        else v[(*n)++] = (int)x;
        if (st == KT_OK && *e == 0) break;
        if (st == KT_OK && *e != ',')
            st = KT_FAIL(KT_ERR_FORMAT, "%s: metadata '%s' = '%.60s': expected comma-separated integers", ck->path,
                         key, s);
        p = e + 1;
    }
    free(s);
    *found = st == KT_OK;
    return st;
}

KtStatus kt_ckpt_meta_int(const KtCheckpoint *ck, const char *key, int lo, int hi, int *v, bool *found) {
    int x = 0, n = 0;
    KT_TRY(kt_ckpt_meta_ints(ck, key, &x, 1, &n, found));
    if (*found && (x < lo || x > hi))
        return *found = false, KT_FAIL(KT_ERR_FORMAT, "%s: metadata '%s' = %d: expected %d to %d", ck->path, key, x,
                                       lo, hi);
    if (*found) *v = x;
    return KT_OK;
}

KtStatus kt_ckpt_meta_float(const KtCheckpoint *ck, const char *key, float *v, bool *found) {
    char *s = NULL;
    *found = false;
    KT_TRY(kt_ckpt_meta_get(ck, key, &s));
    if (!s) return KT_OK;
    char *e;
    double x = strtod(s, &e);
    KtStatus st = (e == s || *e || !isfinite(x) || fabs(x) > 3e38)
                      ? KT_FAIL(KT_ERR_FORMAT, "%s: metadata '%s' = '%.60s': expected a finite number", ck->path, key, s)
                      : KT_OK;
    free(s);
    if (st == KT_OK) *v = (float)x, *found = true;
    return st;
}
