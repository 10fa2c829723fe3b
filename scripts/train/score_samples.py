#!/usr/bin/python3
"""Scores digit samples: the fraction of PNGs in a directory written by `argen sample` (named <index>_c<class>.png,
8-bit RGB) whose digit, as the classifier from classifier.py reads it, equals the class in the file name.

Other files (argen_run.json, ...) are ignored; a class outside 0-9 is an error. Prints per-class and overall
accuracy, or with --json: {"n", "correct", "accuracy", "per_class": {"<c>": {"n", "correct", "accuracy"}},
"wrong": [{"file", "class", "predicted"}]}. Exit status 0 when scored, 1 on a runtime error, 2 on a usage error.

Usage: /usr/bin/python3 scripts/train/score_samples.py DIR [--model scripts/train/out/digit_classifier.pt] [--json]
"""
import argparse
import json
import os
import re
import sys

import numpy as np
import torch

from classifier import DEFAULT_OUT, load_model, predict
from pngio import read_png

NAME = re.compile(r"^(\d+)_c(\d+)\.png$")


def score(directory, model):
    files = sorted((int(m[1]), int(m[2]), f) for f in os.listdir(directory) if (m := NAME.match(f)))
    if not files:
        raise ValueError(f"{directory}: no files named <index>_c<class>.png")
    bad = [f for _, c, f in files if c > 9]
    if bad:
        raise ValueError(f"{os.path.join(directory, bad[0])}: class is not a digit (0-9)")
    images = np.stack([read_png(os.path.join(directory, f)) for _, _, f in files])  # N, H, W, 3
    classes = np.array([c for _, c, _ in files])
    pred = predict(model, images)
    right = pred == classes
    per_class = {str(c): {"n": int((classes == c).sum()), "correct": int(right[classes == c].sum()),
                          "accuracy": float(right[classes == c].mean())} for c in sorted(set(classes.tolist()))}
    wrong = [{"file": f, "class": int(c), "predicted": int(p)} for (_, c, f), p, r in zip(files, pred, right) if not r]
    return {"n": len(files), "correct": int(right.sum()), "accuracy": float(right.mean()), "per_class": per_class,
            "wrong": wrong}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", help="directory of <index>_c<class>.png files")
    p.add_argument("--model", default=DEFAULT_OUT, help="classifier state dict (default: classifier.py's --out)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args()
    torch.set_num_threads(1)
    try:
        result = score(args.dir, load_model(args.model))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"score_samples: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("class      n  correct  accuracy")
    for c, r in result["per_class"].items():
        print(f"{c:>5} {r['n']:>6} {r['correct']:>8} {r['accuracy']:>9.4f}")
    print(f"  all {result['n']:>6} {result['correct']:>8} {result['accuracy']:>9.4f}")
    for w in result["wrong"]:
        print(f"wrong: {w['file']} read as {w['predicted']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
