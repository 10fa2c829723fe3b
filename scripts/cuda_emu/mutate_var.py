#!/usr/bin/env python3
"""Mutants of gen_var.inc (extract_var.py's text of attention_flash.cu / attention.cu): each a plausible kernel bug
that test_var_attn's 'mut' set must catch. Usage: mutate_var.py NAME DIR (reads DIR/gen_var.inc, writes
DIR/mut_NAME.inc); mutate_var.py list DIR prints the names."""
import sys
M = {
    # the barrier between the fp32 -> fp16 tile conversion and its readers: without it the next issue() reuses the
    # fp32 stage (cp.async into it) while other warps still convert it, and ldmatrix reads Kh/Vh half written
    'no_stage_sync': ('            *(uint2 *)(Vh + r * DH + c4 * 4) = make_uint2(pack_h2(c.x, c.y), pack_h2(c.z, c.w));\n'
                      '        }\n        __syncthreads();\n',
                      '            *(uint2 *)(Vh + r * DH + c4 * 4) = make_uint2(pack_h2(c.x, c.y), pack_h2(c.z, c.w));\n'
                      '        }\n'),
    # cp_async_wait<1> and <0> swapped: the last tile is read before its copies land
    'wait_swapped': ('            cp_async_wait<1>();\n        } else {\n            cp_async_wait<0>();',
                     '            cp_async_wait<0>();\n        } else {\n            cp_async_wait<1>();'),
    # K's ldmatrix with V's (trans-style) row addressing: matrices 1 and 2 swapped (keys 8-15 <-> dims 8-15)
    'ldsm_k_rows': ('ldsm_x4(bf, Kh + (j * 16 + (lane & 7) + (lane >> 4) * 8) * DH + kk * 16 + ((lane >> 3) & 1) * 8);',
                    'ldsm_x4(bf, Kh + (j * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * DH + kk * 16 + (lane >> 4) * 8);'),
    # off-by-one key bound: the zero-filled key kv (score 0, v 0) joins the softmax
    'key_bound_off_by_one': ('                if (key >= kv) x = -INFINITY;\n                else if (bias && row < Tq) x += bias[(int64_t)row * kv + key] * LOG2E_F;',
                             '                if (key > kv) x = -INFINITY;\n                else if (bias && row < Tq) x += bias[(int64_t)row * kv + key] * LOG2E_F;'),
    # bias row indexed with the wrong stride (Tq instead of kv): a bias/mask off-by-layout
    'bias_stride': ('else if (bias && row < Tq) x += bias[(int64_t)row * kv + key] * LOG2E_F;',
                    'else if (bias && row < Tq) x += bias[(int64_t)row * Tq + key] * LOG2E_F;'),
    # PREP: the tile holding t0 not treated as fresh when t0 is not a multiple of BK (its new keys stay unnormalised)
    'fresh_off_by_one': ('bool fresh = PREP && (kt + 1) * BK > t0;', 'bool fresh = PREP && kt * BK > t0;'),
    # the 'fully masked so far' guard dropped: a row whose keys are all -inf (so far) computes -inf - -inf = NaN
    # (the 'l > 0' instead of 'l != 0' test is no mutant here: a NaN score or value makes the o accumulators NaN
    # through the mma, and NaN * 0 stays NaN; both kernels propagate NaN with either test)
    'masked_guard_dropped': ('float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;',
                             'float mu0 = mn0, mu1 = mn1;'),
    # the launcher's dynamic shared memory without the +8 padding of the fp16 tiles
    'smem_no_pad': ('size_t smem = (size_t)4 * BK * D * 4 + (size_t)(2 * BK + BQ) * (D + 8) * 2;',
                    'size_t smem = (size_t)4 * BK * D * 4 + (size_t)(2 * BK + BQ) * D * 2;'),
    # fp32 kernel: the barrier before reloading K/V tiles dropped
    'f32_no_reload_sync': ('    for (int k0 = 0; k0 < kv; k0 += BK) {\n        __syncthreads();',
                           '    for (int k0 = 0; k0 < kv; k0 += BK) {\n'),
}
name, d = sys.argv[1], sys.argv[2]
if name == 'list':
    print(' '.join(M))
    sys.exit(0)
src = open(d + '/gen_var.inc').read()
a, b = M[name]
assert src.count(a) == 1, (name, src.count(a))
open(f'{d}/mut_{name}.inc', 'w').write(src.replace(a, b))
print(name)
