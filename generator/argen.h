// argen: class-conditional visual autoregressive image generation in C: VAR next-scale models and LlamaGen raster
// models (sequential, speculative Jacobi and ZipAR decoding), chosen by ArgenLoadParams.arch.
// The engine's one public header: load a model, sample, encode/decode with its tokenizer, free.
// Every function returns a status (ARGEN_OK = 0) and never exits; argen_last_error() explains a failure
// (thread-local). Pixels are 8-bit RGB, row-major (n, S, S, 3). Thread safety: one model per thread.
#ifndef ARGEN_H
#define ARGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int ArgenStatus;
enum {
    ARGEN_OK = 0,
    ARGEN_ERR_ARG,          // invalid argument
    ARGEN_ERR_IO,           // file could not be opened/read/written
    ARGEN_ERR_FORMAT,       // file contents are not what they should be
    ARGEN_ERR_SHAPE,        // tensor shapes disagree (e.g. a checkpoint of another configuration)
    ARGEN_ERR_OOM,          // out of memory
    ARGEN_ERR_CUDA,         // a CUDA call failed
    ARGEN_ERR_UNSUPPORTED,  // not available in this build / on this device
    ARGEN_ERR_NUMERIC,      // non-finite values in logits or pixels
};

typedef struct ArgenModel ArgenModel;

typedef enum {
    ARGEN_ARCH_VAR = 0,      // VAR next-scale transformer + multi-scale VQVAE (the default)
    ARGEN_ARCH_LLAMAGEN,     // LlamaGen c2i raster GPT + VQ-16 tokenizer
} ArgenArch;

// Decoding strategies. VAR supports sequential (its scale-by-scale loop) only; LlamaGen all three.
typedef enum {
    ARGEN_DECODE_SEQUENTIAL = 0,  // one token (VAR: one scale) per forward, as the official code
    ARGEN_DECODE_SJD,             // speculative Jacobi decoding: same distribution as sequential, fewer forwards
    ARGEN_DECODE_ZIPAR,           // ZipAR: the next row starts `zipar_window` tokens behind the current one
} ArgenDecode;

typedef enum {
    ARGEN_SJD_INIT_RANDOM = 0,       // fresh drafts uniform over the vocabulary
    ARGEN_SJD_INIT_REPEAT_HORIZON,   // repeat the token to the left (first column: random)
    ARGEN_SJD_INIT_SAMPLE_HORIZON,   // the most likely token of the left neighbour's distribution (first column: random)
} ArgenSjdInit;

typedef struct {
    const char *vae_path;    // tokenizer checkpoint (.pth/.pt or .safetensors): VAR's VQVAE or LlamaGen's VQ;
                             // required unless random weights are requested
    const char *ckpt_path;   // transformer checkpoint; NULL loads the tokenizer only (encode/decode)
    const int *patch_nums;   // NULL: the official (1,2,3,4,5,6,8,10,13,16)
    int n_patch_nums;
    const char *device;      // "auto" (default), "cpu", "cuda"
    const char *dtype;       // "fp32" (default), "bf16", "fp16" (CUDA only)
    int max_batch;           // images per forward pass (default 1); sizes all buffers once
    int random_depth;        // > 0: the official VAR-d<depth> architecture with random weights (benchmarks)
    uint64_t random_seed;    // seed of the random weights
    // appended for LlamaGen (ignored by VAR)
    ArgenArch arch;          // default ARGEN_ARCH_VAR
    int image_size;          // image side; token grid = image_size / 16 (default 256; the 384px checkpoints: 384)
    int heads;               // attention heads (0: the official count for the checkpoint's width, else head size 64)
    const char *random_arch; // official GPT with random weights: "B", "L", "XL", "XXL", "3B" ... (benchmarks)
    int output_size;         // LlamaGen: 0 (default) writes pixels at image_size; else each decoded image is resized
                             // on its float values with PyTorch's bicubic (align_corners=False, no antialias) to
                             // output_size x output_size before the 8-bit conversion: the official FID protocol of the
                             // 384px models (sample_c2i_ddp.py --image-size-eval 256). VAR: 0 or its image size only.
} ArgenLoadParams;

void argen_load_params_init(ArgenLoadParams *p);
ArgenStatus argen_load(ArgenModel **out, const ArgenLoadParams *p);
void argen_free(ArgenModel *m);  // accepts NULL

typedef struct {
    int image_size;          // S
    int num_tokens;          // tokens per image, all scales
    int num_classes;         // 0 when no transformer is loaded
    int vocab_size;
    int depth, width, heads; // transformer (0 when none)
    int n_scales;
    int patch_nums[32];
    int max_batch;
    size_t n_params_generator, n_params_tokenizer;
    const char *device;      // the backend and kernel path in use, e.g. "cpu (OpenBLAS ..., 2 threads)"
    size_t device_bytes_peak;// peak memory allocated on the device so far
    const char *notes;       // fallbacks taken so far (e.g. "graphs off, eager launches (capture failed: ...)"), or ""
    ArgenArch arch;
    int grid;                // LlamaGen: token grid side (num_tokens = grid * grid); 0 for VAR
    int output_size;         // side of the pixels argen_sample / argen_decode write (n, O, O, 3): image_size unless
                             // ArgenLoadParams.output_size resized them
} ArgenInfo;

ArgenStatus argen_info(const ArgenModel *m, ArgenInfo *info);

typedef struct {
    float cfg;               // VAR: guidance at the last scale, ramped from 0 (default 1.5); LlamaGen: the scale
                             // (> 1: CFG with the null class; official demo 4.0)
    int top_k;               // 0: off (default 900; LlamaGen demo 2000)
    float top_p;             // VAR: 0 off (default 0.96); LlamaGen (HF-style): 1 off (default 1.0)
    bool more_smooth;        // VAR: Gumbel-softmax latents (default false)
    uint64_t seed;           // default 0
    // appended for LlamaGen (VAR accepts only decode = ARGEN_DECODE_SEQUENTIAL)
    float cfg_interval;      // > -1: decode steps i > cfg_interval use the conditional logits only (default -1)
    float temperature;       // default 1
    ArgenDecode decode;      // default sequential
    int sjd_window;          // SJD: tokens per forward (1 accepted + drafts), default 16
    ArgenSjdInit sjd_init;   // SJD: draft initialisation, default random
    int zipar_window;        // ZipAR: tokens of a row before the next row starts, 2 .. grid-1, default 8
} ArgenSampleParams;

// Defaults = the official FID-50k settings of VAR (cfg 1.5, top-k 900, top-p 0.96, no smoothing, seed 0).
void argen_sample_params_init(ArgenSampleParams *p);
// The loaded model's official defaults (VAR: as above; LlamaGen: the demo's cfg 4, top-k 2000, top-p 1).
void argen_sample_params_init_for(ArgenSampleParams *p, const ArgenModel *m);

// Samples n images (any n; run in batches of max_batch). Image i uses class classes[i] and the random stream
// image_ids[i], so it does not depend on n, the batch size, the device or the thread count.
// pixels: n*O*O*3 bytes (O = ArgenInfo.output_size); tokens: n*num_tokens ids or NULL.
ArgenStatus argen_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                         const int64_t *image_ids, uint8_t *pixels, int32_t *tokens);

// Tokenizer: images (n, S, S, 3) -> tokens (n, num_tokens) and back (decode writes pixels like argen_sample, at
// output_size).
// LlamaGen tokens are in raster order (row-major over the grid).
ArgenStatus argen_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens);
ArgenStatus argen_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels);

// Counters of argen_sample calls since load (or the last reset).
typedef struct {
    int64_t forwards;        // transformer forward passes (batched calls; the class-token prefill included)
    int64_t image_forwards;  // forward passes per image, summed over images (SJD: each image's own count)
    int64_t images, tokens;  // images and tokens sampled
    int64_t draft_accepted;  // SJD: draft tokens accepted by the speculative test
    double seconds;          // wall time inside argen_sample (decode to pixels included)
} ArgenStats;
ArgenStatus argen_stats(const ArgenModel *m, ArgenStats *s);
void argen_stats_reset(ArgenModel *m);

// Per-op timing of the work that follows (on CUDA the GPU time of each op, from events around it; graphs are off
// meanwhile, so the run is eager): on = true starts (clearing the table), false stops. argen_profile_report prints
// the table (op, calls, total ms, mean us, share of all ops) as Markdown.
ArgenStatus argen_profile(ArgenModel *m, bool on);
ArgenStatus argen_profile_report(ArgenModel *m, FILE *f);

// Prints a checkpoint's format, tensors (name, shape, dtype) and the configuration derived from it.
ArgenStatus argen_describe_checkpoint(const char *path, const int *patch_nums, int n_patch_nums, FILE *out);

const char *argen_last_error(void);
const char *argen_status_name(ArgenStatus s);
const char *argen_version(void);
bool argen_cuda_available(void);

#ifdef __cplusplus
}
#endif
#endif
