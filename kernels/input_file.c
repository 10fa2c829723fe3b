// Opening input files without blocking on FIFOs or devices (see input_file.h).
#include "kernels/input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static const char *kind_of(mode_t m) {
    if (S_ISDIR(m)) return " (a directory)";
    if (S_ISFIFO(m)) return " (a FIFO)";
    if (S_ISCHR(m)) return " (a character device)";
    if (S_ISBLK(m)) return " (a block device)";
    if (S_ISSOCK(m)) return " (a socket)";
    return "";
}

KtStatus kt_open_input(const char *path, int *fd, struct stat *sb) {
    struct stat st;
    *fd = -1;
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; regular files ignore it, and it is
    // cleared below before anything is read
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) return KT_FAIL(KT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(f, &st) != 0) {
        int e = errno;
        close(f);
        return KT_FAIL(KT_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return KT_FAIL(KT_ERR_IO, "%s: not a regular file%s", path, kind_of(st.st_mode));
    }
    int flags = fcntl(f, F_GETFL);
    if (flags < 0 || fcntl(f, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(f);
        return KT_FAIL(KT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    if (sb) *sb = st;
    *fd = f;
    return KT_OK;
}

KtStatus kt_fopen_input(const char *path, FILE **f) {
    int fd;
    *f = NULL;
    KT_TRY(kt_open_input(path, &fd, NULL));
    if (!(*f = fdopen(fd, "rb"))) {
        int e = errno;
        close(fd);
        return KT_FAIL(KT_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    return KT_OK;
}
