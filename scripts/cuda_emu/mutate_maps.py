#!/usr/bin/env python3
"""Mutants of gen_maps.inc (test_maps.cpp): each a plausible kernel bug that `run.sh maps mut` must catch.
Usage: mutate_maps.py NAME DIR (reads DIR/gen_maps.inc, writes DIR/mut_NAME.inc); mutate_maps.py list DIR"""
import sys
M = {
    # GroupNorm stats: the per-thread partials are reduced by other threads without the barrier between
    'gn_stats_no_barrier': ('        qq[ty * W + tx * VEC + j] = q[j];\n    }\n    __syncthreads();\n',
                            '        qq[ty * W + tx * VEC + j] = q[j];\n    }\n'),
    # GroupNorm stats: the last group touched by a column chunk is never added (wrong group bound)
    'gn_group_bound': ('for (int64_t g = g0 + tid; g <= g1; g += TC * RPB)',
                       'for (int64_t g = g0 + tid; g < g1; g += TC * RPB)'),
    # GroupNorm pass 2: a group's last column chunk left out when the group ends on a chunk boundary... or read past it
    'gn_finalize_zrange': ('z1 = ((g + 1) * cpg - 1) / W;', 'z1 = g * cpg / W;'),
    # GroupNorm apply, 4-wide: channel of the vector taken from the vector index, not the element index
    'gn_apply_channel': ('uint32_t c = (i * VEC) % C;', 'uint32_t c = i % C;'),
    # fp64 block reduction (LayerNorm, softmax): the warp partials read back without the barrier after their writes
    'block_sum_d_no_barrier': ('    if (lane == 0) sh[w] = v;\n    __syncthreads();\n    v = lane < nw ? sh[lane] : 0.0;',
                               '    if (lane == 0) sh[w] = v;\n    v = lane < nw ? sh[lane] : 0.0;'),
    # fp64 block reduction: the first barrier dropped, so a warp that finishes the previous reduction's read of sh
    # early overwrites a partial another warp has not read yet (a write-after-read race between two reductions ten
    # warp exchanges apart: only the greedy schedules, one warp running ahead, show it)
    'block_sum_d_no_first_barrier': ('    v = warp_sum_d(v);\n    __syncthreads();\n    if (lane == 0) sh[w] = v;',
                                     '    v = warp_sum_d(v);\n    if (lane == 0) sh[w] = v;'),
    # LayerNorm, row in registers: the padding slots past C enter the variance
    'ln_var_tail': ('            q += c < C ? d * d : 0.0;', '            q += d * d;'),
    # conv epilogue: cuDNN's padded output (P, Cop) read with stride Co
    'conv_finish_stride': ('float v = to_f32(yo[p * Cop + co]);', 'float v = to_f32(yo[p * Co + co]);'),
    # conv epilogue index width chosen from the output size n instead of the padded size ny (the code before the fix):
    # a 32-bit index wraps when ny >= 2^32 (run with `test_maps big`, names starting big_)
    'big_conv_idx_from_n': ('bool small = ny < (1ll << 31);', 'bool small = n < (1ll << 31);'),
    # small-M linear: the last partial group of 32 chunks skipped when K/8 is not a multiple of 32*UNROLL
    'small_m_tail': ('            if (c >= nchunk) break;', '            if (c + 32 > nchunk) break;'),
}
name = sys.argv[1]
if name == 'list':
    print(' '.join(M))
    sys.exit(0)
src = open(sys.argv[2] + '/gen_maps.inc').read()
a, b = M[name]
assert src.count(a) == 1, (name, src.count(a))
open(f'{sys.argv[2]}/mut_{name}.inc', 'w').write(src.replace(a, b))
print(name)
