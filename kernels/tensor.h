// KtTensor: a non-owning, contiguous, row-major view (PyTorch dim order, outermost first).
// KtBuffer: owned memory on one device. Every tensor points into a buffer owned by someone else.
// Dim names used project-wide: B batch, T tokens, C channels, NH heads, HS head size, V vocab, H/W spatial.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define KT_MAX_DIMS 6

typedef enum { KT_F32 = 0, KT_F16, KT_BF16, KT_I32, KT_I64, KT_U8, KT_F64, KT_DTYPE_COUNT } KtDType;
typedef enum { KT_CPU = 0, KT_CUDA = 1 } KtDevice;

typedef struct {
    void *data;  // borrowed: owned by a KtBuffer (or a caller's array for CPU tensors)
    KtDType dtype;
    KtDevice device;
    int ndim;
    int64_t shape[KT_MAX_DIMS];
} KtTensor;

size_t kt_dtype_size(KtDType t);
const char *kt_dtype_name(KtDType t);
const char *kt_device_name(KtDevice d);

// Builds a view; unused dims are ignored. ndim 0 is a scalar. Shapes are checked to be >= 0.
KtTensor kt_tensor(void *data, KtDType dtype, KtDevice dev, int ndim, const int64_t *shape);
// Convenience builders for 1..4 dims.
KtTensor kt_tensor1(void *data, KtDType dt, KtDevice dev, int64_t d0);
KtTensor kt_tensor2(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1);
KtTensor kt_tensor3(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1, int64_t d2);
KtTensor kt_tensor4(void *data, KtDType dt, KtDevice dev, int64_t d0, int64_t d1, int64_t d2, int64_t d3);

int64_t kt_numel(const KtTensor *t);
size_t kt_nbytes(const KtTensor *t);
// Product of all dims but the last ("rows"), and the last dim.
int64_t kt_rows(const KtTensor *t);
int64_t kt_cols(const KtTensor *t);
// Same data, new shape (numel must agree; checked by caller via kt_numel when needed).
KtTensor kt_reshape(const KtTensor *t, int ndim, const int64_t *shape);
KtTensor kt_reshape1(const KtTensor *t, int64_t d0);
KtTensor kt_reshape2(const KtTensor *t, int64_t d0, int64_t d1);
KtTensor kt_reshape3(const KtTensor *t, int64_t d0, int64_t d1, int64_t d2);
KtTensor kt_reshape4(const KtTensor *t, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
// Rows [start, start+count) of the outermost dim (a contiguous sub-view).
KtTensor kt_slice0(const KtTensor *t, int64_t start, int64_t count);
// Element i of the outermost dim, with that dim dropped.
KtTensor kt_index0(const KtTensor *t, int64_t i);

bool kt_same_shape(const KtTensor *a, const KtTensor *b);
// "(2, 30, 128)" into buf.
const char *kt_shape_str(const KtTensor *t, char *buf, size_t cap);

// Float conversions used by loaders and backends (round-to-nearest-even for f32 -> 16-bit).
float kt_f16_to_f32(uint16_t h);
uint16_t kt_f32_to_f16(float f);
float kt_bf16_to_f32(uint16_t h);
uint16_t kt_f32_to_bf16(float f);
