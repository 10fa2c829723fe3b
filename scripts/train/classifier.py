#!/usr/bin/python3
"""A small CNN digit classifier, to score digit samples from argen (scripts/train/score_samples.py).

Trained on the 9,000-digit train split of digits.py (CPU, one thread, seeded; random affine augmentation: rotation
+-10 degrees, zoom +-10%, shift +-2 pixels), evaluated on the 1,000 held-out digits both as they are (28x28 gray) and
after the generator's round trip (digits.generator_images to 128x128 RGB, then preprocess() back to 28x28). Saves a
torch state dict (1.1 MB).

preprocess() takes any size and colour: (N, H, W, 3) RGB or (N, H, W) gray uint8 -> BT.601 luma -> bilinear resize to
28x28 (antialiased when it shrinks) -> [0, 1] float (N, 1, 28, 28).

Usage: /usr/bin/python3 scripts/train/classifier.py [--out scripts/train/out/digit_classifier.pt] [--epochs 15]
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import digits

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "digit_classifier.pt")
SEED = 0
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601; gray RGB maps to itself


class DigitNet(nn.Module):
    """Two blocks of [conv3x3 BN ReLU] x2 + 2x2 max pool (32, then 64 channels), dropout, fc(3136->64) ReLU,
    dropout, fc(64->10). 266k params."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(1, 32), block(32, 64))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 64), nn.ReLU(),
                                  nn.Dropout(0.25), nn.Linear(64, 10))

    def forward(self, x):  # x: N, 1, 28, 28 in [0, 1] -> logits N, 10
        return self.head(self.features(x))  # features: N, 64, 7, 7


def preprocess(images):
    """(N, H, W) gray or (N, H, W, 3) RGB uint8 -> (N, 1, 28, 28) float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    if x.ndim == 4:
        x = x @ torch.tensor(LUMA)  # N, H, W
    x = x.unsqueeze(1) / 255  # N, 1, H, W
    if x.shape[-2:] != (28, 28):
        shrink = x.shape[-2] > 28 or x.shape[-1] > 28
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=shrink)
    return x.clamp(0, 1)


def load_model(path):
    model = DigitNet()
    model.load_state_dict(torch.load(path, map_location="cpu"))
    return model.eval()


@torch.no_grad()
def predict(model, images, batch=500):
    """Predicted digits (N,) int64 of uint8 images of any size, gray or RGB."""
    model.eval()
    return torch.cat([model(preprocess(images[i:i + batch])).argmax(1) for i in range(0, len(images), batch)]).numpy()


def augment(x, gen, degrees=10.0, scale=0.1, shift=2.0):
    """Random affine per image: rotation in +-degrees, zoom in 1 +- scale, translation in +-shift pixels
    (bilinear, zero fill). x: N, 1, 28, 28."""
    n = x.shape[0]
    u = torch.rand(n, 4, generator=gen) * 2 - 1  # U(-1, 1)
    angle, zoom = u[:, 0] * degrees * np.pi / 180, 1 + u[:, 1] * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    tx, ty = u[:, 2] * shift * 2 / 28, u[:, 3] * shift * 2 / 28  # pixels -> normalized [-1, 1] coordinates
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # N, 2, 3
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="state dict path (default scripts/train/out/digit_classifier.pt)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-decayed to 0 (default 2e-3)")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--cache", help="digits cache directory (see digits.py)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(args.seed)

    images, labels = digits.load(args.cache)
    train, heldout = digits.split(labels)
    x_train, y_train = preprocess(images[train]), torch.from_numpy(labels[train]).long()
    model = DigitNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * -(-len(train) // args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    print(f"train {len(train)}, held out {len(heldout)}, {sum(p.numel() for p in model.parameters())} params, "
          f"{args.epochs} epochs of {steps // args.epochs} steps")
    for epoch in range(args.epochs):
        t0, total, n = time.time(), 0.0, 0
        model.train()
        for idx in torch.randperm(len(train), generator=gen).split(args.batch):
            loss = F.cross_entropy(model(augment(x_train[idx], gen)), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        acc = (predict(model, images[heldout]) == labels[heldout]).mean()
        print(f"epoch {epoch + 1}: train loss {total / n:.4f}, held-out accuracy {acc:.4f} ({time.time() - t0:.1f} s)")

    acc28 = (predict(model, images[heldout]) == labels[heldout]).mean()
    acc128 = (predict(model, digits.generator_images(images[heldout], 128)) == labels[heldout]).mean()
    print(f"held-out accuracy: {acc28:.4f} (28x28 gray), {acc128:.4f} (128x128 RGB round trip)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(model.state_dict(), args.out)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes")


if __name__ == "__main__":
    main()
