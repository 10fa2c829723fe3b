// Normalisations and softmax: LayerNorm (non-affine), AdaLN modulation, fused LayerNorm+AdaLN, row softmax,
// GroupNorm (+ fused SiLU) on NHWC maps.
// ref: F.layer_norm(x, (C,), eps=eps); VAR basic_var.py AdaLNSelfAttn; F.softmax(x, -1); F.group_norm.
// Statistics are accumulated in double and outputs formed with the CPU reference's float operations (no FMA
// contraction), so results match it to the last bit or two. GroupNorm sums per group span up to H*W*C/groups =
// 65536*5 values in the VQVAE decoder.
// Dims: B batch, T tokens, C channels, H/W spatial, G groups.
#include "cuda_common.cuh"

#define ROW_THREADS 256
#define ROW_VPT 8  // values per thread kept in registers: rows up to 2048 wide in one pass over memory

// -------------------------------------------------------------------------------------------- LayerNorm family
// Block per row, mirroring the CPU reference: mean and the variance of the deviations in double, then
// y = x * (float)rstd + (float)(-mean * rstd) [then * (scale[b] + 1) + shift[b]], each op rounded separately.
// The row stays in registers when C <= ROW_THREADS*ROW_VPT. rows_per_b: T (rows of one sample).
// YT: float, or the 16-bit matmul dtype when the output feeds a GEMM (rounded once on store).
// RESID: first x[r, c] += h[r, c] * gate[b, c] (kt_gated_residual's float ops), written back to x; a thread re-reads
// only the columns it wrote itself.
template <bool ADALN, bool RESID, typename YT>
__global__ void __launch_bounds__(ROW_THREADS)
layernorm_kernel(YT *y, float *x, const float *h, const float *__restrict__ gate,
                 const float *__restrict__ scale, const float *__restrict__ shift, int64_t C, int64_t rows_per_b,
                 float eps) {
    __shared__ double sh[32];
    int64_t r = blockIdx.x;
    float *xr = x + r * C;
    YT *yr = y + r * C;
    float v[ROW_VPT];
    bool cached = C <= (int64_t)ROW_THREADS * ROW_VPT;
    double s = 0;
    const float *hr = RESID ? h + r * C : NULL, *g = RESID ? gate + (r / rows_per_b) * C : NULL;
    if (cached) {
#pragma unroll
        for (int i = 0; i < ROW_VPT; i++) {
            int64_t c = threadIdx.x + (int64_t)i * ROW_THREADS;
            v[i] = c < C ? xr[c] : 0.f;
            if (RESID && c < C) xr[c] = v[i] = __fadd_rn(v[i], __fmul_rn(hr[c], g[c]));
            s += v[i];
        }
    } else {
        if (RESID)
            for (int64_t c = threadIdx.x; c < C; c += ROW_THREADS) xr[c] = __fadd_rn(xr[c], __fmul_rn(hr[c], g[c]));
        for (int64_t c = threadIdx.x; c < C; c += ROW_THREADS) s += xr[c];
    }
    double mean = block_sum_d(s, sh) / (double)C, q = 0;
    if (cached) {
#pragma unroll
        for (int i = 0; i < ROW_VPT; i++) {
            int64_t c = threadIdx.x + (int64_t)i * ROW_THREADS;
            double d = v[i] - mean;
            q += c < C ? d * d : 0.0;
        }
    } else {
        for (int64_t c = threadIdx.x; c < C; c += ROW_THREADS) {
            double d = xr[c] - mean;
            q += d * d;
        }
    }
    double rstd = 1.0 / sqrt(block_sum_d(q, sh) / (double)C + (double)eps);
    float sc = (float)rstd, bi = (float)(-mean * rstd);
    const float *ms = ADALN ? scale + (r / rows_per_b) * C : NULL, *mh = ADALN ? shift + (r / rows_per_b) * C : NULL;
    for (int64_t c = threadIdx.x, i = 0; c < C; c += ROW_THREADS, i++) {
        float xv = xr[c];
        if (cached) {
#pragma unroll
            for (int j = 0; j < ROW_VPT; j++)
                if (j == i) xv = v[j];  // constant register index after unrolling
        }
        float n = __fadd_rn(__fmul_rn(xv, sc), bi);
        yr[c] = from_f32<YT>(ADALN ? __fadd_rn(__fmul_rn(n, __fadd_rn(ms[c], 1.f)), mh[c]) : n);
    }
}

// x is written only with a residual (h, gate non-NULL); without one it is read-only (cast for the shared kernel).
template <typename YT>
static KtStatus launch_layernorm(KtBackend *be, bool adaln, YT *y, float *x, const float *h, const float *gate,
                                 const float *scale, const float *shift, int64_t rows, int64_t C, int64_t rows_per_b,
                                 float eps) {
    if (rows == 0 || C == 0) return KT_OK;
    if (rows > 0x7fffffff) return KT_FAIL(KT_ERR_UNSUPPORTED, "layernorm: %lld rows", (long long)rows);
    unsigned g = (unsigned)rows;
    cudaStream_t st = cuda_stream(be);
    if (h)
        layernorm_kernel<true, true, YT><<<g, ROW_THREADS, 0, st>>>(y, x, h, gate, scale, shift, C, rows_per_b, eps);
    else if (adaln)
        layernorm_kernel<true, false, YT><<<g, ROW_THREADS, 0, st>>>(y, x, NULL, NULL, scale, shift, C, rows_per_b,
                                                                     eps);
    else
        layernorm_kernel<false, false, YT><<<g, ROW_THREADS, 0, st>>>(y, x, NULL, NULL, NULL, NULL, C, 1, eps);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// y, x: (..., C).
KtStatus cuda_layernorm(KtBackend *be, KtTensor *y, const KtTensor *x, float eps) {
    return launch_layernorm(be, false, (float *)y->data, (float *)x->data, NULL, NULL, NULL, NULL, kt_rows(x),
                            kt_cols(x), 1, eps);
}

// y, x, h: (B, T, C); gate, scale, shift: (B, C); h, gate NULL: no residual. y: float32 or the 16-bit matmul dtype.
static KtStatus layernorm_adaln_impl(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *h,
                                     const KtTensor *gate, const KtTensor *scale, const KtTensor *shift, float eps) {
    int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    float *xp = (float *)x->data;
    const float *hp = h ? (const float *)h->data : NULL, *gp = gate ? (const float *)gate->data : NULL;
    const float *sc = (const float *)scale->data, *sh = (const float *)shift->data;
    if (y->dtype == KT_BF16)
        return launch_layernorm(be, true, (__nv_bfloat16 *)y->data, xp, hp, gp, sc, sh, B * T, C, T, eps);
    if (y->dtype == KT_F16) return launch_layernorm(be, true, (__half *)y->data, xp, hp, gp, sc, sh, B * T, C, T, eps);
    return launch_layernorm(be, true, (float *)y->data, xp, hp, gp, sc, sh, B * T, C, T, eps);
}

KtStatus cuda_layernorm_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                              const KtTensor *shift, float eps) {
    return layernorm_adaln_impl(be, y, x, NULL, NULL, scale, shift, eps);
}

// One pass: x += gate * h written back, then LayerNorm + AdaLN of the new x (the two ops' float arithmetic).
KtStatus cuda_gated_residual_layernorm_adaln(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h,
                                             const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                             float eps) {
    return layernorm_adaln_impl(be, y, x, h, gate, scale, shift, eps);
}

// y[b,t,c] = x[b,t,c] * (scale[b,c] + 1) + shift[b,c]. y, x: (B, T, C).
__global__ void adaln_kernel(float *y, const float *x, const float *__restrict__ scale,
                             const float *__restrict__ shift, int64_t T, int64_t C, int64_t n) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        int64_t c = i % C, b = i / (T * C);
        y[i] = __fadd_rn(__fmul_rn(x[i], __fadd_rn(scale[b * C + c], 1.f)), shift[b * C + c]);
    }
}

KtStatus cuda_adaln_modulate(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                             const KtTensor *shift) {
    int64_t n = kt_numel(x), T = x->shape[1], C = x->shape[2];
    if (n == 0) return KT_OK;
    adaln_kernel<<<cuda_blocks_capped(n, 256, 65536), 256, 0, cuda_stream(be)>>>(
        (float *)y->data, (const float *)x->data, (const float *)scale->data, (const float *)shift->data, T, C, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------------------ softmax
// Block per row of x (row stride ld), in place allowed, as the CPU reference: e = expf(x + bias - max) (max
// propagating NaN), the sum in double, y = e * (float)(1 / sum). An all -inf row becomes zeros.
// bias: (n_rows_bias, n) indexed by row % n_rows_bias, or NULL.
__global__ void __launch_bounds__(ROW_THREADS)
softmax_kernel(float *y, const float *x, int64_t n, int64_t ld, const float *__restrict__ bias, int64_t n_rows_bias) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    int64_t r = blockIdx.x;
    const float *xr = x + r * ld;
    float *yr = y + r * ld;
    const float *br = bias ? bias + (r % n_rows_bias) * n : NULL;
    float v[ROW_VPT];
    bool cached = n <= (int64_t)ROW_THREADS * ROW_VPT;
    float m = -INFINITY;
    if (cached) {
#pragma unroll
        for (int i = 0; i < ROW_VPT; i++) {
            int64_t c = threadIdx.x + (int64_t)i * ROW_THREADS;
            v[i] = c < n ? (br ? __fadd_rn(xr[c], br[c]) : xr[c]) : -INFINITY;
            m = nan_max(m, v[i]);
        }
    } else {
        for (int64_t c = threadIdx.x; c < n; c += ROW_THREADS) m = nan_max(m, br ? __fadd_rn(xr[c], br[c]) : xr[c]);
    }
    m = warp_nan_max(m);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) shf[threadIdx.x >> 5] = m;
    __syncthreads();
    m = (threadIdx.x & 31) < (blockDim.x >> 5) ? shf[threadIdx.x & 31] : -INFINITY;
    m = warp_nan_max(m);
    if (m == -INFINITY) {
        for (int64_t c = threadIdx.x; c < n; c += ROW_THREADS) yr[c] = 0.f;
        return;
    }
    double s = 0;
    if (cached) {
#pragma unroll
        for (int i = 0; i < ROW_VPT; i++) {
            int64_t c = threadIdx.x + (int64_t)i * ROW_THREADS;
            v[i] = c < n ? expf(v[i] - m) : 0.f;
            s += v[i];
        }
    } else {
        for (int64_t c = threadIdx.x; c < n; c += ROW_THREADS) s += expf((br ? __fadd_rn(xr[c], br[c]) : xr[c]) - m);
    }
    float inv = (float)(1.0 / block_sum_d(s, shd));
    if (cached) {
#pragma unroll
        for (int i = 0; i < ROW_VPT; i++) {
            int64_t c = threadIdx.x + (int64_t)i * ROW_THREADS;
            if (c < n) yr[c] = v[i] * inv;
        }
    } else {
        for (int64_t c = threadIdx.x; c < n; c += ROW_THREADS)
            yr[c] = expf((br ? __fadd_rn(xr[c], br[c]) : xr[c]) - m) * inv;
    }
}

KtStatus cuda_softmax_rows(KtBackend *be, float *x, int64_t n_rows, int64_t n, int64_t ld, const float *bias,
                           int64_t n_rows_bias) {
    if (n_rows == 0 || n == 0) return KT_OK;
    if (n_rows > 0x7fffffff) return KT_FAIL(KT_ERR_UNSUPPORTED, "softmax: %lld rows", (long long)n_rows);
    softmax_kernel<<<(unsigned)n_rows, ROW_THREADS, 0, cuda_stream(be)>>>(x, x, n, ld, bias, n_rows_bias ? n_rows_bias : 1);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// y, x: (..., V).
KtStatus cuda_softmax(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t rows = kt_rows(x), n = kt_cols(x);
    if (rows == 0 || n == 0) return KT_OK;
    if (rows > 0x7fffffff) return KT_FAIL(KT_ERR_UNSUPPORTED, "softmax: %lld rows", (long long)rows);
    softmax_kernel<<<(unsigned)rows, ROW_THREADS, 0, cuda_stream(be)>>>((float *)y->data, (const float *)x->data, n, n,
                                                                        NULL, 1);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ---------------------------------------------------------------------------------------------------- GroupNorm
// Pass 1: per-(b, group) partial sums of x and x^2 in fp64, one per block. Grid (row chunks X, B, column chunks Z);
// block (TC, RPB): thread (tx, ty) owns VEC consecutive channels of column tx and walks the pixel rows ty, ty+RPB, ...
// of its chunk. part: (B, G, Z, X, 2) doubles; block (x, b, z) writes entry (b, g, z, x) of every group g its columns
// touch (pass 2 reads only those), so every sum is formed in a fixed order: no atomics, the same bits on every run.
// VEC consecutive values of x[i..] as floats (one vector load: x is VEC-element aligned).
template <typename T, int VEC> __device__ __forceinline__ void gn_load(float *f, const T *x) {
    CudaPack<T, VEC> t = *(const CudaPack<T, VEC> *)x;
#pragma unroll
    for (int j = 0; j < VEC; j++) f[j] = to_f32(t.v[j]);
}
template <typename T, int VEC> __device__ __forceinline__ void gn_store(T *y, const float *f) {
    CudaPack<T, VEC> t;
#pragma unroll
    for (int j = 0; j < VEC; j++) t.v[j] = from_f32<T>(f[j]);
    *(CudaPack<T, VEC> *)y = t;
}

template <typename T, int VEC>
__global__ void gn_stats_kernel(double *__restrict__ part, const T *__restrict__ x, int64_t HW, int64_t C, int G,
                                int64_t rows_per_chunk) {
    extern __shared__ double gsh[];  // (RPB, TC*VEC) sums, then sums of squares
    int TC = blockDim.x, RPB = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
    int64_t b = blockIdx.y, col = (int64_t)blockIdx.z * TC + tx, ncols = C / VEC;
    int64_t r0 = (int64_t)blockIdx.x * rows_per_chunk, r1 = r0 + rows_per_chunk < HW ? r0 + rows_per_chunk : HW;
    double s[VEC], q[VEC];
#pragma unroll
    for (int j = 0; j < VEC; j++) s[j] = q[j] = 0.0;
    if (col < ncols) {
        const T *xb = x + b * HW * C + col * VEC;
        for (int64_t r = r0 + ty; r < r1; r += RPB) {
            float f[VEC];
            gn_load<T, VEC>(f, xb + r * C);
#pragma unroll
            for (int j = 0; j < VEC; j++) {
                s[j] += f[j];
                q[j] += (double)f[j] * f[j];
            }
        }
    }
    int W = TC * VEC;
    double *ss = gsh, *qq = gsh + RPB * W;
#pragma unroll
    for (int j = 0; j < VEC; j++) {
        ss[ty * W + tx * VEC + j] = s[j];
        qq[ty * W + tx * VEC + j] = q[j];
    }
    __syncthreads();
    int tid = ty * TC + tx;
    for (int i = tid; i < W; i += TC * RPB) {  // reduce over the RPB rows: channel partials in row 0
        double a = 0.0, c2 = 0.0;
        for (int rr = 0; rr < RPB; rr++) {
            a += ss[rr * W + i];
            c2 += qq[rr * W + i];
        }
        ss[i] = a;
        qq[i] = c2;
    }
    __syncthreads();
    int64_t cpg = C / G, c0 = (int64_t)blockIdx.z * W, c1 = c0 + W < C ? c0 + W : C;
    int64_t g0 = c0 / cpg, g1 = (c1 - 1) / cpg;
    for (int64_t g = g0 + tid; g <= g1; g += TC * RPB) {
        int64_t a0 = g * cpg > c0 ? g * cpg : c0, a1 = (g + 1) * cpg < c1 ? (g + 1) * cpg : c1;
        double a = 0.0, c2 = 0.0;
        for (int64_t ch = a0; ch < a1; ch++) {
            a += ss[ch - c0];
            c2 += qq[ch - c0];
        }
        double *p = part + (((b * G + g) * gridDim.z + blockIdx.z) * gridDim.x + blockIdx.x) * 2;
        p[0] = a;
        p[1] = c2;
    }
}

// Pass 2: one warp per (b, group) sums the group's partials (lane-strided, then a shuffle tree: a fixed order) and
// writes its channels' scale and bias as the CPU forms them: sc = (float)(rstd * w), bi = (float)(b - mean * rstd *
// w) in double. part: (B, G, Z, X, 2) from pass 1 (W channels per column chunk); sb: (B, C, 2).
__global__ void gn_finalize_kernel(float *__restrict__ sb, const double *__restrict__ part, const float *__restrict__ w,
                                   const float *__restrict__ bb, int64_t B, int64_t C, int G, int X, int Z, int64_t W,
                                   double count, float eps) {
    int64_t gw = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (gw >= B * G) return;  // whole warps (blockDim is a multiple of 32)
    int64_t b = gw / G, g = gw % G, cpg = C / G, z0 = g * cpg / W, z1 = ((g + 1) * cpg - 1) / W;
    const double *p = part + ((b * G + g) * Z + z0) * X * 2;
    int64_t n = (z1 - z0 + 1) * X;
    double s = 0.0, q = 0.0;
    for (int64_t i = lane; i < n; i += 32) {
        s += p[2 * i];
        q += p[2 * i + 1];
    }
    s = warp_sum_d(s);
    q = warp_sum_d(q);
    double mean = s / count, var = q / count - mean * mean;
    double rstd = 1.0 / sqrt((var > 0 ? var : 0) + (double)eps);
    for (int64_t c = g * cpg + lane; c < (g + 1) * cpg; c += 32) {
        sb[2 * (b * C + c)] = (float)(rstd * w[c]);
        sb[2 * (b * C + c) + 1] = (float)(bb[c] - mean * rstd * w[c]);
    }
}

// Pass 3: y = x * sc[c] + bi[c] (then SiLU), VEC channels per thread. Grid (chunks, B); 32-bit indices inside one
// sample (HW*C < 2^31, checked by the launcher). y may alias x. sb: (B, C, 2).
template <bool SILU, typename T, int VEC>
__global__ void gn_apply_kernel(T *y, const T *x, const float *__restrict__ sb, uint32_t per_b, uint32_t C) {
    int64_t b = blockIdx.y;
    const T *xb = x + b * per_b;
    T *yb = y + b * per_b;
    const float2 *s2 = (const float2 *)(sb + b * C * 2);
    uint32_t nvec = per_b / VEC;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < nvec; i += gridDim.x * blockDim.x) {
        uint32_t c = (i * VEC) % C;
        float f[VEC];
        gn_load<T, VEC>(f, xb + (size_t)i * VEC);
#pragma unroll
        for (int j = 0; j < VEC; j++) {
            float2 p = s2[c + j];
            float v = __fadd_rn(__fmul_rn(f[j], p.x), p.y);
            if (SILU) v = v / (1.f + expf(-v));
            f[j] = v;
        }
        gn_store<T, VEC>(yb + (size_t)i * VEC, f);
    }
}

template <bool SILU, typename T>
static KtStatus launch_gn_apply(KtBackend *be, bool vec, T *y, const T *x, const float *sb, int64_t B,
                                int64_t per_b, int64_t C) {
    unsigned g = cuda_blocks_capped(per_b / (vec ? 4 : 1), 256, 8ll * cuda_impl(be)->sm_count * 8 / B + 1);
    dim3 grid(g, (unsigned)B);
    if (vec) gn_apply_kernel<SILU, T, 4><<<grid, 256, 0, cuda_stream(be)>>>(y, x, sb, (uint32_t)per_b, (uint32_t)C);
    else gn_apply_kernel<SILU, T, 1><<<grid, 256, 0, cuda_stream(be)>>>(y, x, sb, (uint32_t)per_b, (uint32_t)C);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// T: the dtype of x and y (float32 or the 16-bit map dtype); statistics and the affine map in float32/double.
template <typename T>
static KtStatus group_norm(KtBackend *be, bool silu, KtTensor *y, const KtTensor *x, const KtTensor *w,
                           const KtTensor *b, int G, float eps) {
    CudaImpl *ci = cuda_impl(be);
    cudaStream_t st = ci->stream;
    int64_t B = x->shape[0], HW = x->shape[1] * x->shape[2], C = x->shape[3], n = kt_numel(x);
    if (n == 0) return KT_OK;

    bool vec = C % 4 == 0 && cuda_aligned(x->data, 4 * sizeof(T));
    int VEC = vec ? 4 : 1;
    int64_t ncols = C / VEC;
    int TC = ncols < 256 ? (int)ncols : 256, RPB = 256 / TC;
    int64_t col_chunks = (ncols + TC - 1) / TC;
    int64_t want = 4ll * ci->sm_count / (B * col_chunks) + 1, max_chunks = (HW + RPB - 1) / RPB;
    int64_t chunks = want < max_chunks ? want : max_chunks, rows_per_chunk = (HW + chunks - 1) / chunks;
    chunks = (HW + rows_per_chunk - 1) / rows_per_chunk;
    if (B > 65535 || col_chunks > 65535 || HW * C >= (1ll << 31))
        return KT_FAIL(KT_ERR_UNSUPPORTED, "group_norm: (%lld, %lld, %lld) too large for one launch", (long long)B,
                       (long long)HW, (long long)C);
    CudaCarve cv = {0};
    size_t o_part = cuda_carve(&cv, (size_t)(B * G * col_chunks * chunks) * 16);
    size_t o_st = cuda_carve(&cv, (size_t)(B * C) * 8);
    void *s;
    KT_TRY(cuda_scratch(be, cv.off, &s));
    double *part = (double *)((char *)s + o_part);
    float *stats = (float *)((char *)s + o_st);
    dim3 grid((unsigned)chunks, (unsigned)B, (unsigned)col_chunks), block((unsigned)TC, (unsigned)RPB);
    size_t smem = (size_t)RPB * TC * VEC * 2 * sizeof(double);
    if (vec) gn_stats_kernel<T, 4><<<grid, block, smem, st>>>(part, (const T *)x->data, HW, C, G, rows_per_chunk);
    else gn_stats_kernel<T, 1><<<grid, block, smem, st>>>(part, (const T *)x->data, HW, C, G, rows_per_chunk);
    KT_CUDA_LAUNCHED();
    gn_finalize_kernel<<<cuda_blocks(B * G * 32, 256), 256, 0, st>>>(
        stats, part, (const float *)w->data, (const float *)b->data, B, C, G, (int)chunks, (int)col_chunks,
        (int64_t)TC * VEC, (double)HW * (double)(C / G), eps);
    KT_CUDA_LAUNCHED();
    bool vec_y = vec && cuda_aligned(y->data, 4 * sizeof(T));
    if (silu) return launch_gn_apply<true, T>(be, vec_y, (T *)y->data, (const T *)x->data, stats, B, HW * C, C);
    return launch_gn_apply<false, T>(be, vec_y, (T *)y->data, (const T *)x->data, stats, B, HW * C, C);
}

static KtStatus group_norm_any(KtBackend *be, bool silu, KtTensor *y, const KtTensor *x, const KtTensor *w,
                               const KtTensor *b, int G, float eps) {
    if (x->dtype == KT_BF16) return group_norm<__nv_bfloat16>(be, silu, y, x, w, b, G, eps);
    if (x->dtype == KT_F16) return group_norm<__half>(be, silu, y, x, w, b, G, eps);
    return group_norm<float>(be, silu, y, x, w, b, G, eps);
}

// y, x: (B, H, W, C); w, b: (C).
KtStatus cuda_group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                         int groups, float eps) {
    return group_norm_any(be, false, y, x, w, b, groups, eps);
}
KtStatus cuda_group_norm_silu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                              int groups, float eps) {
    return group_norm_any(be, true, y, x, w, b, groups, eps);
}
