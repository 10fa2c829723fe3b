#!/usr/bin/env python3
"""Mutants of gen_llama.inc: each a plausible kernel bug; the harness should catch every one.
Usage: mutate.py NAME DIR (reads DIR/gen_llama.inc, writes DIR/mut_NAME.inc); mutate.py list"""
import sys
M = {
 'no_merge_sync': ('    if (lane == 0) mine[HS] = m, mine[HS + 1] = l;\n    __syncthreads();',
                   '    if (lane == 0) mine[HS] = m, mine[HS + 1] = l;\n'),
 'no_prep_sync': ('this_cluster().sync();  // the head\'s Tq blocks: every new row written\n        else __syncthreads();',
                  'this_cluster().sync();  // the head\'s Tq blocks: every new row written\n'),
 # a window's blocks (one cluster per head) attend before the others' cache rows are written
 'no_prep_cluster_sync': ('        if (Tq > 1) cooperative_groups::this_cluster().sync();', '        if (Tq > 1) __syncthreads();'),
 'corr_no_inf_guard': ('float corr = m == -INFINITY ? 0.f : expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);\n        l = l * corr + e;',
                       'float corr = expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);\n        l = l * corr + e;'),
 # attend_key_chunks (the split kernel, 32 keys per warp step)
 'chunk_corr_no_inf_guard': ('float corr = m == -INFINITY ? 0.f : expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);\n        l = l * corr + warp_sum(e);',
                             'float corr = expf(m - mn), e = s == -INFINITY ? 0.f : expf(s - mn);\n        l = l * corr + warp_sum(e);'),
 'chunk_no_rescale': ('        for (int i = 0; i < MAXD; i++) acc[i] *= corr;\n', ''),
 'chunk_last_key_dropped': ('int cnt = (int)((p - base) / step + 1 < 32 ? (p - base) / step + 1 : 32);',
                            'int cnt = (int)((p - base) / step < 32 ? (p - base) / step : 32);'),
 'chunk_no_q_sync': ('qs[d] = q[wid * HS + d];\n        __syncthreads();', 'qs[d] = q[wid * HS + d];\n'),
 'merge_skip_last_warp': ('for (int w = 0; w < split; w++) {', 'for (int w = 0; w < split - 1; w++) {'),
 'smem_no_q': ('size_t smem = (size_t)(ATT_SPLIT * (HS + 2) + HS) * sizeof(float);\n    if (PREP && Tq > 1) {',
               'size_t smem = (size_t)(ATT_SPLIT * (HS + 2)) * sizeof(float);\n    if (PREP && Tq > 1) {'),
 # the PREP and plain launches share one size now: drop q's room for the plain launch only
 'smem_no_q_split': ('    } else {\n        emu::launch(dim3((unsigned)n), dim3(32 * ATT_SPLIT), (size_t)(smem),',
                     '    } else {\n        emu::launch(dim3((unsigned)n), dim3(32 * ATT_SPLIT), (size_t)(smem - HS * sizeof(float)),'),
 # value rows loaded ahead (attend_key_chunks): a row group's last row skipped
 'chunk_row_group_short': ('bool row = t0 + u < cnt;', 'bool row = t0 + u < cnt && u + 1 < RB;'),
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
