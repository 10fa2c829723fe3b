#!/usr/bin/python3
"""Makes tests/fixtures/ckpt_inert.tar.xz (unpacked by ctest into <build>/tests/fixtures/ckpt_inert/): training
checkpoints in the layout of LlamaGen's c2i_*.pt, {"model": state_dict, "optimizer": ..., "steps": ..., "args":
argparse.Namespace(...)}, whose non-tensor entries the reader must accept as inert placeholders without running
anything. Needs torch (CPU; written with 1.13) and numpy. Deterministic: no RNG.

Files:
  train_zip.pt       torch.save (zip, pickle protocol 2): "args" holds numpy scalars (float64, int64, float32), a numpy
                     dtype, a numpy array, a TorchVersion, a tuple and a list; "optimizer" is an AdamW state dict with
                     tensors of its own (outside the weights)
  train_legacy.pt    the same, _use_new_zipfile_serialization=False
  train_proto4.pt    the same, pickle_protocol=4 (FRAME, STACK_GLOBAL, MEMOIZE, NEWOBJ of the Namespace)
  inert_in_sd.pt     a bare state dict with a numpy scalar among the tensors (must be refused: placeholders are only
                     accepted outside the state dict)
  evil_namespace.pt  zip whose args Namespace carries os.system in its BUILD state (must be refused, never run)

Usage: /usr/bin/python3 scripts/make_ckpt_inert_fixtures.py [out.tar.xz]
"""
import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch


def model_sd():
    return {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0, "b": torch.tensor([1.5, -2.0])}


def training_checkpoint():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    opt = torch.optim.AdamW([p], lr=1e-4)
    p.grad = torch.tensor([0.5, -0.5, 0.25])
    opt.step()
    args = argparse.Namespace(gpt_model="GPT-B", image_size=256, lr=np.float64(1e-4), global_batch=np.int64(256),
                              beta=np.float32(0.95), dtype=np.dtype("float32"), drop=np.arange(3, dtype=np.int32),
                              torch_version=torch.__version__, grid=(16, 16), labels=[207, 360], note=None)
    assert type(args.torch_version).__name__ == "TorchVersion"
    return {"model": model_sd(), "optimizer": opt.state_dict(), "steps": 1200, "args": args}


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo argen-fixture-should-never-run",))


def write_evil_namespace(path):
    ns = argparse.Namespace(lr=0.1)
    ns.__dict__["hook"] = _Evil()  # pickled as the Namespace's BUILD state
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil_namespace/data.pkl", pickle.dumps({"model": {}, "args": ns}, protocol=2))
        z.writestr("evil_namespace/version", "3\n")


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ckpt_inert.tar.xz"))
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "ckpt_inert")
        os.makedirs(d)
        ck = training_checkpoint()
        torch.save(ck, os.path.join(d, "train_zip.pt"))
        torch.save(ck, os.path.join(d, "train_legacy.pt"), _use_new_zipfile_serialization=False)
        torch.save(ck, os.path.join(d, "train_proto4.pt"), pickle_protocol=4)
        sd = model_sd()
        sd["scale"] = np.float32(2.0)
        torch.save(sd, os.path.join(d, "inert_in_sd.pt"))
        write_evil_namespace(os.path.join(d, "evil_namespace.pt"))
        for name in ("train_zip.pt", "train_legacy.pt", "train_proto4.pt"):  # sanity: torch reads them back
            back = torch.load(os.path.join(d, name))
            assert torch.equal(back["model"]["w"], ck["model"]["w"]) and back["args"].image_size == 256, name
        for f in sorted(os.listdir(d)):
            os.utime(os.path.join(d, f), (0, 0))
        subprocess.run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cJf",
                        out, "-C", tmp, "ckpt_inert"], check=True)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
