// KtTensor view helpers and 16-bit float conversions.
#include "tensor.h"

#include <stdio.h>
#include <string.h>

size_t kt_dtype_size(KtDType t) {
    switch (t) {
    case KT_F32: case KT_I32: return 4;
    case KT_F16: case KT_BF16: return 2;
    case KT_I64: case KT_F64: return 8;
    case KT_U8: return 1;
    default: return 0;
    }
}

const char *kt_dtype_name(KtDType t) {
    static const char *names[] = {"float32", "float16", "bfloat16", "int32", "int64", "uint8", "float64"};
    return (t >= 0 && t < KT_DTYPE_COUNT) ? names[t] : "?";
}

const char *kt_device_name(KtDevice d) { return d == KT_CUDA ? "cuda" : "cpu"; }

KtTensor kt_tensor(void *data, KtDType dtype, KtDevice dev, int ndim, const int64_t *shape) {
    KtTensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dtype;
    t.device = dev;
    t.ndim = ndim;
    for (int i = 0; i < ndim && i < KT_MAX_DIMS; i++) t.shape[i] = shape[i];
    return t;
}

KtTensor kt_tensor1(void *data, KtDType dt, KtDevice dev, int64_t d0) {
    return kt_tensor(data, dt, dev, 1, (int64_t[]){d0});
}
KtTensor kt_tensor2(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1) {
    return kt_tensor(data, dt, dev, 2, (int64_t[]){d0, d1});
}
KtTensor kt_tensor3(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1, int64_t d2) {
    return kt_tensor(data, dt, dev, 3, (int64_t[]){d0, d1, d2});
}
KtTensor kt_tensor4(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    return kt_tensor(data, dt, dev, 4, (int64_t[]){d0, d1, d2, d3});
}

int64_t kt_numel(const KtTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t kt_nbytes(const KtTensor *t) { return (size_t)kt_numel(t) * kt_dtype_size(t->dtype); }

int64_t kt_cols(const KtTensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }
int64_t kt_rows(const KtTensor *t) {
    int64_t c = kt_cols(t);
    return c ? kt_numel(t) / c : 0;
}

KtTensor kt_reshape(const KtTensor *t, int ndim, const int64_t *shape) {
    return kt_tensor(t->data, t->dtype, t->device, ndim, shape);
}
KtTensor kt_reshape1(const KtTensor *t, int64_t d0) { return kt_reshape(t, 1, (int64_t[]){d0}); }
KtTensor kt_reshape2(const KtTensor *t, int64_t d0, int64_t d1) {
    return kt_reshape(t, 2, (int64_t[]){d0, d1});
}
KtTensor kt_reshape3(const KtTensor *t, int64_t d0, int64_t d1, int64_t d2) {
    return kt_reshape(t, 3, (int64_t[]){d0, d1, d2});
}
KtTensor kt_reshape4(const KtTensor *t, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    return kt_reshape(t, 4, (int64_t[]){d0, d1, d2, d3});
}

KtTensor kt_slice0(const KtTensor *t, int64_t start, int64_t count) {
    KtTensor s = *t;
    int64_t inner = t->shape[0] ? kt_numel(t) / t->shape[0] : 0;
    s.data = (char *)t->data + (size_t)(start * inner) * kt_dtype_size(t->dtype);
    s.shape[0] = count;
    return s;
}

KtTensor kt_index0(const KtTensor *t, int64_t i) {
    KtTensor s = kt_slice0(t, i, 1);
    for (int d = 1; d < s.ndim; d++) s.shape[d - 1] = s.shape[d];
    s.ndim--;
    return s;
}

bool kt_same_shape(const KtTensor *a, const KtTensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *kt_shape_str(const KtTensor *t, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, t->ndim == 1 ? ",)" : ")");
    return buf;
}

// ---------------------------------------------------------------------------------------------- 16-bit floats
float kt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) { man <<= 1; exp--; }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kt_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t man = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));  // inf/nan
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);                                     // overflow
    if (exp <= 0) {                                                                        // subnormal/zero
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;  // carries into exponent correctly
    return (uint16_t)h;
}

float kt_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kt_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffff)) return (uint16_t)((x >> 16) | 0x40);  // quiet nan
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
