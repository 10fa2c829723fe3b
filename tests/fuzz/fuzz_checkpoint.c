// libFuzzer harness for the checkpoint readers: any bytes -> kt_ckpt_open_memory (format detection, safetensors,
// torch zip + unpickler, torch legacy), then every tensor is read back; the same bytes also go through the zip
// reader directly (npz users call it without the checkpoint layer). Beyond the sanitizers it checks the error
// contract: a failure is KT_ERR_FORMAT or KT_ERR_UNSUPPORTED with a message that names the input, and a tensor of
// an opened checkpoint always reads.
// Build and run: scripts/fuzz.sh [seconds]
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/checkpoint.h"
#include "kernels/checkpoint/zip.h"

#define NAME "fuzz-input.pth"

static void fail(const char *what, KtStatus s) {
    fprintf(stderr, "contract violated: %s (%s): %s\n", what, kt_status_name(s), kt_last_error());
    abort();
}

static void read_all(const KtCheckpoint *ck) {
    for (int i = 0; i < ck->n_tensors; i++) {
        const KtCkptTensor *t = &ck->tensors[i];
        int64_t n = kt_ckpt_numel(t);
        if (n > (1 << 22)) continue;  // zero strides can make a huge tensor out of a tiny storage
        void *buf = malloc((size_t)(n ? n : 1) * 8);
        if (!buf) abort();
        KtStatus s = kt_ckpt_read_f32(ck, t, buf);
        if (s != KT_OK) fail("read_f32 of an opened tensor", s);
        if (t->dtype == KT_I64 || t->dtype == KT_I32 || t->dtype == KT_U8) {
            s = kt_ckpt_read_i64(ck, t, buf);
            if (s != KT_OK) fail("read_i64 of an opened integer tensor", s);
        }
        free(buf);
    }
}

static void zip_members(const uint8_t *data, size_t size) {
    KtZip z;
    KtStatus s = kt_zip_open(&z, data, size, "fuzz-input.zip");
    if (s != KT_OK) {
        if (s != KT_ERR_FORMAT && s != KT_ERR_OOM) fail("kt_zip_open status", s);
        if (!strstr(kt_last_error(), "fuzz-input.zip")) fail("zip message lacks the name", s);
        return;
    }
    for (int i = 0; i < z.n_entries && i < 64; i++) {
        const uint8_t *d;
        size_t n;
        void *owned = NULL;
        if (kt_zip_member_data(&z, &z.entries[i], &d, &n, &owned) == KT_OK && n) {
            volatile uint8_t sink = d[0] ^ d[n - 1];  // touch both ends: ASan checks the bounds
            (void)sink;
        }
        free(owned);
        if (kt_zip_find(&z, z.entries[i].name) == NULL) fail("kt_zip_find misses a listed entry", KT_OK);
    }
    kt_zip_free(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    KtCheckpoint ck;
    kt_clear_error();
    KtStatus s = kt_ckpt_open_memory(&ck, data, size, NAME);
    if (s == KT_OK) {
        read_all(&ck);
        kt_ckpt_close(&ck);
    } else {
        if (s != KT_ERR_FORMAT && s != KT_ERR_UNSUPPORTED) fail("open status", s);
        if (!strstr(kt_last_error(), NAME)) fail("error message does not name the file", s);
    }
    zip_members(data, size);
    return 0;
}
