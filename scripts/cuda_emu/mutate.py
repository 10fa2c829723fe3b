#!/usr/bin/env python3
"""Mutants of gen_llama.inc: each a plausible kernel bug; the harness should catch every one.
Usage: mutate.py NAME DIR (reads DIR/gen_llama.inc, writes DIR/mut_NAME.inc); mutate.py list"""
import sys
M = {
 'no_merge_sync': ('    if (lane == 0) mine[HS] = m, mine[HS + 1] = l;\n    __syncthreads();',
                   '    if (lane == 0) mine[HS] = m, mine[HS + 1] = l;\n'),
 'no_prep_sync': ('            pa.q[bh * HS + 2 * j] = r0, pa.q[bh * HS + 2 * j + 1] = r1;\n        }\n        __syncthreads();',
                  '            pa.q[bh * HS + 2 * j] = r0, pa.q[bh * HS + 2 * j + 1] = r1;\n        }\n'),
 'corr_no_inf_guard': ('float corr = m == -INFINITY ? 0.f : expf(m - mn)', 'float corr = expf(m - mn)'),
 'merge_skip_last_warp': ('for (int w = 0; w < split; w++) {', 'for (int w = 0; w < split - 1; w++) {'),
 'smem_no_q': ('size_t smem = (size_t)(ATT_SPLIT * (HS + 2) + HS) * sizeof(float);',
               'size_t smem = (size_t)(ATT_SPLIT * (HS + 2)) * sizeof(float);'),
 'causal_off_by_one': ('for (int64_t j = j0; j <= p; j += step)', 'for (int64_t j = j0; j < p; j += step)'),
 'nan_dropped': ('if (d < HS) o[d] = from_f32<OT>(l != 0.f ? acc[i] / l : 0.f);',
                 'if (d < HS) o[d] = from_f32<OT>(l > 0.f ? acc[i] / l : 0.f);'),
}
name = sys.argv[1]
if name == 'list':
    print(' '.join(M))
    sys.exit(0)
a, b = M[name]
src = open(sys.argv[2] + '/gen_llama.inc').read()
assert src.count(a) == 1, (name, src.count(a))
open(f'{sys.argv[2]}/mut_{name}.inc', 'w').write(src.replace(a, b))
print(name)
