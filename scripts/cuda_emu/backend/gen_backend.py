#!/usr/bin/env python3
"""Turns one kernels/cuda/*.cu file into C++ that g++ compiles against the emulated CUDA runtime (emu_prelude.h is
force-included). Mechanical rewrites, line count preserved (so compiler and sanitizer messages name the
original lines; a #line directive names the original file):
  NAME<<<G, B[, S[, STREAM]]>>>(ARGS)  ->  emu::launch_on(STREAM, dim3(G), dim3(B), (size_t)(S), NAME, ARGS)
  extern __shared__ [__align__(n)] T name[];  ->  T *name = (T *)emu::dyn_smem();
  #include <cub/...>, <cooperative_groups.h>  ->  (blank: emu_prelude.h provides emu_cub.h, emu_cuda.h)
  cudaFuncSetAttribute(NAME...  ->  emu::func_set_attribute("NAME", NAME...  (limits kept per kernel name)
and in attention_flash.cu and llama_gemv.cu the PTX helper sections are blanked (emu_mma.h defines the same
helpers).
Usage: gen_backend.py IN.cu OUT.cpp"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from extract import balanced, kernel_name_start, split_top, rewrite_extern_shared  # noqa: E402


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
        stream = cfg[3] if len(cfg) > 3 else '(cudaStream_t)0'
        assert t[e + 3] == '(', t[e:e + 20]
        a_end = balanced(t, e + 3, '(', ')')
        args = t[e + 4:a_end - 1]
        base = re.match(r'\w+', name).group(0)
        # NULL (a long in g++) is copied as a null pointer, as the original call converted it
        args = re.sub(r'\bNULL\b', 'nullptr', args) if args.strip() else ''
        lead = (f'emu::launch_on({stream}, dim3({grid}), dim3({block}), (size_t)({smem}), "{base}", '
                f'[](auto... a) {{ {name}(a...); }}')
        rep = lead + (f', {args})' if args else ')')
        t = t[:name_start] + rep + t[a_end:]
        n += 1


def blank(lines, start_re, end_re):
    s = next(i for i, l in enumerate(lines) if re.search(start_re, l))
    e = next(i for i, l in enumerate(lines) if i > s and re.search(end_re, l))
    for i in range(s, e):
        lines[i] = ''


def main():
    src, out = sys.argv[1], sys.argv[2]
    lines = open(src).read().split('\n')
    lines = ['' if re.match(r'\s*#include <(cub/|cooperative_groups)', l) else l for l in lines]
    if os.path.basename(src) == 'attention_flash.cu':
        blank(lines, r'^// -+ PTX helpers$', r'^// -+ fp16 tensor cores$')
    if os.path.basename(src) == 'llama_gemv.cu':
        blank(lines, r'^// -+ PTX helpers$', r'^// -+ kernel$')
    text, nl = rewrite_launches('\n'.join(lines))
    # the dynamic shared memory limit is kept per kernel name (a launch cannot always name its instantiation)
    text = re.sub(r'cudaFuncSetAttribute\((\w+)', r'emu::func_set_attribute("\1", \1', text)
    text, ns = rewrite_extern_shared(text)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + '.tmp', 'w') as f:
        f.write(f'#line 1 "{os.path.abspath(src)}"\n{text}')
    os.replace(out + '.tmp', out)
    sys.stderr.write(f'{os.path.basename(src)}: {nl} launches, {ns} extern shared\n')


if __name__ == '__main__':
    main()
