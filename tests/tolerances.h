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
// CUDA with bf16/fp16 GEMM/conv weights: activations are rounded to 16 bits (2^-9 relative for bf16) before K-term
// dot products with K up to ~1500, fp32 accumulation; the CPU reference uses the same (rounded) weights in fp32.
#define TOL_GEMM_BF16 5e-2, 2e-2
// CUDA fused attention on fp16 tensor cores: q, k, v and the probabilities rounded to fp16 (2^-11 relative),
// scores of magnitude ~1-10 in the tests, fp32 accumulation and softmax.
#define TOL_ATTN_F16 1e-2, 1e-2
// more_smooth latents: CUDA's logf and glibc's differ by an ulp in the Gumbel noise, amplified by 1/tau (<= 200).
#define TOL_SMOOTH_F32 1e-5, 1e-4
