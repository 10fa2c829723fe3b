// Runs VAR's attention kernels (kernels/cuda/attention_flash.cu: flash_f16_kernel with PREP off/on, flash_f32_kernel;
// kernels/cuda/attention.cu: var_attn_prep_kernel, split_qkv_kernel, the GEMM fallback's softmax + merge_heads) through
// their real launchers (cuda_attention, cuda_var_attention, cuda_split_qkv_heads), emulated on the CPU, against the CPU
// backend of libargen.a (kt_attention, kt_var_attention, kt_split_qkv_heads).
//   test_var_attn [quick|full|asan|mut|selftest] [-v] [--only=I,J,...]   (I: 0-based case number in the set)
#include <cinttypes>

#include "emu_shim_var.h"

static KtBackend g_cpu, g_gpu;
static emu_k::CudaImpl g_ci = {132, 232448, nullptr};  // H100 SXM: 132 SMs, 227 KiB opt-in shared memory
static long g_fail = 0, g_cases = 0;
static bool g_verbose = false;
static std::vector<int> g_modes = {emu::FORWARD, emu::GREEDY, emu::GREEDY_REV, emu::RANDOM};
static std::vector<int> g_only;  // --only=I,J: run only these cases of the set (0-based, the selftest not counted)
static int g_index = -1;
static bool skip_case() {
    g_index++;
    return !g_only.empty() && std::find(g_only.begin(), g_only.end(), g_index) == g_only.end();
}
static const float LN100 = 4.605170249938965f;

// tests/tolerances.h TOL_ATTN_F16 (the GPU tests' fp16 tensor-core attention tolerance: |d| <= atol + rtol |ref|)
static const double ATTN_F16_ATOL = 1e-2, ATTN_F16_RTOL = 1e-2;

// ------------------------------------------------------------------------------------------------- helpers
struct Rng {
    std::mt19937 g;
    explicit Rng(uint32_t s) : g(s) {}
    float normal() { return std::normal_distribution<float>(0.f, 1.f)(g); }
    int uni(int a, int b) { return std::uniform_int_distribution<int>(a, b)(g); }
};
static uint32_t fbits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static float half_round(float x) { return __half2float(__float2half_rn(x)); }
static void check_ok(KtStatus s, const char *what) {
    if (s != KT_OK) {
        fprintf(stderr, "%s failed: %s\n", what, kt_last_error());
        exit(2);
    }
}
static void l2n(float *x, int n, float s = 1.f) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float nrm = std::max((float)sqrt(ss), 1e-12f);
    for (int i = 0; i < n; i++) x[i] = x[i] / nrm * s;
}

// kernel names from the cudaFuncSetAttribute calls the launchers make
static std::map<const void *, std::string> g_names;
template <int D, int BK, int NW, typename OT, bool PREP> static void reg1(const char *ot) {
    char b[64];
    snprintf(b, sizeof b, "f16<%d,nw%d,%s%s>", D, NW, ot, PREP ? ",PREP" : "");
    g_names[(const void *)&emu_k::flash_f16_kernel<D, BK, NW, OT, PREP>] = b;
}
template <int D, int BK, int NW> static void reg2() {
    reg1<D, BK, NW, float, false>("f32"), reg1<D, BK, NW, __nv_bfloat16, false>("bf16");
    reg1<D, BK, NW, __half, false>("f16"), reg1<D, BK, NW, float, true>("f32");
    reg1<D, BK, NW, __nv_bfloat16, true>("bf16"), reg1<D, BK, NW, __half, true>("f16");
}
static void reg_names() {
    reg2<64, 64, 1>(), reg2<64, 64, 4>(), reg2<64, 64, 8>(), reg2<128, 32, 1>(), reg2<128, 32, 4>(), reg2<128, 32, 8>();
    g_names[(const void *)&emu_k::flash_f32_kernel<32>] = "f32<32>";
    g_names[(const void *)&emu_k::flash_f32_kernel<64>] = "f32<64>";
    g_names[(const void *)&emu_k::flash_f32_kernel<128>] = "f32<128>";
}
// the shared memory the kernel's layout needs (computed here independently of the launcher)
static size_t f16_layout_bytes(int D, int NW) {
    int BK = D == 64 ? 64 : 32, BQ = 16 * NW;
    return (size_t)4 * BK * D * 4 + (size_t)(2 * BK + BQ) * (D + 8) * 2;  // Kf, Vf [2][BK][D] f32; Kh, Vh, Qh halves
}
static size_t f32_layout_bytes(int D) { return (size_t)(32 * D + 64 * (D + 4) + 64 * D + 32 * (64 + 4)) * 4; }

// ---------------------------------------------------------------------------------------------- the cases
enum Op { OP_ATT = 0, OP_VAR };
enum BiasKind { BI_NONE = 0, BI_BLOCK, BI_RAND };
static const char *bias_name[] = {"-", "block", "rand"};
enum Special { SP_NONE = 0, SP_NAN_OLD, SP_NAN_NEW };
static const char *sp_name[] = {"-", "nan-old-key", "nan-new-key"};

struct Case {
    Op op;
    int B, NH, Tq, t0, Tcap, HS;  // kv = t0 + Tq (OP_ATT: t0 = the keys before the queries' own)
    KtDType mm, odt;              // backend matmul dtype (F32: fp32 kernel; BF16/F16: tensor cores), output dtype
    BiasKind bias;
    float hsl_max;                // head scales exp(hsl) with hsl from -1.2 to hsl_max (> ln 100: clamped)
    Special sp;
    int sms;                      // the device's SM count (the launcher's nw and fuse choice read it)
    bool rand_style;              // OP_ATT: N(0,1) q/k, scale 3/sqrt(HS) (the GPU tests' inputs) instead of VAR's
    const char *want;             // a substring the path taken must contain (or NULL)
    uint32_t seed;
};

// VAR's token layout (patch_nums 1,2,3,4,5,6,8,10,13,16): level of position p
static const int VAR_BEGIN[] = {0, 1, 5, 14, 30, 55, 91, 155, 255, 424, 680};
static int level_of(int p) {
    for (int l = 0; l < 10; l++)
        if (p < VAR_BEGIN[l + 1]) return l;
    return 10 + (p - 680) / 7;  // beyond VAR's 680 tokens: more blocks of 7
}

struct Inputs {
    std::vector<float> q, k, v, qkv, hsl, bias;
    float scale;
};

static Inputs make_inputs(const Case &c) {
    Rng r(c.seed);
    Inputs in;
    int kv = c.t0 + c.Tq, HS = c.HS, C = c.NH * HS;
    in.hsl.resize(c.NH);
    for (int h = 0; h < c.NH; h++) in.hsl[h] = c.NH == 1 ? c.hsl_max : -1.2f + (c.hsl_max + 1.2f) * h / (c.NH - 1);
    size_t ncache = (size_t)c.B * c.NH * c.Tcap * HS;
    in.k.assign(ncache, NAN), in.v.assign(ncache, NAN);  // rows >= kv stay NaN: never read
    int filled = c.op == OP_VAR ? c.t0 : kv;             // OP_VAR: rows [t0, kv) are written by the op (NaN before)
    for (int bh = 0; bh < c.B * c.NH; bh++)
        for (int j = 0; j < filled; j++) {
            float *kr = &in.k[((size_t)bh * c.Tcap + j) * HS], *vr = &in.v[((size_t)bh * c.Tcap + j) * HS];
            for (int d = 0; d < HS; d++) kr[d] = r.normal(), vr[d] = r.normal();
            if (!c.rand_style) l2n(kr, HS);  // earlier steps' keys are L2-normalised
        }
    if (c.op == OP_ATT) {
        in.q.resize((size_t)c.B * c.NH * c.Tq * HS);
        for (int bh = 0; bh < c.B * c.NH; bh++)
            for (int t = 0; t < c.Tq; t++) {
                float *qr = &in.q[((size_t)bh * c.Tq + t) * HS];
                for (int d = 0; d < HS; d++) qr[d] = r.normal();
                if (!c.rand_style) l2n(qr, HS, expf(std::min(in.hsl[bh % c.NH], LN100)));
            }
        in.scale = c.rand_style ? 3.f / sqrtf((float)HS) : 1.f;
    } else {
        in.qkv.resize((size_t)c.B * c.Tq * 3 * C);
        for (auto &x : in.qkv) x = 2.f * r.normal();
        in.q.assign((size_t)c.B * c.NH * c.Tq * HS, NAN);  // written by the op
        in.scale = 1.f;
    }
    if (c.sp == SP_NAN_OLD) {  // b 0, head 0, an old key
        int j = c.t0 > 0 ? c.t0 / 2 : 0;
        in.k[(size_t)j * HS + 5] = NAN;
    }
    if (c.sp == SP_NAN_NEW) {  // b 0, the last new token's key, head 0 (OP_VAR: in qkv, normalised into a NaN row)
        if (c.op == OP_VAR) in.qkv[(size_t)(c.Tq - 1) * 3 * C + C + 3] = NAN;
        else in.k[(size_t)(kv - 1) * HS + 3] = NAN;
    }
    if (c.bias != BI_NONE) {
        in.bias.resize((size_t)c.Tq * kv);
        for (int i = 0; i < c.Tq; i++)
            for (int j = 0; j < kv; j++) {
                float &b = in.bias[(size_t)i * kv + j];
                if (c.bias == BI_BLOCK) b = level_of(j) <= level_of(c.t0 + i) ? 0.f : -INFINITY;
                else b = ((i * 7 + j * 3) % 5 == 0 || i == c.Tq / 2) ? -INFINITY : 2.f * r.normal();
            }
    }
    return in;
}

struct Result {
    std::vector<float> out;  // float32 view of the output
    std::vector<uint16_t> out16;
    std::vector<float> q, k, v;
    std::string path;
    long launches_smem_bad = 0;
    size_t smem_attr = 0, smem_touched = 0;
};

static void tensors(const Case &c, Inputs &in, Result &R, KtDevice dv, KtTensor *q, KtTensor *k, KtTensor *v,
                    KtTensor *qkv, KtTensor *hsl, KtTensor *bias) {
    int kv = c.t0 + c.Tq, C = c.NH * c.HS;
    *q = kt_tensor4(R.q.data(), KT_F32, dv, c.B, c.NH, c.Tq, c.HS);
    *k = kt_tensor4(R.k.data(), KT_F32, dv, c.B, c.NH, c.Tcap, c.HS);
    *v = kt_tensor4(R.v.data(), KT_F32, dv, c.B, c.NH, c.Tcap, c.HS);
    if (c.op == OP_VAR) {
        *qkv = kt_tensor3(in.qkv.data(), KT_F32, dv, c.B, c.Tq, 3 * C);
        *hsl = kt_tensor1(in.hsl.data(), KT_F32, dv, c.NH);
    }
    if (c.bias != BI_NONE) *bias = kt_tensor2(in.bias.data(), KT_F32, dv, c.Tq, kv);
}

static Result run_cpu(const Case &c, Inputs &in) {
    Result R;
    int kv = c.t0 + c.Tq;
    R.q = in.q, R.k = in.k, R.v = in.v;
    R.out.assign((size_t)c.B * c.Tq * c.NH * c.HS, 0.f);
    KtTensor q, k, v, qkv, hsl, bias;
    tensors(c, in, R, KT_CPU, &q, &k, &v, &qkv, &hsl, &bias);
    KtTensor out = kt_tensor3(R.out.data(), KT_F32, KT_CPU, c.B, c.Tq, c.NH * c.HS);
    const KtTensor *bp = c.bias != BI_NONE ? &bias : nullptr;
    if (c.op == OP_ATT) check_ok(kt_attention(&g_cpu, &out, &q, &k, &v, kv, bp, in.scale), "cpu kt_attention");
    else check_ok(kt_var_attention(&g_cpu, &out, &q, &k, &v, &qkv, &hsl, c.t0, bp), "cpu kt_var_attention");
    return R;
}

static void poison(void *p, size_t bytes, int esz) {
    if (esz == 4) {
        uint32_t v = 0x7fc0dead;
        for (size_t i = 0; i < bytes / 4; i++) memcpy((char *)p + 4 * i, &v, 4);
    } else {
        uint16_t v = 0x7e01;  // a quiet NaN in fp16 (and in bf16: exponent all ones, mantissa != 0)
        for (size_t i = 0; i < bytes / 2; i++) memcpy((char *)p + 2 * i, &v, 2);
    }
}

static Result run_emu(const Case &c, Inputs &in, int mode, KtDType odt) {
    emu::g_mode = mode;
    g_ci.sm_count = c.sms;
    g_gpu.matmul_dtype = c.mm;
    Result R;
    int kv = c.t0 + c.Tq;
    size_t no = (size_t)c.B * c.Tq * c.NH * c.HS;
    R.q = in.q, R.k = in.k, R.v = in.v;
    if (c.op == OP_VAR) poison(R.q.data(), R.q.size() * 4, 4);
    KtTensor out;
    if (odt != KT_F32) {
        R.out16.resize(no);
        poison(R.out16.data(), no * 2, 2);
        out = kt_tensor3(R.out16.data(), odt, KT_CUDA, c.B, c.Tq, c.NH * c.HS);
    } else {
        R.out.resize(no);
        poison(R.out.data(), no * 4, 4);
        out = kt_tensor3(R.out.data(), KT_F32, KT_CUDA, c.B, c.Tq, c.NH * c.HS);
    }
    KtTensor q, k, v, qkv, hsl, bias;
    tensors(c, in, R, KT_CUDA, &q, &k, &v, &qkv, &hsl, &bias);
    const KtTensor *bp = c.bias != BI_NONE ? &bias : nullptr;
    emu_k::g_attr.clear();
    long gemm0 = emu_k::g_gemm_calls;
    emu_mma::g_max_smem_end = 0;
    if (c.op == OP_ATT) check_ok(emu_k::cuda_attention(&g_gpu, &out, &q, &k, &v, kv, bp, in.scale), "emu cuda_attention");
    else check_ok(emu_k::cuda_var_attention(&g_gpu, &out, &q, &k, &v, &qkv, &hsl, c.t0, bp), "emu cuda_var_attention");
    emu_mma::end_launch();
    R.smem_touched = emu_mma::g_max_smem_end;
    // path: the kernels that set their shared-memory attribute; the prep kernel and the GEMM fallback do not
    std::string p;
    for (auto &a : emu_k::g_attr) {
        auto it = g_names.find(a.fn);
        std::string n = it == g_names.end() ? "?" : it->second;
        p += (p.empty() ? "" : "+") + n;
        size_t want = n.rfind("f16<", 0) == 0 ? f16_layout_bytes(c.HS, n.find("nw1") != std::string::npos ? 1
                                                                        : n.find("nw4") != std::string::npos ? 4 : 8)
                                              : f32_layout_bytes(c.HS);
        R.smem_attr = a.value;
        if ((size_t)a.value != want || R.smem_touched > (size_t)a.value) R.launches_smem_bad++;
    }
    if (emu_k::g_gemm_calls != gemm0) p += (p.empty() ? "" : "+") + std::string("gemm");
    if (c.op == OP_VAR && p.find("PREP") == std::string::npos) p = "prep+" + p;
    R.path = p;
    if (odt != KT_F32) {
        R.out.resize(no);
        for (size_t i = 0; i < no; i++)
            R.out[i] = odt == KT_BF16 ? kt_bf16_to_f32(R.out16[i]) : kt_f16_to_f32(R.out16[i]);
    }
    return R;
}

// fp16 tensor-core reference: the kernel's roundings of q (times scale log2 e), k, v to fp16, then exact scores, an
// exact base-2 softmax and P.V in double. q/k/v: the values the kernel used (OP_VAR: the q and caches it wrote).
static std::vector<double> ref_f16(const Case &c, const Inputs &in, const Result &E) {
    int kv = c.t0 + c.Tq, HS = c.HS, C = c.NH * HS;
    float qs = in.scale * 1.4426950408889634f;
    std::vector<double> out((size_t)c.B * c.Tq * C);
    std::vector<double> s(kv), kh((size_t)kv * HS), vh((size_t)kv * HS), qh(HS);
    for (int b = 0; b < c.B; b++)
        for (int h = 0; h < c.NH; h++) {
            size_t bh = (size_t)b * c.NH + h;
            for (size_t i = 0; i < (size_t)kv * HS; i++)
                kh[i] = half_round(E.k[bh * c.Tcap * HS + i]), vh[i] = half_round(E.v[bh * c.Tcap * HS + i]);
            for (int t = 0; t < c.Tq; t++) {
                for (int d = 0; d < HS; d++) qh[d] = half_round(E.q[(bh * c.Tq + t) * HS + d] * qs);
                double m = -INFINITY;
                bool nan = false;
                for (int j = 0; j < kv; j++) {
                    double x = 0;
                    for (int d = 0; d < HS; d++) x += qh[d] * kh[(size_t)j * HS + d];
                    if (c.bias != BI_NONE) x += (double)(float)(in.bias[(size_t)t * kv + j] * 1.4426950408889634f);
                    s[j] = x;
                    nan |= x != x;
                    if (x > m) m = x;
                }
                double *o = &out[((size_t)b * c.Tq + t) * C + h * HS];
                for (int d = 0; d < HS; d++) o[d] = nan ? NAN : 0.0;
                if (nan || m == -INFINITY) continue;
                double l = 0;
                for (int j = 0; j < kv; j++) {
                    double p = exp2(s[j] - m);
                    l += p;
                    for (int d = 0; d < HS; d++) o[d] += p * vh[(size_t)j * HS + d];
                }
                for (int d = 0; d < HS; d++) o[d] /= l;
            }
        }
    return out;
}

static const char *dt_name(KtDType d) { return d == KT_F32 ? "f32" : d == KT_BF16 ? "bf16" : "f16"; }

static void run_case(const Case &c) {
    if (skip_case()) return;
    g_cases++;
    Inputs in = make_inputs(c);
    Result ref = run_cpu(c, in);
    long errs0 = emu::g_errors;
    Result E = run_emu(c, in, g_modes[0], c.odt);
    long sched = 0;
    for (size_t mi = 1; mi < g_modes.size(); mi++) {
        Result E2 = run_emu(c, in, g_modes[mi], c.odt);
        for (size_t i = 0; i < E.out.size(); i++) sched += fbits(E.out[i]) != fbits(E2.out[i]);
        for (size_t i = 0; i < E.q.size(); i++) sched += fbits(E.q[i]) != fbits(E2.q[i]);
        for (size_t i = 0; i < E.k.size(); i++) sched += fbits(E.k[i]) != fbits(E2.k[i]);
        for (size_t i = 0; i < E.v.size(); i++) sched += fbits(E.v[i]) != fbits(E2.v[i]);
        if (E2.path != E.path) sched++;
    }
    // a 16-bit output must be the float32 output (same kernel family, OT = float) rounded once
    long cons = -1;  // -1: not run (large cases)
    if (c.odt != KT_F32 && g_modes.size() > 1 && (double)c.B * c.NH * c.Tq * (c.t0 + c.Tq) <= 1.5e6) {
        Result E32 = run_emu(c, in, emu::FORWARD, KT_F32);
        cons = 0;
        for (size_t i = 0; i < E.out16.size(); i++) {
            uint16_t want = c.odt == KT_BF16 ? kt_f32_to_bf16(E32.out[i]) : kt_f32_to_f16(E32.out[i]);
            bool nw = E32.out[i] != E32.out[i], ng = E.out[i] != E.out[i];
            if (nw || ng) cons += nw != ng;
            else cons += want != E.out16[i];
        }
    }
    bool tc = E.path.find("f16<") != std::string::npos;  // tensor-core kernel
    bool gemm = E.path.find("gemm") != std::string::npos;
    std::vector<double> r16;
    if (tc) r16 = ref_f16(c, in, E);
    double out_rnd = c.odt == KT_BF16 ? 1.0 / 256 : c.odt == KT_F16 ? 1.0 / 2048 : 0;  // the output's own rounding
    int C = c.NH * c.HS;
    long nan_mm = 0, nan_rows = 0, bad_cpu = 0, bad_16 = 0, masked_nonzero = 0, n = 0;
    double max_cpu = 0, max_cpu_rel = 0, max_16 = 0, vmax = 0;
    for (int bh = 0; bh < c.B * c.NH; bh++)  // |v| over the keys in use (OP_VAR: the rows the op wrote included)
        for (size_t i = 0; i < (size_t)(c.t0 + c.Tq) * c.HS; i++) {
            float x = ref.v[(size_t)bh * c.Tcap * c.HS + i];
            if (x == x) vmax = std::max(vmax, (double)fabsf(x));
        }
    bool gate_cpu = !(tc && c.hsl_max > 1.5f);  // fp16 scores up to 100: the GPU tests compare q/caches only
    for (size_t i = 0; i < ref.out.size(); i++) {
        double a = E.out[i], rc = ref.out[i];
        n++;
        if ((a != a) || (rc != rc)) {
            nan_mm += (a != a) != (rc != rc);
            nan_rows += (a != a) && (rc != rc);
            continue;
        }
        double d = fabs(a - rc);
        max_cpu = std::max(max_cpu, d);
        if (fabs(rc) > 1e-3) max_cpu_rel = std::max(max_cpu_rel, d / fabs(rc));
        double tol = tc ? ATTN_F16_ATOL + ATTN_F16_RTOL * fabs(rc)
                        : 2e-6 * std::max(1.0, vmax) + 1e-5 * fabs(rc) + out_rnd * fabs(rc);
        if (d > tol && gate_cpu) bad_cpu++;
        if (tc) {
            double d16 = fabs(a - r16[i]);
            max_16 = std::max(max_16, d16);
            if (d16 > 2e-3 * vmax + (out_rnd + 1e-5) * fabs(r16[i])) bad_16++;
        }
        if (c.bias != BI_NONE) {  // fully masked query rows: exactly zero
            int t = (int)(i / C % c.Tq), kv = c.t0 + c.Tq;
            bool all = true;
            for (int j = 0; j < kv && all; j++) all = in.bias[(size_t)t * kv + j] == -INFINITY;
            if (all && (a != 0 || rc != 0)) masked_nonzero++;
        }
    }
    // q and the caches (OP_VAR writes them; OP_ATT must leave them alone)
    long qbad = 0, kbad = 0, vbad = 0, qbits = 0, kbits = 0;
    auto cmp = [](const std::vector<float> &a, const std::vector<float> &b, long &bad, long *bits) {
        for (size_t i = 0; i < a.size(); i++) {
            bool na = a[i] != a[i], nb = b[i] != b[i];
            if (na || nb) {
                bad += na != nb;
                continue;
            }
            if (bits) *bits += fbits(a[i]) != fbits(b[i]);
            if (fabs((double)a[i] - b[i]) > 1e-6 + 1e-5 * fabs((double)b[i])) bad++;  // TOL_ELEMWISE_F32
        }
    };
    cmp(E.q, ref.q, qbad, &qbits);
    cmp(E.k, ref.k, kbad, &kbits);
    for (size_t i = 0; i < E.v.size(); i++) vbad += fbits(E.v[i]) != fbits(ref.v[i]);  // v: copied exactly
    long emu_errs = emu::g_errors - errs0;
    bool nan_case = c.sp != SP_NONE;
    bool want_ok = !c.want || E.path.find(c.want) != std::string::npos;
    bool pass = nan_mm == 0 && (!nan_case || nan_rows > 0) && (nan_case || nan_rows == 0) && bad_cpu == 0 &&
                bad_16 == 0 && masked_nonzero == 0 && sched == 0 && cons <= 0 && qbad + kbad + vbad == 0 &&
                emu_errs == 0 && E.launches_smem_bad == 0 && want_ok && (tc || gemm || c.mm == KT_F32 || true);
    if (!pass) g_fail++;
    printf("%-4s %s B%d NH%-2d Tq%-3d t0 %-3d kv%-3d Tcap%-3d HS%-3d mm %-4s out %-4s bias %-5s hs<=e^%.1f sms%-3d %-11s"
           " | %-24s | cpu max_abs %.1e rel %.1e%s",
           pass ? "ok" : "FAIL", c.op == OP_ATT ? (c.rand_style ? "att*" : "att ") : "var ", c.B, c.NH, c.Tq, c.t0,
           c.t0 + c.Tq, c.Tcap, c.HS, dt_name(c.mm), dt_name(c.odt), bias_name[c.bias], c.hsl_max, c.sms,
           sp_name[c.sp], E.path.c_str(), max_cpu, max_cpu_rel, gate_cpu ? "" : " (not gated)");
    if (tc) printf(" | f16-ref max_abs %.1e (vmax %.1f)", max_16, vmax);
    printf(" | nan rows %ld mm %ld | masked!=0 %ld | sched %ld", nan_rows, nan_mm, masked_nonzero, sched);
    if (c.odt != KT_F32 && cons >= 0) printf(" | %s-vs-f32 %ld", dt_name(c.odt), cons);
    if (c.op == OP_VAR) printf(" | q/k/v bad %ld/%ld/%ld (bitdiff q %ld k %ld)", qbad, kbad, vbad, qbits, kbits);
    else if (qbad + kbad + vbad) printf(" | inputs changed %ld/%ld/%ld", qbad, kbad, vbad);
    if (E.smem_attr) printf(" | smem %zu (touched %zu)%s", E.smem_attr, E.smem_touched, E.launches_smem_bad ? " BAD" : "");
    if (!want_ok) printf(" | path should contain '%s'", c.want);
    printf(" | emuerr %ld\n", emu_errs);
    fflush(stdout);
    if (bad_cpu && g_verbose) fprintf(stderr, "  %ld elements beyond the CPU tolerance\n", bad_cpu);
    if (bad_16 && g_verbose) fprintf(stderr, "  %ld elements beyond the fp16 reference tolerance\n", bad_16);
}

// ------------------------------------------------------------------------------------ split_qkv (kt_split_qkv_heads)
static void run_split_case(int B, int T, int NH, int HS, int off, uint32_t seed) {
    if (skip_case()) return;
    g_cases++;
    Rng r(seed);
    int C = NH * HS;
    std::vector<float> qkv((size_t)B * T * 3 * C + off);
    for (auto &x : qkv) x = r.normal();
    size_t nh = (size_t)B * NH * T * HS;
    std::vector<float> rc(3 * nh);
    KtTensor X = kt_tensor3(qkv.data() + off, KT_F32, KT_CPU, B, T, 3 * C);
    KtTensor q = kt_tensor4(rc.data(), KT_F32, KT_CPU, B, NH, T, HS), k = kt_tensor4(rc.data() + nh, KT_F32, KT_CPU, B, NH, T, HS);
    KtTensor v = kt_tensor4(rc.data() + 2 * nh, KT_F32, KT_CPU, B, NH, T, HS);
    check_ok(kt_split_qkv_heads(&g_cpu, &q, &k, &v, &X), "cpu split");
    long d = 0, s = 0;
    std::vector<float> first;
    for (int mode : g_modes) {
        std::vector<float> e(3 * nh);
        poison(e.data(), e.size() * 4, 4);
        emu::g_mode = mode;
        KtTensor Xe = kt_tensor3(qkv.data() + off, KT_F32, KT_CUDA, B, T, 3 * C);
        KtTensor qe = kt_tensor4(e.data(), KT_F32, KT_CUDA, B, NH, T, HS), ke = kt_tensor4(e.data() + nh, KT_F32, KT_CUDA, B, NH, T, HS);
        KtTensor ve = kt_tensor4(e.data() + 2 * nh, KT_F32, KT_CUDA, B, NH, T, HS);
        check_ok(emu_k::cuda_split_qkv_heads(&g_gpu, &qe, &ke, &ve, &Xe), "emu split");
        for (size_t i = 0; i < e.size(); i++) d += fbits(e[i]) != fbits(rc[i]);
        if (first.empty()) first = e;
        else for (size_t i = 0; i < e.size(); i++) s += fbits(e[i]) != fbits(first[i]);
    }
    bool pass = d == 0 && s == 0;
    if (!pass) g_fail++;
    printf("%-4s split_qkv B%d T%d NH%d HS%d %s | bit differences %ld (sched %ld)\n", pass ? "ok" : "FAIL", B, T, NH, HS,
           off ? "unaligned (scalar kernel)" : "float4 kernel", d, s);
}

// ------------------------------------------------------------------ emulated PTX helpers vs the ISA's formulas
// PTX ISA 9.7.14.5.8 (mma.m16n8k16, .f16): groupID g = lane >> 2, threadID_in_group t = lane % 4;
//   A: a_i (i = 0..7, register i/2, low half = even i): row = g for 0 <= i < 2 || 4 <= i < 6, else g + 8;
//      col = 2t + (i & 1) (+ 8 for i >= 4).  B: b_i (i = 0..3): row = 2t + (i & 1) (+ 8 for i >= 2), col = g.
//   C: c_i: row = g (+ 8 for i >= 2), col = 2t + (i & 1).
// ldmatrix m8n8.x4: lanes 8m..8m+7 hold the row addresses of matrix m; lane l's register m = row l/4, elements
//   2(l%4), 2(l%4)+1 of matrix m (.trans: of the transposed matrix).
static void selftest() {
    g_cases++;
    long bad = 0;
    std::vector<uint16_t> M(16 * 16), N(16 * 16);  // row-major 16x16 fp16 test matrices
    Rng r(7);
    for (auto &x : M) x = kt_f32_to_f16((float)r.uni(-64, 64) / 16);
    for (auto &x : N) x = kt_f32_to_f16((float)r.uni(-64, 64) / 16);
    auto hv = [](uint32_t w, int hi) { return kt_f16_to_f32((uint16_t)(w >> (16 * hi))); };
    for (int mode : g_modes) {
        emu::g_mode = mode;
        emu::launch(dim3(1), dim3(32), 2 * 16 * 16 * 2, [&] {
            uint16_t *sm = (uint16_t *)emu::dyn_smem();
            int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
            for (int i = lane; i < 256; i += 32) sm[i] = M[i], sm[256 + i] = N[i];
            __syncthreads();
            uint32_t a[4], b[4], bt[4];
            ldsm_x4(a, sm + (lane & 15) * 16 + (lane >> 4) * 8);  // A operand from M (as the kernel's Q)
            ldsm_x4(b, sm + 256 + ((lane & 7) + (lane >> 4) * 8) * 16 + ((lane >> 3) & 1) * 8);  // B = N^T (K)
            ldsm_x4_t(bt, sm + 256 + ((lane & 7) + ((lane >> 3) & 1) * 8) * 16 + (lane >> 4) * 8);  // B = N (V)
            for (int i = 0; i < 8; i++) {
                int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8, col = 2 * t + (i & 1) + (i >= 4 ? 8 : 0);
                if (hv(a[i / 2], i & 1) != kt_f16_to_f32(M[row * 16 + col])) bad++;
            }
            for (int nt = 0; nt < 2; nt++)
                for (int i = 0; i < 4; i++) {
                    int k = 2 * t + (i & 1) + (i >= 2 ? 8 : 0), n = nt * 8 + g;
                    if (hv(b[2 * nt + i / 2], i & 1) != kt_f16_to_f32(N[n * 16 + k])) bad++;   // B[k][n] = N[n][k]
                    if (hv(bt[2 * nt + i / 2], i & 1) != kt_f16_to_f32(N[k * 16 + n])) bad++;  // B[k][n] = N[k][n]
                }
            for (int nt = 0; nt < 2; nt++) {  // C = M . N (n-tile nt), from the .trans fragments
                float c[4] = {0.25f, -0.5f, 1.f, 2.f};
                float c0[4] = {c[0], c[1], c[2], c[3]};
                mma16816(c, a, bt[2 * nt], bt[2 * nt + 1]);
                for (int i = 0; i < 4; i++) {
                    int row = g + (i >= 2 ? 8 : 0), col = nt * 8 + 2 * t + (i & 1);
                    double want = c0[i];
                    for (int k = 0; k < 16; k++)
                        want += (double)kt_f16_to_f32(M[row * 16 + k]) * kt_f16_to_f32(N[k * 16 + col]);
                    if (c[i] != (float)want) bad++;
                }
            }
        });
    }
    emu_mma::end_launch();
    // cp.async: poison until the wait, zero fill, groups retired oldest first
    long cbad = 0;
    std::vector<float> src(64);
    for (int i = 0; i < 64; i++) src[i] = (float)i;
    emu::launch(dim3(1), dim3(32), 64 * 4, [&] {
        float *sm = (float *)emu::dyn_smem();
        int l = threadIdx.x;
        if (l < 2) {
            cp_async16(sm + 4 * l, src.data() + 4 * l, 16);  // group 0
            cp_async_commit();
            cp_async16(sm + 8 + 4 * l, src.data() + 8 + 4 * l, 4 * l);  // group 1: 0 / 4 bytes, rest zero-filled
            cp_async_commit();
            cbad += sm[4 * l] == sm[4 * l];  // poison (NaN) before the wait
            cp_async_wait<1>();
            cbad += sm[4 * l + 1] != 4 * l + 1 || sm[8 + 4 * l] == sm[8 + 4 * l];
            cp_async_wait<0>();
            cbad += sm[8 + 4 * l] != (l ? 8.f + 4 * l : 0.f) || sm[9 + 4 * l] != 0.f;
        }
    });
    long pend = emu_mma::end_launch();
    bool pass = bad == 0 && cbad == 0 && pend == 0;
    if (!pass) g_fail++;
    printf("%-4s selftest: ldmatrix x4 / x4.trans and mma.m16n8k16 vs the PTX ISA fragment formulas: %ld mismatches; "
           "cp.async groups/zero-fill/poison: %ld\n", pass ? "ok" : "FAIL", bad, cbad);
}

// ----------------------------------------------------------------------------------------------------- sets
static const int STEP_TQ[] = {1, 4, 9, 16, 25, 36, 64, 100, 169, 256};
static uint32_t g_seed = 5000;

static Case mk(Op op, int B, int NH, int Tq, int t0, int Tcap, KtDType mm, KtDType odt, BiasKind bias = BI_NONE,
               float hsl_max = 1.5f, Special sp = SP_NONE, int sms = 132, const char *want = nullptr, int HS = 64) {
    return Case{op, B, NH, Tq, t0, Tcap, HS, mm, odt, bias, hsl_max, sp, sms, false, want, g_seed++};
}

static void quick_set() {
    // VAR-d16 steps (B = 2: batch 1 with CFG), fused one-warp blocks and the unfused 4-warp path, bf16 and f32 out
    for (int s : {0, 1, 2, 3, 6}) {
        int Tq = STEP_TQ[s], t0 = VAR_BEGIN[s];
        run_case(mk(OP_VAR, 2, 16, Tq, t0, 680, KT_BF16, s % 2 ? KT_F32 : KT_BF16, BI_NONE, 1.5f, SP_NONE, 132,
                    Tq <= 16 ? "nw1" : "prep+f16<64,nw4"));
    }
    // fused 4-warp / 8-warp blocks on a small device (the fuse rule: B*NH*qtiles >= 2*SMs)
    run_case(mk(OP_VAR, 2, 4, 36, 55, 100, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NONE, 2, "f16<64,nw4,bf16,PREP>"));
    run_case(mk(OP_VAR, 2, 2, 130, 20, 160, KT_F16, KT_F16, BI_NONE, 1.5f, SP_NONE, 1, "f16<64,nw8,f16,PREP>"));
    // head scales up to exp(ln 100) (one clamped head), the fp16 reference gates
    run_case(mk(OP_VAR, 2, 3, 25, 30, 80, KT_BF16, KT_F32, BI_NONE, 5.0f, SP_NONE, 132, "prep+f16<64,nw4"));
    run_case(mk(OP_VAR, 2, 3, 25, 30, 80, KT_BF16, KT_BF16, BI_NONE, 5.0f, SP_NONE, 1, "f16<64,nw4,bf16,PREP>"));
    run_case(mk(OP_ATT, 2, 3, 25, 30, 80, KT_F32, KT_F32, BI_NONE, 5.0f, SP_NONE, 132, "f32<64>"));
    // VAR-d30, batch 3 with CFG (B = 6), a first scale (fused one-warp blocks)
    run_case(mk(OP_VAR, 6, 30, 9, 5, 680, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NONE, 132, "nw1"));
    // masked (block-causal) training-style forward: t0 = 0, all 30 tokens of the first 4 levels; random bias
    run_case(mk(OP_VAR, 2, 3, 30, 0, 30, KT_BF16, KT_BF16, BI_BLOCK, 1.5f, SP_NONE, 132, "prep+f16<64,nw4"));
    run_case(mk(OP_ATT, 2, 3, 30, 0, 40, KT_BF16, KT_F32, BI_BLOCK));
    run_case(mk(OP_ATT, 2, 2, 20, 11, 40, KT_F32, KT_F32, BI_RAND, 1.5f, SP_NONE, 132, "f32<64>"));
    run_case(mk(OP_VAR, 2, 2, 9, 5, 20, KT_F16, KT_F16, BI_RAND, 1.5f, SP_NONE, 132, "f16<64,nw1,f16,PREP>"));
    // NaN keys (old: in the cache; new: in qkv), fused and unfused
    run_case(mk(OP_VAR, 2, 2, 4, 1, 10, KT_BF16, KT_F32, BI_NONE, 1.5f, SP_NAN_OLD));
    run_case(mk(OP_VAR, 2, 2, 9, 5, 20, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NAN_NEW));
    run_case(mk(OP_ATT, 2, 2, 20, 50, 80, KT_F32, KT_F32, BI_NONE, 1.5f, SP_NAN_OLD, 132, "f32<64>"));
    run_case(mk(OP_ATT, 2, 2, 20, 50, 80, KT_BF16, KT_BF16, BI_RAND, 1.5f, SP_NAN_NEW));
    // fp32 kernel on a VAR step (F32 backend: prep kernel + flash_f32), GEMM fallback (HS 40), split_qkv
    run_case(mk(OP_VAR, 2, 4, 16, 14, 40, KT_F32, KT_F32, BI_NONE, 1.5f, SP_NONE, 132, "prep+f32<64>"));
    run_case(mk(OP_ATT, 2, 2, 7, 5, 16, KT_BF16, KT_BF16, BI_RAND, 1.5f, SP_NONE, 132, "gemm", 40));
    run_case(mk(OP_ATT, 1, 2, 7, 5, 16, KT_F32, KT_F32, BI_NONE, 1.5f, SP_NONE, 132, "gemm", 40));
    run_split_case(2, 9, 4, 64, 0, 11), run_split_case(1, 5, 3, 10, 1, 12);
}

static void full_set() {
    // every VAR scale step, d16 (16 heads) and d30 (30 heads), batches 1-3 with CFG doubling (B = 2, 4, 6), bf16 out
    // (the next GEMM's input) and f32 out; the launcher picks fused/unfused and nw on H100's 132 SMs. The last steps
    // are costly to emulate (~13 ms per warp and key tile and schedule): d16 B2 for steps 8-10, d30 B6 for step 8
    // (fused 4-warp blocks at VAR's real size: 6*30*2 = 360 query tiles >= 2*132), B2 for step 9, step 10 left out.
    for (int d30 = 0; d30 < 2; d30++)
        for (int s = 0; s < 10 - d30; s++) {
            int NH = d30 ? 30 : 16, Tq = STEP_TQ[s], t0 = VAR_BEGIN[s];
            int B = s < 7 ? 2 * (1 + (s + d30) % 3) : d30 && s == 7 ? 6 : 2;
            const char *want = Tq <= 16 ? "nw1" : d30 && s == 7 ? "f16<64,nw4,f32,PREP>" : "prep+f16<64,nw4";
            run_case(mk(OP_VAR, B, NH, Tq, t0, 680, KT_BF16, s % 3 == 1 ? KT_F32 : KT_BF16, BI_NONE, 1.5f, SP_NONE, 132,
                        want));
        }
    // the fused 8-warp path (VAR-d30 batch 3's last step takes it on 132 SMs: too slow here; the same kernel at
    // a smaller grid on a 1-SM device)
    run_case(mk(OP_VAR, 2, 4, 256, 424, 680, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NONE, 1, "f16<64,nw8,bf16,PREP>"));
    // per-head scales up to exp(ln 100), heads clamped above it
    for (int s : {0, 4, 7})
        run_case(mk(OP_VAR, 2, 16, STEP_TQ[s], VAR_BEGIN[s], 680, KT_BF16, KT_F32, BI_NONE, 5.0f));
    // fused 4/8-warp blocks on small devices, fp16 output
    for (int sms : {1, 2, 8}) {
        run_case(mk(OP_VAR, 2, 4, 64, 91, 200, KT_F16, KT_F16, BI_NONE, 1.5f, SP_NONE, sms));
        run_case(mk(OP_VAR, 2, 2, 169, 255, 430, KT_BF16, KT_BF16, BI_RAND, 1.5f, SP_NONE, sms));
    }
    // the training-style masked forward (t0 = 0, block-causal bias): first 7 levels (91 tokens) and all 680 (4 heads)
    run_case(mk(OP_VAR, 2, 4, 91, 0, 91, KT_BF16, KT_BF16, BI_BLOCK));
    run_case(mk(OP_VAR, 1, 4, 680, 0, 680, KT_BF16, KT_F32, BI_BLOCK));
    run_case(mk(OP_ATT, 2, 4, 91, 0, 100, KT_F32, KT_F32, BI_BLOCK, 1.5f, SP_NONE, 132, "f32<64>"));
    run_case(mk(OP_ATT, 2, 4, 91, 0, 100, KT_F16, KT_F16, BI_BLOCK));
    // plain kt_attention on caches (PREP off), every output dtype the launcher takes, random bias
    for (int s : {0, 3, 5, 7, 8}) {
        int Tq = STEP_TQ[s], t0 = VAR_BEGIN[s];
        run_case(mk(OP_ATT, 2, 4, Tq, t0, 680, KT_BF16, KT_BF16, s % 2 ? BI_RAND : BI_NONE));
        run_case(mk(OP_ATT, 2, 4, Tq, t0, 680, KT_F16, KT_F32, s % 2 ? BI_NONE : BI_RAND, 4.0f));
        run_case(mk(OP_ATT, 2, 4, Tq, t0, 680, KT_F32, KT_F32, s % 2 ? BI_RAND : BI_NONE));
    }
    // the GPU tests' random inputs (scale 3/sqrt(HS)), HS 128 / 32 variants and unaligned query counts
    for (int HS : {64, 128, 32}) {
        Case c = mk(OP_ATT, 2, 3, 37, 33, 100, HS == 32 ? KT_F32 : KT_BF16, KT_F32, BI_RAND, 1.5f, SP_NONE, 132, nullptr, HS);
        c.rand_style = true;
        run_case(c);
        c.mm = KT_F32, c.seed = g_seed++;
        run_case(c);
    }
    run_case(mk(OP_VAR, 2, 2, 20, 30, 64, KT_BF16, KT_BF16, BI_RAND, 1.5f, SP_NONE, 132, "prep+f16<128,nw4", 128));
    run_case(mk(OP_VAR, 2, 2, 40, 10, 64, KT_BF16, KT_F32, BI_NONE, 1.5f, SP_NONE, 1, "f16<128,nw4,f32,PREP>", 128));
    // NaN keys: old / new, fused / unfused, fp32 kernel
    for (int sp = 1; sp <= 2; sp++) {
        run_case(mk(OP_VAR, 2, 2, sp == SP_NAN_OLD ? 4 : 1, sp == SP_NAN_OLD ? 1 : 0, 10, KT_BF16, KT_BF16, BI_NONE,
                    1.5f, (Special)sp));  // an old key needs t0 > 0
        run_case(mk(OP_VAR, 2, 4, 36, 55, 100, KT_BF16, KT_F32, BI_NONE, 1.5f, (Special)sp));
        run_case(mk(OP_VAR, 2, 4, 36, 55, 100, KT_BF16, KT_F32, BI_NONE, 1.5f, (Special)sp, 2));
        run_case(mk(OP_VAR, 2, 4, 36, 55, 100, KT_F32, KT_F32, BI_BLOCK, 1.5f, (Special)sp));
        run_case(mk(OP_ATT, 2, 2, 64, 91, 200, KT_F32, KT_F32, BI_RAND, 1.5f, (Special)sp));
    }
    // GEMM fallback: 16-bit out through the merge pass, f32 out merged (B, NH > 1) and direct (NH = 1 / B = 1)
    run_case(mk(OP_ATT, 2, 2, 9, 5, 20, KT_BF16, KT_BF16, BI_RAND, 1.5f, SP_NONE, 132, "gemm", 40));
    run_case(mk(OP_ATT, 2, 2, 9, 5, 20, KT_F16, KT_F16, BI_NONE, 1.5f, SP_NONE, 132, "gemm", 40));
    run_case(mk(OP_ATT, 2, 2, 9, 5, 20, KT_F32, KT_F32, BI_RAND, 1.5f, SP_NONE, 132, "gemm", 40));
    run_case(mk(OP_ATT, 2, 1, 16, 0, 16, KT_BF16, KT_F32, BI_NONE, 1.5f, SP_NONE, 132, "gemm", 80));
    run_case(mk(OP_VAR, 2, 2, 6, 3, 9, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NONE, 132, "gemm", 40));
    run_case(mk(OP_VAR, 2, 2, 7, 5, 12, KT_BF16, KT_F32, BI_RAND, 1.5f, SP_NONE, 132, "prep+f32<32>", 32));
    for (int off = 0; off < 2; off++) run_split_case(3, 25, 16, 64, off, 40 + off), run_split_case(2, 7, 2, 40, off, 42 + off);
}

static void mut_set() {  // small and quick: every mutant of mutate_var.py must fail at least one
    run_case(mk(OP_VAR, 2, 2, 9, 5, 20, KT_BF16, KT_F32, BI_NONE, 1.5f, SP_NONE, 132, "nw1"));
    run_case(mk(OP_VAR, 2, 2, 36, 55, 100, KT_BF16, KT_F32, BI_BLOCK, 1.5f, SP_NONE, 1, "f16<64,nw4,f32,PREP>"));
    run_case(mk(OP_ATT, 2, 2, 20, 100, 130, KT_BF16, KT_BF16, BI_RAND));
    run_case(mk(OP_VAR, 2, 2, 4, 1, 10, KT_BF16, KT_BF16, BI_NONE, 1.5f, SP_NAN_NEW));
    run_case(mk(OP_ATT, 2, 2, 20, 100, 130, KT_F32, KT_F32, BI_RAND, 1.5f, SP_NONE, 132, "f32<64>"));
}

int main(int argc, char **argv) {
    std::string mode = argc > 1 ? argv[1] : "quick";
    for (int i = 1; i < argc; i++) {
        g_verbose |= !strcmp(argv[i], "-v");
        if (!strncmp(argv[i], "--only=", 7))
            for (const char *p = argv[i] + 7; *p; p += *p == ',') g_only.push_back((int)strtol(p, (char **)&p, 10));
    }
    check_ok(kt_backend_cpu_init(&g_cpu, 2), "cpu init");
    memset(&g_gpu, 0, sizeof g_gpu);
    g_gpu.device = KT_CUDA;
    g_gpu.impl = &g_ci;
    reg_names();
    if (mode == "asan") g_modes = {emu::RANDOM};
    if (mode == "mut") g_modes = {emu::GREEDY, emu::GREEDY_REV};
    if (mode != "mut" && g_only.empty()) selftest();
    if (mode == "full") full_set();
    else if (mode == "mut") mut_set();
    else if (mode != "selftest") quick_set();
    printf("\n%ld cases, %ld failed; emulator-detected errors %ld; ldmatrix %ld, mma %ld, cp.async %ld (per-lane calls)\n",
           g_cases, g_fail, emu::g_errors, emu_mma::g_n_ldsm, emu_mma::g_n_mma, emu_mma::g_n_cp);
    for (auto &n : emu::g_notes) printf("note: %s\n", n.c_str());
    kt_backend_free(&g_cpu);
    return g_fail != 0 || emu::g_errors != 0;
}
