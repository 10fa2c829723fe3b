// libFuzzer harness for the command-line parser (cli/options.c): the input, split at NUL bytes, is an argv parsed
// against two option tables that hold every option type (flag, int, int64, float, string with choices, int and
// float lists with bounds and item limits, short names, a required option, positional bounds). Beyond the
// sanitizers it checks the contract:
//   - a failure is KT_ERR_ARG with a message, and leaves the parsed struct zeroed;
//   - a success leaves every number, list item and list length inside its bounds, every choice among its choices,
//     every float finite, the positional count inside its bounds, and every string pointing into argv or at its
//     default;
//   - the settings JSON of a success is well-formed JSON (control characters escaped), and echo and help print.
// Build and run: scripts/fuzz.sh [seconds]
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"

static struct {
    bool quiet, json;
    int top_k, steps;
    int64_t seed;
    float cfg, top_p;
    const char *device, *out, *format;
    CliIntList classes, patch_nums;
    CliFloatList scales;
} g;

static const CliOption k_opts[] = {
    {"quiet", 'q', CLI_FLAG, NULL, NULL, "no progress", &g.quiet, .required = false},
    {"json", 0, CLI_FLAG, NULL, NULL, "JSON output", &g.json, .required = false},
    {"top-k", 'k', CLI_INT, "900", NULL, "top-k", &g.top_k, .has_min = true, .min = 0},
    {"steps", 0, CLI_INT, "10", NULL, "steps", &g.steps, .has_min = true, .min = 1, .has_max = true, .max = 100},
    {"seed", 's', CLI_INT64, "0", NULL, "seed", &g.seed, .has_min = true, .min = 0},
    {"cfg", 0, CLI_FLOAT, "1.5", "X", "guidance", &g.cfg, .has_min = true, .min = 0},
    {"top-p", 'p', CLI_FLOAT, "0.96", NULL, "top-p", &g.top_p, .has_min = true, .min = 0, .has_max = true, .max = 1},
    {"device", 0, CLI_STRING, "auto", NULL, "device", &g.device, .choices = "auto|cpu|cuda"},
    {"format", 0, CLI_STRING, NULL, "FMT", "format", &g.format, .choices = "png|jpg"},
    {"out", 'o', CLI_STRING, NULL, "DIR", "output", &g.out, .required = false},
    {"class", 'c', CLI_INT_LIST, "0-9", "C,...", "classes", &g.classes, .has_min = true, .min = 0, .has_max = true,
     .max = 999},
    {"patch-nums", 0, CLI_INT_LIST, "1,2,3", NULL, "scales", &g.patch_nums, .has_min = true, .min = 1, .max_items = 32},
    {"scales", 0, CLI_FLOAT_LIST, "0.5,1", NULL, "factors", &g.scales, .has_min = true, .min = 0, .has_max = true,
     .max = 10, .max_items = 8},
};

// The same options with --out required.
static CliOption k_opts_required[CLI_COUNT(k_opts)];

static const CliCommand k_cmd = {"argen fuzz", "a command with every option type", k_opts, CLI_COUNT(k_opts), "FILE",
                                 0, 3, "example:\n  argen fuzz --class 1,4-6 a b"};
static CliCommand k_cmd_required = {"argen fuzz-required", NULL, NULL, CLI_COUNT(k_opts), NULL, 1, -1, NULL};

static void fail(const char *what) {
    fprintf(stderr, "contract violated: %s (last error: %s)\n", what, kt_last_error());
    abort();
}

// ------------------------------------------------------------------------------------------ JSON syntax check
// A recursive-descent recogniser for RFC 8259 JSON (bytes >= 0x80 taken as they come). Returns the end or NULL.
static const char *json_value(const char *s, int depth);

static const char *json_ws(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return s;
}

static const char *json_string(const char *s) {
    if (*s++ != '"') return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*s++;
        if (c == '"') return s;
        if (c < 0x20) return NULL;  // includes the terminating NUL
        if (c != '\\') continue;
        c = (unsigned char)*s++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++, s++)
                if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) return NULL;
        } else if (!strchr("\"\\/bfnrt", c) || !c) {
            return NULL;
        }
    }
}

static const char *json_number(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
    else return NULL;
    if (*s == '.') {
        if (!(*++s >= '0' && *s <= '9')) return NULL;
        while (*s >= '0' && *s <= '9') s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return NULL;
        while (*s >= '0' && *s <= '9') s++;
    }
    return s;
}

static const char *json_items(const char *s, char close, bool keyed, int depth) {
    s = json_ws(s + 1);
    if (*s == close) return s + 1;
    for (;;) {
        if (keyed) {
            if (!(s = json_string(s))) return NULL;
            s = json_ws(s);
            if (*s++ != ':') return NULL;
        }
        if (!(s = json_value(s, depth + 1))) return NULL;
        s = json_ws(s);
        if (*s == close) return s + 1;
        if (*s++ != ',') return NULL;
        s = json_ws(s);
    }
}

static const char *json_value(const char *s, int depth) {
    if (depth > 16) return NULL;
    s = json_ws(s);
    switch (*s) {
    case '{': return json_items(s, '}', true, depth);
    case '[': return json_items(s, ']', false, depth);
    case '"': return json_string(s);
    case 't': return strncmp(s, "true", 4) ? NULL : s + 4;
    case 'f': return strncmp(s, "false", 5) ? NULL : s + 5;
    case 'n': return strncmp(s, "null", 4) ? NULL : s + 4;
    default: return json_number(s);
    }
}

// ------------------------------------------------------------------------------------------------ contract
static bool points_into(const char *s, char *const *argv, int argc, const char *def) {
    if (s == def) return true;
    for (int i = 0; i < argc; i++)
        if (s >= argv[i] && s <= argv[i] + strlen(argv[i])) return true;
    return false;
}

static void check_success(const CliCommand *cmd, const CliParsed *p, int argc, char *const *argv) {
    if (p->help) return;  // other checks were skipped
    if (p->n_pos < cmd->min_pos || (cmd->max_pos >= 0 && p->n_pos > cmd->max_pos)) fail("positional count");
    for (int i = 0; i < p->n_pos; i++)
        if (!points_into(p->pos[i], argv, argc, NULL)) fail("a positional outside argv");
    for (int i = 0; i < cmd->n_options; i++) {
        const CliOption *o = &cmd->options[i];
        double lo = o->has_min ? o->min : -INFINITY, hi = o->has_max ? o->max : INFINITY;
        int max_items = o->max_items ? o->max_items : CLI_LIST_MAX;
        switch (o->type) {
        case CLI_FLAG: break;
        case CLI_INT:
            if (*(int *)o->dest < lo || *(int *)o->dest > hi) fail("an int out of bounds");
            break;
        case CLI_INT64:
            if ((double)*(int64_t *)o->dest < lo || (double)*(int64_t *)o->dest > hi) fail("an int64 out of bounds");
            break;
        case CLI_FLOAT: {
            float v = *(float *)o->dest;
            if (!isfinite(v) || v < lo || v > hi) fail("a float out of bounds or not finite");
            break;
        }
        case CLI_STRING: {
            const char *s = *(const char **)o->dest;
            if (o->required && !s) fail("a required option left unset");
            if (s && !points_into(s, argv, argc, o->def)) fail("a string outside argv and its default");
            if (s && o->choices) {
                size_t n = strlen(s);
                const char *c = o->choices;
                bool ok = false;
                while (!ok && c) {
                    const char *bar = strchr(c, '|');
                    size_t m = bar ? (size_t)(bar - c) : strlen(c);
                    ok = m == n && !strncmp(c, s, n);
                    c = bar ? bar + 1 : NULL;
                }
                if (!ok) fail("a string outside its choices");
            }
            break;
        }
        case CLI_INT_LIST: {
            const CliIntList *l = o->dest;
            if (l->n < 1 || l->n > max_items) fail("an int list's length");
            for (int k = 0; k < l->n; k++)
                if (l->v[k] < lo || l->v[k] > hi) fail("an int list item out of bounds");
            break;
        }
        case CLI_FLOAT_LIST: {
            const CliFloatList *l = o->dest;
            if (l->n < 1 || l->n > max_items) fail("a float list's length");
            for (int k = 0; k < l->n; k++)
                if (!isfinite(l->v[k]) || l->v[k] < lo || l->v[k] > hi) fail("a float list item out of bounds");
            break;
        }
        }
    }
    char *json = NULL;
    if (cli_opts_to_json(cmd, p, &json) != KT_OK) fail("settings JSON failed");
    const char *end = json_value(json, 0);
    if (!end || *json_ws(end)) {
        fprintf(stderr, "JSON: %s\n", json);
        fail("settings JSON is not well-formed");
    }
    free(json);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        cli_opts_echo(null, cmd, p);
        fclose(null);
    }
}

static void parse_one(const CliCommand *cmd, int argc, char **argv) {
    memset(&g, 0, sizeof g);
    g.out = "(caller's value)";  // no default: parsing must leave it or point it into argv
    CliParsed p;
    memset(&p, 0x5a, sizeof p);
    KtStatus st = cli_opts_parse(cmd, argc, argv, &p);
    if (st != KT_OK) {
        if (st != KT_ERR_ARG) fail("a failure other than KT_ERR_ARG");
        if (!kt_last_error()[0]) fail("a failure without a message");
        if (p.help || p.n_pos || p.pos || p.given) fail("a failure left the parsed struct set");
        cli_parsed_free(&p);
        return;
    }
    const char *caller = "(caller's value)";
    if (g.out != caller && !points_into(g.out, argv, argc, NULL)) fail("--out outside argv");
    if (g.out == caller) g.out = NULL;  // for the checks and the JSON: never given
    check_success(cmd, &p, argc, argv);
    cli_parsed_free(&p);
    cli_parsed_free(&p);  // idempotent
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool ready;
    if (!ready) {
        memcpy(k_opts_required, k_opts, sizeof k_opts);
        for (int i = 0; i < CLI_COUNT(k_opts); i++)
            if (!strcmp(k_opts_required[i].name, "out")) k_opts_required[i].required = true;
        k_cmd_required.options = k_opts_required;
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            cli_opts_print_help(null, &k_cmd);
            cli_opts_print_help(null, &k_cmd_required);
            fclose(null);
        }
        ready = true;
    }
    enum { MAX_ARGS = 64 };
    char *buf = malloc(size + 1), *argv[MAX_ARGS + 1];
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 0;
    argv[argc++] = "argen-fuzz";
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {  // NUL-separated tokens
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    parse_one(&k_cmd, argc, argv);
    parse_one(&k_cmd_required, argc, argv);
    free(buf);
    return 0;
}
