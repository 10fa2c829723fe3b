#!/usr/bin/env python3
"""Cuts kernels and their launchers out of kernels/cuda/ between fixed markers and applies the mechanical rewrites g++
needs (line count preserved, #line directives keep the original line numbers):
  NAME<<<G, B, S, STREAM>>>(ARGS)   ->  emu::launch(dim3(G), dim3(B), (S), [&] { NAME(ARGS); })
  extern __shared__ [__align__(n)] T name[];  ->  T *name = (T *)emu::dyn_smem();
  #include <cub/...>, <cooperative_groups.h>  ->  (blank: emu_cub.h, emu_cuda.h)
Everything else is the project's text, unchanged.
Usage: extract.py REPO_ROOT OUT.inc SUITE              (llama | sampler | var | maps: the chunk sets below)
       extract.py REPO_ROOT OUT.inc [FILE START_RE END_RE]...
FILE is relative to kernels/cuda/; a chunk runs from the first line matching START_RE up to, not including, the next
line matching END_RE (END_RE 'EOF': to the end of the file)."""
import re
import sys

SRC = sys.argv[1].rstrip('/') + '/kernels/cuda/'


def cut(path, start_pat, end_pat):
    lines = open(path).read().split('\n')
    s = next(i for i, l in enumerate(lines) if re.search(start_pat, l))
    e = len(lines) if end_pat == 'EOF' else next(i for i, l in enumerate(lines) if i > s and re.search(end_pat, l))
    return s + 1, '\n'.join(lines[s:e])  # 1-based first line


def balanced(text, i, open_c, close_c):
    """text[i] == open_c; returns the index just past the matching close_c."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_c:
            depth += 1
        elif text[j] == close_c:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError('unbalanced')


def split_top(s):
    out, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            out.append(cur)
            cur = ''
        else:
            cur += ch
    out.append(cur)
    return [x.strip() for x in out]


def kernel_name_start(t, i):
    """t[i:i+3] == '<<<': the index where the launched kernel's name starts (an identifier, optionally followed by
    <template args>)."""
    j = i
    if t[j - 1] == '>':
        depth, k = 0, j - 1
        while True:
            if t[k] == '>':
                depth += 1
            elif t[k] == '<':
                depth -= 1
                if depth == 0:
                    break
            k -= 1
        j = k
    return re.search(r'[A-Za-z_]\w*$', t[:j]).start()


def rewrite_launches(t):
    n = 0
    while True:
        i = t.find('<<<')
        if i < 0:
            return t, n
        name_start = kernel_name_start(t, i)
        name = t[name_start:i]
        e = t.index('>>>', i)
        cfg = split_top(t[i + 3:e])
        assert len(cfg) in (2, 3, 4), cfg
        grid, block = cfg[0], cfg[1]
        smem = cfg[2] if len(cfg) > 2 else '0'
        assert t[e + 3] == '(', t[e:e + 20]
        a_end = balanced(t, e + 3, '(', ')')
        args = t[e + 3:a_end]
        rep = f'emu::launch(dim3({grid}), dim3({block}), (size_t)({smem}), [&] {{ {name}{args}; }})'
        assert '\n' not in t[name_start:e + 3]
        t = t[:name_start] + rep + t[a_end:]
        n += 1


def rewrite_extern_shared(t):
    pat = re.compile(r'extern __shared__ (?:__align__\(\d+\) )?([A-Za-z_][\w ]*?)\s+(\w+)\[\];')
    return pat.subn(lambda m: f'{m.group(1)} *{m.group(2)} = ({m.group(1)} *)emu::dyn_smem();', t)


def blank_includes(t):
    """#include <cub/...> and <cooperative_groups.h> lines become blank (emu_cub.h and emu_cuda.h stand in)."""
    return '\n'.join('' if re.match(r'\s*#include <(cub/|cooperative_groups)', l) else l for l in t.split('\n'))


def chunk(path, a, b):
    line, text = cut(SRC + path, a, b)
    text = blank_includes(text)
    text, nl = rewrite_launches(text)
    text, ns = rewrite_extern_shared(text)
    sys.stderr.write(f'{path}: from line {line}, {text.count(chr(10)) + 1} lines, {nl} launches, {ns} extern smem\n')
    return f'#line {line} "{SRC}{path}"\n{text}\n'


# cuda_common.cuh from the scratch carving helper to the op prototypes (launch sizing, warp/block reductions, dtype
# conversions)
HELPERS = [('cuda_common.cuh', r'^// Carves consecutive 256-byte-aligned pieces', r'^// -+ op entry points$')]
SUITES = {
    # LlamaGen's layer kernels: norms, SwiGLU, RoPE prep, the three attention kernels, L2 normalisation
    'llama': HELPERS + [('llama.cu', r'^// -+ RMSNorm$', 'EOF')],
    # the token samplers: VAR's (sample.cu, with more_smooth) and LlamaGen's (llama_sample.cu: hf_kernel, the cluster
    # sampler, the raster step counters and window plan)
    'sampler': HELPERS + [
        ('sample_draw.cuh', r'^// -+ sampler tail$', 'EOF'),
        ('sample.cu', r'^#define SMP_FLAG_EMPTY', 'EOF'),
        ('llama_sample.cu', r'^#define LLAMA_FLAG_EMPTY', 'EOF')],
    # VAR's attention: the flash kernels (their PTX helpers come from emu_mma.h), attention.cu, the row softmax of
    # the GEMM fallback
    'var': HELPERS + [
        ('cuda_common.cuh', r'^// attention_flash\.cu: fused kernels', r'^// sample\.cu$'),
        ('norm.cu', r'^#define ROW_THREADS', r'^// The row stays in registers'),
        ('norm.cu', r'^// -+ softmax$', r'^// y, x: \(\.\.\., V\)\.$'),
        ('attention_flash.cu', r'^#define LOG2E_F', r'^// -+ PTX helpers$'),
        ('attention_flash.cu', r'^// -+ fp16 tensor cores$', 'EOF'),
        ('attention.cu', r'^// q, k, v \(B, NH, T, HS\) <- qkv', 'EOF')],
    # the transformer norms and the VQVAE maps: dense.cu without the cuBLASLt plan cache and the cuBLAS batched GEMM,
    # conv.cu without the cuDNN plan cache (emu_shim_maps.h stands in for both)
    'maps': HELPERS + [
        ('elementwise.cu', r'^#define EW_THREADS', 'EOF'),
        ('norm.cu', r'^#define ROW_THREADS', 'EOF'),
        ('resample.cu', r'^#define RS_THREADS', 'EOF'),
        ('dense.cu', r'^// -+ conversions$', r'^// -+ cuBLASLt$'),
        ('dense.cu', r'^// -+ kt_linear$', r'^// -+ batched fp32 GEMM$'),
        ('dense.cu', r'^// -+ embedding, split_chunks$', 'EOF'),
        ('conv.cu', r'^#define CONV_WS_CAP', r'^void cuda_convs_free'),
        ('conv.cu', r'^// -+ kernels$', 'EOF')],
}
if __name__ == '__main__':
    args = sys.argv[3:] or ['llama']
    if len(args) == 1:
        if args[0] not in SUITES:
            sys.exit(f'extract.py: unknown suite {args[0]!r} (one of {", ".join(SUITES)})')
        spec = SUITES[args[0]]
    elif len(args) % 3:
        sys.exit('extract.py: chunks come as FILE START_RE END_RE triples')
    else:
        spec = [tuple(args[i:i + 3]) for i in range(0, len(args), 3)]
    open(sys.argv[2], 'w').write(''.join(chunk(*c) for c in spec))
