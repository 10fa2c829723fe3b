// libFuzzer harness for the .npz reader: any bytes -> ev_npz_open_memory, then every listed array is read whole
// (ev_npz_read_f64) and streamed in batches of 3 rows, with a seek into the middle, one back to row 0 and a second
// full pass. Beyond the sanitizers it checks the error contract: a failure is KT_ERR_FORMAT or KT_ERR_UNSUPPORTED
// (KT_ERR_OOM for sizes a deflated member may claim) with a message that names the input, the listing agrees with
// ev_npz_has, and a stream delivers exactly its rows. The same bytes also go to the standalone .npy view.
// Build and run: scripts/fuzz.sh [seconds]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/npz.h"

#define NAME "fuzz-input.npz"
#define MAX_BYTES (1u << 24)  // deflate can claim ~1000x the input; skip members that would need more memory

static void fail(const char *what, KtStatus s) {
    fprintf(stderr, "contract violated: %s (%s): %s\n", what, kt_status_name(s), kt_last_error());
    abort();
}

static void expect_clean_error(const char *what, KtStatus s) {
    if (s != KT_ERR_FORMAT && s != KT_ERR_UNSUPPORTED && s != KT_ERR_OOM) fail(what, s);
    if (!strstr(kt_last_error(), NAME)) fail("error message does not name the file", s);
}

// Rows in batches of 3 until the end; the number read, or -1 after a (checked) error.
static int64_t stream_rows(EvNpyStream *s, uint8_t *buf) {
    int64_t total = 0, got;
    KtStatus st;
    while ((st = ev_npy_stream_read(s, buf, 3, &got)) == KT_OK && got > 0) total += got;
    if (st != KT_OK) {
        expect_clean_error("stream read", st);
        return -1;
    }
    return total;
}

static void stream_member(const EvNpz *z, const char *key) {
    EvNpyStream *s;
    EvNpyHeader h;
    KtStatus st = ev_npy_stream_open(&s, z, key, &h);
    if (st != KT_OK) {
        expect_clean_error("stream open", st);
        return;
    }
    int64_t rows = h.ndim ? h.shape[0] : 1;
    uint64_t row_bytes = rows ? h.data_bytes / (uint64_t)rows : 0;
    if (h.data_bytes > MAX_BYTES || row_bytes * 3 > MAX_BYTES || rows > (1 << 20)) {  // (N, 0) can have 2^62 rows
        ev_npy_stream_close(s);
        return;
    }
    uint8_t *buf = malloc(row_bytes * 3 + 1);
    if (!buf) abort();
    int64_t n = stream_rows(s, buf);
    if (n >= 0 && n != rows) fail("a stream delivered the wrong number of rows", KT_OK);
    if (n >= 0) {  // seek into the middle, then back to the start for a second full (CRC-checked) pass
        st = ev_npy_stream_seek(s, rows / 2);
        if (st == KT_OK) n = stream_rows(s, buf);
        else expect_clean_error("seek", st);
        if (st == KT_OK && n >= 0 && n != rows - rows / 2) fail("rows after a seek", KT_OK);
        st = ev_npy_stream_seek(s, 0);
        if (st == KT_OK) n = stream_rows(s, buf);
        else expect_clean_error("seek to 0", st);
        if (st == KT_OK && n >= 0 && n != rows) fail("rows after a seek to 0", KT_OK);
    }
    free(buf);
    ev_npy_stream_close(s);
}

// The same bytes as a standalone .npy file (`argen fid FEATURES.npy`): a clean error, or a header whose data is
// exactly the rest of the input, every byte of it readable.
static void standalone_npy(const uint8_t *data, size_t size) {
    EvNpyHeader h;
    const uint8_t *p;
    kt_clear_error();
    KtStatus s = ev_npy_view(&h, &p, data, size, NAME);
    if (s != KT_OK) {
        expect_clean_error("npy view", s);
        return;
    }
    if (p != data + h.header_bytes || h.header_bytes + h.data_bytes != size) fail("npy view bounds", KT_OK);
    unsigned sum = 0;
    for (uint64_t i = 0; i < h.data_bytes; i++) sum += p[i];
    if (sum == 0xFFFFFFFFu) fprintf(stderr, "%u\n", sum);  // keeps the reads
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    EvNpz *z;
    standalone_npy(data, size);
    kt_clear_error();
    KtStatus s = ev_npz_open_memory(&z, data, size, NAME);
    if (s != KT_OK) {
        expect_clean_error("open", s);
        return 0;
    }
    for (int i = 0; i < ev_npz_count(z) && i < 64; i++) {
        const char *key = ev_npz_key(z, i);
        if (!key || !ev_npz_has(z, key)) fail("a listed key is not found", KT_OK);
        EvNpyStream *peek;
        EvNpyHeader h;
        s = ev_npy_stream_open(&peek, z, key, &h);
        ev_npy_stream_close(peek);
        if (s == KT_OK && h.data_bytes <= MAX_BYTES) {
            double *v = NULL;
            s = ev_npz_read_f64(z, key, &v, NULL);
            if (s != KT_OK) expect_clean_error("read_f64", s);
            free(v);
        }
        stream_member(z, key);
    }
    ev_npz_close(z);
    return 0;
}
