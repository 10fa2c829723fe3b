// CLI building blocks: the option table parser (every type, bounds, errors and their messages, --help, echo,
// JSON) and image I/O (PNG round trip with tEXt, every PNG colour type, corrupt/truncated input, atomic writes,
// JPEG, ensure_dir). Test PNGs are generated here with libpng so no fixtures are needed.
#include <criterion/criterion.h>
#include <dirent.h>
#include <png.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>  // after stdio.h, as it requires

#include "cli/fid_source.h"
#include "cli/parallel.h"
#include "cli/image_io.h"
#include "cli/options.h"
#include "testutil.h"

// ============================================================================================ options
typedef struct {
    bool verbose;
    int top_k;
    int64_t seed;
    float cfg;
    const char *device;
    const char *out;
    CliIntList classes;
    CliFloatList scales;
    int steps;
    int tokens_out;
} Cfg;

static Cfg g;

static const CliOption k_opts[] = {
    {.name = "verbose", .short_name = 'v', .type = CLI_FLAG, .help = "print progress", .dest = &g.verbose},
    {.name = "top-k", .short_name = 'k', .type = CLI_INT, .def = "900", .help = "keep the k most likely tokens",
     .dest = &g.top_k, .has_min = true, .min = 0},
    {.name = "seed", .short_name = 's', .type = CLI_INT64, .def = "0", .help = "RNG seed", .dest = &g.seed},
    {.name = "cfg", .type = CLI_FLOAT, .def = "1.5", .help = "guidance scale", .dest = &g.cfg},
    {.name = "device", .type = CLI_STRING, .def = "auto", .help = "where to run", .dest = &g.device,
     .choices = "auto|cpu|cuda"},
    {.name = "out", .short_name = 'o', .type = CLI_STRING, .metavar = "PATH", .help = "output image",
     .dest = &g.out, .required = true},
    {.name = "class", .type = CLI_INT_LIST, .def = "0-3", .help = "class labels", .dest = &g.classes,
     .has_min = true, .min = 0, .has_max = true, .max = 999},
    {.name = "scales", .type = CLI_FLOAT_LIST, .def = "0.5,1", .help = "scales", .dest = &g.scales, .max_items = 4},
    {.name = "steps", .type = CLI_INT, .def = "10", .help = "number of steps", .dest = &g.steps, .has_min = true,
     .min = 1, .has_max = true, .max = 16},
    {.name = "tokens-out", .type = CLI_INT, .def = "0", .help = "write tokens", .dest = &g.tokens_out},
};

static const CliCommand k_cmd = {
    .prog = "argen sample",
    .description = "Generates images.",
    .options = k_opts,
    .n_options = CLI_COUNT(k_opts),
    .pos_metavar = "<image>",
    .min_pos = 0,
    .max_pos = 2,
};

// Parses a NULL-terminated list (argv[0] added); returns the status and leaves p filled on success.
static KtStatus parse_with(const CliCommand *cmd, CliParsed *p, const char *const *args) {
    char *argv[64] = {"argen-sample"};
    int argc = 1;
    while (args[argc - 1]) argv[argc] = (char *)args[argc - 1], argc++;
    memset(&g, 0, sizeof g);
    kt_clear_error();
    return cli_opts_parse(cmd, argc, argv, p);
}

#define PARSE(p, ...) parse_with(&k_cmd, (p), (const char *const[]){__VA_ARGS__, NULL})

static void expect_parse_error(const char *want, const char *const *args) {
    CliParsed p;
    KtStatus s = parse_with(&k_cmd, &p, args);
    cr_assert_eq(s, KT_ERR_ARG, "expected KT_ERR_ARG for '%s', got %d", args[0], s);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_null(p.pos);
}
#define EXPECT_ERROR(want, ...) expect_parse_error((want), (const char *const[]){__VA_ARGS__, NULL})

Test(options, every_type_and_syntax) {
    CliParsed p;
    cr_assert_eq(PARSE(&p, "a.png", "--top-k", "5", "-s", "-7", "--cfg=-2.25", "-v", "--device=cuda", "-oout.png",
                       "--class", "1,4-6,10", "--scales=0.25,2,3", "--", "--not-an-option"),
                 KT_OK, "%s", kt_last_error());
    cr_assert(g.verbose);
    cr_assert_eq(g.top_k, 5);
    cr_assert_eq(g.seed, -7);
    cr_assert_float_eq(g.cfg, -2.25f, 0);
    cr_assert_str_eq(g.device, "cuda");
    cr_assert_str_eq(g.out, "out.png");
    int want[] = {1, 4, 5, 6, 10};
    cr_assert_eq(g.classes.n, 5);
    cr_assert_arr_eq(g.classes.v, want, sizeof want);
    cr_assert_eq(g.scales.n, 3);
    cr_assert_float_eq(g.scales.v[2], 3.0f, 0);
    cr_assert_eq(p.n_pos, 2);
    cr_assert_str_eq(p.pos[0], "a.png");
    cr_assert_str_eq(p.pos[1], "--not-an-option");
    cr_assert(cli_opt_given(&k_cmd, &p, "cfg"));
    cr_assert_not(cli_opt_given(&k_cmd, &p, "steps"));
    cr_assert_not(cli_opt_given(&k_cmd, &p, "no-such"));
    cli_parsed_free(&p);
    cli_parsed_free(&p);  // idempotent
}

Test(options, defaults_last_wins_and_flags) {
    CliParsed p;
    cr_assert_eq(PARSE(&p, "--out", "x.png", "--seed", "1", "--seed=9223372036854775807", "--verbose=false", "-"),
                 KT_OK, "%s", kt_last_error());
    cr_assert_eq(g.top_k, 900);
    cr_assert_eq(g.seed, INT64_MAX);
    cr_assert_float_eq(g.cfg, 1.5f, 0);
    cr_assert_str_eq(g.device, "auto");
    cr_assert_eq(g.classes.n, 4);
    cr_assert_eq(g.classes.v[3], 3);
    cr_assert_eq(g.scales.n, 2);
    cr_assert_not(g.verbose);
    cr_assert_eq(p.n_pos, 1);
    cr_assert_str_eq(p.pos[0], "-");
    cli_parsed_free(&p);
    cr_assert_eq(PARSE(&p, "--out", "x.png", "--class", "0-9", "--class", "7"), KT_OK);
    cr_assert_eq(g.classes.n, 1, "a repeated list replaces, not appends");
    cli_parsed_free(&p);
}

Test(options, help_short_circuits) {
    CliParsed p;
    cr_assert_eq(PARSE(&p, "--help"), KT_OK);  // --out is required but help skips that check
    cr_assert(p.help);
    cli_parsed_free(&p);
    cr_assert_eq(PARSE(&p, "-k", "3", "-h", "--bogus"), KT_OK);
    cr_assert(p.help);
    cli_parsed_free(&p);
}

Test(options, number_errors) {
    EXPECT_ERROR("--cfg: expected a number, got 'abc'", "--cfg", "abc");
    EXPECT_ERROR("--cfg: expected a number, got ''", "--cfg=");
    EXPECT_ERROR("--cfg: expected a number, got '1.5x'", "--cfg", "1.5x");
    EXPECT_ERROR("--cfg: expected a number, got 'nan'", "--cfg", "nan");
    EXPECT_ERROR("--cfg: expected a number, got 'inf'", "--cfg", "inf");
    EXPECT_ERROR("--cfg: expected a number, got '1e99' (out of float range)", "--cfg", "1e99");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got '-3'", "--top-k", "-3");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got '12x'", "--top-k", "12x");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got ''", "--top-k", "");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got ' 5'", "--top-k", " 5");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got '0x10'", "--top-k", "0x10");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got '1.0'", "-k1.0");
    EXPECT_ERROR("--top-k: expected an integer >= 0, got '2147483648' (too large for a 32-bit integer)", "-k",
                 "2147483648");
    EXPECT_ERROR("--seed: expected an integer, got '9223372036854775808' (too large for a 64-bit integer)", "--seed",
                 "9223372036854775808");
    EXPECT_ERROR("--steps: expected an integer in [1, 16], got '17'", "--steps", "17");
    EXPECT_ERROR("--steps: expected an integer in [1, 16], got '0'", "--steps=0");
}

Test(options, list_errors) {
    EXPECT_ERROR("--class: empty item in list '3,,7'", "--class", "3,,7");
    EXPECT_ERROR("--class: empty item in list '3,'", "--class", "3,");
    EXPECT_ERROR("--class: empty item in list ''", "--class=");
    EXPECT_ERROR("--class: range '9-3' is reversed (use 3-9)", "--class", "9-3");
    EXPECT_ERROR("--class: expected an integer in [0, 999], got '1000'", "--class", "1,0-1000");
    EXPECT_ERROR("--class: expected an integer in [0, 999], got '-1'", "--class", "-1");
    EXPECT_ERROR("--class: expected an integer in [0, 999], got 'a'", "--class", "1,a");
    EXPECT_ERROR("--class: expected an integer in [0, 999], got ''", "--class", "1-");
    EXPECT_ERROR("--scales: too many items (at most 4)", "--scales", "1,2,3,4,5");
    EXPECT_ERROR("--scales: expected a number, got 'x'", "--scales", "1,x");
    // the full 0-999 range fits the default capacity
    CliParsed p;
    cr_assert_eq(PARSE(&p, "-o", "x", "--class", "0-999"), KT_OK, "%s", kt_last_error());
    cr_assert_eq(g.classes.n, 1000);
    cr_assert_eq(g.classes.v[999], 999);
    cli_parsed_free(&p);
}

Test(options, option_errors) {
    EXPECT_ERROR("unknown option '--tokn' (did you mean --tokens-out?)", "--tokn", "3");
    EXPECT_ERROR("unknown option '--tokn' (did you mean --tokens-out?)", "--tokn=3");
    EXPECT_ERROR("unknown option '--sed' (did you mean --seed?)", "--sed", "3");
    EXPECT_ERROR("unknown option '--hlep' (did you mean --help?)", "--hlep");
    EXPECT_ERROR("unknown option '--zzzzzzzz' (see argen sample --help)", "--zzzzzzzz");
    EXPECT_ERROR("unknown option '-q' (see argen sample --help)", "-q");
    EXPECT_ERROR("unknown option '-vk' (see argen sample --help)", "-vk");
    EXPECT_ERROR("--class: missing value", "-o", "x", "--class");
    EXPECT_ERROR("--class: missing value", "--class", "--seed", "3");
    EXPECT_ERROR("--out: missing value", "--out", "-v");
    EXPECT_ERROR("missing required option --out", "a.png");
    EXPECT_ERROR("--device: expected one of auto|cpu|cuda, got 'gpu'", "--device", "gpu");
    EXPECT_ERROR("--help: takes no value, got '1'", "--help=1");
    EXPECT_ERROR("--verbose: a flag takes no value (or true/false), got 'yes'", "--verbose=yes");
    EXPECT_ERROR("unexpected argument 'c' (argen sample takes at most 2 arguments: <image>)", "-o", "x", "a", "b", "c");
}

Test(options, positional_bounds_and_required_lists) {
    bool flag = false;
    const char *out = NULL, *ckpt = NULL;
    const CliOption opts[] = {
        {.name = "out", .type = CLI_STRING, .dest = &out, .required = true},
        {.name = "ckpt", .type = CLI_STRING, .dest = &ckpt, .required = true},
        {.name = "x", .type = CLI_FLAG, .dest = &flag},
    };
    CliCommand cmd = {.prog = "argen t", .options = opts, .n_options = 3, .pos_metavar = "<in>", .min_pos = 1,
                      .max_pos = 1};
    CliParsed p;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){"a", NULL}), KT_ERR_ARG);
    cr_assert_str_eq(kt_last_error(), "missing required options --out, --ckpt");
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){"--out=o", "--ckpt=c", NULL}), KT_ERR_ARG);
    cr_assert_str_eq(kt_last_error(), "missing argument <in>");
    cmd.min_pos = 2, cmd.max_pos = -1;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){"--out=o", "--ckpt=c", "a", NULL}), KT_ERR_ARG);
    cr_assert_str_eq(kt_last_error(), "missing argument <in> (expected at least 2, got 1)");
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){"--out=o", "--ckpt=c", "a", "b", "c", NULL}), KT_OK);
    cr_assert_eq(p.n_pos, 3);
    cli_parsed_free(&p);
    cmd.min_pos = 0, cmd.max_pos = 0;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){"--out=o", "--ckpt=c", "a", NULL}), KT_ERR_ARG);
    cr_assert_str_eq(kt_last_error(), "unexpected argument 'a'");
}

Test(options, bad_table_is_an_error_not_a_crash) {
    int k = 0;
    const CliOption bad_def[] = {{.name = "k", .type = CLI_INT, .def = "x", .dest = &k}};
    const CliOption dup[] = {{.name = "k", .type = CLI_INT, .dest = &k}, {.name = "k", .type = CLI_INT, .dest = &k}};
    const CliOption help[] = {{.name = "help", .type = CLI_FLAG, .dest = &k}};
    CliCommand cmd = {.prog = "argen t", .options = bad_def, .n_options = 1};
    CliParsed p;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){NULL}), KT_ERR_ARG);
    cr_assert_str_eq(kt_last_error(), "argen t: option table: bad default: --k: expected an integer, got 'x'");
    cmd.options = dup, cmd.n_options = 2;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){NULL}), KT_ERR_ARG);
    cmd.options = help, cmd.n_options = 1;
    cr_assert_eq(parse_with(&cmd, &p, (const char *const[]){NULL}), KT_ERR_ARG);
}

static char *capture(void (*fn)(FILE *, const CliCommand *, const CliParsed *), const CliParsed *p) {
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    fn(m, &k_cmd, p);
    fclose(m);
    return buf;
}

static void help_adapter(FILE *f, const CliCommand *cmd, const CliParsed *p) {
    (void)p;
    cli_opts_print_help(f, cmd);
}

Test(options, help_lists_every_option_aligned) {
    char *h = capture(help_adapter, NULL);
    cr_assert(strstr(h, "usage: argen sample [options] [<image>...]\n\nGenerates images.\n"), "%s", h);
    for (int i = 0; i < k_cmd.n_options; i++) {
        char name[64];
        snprintf(name, sizeof name, "--%s", k_opts[i].name);
        cr_assert(strstr(h, name), "help lacks %s:\n%s", name, h);
        if (k_opts[i].help) cr_assert(strstr(h, k_opts[i].help), "help lacks text of %s", name);
        if (k_opts[i].def && k_opts[i].type != CLI_FLAG) {
            char def[64];
            snprintf(def, sizeof def, "(default: %s", k_opts[i].def);
            cr_assert(strstr(h, def), "help lacks default of %s:\n%s", name, h);
        }
    }
    cr_assert(strstr(h, "  -k, --top-k N"), "%s", h);
    cr_assert(strstr(h, "      --device auto|cpu|cuda"), "%s", h);
    cr_assert(strstr(h, "  -o, --out PATH"), "%s", h);
    cr_assert(strstr(h, "(required)"), "%s", h);
    cr_assert(strstr(h, "(default: 10; in [1, 16])"), "%s", h);
    cr_assert(strstr(h, "(default: 0-3; each in [0, 999])"), "%s", h);
    cr_assert(strstr(h, "  -h, --help"), "%s", h);
    // every help text starts in the same column: after the first run of 2+ spaces following the option names
    int col = -1;
    for (char *line = strstr(h, "options:\n") + 9; *line; line = strchr(line, '\n') + 1) {
        char *gap = strstr(strchr(line, '-'), "  ");
        cr_assert(gap && gap < strchr(line, '\n'), "no column gap in: %.60s", line);
        while (*gap == ' ') gap++;
        if (col < 0) col = (int)(gap - line);
        cr_assert_eq((int)(gap - line), col, "misaligned: %.80s", line);
    }
    free(h);
}

Test(options, echo_and_json) {
    CliParsed p;
    cr_assert_eq(PARSE(&p, "-o", "out dir/x.png", "--seed", "42", "--class", "0-9,20,22,23", "a.png"), KT_OK);
    char *e = capture(cli_opts_echo, &p);
    cr_assert(strstr(e, "argen sample: verbose=false top-k=900 seed=42 cfg=1.5 device=auto"), "%s", e);
    cr_assert(strstr(e, "out='out dir/x.png'"), "%s", e);
    cr_assert(strstr(e, "class=0-9,20,22,23"), "%s", e);
    cr_assert(strstr(e, "scales=0.5,1"), "%s", e);
    cr_assert(strstr(e, "args=a.png"), "%s", e);
    for (char *l = e; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        size_t n = strchr(l, '\n') ? (size_t)(strchr(l, '\n') - l) : strlen(l);
        cr_assert_leq(n, 100, "echo line too long: %s", l);
    }
    free(e);
    char *j = NULL;
    cr_assert_eq(cli_opts_to_json(&k_cmd, &p, &j), KT_OK);
    cr_assert_str_eq(j, "{\"verbose\": false, \"top-k\": 900, \"seed\": 42, \"cfg\": 1.5, \"device\": \"auto\", "
                        "\"out\": \"out dir/x.png\", \"class\": [0,1,2,3,4,5,6,7,8,9,20,22,23], "
                        "\"scales\": [0.5,1], \"steps\": 10, \"tokens-out\": 0, \"args\": [\"a.png\"]}");
    free(j);
    cli_parsed_free(&p);
}

// Found by tests/fuzz/fuzz_options.c: the echo's run detection computed INT_MAX + 1 (signed overflow) for a list
// holding INT_MAX (e.g. `argen sample --patch-nums 2147483647,5 -v`).
Test(options, echo_of_a_list_reaching_int_max) {
    static CliIntList list;
    static const CliOption opts[] = {{.name = "nums", .type = CLI_INT_LIST, .def = "1", .help = "numbers", .dest = &list}};
    static const CliCommand cmd = {.prog = "argen t", .options = opts, .n_options = 1, .max_pos = 0};
    CliParsed p;
    char *argv[] = {"t", "--nums", "2147483645-2147483647,5", NULL};
    cr_assert_eq(cli_opts_parse(&cmd, 3, argv, &p), KT_OK, "%s", kt_last_error());
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_opts_echo(f, &cmd, &p);
    fclose(f);
    cr_assert(strstr(buf, "nums=2147483645-2147483647,5"), "%s", buf);
    free(buf);
    cli_parsed_free(&p);
}

// ========================================================================================== image I/O
static char *make_tmpdir(void) {
    char *d = strdup("/tmp/argen_cli_units_XXXXXX");
    cr_assert_not_null(mkdtemp(d));
    return d;
}

static char *path_in(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static uint8_t *random_rgb(int w, int h, unsigned seed) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) p[i] = (uint8_t)((seed = seed * 1103515245u + 12345u) >> 16);
    return p;
}

Test(image_io, png_round_trip_with_text) {
    char *dir = make_tmpdir(), *path = path_in(dir, "x.png");
    const int w = 37, h = 23;
    uint8_t *rgb = random_rgb(w, h, 7);
    const char *keys[] = {"argen", "Software"};
    const char *vals[] = {"{\"seed\": 42, \"cfg\": 1.5}", "argen 0.1"};
    cr_assert_eq(write_png_rgb8(path, rgb, w, h, keys, vals, 2), KT_OK, "%s", kt_last_error());
    cr_assert_eq(count_entries(dir), 1, "temporary file left behind");
    uint8_t *back = NULL;
    int bw = 0, bh = 0;
    cr_assert_eq(read_image_rgb8(path, &back, &bw, &bh), KT_OK, "%s", kt_last_error());
    cr_assert_eq(bw, w);
    cr_assert_eq(bh, h);
    cr_assert_arr_eq(back, rgb, (size_t)w * h * 3);
    // tEXt chunks, read with libpng directly
    FILE *f = fopen(path, "rb");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_read_info(png, info);
    cr_assert_eq(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    cr_assert_eq(png_get_bit_depth(png, info), 8);
    png_textp text;
    int nt = 0;
    png_get_text(png, info, &text, &nt);
    cr_assert_eq(nt, 2);
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(text[i].key, keys[i]);
        cr_assert_str_eq(text[i].text, vals[i]);
        cr_assert_eq(text[i].compression, PNG_TEXT_COMPRESSION_NONE);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    // overwriting replaces the file atomically
    uint8_t *rgb2 = random_rgb(w, h, 8);
    cr_assert_eq(write_png_rgb8(path, rgb2, w, h, NULL, NULL, 0), KT_OK);
    free(back);
    cr_assert_eq(read_image_rgb8(path, &back, &bw, &bh), KT_OK);
    cr_assert_arr_eq(back, rgb2, (size_t)w * h * 3);
    free(back), free(rgb), free(rgb2), unlink(path), rmdir(dir), free(path), free(dir);
}

// Writes a PNG of any colour type/depth from 16-bit samples (channels per pixel by colour type).
static void write_test_png(const char *path, int w, int h, int color, int depth, int interlace, const uint16_t *s,
                           const png_color *pal, int npal, const png_byte *trns, int ntrns) {
    int ch = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_PALETTE ? 1
             : color == PNG_COLOR_TYPE_GRAY_ALPHA                           ? 2
             : color == PNG_COLOR_TYPE_RGB                                  ? 3
                                                                            : 4;
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert_eq(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc(sizeof *rows * h);
    for (int y = 0; y < h; y++) {
        rows[y] = calloc(rowbytes, 1);
        for (int x = 0; x < w * ch; x++) {
            uint16_t v = s[(size_t)y * w * ch + x];
            if (depth == 16) rows[y][2 * x] = v >> 8, rows[y][2 * x + 1] = v & 255;
            else if (depth == 8) rows[y][x] = (png_byte)v;
            else rows[y][x * depth / 8] |= (png_byte)(v << (8 - depth - (x * depth) % 8));
        }
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    for (int y = 0; y < h; y++) free(rows[y]);
    free(rows);
}

static void check_color_type(int color, int depth, int interlace) {
    char *dir = make_tmpdir(), *path = path_in(dir, "t.png");
    const int w = 13, h = 7;  // odd sizes exercise sub-byte row padding and every interlace pass
    int ch = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_PALETTE ? 1
             : color == PNG_COLOR_TYPE_GRAY_ALPHA                           ? 2
             : color == PNG_COLOR_TYPE_RGB                                  ? 3
                                                                            : 4;
    int maxv = color == PNG_COLOR_TYPE_PALETTE ? 5 : (1 << depth) - 1;  // 6 palette entries
    uint16_t *s = malloc(sizeof *s * w * h * ch);
    uint8_t *want = malloc((size_t)w * h * 3);
    png_color pal[6];
    png_byte trns[6] = {0, 64, 128, 255, 10, 20};
    for (int i = 0; i < 6; i++) pal[i] = (png_color){(png_byte)(40 * i), (png_byte)(255 - 30 * i), (png_byte)(7 * i)};
    unsigned seed = 1;
    for (int i = 0; i < w * h * ch; i++) {
        seed = seed * 1103515245u + 12345u;
        int v = (int)((seed >> 16) % (unsigned)(maxv + 1));
        if (depth == 16) v = (v >> 8) * 257;  // 16-bit values that scale to 8 bits exactly
        s[i] = (uint16_t)v;
    }
    for (int p = 0; p < w * h; p++) {
        const uint16_t *px = s + (size_t)p * ch;
        for (int c = 0; c < 3; c++) {
            int v;
            if (color == PNG_COLOR_TYPE_PALETTE) v = c == 0 ? pal[px[0]].red : c == 1 ? pal[px[0]].green : pal[px[0]].blue;
            else if (ch <= 2) v = depth == 16 ? px[0] / 257 : px[0] * 255 / maxv;  // gray replicated to RGB
            else v = depth == 16 ? px[c] / 257 : px[c];
            want[(size_t)p * 3 + c] = (uint8_t)v;
        }
    }
    bool pal_type = color == PNG_COLOR_TYPE_PALETTE;
    write_test_png(path, w, h, color, depth, interlace, s, pal_type ? pal : NULL, 6, pal_type ? trns : NULL, 6);
    uint8_t *got = NULL;
    int gw, gh;
    cr_assert_eq(read_image_rgb8(path, &got, &gw, &gh), KT_OK, "color %d depth %d: %s", color, depth, kt_last_error());
    cr_assert_eq(gw, w);
    cr_assert_eq(gh, h);
    for (int i = 0; i < w * h * 3; i++)
        cr_assert_eq(got[i], want[i], "color %d depth %d interlace %d: byte %d got %d want %d", color, depth,
                     interlace, i, got[i], want[i]);
    free(got), free(s), free(want), unlink(path), rmdir(dir), free(path), free(dir);
}

Test(image_io, reads_every_png_color_type) {
    int gray_depths[] = {1, 2, 4, 8, 16};
    for (int i = 0; i < 5; i++) check_color_type(PNG_COLOR_TYPE_GRAY, gray_depths[i], PNG_INTERLACE_NONE);
    for (int d = 8; d <= 16; d += 8) {
        check_color_type(PNG_COLOR_TYPE_GRAY_ALPHA, d, PNG_INTERLACE_NONE);
        check_color_type(PNG_COLOR_TYPE_RGB, d, PNG_INTERLACE_NONE);
        check_color_type(PNG_COLOR_TYPE_RGB_ALPHA, d, PNG_INTERLACE_NONE);
    }
    int pal_depths[] = {4, 8};  // 6 entries need >= 3 bits
    for (int i = 0; i < 2; i++) check_color_type(PNG_COLOR_TYPE_PALETTE, pal_depths[i], PNG_INTERLACE_NONE);
    check_color_type(PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7);
    check_color_type(PNG_COLOR_TYPE_GRAY, 2, PNG_INTERLACE_ADAM7);
    check_color_type(PNG_COLOR_TYPE_PALETTE, 4, PNG_INTERLACE_ADAM7);
}

static void expect_read_error(const char *path, KtStatus want, const char *msg_suffix) {
    uint8_t *rgb = (uint8_t *)1;
    int w = -1, h = -1;
    KtStatus s = read_image_rgb8(path, &rgb, &w, &h);
    cr_assert_eq(s, want, "%s: got status %d (%s)", path, s, kt_last_error());
    cr_assert_null(rgb);
    const char *e = kt_last_error();
    size_t n = strlen(e), m = strlen(msg_suffix);
    cr_assert(n >= m + strlen(path) && !strncmp(e, path, strlen(path)) && strstr(e, msg_suffix),
              "message '%s' should start with the path and contain '%s'", e, msg_suffix);
}

Test(image_io, corrupt_and_truncated_png) {
    char *dir = make_tmpdir(), *good = path_in(dir, "good.png"), *bad = path_in(dir, "bad.png");
    uint8_t *rgb = random_rgb(64, 64, 3);  // random pixels do not compress: IDAT is most of the file
    cr_assert_eq(write_png_rgb8(good, rgb, 64, 64, NULL, NULL, 0), KT_OK);
    size_t n;
    uint8_t *bytes = read_file(good, &n);
    write_file(bad, bytes, n / 2);
    expect_read_error(bad, KT_ERR_FORMAT, ": truncated PNG data");
    write_file(bad, bytes, 5);
    expect_read_error(bad, KT_ERR_FORMAT, ": truncated PNG data");
    write_file(bad, bytes, 20);  // inside IHDR
    expect_read_error(bad, KT_ERR_FORMAT, ": truncated PNG data");
    write_file(bad, bytes, n - 12);  // IEND missing
    expect_read_error(bad, KT_ERR_FORMAT, ": truncated PNG data");
    bytes[n / 2] ^= 0x55;  // a flipped bit inside IDAT: CRC mismatch
    write_file(bad, bytes, n);
    expect_read_error(bad, KT_ERR_FORMAT, ": corrupt PNG: IDAT: CRC error");
    // a tEXt chunk declaring 1.3 GB in a 104-byte file (libpng allocated it whole before reading; now skipped)
    expect_read_error(ARGEN_SOURCE_DIR "/tests/fuzz/regressions/png-text-chunk-1300mb.png", KT_ERR_FORMAT,
                      ": truncated PNG data");
    write_file(bad, "hello world, not an image", 25);
    expect_read_error(bad, KT_ERR_FORMAT, ": not a PNG or JPEG file");
    static const char fake_jpeg[] = "\xff\xd8\xff\xe0 not really a JPEG";
    write_file(bad, fake_jpeg, sizeof fake_jpeg - 1);
    expect_read_error(bad, KT_ERR_FORMAT, ": corrupt or truncated JPEG: ");
    write_file(bad, "", 0);
    expect_read_error(bad, KT_ERR_FORMAT, ": empty file");
    unlink(bad);
    expect_read_error(bad, KT_ERR_IO, ": cannot open: No such file or directory");
    expect_read_error(dir, KT_ERR_IO, "");  // a directory: open or read fails
    free(rgb), free(bytes), unlink(good), rmdir(dir), free(good), free(bad), free(dir);
}

// The evaluation reader takes 8-bit gray, gray+alpha, RGB and RGBA only (gray replicated, alpha dropped, like the
// general reader) and names the file when it refuses 16-bit, palette, JPEG or truncated input.
Test(image_io, eval_reader_accepts_8bit_only) {
    char *dir = make_tmpdir(), *path = path_in(dir, "e.png");
    uint16_t s[2 * 2 * 4] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160};
    int colors[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    for (int i = 0; i < 4; i++) {
        write_test_png(path, 2, 2, colors[i], 8, PNG_INTERLACE_NONE, s, NULL, 0, NULL, 0);
        uint8_t *a = NULL, *b = NULL;
        int w, h, w2, h2;
        cr_assert_eq(read_png_eval(path, &a, &w, &h), KT_OK, "color %d: %s", colors[i], kt_last_error());
        cr_assert_eq(read_image_rgb8(path, &b, &w2, &h2), KT_OK);
        cr_assert(w == 2 && h == 2 && !memcmp(a, b, 12), "color %d", colors[i]);
        free(a), free(b);
    }
    uint8_t *rgb = (uint8_t *)1;
    int w, h;
    write_test_png(path, 2, 2, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_NONE, s, NULL, 0, NULL, 0);
    cr_assert_eq(read_png_eval(path, &rgb, &w, &h), KT_ERR_FORMAT);
    cr_assert(rgb == NULL && strstr(kt_last_error(), path) && strstr(kt_last_error(), "16-bit"), "%s", kt_last_error());
    png_color pal[2] = {{1, 2, 3}, {4, 5, 6}};
    uint16_t idx[4] = {0, 1, 1, 0};
    write_test_png(path, 2, 2, PNG_COLOR_TYPE_PALETTE, 8, PNG_INTERLACE_NONE, idx, pal, 2, NULL, 0);
    cr_assert_eq(read_png_eval(path, &rgb, &w, &h), KT_ERR_FORMAT);
    cr_assert(strstr(kt_last_error(), "palette"), "%s", kt_last_error());
    uint8_t *px = random_rgb(16, 16, 3);
    cr_assert_eq(write_jpeg_rgb8(path, px, 16, 16, 90), KT_OK);
    cr_assert_eq(read_png_eval(path, &rgb, &w, &h), KT_ERR_FORMAT);
    cr_assert(strstr(kt_last_error(), "JPEG"), "%s", kt_last_error());
    cr_assert_eq(write_png_rgb8(path, px, 16, 16, NULL, NULL, 0), KT_OK);
    size_t n;
    uint8_t *bytes = read_file(path, &n);
    write_file(path, bytes, n / 2);
    cr_assert_eq(read_png_eval(path, &rgb, &w, &h), KT_ERR_FORMAT);
    cr_assert(strstr(kt_last_error(), "truncated"), "%s", kt_last_error());
    free(px), free(bytes), unlink(path), rmdir(dir), free(path), free(dir);
}

Test(image_io, absurd_dimensions_rejected) {
    char *dir = make_tmpdir(), *path = path_in(dir, "wide.png");
    const int w = IMAGE_MAX_DIM + 1;
    uint16_t *s = calloc(w, sizeof *s);
    write_test_png(path, w, 1, PNG_COLOR_TYPE_GRAY, 8, PNG_INTERLACE_NONE, s, NULL, 0, NULL, 0);
    expect_read_error(path, KT_ERR_FORMAT, ": image is 16385x1, larger than the 16384x16384 limit");
    uint8_t px[3] = {0};
    cr_assert_eq(write_png_rgb8(path, px, w, 1, NULL, NULL, 0), KT_ERR_ARG);
    cr_assert_eq(write_png_rgb8(path, px, 0, 1, NULL, NULL, 0), KT_ERR_ARG);
    free(s), unlink(path), rmdir(dir), free(path), free(dir);
}

Test(image_io, bad_text_keys_rejected) {
    char *dir = make_tmpdir(), *path = path_in(dir, "x.png");
    uint8_t px[3] = {1, 2, 3};
    char long_key[81];
    memset(long_key, 'k', 80), long_key[80] = 0;
    const char *keys[] = {long_key}, *vals[] = {"v"};
    cr_assert_eq(write_png_rgb8(path, px, 1, 1, keys, vals, 1), KT_ERR_ARG);
    keys[0] = "";
    cr_assert_eq(write_png_rgb8(path, px, 1, 1, keys, vals, 1), KT_ERR_ARG);
    keys[0] = "a\nb";
    cr_assert_eq(write_png_rgb8(path, px, 1, 1, keys, vals, 1), KT_ERR_ARG);
    cr_assert_eq(count_entries(dir), 0);
    rmdir(dir), free(path), free(dir);
}

Test(image_io, unwritable_destination_is_a_clean_error) {
    char *dir = make_tmpdir(), *file = path_in(dir, "somefile"), *path = path_in(file, "x.png");
    write_file(file, "x", 1);
    uint8_t px[12] = {0};
    cr_assert_eq(write_png_rgb8(path, px, 2, 2, NULL, NULL, 0), KT_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot create file: Not a directory", path);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_eq(write_jpeg_rgb8(path, px, 2, 2, 90), KT_ERR_IO);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_eq(count_entries(dir), 1);
    unlink(file), rmdir(dir), free(path), free(file), free(dir);
}

Test(image_io, failed_rename_leaves_no_temp_file) {
    char *dir = make_tmpdir(), *target = path_in(dir, "taken");
    cr_assert_eq(mkdir(target, 0777), 0);  // renaming a file over a directory fails after the data is written
    uint8_t *rgb = random_rgb(8, 8, 1);
    cr_assert_eq(write_png_rgb8(target, rgb, 8, 8, NULL, NULL, 0), KT_ERR_IO);
    cr_assert(strstr(kt_last_error(), "cannot move the temporary file into place"), "%s", kt_last_error());
    cr_assert_eq(strncmp(kt_last_error(), target, strlen(target)), 0);
    cr_assert_eq(count_entries(dir), 1, "temporary file left behind");
    cr_assert_eq(write_jpeg_rgb8(target, rgb, 8, 8, 90), KT_ERR_IO);
    cr_assert_eq(count_entries(dir), 1, "temporary file left behind");
    free(rgb), rmdir(target), rmdir(dir), free(target), free(dir);
}

Test(image_io, failed_write_mid_file_leaves_no_temp_file) {
    // RLIMIT_FSIZE makes write() fail with EFBIG part way through (Criterion runs each test in its own process)
    char *dir = make_tmpdir(), *path = path_in(dir, "big.png");
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 1000, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint8_t *rgb = random_rgb(64, 64, 5);  // ~12 KB of incompressible pixels
    cr_assert_eq(write_png_rgb8(path, rgb, 64, 64, NULL, NULL, 0), KT_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot write PNG: File too large", path);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_eq(count_entries(dir), 0, "temporary file left behind");
    cr_assert_eq(write_jpeg_rgb8(path, rgb, 64, 64, 100), KT_ERR_IO);
    cr_assert(strstr(kt_last_error(), "File too large"), "%s", kt_last_error());
    cr_assert_eq(count_entries(dir), 0, "temporary file left behind");
    free(rgb), rmdir(dir), free(path), free(dir);
}

// A 4-channel CMYK JPEG (as print workflows write them), made with libjpeg: refused with a message that says so.
static void write_cmyk_jpeg(const char *path) {
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = 8, ci.image_height = 8, ci.input_components = 4, ci.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&ci);
    jpeg_start_compress(&ci, TRUE);
    uint8_t row[8 * 4];
    for (int i = 0; i < 8 * 4; i++) row[i] = (uint8_t)(i * 7);
    while (ci.next_scanline < 8) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

Test(image_io, cmyk_jpeg_is_refused_by_name) {
    char *dir = make_tmpdir(), *path = path_in(dir, "cmyk.jpg");
    write_cmyk_jpeg(path);
    uint8_t *rgb = (uint8_t *)1;
    int w, h;
    cr_assert_eq(read_image_rgb8(path, &rgb, &w, &h), KT_ERR_FORMAT);
    cr_assert(rgb == NULL && strstr(kt_last_error(), path) && strstr(kt_last_error(), "CMYK"), "%s", kt_last_error());
    unlink(path), rmdir(dir), free(path), free(dir);
}

Test(image_io, jpeg_round_trip) {
    char *dir = make_tmpdir(), *path = path_in(dir, "x.jpg");
    const int w = 48, h = 32;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 5), p[1] = (uint8_t)(y * 7), p[2] = 128;
        }
    cr_assert_eq(write_jpeg_rgb8(path, rgb, w, h, 0), KT_ERR_ARG);
    cr_assert_eq(write_jpeg_rgb8(path, rgb, w, h, 101), KT_ERR_ARG);
    cr_assert_eq(write_jpeg_rgb8(path, rgb, w, h, 95), KT_OK, "%s", kt_last_error());
    cr_assert_eq(count_entries(dir), 1);
    uint8_t *back = NULL;
    int bw, bh;
    cr_assert_eq(read_image_rgb8(path, &back, &bw, &bh), KT_OK, "%s", kt_last_error());
    cr_assert_eq(bw, w);
    cr_assert_eq(bh, h);
    double err = 0;  // a smooth gradient at quality 95 decodes within a few levels on average
    for (int i = 0; i < w * h * 3; i++) err += abs((int)back[i] - (int)rgb[i]);
    cr_assert_lt(err / (w * h * 3), 3.0);
    free(back);
    // a truncated JPEG is refused (libjpeg would fill the missing rows with grey and only warn)
    size_t n;
    uint8_t *bytes = read_file(path, &n);
    write_file(path, bytes, n * 2 / 3);
    expect_read_error(path, KT_ERR_FORMAT, ": corrupt or truncated JPEG: ");
    // the file that overflowed stb_image's Huffman size table (tests/fuzz/fuzz_image.c found it)
    expect_read_error(ARGEN_SOURCE_DIR "/tests/fuzz/regressions/jpeg-huffman-size-overflow.jpg", KT_ERR_FORMAT,
                      ": corrupt or truncated JPEG: ");
    free(bytes), free(rgb), unlink(path), rmdir(dir), free(path), free(dir);
}

Test(image_io, ensure_dir_and_file_exists) {
    char *dir = make_tmpdir(), *nested = path_in(dir, "a/b//c/"), *file = path_in(dir, "f"), *under = path_in(dir, "f/sub");
    cr_assert_eq(ensure_dir(nested), KT_OK, "%s", kt_last_error());
    cr_assert_eq(ensure_dir(nested), KT_OK, "idempotent");
    struct stat st;
    char *c = path_in(dir, "a/b/c");
    cr_assert(stat(c, &st) == 0 && S_ISDIR(st.st_mode));
    cr_assert_not(file_exists(c));
    write_file(file, "x", 1);
    cr_assert(file_exists(file));
    cr_assert_not(file_exists(under));
    cr_assert_eq(ensure_dir(under), KT_ERR_IO);
    char want[512];
    snprintf(want, sizeof want, "%s: cannot create directory: '%s' exists and is not a directory", under, file);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_eq(ensure_dir(file), KT_ERR_IO);
    cr_assert_eq(ensure_dir(""), KT_ERR_ARG);
    cr_assert_eq(ensure_dir("."), KT_OK);
    unlink(file);
    char *b = path_in(dir, "a/b"), *a = path_in(dir, "a");
    rmdir(c), rmdir(b), rmdir(a), rmdir(dir);
    free(a), free(b), free(c), free(nested), free(file), free(under), free(dir);
}

// Output files checked before long work: the directory must exist and be writable, the path must not be a directory.
Test(image_io, check_output_file) {
    char *dir = make_tmpdir(), *ok = path_in(dir, "t.json"), *missing = path_in(dir, "no/t.json");
    char *file = path_in(dir, "f"), *under = path_in(dir, "f/t.json");
    cr_assert_eq(check_output_file("--x", ok), KT_OK, "%s", kt_last_error());
    cr_assert_eq(check_output_file("--x", "relative.json"), KT_OK, "%s", kt_last_error());  // the working directory
    cr_assert_eq(check_output_file("--x", missing), KT_ERR_IO);
    char want[700];
    snprintf(want, sizeof want, "--x %s: directory '%s/no': No such file or directory", missing, dir);
    cr_assert_str_eq(kt_last_error(), want);
    cr_assert_eq(check_output_file("--x", dir), KT_ERR_ARG);
    cr_assert(strstr(kt_last_error(), "is a directory"), "%s", kt_last_error());
    write_file(file, "x", 1);
    cr_assert_eq(check_output_file("--x", under), KT_ERR_IO);
    cr_assert(strstr(kt_last_error(), "is not a directory") || strstr(kt_last_error(), "Not a directory"), "%s",
              kt_last_error());
    cr_assert_eq(check_output_file("--x", file), KT_OK, "an existing file is replaced at the end");
    cr_assert_eq(check_output_file("--x", ""), KT_ERR_ARG);
    cr_assert_eq(check_output_file("--x", "/t.json"), geteuid() == 0 ? KT_OK : KT_ERR_IO, "%s", kt_last_error());
    unlink(file), rmdir(dir);
    free(ok), free(missing), free(file), free(under), free(dir);
}

// ======================================================================================== FID sources
// A sample .npz read into a caller's fixed buffer (the extractor's page-locked one): fits, or a clear error instead
// of a realloc of memory the reader does not own; a PNG directory grows its own buffer.
Test(fid_source, fixed_and_growing_buffers) {
    char *dir = make_tmpdir(), *npz = path_in(dir, "s.npz"), *pngs = path_in(dir, "png");
    uint8_t img[3 * 4 * 5 * 3];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 7);
    EvNpzWriter *w;
    cr_assert_eq(ev_npz_writer_open(&w, npz), KT_OK, "%s", kt_last_error());
    cr_assert_eq(ev_npz_writer_add(w, "arr_0", KT_U8, 4, (int64_t[]){3, 4, 5, 3}, img), KT_OK, "%s", kt_last_error());
    cr_assert_eq(ev_npz_writer_close(w), KT_OK, "%s", kt_last_error());
    FidSource s;
    cr_assert_eq(fid_source_open(&s, npz), KT_OK, "%s", kt_last_error());
    uint8_t fixed[2 * 60], *buf = fixed;
    size_t cap = sizeof fixed;
    int got, H, W;
    cr_assert_eq(fid_source_read(&s, 0, 2, &buf, &cap, false, &got, &H, &W), KT_OK, "%s", kt_last_error());
    cr_expect(buf == fixed && got == 2 && H == 4 && W == 5 && !memcmp(fixed, img, 120));
    cr_expect_eq(fid_source_read(&s, 0, 3, &buf, &cap, false, &got, &H, &W), KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "an image batch of 180 bytes does not fit the caller's 120-byte buffer"), "%s",
              kt_last_error());
    cr_expect(buf == fixed && cap == sizeof fixed);
    fid_source_close(&s);
    cr_assert_eq(ensure_dir(pngs), KT_OK);
    char *p0 = path_in(pngs, "a.png"), *p1 = path_in(pngs, "b.png");
    cr_assert_eq(write_png_rgb8(p0, img, 5, 4, NULL, NULL, 0), KT_OK, "%s", kt_last_error());
    cr_assert_eq(write_png_rgb8(p1, img + 60, 5, 4, NULL, NULL, 0), KT_OK, "%s", kt_last_error());
    cr_assert_eq(fid_source_open(&s, pngs), KT_OK, "%s", kt_last_error());
    uint8_t *grown = NULL;
    size_t gcap = 0;
    cr_assert_eq(fid_source_read(&s, 0, 2, &grown, &gcap, true, &got, &H, &W), KT_OK, "%s", kt_last_error());
    cr_expect(got == 2 && gcap >= 120 && !memcmp(grown, img, 120));
    fid_source_close(&s);
    free(grown);
    unlink(p0), unlink(p1), unlink(npz), rmdir(pngs), rmdir(dir);
    free(p0), free(p1), free(npz), free(pngs), free(dir);
}

// A PNG directory decoded by 1, 3 and 8 threads gives the same batches: each ends before the first PNG of another
// size, and a broken PNG fails the call that reaches it (but not a batch that ends at a size change before it).
Test(fid_source, threaded_png_batches_end_at_size_changes_and_failures) {
    char *dir = make_tmpdir();
    // 23 files: sizes 5x4 (0..9), 3x2 (10), 5x4 (11..16), broken (17), 5x4 (18..22)
    enum { N = 23, BROKEN = 17 };
    uint8_t img[5 * 4 * 3];
    char *paths[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "%02d.png", i);
        paths[i] = path_in(dir, name);
        for (size_t k = 0; k < sizeof img; k++) img[k] = (uint8_t)(k * 5 + i * 17);
        if (i == BROKEN) write_file(paths[i], "\x89PNG\r\n\x1a\n garbage", 17);
        else cr_assert_eq(write_png_rgb8(paths[i], img, i == 10 ? 3 : 5, i == 10 ? 2 : 4, NULL, NULL, 0), KT_OK);
    }
    static const int threads[3] = {1, 3, 8};
    for (int t = 0; t < 3; t++) {
        FidSource s;
        cr_assert_eq(fid_source_open(&s, dir), KT_OK, "%s", kt_last_error());
        cr_assert(s.threads >= 1);
        s.threads = threads[t];
        uint8_t *buf = NULL;
        size_t cap = 0;
        int got, H, W;
        // from 0, batches of up to 16: the 3x2 image ends the first one
        cr_assert_eq(fid_source_read(&s, 0, 16, &buf, &cap, true, &got, &H, &W), KT_OK, "%s", kt_last_error());
        cr_expect(got == 10 && W == 5 && H == 4, "threads %d: got %d (%dx%d)", threads[t], got, W, H);
        for (int i = 0; i < got; i++)
            for (size_t k = 0; k < sizeof img; k++)
                cr_expect_eq(buf[i * sizeof img + k], (uint8_t)(k * 5 + i * 17), "threads %d image %d", threads[t], i);
        cr_assert_eq(fid_source_read(&s, 10, 16, &buf, &cap, true, &got, &H, &W), KT_OK, "%s", kt_last_error());
        cr_expect(got == 1 && W == 3 && H == 2, "threads %d: got %d", threads[t], got);
        cr_assert_eq(fid_source_read(&s, 11, 6, &buf, &cap, true, &got, &H, &W), KT_OK, "%s", kt_last_error());
        cr_expect(got == 6 && buf[0] == (uint8_t)(11 * 17), "threads %d: got %d", threads[t], got);
        cr_expect_eq(fid_source_read(&s, 11, 12, &buf, &cap, true, &got, &H, &W), KT_ERR_FORMAT, "threads %d",
                     threads[t]);
        cr_expect(strstr(kt_last_error(), "17.png"), "names the broken file: %s", kt_last_error());
        cr_assert_eq(fid_source_read(&s, 18, 16, &buf, &cap, true, &got, &H, &W), KT_OK, "%s", kt_last_error());
        cr_expect(got == 5 && buf[4 * sizeof img] == (uint8_t)(22 * 17), "threads %d: got %d", threads[t], got);
        fid_source_close(&s);
        free(buf);
    }
    for (int i = 0; i < N; i++) unlink(paths[i]), free(paths[i]);
    rmdir(dir);
    free(dir);
}

// ===================================================================================== cli_parallel_for
typedef struct {
    atomic_int runs[1000];
    int64_t fail_a, fail_b;  // items that fail (-1: none)
} LoopProbe;

static KtStatus probe_item(void *ctx, int64_t i) {
    LoopProbe *p = ctx;
    atomic_fetch_add(&p->runs[i], 1);
    if (i == p->fail_a || i == p->fail_b) return KT_FAIL(KT_ERR_IO, "item %lld failed", (long long)i);
    return KT_OK;
}

// Every item runs exactly once at any thread count; of two failures the lower item's is returned, with its message.
Test(parallel, every_item_once_and_the_lowest_failure) {
    static const int threads[4] = {1, 2, 7, 0};
    for (int t = 0; t < 4; t++) {
        static LoopProbe p;
        for (int i = 0; i < 1000; i++) atomic_init(&p.runs[i], 0);
        p.fail_a = p.fail_b = -1;
        cr_assert_eq(cli_parallel_for(1000, threads[t], probe_item, &p), KT_OK);
        for (int i = 0; i < 1000; i++) cr_assert_eq(atomic_load(&p.runs[i]), 1, "threads %d item %d", threads[t], i);
        p.fail_a = 731, p.fail_b = 402;
        cr_assert_eq(cli_parallel_for(1000, threads[t], probe_item, &p), KT_ERR_IO);
        cr_expect(strstr(kt_last_error(), "item 402 failed"), "threads %d: %s", threads[t], kt_last_error());
    }
    cr_assert_eq(cli_parallel_for(0, 4, probe_item, NULL), KT_OK, "no items: fn is not called");
    cr_assert(cli_cores() >= 1 && cli_cores() <= CLI_MAX_THREADS);
}
