#!/usr/bin/python3
"""Makes the small checkpoint-reader fixtures in tests/fixtures/ckpt.tar.xz (unpacked by ctest into
<build>/tests/fixtures/ckpt/). Needs torch (CPU; written with 1.13) and numpy. Deterministic: no RNG.

Files (all tiny):
  strided.pth          torch.save zip: views sharing one storage (transpose, slice with offset, column, expand),
                       f16/bf16/f64/i64/i32/u8/bool, a 0-d and an empty tensor, an nn.Parameter, -inf/inf/nan, and
                       non-tensor values (int, str, nested dict) that readers must skip
  strided_legacy.pth   the same dict, _use_new_zipfile_serialization=False
  strided_deflate.pth  strided.pth re-zipped with deflate (exercises inflating members)
  expected.safetensors contiguous copies of every tensor of strided.pth (bool as U8), written by hand below
  linear_od.pth        nn.Sequential state_dict: an OrderedDict with _metadata set through BUILD
  model_wrap.pth       {"model": sd, "epoch": 3}
  state_dict_wrap.pth  {"state_dict": sd, "global_step": 10}
  ema_wrap.pth         {"ema": sd, "model": sd2} (the reader's unwrap_key selects "ema")
  legacy_view.pth      legacy layout with a storage *view* (view_metadata in the persistent id), hand-pickled
  evil.pth             zip whose data.pkl calls os.system (must be refused, never run)
  no_tensors.pth       {"step": 5, "lr": 0.1}

Usage: /usr/bin/python3 scripts/make_checkpoint_fixtures.py [out.tar.xz]
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import torch


def strided_dict():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) * 0.5 - 3.0  # (4, 6)
    b16 = (torch.arange(12, dtype=torch.float32).reshape(3, 4) - 5.5).to(torch.bfloat16)
    i64 = torch.tensor([[2**40 + 3, -5, 7], [0, -(2**62), 123456789012]], dtype=torch.int64)
    return {
        "base": base,
        "t": base.t(),                       # (6, 4) stride (1, 6)
        "s": base[1:3, 2:5],                 # (2, 3) offset 8, stride (6, 1)
        "col": base[:, 3],                   # (4,) offset 3, stride 6
        "row_step": base[0, ::2],            # (3,) stride 2
        "expand": base[2:3, :3].expand(4, 3),  # (4, 3) stride (0, 1), offset 12
        "h": torch.tensor([1.5, -2.25, 65504.0, 6.1e-5, 5.96e-8, -0.0, float("inf")], dtype=torch.float16),
        "bf": b16,
        "bf_t": b16.t(),                     # (4, 3) bf16 stride (1, 4)
        "d": torch.tensor([[1e-300, -2.5], [3.0, 1e300]], dtype=torch.float64),
        "i64": i64,
        "i64_t": i64.t(),
        "i32": torch.tensor([-(2**31), 2**31 - 1, 0, 42], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 254, 255], dtype=torch.uint8),
        "b": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.tensor([0.125, -8.0])),
        "special": torch.tensor([float("-inf"), 0.0, float("inf"), float("nan")]),
        "step": 7,
        "name": "not a tensor",
        "nested": {"x": torch.ones(2)},
    }


def write_safetensors(path, tensors):
    dt = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
          torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "U8"}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if t.dtype == torch.bool:
            t = t.to(torch.uint8)
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rezip_deflated(src, dst):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))


class _StorageRef:
    def __init__(self, pid):
        self.pid = pid


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class _LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageRef) else None


def write_legacy_view(path):
    """Legacy layout by hand: one float root storage 'root' of 10 elements; a view 'v1' = root[2:7]; the tensor
    'v' = v1[1:4] (so root[3:6] = 3, 4, 5) and 'whole' = root viewed as (2, 5)."""
    root = torch.arange(10, dtype=torch.float32)
    view = _StorageRef(("storage", torch.FloatStorage, "root", "cpu", 10, ("v1", 2, 5)))
    plain = _StorageRef(("storage", torch.FloatStorage, "root", "cpu", 10, None))
    obj = collections.OrderedDict(v=_TensorRef(view, 1, (3,), (1,)), whole=_TensorRef(plain, 0, (2, 5), (5, 1)))
    buf = io.BytesIO()
    for o in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                             "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(o, buf, protocol=2)
    _LegacyPickler(buf, protocol=2).dump(obj)
    pickle.dump(["root"], buf, protocol=2)
    buf.write(struct.pack("<Q", 10) + root.numpy().tobytes())
    with open(path, "wb") as f:
        f.write(buf.getvalue())


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo argen-fixture-should-never-run",))


def write_evil(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", pickle.dumps({"w": _Evil()}, protocol=2))
        z.writestr("evil/version", "3\n")


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ckpt.tar.xz"))
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "ckpt")
        os.makedirs(d)
        sd = strided_dict()
        torch.save(sd, os.path.join(d, "strided.pth"))
        torch.save(sd, os.path.join(d, "strided_legacy.pth"), _use_new_zipfile_serialization=False)
        rezip_deflated(os.path.join(d, "strided.pth"), os.path.join(d, "strided_deflate.pth"))
        write_safetensors(os.path.join(d, "expected.safetensors"),
                          {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)})

        net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
        with torch.no_grad():
            for i, p in enumerate(net.parameters()):
                p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) * 0.25 - i)
        lin = net.state_dict()
        assert hasattr(lin, "_metadata")
        torch.save(lin, os.path.join(d, "linear_od.pth"))
        small = {"w": torch.tensor([1.0, 2.0, 3.0]), "idx": torch.tensor([4, 5], dtype=torch.int64)}
        small2 = {"w": torch.tensor([-1.0, -2.0, -3.0]), "idx": torch.tensor([6, 7], dtype=torch.int64)}
        torch.save({"model": small, "epoch": 3}, os.path.join(d, "model_wrap.pth"))
        torch.save({"state_dict": small, "global_step": 10}, os.path.join(d, "state_dict_wrap.pth"))
        torch.save({"ema": small, "model": small2}, os.path.join(d, "ema_wrap.pth"))
        torch.save({"step": 5, "lr": 0.1}, os.path.join(d, "no_tensors.pth"))
        write_legacy_view(os.path.join(d, "legacy_view.pth"))
        write_evil(os.path.join(d, "evil.pth"))

        # sanity: torch reads back what we wrote (except the hand-made and hostile files)
        for name in ("strided.pth", "strided_legacy.pth", "strided_deflate.pth"):
            back = torch.load(os.path.join(d, name))
            assert torch.equal(back["s"], sd["s"]) and back["expand"].stride() == (0, 1), name
        lv = torch.load(os.path.join(d, "legacy_view.pth"))
        assert lv["v"].tolist() == [3.0, 4.0, 5.0], lv["v"]

        for f in sorted(os.listdir(d)):
            os.utime(os.path.join(d, f), (0, 0))
        subprocess.run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cJf",
                        out, "-C", tmp, "ckpt"], check=True)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
