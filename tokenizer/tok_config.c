// Tokenizer configuration from checkpoint metadata.
#include "tok_config.h"

KtStatus tok_norm_groups(const KtCheckpoint *ck, int ch, const int *ch_mult, int n_levels, int *groups) {
    bool found = false;
    *groups = 32;
    KT_TRY(kt_ckpt_meta_int(ck, "norm_groups", 1, 1 << 20, groups, &found));
    for (int i = -1; i < n_levels; i++)  // -1: conv_in's width
        if ((ch * (i < 0 ? 1 : ch_mult[i])) % *groups)
            return KT_FAIL(KT_ERR_FORMAT, "%s: %d channels (level %d) cannot be split into %d GroupNorm groups%s",
                           ck->path, ch * (i < 0 ? 1 : ch_mult[i]), i, *groups,
                           found ? "" : " (the official count; a smaller model must name its count in the "
                                        "safetensors metadata \"norm_groups\")");
    return KT_OK;
}
