// argen recon: image -> VQVAE tokens -> image (the tokenizer's round trip).
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>

#include "commands.h"
#include "image_io.h"

static struct {
    const char *vae, *device, *dtype;
    CliIntList patch_nums;
} g;

static const CliOption k_opts[] = {
    {"vae", 0, CLI_STRING, "embedded:var_digits_vae.safetensors", "FILE", "VQVAE checkpoint (.pth/.safetensors; the default is the embedded digits VQVAE, 128x128)", &g.vae, .required = false},
    {"patch-nums", 0, CLI_INT_LIST, NULL, "N,...", "token-map side of each scale (default: the checkpoint's metadata, else 1,2,3,4,5,6,8,10,13,16)", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"device", 0, CLI_STRING, "auto", NULL, "compute device", &g.device, .choices = "auto|cpu|cuda"},
    {"dtype", 0, CLI_STRING, "fp32", NULL, "conv weight/map precision (bf16/fp16: CUDA only)", &g.dtype, .choices = "fp32|bf16|fp16"},
};

static const CliCommand k_cmd = {
    "argen recon", "Encodes IN (PNG/JPEG, the VQVAE's image size) into multi-scale tokens and decodes them into OUT.",
    k_opts, CLI_COUNT(k_opts), "IN OUT", 2, 2, NULL,
};

int cmd_recon(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    const char *in = parsed.pos[0], *out = parsed.pos[1];
    ArgenModel *model = NULL;
    uint8_t *rgb = NULL, *rec = NULL;
    int32_t *tokens = NULL;
    int w = 0, h = 0;
    ArgenLoadParams lp;
    argen_load_params_init(&lp);
    lp.vae_path = g.vae;
    lp.patch_nums = g.patch_nums.n ? g.patch_nums.v : NULL;
    lp.n_patch_nums = g.patch_nums.n;
    lp.device = g.device;
    lp.dtype = g.dtype;
    rc = 1;
    if (read_image_rgb8(in, &rgb, &w, &h) != KT_OK || argen_load(&model, &lp) != ARGEN_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    ArgenInfo info;
    argen_info(model, &info);
    if (w != info.image_size || h != info.image_size) {
        fprintf(stderr, "argen: %s: the image is %dx%d, this VQVAE takes %dx%d images\n", in, w, h, info.image_size,
                info.image_size);
        goto cleanup;
    }
    tokens = malloc((size_t)info.num_tokens * sizeof *tokens);
    rec = malloc((size_t)w * (size_t)h * 3);
    if (!tokens || !rec) {
        fprintf(stderr, "argen: out of memory\n");
        goto cleanup;
    }
    if (argen_encode(model, 1, rgb, tokens) != ARGEN_OK || argen_decode(model, 1, tokens, rec) != ARGEN_OK ||
        write_png_rgb8(out, rec, w, h, NULL, NULL, 0) != KT_OK) {
        rc = cli_fail();
        goto cleanup;
    }
    double se = 0;
    for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) se += ((double)rgb[i] - rec[i]) * ((double)rgb[i] - rec[i]);
    fprintf(stderr, "recon: %d tokens over %d scales, wrote %s (PSNR %.2f dB)\n", info.num_tokens, info.n_scales, out,
            se > 0 ? 10.0 * log10(255.0 * 255.0 * (double)w * h * 3 / se) : 99.0);
    rc = 0;
cleanup:
    argen_free(model);
    free(rgb);
    free(rec);
    free(tokens);
    cli_parsed_free(&parsed);
    return rc;
}
