// FID Inception-v3 forward pass (NHWC). Block structure, branch order and pooling per shared/spec/fid.md 1.3-1.5.
// ref: pytorch-fid src/pytorch_fid/inception.py (FIDInceptionA/C/E_1/E_2), torchvision InceptionB/D
// Every conv unit is one kt_conv2d (no bias) into a scratch map, then kt_channel_affine_relu (folded BatchNorm), or
// with folded 16-bit weights one kt_conv2d_bias_relu; a branch's last unit writes its channel slice of the block
// output directly (the conv, then kt_channel_affine_relu_into: scale 1 when folded), in the spec's order; the
// max-pool branches are copied there (kt_copy_channels).
#include <string.h>

#include "inception.h"
#include "kernels/profile.h"

// A (B, H, W, C) view at the start of a workspace tensor (which holds at least B*H*W*C elements per its shape).
static KtTensor map_view(const KtTensor *mem, int64_t B, int64_t H, int64_t W, int64_t C) {
    return kt_tensor4(mem->data, mem->dtype, mem->device, B, H, W, C);
}

static int64_t out_size(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

// Forward state: the current batch and the cursor into the conv table (convs are used in table order).
typedef struct {
    Inception *net;
    int64_t B;
    int next;
} Fwd;

// The next conv of the table for input x: its output view on `mem` (*y, the output shape) and its padding.
static IncConv *next_conv(Fwd *f, KtTensor *y, const KtTensor *x, const KtTensor *mem, int pad[4]) {
    IncConv *c = &f->net->conv[f->next++];
    const IncConvDesc *d = &c->d;
    int64_t Ho = out_size(x->shape[1], d->kh, d->stride, d->ph), Wo = out_size(x->shape[2], d->kw, d->stride, d->pw);
    *y = map_view(mem, f->B, Ho, Wo, d->co);
    pad[0] = pad[1] = d->ph;
    pad[2] = pad[3] = d->pw;
    return c;
}

// The next conv of the table on x into a view on `mem` (returned in *y, its output shape).
static KtStatus conv(Fwd *f, KtTensor *y, const KtTensor *x, const KtTensor *mem, IncConv **c) {
    int pad[4];
    *c = next_conv(f, y, x, mem, pad);
    return kt_conv2d(f->net->be, y, x, &(*c)->w, NULL, (*c)->d.stride, pad);
}

// y <- relu(bn(conv(x))) using the next conv of the table; y is a view on `mem`. Folded weights: one op, the shift
// as the conv's bias.
static KtStatus unit(Fwd *f, KtTensor *y, const KtTensor *x, const KtTensor *mem) {
    if (f->net->fold) {
        int pad[4];
        IncConv *c = next_conv(f, y, x, mem, pad);
        return kt_conv2d_bias_relu(f->net->be, y, x, &c->w, &c->shift, c->d.stride, pad);
    }
    IncConv *c;
    KT_TRY(conv(f, y, x, mem, &c));
    return kt_channel_affine_relu(f->net->be, y, y, &c->scale, &c->shift);
}

// The per-channel scale applied after a conv: BatchNorm's, or 1 where it is folded into the weights.
static KtTensor bn_scale(const Inception *net, const IncConv *c) {
    return net->fold ? kt_tensor1(net->ones.data, KT_F32, net->ones.device, c->d.co) : c->scale;
}

// A branch's last unit: the conv into `mem`, then relu(bn(.)) straight into channels *c0.. of the block output Y
// (the concatenation, without a copy pass); advances *c0.
static KtStatus unit_put(Fwd *f, KtTensor *Y, int64_t *c0, const KtTensor *x, const KtTensor *mem) {
    IncConv *c;
    KtTensor t;
    KT_TRY(conv(f, &t, x, mem, &c));
    KtTensor scale = bn_scale(f->net, c);
    KT_TRY(kt_channel_affine_relu_into(f->net->be, Y, *c0, &t, &scale, &c->shift));
    *c0 += t.shape[3];
    return KT_OK;
}

// Copies a branch output into the block output at channel *c0 and advances *c0 (the max-pool branches).
static KtStatus put(Fwd *f, KtTensor *Y, int64_t *c0, const KtTensor *t) {
    KT_TRY(kt_copy_channels(f->net->be, Y, *c0, t, 0, t->shape[3]));
    *c0 += t->shape[3];
    return KT_OK;
}

// 3x3 stride-1 pad-1 pooling of x into the scratch map `mem` (average without padded taps, or max).
static KtStatus pool_same(Fwd *f, KtTensor *y, const KtTensor *x, const KtTensor *mem, bool max) {
    *y = map_view(mem, f->B, x->shape[1], x->shape[2], x->shape[3]);
    return max ? kt_max_pool2d(f->net->be, y, x, 3, 1, 1) : kt_avg_pool2d(f->net->be, y, x, 3, 1, 1);
}

// FIDInceptionA: [1x1 64 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | avgpool -> 1x1 pf], 35x35.
static KtStatus block_a(Fwd *f, KtTensor *Y, const KtTensor *X, int pf, const KtTensor *mem) {
    const KtTensor *t = f->net->tmp;
    KtTensor a, b;
    int64_t c0 = 0;
    *Y = map_view(mem, f->B, X->shape[1], X->shape[2], 64 + 64 + 96 + pf);
    KT_TRY(unit_put(f, Y, &c0, X, &t[0]));
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit_put(f, Y, &c0, &a, &t[1]));
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit(f, &b, &a, &t[1]));
    KT_TRY(unit_put(f, Y, &c0, &b, &t[2]));
    KT_TRY(pool_same(f, &a, X, &t[0], false));
    return unit_put(f, Y, &c0, &a, &t[1]);
}

// InceptionB (Mixed_6a): [3x3 s2 384 | 1x1 64 -> 3x3 96 -> 3x3 s2 96 | maxpool s2], 35 -> 17.
static KtStatus block_b(Fwd *f, KtTensor *Y, const KtTensor *X, const KtTensor *mem) {
    const KtTensor *t = f->net->tmp;
    KtTensor a, b;
    int64_t c0 = 0, Ho = out_size(X->shape[1], 3, 2, 0), Wo = out_size(X->shape[2], 3, 2, 0);
    *Y = map_view(mem, f->B, Ho, Wo, 384 + 96 + X->shape[3]);
    KT_TRY(unit_put(f, Y, &c0, X, &t[0]));
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit(f, &b, &a, &t[1]));
    KT_TRY(unit_put(f, Y, &c0, &b, &t[2]));
    a = map_view(&t[0], f->B, Ho, Wo, X->shape[3]);
    KT_TRY(kt_max_pool2d(f->net->be, &a, X, 3, 2, 0));
    return put(f, Y, &c0, &a);
}

// FIDInceptionC: [1x1 192 | 1x1 c7 -> 1x7 -> 7x1 192 | 1x1 c7 -> 7x1 -> 1x7 -> 7x1 -> 1x7 192 | avgpool -> 1x1 192].
// `tap` (or NULL) receives channels 0..6 of branch1x1 (the sFID features of Mixed_6d).
static KtStatus block_c(Fwd *f, KtTensor *Y, const KtTensor *X, const KtTensor *mem, const KtTensor *tap) {
    const KtTensor *t = f->net->tmp;
    KtTensor a, b;
    int64_t c0 = 0;
    *Y = map_view(mem, f->B, X->shape[1], X->shape[2], 4 * 192);
    KT_TRY(unit_put(f, Y, &c0, X, &t[0]));  // branch1x1: channels 0..191 of Y
    if (tap) {
        KtTensor sp = map_view(tap, f->B, Y->shape[1], Y->shape[2], tap->shape[3]);
        KT_TRY(kt_copy_channels(f->net->be, &sp, 0, Y, 0, sp.shape[3]));
    }
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit(f, &b, &a, &t[1]));
    KT_TRY(unit_put(f, Y, &c0, &b, &t[0]));
    KT_TRY(unit(f, &a, X, &t[0]));
    for (int i = 0; i < 3; i++) {  // 7x1, 1x7, 7x1, alternating between two scratch maps; then 1x7 into Y
        KT_TRY(unit(f, &b, &a, &t[1 + (i & 1)]));
        a = b;
    }
    KT_TRY(unit_put(f, Y, &c0, &a, &t[2]));
    KT_TRY(pool_same(f, &a, X, &t[0], false));
    return unit_put(f, Y, &c0, &a, &t[1]);
}

// InceptionD (Mixed_7a): [1x1 192 -> 3x3 s2 320 | 1x1 192 -> 1x7 -> 7x1 -> 3x3 s2 192 | maxpool s2], 17 -> 8.
static KtStatus block_d(Fwd *f, KtTensor *Y, const KtTensor *X, const KtTensor *mem) {
    const KtTensor *t = f->net->tmp;
    KtTensor a, b;
    int64_t c0 = 0, Ho = out_size(X->shape[1], 3, 2, 0), Wo = out_size(X->shape[2], 3, 2, 0);
    *Y = map_view(mem, f->B, Ho, Wo, 320 + 192 + X->shape[3]);
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit_put(f, Y, &c0, &a, &t[1]));
    KT_TRY(unit(f, &a, X, &t[0]));
    KT_TRY(unit(f, &b, &a, &t[1]));
    KT_TRY(unit(f, &a, &b, &t[0]));
    KT_TRY(unit_put(f, Y, &c0, &a, &t[1]));
    a = map_view(&t[0], f->B, Ho, Wo, X->shape[3]);
    KT_TRY(kt_max_pool2d(f->net->be, &a, X, 3, 2, 0));
    return put(f, Y, &c0, &a);
}

// FIDInceptionE_1 / E_2: [1x1 320 | 1x1 384 -> (1x3 384, 3x1 384) | 1x1 448 -> 3x3 384 -> (1x3 384, 3x1 384) |
// pool -> 1x1 192], 8x8; E_1 pools by average (no padded taps), E_2 by max.
static KtStatus block_e(Fwd *f, KtTensor *Y, const KtTensor *X, const KtTensor *mem, bool max_pool) {
    const KtTensor *t = f->net->tmp;
    KtTensor a, b;
    int64_t c0 = 0;
    *Y = map_view(mem, f->B, X->shape[1], X->shape[2], 320 + 4 * 384 + 192);
    KT_TRY(unit_put(f, Y, &c0, X, &t[0]));
    KT_TRY(unit(f, &a, X, &t[0]));          // branch3x3_1
    KT_TRY(unit_put(f, Y, &c0, &a, &t[1]));  // _2a
    KT_TRY(unit_put(f, Y, &c0, &a, &t[1]));  // _2b
    KT_TRY(unit(f, &a, X, &t[0]));          // branch3x3dbl_1
    KT_TRY(unit(f, &b, &a, &t[1]));         // _2
    KT_TRY(unit_put(f, Y, &c0, &b, &t[2]));  // _3a
    KT_TRY(unit_put(f, Y, &c0, &b, &t[2]));  // _3b
    KT_TRY(pool_same(f, &a, X, &t[0], max_pool));
    return unit_put(f, Y, &c0, &a, &t[1]);
}

// The network on net->x (B, 299, 299, 3) float32 -> net->pool3, net->logits, net->spatial(_f32).
static KtStatus forward_maps(Inception *net, int64_t B) {
    KtBackend *be = net->be;
    Fwd f = {.net = net, .B = B};
    KtTensor x = kt_slice0(&net->x, 0, B), a, b;
    const KtTensor *m = net->map;
    if (net->xm.data) {
        KtTensor xm = kt_slice0(&net->xm, 0, B);
        KT_TRY(kt_convert(be, &xm, &x));
        x = xm;
    }
    // stem: 299 -> 149 -> 147 -> 147 -> pool 73 -> 73 -> 71 -> pool 35
    KT_TRY(unit(&f, &a, &x, &m[0]));     // Conv2d_1a_3x3 (stride 2)
    KT_TRY(unit(&f, &b, &a, &m[1]));     // Conv2d_2a_3x3
    KT_TRY(unit(&f, &a, &b, &m[0]));     // Conv2d_2b_3x3 (pad 1)
    b = map_view(&m[1], B, out_size(a.shape[1], 3, 2, 0), out_size(a.shape[2], 3, 2, 0), a.shape[3]);
    KT_TRY(kt_max_pool2d(be, &b, &a, 3, 2, 0));
    KT_TRY(unit(&f, &a, &b, &m[0]));     // Conv2d_3b_1x1
    KT_TRY(unit(&f, &b, &a, &m[1]));     // Conv2d_4a_3x3
    a = map_view(&m[0], B, out_size(b.shape[1], 3, 2, 0), out_size(b.shape[2], 3, 2, 0), b.shape[3]);
    KT_TRY(kt_max_pool2d(be, &a, &b, 3, 2, 0));
    // mixed blocks, ping-ponging between the two maps (a is always the current block input, in m[i & 1])
    static const int pf[3] = {32, 64, 64};
    int cur = 0;
    for (int i = 0; i < 3; i++, cur ^= 1) {
        KT_TRY(block_a(&f, &b, &a, pf[i], &m[cur ^ 1]));
        a = b;
    }
    KT_TRY(block_b(&f, &b, &a, &m[cur ^ 1]));
    a = b, cur ^= 1;
    for (int i = 0; i < 4; i++, cur ^= 1) {
        const KtTensor *tap = i == 2 ? &net->spatial : NULL;  // Mixed_6d
        KT_TRY(block_c(&f, &b, &a, &m[cur ^ 1], tap));
        a = b;
    }
    KT_TRY(block_d(&f, &b, &a, &m[cur ^ 1]));
    a = b, cur ^= 1;
    KT_TRY(block_e(&f, &b, &a, &m[cur ^ 1], false));
    a = b, cur ^= 1;
    KT_TRY(block_e(&f, &b, &a, &m[cur ^ 1], true));
    if (f.next != INC_N_CONVS)
        return KT_FAIL(KT_ERR_ARG, "inception: forward used %d of %d convs (table and forward disagree)", f.next,
                       INC_N_CONVS);
    // pool3 = mean over 8x8; logits = pool3 @ fc.weight^T (no bias, as ADM's IS)
    KtTensor pool3 = kt_slice0(&net->pool3, 0, B), logits = kt_slice0(&net->logits, 0, B);
    KT_TRY(kt_spatial_mean(be, &pool3, &b));
    KT_TRY(kt_linear(be, &logits, &pool3, &net->fc_w, NULL));
    KtTensor sp = map_view(&net->spatial, B, 17, 17, 7), sp32 = map_view(&net->spatial_f32, B, 17, 17, 7);
    return net->spatial.data == net->spatial_f32.data ? KT_OK : kt_convert(be, &sp32, &sp);
}

// Grows the device buffer of input slot `slot` for uint8 images when a batch needs more than it holds (the slot's
// graph, which addresses the old one, is dropped).
static KtStatus ensure_input(Inception *net, int slot, size_t nbytes) {
    KtBuffer *in = &net->input[slot];
    if (in->data && in->nbytes >= nbytes) return KT_OK;
    kt_graph_free(&net->graph[slot]);
    net->graph_shape[slot] = (IncShape){0};
    kt_buffer_free(in);
    return kt_buffer_alloc(net->be, in, nbytes);
}

// A forward's device work between the upload and the downloads: the uint8 images u8 -> net->pool3, logits, spatial.
typedef struct {
    Inception *net;
    KtTensor u8;
    KtFidResize mode;
} DeviceWork;

static KtStatus device_work(void *ctx) {
    DeviceWork *w = ctx;
    int64_t B = w->u8.shape[0];
    KtTensor x = kt_slice0(&w->net->x, 0, B);
    KT_TRY(kt_fid_preprocess(w->net->be, &x, &w->u8, w->mode));
    return forward_maps(w->net, B);
}

static bool same_shape(IncShape a, IncShape b) { return a.B == b.B && a.H == b.H && a.W == b.W && a.mode == b.mode; }

// Replays the slot's graph of this shape, or runs eagerly (which sizes every scratch buffer) and captures the slot's
// graph when the previous forward had this shape too. ~300 launches per forward, each with host work (cuDNN's most):
// replayed as one graph they no longer bound the small batches.
static KtStatus run_device_work(Inception *net, DeviceWork *w, int slot) {
    KtBackend *be = net->be;
    KtGraph *g = &net->graph[slot];
    IncShape shape = {(int)w->u8.shape[0], (int)w->u8.shape[1], (int)w->u8.shape[2], w->mode};
    if (g->handle && same_shape(net->graph_shape[slot], shape) && kt_graphs_on(be)) return kt_graph_launch(be, g);
    KT_TRY(device_work(w));
    bool again = same_shape(net->last_shape, shape);
    net->last_shape = shape;
    if (!again || net->graphs_off || !kt_graphs_on(be)) return KT_OK;
    KT_TRY(kt_graph_record(be, g, device_work, w, &net->graphs_off));
    net->graph_shape[slot] = g->handle ? shape : (IncShape){0};
    return KT_OK;
}

// inception_submit's work on any backend (the side queue and the fences fall back to waiting where there are none).
static KtStatus submit(Inception *net, const uint8_t *images, int B, int H, int W, KtFidResize mode, int slot,
                       const IncOutputs *out, int fence) {
    KtBackend *be = net->be;
    KtTensor u8 = kt_tensor4(NULL, KT_U8, be->device, B, H, W, 3);
    KT_TRY(ensure_input(net, slot, kt_nbytes(&u8)));
    u8.data = net->input[slot].data;
    KT_TRY(kt_upload_side(be, &u8, images));  // beside the other slot's forward, if one runs
    KT_TRY(kt_side_join(be));
    DeviceWork w = {.net = net, .u8 = u8, .mode = mode};
    KT_TRY(run_device_work(net, &w, slot));
    if (out->pool3) {
        KtTensor t = kt_slice0(&net->pool3, 0, B);
        KT_TRY(kt_download_queued(be, out->pool3, &t));
    }
    if (out->logits) {
        KtTensor t = kt_slice0(&net->logits, 0, B);
        KT_TRY(kt_download_queued(be, out->logits, &t));
    }
    if (out->spatial) {
        KtTensor t = kt_slice0(&net->spatial_f32, 0, B);
        KT_TRY(kt_download_queued(be, out->spatial, &t));
    }
    if (out->logits_biased) {  // fc(pool3) with its bias: reuses the logits buffer after the unbiased copy
        KtTensor pool3 = kt_slice0(&net->pool3, 0, B), t = kt_slice0(&net->logits, 0, B);
        KT_TRY(kt_linear(be, &t, &pool3, &net->fc_w, &net->fc_b));
        KT_TRY(kt_download_queued(be, out->logits_biased, &t));
    }
    return kt_fence(be, fence);
}

KtStatus inception_forward(Inception *net, const uint8_t *images, int B, int H, int W, KtFidResize mode,
                           const IncOutputs *out) {
    if (B < 1 || B > net->max_batch)
        return KT_FAIL(KT_ERR_ARG, "inception_forward: batch %d outside [1, %d]", B, net->max_batch);
    if (H < 1 || W < 1 || H > 16384 || W > 16384)
        return KT_FAIL(KT_ERR_ARG, "inception_forward: image size %dx%d outside [1, 16384]", W, H);
    KtBackend *be = net->be;
    if (be->device == KT_CPU && B > 1) {
        // One image at a time on the CPU: OpenBLAS picks GEMM kernels by matrix size, so batching would change an
        // image's features in the last bits (spec/fid.md gotcha 17: the batch must not change any image's features).
        size_t img = (size_t)H * W * 3;
        for (int b = 0; b < B; b++) {
            IncOutputs o = {
                .pool3 = out->pool3 ? out->pool3 + (size_t)b * INC_POOL3 : NULL,
                .logits = out->logits ? out->logits + (size_t)b * INC_CLASSES : NULL,
                .logits_biased = out->logits_biased ? out->logits_biased + (size_t)b * INC_CLASSES : NULL,
                .spatial = out->spatial ? out->spatial + (size_t)b * INC_SPATIAL : NULL};
            KT_TRY(inception_forward(net, images + b * img, 1, H, W, mode, &o));
        }
        return KT_OK;
    }
    KT_TRY(submit(net, images, B, H, W, mode, 0, out, 0));
    KT_TRY(kt_side_wait(be));
    return kt_fence_wait(be, 0);
}

KtStatus inception_submit(Inception *net, const uint8_t *images, int B, int H, int W, KtFidResize mode, int slot,
                          const IncOutputs *out, int fence) {
    if (slot < 0 || slot >= INC_SLOTS)
        return KT_FAIL(KT_ERR_ARG, "inception_submit: slot %d outside [0, %d)", slot, INC_SLOTS);
    if (fence < 0 || fence >= KT_FENCES)
        return KT_FAIL(KT_ERR_ARG, "inception_submit: fence %d outside [0, %d)", fence, KT_FENCES);
    if (net->be->device == KT_CPU) return inception_forward(net, images, B, H, W, mode, out);
    if (B < 1 || B > net->max_batch)
        return KT_FAIL(KT_ERR_ARG, "inception_submit: batch %d outside [1, %d]", B, net->max_batch);
    if (H < 1 || W < 1 || H > 16384 || W > 16384)
        return KT_FAIL(KT_ERR_ARG, "inception_submit: image size %dx%d outside [1, 16384]", W, H);
    return submit(net, images, B, H, W, mode, slot, out, fence);
}
