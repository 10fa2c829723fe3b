// Attention on the CPU: head splitting, VAR's L2-normalised q/k with per-head temperature and KV-cache append,
// and scaled dot-product attention over a cache prefix (scores and P@V through serial SGEMMs per work item).
// ref: VAR models/basic_var.py SelfAttention.forward (attn_l2_norm=True, slow path), F.scaled_dot_product_attention
// Dims: B batch, NH heads, T/Tq query tokens, Tcap cache capacity, HS head size, C = NH*HS.
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "cpu_ops.h"

// q, k, v: (B, NH, T, HS) <- qkv (B, T, 3C) split as [q | k | v], head h = columns [h*HS, (h+1)*HS) of each part.
KtStatus cpu_split_qkv_heads(KtBackend *be, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv) {
    (void)be;
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], C = NH * HS;
    const float *src = qkv->data;
    float *dst[3] = {q->data, k->data, v->data};
    size_t row = (size_t)HS * sizeof(float);
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        for (int part = 0; part < 3; part++)
            for (int64_t h = 0; h < NH; h++)
                memcpy(dst[part] + ((b * NH + h) * T + t) * HS, src + bt * 3 * C + part * C + h * HS, row);
    }
    return KT_OK;
}

// dst = src / max(||src||_2, 1e-12) (F.normalize: the norm is rounded to float before the clamp and the division).
static void l2_normalize(float *dst, const float *src, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)src[i] * src[i];
    float nrm = (float)sqrt(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    for (int64_t i = 0; i < n; i++) dst[i] = src[i] / nrm;
}

// q: (B, NH, T, HS) <- l2norm(q) * exp(min(head_scale_log[h], ln 100)); kcache, vcache: (B, NH, Tcap, HS),
// positions [t0, t0 + T) <- l2norm(k), v.
KtStatus cpu_var_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                           const KtTensor *head_scale_log, int64_t t0) {
    (void)be;
    int64_t B = q->shape[0], NH = q->shape[1], T = q->shape[2], HS = q->shape[3], C = NH * HS;
    int64_t Tcap = kcache->shape[2];
    const float ln100 = 4.605170249938965f;  // float32(log(100)), VAR's max_scale_mul
    const float *src = qkv->data, *hsl = head_scale_log->data;
    float *qd = q->data, *kd = kcache->data, *vd = vcache->data;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        const float *row = src + bt * 3 * C;
        for (int64_t h = 0; h < NH; h++) {
            float s = expf(hsl[h] < ln100 ? hsl[h] : ln100);
            float *qo = qd + ((b * NH + h) * T + t) * HS;
            l2_normalize(qo, row + h * HS, HS);
            for (int64_t i = 0; i < HS; i++) qo[i] *= s;
            int64_t c = ((b * NH + h) * Tcap + t0 + t) * HS;
            l2_normalize(kd + c, row + C + h * HS, HS);
            memcpy(vd + c, row + 2 * C + h * HS, (size_t)HS * sizeof(float));
        }
    }
    return KT_OK;
}

// Query rows per attention work item.
#define ATT_QB 64

// out (B, Tq, NH*HS)[b, :, h*HS:(h+1)*HS] = softmax(scale * q k^T + bias) v for every (b, h), keys [0, kv_len).
// Work items are (b, h, block of ATT_QB queries), each on one thread with its own (ATT_QB, kv_len) score scratch and
// serial OpenBLAS calls. Rows whose keys are all masked (-inf) give zeros.
KtStatus cpu_attention(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                       int64_t kv_len, const KtTensor *bias, float scale) {
    int64_t B = q->shape[0], NH = q->shape[1], Tq = q->shape[2], HS = q->shape[3], Tcap = k->shape[2];
    int64_t C = NH * HS, nqb = (Tq + ATT_QB - 1) / ATT_QB, qb_rows = Tq < ATT_QB ? Tq : ATT_QB;
    KT_TRY(cpu_blas_dims("kt_attention", Tq, kv_len, C));
    if (B == 0 || NH == 0 || Tq == 0 || HS == 0) return KT_OK;
    int nt = cpu_max_threads();
    size_t per = ((size_t)(qb_rows * kv_len) * sizeof(float) + 63) / 64 * 64;
    char *scratch;
    KT_TRY(cpu_scratch(be, per * (size_t)nt, (void **)&scratch));
    const float *bd = bias ? bias->data : NULL, *qd = q->data, *kd = k->data, *vd = v->data;
    float *od = out->data;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t item = 0; item < B * NH * nqb; item++) {
        int64_t bh = item / nqb, b = bh / NH, h = bh % NH, i0 = (item % nqb) * ATT_QB;
        int64_t m = Tq - i0 < ATT_QB ? Tq - i0 : ATT_QB;
        float *s = (float *)(scratch + per * (size_t)cpu_thread_id());  // (m, kv_len)
        const float *kh = kd + bh * Tcap * HS, *vh = vd + bh * Tcap * HS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)kv_len, (int)HS, scale,
                    qd + (bh * Tq + i0) * HS, (int)HS, kh, (int)HS, 0.0f, s, (int)kv_len);
        for (int64_t i = 0; i < m; i++) {
            float *si = s + i * kv_len;
            if (bd)
                for (int64_t j = 0; j < kv_len; j++) si[j] += bd[(i0 + i) * kv_len + j];
            cpu_softmax_row(si, kv_len);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)HS, (int)kv_len, 1.0f, s, (int)kv_len, vh,
                    (int)HS, 0.0f, od + (b * Tq + i0) * C + h * HS, (int)C);
    }
    return KT_OK;
}

// kt_var_attn_prep then kt_attention with softmax scale 1 (q and k are L2-normalised).
KtStatus cpu_var_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                           const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias) {
    KT_TRY(cpu_var_attn_prep(be, q, kcache, vcache, qkv, head_scale_log, t0));
    return cpu_attention(be, out, q, kcache, vcache, t0 + q->shape[2], bias, 1.0f);
}
