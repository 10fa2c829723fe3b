// The argen subcommands and helpers they share. Each command returns the process exit code
// (0 ok, 1 runtime error, 2 usage error) and prints errors as "argen: <what>".
#pragma once

#include "argen.h"
#include "options.h"
#include "kernels/backend.h"

int cmd_sample(int argc, char **argv);
int cmd_recon(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_fid(int argc, char **argv);
int cmd_fid_merge(int argc, char **argv);
int cmd_render(int argc, char **argv);

// Parses argv with `cmd`; prints help (returns 0 via *exit_code) or a usage error (2). Returns true when the
// command should go on.
bool cli_parse_or_exit(const CliCommand *cmd, int argc, char **argv, CliParsed *parsed, int *exit_code);
// Prints "argen: <kt_last_error()>" and returns 1.
int cli_fail(void);
// Writes s as a JSON string literal (quotes included, escaped, truncated to fit) into dst[cap]; returns dst.
const char *cli_json_str(char *dst, size_t cap, const char *s);
// Seconds since an arbitrary start (monotonic clock).
double cli_now(void);

// Evaluation helpers shared by fid and render (cmd_fid.c).
// The FID Inception weights: `given`, else $ARGEN_INCEPTION, else the first readable default location; an error
// with download instructions when there is none.
KtStatus cli_inception_path(const char *given, char *buf, size_t cap);
// "K/N" -> k, n (NULL: 0/1).
KtStatus cli_parse_shard(const char *s, int *k, int *n);
// A backend for the Inception network: --device and --dtype.
KtStatus cli_eval_backend(KtBackend *be, const char *device, const char *dtype);
