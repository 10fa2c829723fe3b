// A small, strictly bounds-checked unpickler for PyTorch state dicts (pickle protocols 2-5). It builds a tree of
// inert KtPyObj values; nothing in the file is ever called. The only globals accepted are those state dicts use:
// collections.OrderedDict, torch._utils._rebuild_tensor(_v2), torch._utils._rebuild_parameter(_with_state) and the
// typed torch storages (Float, Half, BFloat16, Double, Long, Int, Byte, Bool). Training checkpoints (LlamaGen's
// {"model": ..., "args": argparse.Namespace, ...}) also hold a few other objects next to the state dict: the globals
// argparse.Namespace, numpy's scalar / dtype / ndarray reconstructors, torch.torch_version.TorchVersion and
// _codecs.encode (how protocol 2 writes bytes, e.g. a numpy scalar's raw data) are
// accepted as *inert placeholders* (KT_PY_OBJECT): "calling" or instantiating them only records which one it was,
// their arguments and state are dropped, nothing is constructed or executed. Persistent ids
// ('storage', StorageType, key, location, numel[, view_metadata]) become KT_PY_STORAGE objects and
// _rebuild_tensor_v2 calls KT_PY_TENSOR objects; resolving storages to bytes is the caller's job (torch_pth.c).
// Memo size, stack depth, nesting and total memory are capped, so a hostile file cannot exhaust memory.
// ref: CPython Lib/pickle.py, Lib/pickletools.py; torch/serialization.py (_save, _legacy_save), torch/_utils.py
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/tensor.h"

typedef enum {
    KT_PY_NONE = 0,
    KT_PY_BOOL,
    KT_PY_INT,      // fits int64
    KT_PY_BIGINT,   // LONG1/LONG4 wider than 8 bytes: raw little-endian two's complement bytes in `s`
    KT_PY_FLOAT,
    KT_PY_STR,      // UTF-8 bytes in `s` (not NUL-terminated)
    KT_PY_BYTES,
    KT_PY_TUPLE,
    KT_PY_LIST,
    KT_PY_DICT,     // items = k0, v0, k1, v1, ... in insertion order (OrderedDict is a dict)
    KT_PY_GLOBAL,   // a whitelisted callable/class
    KT_PY_STORAGE,  // a persistent storage id
    KT_PY_TENSOR,
    KT_PY_OBJECT,   // an inert placeholder for a whitelisted non-state-dict object (argparse.Namespace, numpy scalar, ...)
} KtPyType;

typedef enum {
    KT_PYG_ORDERED_DICT = 0,
    KT_PYG_REBUILD_TENSOR,     // torch._utils._rebuild_tensor(storage, offset, size, stride)
    KT_PYG_REBUILD_TENSOR_V2,  // torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)
    KT_PYG_REBUILD_PARAMETER,  // torch._utils._rebuild_parameter(data, requires_grad, hooks)
    KT_PYG_REBUILD_PARAMETER_WITH_STATE,
    KT_PYG_STORAGE_TYPE,       // torch.XxxStorage (dtype in `glob.dtype`)
    KT_PYG_INERT,              // a whitelisted class/function whose results become KT_PY_OBJECT (`glob.inert` names it)
} KtPyGlobal;

typedef struct {
    const uint8_t *p;  // borrowed: points into the pickle bytes
    size_t n;
} KtPyBytes;

typedef struct {
    KtDType dtype;
    KtPyBytes key;         // storage key: zip member data/<key>, or the legacy key list entry
    int64_t numel;         // elements, as the persistent id says
    bool is_view;          // legacy view_metadata (view_key, offset, size) was present
    int64_t view_offset;   // elements into the root storage `key`
    int64_t view_numel;
} KtPyStorage;

typedef struct {
    const struct KtPyObj *storage;  // a KT_PY_STORAGE object
    int64_t offset;                 // storage_offset, in elements
    int ndim;
    int64_t shape[KT_MAX_DIMS];
    int64_t stride[KT_MAX_DIMS];
} KtPyTensor;

typedef struct KtPyObj {
    KtPyType type;
    union {
        int64_t i;  // BOOL, INT
        double f;
        KtPyBytes s;  // STR, BYTES, BIGINT
        struct {
            struct KtPyObj **items;
            int64_t n, cap;
        } seq;  // TUPLE, LIST, DICT (n counts keys and values)
        struct {
            KtPyGlobal kind;
            KtDType dtype;
            int inert;  // KT_PYG_INERT globals and KT_PY_OBJECT: index into the placeholder whitelist
        } glob;
        KtPyStorage *storage;
        KtPyTensor *tensor;
    } u;
} KtPyObj;

// Owns every object of the pickles loaded into it (one arena; strings borrow from the input bytes, which must
// outlive it).
typedef struct {
    void *chunks;       // private: arena chunk list
    size_t used, cap;   // private: bump pointer within the current chunk
    size_t total;       // bytes allocated so far (capped)
    KtPyObj **storages; // every storage object created, in creation order (persistent ids)
    int n_storages, cap_storages;
} KtPickle;

void kt_pickle_init(KtPickle *pk);
void kt_pickle_free(KtPickle *pk);

// Unpickles one object from data[0, size) up to its STOP opcode; *consumed gets the bytes used (pickles may follow).
// `what` names the stream in messages ("var.pth: archive/data.pkl"). BINPERSID is accepted only if allow_persid.
KtStatus kt_pickle_load(KtPickle *pk, const uint8_t *data, size_t size, const char *what, bool allow_persid,
                        KtPyObj **out, size_t *consumed);

const char *kt_py_type_name(KtPyType t);
// True when o is a str equal to the NUL-terminated `s`.
bool kt_py_str_eq(const KtPyObj *o, const char *s);
// The value for str key `key` in dict d (the last one if repeated), or NULL.
KtPyObj *kt_py_dict_get(const KtPyObj *d, const char *key);
// "argparse.Namespace" etc. for a KT_PY_OBJECT or KT_PYG_INERT global; "?" otherwise.
const char *kt_py_object_name(const KtPyObj *o);
