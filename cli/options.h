// Table-driven long-option parser shared by every argen subcommand. One CliOption table per command drives
// parsing, --help output, the startup echo and the settings JSON, so an option exists in exactly one place.
//
// Accepted syntax: --name value, --name=value, -x value, -xvalue, --flag, -x (flag), -h/--help, "--" (end of
// options; everything after it is positional). A lone "-" is positional. Repeating an option: the last one wins
// (lists are replaced, not appended). Long names are matched exactly; an unknown name gets a suggestion.
//
// Errors are returned as KT_ERR_ARG with a message in kt_last_error(), e.g.
//   --cfg: expected a number, got 'abc'
//   --top-k: expected an integer >= 0, got '-3'
//   unknown option '--tokn' (did you mean --tokens-out?)
//   --class: missing value
//   missing required option --out
// Nothing here prints (except the explicit print/echo helpers) or exits.
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/status.h"

typedef enum {
    CLI_FLAG,        // dest: bool *           (no value; present = true)
    CLI_INT,         // dest: int *            (base 10, 32-bit range)
    CLI_INT64,       // dest: int64_t *
    CLI_FLOAT,       // dest: float *          (finite values only)
    CLI_STRING,      // dest: const char **    (borrowed: points into argv or at the default literal)
    CLI_INT_LIST,    // dest: CliIntList *     ("3,7", ranges "0-9", mixed "1,4-6,10")
    CLI_FLOAT_LIST,  // dest: CliFloatList *   ("0.5,1,2.5")
} CliType;

// Upper bound on list length (1000 ImageNet classes fit); an option may set a smaller max_items.
#define CLI_LIST_MAX 1024

typedef struct {
    int n;
    int v[CLI_LIST_MAX];
} CliIntList;

typedef struct {
    int n;
    float v[CLI_LIST_MAX];
} CliFloatList;

typedef struct {
    const char *name;     // long name without "--", e.g. "top-k"
    char short_name;      // e.g. 'k', or 0 for none ('h' is reserved for help)
    CliType type;
    const char *def;      // default as text, parsed into dest before argv (NULL: dest left as the caller set it)
    const char *metavar;  // value name in --help (NULL: N, X, STR, N,... or the choices)
    const char *help;     // one line
    void *dest;           // see CliType
    bool required;        // must be given on the command line (def is ignored then)
    bool has_min, has_max;
    double min, max;      // inclusive bounds for numbers and for every list item
    const char *choices;  // CLI_STRING only: allowed values separated by '|', e.g. "auto|cpu|cuda"
    int max_items;        // lists only: 0 means CLI_LIST_MAX
} CliOption;

typedef struct {
    const char *prog;         // shown in the usage line, e.g. "argen sample"
    const char *description;  // shown under the usage line; may contain '\n' (NULL: none)
    const CliOption *options;
    int n_options;
    const char *pos_metavar;  // e.g. "<image>" (NULL: "<arg>")
    int min_pos, max_pos;     // positional count bounds; max_pos < 0 means unlimited
    const char *epilog;       // printed after the option list, e.g. examples (NULL: none)
} CliCommand;

#define CLI_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    bool help;           // -h/--help was seen: print help and exit 0 (other checks were skipped)
    int n_pos;
    const char **pos;    // n_pos positional arguments in order; array owned, strings borrowed from argv
    unsigned char *given;  // [n_options]: 1 if the option appeared on the command line
} CliParsed;

// Applies every default, then parses argv[1..argc-1] (argv[0] is the program or subcommand name and is skipped).
// On KT_OK fill `out` (free it with cli_parsed_free); on failure `out` is left zeroed and nothing is owed.
// Destinations may have been partly written on failure.
KtStatus cli_opts_parse(const CliCommand *cmd, int argc, char *const *argv, CliParsed *out);

// Accepts a zeroed struct; idempotent; zeroes it.
void cli_parsed_free(CliParsed *p);

// Whether option `name` (long name) was given explicitly. False for unknown names.
bool cli_opt_given(const CliCommand *cmd, const CliParsed *p, const char *name);

// "usage: <prog> [options] <pos>...", the description, then one aligned line per option with its default,
// bounds or choices, then the epilog.
void cli_opts_print_help(FILE *f, const CliCommand *cmd);

// The parsed configuration as "name=value" pairs (all options, defaults included, then the positionals), wrapped
// at about 100 columns with continuation lines indented. Consecutive integer runs in lists print as ranges.
void cli_opts_echo(FILE *f, const CliCommand *cmd, const CliParsed *p);

// The configuration as one JSON object {"name": value, ..., "args": [...]} (for PNG tEXt chunks).
// *json is malloc'd (free it); `p` may be NULL to omit "args".
KtStatus cli_opts_to_json(const CliCommand *cmd, const CliParsed *p, char **json);
