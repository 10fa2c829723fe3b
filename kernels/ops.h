// The op interface: every heavy computation in argen goes through these functions.
// Each wrapper checks dtypes, devices and shapes once (KT_ERR_SHAPE with a message naming the op, the argument,
// expected and got), then calls the backend (be->ops->...). Outputs come first. All float tensors are float32 unless
// a backend documents reduced-precision variants. Index tensors are int32 unless stated.
// GEMM and conv weights (kt_linear w, kt_conv2d w) may also be in the backend's matmul_dtype (bf16/fp16 on CUDA).
// Map ops (kt_conv2d x and y, kt_group_norm[_silu], kt_add, kt_upsample_nearest2x, kt_convert, and the FID ops
// kt_channel_affine_relu, kt_max_pool2d, kt_avg_pool2d, kt_spatial_mean x, kt_copy_channels) also take feature maps
// in the backend's map_dtype (bf16/fp16 on CUDA with a 16-bit matmul dtype; always float32 on the CPU); they compute
// in float32 and round once on store. Where an op lists "same dtype", all its float tensors share one.
// Layout: images and feature maps are NHWC (B, H, W, C); conv weights are (Cout, kh, kw, Cin) (loaders permute
// PyTorch's OIHW once at load time). "y may alias x" means y->data == x->data is allowed.
#pragma once

#include "backend.h"

// y = x @ w^T + b.  ref: torch.nn.functional.linear
// x: (..., in)  w: (out, in)  b: (out) or NULL  y: (..., out) with the same leading dims. y must not alias x.
// With 16-bit weights (the backend's matmul dtype), x may be in that dtype too (a GEMM input written by
// kt_layernorm_adaln or kt_var_attention), and so may y (the next GEMM's input, rounded once on store); b then has
// y's dtype (cuBLASLt's bias type follows its output).
KtStatus kt_linear(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);

// Fused kt_linear + kt_gelu_tanh: y = gelu_tanh(x @ w^T + b). Shapes and dtypes as kt_linear. With 16-bit weights
// the GELU may run in the GEMM's epilogue (cuBLASLt's own tanh-GELU, within bf16 rounding of the reference).
// ref: F.gelu(F.linear(x, w, b), approximate='tanh') (VAR FFN fc1 + act)
KtStatus kt_linear_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b);

// Non-affine LayerNorm over the last dim, biased variance.  ref: F.layer_norm(x, (C,), None, None, eps)
// y, x: (..., C). y may alias x.
KtStatus kt_layernorm(KtBackend *be, KtTensor *y, const KtTensor *x, float eps);

// AdaLN modulation, per sample: y[b,t,:] = x[b,t,:] * (1 + scale[b,:]) + shift[b,:].
// y, x: (B, T, C); scale, shift: (B, C). y may alias x.
KtStatus kt_adaln_modulate(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                           const KtTensor *shift);

// Fused kt_layernorm + kt_adaln_modulate (VAR's AdaLNSelfAttn and AdaLNBeforeHead). Shapes as kt_adaln_modulate.
// y may be in the backend's matmul dtype (rounded once on store: the next GEMM's input); then it must not alias x.
KtStatus kt_layernorm_adaln(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                            const KtTensor *shift, float eps);

// Gated residual: x[b,t,:] += gate[b,:] * h[b,t,:].  x, h: (B, T, C); gate: (B, C).
KtStatus kt_gated_residual(KtBackend *be, KtTensor *x, const KtTensor *h, const KtTensor *gate);

// Fused kt_gated_residual + kt_layernorm_adaln: the residual that ends one VAR sub-block and the LayerNorm + AdaLN
// that starts the next. x += gate * h; then y = LN(x) * (1 + scale) + shift.
// x, h: (B, T, C) float32; gate, scale, shift: (B, C); y: (B, T, C), float32 or the backend's matmul dtype.
// y must not alias x or h. ref: kt_gated_residual followed by kt_layernorm_adaln (bit-identical composition).
KtStatus kt_gated_residual_layernorm_adaln(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h,
                                           const KtTensor *gate, const KtTensor *scale, const KtTensor *shift,
                                           float eps);

// Elementwise activations; y, x same shape; y may alias x.
// gelu_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).  ref: F.gelu(x, approximate='tanh')
KtStatus kt_gelu_tanh(KtBackend *be, KtTensor *y, const KtTensor *x);
// silu: x * sigmoid(x).  ref: F.silu
KtStatus kt_silu(KtBackend *be, KtTensor *y, const KtTensor *x);

// y = a + b, where b's shape equals a trailing part of a's shape (b broadcast over a's leading dims,
// e.g. a (B, T, C) + b (T, C) or b (C)). y has a's shape; y may alias a. y, a, b: same dtype (a map op).
KtStatus kt_add(KtBackend *be, KtTensor *y, const KtTensor *a, const KtTensor *b);

// y = alpha * a + beta * b; y, a, b same shape; y may alias a or b.
KtStatus kt_axpby(KtBackend *be, KtTensor *y, float alpha, const KtTensor *a, float beta, const KtTensor *b);

// Softmax over the last dim (max subtracted first; -inf entries get 0; a row that is all -inf becomes all zeros,
// where torch gives NaN).  ref: F.softmax(x, -1)
// y, x: (..., V). y may alias x.
KtStatus kt_softmax(KtBackend *be, KtTensor *y, const KtTensor *x);

// Row gather: y[i,:] = table[idx[i],:].  ref: F.embedding
// y: (N, C); table: (V, C); idx: (N) int32, each in [0, V) (checked by the backend: KT_ERR_ARG otherwise).
KtStatus kt_embedding(KtBackend *be, KtTensor *y, const KtTensor *table, const KtTensor *idx);

// Splits each row of x (B, K*C) into K chunks: y[k,b,:] = x[b, k*C:(k+1)*C]. y: (K, B, C).
// (Turns an AdaLN projection into K contiguous (B, C) modulation vectors.)
KtStatus kt_split_chunks(KtBackend *be, KtTensor *y, const KtTensor *x);

// 2-D cross-correlation, NHWC.  ref: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride)
// x: (B, H, W, Ci); w: (Co, kh, kw, Ci); b: (Co) or NULL; pad = {top, bottom, left, right} zero padding;
// y: (B, Ho, Wo, Co) with Ho = (H + top + bottom - kh) / stride + 1 (same for W). y must not alias x.
// x and y are each float32 or the map dtype (a map op; b stays float32).
KtStatus kt_conv2d(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                   int stride, const int pad[4]);
// The same followed by ReLU: y = max(conv(x, w) + b, 0), NaN stays NaN; b (Co) float32 is required. A conv with
// BatchNorm folded into its weights and bias (the Inception network's 16-bit path): on CUDA one cuDNN call where the
// fused conv-bias-activation is faster than the conv and a separate pass (timed per shape), else the conv with the
// bias and ReLU in its finishing pass.  ref: F.relu(F.conv2d(F.pad(x, ...), w, b, stride))
KtStatus kt_conv2d_bias_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                             int stride, const int pad[4]);

// GroupNorm over (C/groups channels x H x W) per sample, affine.  ref: F.group_norm(x, groups, w, b, eps)
// y, x: (B, H, W, C), same dtype (a map op); w, b: (C) float32; C % groups == 0. y may alias x.
KtStatus kt_group_norm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, const KtTensor *b,
                       int groups, float eps);
// Fused kt_group_norm followed by SiLU. Same shapes.
KtStatus kt_group_norm_silu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w,
                            const KtTensor *b, int groups, float eps);

// Nearest-neighbour 2x upsampling: y[b, y, x, c] = x[b, y/2, x/2, c].  ref: F.interpolate(scale_factor=2)
// x: (B, H, W, C); y: (B, 2H, 2W, C); same dtype (a map op).
KtStatus kt_upsample_nearest2x(KtBackend *be, KtTensor *y, const KtTensor *x);

// Bicubic resize, A = -0.75, align_corners=False, border-clamped taps, no antialias.
// ref: F.interpolate(mode='bicubic', align_corners=False). x: (B, H, W, C); y: (B, Ho, Wo, C).
KtStatus kt_resize_bicubic(KtBackend *be, KtTensor *y, const KtTensor *x);

// Area resize = adaptive average pooling with floor/ceil windows.  ref: F.interpolate(mode='area')
// x: (B, H, W, C); y: (B, Ho, Wo, C).
KtStatus kt_resize_area(KtBackend *be, KtTensor *y, const KtTensor *x);

// Nearest codeword by squared L2 computed as |z|^2 + |e|^2 - 2 z.e in float32; first index on ties.
// ref: VAR quant.py VectorQuantizer2.f_to_idxBl_or_fhat.  z: (N, D); codebook: (V, D); idx: (N) int32.
KtStatus kt_codebook_argmin(KtBackend *be, KtTensor *idx, const KtTensor *z, const KtTensor *codebook);

// Splits a fused projection into heads: qkv (B, T, 3*NH*HS) -> q, k, v each (B, NH, T, HS).
KtStatus kt_split_qkv_heads(KtBackend *be, KtTensor *q, KtTensor *k, KtTensor *v, const KtTensor *qkv);

// VAR attention inputs with L2-normalised q/k and per-head temperature, appending to a KV cache.
// ref: VAR models/basic_var.py SelfAttention.forward (attn_l2_norm=True)
// qkv: (B, T, 3C) with C = NH*HS (bias already added); head_scale_log: (NH) = scale_mul_1H11.
// q: (B, NH, T, HS) <- l2norm(q) * exp(min(head_scale_log, ln 100));
// kcache, vcache: (B, NH, Tcap, HS); positions [t0, t0+T) <- l2norm(k), v. Requires t0 + T <= Tcap.
KtStatus kt_var_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                          const KtTensor *head_scale_log, int64_t t0);

// Scaled dot-product attention over the first kv_len keys.  ref: F.scaled_dot_product_attention
// q: (B, NH, Tq, HS); k, v: (B, NH, Tcap, HS) with kv_len <= Tcap; bias: (Tq, kv_len) additive (0 / -inf
// masks) or NULL; scale multiplies q.k. out: (B, Tq, NH*HS) (heads concatenated, ready for the output projection),
// float32 or the backend's matmul dtype (the projection's GEMM input, rounded once on store).
// A query whose keys are all masked gets a zero output row (torch: NaN).
KtStatus kt_attention(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                      int64_t kv_len, const KtTensor *bias, float scale);

// VAR self-attention step: kt_var_attn_prep(q, kcache, vcache, qkv, head_scale_log, t0) followed by
// kt_attention(out, q, kcache, vcache, t0 + T, bias, 1) (q and k are L2-normalised: softmax scale 1).
// ref: VAR models/basic_var.py SelfAttention.forward (attn_l2_norm=True, KV cache)
// qkv: (B, T, 3C), C = NH*HS; head_scale_log: (NH); q: (B, NH, T, HS) receives the scaled normalised queries;
// kcache, vcache: (B, NH, Tcap, HS), positions [t0, t0+T) written; bias: (T, t0+T) or NULL;
// out: (B, T, C), float32 or the backend's matmul dtype. Requires t0 + T <= Tcap.
// A backend may fuse both steps (CUDA with a 16-bit matmul dtype: one kernel that normalises the new keys itself).
KtStatus kt_var_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                          const KtTensor *qkv, const KtTensor *head_scale_log, int64_t t0, const KtTensor *bias);

// Classifier-free guidance mix: y = (1 + t) * logits[:B] - t * logits[B:].  logits: (2B, T, V); y: (B, T, V).
KtStatus kt_cfg_combine(KtBackend *be, KtTensor *y, const KtTensor *logits, float t);

// Samples one token per row with temperature / top-k / top-p (samplers/sampling.h smp_sample_row), masking
// logits in place. logits: (B, T, V); tokens: (B, T) int32; image_ids: (B) int64 on the backend's device.
// Row (b, t) draws from the Philox stream at (params.seed, image_ids[b], pos0 + t).
KtStatus kt_sample_top_k_top_p(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                               int64_t pos0, SmpParams params);

// VAR more_smooth latents (smp_smooth_embed_row per row). h: (B, T, D); logits: (B, T, V) (masked by the
// sampler); codebook: (V, D); image_ids: (B) int64.
KtStatus kt_smooth_embed(KtBackend *be, KtTensor *h, const KtTensor *logits, const KtTensor *codebook,
                         float ratio, const KtTensor *image_ids, int64_t pos0, uint64_t seed);

// Decoder output to 8-bit pixels: y = (uint8)(255 * (clamp(x, -1, 1) + 1) / 2), truncating like the VAR demo.
// x: (B, H, W, C) float32; y: same shape uint8. NaN/Inf inputs map to 0 and are added to `nonfinite`, a (1) int64
// counter on the backend's device (or NULL). No sync: safe inside a captured graph.
KtStatus kt_image_to_u8(KtBackend *be, KtTensor *y, const KtTensor *x, KtTensor *nonfinite);

// Adds the number of NaN/Inf entries of the float32 tensor x to `count`, a (1) int64 counter on the backend's
// device. No sync: read the counter with kt_download after the work that matters.
KtStatus kt_count_nonfinite(KtBackend *be, KtTensor *count, const KtTensor *x);

// Dtype conversion with round-to-nearest-even: y = (dtype of y) x. y, x: same shape, each float32 or the map dtype
// (a map op; float32 to float32 is a copy). y must not alias x unless both have the same dtype.
KtStatus kt_convert(KtBackend *be, KtTensor *y, const KtTensor *x);

// ------------------------------------------------------------------------------------------- raster (LlamaGen) ops
// RMSNorm over the last dim: y = x * rsqrt(mean(x^2) + eps) * w.  ref: LlamaGen gpt.py RMSNorm
// y, x: (..., C) float32; w: (C). y may alias x. y may instead be in the backend's matmul dtype (rounded once on
// store: the next GEMM's input); then it must not alias x.
KtStatus kt_rmsnorm(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *w, float eps);

// Fused residual + RMSNorm: the residual that ends one LlamaGen sub-block and the RMSNorm that starts the next.
// x += h; then y = RMSNorm(x) * w. x, h: (..., C) float32; w: (C); y: x's shape, float32 or the backend's matmul
// dtype. y must not alias x or h. ref: kt_add then kt_rmsnorm (bit-identical composition).
KtStatus kt_add_rmsnorm(KtBackend *be, KtTensor *y, KtTensor *x, const KtTensor *h, const KtTensor *w, float eps);

// SwiGLU gate on the joint output of the w1 | w3 GEMM: y = silu(a[..., :F]) * a[..., F:].
// ref: F.silu(w1(x)) * w3(x) (LlamaGen FeedForward). a: (..., 2F) float32; y: (..., F), float32 or the backend's
// matmul dtype (the w2 GEMM's input, rounded once on store).
KtStatus kt_swiglu(KtBackend *be, KtTensor *y, const KtTensor *a);

// A LlamaGen sub-block's input projection (and the head's): hn = RMSNorm(x) * nw, rounded to hn's dtype
// (kt_rmsnorm), then y = hn @ w^T (kt_linear, no bias). x: (..., C) float32; nw: (C); hn: x's shape, float32 or w's
// 16-bit dtype, a scratch whose contents are unspecified afterwards (a fused backend keeps it on chip); w: (N, C);
// y: (..., N) float32, not aliasing x. ref: the composition (what the CPU runs).
KtStatus kt_rmsnorm_linear(KtBackend *be, KtTensor *y, KtTensor *hn, const KtTensor *x, const KtTensor *nw,
                           const KtTensor *w, float eps);
// The head's kt_rmsnorm_linear followed by kt_cfg_combine (LlamaGen's guided decode step): logits = RMSNorm(x) @
// w^T as kt_rmsnorm_linear, then lc = (1 + t) * logits[:B] - t * logits[B:] as kt_cfg_combine. x: (2B, T, C) float32
// (conditional rows first); hn: x's shape, scratch as for kt_rmsnorm_linear; logits: (2B, T, N) float32, a scratch
// whose contents are unspecified afterwards (a fused backend combines the two halves on chip and never stores them);
// lc: (B, T, N) float32. None of lc, logits, hn aliases x or another. ref: the composition (what the CPU runs).
KtStatus kt_rmsnorm_linear_cfg(KtBackend *be, KtTensor *lc, KtTensor *logits, KtTensor *hn, const KtTensor *x,
                               const KtTensor *nw, const KtTensor *w, float eps, float t);

// The first half of a LlamaGen FFN: hn = RMSNorm(x) * nw, a = hn @ w13^T, g = silu(a[..., :F]) * a[..., F:]
// (kt_rmsnorm, kt_linear, kt_swiglu). w13: (2F, C) (w1 rows, then w3 rows); a: (..., 2F) float32 scratch; g:
// (..., F) float32 or the matmul dtype (the w2 GEMM's input). hn and a: unspecified afterwards; g, a, hn, x distinct.
KtStatus kt_rmsnorm_linear_swiglu(KtBackend *be, KtTensor *g, KtTensor *a, KtTensor *hn, const KtTensor *x,
                                  const KtTensor *nw, const KtTensor *w13, float eps);

// A sub-block's output projection and its residual: h = inp @ w^T, then x += h (kt_linear, kt_add). inp: (..., K)
// float32 or w's 16-bit dtype; w: (C, K); x, h: (..., C) float32, h a scratch (unspecified afterwards; a backend may
// add into x directly). x must not alias h or inp.
KtStatus kt_linear_residual(KtBackend *be, KtTensor *x, KtTensor *h, const KtTensor *inp, const KtTensor *w);

// LlamaGen attention inputs: 2D rotary embedding of q and k from a table, K/V written at explicit cache positions.
// ref: LlamaGen gpt.py Attention.forward (apply_rotary_emb, KVCache.update)
// qkv: (B, T, 3C) with C = NH*HS (q | k | v, head h = columns [h*HS, (h+1)*HS) of each part);
// rope: (P, HS/2, 2) (cos, sin) per sequence position; positions: (B, T) int32, each in [0, min(P, Tcap)).
// Pair j of a head vector x is (x[2j], x[2j+1]): x'[2j] = x[2j] c_j - x[2j+1] s_j, x'[2j+1] = x[2j+1] c_j + x[2j] s_j.
// q: (B, NH, T, HS) <- rotated q; kcache, vcache: (B, NH, Tcap, HS), row positions[b, t] <- rotated k, v; the
// caches float32, or both in the backend's 16-bit matmul dtype (CUDA: rounded once on store, as the official bf16
// model keeps its cache).
// Tokens of one row that share a position must carry identical values (the write order is unspecified).
KtStatus kt_llama_attn_prep(KtBackend *be, KtTensor *q, KtTensor *kcache, KtTensor *vcache, const KtTensor *qkv,
                            const KtTensor *rope, const KtTensor *positions);

// Attention causal by position: query (b, t) attends cache rows [0, positions[b, t]] (whatever they hold, e.g.
// zeros never written), softmax(scale * q.k) v. ref: F.scaled_dot_product_attention with LlamaGen's positional
// causal mask (mask[input_pos]). q: (B, NH, Tq, HS); k, v: (B, NH, Tcap, HS); positions: (B, Tq) int32 in
// [0, Tcap); k and v float32 or both the backend's 16-bit matmul dtype. out: (B, Tq, NH*HS) (heads concatenated),
// float32 or the backend's matmul dtype (the output projection's input, rounded once on store).
KtStatus kt_attention_pos(KtBackend *be, KtTensor *out, const KtTensor *q, const KtTensor *k, const KtTensor *v,
                          const KtTensor *positions, float scale);

// kt_llama_attn_prep then kt_attention_pos over the caches it wrote (a LlamaGen layer's attention, the
// composition's results: q and the cache rows are written too). Backends may fuse the two (CUDA: one kernel for
// single-token steps over caches longer than 32 rows). Shapes and dtypes as the two ops.
KtStatus kt_llama_attention(KtBackend *be, KtTensor *out, KtTensor *q, KtTensor *kcache, KtTensor *vcache,
                            const KtTensor *qkv, const KtTensor *rope, const KtTensor *positions, float scale);

// Row L2 normalisation: y = x / max(||x||_2, 1e-12).  ref: F.normalize(x, p=2, dim=-1)
// y, x: (..., D). y may alias x.
KtStatus kt_l2_normalize(KtBackend *be, KtTensor *y, const KtTensor *x);

// LlamaGen's sampler (samplers/sampling.h smp_sample_hf_row): logits / max(temperature, 1e-5), HF top-k (keep >= the
// k-th largest) and HF top-p (descending order, keep while the mass before an entry is <= top_p; the top entry
// always stays), then one draw. logits: (B, T, V), masked in place; tokens: (B, T) int32; image_ids: (B) int64;
// positions: (B, T) int32. Row (b, t) draws from the Philox stream (params.seed, image_ids[b], positions[b, t],
// SMP_STREAM_TOKEN); rows with a negative position are skipped (their token is not written).
// top_k <= 0: off; top_p >= 1: off.  ref: LlamaGen generate.py sample, top_k_top_p_filtering
KtStatus kt_sample_llama(KtBackend *be, KtTensor *tokens, KtTensor *logits, const KtTensor *image_ids,
                         const KtTensor *positions, SmpParams params);

// The probabilities LlamaGen's sampler draws from: probs = softmax(filter(logits / max(temperature, 1e-5))) with the
// filters of kt_sample_llama (filtered entries get 0). ref: LlamaGen generate.py logits_to_probs
// probs, logits: (B, T, V); logits is masked in place. probs may alias logits.
KtStatus kt_probs_llama(KtBackend *be, KtTensor *probs, KtTensor *logits, SmpParams params);

// Sequential raster decoding driven by a step counter on the device, so that one captured step (a CUDA graph) serves
// every token: step (1) int32 holds n, the image token about to be sampled; seq (N, S) int32 holds the sampled tokens
// position-major (image b at column b).
// kt_raster_step_inputs, for 1 <= n <= N-1: tok[r] = seq[n-1, r % B] (rows B.. repeat the images: CFG's null-class
// half), pos[r] = n (token n-1 sits at sequence position n, behind the class token; n is also the sampler's RNG
// position). tok, pos: (R) int32 with R a multiple of B, B <= S.
// kt_raster_step_commit, for 0 <= n <= N-1: seq[n, b] = sampled[b] for b < B, then step = n + 1. sampled: (B) int32.
// A counter outside those ranges is an error on the CPU; the CUDA kernels then write nothing (memory-safe).
KtStatus kt_raster_step_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, const KtTensor *seq, const KtTensor *step,
                               int64_t B);
KtStatus kt_raster_step_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, KtTensor *step);
// Window forwards from a plan on the device (ZipAR), so that the loop needs no host round trip: feeds (T, 3) int32
// rows (token_cell, pos, out_cell) describe input j of every image: its token at cell token_cell of seq (0 when
// token_cell < 0) at sequence position pos, and the cell its output is sampled into (out_cell < 0: not sampled).
// seq (N, S) int32 holds the image tokens by cell, position-major as above (image b at column b).
// kt_raster_window_inputs: tok[r, j] = seq[token_cell_j, r % B], pos[r, j] = pos_j (tok, pos: (R, T), R a multiple
// of B: rows B.. repeat the images, CFG's null-class half); spos[b, j] = out_cell_j (the sampler's RNG position).
// spos: (B, T), B <= S.
// kt_raster_window_commit: seq[out_cell_j, b] = sampled[b, j] where out_cell_j >= 0. sampled: (B, T).
// A cell outside [-1, N) is an error on the CPU; the CUDA kernels skip it (memory-safe).
KtStatus kt_raster_window_inputs(KtBackend *be, KtTensor *tok, KtTensor *pos, KtTensor *spos, const KtTensor *feeds,
                                 const KtTensor *seq);
KtStatus kt_raster_window_commit(KtBackend *be, KtTensor *seq, const KtTensor *sampled, const KtTensor *feeds);

// ------------------------------------------------------------------------------------- FID Inception-v3 ops (eval/)
// Inception input from 8-bit images (spec/fid.md section 1.1); mode: KtFidResize (declared in backend.h for the
// vtable): KT_FID_RESIZE_PYTORCH or KT_FID_RESIZE_ADM. In float32 in the order stated here, per axis with
// scale = (float)in / (float)out:
// - PYTORCH (torch's CPU upsample_bilinear2d, bit for bit): s = (double)scale * (o + 0.5) - 0.5 in double (aten's
//   CPU acc_type), clamped at 0; lo = (int)s, hi = lo + (lo < in - 1); w1 = (float)(s - lo), w0 = 1 - w1. Rows
//   t = fmaf(w0x, v[lo], w1x * v[hi]), then out = fmaf(w0y, t_lo, w1y * t_hi) (the FMA contraction of aten's
//   `t0 * w0 + t1 * w1` in torch's AVX2 build); then 2 * out - 1.
// - ADM: s = (float)o * scale; lo = floor(s), hi = min(lo + 1, in - 1), f = s - lo; top = TL + (TR - TL) * fx,
//   bottom = BL + (BR - BL) * fx, out = top + (bottom - top) * fy (no FMA); then (out - 128) * 0.0078125.
// x: (B, H, W, 3) uint8; y: (B, Ho, Wo, 3) float32 (299 x 299 for the FID network). Any sizes >= 1 (up or down).
// ref: F.interpolate(x / 255, size, mode='bilinear', align_corners=False) * 2 - 1 (pytorch-fid);
//      TF1 ResizeBilinear(align_corners=False, half_pixel_centers=False) (ADM evaluator)
KtStatus kt_fid_preprocess(KtBackend *be, KtTensor *y, const KtTensor *x, KtFidResize mode);

// Inference BatchNorm folded to a per-channel affine, then ReLU: y = max(x * scale[c] + shift[c], 0), the product
// and the sum rounded separately (no FMA); NaN stays NaN.  ref: F.relu(x * scale + shift)
// y, x: (..., C), same dtype (a map op); scale, shift: (C) float32. y may alias x.
KtStatus kt_channel_affine_relu(KtBackend *be, KtTensor *y, const KtTensor *x, const KtTensor *scale,
                                const KtTensor *shift);
// The same written into channels [yc0, yc0 + C) of y (the branch concatenation of an Inception block, no copy pass):
// y[..., yc0 + c] = max(x[..., c] * scale[c] + shift[c], 0). x: (..., C); y: (..., Cy) with x's leading dims,
// 0 <= yc0, yc0 + C <= Cy; same dtype. In place only as kt_channel_affine_relu (y = x, yc0 = 0); otherwise y and x
// must not overlap.
KtStatus kt_channel_affine_relu_into(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, const KtTensor *scale,
                                     const KtTensor *shift);

// k x k max pooling, stride s, padding p (padded taps never win: -inf), floor mode; NaN wins like torch's.
// ref: F.max_pool2d. k >= 1, stride >= 1, 0 <= pad < k (every window holds an in-bounds tap), H + 2p >= k.
// x: (B, H, W, C); y: (B, Ho, Wo, C), Ho = (H + 2p - k) / s + 1 (same for W); same dtype (a map op). y must not
// alias x.
KtStatus kt_max_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad);

// k x k average pooling, stride s, padding p, dividing by the number of in-bounds taps (TF "SAME" pooling): float32
// sum of the in-bounds taps in (ky, kx) order, then / count.  ref: F.avg_pool2d(count_include_pad=False).
// Arguments and shapes as kt_max_pool2d.
KtStatus kt_avg_pool2d(KtBackend *be, KtTensor *y, const KtTensor *x, int k, int stride, int pad);

// Global average over H and W: y[b, c] = mean_{h,w} x[b, h, w, c], accumulated in float32 in (h, w) order, then
// divided by H * W. ref: F.adaptive_avg_pool2d(x, 1) (torch: x.mean((-1, -2))).
// x: (B, H, W, C) float32 or the map dtype, H, W >= 1; y: (B, C) float32.
KtStatus kt_spatial_mean(KtBackend *be, KtTensor *y, const KtTensor *x);

// Channel-slice copy (concatenation along C, and channel selection):
// y[b, h, w, yc0 + i] = x[b, h, w, xc0 + i] for i in [0, n). x: (B, H, W, Cx); y: (B, H, W, Cy); same dtype (a map
// op). Requires n >= 0, 0 <= xc0, xc0 + n <= Cx, 0 <= yc0, yc0 + n <= Cy. y must not alias x.
KtStatus kt_copy_channels(KtBackend *be, KtTensor *y, int64_t yc0, const KtTensor *x, int64_t xc0, int64_t n);
