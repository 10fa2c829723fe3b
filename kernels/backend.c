// Backend selection, owned buffers, host<->device copies and the bump arena.
#include "backend.h"

#include <string.h>

#ifndef ARGEN_HAVE_CUDA
KtStatus kt_backend_cuda_init(KtBackend *be, int device_index) {
    (void)device_index;
    memset(be, 0, sizeof *be);
    return KT_FAIL(KT_ERR_UNSUPPORTED, "--device cuda: this argen build has no CUDA support "
                                       "(rebuild with nvcc available, or -DARGEN_CUDA=ON to require it)");
}
bool kt_cuda_available(void) { return false; }
#endif

KtStatus kt_backend_init_by_name(KtBackend *be, const char *name) {
    if (!name || !strcmp(name, "auto"))
        return kt_cuda_available() ? kt_backend_cuda_init(be, 0) : kt_backend_cpu_init(be, 0);
    if (!strcmp(name, "cpu")) return kt_backend_cpu_init(be, 0);
    if (!strcmp(name, "cuda")) return kt_backend_cuda_init(be, 0);
    return KT_FAIL(KT_ERR_ARG, "--device: expected auto, cpu or cuda, got '%s'", name);
}

void kt_backend_free(KtBackend *be) {
    if (!be || !be->ops) return;
    be->ops->destroy(be);
    memset(be, 0, sizeof *be);
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

void kt_buffer_free(KtBuffer *buf) {
    if (!buf) return;
    if (buf->data && buf->owner) buf->owner->ops->release(buf->owner, buf->data);
    memset(buf, 0, sizeof *buf);
}

KtStatus kt_upload(KtBackend *be, KtTensor *t, const void *host) {
    if (t->device != be->device) return KT_FAIL(KT_ERR_ARG, "kt_upload: tensor is not on the backend's device");
    return be->ops->upload(be, t->data, host, kt_nbytes(t));
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

// ------------------------------------------------------------------------------------------------------- arena
#define KT_ARENA_ALIGN 256

size_t kt_arena_size(size_t nbytes) { return (nbytes + KT_ARENA_ALIGN - 1) / KT_ARENA_ALIGN * KT_ARENA_ALIGN; }

KtStatus kt_arena_init(KtArena *a, KtBackend *be, size_t nbytes) {
    a->used = 0;
    return kt_buffer_alloc(be, &a->buf, nbytes);
}

KtStatus kt_arena_tensor(KtArena *a, KtTensor *t, KtDType dt, int ndim, const int64_t *shape, const char *what) {
    *t = kt_tensor(NULL, dt, a->buf.device, ndim, shape);
    size_t need = kt_arena_size(kt_nbytes(t));
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
