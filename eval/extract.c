// Inception features into statistics, batch by batch.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

KtStatus ev_extractor_init(EvExtractor *e, KtBackend *be, const char *inception_path, int max_batch,
                           KtFidResize mode) {
    memset(e, 0, sizeof *e);
    e->mode = mode;
    KtCheckpoint ck = {0};
    if (inception_path) {
        KT_TRY(inception_check_hash(inception_path));
        KT_TRY(kt_ckpt_open(&ck, inception_path));
    }
    KtStatus st = inception_init(&e->net, be, inception_path ? &ck : NULL, 0x1ce97105, max_batch);
    if (inception_path) kt_ckpt_close(&ck);
    if (st != KT_OK) return st;
    size_t B = (size_t)e->net.max_batch;
    e->pool3 = malloc(B * INC_POOL3 * sizeof(float));
    e->logits = malloc(B * INC_CLASSES * sizeof(float));
    e->spatial = malloc(B * INC_SPATIAL * sizeof(float));
    if (!e->pool3 || !e->logits || !e->spatial) {
        ev_extractor_free(e);
        return KT_FAIL(KT_ERR_OOM, "feature extraction: out of memory for a batch of %zu", B);
    }
    return KT_OK;
}

void ev_extractor_free(EvExtractor *e) {
    if (!e) return;
    inception_free(&e->net);
    free(e->pool3);
    free(e->logits);
    free(e->spatial);
    memset(e, 0, sizeof *e);
}

KtStatus ev_extractor_add(EvExtractor *e, EvFeatureStats *stats, const uint8_t *images, int B, int H, int W,
                          int64_t first_index, float *features_out) {
    for (int i = 0; i < B;) {  // in forwards of at most max_batch images
        int b = B - i < e->net.max_batch ? B - i : e->net.max_batch;
        IncOutputs out = {.pool3 = e->pool3, .logits = stats->is.C ? e->logits : NULL,
                          .spatial = stats->D_s ? e->spatial : NULL};
        KT_TRY(inception_forward(&e->net, images + (size_t)i * H * W * 3, b, H, W, e->mode, &out));
        KtStatus st = ev_moments_add(&stats->pool3, e->pool3, b);
        if (st == KT_OK && stats->D_s) st = ev_moments_add(&stats->spatial, e->spatial, b);
        if (st == KT_OK && stats->is.C) st = ev_is_add(&stats->is, e->logits, b, first_index + i);
        if (st != KT_OK && e->net.be->matmul_dtype == KT_F16) {  // the likely cause: a map beyond fp16's range
            char msg[400];
            snprintf(msg, sizeof msg, "%s", kt_last_error());
            return KT_FAIL(st, "%s (--dtype fp16: a feature map may have overflowed 65504; use bf16 or fp32)", msg);
        }
        KT_TRY(st);
        if (features_out) memcpy(features_out + (size_t)i * INC_POOL3, e->pool3, (size_t)b * INC_POOL3 * sizeof(float));
        i += b;
    }
    return KT_OK;
}
