// Helpers shared by the argen subcommands.
#include <stdio.h>
#include <time.h>

#include "commands.h"

bool cli_parse_or_exit(const CliCommand *cmd, int argc, char **argv, CliParsed *parsed, int *exit_code) {
    KtStatus st = cli_opts_parse(cmd, argc, argv, parsed);
    if (st != KT_OK) {
        fprintf(stderr, "argen: %s\n(see '%s --help')\n", kt_last_error(), cmd->prog);
        *exit_code = 2;
        return false;
    }
    if (parsed->help) {
        cli_opts_print_help(stdout, cmd);
        cli_parsed_free(parsed);
        *exit_code = 0;
        return false;
    }
    return true;
}

int cli_fail(void) {
    fprintf(stderr, "argen: %s\n", argen_last_error());
    return 1;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *cli_json_str(char *dst, size_t cap, const char *s) {
    size_t n = 0;
    if (cap < 3) return cap ? (dst[0] = 0, dst) : dst;
    dst[n++] = '"';
    for (; s && *s && n + 8 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, cap - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    dst[n++] = '"';
    dst[n] = 0;
    return dst;
}
