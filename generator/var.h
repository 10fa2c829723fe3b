// VAR next-scale transformer: AdaLN blocks with L2-normalised attention, KV cache across scales, and the
// sampling loop autoregressive_infer_cfg.
// ref: VAR models/var.py (VAR, autoregressive_infer_cfg, forward), models/basic_var.py (AdaLNSelfAttn,
//      SelfAttention, FFN, AdaLNBeforeHead). spec: shared/spec/var.md §2-3
// Dims: B images, B2 = 2B rows under CFG, T tokens of the current scale, L all tokens, C width, NH heads,
//       HS head size (64), V vocabulary, Cv latent channels, D depth.
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/weights.h"
#include "samplers/sampling.h"
#include "tokenizer/var_vqvae.h"

#define VAR_MAX_DEPTH 64

typedef struct {
    int depth;          // number of blocks (D)
    int C;              // width = 64 * depth in the official models
    int n_heads;        // NH (official: depth)
    int head_size;      // HS = C / NH
    int mlp_hidden;     // FFN hidden width (official 4C)
    int V;              // vocabulary (codebook size)
    int Cvae;           // latent channels
    int num_classes;    // class_emb has num_classes + 1 rows (the last is the null class)
    int patch_nums[VQ_MAX_SCALES];
    int n_scales;
    int L;              // tokens of all scales
    int begin[VQ_MAX_SCALES + 1];  // first token of each scale; begin[n_scales] = L
} VarConfig;

typedef struct {
    KtTensor ada_w, ada_b;          // ada_lin.1: (6C, C), (6C)
    KtTensor qkv_w;                 // mat_qkv: (3C, C)
    KtTensor q_bias, k_bias, v_bias;  // (C) each; k_bias = the zero_k_bias buffer
    KtTensor scale_mul;             // scale_mul_1H11 viewed as (NH)
    KtTensor proj_w, proj_b;        // (C, C), (C)
    KtTensor fc1_w, fc1_b, fc2_w, fc2_b;  // (4C, C), (4C), (C, 4C), (C)
} VarBlock;

typedef struct {
    VarConfig config;
    KtTensor word_embed_w, word_embed_b;  // (C, Cv), (C)
    KtTensor class_emb;                   // (num_classes + 1, C)
    KtTensor pos_start;                   // (1, 1, C)
    KtTensor pos_1LC;                     // (1, L, C)
    KtTensor lvl_embed;                   // (n_scales, C)
    KtTensor attn_bias;                   // attn_bias_for_masking (1, 1, L, L), optional
    VarBlock blocks[VAR_MAX_DEPTH];
    KtTensor head_ada_w, head_ada_b;      // head_nm.ada_lin.1: (2C, C), (2C)
    KtTensor head_w, head_b;              // (V, C), (V)
    KtWeightTable table;
    KtBuffer weights;
    KtBuffer derived;                     // lvl_pos (L, C), qkv biases (D, 3C), teacher mask (L, L), fc1_b16
    KtTensor lvl_pos;                     // lvl_embed[scale(l)] + pos_1LC[l]: (L, C)
    KtTensor qkv_bias[VAR_MAX_DEPTH];     // [q_bias; k_bias; v_bias]: (3C)
    KtTensor fc1_b16[VAR_MAX_DEPTH];      // fc1 bias in the 16-bit matmul dtype (fc1 then writes that dtype): (4C)
    KtTensor mask;                        // additive teacher-forcing mask (L, L)
    KtBackend *be;                        // borrowed
} VarModel;

// Official architecture for a depth (C = 64 d, NH = d, V 4096, Cv 32, 1000 classes).
KtStatus var_config_official(VarConfig *c, int depth, const int *patch_nums, int n_scales);
// Derives depth, C, V, Cv, classes from shapes; the head count from scale_mul_1H11.
KtStatus var_config_from_ckpt(VarConfig *c, const KtCheckpoint *ck, const int *patch_nums, int n_scales);

// Loads (ck != NULL) or random-initialises (seeded) the model on `be`.
KtStatus var_init(VarModel *m, KtBackend *be, const VarConfig *c, const KtCheckpoint *ck, uint64_t seed);
void var_free(VarModel *m);

// ---- sampling (var_generate.c)
typedef struct {
    float cfg;          // guidance at the last scale; ramps linearly from 0 at the first (official default 1.5)
    SmpParams smp;      // seed, top_k, top_p (temperature 1 in VAR)
    bool more_smooth;   // Gumbel-softmax latents (visualisation mode)
} VarSampleParams;

// Workspace for sampling up to max_batch images at once: activations, KV caches, f_hat (one arena).
typedef struct {
    int max_batch;
    KtArena arena;
    int64_t rows_max;                     // B2 * Tmax
    KtTensor x, h, qkv, q, att, mlp, logits, logits_cfg;  // per-step activations (2B * Tmax rows)
    KtTensor hn;        // LN+AdaLN output, the next GEMM's input: in the backend's matmul dtype (2B * Tmax rows)
    KtTensor kcache[VAR_MAX_DEPTH], vcache[VAR_MAX_DEPTH]; // (2B, NH, L, HS)
    KtTensor cond, cond_silu, ada, ada_chunks[VAR_MAX_DEPTH], head_chunks;  // AdaLN inputs/modulation
    KtTensor labels, image_ids;           // (2B) int32 labels, (B) int64 image ids on the device
    KtTensor tokens;                      // (L * B) int32, scale-major: scale si at offset B*begin[si]
    KtTensor f_hat, h_smooth, next_in, img;  // latents, more_smooth latents, next-scale input, decoded image
    KtTensor pixels;                      // (B, S, S, 3) uint8
    KtTensor nonfinite;                   // int64 counters: per scale (depth block outputs, logits), then pixels
    // CUDA graph of one whole var_generate (all scales + decode) for the last batch size and settings
    KtGraph graph;
    int graph_batch;
    VarSampleParams graph_params;
    bool graphs_unsupported;              // the backend has no graph capture: always run eagerly
    bool diagnose;                        // also count non-finite values after every block (set on failure)
} VarWorkspace;

KtStatus var_workspace_init(VarWorkspace *ws, const VarModel *m, const VarVqvae *vq, int max_batch);
void var_workspace_free(VarWorkspace *ws);

// Samples B images (B <= ws->max_batch): labels (B) class indices, image_ids (B) per-image RNG ids.
// pixels_out: (B, S, S, 3) uint8 host or NULL; tokens_out: (B, L) int32 host or NULL; logits_out: (B, L, V)
// float host or NULL, the CFG-mixed logits of every scale before filtering (tests, diagnostics).
typedef struct {
    uint8_t *pixels;  // (B, S, S, 3) uint8
    int32_t *tokens;  // (B, L)
    float *logits;    // (B, L, V)
    float *image;     // (B, S, S, 3) float decoder output, unclamped
} VarOutputs;
KtStatus var_generate(VarModel *m, VarVqvae *vq, VarWorkspace *ws, const VarSampleParams *p, int B,
                      const int32_t *labels, const int64_t *image_ids, const VarOutputs *out);

// Teacher-forced forward (ref VAR.forward with cond_drop_rate = 0): labels (B), var_input (B, L-1, Cv) host ->
// logits (B, L, V) host.
KtStatus var_forward_teacher(VarModel *m, int B, const int32_t *labels, const float *var_input, float *logits);
