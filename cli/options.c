// Table-driven option parsing, --help, the startup echo and the settings JSON. See options.h for the syntax.
#include "cli/options.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HELP_COL_MAX 32   // left column of --help never wider than this; longer entries wrap
#define ECHO_WIDTH 100
#define ITEM_MAX 64       // longest list item we try to parse

typedef enum { NUM_OK, NUM_SYNTAX, NUM_RANGE } NumResult;

static bool is_int_type(CliType t) { return t == CLI_INT || t == CLI_INT64 || t == CLI_INT_LIST; }
static bool is_list_type(CliType t) { return t == CLI_INT_LIST || t == CLI_FLOAT_LIST; }

// ------------------------------------------------------------------------------------------- scalar parsing
static NumResult parse_i64_text(const char *s, int64_t *v) {
    if (!s[0] || isspace((unsigned char)s[0])) return NUM_SYNTAX;  // strtoll would skip leading blanks
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (end == s || *end) return NUM_SYNTAX;
    if (errno == ERANGE) return NUM_RANGE;
    *v = (int64_t)x;
    return NUM_OK;
}

static NumResult parse_f32_text(const char *s, float *v) {
    if (!s[0] || isspace((unsigned char)s[0])) return NUM_SYNTAX;
    errno = 0;
    char *end;
    float x = strtof(s, &end);
    if (end == s || *end || isnan(x)) return NUM_SYNTAX;
    if (isinf(x)) return errno == ERANGE ? NUM_RANGE : NUM_SYNTAX;  // "inf" is syntax, 1e99 is range
    *v = x;                                                        // underflow to 0/denormal is accepted
    return NUM_OK;
}

static void fmt_bound(char *buf, size_t cap, double v, bool integer) {
    if (integer) snprintf(buf, cap, "%lld", (long long)v);
    else snprintf(buf, cap, "%g", v);
}

// ">= 0", "<= 16", "in [1, 16]" or "" (no bounds).
static void bounds_text(const CliOption *o, char *buf, size_t cap) {
    bool integer = is_int_type(o->type);
    char lo[32], hi[32];
    fmt_bound(lo, sizeof lo, o->min, integer);
    fmt_bound(hi, sizeof hi, o->max, integer);
    if (o->has_min && o->has_max) snprintf(buf, cap, "in [%s, %s]", lo, hi);
    else if (o->has_min) snprintf(buf, cap, ">= %s", lo);
    else if (o->has_max) snprintf(buf, cap, "<= %s", hi);
    else buf[0] = 0;
}

// "an integer >= 0", "a number in [0, 1]", ...
static void describe(const CliOption *o, char *buf, size_t cap) {
    char b[80];
    bounds_text(o, b, sizeof b);
    snprintf(buf, cap, "%s%s%s", is_int_type(o->type) ? "an integer" : "a number", b[0] ? " " : "", b);
}

static bool in_bounds(const CliOption *o, double v) {
    return !(o->has_min && v < o->min) && !(o->has_max && v > o->max);
}

// Parses one integer (scalar or list item) with the type's range and the option's bounds.
static KtStatus parse_int_checked(const CliOption *o, const char *s, int64_t *v) {
    char want[96];
    describe(o, want, sizeof want);
    NumResult r = parse_i64_text(s, v);
    bool narrow = o->type != CLI_INT64;
    if (r == NUM_OK && narrow && (*v < INT_MIN || *v > INT_MAX)) r = NUM_RANGE;
    if (r == NUM_SYNTAX) return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s'", o->name, want, s);
    if (r == NUM_RANGE)
        return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s' (too large for a %d-bit integer)", o->name, want, s,
                       narrow ? 32 : 64);
    if (!in_bounds(o, (double)*v)) return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s'", o->name, want, s);
    return KT_OK;
}

static KtStatus parse_float_checked(const CliOption *o, const char *s, float *v) {
    char want[96];
    describe(o, want, sizeof want);
    NumResult r = parse_f32_text(s, v);
    if (r == NUM_SYNTAX) return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s'", o->name, want, s);
    if (r == NUM_RANGE)
        return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s' (out of float range)", o->name, want, s);
    if (!in_bounds(o, *v)) return KT_FAIL(KT_ERR_ARG, "--%s: expected %s, got '%s'", o->name, want, s);
    return KT_OK;
}

static bool parse_bool_text(const char *s, bool *v) {
    if (!strcmp(s, "1") || !strcmp(s, "true")) *v = true;
    else if (!strcmp(s, "0") || !strcmp(s, "false")) *v = false;
    else return false;
    return true;
}

static bool choice_ok(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *c = choices;;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && !strncmp(c, s, n)) return true;
        if (!bar) return false;
        c = bar + 1;
    }
}

// ---------------------------------------------------------------------------------------------- list parsing
// Splits "a,b-c,d" into items; each int item may be a range "lo-hi" (the '-' at position 0 is a sign).
static KtStatus parse_list(const CliOption *o, const char *s) {
    int cap = o->max_items > 0 && o->max_items < CLI_LIST_MAX ? o->max_items : CLI_LIST_MAX;
    CliIntList *il = o->type == CLI_INT_LIST ? o->dest : NULL;
    CliFloatList *fl = o->type == CLI_FLOAT_LIST ? o->dest : NULL;
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) return KT_FAIL(KT_ERR_ARG, "--%s: empty item in list '%s'", o->name, s);
        char item[ITEM_MAX];
        if (len >= sizeof item)
            return KT_FAIL(KT_ERR_ARG, "--%s: item '%.*s...' in list is too long", o->name, 16, p);
        memcpy(item, p, len);
        item[len] = 0;
        if (fl) {
            if (n >= cap) return KT_FAIL(KT_ERR_ARG, "--%s: too many items (at most %d)", o->name, cap);
            KT_TRY(parse_float_checked(o, item, &fl->v[n]));
            n++;
        } else {
            char *dash = len > 1 ? strchr(item + 1, '-') : NULL;
            int64_t lo, hi;
            if (dash) *dash = 0;
            KT_TRY(parse_int_checked(o, item, &lo));
            hi = lo;
            if (dash) {
                KT_TRY(parse_int_checked(o, dash + 1, &hi));
                *dash = '-';
                if (hi < lo) return KT_FAIL(KT_ERR_ARG, "--%s: range '%s' is reversed (use %lld-%lld)", o->name,
                                            item, (long long)hi, (long long)lo);
            }
            if (hi - lo + 1 > (int64_t)(cap - n))
                return KT_FAIL(KT_ERR_ARG, "--%s: too many items (at most %d)", o->name, cap);
            for (int64_t x = lo; x <= hi; x++) il->v[n++] = (int)x;
        }
        if (!comma) break;
        p = comma + 1;
    }
    if (fl) fl->n = n;
    else il->n = n;
    return KT_OK;
}

// Parses `s` into o->dest according to o->type.
static KtStatus set_value(const CliOption *o, const char *s) {
    switch (o->type) {
    case CLI_FLAG: {
        bool b;
        if (!parse_bool_text(s, &b))
            return KT_FAIL(KT_ERR_ARG, "--%s: a flag takes no value (or true/false), got '%s'", o->name, s);
        *(bool *)o->dest = b;
        return KT_OK;
    }
    case CLI_INT: {
        int64_t v;
        KT_TRY(parse_int_checked(o, s, &v));
        *(int *)o->dest = (int)v;
        return KT_OK;
    }
    case CLI_INT64: return parse_int_checked(o, s, (int64_t *)o->dest);
    case CLI_FLOAT: return parse_float_checked(o, s, (float *)o->dest);
    case CLI_STRING:
        if (o->choices && !choice_ok(o->choices, s))
            return KT_FAIL(KT_ERR_ARG, "--%s: expected one of %s, got '%s'", o->name, o->choices, s);
        *(const char **)o->dest = s;
        return KT_OK;
    case CLI_INT_LIST:
    case CLI_FLOAT_LIST: return parse_list(o, s);
    }
    return KT_FAIL(KT_ERR_ARG, "--%s: unknown option type %d", o->name, (int)o->type);
}

// ----------------------------------------------------------------------------------------- table handling
static KtStatus check_table_and_apply_defaults(const CliCommand *cmd) {
    for (int i = 0; i < cmd->n_options; i++) {
        const CliOption *o = &cmd->options[i];
        if (!o->name || !o->name[0] || !o->dest || !strcmp(o->name, "help") || o->short_name == 'h')
            return KT_FAIL(KT_ERR_ARG, "%s: option table entry %d is invalid (name, dest, or reserved help)",
                           cmd->prog, i);
        for (int j = 0; j < i; j++) {
            const CliOption *q = &cmd->options[j];
            if (!strcmp(q->name, o->name) || (o->short_name && q->short_name == o->short_name))
                return KT_FAIL(KT_ERR_ARG, "%s: option table: --%s and --%s collide", cmd->prog, q->name, o->name);
        }
        if (o->def && !o->required) {
            KtStatus s = set_value(o, o->def);
            if (s != KT_OK) {
                kt_error_prefix("%s: option table: bad default", cmd->prog);
                return s;
            }
        }
    }
    return KT_OK;
}

static int find_long(const CliCommand *cmd, const char *name, size_t len) {
    for (int i = 0; i < cmd->n_options; i++)
        if (strlen(cmd->options[i].name) == len && !strncmp(cmd->options[i].name, name, len)) return i;
    return -1;
}

static int find_short(const CliCommand *cmd, char c) {
    for (int i = 0; i < cmd->n_options; i++)
        if (cmd->options[i].short_name == c) return i;
    return -1;
}

// Edit distance between a and b, and (in *prefix) the smallest distance between a and any prefix of b,
// so that a truncated or misspelt start of a long name ("tokn" for "tokens-out") still scores well.
static int edit_distance(const char *a, size_t na, const char *b, size_t nb, int *prefix) {
    int row[ITEM_MAX + 1];
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    *prefix = row[0];
    for (size_t j = 1; j <= nb; j++)
        if (row[j] < *prefix) *prefix = row[j];
    return row[nb];
}

static KtStatus fail_unknown(const CliCommand *cmd, const char *arg, const char *name, size_t len) {
    const char *cand[3];
    int nc = 0, best = INT_MAX;
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    for (int i = -1; len < ITEM_MAX && i < cmd->n_options; i++) {
        const char *c = i < 0 ? "help" : cmd->options[i].name;
        size_t nb = strlen(c);
        if (nb >= ITEM_MAX) continue;
        int prefix, d = edit_distance(name, len, c, nb, &prefix);
        if (prefix + 1 < d) d = prefix + 1;
        if (d > limit || d > best) continue;
        if (d < best) nc = 0, best = d;
        if (nc < 3) cand[nc++] = c;
    }
    int shown = (int)(name - arg) + (int)len;  // the argument up to any '='
    if (nc == 0)
        return KT_FAIL(KT_ERR_ARG, "unknown option '%.*s' (see %s --help)", shown, arg, cmd->prog);
    char alts[256];
    int off = 0;
    for (int k = 0; k < nc; k++)
        off += snprintf(alts + off, sizeof alts - (size_t)off, "%s--%s", k == 0 ? "" : k == nc - 1 ? " or " : ", ",
                        cand[k]);
    return KT_FAIL(KT_ERR_ARG, "unknown option '%.*s' (did you mean %s?)", shown, arg, alts);
}

// A following argument that looks like an option is not taken as a value (negative numbers and "-" are).
static bool looks_like_option(const char *s) {
    return s[0] == '-' && s[1] && !isdigit((unsigned char)s[1]) && s[1] != '.';
}

static KtStatus check_after_parse(const CliCommand *cmd, const CliParsed *p) {
    char missing[512] = "";
    int nmiss = 0;
    size_t off = 0;
    for (int i = 0; i < cmd->n_options; i++) {
        if (!cmd->options[i].required || p->given[i]) continue;
        int k = snprintf(missing + off, sizeof missing - off, "%s--%s", nmiss ? ", " : "", cmd->options[i].name);
        if (k > 0 && off + (size_t)k < sizeof missing) off += (size_t)k;
        nmiss++;
    }
    if (nmiss) return KT_FAIL(KT_ERR_ARG, "missing required option%s %s", nmiss > 1 ? "s" : "", missing);
    const char *pm = cmd->pos_metavar ? cmd->pos_metavar : "<arg>";
    if (p->n_pos < cmd->min_pos) {
        if (cmd->min_pos == 1) return KT_FAIL(KT_ERR_ARG, "missing argument %s", pm);
        return KT_FAIL(KT_ERR_ARG, "missing argument %s (expected at least %d, got %d)", pm, cmd->min_pos, p->n_pos);
    }
    if (cmd->max_pos >= 0 && p->n_pos > cmd->max_pos) {
        const char *extra = p->pos[cmd->max_pos];
        if (cmd->max_pos == 0) return KT_FAIL(KT_ERR_ARG, "unexpected argument '%s'", extra);
        return KT_FAIL(KT_ERR_ARG, "unexpected argument '%s' (%s takes at most %d argument%s: %s)", extra, cmd->prog,
                       cmd->max_pos, cmd->max_pos > 1 ? "s" : "", pm);
    }
    return KT_OK;
}

// One argv entry starting with '-': finds its option and value (consuming argv[*i+1] when needed).
static KtStatus parse_one(const CliCommand *cmd, int argc, char *const *argv, int *i, CliParsed *p) {
    const char *a = argv[*i], *val = NULL;
    int idx;
    if (a[1] == '-') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if (len == 4 && !strncmp(name, "help", 4)) {
            if (eq) return KT_FAIL(KT_ERR_ARG, "--help: takes no value, got '%s'", eq + 1);
            p->help = true;
            return KT_OK;
        }
        idx = find_long(cmd, name, len);
        if (idx < 0) return fail_unknown(cmd, a, name, len);
        if (eq) val = eq + 1;
    } else {
        if (a[1] == 'h' && !a[2]) {
            p->help = true;
            return KT_OK;
        }
        idx = find_short(cmd, a[1]);
        if (idx < 0 || (a[2] && cmd->options[idx].type == CLI_FLAG))
            return KT_FAIL(KT_ERR_ARG, "unknown option '%s' (see %s --help)", a, cmd->prog);
        if (a[2]) val = a + 2;
    }
    const CliOption *o = &cmd->options[idx];
    p->given[idx] = 1;
    if (o->type == CLI_FLAG && !val) {
        *(bool *)o->dest = true;
        return KT_OK;
    }
    if (!val) {
        if (*i + 1 >= argc || looks_like_option(argv[*i + 1]))
            return KT_FAIL(KT_ERR_ARG, "--%s: missing value", o->name);
        val = argv[++*i];
    }
    return set_value(o, val);
}

KtStatus cli_opts_parse(const CliCommand *cmd, int argc, char *const *argv, CliParsed *out) {
    memset(out, 0, sizeof *out);
    KT_TRY(check_table_and_apply_defaults(cmd));
    CliParsed p = {0};
    p.pos = malloc(sizeof(*p.pos) * (size_t)(argc > 0 ? argc : 1));
    p.given = calloc((size_t)(cmd->n_options > 0 ? cmd->n_options : 1), 1);
    KtStatus s = KT_OK;
    if (!p.pos || !p.given) {
        s = KT_FAIL(KT_ERR_OOM, "%s: out of memory parsing options", cmd->prog);
        goto cleanup;
    }
    bool only_pos = false;
    for (int i = 1; i < argc && !p.help; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !a[1]) {
            p.pos[p.n_pos++] = a;
        } else if (!strcmp(a, "--")) {
            only_pos = true;
        } else if ((s = parse_one(cmd, argc, argv, &i, &p)) != KT_OK) {
            goto cleanup;
        }
    }
    if (!p.help && (s = check_after_parse(cmd, &p)) != KT_OK) goto cleanup;
    *out = p;
    return KT_OK;
cleanup:
    cli_parsed_free(&p);
    return s;
}

void cli_parsed_free(CliParsed *p) {
    free(p->pos);
    free(p->given);
    memset(p, 0, sizeof *p);
}

bool cli_opt_given(const CliCommand *cmd, const CliParsed *p, const char *name) {
    int i = find_long(cmd, name, strlen(name));
    return i >= 0 && p->given && p->given[i];
}

// ------------------------------------------------------------------------------------------------- output
static const char *metavar_of(const CliOption *o) {
    if (o->metavar) return o->metavar;
    switch (o->type) {
    case CLI_FLAG: return "";
    case CLI_INT:
    case CLI_INT64: return "N";
    case CLI_FLOAT: return "X";
    case CLI_STRING: return o->choices ? o->choices : "STR";
    case CLI_INT_LIST: return "N,...";
    case CLI_FLOAT_LIST: return "X,...";
    }
    return "?";
}

static int help_left(const CliOption *o, char *buf, size_t cap) {
    const char *mv = metavar_of(o);
    char sh[8] = "    ";
    if (o->short_name) snprintf(sh, sizeof sh, "-%c, ", o->short_name);
    return snprintf(buf, cap, "  %s--%s%s%s", sh, o->name, mv[0] ? " " : "", mv);
}

static void print_help_line(FILE *f, const char *left, int width, const char *help, const char *extra) {
    if ((int)strlen(left) > width) fprintf(f, "%s\n%*s", left, width + 2, "");
    else fprintf(f, "%-*s  ", width, left);
    fprintf(f, "%s%s%s\n", help ? help : "", help && extra[0] ? " " : "", extra);
}

// Appends "; "-separated parts of the help suffix.
static void add_part(char *buf, size_t cap, const char *a, const char *b) {
    size_t off = strlen(buf);
    snprintf(buf + off, cap - off, "%s%s%s", off ? "; " : "", a, b);
}

void cli_opts_print_help(FILE *f, const CliCommand *cmd) {
    const char *pm = cmd->pos_metavar ? cmd->pos_metavar : "<arg>";
    fprintf(f, "usage: %s [options]", cmd->prog);
    if (cmd->max_pos != 0) {
        if (cmd->min_pos == 0) fprintf(f, " [%s%s]", pm, cmd->max_pos == 1 ? "" : "...");
        else fprintf(f, " %s%s", pm, cmd->max_pos == 1 ? "" : "...");
    }
    fprintf(f, "\n");
    if (cmd->description) fprintf(f, "\n%s\n", cmd->description);
    fprintf(f, "\noptions:\n");
    char left[160];
    int width = (int)strlen("  -h, --help");
    for (int i = 0; i < cmd->n_options; i++) {
        int w = help_left(&cmd->options[i], left, sizeof left);
        if (w > width && w <= HELP_COL_MAX) width = w;
    }
    print_help_line(f, "  -h, --help", width, "show this help and exit", "");
    for (int i = 0; i < cmd->n_options; i++) {
        const CliOption *o = &cmd->options[i];
        help_left(o, left, sizeof left);
        char parts[256] = "", b[80] = "", extra[260] = "";
        if (o->type != CLI_FLAG && o->type != CLI_STRING) bounds_text(o, b, sizeof b);
        if (o->required) add_part(parts, sizeof parts, "required", "");
        else if (o->def && o->type != CLI_FLAG) add_part(parts, sizeof parts, "default: ", o->def[0] ? o->def : "''");
        if (b[0]) add_part(parts, sizeof parts, is_list_type(o->type) ? "each " : "", b);
        if (o->choices && o->metavar) add_part(parts, sizeof parts, "one of ", o->choices);
        if (parts[0]) snprintf(extra, sizeof extra, "(%s)", parts);
        print_help_line(f, left, width, o->help, extra);
    }
    if (cmd->epilog) fprintf(f, "\n%s\n", cmd->epilog);
}

static void put_string(FILE *f, const char *s, bool json) {
    if (!s) {
        fputs(json ? "null" : "(none)", f);
        return;
    }
    if (!json) {
        bool plain = s[0] != 0;
        for (const char *c = s; *c; c++)
            if (isspace((unsigned char)*c) || *c == '\'' || *c == '"') plain = false;
        fprintf(f, plain ? "%s" : "'%s'", s);
        return;
    }
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static void put_float(FILE *f, float v, bool json) {
    if (json && !isfinite(v)) fputs("null", f);
    else fprintf(f, "%.9g", (double)v);
}

static void put_value(FILE *f, const CliOption *o, bool json) {
    switch (o->type) {
    case CLI_FLAG: fputs(*(const bool *)o->dest ? "true" : "false", f); break;
    case CLI_INT: fprintf(f, "%d", *(const int *)o->dest); break;
    case CLI_INT64: fprintf(f, "%lld", (long long)*(const int64_t *)o->dest); break;
    case CLI_FLOAT: put_float(f, *(const float *)o->dest, json); break;
    case CLI_STRING: put_string(f, *(const char *const *)o->dest, json); break;
    case CLI_INT_LIST: {
        const CliIntList *l = o->dest;
        fputs(json ? "[" : "", f);
        for (int i = 0; i < l->n; i++) {
            int j = i;  // echo collapses runs of 3+ consecutive values to "lo-hi"
            while (!json && j + 1 < l->n && (int64_t)l->v[j + 1] == (int64_t)l->v[j] + 1) j++;  // INT_MAX + 1
            fprintf(f, "%s%d", i ? "," : "", l->v[i]);
            if (j - i >= 2) fprintf(f, "-%d", l->v[j]), i = j;
        }
        fputs(json ? "]" : "", f);
        break;
    }
    case CLI_FLOAT_LIST: {
        const CliFloatList *l = o->dest;
        fputs(json ? "[" : "", f);
        for (int i = 0; i < l->n; i++) {
            fputs(i ? "," : "", f);
            put_float(f, l->v[i], json);
        }
        fputs(json ? "]" : "", f);
        break;
    }
    }
}

void cli_opts_echo(FILE *f, const CliCommand *cmd, const CliParsed *p) {
    int col = fprintf(f, "%s:", cmd->prog);
    int n = cmd->n_options + (p && p->n_pos ? 1 : 0);
    for (int i = 0; i < n; i++) {
        char *tok = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&tok, &len);
        if (!m) return;
        if (i < cmd->n_options) {
            fprintf(m, "%s=", cmd->options[i].name);
            put_value(m, &cmd->options[i], false);
        } else {
            fputs("args=", m);
            for (int k = 0; k < p->n_pos; k++) {
                fputs(k ? "," : "", m);
                put_string(m, p->pos[k], false);
            }
        }
        fclose(m);
        if (col > 2 && col + 1 + (int)len > ECHO_WIDTH) {
            fputs("\n ", f);
            col = 1;
        }
        col += fprintf(f, " %s", tok);
        free(tok);
    }
    fputc('\n', f);
}

KtStatus cli_opts_to_json(const CliCommand *cmd, const CliParsed *p, char **json) {
    size_t len = 0;
    *json = NULL;
    FILE *m = open_memstream(json, &len);
    if (!m) return KT_FAIL(KT_ERR_OOM, "%s: cannot build settings JSON: %s", cmd->prog, strerror(errno));
    fputc('{', m);
    for (int i = 0; i < cmd->n_options; i++) {
        fprintf(m, "%s\"%s\": ", i ? ", " : "", cmd->options[i].name);
        put_value(m, &cmd->options[i], true);
    }
    if (p) {
        fprintf(m, "%s\"args\": [", cmd->n_options ? ", " : "");
        for (int k = 0; k < p->n_pos; k++) {
            fputs(k ? ", " : "", m);
            put_string(m, p->pos[k], true);
        }
        fputc(']', m);
    }
    fputc('}', m);
    if (fclose(m) != 0 || !*json) {
        free(*json);
        *json = NULL;
        return KT_FAIL(KT_ERR_OOM, "%s: cannot build settings JSON", cmd->prog);
    }
    return KT_OK;
}
