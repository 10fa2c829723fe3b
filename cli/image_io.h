// Image files for the CLI: PNG (libpng) in and out, JPEG in (libjpeg) and out (stb_image_write), as packed 8-bit RGB,
// plus small filesystem
// helpers. Writes are atomic: the image goes to "<path>.tmp.<pid>", is fsync'd and renamed over <path>; on any
// failure the temporary file is removed and <path> is left as it was. Every error message starts with the path.
// rgb buffers are (H, W, 3) uint8, row-major, no padding.
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kernels/status.h"

// Largest width or height accepted on read (and on write, to keep w*h*3 well inside size_t and int). The fuzz
// harness builds with a smaller limit (declared sizes are allocated before the data proves them).
#ifndef IMAGE_MAX_DIM
#define IMAGE_MAX_DIM 16384
#endif

// Writes an 8-bit RGB PNG with n_text tEXt chunks (keys 1..79 printable Latin-1 characters, values Latin-1,
// e.g. key "argen" with the settings JSON). text_keys/text_values may be NULL when n_text is 0.
KtStatus write_png_rgb8(const char *path, const uint8_t *rgb, int w, int h, const char *const *text_keys,
                        const char *const *text_values, int n_text);

// Writes a baseline JPEG (stb_image_write; 4:2:0 chroma subsampling when quality < 90); quality in [1, 100].
KtStatus write_jpeg_rgb8(const char *path, const uint8_t *rgb, int w, int h, int quality);

// Reads a PNG (any bit depth and colour type; 16-bit is scaled, palette and gray expanded, alpha dropped, gamma
// and colour profiles ignored) or a JPEG (libjpeg: baseline or progressive, gray or YCbCr; CMYK refused) into a
// malloc'd (h, w, 3) buffer the caller frees. On failure *rgb is NULL. Errors: KT_ERR_IO (cannot open/read),
// KT_ERR_FORMAT (not PNG/JPEG, truncated, corrupt, dimensions above IMAGE_MAX_DIM), KT_ERR_OOM.
KtStatus read_image_rgb8(const char *path, uint8_t **rgb, int *w, int *h);

// Reads a PNG for evaluation (FID/IS): 8-bit gray, gray+alpha, RGB or RGBA (alpha dropped, gray replicated) into a
// malloc'd (h, w, 3) buffer. Anything else (16-bit, palette, JPEG, not a PNG) is KT_ERR_FORMAT naming the file.
KtStatus read_png_eval(const char *path, uint8_t **rgb, int *w, int *h);

// mkdir -p: creates path and its missing parents (mode 0777 & ~umask). Fails with a message naming the first
// component that is not a directory or cannot be created, or when the final directory is not writable.
KtStatus ensure_dir(const char *path);

// True if path names an existing regular file (symlinks followed).
bool file_exists(const char *path);
// Checks before long work that the output file `path` (given by option `flag`) can be written: its directory exists
// and is writable, and `path` is not a directory. The file itself is written at the end (atomically), so without this
// check a typo in the path would cost the whole run.
KtStatus check_output_file(const char *flag, const char *path);

// Writes text to path atomically (as the images: "<path>.tmp.<pid>", fsync, rename).
KtStatus write_text_atomic(const char *path, const char *text);
