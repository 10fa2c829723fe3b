"""Minimal safetensors writer/reader (the format: 8-byte little-endian header length, a JSON header
{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}, then the raw little-endian tensor bytes).
Debian's python3-torch 1.13 has no `safetensors` package; this is all the training scripts need."""
import json
import os
import struct

import numpy as np
import torch

_DTYPES = {torch.float16: ("F16", np.float16), torch.float32: ("F32", np.float32),
           torch.bfloat16: ("BF16", None), torch.int64: ("I64", np.int64), torch.int32: ("I32", np.int32)}
_NP = {"F16": np.float16, "F32": np.float32, "I64": np.int64, "I32": np.int32}


def save(path, tensors, metadata=None):
    """tensors: {name: torch.Tensor} (written in name order); metadata: {str: str}. Atomic (temp file + rename)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code, npt = _DTYPES[t.dtype]
        raw = t.numpy().astype(npt, copy=False).tobytes() if npt else t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load(path):
    """-> ({name: torch.Tensor float32 or int}, metadata dict)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[b:end], dtype=_NP[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32) if e["dtype"] == "F16" else arr.copy())
    return out, meta
