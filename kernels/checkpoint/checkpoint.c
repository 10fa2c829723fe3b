// Checkpoint API (see kernels/checkpoint.h): maps the file read-only, detects the format from its first bytes,
// dispatches to the safetensors / torch zip / torch legacy readers, and converts tensors (strided views of a
// storage, any supported dtype) to contiguous float32 or int64. Also recognises the usual wrong files (an HTML
// page, a Git LFS pointer, an empty file) and says how to get the real one.
#include "ckpt_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/input_file.h"
#include "zip.h"

// Largest element count a tensor may have: numel * 8 bytes (the int64 output) must not overflow.
#define CKPT_MAX_NUMEL (INT64_MAX / 8)

const char *kt_ckpt_format_name(KtCkptFormat f) {
    switch (f) {
    case KT_CKPT_SAFETENSORS: return "safetensors";
    case KT_CKPT_TORCH_ZIP: return "PyTorch zip (torch >= 1.6)";
    case KT_CKPT_TORCH_LEGACY: return "PyTorch legacy (torch < 1.6)";
    }
    return "unknown";
}

KtStatus ckpt_keep(KtCheckpoint *ck, void *p) {
    void **o = realloc(ck->owned, (size_t)(ck->n_owned + 1) * sizeof *o);
    if (!o) {
        free(p);
        return KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
    }
    ck->owned = o;
    ck->owned[ck->n_owned++] = p;
    return KT_OK;
}

KtStatus ckpt_add_tensor(KtCheckpoint *ck, const uint8_t *name, size_t len, KtCkptTensor **out) {
    for (size_t i = 0; i < len; i++)  // names end up in messages: no NUL or terminal control bytes
        if (name[i] < 0x20 || name[i] == 0x7f)
            return KT_FAIL(KT_ERR_FORMAT, "%s: tensor name #%d contains control byte 0x%02x", ck->path,
                           ck->n_tensors + 1, name[i]);
    int n = ck->n_tensors;
    if ((n & (n - 1)) == 0) {  // grow at powers of two
        if (n >= (1 << 28)) return KT_FAIL(KT_ERR_FORMAT, "%s: more than %d tensors", ck->path, 1 << 28);
        KtCkptTensor *t = realloc(ck->tensors, (size_t)(n ? 2 * n : 1) * sizeof *t);
        if (!t) return KT_FAIL(KT_ERR_OOM, "%s: out of memory listing tensors", ck->path);
        ck->tensors = t;
    }
    KtCkptTensor *t = &ck->tensors[n];
    memset(t, 0, sizeof *t);
    t->name = malloc(len + 1);
    if (!t->name) return KT_FAIL(KT_ERR_OOM, "%s: out of memory listing tensors", ck->path);
    memcpy(t->name, name, len);
    t->name[len] = 0;
    ck->n_tensors = n + 1;
    *out = t;
    return KT_OK;
}

const char *ckpt_dims_str(const int64_t *d, int n, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)d[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
    return buf;
}

KtStatus ckpt_check_tensor(const KtCheckpoint *ck, const KtCkptTensor *t) {
    char sh[160], st[160];
    if (t->ndim < 0 || t->ndim > KT_MAX_DIMS)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: tensor '%s' has %d dims; at most %d are supported", ck->path,
                       t->name, t->ndim, KT_MAX_DIMS);
    if (kt_dtype_size(t->dtype) == 0)
        return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' has an invalid dtype", ck->path, t->name);
    int64_t numel = 1, last = t->storage_offset;
    bool bad = t->storage_offset < 0 || t->storage_numel < 0;
    for (int i = 0; i < t->ndim; i++) {
        bad |= t->shape[i] < 0 || t->stride[i] < 0;
        if (bad) break;
        if (t->shape[i] == 0) numel = 0;
        else if (numel && __builtin_mul_overflow(numel, t->shape[i], &numel)) bad = true;
    }
    if (bad || numel > CKPT_MAX_NUMEL)
        return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' has an invalid shape %s / stride %s / offset %lld", ck->path,
                       t->name, ckpt_dims_str(t->shape, t->ndim, sh, sizeof sh),
                       ckpt_dims_str(t->stride, t->ndim, st, sizeof st), (long long)t->storage_offset);
    if (numel == 0) return KT_OK;  // nothing is read
    for (int i = 0; i < t->ndim && !bad; i++) {
        int64_t span;
        bad = __builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &span) || __builtin_add_overflow(last, span, &last);
    }
    if (bad || last >= t->storage_numel)
        return KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' (shape %s, stride %s, offset %lld) reaches element %s%lld of a "
                       "storage with %lld elements (corrupt file)", ck->path, t->name,
                       ckpt_dims_str(t->shape, t->ndim, sh, sizeof sh),
                       ckpt_dims_str(t->stride, t->ndim, st, sizeof st),
                       (long long)t->storage_offset, bad ? "> " : "", bad ? (long long)INT64_MAX : (long long)last,
                       (long long)t->storage_numel);
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------- detection

static bool starts_with_ci(const uint8_t *p, size_t n, const char *s) {
    size_t k = strlen(s);
    if (n < k) return false;
    for (size_t i = 0; i < k; i++)
        if (tolower(p[i]) != s[i]) return false;
    return true;
}

static bool looks_like_html(const uint8_t *d, size_t n) {
    size_t i = 0;
    if (n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF) i = 3;  // UTF-8 BOM
    while (i < n && isspace(d[i])) i++;
    if (i >= n || d[i] != '<') return false;
    if (starts_with_ci(d + i, n - i, "<!doctype html") || starts_with_ci(d + i, n - i, "<html")) return true;
    size_t lim = n - i < 4096 ? n - i : 4096;  // "<?xml ...><html" or a comment first
    for (size_t k = 0; k + 5 <= lim; k++)
        if (starts_with_ci(d + i + k, lim - k, "<html")) return true;
    return false;
}

static KtStatus unknown_format(const KtCheckpoint *ck, const uint8_t *d, size_t n) {
    char hex[64], txt[20];
    size_t k = 0, m = n < 16 ? n : 16;
    for (size_t i = 0; i < m; i++) k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", i ? " " : "", d[i]);
    for (size_t i = 0; i < m; i++) txt[i] = (d[i] >= 0x20 && d[i] < 0x7f) ? (char)d[i] : '.';
    txt[m] = 0;
    return KT_FAIL(KT_ERR_FORMAT, "%s: unknown file format (first bytes: %s \"%s\"); expected a .safetensors file or "
                   "a PyTorch .pth/.pt checkpoint", ck->path, hex, txt);
}

static KtStatus read_any_format(KtCheckpoint *ck, const uint8_t *d, size_t n, const KtCkptOpenParams *params) {
    static const char lfs[] = "version https://git-lfs.github.com/spec/";
    if (n == 0)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the file is empty (0 bytes): an interrupted download? fetch it again",
                       ck->path);
    // safetensors first: its u64 header length may begin with any byte (0x80 or "PK" included), but byte 8 is
    // '{', which neither a zip (compression method) nor a legacy file (magic number) has there
    if (n >= 9 && d[8] == '{') {
        ck->format = KT_CKPT_SAFETENSORS;
        return ckpt_read_safetensors(ck, d, n);
    }
    if (kt_zip_sniff(d, n)) {
        ck->format = KT_CKPT_TORCH_ZIP;
        return ckpt_read_torch_zip(ck, d, n, params);
    }
    if (d[0] == 0x80) {  // pickle PROTO: the legacy layout starts with a pickled magic number
        ck->format = KT_CKPT_TORCH_LEGACY;
        return ckpt_read_torch_legacy(ck, d, n, params);
    }
    if (n >= sizeof lfs - 1 && !memcmp(d, lfs, sizeof lfs - 1))
        return KT_FAIL(KT_ERR_FORMAT, "%s is a Git LFS pointer (%zu bytes), not the weights: run `git lfs pull` in "
                       "its repository, or download the file itself", ck->path, n);
    if (looks_like_html(d, n))
        return KT_FAIL(KT_ERR_FORMAT, "%s is an HTML page, not a checkpoint (a failed download? fetch the file "
                       "itself, not its web page)", ck->path);
    return unknown_format(ck, d, n);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const KtCkptTensor *const *)a)->name, (*(const KtCkptTensor *const *)b)->name);
}

static KtStatus check_unique_names(const KtCheckpoint *ck) {
    if (ck->n_tensors < 2) return KT_OK;
    const KtCkptTensor **v = malloc((size_t)ck->n_tensors * sizeof *v);
    if (!v) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
    for (int i = 0; i < ck->n_tensors; i++) v[i] = &ck->tensors[i];
    qsort(v, (size_t)ck->n_tensors, sizeof *v, cmp_tensor_name);
    KtStatus s = KT_OK;
    for (int i = 1; i < ck->n_tensors && s == KT_OK; i++)
        if (!strcmp(v[i - 1]->name, v[i]->name))
            s = KT_FAIL(KT_ERR_FORMAT, "%s: tensor '%s' appears twice", ck->path, v[i]->name);
    free(v);
    return s;
}

static KtStatus open_bytes(KtCheckpoint *ck, const uint8_t *d, size_t n, const KtCkptOpenParams *params) {
    KtStatus s = read_any_format(ck, d, n, params);
    for (int i = 0; i < ck->n_tensors && s == KT_OK; i++) s = ckpt_check_tensor(ck, &ck->tensors[i]);
    if (s == KT_OK) s = check_unique_names(ck);
    return s;
}

// --------------------------------------------------------------------------------------------------- open/close

KtStatus kt_ckpt_open(KtCheckpoint *ck, const char *path) { return kt_ckpt_open_params(ck, path, NULL); }

KtStatus kt_ckpt_open_params(KtCheckpoint *ck, const char *path, const KtCkptOpenParams *params) {
    memset(ck, 0, sizeof *ck);
    if (!path) return KT_FAIL(KT_ERR_ARG, "kt_ckpt_open: path is NULL");
    ck->path = strdup(path);
    if (!ck->path) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
    int fd;
    struct stat sb;
    KtStatus s = kt_open_input(path, &fd, &sb);
    if (s != KT_OK) goto done;
    ck->map_size = (size_t)sb.st_size;
    if (ck->map_size) {
        void *m = mmap(NULL, ck->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            s = KT_FAIL(KT_ERR_IO, "%s: cannot map %zu bytes: %s", path, ck->map_size, strerror(errno));
            ck->map_size = 0;
            goto done;
        }
        ck->map = m;
        ck->map_is_mmap = 1;
    }
    s = open_bytes(ck, ck->map, ck->map_size, params);
done:
    if (fd >= 0) close(fd);
    if (s != KT_OK) kt_ckpt_close(ck);
    return s;
}

KtStatus kt_ckpt_open_memory(KtCheckpoint *ck, const void *data, size_t size, const char *name) {
    memset(ck, 0, sizeof *ck);
    if (!data && size) return KT_FAIL(KT_ERR_ARG, "kt_ckpt_open_memory: data is NULL");
    ck->path = strdup(name ? name : "<memory>");
    if (!ck->path) return KT_FAIL(KT_ERR_OOM, "out of memory");
    ck->map = (void *)(uintptr_t)data;  // borrowed, never written
    ck->map_size = size;
    KtStatus s = open_bytes(ck, data, size, NULL);
    if (s != KT_OK) kt_ckpt_close(ck);
    return s;
}

void kt_ckpt_close(KtCheckpoint *ck) {
    if (!ck) return;
    for (int i = 0; i < ck->n_tensors; i++) free(ck->tensors[i].name);
    free(ck->tensors);
    for (int i = 0; i < ck->n_owned; i++) free(ck->owned[i]);
    free(ck->owned);
    if (ck->map_is_mmap && ck->map) munmap(ck->map, ck->map_size);
    free(ck->metadata_json);
    free(ck->path);
    memset(ck, 0, sizeof *ck);
}

const KtCkptTensor *kt_ckpt_find(const KtCheckpoint *ck, const char *name) {
    for (int i = 0; i < ck->n_tensors; i++)
        if (!strcmp(ck->tensors[i].name, name)) return &ck->tensors[i];
    return NULL;
}

int64_t kt_ckpt_numel(const KtCkptTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

// ------------------------------------------------------------------------------------------------------ reading

// One run of n elements, `stride` apart, starting at element `start` of the storage; loads go through memcpy
// because storages inside a file need not be aligned.
#define CONVERT_RUN(DST_T, SRC_T, EXPR)                          \
    for (int64_t i = 0; i < n; i++) {                            \
        SRC_T x;                                                 \
        memcpy(&x, base + (size_t)(start + i * stride) * sizeof x, sizeof x); \
        dst[i] = (DST_T)(EXPR);                                  \
    }

static void run_f32(float *dst, const uint8_t *base, KtDType dt, int64_t start, int64_t stride, int64_t n) {
    switch (dt) {
    case KT_F32: CONVERT_RUN(float, float, x) break;
    case KT_F16: CONVERT_RUN(float, uint16_t, kt_f16_to_f32(x)) break;
    case KT_BF16: CONVERT_RUN(float, uint16_t, kt_bf16_to_f32(x)) break;
    case KT_F64: CONVERT_RUN(float, double, x) break;
    case KT_I64: CONVERT_RUN(float, int64_t, x) break;
    case KT_I32: CONVERT_RUN(float, int32_t, x) break;
    case KT_U8: CONVERT_RUN(float, uint8_t, x) break;
    default: break;
    }
}

static void run_i64(int64_t *dst, const uint8_t *base, KtDType dt, int64_t start, int64_t stride, int64_t n) {
    switch (dt) {
    case KT_I64: CONVERT_RUN(int64_t, int64_t, x) break;
    case KT_I32: CONVERT_RUN(int64_t, int32_t, x) break;
    case KT_U8: CONVERT_RUN(int64_t, uint8_t, x) break;
    default: break;
    }
}

static bool is_contiguous(const KtCkptTensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

// Walks the tensor row by row (the last dim is the run), converting into dst (float or int64).
static KtStatus read_strided(const KtCheckpoint *ck, const KtCkptTensor *t, void *dst, bool as_i64) {
    KT_TRY(ckpt_check_tensor(ck, t));
    int64_t numel = kt_ckpt_numel(t);
    if (numel == 0) return KT_OK;
    size_t es = kt_dtype_size(t->dtype);
    if (is_contiguous(t) && t->dtype == (as_i64 ? KT_I64 : KT_F32)) {
        memcpy(dst, t->storage + (size_t)t->storage_offset * es, (size_t)numel * es);
        return KT_OK;
    }
    int last = t->ndim - 1;
    int64_t run = t->ndim ? t->shape[last] : 1, rstride = t->ndim ? t->stride[last] : 0;
    int64_t idx[KT_MAX_DIMS] = {0};
    for (int64_t done = 0; done < numel; done += run) {
        int64_t start = t->storage_offset;
        for (int k = 0; k < last; k++) start += idx[k] * t->stride[k];
        if (as_i64) run_i64((int64_t *)dst + done, t->storage, t->dtype, start, rstride, run);
        else run_f32((float *)dst + done, t->storage, t->dtype, start, rstride, run);
        for (int k = last - 1; k >= 0; k--) {  // odometer over the outer dims
            if (++idx[k] < t->shape[k]) break;
            idx[k] = 0;
        }
    }
    return KT_OK;
}

KtStatus kt_ckpt_read_f32(const KtCheckpoint *ck, const KtCkptTensor *t, float *dst) {
    if (!ck || !t || !dst) return KT_FAIL(KT_ERR_ARG, "kt_ckpt_read_f32: NULL argument");
    return read_strided(ck, t, dst, false);
}

KtStatus kt_ckpt_read_i64(const KtCheckpoint *ck, const KtCkptTensor *t, int64_t *dst) {
    if (!ck || !t || !dst) return KT_FAIL(KT_ERR_ARG, "kt_ckpt_read_i64: NULL argument");
    if (t->dtype != KT_I64 && t->dtype != KT_I32 && t->dtype != KT_U8)
        return KT_FAIL(KT_ERR_ARG, "%s: tensor '%s' is %s, not an integer tensor: read it with kt_ckpt_read_f32",
                       ck->path, t->name, kt_dtype_name(t->dtype));
    return read_strided(ck, t, dst, true);
}
