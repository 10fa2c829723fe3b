// argen: class-conditional visual autoregressive image generation (VAR next-scale models) in C.
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

typedef struct {
    const char *vae_path;    // VQVAE checkpoint (.pth or .safetensors); required unless random_depth > 0
    const char *ckpt_path;   // transformer checkpoint; NULL loads the tokenizer only (encode/decode)
    const int *patch_nums;   // NULL: the official (1,2,3,4,5,6,8,10,13,16)
    int n_patch_nums;
    const char *device;      // "auto" (default), "cpu", "cuda"
    const char *dtype;       // "fp32" (default), "bf16", "fp16" (CUDA only)
    int max_batch;           // images per forward pass (default 1); sizes all buffers once
    int random_depth;        // > 0: the official VAR-d<depth> architecture with random weights (benchmarks)
    uint64_t random_seed;    // seed of the random weights
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
} ArgenInfo;

ArgenStatus argen_info(const ArgenModel *m, ArgenInfo *info);

typedef struct {
    float cfg;               // guidance at the last scale, ramped from 0 (default 1.5)
    int top_k;               // 0: off (default 900)
    float top_p;             // 0: off (default 0.96)
    bool more_smooth;        // Gumbel-softmax latents (default false)
    uint64_t seed;           // default 0
} ArgenSampleParams;

// Defaults = the official FID-50k settings of VAR (cfg 1.5, top-k 900, top-p 0.96, no smoothing, seed 0).
void argen_sample_params_init(ArgenSampleParams *p);

// Samples n images (any n; run in batches of max_batch). Image i uses class classes[i] and the random stream
// image_ids[i], so it does not depend on n, the batch size, the device or the thread count.
// pixels: n*S*S*3 bytes; tokens: n*num_tokens ids or NULL.
ArgenStatus argen_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                         const int64_t *image_ids, uint8_t *pixels, int32_t *tokens);

// Tokenizer: images (n, S, S, 3) -> tokens (n, num_tokens) and back (decode writes pixels like argen_sample).
ArgenStatus argen_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens);
ArgenStatus argen_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels);

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
