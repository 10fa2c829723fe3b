// Checkpoint readers: the three formats agree bit-for-bit on the official-format fixtures, strided/offset views and
// every dtype convert correctly, wrappers unwrap, ZIP64 and deflate work, and every malformed input (truncated,
// corrupted, hostile, wrong kind of file) gives a clean KT_ERR_* with a message naming the file and the problem.
// Fixtures: the shared official-format ones (var_tiny, llamagen_tiny, legacy, fid) and ckpt/ from
// scripts/make_checkpoint_fixtures.py.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "kernels/checkpoint/zip.h"
#include "testutil.h"

// ------------------------------------------------------------------------------------------------------- helpers

static const char *write_tmp(const char *name, const void *data, size_t n) {
    static _Thread_local char path[512];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    write_file(path, data, n);
    return path;
}

static void open_ok(KtCheckpoint *ck, const char *path) {
    KtStatus s = kt_ckpt_open(ck, path);
    cr_assert(s == KT_OK, "%s: %s", path, kt_last_error());
}

static bool is_int(KtDType t) { return t == KT_I64 || t == KT_I32 || t == KT_U8; }

// Both tensors read as float32 (and int64 for integer dtypes) with identical bits.
static bool same_values(const KtCheckpoint *a, const KtCkptTensor *ta, const KtCheckpoint *b, const KtCkptTensor *tb) {
    int64_t n = kt_ckpt_numel(ta);
    size_t bytes = (size_t)(n ? n : 1) * 8;
    void *x = malloc(bytes), *y = malloc(bytes);
    cr_assert(kt_ckpt_read_f32(a, ta, x) == KT_OK, "%s", kt_last_error());
    cr_assert(kt_ckpt_read_f32(b, tb, y) == KT_OK, "%s", kt_last_error());
    bool same = !memcmp(x, y, (size_t)n * sizeof(float));
    if (is_int(ta->dtype)) {
        cr_assert(kt_ckpt_read_i64(a, ta, x) == KT_OK, "%s", kt_last_error());
        cr_assert(kt_ckpt_read_i64(b, tb, y) == KT_OK, "%s", kt_last_error());
        same = same && !memcmp(x, y, (size_t)n * sizeof(int64_t));
    }
    free(x);
    free(y);
    return same;
}

// Same names, dtypes, shapes and values (bit-for-bit after conversion); order may differ (safetensors sorts).
static void expect_same_ckpt(const KtCheckpoint *a, const KtCheckpoint *b) {
    cr_expect_eq(a->n_tensors, b->n_tensors, "%s has %d tensors, %s has %d", a->path, a->n_tensors, b->path,
                 b->n_tensors);
    for (int i = 0; i < a->n_tensors; i++) {
        const KtCkptTensor *ta = &a->tensors[i], *tb = kt_ckpt_find(b, ta->name);
        cr_assert(tb != NULL, "'%s' of %s is missing from %s", ta->name, a->path, b->path);
        cr_expect(ta->dtype == tb->dtype, "'%s': %s vs %s", ta->name, kt_dtype_name(ta->dtype),
                  kt_dtype_name(tb->dtype));
        cr_assert(ta->ndim == tb->ndim && !memcmp(ta->shape, tb->shape, (size_t)ta->ndim * sizeof ta->shape[0]),
                  "'%s': shapes differ between %s and %s", ta->name, a->path, b->path);
        cr_expect(same_values(a, ta, b, tb), "'%s': values differ between %s and %s", ta->name, a->path, b->path);
    }
}

static void expect_same_files(const char *rel_a, const char *rel_b) {
    char pa[1024];
    snprintf(pa, sizeof pa, "%s", fixture_path(rel_a));
    KtCheckpoint a, b;
    open_ok(&a, pa);
    open_ok(&b, fixture_path(rel_b));
    expect_same_ckpt(&a, &b);
    kt_ckpt_close(&a);
    kt_ckpt_close(&b);
}

static KtStatus open_mem(KtCheckpoint *ck, const void *d, size_t n, const char *name) {
    // an exactly sized copy, so ASan sees any read past the end
    void *copy = malloc(n ? n : 1);
    memcpy(copy, d, n);
    KtStatus s = kt_ckpt_open_memory(ck, copy, n, name);
    if (s == KT_OK) {  // every tensor must also read cleanly
        for (int i = 0; i < ck->n_tensors && s == KT_OK; i++) {
            const KtCkptTensor *t = &ck->tensors[i];
            int64_t numel = kt_ckpt_numel(t);
            if (numel > (1 << 24)) continue;
            void *buf = malloc((size_t)(numel ? numel : 1) * 8);
            s = kt_ckpt_read_f32(ck, t, buf);
            if (s == KT_OK && is_int(t->dtype)) s = kt_ckpt_read_i64(ck, t, buf);
            free(buf);
        }
        cr_assert(s == KT_OK, "%s: reading an opened checkpoint failed: %s", name, kt_last_error());
        kt_ckpt_close(ck);
    }
    free(copy);
    return s;
}

// Tiny zip writer (stored members; ZIP64 records and extra fields when zip64), for crafted archives.
typedef struct {
    const char *name;
    const uint8_t *data;
    size_t size;
} Member;

static void put16(uint8_t **p, unsigned v) { (*p)[0] = (uint8_t)v, (*p)[1] = (uint8_t)(v >> 8), *p += 2; }
static void put32(uint8_t **p, uint32_t v) { put16(p, v & 0xFFFF), put16(p, v >> 16); }
static void put64(uint8_t **p, uint64_t v) { put32(p, (uint32_t)v), put32(p, (uint32_t)(v >> 32)); }

static uint8_t *zip_build(const Member *m, int n, bool zip64, size_t *out_size) {
    size_t cap = 1024;
    for (int i = 0; i < n; i++) cap += 2 * strlen(m[i].name) + m[i].size + 200;
    uint8_t *buf = calloc(1, cap), *p = buf;
    uint64_t *offs = calloc((size_t)n + 1, sizeof *offs);
    for (int i = 0; i < n; i++) {
        uint16_t nl = (uint16_t)strlen(m[i].name);
        uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].size);
        offs[i] = (uint64_t)(p - buf);
        put32(&p, 0x04034b50), put16(&p, zip64 ? 45 : 20), put16(&p, 0), put16(&p, 0), put32(&p, 0), put32(&p, crc);
        put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)m[i].size), put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)m[i].size);
        put16(&p, nl), put16(&p, zip64 ? 20 : 0);
        memcpy(p, m[i].name, nl), p += nl;
        if (zip64) put16(&p, 1), put16(&p, 16), put64(&p, m[i].size), put64(&p, m[i].size);
        memcpy(p, m[i].data, m[i].size), p += m[i].size;
    }
    uint64_t cd = (uint64_t)(p - buf);
    for (int i = 0; i < n; i++) {
        uint16_t nl = (uint16_t)strlen(m[i].name);
        put32(&p, 0x02014b50), put16(&p, 45), put16(&p, zip64 ? 45 : 20), put16(&p, 0), put16(&p, 0), put32(&p, 0);
        put32(&p, (uint32_t)crc32(0, m[i].data, (uInt)m[i].size));
        for (int k = 0; k < 2; k++) put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)m[i].size);
        put16(&p, nl), put16(&p, zip64 ? 28 : 0), put16(&p, 0), put16(&p, 0), put16(&p, 0), put32(&p, 0);
        put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)offs[i]);
        memcpy(p, m[i].name, nl), p += nl;
        if (zip64) put16(&p, 1), put16(&p, 24), put64(&p, m[i].size), put64(&p, m[i].size), put64(&p, offs[i]);
    }
    uint64_t cd_size = (uint64_t)(p - buf) - cd;
    if (zip64) {
        uint64_t e64 = (uint64_t)(p - buf);
        put32(&p, 0x06064b50), put64(&p, 44), put16(&p, 45), put16(&p, 45), put32(&p, 0), put32(&p, 0);
        put64(&p, (uint64_t)n), put64(&p, (uint64_t)n), put64(&p, cd_size), put64(&p, cd);
        put32(&p, 0x07064b50), put32(&p, 0), put64(&p, e64), put32(&p, 1);
    }
    put32(&p, 0x06054b50), put16(&p, 0), put16(&p, 0);
    put16(&p, zip64 ? 0xFFFF : (unsigned)n), put16(&p, zip64 ? 0xFFFF : (unsigned)n);
    put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)cd_size), put32(&p, zip64 ? 0xFFFFFFFFu : (uint32_t)cd), put16(&p, 0);
    free(offs);
    *out_size = (size_t)(p - buf);
    return buf;
}

// A one-member torch-zip checkpoint whose data.pkl is `pkl`.
static KtStatus open_pickle(const void *pkl, size_t n, const char *name) {
    Member m = {"archive/data.pkl", pkl, n};
    size_t size;
    uint8_t *z = zip_build(&m, 1, false, &size);
    KtCheckpoint ck;
    KtStatus s = open_mem(&ck, z, size, name);
    free(z);
    return s;
}

// ---------------------------------------------------------------------------------- official-format fixtures

Test(checkpoint, var_zip_legacy_safetensors_agree) {
    expect_same_files("var_tiny/var.pth", "legacy/var_legacy.pth");
    expect_same_files("var_tiny/var.pth", "var_tiny/var.safetensors");
}

Test(checkpoint, vae_zip_legacy_safetensors_agree) {
    expect_same_files("var_tiny/vae.pth", "legacy/vae_legacy.pth");
    expect_same_files("var_tiny/vae.pth", "var_tiny/vae.safetensors");
}

Test(checkpoint, llamagen_model_wrapper_agrees) {
    expect_same_files("llamagen_tiny/gpt.pt", "legacy/gpt_legacy.pt");
    expect_same_files("llamagen_tiny/gpt.pt", "llamagen_tiny/gpt.safetensors");
    expect_same_files("llamagen_tiny/vq.pt", "llamagen_tiny/vq.safetensors");
}

Test(checkpoint, formats_detected) {
    KtCheckpoint ck;
    const char *files[] = {"var_tiny/var.pth", "legacy/var_legacy.pth", "var_tiny/var.safetensors"};
    KtCkptFormat want[] = {KT_CKPT_TORCH_ZIP, KT_CKPT_TORCH_LEGACY, KT_CKPT_SAFETENSORS};
    for (int i = 0; i < 3; i++) {
        open_ok(&ck, fixture_path(files[i]));
        cr_expect(ck.format == want[i], "%s: detected %s", files[i], kt_ckpt_format_name(ck.format));
        kt_ckpt_close(&ck);
    }
}

Test(checkpoint, lvl_1L_int64) {
    int64_t n = 0, *lvl = read_i64(fixture_path("var_tiny/var.pth"), "lvl_1L", &n);
    int64_t want[30], k = 0;
    for (int s = 0; s < 4; s++)  // patch_nums (1, 2, 3, 4): scale s has (s+1)^2 tokens
        for (int j = 0; j < (s + 1) * (s + 1); j++) want[k++] = s;
    cr_assert_eq(n, 30);
    expect_equal_i64("lvl_1L", lvl, want, 30);
    free(lvl);
}

Test(checkpoint, attn_bias_keeps_neg_inf) {
    int64_t n = 0, shape[KT_MAX_DIMS];
    int ndim = 0;
    float *bias = read_f32(fixture_path("var_tiny/var.pth"), "attn_bias_for_masking", &n, shape, &ndim);
    int64_t lvl[30], k = 0;
    for (int s = 0; s < 4; s++)
        for (int j = 0; j < (s + 1) * (s + 1); j++) lvl[k++] = s;
    cr_assert(ndim == 4 && n == 900 && shape[2] == 30 && shape[3] == 30);
    int bad = 0, ninf = 0;
    for (int i = 0; i < 30; i++)
        for (int j = 0; j < 30; j++) {
            float v = bias[i * 30 + j];
            ninf += isinf(v) && v < 0;
            bad += lvl[i] >= lvl[j] ? v != 0.0f : !(isinf(v) && v < 0);
        }
    cr_expect(bad == 0 && ninf > 0, "%d entries differ from the block-causal 0/-inf mask (%d -inf)", bad, ninf);
    free(bias);
}

Test(checkpoint, inception_random) {
    KtCheckpoint ck;
    open_ok(&ck, fixture_path("fid/inception_random.pth"));
    int64_t total = 0;
    for (int i = 0; i < ck.n_tensors; i++) total += kt_ckpt_numel(&ck.tensors[i]);
    cr_expect_eq(ck.n_tensors, 566);
    cr_expect_eq(total, 23885486);  // torch: sum(v.numel() for v in sd.values())
    const KtCkptTensor *fc = kt_ckpt_find(&ck, "fc.weight");
    cr_assert(fc && fc->ndim == 2 && fc->shape[0] == 1008 && fc->shape[1] == 2048);
    kt_ckpt_close(&ck);
}

// ------------------------------------------------------------------------------- strided views, dtypes, wrappers

static void expect_matches_expected(const char *rel) {
    expect_same_files(rel, "ckpt/expected.safetensors");
    float *t = read_f32(fixture_path(rel), "t", NULL, NULL, NULL);
    float *base = read_f32(fixture_path(rel), "base", NULL, NULL, NULL);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++) cr_expect(t[i * 4 + j] == base[j * 6 + i], "%s: t[%d][%d]", rel, i, j);
    float *s = read_f32(fixture_path(rel), "s", NULL, NULL, NULL), *e = read_f32(fixture_path(rel), "expand", NULL,
                                                                                 NULL, NULL);
    cr_expect(s[0] == base[8] && s[5] == base[16] && e[0] == base[12] && e[11] == base[14], "%s: views", rel);
    int64_t n, *big = read_i64(fixture_path(rel), "i64_t", &n), *b = read_i64(fixture_path(rel), "b", NULL);
    cr_expect(n == 6 && big[0] == (1LL << 40) + 3 && big[2] == -5 && big[3] == -(1LL << 62) &&
              big[5] == 123456789012LL, "%s: i64_t", rel);
    cr_expect(b[0] == 1 && b[1] == 0 && b[2] == 1, "%s: bool", rel);
    float *h = read_f32(fixture_path(rel), "h", NULL, NULL, NULL);
    cr_expect(h[0] == 1.5f && h[2] == 65504.0f && h[5] == 0.0f && signbit(h[5]) && isinf(h[6]), "%s: f16", rel);
    KtCheckpoint ck;
    open_ok(&ck, fixture_path(rel));
    cr_expect(!kt_ckpt_find(&ck, "step") && !kt_ckpt_find(&ck, "name") && !kt_ckpt_find(&ck, "nested") &&
              !kt_ckpt_find(&ck, "x"), "%s: non-tensor entries must be skipped", rel);
    const KtCkptTensor *sc = kt_ckpt_find(&ck, "scalar"), *em = kt_ckpt_find(&ck, "empty");
    cr_expect(sc && sc->ndim == 0 && kt_ckpt_numel(sc) == 1 && em && kt_ckpt_numel(em) == 0);
    int64_t dummy[24];
    cr_expect(kt_ckpt_read_i64(&ck, kt_ckpt_find(&ck, "base"), dummy) == KT_ERR_ARG, "float tensors need read_f32");
    kt_ckpt_close(&ck);
    free(t), free(base), free(s), free(e), free(big), free(b), free(h);
}

Test(checkpoint, strided_zip) { expect_matches_expected("ckpt/strided.pth"); }
Test(checkpoint, strided_legacy) { expect_matches_expected("ckpt/strided_legacy.pth"); }
Test(checkpoint, strided_deflated_zip) { expect_matches_expected("ckpt/strided_deflate.pth"); }

Test(checkpoint, legacy_storage_view) {
    int64_t n;
    float *v = read_f32(fixture_path("ckpt/legacy_view.pth"), "v", &n, NULL, NULL);
    float *w = read_f32(fixture_path("ckpt/legacy_view.pth"), "whole", NULL, NULL, NULL);
    cr_expect(n == 3 && v[0] == 3 && v[1] == 4 && v[2] == 5, "view: %g %g %g", v[0], v[1], v[2]);
    for (int i = 0; i < 10; i++) cr_expect(w[i] == (float)i);
    free(v), free(w);
}

Test(checkpoint, ordered_dict_with_metadata) {
    int64_t n;
    float *w = read_f32(fixture_path("ckpt/linear_od.pth"), "0.weight", &n, NULL, NULL);
    float *lb = read_f32(fixture_path("ckpt/linear_od.pth"), "1.bias", NULL, NULL, NULL);
    cr_expect(n == 6 && w[5] == 1.25f && lb[0] == -3.0f && lb[1] == -2.75f);
    free(w), free(lb);
}

static void expect_small(const char *rel, const KtCkptOpenParams *p, float w0, int64_t idx0) {
    KtCheckpoint ck;
    KtStatus s = kt_ckpt_open_params(&ck, fixture_path(rel), p);
    cr_assert(s == KT_OK, "%s", kt_last_error());
    cr_assert_eq(ck.n_tensors, 2, "%s: %d tensors (wrapper values must not leak in)", rel, ck.n_tensors);
    float w[3];
    int64_t idx[2];
    cr_assert(kt_ckpt_read_f32(&ck, kt_ckpt_find(&ck, "w"), w) == KT_OK);
    cr_assert(kt_ckpt_read_i64(&ck, kt_ckpt_find(&ck, "idx"), idx) == KT_OK);
    cr_expect(w[0] == w0 && idx[0] == idx0, "%s: w[0] %g idx[0] %lld", rel, w[0], (long long)idx[0]);
    kt_ckpt_close(&ck);
}

Test(checkpoint, wrappers) {
    expect_small("ckpt/model_wrap.pth", NULL, 1, 4);
    expect_small("ckpt/state_dict_wrap.pth", NULL, 1, 4);
    expect_small("ckpt/ema_wrap.pth", NULL, -1, 6);  // default prefers "model"
    expect_small("ckpt/ema_wrap.pth", &(KtCkptOpenParams){.unwrap_key = "ema"}, 1, 4);
    KtCheckpoint ck;
    KtStatus s = kt_ckpt_open_params(&ck, fixture_path("ckpt/ema_wrap.pth"), &(KtCkptOpenParams){.unwrap_key = "x"});
    expect_error(s, KT_ERR_FORMAT, "ema_wrap.pth", "no top-level key 'x' (keys: 'ema', 'model')");
    expect_error(kt_ckpt_open(&ck, fixture_path("ckpt/no_tensors.pth")), KT_ERR_FORMAT, "no_tensors.pth",
                 "no tensors");
}

// -------------------------------------------------------------------------------------------------- zip details

Test(checkpoint, zip64_archive) {
    size_t n;
    uint8_t *orig = read_file(fixture_path("var_tiny/var.pth"), &n);
    KtZip z;
    cr_assert(kt_zip_open(&z, orig, n, "var.pth") == KT_OK, "%s", kt_last_error());
    Member *m = calloc((size_t)z.n_entries, sizeof *m);
    for (int i = 0; i < z.n_entries; i++) {
        void *owned;
        m[i].name = z.entries[i].name;
        cr_assert(kt_zip_member_data(&z, &z.entries[i], &m[i].data, &m[i].size, &owned) == KT_OK && !owned);
    }
    size_t n64;
    uint8_t *z64 = zip_build(m, z.n_entries, true, &n64);
    KtZip zz;
    cr_assert(kt_zip_open(&zz, z64, n64, "var64.pth") == KT_OK, "%s", kt_last_error());
    cr_expect(zz.n_entries == z.n_entries && kt_zip_find(&zz, "archive/data.pkl") != NULL);
    kt_zip_free(&zz);
    KtCheckpoint a, b;
    cr_assert(kt_ckpt_open_memory(&b, z64, n64, "var64.pth") == KT_OK, "%s", kt_last_error());
    open_ok(&a, fixture_path("var_tiny/var.pth"));
    expect_same_ckpt(&a, &b);
    kt_ckpt_close(&a), kt_ckpt_close(&b);
    // a missing storage member, and one cut short
    int k = -1;
    for (int i = 0; i < z.n_entries; i++)
        if (!strcmp(m[i].name, "archive/data/4")) k = i;
    cr_assert(k >= 0);
    m[k].size -= 4;
    free(z64);
    z64 = zip_build(m, z.n_entries, true, &n64);
    expect_error(open_mem(&a, z64, n64, "short.pth"), KT_ERR_FORMAT, "short.pth", "storage '4' needs 4096 bytes");
    m[k].name = "archive/data/4x";
    free(z64);
    z64 = zip_build(m, z.n_entries, false, &n64);
    expect_error(open_mem(&a, z64, n64, "gone.pth"), KT_ERR_FORMAT, "gone.pth", "storage '4' (archive/data/4)");
    free(z64), free(m), free(orig);
    kt_zip_free(&z);
}

Test(checkpoint, zip_deflated_npz_members) {
    size_t ns, nd;
    uint8_t *st = read_file(fixture_path("fid/ref_batch_stored.npz"), &ns);
    uint8_t *df = read_file(fixture_path("fid/ref_batch_deflated.npz"), &nd);
    KtZip a, b;
    cr_assert(kt_zip_open(&a, st, ns, "stored.npz") == KT_OK && kt_zip_open(&b, df, nd, "deflated.npz") == KT_OK);
    const KtZipEntry *ea = kt_zip_find(&a, "arr_0.npy"), *eb = kt_zip_find(&b, "arr_0.npy");
    cr_assert(ea && eb && ea->method == 0 && eb->method == 8 && !kt_zip_find(&a, "nope.npy"));
    const uint8_t *da, *db;
    size_t sa, sb;
    void *oa, *ob;
    cr_assert(kt_zip_member_data(&a, ea, &da, &sa, &oa) == KT_OK && oa == NULL);
    cr_assert(kt_zip_member_data(&b, eb, &db, &sb, &ob) == KT_OK && ob != NULL, "%s", kt_last_error());
    cr_expect(sa == 98432 && sa == sb && !memcmp(da, db, sa), "inflated arr_0.npy differs from the stored one");
    free(ob);
    expect_error(open_mem(&(KtCheckpoint){0}, st, ns, "ref.npz"), KT_ERR_FORMAT, "ref.npz", "no data.pkl");
    kt_zip_free(&a), kt_zip_free(&b);
    free(st), free(df);
}

// -------------------------------------------------------------------------------------------------- bad inputs

Test(checkpoint, wrong_files) {
    KtCheckpoint ck;
    expect_error(kt_ckpt_open(&ck, "/nonexistent/dir/var_d16.pth"), KT_ERR_IO, "/nonexistent/dir/var_d16.pth",
                 "cannot open");
    expect_error(kt_ckpt_open(&ck, test_tmpdir()), KT_ERR_IO, "argen-test-", "directory");
    expect_error(kt_ckpt_open(&ck, write_tmp("empty.pth", "", 0)), KT_ERR_FORMAT, "empty.pth", "empty");
    const char *html = "\n  <!DOCTYPE html>\n<html><head><title>VAR on Hugging Face</title></head></html>\n";
    expect_error(kt_ckpt_open(&ck, write_tmp("var_d16.pth", html, strlen(html))), KT_ERR_FORMAT, "var_d16.pth",
                 "is an HTML page, not a checkpoint");
    const char *lfs = "version https://git-lfs.github.com/spec/v1\noid sha256:3f4e\nsize 1234567\n";
    expect_error(kt_ckpt_open(&ck, write_tmp("vae.pth", lfs, strlen(lfs))), KT_ERR_FORMAT, "vae.pth", "git lfs pull");
    expect_error(kt_ckpt_open(&ck, write_tmp("x.pth", "GIF89a\x01\x02", 8)), KT_ERR_FORMAT, "x.pth",
                 "unknown file format (first bytes: 47 49 46 38 39 61 01 02 \"GIF89a..\")");
    expect_error(kt_ckpt_open(&ck, write_tmp("p.pth", "\x80\x02K\x05.", 5)), KT_ERR_FORMAT, "p.pth", "magic number");
}

Test(checkpoint, truncated_everywhere) {
    const char *files[] = {"ckpt/strided.pth", "ckpt/strided_legacy.pth", "ckpt/expected.safetensors",
                           "ckpt/legacy_view.pth", "var_tiny/var.pth"};
    for (int f = 0; f < 5; f++) {
        size_t n;
        uint8_t *d = read_file(fixture_path(files[f]), &n);
        size_t step = n > 20000 ? n / 97 : 1;  // every prefix of the small files; ~100 of the large one
        for (size_t cut = 0; cut < n; cut += step) {
            KtCheckpoint ck;
            KtStatus s = open_mem(&ck, d, cut, "cut.pth");
            cr_assert(s != KT_OK, "%s cut to %zu bytes opened", files[f], cut);
            expect_error(s, s == KT_ERR_UNSUPPORTED ? KT_ERR_UNSUPPORTED : KT_ERR_FORMAT, "cut.pth", NULL);
        }
        for (size_t back = 1; back < 200 && back < n; back++) {  // the zip directory and the last storage
            KtCheckpoint ck;
            expect_error(open_mem(&ck, d, n - back, "end.pth"), KT_ERR_FORMAT, "end.pth", NULL);
        }
        free(d);
    }
    size_t n;
    uint8_t *d = read_file(fixture_path("ckpt/strided.pth"), &n);
    KtCheckpoint ck;
    expect_error(kt_ckpt_open(&ck, write_tmp("half.pth", d, n / 2)), KT_ERR_FORMAT, "half.pth",
                 "truncated: the zip directory is missing");
    free(d);
    d = read_file(fixture_path("ckpt/strided_legacy.pth"), &n);
    expect_error(kt_ckpt_open(&ck, write_tmp("leg.pth", d, n - 10)), KT_ERR_FORMAT, "leg.pth", "truncated: storage");
    free(d);
}

Test(checkpoint, corrupted_bytes) {
    const char *files[] = {"ckpt/strided.pth", "ckpt/strided_legacy.pth", "ckpt/expected.safetensors",
                           "ckpt/legacy_view.pth", "ckpt/linear_od.pth"};
    const uint8_t xors[] = {0xFF, 0x01, 0x80};
    for (int f = 0; f < 5; f++) {
        size_t n;
        uint8_t *d = read_file(fixture_path(files[f]), &n);
        int n_ok = 0, n_err = 0;
        for (size_t i = 0; i < n; i++)
            for (int x = 0; x < 3; x++) {
                d[i] ^= xors[x];
                KtCheckpoint ck;
                KtStatus s = open_mem(&ck, d, n, "bad.pth");
                d[i] ^= xors[x];
                if (s == KT_OK) n_ok++;
                else {
                    n_err++;
                    cr_expect(strstr(kt_last_error(), "bad.pth") != NULL, "%s byte %zu: %s", files[f], i,
                              kt_last_error());
                    cr_expect(s == KT_ERR_FORMAT || s == KT_ERR_UNSUPPORTED, "%s byte %zu: %s", files[f], i,
                              kt_status_name(s));
                }
            }
        cr_expect(n_err > 0, "%s: no corruption was detected", files[f]);
        free(d);
    }
}

static KtStatus open_st(const char *header, const char *name) {
    size_t hl = strlen(header), n = 8 + hl + 64;
    uint8_t *d = calloc(1, n);
    for (int i = 0; i < 8; i++) d[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(d + 8, header, hl);
    KtCheckpoint ck;
    KtStatus s = open_mem(&ck, d, n, name);
    free(d);
    return s;
}

Test(checkpoint, safetensors_bad_headers) {
    cr_expect(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,8],\"data_offsets\":[0,64]},"
                      "\"__metadata__\":{\"format\":\"pt\"}}", "ok.safetensors") == KT_OK, "%s", kt_last_error());
    uint8_t huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    KtCheckpoint ck;
    expect_error(open_mem(&ck, huge, sizeof huge, "huge.safetensors"), KT_ERR_FORMAT, "huge.safetensors",
                 "header length is 9223372036854775807 bytes, but only 8 bytes follow");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4,8],\"data_offsets\":[0,128]}}", "eof.st"),
                 KT_ERR_FORMAT, "eof.st", "the data section has 64 bytes");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", "lap.st"),
                 KT_ERR_FORMAT, "lap.st", "overlap");
    expect_error(open_st("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}}", "dt.st"),
                 KT_ERR_FORMAT, "dt.st", "is float16 (4) (8 bytes) but its data_offsets span 16 bytes");
    expect_error(open_st("{\"a\":{\"dtype\":\"I16\",\"shape\":[4],\"data_offsets\":[0,8]}}", "i16.st"),
                 KT_ERR_UNSUPPORTED, "i16.st", "dtype 'I16'");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", "nooff.st"), KT_ERR_FORMAT, "nooff.st",
                 "lacks \"data_offsets\"");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "dims.st"),
                 KT_ERR_FORMAT, "dims.st", "too many dims");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                         "\"data_offsets\":[0,4]}}", "ovf.st"), KT_ERR_FORMAT, "ovf.st", "data_offsets span");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "dup.st"),
                 KT_ERR_FORMAT, "dup.st", "'a' appears twice");
    expect_error(open_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "json.st"),
                 KT_ERR_FORMAT, "json.st", "safetensors header byte");
    expect_error(open_st("{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "nul.st"),
                 KT_ERR_FORMAT, "nul.st", "control byte 0x00");
    char deep[300] = "{\"__metadata__\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    expect_error(open_st(deep, "deep.st"), KT_ERR_FORMAT, "deep.st", "nested too deeply");
}

Test(checkpoint, legacy_edge_cases) {
    // fuzz regression: a legacy file with no storages at all (empty object dict, empty key list)
    static const char none[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." "\x80\x02M\xe9\x03."
                               "\x80\x02}." "\x80\x02}." "\x80\x02].";
    KtCheckpoint ck;
    expect_error(open_mem(&ck, none, sizeof none - 1, "none.pth"), KT_ERR_FORMAT, "none.pth", "no tensors");
    static const char version[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." "\x80\x02M\xea\x03.";
    expect_error(open_mem(&ck, version, sizeof version - 1, "v.pth"), KT_ERR_FORMAT, "v.pth", "version is 1002");
    static const char big_endian[] = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." "\x80\x02M\xe9\x03."
                                     "\x80\x02}X\x0d\x00\x00\x00little_endian\x89s.";
    expect_error(open_mem(&ck, big_endian, sizeof big_endian - 1, "be.pth"), KT_ERR_UNSUPPORTED, "be.pth",
                 "big-endian");
}

Test(checkpoint, hostile_pickles) {
    KtCheckpoint ck;
    expect_error(kt_ckpt_open(&ck, fixture_path("ckpt/evil.pth")), KT_ERR_FORMAT, "evil.pth",
                 "unsupported pickle global");
    static const char os_system[] = "\x80\x02}q\x00X\x01\x00\x00\x00wcos\nsystem\nX\x02\x00\x00\x00ls\x85R.";
    expect_error(open_pickle(os_system, sizeof os_system - 1, "os.pth"), KT_ERR_FORMAT, "os.pth",
                 "unsupported pickle global 'os.system'");
    static const char stack_global[] = "\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93.";
    expect_error(open_pickle(stack_global, sizeof stack_global - 1, "sg.pth"), KT_ERR_FORMAT, "sg.pth",
                 "'builtins.eval'");
    size_t n = 200000;
    char *deep = malloc(n + 3);
    deep[0] = '\x80', deep[1] = 2;
    memset(deep + 2, '(', n - 2);
    deep[n] = '.';
    expect_error(open_pickle(deep, n + 1, "deep.pth"), KT_ERR_FORMAT, "deep.pth", "nests deeper than");
    memset(deep + 2, ']', n - 2);  // nested empty lists only grow the stack...
    expect_error(open_pickle(deep, n + 1, "wide.pth"), KT_ERR_FORMAT, "wide.pth", "list, expected a dict");
    n = (1 << 20) + 16;  // ...up to its cap
    deep = realloc(deep, n + 3);
    memset(deep + 2, 'N', n - 2);
    deep[n] = '.';
    expect_error(open_pickle(deep, n + 1, "tall.pth"), KT_ERR_FORMAT, "tall.pth", "stack exceeds");
    free(deep);
    static const char memo[] = "\x80\x02}r\xff\xff\xff\xff.";
    expect_error(open_pickle(memo, sizeof memo - 1, "memo.pth"), KT_ERR_FORMAT, "memo.pth", "memo index");
    static const char get[] = "\x80\x02h\x05.";
    expect_error(open_pickle(get, sizeof get - 1, "get.pth"), KT_ERR_FORMAT, "get.pth", "never stored");
    static const char underflow[] = "\x80\x02(s.";
    expect_error(open_pickle(underflow, sizeof underflow - 1, "uf.pth"), KT_ERR_FORMAT, "uf.pth", "underflow");
    static const char empty_mark[] = "\x80\x02(t.";  // fuzz regression: TUPLE from a MARK on an empty stack
    expect_error(open_pickle(empty_mark, sizeof empty_mark - 1, "em.pth"), KT_ERR_FORMAT, "em.pth", "holds a tuple");
    static const char nostop[] = "\x80\x02}";
    expect_error(open_pickle(nostop, sizeof nostop - 1, "ns.pth"), KT_ERR_FORMAT, "ns.pth", "without a STOP");
    static const char bigstr[] = "\x80\x02X\x00\x00\x10\x00";
    expect_error(open_pickle(bigstr, sizeof bigstr - 1, "bs.pth"), KT_ERR_FORMAT, "bs.pth", "truncated");
    static const char module[] = "\x80\x02}X\x01\x00\x00\x00m(X\x06\x00\x00\x00moduleNNNtQs.";
    expect_error(open_pickle(module, sizeof module - 1, "mod.pth"), KT_ERR_FORMAT, "mod.pth", "kind 'module'");
    // a tensor whose shape/stride reaches past its storage ('0' holds 4 floats; (3, 2) stride (2, 1) needs 6)
    static const char oob[] = "\x80\x02}X\x01\x00\x00\x00w"
                              "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\n"
                              "X\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpuK\x04tQK\x00K\x03K\x02\x86K\x02K\x01\x86"
                              "\x89NtRs.";
    Member m[2] = {{"archive/data.pkl", (const uint8_t *)oob, sizeof oob - 1},
                   {"archive/data/0", (const uint8_t *)"0123456789abcdef", 16}};
    size_t zs;
    uint8_t *z = zip_build(m, 2, false, &zs);
    expect_error(open_mem(&ck, z, zs, "oob.pth"), KT_ERR_FORMAT, "oob.pth", "reaches element 5 of a storage with 4");
    free(z);
}

// ---------------------------------------------------------------------------- training checkpoints (LlamaGen)
// {"model": sd, "optimizer": ..., "steps": ..., "args": argparse.Namespace(numpy scalars, dtype, array,
// TorchVersion, ...)} (scripts/make_ckpt_inert_fixtures.py): the non-tensor objects are inert placeholders next to
// the state dict; inside it they are refused; a dangerous global in a placeholder's state is still refused.
Test(checkpoint, training_checkpoint_objects_are_inert_placeholders) {
    static const char *files[] = {"ckpt_inert/train_zip.pt", "ckpt_inert/train_legacy.pt", "ckpt_inert/train_proto4.pt"};
    for (int i = 0; i < 3; i++) {
        KtCheckpoint ck = {0};
        KtStatus s = kt_ckpt_open(&ck, fixture_path(files[i]));
        cr_assert(s == KT_OK, "%s: %s", files[i], kt_last_error());
        cr_expect_eq(ck.n_tensors, 2, "%s: %d tensors (only the model's)", files[i], ck.n_tensors);
        float w[6], b[2];
        cr_assert(kt_ckpt_read_f32(&ck, kt_ckpt_find(&ck, "w"), w) == KT_OK);
        cr_assert(kt_ckpt_read_f32(&ck, kt_ckpt_find(&ck, "b"), b) == KT_OK);
        cr_expect(w[0] == -1.0f && w[5] == 1.5f && b[0] == 1.5f && b[1] == -2.0f, "%s", files[i]);
        kt_ckpt_close(&ck);
    }
    KtCheckpoint ck = {0};
    expect_error(kt_ckpt_open(&ck, fixture_path("ckpt_inert/inert_in_sd.pt")), KT_ERR_FORMAT, "inert_in_sd.pt",
                 "'scale' is a numpy scalar");
    expect_error(kt_ckpt_open(&ck, fixture_path("ckpt_inert/evil_namespace.pt")), KT_ERR_FORMAT, "evil_namespace.pt",
                 "system");
    // hand-made: an inert global's instance as the top-level object, and NEWOBJ_EX of a non-whitelisted class
    static const char top[] = "\x80\x04\x8c\x08" "argparse\x8c\x09Namespace\x93)\x81.";
    expect_error(open_pickle(top, sizeof top - 1, "top.pth"), KT_ERR_FORMAT, "top.pth", "holds a placeholder object");
    static const char ex[] = "\x80\x04\x8c\x02os\x8c\x06system\x93)}\x92.";
    expect_error(open_pickle(ex, sizeof ex - 1, "ex.pth"), KT_ERR_FORMAT, "ex.pth", "os.system");
}

// ------------------------------------------------------------------------------------------------------ metadata
// A safetensors file whose header is `json` (one F32 scalar tensor "w" after the metadata), from memory.
static void open_st_json(KtCheckpoint *ck, uint8_t *buf, size_t cap, const char *json) {
    size_t hl = strlen(json);
    cr_assert(8 + hl + 4 <= cap);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    memset(buf + 8 + hl, 0, 4);
    cr_assert(kt_ckpt_open_memory(ck, buf, 8 + hl + 4, "meta.safetensors") == KT_OK, "%s", kt_last_error());
}

Test(checkpoint, safetensors_metadata_lookup) {
    uint8_t buf[1024];
    KtCheckpoint ck;
    open_st_json(&ck, buf, sizeof buf,
                 "{\"__metadata__\": {\"argen_model\": \"var\", \"patch_nums\": \"1,2,3,4,5,6,8\", \"cfg\": \"2.5\", "
                 "\"norm_groups\": \"16\", \"esc\": \"a\\\"b\\u00e9\", \"bad\": \"1,x\", \"obj\": {\"n\": [1, 2]}, "
                 "\"num\": 3}, \"w\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}");
    char *s = NULL;
    cr_assert(kt_ckpt_meta_get(&ck, "argen_model", &s) == KT_OK && s && !strcmp(s, "var"));
    free(s);
    cr_assert(kt_ckpt_meta_get(&ck, "esc", &s) == KT_OK && s && !strcmp(s, "a\"b\xc3\xa9"));
    free(s);
    cr_assert(kt_ckpt_meta_get(&ck, "missing", &s) == KT_OK && s == NULL);
    cr_assert(kt_ckpt_meta_get(&ck, "num", &s) == KT_ERR_FORMAT && s == NULL);  // not a string
    cr_assert(strstr(kt_last_error(), "meta.safetensors") && strstr(kt_last_error(), "'num'"));
    int v[8], n = 0, g = 0;
    bool found = false;
    cr_assert(kt_ckpt_meta_ints(&ck, "patch_nums", v, 8, &n, &found) == KT_OK && found && n == 7 && v[6] == 8);
    cr_assert(kt_ckpt_meta_ints(&ck, "patch_nums", v, 6, &n, &found) == KT_ERR_FORMAT && !found);  // too many
    cr_assert(kt_ckpt_meta_ints(&ck, "bad", v, 8, &n, &found) == KT_ERR_FORMAT && !found);
    cr_assert(strstr(kt_last_error(), "'bad'") && strstr(kt_last_error(), "1,x"));
    cr_assert(kt_ckpt_meta_int(&ck, "norm_groups", 1, 64, &g, &found) == KT_OK && found && g == 16);
    cr_assert(kt_ckpt_meta_int(&ck, "norm_groups", 1, 8, &g, &found) == KT_ERR_FORMAT && !found);  // out of range
    float f = 0;
    cr_assert(kt_ckpt_meta_float(&ck, "cfg", &f, &found) == KT_OK && found && f == 2.5f);
    cr_assert(kt_ckpt_meta_float(&ck, "argen_model", &f, &found) == KT_ERR_FORMAT && !found);
    cr_assert(kt_ckpt_meta_float(&ck, "nothing", &f, &found) == KT_OK && !found);
    kt_ckpt_close(&ck);

    open_st_json(&ck, buf, sizeof buf, "{\"w\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}");
    cr_assert(kt_ckpt_meta_get(&ck, "cfg", &s) == KT_OK && s == NULL);  // no metadata at all
    cr_assert(kt_ckpt_meta_int(&ck, "norm_groups", 1, 64, &g, &found) == KT_OK && !found);
    kt_ckpt_close(&ck);
}
