// The embedded default models: each asset file becomes a read-only symbol pair (start, end) through the assembler's
// .incbin, so the binary carries the exact bytes of the committed file. CMake passes ARGEN_ASSET_<ID>="<path>" for
// every file that exists at configure time; an asset missing from the build reports how to get it.
#include "embedded.h"

#include <stdio.h>
#include <string.h>

// EMBED(id, path): symbols argen_asset_<id>_start / _end around the file's bytes (64-byte aligned, .rodata).
#define EMBED(id, path)                                                                                   \
    __asm__(".section .rodata\n.balign 64\n.globl argen_asset_" #id "_start\nargen_asset_" #id "_start:\n" \
            ".incbin \"" path "\"\n.globl argen_asset_" #id "_end\nargen_asset_" #id "_end:\n.previous\n"); \
    extern const uint8_t argen_asset_##id##_start[], argen_asset_##id##_end[];

#ifdef ARGEN_ASSET_VAR_DIGITS_VAE
EMBED(var_digits_vae, ARGEN_ASSET_VAR_DIGITS_VAE)
#endif
#ifdef ARGEN_ASSET_VAR_DIGITS
EMBED(var_digits, ARGEN_ASSET_VAR_DIGITS)
#endif
#ifdef ARGEN_ASSET_LLAMAGEN_DIGITS_VQ
EMBED(llamagen_digits_vq, ARGEN_ASSET_LLAMAGEN_DIGITS_VQ)
#endif
#ifdef ARGEN_ASSET_LLAMAGEN_DIGITS
EMBED(llamagen_digits, ARGEN_ASSET_LLAMAGEN_DIGITS)
#endif

// start/end pairs; sizes are differences of distinct symbols, so they are computed at run time (asset_table)
typedef struct {
    const char *name;
    const uint8_t *start, *end;
} AssetSym;
#define ASSET(id, file, start, end) {file, start, end}
static const AssetSym g_syms[] = {
#ifdef ARGEN_ASSET_VAR_DIGITS_VAE
    ASSET(var_digits_vae, "var_digits_vae.safetensors", argen_asset_var_digits_vae_start, argen_asset_var_digits_vae_end),
#else
    {"var_digits_vae.safetensors", NULL, NULL},
#endif
#ifdef ARGEN_ASSET_VAR_DIGITS
    ASSET(var_digits, "var_digits.safetensors", argen_asset_var_digits_start, argen_asset_var_digits_end),
#else
    {"var_digits.safetensors", NULL, NULL},
#endif
#ifdef ARGEN_ASSET_LLAMAGEN_DIGITS_VQ
    ASSET(llamagen_digits_vq, "llamagen_digits_vq.safetensors", argen_asset_llamagen_digits_vq_start,
          argen_asset_llamagen_digits_vq_end),
#else
    {"llamagen_digits_vq.safetensors", NULL, NULL},
#endif
#ifdef ARGEN_ASSET_LLAMAGEN_DIGITS
    ASSET(llamagen_digits, "llamagen_digits.safetensors", argen_asset_llamagen_digits_start,
          argen_asset_llamagen_digits_end),
#else
    {"llamagen_digits.safetensors", NULL, NULL},
#endif
};

#define N_ASSETS ((int)(sizeof g_syms / sizeof *g_syms))

const ArgenAsset *argen_assets(int *n) {
    static ArgenAsset table[N_ASSETS];  // rewritten with the same values on every call: no init race matters
    for (int i = 0; i < N_ASSETS; i++)
        table[i] = (ArgenAsset){g_syms[i].name, g_syms[i].start, (size_t)(g_syms[i].end - g_syms[i].start)};
    *n = N_ASSETS;
    return table;
}

bool argen_is_embedded_path(const char *path) {
    return path && !strncmp(path, ARGEN_EMBEDDED_PREFIX, strlen(ARGEN_EMBEDDED_PREFIX));
}

KtStatus argen_ckpt_open(KtCheckpoint *ck, const char *path) {
    if (!argen_is_embedded_path(path)) return kt_ckpt_open(ck, path);
    const char *file = path + strlen(ARGEN_EMBEDDED_PREFIX);
    int n;
    const ArgenAsset *a = argen_assets(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(a[i].name, file)) continue;
        if (!a[i].data)
            return KT_FAIL(KT_ERR_IO, "%s: this argen build has no embedded copy of assets/%s (the file was missing "
                           "when CMake configured the build: restore it from git and rebuild)", path, file);
        return kt_ckpt_open_memory(ck, a[i].data, a[i].size, path);
    }
    char names[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", a[i].name);
    return KT_FAIL(KT_ERR_IO, "%s: no such embedded model (embedded: %s)", path, names);
}
