// Image sets for evaluation: a directory of PNG files (sorted by name) or a sample batch .npz (`arr_0`, uint8
// (N, H, W, 3), the ADM layout), read a batch at a time in bounded memory.
#pragma once

#include <stdint.h>

#include "eval/npz.h"

typedef struct {
    const char *path;     // borrowed
    bool is_dir;
    int64_t n;            // images in the set
    char **files;         // dir: n full paths, sorted by name (owned)
    EvNpz *npz;           // npz: the archive and its arr_0 stream
    EvNpyStream *stream;
    int H, W;             // npz: the image size
    int64_t pos;          // npz: next row of the stream
    int threads;          // dir: PNG decoding threads, 1 .. CLI_MAX_THREADS (default: cli_cores())
} FidSource;

// Opens a PNG directory or a sample .npz. KT_ERR_FORMAT/IO naming the path on anything unexpected (no PNGs, arr_0
// missing or not uint8 (N, H, W, 3), ...).
KtStatus fid_source_open(FidSource *s, const char *path);
void fid_source_close(FidSource *s);
// Reads up to max_n images starting at index `first` (< n) that share one size into *buf (*cap bytes; grown with
// realloc as needed when `grow`, else KT_ERR_ARG when max_n images of the first one's size do not fit), returning
// the count in *got (>= 1) and the size in *H, *W. A directory's batch ends before the first PNG of another size; a
// PNG that fails before that fails the call. Not thread-safe (one reader per source).
KtStatus fid_source_read(FidSource *s, int64_t first, int max_n, uint8_t **buf, size_t *cap, bool grow, int *got,
                         int *H, int *W);
