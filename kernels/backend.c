// Backend selection, owned buffers, host<->device copies and the bump arena.
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

#ifndef ARGEN_HAVE_CUDA
KtStatus kt_backend_cuda_init(KtBackend *be, int device_index) {
    (void)device_index;
    memset(be, 0, sizeof *be);
    return KT_FAIL(KT_ERR_UNSUPPORTED, "--device cuda: this argen build has no CUDA support "
                                       "(rebuild with nvcc available, or -DARGEN_CUDA=ON to require it)");
}
bool kt_cuda_available(void) { return false; }
bool kt_cuda_device_present(void) { return false; }
#endif

KtStatus kt_backend_init_by_name(KtBackend *be, const char *name) {
    if (!name || !strcmp(name, "auto")) {
        if (!kt_cuda_device_present()) return kt_backend_cpu_init(be, 0);  // no GPU: the CPU, nothing to say
        if (kt_backend_cuda_init(be, 0) == KT_OK) return KT_OK;
        char why[200];  // a GPU that cannot be used (busy, out of memory, ...): the CPU, saying why
        snprintf(why, sizeof why, "%s", kt_last_error());
        kt_clear_error();
        KT_TRY(kt_backend_cpu_init(be, 0));
        kt_backend_note(be, "--device auto: the CPU (CUDA init failed: %s)", why);
        return KT_OK;
    }
    if (!strcmp(name, "cpu")) return kt_backend_cpu_init(be, 0);
    if (!strcmp(name, "cuda")) return kt_backend_cuda_init(be, 0);
    return KT_FAIL(KT_ERR_ARG, "--device: expected auto, cpu or cuda, got '%s'", name);
}

KtStatus kt_backend_init_for(KtBackend *be, const char *device, KtDType dt) {
    KT_TRY(kt_backend_init_by_name(be, device));
    bool auto_cpu = (!device || !strcmp(device, "auto")) && be->device == KT_CPU;
    if (auto_cpu && dt != KT_F32) {  // --dtype is a GPU setting: --device auto on a machine without one runs fp32
        kt_backend_note(be, "--dtype %s: the CPU computes in float32 (--device auto found no usable GPU)",
                        dt == KT_BF16 ? "bf16" : "fp16");
        dt = KT_F32;
    }
    KtStatus st = kt_backend_set_matmul_dtype(be, dt);
    if (st != KT_OK) kt_backend_free(be);
    return st;
}

void kt_backend_free(KtBackend *be) {
    if (!be || !be->ops) return;
    be->ops->destroy(be);
    free(be->prof);
    memset(be, 0, sizeof *be);
}

void kt_backend_note(KtBackend *be, const char *fmt, ...) {
    char note[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    if (strstr(be->notes, note)) return;
    size_t used = strlen(be->notes), need = strlen(note) + (used ? 2 : 0);
    if (used + need >= sizeof be->notes) return;
    snprintf(be->notes + used, sizeof be->notes - used, "%s%s", used ? "; " : "", note);
}

KtStatus kt_buffer_alloc(KtBackend *be, KtBuffer *buf, size_t nbytes) {
    memset(buf, 0, sizeof *buf);
    if (nbytes == 0) nbytes = 64;
    KT_TRY(be->ops->alloc(be, &buf->data, nbytes));
    buf->nbytes = nbytes;
    buf->device = be->device;
    buf->owner = be;
    return KT_OK;
}

KtStatus kt_host_buffer_alloc(KtBackend *be, KtBuffer *buf, size_t nbytes) {
    memset(buf, 0, sizeof *buf);
    if (nbytes == 0) nbytes = 64;
    buf->nbytes = nbytes;
    buf->device = KT_CPU;
    buf->host = true;
    if (be->ops->host_alloc) {
        if (be->ops->host_alloc(be, &buf->data, nbytes) == KT_OK) {
            buf->owner = be;  // released through the backend
            return KT_OK;
        }
        kt_backend_note(be, "page-locked host memory refused (%s): pageable copies", kt_last_error());
    }
    if (!(buf->data = malloc(nbytes))) {
        memset(buf, 0, sizeof *buf);
        return KT_FAIL(KT_ERR_OOM, "out of host memory for a %zu-byte transfer buffer", nbytes);
    }
    return KT_OK;
}

void kt_buffer_free(KtBuffer *buf) {
    if (!buf) return;
    if (buf->data && buf->host) {
        if (buf->owner) buf->owner->ops->host_release(buf->owner, buf->data);
        else free(buf->data);
    } else if (buf->data && buf->owner) {
        buf->owner->ops->release(buf->owner, buf->data);
    }
    memset(buf, 0, sizeof *buf);
}

KtStatus kt_upload(KtBackend *be, KtTensor *t, const void *host) {
    if (t->device != be->device) return KT_FAIL(KT_ERR_ARG, "kt_upload: tensor is not on the backend's device");
    return be->ops->upload(be, t->data, host, kt_nbytes(t));
}

KtStatus kt_upload_queued(KtBackend *be, KtTensor *t, const void *host) {
    if (t->device != be->device)
        return KT_FAIL(KT_ERR_ARG, "kt_upload_queued: tensor is not on the backend's device");
    if (!be->ops->upload_queued) return be->ops->upload(be, t->data, host, kt_nbytes(t));
    return be->ops->upload_queued(be, t->data, host, kt_nbytes(t));
}

KtStatus kt_upload_side(KtBackend *be, KtTensor *t, const void *host) {
    if (t->device != be->device) return KT_FAIL(KT_ERR_ARG, "kt_upload_side: tensor is not on the backend's device");
    if (!be->ops->upload_side) return be->ops->upload(be, t->data, host, kt_nbytes(t));
    return be->ops->upload_side(be, t->data, host, kt_nbytes(t));
}

KtStatus kt_side_join(KtBackend *be) { return be->ops->side_join ? be->ops->side_join(be) : KT_OK; }
KtStatus kt_side_wait(KtBackend *be) { return be->ops->side_wait ? be->ops->side_wait(be) : KT_OK; }

KtStatus kt_download_queued(KtBackend *be, void *host, const KtTensor *t) {
    if (t->device != be->device)
        return KT_FAIL(KT_ERR_ARG, "kt_download_queued: tensor is not on the backend's device");
    if (!be->ops->download_queued) return be->ops->download(be, host, t->data, kt_nbytes(t));
    return be->ops->download_queued(be, host, t->data, kt_nbytes(t));
}

KtStatus kt_fence(KtBackend *be, int id) {
    if (id < 0 || id >= KT_FENCES) return KT_FAIL(KT_ERR_ARG, "kt_fence: id %d outside [0, %d)", id, KT_FENCES);
    return be->ops->fence ? be->ops->fence(be, id) : KT_OK;
}

KtStatus kt_fence_wait(KtBackend *be, int id) {
    if (id < 0 || id >= KT_FENCES) return KT_FAIL(KT_ERR_ARG, "kt_fence_wait: id %d outside [0, %d)", id, KT_FENCES);
    return be->ops->fence_wait ? be->ops->fence_wait(be, id) : be->ops->sync(be);
}

KtStatus kt_download(KtBackend *be, void *host, const KtTensor *t) {
    if (t->device != be->device) return KT_FAIL(KT_ERR_ARG, "kt_download: tensor is not on the backend's device");
    return be->ops->download(be, host, t->data, kt_nbytes(t));
}

KtStatus kt_copy(KtBackend *be, KtTensor *dst, const KtTensor *src) {
    if (kt_nbytes(dst) != kt_nbytes(src) || dst->dtype != src->dtype)
        return KT_FAIL(KT_ERR_SHAPE, "kt_copy: source and destination differ in size or dtype");
    if (dst->device != be->device || src->device != be->device)
        return KT_FAIL(KT_ERR_ARG, "kt_copy: tensors are not on the backend's device");
    return be->ops->copy(be, dst->data, src->data, kt_nbytes(src));
}

KtStatus kt_zero(KtBackend *be, KtTensor *t) {
    if (t->device != be->device) return KT_FAIL(KT_ERR_ARG, "kt_zero: tensor is not on the backend's device");
    return be->ops->zero(be, t->data, kt_nbytes(t));
}

KtStatus kt_sync(KtBackend *be) { return be->ops->sync(be); }

void kt_discard_errors(KtBackend *be) {
    if (be->ops && be->ops->discard_errors) be->ops->discard_errors(be);
}

// ------------------------------------------------------------------------------------------------------- arena
#define KT_ARENA_ALIGN 256

size_t kt_arena_size(size_t nbytes) { return (nbytes + KT_ARENA_ALIGN - 1) / KT_ARENA_ALIGN * KT_ARENA_ALIGN; }

void kt_arena_measure(KtArena *a) {
    memset(a, 0, sizeof *a);
    a->measuring = true;
}

KtStatus kt_arena_init(KtArena *a, KtBackend *be, size_t nbytes) {
    a->used = 0;
    a->measuring = false;
    return kt_buffer_alloc(be, &a->buf, nbytes);
}

KtStatus kt_arena_tensor(KtArena *a, KtTensor *t, KtDType dt, int ndim, const int64_t *shape, const char *what) {
    *t = kt_tensor(NULL, dt, a->buf.device, ndim, shape);
    size_t need = kt_arena_size(kt_nbytes(t));
    if (a->measuring) {
        a->used += need;
        return KT_OK;
    }
    if (a->used + need > a->buf.nbytes)
        return KT_FAIL(KT_ERR_OOM, "arena: no room for '%s' (%zu bytes; %zu of %zu used)", what, need, a->used,
                       a->buf.nbytes);
    t->data = (char *)a->buf.data + a->used;
    a->used += need;
    return KT_OK;
}

void kt_arena_free(KtArena *a) {
    if (!a) return;
    kt_buffer_free(&a->buf);
    a->used = 0;
}

// ---------------------------------------------------------------------------------------------- dtype, graphs
KtStatus kt_backend_set_matmul_dtype(KtBackend *be, KtDType dt) {
    if (dt == KT_F32 && !be->ops->set_matmul_dtype) {
        be->matmul_dtype = be->map_dtype = KT_F32;
        return KT_OK;
    }
    if (!be->ops->set_matmul_dtype)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "--dtype %s: the %s backend computes in float32 only (--dtype fp32)",
                       dt == KT_BF16 ? "bf16" : dt == KT_F16 ? "fp16" : kt_dtype_name(dt), kt_device_name(be->device));
    return be->ops->set_matmul_dtype(be, dt);
}

KtStatus kt_graph_begin(KtBackend *be) {
    if (!be->ops->graph_begin) return KT_FAIL(KT_ERR_UNSUPPORTED, "%s backend has no graph capture", be->name);
    return be->ops->graph_begin(be);
}

KtStatus kt_graph_end(KtBackend *be, KtGraph *g) {
    memset(g, 0, sizeof *g);
    KT_TRY(be->ops->graph_end(be, &g->handle));
    g->owner = be;
    return KT_OK;
}

KtStatus kt_graph_launch(KtBackend *be, const KtGraph *g) {
    if (!g->handle) return KT_FAIL(KT_ERR_ARG, "kt_graph_launch: empty graph");
    return be->ops->graph_launch(be, g->handle);
}

KtStatus kt_graph_record(KtBackend *be, KtGraph *g, KtStatus (*record)(void *ctx), void *ctx, bool *off) {
    kt_graph_free(g);
    if (!kt_graphs_on(be)) return KT_OK;  // profiling: eager runs, graphs back afterwards
    KtStatus st = kt_graph_begin(be);
    if (st != KT_OK) {  // no graphs on this backend (CPU: unsupported, no note), or the capture could not start
        if (st != KT_ERR_UNSUPPORTED)
            kt_backend_note(be, "graphs off, eager launches (capture did not start: %.160s)", kt_last_error());
        kt_clear_error();
        *off = true;
        return KT_OK;
    }
    st = record(ctx);
    KtStatus end = kt_graph_end(be, g);  // always end the capture, even after a failed op
    if (st == KT_OK && end == KT_OK) return KT_OK;
    kt_backend_note(be, "graphs off, eager launches (capture failed: %.160s)", kt_last_error());
    kt_clear_error();
    kt_graph_free(g);
    *off = true;
    return KT_OK;
}

void kt_graph_free(KtGraph *g) {
    // a graph outliving its backend (freed first: ops gone, the device memory with it) only forgets its handle
    if (g && g->handle && g->owner && g->owner->ops) g->owner->ops->graph_free(g->owner, g->handle);
    if (g) memset(g, 0, sizeof *g);
}
