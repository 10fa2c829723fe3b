// argen command-line entry point: dispatches to the subcommands. Exit codes: 0 ok, 1 runtime error, 2 usage.
#include <stdio.h>
#include <string.h>

#include "argen.h"
#include "commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command k_commands[] = {
    {"sample", cmd_sample, "sample class-conditional images into PNG/JPEG files"},
    {"recon", cmd_recon, "encode an image to tokens with the VQVAE and decode it back"},
    {"info", cmd_info, "list a checkpoint's tensors and the configuration derived from them"},
    {"bench", cmd_bench, "time sampling (and decoding) for an architecture or checkpoint"},
    {"render", cmd_render, "render an evaluation set (e.g. 50 per class) into PNGs or a sample .npz, resumable"},
    {"fid", cmd_fid, "FID / sFID / Inception Score of PNG directories, sample .npz or statistics files"},
    {"fid-merge", cmd_fid_merge, "merge partial statistics of shards exactly"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: argen <command> [options]\n\n"
               "argen %s: visual autoregressive image generation (VAR and LlamaGen) in C\n\ncommands:\n", argen_version());
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        fprintf(f, "  %-9s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "\n'argen <command> --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("argen %s (CUDA %s)\n", argen_version(), argen_cuda_available() ? "available" : "not available");
        return 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof *k_commands; i++)
        if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "argen: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
