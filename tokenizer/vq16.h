// LlamaGen's VQ tokenizer (VQ-16: downsampling 16, an L2-normalised 8-dim codebook): encoder, decoder (NHWC) and
// the cosine-similarity quantizer; decode_code turns raster token grids into images.
// ref: LlamaGen tokenizer/tokenizer_image/vq_model.py (VQModel, Encoder, Decoder, VectorQuantizer, ResnetBlock,
//      AttnBlock, Upsample, Downsample); spec: shared/spec/raster.md §8
// Dims: B batch, S image side, g token-grid side (S / 2^(levels-1)), N = g*g tokens (raster order n = row*g + col),
//       C channels, Z latent channels (z_channels), D code dim (codebook_embed_dim), V codebook size.
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/weights.h"
#include "vq_blocks.h"

typedef struct {
    int ch;                          // base channels (VQ-16: 128)
    int ch_mult[VQ_MAX_LEVELS];      // (1, 1, 2, 2, 4)
    int n_levels;
    int num_res_blocks;              // 2
    int Z;                           // z_channels (256)
    int D;                           // codebook_embed_dim (8)
    int V;                           // codebook_size (16384)
    int norm_groups;                 // GroupNorm groups (official 32; safetensors metadata "norm_groups")
    int image_size;                  // S
    int grid;                        // g = S / 2^(n_levels - 1)
} Vq16Config;

typedef struct {
    Vq16Config config;
    VqCoder enc, dec;  // levels conv_blocks.i at index i (decoder: level 0 is the lowest resolution)
    KtTensor quant_conv_w, quant_conv_b;            // (D, Z) as a Linear, (D)
    KtTensor post_quant_conv_w, post_quant_conv_b;  // (Z, D), (Z)
    KtTensor codebook;                              // quantize.embedding.weight (V, D), as stored (not unit norm)
    KtTensor codebook_n;                            // its rows L2-normalised (derived at load)
    KtWeightTable table;
    KtBuffer weights, derived;
    KtBackend *be;       // borrowed: owned by the caller
    // workspace for up to max_batch images, carved from one arena at init
    int max_batch;
    KtArena arena;
    KtTensor act[4];     // ping-pong feature maps (max_batch, max H*W*C), in the backend's map dtype
    KtTensor q, k, v, att, t;  // attention at the lowest resolution (float32), (max_batch, g*g, Ca)
    KtTensor attn_x;     // float32 copy of an attention block's input map (16-bit maps only)
    KtTensor z;          // (max_batch, g, g, Z) float32: encoder output / post_quant_conv output
    KtTensor e;          // (max_batch, g, g, D) float32: quant_conv output / code vectors
    KtTensor idx;        // (max_batch * g * g) int32
} Vq16;

// The official VQ-16 (vq_ds16_c2i.pt) for images of side S (--random-init benchmarks).
KtStatus vq16_config_default(Vq16Config *c, int image_size);
// ch, ch_mult, num_res_blocks, Z, D, V from the checkpoint's shapes; the image side from the caller.
KtStatus vq16_config_from_ckpt(Vq16Config *c, const KtCheckpoint *ck, int image_size);
// Sets S and g (S must be a multiple of the downsampling factor 2^(n_levels-1)).
KtStatus vq16_config_set_image_size(Vq16Config *c, int image_size);
// True when the checkpoint looks like a LlamaGen VQ (for hints in other loaders' errors).
bool vq16_ckpt_is_vq16(const KtCheckpoint *ck);

// Loads (ck != NULL) or random-initialises (seeded) the tokenizer on `be` and sizes its workspace.
KtStatus vq16_init(Vq16 *m, KtBackend *be, const Vq16Config *c, const KtCheckpoint *ck, uint64_t seed, int max_batch);
void vq16_free(Vq16 *m);

// img (B, S, S, 3) in [-1, 1] -> tokens (B*N) int32 on the backend (a view of m->idx), raster order.
// ref: VQModel.encode -> VectorQuantizer.forward (argmin over the normalised codebook)
KtStatus vq16_encode(Vq16 *m, KtTensor *tokens, const KtTensor *img);
// tokens (B*N) int32 on the backend -> img (B, S, S, 3), NOT clamped. `img` must not be workspace memory.
// ref: VQModel.decode_code (codebook rows normalised, post_quant_conv, decoder)
KtStatus vq16_decode_code(Vq16 *m, KtTensor *img, const KtTensor *tokens, int B);
// Decoded image values (host, any layout) -> 8-bit: u8 = (uint8)clamp(127.5 x + 128, 0, 255), truncating, as
// sample_c2i_ddp.py (save_image(normalize=True) in the demo rounds the same way). A non-finite value becomes 0;
// returns how many there were.
int64_t vq16_image_to_u8(uint8_t *px, const float *img, int64_t n);
