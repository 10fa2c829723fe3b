// Emulated cuDNN (the part kernels/cuda/ uses): handles, 4-d tensor / filter / 2-d convolution descriptors, the
// forward-algorithm queries (heuristic, timed search, workspace size) and cudnnConvolutionForward, with the exact
// prototypes of cudnn.h (v9). Device memory is host memory (see emu_backend.h); the convolution is a host reference:
// products summed in double (exact for fp16/bf16/fp32 inputs), y = alpha * acc + beta * y in double, rounded once
// to y's dtype (round to nearest even). Every call that touches device memory goes through emu::stream_work, with a
// closure that captures values only (descriptor contents, pointers, alpha/beta), so a call recorded during graph
// capture replays right after its descriptors were changed or destroyed.
//
// Supported: x, w, y of one dtype among FLOAT, HALF, BFLOAT16 with compute type FLOAT (cuDNN's FLOAT_CONFIG,
// PSEUDO_HALF_CONFIG, PSEUDO_BFLOAT16_CONFIG); any 4-d tensor strides (NCHW, NHWC, or explicit); filters NCHW (KCRS)
// or NHWC (KRSC); padding, stride, dilation, groups; CROSS_CORRELATION and CONVOLUTION (flipped filter). Every math
// type is accepted and computed exactly (no TF32 / down-conversion: cuDNN may use them, it need not). Anything else
// (DOUBLE or int data, TRUE_HALF_CONFIG, NCHW_VECT_C) is CUDNN_STATUS_NOT_SUPPORTED, never computed otherwise.
//
// Algorithms: IMPLICIT_GEMM (no workspace), IMPLICIT_PRECOMP_GEMM (an index table), GEMM (im2col of the batch) and,
// for 3x3 stride-1 undilated ungrouped convs, WINOGRAD_NONFUSED (transform buffers); DIRECT, FFT, FFT_TILING and
// WINOGRAD report NOT_SUPPORTED. All supported algorithms compute the same reference. Their "times" come from a
// fixed cost model (deterministic order: WINOGRAD_NONFUSED, PRECOMP, IMPLICIT_GEMM, GEMM), so the fastest usually
// needs a workspace and the caller's workspace plumbing is exercised. A call scribbles 0xFF bytes (NaN) over the
// workspace bytes its algorithm needs before reading x and w, so a workspace that overlaps an operand shows.
#include "emu_backend.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// ------------------------------------------------------------------------------------------------ opaque structs
// The typedefs of cudnn.h point to these. `magic` catches a destroyed or foreign descriptor (cleared on destroy).
namespace {
enum : uint32_t {
    kHandleMagic = 0x444e4e48,
    kTensorMagic = 0x444e4e54,
    kFilterMagic = 0x444e4e46,
    kConvMagic = 0x444e4e43,
    kActMagic = 0x444e4e41,
};
}

struct cudnnContext {
    uint32_t magic;
    cudaStream_t stream;  // cudnnSetStream; 0 = the legacy default stream
};

struct cudnnTensorStruct {
    uint32_t magic;
    bool set;              // a Set*Descriptor call succeeded
    cudnnDataType_t dt;
    int dim[4];            // n, c, h, w
    int64_t stride[4];     // element strides of n, c, h, w
};

struct cudnnFilterStruct {
    uint32_t magic;
    bool set;
    cudnnDataType_t dt;
    cudnnTensorFormat_t format;  // NCHW: KCRS in memory; NHWC: KRSC
    int k, c, h, w;              // output channels, input channels per group, kernel height, kernel width
};

struct cudnnConvolutionStruct {
    uint32_t magic;
    bool set;                    // cudnnSetConvolution2dDescriptor called
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    cudnnMathType_t math;        // CUDNN_DEFAULT_MATH until set
    int groups;                  // 1 until set
};

struct cudnnActivationStruct {
    uint32_t magic;
    bool set;                    // cudnnSetActivationDescriptor called
    cudnnActivationMode_t mode;
    cudnnNanPropagation_t nan;
    double coef;
};

namespace {

// ----------------------------------------------------------------------------------------------------- helpers
// Reports why a call returns CUDNN_STATUS_BAD_PARAM (a caller bug: the real library only logs it when asked to).
#define DNN_BAD(fn, ...)                                                    \
    (fprintf(stderr, "emu cuDNN: %s: ", fn), fprintf(stderr, __VA_ARGS__), \
     fputc('\n', stderr), CUDNN_STATUS_BAD_PARAM)

// Bytes per element of the data types a descriptor may hold (0: not accepted by the Set calls).
size_t dtype_size(cudnnDataType_t dt) {
    switch (dt) {
    case CUDNN_DATA_FLOAT: case CUDNN_DATA_INT32: return 4;
    case CUDNN_DATA_DOUBLE: case CUDNN_DATA_INT64: return 8;
    case CUDNN_DATA_HALF: case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_INT8: case CUDNN_DATA_UINT8: return 1;
    default: return 0;
    }
}

// The dtypes the convolution computes (with compute type FLOAT).
bool dtype_computed(cudnnDataType_t dt) {
    return dt == CUDNN_DATA_FLOAT || dt == CUDNN_DATA_HALF || dt == CUDNN_DATA_BFLOAT16;
}

double load(cudnnDataType_t dt, const void *base, int64_t i) {
    switch (dt) {
    case CUDNN_DATA_HALF: return (double)__half2float(((const __half *)base)[i]);
    case CUDNN_DATA_BFLOAT16: return (double)__bfloat162float(((const __nv_bfloat16 *)base)[i]);
    default: return (double)((const float *)base)[i];
    }
}

// One rounding from double, to nearest even.
void store(cudnnDataType_t dt, void *base, int64_t i, double v) {
    switch (dt) {
    case CUDNN_DATA_HALF: ((__half *)base)[i] = __double2half(v); break;
    case CUDNN_DATA_BFLOAT16: ((__nv_bfloat16 *)base)[i] = __double2bfloat16(v); break;
    default: ((float *)base)[i] = (float)v; break;
    }
}

bool live(const cudnnContext *h) { return h && h->magic == kHandleMagic; }
bool live(const cudnnTensorStruct *d) { return d && d->magic == kTensorMagic; }
bool live(const cudnnFilterStruct *d) { return d && d->magic == kFilterMagic; }
bool live(const cudnnConvolutionStruct *d) { return d && d->magic == kConvMagic; }
bool live(const cudnnActivationStruct *d) { return d && d->magic == kActMagic; }

// Destroys a descriptor of any kind: null is fine, a destroyed or foreign one is BAD_PARAM (its magic is cleared
// first, so a second destroy is caught).
template <typename D> cudnnStatus_t destroy_desc(D *d, const char *fn) {
    if (!d) return CUDNN_STATUS_SUCCESS;
    if (!live(d)) return DNN_BAD(fn, "not a live descriptor");
    d->magic = 0;
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

bool ranges_overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t pa = (uintptr_t)a, pb = (uintptr_t)b;
    return na && nb && pa < pb + nb && pb < pa + na;
}

size_t align256(size_t n) { return (n + 255) & ~(size_t)255; }

// ------------------------------------------------------------------------------------------------- the problem
// Everything a convolution needs, copied out of the descriptors at call time (closures capture this by value).
struct Conv {
    cudnnDataType_t dt;
    cudnnMathType_t math;
    int N, C, H, W;         // input: batch, channels (all groups), height, width
    int64_t xs[4];          // x element strides of n, c, h, w
    int K, Cg, R, S, G;     // filter: output channels, input channels per group, kernel h/w, groups
    int64_t fs[4];          // w element strides of k, c, r, s (from the filter format)
    int pad_h, pad_w, u, v, dil_h, dil_w;
    bool flip;              // CUDNN_CONVOLUTION: true convolution, the filter is flipped spatially
    int Ho, Wo;             // output height, width
    int64_t ys[4];          // y element strides of n, c, h, w
    size_t esize;           // bytes per element (x, w, y share the dtype)
    size_t x_bytes, w_bytes, y_bytes;  // extents in memory, from the strides
};

// Memory extent in bytes of a strided 4-d array.
size_t extent(const int dim[4], const int64_t st[4], size_t esize) {
    int64_t last = 0;
    for (int i = 0; i < 4; i++) last += (int64_t)(dim[i] - 1) * st[i];
    return (size_t)(last + 1) * esize;
}

// Output size of one spatial dim (cudnnGetConvolution2dForwardOutputDim's formula); <= 0 when the dilated filter is
// larger than the padded input.
int64_t out_dim(int64_t in, int pad, int filt, int dil, int stride) {
    int64_t span = (int64_t)(filt - 1) * dil + 1, padded = in + 2 * (int64_t)pad;
    return padded < span ? 0 : 1 + (padded - span) / stride;
}

// Checks the descriptors describe a valid convolution (BAD_PARAM otherwise, as cuDNN) and one this emulation
// computes (NOT_SUPPORTED otherwise); fills *p. yd may be null (output-dim query).
cudnnStatus_t make_conv(const char *fn, const cudnnTensorStruct *xd, const cudnnFilterStruct *wd,
                        const cudnnConvolutionStruct *cd, const cudnnTensorStruct *yd, Conv *p) {
    if (!live(xd) || !xd->set) return DNN_BAD(fn, "xDesc is null, destroyed or not set");
    if (!live(wd) || !wd->set) return DNN_BAD(fn, "wDesc is null, destroyed or not set");
    if (!live(cd) || !cd->set) return DNN_BAD(fn, "convDesc is null, destroyed or not set");
    if (yd && (!live(yd) || !yd->set)) return DNN_BAD(fn, "yDesc is null, destroyed or not set");
    *p = Conv{};
    p->dt = xd->dt;
    p->math = cd->math;
    p->N = xd->dim[0], p->C = xd->dim[1], p->H = xd->dim[2], p->W = xd->dim[3];
    memcpy(p->xs, xd->stride, sizeof p->xs);
    p->K = wd->k, p->Cg = wd->c, p->R = wd->h, p->S = wd->w, p->G = cd->groups;
    int64_t K = wd->k, Cg = wd->c, R = wd->h, S = wd->w;
    if (wd->format == CUDNN_TENSOR_NCHW) {  // KCRS
        p->fs[0] = Cg * R * S, p->fs[1] = R * S, p->fs[2] = S, p->fs[3] = 1;
    } else {                                // NHWC: KRSC
        p->fs[0] = R * S * Cg, p->fs[1] = 1, p->fs[2] = S * Cg, p->fs[3] = Cg;
    }
    p->pad_h = cd->pad_h, p->pad_w = cd->pad_w, p->u = cd->u, p->v = cd->v, p->dil_h = cd->dil_h, p->dil_w = cd->dil_w;
    p->flip = cd->mode == CUDNN_CONVOLUTION;
    if (wd->dt != xd->dt || (yd && yd->dt != xd->dt))
        return DNN_BAD(fn, "x, w and y have different data types (%d, %d, %d)", (int)xd->dt, (int)wd->dt,
                       yd ? (int)yd->dt : -1);
    if ((int64_t)p->C != Cg * p->G)
        return DNN_BAD(fn, "x has %d channels, the filter %d per group x %d groups", p->C, p->Cg, p->G);
    if (K % p->G) return DNN_BAD(fn, "%d output channels are not a multiple of %d groups", p->K, p->G);
    int64_t Ho = out_dim(p->H, p->pad_h, p->R, p->dil_h, p->u), Wo = out_dim(p->W, p->pad_w, p->S, p->dil_w, p->v);
    if (Ho <= 0 || Wo <= 0)
        return DNN_BAD(fn, "the %dx%d filter (dilation %d,%d) exceeds the padded %dx%d input (pad %d,%d)", p->R, p->S,
                       p->dil_h, p->dil_w, p->H, p->W, p->pad_h, p->pad_w);
    p->Ho = (int)Ho, p->Wo = (int)Wo;
    if (yd) {
        if (yd->dim[0] != p->N || yd->dim[1] != p->K || yd->dim[2] != p->Ho || yd->dim[3] != p->Wo)
            return DNN_BAD(fn, "yDesc is (n %d, c %d, h %d, w %d), the output is (n %d, c %d, h %d, w %d)", yd->dim[0],
                           yd->dim[1], yd->dim[2], yd->dim[3], p->N, p->K, p->Ho, p->Wo);
        memcpy(p->ys, yd->stride, sizeof p->ys);
    }
    // What this emulation computes: one of three dtypes, fp32 accumulation (compute type FLOAT).
    if (!dtype_computed(p->dt) || cd->compute != CUDNN_DATA_FLOAT) return CUDNN_STATUS_NOT_SUPPORTED;
    p->esize = dtype_size(p->dt);
    int ydim[4] = {p->N, p->K, p->Ho, p->Wo}, fdim[4] = {p->K, p->Cg, p->R, p->S};
    p->x_bytes = extent(xd->dim, p->xs, p->esize);
    p->w_bytes = extent(fdim, p->fs, p->esize);
    p->y_bytes = yd ? extent(ydim, p->ys, p->esize) : 0;
    // cuDNN's 32-bit indexing limit: tensors over 2^31 elements are not supported.
    if (p->x_bytes / p->esize > INT32_MAX || p->w_bytes / p->esize > INT32_MAX || p->y_bytes / p->esize > INT32_MAX)
        return CUDNN_STATUS_NOT_SUPPORTED;
    return CUDNN_STATUS_SUCCESS;
}

// --------------------------------------------------------------------------------------------------- algorithms
bool algo_valid(cudnnConvolutionFwdAlgo_t a) { return a >= 0 && a < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; }

bool algo_supported(const Conv &p, cudnnConvolutionFwdAlgo_t a) {
    switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return true;
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
        return p.R == 3 && p.S == 3 && p.u == 1 && p.v == 1 && p.dil_h == 1 && p.dil_w == 1 && p.G == 1;
    default: return false;  // DIRECT, FFT, FFT_TILING, WINOGRAD
    }
}

// Workspace bytes an algorithm needs (plausible sizes of what the real kernels keep there).
size_t algo_workspace(const Conv &p, cudnnConvolutionFwdAlgo_t a) {
    size_t taps = (size_t)p.Cg * p.R * p.S;
    switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:  // precomputed input offsets, one int per filter tap
        return align256(taps * sizeof(int));
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:                   // im2col matrix of the batch: (N Ho Wo) x (Cg R S)
        return align256((size_t)p.N * p.Ho * p.Wo * taps * p.esize);
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: {    // F(4x4, 3x3): 6x6 transformed tiles of x, w and y
        size_t tiles = (size_t)p.N * ((p.Ho + 3) / 4) * ((p.Wo + 3) / 4);
        return align256(36 * p.esize * (tiles * ((size_t)p.C + p.K) + (size_t)p.C * p.K));
    }
    default: return 0;
    }
}

// Modelled run time in ms (deterministic, so the search's order is too): multiply-adds at a fixed rate, scaled by a
// per-algorithm factor, plus a launch overhead.
float algo_time_ms(const Conv &p, cudnnConvolutionFwdAlgo_t a) {
    double flops = 2.0 * p.N * p.K * p.Ho * p.Wo * (double)p.Cg * p.R * p.S;
    double f = a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED ? 0.55
             : a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ? 1.0
             : a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ? 1.3
                                                               : 1.7;  // GEMM
    return (float)(0.004 + f * flops / 2e10);
}

// The perf list of the two searches: every algorithm, the working ones first by modelled time, then the others in
// enum order. `ws_limit` (the search's workspace) marks those needing more as ALLOC_FAILED (never run); SIZE_MAX for
// the heuristic, whose `timed` is false (time -1: nothing was run).
int perf_list(const Conv &p, bool supported, size_t ws_limit, bool timed, cudnnConvolutionFwdAlgoPerf_t out[8]) {
    int n = 0;
    for (int i = 0; i < CUDNN_CONVOLUTION_FWD_ALGO_COUNT; i++) {
        cudnnConvolutionFwdAlgo_t a = (cudnnConvolutionFwdAlgo_t)i;
        cudnnConvolutionFwdAlgoPerf_t r;
        memset(&r, 0, sizeof r);
        r.algo = a;
        r.determinism = CUDNN_DETERMINISTIC;
        r.mathType = p.math;
        r.time = -1.f;
        if (!supported || !algo_supported(p, a)) {
            r.status = CUDNN_STATUS_NOT_SUPPORTED;
        } else {
            r.memory = algo_workspace(p, a);
            // Needs more than the search's workspace: ALLOC_FAILED (its v9 value), not run.
            r.status = r.memory > ws_limit ? CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED : CUDNN_STATUS_SUCCESS;
            if (r.status == CUDNN_STATUS_SUCCESS) r.time = algo_time_ms(p, a);
        }
        out[n++] = r;
    }
    // Working ones first, by (modelled) time; the heuristic's order is the same prediction. Stable: ties keep enum order.
    std::stable_sort(out, out + n, [&](const cudnnConvolutionFwdAlgoPerf_t &a, const cudnnConvolutionFwdAlgoPerf_t &b) {
        bool oka = a.status == CUDNN_STATUS_SUCCESS, okb = b.status == CUDNN_STATUS_SUCCESS;
        if (oka != okb) return oka;
        return oka && algo_time_ms(p, a.algo) < algo_time_ms(p, b.algo);
    });
    if (!timed)
        for (int i = 0; i < n; i++) out[i].time = -1.f;
    return n;
}

// ------------------------------------------------------------------------------------------------- the compute
// cudnnConvolutionBiasActivationForward's terms after the convolution: + alpha2 * z (z in y's strides; not read when
// alpha2 == 0) + bias[k], then ReLU (NaN kept with CUDNN_PROPAGATE_NAN, else 0) or identity.
struct Epilogue {
    double alpha2;
    const void *z;
    const void *bias;   // (K)
    cudnnDataType_t bias_dt;
    bool relu, relu_nan;
};

// y (N, K, Ho, Wo) = alpha * conv(x (N, C, H, W), w (K, Cg, R, S)) + beta * y [+ epilogue], in the descriptors'
// strides, rounded once. Runs on the stream (at once, or at graph replay): only values captured at call time.
// beta == 0: y is not read.
void conv_run(const Conv &p, double alpha, double beta, const void *x, const void *w, void *y, void *ws,
              size_t ws_used, const Epilogue *epi = nullptr) {
    if (ws_used) memset(ws, 0xFF, ws_used);  // the algorithm's scratch: NaN in every float type
    // x as NHWC doubles (channels contiguous); w per group as (R, S, Cg, Kg) doubles (output channels contiguous),
    // flipped for a true convolution.
    int Kg = p.K / p.G;  // output channels per group
    std::vector<double> xd((size_t)p.N * p.H * p.W * p.C), wd((size_t)p.K * p.R * p.S * p.Cg);
    for (int n = 0; n < p.N; n++)
        for (int h = 0; h < p.H; h++)
            for (int ww = 0; ww < p.W; ww++)
                for (int c = 0; c < p.C; c++)
                    xd[(((size_t)n * p.H + h) * p.W + ww) * p.C + c] =
                        load(p.dt, x, n * p.xs[0] + c * p.xs[1] + h * p.xs[2] + ww * p.xs[3]);
    for (int k = 0; k < p.K; k++)
        for (int r = 0; r < p.R; r++)
            for (int s = 0; s < p.S; s++)
                for (int c = 0; c < p.Cg; c++) {
                    int rr = p.flip ? p.R - 1 - r : r, ss = p.flip ? p.S - 1 - s : s;
                    int g = k / Kg, kk = k % Kg;
                    wd[((((size_t)g * p.R + r) * p.S + s) * p.Cg + c) * Kg + kk] =
                        load(p.dt, w, k * p.fs[0] + c * p.fs[1] + rr * p.fs[2] + ss * p.fs[3]);
                }
    // Each output channel sums its products in the order r, s, c; the innermost loop runs across output channels
    // (independent sums, so the compiler may vectorise it without reordering any sum).
    std::vector<double> acc(p.K);
    for (int n = 0; n < p.N; n++)
        for (int ho = 0; ho < p.Ho; ho++)
            for (int wo = 0; wo < p.Wo; wo++) {
                std::fill(acc.begin(), acc.end(), 0.0);
                for (int r = 0; r < p.R; r++) {
                    int hi = ho * p.u - p.pad_h + r * p.dil_h;
                    if (hi < 0 || hi >= p.H) continue;  // zero padding
                    for (int s = 0; s < p.S; s++) {
                        int wi = wo * p.v - p.pad_w + s * p.dil_w;
                        if (wi < 0 || wi >= p.W) continue;
                        for (int g = 0; g < p.G; g++) {
                            const double *xp = &xd[(((size_t)n * p.H + hi) * p.W + wi) * p.C + (size_t)g * p.Cg];
                            double *ap = &acc[(size_t)g * Kg];
                            for (int c = 0; c < p.Cg; c++) {
                                const double xv = xp[c];
                                const double *wp = &wd[((((size_t)g * p.R + r) * p.S + s) * p.Cg + c) * Kg];
                                for (int kk = 0; kk < Kg; kk++) ap[kk] += xv * wp[kk];
                            }
                        }
                    }
                }
                for (int k = 0; k < p.K; k++) {
                    int64_t yi = n * p.ys[0] + k * p.ys[1] + ho * p.ys[2] + wo * p.ys[3];
                    double out = alpha * acc[k];
                    if (beta != 0) out += beta * load(p.dt, y, yi);
                    if (epi) {
                        if (epi->alpha2 != 0) out += epi->alpha2 * load(p.dt, epi->z, yi);
                        out += load(epi->bias_dt, epi->bias, k);
                        if (epi->relu && (out < 0 || (out != out && !epi->relu_nan))) out = 0;
                    }
                    store(p.dt, y, yi, out);
                }
            }
}

// Checks the operands of a run: device memory of the descriptors' extents, y apart from x and w, the workspace
// (`ws_used` bytes) apart from all three.
cudnnStatus_t check_operands(const char *fn, const Conv &p, const void *x, const void *w, const void *y,
                             const void *ws, size_t ws_used) {
    char what[160];
    snprintf(what, sizeof what, "%s x", fn);
    if (!emu::device_range(x, p.x_bytes, what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s w", fn);
    if (!emu::device_range(w, p.w_bytes, what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s y", fn);
    if (!emu::device_range(y, p.y_bytes, what)) return CUDNN_STATUS_BAD_PARAM;
    snprintf(what, sizeof what, "%s workSpace", fn);
    if (ws_used && !emu::device_range(ws, ws_used, what)) return CUDNN_STATUS_BAD_PARAM;
    if ((uintptr_t)x % p.esize || (uintptr_t)w % p.esize || (uintptr_t)y % p.esize) {  // not even element-aligned
        fprintf(stderr, "emu cuDNN: %s: x %p, w %p or y %p is not aligned to its %zu-byte elements\n", fn, x, w, y,
                p.esize);
        return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
    }
    if (ranges_overlap(y, p.y_bytes, x, p.x_bytes)) return DNN_BAD(fn, "y overlaps x (in place is not supported)");
    if (ranges_overlap(y, p.y_bytes, w, p.w_bytes)) return DNN_BAD(fn, "y overlaps w");
    if (ranges_overlap(ws, ws_used, x, p.x_bytes) || ranges_overlap(ws, ws_used, w, p.w_bytes) ||
        ranges_overlap(ws, ws_used, y, p.y_bytes))
        return DNN_BAD(fn, "the workspace overlaps x, w or y");
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t from_cuda(cudaError_t e) {
    return e == cudaSuccess ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_EXECUTION_FAILED_CUDART;
}

}  // namespace

// ========================================================================================================= API
extern "C" {

const char *cudnnGetErrorString(cudnnStatus_t status) {
    switch ((int)status) {
#define S(x) case x: return #x;
    S(CUDNN_STATUS_SUCCESS)
    S(CUDNN_STATUS_NOT_INITIALIZED)
    S(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
    S(CUDNN_STATUS_SERIALIZATION_VERSION_MISMATCH)
    S(CUDNN_STATUS_DEPRECATED)
    S(CUDNN_STATUS_LICENSE_ERROR)
    S(CUDNN_STATUS_RUNTIME_IN_PROGRESS)
    S(CUDNN_STATUS_RUNTIME_FP_OVERFLOW)
    S(CUDNN_STATUS_SUBLIBRARY_LOADING_FAILED)
    S(CUDNN_STATUS_BAD_PARAM)
    S(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
    S(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
    S(CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED)
    S(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
    S(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
    S(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
    S(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
    S(CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES)
    S(CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE)
    S(CUDNN_STATUS_BAD_PARAM_CUDA_GRAPH_MISMATCH)
    S(CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE)
    S(CUDNN_STATUS_NOT_SUPPORTED)
    S(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN)
    S(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
    S(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
    S(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
    S(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDA_DRIVER)
    S(CUDNN_STATUS_NOT_SUPPORTED_INCOMPATIBLE_CUDART)
    S(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
    S(CUDNN_STATUS_NOT_SUPPORTED_RUNTIME_PREREQUISITE_MISSING)
    S(CUDNN_STATUS_NOT_SUPPORTED_SUBLIBRARY_UNAVAILABLE)
    S(CUDNN_STATUS_NOT_SUPPORTED_SHARED_MEMORY_INSUFFICIENT)
    S(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
    S(CUDNN_STATUS_NOT_SUPPORTED_BAD_LAUNCH_PARAM)
    S(CUDNN_STATUS_NOT_SUPPORTED_CUDA_GRAPH_NATIVE_API)
    S(CUDNN_STATUS_NOT_SUPPORTED_INVALID_DYNAMIC_SHAPE)
    S(CUDNN_STATUS_INTERNAL_ERROR)
    S(CUDNN_STATUS_INTERNAL_ERROR_COMPILATION_FAILED)
    S(CUDNN_STATUS_INTERNAL_ERROR_UNEXPECTED_VALUE)
    S(CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED)
    S(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED)
    S(CUDNN_STATUS_INTERNAL_ERROR_BAD_LAUNCH_PARAM)
    S(CUDNN_STATUS_INTERNAL_ERROR_TEXTURE_CREATION_FAILED)
    S(CUDNN_STATUS_EXECUTION_FAILED)
    S(CUDNN_STATUS_EXECUTION_FAILED_CUDA_DRIVER)
    S(CUDNN_STATUS_EXECUTION_FAILED_CUBLAS)
    S(CUDNN_STATUS_EXECUTION_FAILED_CUDART)
    S(CUDNN_STATUS_EXECUTION_FAILED_CURAND)
#undef S
    case 2001: return "CUDNN_STATUS_INVALID_VALUE";  // deprecated alias, its own value
    default: return "CUDNN_UNKNOWN_STATUS";
    }
}

// ------------------------------------------------------------------------------------------------------ handle
cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return DNN_BAD("cudnnCreate", "handle is null");
    *handle = new cudnnContext{kHandleMagic, nullptr};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
    if (!live(handle)) return DNN_BAD("cudnnDestroy", "handle is null or destroyed");
    handle->magic = 0;
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
    if (!live(handle)) return DNN_BAD("cudnnSetStream", "handle is null or destroyed");
    handle->stream = streamId;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetStream(cudnnHandle_t handle, cudaStream_t *streamId) {
    if (!live(handle) || !streamId) return DNN_BAD("cudnnGetStream", "handle or streamId is null");
    *streamId = handle->stream;
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------------- tensor descriptor
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *tensorDesc) {
    if (!tensorDesc) return DNN_BAD("cudnnCreateTensorDescriptor", "tensorDesc is null");
    *tensorDesc = new cudnnTensorStruct{kTensorMagic, false, CUDNN_DATA_FLOAT, {0, 0, 0, 0}, {0, 0, 0, 0}};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t tensorDesc) {
    return destroy_desc(tensorDesc, "cudnnDestroyTensorDescriptor");
}

// dims n, c, h, w with explicit element strides (all positive).
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t tensorDesc, cudnnDataType_t dataType, int n, int c,
                                           int h, int w, int nStride, int cStride, int hStride, int wStride) {
    const char *fn = "cudnnSetTensor4dDescriptorEx";
    if (!live(tensorDesc)) return DNN_BAD(fn, "tensorDesc is null or destroyed");
    if (!dtype_size(dataType)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return DNN_BAD(fn, "dims (%d, %d, %d, %d) must be positive", n, c, h, w);
    if (nStride <= 0 || cStride <= 0 || hStride <= 0 || wStride <= 0)
        return DNN_BAD(fn, "strides (%d, %d, %d, %d) must be positive", nStride, cStride, hStride, wStride);
    tensorDesc->set = true;
    tensorDesc->dt = dataType;
    int dims[4] = {n, c, h, w};
    int64_t st[4] = {nStride, cStride, hStride, wStride};
    memcpy(tensorDesc->dim, dims, sizeof dims);
    memcpy(tensorDesc->stride, st, sizeof st);
    return CUDNN_STATUS_SUCCESS;
}

// Packed NCHW (w fastest) or NHWC (c fastest).
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t tensorDesc, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
    const char *fn = "cudnnSetTensor4dDescriptor";
    if (!live(tensorDesc)) return DNN_BAD(fn, "tensorDesc is null or destroyed");
    if (format == CUDNN_TENSOR_NCHW_VECT_C) return CUDNN_STATUS_NOT_SUPPORTED;
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return DNN_BAD(fn, "format %d", (int)format);
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) return DNN_BAD(fn, "dims (%d, %d, %d, %d) must be positive", n, c, h, w);
    if ((int64_t)n * c * h * w > INT32_MAX) return CUDNN_STATUS_NOT_SUPPORTED;  // strides are ints
    if (format == CUDNN_TENSOR_NCHW)
        return cudnnSetTensor4dDescriptorEx(tensorDesc, dataType, n, c, h, w, c * h * w, h * w, w, 1);
    return cudnnSetTensor4dDescriptorEx(tensorDesc, dataType, n, c, h, w, h * w * c, 1, w * c, c);
}

// ------------------------------------------------------------------------------------------- filter descriptor
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *filterDesc) {
    if (!filterDesc) return DNN_BAD("cudnnCreateFilterDescriptor", "filterDesc is null");
    *filterDesc = new cudnnFilterStruct{kFilterMagic, false, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 0, 0, 0, 0};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t filterDesc) {
    return destroy_desc(filterDesc, "cudnnDestroyFilterDescriptor");
}

// k output channels, c input channels (per group), h x w kernel; NCHW = KCRS, NHWC = KRSC in memory.
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t filterDesc, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
    const char *fn = "cudnnSetFilter4dDescriptor";
    if (!live(filterDesc)) return DNN_BAD(fn, "filterDesc is null or destroyed");
    if (!dtype_size(dataType)) return CUDNN_STATUS_NOT_SUPPORTED;
    if (format == CUDNN_TENSOR_NCHW_VECT_C) return CUDNN_STATUS_NOT_SUPPORTED;
    if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC) return DNN_BAD(fn, "format %d", (int)format);
    if (k <= 0 || c <= 0 || h <= 0 || w <= 0) return DNN_BAD(fn, "dims (%d, %d, %d, %d) must be positive", k, c, h, w);
    *filterDesc = cudnnFilterStruct{kFilterMagic, true, dataType, format, k, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------ convolution descriptor
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *convDesc) {
    if (!convDesc) return DNN_BAD("cudnnCreateConvolutionDescriptor", "convDesc is null");
    *convDesc = new cudnnConvolutionStruct{kConvMagic, false, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT, CUDNN_DEFAULT_MATH, 1};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t convDesc) {
    return destroy_desc(convDesc, "cudnnDestroyConvolutionDescriptor");
}

// Symmetric zero padding, strides u (vertical) and v, dilations; computeType: the accumulation type.
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t convDesc, int pad_h, int pad_w, int u,
                                              int v, int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
    const char *fn = "cudnnSetConvolution2dDescriptor";
    if (!live(convDesc)) return DNN_BAD(fn, "convDesc is null or destroyed");
    if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 || dilation_w <= 0)
        return DNN_BAD(fn, "pad (%d, %d) stride (%d, %d) dilation (%d, %d)", pad_h, pad_w, u, v, dilation_h,
                       dilation_w);
    if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) return DNN_BAD(fn, "mode %d", (int)mode);
    if (!dtype_size(computeType)) return DNN_BAD(fn, "computeType %d", (int)computeType);
    convDesc->set = true;
    convDesc->pad_h = pad_h, convDesc->pad_w = pad_w, convDesc->u = u, convDesc->v = v;
    convDesc->dil_h = dilation_h, convDesc->dil_w = dilation_w;
    convDesc->mode = mode;
    convDesc->compute = computeType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t mathType) {
    if (!live(convDesc)) return DNN_BAD("cudnnSetConvolutionMathType", "convDesc is null or destroyed");
    if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
        mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION && mathType != CUDNN_FMA_MATH)
        return DNN_BAD("cudnnSetConvolutionMathType", "mathType %d", (int)mathType);
    convDesc->math = mathType;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t convDesc, cudnnMathType_t *mathType) {
    if (!live(convDesc) || !mathType) return DNN_BAD("cudnnGetConvolutionMathType", "null or destroyed argument");
    *mathType = convDesc->math;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t convDesc, int groupCount) {
    if (!live(convDesc)) return DNN_BAD("cudnnSetConvolutionGroupCount", "convDesc is null or destroyed");
    if (groupCount <= 0) return DNN_BAD("cudnnSetConvolutionGroupCount", "groupCount %d", groupCount);
    convDesc->groups = groupCount;
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------------------ activation
cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *activationDesc) {
    if (!activationDesc) return DNN_BAD("cudnnCreateActivationDescriptor", "null pointer");
    *activationDesc = new cudnnActivationStruct{kActMagic, false, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t activationDesc) {
    return destroy_desc(activationDesc, "cudnnDestroyActivationDescriptor");
}

// Every mode is accepted here; cudnnConvolutionBiasActivationForward computes RELU and IDENTITY only.
cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t activationDesc, cudnnActivationMode_t mode,
                                           cudnnNanPropagation_t reluNanOpt, double coef) {
    const char *fn = "cudnnSetActivationDescriptor";
    if (!live(activationDesc)) return DNN_BAD(fn, "not a live activation descriptor");
    if (mode < CUDNN_ACTIVATION_SIGMOID || mode > CUDNN_ACTIVATION_SWISH) return DNN_BAD(fn, "mode %d", (int)mode);
    if (reluNanOpt != CUDNN_NOT_PROPAGATE_NAN && reluNanOpt != CUDNN_PROPAGATE_NAN)
        return DNN_BAD(fn, "reluNanOpt %d", (int)reluNanOpt);
    activationDesc->set = true;
    activationDesc->mode = mode;
    activationDesc->nan = reluNanOpt;
    activationDesc->coef = coef;
    return CUDNN_STATUS_SUCCESS;
}

// (n, c, h, w) of the output: n = x's n, c = the filter's k.
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t convDesc,
                                                    const cudnnTensorDescriptor_t inputTensorDesc,
                                                    const cudnnFilterDescriptor_t filterDesc, int *n, int *c, int *h,
                                                    int *w) {
    const char *fn = "cudnnGetConvolution2dForwardOutputDim";
    if (!n || !c || !h || !w) return DNN_BAD(fn, "null output pointer");
    Conv p;
    cudnnStatus_t e = make_conv(fn, inputTensorDesc, filterDesc, convDesc, nullptr, &p);
    if (e == CUDNN_STATUS_BAD_PARAM) return e;  // the dims exist even where the compute is not supported
    *n = p.N, *c = p.K, *h = p.Ho, *w = p.Wo;
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------------ algorithm queries
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                      const cudnnFilterDescriptor_t wDesc,
                                                      const cudnnConvolutionDescriptor_t convDesc,
                                                      const cudnnTensorDescriptor_t yDesc,
                                                      cudnnConvolutionFwdAlgo_t algo, size_t *sizeInBytes) {
    const char *fn = "cudnnGetConvolutionForwardWorkspaceSize";
    if (!live(handle) || !sizeInBytes) return DNN_BAD(fn, "handle or sizeInBytes is null");
    if (!algo_valid(algo)) return DNN_BAD(fn, "algo %d", (int)algo);
    Conv p;
    cudnnStatus_t e = make_conv(fn, xDesc, wDesc, convDesc, yDesc, &p);
    if (e != CUDNN_STATUS_SUCCESS) return e;
    if (!algo_supported(p, algo)) return CUDNN_STATUS_NOT_SUPPORTED;
    *sizeInBytes = algo_workspace(p, algo);
    return CUDNN_STATUS_SUCCESS;
}

// Heuristic: every algorithm, the predicted fastest first (time -1: nothing is run). An unsupported problem gives
// every entry status NOT_SUPPORTED (the call itself succeeds, as cuDNN's).
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
                                                     const cudnnFilterDescriptor_t filterDesc,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t destDesc,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults) {
    const char *fn = "cudnnGetConvolutionForwardAlgorithm_v7";
    if (!live(handle) || !returnedAlgoCount || !perfResults)
        return DNN_BAD(fn, "handle, returnedAlgoCount or perfResults is null");
    if (requestedAlgoCount <= 0) return DNN_BAD(fn, "requestedAlgoCount %d", requestedAlgoCount);
    Conv p;
    cudnnStatus_t e = make_conv(fn, srcDesc, filterDesc, convDesc, destDesc, &p);
    if (e == CUDNN_STATUS_BAD_PARAM) return e;
    cudnnConvolutionFwdAlgoPerf_t all[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = perf_list(p, e == CUDNN_STATUS_SUCCESS, SIZE_MAX, false, all);
    *returnedAlgoCount = std::min(n, requestedAlgoCount);
    memcpy(perfResults, all, (size_t)*returnedAlgoCount * sizeof *all);
    return CUDNN_STATUS_SUCCESS;
}

// Timed search on the caller's buffers: runs the algorithms that fit workSpaceSizeInBytes (writing y = conv(x, w)
// and using the workspace), reports them by time, those needing more workspace as ALLOC_FAILED and the unsupported
// ones as NOT_SUPPORTED. It synchronises the stream (to time), so it is illegal while the stream is capturing.
cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
                                                     const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                                     const cudnnConvolutionDescriptor_t convDesc,
                                                     const cudnnTensorDescriptor_t yDesc, void *y,
                                                     const int requestedAlgoCount, int *returnedAlgoCount,
                                                     cudnnConvolutionFwdAlgoPerf_t *perfResults, void *workSpace,
                                                     size_t workSpaceSizeInBytes) {
    const char *fn = "cudnnFindConvolutionForwardAlgorithmEx";
    if (!live(handle) || !returnedAlgoCount || !perfResults)
        return DNN_BAD(fn, "handle, returnedAlgoCount or perfResults is null");
    if (requestedAlgoCount <= 0) return DNN_BAD(fn, "requestedAlgoCount %d", requestedAlgoCount);
    if (emu::stream_capturing(handle->stream)) {
        emu::capture_violation(handle->stream, fn);
        return CUDNN_STATUS_EXECUTION_FAILED_CUDART;
    }
    Conv p;
    cudnnStatus_t e = make_conv(fn, xDesc, wDesc, convDesc, yDesc, &p);
    if (e == CUDNN_STATUS_BAD_PARAM) return e;
    bool supported = e == CUDNN_STATUS_SUCCESS;
    if (!workSpace) workSpaceSizeInBytes = 0;
    cudnnConvolutionFwdAlgoPerf_t all[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = perf_list(p, supported, workSpaceSizeInBytes, true, all);
    size_t ws_used = 0;  // the largest workspace among the algorithms run
    for (int i = 0; i < n; i++)
        if (all[i].status == CUDNN_STATUS_SUCCESS) ws_used = std::max(ws_used, all[i].memory);
    if (supported && all[0].status == CUDNN_STATUS_SUCCESS) {
        e = check_operands(fn, p, x, w, y, workSpace, ws_used);
        if (e != CUDNN_STATUS_SUCCESS) return e;
        // The runs: they all compute the same y (alpha 1, beta 0), so one stands for all.
        e = from_cuda(emu::stream_work(
            handle->stream, [p, x, w, y, workSpace, ws_used] { conv_run(p, 1.0, 0.0, x, w, y, workSpace, ws_used); },
            fn));
        if (e != CUDNN_STATUS_SUCCESS) return e;
    }
    *returnedAlgoCount = std::min(n, requestedAlgoCount);
    memcpy(perfResults, all, (size_t)*returnedAlgoCount * sizeof *all);
    return CUDNN_STATUS_SUCCESS;
}

// ------------------------------------------------------------------------------------------------ the forward
// y = alpha * conv(x, w) + beta * y; alpha and beta point to host floats (the data types here are float, half and
// bf16). Checked at call time; the compute runs on the handle's stream (recorded while it is capturing).
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void *alpha, const cudnnTensorDescriptor_t xDesc,
                                      const void *x, const cudnnFilterDescriptor_t wDesc, const void *w,
                                      const cudnnConvolutionDescriptor_t convDesc, cudnnConvolutionFwdAlgo_t algo,
                                      void *workSpace, size_t workSpaceSizeInBytes, const void *beta,
                                      const cudnnTensorDescriptor_t yDesc, void *y) {
    const char *fn = "cudnnConvolutionForward";
    if (!live(handle)) return DNN_BAD(fn, "handle is null or destroyed");
    if (!alpha || !beta) return DNN_BAD(fn, "alpha or beta is null");
    if (!algo_valid(algo)) return DNN_BAD(fn, "algo %d", (int)algo);
    Conv p;
    cudnnStatus_t e = make_conv(fn, xDesc, wDesc, convDesc, yDesc, &p);
    if (e != CUDNN_STATUS_SUCCESS) return e;
    if (!algo_supported(p, algo)) return CUDNN_STATUS_NOT_SUPPORTED;
    size_t need = algo_workspace(p, algo);
    if (workSpaceSizeInBytes < need || (need && !workSpace))
        return DNN_BAD(fn, "algo %d needs %zu workspace bytes, %zu given%s", (int)algo, need, workSpaceSizeInBytes,
                       workSpace ? "" : " (null)");
    e = check_operands(fn, p, x, w, y, workSpace, need);
    if (e != CUDNN_STATUS_SUCCESS) return e;
    double a = *(const float *)alpha, b = *(const float *)beta;  // values now: the caller's floats may not outlive it
    return from_cuda(emu::stream_work(
        handle->stream, [p, a, b, x, w, y, workSpace, need] { conv_run(p, a, b, x, w, y, workSpace, need); }, fn));
}

// y = act(alpha1 * conv(x, w) + alpha2 * z + bias), rounded once (cuDNN's fused conv-bias-activation). As cuDNN
// documents it: z has y's shape and dtype (z may be y; alpha2 == 0: not read), the bias is (1, K, 1, 1) in y's
// dtype, the activation RELU or IDENTITY (IDENTITY only with IMPLICIT_PRECOMP_GEMM); others NOT_SUPPORTED.
// ARGEN_EMU_DNN_BIAS=f32 plays a library that wants a float32 bias with 16-bit data instead (the caller's fallback).
cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t handle, const void *alpha1, const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w, const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionFwdAlgo_t algo, void *workSpace, size_t workSpaceSizeInBytes, const void *alpha2,
    const cudnnTensorDescriptor_t zDesc, const void *z, const cudnnTensorDescriptor_t biasDesc, const void *bias,
    const cudnnActivationDescriptor_t activationDesc, const cudnnTensorDescriptor_t yDesc, void *y) {
    const char *fn = "cudnnConvolutionBiasActivationForward";
    if (!live(handle)) return DNN_BAD(fn, "handle is null or destroyed");
    if (!alpha1 || !alpha2) return DNN_BAD(fn, "alpha1 or alpha2 is null");
    if (!algo_valid(algo)) return DNN_BAD(fn, "algo %d", (int)algo);
    if (!live(activationDesc) || !activationDesc->set)
        return DNN_BAD(fn, "activationDesc is null, destroyed or not set");
    if (!live(zDesc) || !zDesc->set || !live(biasDesc) || !biasDesc->set)
        return DNN_BAD(fn, "zDesc or biasDesc is null, destroyed or not set");
    Conv p;
    cudnnStatus_t e = make_conv(fn, xDesc, wDesc, convDesc, yDesc, &p);
    if (e != CUDNN_STATUS_SUCCESS) return e;
    for (int i = 0; i < 4; i++)
        if (zDesc->dim[i] != yDesc->dim[i] || zDesc->stride[i] != yDesc->stride[i])
            return DNN_BAD(fn, "zDesc differs from yDesc (dim %d: %d vs %d)", i, zDesc->dim[i], yDesc->dim[i]);
    if (zDesc->dt != yDesc->dt) return DNN_BAD(fn, "z's data type differs from y's");
    if (biasDesc->dim[0] != 1 || biasDesc->dim[1] != p.K || biasDesc->dim[2] != 1 || biasDesc->dim[3] != 1)
        return DNN_BAD(fn, "biasDesc is (%d, %d, %d, %d), expected (1, %d, 1, 1)", biasDesc->dim[0], biasDesc->dim[1],
                       biasDesc->dim[2], biasDesc->dim[3], p.K);
    const char *bias_env = getenv("ARGEN_EMU_DNN_BIAS");
    bool f32_bias = bias_env && !strcmp(bias_env, "f32") && p.dt != CUDNN_DATA_FLOAT;
    if (biasDesc->dt != (f32_bias ? CUDNN_DATA_FLOAT : yDesc->dt) || biasDesc->stride[1] != 1)
        return CUDNN_STATUS_NOT_SUPPORTED;
    cudnnActivationMode_t mode = activationDesc->mode;
    if (mode != CUDNN_ACTIVATION_RELU && mode != CUDNN_ACTIVATION_IDENTITY) return CUDNN_STATUS_NOT_SUPPORTED;
    if (mode == CUDNN_ACTIVATION_IDENTITY && algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (!algo_supported(p, algo)) return CUDNN_STATUS_NOT_SUPPORTED;
    size_t need = algo_workspace(p, algo);
    if (workSpaceSizeInBytes < need || (need && !workSpace))
        return DNN_BAD(fn, "algo %d needs %zu workspace bytes, %zu given%s", (int)algo, need, workSpaceSizeInBytes,
                       workSpace ? "" : " (null)");
    e = check_operands(fn, p, x, w, y, workSpace, need);
    if (e != CUDNN_STATUS_SUCCESS) return e;
    if (!emu::device_range(bias, (size_t)p.K * dtype_size(biasDesc->dt), "cudnnConvolutionBiasActivationForward bias"))
        return CUDNN_STATUS_BAD_PARAM;
    Epilogue epi{*(const float *)alpha2, z, bias, biasDesc->dt, mode == CUDNN_ACTIVATION_RELU,
                 activationDesc->nan == CUDNN_PROPAGATE_NAN};
    if (epi.alpha2 != 0 && z != y) {
        if (!emu::device_range(z, p.y_bytes, "cudnnConvolutionBiasActivationForward z")) return CUDNN_STATUS_BAD_PARAM;
        if (ranges_overlap(y, p.y_bytes, z, p.y_bytes)) return DNN_BAD(fn, "z partly overlaps y");
    }
    double a = *(const float *)alpha1;
    return from_cuda(emu::stream_work(
        handle->stream, [p, a, x, w, y, workSpace, need, epi] { conv_run(p, a, 0.0, x, w, y, workSpace, need, &epi); },
        fn));
}

}  // extern "C"
