#!/usr/bin/python3
"""Makes the .npz reader fixtures in tests/fixtures/npz.tar.xz (unpacked by ctest into <build>/tests/fixtures/npz/),
and checks archives for tests/test_npz.c (--check). Needs numpy only (written with 1.24). Deterministic: every value
is a closed-form function of its flat index i (values() below, mirrored by want_value() in tests/test_npz.c), so the
tests regenerate the expected arrays; no RNG, fixed zip timestamps.

Files (all written by numpy or Python's zipfile, except the hand-made headers in headers.npz):
  stored.npz          np.savez: the standard set (STANDARD): arr_0 u8 (61, 32, 32, 3), <f8, <f4, <i8, <i4, a 0-d
                      <f8 and an empty (0, 3) <f4; numpy forces ZIP64 extras into the local headers only (older
                      Pythons also set the local 32-bit sizes to 0xFFFFFFFF, as in fid/ref_batch_*.npz)
  deflated.npz        np.savez_compressed of the same (arr_0 spans several 64 KiB inflate windows)
  zip64.npz           zipfile, force_zip64=True, members alternately stored and deflated (SMALL set)
  unseekable.npz      np.savez into a stream without seek/tell: flag bit 3, data descriptors (SMALL set)
  unseekable_deflated.npz  the same with np.savez_compressed
  big_endian.npz      '>f8', '>f4', '>i8', '>i4' members (and a '|u1' one)
  headers.npz         v1.0 / v2.0 / v3.0 headers from numpy's write_array, and hand-made ones numpy also reads:
                      descr '=f8' with the keys in another order and 16-byte alignment, Python-2 '3L' dims,
                      double-quoted keys with extra whitespace
  fortran.npz         a fortran_order=True (3, 4) <f8 array (must be rejected)
  unsupported.npz     '<f2', '|b1', '<c8', '<u2' and a structured dtype (each must be rejected, naming the descr)

Usage: /usr/bin/python3 scripts/make_npz_fixtures.py [out.tar.xz]
       /usr/bin/python3 scripts/make_npz_fixtures.py --check FILE KEY:DESCR:SHAPE ...   (SHAPE like 61x32x32x3,
       '' for a 0-d array; exits 0 when numpy reads exactly these arrays, in this order, and every CRC-32 matches)
"""
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

STANDARD = [("arr_0", "|u1", (61, 32, 32, 3)), ("f8", "<f8", (5, 7)), ("f4", "<f4", (11,)), ("i64", "<i8", (3, 4)),
            ("i32", "<i4", (2, 3, 5)), ("scalar", "<f8", ()), ("empty", "<f4", (0, 3))]
SMALL = [("arr_0", "|u1", (5, 4, 4, 3))] + STANDARD[1:]
BIG_ENDIAN = [("arr_0", "|u1", (2, 3)), ("f8", ">f8", (5, 7)), ("f4", ">f4", (11,)), ("i64", ">i8", (3, 4)),
              ("i32", ">i4", (2, 3, 5))]


def values(descr, shape):
    """The array stored under (descr, shape): a function of the flat index i only (see want_value in test_npz.c)."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    i = np.arange(n, dtype=np.int64)
    kind = np.dtype(descr).kind + str(np.dtype(descr).itemsize)
    v = {"u1": lambda: (i * 7 + i // 311) % 256,
         "i4": lambda: (i - 10) * 100003,
         "i8": lambda: (i - 6) * 1099511627791,
         "f4": lambda: (i - 5) * 0.25,
         "f8": lambda: (i - 7) * 0.125 + 1048576.0,
         "f2": lambda: (i - 3) * 0.5,
         "b1": lambda: i % 2,
         "c8": lambda: i * (1 + 1j),
         "u2": lambda: i * 300}[kind]()
    return v.astype(descr).reshape(shape)


def arrays(spec):
    return {k: values(d, s) for k, d, s in spec}


class Unseekable(io.RawIOBase):
    """A write-only stream without tell/seek, like a pipe: zipfile then sets flag bit 3 and writes data descriptors."""

    def __init__(self, f):
        self.f = f

    def writable(self):
        return True

    def write(self, b):
        return self.f.write(b)

    def seekable(self):
        return False

    def tell(self):
        raise OSError("unseekable")


class _Time1980:
    """Stands in for the time module inside zipfile, so that np.savez stamps every member 1980-01-01 00:00 and the
    archives are byte-for-byte reproducible."""
    time = staticmethod(lambda: 315532800.0)
    localtime = staticmethod(lambda t=None: (1980, 1, 1, 0, 0, 0, 1, 1, 0))


def npy_bytes(header, arr, major=1, align=16):
    """A hand-made .npy: `header` text padded with spaces to `align`, then the array's raw bytes."""
    pre = 10 if major == 1 else 12
    text = header + " " * ((align - (pre + len(header) + 1) % align) % align) + "\n"
    ln = len(text).to_bytes(2 if major == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([major, 0]) + ln + text.encode("latin1") + arr.tobytes()


def fixed_info(name, method=zipfile.ZIP_STORED):
    zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    zi.compress_type = method
    return zi


def write_zip64(path, spec):
    with zipfile.ZipFile(path, "w") as zf:
        for j, (k, d, s) in enumerate(spec):
            zi = fixed_info(k + ".npy", zipfile.ZIP_DEFLATED if j % 2 else zipfile.ZIP_STORED)
            with zf.open(zi, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, values(d, s))


def write_headers(path):
    buf = {}
    for key, ver, d, s in (("v1", (1, 0), "<i8", (3, 4)), ("v2", (2, 0), "<f8", (5, 7)), ("v3", (3, 0), "<f4", (11,))):
        b = io.BytesIO()
        np.lib.format.write_array(b, values(d, s), version=ver)
        buf[key] = b.getvalue()
    buf["native"] = npy_bytes("{'shape': (5, 7), 'fortran_order': False, 'descr': '=f8'}", values("<f8", (5, 7)))
    buf["py2"] = npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }", values("<i8", (3, 4)))
    buf["dq"] = npy_bytes('{ "descr" : "<i4" ,\t"fortran_order":False , "shape":( 2 , 3,5 ) }',
                          values("<i4", (2, 3, 5)), major=2, align=64)
    with zipfile.ZipFile(path, "w") as zf:
        for k, b in buf.items():
            zf.writestr(fixed_info(k + ".npy"), b)


def check(path, specs):
    want = []
    for s in specs:
        k, d, shape = s.split(":")
        want.append((k, d, tuple(int(x) for x in shape.split("x")) if shape else ()))
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()
        assert bad is None, f"{path}: CRC-32 mismatch in {bad}"
    with np.load(path) as z:
        assert list(z.files) == [k for k, _, _ in want], f"{path}: members {z.files}, expected {want}"
        for k, d, shape in want:
            a = z[k]
            assert a.dtype == np.dtype(d) and a.shape == shape, f"{path}: {k} is {a.dtype} {a.shape}, want {d} {shape}"
            assert np.array_equal(a, values(d, shape)), f"{path}: {k} values differ"
    print("ok", path)


def expect_load(path, spec):
    with np.load(path) as z:
        assert list(z.files) == [k for k, _, _ in spec], (path, z.files)
        for k, d, s in spec:
            assert z[k].shape == s and np.array_equal(z[k], values(d, s)), (path, k)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3:])
        return
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "npz.tar.xz"))
    zipfile.time = _Time1980
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "npz")
        os.makedirs(d)
        p = lambda name: os.path.join(d, name)
        np.savez(p("stored.npz"), **arrays(STANDARD))
        np.savez_compressed(p("deflated.npz"), **arrays(STANDARD))
        write_zip64(p("zip64.npz"), SMALL)
        with open(p("unseekable.npz"), "wb") as f:
            np.savez(Unseekable(f), **arrays(SMALL))
        with open(p("unseekable_deflated.npz"), "wb") as f:
            np.savez_compressed(Unseekable(f), **arrays(SMALL))
        np.savez(p("big_endian.npz"), **arrays(BIG_ENDIAN))
        write_headers(p("headers.npz"))
        np.savez(p("fortran.npz"), f=np.asfortranarray(values("<f8", (3, 4))))
        np.savez(p("unsupported.npz"), h=values("<f2", (6,)), b=values("|b1", (3,)), c=values("<c8", (2,)),
                 u2=values("<u2", (4,)), rec=np.zeros(2, dtype=[("a", "<i4"), ("b", "<f4")]))

        # sanity: numpy reads back what was written, and the files have the properties they exist for
        for name, spec in (("stored.npz", STANDARD), ("deflated.npz", STANDARD), ("zip64.npz", SMALL),
                           ("unseekable.npz", SMALL), ("unseekable_deflated.npz", SMALL),
                           ("big_endian.npz", BIG_ENDIAN)):
            expect_load(p(name), spec)
        expect_load(p("headers.npz"), [("v1", "<i8", (3, 4)), ("v2", "<f8", (5, 7)), ("v3", "<f4", (11,)),
                                       ("native", "<f8", (5, 7)), ("py2", "<i8", (3, 4)), ("dq", "<i4", (2, 3, 5))])
        for name in ("unseekable.npz", "unseekable_deflated.npz"):
            assert all(zi.flag_bits & 8 for zi in zipfile.ZipFile(p(name)).infolist()), name
        assert [zi.compress_type for zi in zipfile.ZipFile(p("zip64.npz")).infolist()][:2] == [0, 8]
        raw = open(p("stored.npz"), "rb").read()
        # local header: a 20-byte ZIP64 extra (id 1) after the name; the central one has none for small files
        assert raw[28:30] == b"\x14\x00" and raw[39:41] == b"\x01\x00", "numpy no longer forces local ZIP64 extras"
        assert all(zi.extra == b"" for zi in zipfile.ZipFile(p("stored.npz")).infolist())
        with np.load(p("fortran.npz")) as z:
            assert np.isfortran(z["f"])

        for f in sorted(os.listdir(d)):
            os.utime(os.path.join(d, f), (0, 0))
        subprocess.run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cJf",
                        out, "-C", tmp, "npz"], check=True)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
