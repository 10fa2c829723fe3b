// Test tolerances, compared as |got - ref| <= atol + rtol * |ref|. Each entry says why it is what it is.
#pragma once

// Single fp32 elementwise ops: only libm vs. torch rounding differences (a few ulp).
#define TOL_ELEMWISE_F32 1e-6, 1e-5
// Reductions over up to a few thousand fp32 terms (norms, softmax, GEMM): summation order differs from torch.
#define TOL_REDUCE_F32 1e-5, 1e-4
// Convolutions / resampling: long dot products (k*k*Cin up to ~6000 terms) in a different order than torch.
#define TOL_CONV_F32 2e-5, 1e-4
// Whole-model fixture comparisons (issue acceptance: 1e-4 abs+rel): many layers of fp32 rounding.
#define TOL_MODEL_F32 1e-4, 1e-4
