#!/usr/bin/env python3
"""Cuts the token samplers out of kernels/cuda/ with extract.py's rewrites (launches, extern __shared__), for
test_sampler.cpp: cuda_common.cuh's helpers, sample.cu from its flag definition to the end (sample_kernel,
smooth_embed_kernel and their launchers), llama.cu's flag definition and its sampler section to the end (hf_kernel
with the radix select, the raster step counter kernels). extract.py's chunks end before a line matching END_RE; an
END_RE of 'EOF' here takes the chunk to the end of the file.
Usage: extract_sampler.py REPO_ROOT OUT.inc"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract  # noqa: E402

_cut = extract.cut


def cut(path, start_pat, end_pat):
    if end_pat != 'EOF':
        return _cut(path, start_pat, end_pat)
    import re
    lines = open(path).read().split('\n')
    s = next(i for i, l in enumerate(lines) if re.search(start_pat, l))
    return s + 1, '\n'.join(lines[s:])


extract.cut = cut
SPEC = extract.HELPERS + [
    'sample.cu', r'^#define SMP_FLAG_EMPTY', 'EOF',
    'llama.cu', r'^#define LLAMA_FLAG_EMPTY', r'^// -+ RMSNorm$',
    'llama.cu', r"^// -+ LlamaGen's sampler$", 'EOF',
]
if __name__ == '__main__':
    out = [extract.chunk(*SPEC[i:i + 3]) for i in range(0, len(SPEC), 3)]
    open(sys.argv[2], 'w').write(''.join(out))
