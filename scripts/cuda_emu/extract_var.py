#!/usr/bin/env python3
"""extract.py for VAR's attention kernels: the same cutting and the same two rewrites (it imports extract.py), plus
END_RE 'EOF' for a chunk that runs to the end of its file. Usage: extract_var.py REPO_ROOT OUT.inc
Chunks (the tested text; everything else comes from emu_shim_var.h / emu_mma.h):
  cuda_common.cuh   helpers (cuda_blocks, warp sums, from_f32, ...) and the attention_flash.cu prototypes + CudaVarPrep
  norm.cu           the row-softmax kernel (the GEMM fallback's middle step) with ROW_THREADS / ROW_VPT
  attention_flash.cu LOG2E_F, then everything from '// --- fp16 tensor cores' on (the PTX helpers are replaced by
                    emu_mma.h)
  attention.cu      everything after the include"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import extract  # noqa: E402

_cut = extract.cut


def cut(path, start_pat, end_pat):
    if end_pat != 'EOF':
        return _cut(path, start_pat, end_pat)
    lines = open(path).read().split('\n')
    s = next(i for i, l in enumerate(lines) if re.search(start_pat, l))
    return s + 1, '\n'.join(lines[s:])


extract.cut = cut
CHUNKS = [
    ('cuda_common.cuh', r'^// -+ helpers$', r'^// -+ op entry points$'),
    ('cuda_common.cuh', r'^// attention_flash\.cu: fused kernels', r'^// sample\.cu$'),
    ('norm.cu', r'^#define ROW_THREADS', r'^// The row stays in registers'),
    ('norm.cu', r'^// -+ softmax$', r'^// y, x: \(\.\.\., V\)\.$'),
    ('attention_flash.cu', r'^#define LOG2E_F', r'^// -+ PTX helpers$'),
    ('attention_flash.cu', r'^// -+ fp16 tensor cores$', 'EOF'),
    ('attention.cu', r'^// q, k, v \(B, NH, T, HS\) <- qkv', 'EOF'),
]
if __name__ == '__main__':
    extract.SRC = sys.argv[1].rstrip('/') + '/kernels/cuda/'
    out = [extract.chunk(*c) for c in CHUNKS]
    open(sys.argv[2], 'w').write(''.join(out))
