// The public API's model handle (argen.h) and the pieces argen.c (VAR, common entry points) and argen_llamagen.c
// (LlamaGen) share.
#pragma once

#include "argen.h"
#include "assets/embedded.h"
#include "kernels/ops.h"
#include "llamagen.h"
#include "tokenizer/vq16.h"
#include "var.h"

struct ArgenModel {
    KtBackend be;
    ArgenArch arch;
    int max_batch;
    ArgenStats stats;
    ArgenSampleParams sample_defaults;  // argen_sample_params_init_for: arch defaults + checkpoint metadata
    // VAR
    VarVqvae vq;
    VarModel var;
    VarWorkspace ws;
    bool has_var;
    // LlamaGen
    Vq16 vq16;
    LlamaModel llama;
    LlamaWorkspace lws;
    bool has_llama;
    KtBuffer img_buf;     // decoded images (max_batch, S, S, 3) float32
    int output_size;      // O: side of the pixels written (S, or the evaluation size of ArgenLoadParams.output_size)
    KtBuffer out_buf;     // resized images (max_batch, O, O, 3) float32 when O != S
};

// Reads "cfg", "top_k", "top_p", "temperature" from a transformer checkpoint's metadata into m->sample_defaults.
KtStatus argen_read_sample_defaults(ArgenModel *m, const KtCheckpoint *ck);

// argen_llamagen.c: the LlamaGen side of each entry point (m->be is initialised, m->max_batch set).
KtStatus argen_llamagen_load(ArgenModel *m, const ArgenLoadParams *p);
void argen_llamagen_free(ArgenModel *m);
void argen_llamagen_info(const ArgenModel *m, ArgenInfo *info);
KtStatus argen_llamagen_sample(ArgenModel *m, const ArgenSampleParams *p, int n, const int *classes,
                               const int64_t *image_ids, uint8_t *pixels, int32_t *tokens);
KtStatus argen_llamagen_encode(ArgenModel *m, int n, const uint8_t *pixels, int32_t *tokens);
KtStatus argen_llamagen_decode(ArgenModel *m, int n, const int32_t *tokens, uint8_t *pixels);
// Describes a LlamaGen GPT or VQ checkpoint (false when it is neither).
bool argen_llamagen_describe(const KtCheckpoint *ck, FILE *out);
