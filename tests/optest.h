// The harness of the op tests (test_ops.c, test_llama_ops.c): a Ctx holds one test's backend, the fixture file its
// reference tensors come from, and every device buffer and host allocation it makes, freed together by ctx_close.
// Device tensors are made from host data or from fixture tensors; results are compared with fixture tensors under the
// tolerance rule of testutil.h. TWIN runs one body as a CPU test and a CUDA test that skips itself without a GPU.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "testutil.h"

#define CTX_MAX 256
typedef struct {
    KtBackend be;
    const char *fixture;  // borrowed: a fixture file relative to the fixture dir, e.g. "ops/ops.safetensors"
    KtBuffer buf[CTX_MAX];
    void *host[CTX_MAX];
    int nbuf, nhost;
} Ctx;

// A backend on dev (skips the test when dev is CUDA and there is no GPU) reading references from `fixture`.
void ctx_open(Ctx *c, KtDevice dev, const char *fixture);
void ctx_close(Ctx *c);
// Frees p (malloc'd, not NULL) at ctx_close; returns p.
void *ctx_keep(Ctx *c, void *p);

// A device tensor; filled from `host` when given, else with 0xff bytes (NaN floats) so unwritten outputs show.
KtTensor dev_new(Ctx *c, KtDType dt, int ndim, const int64_t *shape, const void *host);
// Fixture tensor `name` as float32 on the host, kept by c (numel, shape and ndim as read_f32).
float *fx_read(Ctx *c, const char *name, int64_t *n, int64_t shape[KT_MAX_DIMS], int *ndim);
// Fixture tensor `name` converted to `dt` (F32, I32, I64 or U8) on the device, or (upload = false) an unfilled
// output of the same shape.
KtTensor fx_tensor(Ctx *c, const char *name, KtDType dt, bool upload);
// The first value of fixture tensor `name`.
double fx_scalar(const Ctx *c, const char *name);
// The bytes of device tensor t in a host buffer kept by c.
float *download_f32(Ctx *c, const KtTensor *t);

// Compares a float32 device tensor with fixture `ref` (same numel) by expect_close.
void expect_fx(Ctx *c, const KtTensor *t, const char *ref, double atol, double rtol);
// Compares an integer device tensor (I32 or U8) with fixture `ref` exactly.
void expect_fx_int(Ctx *c, const KtTensor *t, const char *ref);

// Inputs and outputs named after fixture tensors, in a test whose Ctx is the local `c`.
#define IN(name) fx_tensor(&c, name, KT_F32, true)
#define OUT(name) fx_tensor(&c, name, KT_F32, false)

// TWIN(suite, name) { body using `dev` }: the tests suite/name_cpu and suite/name_cuda, one body.
#define TWIN(suite, name)                                  \
    static void name(KtDevice dev);                        \
    Test(suite, name##_cpu) { name(KT_CPU); }              \
    Test(suite, name##_cuda) { name(KT_CUDA); }            \
    static void name(KtDevice dev)
