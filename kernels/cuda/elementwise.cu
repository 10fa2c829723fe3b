// Elementwise ops: gated residual, GELU (tanh), SiLU, broadcast add, axpby, CFG mixing, uint8 image conversion and
// the non-finite count. Each formula uses the CPU reference's float operations in its order with explicit
// round-to-nearest intrinsics (no FMA contraction), so results agree bit for bit except where libm and CUDA's
// expf/tanhf differ by an ulp.
// ref: F.gelu(approximate='tanh'), F.silu, torch.add; VAR var.py (CFG), demo_sample.ipynb (uint8 conversion)
// Dims: B batch, T tokens, C channels, V vocab, n elements.
#include "cuda_common.cuh"

#define EW_THREADS 256

static inline unsigned ew_grid(KtBackend *be, int64_t n) {
    return cuda_blocks_capped(n, EW_THREADS, (int64_t)cuda_impl(be)->sm_count * 16);
}

#define GRID_STRIDE(i, n)                                                                          \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                       \
         i += (int64_t)gridDim.x * blockDim.x)

// x[b,t,c] += h[b,t,c] * gate[b,c]. x, h: (B, T, C); gate: (B, C).
__global__ void gated_residual_kernel(float *x, const float *h, const float *__restrict__ gate, int64_t TC, int64_t C,
                                      int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t b = i / TC, c = i % C;
        x[i] = __fadd_rn(x[i], __fmul_rn(h[i], gate[b * C + c]));
    }
}

KtStatus cuda_gated_residual(KtBackend *be, KtTensor *x, const KtTensor *h, const KtTensor *gate) {
    int64_t n = kt_numel(x), T = x->shape[1], C = x->shape[2];
    if (n == 0) return KT_OK;
    gated_residual_kernel<<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>(
        (float *)x->data, (const float *)h->data, (const float *)gate->data, T * C, C, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))).
__global__ void gelu_tanh_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = gelu_tanh_f(x[i]);
}

__global__ void silu_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        y[i] = __fdiv_rn(v, __fadd_rn(1.f, expf(-v)));
    }
}

// y, x: same shape.
KtStatus cuda_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t n = kt_numel(x);
    if (n == 0) return KT_OK;
    gelu_tanh_kernel<<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>((float *)y->data, (const float *)x->data, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_silu(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t n = kt_numel(x);
    if (n == 0) return KT_OK;
    silu_kernel<<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>((float *)y->data, (const float *)x->data, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// y[i] = a[i] + b[i % nb]; T: float32 or a 16-bit map dtype (added in float32, rounded once).
template <typename T>
__global__ void add_kernel(T *y, const T *a, const T *__restrict__ b, int64_t nb, int64_t n) {
    GRID_STRIDE(i, n) y[i] = from_f32<T>(__fadd_rn(to_f32(a[i]), to_f32(b[i % nb])));
}

// Four lanes at a time when nb % 4 == 0 and everything is 16-byte aligned (residual adds on large feature maps).
__global__ void add4_kernel(float4 *y, const float4 *a, const float4 *__restrict__ b, int64_t nb4, int64_t n4) {
    GRID_STRIDE(i, n4) {
        float4 u = a[i], v = b[nb4 == n4 ? i : i % nb4];
        y[i] = make_float4(__fadd_rn(u.x, v.x), __fadd_rn(u.y, v.y), __fadd_rn(u.z, v.z), __fadd_rn(u.w, v.w));
    }
}

// 16-bit maps, eight lanes (16 bytes) at a time.
template <typename T>
__global__ void add8_kernel(CudaPack<T, 8> *y, const CudaPack<T, 8> *a, const CudaPack<T, 8> *__restrict__ b,
                            int64_t nb8, int64_t n8) {
    GRID_STRIDE(i, n8) {
        CudaPack<T, 8> u = a[i], v = b[nb8 == n8 ? i : i % nb8];
#pragma unroll
        for (int j = 0; j < 8; j++) u.v[j] = from_f32<T>(__fadd_rn(to_f32(u.v[j]), to_f32(v.v[j])));
        y[i] = u;
    }
}

template <typename T>
static KtStatus add16(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b, int64_t n, int64_t nb) {
    if (nb % 8 == 0 && cuda_aligned(y->data, 16) && cuda_aligned(a->data, 16) && cuda_aligned(b->data, 16))
        add8_kernel<T><<<ew_grid(be, n / 8), EW_THREADS, 0, cuda_stream(be)>>>(
            (CudaPack<T, 8> *)y->data, (const CudaPack<T, 8> *)a->data, (const CudaPack<T, 8> *)b->data, nb / 8, n / 8);
    else
        add_kernel<T><<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>((T *)y->data, (const T *)a->data,
                                                                          (const T *)b->data, nb, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

KtStatus cuda_add(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b) {
    int64_t n = kt_numel(a), nb = kt_numel(b);
    if (n == 0 || nb == 0) return KT_OK;
    if (a->dtype == KT_BF16) return add16<__nv_bfloat16>(be, y, a, b, n, nb);
    if (a->dtype == KT_F16) return add16<__half>(be, y, a, b, n, nb);
    if (nb % 4 == 0 && cuda_aligned(y->data, 16) && cuda_aligned(a->data, 16) && cuda_aligned(b->data, 16)) {
        add4_kernel<<<ew_grid(be, n / 4), EW_THREADS, 0, cuda_stream(be)>>>(
            (float4 *)y->data, (const float4 *)a->data, (const float4 *)b->data, nb / 4, n / 4);
        KT_CUDA_LAUNCHED();
        return KT_OK;
    }
    add_kernel<float><<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>((float *)y->data, (const float *)a->data,
                                                                           (const float *)b->data, nb, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

__global__ void axpby_kernel(float *y, float alpha, const float *a, float beta, const float *b, int64_t n) {
    GRID_STRIDE(i, n) y[i] = __fadd_rn(__fmul_rn(alpha, a[i]), __fmul_rn(beta, b[i]));
}

KtStatus cuda_axpby(KtBackend *be, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b) {
    int64_t n = kt_numel(a);
    if (n == 0) return KT_OK;
    axpby_kernel<<<ew_grid(be, n), EW_THREADS, 0, cuda_stream(be)>>>((float *)y->data, alpha, (const float *)a->data,
                                                                      beta, (const float *)b->data, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// y = a * cond - t * uncond with a = (float)(1 + (double)t) rounded once (torch with a Python scalar).
// logits: (2B, T, V) (conditional rows first); y: (B, T, V).
// A dependent launch (LlamaGen's step: after the head's GEMV, before the sampler): waits before reading the logits.
__global__ void cfg_kernel(float *y, const float *__restrict__ cond, const float *__restrict__ unc, float a, float t,
                           int64_t n) {
    pdl_wait();
    pdl_launch_dependents();
    GRID_STRIDE(i, n) y[i] = __fsub_rn(__fmul_rn(a, cond[i]), __fmul_rn(t, unc[i]));
}

KtStatus cuda_cfg_combine(KtBackend *be, KtTensor *y, const KtTensor *logits, float t) {
    int64_t n = kt_numel(y);
    if (n == 0) return KT_OK;
    const float *c = (const float *)logits->data;
    KT_CUDA_TRY(cuda_launch_pdl(be, cfg_kernel, dim3(ew_grid(be, n)), dim3(EW_THREADS), 0, (float *)y->data, c, c + n,
                                (float)(1.0 + (double)t), t, n));
    return KT_OK;
}

// Block-reduces a per-thread count and adds it to *count (one atomic per block).
__device__ __forceinline__ void add_count(unsigned long long *count, unsigned c) {
    __shared__ unsigned sh[32];
    for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = c;
    __syncthreads();
    if (threadIdx.x < 32) {
        c = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0;
        for (int o = 16; o > 0; o >>= 1) c += __shfl_xor_sync(0xffffffffu, c, o);
        if (threadIdx.x == 0 && c) atomicAdd(count, (unsigned long long)c);
    }
}

// y = (uint8)(((clamp(v, -1, 1) + 1) * 0.5) * 255) truncated; non-finite -> 0 and counted.
__global__ void image_u8_kernel(uint8_t *__restrict__ y, const float *__restrict__ x, int64_t n,
                                unsigned long long *count) {
    unsigned bad = 0;
    GRID_STRIDE(i, n) {
        float v = x[i];
        if (!isfinite(v)) {
            y[i] = 0;
            bad++;
            continue;
        }
        v = v < -1.f ? -1.f : v > 1.f ? 1.f : v;
        y[i] = (uint8_t)__fmul_rn(__fmul_rn(__fadd_rn(v, 1.f), 0.5f), 255.f);
    }
    add_count(count, bad);
}

__global__ void count_nonfinite_kernel(const float *__restrict__ x, int64_t n, unsigned long long *count) {
    unsigned bad = 0;
    GRID_STRIDE(i, n) bad += !isfinite(x[i]);
    add_count(count, bad);
}

// x: (B, H, W, C) float32; y: same shape uint8; nonfinite: (1) int64 device counter or NULL.
KtStatus cuda_image_to_u8(KtBackend *be, KtTensor *y, const KtTensor *x, KtTensor *nonfinite) {
    CudaImpl *c = cuda_impl(be);
    int64_t n = kt_numel(x);
    unsigned long long *cnt = nonfinite ? (unsigned long long *)nonfinite->data
                                        : (unsigned long long *)((char *)c->dev_small + CUDA_SMALL_COUNT);
    if (n > 0) {
        image_u8_kernel<<<ew_grid(be, n), EW_THREADS, 0, c->stream>>>((uint8_t *)y->data, (const float *)x->data, n, cnt);
        KT_CUDA_LAUNCHED();
    }
    return KT_OK;
}

// count: (1) int64 device counter, incremented.
KtStatus cuda_count_nonfinite(KtBackend *be, KtTensor *count, const KtTensor *x) {
    CudaImpl *c = cuda_impl(be);
    int64_t n = kt_numel(x);
    if (n > 0) {
        count_nonfinite_kernel<<<ew_grid(be, n), EW_THREADS, 0, c->stream>>>((const float *)x->data, n,
                                                                             (unsigned long long *)count->data);
        KT_CUDA_LAUNCHED();
    }
    return KT_OK;
}

// ----------------------------------------------------------------------------------------------- conversion
template <typename TO, typename TI>
__global__ void map_convert_kernel(TO *__restrict__ y, const TI *__restrict__ x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = from_f32<TO>(to_f32(x[i]));
}

template <typename TO>
static KtStatus convert_to(KtBackend *be, KtTensor *y, const KtTensor *x, int64_t n) {
    unsigned g = ew_grid(be, n);
    cudaStream_t st = cuda_stream(be);
    if (x->dtype == KT_BF16) map_convert_kernel<TO><<<g, EW_THREADS, 0, st>>>((TO *)y->data, (const __nv_bfloat16 *)x->data, n);
    else if (x->dtype == KT_F16) map_convert_kernel<TO><<<g, EW_THREADS, 0, st>>>((TO *)y->data, (const __half *)x->data, n);
    else map_convert_kernel<TO><<<g, EW_THREADS, 0, st>>>((TO *)y->data, (const float *)x->data, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// y, x: same shape; float32 <-> the 16-bit map dtype (same dtypes: a copy).
KtStatus cuda_convert(KtBackend *be, KtTensor *y, const KtTensor *x) {
    int64_t n = kt_numel(x);
    if (n == 0 || y->data == x->data) return KT_OK;
    if (y->dtype == x->dtype) {
        KT_CUDA_TRY(cudaMemcpyAsync(y->data, x->data, kt_nbytes(x), cudaMemcpyDeviceToDevice, cuda_stream(be)));
        return KT_OK;
    }
    if (y->dtype == KT_BF16) return convert_to<__nv_bfloat16>(be, y, x, n);
    if (y->dtype == KT_F16) return convert_to<__half>(be, y, x, n);
    return convert_to<float>(be, y, x, n);
}
