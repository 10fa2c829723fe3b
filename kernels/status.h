// Status codes and the thread-local error message shared by every argen module.
// A failing function stores a message with KT_FAIL and returns the code; callers propagate with KT_TRY.
// Nothing in the library exits or aborts on bad input: main() alone picks an exit code.
#pragma once

typedef enum {
    KT_OK = 0,
    KT_ERR_ARG,          // invalid argument (API misuse or a bad CLI value)
    KT_ERR_IO,           // file could not be opened/read/written
    KT_ERR_FORMAT,       // file contents are not what they should be
    KT_ERR_SHAPE,        // tensor shapes/dtypes disagree
    KT_ERR_OOM,          // allocation failed
    KT_ERR_CUDA,         // a CUDA/cuBLAS/cuDNN call failed
    KT_ERR_UNSUPPORTED,  // valid request this build/backend cannot do
    KT_ERR_NUMERIC,      // non-finite values where finite ones are required
} KtStatus;

// Stores a printf-formatted message (with the source location when ARGEN_DEBUG_ERRORS is set in the
// environment) and returns `s`.
KtStatus kt_fail(KtStatus s, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define KT_FAIL(s, ...) kt_fail((s), __FILE__, __LINE__, __VA_ARGS__)
#define KT_TRY(e)                         \
    do {                                  \
        KtStatus s_ = (e);                \
        if (s_ != KT_OK) return s_;       \
    } while (0)

// Prefixes the current message with "<prefix>: " (e.g. the file name a lower layer did not know).
void kt_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// The last message stored on this thread ("" if none).
const char *kt_last_error(void);
void kt_clear_error(void);
const char *kt_status_name(KtStatus s);
