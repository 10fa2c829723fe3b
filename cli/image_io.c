// PNG/JPEG reading and atomic writing as packed 8-bit RGB, mkdir -p and file_exists. libpng's and libjpeg's error
// handling (their error callbacks longjmp) is confined to this file: each session runs in one function that owns a
// context struct in its caller's frame, so nothing the longjmp skips over needs to be volatile.
#include "cli/image_io.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// stb is third-party code: its implementation is built here and nowhere else, with its warnings silenced.
// Its JPEG bit writer (stbiw__jpg_writeBits) shifts set bits out of a signed int, which UBSan reports and the
// sanitizer preset (-fno-sanitize-recover) turns into an abort. GCC and clang define that shift (two's
// complement), so stb's functions are compiled without the shift check: clang applies no_sanitize("shift") to
// every function by pragma; GCC has no such pragma, so `static` carries the attribute while the implementation is
// expanded (GCC ignores it on the static variables). The standard headers stb includes are included first so that
// its own #includes are empty while `static` is a macro.
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wpedantic"
#define STBIW_ASSERT(x) assert(x)
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#ifdef __clang__
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#include <stb_image_write.h>
#pragma clang attribute pop
#else
#pragma GCC diagnostic ignored "-Wattributes"
#define static static __attribute__((no_sanitize("shift")))
#include <stb_image_write.h>
#undef static
#endif
#pragma GCC diagnostic pop

// JPEG input goes through libjpeg(-turbo), not stb_image: stb's decoder overflows its Huffman size table on crafted
// files (found by tests/fuzz/fuzz_image.c), libjpeg is fuzzed upstream. Included after stdio.h, as it requires.
#include <jpeglib.h>

#include "kernels/input_file.h"

// ------------------------------------------------------------------------------------------- atomic files
typedef struct {
    char *tmp;  // "<path>.tmp.<pid>"
    FILE *f;
    int err;    // first errno seen by a write callback (0: none)
} AtomicFile;

static void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

static KtStatus atomic_open(const char *path, AtomicFile *af) {
    memset(af, 0, sizeof *af);
    size_t cap = strlen(path) + 32;
    af->tmp = malloc(cap);
    if (!af->tmp) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
    snprintf(af->tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        int e = errno;
        free(af->tmp);
        af->tmp = NULL;  // nothing was created
        return KT_FAIL(KT_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        atomic_abort(af);
        return KT_FAIL(KT_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
    }
    return KT_OK;
}

// Best effort: make the rename itself durable. Failure here cannot un-write the file, so it is ignored.
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

// Flushes, fsyncs and closes the temporary file, then renames it over path. Always releases af.
static KtStatus atomic_commit(const char *path, AtomicFile *af) {
    const char *what = "write failed";
    int e = af->err;
    errno = 0;
    if (!e && (fflush(af->f) != 0 || ferror(af->f))) e = errno ? errno : EIO;
    if (!e && fsync(fileno(af->f)) != 0) e = errno, what = "fsync failed";
    if (!e) {
        int rc = fclose(af->f);
        af->f = NULL;
        if (rc != 0) e = errno;
    }
    if (!e && rename(af->tmp, path) != 0) e = errno, what = "cannot move the temporary file into place";
    if (e) {
        atomic_abort(af);
        return KT_FAIL(KT_ERR_IO, "%s: %s: %s", path, what, strerror(e));
    }
    free(af->tmp);
    memset(af, 0, sizeof *af);
    fsync_parent_dir(path);
    return KT_OK;
}

static KtStatus check_rgb_args(const char *path, const uint8_t *rgb, int w, int h) {
    if (!path || !path[0]) return KT_FAIL(KT_ERR_ARG, "image write: empty output path");
    if (!rgb) return KT_FAIL(KT_ERR_ARG, "%s: no pixel data", path);
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_DIM || h > IMAGE_MAX_DIM)
        return KT_FAIL(KT_ERR_ARG, "%s: image size %dx%d outside 1..%d", path, w, h, IMAGE_MAX_DIM);
    return KT_OK;
}

// -------------------------------------------------------------------------------------------- PNG writing
// libpng's error_ptr: where its error callback leaves the message and jumps back to.
typedef struct {
    jmp_buf jb;
    char msg[256];
} PngErr;

typedef struct {
    PngErr err;
    AtomicFile *af;
    png_structp png;
    png_infop info;
    png_text *text;
} PngWriteCtx;

static void png_on_error(png_structp png, png_const_charp msg) {
    PngErr *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    longjmp(e->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;  // warnings (bad sRGB chunk and the like) do not affect the pixels we use
    (void)msg;
}

static void png_write_cb(png_structp png, png_bytep data, size_t len) {
    PngWriteCtx *c = png_get_io_ptr(png);
    if (fwrite(data, 1, len, c->af->f) != len) {
        c->af->err = errno ? errno : EIO;
        png_error(png, strerror(c->af->err));
    }
}

static void png_flush_cb(png_structp png) { (void)png; }

// Runs the whole libpng write session; everything it allocates hangs off c, which the caller owns.
static int png_write_session(PngWriteCtx *c, const uint8_t *rgb, int w, int h, int n_text) {
    if (setjmp(c->err.jb)) return 0;
    c->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c->err, png_on_error, png_on_warning);
    if (!c->png) {
        snprintf(c->err.msg, sizeof c->err.msg, "out of memory");
        return 0;
    }
    png_set_write_fn(c->png, c, png_write_cb, png_flush_cb);
    c->info = png_create_info_struct(c->png);
    if (!c->info) png_error(c->png, "out of memory");
    png_set_IHDR(c->png, c->info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (n_text > 0) png_set_text(c->png, c->info, c->text, n_text);
    png_write_info(c->png, c->info);
    for (int y = 0; y < h; y++) png_write_row(c->png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(c->png, c->info);
    return 1;
}

static KtStatus check_text(const char *path, const char *const *keys, const char *const *values, int n) {
    if (n < 0 || (n > 0 && (!keys || !values))) return KT_FAIL(KT_ERR_ARG, "%s: bad text chunk list", path);
    for (int i = 0; i < n; i++) {
        size_t len = keys[i] ? strlen(keys[i]) : 0;
        if (len < 1 || len > 79 || !values[i])
            return KT_FAIL(KT_ERR_ARG, "%s: PNG text key %d must be 1..79 characters with a value", path, i);
        for (const unsigned char *k = (const unsigned char *)keys[i]; *k; k++)
            if (*k < 32 || (*k > 126 && *k < 161))
                return KT_FAIL(KT_ERR_ARG, "%s: PNG text key '%s' has a non-printable character", path, keys[i]);
    }
    return KT_OK;
}

KtStatus write_png_rgb8(const char *path, const uint8_t *rgb, int w, int h, const char *const *text_keys,
                        const char *const *text_values, int n_text) {
    KT_TRY(check_rgb_args(path, rgb, w, h));
    KT_TRY(check_text(path, text_keys, text_values, n_text));
    AtomicFile af;
    PngWriteCtx c;
    memset(&c, 0, sizeof c);
    c.af = &af;
    if (n_text > 0) {
        c.text = calloc((size_t)n_text, sizeof *c.text);
        if (!c.text) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
        for (int i = 0; i < n_text; i++) {
            c.text[i].compression = PNG_TEXT_COMPRESSION_NONE;  // tEXt
            c.text[i].key = (png_charp)text_keys[i];            // libpng copies, never writes through these
            c.text[i].text = (png_charp)text_values[i];
            c.text[i].text_length = strlen(text_values[i]);
        }
    }
    KtStatus s = atomic_open(path, &af);
    if (s != KT_OK) goto cleanup;
    int ok = png_write_session(&c, rgb, w, h, n_text);
    png_destroy_write_struct(&c.png, &c.info);
    if (!ok) {
        KtStatus kind = af.err ? KT_ERR_IO : KT_ERR_FORMAT;  // read before atomic_abort clears af
        atomic_abort(&af);
        s = KT_FAIL(kind, "%s: cannot write PNG: %s", path, c.err.msg);
        goto cleanup;
    }
    s = atomic_commit(path, &af);
cleanup:
    free(c.text);
    return s;
}

// ------------------------------------------------------------------------------------------- JPEG writing
static void jpeg_write_cb(void *ctx, void *data, int size) {
    AtomicFile *af = ctx;
    if (!af->err && fwrite(data, 1, (size_t)size, af->f) != (size_t)size) af->err = errno ? errno : EIO;
}

KtStatus write_jpeg_rgb8(const char *path, const uint8_t *rgb, int w, int h, int quality) {
    KT_TRY(check_rgb_args(path, rgb, w, h));
    if (quality < 1 || quality > 100)
        return KT_FAIL(KT_ERR_ARG, "%s: JPEG quality must be in [1, 100], got %d", path, quality);
    AtomicFile af;
    KT_TRY(atomic_open(path, &af));
    if (!stbi_write_jpg_to_func(jpeg_write_cb, &af, w, h, 3, rgb, quality)) {
        atomic_abort(&af);
        return KT_FAIL(KT_ERR_IO, "%s: JPEG encoder failed", path);
    }
    return atomic_commit(path, &af);
}

// -------------------------------------------------------------------------------------------- PNG reading
typedef struct {
    PngErr err;
    FILE *f;
    KtStatus kind;  // KT_ERR_FORMAT unless the read callback saw an I/O error
    png_structp png;
    png_infop info;
    uint8_t *pix;
    png_bytep *rows;
    png_uint_32 w, h;
    bool eval_only;  // read_png_eval: 8-bit gray/gray+alpha/RGB/RGBA only
} PngReadCtx;

static void png_read_cb(png_structp png, png_bytep data, size_t len) {
    PngReadCtx *c = png_get_io_ptr(png);
    if (fread(data, 1, len, c->f) == len) return;
    if (ferror(c->f)) {
        c->kind = KT_ERR_IO;
        png_error(png, strerror(errno ? errno : EIO));
    }
    png_error(png, "truncated PNG data");
}

static int png_read_session(PngReadCtx *c) {
    if (setjmp(c->err.jb)) return 0;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c->err, png_on_error, png_on_warning);
    if (!c->png) {
        c->kind = KT_ERR_OOM;
        snprintf(c->err.msg, sizeof c->err.msg, "out of memory");
        return 0;
    }
    png_set_read_fn(c->png, c, png_read_cb);
    // libpng allocates a chunk's declared length before reading its data (a 100-byte file with a tEXt chunk "of
    // 1.3 GB" asks for 1.3 GB): skip unknown chunks and the text/profile/palette-suggestion chunks nothing here
    // uses (they are then read past in small pieces), and cap what any other chunk may take
    static const png_byte unused[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0tIME\0pHYs\0hIST\0";
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, unused, (int)(sizeof unused / 5));
    png_set_chunk_malloc_max(c->png, 16u << 20);
    c->info = png_create_info_struct(c->png);
    if (!c->info) png_error(c->png, "out of memory");
    png_set_sig_bytes(c->png, 8);
    png_read_info(c->png, c->info);
    int depth, color;
    png_get_IHDR(c->png, c->info, &c->w, &c->h, &depth, &color, NULL, NULL, NULL);
    if (c->w > IMAGE_MAX_DIM || c->h > IMAGE_MAX_DIM) {
        snprintf(c->err.msg, sizeof c->err.msg, "image is %lux%lu, larger than the %dx%d limit", (unsigned long)c->w,
                 (unsigned long)c->h, IMAGE_MAX_DIM, IMAGE_MAX_DIM);
        return 0;
    }
    if (c->eval_only && (depth != 8 || color == PNG_COLOR_TYPE_PALETTE)) {
        snprintf(c->err.msg, sizeof c->err.msg, "%s PNG with %d-bit samples: evaluation reads 8-bit RGB, RGBA or "
                 "gray PNGs only (convert it losslessly, or regenerate the samples as 8-bit RGB)",
                 color == PNG_COLOR_TYPE_PALETTE ? "palette" : color & PNG_COLOR_MASK_COLOR ? "colour" : "gray", depth);
        return 0;
    }
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (depth == 16) png_set_scale_16(c->png);
    if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(c->png);
    png_set_strip_alpha(c->png);  // also drops the alpha palette expansion adds for tRNS
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    if (png_get_channels(c->png, c->info) != 3 || png_get_bit_depth(c->png, c->info) != 8 ||
        png_get_rowbytes(c->png, c->info) != (size_t)c->w * 3)
        png_error(c->png, "unsupported pixel layout after conversion to RGB8");
    size_t row = (size_t)c->w * 3;
    c->pix = malloc(row * c->h);
    c->rows = malloc(sizeof *c->rows * c->h);
    if (!c->pix || !c->rows) {
        c->kind = KT_ERR_OOM;
        png_error(c->png, "out of memory");
    }
    for (png_uint_32 y = 0; y < c->h; y++) c->rows[y] = c->pix + row * y;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL);
    return 1;
}

static KtStatus read_png(FILE *f, const char *path, uint8_t **rgb, int *w, int *h, bool eval_only) {
    PngReadCtx c;
    memset(&c, 0, sizeof c);
    c.eval_only = eval_only;
    c.f = f;
    c.kind = KT_ERR_FORMAT;
    int ok = png_read_session(&c);
    png_destroy_read_struct(&c.png, &c.info, NULL);
    free(c.rows);
    if (!ok) {
        free(c.pix);
        const char *m = c.err.msg;
        if (!strcmp(m, "truncated PNG data") || c.kind != KT_ERR_FORMAT || !strncmp(m, "image is", 8) ||
            strstr(m, "evaluation reads"))
            return KT_FAIL(c.kind, "%s: %s", path, m);
        return KT_FAIL(c.kind, "%s: corrupt PNG: %s", path, m);
    }
    *rgb = c.pix;
    *w = (int)c.w;
    *h = (int)c.h;
    return KT_OK;
}

// libjpeg reports errors through error_exit (must not return: longjmp back to the session) and corrupt-data warnings
// (premature end of data, bad Huffman code: it would go on and fill the rest with grey) through emit_message level
// -1, which is an error here too: a damaged JPEG is refused, not decoded into partly made-up pixels.
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_on_error(cinfo);  // a warning: corrupt data
}

typedef struct {
    JpegErr err;
    struct jpeg_decompress_struct cinfo;
    bool created;
    KtStatus kind;
    uint8_t *pix;
    JDIMENSION w, h;
} JpegReadCtx;

static int jpeg_read_session(JpegReadCtx *c, FILE *f) {
    if (setjmp(c->err.jb)) return 0;
    c->cinfo.err = jpeg_std_error(&c->err.pub);
    c->err.pub.error_exit = jpeg_on_error;
    c->err.pub.emit_message = jpeg_on_message;
    jpeg_create_decompress(&c->cinfo);
    c->created = true;
    jpeg_stdio_src(&c->cinfo, f);
    jpeg_read_header(&c->cinfo, TRUE);
    c->w = c->cinfo.image_width;
    c->h = c->cinfo.image_height;
    if (c->w > IMAGE_MAX_DIM || c->h > IMAGE_MAX_DIM) {
        snprintf(c->err.msg, sizeof c->err.msg, "image is %lux%lu, larger than the %dx%d limit", (unsigned long)c->w,
                 (unsigned long)c->h, IMAGE_MAX_DIM, IMAGE_MAX_DIM);
        return 0;
    }
    if (c->cinfo.jpeg_color_space == JCS_CMYK || c->cinfo.jpeg_color_space == JCS_YCCK) {
        snprintf(c->err.msg, sizeof c->err.msg, "a CMYK JPEG: argen reads RGB and gray images (convert it to RGB)");
        return 0;
    }
    c->cinfo.out_color_space = JCS_RGB;  // gray and YCbCr convert to RGB
    jpeg_start_decompress(&c->cinfo);
    if (c->cinfo.output_components != 3 || c->cinfo.output_width != c->w || c->cinfo.output_height != c->h) {
        snprintf(c->err.msg, sizeof c->err.msg, "unsupported JPEG layout (%d components)", c->cinfo.output_components);
        return 0;
    }
    size_t row = (size_t)c->w * 3;
    c->pix = malloc(row * c->h);
    if (!c->pix) {
        c->kind = KT_ERR_OOM;
        snprintf(c->err.msg, sizeof c->err.msg, "out of memory");
        return 0;
    }
    while (c->cinfo.output_scanline < c->h) {
        JSAMPROW r = c->pix + row * c->cinfo.output_scanline;
        jpeg_read_scanlines(&c->cinfo, &r, 1);
    }
    jpeg_finish_decompress(&c->cinfo);
    return 1;
}

static KtStatus read_jpeg(FILE *f, const char *path, uint8_t **rgb, int *w, int *h) {
    JpegReadCtx c;
    memset(&c, 0, sizeof c);
    c.kind = KT_ERR_FORMAT;
    rewind(f);
    int ok = jpeg_read_session(&c, f);
    if (c.created) jpeg_destroy_decompress(&c.cinfo);
    if (!ok) {
        free(c.pix);
        if (ferror(f)) return KT_FAIL(KT_ERR_IO, "%s: read error: %s", path, strerror(errno ? errno : EIO));
        if (c.kind != KT_ERR_FORMAT || !strncmp(c.err.msg, "image is", 8) || !strncmp(c.err.msg, "a CMYK", 6))
            return KT_FAIL(c.kind, "%s: %s", path, c.err.msg);
        return KT_FAIL(KT_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", path, c.err.msg);
    }
    *rgb = c.pix;
    *w = (int)c.w;
    *h = (int)c.h;
    return KT_OK;
}

KtStatus read_image_rgb8(const char *path, uint8_t **rgb, int *w, int *h) {
    *rgb = NULL;
    *w = *h = 0;
    FILE *f;
    KT_TRY(kt_fopen_input(path, &f));
    uint8_t sig[8];
    size_t n = fread(sig, 1, sizeof sig, f);
    KtStatus s;
    if (ferror(f)) s = KT_FAIL(KT_ERR_IO, "%s: read error: %s", path, strerror(errno));
    else if (n == 8 && png_sig_cmp(sig, 0, 8) == 0) s = read_png(f, path, rgb, w, h, false);
    else if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) s = read_jpeg(f, path, rgb, w, h);
    else if (n > 0 && png_sig_cmp(sig, 0, n) == 0) s = KT_FAIL(KT_ERR_FORMAT, "%s: truncated PNG data", path);
    else if (n == 0) s = KT_FAIL(KT_ERR_FORMAT, "%s: empty file, expected a PNG or JPEG image", path);
    else s = KT_FAIL(KT_ERR_FORMAT, "%s: not a PNG or JPEG file", path);
    fclose(f);
    return s;
}

KtStatus read_png_eval(const char *path, uint8_t **rgb, int *w, int *h) {
    *rgb = NULL;
    *w = *h = 0;
    FILE *f;
    KT_TRY(kt_fopen_input(path, &f));
    uint8_t sig[8];
    size_t n = fread(sig, 1, sizeof sig, f);
    KtStatus s;
    if (ferror(f)) s = KT_FAIL(KT_ERR_IO, "%s: read error: %s", path, strerror(errno));
    else if (n == 8 && png_sig_cmp(sig, 0, 8) == 0) s = read_png(f, path, rgb, w, h, true);
    else if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
        s = KT_FAIL(KT_ERR_FORMAT, "%s: a JPEG: evaluation takes lossless PNGs only (JPEG artefacts change FID)", path);
    else if (n > 0 && png_sig_cmp(sig, 0, n) == 0) s = KT_FAIL(KT_ERR_FORMAT, "%s: truncated PNG data", path);
    else if (n == 0) s = KT_FAIL(KT_ERR_FORMAT, "%s: empty file, expected a PNG image", path);
    else s = KT_FAIL(KT_ERR_FORMAT, "%s: not a PNG file", path);
    fclose(f);
    return s;
}

// ----------------------------------------------------------------------------------------------- filesystem
KtStatus ensure_dir(const char *path) {
    if (!path || !path[0]) return KT_FAIL(KT_ERR_ARG, "ensure_dir: empty path");
    char *buf = strdup(path);
    if (!buf) return KT_FAIL(KT_ERR_OOM, "%s: out of memory", path);
    KtStatus s = KT_OK;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0) continue;
        char saved = *p;
        *p = 0;
        struct stat st;
        if (mkdir(buf, 0777) != 0) {
            int e = errno;  // EEXIST, but also EACCES/EROFS for existing dirs on some filesystems: stat decides
            if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode)) {
                s = KT_FAIL(KT_ERR_IO, "%s: cannot create directory: '%s' exists and is not a directory", path, buf);
                goto cleanup;
            }
            if (stat(buf, &st) != 0) {
                s = strcmp(buf, path) == 0
                        ? KT_FAIL(KT_ERR_IO, "%s: cannot create directory: %s", path, strerror(e))
                        : KT_FAIL(KT_ERR_IO, "%s: cannot create directory '%s': %s", path, buf, strerror(e));
                goto cleanup;
            }
        }
        *p = saved;
        if (!saved) break;
    }
    if (access(path, W_OK | X_OK) != 0)
        s = KT_FAIL(KT_ERR_IO, "%s: directory is not writable: %s", path, strerror(errno));
cleanup:
    free(buf);
    return s;
}

bool file_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

KtStatus check_output_file(const char *flag, const char *path) {
    struct stat st;
    if (!path[0]) return KT_FAIL(KT_ERR_ARG, "%s: expected a file name, got ''", flag);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return KT_FAIL(KT_ERR_ARG, "%s %s: is a directory, expected a file name", flag, path);
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0)
        return KT_FAIL(KT_ERR_IO, "%s %s: directory '%s': %s", flag, path, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return KT_FAIL(KT_ERR_IO, "%s %s: '%s' is not a directory", flag, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return KT_FAIL(KT_ERR_IO, "%s %s: directory '%s' is not writable: %s", flag, path, dir, strerror(errno));
    return KT_OK;
}

KtStatus write_text_atomic(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return KT_FAIL(KT_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
    bool ok = fputs(text, f) >= 0;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return KT_FAIL(KT_ERR_IO, "%s: cannot write file: %s", path, strerror(e));
    }
    return KT_OK;
}
