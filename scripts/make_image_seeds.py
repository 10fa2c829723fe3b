#!/usr/bin/env python3
"""Seed inputs for the image-reader fuzzer (tests/fuzz/fuzz_image.c): small PNGs of every colour type and bit depth
the PNG format has (gray 1/2/4/8/16, RGB 8/16, palette 1/2/4/8 with tRNS, gray+alpha 8/16, RGBA 8/16), plain and
Adam7-interlaced, with a tEXt chunk and a gAMA chunk here and there; plus the baseline JPEGs of
tests/fuzz/seeds-image/ (written by stb_image_write, as `argen sample --format jpg` does). Standard library only.

Usage: python3 scripts/make_image_seeds.py OUT_DIR
"""
import os
import shutil
import struct
import sys
import zlib

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)


def pack_row(samples, depth):
    """Samples of one row -> bytes at `depth` bits per sample (big-endian, MSB first)."""
    if depth == 16:
        return b''.join(struct.pack('>H', s) for s in samples)
    if depth == 8:
        return bytes(samples)
    out, acc, n = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        n += depth
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def png(w, h, color, depth, interlace=False, extra=b''):
    ch, top = CHANNELS[color], (1 << depth) - 1
    pix = [[[(x * 37 + y * 11 + c * 101) % (top + 1) for c in range(ch)] for x in range(w)] for y in range(h)]
    raw = bytearray()
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    for x0, y0, dx, dy in passes:
        for y in range(y0, h, dy):
            xs = range(x0, w, dx)
            if not xs:
                continue
            raw += b'\0' + pack_row([s for x in xs for s in pix[y][x]], depth)
    ihdr = struct.pack('>IIBBBBB', w, h, depth, color, 0, 0, 1 if interlace else 0)
    body = chunk(b'IHDR', ihdr) + extra
    if color == 3:
        n = 1 << depth
        body += chunk(b'PLTE', bytes((i * 53) % 256 for i in range(3 * n))) + chunk(b'tRNS', bytes([0, 128]))
    return b'\x89PNG\r\n\x1a\n' + body + chunk(b'IDAT', zlib.compress(bytes(raw), 9)) + chunk(b'IEND', b'')


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    depths = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
    text = chunk(b'tEXt', b'argen\0{"seed": 0}') + chunk(b'gAMA', struct.pack('>I', 45455))
    n = 0
    for color, ds in depths.items():
        for d in ds:
            for interlace in (False, True):
                w, h = (5, 3) if interlace else (4, 2)
                name = f'c{color}_d{d}{"_i" if interlace else ""}.png'
                with open(os.path.join(out, name), 'wb') as f:
                    f.write(png(w, h, color, d, interlace, text if d == 8 else b''))
                n += 1
    seeds = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests', 'fuzz', 'seeds-image')
    for name in sorted(os.listdir(seeds)):
        shutil.copy(os.path.join(seeds, name), os.path.join(out, name))
        n += 1
    print(f'{out}: {n} image seeds')


if __name__ == '__main__':
    main()
