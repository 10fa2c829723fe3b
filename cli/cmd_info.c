// argen info: a checkpoint's tensors and the configuration argen derives from it.
#include <stdio.h>

#include "commands.h"

static struct {
    CliIntList patch_nums;
} g;

static const CliOption k_opts[] = {
    {"patch-nums", 0, CLI_INT_LIST, NULL, "N,...", "patch schedule used to derive the token count (default: the file's metadata, else 1,2,3,4,5,6,8,10,13,16)", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
};

static const CliCommand k_cmd = {
    "argen info", "Lists the tensors (name, shape, dtype) of CKPT and the model configuration derived from them.\n"
    "CKPT may name an embedded default model, e.g. embedded:var_digits.safetensors.",
    k_opts, CLI_COUNT(k_opts), "CKPT", 1, 1, NULL,
};

int cmd_info(int argc, char **argv) {
    CliParsed parsed;
    int rc;
    if (!cli_parse_or_exit(&k_cmd, argc, argv, &parsed, &rc)) return rc;
    rc = argen_describe_checkpoint(parsed.pos[0], g.patch_nums.n ? g.patch_nums.v : NULL, g.patch_nums.n, stdout) == ARGEN_OK ? 0 : cli_fail();
    cli_parsed_free(&parsed);
    return rc;
}
