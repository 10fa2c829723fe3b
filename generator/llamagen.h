// LlamaGen class-conditional raster transformer (c2i GPT): RMSNorm pre-norm blocks with 2D-RoPE multi-head
// attention over a positional KV cache and SwiGLU FFNs, the class token (null class for CFG), and the decoding
// loops: sequential (the official generate), speculative Jacobi (SJD) and ZipAR.
// ref: LlamaGen autoregressive/models/gpt.py (Transformer, TransformerBlock, Attention, FeedForward, RMSNorm,
//      precompute_freqs_cis_2d), generate.py (generate, prefill, decode_one_token, sample); SJD / ZipAR: see
//      samplers/sjd.h, samplers/zipar.h. spec: shared/spec/raster.md §1-6, shared/spec/decoding.md
// Dims: B images, B2 = 2B rows under CFG (conditional first, then the null class) else B, T tokens per forward,
//       D width, NH heads, HS head size, F SwiGLU hidden, V vocabulary, g grid side, N = g*g image tokens,
//       P = 1 + N sequence positions (the class token at 0, image token n at 1 + n), Lc cache rows (P rounded up to 8).
#pragma once

#include <stdbool.h>

#include "kernels/backend.h"
#include "kernels/checkpoint.h"
#include "kernels/weights.h"
#include "samplers/sampling.h"
#include "samplers/sjd.h"

#define LLAMA_MAX_LAYERS 128
#define LLAMA_FWD_GRAPHS 32  // captured window forwards per workspace (further shapes run eagerly)

typedef struct {
    int n_layer;
    int D;             // width (dim)
    int n_heads;       // NH
    int head_size;     // HS = D / NH (64; 100 for GPT-3B)
    int F;             // SwiGLU hidden width
    int V;             // vocabulary (16384)
    int num_classes;   // cls_embedding has num_classes + 1 rows (the last is the null class)
    int grid;          // g (16 at 256px, 24 at 384px)
    int N;             // g*g
    int P;             // 1 + N sequence positions (cls_token_num = 1)
    int cache_len;     // P rounded up to a multiple of 8 (setup_caches)
    float norm_eps;    // 1e-5
    float rope_base;   // 10000
} LlamaConfig;

typedef struct {
    KtTensor attention_norm, ffn_norm;  // (D)
    KtTensor wqkv, wo;                  // (3D, D), (D, D)
    KtTensor w1, w3, w2;                // (F, D), (F, D), (D, F)
    KtTensor w13;                       // (2F, D): w1 and w3 as stored, back to back (one GEMM)
} LlamaLayer;

typedef struct {
    LlamaConfig config;
    KtTensor cls_embedding;   // (num_classes + 1, D)
    KtTensor tok_embeddings;  // (V, D)
    LlamaLayer layers[LLAMA_MAX_LAYERS];
    KtTensor norm, output;    // (D), (V, D)
    KtTensor rope;            // (P, HS/2, 2) derived: zeros at the class position
    KtWeightTable table;
    KtBuffer weights, derived;
    KtBackend *be;            // borrowed
} LlamaModel;

// Official GPT configurations by name ("B", "L", "XL", "XXL", "XXXL", "1B", "3B", "7B"), vocabulary 16384,
// 1000 classes, for a token grid of g.
KtStatus llamagen_config_official(LlamaConfig *c, const char *name, int grid);
// Layers, width, FFN, vocabulary and classes from the checkpoint's shapes; heads = `heads` when > 0, else the official
// count for the width (768: 12, 1024: 16, 1280: 20, 1536: 24, 3200: 32; otherwise head size 64).
KtStatus llamagen_config_from_ckpt(LlamaConfig *c, const KtCheckpoint *ck, int heads, int grid);
// True when the checkpoint looks like a LlamaGen GPT (for hints in other loaders' errors).
bool llamagen_ckpt_is_gpt(const KtCheckpoint *ck);
// The 2D rotary table (P, HS/2, 2) of precompute_freqs_cis_2d(g, HS, base, cls_token_num=1), in host memory.
void llamagen_rope_table(float *out, int grid, int head_size, float base);

KtStatus llamagen_init(LlamaModel *m, KtBackend *be, const LlamaConfig *c, const KtCheckpoint *ck, uint64_t seed);
void llamagen_free(LlamaModel *m);

// ---- workspace (llamagen.c)
typedef struct {
    int max_batch;           // images
    int64_t rows, tmax;      // capacity: B2max = 2 * max_batch rows of up to tmax tokens
    KtArena arena;
    KtTensor x, h, qkv, q, a13, logits, logits_cfg;  // per-forward activations (rows * tmax), float32
    KtTensor hn, att, g;      // the same, GEMM inputs in the layers' weight dtype
    KtTensor kcache[LLAMA_MAX_LAYERS], vcache[LLAMA_MAX_LAYERS];  // (B2max, NH, Lc, HS), in hn's dtype
    KtTensor in_tok, in_pos;  // (rows * tmax) int32: fed token ids (or class labels) and their sequence positions
    KtTensor smp_pos;         // (max_batch * tmax) int32: raster index of each sampled row (the RNG position)
    KtTensor image_ids;       // (max_batch) int64
    KtTensor seq;             // (N, max_batch) int32: sequentially sampled tokens, position-major (ZipAR's too)
    KtTensor plan;            // (2N, 3) int32: ZipAR's feeds (token cell, position, output cell; at most N + grid)
    KtTensor out_tok;         // (max_batch * tmax) int32: tokens sampled by one forward
    KtTensor step;            // (1) int32: sequential decoding's token counter (kt_raster_step_*)
    // Sequential decoding's captured per-token step (CUDA graphs), one with CFG on and one with it off
    // (cfg_interval), valid while the batch and the sampling settings stay those of step_key.
    KtGraph step_graph[2];
    struct {
        int B;
        float cfg;
        SmpParams smp;
    } step_key;
    // SJD's and ZipAR's forwards (inputs uploaded to in_tok / in_pos first), captured per (rows, tokens) from the
    // second use of a shape on: their windows take a few sizes over and over.
    struct {
        int64_t B2, T;
        int uses;
        KtGraph graph;
    } fwd_graph[LLAMA_FWD_GRAPHS];
    int n_fwd_graphs;
    bool graphs_unsupported;
    KtBuffer host;            // host staging for downloads and uploads (page-locked on CUDA), carved into:
    float *host_probs;        //   (max_batch * tmax * V) for SJD
    int32_t *host_i32;        //   (3 * rows * tmax + N * max_batch int32)
} LlamaWorkspace;

// Sizes the workspace for max_batch images and up to tmax tokens per forward (1 for sequential decoding).
KtStatus llamagen_workspace_init(LlamaWorkspace *ws, const LlamaModel *m, int max_batch, int64_t tmax);
void llamagen_workspace_free(LlamaWorkspace *ws);
// Re-carves the workspace when a decoding strategy needs more tokens per forward (outside any sampling loop).
KtStatus llamagen_workspace_reserve(LlamaWorkspace *ws, const LlamaModel *m, int64_t tmax);

// One forward of B2 rows x T tokens: ws->in_tok holds token ids (class labels when `class_tokens`), ws->in_pos their
// sequence positions, both (B2, T). K/V are written at those positions, attention is causal by position.
// logits: (B2, T, V), a view of ws->logits.
KtStatus llamagen_forward(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, bool class_tokens,
                          KtTensor *logits);
// The same with classifier-free guidance applied by the head (kt_rmsnorm_linear_cfg): B2 = 2B rows, the
// conditional ones first; lc: (B, T, V) = (1 + t) * cond - t * uncond, a view of ws->logits_cfg (ws->logits is
// scratch then).
KtStatus llamagen_forward_cfg(LlamaModel *m, LlamaWorkspace *ws, int64_t B2, int64_t T, float t, KtTensor *lc);
// Zeroes the first B2 rows of every layer's K/V cache (generate() does this on every call: setup_caches).
KtStatus llamagen_cache_clear(LlamaModel *m, LlamaWorkspace *ws, int64_t B2);
// KT_ERR_ARG naming the first label outside [0, num_classes).
KtStatus llamagen_check_labels(const LlamaConfig *c, int B, const int32_t *labels);

// Teacher-forced forward (training-style, no label drop): labels (B) in [0, num_classes] (the null class included),
// tokens (B, N) host -> logits (B, N, V) host, row n predicting image token n from the class token and tokens
// 0..n-1 (tokens[N-1] is not read).
KtStatus llamagen_forward_teacher(LlamaModel *m, int B, const int32_t *labels, const int32_t *tokens, float *logits);

// ---- sampling (llamagen_generate.c)
typedef enum { LLAMA_DECODE_SEQUENTIAL = 0, LLAMA_DECODE_SJD, LLAMA_DECODE_ZIPAR } LlamaDecode;

typedef struct {
    float cfg;             // classifier-free guidance scale; <= 1: no CFG (no null-class rows)
    float cfg_interval;    // > -1: decode steps i > cfg_interval use the conditional logits only
    SmpParams smp;         // seed, top_k (0 off), top_p (1 off), temperature (HF semantics, smp_sample_hf_row)
    LlamaDecode decode;
    int sjd_window;        // L (SJD)
    SmpSjdInit sjd_init;
    SmpSjdSchedule sjd_schedule;
    SmpSjdRule sjd_rule;   // tests only
    int zipar_window;      // s (ZipAR)
} LlamaSampleParams;

// Official demo settings: cfg 4, cfg_interval -1, top_k 2000, top_p 1, temperature 1, sequential; SJD window 16,
// random drafts, simplified schedule; ZipAR window 8.
void llamagen_sample_params_default(LlamaSampleParams *p);
// KT_ERR_ARG with a message naming the option when the parameters are unusable for this model.
KtStatus llamagen_check_params(const LlamaConfig *c, const LlamaSampleParams *p);

typedef struct {
    int64_t forwards;        // batched model calls, the prefill included
    int64_t image_forwards;  // sum over images of each image's own NFE (SJD: its iterations + 1)
    int64_t images, tokens;  // images and tokens produced
    int64_t draft_accepted;  // SJD: drafts accepted by the test
} LlamaStats;

// Samples B images (B <= ws->max_batch): labels (B), image_ids (B) per-image RNG ids. tokens: (B, N) host int32.
// stats (may be NULL) is added to.
KtStatus llamagen_generate(LlamaModel *m, LlamaWorkspace *ws, const LlamaSampleParams *p, int B, const int32_t *labels,
                           const int64_t *image_ids, int32_t *tokens, LlamaStats *stats);
