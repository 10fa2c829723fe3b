// argen_describe_checkpoint: a checkpoint's tensors and the configuration argen derives from them.
#include <inttypes.h>

#include "argen.h"
#include "argen_internal.h"
#include "var.h"

static void print_schedule(FILE *out, const int *pn, int n) {
    for (int i = 0; i < n; i++) fprintf(out, i ? ",%d" : "%d", pn[i]);
}

static void describe_vq(FILE *out, const KtCheckpoint *ck, const int *pns, int n_pns) {
    VarVqConfig c;
    if (vq_var_config_from_ckpt(&c, ck, pns, n_pns) != KT_OK) {
        fprintf(out, "config: %s\n", kt_last_error());
        return;
    }
    fprintf(out, "model: VAR multi-scale VQVAE\nconfig: ch %d, ch_mult (", c.ch);
    print_schedule(out, c.ch_mult, c.n_levels);
    fprintf(out, "), res blocks %d, Cvae %d, codebook %d, Phi convs %d, GroupNorm groups %d\n", c.num_res_blocks, c.Cvae, c.V, c.n_phi, c.norm_groups);
    fprintf(out, "with --patch-nums ");
    print_schedule(out, c.patch_nums, c.n_scales);
    fprintf(out, ": image %dx%d, %d tokens, Phi per scale (", c.image_size, c.image_size, vq_var_num_tokens(&c));
    print_schedule(out, c.phi_index, c.n_scales);
    fprintf(out, ")\n");
}

static void describe_var(FILE *out, const KtCheckpoint *ck, const int *pns, int n_pns) {
    VarConfig c;
    if (var_config_from_ckpt(&c, ck, pns, n_pns) != KT_OK) {
        fprintf(out, "config: %s\n", kt_last_error());
        return;
    }
    fprintf(out, "model: VAR next-scale transformer\nconfig: depth %d, width %d, heads %d (head size %d), MLP %d, "
            "vocabulary %d, Cvae %d, classes %d\n", c.depth, c.C, c.n_heads, c.head_size, c.mlp_hidden, c.V, c.Cvae,
            c.num_classes);
    fprintf(out, "with --patch-nums ");
    print_schedule(out, c.patch_nums, c.n_scales);
    fprintf(out, ": %d tokens\n", c.L);
}

ArgenStatus argen_describe_checkpoint(const char *path, const int *patch_nums, int n_patch_nums, FILE *out) {
    static const int official[] = {1, 2, 3, 4, 5, 6, 8, 10, 13, 16};
    KtCheckpoint ck = {0};
    KT_TRY(argen_ckpt_open(&ck, path));
    int meta_pns[32], n_meta = 0;
    bool found = false;
    if (!patch_nums && kt_ckpt_meta_ints(&ck, "patch_nums", meta_pns, 32, &n_meta, &found) == KT_OK && found) {
        patch_nums = meta_pns;  // the schedule the file records (the embedded digits models do)
        n_patch_nums = n_meta;
    }
    if (!patch_nums) {
        patch_nums = official;
        n_patch_nums = 10;
    }
    int64_t n_float = 0;
    fprintf(out, "file: %s\nformat: %s, %d tensors\n", path, kt_ckpt_format_name(ck.format), ck.n_tensors);
    for (int i = 0; i < ck.n_tensors; i++) {
        const KtCkptTensor *t = &ck.tensors[i];
        KtTensor v = kt_tensor(NULL, t->dtype, KT_CPU, t->ndim, t->shape);
        char shape[96];
        fprintf(out, "  %-48s %-20s %s\n", t->name, kt_shape_str(&v, shape, sizeof shape), kt_dtype_name(t->dtype));
        if (t->dtype == KT_F32 || t->dtype == KT_F16 || t->dtype == KT_BF16 || t->dtype == KT_F64)
            n_float += kt_ckpt_numel(t);
    }
    fprintf(out, "floating-point values: %" PRId64 "\n", n_float);
    if (ck.metadata_json) fprintf(out, "metadata: %s\n", ck.metadata_json);
    if (argen_llamagen_describe(&ck, out)) (void)0;  // LlamaGen VQ or GPT (its VQ also has encoder.conv_in)
    else if (kt_ckpt_find(&ck, "encoder.conv_in.weight")) describe_vq(out, &ck, patch_nums, n_patch_nums);
    else if (kt_ckpt_find(&ck, "word_embed.weight")) describe_var(out, &ck, patch_nums, n_patch_nums);
    else fprintf(out, "model: not recognised (argen reads VAR VQVAE / transformer and LlamaGen VQ / GPT checkpoints)\n");
    kt_ckpt_close(&ck);
    return ARGEN_OK;
}
