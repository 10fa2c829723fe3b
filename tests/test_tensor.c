// Tensor views and 16-bit float conversions.
#include <math.h>
#include <string.h>

#include "kernels/profile.h"
#include "kernels/weights.h"
#include "testutil.h"

Test(tensor, views_slices_and_shape_strings) {
    float data[2 * 3 * 4];
    KtTensor t = kt_tensor3(data, KT_F32, KT_CPU, 2, 3, 4);
    cr_expect_eq(kt_numel(&t), 24);
    cr_expect_eq(kt_nbytes(&t), 96u);
    cr_expect_eq(kt_rows(&t), 6);
    cr_expect_eq(kt_cols(&t), 4);
    KtTensor s = kt_slice0(&t, 1, 1);
    cr_expect_eq((float *)s.data, data + 12);
    KtTensor i = kt_index0(&t, 1);
    cr_expect_eq(i.ndim, 2);
    cr_expect_eq(i.shape[0], 3);
    char buf[64];
    cr_expect_str_eq(kt_shape_str(&t, buf, sizeof buf), "(2, 3, 4)");
    KtTensor one = kt_tensor1(data, KT_F32, KT_CPU, 5);
    cr_expect_str_eq(kt_shape_str(&one, buf, sizeof buf), "(5,)");
}

Test(tensor, half_and_bfloat16_round_trip) {
    // every finite half value survives f16 -> f32 -> f16
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        float f = kt_f16_to_f32((uint16_t)h);
        cr_assert_eq(kt_f32_to_f16(f), (uint16_t)h, "half 0x%04x -> %g -> 0x%04x", h, f, kt_f32_to_f16(f));
    }
    cr_expect_eq(kt_f32_to_f16(1.0f), 0x3c00);
    cr_expect_eq(kt_f32_to_f16(65520.0f), 0x7c00);       // rounds to inf
    cr_expect_eq(kt_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  // ties to even
    cr_expect(isnan(kt_f16_to_f32(kt_f32_to_f16(NAN))));
    cr_expect_eq(kt_f32_to_bf16(1.0f), 0x3f80);
    cr_expect_eq(kt_bf16_to_f32(0x4049), 3.140625f);
    cr_expect_eq(kt_f32_to_bf16(1.00390625f), 0x3f80);    // 1 + 2^-8: tie, stays even
    cr_expect(isnan(kt_bf16_to_f32(kt_f32_to_bf16(NAN))));
}

// kt_wtab_last_follows: the tensor is stored right after the one before it (5 x 3 floats = 60 bytes, no alignment
// gap), so the two read as one (10, 3) tensor; without a present predecessor the load is refused.
Test(tensor, weight_table_follows) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    KtWeightTable t;
    KtBuffer buf;
    KtTensor a, b, c;
    kt_wtab_init(&t);
    cr_assert(kt_wtab_add(&t, &a, KT_W_PLAIN, 1, (int64_t[]){3}, "a") == KT_OK);
    cr_assert(kt_wtab_add(&t, &b, KT_W_MATMUL, 2, (int64_t[]){5, 3}, "b") == KT_OK);
    cr_assert(kt_wtab_add(&t, &c, KT_W_MATMUL, 2, (int64_t[]){5, 3}, "c") == KT_OK);
    kt_wtab_last_follows(&t);
    cr_assert(kt_wtab_init_random(&t, &be, &buf, 1) == KT_OK, "%s", kt_last_error());
    cr_expect_eq((char *)c.data, (char *)b.data + 60);
    cr_expect_neq((char *)b.data, (char *)a.data + 12, "b starts aligned, not right after a");
    kt_buffer_free(&buf);
    kt_wtab_free(&t);

    kt_wtab_init(&t);
    cr_assert(kt_wtab_add(&t, &b, KT_W_MATMUL, 2, (int64_t[]){5, 3}, "b") == KT_OK);
    kt_wtab_last_optional(&t);  // absent from a random init
    cr_assert(kt_wtab_add(&t, &c, KT_W_MATMUL, 2, (int64_t[]){5, 3}, "c") == KT_OK);
    kt_wtab_last_follows(&t);
    cr_expect(kt_wtab_init_random(&t, &be, &buf, 1) == KT_ERR_ARG);
    cr_expect(strstr(kt_last_error(), "'c' must follow") != NULL, "%s", kt_last_error());
    kt_wtab_free(&t);
    kt_backend_free(&be);
}

// kt_backend_note: each note once, "; "-separated, dropped past the buffer.
Test(tensor, backend_notes) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    cr_expect_str_eq(be.notes, "");
    kt_backend_note(&be, "conv %d: direct kernel", 3);
    kt_backend_note(&be, "graphs off");
    kt_backend_note(&be, "conv %d: direct kernel", 3);
    cr_expect_str_eq(be.notes, "conv 3: direct kernel; graphs off");
    for (int i = 0; i < 100; i++) kt_backend_note(&be, "note number %d", i);
    cr_expect(strlen(be.notes) < sizeof be.notes);
    kt_backend_free(&be);
}

// kt_graph_record: a backend without graphs turns them off quietly; a capture that fails turns them off with a note
// and leaves no graph, and the call still succeeds (the caller ran the work eagerly before).
static KtStatus fake_begin(KtBackend *be) {
    (void)be;
    return KT_OK;
}
static KtStatus fake_end(KtBackend *be, void **g) {
    (void)be;
    *g = NULL;
    return KT_FAIL(KT_ERR_CUDA, "capture failed (an op synchronised)");
}
static KtStatus fake_begin_fails(KtBackend *be) {
    (void)be;
    return KT_FAIL(KT_ERR_CUDA, "cudaStreamBeginCapture: operation not permitted");
}
static KtStatus record_nothing(void *ctx) {
    ++*(int *)ctx;
    return KT_OK;
}

Test(tensor, graph_record_falls_back) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    KtGraph g = {0};
    bool off = false;
    int calls = 0;
    cr_expect(kt_graph_record(&be, &g, record_nothing, &calls, &off) == KT_OK);
    cr_expect(off && !g.handle && calls == 0 && be.notes[0] == 0, "no graphs on the CPU: off, no note");
    static KtBackendOps fake;
    fake = *be.ops;
    fake.graph_begin = fake_begin;
    fake.graph_end = fake_end;
    const KtBackendOps *cpu_ops = be.ops;
    be.ops = &fake;
    off = false;
    cr_expect(kt_graph_record(&be, &g, record_nothing, &calls, &off) == KT_OK, "%s", kt_last_error());
    cr_expect(off && !g.handle && calls == 1);
    cr_expect(strstr(be.notes, "graphs off") && strstr(be.notes, "an op synchronised"), "notes: %s", be.notes);
    fake.graph_begin = fake_begin_fails;  // a capture that cannot start: the same, nothing recorded
    off = false;
    be.notes[0] = 0;
    cr_expect(kt_graph_record(&be, &g, record_nothing, &calls, &off) == KT_OK, "%s", kt_last_error());
    cr_expect(off && !g.handle && calls == 1);
    cr_expect(strstr(be.notes, "did not start") && strstr(be.notes, "BeginCapture"), "notes: %s", be.notes);
    cr_expect_str_eq(kt_last_error(), "");
    be.ops = cpu_ops;
    kt_backend_free(&be);
}

// Host transfer buffers: plain memory on the CPU backend; through the backend's page-locked allocator where it has
// one (released through it too); pageable memory with a note when that allocator refuses.
static int host_allocs, host_releases;
static KtStatus fake_host_alloc(KtBackend *be, void **ptr, size_t n) {
    (void)be;
    host_allocs++;
    *ptr = malloc(n);
    return *ptr ? KT_OK : KT_ERR_OOM;
}
static void fake_host_release(KtBackend *be, void *ptr) {
    (void)be;
    host_releases++;
    free(ptr);
}
static KtStatus fake_host_refuses(KtBackend *be, void **ptr, size_t n) {
    (void)be, (void)n;
    *ptr = NULL;
    return KT_FAIL(KT_ERR_OOM, "cudaMallocHost(%zu bytes): out of memory", n);
}

Test(tensor, host_buffers) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    KtBuffer b;
    cr_assert(kt_host_buffer_alloc(&be, &b, 1000) == KT_OK);
    cr_expect(b.data && b.host && !b.owner && b.nbytes == 1000 && b.device == KT_CPU);
    memset(b.data, 7, 1000);
    kt_buffer_free(&b);
    cr_expect(!b.data && !b.host);
    static KtBackendOps fake;
    fake = *be.ops;
    fake.host_alloc = fake_host_alloc;
    fake.host_release = fake_host_release;
    const KtBackendOps *cpu_ops = be.ops;
    be.ops = &fake;
    cr_assert(kt_host_buffer_alloc(&be, &b, 64) == KT_OK);
    cr_expect(b.owner == &be && b.host && host_allocs == 1);
    kt_buffer_free(&b);
    cr_expect(host_releases == 1 && !b.data);
    fake.host_alloc = fake_host_refuses;
    cr_assert(kt_host_buffer_alloc(&be, &b, 64) == KT_OK, "%s", kt_last_error());
    cr_expect(b.data && b.host && !b.owner, "pageable fallback");
    cr_expect(strstr(be.notes, "page-locked host memory refused") && strstr(be.notes, "cudaMallocHost"), "%s", be.notes);
    kt_buffer_free(&b);
    cr_expect(host_releases == 1, "the fallback's memory is not released through the backend");
    be.ops = cpu_ops;
    kt_backend_free(&be);
}

// Per-op timing: ops run while profiling are counted by name (kt_linear twice, kt_add once), graphs are off meanwhile,
// and the report lists them; after stop nothing more is counted.
Test(tensor, profile_counts_ops_by_name) {
    KtBackend be;
    cr_assert(kt_backend_cpu_init(&be, 0) == KT_OK);
    static float xd[6] = {1, 2, 3, 4, 5, 6}, wd[6] = {1, 0, 0, 1, 1, 1}, yd[4], zd[4];
    KtTensor x = kt_tensor2(xd, KT_F32, KT_CPU, 2, 3), w = kt_tensor2(wd, KT_F32, KT_CPU, 2, 3);
    KtTensor y = kt_tensor2(yd, KT_F32, KT_CPU, 2, 2), z = kt_tensor2(zd, KT_F32, KT_CPU, 2, 2);
    cr_expect(kt_graphs_on(&be));
    cr_assert(kt_profile_start(&be) == KT_OK);
    cr_expect(!kt_graphs_on(&be));
    cr_assert(kt_linear(&be, &y, &x, &w, NULL) == KT_OK);
    cr_assert(kt_linear(&be, &z, &x, &w, NULL) == KT_OK);
    cr_assert(kt_add(&be, &z, &z, &y) == KT_OK);
    cr_assert(kt_profile_stop(&be) == KT_OK);
    cr_assert(kt_add(&be, &z, &z, &y) == KT_OK);  // not counted
    cr_expect(kt_graphs_on(&be));
    const KtProfile *p = be.prof;
    int lin = -1, add = -1;
    for (int i = 0; i < p->n_rows; i++) {
        if (!strcmp(p->rows[i].name, "linear")) lin = i;
        if (!strcmp(p->rows[i].name, "add")) add = i;
    }
    cr_assert(lin >= 0 && add >= 0 && p->n_rows == 2, "%d rows", p->n_rows);
    cr_expect(p->rows[lin].calls == 2 && p->rows[add].calls == 1 && p->rows[lin].ms >= 0);
    char buf[2048] = {0};
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    cr_assert(f && kt_profile_report(&be, f) == KT_OK);
    fclose(f);
    cr_expect(strstr(buf, "| linear | 2 |") && strstr(buf, "| add | 1 |"), "%s", buf);
    kt_backend_free(&be);
}
