// Attention: head splitting, VAR's L2-normalised q/k with per-head temperature appended to a KV cache, and scaled
// dot-product attention over a cache prefix. kt_attention dispatches to a fused kernel (attention_flash.cu: fp16
// tensor cores when the backend's matmul dtype is 16-bit, fp32 otherwise, head sizes 64/128, plus 32 in fp32) and
// falls back to GEMM -> softmax -> GEMM through cuBLAS for other head sizes (the VQVAE's single 640-wide head).
// ref: VAR models/basic_var.py SelfAttention.forward (attn_l2_norm=True), F.scaled_dot_product_attention
// Dims: B batch, NH heads, T/Tq query tokens, Tcap cache capacity, HS head size, C = NH*HS.
#include "cuda_common.cuh"

// q, k, v (B, NH, T, HS) <- qkv (B, T, 3C): one thread per input float (VEC = 4: float4), reads coalesced.
template <int VEC>
__global__ void split_qkv_kernel(float *__restrict__ q, float *__restrict__ k, float *__restrict__ v,
                                 const float *__restrict__ qkv, int64_t T, int64_t NH, int64_t HS, int64_t n) {
    int64_t C = NH * HS, C3v = 3 * C / VEC;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t col = (i % C3v) * VEC, bt = i / C3v, b = bt / T, t = bt % T;
        int64_t part = col / C, h = (col % C) / HS, d = col % HS;
        float *dst = part == 0 ? q : part == 1 ? k : v;
        int64_t o = ((b * NH + h) * T + t) * HS + d;
        if (VEC == 4) *(float4 *)(dst + o) = *(const float4 *)(qkv + bt * 3 * C + col);
        else dst[o] = qkv[bt * 3 * C + col];
    }
}

KtStatus cuda_split_qkv_heads(KtBackend *be, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv) {
    int64_t NH = q->shape[1], T = q->shape[2], HS = q->shape[3], n = kt_numel(qkv);
    if (n == 0) return KT_OK;
    bool vec = HS % 4 == 0 && cuda_aligned(q->data, 16) && cuda_aligned(k->data, 16) && cuda_aligned(v->data, 16) &&
               cuda_aligned(qkv->data, 16);
    unsigned cap = 16 * cuda_impl(be)->sm_count;
    if (vec)
        split_qkv_kernel<4><<<cuda_blocks_capped(n / 4, 256, cap), 256, 0, cuda_stream(be)>>>(
            (float *)q->data, (float *)k->data, (float *)v->data, (const float *)qkv->data, T, NH, HS, n / 4);
    else
        split_qkv_kernel<1><<<cuda_blocks_capped(n, 256, cap), 256, 0, cuda_stream(be)>>>(
            (float *)q->data, (float *)k->data, (float *)v->data, (const float *)qkv->data, T, NH, HS, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// dst = src / max(||src||, 1e-12) [* s], as the CPU reference: sum of squares in double, the norm rounded to float,
// then an IEEE division. One warp per row of HS values.
__device__ __forceinline__ void warp_l2norm_row(float *__restrict__ dst, const float *__restrict__ src, int64_t HS,
                                                float s, bool mul) {
    int lane = threadIdx.x & 31;
    double ss = 0;
    for (int64_t i = lane; i < HS; i += 32) ss += (double)src[i] * src[i];
    ss = warp_sum_d(ss);
    float nrm = (float)sqrt(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    for (int64_t i = lane; i < HS; i += 32) {
        float x = __fdiv_rn(src[i], nrm);
        dst[i] = mul ? __fmul_rn(x, s) : x;
    }
}

// One warp per (b, t, h): q <- l2norm(q) * exp(min(hsl[h], ln 100)); kcache/vcache rows t0+t <- l2norm(k), v.
// qkv: (B, T, 3C); q: (B, NH, T, HS); caches: (B, NH, Tcap, HS).
__global__ void var_attn_prep_kernel(float *__restrict__ q, float *__restrict__ kc, float *__restrict__ vc,
                                     const float *__restrict__ qkv, const float *__restrict__ hsl, int64_t B,
                                     int64_t T, int64_t NH, int64_t HS, int64_t Tcap, int64_t t0) {
    int64_t wid = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5, nw = B * T * NH;
    if (wid >= nw) return;
    int64_t h = wid % NH, bt = wid / NH, b = bt / T, t = bt % T, C = NH * HS;
    const float ln100 = 4.605170249938965f;  // float32(log(100)), VAR's max_scale_mul
    float lg = hsl[h] < ln100 ? hsl[h] : ln100;
    float s = (float)exp((double)lg);  // correctly rounded like the CPU's expf (glibc)
    const float *row = qkv + bt * 3 * C;
    warp_l2norm_row(q + ((b * NH + h) * T + t) * HS, row + h * HS, HS, s, true);
    int64_t c = ((b * NH + h) * Tcap + t0 + t) * HS;
    warp_l2norm_row(kc + c, row + C + h * HS, HS, 0.f, false);
    for (int64_t i = threadIdx.x & 31; i < HS; i += 32) vc[c + i] = row[2 * C + h * HS + i];
}

KtStatus cuda_var_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                            const KtTensor *head_scale_log, int64_t t0) {
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], Tcap = kcache->shape[2];
    int64_t nw = B * T * NH;
    if (nw == 0 || HS == 0) return KT_OK;
    var_attn_prep_kernel<<<cuda_blocks(nw * 32, 256), 256, 0, cuda_stream(be)>>>(
        (float *)q->data, (float *)kcache->data, (float *)vcache->data, (const float *)qkv->data,
        (const float *)head_scale_log->data, B, T, NH, HS, Tcap, t0);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// ------------------------------------------------------------------------------------------- GEMM fallback
// out (B, Tq, NH*HS)[b, t, h*HS + d] = o (B, NH, Tq, HS)[b, h, t, d], rounded to OT.
template <typename OT>
__global__ void merge_heads_kernel(OT *__restrict__ out, const float *__restrict__ o, int64_t NH, int64_t Tq,
                                   int64_t HS, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t d = i % HS, r = i / HS, t = r % Tq, bh = r / Tq, h = bh % NH, b = bh / NH;
        out[(b * Tq + t) * NH * HS + h * HS + d] = from_f32<OT>(o[i]);
    }
}

// S = scale * q k^T (+ bias) -> softmax (CPU semantics: fully masked rows give zeros) -> P v, per (b, h) batched.
// out: float32, or 16-bit in `odt` (then always through the merge pass, which rounds).
static KtStatus attention_gemm(KtBackend *be, void *outp, KtDType odt, const float *q, const float *k, const float *v,
                               int64_t B, int64_t NH, int64_t Tq, int64_t Tcap, int64_t HS, int64_t kv,
                               const float *bias, float scale) {
    int64_t BH = B * NH;
    float *out = (float *)outp;
    bool direct = odt == KT_F32 && (NH == 1 || B == 1);  // output heads then sit at a constant stride: no merge pass
    CudaCarve cv = {0};
    size_t os = cuda_carve(&cv, (size_t)(BH * Tq * kv) * 4), oo = direct ? 0 : cuda_carve(&cv, (size_t)(BH * Tq * HS) * 4);
    void *scr;
    KT_TRY(cuda_scratch(be, cv.off, &scr));
    float *S = (float *)((char *)scr + os), *O = direct ? out : (float *)((char *)scr + oo);
    KT_TRY(cuda_gemm_f32_batched(be, Tq, kv, HS, scale, q, HS, Tq * HS, k, HS, Tcap * HS, true, 0.f, S, kv, Tq * kv, BH));
    KT_TRY(cuda_softmax_rows(be, S, BH * Tq, kv, kv, bias, Tq));
    if (direct) {
        // NH == 1: sample b at b*Tq*HS; B == 1: head h at h*HS with rows NH*HS apart.
        int64_t ldc = NH * HS, sc = NH == 1 ? Tq * HS : HS;
        return cuda_gemm_f32_batched(be, Tq, HS, kv, 1.f, S, kv, Tq * kv, v, HS, Tcap * HS, false, 0.f, O, ldc, sc, BH);
    }
    KT_TRY(cuda_gemm_f32_batched(be, Tq, HS, kv, 1.f, S, kv, Tq * kv, v, HS, Tcap * HS, false, 0.f, O, HS, Tq * HS, BH));
    int64_t n = BH * Tq * HS;
    unsigned g = cuda_blocks_capped(n, 256, 16 * cuda_impl(be)->sm_count);
    if (odt == KT_BF16) merge_heads_kernel<<<g, 256, 0, cuda_stream(be)>>>((__nv_bfloat16 *)outp, O, NH, Tq, HS, n);
    else if (odt == KT_F16) merge_heads_kernel<<<g, 256, 0, cuda_stream(be)>>>((__half *)outp, O, NH, Tq, HS, n);
    else merge_heads_kernel<<<g, 256, 0, cuda_stream(be)>>>(out, O, NH, Tq, HS, n);
    KT_CUDA_LAUNCHED();
    return KT_OK;
}

// q: (B, NH, Tq, HS); k, v: (B, NH, Tcap, HS); bias: (Tq, kv_len) or NULL; out: (B, Tq, NH*HS), float32 or the
// 16-bit matmul dtype (the fp32 kernel writes float32 only: a 16-bit out it cannot take goes the GEMM way).
KtStatus cuda_attention(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                        int64_t kv_len, const KtTensor *bias, float scale) {
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3], Tcap = k->shape[2];
    if (B * NH * Tq == 0 || HS == 0) return KT_OK;
    float *qp = (float *)q->data, *kp = (float *)k->data, *vp = (float *)v->data;  // read only (no prep)
    const float *bp = bias ? (const float *)bias->data : NULL;
    KtStatus s = KT_ERR_UNSUPPORTED;
    if (be->matmul_dtype != KT_F32)
        s = cuda_attention_flash_f16(be, out->data, out->dtype, qp, kp, vp, B, NH, Tq, Tcap, HS, kv_len, bp, scale,
                                     NULL);
    if (s == KT_ERR_UNSUPPORTED && out->dtype == KT_F32)
        s = cuda_attention_flash_f32(be, (float *)out->data, qp, kp, vp, B, NH, Tq, Tcap, HS, kv_len, bp, scale);
    if (s != KT_ERR_UNSUPPORTED) return s;
    if (B * NH > INT32_MAX || Tq > INT32_MAX || kv_len > INT32_MAX)
        return KT_FAIL(KT_ERR_UNSUPPORTED, "kt_attention: shape too large for the cuBLAS path");
    return attention_gemm(be, out->data, out->dtype, qp, kp, vp, B, NH, Tq, Tcap, HS, kv_len, bp, scale);
}

// kt_var_attn_prep + kt_attention: one fused kernel with a 16-bit matmul dtype where the fp16 kernel takes the
// shape, else the two ops.
KtStatus cuda_var_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                            const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias) {
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], Tcap = kcache->shape[2];
    if (B * NH * T == 0 || HS == 0) return KT_OK;
    if (be->matmul_dtype != KT_F32) {
        CudaVarPrep prep = {(const float *)qkv->data, (const float *)head_scale_log->data, t0};
        KtStatus s = cuda_attention_flash_f16(be, out->data, out->dtype, (float *)q->data, (float *)kcache->data,
                                              (float *)vcache->data, B, NH, T, Tcap, HS, t0 + T,
                                              bias ? (const float *)bias->data : NULL, 1.f, &prep);
        if (s != KT_ERR_UNSUPPORTED) return s;
    }
    KT_TRY(cuda_var_attn_prep(be, q, kcache, vcache, qkv, head_scale_log, t0));
    return cuda_attention(be, out, q, kcache, vcache, t0 + T, bias, 1.f);
}
