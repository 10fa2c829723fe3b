// Opening input files (checkpoints, .npz/.npy, images, manifests) so that a wrong path fails fast: a FIFO, socket or
// device given as an input is refused with a message instead of blocking the process on open() or read(), and a
// directory is named as such. Every error message starts with the path.
#pragma once

#include <stdio.h>
#include <sys/stat.h>

#include "kernels/status.h"

// Opens `path` read-only (close-on-exec) into *fd when it is a regular file (symlinks followed); its stat in *sb
// when sb is not NULL. KT_ERR_IO "<path>: cannot open: <reason>" or "<path>: not a regular file (a directory)"
// (a FIFO, a character device, ...) otherwise, with *fd = -1.
KtStatus kt_open_input(const char *path, int *fd, struct stat *sb);

// kt_open_input as a stdio stream ("rb").
KtStatus kt_fopen_input(const char *path, FILE **f);
