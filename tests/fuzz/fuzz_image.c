// libFuzzer harness for the image readers of cli/image_io.c: any bytes -> a file -> read_image_rgb8 (PNG through
// libpng with our conversions to RGB8, JPEG through stb_image) and read_png_eval (8-bit PNGs only). Beyond the
// sanitizers it checks the error contract: a failure is KT_ERR_FORMAT (or KT_ERR_OOM for a huge declared size) with
// a message that names the file and no buffer; a success returns a w x h x 3 buffer inside IMAGE_MAX_DIM whose every
// byte is read (so a short buffer or uninitialised rows show), and read_png_eval agrees with read_image_rgb8.
// Build and run: scripts/fuzz.sh [seconds]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/image_io.h"

static char g_path[64];

static void fail(const char *what, KtStatus s) {
    fprintf(stderr, "contract violated: %s (%s): %s\n", what, kt_status_name(s), kt_last_error());
    abort();
}

// Checks one reader's result; returns a checksum of the pixels (0 after an error).
static unsigned check(const char *what, KtStatus s, uint8_t *rgb, int w, int h) {
    if (s != KT_OK) {
        if (s != KT_ERR_FORMAT && s != KT_ERR_OOM) fail(what, s);
        if (!strstr(kt_last_error(), g_path)) fail("error message does not name the file", s);
        if (rgb) fail("a failed read returned pixels", s);
        return 0;
    }
    if (!rgb || w < 1 || h < 1 || w > IMAGE_MAX_DIM || h > IMAGE_MAX_DIM) fail("bad image on success", s);
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) sum = sum * 31u + rgb[i];
    return sum | 1u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) snprintf(g_path, sizeof g_path, "/tmp/argen-fuzz-image-%ld.png", (long)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "fuzz_image: cannot write %s\n", g_path);
        abort();
    }
    uint8_t *a = NULL, *b = NULL;
    int wa, ha, wb, hb;
    KtStatus sa = read_image_rgb8(g_path, &a, &wa, &ha);
    unsigned ca = check("read_image_rgb8", sa, a, wa, ha);
    KtStatus sb = read_png_eval(g_path, &b, &wb, &hb);
    unsigned cb = check("read_png_eval", sb, b, wb, hb);
    // an image the evaluation reader accepts is an 8-bit PNG both read the same way
    if (sb == KT_OK && (sa != KT_OK || wa != wb || ha != hb || ca != cb)) fail("the two readers disagree", sb);
    free(a);
    free(b);
    return 0;
}
