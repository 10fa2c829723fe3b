// Runs the GPU token samplers (kernels/cuda/sample.cu: VAR's sample_kernel and smooth_embed_kernel; llama.cu:
// LlamaGen's hf_kernel, its radix-select and block-sort paths, hf_cluster_kernel (a row over a thread-block cluster),
// sampling and probabilities, and the raster step counter kernels), through their real launchers, emulated (emu_cuda.h, CUB from emu_cub.h), against the CPU backend
// of libargen.a. Each case runs under the forward / greedy / greedy-reverse / random schedules: results must be bit-identical across
// them. Contract checked: tokens identical to the CPU's, masked logits bit-identical (NaN as NaN), probabilities and
// more_smooth latents within 2 float ulps, the empty-row flag raised exactly when the CPU reports KT_ERR_NUMERIC.
//   test_sampler [quick|full|asan|mut]
#include <cinttypes>

#include "emu_shim_sampler.h"

static KtBackend g_cpu, g_gpu;
alignas(16) static unsigned char g_small[256];
// H100 SXM: 132 SMs, 227 KiB opt-in smem; the backend's default cluster_rows
static emu_k::CudaImpl g_ci = {132, 232448, nullptr, g_small, true, 64};
static long g_fail = 0, g_cases = 0;
static std::vector<int> g_modes = {emu::FORWARD, emu::GREEDY, emu::GREEDY_REV, emu::RANDOM};
static const int32_t TOK_POISON = 0x7fc0dead;
static double g_min_draw_margin = 1, g_min_topp_margin = 1;  // over all rows of all cases (informative)
static long g_exact_topp_boundaries = 0;  // rows whose top-p cut falls exactly on a cumulative value (exact ties)

static int32_t &gpu_flag() { return *(int32_t *)(g_small + emu_k::CUDA_SMALL_FLAG); }

// ------------------------------------------------------------------------------------------------- helpers
struct Rng {
    std::mt19937 g;
    explicit Rng(uint32_t s) : g(s) {}
    float normal() { return std::normal_distribution<float>(0.f, 1.f)(g); }
    int uni(int a, int b) { return std::uniform_int_distribution<int>(a, b)(g); }
    double u01() { return std::uniform_real_distribution<double>(0, 1)(g); }
};
static uint32_t fbits(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static bool same_float(float a, float b) { return (a != a && b != b) || fbits(a) == fbits(b); }
// Distance in float ulps (same sign assumed where it matters; large when signs differ).
static long ulp_diff(float a, float b) {
    if (a != a || b != b) return (a != a && b != b) ? 0 : LONG_MAX;
    int32_t ia, ib;
    memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return labs((long)ia - (long)ib);
}
static void check_ok(KtStatus s, const char *what) {
    if (s != KT_OK) {
        fprintf(stderr, "%s failed: %s\n", what, kt_last_error());
        exit(2);
    }
}

enum Pattern { PT_GAUSS = 0, PT_TIES, PT_ALLEQ, PT_NINF, PT_NAN, PT_POSINF, PT_HUGE, PT_TINY, PT_ZEROS, PT_ONEFIN,
               PT_EMPTYROW, PT_PEAK, PT_CFG, PT_COUNT };
static const char *pt_name[] = {"gauss", "ties", "all-equal", "-inf", "nan", "+inf", "huge", "tiny", "+-0",
                                "one-finite", "empty-row", "peaked", "cfg"};

// rows x V logits of a pattern. ties: a 0.25 grid (ties at every rank, the top-k threshold and the top-p cut
// included); all-equal: exact fractions in top-p; empty-row: row 1 (row 0 with one row) all -inf / NaN; cfg:
// (1 + t) c - t u of two Gaussian halves by the CPU's kt_cfg_combine (LlamaGen's guided rows).
static std::vector<float> make_logits(Pattern pt, int rows, int V, Rng &r) {
    std::vector<float> L((size_t)rows * V);
    if (pt == PT_CFG) {
        std::vector<float> cu((size_t)2 * rows * V);
        for (auto &x : cu) x = r.normal() * 2.5f;
        KtTensor y = kt_tensor3(L.data(), KT_F32, KT_CPU, rows, 1, V);
        KtTensor l = kt_tensor3(cu.data(), KT_F32, KT_CPU, 2 * rows, 1, V);
        check_ok(kt_cfg_combine(&g_cpu, &y, &l, 3.0f), "cpu cfg_combine");
        return L;
    }
    int empty_row = rows > 1 ? 1 : 0;
    for (int row = 0; row < rows; row++) {
        float *x = &L[(size_t)row * V];
        for (int i = 0; i < V; i++) {
            float g = r.normal();
            double u = r.u01();
            float v = g * 3.f;
            switch (pt) {
            case PT_TIES: v = roundf(g * 8.f) / 4.f; break;
            case PT_ALLEQ: v = 1.5f; break;
            case PT_NINF: v = u < 0.3 ? -INFINITY : v; break;
            case PT_NAN: v = u < 0.1 ? NAN : u < 0.2 ? -INFINITY : v; break;
            case PT_HUGE: v = u < 0.05 ? (g > 0 ? 3.0e38f : -3.0e38f) : u < 0.1 ? g * 1e-30f : g * 1e30f; break;
            case PT_TINY: v = u < 0.1 ? g * 1e-40f : g * 1e-30f; break;
            case PT_ZEROS: v = u < 0.35 ? -0.f : u < 0.7 ? 0.f : u < 0.8 ? 1.f : u < 0.9 ? -1.f : 0.5f; break;
            case PT_ONEFIN: v = u < 0.1 ? NAN : -INFINITY; break;
            case PT_PEAK: v = g * 0.5f; break;
            default: break;
            }
            x[i] = v;
        }
        if (pt == PT_POSINF) {
            x[r.uni(0, V - 1)] = INFINITY;
            x[r.uni(0, V - 1)] = INFINITY;
            x[r.uni(0, V - 1)] = NAN;
        }
        if (pt == PT_ONEFIN) x[r.uni(0, V - 1)] = r.normal();
        if (pt == PT_PEAK) x[r.uni(0, V - 1)] = 20.f;
        if (pt == PT_EMPTYROW && row == empty_row)
            for (int i = 0; i < V; i++) x[i] = (i % 5 == 2) ? NAN : -INFINITY;
    }
    return L;
}

// --------------------------------------------------------------------------- boundary margins (informative)
// How far the CPU's draw lies from a cumulative boundary (relative to the total), from the CPU's masked row: the GPU
// may pick another token only below ~1e-16 (its sums associate differently).
static double draw_margin(const float *l, int V, const SmpParams &sp, uint64_t image, uint32_t pos) {
    float m = -INFINITY;
    for (int i = 0; i < V; i++)
        if (l[i] > m) m = l[i];
    if (m == -INFINITY) return 1;
    long double total = 0;
    std::vector<long double> w(V);
    for (int i = 0; i < V; i++) {
        w[i] = (l[i] != l[i] || l[i] == -INFINITY) ? 0 : l[i] == m ? 1 : expl((long double)l[i] - (long double)m);
        total += w[i];
    }
    SmpPhilox4 b = smp_rng_block(sp.seed, image, pos, SMP_STREAM_TOKEN);
    long double target = (long double)smp_u53(b.v[0], b.v[1]) * total, cum = 0, best = 1;
    for (int i = 0; i < V; i++) {
        if (w[i] <= 0) continue;
        cum += w[i];
        best = std::min(best, fabsl(cum - target) / total);
    }
    return (double)best;
}

// Top-p: the distance of the cut quantity from the threshold (VAR: cumulative <= 1 - p, ascending; HF: mass before
// an entry > p, descending), recomputed from the raw row (temperature, top-k as the CPU). 0: an exact boundary
// (exactly tied logits give exact fractions on both sides).
static double topp_margin(const float *raw, int V, const SmpParams &sp, bool hf) {
    bool use_p = hf ? sp.top_p < 1.f : (sp.top_p > 0.f && sp.top_p < 1.f);
    if (!use_p) return 1;
    std::vector<float> x(raw, raw + V);
    bool div = hf ? sp.temperature != 1.f : (sp.temperature > 0.f && sp.temperature != 1.f);
    float td = hf ? (sp.temperature > 1e-5f ? sp.temperature : 1e-5f) : sp.temperature;
    if (div)
        for (auto &v : x) v /= td;
    bool use_k = hf ? sp.top_k > 0 : sp.top_k > 0;
    if (use_k && sp.top_k < V) {
        std::vector<float> s(V);
        for (int i = 0; i < V; i++) s[i] = x[i] != x[i] ? -INFINITY : x[i];
        std::nth_element(s.begin(), s.begin() + (V - sp.top_k), s.end());
        float th = s[V - sp.top_k];
        for (auto &v : x)
            if (!(v >= th)) v = -INFINITY;
    }
    std::vector<std::pair<float, int>> f;
    for (int i = 0; i < V; i++)
        if (std::isfinite(x[i])) f.push_back({x[i], i});
    if (f.size() < 2) return 1;
    std::sort(f.begin(), f.end(), [&](const std::pair<float, int> &a, const std::pair<float, int> &b) {
        if (a.first != b.first) return hf ? a.first > b.first : a.first < b.first;
        return a.second < b.second;
    });
    long double m = hf ? f.front().first : f.back().first, z = 0;
    for (auto &e : f) z += expl((long double)e.first - m);
    long double thr = hf ? (long double)sp.top_p : 1.0L - (long double)sp.top_p, cum = 0, best = 1;
    for (size_t j = 0; j < f.size(); j++) {
        if (hf) {
            if (j > 0) best = std::min(best, fabsl(cum / z - thr));
            cum += expl((long double)f[j].first - m);
        } else {
            cum += expl((long double)f[j].first - m);
            if (j + 1 < f.size()) best = std::min(best, fabsl(cum / z - thr));
        }
    }
    return (double)best;
}

static void note_margins(double dm, double tm) {
    g_min_draw_margin = std::min(g_min_draw_margin, dm);
    if (tm == 0) g_exact_topp_boundaries++;
    else g_min_topp_margin = std::min(g_min_topp_margin, tm);
}

// ------------------------------------------------------------------------------------------------ samplers
enum Op { OP_VAR = 0, OP_HF_SAMPLE, OP_HF_PROBS, OP_HF_PROBS_ALIASED };
static const char *op_name[] = {"var", "hf", "hf-probs", "hf-probs=l"};

struct SCase {
    Op op;
    int V, B, T, k;
    float p, temp;
    Pattern pt;
    uint32_t seed;
    int64_t pos0;
    bool skip_rows;  // hf sampling: rows with position -1 (skipped, token not written)
};

struct SOut {
    std::vector<int32_t> tok;
    std::vector<float> lg, pr;
    int32_t flag = 0;
    KtStatus st = KT_OK;
    long errs = 0;
};

static bool hf_on_cluster(const SCase &c) { return c.V > 4096 && !(c.p < 1.f) && c.B * c.T <= g_ci.cluster_rows; }
static const char *hf_path(const SCase &c) {
    bool use_k = c.k > 0 && c.k < c.V, use_p = c.p < 1.f;
    if (hf_on_cluster(c)) return use_k ? "cl-radix" : "cl-plain";
    return use_k && !use_p ? "radix" : (use_k || use_p) ? "sort" : "plain";
}
static const char *var_path(const SCase &c) {
    bool use_k = c.k > 0 && c.k < c.V, use_p = c.p > 0.f && c.p < 1.f;
    return (use_k || use_p) ? "sort" : "plain";
}

static SOut run_sampler(const SCase &c, const std::vector<float> &L, const std::vector<int64_t> &ids,
                        const std::vector<int32_t> &pos, const SmpParams &sp, bool emu_side, int mode) {
    SOut o;
    int rows = c.B * c.T;
    KtDevice dv = emu_side ? KT_CUDA : KT_CPU;
    o.lg = L;
    o.tok.assign(rows, TOK_POISON);
    KtTensor tok = kt_tensor2(o.tok.data(), KT_I32, dv, c.B, c.T), lg = kt_tensor3(o.lg.data(), KT_F32, dv, c.B, c.T, c.V);
    KtTensor id = kt_tensor1((void *)ids.data(), KT_I64, dv, c.B), ps = kt_tensor2((void *)pos.data(), KT_I32, dv, c.B, c.T);
    KtTensor pr = lg;
    if (c.op == OP_HF_PROBS) {
        o.pr.resize(L.size());
        for (auto &x : o.pr) x = __uint_as_float(0x7fc0deadu);  // poison
        pr = kt_tensor3(o.pr.data(), KT_F32, dv, c.B, c.T, c.V);
    }
    emu::g_mode = mode;
    gpu_flag() = 0;
    long e0 = emu::g_errors;
    switch (c.op) {
    case OP_VAR:
        o.st = emu_side ? emu_k::cuda_sample_top_k_top_p(&g_gpu, &tok, &lg, &id, c.pos0, sp)
                        : kt_sample_top_k_top_p(&g_cpu, &tok, &lg, &id, c.pos0, sp);
        break;
    case OP_HF_SAMPLE:
        o.st = emu_side ? emu_k::cuda_sample_llama(&g_gpu, &tok, &lg, &id, &ps, sp)
                        : kt_sample_llama(&g_cpu, &tok, &lg, &id, &ps, sp);
        break;
    case OP_HF_PROBS:
    case OP_HF_PROBS_ALIASED:
        o.st = emu_side ? emu_k::cuda_probs_llama(&g_gpu, &pr, &lg, sp) : kt_probs_llama(&g_cpu, &pr, &lg, sp);
        break;
    }
    o.flag = gpu_flag();
    if (emu_side) {  // the launcher raised the kernel's shared-memory limit to its SampleSmem / HfSmem
        size_t want = c.op == OP_VAR ? (c.V <= 1024 ? sizeof(emu_k::SampleSmem<128, 8>)
                                        : c.V <= 4096 ? sizeof(emu_k::SampleSmem<256, 16>)
                                                      : sizeof(emu_k::SampleSmem<512, 32>))
                                     : hf_on_cluster(c) ? sizeof(emu_k::HfClusterSmem<256, 8>)
                                     : (c.V <= 1024 ? sizeof(emu_k::HfSmem<128, 8>)
                                        : c.V <= 4096 ? sizeof(emu_k::HfSmem<256, 16>)
                                                      : sizeof(emu_k::HfSmem<512, 32>));
        if ((size_t)emu_k::g_attr.last != want) {
            emu::note("sampler launch: cudaFuncSetAttribute(%d) for a %zu-byte shared-memory struct", emu_k::g_attr.last,
                      want);
            emu::g_errors++;
        }
    }
    o.errs = emu::g_errors - e0;
    if (c.op == OP_HF_PROBS_ALIASED) o.pr = o.lg;
    return o;
}

static void run_sampler_case(const SCase &c) {
    g_cases++;
    Rng r(c.seed);
    int rows = c.B * c.T;
    std::vector<float> L = make_logits(c.pt, rows, c.V, r);
    std::vector<int64_t> ids(c.B);
    for (int b = 0; b < c.B; b++) ids[b] = b == 1 ? (int64_t)((1ull << 33) + c.seed) : (int64_t)c.seed * 7 + 3 * b;
    std::vector<int32_t> pos(rows);
    for (int i = 0; i < rows; i++) pos[i] = (c.skip_rows && i % 3 == 1) ? -1 : (int32_t)(c.pos0 + i % c.T + 17 * (i / c.T));
    SmpParams sp = {0x9e3779b97f4a7c15ull ^ ((uint64_t)c.seed << 20), c.k, c.p, c.temp};
    bool hf = c.op != OP_VAR, probs = c.op == OP_HF_PROBS || c.op == OP_HF_PROBS_ALIASED;

    SOut ref = run_sampler(c, L, ids, pos, sp, false, 0);
    SOut E = run_sampler(c, L, ids, pos, sp, true, g_modes[0]);
    long sched = 0, errs = E.errs;
    for (size_t mi = 1; mi < g_modes.size(); mi++) {
        SOut E2 = run_sampler(c, L, ids, pos, sp, true, g_modes[mi]);
        errs += E2.errs;
        for (int i = 0; i < rows; i++) sched += E.tok[i] != E2.tok[i];
        for (size_t i = 0; i < E.lg.size(); i++) sched += fbits(E.lg[i]) != fbits(E2.lg[i]);
        for (size_t i = 0; i < E.pr.size(); i++) sched += fbits(E.pr[i]) != fbits(E2.pr[i]);
        sched += E.flag != E2.flag || E.st != E2.st;
    }
    // expected: the CPU's tokens (an empty row: the CPU reports KT_ERR_NUMERIC, VAR's CPU row function leaves -1;
    // the GPU writes 0 and raises the flag), unwritten rows (position < 0) unwritten on both
    long tok_mm = 0, empty = 0, lg_diff = 0, zero_mm = 0;
    long pr_ulp = 0;
    double dmin = 1, tmin = 1;
    for (int i = 0; i < rows; i++) {
        bool skipped = hf && !probs && pos[i] < 0;
        if (!probs && !skipped) {
            bool emp = true;
            for (int v = 0; v < c.V && emp; v++) emp = !(ref.lg[(size_t)i * c.V + v] > -INFINITY);
            empty += emp;
        }
        if (probs) {
            bool emp = true;
            for (int v = 0; v < c.V && emp; v++) emp = ref.pr[(size_t)i * c.V + v] == 0.f;
            empty += emp;  // informative: probabilities report no flag
        }
        if (!probs) {
            int32_t want = ref.tok[i] < 0 && ref.tok[i] != TOK_POISON ? 0 : ref.tok[i];
            tok_mm += E.tok[i] != want;
            if (!skipped) {
                uint32_t dpos = hf ? (uint32_t)pos[i] : (uint32_t)(c.pos0 + i % c.T);
                double dm = draw_margin(&ref.lg[(size_t)i * c.V], c.V, sp, (uint64_t)ids[i / c.T], dpos);
                double tm = topp_margin(&L[(size_t)i * c.V], c.V, sp, hf);
                note_margins(dm, tm);
                dmin = std::min(dmin, dm), tmin = std::min(tmin, tm);
            }
        } else {
            double tm = topp_margin(&L[(size_t)i * c.V], c.V, sp, true);
            note_margins(1, tm);
            tmin = std::min(tmin, tm);
        }
    }
    if (c.op != OP_HF_PROBS_ALIASED)
        for (size_t i = 0; i < L.size(); i++) lg_diff += !same_float(E.lg[i], ref.lg[i]);
    for (size_t i = 0; i < ref.pr.size(); i++) {
        zero_mm += (E.pr[i] == 0.f) != (ref.pr[i] == 0.f) || (E.pr[i] != E.pr[i]);
        pr_ulp = std::max(pr_ulp, ulp_diff(E.pr[i], ref.pr[i]));
    }
    int32_t want_flag = (!probs && empty) ? 2 : 0;
    KtStatus want_st = (!probs && empty) ? KT_ERR_NUMERIC : KT_OK;
    bool pass = tok_mm == 0 && lg_diff == 0 && zero_mm == 0 && pr_ulp <= 2 && E.flag == want_flag &&
                ref.st == want_st && E.st == KT_OK && sched == 0 && errs == 0;
    if (!pass) g_fail++;
    char ks[16], ps[16];
    snprintf(ks, sizeof ks, "%d", c.k);
    snprintf(ps, sizeof ps, "%g", c.p);
    printf("%-4s %-10s %-5s V%-5d B%d T%d k%-5s p%-6s t%-4g %-10s | tok mismatch %ld/%d empty %ld flag %d(cpu %s) | "
           "logits bitdiff %ld",
           pass ? "ok" : "FAIL", op_name[c.op], hf ? hf_path(c) : var_path(c), c.V, c.B, c.T, ks, ps, c.temp,
           pt_name[c.pt], tok_mm, probs ? 0 : rows, empty, E.flag, kt_status_name(ref.st), lg_diff);
    if (probs) printf(" probs max ulp %ld zero-mismatch %ld", pr_ulp, zero_mm);
    printf(" | sched %ld emuerr %ld | margin draw %.1e top-p %.1e\n", sched, errs, dmin, tmin);
    if (!pass && tok_mm)
        for (int i = 0; i < rows; i++)
            if (E.tok[i] != ref.tok[i])
                printf("     row %d: cpu %d emu %d\n", i, ref.tok[i], E.tok[i]);
    fflush(stdout);
}

// ------------------------------------------------------------------------------------------- more_smooth
struct MCase {
    int V, D, B, T;
    float ratio;
    Pattern pt;
    uint32_t seed;
    int64_t pos0;
};

static void run_smooth_case(const MCase &c) {
    g_cases++;
    Rng r(c.seed);
    int rows = c.B * c.T;
    std::vector<float> L = make_logits(c.pt, rows, c.V, r), cb((size_t)c.V * c.D);
    for (auto &x : cb) x = r.normal();
    std::vector<int64_t> ids(c.B);
    for (int b = 0; b < c.B; b++) ids[b] = (int64_t)c.seed * 5 + b + (b == 1 ? (1ll << 35) : 0);
    uint64_t seed = 0x1234567890abcdefull ^ c.seed;
    auto run = [&](bool emu_side, int mode, KtStatus *st, long *errs) {
        std::vector<float> h((size_t)rows * c.D);
        for (auto &x : h) x = __uint_as_float(0x7fc0deadu);
        KtDevice dv = emu_side ? KT_CUDA : KT_CPU;
        KtTensor H = kt_tensor3(h.data(), KT_F32, dv, c.B, c.T, c.D), Lt = kt_tensor3(L.data(), KT_F32, dv, c.B, c.T, c.V);
        KtTensor C = kt_tensor2(cb.data(), KT_F32, dv, c.V, c.D), I = kt_tensor1(ids.data(), KT_I64, dv, c.B);
        emu::g_mode = mode;
        long e0 = emu::g_errors, a0 = emu_k::g_attr.calls;
        *st = emu_side ? emu_k::cuda_smooth_embed(&g_gpu, &H, &Lt, &C, c.ratio, &I, c.pos0, seed)
                       : kt_smooth_embed(&g_cpu, &H, &Lt, &C, c.ratio, &I, c.pos0, seed);
        // above 48 KiB the launcher must have raised the kernel's limit to cover the launch
        if (emu_side && *st == KT_OK && (size_t)c.V * 4 > (48u << 10) &&
            (emu_k::g_attr.calls == a0 || (size_t)emu_k::g_attr.last < (size_t)c.V * 4)) {
            emu::note("smooth_embed: V %d launched without a sufficient cudaFuncSetAttribute", c.V);
            emu::g_errors++;
        }
        *errs = emu::g_errors - e0;
        return h;
    };
    KtStatus s0, s1, s2;
    long e1, e2, sched = 0;
    std::vector<float> ref = run(false, 0, &s0, &e1), E = run(true, g_modes[0], &s1, &e1);
    for (size_t mi = 1; mi < g_modes.size(); mi++) {
        std::vector<float> E2 = run(true, g_modes[mi], &s2, &e2);
        e1 += e2;
        for (size_t i = 0; i < E.size(); i++) sched += fbits(E[i]) != fbits(E2[i]);
    }
    bool too_big = (size_t)c.V * 4 > g_ci.smem_optin;
    long ulp = 0, bad = 0, bitdiff = 0;
    double max_abs = 0;
    if (!too_big)
        for (size_t i = 0; i < ref.size(); i++) {
            long u = ulp_diff(E[i], ref[i]);
            double d = fabs((double)E[i] - ref[i]);
            bitdiff += fbits(E[i]) != fbits(ref[i]);
            if (d == d) max_abs = std::max(max_abs, d);
            ulp = std::max(ulp, u);
            bad += u > 2 && !(d <= 1e-12);
        }
    bool pass = too_big ? (s1 == KT_ERR_UNSUPPORTED && s0 == KT_OK)
                        : (s0 == KT_OK && s1 == KT_OK && bad == 0 && sched == 0 && e1 == 0);
    if (!pass) g_fail++;
    printf("%-4s smooth     V%-5d D%-3d B%d T%d ratio %-4g %-10s | ", pass ? "ok" : "FAIL", c.V, c.D, c.B, c.T, c.ratio,
           pt_name[c.pt]);
    if (too_big) printf("emu: %s (cpu: %s)\n", kt_status_name(s1), kt_status_name(s0));
    else
        printf("h max ulp %ld max_abs %.1e bitdiff %ld/%zu out-of-tolerance %ld | sched %ld emuerr %ld\n", ulp, max_abs,
               bitdiff, ref.size(), bad, sched, e1);
    fflush(stdout);
}

// ------------------------------------------------------------------------------------------ raster steps
struct RState {
    std::vector<int32_t> seq, step, tok, pos;
};

static KtStatus step_inputs(bool emu_side, RState &s, int64_t N, int64_t S, int64_t R, int64_t B) {
    KtDevice dv = emu_side ? KT_CUDA : KT_CPU;
    KtTensor tok = kt_tensor1(s.tok.data(), KT_I32, dv, R), pos = kt_tensor1(s.pos.data(), KT_I32, dv, R);
    KtTensor seq = kt_tensor2(s.seq.data(), KT_I32, dv, N, S), st = kt_tensor1(s.step.data(), KT_I32, dv, 1);
    return emu_side ? emu_k::cuda_raster_step_inputs(&g_gpu, &tok, &pos, &seq, &st, B)
                    : kt_raster_step_inputs(&g_cpu, &tok, &pos, &seq, &st, B);
}
static KtStatus step_commit(bool emu_side, RState &s, int64_t N, int64_t S, std::vector<int32_t> &sampled) {
    KtDevice dv = emu_side ? KT_CUDA : KT_CPU;
    KtTensor seq = kt_tensor2(s.seq.data(), KT_I32, dv, N, S), st = kt_tensor1(s.step.data(), KT_I32, dv, 1);
    KtTensor sm = kt_tensor1(sampled.data(), KT_I32, dv, (int64_t)sampled.size());
    return emu_side ? emu_k::cuda_raster_step_commit(&g_gpu, &seq, &sm, &st) : kt_raster_step_commit(&g_cpu, &seq, &sm, &st);
}

// A whole sequence: commit token 0, then for n = 1..N-1 inputs (tok, pos of the R = 2B CFG rows), a LlamaGen draw
// from logits that depend on the fed tokens (CFG-combined by the CPU's kt_cfg_combine), commit. The CPU and the
// emulated pipelines run side by side; every counter, input and token must agree at every step.
static void run_sequence_case(int N, int B, int S, int V, SmpParams sp, uint32_t seed, int sm_count) {
    g_cases++;
    int R = 2 * B;
    long mism = 0, sched = 0, errs = 0, bad_st = 0;
    std::vector<int32_t> first_seq;
    g_ci.sm_count = sm_count;
    for (size_t mi = 0; mi < g_modes.size(); mi++) {
        RState cs{std::vector<int32_t>((size_t)N * S, -7), {0}, std::vector<int32_t>(R, TOK_POISON),
                  std::vector<int32_t>(R, TOK_POISON)};
        RState es = cs;
        long e0 = emu::g_errors;
        emu::g_mode = g_modes[mi];
        for (int n = 0; n < N; n++) {
            if (n >= 1) {
                std::fill(es.tok.begin(), es.tok.end(), TOK_POISON), std::fill(es.pos.begin(), es.pos.end(), TOK_POISON);
                bad_st += step_inputs(false, cs, N, S, R, B) != KT_OK;
                bad_st += step_inputs(true, es, N, S, R, B) != KT_OK;
                mism += cs.tok != es.tok || cs.pos != es.pos;
            } else {
                for (int rr = 0; rr < R; rr++) cs.tok[rr] = es.tok[rr] = 0, cs.pos[rr] = es.pos[rr] = 0;
            }
            // logits of rows (cond, uncond) from the fed token: the sequence depends on every draw
            std::vector<float> both((size_t)R * V), lc((size_t)B * V), le;
            for (int rr = 0; rr < R; rr++) {
                Rng g(seed * 1000003u + (uint32_t)n * 7919u + (uint32_t)rr * 31u + (uint32_t)cs.tok[rr]);
                for (int v = 0; v < V; v++) both[(size_t)rr * V + v] = g.normal() * 2.f;
            }
            KtTensor y = kt_tensor3(lc.data(), KT_F32, KT_CPU, B, 1, V), l = kt_tensor3(both.data(), KT_F32, KT_CPU, R, 1, V);
            check_ok(kt_cfg_combine(&g_cpu, &y, &l, 3.0f), "cpu cfg_combine");
            le = lc;
            std::vector<int64_t> ids(B);
            for (int b = 0; b < B; b++) ids[b] = (int64_t)seed * 11 + b;
            std::vector<int32_t> tc(B, TOK_POISON), te(B, TOK_POISON), pc(cs.pos.begin(), cs.pos.begin() + B),
                pe(es.pos.begin(), es.pos.begin() + B);
            KtTensor Tc = kt_tensor2(tc.data(), KT_I32, KT_CPU, B, 1), Lc = kt_tensor3(lc.data(), KT_F32, KT_CPU, B, 1, V);
            KtTensor Ic = kt_tensor1(ids.data(), KT_I64, KT_CPU, B), Pc = kt_tensor2(pc.data(), KT_I32, KT_CPU, B, 1);
            KtTensor Te = kt_tensor2(te.data(), KT_I32, KT_CUDA, B, 1), Le = kt_tensor3(le.data(), KT_F32, KT_CUDA, B, 1, V);
            KtTensor Pe = kt_tensor2(pe.data(), KT_I32, KT_CUDA, B, 1);
            gpu_flag() = 0;
            bad_st += kt_sample_llama(&g_cpu, &Tc, &Lc, &Ic, &Pc, sp) != KT_OK;
            bad_st += emu_k::cuda_sample_llama(&g_gpu, &Te, &Le, &Ic, &Pe, sp) != KT_OK || gpu_flag() != 0;
            mism += tc != te;
            bad_st += step_commit(false, cs, N, S, tc) != KT_OK;
            bad_st += step_commit(true, es, N, S, te) != KT_OK;
            mism += cs.seq != es.seq || cs.step != es.step;
        }
        mism += es.step[0] != N;
        if (mi == 0) first_seq = es.seq;
        else sched += first_seq != es.seq;
        errs += emu::g_errors - e0;
    }
    g_ci.sm_count = 132;
    bool pass = mism == 0 && sched == 0 && errs == 0 && bad_st == 0;
    if (!pass) g_fail++;
    printf("%-4s sequence   N%d B%d S%d R%d V%d k%d p%g t%g sm_count %d | step/seq/inputs/tokens mismatches %ld, bad "
           "status %ld | sched %ld emuerr %ld\n",
           pass ? "ok" : "FAIL", N, B, S, R, V, sp.top_k, sp.top_p, sp.temperature, sm_count, mism, bad_st, sched, errs);
    fflush(stdout);
}

// Counters outside the ranges: the CPU reports KT_ERR_ARG, the kernels write nothing (tok/pos keep their poison,
// seq and step unchanged). Also wide batches: R > one block of the capped grid (grid-stride), B > the commit block.
static void run_step_edges() {
    struct E { int64_t N, S, B, R; int32_t step; bool commit; int sm; };
    const E es[] = {{5, 3, 2, 4, 0, false, 132}, {5, 3, 2, 4, 5, false, 132}, {5, 3, 2, 4, -3, false, 132},
                    {5, 3, 2, 4, 5, true, 132},  {5, 3, 2, 4, -1, true, 132}, {6, 301, 300, 600, 3, false, 1},
                    {6, 301, 300, 600, 4, true, 132}, {6, 301, 300, 900, 5, false, 2}};
    for (const E &e : es) {
        g_cases++;
        long diff = 0, sched = 0, errs = 0;
        bool in_range = e.commit ? (e.step >= 0 && e.step < e.N) : (e.step >= 1 && e.step < e.N);
        KtStatus sc = KT_OK, se = KT_OK;
        RState first;
        for (size_t mi = 0; mi < g_modes.size(); mi++) {
            Rng r(77 + (uint32_t)e.step);
            RState s0{std::vector<int32_t>((size_t)e.N * e.S), {e.step}, std::vector<int32_t>(e.R, TOK_POISON),
                      std::vector<int32_t>(e.R, TOK_POISON)};
            for (auto &x : s0.seq) x = r.uni(0, 16383);
            std::vector<int32_t> sampled(e.B);
            for (auto &x : sampled) x = r.uni(0, 16383);
            RState cs = s0, gs = s0;
            g_ci.sm_count = e.sm;
            emu::g_mode = g_modes[mi];
            long e0 = emu::g_errors;
            if (e.commit) sc = step_commit(false, cs, e.N, e.S, sampled), se = step_commit(true, gs, e.N, e.S, sampled);
            else sc = step_inputs(false, cs, e.N, e.S, e.R, e.B), se = step_inputs(true, gs, e.N, e.S, e.R, e.B);
            errs += emu::g_errors - e0;
            g_ci.sm_count = 132;
            // in range: the CPU's result; outside: nothing written
            const RState &want = in_range ? cs : s0;
            diff += gs.seq != want.seq || gs.step != want.step || gs.tok != want.tok || gs.pos != want.pos;
            if (mi == 0) first = gs;
            else sched += gs.seq != first.seq || gs.step != first.step || gs.tok != first.tok || gs.pos != first.pos;
        }
        bool pass = diff == 0 && sched == 0 && errs == 0 && se == KT_OK && (in_range ? sc == KT_OK : sc == KT_ERR_ARG);
        if (!pass) g_fail++;
        printf("%-4s step %-6s N%lld S%lld B%lld R%lld step %d sm_count %d | emu vs %s: %ld differences; cpu %s | sched "
               "%ld emuerr %ld\n",
               pass ? "ok" : "FAIL", e.commit ? "commit" : "inputs", (long long)e.N, (long long)e.S, (long long)e.B,
               (long long)e.R, e.step, e.sm, in_range ? "cpu" : "untouched", diff, kt_status_name(sc), sched, errs);
        fflush(stdout);
    }
}

// ----------------------------------------------------------------------------------- emu_cub.h itself
// The shim against CUB 3.0.1's documented order, written out independently: ascending -NaN < -inf < finite (-0.0 ==
// +0.0) < +inf < +NaN; stable (ties in input order, descending too); values move with their keys; key bits kept
// (-0.0 stays -0.0); blocked arrangement. BlockScan: exclusive prefix, thread 0 gets 0, the aggregate everywhere.
static void run_cub_selftest() {
    constexpr int NT = 32, IT = 4, N = NT * IT;
    using Sort = cub::BlockRadixSort<float, NT, IT, int>;
    using Scan = cub::BlockScan<double, NT>;
    Rng r(99);
    std::vector<float> in(N);
    const float specials[] = {-0.f, 0.f, INFINITY, -INFINITY, 1.f, -1.f, 0.5f};
    for (int i = 0; i < N; i++) in[i] = i % 3 == 0 ? specials[r.uni(0, 6)] : roundf(r.normal() * 4.f) / 2.f;
    in[17] = __uint_as_float(0x7fc00001u);  // +NaN
    in[90] = __uint_as_float(0xffc00002u);  // -NaN
    auto cls = [](float x) { return x != x ? (std::signbit(x) ? 0 : 4) : x == -INFINITY ? 1 : x == INFINITY ? 3 : 2; };
    long bad = 0, errs0 = emu::g_errors;
    for (int desc = 0; desc < 2; desc++)
        for (int mode : g_modes) {
            std::vector<float> ko(N);
            std::vector<int> vo(N);
            std::vector<double> ex(NT), ag(NT);
            emu::g_mode = mode;
            emu::launch(dim3(1), dim3(NT), std::max(sizeof(Sort::TempStorage), sizeof(Scan::TempStorage)), [&] {
                int t = threadIdx.x;
                float k[IT];
                int v[IT];
                for (int i = 0; i < IT; i++) k[i] = in[t * IT + i], v[i] = t * IT + i;
                if (desc) Sort(*(Sort::TempStorage *)emu::dyn_smem()).SortDescending(k, v);
                else Sort(*(Sort::TempStorage *)emu::dyn_smem()).Sort(k, v);
                for (int i = 0; i < IT; i++) ko[t * IT + i] = k[i], vo[t * IT + i] = v[i];
                __syncthreads();
                Scan(*(Scan::TempStorage *)emu::dyn_smem()).ExclusiveSum((double)(t + 1), ex[t], ag[t]);
            });
            std::vector<int> want(N);
            for (int i = 0; i < N; i++) want[i] = i;
            std::stable_sort(want.begin(), want.end(), [&](int a, int b) {
                float x = in[a], y = in[b];
                int ca = cls(x), cb = cls(y);
                if (ca != cb) return desc ? ca > cb : ca < cb;
                if (ca != 2) return false;
                return desc ? x > y : x < y;  // -0.0 == +0.0
            });
            for (int j = 0; j < N; j++) bad += vo[j] != want[j] || fbits(ko[j]) != fbits(in[vo[j]]);
            for (int t = 0; t < NT; t++) bad += ex[t] != t * (t + 1) / 2.0 || ag[t] != NT * (NT + 1) / 2.0;
        }
    g_cases++;
    long errs = emu::g_errors - errs0;
    bool pass = bad == 0 && errs == 0;
    if (!pass) g_fail++;
    printf("%-4s cub-selftest BlockRadixSort<float,32,4,int> Sort / SortDescending (+-0, +-inf, +-NaN, ties), "
           "BlockScan<double,32> ExclusiveSum | wrong items %ld emuerr %ld\n", pass ? "ok" : "FAIL", bad, errs);
}

// ------------------------------------------------------------------------------------------------- sets
struct Params {
    int k;
    float p, temp;
};
static const int K_VM1 = INT_MIN;  // k = V - 1

int main(int argc, char **argv) {
    std::string set = argc > 1 ? argv[1] : "full";
    bool quick = set == "quick", full = set == "full", mut = set == "mut", asan = set == "asan";
    if (!quick && !full && !mut && !asan) {
        fprintf(stderr, "usage: test_sampler [quick|full|asan|mut]\n");
        return 2;
    }
    check_ok(kt_backend_cpu_init(&g_cpu, 1), "cpu init");
    memset(&g_gpu, 0, sizeof g_gpu);
    g_gpu.device = KT_CUDA;
    g_gpu.impl = &g_ci;
    g_gpu.matmul_dtype = KT_BF16;
    if (asan) g_modes = {emu::RANDOM};
    if (mut) g_modes = {emu::FORWARD, emu::GREEDY, emu::GREEDY_REV, emu::RANDOM};
    uint32_t seed = 2000;

    // The shared-memory footprint each launcher asks for (GPU sizes: emu_cub.h's TempStorage are CUB 3.0.1's).
    printf("smem: SampleSmem<128,8> %zu, <256,16> %zu, <512,32> %zu; HfSmem<128,8> %zu, <256,16> %zu, <512,32> %zu bytes "
           "(device opt-in limit %zu)\n",
           sizeof(emu_k::SampleSmem<128, 8>), sizeof(emu_k::SampleSmem<256, 16>), sizeof(emu_k::SampleSmem<512, 32>),
           sizeof(emu_k::HfSmem<128, 8>), sizeof(emu_k::HfSmem<256, 16>), sizeof(emu_k::HfSmem<512, 32>),
           g_ci.smem_optin);
    printf("smem: HfClusterSmem<256,8> %zu bytes per block\n", sizeof(emu_k::HfClusterSmem<256, 8>));

    run_cub_selftest();
    std::vector<int> vocabs = {37, 1000, 4096, 16384};
    // VAR (sample_top_k_top_p): top-k 1 / 900 / 2000 / k >= V / off (0, -1), top-p 1 / 0.95 / 0.5 / tiny / 0 (off)
    const Params var_params[] = {{0, 0.f, 1.f},     {1, 0.f, 1.f},      {900, 0.f, 0.7f},  {2000, 0.f, 1.f},
                                 {0, 0.95f, 1.f},   {0, 0.5f, 0.7f},    {0, 1e-6f, 1.f},   {900, 0.95f, 1.f},
                                 {2000, 0.5f, 0.7f}, {1, 0.95f, 1.f},   {-1, 1.f, 0.7f},   {1 << 20, 0.95f, 0.7f},
                                 {900, 1e-6f, 0.7f}, {K_VM1, 0.5f, 1.f}, {300, 0.9999f, 1.f}};
    // LlamaGen (sample_llama / probs_llama): top-k alone (radix select) 1 / 900 / 2000 / V-1, with top-p (sort),
    // top-p alone 0.95 / 0.5 / tiny / 0, off (k 0 or >= V, p 1)
    const Params hf_params[] = {{0, 1.f, 1.f},      {1, 1.f, 1.f},      {900, 1.f, 0.7f},  {2000, 1.f, 1.f},
                                {-2, 1.f, 0.7f},    {0, 0.95f, 1.f},    {0, 0.5f, 0.7f},   {0, 1e-6f, 1.f},
                                {0, 0.f, 1.f},      {900, 0.95f, 1.f},  {2000, 0.5f, 0.7f}, {1, 0.95f, 0.7f},
                                {1 << 20, 0.95f, 1.f}, {1 << 20, 1.f, 1.f}, {900, 1e-6f, 1e-6f},
                                {K_VM1, 1.f, 1.f},  {K_VM1, 0.5f, 0.7f}, {300, 0.9999f, 1.f}};
    const Pattern pats[] = {PT_GAUSS, PT_TIES, PT_ALLEQ, PT_NINF, PT_NAN, PT_POSINF, PT_HUGE,
                            PT_TINY,  PT_ZEROS, PT_ONEFIN, PT_EMPTYROW, PT_PEAK, PT_CFG};

    if (mut) {  // a small set for the mutation runs: each kernel, each path, ties and NaN
        for (int V : {1000, 4096}) {
            run_sampler_case(SCase{OP_VAR, V, 2, 2, 900, 0.5f, 1.f, PT_TIES, seed++, 5, false});
            run_sampler_case(SCase{OP_VAR, V, 1, 2, 0, 0.5f, 1.f, PT_ALLEQ, seed++, 5, false});
            run_sampler_case(SCase{OP_VAR, V, 2, 1, 0, 0.95f, 0.7f, PT_NAN, seed++, 9, false});
            run_sampler_case(SCase{OP_HF_SAMPLE, V, 2, 2, 900, 1.f, 1.f, PT_TIES, seed++, 3, false});
            run_sampler_case(SCase{OP_HF_SAMPLE, V, 2, 2, 333, 1.f, 1.f, PT_GAUSS, seed++, 3, true});
            run_sampler_case(SCase{OP_HF_SAMPLE, V, 2, 1, 900, 0.5f, 0.7f, PT_TIES, seed++, 3, false});
            run_sampler_case(SCase{OP_HF_SAMPLE, V, 1, 2, 0, 0.5f, 1.f, PT_ALLEQ, seed++, 3, false});
            run_sampler_case(SCase{OP_HF_SAMPLE, V, 2, 1, 300, 0.9999f, 1.f, PT_TINY, seed++, 3, false});
            run_sampler_case(SCase{OP_VAR, V, 2, 1, 300, 0.9999f, 1.f, PT_TINY, seed++, 3, false});
            run_sampler_case(SCase{OP_HF_PROBS, V, 2, 1, 0, 0.95f, 1.f, PT_NAN, seed++, 0, false});
            run_smooth_case(MCase{V, 32, 2, 2, 0.5f, PT_NINF, seed++, 4});
        }
        // the cluster sampler (V > 4096, no top-p): radix select with ties, a skipped row, probabilities
        run_sampler_case(SCase{OP_HF_SAMPLE, 16384, 2, 1, 2000, 1.f, 1.f, PT_TIES, seed++, 3, true});
        run_sampler_case(SCase{OP_HF_SAMPLE, 6000, 1, 2, 0, 1.f, 0.7f, PT_GAUSS, seed++, 3, false});
        run_sampler_case(SCase{OP_HF_PROBS, 16384, 2, 1, 900, 1.f, 1.f, PT_GAUSS, seed++, 0, false});
        run_sequence_case(5, 2, 3, 1000, SmpParams{42, 100, 0.9f, 0.9f}, seed++, 132);
        run_step_edges();
    } else {
        // full: every (op, vocabulary, parameters, pattern) at 37 and 1000, every other one at 4096 and 16384;
        // quick / asan: per (op, vocabulary, parameters) one pattern, rotating (probabilities: every other parameter
        // set). k = K_VM1: V - 1 (the radix select's deepest k).
        int ci = 0;
        for (int op = 0; op < 4; op++)
            for (size_t vi = 0; vi < vocabs.size(); vi++) {
                int V = vocabs[vi];
                const Params *ps = op == OP_VAR ? var_params : hf_params;
                int np = op == OP_VAR ? (int)(sizeof var_params / sizeof *var_params) : (int)(sizeof hf_params / sizeof *hf_params);
                for (int pi = 0; pi < np; pi++)
                    for (int ti = 0; ti < PT_COUNT; ti++) {
                        Pattern pt = pats[ti];
                        Params p = ps[pi];
                        if (p.k == K_VM1) p.k = V - 1;
                        int idx = ci++;
                        bool probs = op >= OP_HF_PROBS;
                        if (full && probs && pi % 3 != 0 && pt != PT_TIES && pt != PT_ALLEQ) continue;
                        if (full && V >= 4096 && idx % 2) continue;
                        if ((quick || asan) && (ti != (int)((pi * 5 + vi * 3 + op) % PT_COUNT) || (probs && pi % 2)))
                            continue;
                        int B = V >= 4096 ? 2 : 3, T = V >= 4096 ? 1 : 2;
                        bool skip = op == OP_HF_SAMPLE && idx % 2;
                        run_sampler_case(SCase{(Op)op, V, B, T, p.k, p.p, p.temp, pt, seed++, (int64_t)(idx % 3) * 680,
                                               skip});
                    }
            }
        // vocabularies at the launch configurations' edges (1, 2; 1024 / 1025: 128x8 full / 256x16; 4097: 512x32 with
        // most of the block padding)
        for (int V : {1, 2, 1024, 1025, 4097})
            for (int op = 0; op < 4; op++)
                for (Params p : {Params{1, 1.f, 1.f}, Params{K_VM1, 1.f, 0.7f}, Params{0, 0.5f, 1.f}, Params{2, 0.9f, 0.7f}})
                    for (Pattern pt : {PT_GAUSS, PT_TIES, PT_NAN}) {
                        int idx = ci++;
                        if ((quick || asan) && idx % 7) continue;
                        if (p.k == K_VM1) p.k = V - 1;
                        if (op == OP_VAR && p.p >= 1.f) p.p = 0.f;
                        run_sampler_case(SCase{(Op)op, V, 2, 1, p.k, p.p, p.temp, pt, seed++, 11, op == OP_HF_SAMPLE});
                    }
        // the cluster sampler (hf_cluster_kernel: V > 4096 without top-p, up to cluster_rows rows): vocabularies that
        // leave the last blocks of the cluster partly or wholly empty (4097: 3 blocks, the third with one item; 6000;
        // 8192: 4 full blocks; 16383), every k from 1 to V - 1, and the same cases on hf_kernel (cluster_rows 0, and
        // more rows than cluster_rows)
        for (int V : {4097, 6000, 8192, 16383, 16384})
            for (int op = OP_HF_SAMPLE; op < 4; op++)
                for (Params p : {Params{1, 1.f, 1.f}, Params{2, 1.f, 0.7f}, Params{2000, 1.f, 1.f}, Params{K_VM1, 1.f, 1.f},
                                 Params{0, 1.f, 0.7f}, Params{1 << 20, 1.f, 1.f}})
                    for (Pattern pt : {PT_GAUSS, PT_TIES, PT_ALLEQ, PT_NAN, PT_NINF, PT_POSINF, PT_EMPTYROW, PT_PEAK}) {
                        int idx = ci++;
                        if ((quick || asan) && idx % 10) continue;
                        if (p.k == K_VM1) p.k = V - 1;
                        for (int rows_cap : {64, 0}) {
                            if (rows_cap == 0 && (quick || asan) && idx % 2) continue;
                            g_ci.cluster_rows = rows_cap;
                            run_sampler_case(SCase{(Op)op, V, 2, 1, p.k, p.p, p.temp, pt, seed++, 5, op == OP_HF_SAMPLE});
                        }
                        g_ci.cluster_rows = 64;
                    }
        g_ci.cluster_rows = 3;  // 4 rows: one block per row; 3 rows: on clusters
        run_sampler_case(SCase{OP_HF_SAMPLE, 16384, 2, 2, 2000, 1.f, 1.f, PT_GAUSS, seed++, 7, false});
        run_sampler_case(SCase{OP_HF_SAMPLE, 16384, 3, 1, 2000, 1.f, 1.f, PT_GAUSS, seed++, 7, true});
        g_ci.cluster_rows = 64;
        // rows without a finite logit on every path (the flag): a single row, and one row among others
        for (int op = 0; op < 4; op++)
            for (Params p : {Params{0, 1.f, 1.f}, Params{7, 1.f, 0.7f}, Params{7, 0.9f, 1.f}, Params{0, 0.9f, 1.f}})
                for (int V : {37, 1000}) {
                    if (quick && V == 37) continue;
                    run_sampler_case(SCase{(Op)op, V, 1, 1, p.k, p.p, p.temp, PT_EMPTYROW, seed++, 3, false});
                    run_sampler_case(SCase{(Op)op, V, 2, 2, p.k, p.p, p.temp, PT_EMPTYROW, seed++, 3, op == OP_HF_SAMPLE});
                }
        // the tie rule at the top-p cut, every vocabulary: exactly tied logits (a past bug: VAR top-p with ties)
        for (int V : vocabs)
            for (float p : {0.5f, 0.95f, 0.75f}) {
                run_sampler_case(SCase{OP_VAR, V, 1, 2, 0, p, 1.f, PT_ALLEQ, seed++, 0, false});
                run_sampler_case(SCase{OP_HF_SAMPLE, V, 1, 2, 0, p, 1.f, PT_ALLEQ, seed++, 0, false});
                if (!quick) {
                    run_sampler_case(SCase{OP_VAR, V, 2, 1, 0, p, 1.f, PT_TIES, seed++, 0, false});
                    run_sampler_case(SCase{OP_HF_SAMPLE, V, 2, 1, V / 3, p, 1.f, PT_TIES, seed++, 0, false});
                }
            }
        // more_smooth
        for (int V : {37, 1000, 4096, 16384})
            for (int D : {8, 32, 100})
                for (float ratio : {0.f, 0.5f, 1.2f})
                    for (Pattern pt : {PT_GAUSS, PT_NINF, PT_NAN, PT_EMPTYROW, PT_TIES, PT_ONEFIN, PT_HUGE}) {
                        int idx = ci++;
                        if ((quick || asan) && idx % 9) continue;
                        if (full && V >= 4096 && idx % 2) continue;
                        run_smooth_case(MCase{V, D, 2, 2, ratio, pt, seed++, (int64_t)(idx % 4) * 100});
                    }
        run_smooth_case(MCase{60000, 4, 1, 1, 0.5f, PT_GAUSS, seed++, 0});  // beyond shared memory: refused
        // raster step counters
        run_sequence_case(6, 2, 3, 1000, SmpParams{42, 100, 0.9f, 0.9f}, seed++, 132);
        run_sequence_case(5, 3, 3, 37, SmpParams{7, 0, 0.5f, 1.0f}, seed++, 1);
        if (!quick) run_sequence_case(4, 2, 2, 16384, SmpParams{9, 1000, 1.0f, 1.0f}, seed++, 132);
        run_step_edges();
    }
    printf("\n%ld cases, %ld failed; emulator-detected errors %ld; smallest draw margin %.1e, smallest non-zero top-p "
           "margin %.1e, rows with an exact top-p boundary %ld\n",
           g_cases, g_fail, emu::g_errors, g_min_draw_margin, g_min_topp_margin, g_exact_topp_boundaries);
    // The radix select's `if (cand) __match_any_sync(live, ...)` inside the item loop lets the other lanes reach the
    // next item's __ballot_sync(0xffffffff) first: two warp ops pending in one warp, valid with independent thread
    // scheduling (each op is executed by every lane its mask names); the emulator notes it, harmlessly. Its notes
    // are capped at 50 (the first ones are these): the cases' pass/fail and emuerr counts are what matter.
    long benign = 0;
    for (auto &n : emu::g_notes) {
        if (n.rfind("warp ops pending together", 0) == 0) benign++;
        else printf("note: %s\n", n.c_str());
    }
    if (benign) printf("(%ld emulator notes 'warp ops pending together' from the radix select's divergent "
                       "__match_any_sync: valid CUDA, not errors)\n", benign);
    kt_backend_free(&g_cpu);
    return g_fail != 0 || emu::g_errors != 0;
}
