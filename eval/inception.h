// The FID Inception-v3 network (pytorch-fid's FIDInceptionA/C/E_1/E_2 + torchvision's InceptionB/D, the TF
// 2015-12-05 weights): uint8 images -> pool3 features (2048), the 1008-way classifier logits (for IS) and the sFID
// spatial features (Mixed_6d.branch1x1, channels 0..6, flattened in (h, w, c) order: 2023).
// ref: pytorch-fid src/pytorch_fid/inception.py; spec: shared/spec/fid.md section 1
// Layout: NHWC feature maps; every conv is conv (no bias) -> BatchNorm (eps 1e-3, folded at load into a per-channel
// scale/shift computed in double, applied with the ReLU: kt_channel_affine_relu) -> ReLU. With 16-bit weights (a GPU
// with --dtype bf16/fp16) the scale is folded into the weights too, before they are rounded (w * scale from the
// float32 file values), and the shift becomes the conv's bias: kt_conv2d_bias_relu, one fused cuDNN call per unit.
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/ops.h"
#include "kernels/weights.h"

#define INC_N_CONVS 94
#define INC_POOL3 2048     // FID features
#define INC_CLASSES 1008   // classifier outputs (1000 ImageNet classes + 8 unused)
#define INC_SPATIAL 2023   // sFID features: 17 * 17 * 7
#define INC_SIZE 299       // network input side
#define INC_SLOTS 2        // device input buffers (inception_submit)

typedef struct {
    char name[40];        // state-dict prefix, e.g. "Mixed_6d.branch7x7dbl_3"
    int ci, co, kh, kw, stride, ph, pw;  // pad: ph rows top and bottom, pw columns left and right
} IncConvDesc;

typedef struct {
    int B, H, W;                        // images per forward and their size (0: none)
    KtFidResize mode;
} IncShape;

typedef struct {
    KtTensor w;                         // (co, kh, kw, ci), matmul dtype (folded: w * scale per output channel)
    KtTensor bn_w, bn_b, bn_mean, bn_var;  // (co) as stored
    KtTensor scale, shift;              // (co) float32: the folded BatchNorm (derived at load)
    IncConvDesc d;
} IncConv;

typedef struct {
    IncConv conv[INC_N_CONVS];
    KtTensor fc_w, fc_b;                // (1008, 2048) matmul dtype, (1008)
    KtWeightTable table;
    KtBuffer weights, derived, folded;  // the file's tensors; scale/shift (+ ones); the folded 16-bit conv weights
    bool fold;                          // 16-bit weights: BatchNorm's scale folded into them (see the top)
    KtTensor ones;                      // (448) float32 1s: the scale of a folded unit writing into a block output
    KtBackend *be;                      // borrowed: owned by the caller
    bool gamma_all_one;                 // every bn.weight == 1 (spec 1.2: expected for the TF weights; logged)
    // workspace for up to max_batch images, carved from one arena at init
    int max_batch;
    KtArena arena;
    KtTensor x;                         // (B, 299, 299, 3) float32 preprocessed input
    KtTensor xm;                        // the same in the map dtype (16-bit maps only)
    KtTensor map[2];                    // (B, largest map) ping-pong block input/output, map dtype
    KtTensor tmp[4];                    // (B, largest branch map) branch intermediates, map dtype
    KtTensor spatial;                   // (B, 17, 17, 7) map dtype: the sFID tap
    KtTensor spatial_f32;               // (B, 17, 17, 7) float32
    KtTensor pool3;                     // (B, 2048) float32
    KtTensor logits;                    // (B, 1008) float32, fc without bias (IS)
    // (B, H, W, 3) uint8 images on the device, one per input slot (inception_submit: a batch uploads into one slot
    // while the forward of the other runs), grown when a larger size comes
    KtBuffer input[INC_SLOTS];
    // the device work of a forward (preprocessing + network) per slot as a CUDA graph, captured when a shape comes
    // twice in a row (not for one-off shapes such as a set's last partial batch) and replayed while it keeps coming
    KtGraph graph[INC_SLOTS];
    IncShape graph_shape[INC_SLOTS], last_shape;  // each graph's shape; the previous forward's
    bool graphs_off;                    // no graphs on this backend, or a capture failed (then in be->notes)
} Inception;

// Loads the network from a pt_inception-2015-12-05-*.pth state dict (ck != NULL) or random weights (benchmarks).
// max_batch: images per forward.
KtStatus inception_init(Inception *net, KtBackend *be, const KtCheckpoint *ck, uint64_t seed, int max_batch);
void inception_free(Inception *net);

// Checks a weight file's SHA-256 against the 8-hex-digit tag in its name ("...-6726825d.pth", torch.hub's
// convention). Names without a tag pass. KT_ERR_FORMAT naming both digests on a mismatch.
KtStatus inception_check_hash(const char *path);

typedef struct {
    float *pool3;    // (B, 2048) or NULL
    float *logits;   // (B, 1008) fc without bias, or NULL
    float *logits_biased;  // (B, 1008) fc with bias (= PyTorch's fc(pool3)), or NULL
    float *spatial;  // (B, 2023) or NULL
} IncOutputs;

// images: (B, H, W, 3) uint8 on the host, B <= max_batch, any H, W >= 1. Results are copied to the host arrays given.
KtStatus inception_forward(Inception *net, const uint8_t *images, int B, int H, int W, KtFidResize mode,
                           const IncOutputs *out);
// inception_forward in flight (GPU backends; on the CPU it is inception_forward): uploads the images on the side
// queue into device input `slot` (0 .. INC_SLOTS - 1), queues the forward behind that upload and the downloads into
// `out` (page-locked host arrays, e.g. kt_host_buffer_alloc's, for them to be asynchronous), marks kt_fence `fence`,
// and returns. `images` may be reused once kt_side_wait(be) returns, `out` holds the results once
// kt_fence_wait(be, fence) does. A slot's previous forward must be complete (its fence waited for) before the slot
// is submitted again; the forward of the other slot may still run (that is the point: the upload runs beside it).
KtStatus inception_submit(Inception *net, const uint8_t *images, int B, int H, int W, KtFidResize mode, int slot,
                          const IncOutputs *out, int fence);
