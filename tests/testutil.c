// Shared test helpers (see testutil.h).
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *fixture_path(const char *rel) {
    static _Thread_local char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", ARGEN_FIXTURE_DIR, rel);
    return buf;
}

const char *test_tmpdir(void) {
    static _Thread_local char buf[256];
    const char *base = getenv("TMPDIR");
    snprintf(buf, sizeof buf, "%s/argen-test-XXXXXX", base && base[0] ? base : "/tmp");
    cr_assert(mkdtemp(buf) != NULL, "mkdtemp failed");
    return buf;
}

static const KtCkptTensor *open_find(KtCheckpoint *ck, const char *path, const char *name) {
    KtStatus s = kt_ckpt_open(ck, path);
    cr_assert(s == KT_OK, "opening %s: %s", path, kt_last_error());
    const KtCkptTensor *t = kt_ckpt_find(ck, name);
    cr_assert(t != NULL, "%s: no tensor '%s'", path, name);
    return t;
}

float *read_f32(const char *path, const char *name, int64_t *n, int64_t shape[KT_MAX_DIMS], int *ndim) {
    KtCheckpoint ck = {0};
    const KtCkptTensor *t = open_find(&ck, path, name);
    int64_t numel = kt_ckpt_numel(t);
    float *out = malloc((size_t)(numel ? numel : 1) * sizeof *out);
    cr_assert(out != NULL);
    cr_assert(kt_ckpt_read_f32(&ck, t, out) == KT_OK, "%s", kt_last_error());
    if (n) *n = numel;
    if (shape)
        for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    if (ndim) *ndim = t->ndim;
    kt_ckpt_close(&ck);
    return out;
}

int64_t *read_i64(const char *path, const char *name, int64_t *n) {
    KtCheckpoint ck = {0};
    const KtCkptTensor *t = open_find(&ck, path, name);
    int64_t numel = kt_ckpt_numel(t);
    int64_t *out = malloc((size_t)(numel ? numel : 1) * sizeof *out);
    cr_assert(out != NULL);
    cr_assert(kt_ckpt_read_i64(&ck, t, out) == KT_OK, "%s", kt_last_error());
    if (n) *n = numel;
    kt_ckpt_close(&ck);
    return out;
}

float *to_nhwc(const float *x, int64_t B, int64_t C, int64_t H, int64_t W) {
    float *y = malloc((size_t)(B * C * H * W) * sizeof *y);
    cr_assert(y != NULL);
    for (int64_t b = 0; b < B; b++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t i = 0; i < H * W; i++) y[(b * H * W + i) * C + c] = x[(b * C + c) * H * W + i];
    return y;
}

void *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)len + 1);
    cr_assert(d && fread(d, 1, (size_t)len, f) == (size_t)len, "cannot read %s", path);
    d[len] = 0;
    fclose(f);
    if (n) *n = (size_t)len;
    return d;
}

void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "cannot create %s", path);
    cr_assert(fwrite(data, 1, n, f) == n, "cannot write %s", path);
    fclose(f);
}

void read_tokens_json(const char *path, int64_t *ids, int n) {
    char *buf = read_file(path, NULL);
    cr_assert(strncmp(buf, "{\"tokens\": [", 12) == 0, "%s", buf);
    int k = 0;
    for (char *p = buf + 12; *p && k < n; p++)
        if (*p >= '0' && *p <= '9') ids[k++] = strtol(p, &p, 10);
    free(buf);
    cr_assert_eq(k, n, "%s: %d ids, expected %d", path, k, n);
}

void expect_close(const char *what, const float *got, const float *ref, int64_t n, double atol, double rtol) {
    double max_abs = 0, max_rel = 0;
    int64_t worst = -1, n_bad = 0;
    char pairs[512] = "";
    size_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        bool bad;
        if (!isfinite(r) || !isfinite(g)) {
            bad = !(isnan(r) && isnan(g)) && !(isinf(r) && g == r);
        } else {
            double d = fabs(g - r);
            bad = d > atol + rtol * fabs(r);
            if (d > max_abs) { max_abs = d; worst = i; }
            double rel = d / fmax(fabs(r), 1e-30);
            if (rel > max_rel) max_rel = rel;
        }
        if (bad) {
            if (n_bad < 5 && m < sizeof pairs)
                m += (size_t)snprintf(pairs + m, sizeof pairs - m, " [%lld] %.7g vs %.7g;", (long long)i, g, r);
            n_bad++;
        }
    }
    cr_expect(n_bad == 0, "%s: %lld of %lld values outside atol %.1e + rtol %.1e; max abs %.3e at [%lld], max rel %.3e;"
              " first:%s", what, (long long)n_bad, (long long)n, atol, rtol, max_abs, (long long)worst, max_rel, pairs);
}

void expect_equal_i64(const char *what, const int64_t *got, const int64_t *ref, int64_t n) {
    int64_t n_bad = 0, first = -1;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != ref[i]) {
            if (first < 0) first = i;
            n_bad++;
        }
    cr_expect(n_bad == 0, "%s: %lld of %lld differ; first at [%lld]: %lld vs %lld", what, (long long)n_bad,
              (long long)n, (long long)first, first >= 0 ? (long long)got[first] : 0LL,
              first >= 0 ? (long long)ref[first] : 0LL);
}

void expect_error(KtStatus got, KtStatus want, const char *name, const char *needle) {
    const char *msg = kt_last_error();
    cr_expect(got == want, "expected %s, got %s (%s)", kt_status_name(want), kt_status_name(got), msg);
    cr_expect(strstr(msg, name) != NULL, "message does not name '%s': %s", name, msg);
    if (needle) cr_expect(strstr(msg, needle) != NULL, "message lacks '%s': %s", needle, msg);
}

int run_cli(const char *const *args, char *err, size_t cap) { return run_cli_stdout(args, NULL, err, cap); }

int run_cli_stdout(const char *const *args, const char *out_path, char *err, size_t cap) {
    int fds[2];
    cr_assert(pipe(fds) == 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 2);
        int devnull = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 1);
        close(fds[0]);
        const char *argv[64];
        int n = 0;
        argv[n++] = ARGEN_CLI_PATH;
        for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(ARGEN_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    char sink[4096];
    while ((r = read(fds[0], sink, sizeof sink)) > 0) {
        size_t take = (size_t)r;
        if (len + take >= cap) take = cap > len + 1 ? cap - len - 1 : 0;
        memcpy(err + len, sink, take);
        len += take;
    }
    if (cap) err[len < cap ? len : cap - 1] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

void test_backend_init(KtBackend *be, KtDevice dev) {
    if (dev == KT_CUDA) {
        if (!kt_cuda_available()) cr_skip_test("no CUDA device");
        cr_assert(kt_backend_cuda_init(be, 0) == KT_OK, "%s", kt_last_error());
    } else {
        cr_assert(kt_backend_cpu_init(be, 0) == KT_OK, "%s", kt_last_error());
    }
}
