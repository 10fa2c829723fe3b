#!/usr/bin/env python3
"""Mutants of gen_sampler.inc (extract_sampler.py's output): each a plausible bug in the samplers' kernels; the
`mut` set of test_sampler must catch every one (run_sampler.sh mut).
Usage: mutate_sampler.py NAME DIR   (reads DIR/gen_sampler.inc, writes DIR/mut_NAME.inc); NAME 'list' lists them."""
import sys

M = {
    # VAR: items loaded striped (idx = i * NT + tid) into the blocked sort: values stay paired with their keys, but
    # the stable sort then breaks ties by blocked position, not by vocabulary index (the wrong tie order at the cut)
    'var_tie_striped': ('            row_load4(row, V, tid * IT + i, vec, f, x);\n#pragma unroll\n'
                        '            for (int j = 0; j < 4; j++) {\n'
                        '                keys[i + j] = (x[j] != x[j]) ? -INFINITY : (x[j] == 0.f ? 0.f : x[j]);  // NaN sorts as -inf; -0 as +0\n'
                        '                vals[i + j] = tid * IT + i + j;',
                        '            row_load4(row, V, i * NT + tid * 4, vec, f, x);\n#pragma unroll\n'
                        '            for (int j = 0; j < 4; j++) {\n'
                        '                keys[i + j] = (x[j] != x[j]) ? -INFINITY : (x[j] == 0.f ? 0.f : x[j]);  // NaN sorts as -inf; -0 as +0\n'
                        '                vals[i + j] = i * NT + tid * 4 + j;'),
    # radix select: no barrier between warp 0 choosing the digit and the block reading it (between passes)
    'radix_no_pass_sync': ('kth_digit_bin(sm.tmp.hist, kk, &sm.sel_bin, &sm.sel_above);\n        __syncthreads();\n',
                           'kth_digit_bin(sm.tmp.hist, kk, &sm.sel_bin, &sm.sel_above);\n'),
    # radix select: off by one in finding the bin that holds the k-th largest
    'radix_bin_off_by_one': ('if (run + c[j] >= kk) {', 'if (run + c[j] > kk) {'),
    # LlamaGen sort path: the threshold read at rank k instead of k - 1
    'hf_topk_rank_off_by_one': ('if (tid * IT + i == top_k - 1) sm.th = -keys[i];',
                                'if (tid * IT + i == top_k) sm.th = -keys[i];'),
    # LlamaGen top-p: mass before an entry >= p instead of > p (HF keeps an entry whose prior mass equals p)
    'hf_topp_ge': ('if (fin[i] && cum / z > (double)top_p)', 'if (fin[i] && cum / z >= (double)top_p)'),
    # more_smooth: warp 0 sums the per-warp partials without waiting for them
    'smooth_no_acc_sync': ('        acc[warp][lane] = a;\n        __syncthreads();', '        acc[warp][lane] = a;'),
    # step commit: thread 0 may advance the counter before the other threads read it
    'commit_no_sync': ('    int64_t n = *step;\n    __syncthreads();\n    if (n < 0 || n >= N) return;',
                       '    int64_t n = *step;\n    if (n < 0 || n >= N) return;'),
    # the shared draw (sample_draw.cuh): threads race thread 0's reset of the first / last slots
    'draw_no_init_sync': ('    if (tid == 0) { sm.first = INT_MAX; sm.last = -1; }\n    __syncthreads();\n    double cum',
                          '    if (tid == 0) { sm.first = INT_MAX; sm.last = -1; }\n    double cum'),
    # LlamaGen launcher: dynamic shared memory short of HfSmem's tail (first / last / sel_*)
    'hf_smem_short': ('size_t smem = sizeof(HfSmem<NT, IT>);', 'size_t smem = sizeof(HfSmem<NT, IT>) - 32;'),
    # cluster sampler: the blocks' digit counts read without the cluster barrier (a block barrier only)
    'cluster_no_hist_sync': ("        cl.sync();  // every block's counts are complete\n",
                             "        __syncthreads();\n"),
    # cluster sampler: one count buffer for every pass (a block clears it while others still read the last pass's)
    'cluster_one_hist': ('unsigned *h = sm.hist[pass & 1];', 'unsigned *h = sm.hist[0];'),
    # cluster sampler: each block's weights against its own max instead of the row's
    'cluster_local_max': ('for (unsigned b = 0; b < C; b++) mx = fmaxf(mx, *cl.map_shared_rank(&sm.bmax, b));',
                          'mx = bm;'),
    # cluster sampler: a block's offset includes its own total
    'cluster_offset_incl': ('if (b < q) before += t;', 'if (b <= q) before += t;'),
    # cluster sampler, probabilities: blocks leave while others may still read their totals
    'cluster_probs_no_exit_sync': ('        cl.sync();  // no block leaves while another may still read its total\n', ''),
    # cluster sampler: rank 0 reads the cluster's first / last before every block has added its own
    'cluster_draw_no_sync': ("    cl.sync();  // every block's totals read and its indices in rank 0\n",
                             "    __syncthreads();\n"),
}
if __name__ == '__main__':
    name = sys.argv[1]
    if name == 'list':
        print(' '.join(M))
        sys.exit(0)
    src = open(sys.argv[2] + '/gen_sampler.inc').read()
    a, b = M[name]
    assert src.count(a) == 1, (name, src.count(a))
    open(f'{sys.argv[2]}/mut_{name}.inc', 'w').write(src.replace(a, b))
    print(name)
