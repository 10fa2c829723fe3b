// Inception features into statistics, batch by batch; the statistics of one batch beside the next one's forward.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"

KtStatus ev_extractor_init(EvExtractor *e, KtBackend *be, const char *inception_path, int max_batch,
                           KtFidResize mode) {
    memset(e, 0, sizeof *e);
    e->mode = mode;
    e->overlap = be->device != KT_CPU;  // on the CPU the forward itself keeps the cores busy
    KtCheckpoint ck = {0};
    if (inception_path) {
        KT_TRY(inception_check_hash(inception_path));
        KT_TRY(kt_ckpt_open(&ck, inception_path));
    }
    KtStatus st = inception_init(&e->net, be, inception_path ? &ck : NULL, 0x1ce97105, max_batch);
    if (inception_path) kt_ckpt_close(&ck);
    if (st != KT_OK) return st;
    size_t B = (size_t)e->net.max_batch, each = INC_POOL3 + INC_CLASSES + INC_SPATIAL;
    st = kt_host_buffer_alloc(be, &e->staging, 2 * B * each * sizeof(float));
    if (st != KT_OK) {
        ev_extractor_free(e);
        return KT_FAIL(st, "feature extraction: out of memory for a batch of %zu (%s)", B, kt_last_error());
    }
    float *f = e->staging.data;
    e->pool3 = f, f += B * INC_POOL3;
    e->logits = f, f += B * INC_CLASSES;
    e->spatial = f, f += B * INC_SPATIAL;
    e->w_pool3 = f, f += B * INC_POOL3;
    e->w_logits = f, f += B * INC_CLASSES;
    e->w_spatial = f;
    return KT_OK;
}

KtStatus ev_extractor_input(EvExtractor *e, int slot, size_t nbytes, uint8_t **buf) {
    if (slot < 0 || slot >= EV_INPUT_SLOTS)
        return KT_FAIL(KT_ERR_ARG, "ev_extractor_input: slot %d outside [0, %d)", slot, EV_INPUT_SLOTS);
    KtBuffer *in = &e->input[slot];
    if (in->nbytes < nbytes) {
        kt_buffer_free(in);
        KT_TRY(kt_host_buffer_alloc(e->net.be, in, nbytes));
    }
    *buf = in->data;
    return KT_OK;
}

void ev_extractor_free(EvExtractor *e) {
    if (!e) return;
    if (e->pending) pthread_join(e->worker, NULL);
    inception_free(&e->net);
    kt_buffer_free(&e->staging);
    for (int i = 0; i < EV_INPUT_SLOTS; i++) kt_buffer_free(&e->input[i]);
    memset(e, 0, sizeof *e);
}

// The worker's batch into its statistics (pool3 and spatial moments, IS logits).
static void *accumulate(void *arg) {
    EvExtractor *e = arg;
    EvFeatureStats *s = e->w_stats;
    KtStatus st = ev_moments_add(&s->pool3, e->w_pool3, e->w_b);
    if (st == KT_OK && s->D_s) st = ev_moments_add(&s->spatial, e->w_spatial, e->w_b);
    if (st == KT_OK && s->is.C) st = ev_is_add(&s->is, e->w_logits, e->w_b, e->w_first);
    e->w_status = st;
    if (st != KT_OK) snprintf(e->w_error, sizeof e->w_error, "%s", kt_last_error());
    return NULL;
}

// st when it is an error already, else the finished worker's status (its message re-raised in this thread).
static KtStatus worker_status(const EvExtractor *e, KtStatus st) {
    if (st != KT_OK || e->w_status == KT_OK) return st;
    if (e->net.be->matmul_dtype == KT_F16)  // the likely cause: a map beyond fp16's range
        return KT_FAIL(e->w_status, "%s (--dtype fp16: a feature map may have overflowed 65504; use bf16 or fp32)",
                       e->w_error);
    return KT_FAIL(e->w_status, "%s", e->w_error);
}

KtStatus ev_extractor_sync(EvExtractor *e, KtStatus st) {
    if (!e->pending) return st;
    pthread_join(e->worker, NULL);
    e->pending = false;
    return worker_status(e, st);
}

static void swap(float **a, float **b) {
    float *t = *a;
    *a = *b;
    *b = t;
}

KtStatus ev_extractor_add(EvExtractor *e, EvFeatureStats *stats, const uint8_t *images, int B, int H, int W,
                          int64_t first_index, float *features_out) {
    for (int i = 0; i < B;) {  // in forwards of at most max_batch images
        int b = B - i < e->net.max_batch ? B - i : e->net.max_batch;
        IncOutputs out = {.pool3 = e->pool3, .logits = stats->is.C ? e->logits : NULL,
                          .spatial = stats->D_s ? e->spatial : NULL};
        KT_TRY(ev_extractor_sync(e, inception_forward(&e->net, images + (size_t)i * H * W * 3, b, H, W, e->mode, &out)));
        if (features_out) memcpy(features_out + (size_t)i * INC_POOL3, e->pool3, (size_t)b * INC_POOL3 * sizeof(float));
        swap(&e->pool3, &e->w_pool3);  // the worker takes this batch's features, the next forward the other set
        swap(&e->logits, &e->w_logits);
        swap(&e->spatial, &e->w_spatial);
        e->w_stats = stats, e->w_b = b, e->w_first = first_index + i;
        if (e->overlap && pthread_create(&e->worker, NULL, accumulate, e) == 0) {
            e->pending = true;
        } else {  // in this thread (the CPU backend, or no thread to be had)
            accumulate(e);
            KT_TRY(worker_status(e, KT_OK));
        }
        i += b;
    }
    return KT_OK;
}
