// Shared test helpers: the OK check, fixture paths, reading reference tensors, whole-file I/O, tolerance comparison
// with a useful report, error-message checks, running the CLI. Tolerances live in tolerances.h, each with its reason.
// The op tests' device-tensor harness is in optest.h.
#pragma once

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/ops.h"
#include "tolerances.h"

// Asserts that a KtStatus expression is KT_OK; the message names the expression, the status and kt_last_error().
#define OK(e)                                                                             \
    do {                                                                                  \
        KtStatus s_ = (e);                                                                \
        cr_assert(s_ == KT_OK, "%s -> %s: %s", #e, kt_status_name(s_), kt_last_error()); \
    } while (0)

// "<build>/tests/fixtures/<rel>" in a static buffer (one per call site is fine: copy if you need two).
const char *fixture_path(const char *rel);
// A per-test scratch directory (created fresh; removed by the OS tmp cleaner) ending without '/'.
const char *test_tmpdir(void);

// Reads tensor `name` of a safetensors/pth file as float32 / int64 (malloc'd; numel in *n; shape in shape[] if
// non-NULL). Fails the test (cr_assert) if anything is wrong.
float *read_f32(const char *path, const char *name, int64_t *n, int64_t shape[KT_MAX_DIMS], int *ndim);
int64_t *read_i64(const char *path, const char *name, int64_t *n);

// NCHW (B, C, H, W) -> NHWC (B, H, W, C), malloc'd.
float *to_nhwc(const float *x, int64_t B, int64_t C, int64_t H, int64_t W);

// The whole file, malloc'd with a NUL after the data (*n bytes; n may be NULL). Fails the test if it cannot be read.
void *read_file(const char *path, size_t *n);
// Writes n bytes to path (created or truncated). Fails the test if it cannot.
void write_file(const char *path, const void *data, size_t n);
// The n ids of a --tokens-out file, {"tokens": [[...], [...]]}, in order. Fails the test on any other count.
void read_tokens_json(const char *path, int64_t *ids, int n);

// |got - ref| <= atol + rtol * |ref| elementwise; NaN/Inf positions must match. On failure reports the max abs and
// rel error, the worst index and the first 5 mismatching pairs, then fails the test. `what` names the quantity.
void expect_close(const char *what, const float *got, const float *ref, int64_t n, double atol, double rtol);
void expect_equal_i64(const char *what, const int64_t *got, const int64_t *ref, int64_t n);
// An error of kind `want` whose message (kt_last_error) names `name` and contains `needle` (if not NULL).
void expect_error(KtStatus got, KtStatus want, const char *name, const char *needle);

// Runs the argen CLI with argv (NULL-terminated, without argv[0]); returns the exit code, stderr into err
// (truncated to cap).
int run_cli(const char *const *args, char *err, size_t cap);
// The same with stdout written to the file out_path (NULL: discarded).
int run_cli_stdout(const char *const *args, const char *out_path, char *err, size_t cap);

// The backend a test wants; skips the test when it is CUDA and no GPU is present.
void test_backend_init(KtBackend *be, KtDevice dev);
