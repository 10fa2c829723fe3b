// VAR's multi-scale residual VQVAE: encoder, decoder and the multi-scale quantizer with its Phi convolutions.
// ref: VAR models/vqvae.py, basic_vae.py, quant.py (spec: shared/spec/var.md §1)
// Dims: B batch, H/W spatial, C channels, Cv latent channels (Cvae), V codebook size, pn a scale's side,
// Hl = W l = patch_nums[last] latent side. All feature maps are NHWC; a scale's token l = y*pn + x.
#pragma once

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/weights.h"
#include "vq_blocks.h"

#define VQ_MAX_SCALES 32
#define VQ_MAX_PHI 16

typedef struct {
    int ch;                        // base channels (official 160)
    int ch_mult[VQ_MAX_LEVELS];    // (1, 1, 2, 2, 4)
    int n_levels;
    int num_res_blocks;            // 2
    int Cvae;                      // latent channels (32)
    int V;                         // codebook entries (4096)
    int n_phi;                     // share_quant_resi: number of Phi convs (4)
    int norm_groups;               // GroupNorm groups (official 32; safetensors metadata "norm_groups")
    int patch_nums[VQ_MAX_SCALES]; // (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    int n_scales;
    int phi_index[VQ_MAX_SCALES];  // Phi used at each scale (PhiPartiallyShared rule, computed in double)
    int latent_size;               // patch_nums[last]
    int image_size;                // latent_size * 2^(n_levels - 1)
} VarVqConfig;

typedef struct {
    VarVqConfig config;
    VqCoder enc, dec;  // levels down.i / up.i at index i (i = 0: full resolution)
    KtTensor quant_conv_w, quant_conv_b, post_quant_conv_w, post_quant_conv_b;
    KtTensor codebook;  // (V, Cv)
    KtTensor phi_w[VQ_MAX_PHI], phi_b[VQ_MAX_PHI];
    KtWeightTable table;
    KtBuffer weights;
    KtBackend *be;      // borrowed: owned by the caller
    // workspace for up to max_batch images, carved from one arena at init
    int max_batch;
    KtArena arena;
    KtTensor act[4];    // ping-pong feature maps, each (max_batch, max H*W*C), in the backend's map dtype
    KtTensor qkv, q, k, v, att;  // attention at the lowest resolution (float32)
    KtTensor attn_x, attn_t;     // float32 copies of the attention block's input and output maps (B, Hl*Wl, C);
                                 // only with 16-bit maps (data NULL otherwise)
    KtTensor lat[6];    // latent-resolution scratch (max_batch, Hl, Wl, Cv): 0-2 quantizer internals, 3 f_hat,
                        // 4 f_rest, 5 pooled
    KtTensor idx;       // (max_batch * Hl * Wl) int32 tokens of one scale
} VarVqvae;

// Official defaults (vae_ch160v4096z32) with the given patch schedule; used for --random-init.
KtStatus vq_var_config_default(VarVqConfig *c, const int *patch_nums, int n_scales);
// Derives ch, ch_mult, num_res_blocks, Cvae, V, n_phi from the checkpoint's shapes; patch_nums from the caller.
KtStatus vq_var_config_from_ckpt(VarVqConfig *c, const KtCheckpoint *ck, const int *patch_nums, int n_scales);
// Sets the patch schedule and what follows from it (image size, Phi per scale); call after changing n_levels.
KtStatus vq_var_config_set_schedule(VarVqConfig *c, const int *patch_nums, int n_scales);
// Phi index per scale (PhiPartiallyShared, numpy linspace/argmin emulated in double).
void vq_var_phi_indices(int n_phi, int n_scales, int *out);

// Loads weights (ck != NULL) or random weights (ck == NULL, seeded) on `be` and sizes the workspace.
KtStatus vq_var_init(VarVqvae *m, KtBackend *be, const VarVqConfig *c, const KtCheckpoint *ck, uint64_t seed,
                     int max_batch);
void vq_var_free(VarVqvae *m);

// img (B, S, S, 3) in [-1, 1] -> f (B, Hl, Wl, Cv) = quant_conv(encoder(img)). B <= max_batch.
KtStatus vq_var_encode_f(VarVqvae *m, KtTensor *f, const KtTensor *img);
// f_hat (B, Hl, Wl, Cv) -> decoder(post_quant_conv(f_hat)) as (B, S, S, 3), NOT clamped (kt_image_to_u8 clamps;
// fhat_to_img's clamp to [-1, 1] is left to the consumer). `img` must not be workspace memory.
KtStatus vq_var_decode(VarVqvae *m, KtTensor *img, const KtTensor *f_hat);

// ---- quantizer (var_quant.c)
// Tokens of one scale -> their latent contribution Phi(UP(emb(idx))) at (B, Hl, Wl, Cv), added to f_hat.
// idx: (B * pn * pn) int32 on the backend.  f_hat: (B, Hl, Wl, Cv), not workspace memory other than lat[3].
KtStatus vq_var_add_scale(VarVqvae *m, KtTensor *f_hat, const KtTensor *idx, int si, int B);
// Same from latent vectors h (B, pn, pn, Cv) (the more_smooth path). h must not be lat[0] or lat[1].
KtStatus vq_var_add_scale_latent(VarVqvae *m, KtTensor *f_hat, const KtTensor *h, int si);
// img_to_idxBl: tokens of every scale, concatenated per image: tokens (B, L) int64 on the host.
KtStatus vq_var_img_to_tokens(VarVqvae *m, int64_t *tokens, const KtTensor *img);
// idxBl_to_var_input: teacher-forcing inputs on the host, var_input (B, L - 1, Cv), from host tokens (B, L).
KtStatus vq_var_tokens_to_var_input(VarVqvae *m, float *var_input, const int64_t *tokens, int B);
// Host tokens (B, L) -> f_hat (B, Hl, Wl, Cv) -> decoder output (B, S, S, 3) (unclamped, see vq_var_decode).
KtStatus vq_var_tokens_to_image(VarVqvae *m, KtTensor *img, const int64_t *tokens, int B);
// Number of tokens of all scales.
int vq_var_num_tokens(const VarVqConfig *c);
