// Thread-local error message storage for KtStatus returns.
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KT_ERR_CAP 2048
static _Thread_local char g_err[KT_ERR_CAP];

KtStatus kt_fail(KtStatus s, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    const char *dbg = getenv("ARGEN_DEBUG_ERRORS");
    if (dbg && dbg[0] && n >= 0 && (size_t)n < sizeof g_err)
        snprintf(g_err + n, sizeof g_err - (size_t)n, " [%s:%d]", file, line);
    return s;
}

void kt_error_prefix(const char *fmt, ...) {
    char prefix[512], old[KT_ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    size_t n = strlen(prefix);
    if (n + 2 >= sizeof g_err) n = sizeof g_err - 3;
    memcpy(g_err, prefix, n);
    memcpy(g_err + n, ": ", 2);
    size_t room = sizeof g_err - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(g_err + n + 2, old, m);
    g_err[n + 2 + m] = 0;
}

const char *kt_last_error(void) { return g_err; }
void kt_clear_error(void) { g_err[0] = 0; }

const char *kt_status_name(KtStatus s) {
    switch (s) {
    case KT_OK: return "ok";
    case KT_ERR_ARG: return "invalid argument";
    case KT_ERR_IO: return "I/O error";
    case KT_ERR_FORMAT: return "format error";
    case KT_ERR_SHAPE: return "shape error";
    case KT_ERR_OOM: return "out of memory";
    case KT_ERR_CUDA: return "CUDA error";
    case KT_ERR_UNSUPPORTED: return "unsupported";
    case KT_ERR_NUMERIC: return "non-finite values";
    }
    return "unknown status";
}
