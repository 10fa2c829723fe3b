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
    st = kt_host_buffer_alloc(be, &e->staging, EV_SETS * B * each * sizeof(float));
    if (st != KT_OK) {
        ev_extractor_free(e);
        return KT_FAIL(st, "feature extraction: out of memory for a batch of %zu (%s)", B, kt_last_error());
    }
    float *f = e->staging.data;
    for (int i = 0; i < EV_SETS; i++) {
        e->set[i].pool3 = f, f += B * INC_POOL3;
        e->set[i].logits = f, f += B * INC_CLASSES;
        e->set[i].spatial = f, f += B * INC_SPATIAL;
    }
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
    if (e->inflight.on) {  // its downloads still target the staging: let them land (its error is dropped)
        if (kt_fence_wait(e->net.be, e->inflight.fence) != KT_OK) kt_discard_errors(e->net.be);
        e->inflight.on = false;
    }
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
    const EvFeatures *f = &e->set[e->w_set];
    KtStatus st = ev_moments_add(&s->pool3, f->pool3, e->w_b);
    if (st == KT_OK && s->D_s) st = ev_moments_add(&s->spatial, f->spatial, e->w_b);
    if (st == KT_OK && s->is.C) st = ev_is_add(&s->is, f->logits, e->w_b, e->w_first);
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

// Joins the worker (its batch is then in the statistics and its staging set free).
static KtStatus join_worker(EvExtractor *e, KtStatus st) {
    if (!e->pending) return st;
    pthread_join(e->worker, NULL);
    e->pending = false;
    return worker_status(e, st);
}

// Collects the forward in flight, if any: waits for it, copies its pool3 features to features_out (when not NULL),
// and hands its batch to the worker (or accumulates it here). On an earlier error only waits (the batch is dropped).
static KtStatus collect(EvExtractor *e, KtStatus st, float *features_out) {
    EvInflight p = e->inflight;
    if (!p.on) return st;
    e->inflight.on = false;
    KtStatus w = kt_fence_wait(e->net.be, p.fence);
    if (st != KT_OK) return st;
    KT_TRY(w);
    const EvFeatures *f = &e->set[p.set];
    if (features_out) memcpy(features_out, f->pool3, (size_t)p.b * INC_POOL3 * sizeof(float));
    KT_TRY(join_worker(e, KT_OK));  // the worker's previous batch: in the statistics before this one
    e->w_set = p.set, e->w_stats = p.stats, e->w_b = p.b, e->w_first = p.first;
    if (e->overlap && pthread_create(&e->worker, NULL, accumulate, e) == 0) {
        e->pending = true;
        return KT_OK;
    }
    accumulate(e);  // in this thread (the CPU backend, or no thread to be had)
    return worker_status(e, KT_OK);
}

KtStatus ev_extractor_sync(EvExtractor *e, KtStatus st) {
    st = collect(e, st, NULL);
    return join_worker(e, st);
}

KtStatus ev_extractor_add(EvExtractor *e, EvFeatureStats *stats, const uint8_t *images, int B, int H, int W,
                          int64_t first_index, float *features_out) {
    KtBackend *be = e->net.be;
    for (int i = 0; i < B;) {  // in forwards of at most max_batch images
        int b = B - i < e->net.max_batch ? B - i : e->net.max_batch;
        // a staging set that neither the forward to be collected nor the worker's batch holds (of EV_SETS = 3)
        int set = e->next_set;
        while ((e->inflight.on && set == e->inflight.set) || (e->pending && set == e->w_set)) set = (set + 1) % EV_SETS;
        e->next_set = (set + 1) % EV_SETS;
        const EvFeatures *f = &e->set[set];
        IncOutputs out = {.pool3 = f->pool3, .logits = stats->is.C ? f->logits : NULL,
                          .spatial = stats->D_s ? f->spatial : NULL};
        int slot = e->slot;  // the other slot's forward (in flight) runs while this batch uploads
        e->slot = (slot + 1) % INC_SLOTS;
        KtStatus st = inception_submit(&e->net, images + (size_t)i * H * W * 3, b, H, W, e->mode, slot, &out, slot);
        st = collect(e, st, NULL);  // the previous forward, now that this one is queued behind it
        if (st == KT_OK) st = kt_side_wait(be);  // this batch's images are on the device
        if (st != KT_OK) {  // nothing may still read `images` or write `out` when the caller sees the error
            if (kt_side_wait(be) != KT_OK || kt_fence_wait(be, slot) != KT_OK) kt_discard_errors(be);
            return st;
        }
        e->inflight = (EvInflight){.on = true, .set = set, .b = b, .fence = slot, .first = first_index + i,
                                   .stats = stats};
        if (features_out) KT_TRY(collect(e, KT_OK, features_out + (size_t)i * INC_POOL3));
        i += b;
    }
    return KT_OK;
}
