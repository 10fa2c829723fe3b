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
// A float32 result rounded once to bf16 (relative 2^-9); twice that where the CPU and GPU float32 values differ by an
// ulp across a rounding boundary.
#define TOL_OUT_BF16 1e-6, 8e-3
// CUDA fused attention on fp16 tensor cores: q, k, v and the probabilities rounded to fp16 (2^-11 relative),
// scores of magnitude ~1-10 in the tests, fp32 accumulation and softmax.
#define TOL_ATTN_F16 1e-2, 1e-2
// more_smooth latents: CUDA's logf and glibc's differ by an ulp in the Gumbel noise, amplified by 1/tau (<= 200).
#define TOL_SMOOTH_F32 1e-5, 1e-4
// Whole tiny VAR with bf16 GEMM weights/inputs (fp32 accumulation) vs the official fp32 logits: bf16 keeps 8 bits of
// mantissa (relative rounding 2^-9 ~ 2e-3 per operand), compounded over 2 blocks and the head (measured 2.1e-3).
#define TOL_BF16_MODEL_L2 1e-2
// VQVAE decode with bf16 weights and feature maps vs the official fp32 image, in 8-bit levels ("a few levels"):
// ~30 conv/norm layers in bf16 at 64x64 (measured mean well under 1 level, max ~10).
#define TOL_BF16_IMAGE_MEAN_LEVELS 2.0
#define TOL_BF16_IMAGE_MAX_LEVELS 16
