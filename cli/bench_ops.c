// argen bench --arch ops: single kernels-API ops timed at VAR-d16's shapes (C = 1024, 16 heads of 64, 680 tokens;
// its VQVAE decoder at batch 8) and at LlamaGen GPT-B's token step: the op table of kernels/cuda/NOTES.md. On CUDA
// each op is captured several times into one graph and replayed (launch overhead excluded); on the CPU it runs
// eagerly. Best of --reps; random operands from a fixed seed (the numbers are rates, not results).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ops.h"
#include "commands.h"
#include "kernels/ops.h"

#define CPU_MAX_GFLOP 20.0  // larger cases are listed as skipped on the CPU (seconds per call)
#define MAX_BUFS 32

typedef enum { OP_LINEAR, OP_ATTN, OP_SAMPLE, OP_CONV, OP_GN_SILU, OP_LN_ADALN, OP_ADD, OP_RES_LN, OP_VAR_ATTN,
               OP_PREP_ATTN, OP_ADD_RMSNORM, OP_LLAMA_ATTN, OP_SWIGLU, OP_CFG, OP_SAMPLE_LLAMA, OP_RMSNORM_LINEAR,
               OP_RMSNORM_LINEAR_SWIGLU, OP_LINEAR_RESIDUAL } OpKind;

// Operands by position; each kind's call below says which is which.
typedef struct {
    OpKind kind;
    KtTensor a, b, c, d, e, f, g;
    int64_t kv;
    SmpParams sp;
} BenchOp;

typedef struct {
    KtBackend *be;
    KtBuffer buf[MAX_BUFS];
    int nbuf, reps;
    bool cuda;
    uint64_t rng;
} Bench;

static KtStatus op_call(KtBackend *b, const BenchOp *o) {
    static const int pad1[4] = {1, 1, 1, 1};
    BenchOp m = *o;  // the ops take non-const outputs
    switch (o->kind) {
    case OP_LINEAR: return kt_linear(b, &m.c, &m.a, &m.b, m.d.data ? &m.d : NULL);  // y c = x a . w b^T + bias d
    case OP_ATTN: return kt_attention(b, &m.d, &m.a, &m.b, &m.c, m.kv, NULL, 1.f);  // out d; q a, k b, v c
    case OP_SAMPLE: return kt_sample_top_k_top_p(b, &m.c, &m.a, &m.b, 0, m.sp);     // tokens c; logits a; ids b
    case OP_CONV: return kt_conv2d(b, &m.c, &m.a, &m.b, &m.d, 1, pad1);             // y c; x a, w b, bias d
    case OP_GN_SILU: return kt_group_norm_silu(b, &m.c, &m.a, &m.b, &m.d, 32, 1e-6f);
    case OP_LN_ADALN: return kt_layernorm_adaln(b, &m.c, &m.a, &m.b, &m.d, 1e-6f);  // y c; x a; scale b, shift d
    case OP_ADD: return kt_add(b, &m.c, &m.a, &m.b);
    case OP_RES_LN: return kt_gated_residual_layernorm_adaln(b, &m.c, &m.a, &m.e, &m.f, &m.b, &m.d, 1e-6f);
    case OP_VAR_ATTN: return kt_var_attention(b, &m.e, &m.a, &m.b, &m.c, &m.d, &m.f, m.kv, NULL);
    case OP_PREP_ATTN:  // the two ops the fused kt_var_attention replaces
        KT_TRY(kt_var_attn_prep(b, &m.a, &m.b, &m.c, &m.d, &m.f, m.kv));
        return kt_attention(b, &m.g, &m.a, &m.b, &m.c, m.kv + m.a.shape[2], NULL, 1.f);
    case OP_ADD_RMSNORM: return kt_add_rmsnorm(b, &m.c, &m.a, &m.e, &m.b, 1e-5f);  // y c; x a += h e; weight b
    case OP_LLAMA_ATTN:  // out e; q a, caches b c; qkv d; rope f; positions g
        return kt_llama_attention(b, &m.e, &m.a, &m.b, &m.c, &m.d, &m.f, &m.g, 0.125f);
    case OP_SWIGLU: return kt_swiglu(b, &m.c, &m.a);
    case OP_CFG: return kt_cfg_combine(b, &m.c, &m.a, 3.f);                                  // y c; logits a
    case OP_SAMPLE_LLAMA: return kt_sample_llama(b, &m.c, &m.a, &m.b, &m.d, m.sp);  // tokens c; logits a; ids b; pos d
    case OP_RMSNORM_LINEAR: return kt_rmsnorm_linear(b, &m.c, &m.e, &m.a, &m.b, &m.d, 1e-5f);  // y c; hn e; x a; nw b; w d
    case OP_RMSNORM_LINEAR_SWIGLU:  // g c; a13 f; hn e; x a; nw b; w13 d
        return kt_rmsnorm_linear_swiglu(b, &m.c, &m.f, &m.e, &m.a, &m.b, &m.d, 1e-5f);
    case OP_LINEAR_RESIDUAL: return kt_linear_residual(b, &m.a, &m.e, &m.b, &m.d);  // x a += inp b . w d^T; h e
    }
    return KT_FAIL(KT_ERR_ARG, "bench ops: unknown op kind %d", (int)o->kind);
}

typedef struct {
    KtBackend *be;
    const BenchOp *o;
    int n;
} Repeat;

static KtStatus repeat_op(void *ctx) {
    Repeat *r = ctx;
    for (int i = 0; i < r->n; i++) KT_TRY(op_call(r->be, r->o));
    return KT_OK;
}

// Microseconds per call: up to n calls captured into one graph and replayed (CUDA; as many as fill ~2 ms at the
// second warm-up call's eager time, at least one), or one eager call (CPU); best of reps.
static KtStatus time_op(Bench *b, KtBackend *be, const BenchOp *o, int n, double *us) {
    KT_TRY(op_call(be, o));  // warm-up: scratch sized, algorithms chosen
    KT_TRY(kt_sync(be));
    double t0 = cli_now();
    KT_TRY(op_call(be, o));  // an eager call's time (launch included) sizes the graph
    KT_TRY(kt_sync(be));
    double warm_us = (cli_now() - t0) * 1e6;
    Repeat r = {be, o, b->cuda ? (int)fmax(1, fmin(n, ceil(2000 / fmax(warm_us, 1)))) : 1};
    KtGraph g = {0};
    bool off = false;
    KT_TRY(kt_graph_record(be, &g, repeat_op, &r, &off));
    KtStatus s = g.handle ? kt_graph_launch(be, &g) : KT_OK;  // the first replay uploads the graph
    if (s == KT_OK) s = kt_sync(be);
    double best = INFINITY;
    for (int k = 0; s == KT_OK && k < b->reps; k++) {
        double start = cli_now();
        s = g.handle ? kt_graph_launch(be, &g) : repeat_op(&r);
        if (s == KT_OK) s = kt_sync(be);
        best = fmin(best, (cli_now() - start) / r.n * 1e6);
    }
    kt_graph_free(&g);
    *us = best;
    return s;
}

static float frand(Bench *b) {  // uniform [-1, 1) (xorshift64*)
    b->rng ^= b->rng >> 12, b->rng ^= b->rng << 25, b->rng ^= b->rng >> 27;
    return (float)((b->rng * 0x2545F4914F6CDD1Dull) >> 40) / (float)(1 << 23) - 1.f;
}

// A device tensor of random values in [-scale, scale) (int64: 0, 1, 2, ...; int32: every entry (int)scale).
static KtStatus tensor(Bench *b, KtTensor *t, KtDType dt, int nd, const int64_t *shape, float scale) {
    if (b->nbuf == MAX_BUFS) return KT_FAIL(KT_ERR_ARG, "bench ops: more than %d operands", MAX_BUFS);
    *t = kt_tensor(NULL, dt, b->be->device, nd, shape);
    size_t n = (size_t)kt_numel(t), bytes = kt_nbytes(t);
    KT_TRY(kt_buffer_alloc(b->be, &b->buf[b->nbuf], bytes));
    t->data = b->buf[b->nbuf++].data;
    void *h = malloc(bytes ? bytes : 1);
    if (!h) return KT_FAIL(KT_ERR_OOM, "bench ops: %zu bytes of host memory", bytes);
    for (size_t i = 0; i < n; i++) {
        float f = scale * frand(b);
        if (dt == KT_F32) ((float *)h)[i] = f;
        else if (dt == KT_BF16) ((uint16_t *)h)[i] = kt_f32_to_bf16(f);
        else if (dt == KT_F16) ((uint16_t *)h)[i] = kt_f32_to_f16(f);
        else if (dt == KT_I64) ((int64_t *)h)[i] = (int64_t)i;
        else ((int32_t *)h)[i] = (int32_t)scale;
    }
    KtStatus s = kt_upload(b->be, t, h);
    free(h);
    return s;
}
#define TENSOR(t, dt, scale, ...)                                                                         \
    KT_TRY(tensor(b, (t), (dt), sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t),                 \
                  (const int64_t[]){__VA_ARGS__}, (scale)))

static void release(Bench *b, int from) {
    while (b->nbuf > from) kt_buffer_free(&b->buf[--b->nbuf]);
}

// "12.3 TFLOP/s" or "45.6 GFLOP/s".
static const char *flops(char *buf, size_t cap, double flop, double us) {
    double r = flop / us * 1e-6;  // TFLOP/s
    if (r >= 1) snprintf(buf, cap, "%.1f TFLOP/s", r);
    else snprintf(buf, cap, "%.1f GFLOP/s", r * 1e3);
    return buf;
}

// One table row: op | shape | variant | us per call | rate ("" when none).
static void row(const char *op, const char *shape, const char *variant, double us, const char *rate) {
    printf("| %s | %s | %s | %.2f | %s |\n", op, shape, variant, us, rate);
    fflush(stdout);
}
static void skipped(Bench *b, const char *op, const char *shape, double gflop) {
    printf("| %s | %s | %s | - | skipped on the CPU (%.0f GFLOP per call) |\n", op, shape,
           kt_dtype_name(b->be->matmul_dtype), gflop);
}

// ------------------------------------------------------------------------------------------------ families
// VAR-d16's GEMMs: qkv, fc1, fc2, proj, head at 2 rows (CFG, batch 1) .. 512 (2 x 256 tokens) .. 32768. On CUDA with
// 16-bit weights also the other small-M kernel choice (alt: cuBLASLt only / small-M up to 16 rows) and 16-bit x.
static KtStatus family_linear(Bench *b, KtBackend *lt_only, KtBackend *small_16) {
    static const int64_t kn[][2] = {{1024, 3072}, {1024, 4096}, {4096, 1024}, {1024, 1024}, {1024, 6144}};
    static const int64_t ms[] = {2, 8, 16, 32, 128, 512, 8192, 32768};
    KtDType wdt = b->be->matmul_dtype;
    bool w16 = wdt != KT_F32;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 8; j++) {
            int64_t K = kn[i][0], N = kn[i][1], M = ms[j];
            double gflop = 2.0 * M * K * N * 1e-9;
            char shape[64], rate[96];
            snprintf(shape, sizeof shape, "M=%lld K=%lld N=%lld", (long long)M, (long long)K, (long long)N);
            if (!w16 && M > 512) continue;  // fp32 GEMMs at these sizes tell nothing new
            if (!b->cuda && gflop > CPU_MAX_GFLOP) { skipped(b, "linear", shape, gflop); continue; }
            int base = b->nbuf;
            BenchOp o = {.kind = OP_LINEAR};
            TENSOR(&o.a, KT_F32, 1.f, M, K);
            TENSOR(&o.b, wdt, 0.03f, N, K);
            TENSOR(&o.c, KT_F32, 0, M, N);
            TENSOR(&o.d, KT_F32, 1.f, N);
            double us;
            KT_TRY(time_op(b, b->be, &o, M >= 8192 ? 5 : 50, &us));
            char fl[32], variant[64];
            snprintf(rate, sizeof rate, "%s, %.1f GB/s of weights", flops(fl, sizeof fl, 2.0 * M * K * N, us),
                     (double)N * K * kt_dtype_size(wdt) / us * 1e-3);
            snprintf(variant, sizeof variant, "%s weights, float32 x", kt_dtype_name(wdt));
            row("linear", shape, variant, us, rate);
            if (lt_only && M <= 16) {  // the same shape with the other small-M choice
                KT_TRY(time_op(b, M <= 8 ? lt_only : small_16, &o, 50, &us));
                row("linear", shape, M <= 8 ? "cuBLASLt (ARGEN_CUDA_SMALL_M=0)" : "small-M (ARGEN_CUDA_SMALL_M=16)",
                    us, "");
            }
            if (w16 && M <= 512) {  // 16-bit x (the model's GEMM inputs): no conversion pass
                BenchOp o16 = o;
                TENSOR(&o16.a, wdt, 1.f, M, K);
                snprintf(variant, sizeof variant, "%s weights, %s x", kt_dtype_name(wdt), kt_dtype_name(wdt));
                KT_TRY(time_op(b, b->be, &o16, 50, &us));
                row("linear", shape, variant, us, "");
                if (lt_only) {
                    KT_TRY(time_op(b, lt_only, &o16, 50, &us));
                    row("linear", shape, "  the same, cuBLASLt only", us, "");
                    KT_TRY(time_op(b, small_16, &o16, 50, &us));
                    row("linear", shape, "  the same, small-M up to 16 rows", us, "");
                }
            }
            release(b, base);
        }
    return KT_OK;
}

// Attention at VAR-d16's last scale (Tq 256, kv 680) and others, 16 heads of 64, CFG batch 1 (B=2) and 64 (B=128).
static KtStatus family_attention(Bench *b) {
    static const int64_t ab[][3] = {{2, 256, 680}, {2, 169, 424}, {128, 256, 680}, {2, 680, 680}};
    for (int i = 0; i < 4; i++) {
        int64_t B = ab[i][0], Tq = ab[i][1], kv = ab[i][2];
        double flop = 4.0 * B * 16 * Tq * kv * 64;
        char shape[64], rate[48];
        snprintf(shape, sizeof shape, "B=%lld Tq=%lld kv=%lld", (long long)B, (long long)Tq, (long long)kv);
        if (!b->cuda && flop * 1e-9 > CPU_MAX_GFLOP) { skipped(b, "attention", shape, flop * 1e-9); continue; }
        int base = b->nbuf;
        BenchOp o = {.kind = OP_ATTN, .kv = kv};
        TENSOR(&o.a, KT_F32, 0.2f, B, 16, Tq, 64);
        TENSOR(&o.b, KT_F32, 0.2f, B, 16, 680, 64);
        TENSOR(&o.c, KT_F32, 1.f, B, 16, 680, 64);
        TENSOR(&o.d, KT_F32, 0, B, Tq, 1024);
        double us;
        KT_TRY(time_op(b, b->be, &o, B > 8 ? 5 : 20, &us));
        char variant[48];
        snprintf(variant, sizeof variant, b->be->matmul_dtype == KT_F32 ? "%s" : "%s tensor cores",
                 kt_dtype_name(b->be->matmul_dtype == KT_F32 ? KT_F32 : KT_F16));
        row("attention", shape, variant, us, flops(rate, sizeof rate, flop, us));
        release(b, base);
    }
    return KT_OK;
}

// VAR's sampler: top-k 900, top-p 0.95 over V = 4096 for 256 rows (batch 1's last scale) and 16384 (batch 64).
static KtStatus family_sample(Bench *b) {
    static const int64_t rows[][2] = {{1, 256}, {64, 256}};
    for (int i = 0; i < 2; i++) {
        int base = b->nbuf;
        BenchOp o = {.kind = OP_SAMPLE};
        o.sp = smp_params_default();
        o.sp.top_k = 900, o.sp.top_p = 0.95f;
        TENSOR(&o.a, KT_F32, 5.f, rows[i][0], rows[i][1], 4096);
        TENSOR(&o.b, KT_I64, 0, rows[i][0]);
        TENSOR(&o.c, KT_I32, 0, rows[i][0], rows[i][1]);
        double us;
        KT_TRY(time_op(b, b->be, &o, 5, &us));
        char shape[48];
        snprintf(shape, sizeof shape, "rows=%lld V=4096", (long long)(rows[i][0] * rows[i][1]));
        row("sample top-k 900 top-p 0.95", shape, "", us, "");
        release(b, base);
    }
    return KT_OK;
}

// The VQVAE decoder at batch 8: 3x3 convs at 256^2 x 160, 128^2 x 320, 16^2 x 640 and conv_out (160 -> 3),
// GroupNorm+SiLU and a residual add at 256^2 x 160; maps in float32, and in the 16-bit matmul dtype where it is one.
static KtStatus family_decoder(Bench *b) {
    static const int64_t cv[][3] = {{256, 160, 160}, {128, 320, 320}, {16, 640, 640}, {256, 160, 3}};
    KtDType wdt = b->be->matmul_dtype;
    for (int mi = 0; mi < (wdt == KT_F32 ? 1 : 2); mi++) {
        KtDType md = mi ? wdt : KT_F32;
        char variant[64], shape[64], rate[48];
        snprintf(variant, sizeof variant, "%s weights, %s maps", kt_dtype_name(wdt), kt_dtype_name(md));
        for (int i = 0; i < 4; i++) {
            int64_t S = cv[i][0], Ci = cv[i][1], Co = cv[i][2], B = 8;
            double flop = 2.0 * B * S * S * Ci * Co * 9;
            snprintf(shape, sizeof shape, "B=8 %lldx%lld %lld->%lld", (long long)S, (long long)S, (long long)Ci,
                     (long long)Co);
            if (!b->cuda && flop * 1e-9 > CPU_MAX_GFLOP) { skipped(b, "conv3x3", shape, flop * 1e-9); continue; }
            int base = b->nbuf;
            BenchOp o = {.kind = OP_CONV};
            TENSOR(&o.a, md, 1.f, B, S, S, Ci);
            TENSOR(&o.b, wdt, 0.03f, Co, 3, 3, Ci);
            TENSOR(&o.c, Co < 8 ? KT_F32 : md, 0, B, S, S, Co);  // conv_out writes float32 (the image)
            TENSOR(&o.d, KT_F32, 1.f, Co);
            double us;
            KT_TRY(time_op(b, b->be, &o, 3, &us));
            row("conv3x3", shape, variant, us, flops(rate, sizeof rate, flop, us));
            release(b, base);
        }
        int base = b->nbuf;
        BenchOp o = {.kind = OP_GN_SILU};
        TENSOR(&o.a, md, 1.f, 8, 256, 256, 160);
        TENSOR(&o.b, KT_F32, 1.f, 160);
        TENSOR(&o.c, md, 0, 8, 256, 256, 160);
        TENSOR(&o.d, KT_F32, 1.f, 160);
        double us, bytes = 3.0 * (double)kt_nbytes(&o.a);  // stats read, apply read + write
        KT_TRY(time_op(b, b->be, &o, 3, &us));
        snprintf(rate, sizeof rate, "%.1f GB/s", bytes / us * 1e-3);
        row("group_norm_silu", "(8,256,256,160)", kt_dtype_name(md), us, rate);
        BenchOp a = {.kind = OP_ADD, .a = o.c, .b = o.a, .c = o.c};  // in place: y aliases a
        KT_TRY(time_op(b, b->be, &a, 3, &us));
        snprintf(rate, sizeof rate, "%.1f GB/s", bytes / us * 1e-3);
        row("add", "(8,256,256,160)", kt_dtype_name(md), us, rate);
        release(b, base);
    }
    return KT_OK;
}

// The transformer block's norms at batch 1's last scale (2, 256, 1024): LN + AdaLN, and the fused gated residual +
// LN + AdaLN writing the next GEMM's (16-bit) input.
static KtStatus family_norm(Bench *b) {
    int base = b->nbuf;
    KtDType hdt = b->be->matmul_dtype;
    BenchOp o = {.kind = OP_LN_ADALN};
    TENSOR(&o.a, KT_F32, 1.f, 2, 256, 1024);
    TENSOR(&o.b, KT_F32, 1.f, 2, 1024);
    TENSOR(&o.c, KT_F32, 0, 2, 256, 1024);
    TENSOR(&o.d, KT_F32, 1.f, 2, 1024);
    double us;
    KT_TRY(time_op(b, b->be, &o, 50, &us));
    row("layernorm_adaln", "(2,256,1024)", "float32 out", us, "");
    BenchOp r = o;
    r.kind = OP_RES_LN;
    TENSOR(&r.c, hdt, 0, 2, 256, 1024);
    TENSOR(&r.e, KT_F32, 1.f, 2, 256, 1024);
    TENSOR(&r.f, KT_F32, 0.1f, 2, 1024);
    KT_TRY(time_op(b, b->be, &r, 50, &us));
    char variant[32];
    snprintf(variant, sizeof variant, "%s out", kt_dtype_name(hdt));
    row("gated_residual_layernorm_adaln", "(2,256,1024)", variant, us, "");
    release(b, base);
    return KT_OK;
}

// VAR's attention step (prep + attention, fused on CUDA with a 16-bit matmul dtype) against the two separate ops, at
// batch 1 (CFG rows 2: scales 6 and 9) and 32 (rows 64).
static KtStatus family_var_attention(Bench *b) {
    KtDType hdt = b->be->matmul_dtype;
    for (int i = 0; i < 3; i++) {
        int base = b->nbuf;
        int64_t B2 = i == 2 ? 64 : 2, T = i ? 256 : 64, t0 = i ? 424 : 91, L = 680;
        BenchOp o = {.kind = OP_VAR_ATTN, .kv = t0};
        TENSOR(&o.a, KT_F32, 0, B2, 16, T, 64);
        TENSOR(&o.b, KT_F32, 0.1f, B2, 16, L, 64);
        TENSOR(&o.c, KT_F32, 1.f, B2, 16, L, 64);
        TENSOR(&o.d, KT_F32, 1.f, B2, T, 3 * 1024);
        TENSOR(&o.e, hdt, 0, B2, T, 1024);
        TENSOR(&o.f, KT_F32, 1.f, 16);
        TENSOR(&o.g, KT_F32, 0, B2, T, 1024);
        char shape[64], variant[48];
        snprintf(shape, sizeof shape, "B2=%lld T=%lld kv=%lld", (long long)B2, (long long)T, (long long)(t0 + T));
        double us;
        KT_TRY(time_op(b, b->be, &o, 20, &us));
        snprintf(variant, sizeof variant, "kt_var_attention, %s out", kt_dtype_name(hdt));
        row("var_attention", shape, variant, us, "");
        o.kind = OP_PREP_ATTN;
        KT_TRY(time_op(b, b->be, &o, 20, &us));
        row("var_attention", shape, "kt_var_attn_prep + kt_attention, float32 out", us, "");
        release(b, base);
    }
    return KT_OK;
}

// LlamaGen GPT-B's per-token step (C 768, 12 heads of 64, FFN 2 x 2048, V 16384) at batch 1, 16 and 32 (CFG rows 2B,
// one token each, at position 200 of a 264-row cache): one layer's ops with the 16-bit GEMM inputs the model uses,
// then the head, CFG and the sampler. The last row adds them up as 12 layers + head: the step's op time without the
// gaps between kernels.
typedef struct {
    const char *name;
    BenchOp o;
    bool per_layer;  // repeated in each of the 12 layers (else once per step)
} StepOp;

static KtStatus family_llamagen(Bench *b) {
    KtDType hdt = b->be->matmul_dtype;
    const int64_t C = 768, NH = 12, HS = 64, F = 2048, V = 16384, Tcap = 264, pos = 200, layers = 12;
    static const int64_t batches[] = {1, 16, 32};  // rows 2, 32 (SJD's window), 64 (w2 too wide to fuse)
    for (int bi = 0; bi < 3; bi++) {
        int64_t B = batches[bi], R = 2 * B;
        int base = b->nbuf;
        KtTensor x, xn, wln, wqkv, qkv, attn, wo, proj, w13, h13, gate, w2, whead, logits, guided;
        TENSOR(&x, KT_F32, 1.f, R, 1, C);          // the residual stream
        TENSOR(&proj, KT_F32, 0.1f, R, 1, C);      // a sub-block's output
        TENSOR(&xn, hdt, 0, R, 1, C);              // normalised: the next GEMM's input
        TENSOR(&wln, KT_F32, 1.f, C);
        TENSOR(&wqkv, hdt, 0.03f, 3 * C, C);
        TENSOR(&qkv, KT_F32, 0, R, 1, 3 * C);
        TENSOR(&attn, hdt, 0, R, 1, C);
        TENSOR(&wo, hdt, 0.03f, C, C);
        TENSOR(&w13, hdt, 0.03f, 2 * F, C);
        TENSOR(&h13, KT_F32, 1.f, R, 1, 2 * F);
        TENSOR(&gate, hdt, 0, R, 1, F);
        TENSOR(&w2, hdt, 0.03f, C, F);
        TENSOR(&whead, hdt, 0.03f, V, C);
        TENSOR(&logits, KT_F32, 0, R, 1, V);
        TENSOR(&guided, KT_F32, 0, B, 1, V);
        BenchOp att = {.kind = OP_LLAMA_ATTN, .d = qkv, .e = attn};
        TENSOR(&att.a, KT_F32, 0, R, NH, 1, HS);       // q
        TENSOR(&att.b, hdt, 0.3f, R, NH, Tcap, HS);  // k cache (the GEMM input dtype, as the model's)
        TENSOR(&att.c, hdt, 1.f, R, NH, Tcap, HS);   // v cache
        TENSOR(&att.f, KT_F32, 1.f, Tcap, HS / 2, 2);   // rope table
        TENSOR(&att.g, KT_I32, (float)pos, R, 1);       // positions
        BenchOp smp = {.kind = OP_SAMPLE_LLAMA, .a = guided, .sp = smp_params_default()};
        smp.sp.top_k = 2000;
        TENSOR(&smp.b, KT_I64, 0, B);
        TENSOR(&smp.c, KT_I32, 0, B, 1);
        TENSOR(&smp.d, KT_I32, (float)pos, B, 1);
        const StepOp ops[] = {
            {"rmsnorm_linear qkv 768->2304", {.kind = OP_RMSNORM_LINEAR, .a = x, .b = wln, .c = qkv, .d = wqkv, .e = xn},
             true},
            {"llama_attention (rope, cache rows, attention)", att, true},
            {"linear_residual proj 768->768", {.kind = OP_LINEAR_RESIDUAL, .a = x, .b = attn, .d = wo, .e = proj}, true},
            {"rmsnorm_linear_swiglu w1|w3 768->4096",
             {.kind = OP_RMSNORM_LINEAR_SWIGLU, .a = x, .b = wln, .c = gate, .d = w13, .e = xn, .f = h13}, true},
            {"linear_residual w2 2048->768", {.kind = OP_LINEAR_RESIDUAL, .a = x, .b = gate, .d = w2, .e = proj}, true},
            {"rmsnorm_linear head 768->16384", {.kind = OP_RMSNORM_LINEAR, .a = x, .b = wln, .c = logits, .d = whead,
                                                .e = xn}, false},
            {"cfg_combine", {.kind = OP_CFG, .a = logits, .c = guided}, false},
            {"sample_llama top-k 2000", smp, false},
        };
        char shape[48], variant[48], total[64];
        snprintf(shape, sizeof shape, "GPT-B step, batch %lld (rows %lld)", (long long)B, (long long)R);
        snprintf(variant, sizeof variant, "%s GEMM inputs", kt_dtype_name(hdt));
        double step = 0;
        for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
            double us;
            KT_TRY(time_op(b, b->be, &ops[i].o, 50, &us));
            row(ops[i].name, shape, ops[i].per_layer ? variant : "", us, ops[i].per_layer ? "x 12 layers" : "");
            step += ops[i].per_layer ? layers * us : us;
        }
        snprintf(total, sizeof total, "x 256 tokens: %.1f ms per batch", step * 256 * 1e-3);
        row("step: the rows above, 12 layers + head", shape, variant, step, total);
        release(b, base);
    }
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------ entry
static const char *const k_families[] = {"linear", "attention", "sample", "decoder", "norm", "var_attention",
                                         "llamagen"};
#define N_FAMILIES (int)(sizeof k_families / sizeof *k_families)

bool bench_ops_parse(const char *list, bool on[BENCH_OPS_FAMILIES]) {
    for (int i = 0; i < N_FAMILIES; i++) on[i] = !strcmp(list, "all");
    if (!strcmp(list, "all")) return true;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        int hit = -1;
        for (int i = 0; i < N_FAMILIES; i++)
            if (strlen(k_families[i]) == n && !strncmp(p, k_families[i], n)) hit = i;
        if (hit < 0) return false;
        on[hit] = true;
        p += n + (p[n] == ',');
    }
    return true;
}

KtStatus bench_ops_run(KtBackend *be, const bool on[BENCH_OPS_FAMILIES], int reps) {
    Bench bench = {.be = be, .reps = reps, .cuda = be->device == KT_CUDA, .rng = 0x9E3779B97F4A7C15ull}, *b = &bench;
    KtBackend lt_only = {0}, small_16 = {0};  // same device, the other small-M GEMM choices (ARGEN_CUDA_SMALL_M)
    KtStatus s = KT_OK;
    bool alt = b->cuda && be->matmul_dtype != KT_F32 && on[0];
    if (alt) {
        const char *prev = getenv("ARGEN_CUDA_SMALL_M");
        char *saved = prev ? strdup(prev) : NULL;
        setenv("ARGEN_CUDA_SMALL_M", "0", 1);
        s = kt_backend_cuda_init(&lt_only, 0);
        setenv("ARGEN_CUDA_SMALL_M", "16", 1);
        if (s == KT_OK) s = kt_backend_cuda_init(&small_16, 0);
        if (saved) setenv("ARGEN_CUDA_SMALL_M", saved, 1);
        else unsetenv("ARGEN_CUDA_SMALL_M");
        free(saved);
        if (s == KT_OK) s = kt_backend_set_matmul_dtype(&lt_only, be->matmul_dtype);
        if (s == KT_OK) s = kt_backend_set_matmul_dtype(&small_16, be->matmul_dtype);
    }
    printf("argen bench: ops at VAR-d16 and GPT-B shapes on %s, matmul dtype %s, %s, best of %d\n"
           "| op | shape | variant | us / call | rate |\n|---|---|---|---|---|\n",
           be->name, kt_dtype_name(be->matmul_dtype), b->cuda ? "up to 50 calls per graph replay" : "eager calls",
           reps);
    if (s == KT_OK && on[0]) s = family_linear(b, alt ? &lt_only : NULL, alt ? &small_16 : NULL);
    if (s == KT_OK && on[1]) s = family_attention(b);
    if (s == KT_OK && on[2]) s = family_sample(b);
    if (s == KT_OK && on[3]) s = family_decoder(b);
    if (s == KT_OK && on[4]) s = family_norm(b);
    if (s == KT_OK && on[5]) s = family_var_attention(b);
    if (s == KT_OK && on[6]) s = family_llamagen(b);
    release(b, 0);
    if (lt_only.ops) kt_backend_free(&lt_only);
    if (small_16.ops) kt_backend_free(&small_16);
    return s;
}
