// Bounds-checked unpickler for PyTorch state dicts (see pickle.h). A stack machine over an inert object tree:
// REDUCE/NEWOBJ only ever "call" the whitelisted globals, and those only build dicts and tensor descriptions.
// Mirrors CPython's _pickle.c semantics where they matter for safety: MARK sets a fence that plain pops cannot
// cross, the memo is indexed by BINPUT/LONG_BINPUT/MEMOIZE, and STOP returns the top of the stack.
// ref: CPython Lib/pickle.py (_Unpickler), Modules/_pickle.c (Pdata fence); torch/_utils.py
#include "pickle.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_BYTES ((size_t)256 << 20)  // all objects of one KtPickle; real state dicts need a few MiB
#define PK_MAX_STACK ((int64_t)1 << 20)   // stack entries
#define PK_MAX_MARKS 1024                 // nesting depth; torch pickles nest about 4 deep
#define PK_MAX_MEMO ((int64_t)1 << 22)    // memo indices
#define PK_MAX_STRING ((uint64_t)256 << 20)
#define PK_MAX_STORAGES (1 << 22)
#define PK_CHUNK ((size_t)64 << 10)

typedef struct Chunk {
    struct Chunk *next;
    max_align_t data[];
} Chunk;

static KtPyObj g_none = {.type = KT_PY_NONE};
static KtPyObj g_true = {.type = KT_PY_BOOL, .u.i = 1};
static KtPyObj g_false = {.type = KT_PY_BOOL, .u.i = 0};

typedef struct {
    KtPickle *pk;
    const uint8_t *d;
    size_t n, pos, op_pos;
    const char *what;
    bool allow_persid;
    KtPyObj **stack;
    int64_t sp, scap;
    int64_t marks[PK_MAX_MARKS];
    int nmarks;
    KtPyObj **memo;
    int64_t memo_n, memo_count;
} Up;

void kt_pickle_init(KtPickle *pk) { memset(pk, 0, sizeof *pk); }

void kt_pickle_free(KtPickle *pk) {
    if (!pk) return;
    for (Chunk *c = pk->chunks; c;) {
        Chunk *next = c->next;
        free(c);
        c = next;
    }
    free(pk->storages);
    memset(pk, 0, sizeof *pk);
}

static void *arena_alloc(KtPickle *pk, size_t n) {
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n > PK_MAX_BYTES || pk->total > PK_MAX_BYTES - n) return NULL;
    if (!pk->chunks || pk->cap - pk->used < n) {
        size_t cap = n > PK_CHUNK ? n : PK_CHUNK;
        Chunk *c = malloc(sizeof(Chunk) + cap);
        if (!c) return NULL;
        c->next = pk->chunks;
        pk->chunks = c;
        pk->used = 0;
        pk->cap = cap;
    }
    void *p = (char *)((Chunk *)pk->chunks)->data + pk->used;
    pk->used += n;
    pk->total += n;
    return p;
}

// Formats "<what>: pickle byte <offset>: <msg>" and returns KT_ERR_FORMAT.
__attribute__((format(printf, 2, 3))) static KtStatus bad(const Up *u, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return KT_FAIL(KT_ERR_FORMAT, "%s: pickle byte %zu: %s", u->what, u->op_pos, msg);
}

static KtStatus oom(const Up *u) {
    return bad(u, "the pickle needs more than %zu MiB of objects (corrupt or hostile file?)", PK_MAX_BYTES >> 20);
}

// Copies up to 64 bytes of untrusted text with non-printable bytes replaced, for messages.
static const char *printable(char *dst, size_t cap, const uint8_t *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap && i < 64; i++) dst[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    if (n > 64 && k + 4 < cap) dst[k++] = '.', dst[k++] = '.', dst[k++] = '.';
    dst[k] = 0;
    return dst;
}

static KtPyObj *new_obj(Up *u, KtPyType t) {
    KtPyObj *o = arena_alloc(u->pk, sizeof *o);
    if (o) {
        memset(o, 0, sizeof *o);
        o->type = t;
    }
    return o;
}

static KtStatus need(const Up *u, uint64_t k) {
    if (k > u->n - u->pos) return bad(u, "truncated: the pickle needs %llu more bytes, %zu left",
                                      (unsigned long long)k, u->n - u->pos);
    return KT_OK;
}

static uint64_t rd_le(const uint8_t *p, int k) {
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static KtStatus read_le(Up *u, int k, uint64_t *v) {
    KT_TRY(need(u, (uint64_t)k));
    *v = rd_le(u->d + u->pos, k);
    u->pos += (size_t)k;
    return KT_OK;
}

static int64_t fence(const Up *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static KtStatus push(Up *u, KtPyObj *o) {
    if (!o) return oom(u);
    if (u->sp == u->scap) {
        if (u->scap >= PK_MAX_STACK) return bad(u, "the pickle stack exceeds %lld entries", (long long)PK_MAX_STACK);
        int64_t cap = u->scap ? u->scap * 2 : 64;
        KtPyObj **s = realloc(u->stack, (size_t)cap * sizeof *s);
        if (!s) return oom(u);
        u->stack = s;
        u->scap = cap;
    }
    u->stack[u->sp++] = o;
    return KT_OK;
}

static KtStatus pop(Up *u, KtPyObj **o) {
    if (u->sp <= fence(u)) return bad(u, "stack underflow (corrupt pickle)");
    *o = u->stack[--u->sp];
    return KT_OK;
}

static KtStatus top(Up *u, KtPyObj **o) {
    if (u->sp <= fence(u)) return bad(u, "stack underflow (corrupt pickle)");
    *o = u->stack[u->sp - 1];
    return KT_OK;
}

static KtStatus pop_mark(Up *u, int64_t *start) {
    if (!u->nmarks) return bad(u, "no MARK on the stack (corrupt pickle)");
    *start = u->marks[--u->nmarks];
    return KT_OK;
}

static KtStatus seq_append(Up *u, KtPyObj *seq, KtPyObj *const *items, int64_t k) {
    if (seq->u.seq.n + k > seq->u.seq.cap) {
        int64_t cap = seq->u.seq.cap ? seq->u.seq.cap : 4;
        while (cap < seq->u.seq.n + k) cap *= 2;
        if ((uint64_t)cap > PK_MAX_BYTES / sizeof(KtPyObj *)) return oom(u);
        KtPyObj **it = arena_alloc(u->pk, (size_t)cap * sizeof *it);
        if (!it) return oom(u);
        if (seq->u.seq.n) memcpy(it, seq->u.seq.items, (size_t)seq->u.seq.n * sizeof *it);
        seq->u.seq.items = it;
        seq->u.seq.cap = cap;
    }
    if (k) memcpy(seq->u.seq.items + seq->u.seq.n, items, (size_t)k * sizeof *items);
    seq->u.seq.n += k;
    return KT_OK;
}

// A new tuple/list/dict from the stack entries [start, sp), which are popped.
static KtStatus push_seq_from(Up *u, KtPyType t, int64_t start) {
    KtPyObj *o = new_obj(u, t);
    if (!o) return oom(u);
    int64_t k = u->sp - start;
    if (t == KT_PY_DICT && k % 2) return bad(u, "DICT with an odd number of items (%lld)", (long long)k);
    if (k) KT_TRY(seq_append(u, o, u->stack + start, k));  // u->stack may still be NULL when k == 0
    u->sp = start;
    return push(u, o);
}

static KtStatus memo_put(Up *u, uint64_t idx) {
    KtPyObj *o = NULL;
    KT_TRY(top(u, &o));
    if (idx >= (uint64_t)PK_MAX_MEMO) return bad(u, "memo index %llu is too large", (unsigned long long)idx);
    if ((int64_t)idx >= u->memo_n) {
        int64_t n = (int64_t)idx + 1, cap = u->memo_n ? u->memo_n : 64;
        while (cap < n) cap *= 2;
        KtPyObj **m = realloc(u->memo, (size_t)cap * sizeof *m);
        if (!m) return oom(u);
        memset(m + u->memo_n, 0, (size_t)(cap - u->memo_n) * sizeof *m);
        u->memo = m;
        u->memo_n = cap;
    }
    if (!u->memo[idx]) u->memo_count++;
    u->memo[idx] = o;
    return KT_OK;
}

static KtStatus memo_get(Up *u, uint64_t idx) {
    if (idx >= (uint64_t)u->memo_n || !u->memo[idx])
        return bad(u, "memo entry %llu was never stored (corrupt pickle)", (unsigned long long)idx);
    return push(u, u->memo[idx]);
}

static KtStatus push_bytes(Up *u, KtPyType t, uint64_t len) {
    if (len > PK_MAX_STRING) return bad(u, "string of %llu bytes is too long", (unsigned long long)len);
    KT_TRY(need(u, len));
    KtPyObj *o = new_obj(u, t);
    if (!o) return oom(u);
    o->u.s.p = u->d + u->pos;
    o->u.s.n = (size_t)len;
    u->pos += (size_t)len;
    return push(u, o);
}

static KtStatus push_int(Up *u, int64_t v) {
    KtPyObj *o = new_obj(u, KT_PY_INT);
    if (!o) return oom(u);
    o->u.i = v;
    return push(u, o);
}

// LONG1/LONG4: little-endian two's complement of `len` bytes.
static KtStatus push_long(Up *u, uint64_t len) {
    if (len > 8) return push_bytes(u, KT_PY_BIGINT, len);
    KT_TRY(need(u, len));
    uint64_t v = len ? rd_le(u->d + u->pos, (int)len) : 0;
    if (len && len < 8 && (u->d[u->pos + len - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * len);
    u->pos += (size_t)len;
    return push_int(u, (int64_t)v);
}

// Globals accepted as inert placeholders (see pickle.h): the objects training scripts save next to the weights.
static const struct {
    const char *mod, *name, *full;
} k_inert[] = {
    {"argparse", "Namespace", "argparse.Namespace"},
    {"numpy.core.multiarray", "scalar", "numpy scalar"},
    {"numpy._core.multiarray", "scalar", "numpy scalar"},
    {"numpy", "dtype", "numpy.dtype"},
    {"numpy.core.multiarray", "_reconstruct", "numpy array"},
    {"numpy._core.multiarray", "_reconstruct", "numpy array"},
    {"numpy", "ndarray", "numpy.ndarray"},
    {"torch.torch_version", "TorchVersion", "torch.torch_version.TorchVersion"},
    {"_codecs", "encode", "bytes object"},  // protocol 2's spelling of a bytes literal (numpy scalars' raw data)
};

static bool name_is(const char *want, const uint8_t *p, size_t n) { return strlen(want) == n && !memcmp(want, p, n); }

static KtStatus push_global(Up *u, const uint8_t *mod, size_t ml, const uint8_t *name, size_t nl) {
    for (size_t i = 0; i < sizeof k_inert / sizeof k_inert[0]; i++) {
        if (!name_is(k_inert[i].mod, mod, ml) || !name_is(k_inert[i].name, name, nl)) continue;
        KtPyObj *o = new_obj(u, KT_PY_GLOBAL);
        if (!o) return oom(u);
        o->u.glob.kind = KT_PYG_INERT;
        o->u.glob.inert = (int)i;
        return push(u, o);
    }
    static const struct {
        const char *mod, *name;
        KtPyGlobal kind;
        KtDType dtype;
    } allowed[] = {
        {"collections", "OrderedDict", KT_PYG_ORDERED_DICT, KT_F32},
        {"torch._utils", "_rebuild_tensor", KT_PYG_REBUILD_TENSOR, KT_F32},
        {"torch._utils", "_rebuild_tensor_v2", KT_PYG_REBUILD_TENSOR_V2, KT_F32},
        {"torch._utils", "_rebuild_parameter", KT_PYG_REBUILD_PARAMETER, KT_F32},
        {"torch._utils", "_rebuild_parameter_with_state", KT_PYG_REBUILD_PARAMETER_WITH_STATE, KT_F32},
        {"torch", "FloatStorage", KT_PYG_STORAGE_TYPE, KT_F32},
        {"torch", "HalfStorage", KT_PYG_STORAGE_TYPE, KT_F16},
        {"torch", "BFloat16Storage", KT_PYG_STORAGE_TYPE, KT_BF16},
        {"torch", "DoubleStorage", KT_PYG_STORAGE_TYPE, KT_F64},
        {"torch", "LongStorage", KT_PYG_STORAGE_TYPE, KT_I64},
        {"torch", "IntStorage", KT_PYG_STORAGE_TYPE, KT_I32},
        {"torch", "ByteStorage", KT_PYG_STORAGE_TYPE, KT_U8},
        {"torch", "BoolStorage", KT_PYG_STORAGE_TYPE, KT_U8},  // bool is one byte, 0 or 1
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strlen(allowed[i].mod) == ml && !memcmp(allowed[i].mod, mod, ml) && strlen(allowed[i].name) == nl &&
            !memcmp(allowed[i].name, name, nl)) {
            KtPyObj *o = new_obj(u, KT_PY_GLOBAL);
            if (!o) return oom(u);
            o->u.glob.kind = allowed[i].kind;
            o->u.glob.dtype = allowed[i].dtype;
            return push(u, o);
        }
    }
    char m[80], n[80];
    printable(m, sizeof m, mod, ml);
    printable(n, sizeof n, name, nl);
    bool storage = ml == 5 && !memcmp(mod, "torch", 5) && nl > 7 && !memcmp(name + nl - 7, "Storage", 7);
    return bad(u, "unsupported pickle global '%s.%s'%s", m, n,
               storage ? " (this tensor dtype is not supported)"
                       : " (only state-dict objects are allowed, and nothing in the file is executed; "
                         "is this a plain state dict? save model.state_dict() instead)");
}

// GLOBAL: "module\nname\n" follows the opcode.
static KtStatus op_global(Up *u) {
    const uint8_t *line[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        size_t left = u->n - u->pos, lim = left < 256 ? left : 256;
        const uint8_t *nl = memchr(u->d + u->pos, '\n', lim);
        if (!nl && left < 256) return bad(u, "truncated: the pickle ends inside a GLOBAL name");
        if (!nl) return bad(u, "GLOBAL name is not newline-terminated within 256 bytes");
        line[k] = u->d + u->pos;
        len[k] = (size_t)(nl - line[k]);
        u->pos += len[k] + 1;
    }
    return push_global(u, line[0], len[0], line[1], len[1]);
}

static KtStatus op_stack_global(Up *u) {
    KtPyObj *name = NULL, *mod = NULL;
    KT_TRY(pop(u, &name));
    KT_TRY(pop(u, &mod));
    if (name->type != KT_PY_STR || mod->type != KT_PY_STR) return bad(u, "STACK_GLOBAL needs two strings");
    return push_global(u, mod->u.s.p, mod->u.s.n, name->u.s.p, name->u.s.n);
}

// ('storage', StorageType, key, location, numel[, view_metadata]) -> KT_PY_STORAGE
static KtStatus op_persid(Up *u) {
    KtPyObj *pid = NULL;
    KT_TRY(pop(u, &pid));
    if (!u->allow_persid) return bad(u, "unexpected persistent id (BINPERSID) in this pickle");
    KtPyObj **it = pid->u.seq.items;
    if (pid->type == KT_PY_TUPLE && pid->u.seq.n >= 1 && it[0]->type == KT_PY_STR && !kt_py_str_eq(it[0], "storage")) {
        char k[80];
        return bad(u, "persistent id of kind '%s'; only 'storage' is supported (a pickled module? save "
                   "model.state_dict() instead)", printable(k, sizeof k, it[0]->u.s.p, it[0]->u.s.n));
    }
    if (pid->type != KT_PY_TUPLE || pid->u.seq.n < 5 || pid->u.seq.n > 6 || !kt_py_str_eq(it[0], "storage"))
        return bad(u, "persistent id is a %s of %lld items, expected ('storage', type, key, location, numel)",
                   kt_py_type_name(pid->type), (long long)pid->u.seq.n);
    if (it[1]->type != KT_PY_GLOBAL || it[1]->u.glob.kind != KT_PYG_STORAGE_TYPE)
        return bad(u, "persistent id: item 1 is not a torch storage type");
    if (it[2]->type != KT_PY_STR || it[3]->type != KT_PY_STR || it[4]->type != KT_PY_INT || it[4]->u.i < 0)
        return bad(u, "persistent id: expected a str key, a str location and a numel >= 0");
    KtPyStorage *st = arena_alloc(u->pk, sizeof *st);
    KtPyObj *o = new_obj(u, KT_PY_STORAGE);
    if (!st || !o) return oom(u);
    memset(st, 0, sizeof *st);
    st->dtype = it[1]->u.glob.dtype;
    st->key = it[2]->u.s;
    st->numel = it[4]->u.i;
    if (pid->u.seq.n == 6 && it[5]->type != KT_PY_NONE) {
        KtPyObj *v = it[5];
        if (v->type != KT_PY_TUPLE || v->u.seq.n != 3 || v->u.seq.items[0]->type != KT_PY_STR ||
            v->u.seq.items[1]->type != KT_PY_INT || v->u.seq.items[2]->type != KT_PY_INT ||
            v->u.seq.items[1]->u.i < 0 || v->u.seq.items[2]->u.i < 0)
            return bad(u, "persistent id: view metadata is not (view_key, offset >= 0, size >= 0)");
        st->is_view = true;
        st->view_offset = v->u.seq.items[1]->u.i;
        st->view_numel = v->u.seq.items[2]->u.i;
    }
    o->u.storage = st;
    KtPickle *pk = u->pk;
    if (pk->n_storages == pk->cap_storages) {
        if (pk->cap_storages >= PK_MAX_STORAGES) return bad(u, "more than %d storages", PK_MAX_STORAGES);
        int cap = pk->cap_storages ? pk->cap_storages * 2 : 64;
        KtPyObj **s = realloc(pk->storages, (size_t)cap * sizeof *s);
        if (!s) return oom(u);
        pk->storages = s;
        pk->cap_storages = cap;
    }
    pk->storages[pk->n_storages++] = o;
    return push(u, o);
}

static KtStatus int_tuple(Up *u, const KtPyObj *t, const char *what, int64_t *dst, int *n) {
    if (t->type != KT_PY_TUPLE && t->type != KT_PY_LIST) return bad(u, "tensor %s is a %s, expected a tuple", what,
                                                                  kt_py_type_name(t->type));
    if (t->u.seq.n > KT_MAX_DIMS) return bad(u, "tensor has %lld dims; at most %d are supported",
                                             (long long)t->u.seq.n, KT_MAX_DIMS);
    for (int64_t i = 0; i < t->u.seq.n; i++) {
        if (t->u.seq.items[i]->type != KT_PY_INT) return bad(u, "tensor %s[%lld] is not an int", what, (long long)i);
        dst[i] = t->u.seq.items[i]->u.i;
    }
    *n = (int)t->u.seq.n;
    return KT_OK;
}

// _rebuild_tensor(_v2)(storage, storage_offset, size, stride, ...) -> KT_PY_TENSOR
static KtStatus rebuild_tensor(Up *u, const KtPyObj *args, int64_t min_args, int64_t max_args) {
    if (args->u.seq.n < min_args || args->u.seq.n > max_args)
        return bad(u, "_rebuild_tensor called with %lld arguments", (long long)args->u.seq.n);
    KtPyObj **a = args->u.seq.items;
    if (a[0]->type != KT_PY_STORAGE) return bad(u, "_rebuild_tensor: argument 0 is a %s, expected a storage",
                                                kt_py_type_name(a[0]->type));
    if (a[1]->type != KT_PY_INT) return bad(u, "_rebuild_tensor: storage_offset is not an int");
    KtPyTensor *t = arena_alloc(u->pk, sizeof *t);
    KtPyObj *o = new_obj(u, KT_PY_TENSOR);
    if (!t || !o) return oom(u);
    memset(t, 0, sizeof *t);
    t->storage = a[0];
    t->offset = a[1]->u.i;
    int ns = 0, nt = 0;
    KT_TRY(int_tuple(u, a[2], "size", t->shape, &ns));
    KT_TRY(int_tuple(u, a[3], "stride", t->stride, &nt));
    if (ns != nt) return bad(u, "tensor size has %d dims but stride has %d", ns, nt);
    t->ndim = ns;
    o->u.tensor = t;
    return push(u, o);
}

// The placeholder a whitelisted global's call or instantiation stands for (its arguments are dropped).
static KtStatus push_inert(Up *u, const KtPyObj *g) {
    KtPyObj *o = new_obj(u, KT_PY_OBJECT);
    if (!o) return oom(u);
    o->u.glob.kind = KT_PYG_INERT;
    o->u.glob.inert = g->u.glob.inert;
    return push(u, o);
}

static KtStatus op_reduce(Up *u) {
    KtPyObj *args = NULL, *fn = NULL;
    KT_TRY(pop(u, &args));
    KT_TRY(pop(u, &fn));
    if (fn->type != KT_PY_GLOBAL) return bad(u, "REDUCE on a %s, not a callable", kt_py_type_name(fn->type));
    if (args->type != KT_PY_TUPLE) return bad(u, "REDUCE arguments are a %s, not a tuple", kt_py_type_name(args->type));
    KtPyObj **a = args->u.seq.items;
    int64_t na = args->u.seq.n;
    switch (fn->u.glob.kind) {
    case KT_PYG_ORDERED_DICT: {
        KtPyObj *d = new_obj(u, KT_PY_DICT);
        if (!d) return oom(u);
        if (na > 1 || (na == 1 && a[0]->type != KT_PY_LIST && a[0]->type != KT_PY_TUPLE))
            return bad(u, "OrderedDict() called with unsupported arguments");
        for (int64_t i = 0; na == 1 && i < a[0]->u.seq.n; i++) {
            KtPyObj *p = a[0]->u.seq.items[i];
            if ((p->type != KT_PY_TUPLE && p->type != KT_PY_LIST) || p->u.seq.n != 2)
                return bad(u, "OrderedDict() item %lld is not a (key, value) pair", (long long)i);
            KT_TRY(seq_append(u, d, p->u.seq.items, 2));
        }
        return push(u, d);
    }
    case KT_PYG_REBUILD_TENSOR: return rebuild_tensor(u, args, 4, 4);
    case KT_PYG_REBUILD_TENSOR_V2: return rebuild_tensor(u, args, 6, 7);
    case KT_PYG_REBUILD_PARAMETER:
    case KT_PYG_REBUILD_PARAMETER_WITH_STATE:
        if (na < 1 || na > 4 || a[0]->type != KT_PY_TENSOR) return bad(u, "_rebuild_parameter needs a tensor");
        return push(u, a[0]);
    case KT_PYG_INERT: return push_inert(u, fn);
    case KT_PYG_STORAGE_TYPE: break;
    }
    return bad(u, "REDUCE on a torch storage type (not a state dict)");
}

static KtStatus op_mark_collection(Up *u, uint8_t op) {
    int64_t start = 0;
    KT_TRY(pop_mark(u, &start));
    if (op == 't') return push_seq_from(u, KT_PY_TUPLE, start);
    if (op == 'l') return push_seq_from(u, KT_PY_LIST, start);
    if (op == 'd') return push_seq_from(u, KT_PY_DICT, start);
    // APPENDS / SETITEMS: the target sits just below the mark, above the enclosing fence
    if (start - 1 < fence(u)) return bad(u, "%s with no target below the MARK", op == 'e' ? "APPENDS" : "SETITEMS");
    KtPyObj *target = u->stack[start - 1];
    KtPyType want = op == 'e' ? KT_PY_LIST : KT_PY_DICT;
    if (target->type != want)
        return bad(u, "%s on a %s", op == 'e' ? "APPENDS" : "SETITEMS", kt_py_type_name(target->type));
    int64_t k = u->sp - start;
    if (op == 'u' && k % 2) return bad(u, "SETITEMS with an odd number of items (%lld)", (long long)k);
    if (k) KT_TRY(seq_append(u, target, u->stack + start, k));
    u->sp = start;
    return KT_OK;
}

static KtStatus op_append_one(Up *u, uint8_t op) {
    KtPyObj *v = NULL, *k = NULL, *target = NULL;
    KT_TRY(pop(u, &v));
    if (op == 's') KT_TRY(pop(u, &k));
    KT_TRY(top(u, &target));
    if (target->type != (op == 'a' ? KT_PY_LIST : KT_PY_DICT))
        return bad(u, "%s on a %s", op == 'a' ? "APPEND" : "SETITEM", kt_py_type_name(target->type));
    KtPyObj *kv[2] = {k, v};
    return op == 'a' ? seq_append(u, target, &v, 1) : seq_append(u, target, kv, 2);
}

static KtStatus op_tupleN(Up *u, int64_t k) {
    if (u->sp - fence(u) < k) return bad(u, "stack underflow (corrupt pickle)");
    return push_seq_from(u, KT_PY_TUPLE, u->sp - k);
}

// NEWOBJ (cls, args) and NEWOBJ_EX (cls, args, kwargs): an OrderedDict or an inert placeholder.
static KtStatus op_newobj(Up *u, bool ex) {
    KtPyObj *kwargs = NULL, *args = NULL, *cls = NULL;
    if (ex) KT_TRY(pop(u, &kwargs));
    KT_TRY(pop(u, &args));
    KT_TRY(pop(u, &cls));
    if (cls->type == KT_PY_GLOBAL && cls->u.glob.kind == KT_PYG_INERT) return push_inert(u, cls);
    if (cls->type != KT_PY_GLOBAL || cls->u.glob.kind != KT_PYG_ORDERED_DICT)
        return bad(u, "NEWOBJ of something other than OrderedDict or an accepted placeholder class");
    return push(u, new_obj(u, KT_PY_DICT));
}

static KtStatus op_build(Up *u) {
    KtPyObj *state = NULL, *obj = NULL;
    KT_TRY(pop(u, &state));
    return top(u, &obj);  // OrderedDict._metadata and similar attribute state is not needed: dropped
}

static KtStatus step(Up *u, uint8_t op, bool *stop) {
    uint64_t v = 0;
    switch (op) {
    case 0x80: KT_TRY(read_le(u, 1, &v)); return v <= 5 ? KT_OK : bad(u, "pickle protocol %llu is newer than 5",
                                                                       (unsigned long long)v);
    case 0x95: KT_TRY(read_le(u, 8, &v)); return need(u, v);  // FRAME: only a read-ahead hint
    case '}': return push(u, new_obj(u, KT_PY_DICT));
    case ']': return push(u, new_obj(u, KT_PY_LIST));
    case ')': return push(u, new_obj(u, KT_PY_TUPLE));
    case '(':
        if (u->nmarks == PK_MAX_MARKS) return bad(u, "the pickle nests deeper than %d levels", PK_MAX_MARKS);
        u->marks[u->nmarks++] = u->sp;
        return KT_OK;
    case 'X': KT_TRY(read_le(u, 4, &v)); return push_bytes(u, KT_PY_STR, v);
    case 0x8c: KT_TRY(read_le(u, 1, &v)); return push_bytes(u, KT_PY_STR, v);
    case 0x8d: KT_TRY(read_le(u, 8, &v)); return push_bytes(u, KT_PY_STR, v);
    case 'T':
        KT_TRY(read_le(u, 4, &v));
        if (v & 0x80000000u) return bad(u, "BINSTRING with a negative length");
        return push_bytes(u, KT_PY_STR, v);
    case 'U': KT_TRY(read_le(u, 1, &v)); return push_bytes(u, KT_PY_STR, v);
    case 'B': KT_TRY(read_le(u, 4, &v)); return push_bytes(u, KT_PY_BYTES, v);
    case 'C': KT_TRY(read_le(u, 1, &v)); return push_bytes(u, KT_PY_BYTES, v);
    case 0x8e: KT_TRY(read_le(u, 8, &v)); return push_bytes(u, KT_PY_BYTES, v);
    case 'J': KT_TRY(read_le(u, 4, &v)); return push_int(u, (int32_t)(uint32_t)v);
    case 'K': KT_TRY(read_le(u, 1, &v)); return push_int(u, (int64_t)v);
    case 'M': KT_TRY(read_le(u, 2, &v)); return push_int(u, (int64_t)v);
    case 0x8a: KT_TRY(read_le(u, 1, &v)); return push_long(u, v);
    case 0x8b:
        KT_TRY(read_le(u, 4, &v));
        if (v & 0x80000000u) return bad(u, "LONG4 with a negative length");
        return push_long(u, v);
    case 'G': {
        KT_TRY(need(u, 8));
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++) bits = bits << 8 | u->d[u->pos + (size_t)i];  // big-endian
        u->pos += 8;
        KtPyObj *o = new_obj(u, KT_PY_FLOAT);
        if (o) memcpy(&o->u.f, &bits, sizeof o->u.f);
        return push(u, o);
    }
    case 'N': return push(u, &g_none);
    case 0x88: return push(u, &g_true);
    case 0x89: return push(u, &g_false);
    case 't': case 'l': case 'd': case 'e': case 'u': return op_mark_collection(u, op);
    case 0x85: return op_tupleN(u, 1);
    case 0x86: return op_tupleN(u, 2);
    case 0x87: return op_tupleN(u, 3);
    case 'a': case 's': return op_append_one(u, op);
    case 'q': KT_TRY(read_le(u, 1, &v)); return memo_put(u, v);
    case 'r': KT_TRY(read_le(u, 4, &v)); return memo_put(u, v);
    case 0x94: return memo_put(u, (uint64_t)u->memo_count);
    case 'h': KT_TRY(read_le(u, 1, &v)); return memo_get(u, v);
    case 'j': KT_TRY(read_le(u, 4, &v)); return memo_get(u, v);
    case 'c': return op_global(u);
    case 0x93: return op_stack_global(u);
    case 'R': return op_reduce(u);
    case 'b': return op_build(u);
    case 'Q': return op_persid(u);
    case 0x81: return op_newobj(u, false);
    case 0x92: return op_newobj(u, true);
    case '.': *stop = true; return KT_OK;
    default: break;
    }
    if (op >= 0x20 && op < 0x7f)
        return bad(u, "unsupported pickle opcode 0x%02x ('%c'), not used by state dicts", op, op);
    return bad(u, "unsupported pickle opcode 0x%02x, not used by state dicts", op);
}

KtStatus kt_pickle_load(KtPickle *pk, const uint8_t *data, size_t size, const char *what, bool allow_persid,
                        KtPyObj **out, size_t *consumed) {
    *out = NULL;
    if (consumed) *consumed = 0;
    Up *u = calloc(1, sizeof *u);
    if (!u) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", what);
    u->pk = pk;
    u->d = data;
    u->n = size;
    u->what = what;
    u->allow_persid = allow_persid;
    KtStatus s = KT_OK;
    bool stop = false;
    while (!stop) {
        if (u->pos >= u->n) {
            u->op_pos = u->pos;
            s = bad(u, "truncated: the pickle ends without a STOP opcode");
            break;
        }
        u->op_pos = u->pos;
        uint8_t op = u->d[u->pos++];
        if ((s = step(u, op, &stop)) != KT_OK) break;
    }
    if (s == KT_OK) {
        KtPyObj *result = NULL;
        if ((s = pop(u, &result)) == KT_OK) {
            *out = result;
            if (consumed) *consumed = u->pos;
        }
    }
    free(u->stack);
    free(u->memo);
    free(u);
    return s;
}

const char *kt_py_type_name(KtPyType t) {
    static const char *names[] = {"None", "bool", "int", "int", "float", "str", "bytes", "tuple", "list", "dict",
                                  "global", "storage", "tensor", "placeholder object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

bool kt_py_str_eq(const KtPyObj *o, const char *s) {
    size_t n = strlen(s);
    return o && o->type == KT_PY_STR && o->u.s.n == n && !memcmp(o->u.s.p, s, n);
}

KtPyObj *kt_py_dict_get(const KtPyObj *d, const char *key) {
    KtPyObj *found = NULL;
    if (!d || d->type != KT_PY_DICT) return NULL;
    for (int64_t i = 0; i + 1 < d->u.seq.n; i += 2)
        if (kt_py_str_eq(d->u.seq.items[i], key)) found = d->u.seq.items[i + 1];
    return found;
}

const char *kt_py_object_name(const KtPyObj *o) {
    bool inert = o && (o->type == KT_PY_OBJECT || (o->type == KT_PY_GLOBAL && o->u.glob.kind == KT_PYG_INERT));
    if (!inert || o->u.glob.inert < 0 || (size_t)o->u.glob.inert >= sizeof k_inert / sizeof k_inert[0]) return "?";
    return k_inert[o->u.glob.inert].full;
}
