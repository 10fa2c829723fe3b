#!/usr/bin/env python3
"""extract.py's chunk extraction for the map/norm kernels (test_maps.cpp): the same two rewrites, plus END_RE 'EOF'
(the chunk runs to the end of the file, for files whose last function matters).
Usage: extract_maps.py REPO_ROOT OUT.inc   (the chunk list below)"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract  # noqa: E402  (SRC is set from sys.argv[1], as here)

_cut = extract.cut


def cut(path, start_pat, end_pat):
    if end_pat != 'EOF':
        return _cut(path, start_pat, end_pat)
    lines = open(path).read().split('\n')
    s = next(i for i, l in enumerate(lines) if re.search(start_pat, l))
    return s + 1, '\n'.join(lines[s:])


extract.cut = cut

CHUNKS = [
    extract.HELPERS,
    ['elementwise.cu', r'^#define EW_THREADS', 'EOF'],
    ['norm.cu', r'^#define ROW_THREADS', 'EOF'],
    ['resample.cu', r'^#define RS_THREADS', 'EOF'],
    # dense.cu without the cuBLASLt plan cache (lt_matmul is a stub in emu_shim_maps.h that reports "no algorithm")
    # and without the cuBLAS batched GEMM / codebook argmin
    ['dense.cu', r'^// -+ conversions$', r'^// -+ cuBLASLt$'],
    ['dense.cu', r'^// -+ kt_linear$', r'^// -+ batched fp32 GEMM$'],
    ['dense.cu', r'^// -+ embedding, split_chunks$', 'EOF'],
    # conv.cu without the cuDNN plan cache (plan_get is a stub; cuDNN's forward call a host reference)
    ['conv.cu', r'^#define CONV_WS_CAP', r'^void cuda_convs_free'],
    ['conv.cu', r'^// -+ kernels$', 'EOF'],
]

if __name__ == '__main__':
    out = [extract.chunk(*c) for c in CHUNKS]
    open(sys.argv[2], 'w').write(''.join(out))
