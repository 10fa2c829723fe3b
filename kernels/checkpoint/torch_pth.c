// PyTorch checkpoint readers, both layouts torch.save has used:
//  zip (torch >= 1.6): <prefix>/data.pkl (the pickled object, storages as persistent ids), <prefix>/data/<key>
//    (raw little-endian storage bytes), <prefix>/byteorder ("little", when present); any <prefix>.
//  legacy (torch < 1.6): consecutive pickles (magic number, protocol version 1001, sys_info dict, the object, the
//    list of storage keys), then for each key in that order a u64 little-endian element count and the raw bytes.
// The top level may be a state dict or {"model": sd} / {"state_dict": sd} (or a caller-chosen key); entries whose
// values are not tensors are skipped.
// ref: torch/serialization.py (_save, _legacy_save, _load, _legacy_load), torch/_utils.py
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_internal.h"
#include "pickle.h"
#include "zip.h"

// Legacy files start with this number pickled as LONG1 (0x1950a86a20f9469cfc6c, little-endian bytes).
static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
#define LEGACY_PROTOCOL_VERSION 1001

typedef struct {
    KtPyBytes key;
    KtDType dtype;        // of the first storage id naming this key: fixes the element size in the file
    const uint8_t *data;  // borrowed: inside the mapping
    int64_t numel;        // elements of `dtype`
} LegacyStorage;

typedef struct {
    KtCheckpoint *ck;
    // zip layout
    KtZip *zip;
    const char *prefix;         // "archive/" (may be "")
    const uint8_t **inflated;   // per zip entry: bytes of a deflated storage already inflated (owned by ck)
    // legacy layout
    LegacyStorage *legacy;      // sorted by key
    int n_legacy;
} Resolver;

static const char *show(char *dst, size_t cap, KtPyBytes b) {
    size_t k = 0;
    for (size_t i = 0; i < b.n && k + 4 < cap && i < 64; i++)
        dst[k++] = (b.p[i] >= 0x20 && b.p[i] < 0x7f) ? (char)b.p[i] : '?';
    if (b.n > 64 && k + 4 < cap) dst[k++] = '.', dst[k++] = '.', dst[k++] = '.';
    dst[k] = 0;
    return dst;
}

static int cmp_bytes(KtPyBytes a, KtPyBytes b) {
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    return c ? c : (a.n > b.n) - (a.n < b.n);
}

// "'a', 'b', 'c', ..." for messages
static const char *dict_keys(const KtPyObj *d, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int64_t i = 0; i + 1 < d->u.seq.n && k + 80 < cap; i += 2) {
        char s[80];
        const KtPyObj *key = d->u.seq.items[i];
        if (i >= 16) {
            snprintf(buf + k, cap - k, ", ...");
            break;
        }
        k += (size_t)snprintf(buf + k, cap - k, "%s'%s'", i ? ", " : "",
                              key->type == KT_PY_STR ? show(s, sizeof s, key->u.s) : kt_py_type_name(key->type));
    }
    return buf;
}

static KtStatus find_state_dict(KtCheckpoint *ck, const KtPyObj *top, const KtCkptOpenParams *params,
                                const KtPyObj **sd) {
    char keys[1024];
    if (top->type != KT_PY_DICT)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the checkpoint holds a %s, expected a dict of tensors (a state dict)",
                       ck->path, kt_py_type_name(top->type));
    if (params && params->unwrap_key) {
        const KtPyObj *v = kt_py_dict_get(top, params->unwrap_key);
        if (!v)
            return KT_FAIL(KT_ERR_FORMAT, "%s: no top-level key '%s' (keys: %s)", ck->path, params->unwrap_key,
                           dict_keys(top, keys, sizeof keys));
        if (v->type != KT_PY_DICT)
            return KT_FAIL(KT_ERR_FORMAT, "%s: top-level '%s' is a %s, not a state dict", ck->path,
                           params->unwrap_key, kt_py_type_name(v->type));
        *sd = v;
        return KT_OK;
    }
    static const char *wrappers[] = {"model", "state_dict", "module"};
    for (size_t i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++) {
        const KtPyObj *v = kt_py_dict_get(top, wrappers[i]);
        if (v && v->type == KT_PY_DICT) {
            *sd = v;
            return KT_OK;
        }
    }
    *sd = top;
    return KT_OK;
}

static KtStatus storage_bytes_needed(const KtCheckpoint *ck, KtPyBytes key, int64_t numel, KtDType dt, uint64_t *n) {
    char k[80];
    if (numel < 0 || (uint64_t)numel > UINT64_MAX / 8)
        return KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' has an invalid size %lld", ck->path, show(k, sizeof k, key),
                       (long long)numel);
    *n = (uint64_t)numel * kt_dtype_size(dt);
    return KT_OK;
}

static KtStatus resolve_zip(Resolver *r, const KtPyStorage *st, const uint8_t **base, int64_t *numel) {
    KtCheckpoint *ck = r->ck;
    char k[80];
    size_t plen = strlen(r->prefix);
    char *name = malloc(plen + 5 + st->key.n + 1);
    if (!name) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
    memcpy(name, r->prefix, plen);
    memcpy(name + plen, "data/", 5);
    memcpy(name + plen + 5, st->key.p, st->key.n);
    name[plen + 5 + st->key.n] = 0;
    const KtZipEntry *e = memchr(st->key.p, 0, st->key.n) ? NULL : kt_zip_find(r->zip, name);
    free(name);
    if (!e)
        return KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' (%sdata/%s) is missing from the archive (truncated or "
                       "corrupt file)", ck->path, show(k, sizeof k, st->key), r->prefix, show(k, sizeof k, st->key));
    size_t idx = (size_t)(e - r->zip->entries), size = 0;
    const uint8_t *bytes = r->inflated[idx];
    size = (size_t)e->size;
    if (!bytes) {
        void *owned = NULL;
        KT_TRY(kt_zip_member_data(r->zip, e, &bytes, &size, &owned));
        if (owned) {
            KT_TRY(ckpt_keep(ck, owned));
            r->inflated[idx] = bytes;
        }
    }
    uint64_t need = 0;
    KT_TRY(storage_bytes_needed(ck, st->key, st->numel, st->dtype, &need));
    if (need > size)
        return KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' needs %llu bytes (%lld x %s), file has %zu (truncated or "
                       "corrupt file)", ck->path, show(k, sizeof k, st->key), (unsigned long long)need,
                       (long long)st->numel, kt_dtype_name(st->dtype), size);
    *base = bytes;
    *numel = st->numel;
    return KT_OK;
}

static KtStatus resolve_legacy(Resolver *r, const KtPyStorage *st, const uint8_t **base, int64_t *numel) {
    char k[80];
    size_t lo = 0, hi = (size_t)r->n_legacy;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_bytes(r->legacy[mid].key, st->key);
        if (c == 0) {
            const LegacyStorage *ls = &r->legacy[mid];
            *base = ls->data;
            // bytes are fixed by the first storage type naming the key; another type views the same bytes
            *numel = (int64_t)((uint64_t)ls->numel * kt_dtype_size(ls->dtype) / kt_dtype_size(st->dtype));
            return KT_OK;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' is missing from the file's storage list (corrupt file)",
                   r->ck->path, show(k, sizeof k, st->key));
}

static KtStatus resolve(Resolver *r, const KtPyStorage *st, const uint8_t **base, int64_t *numel) {
    KT_TRY(r->zip ? resolve_zip(r, st, base, numel) : resolve_legacy(r, st, base, numel));
    if (st->is_view) {  // legacy view_metadata: the storage is elements [view_offset, +view_numel) of the root
        char k[80];
        if (st->view_offset > *numel || st->view_numel > *numel - st->view_offset)
            return KT_FAIL(KT_ERR_FORMAT, "%s: storage view [%lld, +%lld) lies outside storage '%s' (%lld elements)",
                           r->ck->path, (long long)st->view_offset, (long long)st->view_numel,
                           show(k, sizeof k, st->key), (long long)*numel);
        *base += (size_t)st->view_offset * kt_dtype_size(st->dtype);
        *numel = st->view_numel;
    }
    return KT_OK;
}

static KtStatus collect_tensors(Resolver *r, const KtPyObj *top, const KtCkptOpenParams *params) {
    KtCheckpoint *ck = r->ck;
    const KtPyObj *sd = NULL;
    KT_TRY(find_state_dict(ck, top, params, &sd));
    for (int64_t i = 0; i + 1 < sd->u.seq.n; i += 2) {
        const KtPyObj *k = sd->u.seq.items[i], *v = sd->u.seq.items[i + 1];
        if (v->type == KT_PY_OBJECT) {  // placeholders are accepted next to the state dict, not inside it
            char s[80];
            return KT_FAIL(KT_ERR_FORMAT, "%s: state-dict entry '%s' is a %s, not a tensor (such objects are "
                           "accepted only next to the state dict, e.g. a training checkpoint's \"args\")", ck->path,
                           k->type == KT_PY_STR ? show(s, sizeof s, k->u.s) : "?", kt_py_object_name(v));
        }
        if (k->type != KT_PY_STR || v->type != KT_PY_TENSOR) continue;  // not a tensor entry: skipped
        const KtPyTensor *pt = v->u.tensor;
        const KtPyStorage *st = pt->storage->u.storage;
        KtCkptTensor *t;
        KT_TRY(ckpt_add_tensor(ck, k->u.s.p, k->u.s.n, &t));
        t->dtype = st->dtype;
        t->ndim = pt->ndim;
        memcpy(t->shape, pt->shape, sizeof t->shape);
        memcpy(t->stride, pt->stride, sizeof t->stride);
        t->storage_offset = pt->offset;
        KT_TRY(resolve(r, st, &t->storage, &t->storage_numel));
    }
    if (ck->n_tensors == 0) {
        char keys[1024];
        return KT_FAIL(KT_ERR_FORMAT, "%s: no tensors in the checkpoint (top-level keys: %s); a training checkpoint "
                       "with the weights under another key? select it (KtCkptOpenParams.unwrap_key)", ck->path,
                       dict_keys(top, keys, sizeof keys));
    }
    return KT_OK;
}

// ----------------------------------------------------------------------------------------------------- zip layout

static const KtZipEntry *find_data_pkl(const KtZip *z) {
    for (int i = 0; i < z->n_entries; i++) {
        const char *n = z->entries[i].name;
        size_t len = strlen(n);
        if (len >= 8 && !strcmp(n + len - 8, "data.pkl") && (len == 8 || n[len - 9] == '/')) return &z->entries[i];
    }
    return NULL;
}

static KtStatus check_byteorder(const KtCheckpoint *ck, const KtZip *z, const char *prefix) {
    char name[4200];
    snprintf(name, sizeof name, "%sbyteorder", prefix);
    const KtZipEntry *e = kt_zip_find(z, name);
    if (!e) return KT_OK;  // torch < 1.10 wrote no byteorder record: little-endian
    const uint8_t *d;
    size_t n;
    void *owned = NULL;
    KT_TRY(kt_zip_member_data(z, e, &d, &n, &owned));
    bool little = n == 6 && !memcmp(d, "little", 6);
    char shown[16] = {0};
    for (size_t i = 0; i < n && i < 15; i++) shown[i] = (d[i] >= 0x20 && d[i] < 0x7f) ? (char)d[i] : '?';
    free(owned);
    if (!little)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "%s: %s says '%s'; only little-endian checkpoints are supported (re-save "
                       "it on a little-endian machine)", ck->path, name, shown);
    return KT_OK;
}

KtStatus ckpt_read_torch_zip(KtCheckpoint *ck, const uint8_t *data, size_t size, const KtCkptOpenParams *params) {
    KtZip z;
    KtPickle pk;
    kt_pickle_init(&pk);
    void *pkl_owned = NULL;
    char *prefix = NULL, *what = NULL;
    Resolver r = {.ck = ck, .zip = &z};
    KtStatus s = kt_zip_open(&z, data, size, ck->path);
    if (s != KT_OK) return s;
    const KtZipEntry *pkl = find_data_pkl(&z);
    if (!pkl) {
        s = KT_FAIL(KT_ERR_FORMAT, "%s: a zip archive with no data.pkl (%d members, the first '%s'): not a PyTorch "
                    "checkpoint", ck->path, z.n_entries, z.n_entries ? z.entries[0].name : "");
        goto cleanup;
    }
    size_t plen = strlen(pkl->name) - 8;
    prefix = malloc(plen + 1);
    what = malloc(strlen(ck->path) + strlen(pkl->name) + 3);
    r.inflated = calloc((size_t)z.n_entries, sizeof *r.inflated);
    if (!prefix || !what || !r.inflated) {
        s = KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
        goto cleanup;
    }
    memcpy(prefix, pkl->name, plen);
    prefix[plen] = 0;
    r.prefix = prefix;
    sprintf(what, "%s: %s", ck->path, pkl->name);
    if ((s = check_byteorder(ck, &z, prefix)) != KT_OK) goto cleanup;
    const uint8_t *pd;
    size_t pn;
    if ((s = kt_zip_member_data(&z, pkl, &pd, &pn, &pkl_owned)) != KT_OK) goto cleanup;
    KtPyObj *top = NULL;
    if ((s = kt_pickle_load(&pk, pd, pn, what, true, &top, NULL)) != KT_OK) goto cleanup;
    s = collect_tensors(&r, top, params);
cleanup:
    free(r.inflated);
    free(pkl_owned);
    free(prefix);
    free(what);
    kt_pickle_free(&pk);
    kt_zip_free(&z);
    return s;
}

// -------------------------------------------------------------------------------------------------- legacy layout

static int cmp_storage_obj(const void *a, const void *b) {
    const KtPyObj *x = *(const KtPyObj *const *)a, *y = *(const KtPyObj *const *)b;
    int c = cmp_bytes(x->u.storage->key, y->u.storage->key);
    return c ? c : (x < y ? -1 : x > y);  // objects are allocated in order within a chunk; ties are harmless
}

static int cmp_legacy(const void *a, const void *b) {
    return cmp_bytes(((const LegacyStorage *)a)->key, ((const LegacyStorage *)b)->key);
}

// The u64 count + raw bytes of each storage, in key-list order, from data[*pos].
static KtStatus read_legacy_storages(Resolver *r, KtPickle *pk, const KtPyObj *keys, const uint8_t *data,
                                     size_t size, size_t pos) {
    KtCheckpoint *ck = r->ck;
    char k[80];
    if (keys->type != KT_PY_LIST)
        return KT_FAIL(KT_ERR_FORMAT, "%s: the storage key list is a %s, expected a list", ck->path,
                       kt_py_type_name(keys->type));
    int64_t n = keys->u.seq.n;
    KtPyObj **by_key = malloc((size_t)(pk->n_storages ? pk->n_storages : 1) * sizeof *by_key);
    r->legacy = calloc((size_t)(n ? n : 1), sizeof *r->legacy);
    if (!by_key || !r->legacy) {
        free(by_key);
        return KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
    }
    if (pk->n_storages) {
        memcpy(by_key, pk->storages, (size_t)pk->n_storages * sizeof *by_key);
        qsort(by_key, (size_t)pk->n_storages, sizeof *by_key, cmp_storage_obj);
    }
    KtStatus s = KT_OK;
    for (int64_t i = 0; i < n && s == KT_OK; i++) {
        const KtPyObj *key = keys->u.seq.items[i];
        if (key->type != KT_PY_STR) {
            s = KT_FAIL(KT_ERR_FORMAT, "%s: storage key %lld is a %s, expected a str", ck->path, (long long)i,
                        kt_py_type_name(key->type));
            break;
        }
        size_t lo = 0, hi = (size_t)pk->n_storages;  // first storage id with this key
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (cmp_bytes(by_key[mid]->u.storage->key, key->u.s) < 0) lo = mid + 1;
            else hi = mid;
        }
        if (lo == (size_t)pk->n_storages || cmp_bytes(by_key[lo]->u.storage->key, key->u.s) != 0) {
            s = KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' in the key list is used by no tensor (corrupt file)",
                        ck->path, show(k, sizeof k, key->u.s));
            break;
        }
        LegacyStorage *ls = &r->legacy[i];
        ls->key = key->u.s;
        ls->dtype = by_key[lo]->u.storage->dtype;
        uint64_t count = 0, need = 0;
        if (size - pos < 8) {
            s = KT_FAIL(KT_ERR_FORMAT, "%s: truncated: storage '%s' (%lld of %lld) starts past the end of the file "
                        "(%zu bytes)", ck->path, show(k, sizeof k, key->u.s), (long long)i + 1, (long long)n, size);
            break;
        }
        for (int b = 7; b >= 0; b--) count = count << 8 | data[pos + (size_t)b];
        pos += 8;
        if (count > (uint64_t)INT64_MAX / 8 ||
            (need = count * kt_dtype_size(ls->dtype)) > size - pos) {
            s = KT_FAIL(KT_ERR_FORMAT, "%s: truncated: storage '%s' needs %s%llu bytes (%llu x %s) at offset %zu, file "
                        "has %zu", ck->path, show(k, sizeof k, key->u.s), need ? "" : "> ",
                        (unsigned long long)(need ? need : UINT64_MAX), (unsigned long long)count,
                        kt_dtype_name(ls->dtype), pos, size);
            break;
        }
        ls->data = data + pos;
        ls->numel = (int64_t)count;
        pos += (size_t)need;
        r->n_legacy = (int)(i + 1);
    }
    free(by_key);
    if (s != KT_OK) return s;
    qsort(r->legacy, (size_t)r->n_legacy, sizeof *r->legacy, cmp_legacy);
    for (int i = 1; i < r->n_legacy; i++)
        if (!cmp_legacy(&r->legacy[i - 1], &r->legacy[i]))
            return KT_FAIL(KT_ERR_FORMAT, "%s: storage '%s' is listed twice (corrupt file)", ck->path,
                           show(k, sizeof k, r->legacy[i].key));
    return KT_OK;
}

KtStatus ckpt_read_torch_legacy(KtCheckpoint *ck, const uint8_t *data, size_t size, const KtCkptOpenParams *params) {
    KtPickle pk;
    kt_pickle_init(&pk);
    Resolver r = {.ck = ck};
    KtPyObj *obj[5] = {0};
    size_t pos = 0;
    char *what = malloc(strlen(ck->path) + 32);
    if (!what) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", ck->path);
    KtStatus s = KT_OK;
    for (int i = 0; i < 5 && s == KT_OK; i++) {
        size_t used = 0;
        sprintf(what, "%s: pickle %d of 5", ck->path, i + 1);
        s = kt_pickle_load(&pk, data + pos, size - pos, what, i == 3, &obj[i], &used);
        pos += used;
        if (s != KT_OK && i == 0 && s != KT_ERR_OOM) {
            char why[512];
            snprintf(why, sizeof why, "%s", kt_last_error());
            s = KT_FAIL(KT_ERR_FORMAT, "%s: starts like a pickle, but does not hold the PyTorch magic number (%s)",
                        ck->path, why);
        } else if (s == KT_OK && i == 0) {
            if (obj[0]->type != KT_PY_BIGINT || obj[0]->u.s.n != sizeof LEGACY_MAGIC ||
                memcmp(obj[0]->u.s.p, LEGACY_MAGIC, sizeof LEGACY_MAGIC))
                s = KT_FAIL(KT_ERR_FORMAT, "%s: starts with a pickle, but not the PyTorch magic number "
                            "0x1950a86a20f9469cfc6c: a plain pickle, not a torch.save checkpoint", ck->path);
        } else if (s == KT_OK && i == 1) {
            if (obj[1]->type != KT_PY_INT || obj[1]->u.i != LEGACY_PROTOCOL_VERSION)
                s = KT_FAIL(KT_ERR_FORMAT, "%s: legacy checkpoint protocol version is %s%lld, expected %d", ck->path,
                            obj[1]->type == KT_PY_INT ? "" : "not an int: ",
                            obj[1]->type == KT_PY_INT ? (long long)obj[1]->u.i : 0LL, LEGACY_PROTOCOL_VERSION);
        } else if (s == KT_OK && i == 2) {
            const KtPyObj *le = kt_py_dict_get(obj[2], "little_endian");
            if (obj[2]->type != KT_PY_DICT)
                s = KT_FAIL(KT_ERR_FORMAT, "%s: legacy sys_info is a %s, expected a dict", ck->path,
                            kt_py_type_name(obj[2]->type));
            else if (le && (le->type != KT_PY_BOOL || !le->u.i))
                s = KT_FAIL(KT_ERR_UNSUPPORTED, "%s: a big-endian checkpoint; only little-endian ones are supported "
                            "(re-save it on a little-endian machine)", ck->path);
        }
    }
    if (s == KT_OK) s = read_legacy_storages(&r, &pk, obj[4], data, size, pos);
    if (s == KT_OK) s = collect_tensors(&r, obj[3], params);
    free(r.legacy);
    free(what);
    kt_pickle_free(&pk);
    return s;
}
